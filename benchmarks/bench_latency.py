"""Issue 17 benchmark: interactive latency on key-account-sized books (hundreds to 20k accounts).

For each call: the first-call time (first use in a fresh session, after its start-up), the
second-call time, and the warm time: best of 3 after WARMUP more calls, i.e. a notebook session
that has run the call a few times (the JVM compiles the planner's and the generated code's hot
paths over the first calls: the 2k scorecard takes ~2 s on its second call and ~1 s from about
the fifth). Plus the number of Spark jobs it triggers (classic Spark: the status tracker of a
job group; Spark Connect: not available, reported as null). Data is materialised in memory
before timing, so the numbers are the library's own cost.

- CDNOW CLV pipeline: ``rfm_summary`` -> ``BetaGeo`` -> ``GammaGamma`` -> 12-month CLV sum, on
  the shipped CDNOW 1/10 sample replicated 10x under distinct ids (23,570 accounts, the size of
  the full CDNOW cohort), beside lifetimes 0.11.3 on the same log in the same run (own venv;
  see ``bench_clv.lifetimes_anchor``).
- ``account_scorecard`` at 2,000 and 20,000 accounts; ``retention_rates``,
  ``classify_accounts`` and ``nps`` at 2,000 accounts.

Targets (warm, local[2]): CLV pipeline <= lifetimes; scorecard at 2k <= 1.5 s; each single
family at 2k <= 0.5 s; first call within 2x of warm.

    python benchmarks/bench_latency.py [--connect] [--no-lifetimes]
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from _common import emit_json, print_table, stage_parquet

AS_OF = "2026-01-01"
CDNOW_END = "1998-06-30"
SCORECARD_TARGET = 1.5
FAMILY_TARGET = 0.5
WARMUP = 5
_groups = itertools.count()


@contextlib.contextmanager
def count_jobs(spark: Any, sink: list[int | None]) -> Iterator[None]:
    """Append the number of Spark jobs run inside the block to ``sink`` (None on Connect)."""
    from pyspark.sql.utils import is_remote

    if is_remote():
        yield
        sink.append(None)
        return
    sc = spark.sparkContext
    group = f"kamlib-latency-{next(_groups)}"
    sc.setJobGroup(group, group)
    try:
        yield
    finally:
        sc.setLocalProperty("spark.jobGroup.id", None)
        sink.append(len(sc.statusTracker().getJobIdsForGroup(group)))


def measure(spark: Any, name: str, fn: Callable[[], Any], target: float | None) -> dict[str, Any]:
    """First-call and warm (best of 3) seconds of ``fn`` and its job count."""
    jobs: list[int | None] = []
    start = time.perf_counter()
    with count_jobs(spark, jobs):
        fn()
    first = time.perf_counter() - start
    start = time.perf_counter()
    fn()
    second = time.perf_counter() - start
    for _ in range(WARMUP):
        fn()
    warm = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        fn()
        warm = min(warm, time.perf_counter() - start)
    row: dict[str, Any] = {
        "step": name,
        "seconds": warm,
        "first_call_seconds": first,
        "second_call_seconds": second,
        "first_over_warm": first / warm,
        "jobs": jobs[0],
    }
    if target is not None:
        row.update(target=f"<={target:g}s", ok=warm <= target)
    return row


def cdnow_x10(spark: Any) -> Any:
    """The CDNOW sample replicated 10x with distinct account ids (23,570 accounts)."""
    from pyspark.sql import functions as F

    from kamlib.datasets import load_cdnow

    base = load_cdnow(spark).select("account_id", "order_date", "amount")
    copies = spark.range(10).withColumnRenamed("id", "copy")
    return base.crossJoin(copies).select(
        F.concat_ws("-", F.col("account_id"), F.col("copy").cast("string")).alias("account_id"),
        "order_date",
        F.col("amount").cast("double").alias("amount"),
    )


def run(spark: Any, *, anchor: bool) -> dict[str, Any]:
    from pyspark.sql import functions as F

    from kamlib.classify import classify_accounts
    from kamlib.clv import BetaGeo, GammaGamma, customer_lifetime_value, rfm_summary
    from kamlib.datasets import synthetic_surveys, synthetic_transactions
    from kamlib.nps import nps
    from kamlib.retention import retention_rates
    from kamlib.scorecard import account_scorecard

    cdnow_path = stage_parquet("latency_cdnow_x10", lambda: cdnow_x10(spark))
    cdnow = spark.read.parquet(cdnow_path).cache()
    n_cdnow = cdnow.select("account_id").distinct().count()
    books = {n: synthetic_transactions(spark, n, seed=3).cache() for n in (2_000, 20_000)}
    for book in books.values():
        book.count()
    surveys = synthetic_surveys(spark, 2_000, seed=3).cache()
    surveys.count()
    revenue = books[2_000].groupBy("account_id").agg(F.sum("amount").alias("amount")).cache()
    revenue.count()

    def clv_pipeline() -> float:
        summary = rfm_summary(cdnow, observation_end=CDNOW_END)
        bg = BetaGeo().fit(summary)
        gg = GammaGamma().fit(summary)
        scored = customer_lifetime_value(
            summary, transaction_model=bg, spend_model=gg, months=12, freq="D"
        )
        return float(scored.agg(F.sum("clv")).first()[0])

    def scorecard(n: int) -> Callable[[], Any]:
        return lambda: account_scorecard(books[n], as_of=AS_OF, cache=False).collect()

    lifetimes = None
    if anchor:
        from bench_clv import lifetimes_anchor

        lifetimes = lifetimes_anchor(cdnow_path, CDNOW_END)
    clv_row = measure(spark, "CDNOW x10 CLV pipeline (23,570 accounts)", clv_pipeline, None)
    if lifetimes is not None:
        clv_row.update(
            ratio=clv_row["seconds"] / lifetimes["total_seconds"],
            target="<=1x lifetimes",
            ok=clv_row["seconds"] <= lifetimes["total_seconds"],
        )
    rows = [clv_row]
    if lifetimes is not None:
        rows.append(
            {
                "step": "  lifetimes 0.11.3, same log",
                "seconds": lifetimes["total_seconds"],
                "clv_sum": lifetimes["clv_sum"],
            }
        )
    rows += [
        measure(spark, "account_scorecard, 2k accounts", scorecard(2_000), SCORECARD_TARGET),
        measure(spark, "account_scorecard, 20k accounts", scorecard(20_000), None),
        measure(
            spark,
            "retention_rates (month), 2k accounts",
            lambda: retention_rates(books[2_000]).collect(),
            FAMILY_TARGET,
        ),
        measure(
            spark,
            "classify_accounts, 2k accounts",
            lambda: classify_accounts(revenue).collect(),
            FAMILY_TARGET,
        ),
        measure(
            spark,
            "nps by account, 2k accounts",
            lambda: nps(surveys, by="account_id").collect(),
            FAMILY_TARGET,
        ),
    ]
    return {
        "benchmark": "latency",
        "cdnow_accounts": n_cdnow,
        "kamlib_clv_sum": clv_pipeline(),
        "lifetimes": lifetimes,
        "rows": rows,
    }


def main() -> None:
    from kamlib.testing import local_spark_session

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--connect", action="store_true", help="run through Spark Connect")
    parser.add_argument("--no-lifetimes", action="store_true", help="skip the lifetimes anchor")
    args = parser.parse_args()
    started = time.perf_counter()
    spark = local_spark_session(app_name="kamlib-bench-latency", remote=args.connect)
    session_seconds = time.perf_counter() - started
    try:
        result = run(spark, anchor=not args.no_lifetimes)
    finally:
        spark.stop()
    result.update(mode="connect" if args.connect else "classic", session_seconds=session_seconds)
    print_table(
        f"kamlib latency ({result['mode']}, session start {session_seconds:.1f} s)", result["rows"]
    )
    for row in result["rows"]:
        if "first_call_seconds" in row:
            print(
                f"  {row['step']}: first call {row['first_call_seconds']:.2f} s "
                f"({row['first_over_warm']:.1f}x warm), second {row['second_call_seconds']:.2f} s, "
                f"jobs {row['jobs']}"
            )
    emit_json(result)


if __name__ == "__main__":
    main()
