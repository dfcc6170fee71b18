"""Sources: Kafka option builder and connector errors (no broker), file source, fixture source."""

from __future__ import annotations

import datetime as dt
import os
import traceback
import uuid
from typing import Any

import pytest

from kamlib.errors import ConnectorUnavailableError, SchemaError
from kamlib.streaming import KafkaOptions, file_source, fixture_source, kafka_options, kafka_source
from kamlib.streaming.sinks import parquet_sink
from kamlib.streaming.sources import RECORD_COLUMNS, is_secret_option
from tests.reference.streaming import count_lines

SECRET = "s3cr3t-Pa55word"
JAAS = (
    "org.apache.kafka.common.security.plain.PlainLoginModule required "
    f'username="u" password="{SECRET}";'
)
RECORD_TYPES = [(name, kind) for name, kind in RECORD_COLUMNS]


def _run_to_memory(df: Any, checkpoint: str) -> list[Any]:
    name = "t_" + uuid.uuid4().hex[:8]
    q = (
        df.writeStream.format("memory")
        .queryName(name)
        .option("checkpointLocation", checkpoint)
        .trigger(availableNow=True)
        .start()
    )
    q.awaitTermination()
    spark = df.sparkSession
    rows = spark.sql(f"select * from {name}").collect()
    return list(rows)


# ------------------------------------------------------------------------------------ kafka


def test_secret_option_names() -> None:
    for name in (
        "kafka.sasl.jaas.config",
        "kafka.ssl.keystore.password",
        "kafka.ssl.truststore.password",
        "kafka.ssl.key.password",
        "kafka.sasl.oauthbearer.token.endpoint.url.token",
        "api_secret",
    ):
        assert is_secret_option(name), name
    for name in ("subscribe", "kafka.bootstrap.servers", "maxOffsetsPerTrigger"):
        assert not is_secret_option(name), name


def test_kafka_option_builder() -> None:
    opts = kafka_options(
        bootstrap_servers=["b1:9092", "b2:9092"],
        topics=["orders", "refunds"],
        starting_offsets="earliest",
        options={
            "kafka.security.protocol": "SASL_SSL",
            "kafka.sasl.jaas.config": JAAS,
            "kafka.ssl.truststore.password": SECRET,
            "maxOffsetsPerTrigger": 1000,
        },
    )
    assert isinstance(opts, KafkaOptions)
    assert opts["kafka.bootstrap.servers"] == "b1:9092,b2:9092"
    assert opts["subscribe"] == "orders,refunds"
    assert opts["startingOffsets"] == "earliest"
    assert opts["maxOffsetsPerTrigger"] == "1000"
    assert opts["kafka.sasl.jaas.config"] == JAAS  # the real value is passed to Spark
    for text in (repr(opts), str(opts), str(opts.redacted()), f"{opts}"):
        assert SECRET not in text
        assert "PlainLoginModule" not in text
        assert "redacted" in text
        assert "SASL_SSL" in text
    assert opts.scrub(f"failed with {JAAS}") == "failed with *****(redacted)"
    pattern = kafka_options(bootstrap_servers="b:1", topics="pattern:orders-.*")
    assert pattern["subscribePattern"] == "orders-.*"
    assert "subscribe" not in pattern


def test_kafka_option_builder_rejects_bad_input() -> None:
    with pytest.raises(SchemaError, match="bootstrap_servers"):
        kafka_options(bootstrap_servers="", topics="t")
    with pytest.raises(SchemaError, match="topics"):
        kafka_options(bootstrap_servers="b:1", topics=[])
    with pytest.raises(SchemaError, match="'subscribe'"):
        kafka_options(bootstrap_servers="b:1", topics="t", options={"subscribe": "x"})


@pytest.mark.connect
@pytest.mark.connect
def test_kafka_source_missing_connector_names_package_and_hides_secrets(spark: Any) -> None:
    from tests.services import kafka_on_classpath

    if kafka_on_classpath(spark):
        pytest.skip("the Kafka connector is on this session's classpath (the Connect run has none)")
    with pytest.raises(ConnectorUnavailableError) as info:
        kafka_source(
            spark,
            bootstrap_servers="localhost:9092",
            topics="orders",
            options={"kafka.sasl.jaas.config": JAAS, "kafka.ssl.keystore.password": SECRET},
        )
    exc = info.value
    coordinate = f"org.apache.spark:spark-sql-kafka-0-10_2.13:{spark.version}"
    assert coordinate in str(exc)
    text = "".join(traceback.format_exception(exc))
    assert SECRET not in text
    assert SECRET not in repr(exc)
    assert exc.__cause__ is None
    assert exc.__context__ is None


