"""Streaming sinks with checkpoints: parquet, Delta, Kafka and idempotent ``foreachBatch`` writers.

Every query needs a checkpoint location: it is where Spark records which source offsets
each micro-batch read and which batches the sink committed, and so what makes a restart
neither lose nor repeat data. The helpers here refuse to start without one.

Delivery guarantees (source replayable, checkpoint kept):

=========================  ===============================================================
sink                       guarantee
=========================  ===============================================================
parquet (file sink)        exactly-once (the sink's ``_spark_metadata`` log)
Delta, Spark connector     exactly-once (the connector's own ``txnAppId``/``txnVersion``)
Delta, ``deltalake``       exactly-once: batch id recorded as a Delta app transaction
Kafka                      at-least-once: a replayed batch is sent again
``idempotent_writer``      exactly-once effects if the wrapped write is deterministic
=========================  ===============================================================

``foreachBatch`` functions built here are module-level functions bound with
:func:`functools.partial` (no closures over a SparkSession), so they pickle for Spark
Connect, where they run in a Python worker next to the server.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal
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
    "DELTA_PACKAGE",
    "BatchWriter",
    "DeltaEngine",
    "OutputMode",
    "apply_trigger",
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


def _local_path(func: str, path: str) -> str:
    parsed = urlparse(path)
    if parsed.scheme in ("", "file"):
        return parsed.path if parsed.scheme == "file" else path
    raise SchemaError(
        f"{func}(): {path!r} is not a local path; batch markers and the deltalake writer "
        "need a local or mounted file system (e.g. /dbfs/..., /Volumes/...)"
    )


def _marker(marker_dir: str, batch_id: int) -> str:
    return os.path.join(marker_dir, f"batch-{int(batch_id):012d}.json")


def _write_marker(marker_dir: str, batch_id: int, info: Mapping[str, Any]) -> None:
    os.makedirs(marker_dir, exist_ok=True)
    final = _marker(marker_dir, batch_id)
    tmp = f"{final}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump({"batch_id": int(batch_id), **dict(info)}, handle)
    os.replace(tmp, final)  # atomic: a marker is either absent or complete


def _idempotent_call(
    batch_df: DataFrame, batch_id: int, *, write: BatchWriter, marker_dir: str
) -> None:
    if os.path.exists(_marker(marker_dir, batch_id)):
        return  # this batch id was committed before the restart: skip the replay
    write(batch_df, batch_id)
    _write_marker(marker_dir, batch_id, {})


def idempotent_writer(write: BatchWriter, *, marker_dir: str) -> BatchWriter:
    """Wrap a ``foreachBatch`` function so that each batch id takes effect once.

    After ``write(batch_df, batch_id)`` returns, a marker file ``batch-<id>.json`` is
    written atomically to ``marker_dir``; a batch whose marker exists is skipped. Spark
    replays the last, uncommitted batch after a crash with the same id and the same
    input, so a deterministic ``write`` (an upsert / MERGE, or an overwrite of a
    batch-specific location) then has exactly-once effects. A crash between ``write`` and
    the marker replays ``write``; make it idempotent on its own (upserts are).

    Parameters
    ----------
    write : callable
        ``write(batch_df, batch_id)``; must be picklable for Spark Connect (a module-level
        function or a :func:`functools.partial` of one).
    marker_dir : str
        Local (or mounted) directory for the markers; keep it next to the checkpoint.

    Returns
    -------
    callable
        A picklable function for ``writeStream.foreachBatch``.

    Examples
    --------
    >>> def upsert(batch_df, batch_id):  # doctest: +SKIP
    ...     ...  # MERGE batch_df into a table
    >>> fn = idempotent_writer(upsert, marker_dir="/chk/q1-markers")  # doctest: +SKIP
    >>> df.writeStream.foreachBatch(fn)  # doctest: +SKIP
    """
    if not callable(write):
        raise SchemaError("idempotent_writer(): write= must be callable(batch_df, batch_id)")
    return functools.partial(
        _idempotent_call, write=write, marker_dir=_local_path("idempotent_writer", marker_dir)
    )


def _batch_prefix(batch_id: int) -> str:
    return f"batch-{int(batch_id):012d}-"


def write_batch_files(
    batch_df: DataFrame,
    path: str,
    batch_id: int,
    *,
    partition_by: Sequence[str] = (),
) -> None:
    """Write ``batch_df`` as parquet files named ``batch-<id>-part-...`` directly in ``path``.

    The batch is written to ``path/_staging-<id>`` (ignored by Spark and pyarrow readers:
    names starting with ``_``), files left by an earlier, interrupted attempt of the same
    batch id are deleted, and the new files are renamed into ``path`` (keeping
    ``key=value`` partition sub-directories). Rerunning a batch id therefore leaves exactly
    one copy of its rows, and ``spark.read.parquet(path)`` sees a flat table. Needs a local
    or mounted file system (atomic ``os.replace``).
    """
    import shutil

    root = _local_path("write_batch_files", path)
    staging = os.path.join(root, f"_staging-{int(batch_id):012d}")
    writer = batch_df.write.mode("overwrite")
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    writer.parquet(staging)
    prefix = _batch_prefix(batch_id)
    for folder, _dirs, files in os.walk(root):
        if os.path.basename(folder).startswith("_") or "/_" in folder[len(root) :]:
            continue
        for name in files:
            if name.startswith(prefix):
                os.remove(os.path.join(folder, name))
    for folder, _dirs, files in os.walk(staging):
        rel = os.path.relpath(folder, staging)
        for name in files:
            if name.startswith(("_", ".")):
                continue
            target_dir = os.path.normpath(os.path.join(root, rel))
            os.makedirs(target_dir, exist_ok=True)
            os.replace(os.path.join(folder, name), os.path.join(target_dir, prefix + name))
    shutil.rmtree(staging, ignore_errors=True)


def _parquet_batch(
    batch_df: DataFrame, batch_id: int, *, path: str, partition_by: Sequence[str]
) -> None:
    write_batch_files(batch_df, path, batch_id, partition_by=partition_by)


def parquet_batch_writer(
    path: str, *, partition_by: str | Sequence[str] | None = None
) -> BatchWriter:
    """A ``foreachBatch`` function appending each batch to parquet at ``path``, replay-safe.

    Uses :func:`write_batch_files`: a replayed batch id replaces its own files instead of
    adding a second copy, so the output is exactly-once even without markers; plain
    ``spark.read.parquet(path)`` reads it. ``path`` must be local or mounted.
    """
    cols = normalize_by("parquet_batch_writer", partition_by)
    return functools.partial(
        _parquet_batch, path=_local_path("parquet_batch_writer", path), partition_by=tuple(cols)
    )


def default_app_id(checkpoint: str) -> str:
    """A stable Delta app id for the query that owns ``checkpoint``.

    The checkpoint identifies a query across restarts (Spark's query id lives in it), so
    ``kamlib-`` plus a hash of its absolute path is stable for restarts and distinct for
    different queries.
    """
    absolute = os.path.abspath(_local_path("default_app_id", checkpoint))
    return "kamlib-" + hashlib.sha256(absolute.encode("utf-8")).hexdigest()[:16]


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


def delta_batch_writer(
    path: str,
    *,
    app_id: str,
    mode: Literal["append", "overwrite"] = "append",
    partition_by: str | Sequence[str] | None = None,
    merge_keys: str | Sequence[str] | None = None,
) -> BatchWriter:
    """A ``foreachBatch`` function writing each batch to a Delta table with ``deltalake``.

    Each commit records the Delta app transaction ``(app_id, batch_id)``; a batch whose id
    is not above the table's recorded ``transaction_version(app_id)`` is skipped, so a
    batch replayed after a restart is not written twice (the same mechanism as the Spark
    connector's ``txnAppId``/``txnVersion``). With ``merge_keys`` each batch is upserted
    (``MERGE``: update matching rows, insert the others; duplicates of a key within one
    batch keep one arbitrary row).

    The batch is collected to the writing process as Arrow (``DataFrame.toArrow``), so
    keep micro-batches moderate (``maxFilesPerTrigger`` / ``maxOffsetsPerTrigger``).
    """
    check_choice("delta_batch_writer", "mode", mode, ("append", "overwrite"))
    if not isinstance(app_id, str) or not app_id:
        raise SchemaError("delta_batch_writer(): app_id= must be a non-empty string")
    return functools.partial(
        _delta_batch,
        path=_local_path("delta_batch_writer", path),
        app_id=app_id,
        mode=mode,
        partition_by=tuple(normalize_by("delta_batch_writer", partition_by)),
        merge_keys=tuple(normalize_by("delta_batch_writer", merge_keys)),
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

    ``engine="auto"`` uses the Spark Delta connector when it is on the classpath and
    otherwise the ``deltalake`` package (delta-rs) in a ``foreachBatch`` writer
    (:func:`delta_batch_writer`) whose commits record ``(app_id, batch_id)`` as a Delta
    app transaction, so a replayed batch is skipped: exactly-once either way.

    Parameters
    ----------
    df : pyspark.sql.DataFrame
        Streaming input.
    path : str
        Delta table directory (local or mounted for ``deltalake``).
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
        if cols:
            writer = writer.partitionBy(*cols)
        return writer.format("delta").start(path)
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
