"""Local reference for the cluster tests: the same computations on ``local[2]`` in a separate
process (one SparkContext per JVM, so the cluster session cannot also run local).

Usage: ``python reference.py INPUTS OUT``: writes ``OUT/card`` (``kamlib scorecard``),
``OUT/retention`` (``retention_rates``) and ``OUT/bgnbd.json`` (fitted BG/NBD parameters).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def run(spark, inputs: str, out: str) -> None:
    from kamlib.clv import BetaGeo, rfm_summary
    from kamlib.retention import retention_rates

    tx = spark.read.parquet(f"{inputs}/transactions")
    retention_rates(tx, period="month").write.parquet(f"{out}/retention")
    model = BetaGeo().fit(rfm_summary(tx, observation_end="2026-01-01"))
    Path(out, "bgnbd.json").write_text(json.dumps(dict(model.params)))


def main() -> int:
    from kamlib.cli import main as cli
    from kamlib.testing import local_spark_session

    inputs, out = sys.argv[1], sys.argv[2]
    spark = local_spark_session(app_name="kamlib-cluster-reference")
    try:
        run(spark, inputs, out)
        code = cli(
            [
                "scorecard",
                "--transactions", f"{inputs}/transactions",
                "--surveys", f"{inputs}/surveys",
                "--wallets", f"{inputs}/wallets",
                "--as-of", "2026-01-01",
                "--output", f"{out}/card",
            ]
        )  # fmt: skip
    finally:
        spark.stop()
    return code


if __name__ == "__main__":
    sys.exit(main())
