"""Streaming sources that all return the Kafka record shape.

Every source returns ``key`` (binary), ``value`` (binary), ``topic`` (string), ``partition``
(int), ``offset`` (long) and ``timestamp`` (timestamp), so decoding, KPIs and tests do not
depend on where records come from:

* :func:`kafka_source` - Apache Kafka through Spark's Kafka connector;
* :func:`file_source` - one record per line of newly landed files;
* :func:`fixture_source` - deterministic replay of given records through the Python Data
  Source API, for tests.
"""

from __future__ import annotations

import base64
import calendar
import json
import re
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from kamlib._validation import check_positive, parse_timestamp
from kamlib.errors import ConnectorUnavailableError, KamlibError, SchemaError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.streaming.query import StreamingQuery

__all__ = [
    "FIXTURE_FORMAT",
    "RECORD_COLUMNS",
    "KafkaOptions",
    "file_source",
    "fixture_source",
    "is_secret_option",
    "kafka_options",
    "kafka_package",
    "kafka_sink",
    "kafka_source",
    "register_fixture_source",
    "scrub_secrets",
]

#: The Kafka record shape (column, Spark SQL type) every source returns, in order.
RECORD_COLUMNS: tuple[tuple[str, str], ...] = (
    ("key", "binary"),
    ("value", "binary"),
    ("topic", "string"),
    ("partition", "int"),
    ("offset", "bigint"),
    ("timestamp", "timestamp"),
)

#: Short name under which :func:`register_fixture_source` registers the fixture source.
FIXTURE_FORMAT = "kamlib_fixture"

_SECRET_MARKERS = ("password", "secret", "token", "jaas", "credential", "keystore.key", "private")
_REDACTED = "*****(redacted)"


def is_secret_option(name: str) -> bool:
    """Whether an option's value must never be shown (passwords, JAAS configs, tokens, keys).

    >>> is_secret_option("kafka.sasl.jaas.config"), is_secret_option("kafka.ssl.keystore.password")
    (True, True)
    >>> is_secret_option("subscribe")
    False
    """
    lowered = name.lower()
    return any(marker in lowered for marker in _SECRET_MARKERS)


class KafkaOptions(Mapping[str, str]):
    """Read-only Kafka options whose ``repr``/``str`` redact secret values.

    A mapping of option name to value, as passed to ``DataStreamReader.option``. Values of
    options for which :func:`is_secret_option` is true (``kafka.sasl.jaas.config``,
    ``*.password``, tokens, ...) are shown as ``*****(redacted)`` by ``repr`` and
    :meth:`redacted`, so logging the options or an error message built from them never
    leaks credentials. Indexing returns the real value.
    """

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, Any]) -> None:
        self._items = {str(k): str(v) for k, v in items.items()}

    def __getitem__(self, key: str) -> str:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def redacted(self) -> dict[str, str]:
        """A plain dict with every secret value replaced by ``*****(redacted)``."""
        return {k: (_REDACTED if is_secret_option(k) else v) for k, v in self._items.items()}

    def secret_values(self) -> list[str]:
        """The secret values (for scrubbing messages); never log this."""
        return [v for k, v in self._items.items() if is_secret_option(k) and v]

    def scrub(self, text: str) -> str:
        """Replace every secret value occurring in ``text`` by the redaction marker.

        Besides the exact value this removes its escaped and quoted echoes (JSON string
        escaping, once and twice, Python ``repr`` escaping, URL encoding) and the quoted
        ``password="..."``-style fields inside a JAAS config, so an error message that
        quotes the option back in any of these forms keeps no secret.
        """
        return scrub_secrets(text, self.secret_values())

    def __repr__(self) -> str:
        return f"KafkaOptions({self.redacted()!r})"

    __str__ = __repr__

    def __reduce__(self) -> Any:  # pragma: no cover - pickling keeps the real values
        return (KafkaOptions, (self._items,))


