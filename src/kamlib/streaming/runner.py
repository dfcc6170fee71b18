"""Run decode-and-quarantine pipelines as streaming queries, with progress and clean stops.

:func:`start_decoded` starts ONE query that parses each micro-batch once and writes both
the valid and the quarantined records (so they are always started, checkpointed and
stopped together). :func:`await_queries` waits for queries and stops them cleanly on
SIGINT / SIGTERM. :func:`batch_progress` turns query progress into rows in / valid /
quarantined / late / duplicates per batch. :func:`run_order_stream` is the end-to-end
order pipeline behind ``kamlib stream``.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from kamlib._validation import check_choice, check_positive
from kamlib.errors import KamlibError, SchemaError
from kamlib.streaming.decode import COORDINATES, decode_columns
from kamlib.streaming.sinks import (
    BatchWriter,
    _path_missing,
    apply_trigger,
    require_checkpoint,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.streaming.query import StreamingQuery
    from pyspark.sql.types import StructType

__all__ = [
    "BatchProgress",
    "StreamReport",
    "await_queries",
    "batch_progress",
    "pin_shuffle_partitions",
    "revenue_daily_stream",
    "run_order_stream",
    "start_decoded",
]

log = logging.getLogger("kamlib.streaming")

_METRICS = "kamlib_decode"


@dataclass(frozen=True)
class BatchProgress:
    """Counts of one micro-batch of one query.

    Attributes
    ----------
    query : str
        Query name.
    batch_id : int
        Micro-batch id (continues across restarts from the checkpoint).
    rows_in : int
        Records read from the source.
    valid, quarantined : int or None
        Records that decoded / were quarantined (None for queries that do not decode).
    late : int
        Records dropped because their event time was behind the watermark (the late-data
        metric: such records are counted here, never silently lost).
    duplicates : int
        Records dropped as duplicates of an ``event_id`` seen within the watermark.
    """

    query: str
    batch_id: int
    rows_in: int
    valid: int | None
    quarantined: int | None
    late: int
    duplicates: int


@dataclass
class StreamReport:
    """What a pipeline run processed: per-batch progress and whether a signal stopped it."""

    batches: list[BatchProgress] = field(default_factory=list)
    stopped_by_signal: bool = False

    def total(self, name: str, query: str | None = None) -> int:
        """Sum of a :class:`BatchProgress` count over batches (of one query if given)."""
        return sum(
            int(getattr(b, name) or 0) for b in self.batches if query is None or b.query == query
        )


def pin_shuffle_partitions(spark: SparkSession, partitions: int) -> None:
    """Set ``spark.sql.shuffle.partitions`` before a stateful query starts for the first time.

    Streaming state (watermarked de-duplication, windowed aggregation) is stored in one
    state-store partition per shuffle partition, and the number is written to the
    checkpoint at the first start: later changes of the setting are ignored for that
    checkpoint. Pick it once (2-4 per core for local runs, not Spark's default 200, which
    makes small micro-batches several times slower).
    """
    check_positive("pin_shuffle_partitions", "partitions", partitions)
    spark.conf.set("spark.sql.shuffle.partitions", str(int(partitions)))


def _progress_dict(progress: Any) -> dict[str, Any]:
    if isinstance(progress, dict):
        return progress
    text = getattr(progress, "json", None)
    if isinstance(text, str):
        return dict(json.loads(text))
    return dict(json.loads(str(progress)))  # pragma: no cover - older pyspark


def _metrics(observed: Mapping[str, Any]) -> dict[str, Any]:
    metrics: Any = observed.get(_METRICS) or {}
    if hasattr(metrics, "asDict"):  # a Row when the progress object was not JSON
        metrics = metrics.asDict()
    if isinstance(metrics, Mapping) and "values" in metrics and "schema" in metrics:
        # Spark Connect serialises a Row as {"values": [...], "schema": {...}}
        names = [f["name"] for f in metrics["schema"].get("fields", [])]
        metrics = dict(zip(names, metrics["values"], strict=False))
    return dict(metrics) if isinstance(metrics, Mapping) else {}


def _progress_of(query: StreamingQuery, progress: Mapping[str, Any]) -> BatchProgress:
    metrics = _metrics(progress.get("observedMetrics") or {})
    late = 0
    duplicates = 0
    for op in progress.get("stateOperators") or []:
        late += int(op.get("numRowsDroppedByWatermark") or 0)
        duplicates += int((op.get("customMetrics") or {}).get("numDroppedDuplicateRows") or 0)
    source_rows = progress.get("numInputRows")
    if source_rows is None:  # not in Spark Connect's JSON: sum over the sources
        source_rows = sum(int(s.get("numInputRows") or 0) for s in progress.get("sources") or [])
    return BatchProgress(
        query=str(progress.get("name") or query.name or query.id),
        batch_id=int(progress.get("batchId", -1)),
        rows_in=int(metrics.get("rows_in", source_rows) or 0),
        valid=int(metrics["valid"]) if "valid" in metrics else None,
        quarantined=int(metrics["quarantined"]) if "quarantined" in metrics else None,
        late=late,
        duplicates=duplicates,
    )


def batch_progress(query: StreamingQuery) -> list[BatchProgress]:
    """Per-batch counts of a query, from ``query.recentProgress``.

    ``rows_in`` is the source's ``numInputRows``; ``valid`` / ``quarantined`` come from the
    observed metrics that :func:`start_decoded` attaches; ``late`` sums
    ``numRowsDroppedByWatermark`` and ``duplicates`` the ``numDroppedDuplicateRows`` of
    the query's stateful operators. Spark keeps the last
    ``spark.sql.streaming.numRecentProgressUpdates`` (100) updates; poll or use a
    ``StreamingQueryListener`` for long runs.
    """
    out = []
    for item in query.recentProgress:
        progress = _progress_dict(item)
        out.append(_progress_of(query, progress))
    return out


StreamFormat = Literal["parquet", "delta"]
#: Writer of Delta outputs: the Spark connector or the ``deltalake`` package (delta-rs).
DeltaWriter = Literal["spark", "deltalake"]


def _write_decoded_batch(
    batch_df: DataFrame,
    batch_id: int,
    *,
    valid_write: BatchWriter,
    quarantine_write: BatchWriter,
    valid_cols: Sequence[str],
    quarantine_cols: Sequence[str],
) -> None:
    """``foreachBatch`` body: write the valid and quarantined rows of one decoded batch."""
    from pyspark.sql import functions as F

    batch_df = batch_df.persist()  # parse once, write twice
    try:
        err = F.col("error")
        valid_write(batch_df.filter(err.isNull()).select(*valid_cols), batch_id)
        quarantine_write(batch_df.filter(err.isNotNull()).select(*quarantine_cols), batch_id)
    finally:
        batch_df.unpersist()


def _check_event_fields(
    func: str, schema: StructType, dedupe_key: str | None, event_time: str | None
) -> None:
    if (dedupe_key is None) != (event_time is None):
        raise SchemaError(f"{func}(): give both dedupe_key= and event_time=, or neither")
    for arg, value in (("dedupe_key", dedupe_key), ("event_time", event_time)):
        if value is not None and value not in schema.fieldNames():
            raise SchemaError(
                f"{func}(): {arg}={value!r} is not a schema field; fields: {schema.fieldNames()}"
            )


def _observed(decoded: DataFrame) -> DataFrame:
    from pyspark.sql import functions as F

    err = F.col("error")
    return decoded.observe(
        _METRICS,
        F.count(F.lit(1)).alias("rows_in"),
        F.count_if(err.isNull()).alias("valid"),
        F.count_if(err.isNotNull()).alias("quarantined"),
    )


def _extra_columns(decoded: DataFrame, schema: StructType) -> list[str]:
    reserved = {*schema.fieldNames(), "raw", "error", *COORDINATES}
    return [c for c in decoded.columns if c not in reserved]


def _deduplicated(
    decoded: DataFrame, *, dedupe_key: str, event_time: str, watermark: str, extra: Sequence[str]
) -> DataFrame:
    """Valid records de-duplicated by ``dedupe_key`` within the watermark; rejected kept."""
    from pyspark.sql import functions as F

    err = F.col("error")
    record_id = F.concat_ws(
        ":", F.lit("q"), *[F.col(c).cast("string") for c in (*COORDINATES[:3], *extra)]
    )
    return (
        decoded.withColumn(
            "__kamlib_key",
            F.when(err.isNull(), F.concat(F.lit("v:"), F.col(dedupe_key))).otherwise(record_id),
        )
        # Rejected records carry a null event time: they never advance the watermark,
        # are never late and (unique keys) never duplicates.
        .withColumn("__kamlib_et", F.when(err.isNull(), F.col(event_time)))
        .withWatermark("__kamlib_et", watermark)
        .dropDuplicatesWithinWatermark(["__kamlib_key"])
    )


def _output_writer(
    path: str,
    *,
    format: StreamFormat,
    delta_writer: DeltaWriter,
    app_id: str,
) -> BatchWriter:
    from kamlib.streaming.sinks import delta_batch_writer, parquet_batch_writer

    if format == "delta":
        return delta_batch_writer(path, app_id=app_id, engine=delta_writer)
    return parquet_batch_writer(path)


def start_decoded(
    source: DataFrame,
    schema: StructType,
    *,
    valid_path: str,
    quarantine_path: str,
    checkpoint: str,
    dedupe_key: str | None = None,
    event_time: str | None = None,
    watermark: str = "1 day",
    available_now: bool = False,
    processing_time: str | None = None,
    query_name: str = "decode",
    ranges: Mapping[str, tuple[float, float]] | None = None,
    format: StreamFormat = "parquet",
    delta_writer: DeltaWriter = "spark",
) -> StreamingQuery:
    """Start one query that decodes each micro-batch once and writes valid + quarantine rows.

    The plan is ``source -> decode (one projection) -> [watermark + dedupe] ->
    foreachBatch``; the batch function persists the decoded batch and writes the valid rows
    (schema fields) to ``valid_path`` and the rejected rows (``raw``, ``error``,
    coordinates) to ``quarantine_path``. Each write is replay-safe, so output is
    exactly-once across restarts (a batch replayed after a crash has the same id and the
    same input: the checkpoint's offsets log):

    * ``format="parquet"``: :func:`kamlib.streaming.sinks.write_batch_files`, a dynamic
      partition overwrite of partition ``batch_id=<id>`` (readers see a ``batch_id``
      column);
    * ``format="delta"``: Delta tables written with ``txnAppId`` (one app id per output,
      derived from ``checkpoint``) and ``txnVersion = batch id``, by the Spark connector
      (``delta_writer="spark"``) or the ``deltalake`` package (``"deltalake"``).

    Both outputs share one checkpoint and start and stop together; paths may be local
    or any Hadoop file system URI (``s3a://...``).

    With ``dedupe_key`` and ``event_time`` the valid records are de-duplicated by key with
    ``dropDuplicatesWithinWatermark`` on ``event_time`` and ``watermark``: a key seen again
    while ``event_time + watermark`` is ahead of the watermark is dropped (counted as
    ``duplicates``); a valid record whose event time is behind the watermark is dropped and
    counted as ``late`` in :func:`batch_progress`. Quarantined records have no event time and
    are never dropped.

    Parameters
    ----------
    source : pyspark.sql.DataFrame
        Streaming records in the Kafka record shape (any kamlib source).
    schema : pyspark.sql.types.StructType
        Event schema for :func:`kamlib.streaming.decode_json`.
    valid_path, quarantine_path : str
        Output locations (local paths or URIs).
    checkpoint : str
        Checkpoint directory (required).
    dedupe_key, event_time : str, optional
        De-duplication key and event-time field (both or neither).
    watermark : str
        Delay threshold, e.g. ``"1 day"``.
    available_now, processing_time, query_name
        Trigger and query name.
    ranges : Mapping, optional
        Value ranges for :func:`kamlib.streaming.decode_json`.
    format : {"parquet", "delta"}
        Output format.
    delta_writer : {"spark", "deltalake"}
        Delta writer (``format="delta"`` only).

    Returns
    -------
    pyspark.sql.streaming.StreamingQuery
        The running query; see :func:`batch_progress`.
    """
    from kamlib.streaming.sinks import default_app_id

    func = "start_decoded"
    check = require_checkpoint(func, checkpoint)
    check_choice(func, "format", format, ("parquet", "delta"))
    check_choice(func, "delta_writer", delta_writer, ("spark", "deltalake"))
    if not source.isStreaming:
        raise SchemaError(f"{func}(): source must be a streaming DataFrame")
    _check_event_fields(func, schema, dedupe_key, event_time)
    decoded = decode_columns(source, schema, ranges=ranges, func=func)
    extra = _extra_columns(decoded, schema)
    decoded = _observed(decoded)
    if dedupe_key is not None and event_time is not None:
        decoded = _deduplicated(
            decoded, dedupe_key=dedupe_key, event_time=event_time, watermark=watermark, extra=extra
        )
    app_id = default_app_id(check)
    fn = functools.partial(
        _write_decoded_batch,
        valid_write=_output_writer(
            valid_path, format=format, delta_writer=delta_writer, app_id=f"{app_id}-valid"
        ),
        quarantine_write=_output_writer(
            quarantine_path,
            format=format,
            delta_writer=delta_writer,
            app_id=f"{app_id}-quarantine",
        ),
        valid_cols=tuple(schema.fieldNames()),
        quarantine_cols=("raw", "error", *COORDINATES, *extra),
    )
    writer = (
        decoded.writeStream.queryName(query_name)
        .option("checkpointLocation", check)
        .foreachBatch(fn)
    )
    writer = apply_trigger(
        writer, available_now=available_now, processing_time=processing_time, func=func
    )
    return writer.start()


#: Partition column of the decoded log: the output queries read only their half of it.
_LOG_VALID = "kamlib_valid"


def _start_decode_log(
    source: DataFrame,
    schema: StructType,
    *,
    log_path: str,
    checkpoint: str,
    dedupe_key: str,
    event_time: str,
    watermark: str,
    trigger: Mapping[str, Any],
) -> tuple[StreamingQuery, StructType]:
    """The ``orders`` ingest query of the parquet pipeline: parse once into a decoded log.

    Decodes each micro-batch once, counts it (observed metrics), de-duplicates the valid
    records within the watermark (rejected ones kept, see :func:`_deduplicated`) and appends
    every record, typed, to the parquet file sink at ``log_path`` (``raw``, coordinates and
    extra columns only on rejected records), partitioned by validity so that each output
    query reads only its part. Returns the query and the log's schema (all fields
    nullable, as a file source reads them).
    """
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    from kamlib.streaming.sinks import parquet_sink

    decoded = decode_columns(source, schema, func="run_order_stream")
    extra = _extra_columns(decoded, schema)
    err = F.col("error")
    # The outputs need only the fields of a valid record: its raw text, coordinates and extra
    # columns are dropped before the de-duplication's shuffle (a third of the bytes).
    slim = _observed(decoded).select(
        *schema.fieldNames(),
        *[F.when(err.isNotNull(), F.col(c)).alias(c) for c in ("raw", *COORDINATES, *extra)],
        "error",
    )
    records = _deduplicated(
        slim, dedupe_key=dedupe_key, event_time=event_time, watermark=watermark, extra=extra
    ).select(
        *schema.fieldNames(),
        "raw",
        "error",
        *COORDINATES,
        *extra,
        err.isNull().alias(_LOG_VALID),
    )
    log_schema = T.StructType(
        [T.StructField(f.name, f.dataType, True) for f in records.schema.fields]
    )
    query = parquet_sink(
        records,
        log_path,
        checkpoint=checkpoint,
        query_name="orders",
        partition_by=_LOG_VALID,
        **trigger,
    )
    return query, log_schema


def _start_parquet_outputs(
    spark: SparkSession, plan: _OrderPlan, log_schema: StructType
) -> list[StreamingQuery]:
    """orders, quarantine and revenue_daily: three stateless file-sink queries on the decoded log.

    Each streams the committed files of the decoded log (typed parquet: no JSON parse) and
    appends to its own exactly-once file sink: the valid records' ORDER_EVENT fields, the
    rejected records (``raw``, ``error``, coordinates, extra columns) and
    :func:`revenue_daily_stream` of the valid records (already de-duplicated).
    """
    from pyspark.sql import functions as F

    from kamlib.schema import ORDER_EVENT
    from kamlib.streaming.sinks import parquet_sink

    log = spark.readStream.schema(log_schema).parquet(plan.log_path)
    is_valid = F.col(_LOG_VALID)
    fields = ORDER_EVENT.fieldNames()
    valid = log.filter(is_valid).select(*fields)
    rejected_cols = [c for c in log_schema.fieldNames() if c not in (*fields, _LOG_VALID)]
    outputs = {
        "orders_files": ("orders", valid),
        "quarantine": ("quarantine", log.filter(~is_valid).select(*rejected_cols)),
        "revenue_daily": (
            "revenue_daily",
            revenue_daily_stream(valid, watermark=plan.watermark, dedupe=False),
        ),
    }
    queries: list[StreamingQuery] = []
    try:
        for name, (output, frame) in outputs.items():
            queries.append(
                parquet_sink(
                    frame,
                    plan.path(output),
                    checkpoint=f"{plan.checkpoint}/{name}",
                    query_name=name,
                    **plan.trigger,
                )
            )
    except BaseException:
        for query in queries:
            query.stop()
        raise
    return queries


def revenue_daily_stream(
    orders: DataFrame,
    *,
    watermark: str = "1 day",
    dedupe: bool = True,
) -> DataFrame:
    """Daily revenue per account from a stream of decoded orders (append-mode ready).

    ``revenue`` is the sum of ``amount`` and ``orders`` the number of distinct
    ``event_id`` per ``account_id`` and UTC day ``day = date(event_time)`` (1-day tumbling
    event-time windows, aligned to UTC midnight). The watermark ``max(event_time) -
    watermark`` decides when a day is final: in append mode a day's row is written once
    the watermark passes its end, and orders behind the watermark are dropped and counted
    (``numRowsDroppedByWatermark``). With ``dedupe`` an ``event_id`` seen again within the
    watermark is counted once. Amounts are summed as given (one currency per account is
    assumed).
    """
    from pyspark.sql import functions as F

    from kamlib._validation import require_columns

    require_columns(
        orders,
        "revenue_daily_stream",
        account_col=("account_id", "any"),
        time_col=("event_time", "timestamp"),
        amount_col=("amount", "numeric"),
        id_col=("event_id", "any"),
    )
    stream = orders.withWatermark("event_time", watermark)
    if dedupe:
        stream = stream.dropDuplicatesWithinWatermark(["event_id"])
    daily = stream.groupBy("account_id", F.window("event_time", "1 day")).agg(
        F.sum("amount").alias("revenue"), F.count(F.lit(1)).alias("orders")
    )
    return daily.select(
        "account_id",
        # UTC calendar day of the (UTC-midnight aligned) window, whatever the session time zone
        F.date_from_unix_date(
            F.floor(F.unix_seconds(F.col("window.start")) / F.lit(86400)).cast("int")
        ).alias("day"),
        "revenue",
        "orders",
    )


def await_queries(
    queries: Sequence[StreamingQuery],
    *,
    timeout: float | None = None,
    handle_signals: bool = True,
) -> bool:
    """Wait until every query has terminated; stop them all cleanly on SIGINT / SIGTERM.

    On a signal (or ``timeout`` seconds) every query is stopped with ``query.stop()``,
    which interrupts the current micro-batch; its offsets are not committed, so the next
    start replays it and nothing is lost or duplicated. Signal handlers are installed only
    when called from the main thread and are restored afterwards.

    Returns
    -------
    bool
        True when a signal (or the timeout) stopped the queries, False when they finished.

    Raises
    ------
    KamlibError
        When a query failed; the message carries the query's exception.
    """
    stop = threading.Event()
    previous: dict[signal.Signals, Any] = {}
    if handle_signals and threading.current_thread() is threading.main_thread():

        def _on_signal(signum: int, frame: Any) -> None:
            log.info("received signal %s: stopping streaming queries", signum)
            stop.set()

        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, _on_signal)
    deadline = None if timeout is None else time.monotonic() + timeout
    stopped = False
    try:
        while True:
            if stop.is_set() or (deadline is not None and time.monotonic() >= deadline):
                for query in queries:
                    if query.isActive:
                        query.stop()
                stopped = True
                break
            if not any(q.isActive for q in queries):
                break
            for query in queries:
                if query.isActive:
                    query.awaitTermination(1)
    except Exception as exc:
        for query in queries:
            if query.isActive:
                query.stop()
        raise KamlibError(f"streaming query failed: {exc}") from None
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    for query in queries:
        failure = query.exception()
        if failure is not None:
            raise KamlibError(f"streaming query {query.name!r} failed: {failure}")
    return stopped


def delta_writer_for(spark: SparkSession, func: str, option: str = "format='delta'") -> DeltaWriter:
    """The Delta writer ``spark`` can use: ``"spark"`` (the connector), else ``"deltalake"``.

    Raises a one-line :class:`SchemaError` naming both ways to add Delta when neither the
    connector is on the classpath nor the ``deltalake`` package is installed.
    """
    from kamlib.streaming.sinks import _delta_package, delta_connector_available

    if delta_connector_available(spark):
        return "spark"
    try:
        import deltalake  # noqa: F401
    except ImportError:
        raise SchemaError(
            f"{func}: {option} needs the Delta Lake Spark connector ({_delta_package()} = "
            "kamlib.connectors.packages(delta=True), e.g. spark-submit --packages) or the "
            "Python package deltalake (pip install deltalake); neither is available"
        ) from None
    return "deltalake"


def _ensure_delta_table(spark: SparkSession, path: str, schema: StructType) -> None:
    """Create an empty Delta table at ``path`` (connector) unless one is there already."""
    try:
        spark.read.format("delta").load(path).schema  # noqa: B018
    except Exception:
        spark.createDataFrame([], schema).write.format("delta").mode("append").save(path)


def run_order_stream(
    spark: SparkSession,
    *,
    input: str,
    output: str,
    checkpoint: str,
    available_now: bool = False,
    watermark: str = "1 day",
    processing_time: str = "10 seconds",
    max_files_per_trigger: int | None = None,
    shuffle_partitions: int | None = None,
    timeout: float | None = None,
    handle_signals: bool = True,
    source: DataFrame | None = None,
    format: StreamFormat = "parquet",
) -> StreamReport:
    """The ``kamlib stream`` pipeline: JSON-lines order files to orders, quarantine, revenue.

    ``source`` replaces the file source with any streaming DataFrame in the Kafka record
    shape (e.g. :func:`kamlib.streaming.kafka_source`); ``input`` is then ignored.
    ``input``, ``output`` and ``checkpoint`` are local paths or any Hadoop file system URI
    (``s3a://bucket/...``); kamlib never touches them with Python file APIs.

    Outputs (``output/orders``: the ORDER_EVENT fields; ``output/quarantine``: ``raw``,
    ``error``, coordinates, ``file``; ``output/revenue_daily``: ``account_id``, ``day``,
    ``revenue``, ``orders``), with one checkpoint per query under ``checkpoint``:

    * ``format="parquet"`` (default): the source is parsed once, by the ``orders`` query:
      it decodes with :data:`kamlib.schema.ORDER_EVENT`, counts, de-duplicates
      ``event_id`` within the watermark (late orders dropped and counted) and appends
      every record, typed, to a decoded log (a parquet file sink at
      ``checkpoint/decoded``, kept with the checkpoints). Three stateless queries stream
      that log into the outputs with Spark's file sink: ``orders_files`` (the valid
      orders), ``quarantine`` (the rejected records) and ``revenue_daily``
      (:func:`revenue_daily_stream`). Every write is exactly-once by the sinks'
      ``_spark_metadata`` logs, and plain ``spark.read.parquet`` sees exactly the
      documented columns.
    * ``format="delta"``: three Delta tables. One ``orders`` query decodes each
      micro-batch once and writes the orders and quarantine tables
      (:func:`start_decoded`); ``revenue_daily`` streams the orders table (Spark
      connector) or re-decodes the source (``deltalake`` fallback) into
      :func:`revenue_daily_stream`. Every batch write carries ``txnAppId`` (from the
      query's checkpoint) and ``txnVersion`` (the batch id), so a replayed batch is a
      no-op. Uses the Delta Spark connector when on the classpath, else ``deltalake``;
      :class:`SchemaError` when neither is available.

    The outputs are their own queries because a query has one sink and a stateful
    aggregation cannot run inside ``foreachBatch``. With ``available_now`` the ``orders``
    query finishes before the queries that read its output start; otherwise all run with
    a processing-time trigger until SIGINT / SIGTERM (or ``timeout``).

    A crash at any point restarts from ``checkpoint``, including one during the very first
    offset write of a query: while the queries run, Spark's
    ``spark.sql.streaming.verifyCheckpointDirectoryEmptyOnStart`` check (which such a
    crash trips on Spark 4.1+) is off for the session, and the setting is restored after.

    Returns
    -------
    StreamReport
        Per-batch progress of the queries.
    """
    func = "run_order_stream"
    check_choice(func, "format", format, ("parquet", "delta"))
    paths = (("output", output),) if source is not None else (("input", input), ("output", output))
    for arg, value in paths:
        if not isinstance(value, str) or not value:
            raise SchemaError(f"{func}(): {arg}= must be a directory path, found {value!r}")
    require_checkpoint(func, checkpoint)
    delta_writer: DeltaWriter = "spark"
    if format == "delta":
        delta_writer = delta_writer_for(spark, f"{func}()")
    if shuffle_partitions is not None:
        pin_shuffle_partitions(spark, shuffle_partitions)
    plan = _OrderPlan(
        output=output.rstrip("/"),
        checkpoint=checkpoint.rstrip("/"),
        watermark=watermark,
        format=format,
        delta_writer=delta_writer,
        trigger={"available_now": True} if available_now else {"processing_time": processing_time},
    )
    if source is None:
        source = _order_files(spark, input, max_files_per_trigger, func)
    report = StreamReport()
    with _restartable_checkpoints(spark):
        queries, start_outputs = _start_order_ingest(spark, source, plan)
        try:
            if available_now:
                report.stopped_by_signal = await_queries(
                    queries, timeout=timeout, handle_signals=handle_signals
                )
            if not report.stopped_by_signal:
                queries.extend(start_outputs())
                report.stopped_by_signal = await_queries(
                    queries, timeout=timeout, handle_signals=handle_signals
                )
        finally:
            for query in queries:
                if query.isActive:
                    query.stop()
                report.batches.extend(batch_progress(query))
    return report


_VERIFY_EMPTY_ON_START = "spark.sql.streaming.verifyCheckpointDirectoryEmptyOnStart"


@contextlib.contextmanager
def _restartable_checkpoints(spark: SparkSession) -> Iterator[None]:
    """Let a query whose first offset write was interrupted restart (Spark >= 4.1).

    Spark writes a batch's offsets to a temporary file and renames it. A crash between the
    two (a SIGKILL, a lost node; on object stores the rename is a copy) leaves only the
    temporary file, so the query has no batch yet but a non-empty ``offsets`` folder, and
    Spark 4.1+ refuses to start it (``STATE_STORE_CHECKPOINT_LOCATION_NOT_EMPTY``) until
    the folder is cleaned by hand. The check guards against two queries sharing a
    checkpoint; the runner gives each of its queries its own folder, so it turns the check
    off while its queries run and restores the session's setting afterwards.
    """
    previous = spark.conf.get(_VERIFY_EMPTY_ON_START, None)
    spark.conf.set(_VERIFY_EMPTY_ON_START, "false")
    try:
        yield
    finally:
        if previous is None:
            spark.conf.unset(_VERIFY_EMPTY_ON_START)
        else:
            spark.conf.set(_VERIFY_EMPTY_ON_START, previous)


@dataclass(frozen=True)
class _OrderPlan:
    """Where and how :func:`run_order_stream` writes (checked options)."""

    output: str
    checkpoint: str
    watermark: str
    format: StreamFormat
    delta_writer: DeltaWriter
    trigger: dict[str, Any]

    def path(self, name: str) -> str:
        return f"{self.output}/{name}"

    @property
    def log_path(self) -> str:
        """The decoded log of the parquet pipeline (kamlib's state, beside the checkpoints)."""
        return f"{self.checkpoint}/decoded"


def _order_schema() -> StructType:
    """ORDER_EVENT with every field nullable (the schema of the written orders)."""
    from pyspark.sql import types as T

    from kamlib.schema import ORDER_EVENT

    return T.StructType([T.StructField(f.name, f.dataType, True) for f in ORDER_EVENT.fields])


def _order_files(
    spark: SparkSession, input: str, max_files_per_trigger: int | None, func: str
) -> DataFrame:
    """The file source on ``input``, with one-line errors for a missing folder or file system."""
    from kamlib.streaming.sources import file_source

    try:
        return file_source(spark, input, max_files_per_trigger=max_files_per_trigger)
    except Exception as exc:
        from kamlib.connectors import _filesystem_error, _filesystem_missing

        if _filesystem_missing(exc):
            raise _filesystem_error(f"{func}()", "input=", input) from None
        if not _path_missing(exc):
            raise
        raise SchemaError(
            f"{func}(): input={input!r} does not exist; create the landing directory first"
        ) from None


def _start_order_ingest(
    spark: SparkSession, source: DataFrame, plan: _OrderPlan
) -> tuple[list[StreamingQuery], Callable[[], list[StreamingQuery]]]:
    """The ``orders`` query (the one reading the source) and how to start those that follow it.

    Parquet: the decoded log, then the three output queries on it; Delta: one query into the
    orders and quarantine tables, then the revenue_daily query.
    """
    from kamlib.schema import ORDER_EVENT

    events: dict[str, Any] = {
        "dedupe_key": "event_id",
        "event_time": "event_time",
        "watermark": plan.watermark,
    }
    checkpoint = f"{plan.checkpoint}/orders"
    if plan.format == "parquet":
        query, log_schema = _start_decode_log(
            source,
            ORDER_EVENT,
            log_path=plan.log_path,
            checkpoint=checkpoint,
            trigger=plan.trigger,
            **events,
        )
        return [query], lambda: _start_parquet_outputs(spark, plan, log_schema)
    if plan.delta_writer == "spark":
        _ensure_delta_table(spark, plan.path("orders"), _order_schema())
    query = start_decoded(
        source,
        ORDER_EVENT,
        valid_path=plan.path("orders"),
        quarantine_path=plan.path("quarantine"),
        checkpoint=checkpoint,
        query_name="orders",
        format="delta",
        delta_writer=plan.delta_writer,
        **events,
        **plan.trigger,
    )
    return [query], lambda: [_start_delta_revenue(spark, source, plan)]


def _start_delta_revenue(
    spark: SparkSession, source: DataFrame, plan: _OrderPlan
) -> StreamingQuery:
    """The Delta revenue_daily query: the orders table (connector) or the source, re-decoded."""
    from kamlib.streaming.sinks import default_app_id, delta_batch_writer

    checkpoint = f"{plan.checkpoint}/revenue_daily"
    redecoded = plan.delta_writer != "spark"
    if not redecoded:  # the de-duplicated, exactly-once orders table
        orders = spark.readStream.format("delta").load(plan.path("orders"))
    else:  # no Delta source without the connector: decode the source again
        from pyspark.sql import functions as F

        from kamlib.schema import ORDER_EVENT

        orders = (
            decode_columns(source, ORDER_EVENT, func="run_order_stream")
            .filter(F.col("error").isNull())
            .select(*ORDER_EVENT.fieldNames())
        )
    daily = revenue_daily_stream(orders, watermark=plan.watermark, dedupe=redecoded)
    writer = daily.writeStream.queryName("revenue_daily").option("checkpointLocation", checkpoint)
    writer = apply_trigger(writer, func="run_order_stream", **plan.trigger)
    app_id = default_app_id(checkpoint)
    sink = delta_batch_writer(plan.path("revenue_daily"), app_id=app_id, engine=plan.delta_writer)
    return writer.foreachBatch(sink).start()
