"""``kamlib scorecard``: the production batch job writing the account scorecard.

Runs under ``spark-submit`` or plain ``python -m kamlib`` against the session it finds: the
active session, else ``SparkSession.builder.getOrCreate()`` (which honours ``spark-submit``
settings, ``spark-defaults.conf`` and ``SPARK_REMOTE`` for Spark Connect), and only when no
session can be obtained a local one. Inputs are validated before any Spark job, progress is
logged (logger ``kamlib.scorecard``), and the output is written atomically: Spark writes to a
temporary sibling path which is renamed onto ``--output`` only after the write succeeded, so a
failed run leaves no partial output.

Exit codes: 0 success, 2 bad input (:class:`kamlib.SchemaError`: missing input, missing or
mistyped columns, bad options, existing output without ``--overwrite``), 1 runtime failure.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import logging
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from kamlib.errors import ConnectorUnavailableError, KamlibError, SchemaError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

__all__ = ["add_parser", "get_session", "read_input", "run_scorecard", "write_atomic"]

log = logging.getLogger("kamlib.scorecard")

OUTPUT_FORMATS = ("parquet", "csv", "delta")
INPUT_FORMATS = ("parquet", "csv")


def add_parser(sub: Any) -> None:
    """Register ``kamlib scorecard`` on the CLI's sub-parsers."""
    p = sub.add_parser(
        "scorecard",
        help="compute the account scorecard from files and write it atomically",
        description="Compute kamlib's account scorecard (one row per account) at --as-of from "
        "transaction, survey, wallet and target files and write it atomically. Exit codes: "
        "0 ok, 2 bad input, 1 runtime failure.",
    )
    p.add_argument("--transactions", required=True, help="transactions (account, date, amount)")
    p.add_argument("--surveys", help="NPS survey responses (account, response date, score)")
    p.add_argument("--wallets", help="wallet estimates (account, wallet)")
    p.add_argument("--targets", help="account revenue targets (account, target)")
    p.add_argument("--as-of", required=True, help="scoring date (ISO date or datetime)")
    p.add_argument("--output", required=True, help="output path (directory)")
    p.add_argument("--format", default="parquet", choices=OUTPUT_FORMATS, help="output format")
    p.add_argument(
        "--input-format", default="parquet", choices=INPUT_FORMATS, help="format of all inputs"
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument("--account-col", default="account_id")
    p.add_argument("--date-col", default="order_date")
    p.add_argument("--value-col", default="amount")
    p.add_argument("--survey-date-col", default="response_date")
    p.add_argument("--score-col", default="score")
    p.add_argument("--wallet-col", default="wallet")
    p.add_argument("--target-col", default="target")
    p.add_argument("--top-share", type=float, default=0.2, help="key-account share (0..1]")
    p.add_argument("--clv-months", type=int, default=12, help="CLV horizon in months")
    p.add_argument("--discount-rate", type=float, default=0.01, help="monthly discount rate")
    p.add_argument("--remote", help="Spark Connect URL (sc://host:port) to use")
    p.set_defaults(handler=_run)


# ---------------------------------------------------------------------------------------------
# session and inputs
# ---------------------------------------------------------------------------------------------
def get_session(remote: str | None = None) -> tuple[SparkSession, bool]:
    """Return ``(session, created)``: the active session, else builder.getOrCreate(), else local.

    ``created`` says whether this call started the session (then the caller stops it).
    """
    from pyspark.sql import SparkSession

    if remote:
        return SparkSession.builder.remote(remote).getOrCreate(), True
    active = SparkSession.getActiveSession()
    if active is not None:
        log.info("using the active Spark session")
        return active, False
    try:
        session = SparkSession.builder.appName("kamlib-scorecard").getOrCreate()
        log.info("using SparkSession.builder.getOrCreate()")
        return session, True
    except Exception as exc:  # no cluster configuration at all: fall back to a local session
        log.warning("no Spark session could be obtained (%s); starting a local one", exc)
        from kamlib.testing import local_spark_session

        return local_spark_session(app_name="kamlib-scorecard"), True


def _is_local(path: str) -> bool:
    scheme = urlparse(path).scheme
    return scheme in ("", "file") or (len(scheme) == 1 and os.name == "nt")


def _local_path(path: str) -> str:
    return urlparse(path).path if path.startswith("file:") else path


def read_input(spark: SparkSession, path: str, fmt: str, *, name: str) -> DataFrame:
    """Read one input; a missing local path is a :class:`SchemaError` (bad input)."""
    if _is_local(path) and not os.path.exists(_local_path(path)):
        raise SchemaError(f"kamlib scorecard: --{name} path {path!r} does not exist")
    reader = spark.read
    if fmt == "csv":
        reader = reader.option("header", "true").option("inferSchema", "true")
    try:
        return reader.format(fmt).load(path)
    except Exception as exc:
        text = str(exc)
        if "PATH_NOT_FOUND" in text or "Path does not exist" in text:
            raise SchemaError(f"kamlib scorecard: --{name} path {path!r} does not exist") from None
        if "UNABLE_TO_INFER_SCHEMA" in text:
            raise SchemaError(
                f"kamlib scorecard: --{name} path {path!r} holds no readable {fmt} data"
            ) from None
        raise


def _coerce_dates(df: DataFrame, column: str) -> DataFrame:
    """CSV inputs: turn an ISO-formatted string date column into a timestamp (else unchanged)."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    if column in df.columns and isinstance(df.schema[column].dataType, T.StringType):
        return df.withColumn(column, F.try_to_timestamp(F.col(column)))
    return df


# ---------------------------------------------------------------------------------------------
# atomic output
# ---------------------------------------------------------------------------------------------
def _temporary_sibling(path: str, tag: str) -> str:
    stripped = path.rstrip("/")
    head, _, tail = stripped.rpartition("/")
    name = f".{tail}.{tag}-{uuid.uuid4().hex[:12]}"
    return f"{head}/{name}" if head else name


class _FileSystem:
    """Existence, rename and delete for local paths (os) or any pyarrow.fs URI (s3, gs, hdfs)."""

    def __init__(self, path: str) -> None:
        self.local = _is_local(path)
        self._fs: Any = None
        if not self.local:
            from pyarrow import fs as pafs

            self._fs, _ = pafs.FileSystem.from_uri(path)

    def _p(self, path: str) -> str:
        if self.local:
            return _local_path(path)
        from pyarrow import fs as pafs

        return str(pafs.FileSystem.from_uri(path)[1])

    def exists(self, path: str) -> bool:
        if self.local:
            return os.path.exists(self._p(path))
        from pyarrow import fs as pafs

        info = self._fs.get_file_info(self._p(path))
        return bool(info.type != pafs.FileType.NotFound)

    def rename(self, src: str, dst: str) -> None:
        if self.local:
            os.rename(self._p(src), self._p(dst))
        else:
            self._fs.move(self._p(src), self._p(dst))

    def delete(self, path: str) -> None:
        if not self.exists(path):
            return
        if self.local:
            p = self._p(path)
            if os.path.isdir(p):
                shutil.rmtree(p, ignore_errors=True)
            else:
                os.remove(p)
        else:
            self._fs.delete_dir(self._p(path))


def _spark_delta_missing(exc: Exception) -> bool:
    text = str(exc)
    return "DATA_SOURCE_NOT_FOUND" in text or "Failed to find the data source: delta" in text


def _write_delta_rs(spark_parquet_dir: str, target: str, *, mode: str) -> None:
    """Copy a Spark-written parquet directory into a Delta table with the deltalake package."""
    try:
        from deltalake import write_deltalake
    except ImportError:
        raise ConnectorUnavailableError(
            "kamlib scorecard --format delta: neither the Spark Delta connector "
            "(io.delta:delta-spark) nor the 'deltalake' Python package is available; "
            "add one of them (pip install 'kamlib[delta]')"
        ) from None
    import pyarrow.dataset as ds

    dataset = ds.dataset(spark_parquet_dir, format="parquet")
    reader = dataset.scanner().to_reader()
    if mode == "overwrite":
        write_deltalake(target, reader, mode="overwrite")
    else:
        write_deltalake(target, reader, mode="error")


def write_atomic(
    df: DataFrame, path: str, *, fmt: str = "parquet", overwrite: bool = False
) -> None:
    """Write ``df`` to ``path`` so that ``path`` only ever holds a complete result.

    Spark writes into a temporary sibling directory, which is renamed onto ``path`` after the
    write succeeded (an existing output is first moved aside and deleted after the swap). On
    any failure the temporary directory is removed and ``path`` is untouched.

    ``fmt="delta"`` uses Spark's ``delta`` data source when the connector is on the classpath,
    else writes parquet with Spark and converts it with the ``deltalake`` package, else raises
    :class:`kamlib.ConnectorUnavailableError`. Overwriting an existing Delta table commits a
    new table version (Delta commits are atomic) instead of swapping directories.
    """
    fs = _FileSystem(path)
    if fs.exists(path) and not overwrite:
        raise SchemaError(
            f"kamlib scorecard: --output {path!r} already exists; pass --overwrite to replace it"
        )
    if fmt == "delta" and _write_spark_delta(df, path, overwrite=overwrite):
        return
    staging = _temporary_sibling(path, "tmp")
    cleanup = [staging]
    try:
        writer_fmt = "delta-rs" if fmt == "delta" else fmt
        if writer_fmt == "parquet":
            df.write.parquet(staging)
        elif writer_fmt == "csv":
            df.write.option("header", "true").csv(staging)
        elif writer_fmt == "delta-rs":
            df.write.parquet(staging)
            if fs.exists(path) and os.path.isdir(os.path.join(_local_path(path), "_delta_log")):
                _write_delta_rs(_local_path(staging), _local_path(path), mode="overwrite")
                return
            converted = _temporary_sibling(path, "delta")
            cleanup.append(converted)
            _write_delta_rs(_local_path(staging), _local_path(converted), mode="error")
            staging = converted
        _swap(fs, staging, path)
    finally:
        for leftover in cleanup:
            with contextlib.suppress(Exception):
                fs.delete(leftover)


def _write_spark_delta(df: DataFrame, path: str, *, overwrite: bool) -> bool:
    """Write with Spark's Delta connector straight to ``path`` (one atomic Delta commit).

    Returns ``False`` (nothing written) when the connector is not on the classpath.
    """
    try:
        df.write.format("delta").mode("overwrite" if overwrite else "errorifexists").save(path)
    except Exception as exc:
        if not _spark_delta_missing(exc):
            raise
        log.info("Spark Delta connector not available; using the deltalake package")
        return False
    return True


def _swap(fs: _FileSystem, staging: str, path: str) -> None:
    """Rename ``staging`` onto ``path``, moving an existing ``path`` aside first."""
    old = None
    if fs.exists(path):
        old = _temporary_sibling(path, "old")
        fs.rename(path, old)
    try:
        fs.rename(staging, path)
    except BaseException:
        if old is not None:
            fs.rename(old, path)
        raise
    if old is not None:
        fs.delete(old)


# ---------------------------------------------------------------------------------------------
# the job
# ---------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _step(name: str) -> Iterator[None]:
    started = time.perf_counter()
    log.info("%s ...", name)
    yield
    log.info("%s done in %.1fs", name, time.perf_counter() - started)


def run_scorecard(spark: SparkSession, args: argparse.Namespace) -> int:
    """Run the job on ``spark`` with parsed arguments; return the number of accounts written."""
    from kamlib._validation import parse_timestamp
    from kamlib.scorecard import account_scorecard

    as_of = parse_timestamp("kamlib scorecard", "--as-of", args.as_of)
    if as_of > _dt.datetime(9999, 1, 1):  # pragma: no cover - defensive
        raise SchemaError("kamlib scorecard: --as-of is out of range")
    with _step("reading inputs"):
        tx = read_input(spark, args.transactions, args.input_format, name="transactions")
        surveys = wallets = targets = None
        if args.surveys:
            surveys = read_input(spark, args.surveys, args.input_format, name="surveys")
        if args.wallets:
            wallets = read_input(spark, args.wallets, args.input_format, name="wallets")
        if args.targets:
            targets = read_input(spark, args.targets, args.input_format, name="targets")
        if args.input_format == "csv":
            tx = _coerce_dates(tx, args.date_col)
            if surveys is not None:
                surveys = _coerce_dates(surveys, args.survey_date_col)
    with _step("computing the scorecard"):
        card = account_scorecard(
            tx,
            as_of=as_of,
            surveys=surveys,
            wallets=wallets,
            targets=targets,
            account_col=args.account_col,
            date_col=args.date_col,
            value_col=args.value_col,
            survey_date_col=args.survey_date_col,
            score_col=args.score_col,
            wallet_col=args.wallet_col,
            target_col=args.target_col,
            top_share=args.top_share,
            clv_months=args.clv_months,
            discount_rate=args.discount_rate,
        )
    try:
        with _step(f"writing {args.format} to {args.output}"):
            write_atomic(card, args.output, fmt=args.format, overwrite=args.overwrite)
        n = int(card.count())
    finally:
        with contextlib.suppress(Exception):
            card.unpersist()
    log.info("wrote %d account rows to %s", n, args.output)
    return n


def _run(args: argparse.Namespace) -> int:
    from kamlib.cli import EXIT_FAILURE, EXIT_OK

    started = time.perf_counter()
    # Output checks that need no Spark at all come first (bad input before any session).
    if _is_local(args.output) and os.path.exists(_local_path(args.output)) and not args.overwrite:
        raise SchemaError(
            f"kamlib scorecard: --output {args.output!r} already exists; "
            "pass --overwrite to replace it"
        )
    if _is_local(args.transactions) and not os.path.exists(_local_path(args.transactions)):
        raise SchemaError(
            f"kamlib scorecard: --transactions path {args.transactions!r} does not exist"
        )
    spark, created = get_session(args.remote)
    try:
        run_scorecard(spark, args)
    except (SchemaError, KamlibError):
        raise
    except Exception as exc:
        log.error(
            "kamlib scorecard failed: %s: %s",
            type(exc).__name__,
            str(exc).splitlines()[0] if str(exc) else "",
        )
        log.debug("traceback", exc_info=True)
        return EXIT_FAILURE
    finally:
        if created:
            spark.stop()
    log.info("kamlib scorecard finished in %.1fs", time.perf_counter() - started)
    return EXIT_OK