_EMBEDDED_SECRET = re.compile(
    r"(?:password|secret|token|credential)[\w.]*\s*=\s*\"([^\"]+)\"", re.IGNORECASE
)


def _secret_forms(value: str) -> set[str]:
    forms = {value}
    json_once = json.dumps(value)[1:-1]
    forms.update(
        {
            json_once,
            json.dumps(json_once)[1:-1],
            repr(value)[1:-1],
            value.replace('"', '\\"'),
            urllib.parse.quote(value, safe=""),
            urllib.parse.quote_plus(value),
        }
    )
    return {form for form in forms if form}


def scrub_secrets(text: str, secrets: Sequence[str]) -> str:
    r"""Replace every secret in ``secrets`` (and its escaped/quoted forms) in ``text``.

    >>> import json
    >>> scrub_secrets(json.dumps({"pw": 'p"x'}), ['p"x'])
    '{"pw": "*****(redacted)"}'
    """
    forms: set[str] = set()
    for secret in secrets:
        if not secret:
            continue
        forms.update(_secret_forms(secret))
        for embedded in _EMBEDDED_SECRET.findall(secret):
            forms.update(_secret_forms(embedded))
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, _REDACTED)
    return text


#: Options the builder sets itself; Spark reads option names case-insensitively, so a
#: caller's ``{"SUBSCRIBE": ...}`` would silently redirect the subscription.
_RESERVED_SOURCE_OPTIONS = frozenset(
    {"kafka.bootstrap.servers", "subscribe", "subscribepattern", "assign", "startingoffsets"}
)


def _merge_options(
    func: str, built: dict[str, str], options: Mapping[str, Any] | None, reserved: frozenset[str]
) -> None:
    seen = {key.lower() for key in built}
    for key, value in dict(options or {}).items():
        lowered = str(key).lower()
        if lowered in reserved or lowered in seen:
            raise SchemaError(
                f"{func}(): options= must not set {str(key)!r} (option names are "
                "case-insensitive); use the bootstrap_servers=, topics=/topic= and "
                "starting_offsets= arguments"
            )
        seen.add(lowered)
        built[str(key)] = str(value)


def _names(func: str, arg: str, value: str | Sequence[str]) -> list[str]:
    items = [value] if isinstance(value, str) else list(value)
    items = [str(v).strip() for v in items]
    if not items or not all(items):
        raise SchemaError(f"{func}(): {arg}= must be a non-empty string or list of strings")
    return items


_OFFSETS_FORMS = (
    "'earliest', 'latest' or JSON offsets per partition such as "
    '\'{"orders": {"0": 42, "1": -2}}\' (-2: earliest, -1: latest)'
)


