"""Amazon Kinesis Data Streams as a source in the Kafka record shape.

Maven Central serves no Structured Streaming Kinesis connector for Spark 4 / Scala 2.13: Spark's
own ``spark-streaming-kinesis-asl`` is DStream-only and stops at Scala 2.12 / Spark 3.x, the
Qubole connector stops at Spark 3.0, and the AWS Labs connector
(https://github.com/awslabs/spark-sql-kinesis-connector, format ``"aws-kinesis"``) is built from
source. Databricks Runtime ships its own source (format ``"kinesis"``). kamlib therefore does not
pin a Kinesis coordinate: :func:`kinesis_source` builds the documented options of whichever of
the two connectors is on the classpath (secrets redacted in every repr and message, as for
Kafka) and :func:`kinesis_records` maps the connector's rows onto the Kafka record shape that
:func:`kamlib.streaming.decode_json` and the runner consume.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from kamlib._validation import (
    ColumnKind,
    check_choice,
    check_columns,
    column_names,
    parse_timestamp,
)
from kamlib.errors import ConnectorUnavailableError, KamlibError, SchemaError
from kamlib.streaming.sources import (
    RECORD_COLUMNS,
    KafkaOptions,
    _open_stream,
    is_secret_option,
)

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

__all__ = [
    "AWS_CONNECTOR_ARTIFACT",
    "AWS_CONNECTOR_URL",
    "FORMATS",
    "KINESIS_EXTRA_COLUMNS",
    "KinesisConnector",
    "KinesisOptions",
    "is_kinesis_secret",
    "kinesis_options",
    "kinesis_records",
    "kinesis_source",
]

#: Which connector :func:`kinesis_source` reads with.
KinesisConnector = Literal["auto", "aws-kinesis", "databricks"]

#: Spark data source format name of each connector.
FORMATS: dict[str, str] = {"aws-kinesis": "aws-kinesis", "databricks": "kinesis"}

#: Artifact of the AWS Labs connector for Spark 4 (Scala 2.13); built from source, not on Maven.
AWS_CONNECTOR_ARTIFACT = "spark-streaming-sql-kinesis-connector_2.13"
AWS_CONNECTOR_URL = "https://github.com/awslabs/spark-sql-kinesis-connector"

#: Columns :func:`kinesis_records` adds after the Kafka record shape.
KINESIS_EXTRA_COLUMNS: tuple[tuple[str, str], ...] = (
    ("shard_id", "string"),
    ("sequence_number", "string"),
)

_POSITIONS = {
    # kamlib name -> (AWS Labs kinesis.startingPosition, Databricks initialPosition)
    "latest": ("LATEST", "latest"),
    "trim_horizon": ("TRIM_HORIZON", "trim_horizon"),
    "earliest": ("TRIM_HORIZON", "trim_horizon"),
}

#: Options each connector's builder sets (lower case: Spark reads option names
#: case-insensitively, so ``{"KINESIS.STREAMNAME": ...}`` would silently redirect the read).
_RESERVED = {
    "aws-kinesis": frozenset(
        {"kinesis.streamname", "kinesis.region", "kinesis.endpointurl", "kinesis.startingposition"}
    ),
    "databricks": frozenset({"streamname", "region", "endpoint", "initialposition"}),
}

_ACCESS_KEY_SUFFIXES = ("accesskey", "accesskeyid")


def is_kinesis_secret(name: str) -> bool:
    """Whether a Kinesis option's value is never shown.

    Everything :func:`kamlib.streaming.sources.is_secret_option` hides (``awsSecretKey``,
    ``sessionToken``, ``awsSessionToken``, ``proxyPassword``, ...) plus the access key ids
    (``kinesis.awsAccessKeyId``, ``awsAccessKey``), which identify a credential.

    >>> is_kinesis_secret("kinesis.awsSecretKey"), is_kinesis_secret("awsAccessKey")
    (True, True)
    >>> is_kinesis_secret("kinesis.streamName")
    False
    """
    return is_secret_option(name) or name.lower().endswith(_ACCESS_KEY_SUFFIXES)


class KinesisOptions(KafkaOptions):
    """Read-only Kinesis source options whose ``repr``/``str`` redact credentials.

    The same contract as :class:`kamlib.streaming.sources.KafkaOptions` (indexing returns
    the real value; :meth:`redacted` and ``repr`` show ``*****(redacted)``; :meth:`scrub`
    removes secret values and their escaped forms from a message) with
    :func:`is_kinesis_secret` deciding what is secret.
    """

    __slots__ = ()

    def redacted(self) -> dict[str, str]:
        """A plain dict with every secret value replaced by ``*****(redacted)``."""
        return {k: ("*****(redacted)" if is_kinesis_secret(k) else v) for k, v in self.items()}

    def secret_values(self) -> list[str]:
        """The secret values (for scrubbing messages); never log this."""
        return [v for k, v in self.items() if is_kinesis_secret(k) and v]

    def __repr__(self) -> str:
        return f"KinesisOptions({self.redacted()!r})"

    __str__ = __repr__

    def __reduce__(self) -> Any:  # pragma: no cover - pickling keeps the real values
        return (KinesisOptions, (dict(self.items()),))


def _text(func: str, arg: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SchemaError(
            function=func, argument=arg, expected="a non-empty string", found=repr(value)
        )
    return value.strip()


def _position(func: str, connector: str, value: Any) -> str:
    """The connector's starting-position option value for ``starting_position``."""
    if isinstance(value, str) and value.strip().lower() in _POSITIONS:
        aws, databricks = _POSITIONS[value.strip().lower()]
        return aws if connector == "aws-kinesis" else databricks
    if isinstance(value, (_dt.datetime, _dt.date)):
        if connector != "aws-kinesis":
            raise SchemaError(
                f"{func}(): a datetime starting_position= needs connector='aws-kinesis'; on "
                "Databricks pass its initialPosition at_timestamp JSON as starting_position=",
                function=func,
                argument="starting_position",
                expected="'latest', 'trim_horizon' or 'earliest' for this connector",
                found=repr(value),
            )
        at = parse_timestamp(func, "starting_position", value)  # aware -> UTC, naive = UTC
        return f"AT_TIMESTAMP {at.replace(microsecond=0).isoformat()}Z"
    if isinstance(value, str) and value.strip().startswith("{") and connector == "databricks":
        try:
            spec = json.loads(value)
        except ValueError:
            spec = None
        if isinstance(spec, dict) and "at_timestamp" in spec:
            return value.strip()
    expected = "'latest', 'trim_horizon', 'earliest' or a datetime (aws-kinesis)"
    if connector == "databricks":
        expected = "'latest', 'trim_horizon', 'earliest' or an at_timestamp JSON (databricks)"
    raise SchemaError(
        function=func, argument="starting_position", expected=expected, found=repr(value)
    )


