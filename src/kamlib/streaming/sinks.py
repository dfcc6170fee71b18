"""Streaming sinks with checkpoints: parquet, Delta, Kafka and idempotent ``foreachBatch`` writers.

Every query needs a checkpoint location: it is where Spark records which source offsets
each micro-batch read and which batches the sink committed, and so what makes a restart
neither lose nor repeat data. The helpers here refuse to start without one.

Delivery guarantees (source replayable, checkpoint kept). Every writer here writes through
Spark (or delta-rs) only: no Python file API touches an output, marker or checkpoint path,
so any URI Spark's Hadoop file systems write (``file:``, ``s3a:``, ``abfss:``, ``gs:``,
``hdfs:``) works as well as a local path, and nothing relies on a rename being atomic.

==============================  ==========================================================
sink                            guarantee and mechanism
==============================  ==========================================================
``parquet_sink`` (file sink)    exactly-once: the sink's ``_spark_metadata`` log lists
                                the files of committed batches; a replayed batch id already
                                in the log is skipped, and readers (``spark.read.parquet``,
                                a file stream) see only logged files, never a torn batch.
                                Output columns are exactly the DataFrame's.
``parquet_batch_writer``        exactly-once: ``write_batch_files``, a dynamic partition
                                overwrite keyed on the batch id (partition
                                ``batch_id=<id>``): a replay replaces its own partition.
                                Readers see a ``batch_id`` column.
Delta, Spark connector          exactly-once: each batch is written with ``txnAppId`` =
                                app id (default: from the checkpoint), ``txnVersion`` =
                                batch id; Delta makes a replayed version a no-op.
Delta, ``deltalake``            exactly-once: the batch id is recorded as a Delta app
                                transaction and a replayed id is skipped.
Kafka                           at-least-once: a replayed batch is sent again.
``idempotent_writer``           exactly-once effects if the wrapped write is idempotent:
                                a Spark-written marker per batch id (dynamic partition
                                overwrite) skips replays of committed batches.
==============================  ==========================================================

``foreachBatch`` functions built here are module-level functions bound with
:func:`functools.partial` (no closures over a SparkSession), so they pickle for Spark
Connect, where they run in a Python worker next to the server.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlparse

from kamlib._validation import check_choice, normalize_by
from kamlib.errors import KamlibError, SchemaError
from kamlib.streaming.sources import (
    _connector_missing,
    connector_error,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.streaming.query import StreamingQuery
    from pyspark.sql.streaming.readwriter import DataStreamWriter

__all__ = [
    "BATCH_ID_COL",
    "DELTA_PACKAGE",
    "BatchWriter",
    "DeltaEngine",
    "OutputMode",
    "apply_trigger",
    "batch_committed",
    "default_app_id",
    "delta_batch_writer",
    "delta_connector_available",
    "delta_sink",
    "idempotent_writer",
    "parquet_batch_writer",
    "parquet_sink",
    "require_checkpoint",
    "write_batch_files",
]

#: Maven coordinate of the Delta Lake Spark connector for kamlib's pinned test Spark (4.2);
#: error messages name :func:`kamlib.connectors.packages` ``(delta=True)`` for the running Spark.
DELTA_PACKAGE = "io.delta:delta-spark_4.2_2.13:4.4.0"


def _delta_package() -> str:
    """The Delta coordinate matching the running Spark (``DELTA_PACKAGE`` if unsupported)."""
    from kamlib.connectors import packages

    try:
        return packages(delta=True)[0]
    except SchemaError:
        return DELTA_PACKAGE


OutputMode = Literal["append", "update", "complete"]
DeltaEngine = Literal["auto", "spark", "deltalake"]
#: A ``foreachBatch`` function: ``(batch_df, batch_id) -> None``.
BatchWriter = Callable[["DataFrame", int], None]


def require_checkpoint(func: str, checkpoint: str | None) -> str:
    """Return ``checkpoint`` or raise :class:`SchemaError` when it is missing or empty."""
    if not isinstance(checkpoint, str) or not checkpoint.strip():
        raise SchemaError(
            f"{func}(): checkpoint= is required (a directory that survives restarts, one per "
            f"query); found {checkpoint!r}. Without it a restart would lose or repeat data."
        )
    return checkpoint


def apply_trigger(
    writer: DataStreamWriter,
    *,
    available_now: bool = False,
    processing_time: str | None = None,
    func: str = "apply_trigger",
) -> DataStreamWriter:
    """Set an ``availableNow`` or processing-time trigger on a stream writer.

    ``available_now=True`` processes everything available when the query starts (in as
    many micro-batches as the source's per-trigger limits make) and then stops: the
    incremental batch job. Otherwise ``processing_time`` (e.g. ``"30 seconds"``) starts a
    micro-batch at that interval; with neither, micro-batches run back to back.
    """
    if available_now and processing_time:
        raise SchemaError(
            f"{func}(): choose either available_now=True or processing_time=, not both"
        )
    if available_now:
        return writer.trigger(availableNow=True)
    if processing_time:
        return writer.trigger(processingTime=processing_time)
    return writer


def _writer(
    df: DataFrame,
    func: str,
    *,
    checkpoint: str | None,
    output_mode: str,
    available_now: bool,
    processing_time: str | None,
    query_name: str | None,
) -> DataStreamWriter:
    check = require_checkpoint(func, checkpoint)
    check_choice(func, "output_mode", output_mode, OutputMode)
    if not df.isStreaming:
        raise SchemaError(f"{func}(): df must be a streaming DataFrame (spark.readStream ...)")
    writer = df.writeStream.outputMode(output_mode).option("checkpointLocation", check)
    if query_name:
        writer = writer.queryName(query_name)
    return apply_trigger(
        writer, available_now=available_now, processing_time=processing_time, func=func
    )


def parquet_sink(
    df: DataFrame,
    path: str,
    *,
    checkpoint: str,
    output_mode: OutputMode = "append",
    partition_by: str | Sequence[str] | None = None,
    available_now: bool = False,
    processing_time: str | None = None,
    query_name: str | None = None,
) -> StreamingQuery:
    """Start a query writing ``df`` to parquet files under ``path`` (exactly-once).

    Parameters
    ----------
    df : pyspark.sql.DataFrame
        A streaming DataFrame. Aggregations need a watermark (append mode emits a window
        once the watermark has passed its end).
    path : str
        Output directory. Read it with ``spark.read.parquet(path)``, which honours the
        sink's ``_spark_metadata`` log (files of unfinished batches are ignored).
    checkpoint : str
        Checkpoint directory (required, one per query).
    output_mode : {"append", "update", "complete"}
        The file sink supports ``"append"`` only; other modes are rejected by Spark.
    partition_by : str or sequence of str, optional
        Partition columns.
    available_now, processing_time, query_name
        Trigger and name, see :func:`apply_trigger`.

    Returns
    -------
    pyspark.sql.streaming.StreamingQuery
        The running query.

    Examples
    --------
    >>> q = parquet_sink(df, "/out/orders", checkpoint="/chk/orders")  # doctest: +SKIP
    """
    writer = _writer(
        df,
        "parquet_sink",
        checkpoint=checkpoint,
        output_mode=output_mode,
        available_now=available_now,
        processing_time=processing_time,
        query_name=query_name,
    )
    cols = normalize_by("parquet_sink", partition_by)
    if cols:
        writer = writer.partitionBy(*cols)
    return writer.format("parquet").start(path)


# --------------------------------------------------------------------------- idempotent writers

#: Partition column that :func:`write_batch_files` and the batch markers add.
BATCH_ID_COL = "batch_id"


def _path_missing(exc: BaseException) -> bool:
    condition = ""
    get_condition = getattr(exc, "getCondition", None)
    if callable(get_condition):
        try:
            condition = str(get_condition() or "")
        except Exception:  # pragma: no cover - defensive
            condition = ""
    return "PATH_NOT_FOUND" in condition or "PATH_NOT_FOUND" in str(exc)


def _join(root: str, name: str) -> str:
    return f"{root.rstrip('/')}/{name}"


def _overwrite_batch(
    batch_df: DataFrame, path: str, batch_id: int, *, partition_by: Sequence[str] = ()
) -> None:
    """Replace partition ``batch_id=<id>`` of the parquet dataset at ``path`` with ``batch_df``.

    Dynamic partition overwrite (``partitionOverwriteMode=dynamic``, a per-write option):
    Spark stages the job's files and, when the job commits, replaces exactly the
    partitions the job wrote. A rerun of the same batch id therefore replaces its own
    rows; other batches are untouched. Works on every Hadoop file system.
    """
    from pyspark.sql import functions as F

    if BATCH_ID_COL in batch_df.columns:
        raise SchemaError(
            f"write_batch_files(): the batch already has a {BATCH_ID_COL!r} column; the writer "
            "adds that partition column itself (rename or drop yours)"
        )
    writer = (
        batch_df.withColumn(BATCH_ID_COL, F.lit(int(batch_id)).cast("long"))
        .write.mode("overwrite")
        .option("partitionOverwriteMode", "dynamic")
        .partitionBy(BATCH_ID_COL, *partition_by)
    )
    writer.parquet(path)


def batch_committed(spark: SparkSession, marker_dir: str, batch_id: int) -> bool:
    """Whether :func:`idempotent_writer` recorded ``batch_id`` as done in ``marker_dir``.

    Reads the marker partition ``marker_dir/batch_id=<id>`` with Spark (any Hadoop file
    system); a missing path means not committed.
    """
    try:
        marker = spark.read.schema("committed_at timestamp").parquet(
            _join(marker_dir, f"{BATCH_ID_COL}={int(batch_id)}")
        )
        return bool(marker.limit(1).count() > 0)
    except Exception as exc:
        if _path_missing(exc):
            return False
        raise


def _record_batch(spark: SparkSession, marker_dir: str, batch_id: int) -> None:
    from pyspark.sql import functions as F

    marker = spark.createDataFrame([(int(batch_id),)], f"{BATCH_ID_COL} long").select(
        F.current_timestamp().alias("committed_at"), BATCH_ID_COL
    )
    (
        marker.coalesce(1)
        .write.mode("overwrite")
        .option("partitionOverwriteMode", "dynamic")
        .partitionBy(BATCH_ID_COL)
        .parquet(marker_dir)
    )


def _idempotent_call(
    batch_df: DataFrame, batch_id: int, *, write: BatchWriter, marker_dir: str
) -> None:
    spark = batch_df.sparkSession
    if batch_committed(spark, marker_dir, batch_id):
        return  # this batch id was committed before the restart: skip the replay
    write(batch_df, batch_id)
    _record_batch(spark, marker_dir, batch_id)


def idempotent_writer(write: BatchWriter, *, marker_dir: str) -> BatchWriter:
    """Wrap a ``foreachBatch`` function so that each batch id takes effect once.

    After ``write(batch_df, batch_id)`` returns, a one-row marker is written with Spark to
    the parquet dataset ``marker_dir`` (partition ``batch_id=<id>``, column
    ``committed_at``; dynamic partition overwrite, so rewriting a marker is harmless); a
    batch whose marker exists is skipped. Spark replays the last, uncommitted batch after a
    crash with the same id and the same input, so a deterministic ``write`` (an upsert /
    MERGE, or an overwrite of a batch-specific location) then has exactly-once effects. A
    crash between ``write`` and the marker replays ``write``; make it idempotent on its
    own (upserts are).

    Parameters
    ----------
    write : callable
        ``write(batch_df, batch_id)``; must be picklable for Spark Connect (a module-level
        function or a :func:`functools.partial` of one).
    marker_dir : str
        Directory or URI of any Hadoop file system (``s3a://...``, ``abfss://...``, a local
        path); keep it next to the checkpoint. ``spark.read.parquet(marker_dir)`` lists
        the committed batch ids.

    Returns
    -------
    callable
        A picklable function for ``writeStream.foreachBatch``.

    Examples
    --------
    >>> def upsert(batch_df, batch_id):  # doctest: +SKIP
    ...     ...  # MERGE batch_df into a table
    >>> fn = idempotent_writer(upsert, marker_dir="s3a://lake/chk/q1-markers")  # doctest: +SKIP
    >>> df.writeStream.foreachBatch(fn)  # doctest: +SKIP
    """
    if not callable(write):
        raise SchemaError("idempotent_writer(): write= must be callable(batch_df, batch_id)")
    if not isinstance(marker_dir, str) or not marker_dir.strip():
        raise SchemaError("idempotent_writer(): marker_dir= must be a non-empty path or URI")
    return functools.partial(_idempotent_call, write=write, marker_dir=marker_dir)


def write_batch_files(
    batch_df: DataFrame,
    path: str,
    batch_id: int,
    *,
    partition_by: Sequence[str] = (),
) -> None:
    """Write one micro-batch as partition ``batch_id=<id>`` of the parquet dataset at ``path``.

    Dynamic partition overwrite keyed on the batch id (``partitionOverwriteMode=dynamic``
    as a per-write option): a rerun of the same batch id replaces that partition instead of
    adding a second copy, so a ``foreachBatch`` replay after a restart leaves exactly one
    copy of its rows. Spark alone writes (any Hadoop file system: local, ``file:``,
    ``s3a:``, ``abfss:``, ``gs:``, ``hdfs:``). Readers of ``path`` see the extra partition
    column ``batch_id`` (long), after ``partition_by`` columns nest below it; drop it when
    only the data columns are wanted.
    """
    _overwrite_batch(batch_df, path, batch_id, partition_by=tuple(partition_by))


def _parquet_batch(
    batch_df: DataFrame, batch_id: int, *, path: str, partition_by: Sequence[str]
) -> None:
    write_batch_files(batch_df, path, batch_id, partition_by=partition_by)


def parquet_batch_writer(
    path: str, *, partition_by: str | Sequence[str] | None = None
) -> BatchWriter:
    """A ``foreachBatch`` function appending each batch to parquet at ``path``, replay-safe.

    Uses :func:`write_batch_files`: each batch is the partition ``batch_id=<id>`` and a
    replayed batch id replaces its own partition, so the output is exactly-once without
    markers; ``spark.read.parquet(path)`` reads it (with the ``batch_id`` column).
    ``path`` is a local path or any Hadoop file system URI. For an append-only stream
    whose readers must see exactly the data columns, prefer :func:`parquet_sink` (the file
    sink's own log gives exactly-once).
    """
    if not isinstance(path, str) or not path.strip():
        raise SchemaError("parquet_batch_writer(): path= must be a non-empty path or URI")
    cols = normalize_by("parquet_batch_writer", partition_by)
    return functools.partial(_parquet_batch, path=path, partition_by=tuple(cols))


def default_app_id(checkpoint: str) -> str:
    """A stable Delta app id for the query that owns ``checkpoint``.

    The checkpoint identifies a query across restarts (Spark's query id lives in it), so
    ``kamlib-`` plus a hash of its location is stable for restarts and distinct for
    different queries. Local paths (and ``file:`` URIs) are made absolute first (a string
    operation, nothing is read); other URIs are used as given, without a trailing ``/``.
    """
    parsed = urlparse(checkpoint)
    if parsed.scheme in ("", "file") or len(parsed.scheme) == 1:  # a Windows drive letter
        local = parsed.path if parsed.scheme == "file" else checkpoint
        key = os.path.abspath(local)
    else:
        key = checkpoint.rstrip("/")
    return "kamlib-" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


def _deltalake_uri(path: str) -> str:
    """A location for ``deltalake``: ``file:`` URIs as plain paths, other URIs unchanged."""
    parsed = urlparse(path)
    return parsed.path if parsed.scheme == "file" else path


def _delta_batch(
    batch_df: DataFrame,
    batch_id: int,
    *,
    path: str,
    app_id: str,
    mode: str,
    partition_by: Sequence[str],
    merge_keys: Sequence[str],
) -> None:
    from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
    from deltalake.exceptions import TableNotFoundError

    try:
        table: DeltaTable | None = DeltaTable(path)
    except TableNotFoundError:
        table = None
    if table is not None:
        done = table.transaction_version(app_id)
        if done is not None and done >= batch_id:
            return  # already committed by this query: a replay after a restart
    props = CommitProperties(app_transactions=[Transaction(app_id=app_id, version=int(batch_id))])
    if merge_keys:
        batch_df = batch_df.dropDuplicates(list(merge_keys))
    data = batch_df.toArrow()
    if merge_keys and table is not None:
        predicate = " AND ".join(f"t.`{k}` = s.`{k}`" for k in merge_keys)
        (
            table.merge(
                data,
                predicate,
                source_alias="s",
                target_alias="t",
                commit_properties=props,
            )
            .when_matched_update_all()
            .when_not_matched_insert_all()
            .execute()
        )
        return
    if mode == "overwrite" and not merge_keys:
        write_deltalake(
            path,
            data,
            mode="overwrite",
            partition_by=list(partition_by) or None,
            commit_properties=props,
        )
    else:
        write_deltalake(
            path,
            data,
            mode="append",
            partition_by=list(partition_by) or None,
            commit_properties=props,
        )


def _delta_spark_batch(
    batch_df: DataFrame,
    batch_id: int,
    *,
    path: str,
    app_id: str,
    mode: str,
    partition_by: Sequence[str],
) -> None:
    """Write one batch with the Delta connector; Delta skips a ``(txnAppId, txnVersion)`` seen."""
    writer = (
        batch_df.write.format("delta")
        .mode(mode)
        .option("txnAppId", app_id)
        .option("txnVersion", str(int(batch_id)))
    )
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    writer.save(path)


def delta_batch_writer(
    path: str,
    *,
    app_id: str,
    mode: Literal["append", "overwrite"] = "append",
    partition_by: str | Sequence[str] | None = None,
    merge_keys: str | Sequence[str] | None = None,
    engine: Literal["deltalake", "spark"] = "deltalake",
) -> BatchWriter:
    """A ``foreachBatch`` function writing each batch to a Delta table, replay-safe.

    ``engine="spark"`` writes with the Delta Lake Spark connector and the idempotent
    writer options ``txnAppId=app_id``, ``txnVersion=batch_id``: Delta records the pair
    in the commit and turns a later write with a version not above the recorded one into
    a no-op, so a batch replayed after a restart is not written twice. Any path the
    connector writes works (``s3a://``, ``abfss://``, local).

    ``engine="deltalake"`` (the fallback for platforms without the connector) writes with
    the ``deltalake`` package (delta-rs): each commit records the Delta app transaction
    ``(app_id, batch_id)`` and a batch whose id is not above the table's
    ``transaction_version(app_id)`` is skipped (the same mechanism). With ``merge_keys``
    each batch is upserted (``MERGE``: update matching rows, insert the others; duplicates
    of a key within one batch keep one arbitrary row). The batch is collected to the
    writing process as Arrow (``DataFrame.toArrow``), so keep micro-batches moderate
    (``maxFilesPerTrigger`` / ``maxOffsetsPerTrigger``); object stores need delta-rs's
    own storage options (``AWS_*`` environment variables).
    """
    check_choice("delta_batch_writer", "mode", mode, ("append", "overwrite"))
    check_choice("delta_batch_writer", "engine", engine, ("deltalake", "spark"))
    if not isinstance(app_id, str) or not app_id:
        raise SchemaError("delta_batch_writer(): app_id= must be a non-empty string")
    if not isinstance(path, str) or not path.strip():
        raise SchemaError("delta_batch_writer(): path= must be a non-empty path or URI")
    cols = tuple(normalize_by("delta_batch_writer", partition_by))
    keys = tuple(normalize_by("delta_batch_writer", merge_keys))
    if engine == "spark":
        if keys:
            raise SchemaError(
                "delta_batch_writer(): merge_keys= needs engine='deltalake'; with the Spark "
                "connector wrap your own MERGE in idempotent_writer()"
            )
        return functools.partial(
            _delta_spark_batch, path=path, app_id=app_id, mode=mode, partition_by=cols
        )
    return functools.partial(
        _delta_batch,
        path=_deltalake_uri(path),
        app_id=app_id,
        mode=mode,
        partition_by=cols,
        merge_keys=keys,
    )


def delta_connector_available(spark: SparkSession) -> bool:
    """Whether the Delta Lake Spark connector is on the classpath.

    Probes ``spark.read.format("delta")`` on a path that does not exist: a missing data
    source fails differently from a missing table. Needs no JVM access (works on Connect).
    """
    try:
        spark.read.format("delta").load("/nonexistent/kamlib-delta-probe").schema  # noqa: B018
    except Exception as exc:
        return not _connector_missing(exc)
    return True  # pragma: no cover - an empty table at that path


def delta_sink(
    df: DataFrame,
    path: str,
    *,
    checkpoint: str,
    engine: DeltaEngine = "auto",
    app_id: str | None = None,
    merge_keys: str | Sequence[str] | None = None,
    partition_by: str | Sequence[str] | None = None,
    available_now: bool = False,
    processing_time: str | None = None,
    query_name: str | None = None,
) -> StreamingQuery:
    """Start a query appending (or upserting) ``df`` into a Delta table at ``path``.

    Each micro-batch is written by a ``foreachBatch`` function (:func:`delta_batch_writer`)
    whose commit records ``(app_id, batch_id)`` as a Delta app transaction, so a batch
    replayed after a restart is a no-op: exactly-once. ``engine="auto"`` uses the Spark
    Delta connector (writer options ``txnAppId`` / ``txnVersion``) when it is on the
    classpath and otherwise the ``deltalake`` package (delta-rs).

    Parameters
    ----------
    df : pyspark.sql.DataFrame
        Streaming input.
    path : str
        Delta table location: a local path or any Hadoop file system URI for the
        connector (``s3a://...``); ``deltalake`` takes local paths and its own URIs.
    checkpoint : str
        Checkpoint directory (required).
    engine : {"auto", "spark", "deltalake"}
        Writer; ``"spark"`` raises :class:`ConnectorUnavailableError` naming
        :data:`DELTA_PACKAGE` when the connector is missing.
    app_id : str, optional
        Delta app id; default :func:`default_app_id` of the checkpoint.
    merge_keys : str or sequence of str, optional
        Upsert on these keys instead of appending (``deltalake`` engine; with the Spark
        connector use :func:`idempotent_writer` around your own ``MERGE``).
    partition_by, available_now, processing_time, query_name
        As in :func:`parquet_sink`.

    Returns
    -------
    pyspark.sql.streaming.StreamingQuery
        The running query.

    Examples
    --------
    >>> q = delta_sink(df, "/lake/orders", checkpoint="/chk/orders")  # doctest: +SKIP
    """
    check_choice("delta_sink", "engine", engine, DeltaEngine)
    check = require_checkpoint("delta_sink", checkpoint)
    keys = normalize_by("delta_sink", merge_keys)
    spark = df.sparkSession
    use_spark = engine == "spark" or (
        engine == "auto" and not keys and delta_connector_available(spark)
    )
    if engine == "spark" and not delta_connector_available(spark):
        raise connector_error("delta_sink", "Delta Lake", _delta_package())
    writer = _writer(
        df,
        "delta_sink",
        checkpoint=check,
        output_mode="append",
        available_now=available_now,
        processing_time=processing_time,
        query_name=query_name,
    )
    cols = normalize_by("delta_sink", partition_by)
    if use_spark:
        spark_fn = delta_batch_writer(
            path, app_id=app_id or default_app_id(check), partition_by=cols, engine="spark"
        )
        return writer.foreachBatch(spark_fn).start()
    try:
        import deltalake  # noqa: F401
    except ImportError:
        raise KamlibError(
            "delta_sink(): neither the Delta Lake Spark connector "
            f"({_delta_package()}) nor the Python package 'deltalake' is available; "
            "pip install deltalake"
        ) from None
    fn = delta_batch_writer(
        path,
        app_id=app_id or default_app_id(check),
        partition_by=cols,
        merge_keys=keys,
    )
    return writer.foreachBatch(fn).start()
