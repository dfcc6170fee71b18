"""kamlib on a real standalone cluster (master + 2 workers on 127.0.0.1), ``-m cluster``.

Run with ``pytest -m cluster --kamlib-spark=cluster`` (``make pytest-cluster``, part of
``make test``): the session fixture starts the cluster, every test here runs on it, and the
numbers are compared with the same computations on ``local[2]`` in a separate process, and
with ``spark-submit`` of the scorecard job to the same cluster.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

import kamlib

pytestmark = pytest.mark.cluster

SRC = Path(kamlib.__file__).resolve().parents[1]
ROOT = Path(__file__).resolve().parents[1]
AS_OF = "2026-01-01"
SPARK_CONF = {
    "spark.sql.shuffle.partitions": "7",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.ansi.enabled": "true",
    "spark.ui.enabled": "false",
}


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONSTARTUP"}
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), str(ROOT)])
    env["PYSPARK_PYTHON"] = sys.executable
    env["PYSPARK_DRIVER_PYTHON"] = sys.executable
    env["SPARK_LOCAL_IP"] = "127.0.0.1"
    return env


@pytest.fixture(scope="module")
def cluster_inputs(spark, spark_cluster, tmp_path_factory):
    """Synthetic inputs, written by the cluster's executors."""
    from kamlib.datasets import synthetic_surveys, synthetic_transactions, synthetic_wallets

    root = tmp_path_factory.mktemp("cluster_inputs")
    n = 200
    synthetic_transactions(spark, n, seed=11).write.parquet(str(root / "transactions"))
    synthetic_surveys(spark, n, seed=11).write.parquet(str(root / "surveys"))
    synthetic_wallets(spark, n, seed=11).write.parquet(str(root / "wallets"))
    return root


