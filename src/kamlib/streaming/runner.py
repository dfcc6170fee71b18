"""Run decode-and-quarantine pipelines as streaming queries, with progress and clean stops.

:func:`start_decoded` starts ONE query that parses each micro-batch once and writes both
the valid and the quarantined records (so they are always started, checkpointed and
stopped together). :func:`await_queries` waits for queries and stops them cleanly on
SIGINT / SIGTERM. :func:`batch_progress` turns query progress into rows in / valid /
quarantined / late / duplicates per batch. :func:`run_order_stream` is the end-to-end
order pipeline behind ``kamlib stream``.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kamlib._validation import check_positive
from kamlib.errors import KamlibError, SchemaError
from kamlib.streaming.decode import COORDINATES, decode_columns
from kamlib.streaming.sinks import (
    _local_path,
    _marker,
    _write_marker,
    apply_trigger,
    require_checkpoint,
    write_batch_files,
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
_MARKERS = "_kamlib_batches"


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


def _write_decoded_batch(
    batch_df: DataFrame,
    batch_id: int,
    *,
    valid_path: str,
    quarantine_path: str,
    valid_cols: Sequence[str],
    quarantine_cols: Sequence[str],
    marker_dir: str | None,
) -> None:
    """``foreachBatch`` body: write the valid and quarantined rows of one decoded batch."""
    from pyspark.sql import functions as F

    if marker_dir is not None and os.path.exists(_marker(marker_dir, batch_id)):
        return  # committed before a restart; Spark is replaying it
    batch_df = batch_df.persist()  # parse once, write twice
    try:
        err = F.col("error")
        write_batch_files(batch_df.filter(err.isNull()).select(*valid_cols), valid_path, batch_id)
        write_batch_files(
            batch_df.filter(err.isNotNull()).select(*quarantine_cols), quarantine_path, batch_id
        )
    finally:
        batch_df.unpersist()
    if marker_dir is not None:
        _write_marker(marker_dir, batch_id, {"valid": valid_path, "quarantine": quarantine_path})


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
) -> StreamingQuery:
    """Start one query that decodes each micro-batch once and writes valid + quarantine rows.

    The plan is ``source -> decode (one projection) -> [watermark + dedupe] ->
    foreachBatch``; the batch function persists the decoded batch and writes the valid rows
    (schema fields) to ``valid_path`` and the rejected rows (``raw``, ``error``,
    coordinates) to ``quarantine_path`` as parquet files named ``batch-<id>-part-...``
    (:func:`kamlib.streaming.sinks.write_batch_files`), then records a marker
    ``valid_path/_kamlib_batches/batch-<id>.json``. A batch replayed after a restart (same
    id, same input: the checkpoint's offsets log) is skipped when its marker exists and
    otherwise replaces its own files, so output is exactly-once. Both
    outputs share one checkpoint and start and stop together.

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
        Output directories (the markers need a local or mounted file system).
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

    Returns
    -------
    pyspark.sql.streaming.StreamingQuery
        The running query; see :func:`batch_progress`.
    """
    from pyspark.sql import functions as F

    func = "start_decoded"
    check = require_checkpoint(func, checkpoint)
    if not source.isStreaming:
        raise SchemaError(f"{func}(): source must be a streaming DataFrame")
    if (dedupe_key is None) != (event_time is None):
        raise SchemaError(f"{func}(): give both dedupe_key= and event_time=, or neither")
    for arg, value in (("dedupe_key", dedupe_key), ("event_time", event_time)):
        if value is not None and value not in schema.fieldNames():
            raise SchemaError(
                f"{func}(): {arg}={value!r} is not a schema field; fields: {schema.fieldNames()}"
            )
    marker_dir = os.path.join(_local_path(func, valid_path), _MARKERS)
    decoded = decode_columns(source, schema, ranges=ranges, func=func)
    extra = [
        c for c in decoded.columns if c not in {*schema.fieldNames(), "raw", "error", *COORDINATES}
    ]
    err = F.col("error")
    decoded = decoded.observe(
        _METRICS,
        F.count(F.lit(1)).alias("rows_in"),
        F.count_if(err.isNull()).alias("valid"),
        F.count_if(err.isNotNull()).alias("quarantined"),
    )
    if dedupe_key is not None and event_time is not None:
        record_id = F.concat_ws(
            ":", F.lit("q"), *[F.col(c).cast("string") for c in (*COORDINATES[:3], *extra)]
        )
        decoded = (
            decoded.withColumn(
                "_kamlib_key",
                F.when(err.isNull(), F.concat(F.lit("v:"), F.col(dedupe_key))).otherwise(record_id),
            )
            # Rejected records carry a null event time: they never advance the watermark,
            # are never late and (unique keys) never duplicates.
            .withColumn("_kamlib_et", F.when(err.isNull(), F.col(event_time)))
            .withWatermark("_kamlib_et", watermark)
            .dropDuplicatesWithinWatermark(["_kamlib_key"])
        )
    fn = functools.partial(
        _write_decoded_batch,
        valid_path=valid_path,
        quarantine_path=quarantine_path,
        valid_cols=tuple(schema.fieldNames()),
        quarantine_cols=("raw", "error", *COORDINATES, *extra),
        marker_dir=marker_dir,
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
) -> StreamReport:
    """The ``kamlib stream`` pipeline: JSON-lines order files to orders, quarantine, revenue.

    ``source`` replaces the file source with any streaming DataFrame in the Kafka record
    shape (e.g. :func:`kamlib.streaming.kafka_source`); ``input`` is then ignored.

    Two queries, each with its own checkpoint under ``checkpoint``:

    1. ``orders`` (checkpoint ``checkpoint/orders``): :func:`kamlib.streaming.file_source`
       on ``input`` -> decode with :data:`kamlib.schema.ORDER_EVENT` once per micro-batch ->
       de-duplicate ``event_id`` within the watermark (late orders dropped and counted) ->
       ``output/orders`` (the ORDER_EVENT fields) and ``output/quarantine`` (``raw``,
       ``error``, coordinates, ``file``), see :func:`start_decoded`.
    2. ``revenue_daily`` (checkpoint ``checkpoint/revenue_daily``): a file stream of the
       parquet files of ``output/orders`` -> :func:`revenue_daily_stream` -> append to
       ``output/revenue_daily`` (``account_id``, ``day``, ``revenue``, ``orders``).

    The aggregation is a second query because a query has one sink and a stateful
    aggregation cannot run inside ``foreachBatch``; reading the already decoded orders
    keeps parsing to once per record. With ``available_now`` the orders query finishes
    before the revenue query starts; otherwise both run with a processing-time trigger
    until SIGINT / SIGTERM (or ``timeout``).

    Returns
    -------
    StreamReport
        Per-batch progress of both queries.
    """
    from kamlib.schema import ORDER_EVENT
    from kamlib.streaming.sinks import parquet_sink
    from kamlib.streaming.sources import file_source

    func = "run_order_stream"
    paths = (("output", output),) if source is not None else (("input", input), ("output", output))
    for arg, value in paths:
        if not isinstance(value, str) or not value:
            raise SchemaError(f"{func}(): {arg}= must be a directory path, found {value!r}")
    require_checkpoint(func, checkpoint)
    if shuffle_partitions is not None:
        pin_shuffle_partitions(spark, shuffle_partitions)
    if source is None:
        os.makedirs(_local_path(func, input), exist_ok=True)
    orders_path = f"{output.rstrip('/')}/orders"
    quarantine_path = f"{output.rstrip('/')}/quarantine"
    revenue_path = f"{output.rstrip('/')}/revenue_daily"
    os.makedirs(_local_path(func, orders_path), exist_ok=True)
    trigger: dict[str, Any] = (
        {"available_now": True} if available_now else {"processing_time": processing_time}
    )
    if source is None:
        source = file_source(spark, input, max_files_per_trigger=max_files_per_trigger)
    ingest = start_decoded(
        source,
        ORDER_EVENT,
        valid_path=orders_path,
        quarantine_path=quarantine_path,
        checkpoint=f"{checkpoint.rstrip('/')}/orders",
        dedupe_key="event_id",
        event_time="event_time",
        watermark=watermark,
        query_name="orders",
        **trigger,
    )
    report = StreamReport()
    queries = [ingest]
    try:
        if available_now:
            report.stopped_by_signal = await_queries(
                [ingest], timeout=timeout, handle_signals=handle_signals
            )
        if not report.stopped_by_signal:
            from pyspark.sql import types as T

            order_schema = T.StructType(
                [T.StructField(f.name, f.dataType, True) for f in ORDER_EVENT.fields]
            )
            orders = spark.readStream.schema(order_schema).parquet(orders_path)
            revenue = parquet_sink(
                revenue_daily_stream(orders, watermark=watermark),
                revenue_path,
                checkpoint=f"{checkpoint.rstrip('/')}/revenue_daily",
                query_name="revenue_daily",
                **trigger,
            )
            queries.append(revenue)
            report.stopped_by_signal = await_queries(
                queries, timeout=timeout, handle_signals=handle_signals
            )
    finally:
        for query in queries:
            if query.isActive:
                query.stop()
            report.batches.extend(batch_progress(query))
    return report
