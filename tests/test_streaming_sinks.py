"""Sinks: checkpoints required, Delta via deltalake (app-transaction idempotency), Kafka."""

from __future__ import annotations

import json
import pickle
from typing import Any

import pytest

from kamlib.errors import ConnectorUnavailableError, SchemaError
from kamlib.schema import ORDER_EVENT
from kamlib.streaming import fixture_source, kafka_sink
from kamlib.streaming.sinks import (
    DELTA_PACKAGE,
    batch_committed,
    default_app_id,
    delta_batch_writer,
    delta_connector_available,
    delta_sink,
    idempotent_writer,
    parquet_batch_writer,
    parquet_sink,
    write_batch_files,
)

deltalake = pytest.importorskip("deltalake")


def _orders(n: int, start: int = 0) -> list[str]:
    return [
        json.dumps(
            {
                "event_id": f"e{i}",
                "account_id": f"a{i % 3}",
                "event_time": f"2024-01-{1 + i % 28:02d}T10:00:00",
                "amount": float(i),
            }
        )
        for i in range(start, start + n)
    ]


def test_every_sink_requires_a_checkpoint(spark: Any, tmp_path: Any) -> None:
    df = fixture_source(spark, ["x"])
    for call in (
        lambda: parquet_sink(df, str(tmp_path / "o"), checkpoint=""),
        lambda: delta_sink(df, str(tmp_path / "d"), checkpoint=None),  # type: ignore[arg-type]
        lambda: kafka_sink(df, bootstrap_servers="b:1", topic="t", checkpoint=" "),
    ):
        with pytest.raises(SchemaError, match="checkpoint= is required"):
            call()


def test_deltalake_writer_skips_replayed_batches(spark: Any, tmp_path: Any) -> None:
    path = str(tmp_path / "delta")
    write = delta_batch_writer(path, app_id="q-1")
    pickle.dumps(write)  # foreachBatch functions must pickle (Spark Connect)
    batch0 = spark.createDataFrame([("e1", 1.0), ("e2", 2.0)], "event_id string, amount double")
    batch1 = spark.createDataFrame([("e3", 3.0)], "event_id string, amount double")
    write(batch0, 0)
    write(batch1, 1)
    write(batch1, 1)  # replay after a restart: skipped
    write(batch0, 0)  # an older batch id: skipped
    table = deltalake.DeltaTable(path)
    assert table.transaction_version("q-1") == 1
    assert sorted(table.to_pyarrow_table().column("event_id").to_pylist()) == ["e1", "e2", "e3"]
    # Another query (app id) writing to the same table is independent.
    delta_batch_writer(path, app_id="q-2")(batch1, 0)
    assert deltalake.DeltaTable(path).to_pyarrow_table().num_rows == 4


def test_deltalake_upsert_by_key(spark: Any, tmp_path: Any) -> None:
    path = str(tmp_path / "delta_upsert")
    upsert = delta_batch_writer(path, app_id="u", merge_keys="account_id")
    schema = "account_id string, revenue double"
    upsert(spark.createDataFrame([("a", 1.0), ("b", 2.0)], schema), 0)
    upsert(spark.createDataFrame([("a", 5.0), ("c", 3.0)], schema), 1)
    upsert(spark.createDataFrame([("a", 99.0)], schema), 1)  # replay: skipped
    rows = deltalake.DeltaTable(path).to_pyarrow_table().to_pylist()
    assert sorted((r["account_id"], r["revenue"]) for r in rows) == [
        ("a", 5.0),
        ("b", 2.0),
        ("c", 3.0),
    ]


@pytest.mark.connect
def test_delta_sink_streams_through_deltalake_and_restarts(spark: Any, tmp_path: Any) -> None:
    path, chk = str(tmp_path / "delta"), str(tmp_path / "chk")
    source = fixture_source(spark, _orders(5), max_records_per_batch=2)
    q = delta_sink(
        source.selectExpr("CAST(value AS STRING) AS value", "offset"),
        path,
        checkpoint=chk,
        available_now=True,
        engine="deltalake",
    )
    q.awaitTermination()
    table = deltalake.DeltaTable(path)
    assert table.transaction_version(default_app_id(chk)) == 2  # batches 0, 1, 2
    assert sorted(table.to_pyarrow_table().column("offset").to_pylist()) == [0, 1, 2, 3, 4]
    # A restart from the checkpoint with more records appends only the new ones.
    more = fixture_source(spark, _orders(7), max_records_per_batch=2)
    q2 = delta_sink(
        more.selectExpr("CAST(value AS STRING) AS value", "offset"),
        path,
        checkpoint=chk,
        available_now=True,
        engine="deltalake",
    )
    q2.awaitTermination()
    offsets = deltalake.DeltaTable(path).to_pyarrow_table().column("offset").to_pylist()
    assert sorted(offsets) == list(range(7))