def kinesis_options(
    *,
    stream_name: str,
    region: str,
    endpoint_url: str | None = None,
    starting_position: Any = "latest",
    options: Mapping[str, Any] | None = None,
    connector: Literal["aws-kinesis", "databricks"] = "aws-kinesis",
    func: str = "kinesis_options",
) -> KinesisOptions:
    """Build the source options of one Kinesis connector, credentials redacted in every repr.

    Parameters
    ----------
    stream_name : str
        The Kinesis data stream.
    region : str
        Its AWS region, e.g. ``"eu-west-1"``.
    endpoint_url : str, optional
        Kinesis endpoint (a VPC endpoint, LocalStack ...). The AWS Labs connector requires one:
        the default is ``https://kinesis.<region>.amazonaws.com``. On Databricks it is set only
        when given (``endpoint``).
    starting_position : str or datetime
        ``"latest"`` (default), ``"trim_horizon"`` or ``"earliest"`` (an alias of
        ``trim_horizon``); with ``"aws-kinesis"`` also a datetime (UTC when naive, truncated to
        seconds, ``AT_TIMESTAMP``); with ``"databricks"`` also its ``initialPosition``
        ``at_timestamp`` JSON. Only used when the query starts without a checkpoint.
    options : Mapping, optional
        Any other option of the connector, passed through unchanged (for example
        ``kinesis.consumerType``, ``kinesis.stsRoleArn`` or ``kinesis.maxFetchRecordsPerShard``
        for ``"aws-kinesis"``; ``roleArn``, ``serviceCredential`` or ``maxRecordsPerFetch`` on
        Databricks). They cannot set the four options above (any letter case).
    connector : {"aws-kinesis", "databricks"}
        Whose option names to use.

    Returns
    -------
    KinesisOptions
        A read-only mapping; ``repr`` redacts credentials.

    Notes
    -----
    ``"aws-kinesis"`` sets ``kinesis.streamName``, ``kinesis.region`` (and
    ``kinesis.kinesisRegion`` unless ``options`` sets it: the connector otherwise parses the
    region out of the endpoint host, which fails for a custom endpoint),
    ``kinesis.endpointUrl`` and ``kinesis.startingPosition``. ``"databricks"`` sets
    ``streamName``, ``region``, ``endpoint`` (when given) and ``initialPosition``.

    Examples
    --------
    >>> opts = kinesis_options(stream_name="orders", region="eu-west-1",
    ...                        options={"kinesis.awsAccessKeyId": "AKIA1",
    ...                                 "kinesis.awsSecretKey": "hunter2"})
    >>> opts["kinesis.endpointUrl"], opts["kinesis.startingPosition"]
    ('https://kinesis.eu-west-1.amazonaws.com', 'LATEST')
    >>> "hunter2" in repr(opts) or "AKIA1" in repr(opts)
    False
    """
    check_choice(func, "connector", connector, ("aws-kinesis", "databricks"))
    stream = _text(func, "stream_name", stream_name)
    where = _text(func, "region", region)
    endpoint = None if endpoint_url is None else _text(func, "endpoint_url", endpoint_url)
    position = _position(func, connector, starting_position)
    built: dict[str, str]
    if connector == "aws-kinesis":
        built = {
            "kinesis.streamName": stream,
            "kinesis.region": where,
            "kinesis.endpointUrl": endpoint or f"https://kinesis.{where}.amazonaws.com",
            "kinesis.startingPosition": position,
        }
    else:
        built = {"streamName": stream, "region": where, "initialPosition": position}
        if endpoint is not None:
            built["endpoint"] = endpoint
    reserved = _RESERVED[connector]
    extra: dict[str, str] = {}
    for key, value in dict(options or {}).items():
        if not isinstance(key, str) or not key.strip():
            raise SchemaError(
                function=func, argument="options", expected="string option names", found=repr(key)
            )
        if key.lower() in reserved:
            raise SchemaError(
                f"{func}(): options= must not set {key!r} (option names are case-insensitive); "
                "use the stream_name=, region=, endpoint_url= and starting_position= arguments",
                function=func,
                argument="options",
                expected="no option the arguments set",
                found=repr(key),
            )
        if key.lower() in {k.lower() for k in extra}:
            raise SchemaError(
                function=func,
                argument="options",
                expected="each option once (names are case-insensitive)",
                found=repr(key),
            )
        extra[key] = str(value)
    if connector == "aws-kinesis" and "kinesis.kinesisregion" not in {k.lower() for k in extra}:
        built["kinesis.kinesisRegion"] = where
    built.update(extra)
    return KinesisOptions(built)


