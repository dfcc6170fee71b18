"""Issue 15 benchmark: MRR bridge and cohort retention on accounts x 36 months of MRR, and
next-product recommendations on accounts x 20 products.

Each step is reported as a ratio to the hand-written floor measured in the same run: read the
same parquet + one ``groupBy(account, month)`` sum (what any monthly bridge must do at least).
Target: ``mrr_bridge`` and ``cohort_retention`` <= 1.5x that floor. ``next_products`` (FPGrowth
fit + recommendations) is reported beside its own floor, the baskets
``groupBy(account).agg(collect_set(product))`` every basket miner starts from.

    python benchmarks/bench_recurring.py --accounts 100000 --months 36 --products 20
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


def _basket_frame(spark: Any, accounts: int, products: int) -> Any:
    """(account, product) purchase rows: a popularity gradient plus product pairs bought together.

    Product ``p`` is bought with probability ``0.6 / (1 + p / 4)``; an account with product
    ``2j`` also buys ``2j + 1`` with probability 0.7 (the association the rules must find).
    """
    from pyspark.sql import functions as F

    grid = spark.range(accounts).crossJoin(spark.range(products).withColumnRenamed("id", "p"))
    base = F.rand(3) < F.lit(0.6) / (F.lit(1.0) + F.col("p") / F.lit(4.0))
    bought = grid.withColumn("base", base)
    pair = bought.where(F.col("p") % 2 == 0).select(
        "id", (F.col("p") + 1).alias("p"), F.col("base").alias("lead")
    )
    joined = bought.join(pair, ["id", "p"], "left").where(
        F.col("base") | (F.coalesce("lead", F.lit(False)) & (F.rand(4) < F.lit(0.7)))
    )
    return joined.select(
        F.concat(F.lit("acct"), F.col("id").cast("string")).alias("account_id"),
        F.concat(F.lit("product_"), F.col("p").cast("string")).alias("product"),
    )


def _ratio_row(name: str, seconds: float, base: float, target: float | None) -> dict[str, Any]:
    row: dict[str, Any] = {"step": name, "seconds": seconds, "ratio": seconds / base}
    if target is None:
        row["target"] = "reported"
    else:
        row.update(target=f"<={target:g}x", ok=seconds / base <= target)
    return row


def run_next_products(spark: Any, accounts: int, products: int) -> list[dict[str, Any]]:
    """Time ``next_products`` (FPGrowth fit + top-3 per account) against the baskets floor."""
    from pyspark.sql import functions as F

    from kamlib.growth import next_products

    path = stage_parquet(
        f"growth_baskets_{accounts}_{products}",
        lambda: _basket_frame(spark, accounts, products),
    )
    rows = spark.read.parquet(path)
    n_rows = rows.count()

    def floor() -> None:
        noop(rows.groupBy("account_id").agg(F.collect_set("product").alias("items")))

    timed(floor)  # warm-up
    base = timed(floor, repeat=5)
    seconds = timed(lambda: noop(next_products(rows, min_support=0.05)), repeat=3)
    return [
        {"step": f"floor: baskets, {n_rows:,} rows", "seconds": base},
        _ratio_row("next_products (fit + top 3)", seconds, base, None),
    ]


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
    base = timed(floor, repeat=5)
    rows: list[dict[str, Any]] = [{"step": "floor: groupBy (account, month)", "seconds": base}]
    for name, fn in steps.items():
        rows.append(_ratio_row(name, timed(fn, repeat=5), base, TARGET))
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
    parser.add_argument("--products", type=int, default=20)
    args = parser.parse_args()
    spark = bench_session("kamlib-bench-recurring")
    try:
        result = run(spark, args.accounts, args.months)
        result["rows"] += run_next_products(spark, args.accounts, args.products)
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
