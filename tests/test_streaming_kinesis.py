"""Kinesis: options, redaction, connector errors, and connector rows -> Kafka shape -> decode.

No Kinesis connector exists in the test session (none is published for Spark 4 on Maven
Central), so the source itself is only exercised up to its ConnectorUnavailableError; the row
mapping is tested on DataFrames shaped like the connectors' documented output schemas.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import pytest

from kamlib.errors import ConnectorUnavailableError, SchemaError
from kamlib.schema import ORDER_EVENT
from kamlib.streaming import decode_json, fixture_source, kinesis_records, kinesis_source
from kamlib.streaming.kinesis import KinesisOptions, is_kinesis_secret, kinesis_options

SECRET = 'wJalr"XUtnFEMI/K7MDENG\\bPxRfiCY'
TOKEN = "IQoJb3JpZ2luX2VjE+token/=="
ACCESS = "AKIAIOSFODNN7EXAMPLE"
CREDS = {
    "kinesis.awsAccessKeyId": ACCESS,
    "kinesis.awsSecretKey": SECRET,
    "kinesis.sessionToken": TOKEN,
}
#: The AWS Labs connector's output schema (its README, "Check Schema").
AWS_SCHEMA = (
    "data binary, streamName string, partitionKey string, sequenceNumber string, "
    "approximateArrivalTimestamp timestamp"
)
#: Databricks' Kinesis source schema (Databricks documentation, "Schema").
DATABRICKS_SCHEMA = (
    "partitionKey string, data binary, stream string, shardId string, sequenceNumber string, "
    "approximateArrivalTimestamp timestamp"
)
RECORD = ["key", "value", "topic", "partition", "offset", "timestamp"]
LONG_MAX = 2**63 - 1


def _order(i: int) -> bytes:
    return json.dumps(
        {
            "event_id": f"e{i}",
            "account_id": f"a{i % 3}",
            "event_time": f"2024-01-01T10:00:{i:02d}Z",
            "amount": float(i),
        }
    ).encode()


# ------------------------------------------------------------------------------- options


def test_aws_options_defaults_and_endpoint() -> None:
    opts = kinesis_options(stream_name=" orders ", region="eu-west-1")
    assert dict(opts) == {
        "kinesis.streamName": "orders",
        "kinesis.region": "eu-west-1",
        "kinesis.endpointUrl": "https://kinesis.eu-west-1.amazonaws.com",
        "kinesis.startingPosition": "LATEST",
        "kinesis.kinesisRegion": "eu-west-1",
    }
    custom = kinesis_options(
        stream_name="orders",
        region="us-east-1",
        endpoint_url="http://localhost:4566",
        starting_position="EARLIEST",
        options={"kinesis.kinesisRegion": "us-east-2", "kinesis.consumerType": "GetRecords"},
    )
    assert custom["kinesis.endpointUrl"] == "http://localhost:4566"
    assert custom["kinesis.startingPosition"] == "TRIM_HORIZON"
    assert custom["kinesis.kinesisRegion"] == "us-east-2"  # the caller's value wins
    assert custom["kinesis.consumerType"] == "GetRecords"


def test_aws_timestamp_position_is_utc_and_truncated_to_seconds() -> None:
    aware = dt.datetime(2024, 3, 1, 12, 30, 15, 999_000, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    opts = kinesis_options(stream_name="s", region="eu-west-1", starting_position=aware)
    assert opts["kinesis.startingPosition"] == "AT_TIMESTAMP 2024-03-01T10:30:15Z"
    naive = kinesis_options(
        stream_name="s", region="eu-west-1", starting_position=dt.datetime(2024, 3, 1)
    )
    assert naive["kinesis.startingPosition"] == "AT_TIMESTAMP 2024-03-01T00:00:00Z"


def test_databricks_options() -> None:
    opts = kinesis_options(
        stream_name="orders",
        region="eu-west-1",
        starting_position="trim_horizon",
        options={"roleArn": "arn:aws:iam::1:role/r"},
        connector="databricks",
    )
    assert dict(opts) == {
        "streamName": "orders",
        "region": "eu-west-1",
        "initialPosition": "trim_horizon",
        "roleArn": "arn:aws:iam::1:role/r",
    }
    at = '{"at_timestamp": "2024-03-01 10:00:00", "format": "yyyy-MM-dd HH:mm:ss"}'
    with_endpoint = kinesis_options(
        stream_name="orders",
        region="eu-west-1",
        endpoint_url="https://vpce.example",
        starting_position=at,
        connector="databricks",
    )
    assert with_endpoint["endpoint"] == "https://vpce.example"
    assert with_endpoint["initialPosition"] == at
    with pytest.raises(SchemaError) as info:
        kinesis_options(
            stream_name="s",
            region="r",
            starting_position=dt.datetime(2024, 1, 1),
            connector="databricks",
        )
    assert info.value.argument == "starting_position"


@pytest.mark.parametrize(
    ("connector", "key"),
    [
        ("aws-kinesis", "KINESIS.STREAMNAME"),
        ("aws-kinesis", "kinesis.EndpointUrl"),
        ("aws-kinesis", "kinesis.startingposition"),
        ("databricks", "InitialPosition"),
        ("databricks", "streamname"),
    ],
)
def test_options_cannot_override_the_arguments(connector: Any, key: str) -> None:
    with pytest.raises(SchemaError) as info:
        kinesis_options(stream_name="s", region="r", options={key: "x"}, connector=connector)
    assert info.value.argument == "options"
    assert key in str(info.value)


def test_duplicate_option_names_in_two_cases_are_refused() -> None:
    with pytest.raises(SchemaError):
        kinesis_options(
            stream_name="s",
            region="r",
            options={"kinesis.consumerType": "GetRecords", "KINESIS.CONSUMERTYPE": "x"},
        )


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"stream_name": ""}, "stream_name"),
        ({"region": "  "}, "region"),
        ({"endpoint_url": ""}, "endpoint_url"),
        ({"starting_position": "lates"}, "starting_position"),
        ({"starting_position": 3}, "starting_position"),
        ({"starting_position": '{"at_timestamp": "x"}'}, "starting_position"),  # JSON: Databricks
        ({"connector": "auto"}, "connector"),  # one connector's names, not "auto"
    ],
)
def test_bad_arguments_are_schema_errors(kwargs: dict[str, Any], argument: str) -> None:
    base: dict[str, Any] = {"stream_name": "s", "region": "eu-west-1"}
    with pytest.raises(SchemaError) as info:
        kinesis_options(**{**base, **kwargs})
    assert info.value.argument == argument


# ------------------------------------------------------------------------------- redaction


def test_credentials_are_redacted_in_repr_str_and_redacted() -> None:
    opts = kinesis_options(stream_name="orders", region="eu-west-1", options=CREDS)
    assert isinstance(opts, KinesisOptions)
    for text in (repr(opts), str(opts), json.dumps(opts.redacted())):
        assert SECRET not in text
        assert TOKEN not in text
        assert ACCESS not in text
        assert "orders" in text
        assert "*****(redacted)" in text
    assert opts["kinesis.awsSecretKey"] == SECRET  # indexing gives the real value
    assert sorted(opts.secret_values()) == sorted(CREDS.values())


def test_scrub_removes_escaped_and_quoted_echoes() -> None:
    opts = kinesis_options(stream_name="orders", region="eu-west-1", options=CREDS)
    message = f"bad key {SECRET!r}, json {json.dumps(SECRET)}, token={TOKEN}, id {ACCESS}"
    cleaned = opts.scrub(message)
    assert SECRET not in cleaned
    assert TOKEN not in cleaned
    assert ACCESS not in cleaned
    assert json.dumps(SECRET)[1:-1] not in cleaned
    assert repr(SECRET)[1:-1] not in cleaned


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("kinesis.awsSecretKey", True),
        ("kinesis.sessionToken", True),
        ("kinesis.awsAccessKeyId", True),
        ("awsAccessKey", True),
        ("awsSecretKey", True),
        ("awsSessionToken", True),
        ("proxyPassword", True),
        ("kinesis.streamName", False),
        ("kinesis.stsRoleArn", False),
        ("roleArn", False),
    ],
)
def test_secret_option_names(name: str, secret: bool) -> None:
    assert is_kinesis_secret(name) is secret


# ------------------------------------------------------------------------------- source


@pytest.mark.connect
def test_unknown_connector_is_a_schema_error(spark: Any) -> None:
    with pytest.raises(SchemaError) as info:
        kinesis_source(spark, stream_name="s", region="r", connector="kafka")  # type: ignore[arg-type]
    assert info.value.function == "kinesis_source"
    assert info.value.argument == "connector"
    assert "'auto', 'aws-kinesis', 'databricks'" in str(info.value)


@pytest.mark.connect
@pytest.mark.parametrize("connector", ["auto", "aws-kinesis", "databricks"])
def test_missing_connector_is_a_one_line_error_without_secrets(spark: Any, connector: Any) -> None:
    with pytest.raises(ConnectorUnavailableError) as info:
        kinesis_source(
            spark,
            stream_name="orders",
            region="eu-west-1",
            options=CREDS if connector != "databricks" else {"awsSecretKey": SECRET},
            connector=connector,
        )
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("kinesis_source(): ")
    assert SECRET not in message
    assert TOKEN not in message
    assert ACCESS not in message
    assert info.value.__cause__ is None
    assert info.value.__context__ is None
    if connector == "databricks":
        assert "Databricks Runtime" in message
        assert "connector='aws-kinesis'" in message
    else:
        assert "spark-streaming-sql-kinesis-connector_2.13" in message
        assert "https://github.com/awslabs/spark-sql-kinesis-connector" in message
        assert "spark.jars" in message


@pytest.mark.parametrize(
    ("position", "named"),
    [
        (dt.datetime(2024, 1, 1), "spark-streaming-sql-kinesis-connector_2.13"),  # AWS Labs only
        ('{"at_timestamp": "2024-01-01 00:00:00"}', "Databricks Runtime"),  # Databricks only
    ],
)
def test_auto_with_a_one_connector_position_names_that_connector(
    spark: Any, position: Any, named: str
) -> None:
    with pytest.raises(ConnectorUnavailableError) as info:
        kinesis_source(spark, stream_name="s", region="eu-west-1", starting_position=position)
    assert named in str(info.value)


def test_bad_starting_position_fails_before_spark(spark: Any) -> None:
    with pytest.raises(SchemaError) as info:
        kinesis_source(spark, stream_name="s", region="r", starting_position="newest")
    assert info.value.argument == "starting_position"


# ------------------------------------------------------------------------------- records


def _aws_rows(spark: Any) -> tuple[Any, list[tuple[Any, ...]]]:
    arrival = dt.datetime(2024, 1, 1, 10, 0, 0)
    rows: list[tuple[Any, ...]] = [
        (_order(i), "orders", f"acc-{i % 3}", f"4959{i:030d}", arrival + dt.timedelta(seconds=i))
        for i in range(6)
    ]
    rows.append((b"{not json", "orders", "acc-0", "4959" + "9" * 30, arrival))
    no_account = b'{"event_id": "x", "event_time": "2024-01-01T10:00:00Z", "amount": 1.0}'
    rows.append((no_account, "orders", "acc-1", "4960" + "1" * 30, arrival))
    return spark.createDataFrame(rows, AWS_SCHEMA), rows


def test_aws_rows_map_to_the_kafka_shape(spark: Any) -> None:
    df, rows = _aws_rows(spark)
    records = kinesis_records(df)
    assert records.columns == [*RECORD, "shard_id", "sequence_number"]
    types = {f.name: f.dataType.simpleString() for f in records.schema.fields}
    assert types == {
        "key": "binary",
        "value": "binary",
        "topic": "string",
        "partition": "int",
        "offset": "bigint",
        "timestamp": "timestamp",
        "shard_id": "string",
        "sequence_number": "string",
    }
    out = records.collect()
    by_seq = {r.sequence_number: r for r in out}
    assert len(by_seq) == len(rows)
    for data, stream, key, seq, arrival in rows:
        got = by_seq[seq]
        assert bytes(got.value) == data
        assert bytes(got.key) == key.encode()
        assert got.topic == stream
        assert got.timestamp == arrival
        assert got.shard_id is None
        assert 0 <= got.partition < 2**31
        assert 0 <= got.offset < LONG_MAX
    # the partition is a function of the partition key (one key -> one partition)
    per_key: dict[bytes, set[int]] = {}
    for r in out:
        per_key.setdefault(bytes(r.key), set()).add(r.partition)
    assert all(len(parts) == 1 for parts in per_key.values())
    # offsets identify records and are deterministic (same rows -> same offsets)
    assert len({r.offset for r in out}) == len(out)
    again = {r.sequence_number: r.offset for r in kinesis_records(df).collect()}
    assert again == {r.sequence_number: r.offset for r in out}


def test_offset_and_partition_follow_their_formulas(spark: Any) -> None:
    from pyspark.sql import functions as F

    df, _ = _aws_rows(spark)
    expected = df.select(
        "sequenceNumber",
        F.expr("pmod(hash(partitionKey), 2147483647)").alias("p"),
        F.expr(
            "pmod(xxhash64(streamName, partitionKey, sequenceNumber, ''), 9223372036854775807)"
        ).alias("o"),
    ).collect()
    got = {r.sequence_number: (r.partition, r.offset) for r in kinesis_records(df).collect()}
    assert got == {r.sequenceNumber: (r.p, r.o) for r in expected}


def test_databricks_rows_use_the_shard_index(spark: Any) -> None:
    arrival = dt.datetime(2024, 1, 1)
    rows = [
        ("acc-1", _order(1), "orders", "shardId-000000000003", "49590", arrival),
        ("acc-1", _order(2), "orders", "shardId-000000000000", "49591", arrival),
        ("acc-2", _order(3), "orders", "shardId-000000000003", "49592", arrival),
    ]
    out = kinesis_records(spark.createDataFrame(rows, DATABRICKS_SCHEMA)).collect()
    assert sorted((r.shard_id, r.partition) for r in out) == [
        ("shardId-000000000000", 0),
        ("shardId-000000000003", 3),
        ("shardId-000000000003", 3),
    ]
    assert {r.topic for r in out} == {"orders"}
    assert len({r.offset for r in out}) == 3


def test_same_sequence_number_on_two_shards_gets_two_offsets(spark: Any) -> None:
    arrival = dt.datetime(2024, 1, 1)
    rows = [
        ("k", b"{}", "orders", "shardId-000000000001", "4959", arrival),
        ("k", b"{}", "orders", "shardId-000000000002", "4959", arrival),
    ]
    out = kinesis_records(spark.createDataFrame(rows, DATABRICKS_SCHEMA)).collect()
    assert out[0].offset != out[1].offset


def test_missing_or_mistyped_columns_are_schema_errors(spark: Any) -> None:
    df, _ = _aws_rows(spark)
    with pytest.raises(SchemaError) as info:
        kinesis_records(df.drop("sequenceNumber"))
    assert info.value.function == "kinesis_records"
    assert info.value.column == "sequenceNumber"
    with pytest.raises(SchemaError) as info:
        kinesis_records(df.withColumn("data", df["data"].cast("string").cast("int")))
    assert info.value.column == "data"


@pytest.mark.connect
def test_aws_rows_decode_end_to_end(spark: Any) -> None:
    df, rows = _aws_rows(spark)
    decoded = decode_json(kinesis_records(df), ORDER_EVENT)
    valid = decoded.valid.collect()
    bad = decoded.quarantine.collect()
    assert sorted(r.event_id for r in valid) == [f"e{i}" for i in range(6)]
    assert sum(r.amount for r in valid) == float(sum(range(6)))
    assert len(valid) + len(bad) == len(rows)
    assert sorted(r.raw for r in bad) == sorted([row[0].decode() for row in rows[6:]])
    assert {r.error for r in bad} == {"invalid JSON", "missing required field 'account_id'"}
    for r in [*valid, *bad]:
        assert r.topic == "orders"
        assert r.sequence_number.startswith("49")
        assert "shard_id" in r.asDict()
    seqs = {r.sequence_number for r in valid}
    assert seqs == {row[3] for row in rows[:6]}


@pytest.mark.connect
def test_streaming_rows_shaped_like_the_aws_connector_decode(spark: Any, tmp_path: Any) -> None:
    from pyspark.sql import functions as F

    records = [{"value": _order(i).decode(), "key": f"acc-{i % 2}"} for i in range(5)]
    records.append({"value": "oops", "key": "acc-0"})
    # the fixture source's rows renamed into the AWS Labs connector's schema
    connector_rows = fixture_source(spark, records, topic="orders", max_records_per_batch=2).select(
        F.col("value").alias("data"),
        F.col("topic").alias("streamName"),
        F.col("key").cast("string").alias("partitionKey"),
        F.format_string("4959%030d", F.col("offset")).alias("sequenceNumber"),
        F.col("timestamp").alias("approximateArrivalTimestamp"),
    )
    decoded = decode_json(kinesis_records(connector_rows), ORDER_EVENT)
    assert decoded.valid.isStreaming
    name = "kin_" + uuid.uuid4().hex[:8]
    query = (
        decoded.valid.writeStream.format("memory")
        .queryName(name)
        .option("checkpointLocation", str(tmp_path / "chk"))
        .trigger(availableNow=True)
        .start()
    )
    query.awaitTermination(120)
    rows = spark.sql(f"select * from {name}").collect()
    assert sorted(r.event_id for r in rows) == [f"e{i}" for i in range(5)]
    assert {r.topic for r in rows} == {"orders"}
    assert len({(r.partition, r.offset) for r in rows}) == 5