def _unavailable(func: str, connector: str) -> ConnectorUnavailableError:
    build = (
        f"add the AWS Labs connector jar {AWS_CONNECTOR_ARTIFACT} (built from "
        f"{AWS_CONNECTOR_URL}; no Spark 4 Kinesis connector is on Maven Central) with "
        "--jars or spark.jars"
    )
    if connector == "aws-kinesis":
        text = (
            "the AWS Labs Kinesis connector (format 'aws-kinesis') is not on the Spark "
            f"classpath; {build}"
        )
    elif connector == "databricks":
        text = (
            "the Databricks Kinesis source (format 'kinesis') is not available; it ships only "
            "with Databricks Runtime (elsewhere use connector='aws-kinesis')"
        )
    else:
        text = (
            f"no Kinesis connector is on the Spark classpath; {build}, or run on Databricks Runtime"
        )
    return ConnectorUnavailableError(f"{func}(): {text}.")


def kinesis_source(
    spark: SparkSession,
    *,
    stream_name: str,
    region: str,
    endpoint_url: str | None = None,
    starting_position: Any = "latest",
    options: Mapping[str, Any] | None = None,
    connector: KinesisConnector = "auto",
) -> DataFrame:
    """Read a Kinesis data stream as a stream in the Kafka record shape.

    Parameters
    ----------
    spark : pyspark.sql.SparkSession
        The session (classic or Spark Connect).
    stream_name, region, endpoint_url, starting_position, options
        See :func:`kamlib.streaming.kinesis.kinesis_options`; the option names follow the
        connector used.
    connector : {"auto", "aws-kinesis", "databricks"}
        ``"aws-kinesis"``: the AWS Labs connector (format ``"aws-kinesis"``);
        ``"databricks"``: Databricks Runtime's source (format ``"kinesis"``); ``"auto"``
        (default): the first of the two whose data source loads (a ``starting_position`` only
        one of them takes, a datetime or an ``at_timestamp`` JSON, selects that one).

    Returns
    -------
    pyspark.sql.DataFrame
        Streaming :func:`kinesis_records` of the connector's rows: ``key``, ``value``,
        ``topic``, ``partition``, ``offset``, ``timestamp``, ``shard_id``,
        ``sequence_number``.

    Raises
    ------
    SchemaError
        An unknown ``connector``, an empty name, an unsupported ``starting_position`` or an
        option that the arguments set.
    ConnectorUnavailableError
        When the connector's data source class is not loadable; the one-line message names
        what to add (the AWS Labs jar, or Databricks Runtime).
    KamlibError
        For any other failure to create the source, with credentials removed.

    Notes
    -----
    No Spark 4 / Scala 2.13 Structured Streaming Kinesis connector is published on Maven
    Central, so :func:`kamlib.connectors.packages` has no Kinesis option: build the AWS Labs
    connector (``mvn install`` gives ``spark-streaming-sql-kinesis-connector_2.13-<v>.jar``) and
    put the jar on ``spark.jars``, or use Databricks. The probe loads the source and resolves
    its schema (no JVM access, so it works on Spark Connect); nothing is read from AWS until
    the query starts. Credentials (``kinesis.awsSecretKey``, ``kinesis.sessionToken``,
    ``awsSecretKey``, access key ids, proxy passwords) never appear in kamlib's reprs or
    errors; prefer the default AWS credentials provider chain (instance profile, web
    identity) or ``kinesis.stsRoleArn`` / ``roleArn`` over keys in options. The AWS Labs
    connector does not support ``Trigger.AvailableNow`` (use a processing-time trigger) nor
    speculative execution.

    Examples
    --------
    >>> df = kinesis_source(spark, stream_name="orders", region="eu-west-1")  # doctest: +SKIP
    """
    func = "kinesis_source"
    check_choice(func, "connector", connector, KinesisConnector)
    candidates = ["aws-kinesis", "databricks"] if connector == "auto" else [connector]
    built: list[tuple[str, KinesisOptions]] = []
    invalid: list[SchemaError] = []
    for name in candidates:
        try:
            opts = kinesis_options(
                stream_name=stream_name,
                region=region,
                endpoint_url=endpoint_url,
                starting_position=starting_position,
                options=options,
                connector=name,  # type: ignore[arg-type]
                func=func,
            )
        except SchemaError as exc:
            if connector != "auto":
                raise
            # "auto": a starting position or option only one connector understands
            invalid.append(exc)
            continue
        built.append((name, opts))
    if invalid and not built:
        raise invalid[0]
    for name, opts in built:
        raw, missing, failure = _open_stream(spark, FORMATS[name], opts)
        if missing:
            continue
        if raw is None:
            raise KamlibError(f"{func}(): could not create the Kinesis source: {failure}")
        return kinesis_records(raw)
    if invalid:  # "auto": the one connector the arguments fit is missing
        raise _unavailable(func, built[0][0])
    raise _unavailable(func, connector)


