"""Issue 6 benchmark: churn training frame for 6 monthly as_of dates at 1M accounts.

Baseline (bare Spark, same run): read the parquet + one groupBy per as_of date (filter
``order_date < as_of``, then count, sum, first and last order per account), 6 jobs.
kamlib: ``training_frame`` for the same 6 dates (all churn features for 30/90/180-day windows
and the 90-day churn label) in one pass. Both are forced with the ``noop`` sink.
Target: training_frame <= 3x baseline.

    python benchmarks/bench_churn.py --accounts 1000000
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from _common import bench_session, emit_json, noop, print_table, stage_parquet, timed

TARGET = 3.0
AS_OF_DATES = [dt.date(2025, m, 1) for m in range(1, 7)]


def run(spark: Any, accounts: int) -> dict[str, Any]:
    """Run the benchmark on ``accounts`` synthetic accounts; return times and the ratio."""
    from pyspark.sql import functions as F

    from kamlib.churn import training_frame
    from kamlib.datasets import synthetic_transactions

    path = stage_parquet(
        f"churn_tx_{accounts}", lambda: synthetic_transactions(spark, accounts, seed=6)
    )
    tx = spark.read.parquet(path)
    n_rows = tx.count()

    def baseline() -> None:
        for as_of in AS_OF_DATES:
            noop(
                tx.filter(F.col("order_date") < F.lit(as_of))
                .groupBy("account_id")
                .agg(
                    F.count("*").alias("n"),
                    F.sum("amount").alias("revenue"),
                    F.max("order_date").alias("last"),
                    F.min("order_date").alias("first"),
                )
            )

    def kamlib_frame() -> None:
        noop(training_frame(tx, as_of_dates=AS_OF_DATES, horizon_days=90))

    timed(baseline)  # warm-up (JIT, file listing caches)
    base = timed(baseline, repeat=3)
    seconds = timed(kamlib_frame, repeat=3)
    n_out = training_frame(tx, as_of_dates=AS_OF_DATES).count()
    ratio = seconds / base
    rows: list[dict[str, Any]] = [
        {"step": "baseline: read + groupBy per as_of (6)", "seconds": base},
        {
            "step": "training_frame (6 as_of, 3 windows)",
            "seconds": seconds,
            "ratio": ratio,
            "target": f"<={TARGET:g}x",
            "ok": ratio <= TARGET,
        },
    ]
    return {
        "benchmark": "churn",
        "accounts": accounts,
        "transactions": n_rows,
        "as_of_dates": len(AS_OF_DATES),
        "training_rows": n_out,
        "baseline_seconds": base,
        "training_frame_seconds": seconds,
        "ratio": ratio,
        "rows": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=1_000_000)
    args = parser.parse_args()
    spark = bench_session("kamlib-bench-churn")
    try:
        result = run(spark, args.accounts)
    finally:
        spark.stop()
    print_table(
        f"kamlib churn benchmark: {result['accounts']:,} accounts, "
        f"{result['transactions']:,} transactions, {result['as_of_dates']} as_of dates",
        result["rows"],
    )
    emit_json(result)


if __name__ == "__main__":
    main()
