"""Issue 5 benchmark: the whole CLV pipeline vs a bare-Spark baseline, and the BG/NBD fit alone.

Data: ``synthetic_transactions`` (daily BG/NBD + Gamma-Gamma truth) written to parquet before
timing. Steps, all in one run:

(a) baseline (bare Spark): read + daily groupBy (account, day) + per-account groupBy + write
    parquet;
(b) pipeline: read -> ``rfm_summary`` -> ``BetaGeo`` + ``GammaGamma`` fit -> 12-month
    ``customer_lifetime_value`` for every account -> write parquet;
(c) the BG/NBD fit alone on an existing (cached) summary;
(d) the anchor: lifetimes 0.11.3 (in its own throwaway venv: it needs numpy<2, pandas<2.2)
    on the same staged log, summary -> BG/NBD -> Gamma-Gamma -> 12-month CLV, with its RSS.

Targets: pipeline <= 1.5x baseline, BG/NBD fit <= 0.5 s; the driver's Python peak memory
(``ru_maxrss`` of this process) is recorded.

    python benchmarks/bench_clv.py --accounts 100000
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from _common import (
    DATA_DIR,
    bench_session,
    emit_json,
    peak_rss_mib,
    print_table,
    stage_parquet,
    timed,
)

PIPELINE_TARGET = 1.5
FIT_TARGET = 0.5
MEMORY_TARGET_MIB = 2048.0


LIFETIMES_PINS = ("lifetimes==0.11.3", "numpy<2", "pandas<2.2", "scipy<1.14", "pyarrow<21")


def lifetimes_anchor(path: str, end: str) -> dict[str, Any]:
    """Run lifetimes on the staged log in a throwaway venv (created once under DATA_DIR)."""
    venv = DATA_DIR / "lifetimes-venv"
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", *LIFETIMES_PINS], check=True, timeout=900
        )
    script = Path(__file__).parent / "_lifetimes_anchor.py"
    out = subprocess.run(
        [str(python), str(script), path, end], check=True, capture_output=True, text=True
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def run(spark: Any, accounts: int, *, anchor: bool = True) -> dict[str, Any]:
    """Run the benchmark on ``accounts`` synthetic accounts; return times, ratio, memory."""
    from pyspark.sql import functions as F

    from kamlib.clv import BetaGeo, GammaGamma, customer_lifetime_value, rfm_summary
    from kamlib.datasets import SyntheticTruth, synthetic_transactions

    truth = SyntheticTruth()
    end = truth.observation_end()
    path = stage_parquet(
        f"clv_tx_{accounts}", lambda: synthetic_transactions(spark, accounts, seed=5)
    )
    tx = spark.read.parquet(path)
    n_rows = tx.count()
    out_dir = Path(tempfile.mkdtemp(prefix="kamlib-bench-clv-"))

    def baseline() -> None:
        daily = tx.groupBy("account_id", F.to_date("order_date").alias("day")).agg(
            F.sum("amount").alias("value")
        )
        per_account = daily.groupBy("account_id").agg(
            F.count("*").alias("days"),
            F.min("day").alias("first"),
            F.max("day").alias("last"),
            F.sum("value").alias("total"),
        )
        per_account.write.mode("overwrite").parquet(str(out_dir / "baseline"))

    fits: dict[str, float] = {}

    def pipeline() -> None:
        summary = rfm_summary(tx, observation_end=end).cache()
        started = time.perf_counter()
        bg = BetaGeo().fit(summary)
        gg = GammaGamma().fit(summary)
        fits["fits_in_pipeline"] = time.perf_counter() - started
        scored = customer_lifetime_value(
            summary, transaction_model=bg, spend_model=gg, months=12, freq="D"
        )
        scored.write.mode("overwrite").parquet(str(out_dir / "clv"))
        summary.unpersist()

    try:
        timed(baseline)  # warm-up (JIT, file listing caches)
        base = timed(baseline, repeat=3)
        tracemalloc.start()
        seconds = timed(pipeline, repeat=3)
        _, traced_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()

        summary = rfm_summary(tx, observation_end=end).cache()
        n_accounts = summary.count()
        distinct = summary.select("frequency", "recency", "T").distinct().count()
        BetaGeo().fit(summary)  # warm-up
        fit_seconds = timed(lambda: BetaGeo().fit(summary), repeat=3)
        model = BetaGeo().fit(summary)
        optimiser_seconds = float(model.fit_info.get("seconds", float("nan")))
        summary.unpersist()
        clv_out = spark.read.parquet(str(out_dir / "clv"))
        clv_rows = clv_out.count()
        clv_sum = float(clv_out.agg(F.sum("clv")).first()[0])
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
    ratio = seconds / base
    lifetimes = lifetimes_anchor(path, end.isoformat()) if anchor else None
    rows: list[dict[str, Any]] = [
        {"step": "baseline: read + daily + per-account groupBy + write", "seconds": base},
        {
            "step": "pipeline: summary + BG/NBD + GG + 12m CLV + write",
            "seconds": seconds,
            "ratio": ratio,
            "target": f"<={PIPELINE_TARGET:g}x",
            "ok": ratio <= PIPELINE_TARGET,
        },
        {
            "step": "BG/NBD fit on cached summary (incl. Spark reduce)",
            "seconds": fit_seconds,
            "target": f"<={FIT_TARGET:g}s",
            "ok": fit_seconds <= FIT_TARGET,
        },
        {"step": "  of which driver optimiser", "seconds": optimiser_seconds},
        {
            "step": "  BG/NBD + GG fits inside the pipeline (incl. summary + cache)",
            "seconds": fits.get("fits_in_pipeline", float("nan")),
        },
        *(
            []
            if lifetimes is None
            else [
                {
                    "step": "anchor: lifetimes 0.11.3 summary + BG/NBD + GG + 12m CLV",
                    "seconds": lifetimes["total_seconds"],
                    "ratio": lifetimes["total_seconds"] / seconds,
                    "target": ">=2x",
                    "ok": lifetimes["total_seconds"] / seconds >= 2.0,
                },
                {"step": "  lifetimes peak RSS (MiB)", "value": lifetimes["peak_rss_mib"]},
            ]
        ),
        {
            "step": "driver peak memory (RSS, MiB)",
            "value": peak_rss_mib(),
            "target": f"<{MEMORY_TARGET_MIB:g} MiB",
            "ok": peak_rss_mib() < MEMORY_TARGET_MIB,
        },
    ]
    return {
        "benchmark": "clv",
        "accounts": accounts,
        "transactions": n_rows,
        "summary_rows": n_accounts,
        "distinct_tuples": distinct,
        "clv_rows": clv_rows,
        "baseline_seconds": base,
        "pipeline_seconds": seconds,
        "ratio": ratio,
        "fit_seconds": fit_seconds,
        "optimiser_seconds": optimiser_seconds,
        "fits_in_pipeline_seconds": fits.get("fits_in_pipeline", float("nan")),
        "driver_peak_rss_mib": peak_rss_mib(),
        "driver_python_traced_peak_mib": traced_peak / 2**20,
        "clv_sum": clv_sum,
        "lifetimes": lifetimes,
        "rows": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=1_000_000)
    parser.add_argument(
        "--no-lifetimes", action="store_true", help="skip the lifetimes 0.11.3 anchor row"
    )
    args = parser.parse_args()
    spark = bench_session("kamlib-bench-clv")
    try:
        result = run(spark, args.accounts, anchor=not args.no_lifetimes)
    finally:
        spark.stop()
    print_table(
        f"kamlib CLV benchmark: {result['accounts']:,} accounts, "
        f"{result['transactions']:,} transactions, {result['distinct_tuples']:,} distinct tuples",
        [row for row in result["rows"] if "seconds" in row],
    )
    print(
        f"driver peak RSS {result['driver_peak_rss_mib']:.0f} MiB, "
        f"traced Python peak during the pipeline {result['driver_python_traced_peak_mib']:.1f} MiB"
    )
    if result["lifetimes"] is not None:
        print(
            f"12-month CLV sum: kamlib {result['clv_sum']:,.0f}, "
            f"lifetimes {result['lifetimes']['clv_sum']:,.0f}"
        )
    emit_json(result)


if __name__ == "__main__":
    main()
