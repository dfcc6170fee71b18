"""``kamlib stream --format delta``: three Delta tables, replayed batches are no-ops."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

import pytest

import kamlib.streaming.sinks as sinks
from kamlib.cli.stream import run_stream
from kamlib.errors import SchemaError
from kamlib.streaming.sinks import default_app_id, delta_batch_writer, delta_connector_available
from tests.reference.streaming import simulate_order_stream
from tests.test_streaming_cli import _first_run_files, _land, _second_run_files

DELAY = dt.timedelta(days=1)


def _needs_connector(spark: Any) -> None:
    if not delta_connector_available(spark):
        import os

        if os.environ.get("CI") and os.environ.get("KAMLIB_JARS"):
            pytest.fail("the Delta connector must be on the classpath in CI", pytrace=False)
        pytest.skip("the Delta Lake connector is not on this session's classpath")


def _check_delta(spark: Any, out: Path, files: list[list[str]]) -> dict[str, int]:
    ref = simulate_order_stream(files, delay=DELAY)
    orders = spark.read.format("delta").load(str(out / "orders"))
    assert orders.columns == ["event_id", "account_id", "event_time", "amount", "currency"]
    ids = [r.event_id for r in orders.collect()]
    assert len(ids) == len(set(ids)), "an order was written twice"
    assert sorted(ids) == sorted(o["event_id"] for o in ref["kept"])
    quarantine = spark.read.format("delta").load(str(out / "quarantine")).collect()
    assert len(quarantine) == ref["quarantined"]
    rows = spark.read.format("delta").load(str(out / "revenue_daily")).collect()
    revenue = {(r.account_id, r.day): (r.revenue, r.orders) for r in rows}
    assert len(revenue) == len(rows)
    assert sorted(revenue) == sorted(ref["revenue_daily"])
    for key, (amount, n) in ref["revenue_daily"].items():
        assert revenue[key][0] == pytest.approx(amount)
        assert revenue[key][1] == n
    return {"orders": len(ids), "quarantine": len(quarantine), "revenue_rows": len(rows)}


def test_stream_format_delta_with_the_connector(spark: Any, tmp_path: Path) -> None:
    _needs_connector(spark)
    landing, out, chk = tmp_path / "in", tmp_path / "out", tmp_path / "chk"
    landing.mkdir()
    first = _first_run_files()
    for i, (name, lines) in enumerate(first.items()):
        _land(landing, name, lines, age_seconds=300 - 10 * i)
    args = {"input": str(landing), "output": str(out), "checkpoint": str(chk)}
    assert run_stream(**args, available_now=True, format="delta", spark=spark) == 0
    _check_delta(spark, out, list(first.values()))
    second = _second_run_files(first)
    for i, (name, lines) in enumerate(second.items()):
        _land(landing, name, lines, age_seconds=100 - 10 * i)
    assert run_stream(**args, available_now=True, format="delta", spark=spark) == 0
    counts = _check_delta(spark, out, [*first.values(), *second.values()])
    assert counts["quarantine"] == 5
    # Every output commit records the query's app transaction (txnAppId / txnVersion).
    app = default_app_id(str(chk / "orders"))
    assert _txn_versions(out / "orders", f"{app}-valid")
    assert _txn_versions(out / "quarantine", f"{app}-quarantine")
    assert _txn_versions(out / "revenue_daily", default_app_id(str(chk / "revenue_daily")))
    # A rerun with nothing new changes nothing.
    assert run_stream(**args, available_now=True, format="delta", spark=spark) == 0
    assert _check_delta(spark, out, [*first.values(), *second.values()]) == counts


def _txn_versions(table: Path, app_id: str) -> list[int]:
    """The ``txn`` versions that ``app_id`` recorded in a Delta table's log (test-side read)."""
    versions = []
    for entry in sorted((table / "_delta_log").glob("*.json")):
        for line in entry.read_text().splitlines():
            action = json.loads(line)
            if "txn" in action and action["txn"]["appId"] == app_id:
                versions.append(int(action["txn"]["version"]))
    return versions


def test_spark_delta_writer_replay_is_a_no_op(spark: Any, tmp_path: Path) -> None:
    _needs_connector(spark)
    path = str(tmp_path / "t")
    write = delta_batch_writer(path, app_id="app-1", engine="spark")
    batch0 = spark.createDataFrame([("e1", 1.0), ("e2", 2.0)], "event_id string, amount double")
    batch1 = spark.createDataFrame([("e3", 3.0)], "event_id string, amount double")
    write(batch0, 0)
    write(batch1, 1)
    write(batch1, 1)  # replay after a restart: Delta skips (app-1, 1)
    write(batch0, 0)  # an older version: skipped too
    got = sorted(r.event_id for r in spark.read.format("delta").load(path).collect())
    assert got == ["e1", "e2", "e3"]
    delta_batch_writer(path, app_id="app-2", engine="spark")(batch1, 0)  # another query
    assert spark.read.format("delta").load(path).count() == 4


def test_stream_format_delta_falls_back_to_deltalake(
    spark: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    deltalake = pytest.importorskip("deltalake")
    monkeypatch.setattr(sinks, "delta_connector_available", lambda _spark: False)
    landing, out, chk = tmp_path / "in", tmp_path / "out", tmp_path / "chk"
    landing.mkdir()
    first = _first_run_files()
    for i, (name, lines) in enumerate(first.items()):
        _land(landing, name, lines, age_seconds=300 - 10 * i)
    args = {"input": str(landing), "output": str(out), "checkpoint": str(chk)}
    assert run_stream(**args, available_now=True, format="delta", spark=spark) == 0
    ref = simulate_order_stream(list(first.values()), delay=DELAY)
    orders = deltalake.DeltaTable(str(out / "orders")).to_pyarrow_table()
    assert sorted(orders.column("event_id").to_pylist()) == sorted(
        o["event_id"] for o in ref["kept"]
    )
    table = deltalake.DeltaTable(str(out / "orders"))
    assert table.transaction_version(default_app_id(str(chk / "orders")) + "-valid") is not None
    quarantine = deltalake.DeltaTable(str(out / "quarantine")).to_pyarrow_table()
    assert quarantine.num_rows == ref["quarantined"]
    revenue = deltalake.DeltaTable(str(out / "revenue_daily")).to_pyarrow_table().to_pylist()
    got = {(r["account_id"], r["day"]): (r["revenue"], r["orders"]) for r in revenue}
    assert sorted(got) == sorted(ref["revenue_daily"])
    for key, (amount, n) in ref["revenue_daily"].items():
        assert got[key][0] == pytest.approx(amount)
        assert got[key][1] == n


def test_stream_format_delta_without_any_delta_is_one_line(
    spark: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.setattr(sinks, "delta_connector_available", lambda _spark: False)
    monkeypatch.setitem(sys.modules, "deltalake", None)  # import deltalake -> ImportError
    (tmp_path / "in").mkdir()
    with pytest.raises(SchemaError) as info:
        run_stream(
            input=str(tmp_path / "in"),
            output=str(tmp_path / "out"),
            checkpoint=str(tmp_path / "chk"),
            available_now=True,
            format="delta",
            spark=spark,
        )
    message = str(info.value)
    assert len(message.splitlines()) == 1
    assert "--format delta" in message
    assert "delta-spark" in message
    assert "pip install deltalake" in message
    assert not (tmp_path / "out").exists()  # nothing half-written
    assert not (tmp_path / "chk").exists()