@pytest.mark.connect
def test_delta_sink_spark_engine_names_the_package(spark: Any, tmp_path: Any) -> None:
    if delta_connector_available(spark):
        pytest.skip("the Delta connector is on this session's classpath (the Connect run has none)")
    df = fixture_source(spark, ["x"])
    with pytest.raises(ConnectorUnavailableError, match=DELTA_PACKAGE.replace(".", r"\.")):
        delta_sink(df, str(tmp_path / "d"), checkpoint=str(tmp_path / "c"), engine="spark")


@pytest.mark.connect
def test_kafka_sink_missing_connector(spark: Any, tmp_path: Any) -> None:
    _skip_if_kafka_connector(spark)
    df = fixture_source(spark, ["x"]).select("value")
    with pytest.raises(ConnectorUnavailableError) as info:
        kafka_sink(
            df,
            bootstrap_servers="localhost:9092",
            topic="out",
            checkpoint=str(tmp_path / "c"),
            key_col=None,
            options={"kafka.sasl.jaas.config": "password='hunter2'"},
        )
    assert f"spark-sql-kafka-0-10_2.13:{spark.version}" in str(info.value)
    assert "hunter2" not in str(info.value)


def _skip_if_kafka_connector(spark: Any) -> None:
    from tests.services import kafka_on_classpath

    if kafka_on_classpath(spark):
        pytest.skip("the Kafka connector is on this session's classpath (the Connect run has none)")


def test_parquet_batch_writer_and_idempotent_writer(spark: Any, tmp_path: Any) -> None:
    out = str(tmp_path / "pq")
    write = parquet_batch_writer(out)
    pickle.dumps(write)
    batch = spark.createDataFrame([(1,), (2,)], "x int")
    write(batch, 0)
    write(batch, 0)  # replay: dynamic partition overwrite replaces its own partition
    write(spark.createDataFrame([(3,)], "x int"), 1)
    rows = spark.read.parquet(out).collect()
    assert sorted((r.x, r.batch_id) for r in rows) == [(1, 0), (2, 0), (3, 1)]
    assert spark.read.parquet(out).columns == ["x", "batch_id"]  # the batch partition column

    calls: list[int] = []
    markers = str(tmp_path / "markers")
    wrapped = idempotent_writer(_Recorder(calls), marker_dir=markers)
    wrapped(batch, 5)
    wrapped(batch, 5)
    wrapped(batch, 6)
    assert calls == [5, 6]
    # Markers are a parquet dataset written by Spark (any Hadoop file system), one per batch.
    assert sorted(r.batch_id for r in spark.read.parquet(markers).collect()) == [5, 6]
    assert batch_committed(spark, markers, 6)
    assert not batch_committed(spark, markers, 7)
    assert not batch_committed(spark, str(tmp_path / "no-markers"), 0)


def test_write_batch_files_rejects_a_batch_id_column(spark: Any, tmp_path: Any) -> None:
    df = spark.createDataFrame([(1,)], "batch_id int")
    with pytest.raises(SchemaError, match="batch_id"):
        write_batch_files(df, str(tmp_path / "x"), 0)


def test_default_app_id_is_stable_and_location_based(tmp_path: Any) -> None:
    local = str(tmp_path / "chk")
    assert default_app_id(local) == default_app_id(f"file:{local}")
    assert default_app_id("s3a://b/chk/") == default_app_id("s3a://b/chk")
    assert default_app_id("s3a://b/chk") != default_app_id("s3a://b/chk2")
    assert default_app_id(local).startswith("kamlib-")


class _Recorder:
    def __init__(self, calls: list[int]) -> None:
        self.calls = calls

    def __call__(self, batch_df: Any, batch_id: int) -> None:
        self.calls.append(batch_id)


def test_order_schema_is_the_contract() -> None:
    assert ORDER_EVENT.fieldNames() == [
        "event_id",
        "account_id",
        "event_time",
        "amount",
        "currency",
    ]