@pytest.fixture(scope="module")
def local_reference(cluster_inputs, tmp_path_factory):
    """The same job on local[2] in another process (scorecard, retention, BG/NBD params)."""
    out = tmp_path_factory.mktemp("local_reference")
    script = ROOT / "tests" / "cluster_jobs" / "reference.py"
    done = subprocess.run(
        [sys.executable, str(script), str(cluster_inputs), str(out)],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def _rows(df, key: str) -> dict:
    return {r[key]: r.asDict() for r in df.collect()}


def _assert_same(left: dict, right: dict) -> None:
    assert left.keys() == right.keys()
    for key, row in left.items():
        other = right[key]
        assert row.keys() == other.keys()
        for column, value in row.items():
            want = other[column]
            if isinstance(value, float) and isinstance(want, float):
                if math.isnan(value) or math.isnan(want):
                    assert math.isnan(value), (key, column)
                    assert math.isnan(want), (key, column)
                else:
                    assert value == pytest.approx(want, rel=1e-6, abs=1e-9), (key, column)
            else:
                assert value == want, (key, column)


def test_session_runs_on_the_cluster(spark, spark_cluster):
    assert spark.conf.get("spark.master") == spark_cluster.master_url
    assert spark_cluster.alive_workers() == 2
    apps = spark_cluster.status()["activeapps"]
    assert [app["name"] for app in apps] == ["kamlib-tests"]
    assert apps[0]["cores"] == 2
    assert spark.range(1000).repartition(4).selectExpr("sum(id)").first()[0] == 499500


def test_retention_and_clv_fit_equal_local(spark, cluster_inputs, local_reference):
    from kamlib.clv import BetaGeo, rfm_summary
    from kamlib.retention import retention_rates

    tx = spark.read.parquet(str(cluster_inputs / "transactions"))
    cluster = _rows(retention_rates(tx, period="month"), "period")
    local = _rows(spark.read.parquet(str(local_reference / "retention")), "period")
    assert len(cluster) > 6
    _assert_same(cluster, local)
    params = BetaGeo().fit(rfm_summary(tx, observation_end=AS_OF)).params
    reference = json.loads((local_reference / "bgnbd.json").read_text())
    assert params.keys() == reference.keys()
    for name, value in params.items():
        assert value == pytest.approx(reference[name], rel=1e-6), name


def test_scorecard_in_process_and_spark_submit_equal_local(
    spark, spark_cluster, cluster_inputs, local_reference, tmp_path
):
    from kamlib.cli import EXIT_OK, main

    args = [
        "scorecard",
        "--transactions", str(cluster_inputs / "transactions"),
        "--surveys", str(cluster_inputs / "surveys"),
        "--wallets", str(cluster_inputs / "wallets"),
        "--as-of", AS_OF,
    ]  # fmt: skip
    # 1) in this process, on the cluster session
    assert main([*args, "--output", str(tmp_path / "inproc")]) == EXIT_OK
    # 2) spark-submit of the job to the same cluster (a second application, 2 more cores)
    submit = [os.path.join(spark_cluster.spark_home, "bin", "spark-submit")]
    submit += ["--master", spark_cluster.master_url, "--name", "kamlib-scorecard-submit"]
    for key, value in {
        **SPARK_CONF,
        "spark.cores.max": "2",
        "spark.executor.memory": "768m",
        "spark.driver.host": "127.0.0.1",
    }.items():
        submit += ["--conf", f"{key}={value}"]
    submit += [str(SRC / "kamlib" / "__main__.py"), *args, "--output", str(tmp_path / "submit")]
    env = {**_env(), "SPARK_HOME": spark_cluster.spark_home}
    done = subprocess.run(submit, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "using the spark-submit session" in done.stdout + done.stderr
    local = _rows(spark.read.parquet(str(local_reference / "card")), "account_id")
    assert len(local) == 200
    for name in ("inproc", "submit"):
        _assert_same(_rows(spark.read.parquet(str(tmp_path / name)), "account_id"), local)


def test_delta_merge_on_the_cluster(spark, spark_cluster, tmp_path):
    """The Delta connector on the executors (jars from KAMLIB_JARS on extraClassPath)."""
    from pyspark.sql import functions as F

    from kamlib.cli.scorecard import write_table
    from kamlib.streaming.sinks import delta_connector_available

    if not delta_connector_available(spark):
        if os.environ.get("CI"):
            pytest.fail("the Delta connector is not on the cluster session (KAMLIB_JARS)")
        pytest.skip("needs the Spark Delta connector (KAMLIB_JARS)")
    db = f"kamlib_cluster_{os.getpid()}"
    spark.sql(f"CREATE DATABASE {db} LOCATION '{(tmp_path / 'wh').as_uri()}'")
    try:
        name = f"{db}.card"

        def day(n: int, day: str, scale: float):
            return (
                spark.range(n)
                .select(
                    F.format_string("a%03d", "id").alias("account_id"),
                    (F.col("id") * scale).cast("double").alias("revenue"),
                    F.lit(day).cast("timestamp").alias("as_of"),
                )
                .repartition(4)
            )

        d1, d2 = dt.datetime(2026, 1, 1), dt.datetime(2026, 1, 2)
        write_table(day(100, "2026-01-01", 1.0), name, as_of=d1)
        write_table(day(50, "2026-01-02", 1.0), name, as_of=d2)
        write_table(day(80, "2026-01-01", 2.0), name, as_of=d1)  # rerun of day 1
        counts = {
            r["as_of"].date().isoformat(): (r["n"], r["total"])
            for r in spark.table(name)
            .groupBy("as_of")
            .agg(F.count("*").alias("n"), F.sum("revenue").alias("total"))
            .collect()
        }
        assert counts == {
            "2026-01-01": (80, 2.0 * sum(range(80))),
            "2026-01-02": (50, float(sum(range(50)))),
        }
    finally:
        spark.sql(f"DROP DATABASE IF EXISTS {db} CASCADE")


def test_kamlib_stream_with_master_on_the_cluster(spark, spark_cluster, tmp_path):
    """``kamlib stream --master spark://...`` as its own application on the cluster."""
    from tests.reference.streaming import simulate_order_stream

    def event(eid: str, account: str, when: dt.datetime, amount: float) -> str:
        return json.dumps(
            {
                "event_id": eid,
                "account_id": account,
                "event_time": when.strftime("%Y-%m-%dT%H:%M:%S"),
                "amount": amount,
            }
        )

    days = [dt.datetime(2024, 3, d) for d in (1, 2, 3, 5)]
    lines = [
        event(f"e{d}-{i}", f"a{i % 4}", day + dt.timedelta(minutes=40 * i), 10.0 + d + 0.5 * i)
        for d, day in enumerate(days)
        for i in range(30)
    ]
    lines += [lines[3], lines[40], "{broken", '{"event_id": "x"}', '{"a": 1} trailing']
    landing, out, chk = tmp_path / "in", tmp_path / "out", tmp_path / "chk"
    landing.mkdir()
    for part in range(3):  # three files, three partitions of the file source
        (landing / f"orders-{part}.jsonl").write_text("\n".join(lines[part::3]) + "\n")
    command = [sys.executable, "-m", "kamlib", "stream", "--master", spark_cluster.master_url]
    command += ["--input", str(landing), "--output", str(out), "--checkpoint", str(chk)]
    command += ["--available-now", "--shuffle-partitions", "3"]
    done = subprocess.run(
        command,
        env={**_env(), "SPARK_HOME": spark_cluster.spark_home},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    ref = simulate_order_stream([lines], delay=dt.timedelta(days=1))
    orders = spark.read.parquet(str(out / "orders")).collect()
    assert sorted(r.event_id for r in orders) == sorted(o["event_id"] for o in ref["kept"])
    quarantine = spark.read.parquet(str(out / "quarantine")).collect()
    assert sorted(r.raw for r in quarantine) == sorted(lines[-3:])
    revenue = spark.read.parquet(str(out / "revenue_daily")).collect()
    got = {(r.account_id, r.day): (r.revenue, r.orders) for r in revenue}
    assert got.keys() == ref["revenue_daily"].keys()
    assert len(got) >= 12  # four accounts on the three closed days
    for key, (amount, n) in ref["revenue_daily"].items():
        assert got[key] == (pytest.approx(amount), n)
