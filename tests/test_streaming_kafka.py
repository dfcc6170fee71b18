"""Kafka end to end against a real single-node KRaft broker (tests/services/kafka.py)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from kamlib.errors import SchemaError
from kamlib.schema import ORDER_EVENT
from kamlib.streaming import decode_json, kafka_options, kafka_sink, kafka_source
from kamlib.streaming.sources import scrub_secrets
from tests.services.kafka import KafkaBroker

SECRET = 's3cr3t"Pa55\\word'
JAAS = (
    "org.apache.kafka.common.security.plain.PlainLoginModule required "
    f'username="u" password="{SECRET}";'
)


def _order(i: int, day: int = 1) -> dict[str, Any]:
    return {
        "event_id": f"e{i}",
        "account_id": f"a{i % 4}",
        "event_time": f"2024-01-{day:02d}T10:00:{i % 60:02d}Z",
        "amount": float(i),
    }


def _to_memory(df: Any, checkpoint: str, **trigger: Any) -> tuple[list[Any], Any]:
    name = "k_" + uuid.uuid4().hex[:8]
    query = (
        df.writeStream.format("memory")
        .queryName(name)
        .option("checkpointLocation", checkpoint)
        .trigger(availableNow=True)
        .start()
    )
    query.awaitTermination(120)
    rows = df.sparkSession.sql(f"select * from {name}").collect()
    return list(rows), query


def test_broker_topics_have_three_partitions(kafka_service: KafkaBroker) -> None:
    topic = kafka_service.create_topic()
    meta = kafka_service.admin().list_topics(topic=topic, timeout=10).topics[topic]
    assert len(meta.partitions) == 3
    assert kafka_service.produce(topic, [_order(i) for i in range(9)]) == 9
    records = kafka_service.consume(topic, expected=9)
    assert sorted(json.loads(r.value())["event_id"] for r in records) == [f"e{i}" for i in range(9)]


def test_kafka_source_decode_quarantines_with_coordinates(
    spark: Any, kafka_service: KafkaBroker, tmp_path: Any
) -> None:
    topic = kafka_service.create_topic()
    valid = [_order(i) for i in range(12)]
    bad = ["{not json", '{"event_id": "x1", "account_id": "a", "amount": 1.0}', '{"a": 1} {"b": 2}']
    kafka_service.produce(topic, valid)
    kafka_service.produce(topic, bad, partition=1)
    source = kafka_source(
        spark,
        bootstrap_servers=kafka_service.bootstrap,
        topics=topic,
        starting_offsets="earliest",
        options={"failOnDataLoss": "false"},
    )
    decoded = decode_json(source, ORDER_EVENT)
    good, _ = _to_memory(decoded.valid, str(tmp_path / "v"))
    quarantined, _ = _to_memory(decoded.quarantine, str(tmp_path / "q"))
    assert sorted(r.event_id for r in good) == sorted(e["event_id"] for e in valid)
    assert {r.partition for r in good} <= {0, 1, 2}
    assert sum(r.amount for r in good) == sum(e["amount"] for e in valid)
    assert sorted(r.raw for r in quarantined) == sorted(bad)
    for row in quarantined:
        assert row.topic == topic
        assert row.partition == 1
        assert row.offset is not None
        assert row.error
    # the offsets are the broker's: partition 1 holds the bad records after its share of valid ones
    offsets = sorted(r.offset for r in quarantined)
    assert offsets == list(range(offsets[0], offsets[0] + 3))


def test_max_offsets_per_trigger_and_starting_offsets_pass_through(
    spark: Any, kafka_service: KafkaBroker, tmp_path: Any
) -> None:
    topic = kafka_service.create_topic()
    kafka_service.produce(topic, [_order(i) for i in range(30)])
    source = kafka_source(
        spark,
        bootstrap_servers=kafka_service.bootstrap,
        topics=topic,
        starting_offsets="earliest",
        options={"maxOffsetsPerTrigger": "10"},
    )
    rows, query = _to_memory(source, str(tmp_path / "c1"))
    assert len(rows) == 30
    sizes = [p["numInputRows"] for p in query.recentProgress if p["numInputRows"]]
    assert len(sizes) >= 3, sizes
    assert max(sizes) <= 10, sizes

    latest = kafka_source(
        spark, bootstrap_servers=kafka_service.bootstrap, topics=topic, starting_offsets="latest"
    )
    rows, _ = _to_memory(latest, str(tmp_path / "c2"))
    assert rows == []

    spec = json.dumps({topic: {"0": -2, "1": -1, "2": -1}})  # -2 earliest, -1 latest
    partial = kafka_source(
        spark, bootstrap_servers=kafka_service.bootstrap, topics=topic, starting_offsets=spec
    )
    rows, _ = _to_memory(partial, str(tmp_path / "c3"))
    assert rows
    assert {r.partition for r in rows} == {0}


def test_kafka_sink_json_keyed_by_account(
    spark: Any, kafka_service: KafkaBroker, tmp_path: Any
) -> None:
    source_topic = kafka_service.create_topic()
    sink_topic = kafka_service.create_topic()
    kafka_service.produce(source_topic, [_order(i) for i in range(8)])
    decoded = decode_json(
        kafka_source(
            spark,
            bootstrap_servers=kafka_service.bootstrap,
            topics=source_topic,
            starting_offsets="earliest",
        ),
        ORDER_EVENT,
    )
    query = kafka_sink(
        decoded.valid.select("event_id", "account_id", "amount"),
        bootstrap_servers=kafka_service.bootstrap,
        topic=sink_topic,
        checkpoint=str(tmp_path / "sink"),
        available_now=True,
    )
    query.awaitTermination(120)
    records = kafka_service.consume(sink_topic, expected=8)
    assert len(records) == 8
    for record in records:
        value = json.loads(record.value())
        assert set(value) == {"event_id", "account_id", "amount"}
        assert record.key().decode() == value["account_id"]
    assert sorted(json.loads(r.value())["event_id"] for r in records) == sorted(
        f"e{i}" for i in range(8)
    )


def test_sasl_ssl_options_accepted_and_redacted(spark: Any, kafka_service: KafkaBroker) -> None:
    options = {
        "kafka.security.protocol": "SASL_SSL",
        "kafka.sasl.mechanism": "PLAIN",
        "kafka.sasl.jaas.config": JAAS,
        "kafka.ssl.truststore.location": "/nonexistent/truststore.jks",
        "kafka.ssl.truststore.password": SECRET,
    }
    source = kafka_source(
        spark, bootstrap_servers=kafka_service.bootstrap, topics="t", options=options
    )
    assert source.isStreaming
    opts = kafka_options(bootstrap_servers=kafka_service.bootstrap, topics="t", options=options)
    assert SECRET not in repr(opts)
    assert "Pa55" not in str(opts)
    echoes = [
        f"bad config {JAAS}",
        f"value: {json.dumps(JAAS)}",
        f"nested: {json.dumps(json.dumps({'jaas': JAAS}))}",
        f"repr: {JAAS!r} and password {json.dumps(SECRET)}",
    ]
    for echo in echoes:
        cleaned = opts.scrub(echo)
        assert "Pa55" not in cleaned, cleaned


@pytest.mark.parametrize(
    "key",
    [
        "SUBSCRIBE",
        "Subscribe",
        "subscribePATTERN",
        "ASSIGN",
        "Kafka.Bootstrap.Servers",
        "STARTINGOFFSETS",
    ],
)
def test_option_guard_is_case_insensitive(key: str) -> None:
    with pytest.raises(SchemaError, match="case-insensitive"):
        kafka_options(bootstrap_servers="b:1", topics="t", options={key: "evil"})


def test_option_guard_rejects_case_duplicates() -> None:
    with pytest.raises(SchemaError):
        kafka_options(
            bootstrap_servers="b:1",
            topics="t",
            options={"maxOffsetsPerTrigger": "1", "MAXOFFSETSPERTRIGGER": "2"},
        )


def test_scrub_secrets_forms() -> None:
    secret = 'p@ss"w\\rd/+'
    for text in (
        f"x {secret} y",
        json.dumps({"p": secret}),
        json.dumps(json.dumps({"p": secret})),
        repr(secret),
        "u=" + __import__("urllib.parse").parse.quote(secret, safe=""),
    ):
        assert "ss" not in scrub_secrets(text, [secret]).replace("redacted", ""), text
