"""``kamlib stream`` with outputs and checkpoints on ``s3a://`` (moto S3 server on loopback).

The input files land on local disk; every output and checkpoint lives in a bucket of the
session's S3 server, written by Spark's s3a file system only. Numbers are checked against
the pure-Python reference of the local tests (``tests.reference.streaming``).
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

import pytest

from kamlib.cli.stream import run_stream
from kamlib.streaming.runner import run_order_stream
from tests.reference.streaming import count_lines, simulate_order_stream
from tests.services.s3 import S3Bucket
from tests.test_streaming_cli import _first_run_files, _land, _second_run_files

DELAY = dt.timedelta(days=1)


def _check(spark: Any, out: str, files: list[list[str]]) -> dict[str, int]:
    """Outputs under ``out`` equal the reference: each order once, each malformed line once."""
    ref = simulate_order_stream(files, delay=DELAY)
    orders_df = spark.read.parquet(f"{out}/orders")
    assert orders_df.columns == ["event_id", "account_id", "event_time", "amount", "currency"]
    ids = [r.event_id for r in orders_df.collect()]
    assert len(ids) == len(set(ids)), "an order was written twice"
    assert sorted(ids) == sorted(o["event_id"] for o in ref["kept"])
    quarantine = spark.read.parquet(f"{out}/quarantine").collect()
    assert len(quarantine) == ref["quarantined"]
    assert len({(r.file, r.offset) for r in quarantine}) == len(quarantine)
    revenue_rows = spark.read.parquet(f"{out}/revenue_daily").collect()
    revenue = {(r.account_id, r.day): (r.revenue, r.orders) for r in revenue_rows}
    assert len(revenue) == len(revenue_rows), "a revenue day was written twice"
    assert sorted(revenue) == sorted(ref["revenue_daily"])
    for key, (amount, n) in ref["revenue_daily"].items():
        assert revenue[key][0] == pytest.approx(amount)
        assert revenue[key][1] == n
    return {"orders": len(ids), "quarantine": len(quarantine), "revenue_rows": len(revenue)}


def test_stream_available_now_to_s3a(spark: Any, s3a: S3Bucket, tmp_path: Path) -> None:
    landing = tmp_path / "in"
    landing.mkdir()
    files = _first_run_files()
    for i, (name, lines) in enumerate(files.items()):
        _land(landing, name, lines, age_seconds=300 - 10 * i)
    out, chk = s3a.uri("kam/out"), s3a.uri("kam/chk")
    code = run_stream(
        input=str(landing),
        output=out,
        checkpoint=chk,
        available_now=True,
        shuffle_partitions=2,
        spark=spark,
    )
    assert code == 0
    counts = _check(spark, out, list(files.values()))
    assert counts["quarantine"] == 2
    keys = s3a.keys("kam/")
    assert any(k.startswith("kam/out/orders/_spark_metadata/") for k in keys)
    assert any(k.startswith("kam/chk/orders/commits/") for k in keys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]  # nothing written locally


def _submit_args(s3a: S3Bucket) -> str:
    """``PYSPARK_SUBMIT_ARGS`` giving a new process the connector jars and the s3a settings."""
    import os

    from tests.services.s3 import s3a_spark_conf

    jars = os.path.join(os.environ["KAMLIB_JARS"], "spark", "*")
    conf = " ".join(f"--conf {k}={v}" for k, v in s3a_spark_conf(s3a.server.endpoint).items())
    return f"--driver-class-path {jars} {conf} pyspark-shell"


def test_stream_s3a_sigkill_and_restart_exactly_once(
    spark: Any, s3a: S3Bucket, tmp_path: Path
) -> None:
    import os
    import signal
    import subprocess
    import sys

    landing = tmp_path / "in"
    landing.mkdir()
    first = _first_run_files()
    texts = [
        _land(landing, name, lines, age_seconds=300 - 10 * i)
        for i, (name, lines) in enumerate(first.items())
    ]
    out, chk = s3a.uri("kill/out"), s3a.uri("kill/chk")
    argv = [
        sys.executable, "-m", "kamlib", "stream", "--input", str(landing), "--output", out,
        "--checkpoint", chk, "--max-files-per-trigger", "1", "--trigger-interval", "1 second",
        "--shuffle-partitions", "2",
    ]  # fmt: skip
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_SUBMIT_ARGS": _submit_args(s3a)}
    log = tmp_path / "run1.log"
    # Run 1: the real CLI in its own process group, SIGKILLed (JVM included) right after
    # batch 0 of orders committed, i.e. in the middle of batch 1 / the other queries.
    with open(log, "wb") as handle:
        proc = subprocess.Popen(
            argv, stdout=handle, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        try:
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline and proc.poll() is None:
                if s3a.keys("kill/chk/orders/commits/0"):
                    break
                time.sleep(0.3)
            assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
            assert s3a.keys("kill/chk/orders/commits/0"), "batch 0 never committed"
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=60)
    second = _second_run_files(first)
    texts += [
        _land(landing, name, lines, age_seconds=100 - 10 * i)
        for i, (name, lines) in enumerate(second.items())
    ]
    # Run 2: restart from the s3a checkpoint in this process and drain.
    run_order_stream(
        spark,
        input=str(landing),
        output=out,
        checkpoint=chk,
        available_now=True,
        max_files_per_trigger=1,
        shuffle_partitions=2,
    )
    files = [*first.values(), *second.values()]
    counts = _check(spark, out, files)
    ref = simulate_order_stream(files, delay=DELAY)
    assert counts["orders"] + counts["quarantine"] + len(ref["late"]) + ref["duplicates"] == (
        count_lines(texts)
    )


def test_stream_format_delta_to_s3a(spark: Any, s3a: S3Bucket, tmp_path: Path) -> None:
    from kamlib.streaming.sinks import delta_connector_available

    if not delta_connector_available(spark):
        pytest.skip("the Delta Lake connector is not on this session's classpath")
    landing = tmp_path / "in"
    landing.mkdir()
    files = _first_run_files()
    for i, (name, lines) in enumerate(files.items()):
        _land(landing, name, lines, age_seconds=300 - 10 * i)
    out, chk = s3a.uri("delta/out"), s3a.uri("delta/chk")
    args = {"input": str(landing), "output": out, "checkpoint": chk, "shuffle_partitions": 2}
    assert run_stream(**args, available_now=True, format="delta", spark=spark) == 0
    assert run_stream(**args, available_now=True, format="delta", spark=spark) == 0  # no-op
    ref = simulate_order_stream(list(files.values()), delay=DELAY)
    ids = [r.event_id for r in spark.read.format("delta").load(f"{out}/orders").collect()]
    assert sorted(ids) == sorted(o["event_id"] for o in ref["kept"])
    assert spark.read.format("delta").load(f"{out}/quarantine").count() == ref["quarantined"]
    rows = spark.read.format("delta").load(f"{out}/revenue_daily").collect()
    got = {(r.account_id, r.day): (r.revenue, r.orders) for r in rows}
    assert len(got) == len(rows)
    assert sorted(got) == sorted(ref["revenue_daily"])
    for key, (amount, n) in ref["revenue_daily"].items():
        assert got[key][0] == pytest.approx(amount)
        assert got[key][1] == n
    assert any(k.startswith("delta/out/orders/_delta_log/") for k in s3a.keys("delta/"))
