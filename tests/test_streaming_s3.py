"""``kamlib stream`` with outputs and checkpoints on ``s3a://`` (moto S3 server on loopback).

The input files land on local disk; every output and checkpoint lives in a bucket of the
session's S3 server, written by Spark's s3a file system only. Numbers are checked against
the pure-Python reference of the local tests (``tests.reference.streaming``).
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from kamlib.streaming.cli import run_stream
from kamlib.streaming.runner import StreamReport, run_order_stream
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


def _run_until_first_commit(spark: Any, s3a: S3Bucket, **kwargs: Any) -> StreamReport:
    """Run the continuous pipeline in a thread; stop every query once batch 0 committed."""
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["report"] = run_order_stream(spark, handle_signals=False, **kwargs)
        except BaseException as exc:  # surfaced in the test thread
            result["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    deadline = time.monotonic() + 600
    try:
        while time.monotonic() < deadline and thread.is_alive():
            if s3a.keys("crash/chk/orders/commits/0"):
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"batch 0 was not committed: {result.get('error')!r}")
    finally:
        # Stop mid-run: the queries are interrupted wherever they are (the next batch of
        # orders, quarantine or revenue_daily may be half written).
        while thread.is_alive():
            for query in spark.streams.active:
                query.stop()
            thread.join(timeout=2)
    if "error" in result:
        raise result["error"]
    report: StreamReport = result["report"]
    return report


def test_stream_s3a_stop_mid_run_and_restart_exactly_once(
    spark: Any, s3a: S3Bucket, tmp_path: Path
) -> None:
    landing = tmp_path / "in"
    landing.mkdir()
    first = _first_run_files()
    texts = [
        _land(landing, name, lines, age_seconds=300 - 10 * i)
        for i, (name, lines) in enumerate(first.items())
    ]
    out, chk = s3a.uri("crash/out"), s3a.uri("crash/chk")
    common = {
        "input": str(landing),
        "output": out,
        "checkpoint": chk,
        "max_files_per_trigger": 1,
        "shuffle_partitions": 2,
    }
    # Run 1: continuous, one file per micro-batch, stopped as soon as batch 0 committed.
    _run_until_first_commit(spark, s3a, processing_time="1 second", **common)
    # More files (duplicates, malformed and late events) land while the pipeline is down.
    second = _second_run_files(first)
    texts += [
        _land(landing, name, lines, age_seconds=100 - 10 * i)
        for i, (name, lines) in enumerate(second.items())
    ]
    # Run 2: restart from the checkpoint on s3a and drain.
    run_order_stream(spark, available_now=True, **common)
    counts = _check(spark, out, [*first.values(), *second.values()])
    ref = simulate_order_stream([*first.values(), *second.values()], delay=DELAY)
    total = count_lines(texts)
    assert counts["orders"] + counts["quarantine"] + len(ref["late"]) + ref["duplicates"] == total
    # Run 3: nothing new, nothing changes.
    run_order_stream(spark, available_now=True, **common)
    assert _check(spark, out, [*first.values(), *second.values()]) == counts


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