# ------------------------------------------------------------------------------------- file


@pytest.mark.connect
def test_file_source_one_record_per_line(spark: Any, tmp_path: Any) -> None:
    landing = tmp_path / "in"
    landing.mkdir()
    texts = {
        "a.jsonl": '{"n": 1}\n{"n": 2}\n\n{"n": 4}\n',  # blank line is a record
        "b.jsonl": '{"n": 5}\r\n{"n": 6}',  # CRLF, no final newline
        "c.jsonl": "",
    }
    mtime = dt.datetime(2024, 6, 1, 12, 0, tzinfo=dt.timezone.utc).timestamp()
    for name, text in texts.items():
        path = landing / name
        path.write_text(text)
        os.utime(path, (mtime, mtime))
    df = file_source(spark, str(landing), topic="orders")
    schema = {f.name: f.dataType.simpleString() for f in df.schema.fields}
    for name, kind in RECORD_TYPES:
        assert schema[name] == kind, (name, schema[name])
    assert df.columns[:6] == [name for name, _ in RECORD_TYPES]
    assert "file" in df.columns
    rows = _run_to_memory(df, str(tmp_path / "chk"))
    assert len(rows) == count_lines(texts.values()) == 6
    got = {(os.path.basename(r.file), r.offset): bytes(r.value).decode() for r in rows}
    assert got == {
        ("a.jsonl", 0): '{"n": 1}',
        ("a.jsonl", 1): '{"n": 2}',
        ("a.jsonl", 2): "",
        ("a.jsonl", 3): '{"n": 4}',
        ("b.jsonl", 0): '{"n": 5}',
        ("b.jsonl", 1): '{"n": 6}',
    }
    for r in rows:
        assert r.topic == "orders"
        assert r.partition >= 0
        assert bytes(r.key).decode() == r.file
        assert r.timestamp == dt.datetime(2024, 6, 1, 12, 0)
    assert len({r.partition for r in rows}) == 2  # one per file


def test_file_source_validates_arguments(spark: Any) -> None:
    with pytest.raises(SchemaError, match="path="):
        file_source(spark, "")
    with pytest.raises(SchemaError, match="max_files_per_trigger"):
        file_source(spark, "/tmp", max_files_per_trigger=0)


# ---------------------------------------------------------------------------------- fixture


def test_fixture_source_replays_deterministically(spark: Any, tmp_path: Any) -> None:
    records: list[Any] = [
        '{"a": 1}',
        b"\x00\x01",
        None,
        {"value": "x", "key": "k1", "partition": 2, "timestamp": "2024-02-01T10:00:00"},
        {"value": "y", "topic": "other"},
    ]
    df = fixture_source(spark, records, topic="orders", max_records_per_batch=2)
    assert df.isStreaming
    assert [(f.name, f.dataType.simpleString()) for f in df.schema.fields] == RECORD_TYPES
    out, chk = str(tmp_path / "out"), str(tmp_path / "chk")
    q = parquet_sink(df, out, checkpoint=chk, available_now=True)
    q.awaitTermination()
    sizes = [p["numInputRows"] for p in q.recentProgress if p["numInputRows"]]
    assert sizes == [2, 2, 1]
    rows = spark.read.parquet(out).orderBy("topic", "partition", "offset").collect()
    got = [
        (r.topic, r.partition, r.offset, None if r.value is None else bytes(r.value)) for r in rows
    ]
    assert got == [
        ("orders", 0, 0, b'{"a": 1}'),
        ("orders", 0, 1, b"\x00\x01"),
        ("orders", 0, 2, None),
        ("orders", 2, 0, b"x"),
        ("other", 0, 0, b"y"),
    ]
    by_offset = {(r.topic, r.partition, r.offset): r for r in rows}
    assert by_offset[("orders", 0, 1)].timestamp == dt.datetime(2024, 1, 1, 0, 0, 1)
    assert by_offset[("orders", 2, 0)].timestamp == dt.datetime(2024, 2, 1, 10, 0)
    assert bytes(by_offset[("orders", 2, 0)].key) == b"k1"
    # Restarting from the checkpoint replays nothing.
    again = parquet_sink(df, out, checkpoint=chk, available_now=True)
    again.awaitTermination()
    assert spark.read.parquet(out).count() == len(records)


def test_fixture_source_rejects_bad_records(spark: Any) -> None:
    with pytest.raises(SchemaError, match="unknown field"):
        fixture_source(spark, [{"value": "x", "bogus": 1}])
    with pytest.raises(SchemaError, match="sequence"):
        fixture_source(spark, "abc")
    with pytest.raises(SchemaError, match="str, bytes or None"):
        fixture_source(spark, [123])
