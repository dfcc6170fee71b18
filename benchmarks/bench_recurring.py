"""Issue 15 benchmark: MRR bridge and cohort retention on accounts x 36 months of MRR.

Each step is reported as a ratio to the hand-written floor measured in the same run: read the
same parquet + one ``groupBy(account, month)`` sum (what any monthly bridge must do at least).
Target: ``mrr_bridge`` and ``cohort_retention`` <= 1.5x that floor.

    python benchmarks/bench_recurring.py --accounts 100000 --months 36
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from _common import bench_session, emit_json, noop, print_table, stage_parquet, timed

TARGET = 1.5


def _mrr_frame(spark: Any, accounts: int, months: int) -> Any:
    """Synthetic MRR: one row per (account, month) while subscribed; churn, gaps, expansion."""
    from pyspark.sql import functions as F

    ids = spark.range(accounts * months)
    account = (F.col("id") / F.lit(months)).cast("long")
    m = (F.col("id") % F.lit(months)).cast("int")
    start = (F.abs(F.hash(account)) % F.lit(months)).cast("int")
    level = F.lit(100.0) + (F.abs(F.hash(account, F.lit(1))) % F.lit(5000)).cast("double")
    growth = F.pow(F.lit(1.01), (m - start).cast("double"))
    off = F.rand(15) < F.lit(0.04)
    return ids.select(
        F.concat(F.lit("acct"), account.cast("string")).alias("account_id"),
        F.add_months(F.lit("2022-01-01").cast("date"), m).alias("month"),
        F.when((m >= start) & ~off, F.round(level * growth, 2)).alias("mrr"),
    ).filter(F.col("mrr").isNotNull())


def run(spark: Any, accounts: int, months: int) -> dict[str, Any]:
    from pyspark.sql import functions as F

    from kamlib.recurring import cohort_retention, mrr_bridge

    path = stage_parquet(
        f"recurring_mrr_{accounts}_{months}", lambda: _mrr_frame(spark, accounts, months)
    )
    mrr = spark.read.parquet(path)
    n_rows = mrr.count()

    def floor() -> None:
        noop(mrr.groupBy("account_id", "month").agg(F.sum("mrr").alias("mrr")))

    steps = {
        "mrr_bridge": lambda: noop(mrr_bridge(mrr)),
        "cohort_retention (month)": lambda: noop(
            cohort_retention(mrr, date_col="month", value_col="mrr")
        ),
    }
    timed(floor)  # warm-up
    base = timed(floor, repeat=3)
    rows: list[dict[str, Any]] = [{"step": "floor: groupBy (account, month)", "seconds": base}]
    for name, fn in steps.items():
        seconds = timed(fn, repeat=3)
        rows.append(
            {
                "step": name,
                "seconds": seconds,
                "ratio": seconds / base,
                "target": f"<={TARGET:g}x",
                "ok": seconds / base <= TARGET,
            }
        )
    return {
        "benchmark": "recurring",
        "accounts": accounts,
        "months": months,
        "mrr_rows": n_rows,
        "rows": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--months", type=int, default=36)
    args = parser.parse_args()
    spark = bench_session("kamlib-bench-recurring")
    try:
        result = run(spark, args.accounts, args.months)
    finally:
        spark.stop()
    print_table(
        f"kamlib recurring benchmark: {result['accounts']:,} accounts x {result['months']} "
        f"months, {result['mrr_rows']:,} MRR rows",
        result["rows"],
    )
    emit_json(result)


if __name__ == "__main__":
    main()