def _shown(value: str, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


def _parse_starting_offsets(
    func: str,
    value: Any,
    topics: Sequence[str] | None = None,
    *,
    flag: str = "starting_offsets=",
) -> str | dict[str, dict[int, int]]:
    """Validate a Kafka ``startingOffsets`` value: ``"earliest"``, ``"latest"`` or the offsets.

    Spark accepts ``earliest`` and ``latest`` (any case) or a JSON object mapping each topic to
    ``{partition: offset}`` with ``-2`` for earliest and ``-1`` for latest. ``topics`` (the
    subscribed topics; ``None`` for a pattern) must contain every topic of the JSON. Raises a
    one-line :class:`SchemaError` naming ``flag``, so a bad value fails before Spark starts.
    """
    if not isinstance(value, str) or not value.strip():
        raise SchemaError(f"{func}: {flag} must be {_OFFSETS_FORMS}, found {value!r}")
    text = value.strip()
    if text.lower() in ("earliest", "latest"):
        return text.lower()
    try:
        spec = json.loads(text)
    except ValueError:
        raise SchemaError(
            f"{func}: {flag} must be {_OFFSETS_FORMS}, found {_shown(value)}"
        ) from None
    if not isinstance(spec, dict) or not spec:
        raise SchemaError(f"{func}: {flag} must be {_OFFSETS_FORMS}, found {_shown(value)}")
    offsets: dict[str, dict[int, int]] = {}
    for topic, partitions in spec.items():
        if topics is not None and topic not in topics:
            raise SchemaError(
                f"{func}: {flag} names topic {topic!r}, which is not subscribed "
                f"({', '.join(topics)}); give offsets for the subscribed topics only"
            )
        if not isinstance(partitions, dict) or not partitions:
            raise SchemaError(
                f"{func}: {flag} must map topic {topic!r} to {{partition: offset}}, "
                f"found {_shown(json.dumps(partitions))}"
            )
        parsed: dict[int, int] = {}
        for partition, offset in partitions.items():
            if not (isinstance(partition, str) and partition.isdigit()):
                raise SchemaError(
                    f"{func}: {flag} partition {partition!r} of topic {topic!r} must be a "
                    'partition number such as "0"'
                )
            if isinstance(offset, bool) or not isinstance(offset, int) or offset < -2:
                raise SchemaError(
                    f"{func}: {flag} offset of {topic}/{partition} must be an integer >= 0, "
                    f"-1 (latest) or -2 (earliest), found {json.dumps(offset)}"
                )
            parsed[int(partition)] = offset
        offsets[topic] = parsed
    return offsets


def kafka_options(
    *,
    bootstrap_servers: str | Sequence[str],
    topics: str | Sequence[str],
    starting_offsets: str = "latest",
    options: Mapping[str, Any] | None = None,
    func: str = "kafka_options",
) -> KafkaOptions:
    """Build the options of a Kafka source (or sink) with secrets redacted in every repr.

    Parameters
    ----------
    bootstrap_servers : str or sequence of str
        ``host:port`` of the brokers (``kafka.bootstrap.servers``).
    topics : str or sequence of str
        Topic(s) to subscribe to (``subscribe``); a string starting with ``pattern:`` is a
        ``subscribePattern`` regular expression.
    starting_offsets : str
        ``"latest"``, ``"earliest"`` or a JSON offsets spec (``startingOffsets``); only used
        when the query starts without a checkpoint.
    options : Mapping[str, Any], optional
        Any other option, passed through unchanged (e.g. ``kafka.security.protocol``,
        ``kafka.sasl.jaas.config``, ``maxOffsetsPerTrigger``). They cannot override the
        three options above.

    Returns
    -------
    KafkaOptions
        A read-only mapping; ``repr`` redacts secrets.

    Examples
    --------
    >>> opts = kafka_options(
    ...     bootstrap_servers="broker:9092",
    ...     topics=["orders"],
    ...     options={"kafka.sasl.jaas.config": "... password='hunter2';"},
    ... )
    >>> opts["subscribe"]
    'orders'
    >>> "hunter2" in repr(opts)
    False
    """
    servers = ",".join(_names(func, "bootstrap_servers", bootstrap_servers))
    topic_list = _names(func, "topics", topics)
    built: dict[str, str] = {"kafka.bootstrap.servers": servers}
    if len(topic_list) == 1 and topic_list[0].startswith("pattern:"):
        built["subscribePattern"] = topic_list[0][len("pattern:") :]
    else:
        built["subscribe"] = ",".join(topic_list)
    subscribed = None if "subscribePattern" in built else topic_list
    _parse_starting_offsets(f"{func}()", starting_offsets, subscribed)
    built["startingOffsets"] = starting_offsets
    _merge_options(func, built, options, _RESERVED_SOURCE_OPTIONS)
    return KafkaOptions(built)


def kafka_package(spark: SparkSession) -> str:
    """The Maven coordinate of the Kafka connector matching the session's Spark version.

    ``org.apache.spark:spark-sql-kafka-0-10_2.13:<spark version>`` (Spark 4 is built for
    Scala 2.13 only).
    """
    return f"org.apache.spark:spark-sql-kafka-0-10_2.13:{spark.version}"


_MISSING_SOURCE = re.compile(
    r"DATA_SOURCE_NOT_FOUND|KAFKA_DATA_SOURCE_NOT_ENABLED|ClassNotFound|"
    r"Failed to find data source|NoClassDefFoundError",
    re.IGNORECASE,
)


def _connector_missing(exc: BaseException) -> bool:
    condition = ""
    get_condition = getattr(exc, "getCondition", None)
    if callable(get_condition):
        try:
            condition = str(get_condition() or "")
        except Exception:  # pragma: no cover - defensive
            condition = ""
    return bool(_MISSING_SOURCE.search(condition) or _MISSING_SOURCE.search(str(exc)))


def connector_error(func: str, what: str, package: str) -> ConnectorUnavailableError:
    """The :class:`ConnectorUnavailableError` for a missing JVM connector ``package``."""
    flag = {"Kafka": "kafka", "Delta Lake": "delta", "Avro": "avro"}.get(what)
    source = f" = kamlib.connectors.packages({flag}=True)" if flag else ""
    return ConnectorUnavailableError(
        f"{func}(): the {what} connector is not on the Spark classpath. Add the package "
        f"{package}{source} (spark-submit --packages {package}, or the Spark config "
        f"spark.jars.packages={package}, or install it as a cluster library)."
    )


def kafka_source(
    spark: SparkSession,
    *,
    bootstrap_servers: str | Sequence[str],
    topics: str | Sequence[str],
    starting_offsets: str = "latest",
    options: Mapping[str, Any] | None = None,
) -> DataFrame:
    """Read Kafka topics as a stream in the Kafka record shape.

    Parameters
    ----------
    spark : pyspark.sql.SparkSession
        The session (classic or Spark Connect).
    bootstrap_servers, topics, starting_offsets, options
        See :func:`kafka_options`; ``options`` are passed through to the Kafka source.

    Returns
    -------
    pyspark.sql.DataFrame
        Streaming: ``key``, ``value``, ``topic``, ``partition``, ``offset``, ``timestamp``
        (the connector's ``timestampType`` and ``headers`` columns are dropped).

    Raises
    ------
    ConnectorUnavailableError
        When the Kafka connector is not on the classpath; the message names the exact
        package, e.g. ``org.apache.spark:spark-sql-kafka-0-10_2.13:4.0.0``.
    KamlibError
        For any other failure to create the source, with secret option values removed.

    Notes
    -----
    Secrets (``kafka.sasl.jaas.config``, passwords, tokens, key material) never appear in
    kamlib's reprs, logs or error messages: the options are held in a :class:`KafkaOptions`
    and errors are re-raised with secret values scrubbed and without chaining the original
    exception. Exactly-once reading comes from the checkpoint (offsets are recorded per
    micro-batch); ``starting_offsets`` only applies to a fresh checkpoint.

    Examples
    --------
    >>> df = kafka_source(spark, bootstrap_servers="broker:9092", topics="orders")  # doctest: +SKIP
    """
    opts = kafka_options(
        bootstrap_servers=bootstrap_servers,
        topics=topics,
        starting_offsets=starting_offsets,
        options=options,
        func="kafka_source",
    )
    raw, missing, failure = _open_stream(spark, "kafka", opts)
    # Raised outside any ``except`` block so the original exception (whose message may
    # echo option values) is not attached as __context__.
    if missing:
        raise connector_error("kafka_source", "Kafka", kafka_package(spark))
    if raw is None:
        raise KamlibError(f"kafka_source(): could not create the Kafka source: {failure}")
    return raw.select(*[name for name, _ in RECORD_COLUMNS])


def _open_stream(
    spark: SparkSession, fmt: str, opts: KafkaOptions
) -> tuple[DataFrame | None, bool, str | None]:
    """``(stream, connector_missing, scrubbed_failure)`` of ``readStream.format(fmt)`` + ``opts``.

    The stream is analysed here (Spark Connect resolves lazily). On failure the stream is
    None and the message has every secret option value removed; the exception itself is not
    kept, so callers can raise a clean error outside the ``except`` block.
    """
    try:
        reader = spark.readStream.format(fmt)
        for key, value in opts.items():
            reader = reader.option(key, value)
        raw = reader.load()
        raw.schema  # noqa: B018 - Spark Connect resolves lazily: force the analysis here
    except Exception as exc:
        return None, _connector_missing(exc), opts.scrub(f"{type(exc).__name__}: {exc}")
    return raw, False, None


def file_source(
    spark: SparkSession,
    path: str,
    *,
    topic: str = "file",
    max_files_per_trigger: int | None = None,
    path_glob_filter: str | None = None,
    recursive: bool = False,
    latest_first: bool = False,
) -> DataFrame:
    r"""Stream one record per line of the files newly landed in a directory.

    Columns (the Kafka record shape plus ``file``):

    * ``key``: the file path as UTF-8 bytes;
    * ``value``: the line's bytes (without the line break);
    * ``topic``: ``topic`` (``"file"`` by default);
    * ``partition``: a non-negative 31-bit hash of the file path (so that
      ``(key, partition, offset)`` and ``(file, offset)`` identify a record);
    * ``offset``: the 0-based line number within the file;
    * ``timestamp``: the file's modification time (stable when a batch is replayed);
    * ``file``: the file path.

    Lines are split on ``\n`` (a preceding ``\r`` is removed); the empty string after a
    final line break is not a record, so a file has as many records as Python's
    ``str.splitlines`` returns lines. Empty lines inside a file are records (and decode
    to ``invalid JSON``).

    Parameters
    ----------
    spark : pyspark.sql.SparkSession
        The session (classic or Spark Connect).
    path : str
        Directory (or glob) watched for new files. Files must be complete when they appear:
        write elsewhere and move them in.
    topic : str
        Value of the ``topic`` column.
    max_files_per_trigger : int, optional
        Cap on new files per micro-batch (``maxFilesPerTrigger``).
    path_glob_filter : str, optional
        Only files whose name matches, e.g. ``"*.jsonl"``.
    recursive : bool
        Also read files in sub-directories.
    latest_first : bool
        Process the newest files first (``latestFirst``).

    Returns
    -------
    pyspark.sql.DataFrame
        A streaming DataFrame.

    Notes
    -----
    Each file is read whole (``wholetext``) and split with ``posexplode``, which is what
    gives true line numbers: a streaming plan has no ``row_number``. A file therefore
    has to fit in one task's memory (below 2 GB); land many moderate files (tens of MB)
    for throughput. The file source records which files each micro-batch read in the
    checkpoint, so restarts neither skip nor repeat a file.

    Examples
    --------
    >>> df = file_source(spark, "/data/landing/orders")  # doctest: +SKIP
    >>> df.columns  # doctest: +SKIP
    ['key', 'value', 'topic', 'partition', 'offset', 'timestamp', 'file']
    """
    from pyspark.sql import functions as F

    if not isinstance(path, str) or not path:
        raise SchemaError(f"file_source(): path= must be a non-empty string, found {path!r}")
    if not isinstance(topic, str):
        raise SchemaError(f"file_source(): topic= must be a string, found {topic!r}")
    if max_files_per_trigger is not None:
        check_positive("file_source", "max_files_per_trigger", max_files_per_trigger)
    options = {
        "wholetext": "true",
        "maxFilesPerTrigger": None if max_files_per_trigger is None else int(max_files_per_trigger),
        "pathGlobFilter": path_glob_filter or None,
        "recursiveFileLookup": "true" if recursive else None,
        "latestFirst": "true" if latest_first else None,
    }
    reader = spark.readStream.format("text")
    for key, value in options.items():
        if value is not None:
            reader = reader.option(key, str(value))
    files = reader.load(path).select(
        F.col("value").alias("_text"),
        F.col("_metadata.file_path").alias("file"),
        F.col("_metadata.file_modification_time").alias("timestamp"),
    )
    return _file_lines(files, topic)


def _file_lines(files: DataFrame, topic: str) -> DataFrame:
    r"""One record per line of each whole-file row (``_text``, ``file``, ``timestamp``).

    Split on a literal ``"\n"`` (Java's single-character fast path, no regular expression
    over the whole file), drop the empty string after a final line break, and remove the
    ``"\r"`` of a ``"\r\n"`` (a line followed by a line break) per line:
    ``"a\r\nb\n"`` -> ``[a, b]``; an empty file -> ``[]``. ``offset`` is the line's
    position in its file, ``partition`` a hash of the file name, ``key`` the file name.
    """
    from pyspark.sql import functions as F

    text = F.col("_text")
    files = files.select(
        "file",
        "timestamp",
        text.endswith("\n").alias("_ends"),
        F.when(text == F.lit(""), F.array().cast("array<string>"))
        .otherwise(F.split(text, "\n"))
        .alias("_parts"),
    )
    parts = F.col("_parts")
    lines_array = F.when(F.col("_ends"), F.slice(parts, 1, F.size(parts) - 1)).otherwise(parts)
    lines = files.select(
        "file",
        "timestamp",
        # once per file, not per line
        F.pmod(F.hash("file"), F.lit(2147483647)).cast("int").alias("_part"),
        F.col("file").cast("binary").alias("_key"),
        "_ends",
        F.size(parts).alias("_n"),
        F.posexplode(lines_array).alias("_pos", "_raw"),
    )
    raw_line = F.col("_raw")
    followed_by_break = F.col("_ends") | (F.col("_pos") < F.col("_n") - 1)
    lines = lines.withColumn(
        "_line",
        F.when(
            followed_by_break & raw_line.endswith("\r"),
            F.expr("substring(_raw, 1, length(_raw) - 1)"),
        ).otherwise(raw_line),
    )
    return lines.select(
        F.col("_key").alias("key"),
        F.col("_line").cast("binary").alias("value"),
        F.lit(topic).alias("topic"),
        F.col("_part").alias("partition"),
        F.col("_pos").cast("long").alias("offset"),
        F.col("timestamp"),
        F.col("file"),
    )


# --------------------------------------------------------------------------- fixture source


def _encode_bytes(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = value.encode("utf-8")
    if not isinstance(value, (bytes, bytearray)):
        raise SchemaError(
            f"fixture_source(): key/value must be str, bytes or None, found {type(value).__name__}"
        )
    return base64.b64encode(bytes(value)).decode("ascii")


def _fixture_payload(
    records: Sequence[Any], *, topic: str, start_micros: int, step_micros: int
) -> str:
    rows = []
    next_offset: dict[tuple[str, int], int] = {}
    for i, rec in enumerate(records):
        item = dict(rec) if isinstance(rec, Mapping) else {"value": rec}
        unknown = set(item) - {"key", "value", "topic", "partition", "offset", "timestamp"}
        if unknown:
            raise SchemaError(
                f"fixture_source(): record {i} has unknown field(s) {sorted(unknown)}; "
                "allowed: key, value, topic, partition, offset, timestamp"
            )
        t = str(item.get("topic", topic))
        part = int(item.get("partition", 0))
        offset = int(item.get("offset", next_offset.get((t, part), 0)))
        next_offset[(t, part)] = offset + 1
        ts = item.get("timestamp")
        if ts is None:
            micros = start_micros + i * step_micros
        else:
            parsed = parse_timestamp("fixture_source", "timestamp", ts)
            micros = calendar.timegm(parsed.timetuple()) * 1_000_000 + parsed.microsecond
        rows.append(
            [
                _encode_bytes(item.get("key")),
                _encode_bytes(item.get("value")),
                t,
                part,
                offset,
                micros,
            ]
        )
    return json.dumps(rows)


_FixtureDataSource: Any = None


def _load_fixture_classes() -> Any:
    global _FixtureDataSource
    if _FixtureDataSource is None:
        from kamlib.streaming import _fixture

        _FixtureDataSource = _fixture.FixtureDataSource
    return _FixtureDataSource


def register_fixture_source(spark: SparkSession) -> str:
    """Register the fixture Python data source on ``spark``; return its format name.

    Registration is per session and idempotent. It works on classic Spark and on Spark
    Connect (the data source class is pickled to the server, which needs kamlib importable
    in its Python workers).
    """
    spark.dataSource.register(_load_fixture_classes())
    return FIXTURE_FORMAT


def fixture_source(
    spark: SparkSession,
    records: Sequence[Any],
    *,
    topic: str = "fixture",
    max_records_per_batch: int | None = None,
    start_time: Any = "2024-01-01T00:00:00",
    step_seconds: float = 1.0,
) -> DataFrame:
    """Replay ``records`` as a deterministic stream in the Kafka record shape (for tests).

    Built on the Python Data Source API (``pyspark.sql.datasource``): a
    ``DataSourceStreamReader`` whose offsets are record indexes, so micro-batches,
    checkpoints and restarts behave like a real source, and the same records always
    produce the same batches.

    Parameters
    ----------
    spark : pyspark.sql.SparkSession
        The session (classic or Spark Connect).
    records : sequence
        Each item is a value (``str`` / ``bytes`` / ``None``) or a mapping with ``value`` and
        optionally ``key``, ``topic``, ``partition``, ``offset``, ``timestamp`` (a datetime
        or ISO string, UTC). Missing offsets count up per (topic, partition) from 0.
    topic : str
        Default topic.
    max_records_per_batch : int, optional
        At most this many records per micro-batch (all available ones by default; an
        ``available_now`` trigger also honours this limit).
    start_time : datetime or str
        Timestamp of the first record when records carry none; later ones are
        ``step_seconds`` apart.
    step_seconds : float
        Spacing of default timestamps.

    Returns
    -------
    pyspark.sql.DataFrame
        Streaming ``key``, ``value``, ``topic``, ``partition``, ``offset``, ``timestamp``.

    Examples
    --------
    >>> df = fixture_source(spark, ['{"a": 1}', "oops"])
    >>> df.isStreaming, df.columns
    (True, ['key', 'value', 'topic', 'partition', 'offset', 'timestamp'])
    """
    if isinstance(records, (str, bytes)) or not isinstance(records, Sequence):
        raise SchemaError(
            "fixture_source(): records= must be a sequence of values or mappings, "
            f"found {type(records).__name__}"
        )
    start = parse_timestamp("fixture_source", "start_time", start_time)
    start_micros = calendar.timegm(start.timetuple()) * 1_000_000 + start.microsecond
    payload = _fixture_payload(
        records,
        topic=topic,
        start_micros=start_micros,
        step_micros=round(step_seconds * 1_000_000),
    )
    reader = spark.readStream.format(register_fixture_source(spark)).option("records", payload)
    if max_records_per_batch is not None:
        check_positive("fixture_source", "max_records_per_batch", max_records_per_batch)
        reader = reader.option("maxRecordsPerBatch", str(int(max_records_per_batch)))
    return reader.load()


_RESERVED_SINK_OPTIONS = frozenset({"kafka.bootstrap.servers", "topic"})


def kafka_sink(
    df: DataFrame,
    *,
    bootstrap_servers: str | Sequence[str],
    topic: str,
    checkpoint: str,
    key_col: str | None = "account_id",
    options: Mapping[str, Any] | None = None,
    available_now: bool = False,
    processing_time: str | None = None,
    query_name: str | None = None,
) -> StreamingQuery:
    """Start a query writing every row of ``df`` to a Kafka topic as one JSON value.

    Each record's value is ``to_json(struct(*df.columns))`` (all columns, timestamps in
    ISO 8601) and its key is ``key_col`` cast to a string, so all records of an account land
    in one partition in order (``key_col=None``: no key).

    Parameters
    ----------
    df : pyspark.sql.DataFrame
        A streaming DataFrame (alerts, KPIs, ...).
    bootstrap_servers : str or sequence of str
        ``host:port`` list.
    topic : str
        Target topic (it must exist unless the broker auto-creates topics).
    checkpoint : str
        Checkpoint location of the query.
    key_col : str or None
        Column used as the record key. Default ``"account_id"``.
    options : Mapping, optional
        Extra Kafka writer options (``kafka.security.protocol``, ``kafka.sasl.jaas.config``,
        ...); secrets are redacted in every message. ``kafka.bootstrap.servers`` and
        ``topic`` (any letter case) are refused: use the arguments.
    available_now, processing_time, query_name
        Trigger and name of the query, as for the other kamlib sinks.

    Returns
    -------
    pyspark.sql.streaming.StreamingQuery

    Raises
    ------
    SchemaError
        A missing ``key_col``, an empty topic, a reserved option or no checkpoint.
    ConnectorUnavailableError
        When the Kafka connector is missing (the message names the package).

    Notes
    -----
    **At-least-once**: if the query fails after Kafka acknowledged part of a micro-batch,
    the batch is sent again on restart, so consumers de-duplicate (for example by
    ``event_id`` or by the (account, window) of a KPI).

    Examples
    --------
    >>> q = kafka_sink(alerts, bootstrap_servers="broker:9092", topic="alerts",
    ...                checkpoint="/chk/alerts")  # doctest: +SKIP
    """
    from pyspark.sql import functions as F

    from kamlib._validation import check_columns
    from kamlib.streaming.sinks import apply_trigger

    if not isinstance(checkpoint, str) or not checkpoint.strip():
        raise SchemaError(
            "kafka_sink(): checkpoint= is required (a directory that survives restarts); "
            f"found {checkpoint!r}"
        )
    if not df.isStreaming:
        raise SchemaError("kafka_sink(): df must be a streaming DataFrame (spark.readStream ...)")
    if key_col is not None:
        if not isinstance(key_col, str) or not key_col:
            raise SchemaError("kafka_sink(): key_col= must be a column name or None")
        check_columns(df, "kafka_sink", {key_col: "any"})
    if not isinstance(topic, str) or not topic.strip():
        raise SchemaError("kafka_sink(): topic= must be a non-empty string")
    built = {
        "kafka.bootstrap.servers": ",".join(
            _names("kafka_sink", "bootstrap_servers", bootstrap_servers)
        ),
        "topic": topic,
    }
    _merge_options("kafka_sink", built, options, _RESERVED_SINK_OPTIONS)
    opts = KafkaOptions(built)
    value = F.to_json(F.struct(*[F.col(f"`{name}`") for name in df.columns]))
    columns = [value.alias("value")]
    if key_col is not None:
        columns.insert(0, F.col(f"`{key_col}`").cast("string").alias("key"))
    writer = (
        df.select(*columns)
        .writeStream.outputMode("append")
        .option("checkpointLocation", checkpoint)
    )
    if query_name:
        writer = writer.queryName(query_name)
    writer = apply_trigger(
        writer, available_now=available_now, processing_time=processing_time, func="kafka_sink"
    )
    failure: str | None = None
    missing = False
    try:
        for key, option in opts.items():
            writer = writer.option(key, option)
        query = writer.format("kafka").start()
    except Exception as exc:
        missing = _connector_missing(exc)
        failure = opts.scrub(f"{type(exc).__name__}: {exc}")
    if missing:
        raise connector_error("kafka_sink", "Kafka", kafka_package(df.sparkSession))
    if failure is not None:
        raise KamlibError(f"kafka_sink(): could not start the Kafka sink: {failure}")
    return query