def _shard_index(shard: Column) -> Column:
    """``shardId-000000000007`` -> 7; a 31-bit hash of the id when it has no numeric suffix."""
    from pyspark.sql import functions as F

    digits = F.regexp_extract(shard, r"([0-9]{1,9})$", 1)
    index = F.when(digits != F.lit(""), digits.cast("int"))
    return F.coalesce(index, F.pmod(F.hash(shard), F.lit(2147483647)).cast("int"))


def kinesis_records(df: DataFrame) -> DataFrame:
    """Map a Kinesis connector's rows onto the Kafka record shape (a stream or a batch).

    Accepts the rows of the AWS Labs connector (``data``, ``streamName``, ``partitionKey``,
    ``sequenceNumber``, ``approximateArrivalTimestamp``, and ``subSequenceNumber`` when the
    connector has it) and of Databricks' source (``partitionKey``, ``data``, ``stream``,
    ``shardId``, ``sequenceNumber``, ``approximateArrivalTimestamp``).

    ==================== =========================================================
    column               value
    ==================== =========================================================
    ``key`` (binary)     the partition key as UTF-8 bytes
    ``value`` (binary)   ``data``
    ``topic``            the stream name
    ``partition`` (int)  the shard index (``shardId-000000000007`` -> 7); without a
                         ``shardId`` column (AWS Labs) a non-negative 31-bit hash of
                         the partition key, which maps to one shard at a time
    ``offset`` (bigint)  a non-negative ``xxhash64`` of (stream, shard id or partition
                         key, sequence number, sub-sequence number): deterministic, so
                         a replayed record gets the same coordinates; not ordered
    ``timestamp``        ``approximateArrivalTimestamp``
    ``shard_id``         the shard id (null for the AWS Labs connector)
    ``sequence_number``  the Kinesis sequence number (a decimal string)
    ==================== =========================================================

    Parameters
    ----------
    df : pyspark.sql.DataFrame
        Rows of a Kinesis connector (``spark.readStream.format("aws-kinesis")...load()``).

    Returns
    -------
    pyspark.sql.DataFrame
        The Kafka record shape plus ``shard_id`` and ``sequence_number`` (decoded as extra
        columns by :func:`kamlib.streaming.decode_json`, so they stay on both outputs).

    Raises
    ------
    SchemaError
        A required column is missing or has the wrong type.

    Notes
    -----
    Kinesis sequence numbers are up to 128-bit decimals, so they cannot be Kafka offsets; the
    hash gives ``(topic, partition, offset)`` the role it has for Kafka (identify a record,
    e.g. for unique quarantine rows) and ``sequence_number`` keeps the exact position.

    Examples
    --------
    >>> rows = spark.createDataFrame(
    ...     [(b'{"a": 1}', "orders", "acc-1", "4959", None)],
    ...     "data binary, streamName string, partitionKey string, sequenceNumber string, "
    ...     "approximateArrivalTimestamp timestamp")
    >>> kinesis_records(rows).columns
    ['key', 'value', 'topic', 'partition', 'offset', 'timestamp', 'shard_id', 'sequence_number']
    """
    from pyspark.sql import functions as F

    func = "kinesis_records"
    names = set(column_names(df))
    stream_col = "stream" if "stream" in names and "streamName" not in names else "streamName"
    required: dict[str, ColumnKind] = {
        "data": "any",
        stream_col: "string",
        "partitionKey": "string",
        "sequenceNumber": "string",
        "approximateArrivalTimestamp": "timestamp",
    }
    if "shardId" in names:
        required["shardId"] = "string"
    check_columns(df, func, required)
    from pyspark.sql import types as T

    data_type = df.schema["data"].dataType
    if not isinstance(data_type, (T.BinaryType, T.StringType)):
        raise SchemaError(
            function=func,
            column="data",
            expected="binary or string",
            found=data_type.simpleString(),
        )
    key = F.col("partitionKey")
    stream = F.col(f"`{stream_col}`")
    sequence = F.col("sequenceNumber")
    has_shard = "shardId" in names
    shard = F.col("shardId") if has_shard else F.lit(None).cast("string")
    sub = (
        F.coalesce(F.col("subSequenceNumber").cast("string"), F.lit(""))
        if "subSequenceNumber" in names
        else F.lit("")
    )
    where = F.coalesce(shard, key, F.lit("")) if has_shard else F.coalesce(key, F.lit(""))
    partition = (
        _shard_index(shard) if has_shard else F.pmod(F.hash(key), F.lit(2147483647)).cast("int")
    )
    offset = F.pmod(
        F.xxhash64(F.coalesce(stream, F.lit("")), where, F.coalesce(sequence, F.lit("")), sub),
        F.lit(9223372036854775807),
    )
    columns = {
        "key": key.cast("binary"),
        "value": F.col("data").cast("binary"),
        "topic": stream.cast("string"),
        "partition": partition,
        "offset": offset.cast("bigint"),
        "timestamp": F.col("approximateArrivalTimestamp").cast("timestamp"),
        "shard_id": shard,
        "sequence_number": sequence,
    }
    expected = [name for name, _ in RECORD_COLUMNS] + [name for name, _ in KINESIS_EXTRA_COLUMNS]
    return df.select(*[columns[name].alias(name) for name in expected])
