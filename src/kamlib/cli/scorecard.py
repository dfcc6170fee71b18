"""``kamlib scorecard``: the production batch job writing the account scorecard.

Runs under ``spark-submit`` or plain ``python -m kamlib`` against the session it finds: the
active session, else ``SparkSession.builder.getOrCreate()`` (which honours ``spark-submit``
settings, ``spark-defaults.conf`` and ``SPARK_REMOTE`` for Spark Connect), and only when no
session can be obtained a local one. Inputs are validated before any Spark job and progress is
logged (logger ``kamlib.scorecard``).

Outputs are written by Spark only (no Python file API touches them), so ``--output`` is any URI
Spark's Hadoop file systems write (``s3a://``, ``abfss://``, ``gs://``, ``hdfs://``, ``file:``)
or a local path:

* ``--output PATH --format parquet|csv``: Spark's file commit protocol, files appear only when
  the job commits; ``--overwrite`` replaces the directory (Spark deletes it first, so a failed
  overwrite loses the old files: use Delta for an atomic replace).
* ``--output PATH --format delta``: one Delta commit (``mode("overwrite")`` with
  ``--overwrite``), atomic on every file system, through the Spark Delta connector; without the
  connector the ``deltalake`` package writes the table from the driver (fallback for platforms
  without the connector; the scorecard is collected as Arrow).
* ``--output-table NAME``: the session catalog. ``--format delta``: the first run creates the
  table, later runs MERGE on (account, ``as_of``), so rerunning a day replaces that day's rows
  (and drops that day's accounts that are no longer scored) and keeps other days, in one commit.
  ``--format parquet`` (or csv): a table partitioned by ``as_of`` with dynamic partition
  overwrite, so a rerun replaces that day's partition and keeps other days. ``--overwrite``
  replaces the whole table.

Every output has an ``as_of`` column (timestamp, session time zone) next to the scorecard's.

Exit codes: 0 success, 2 bad input (:class:`kamlib.SchemaError`: missing input, missing or
mistyped columns, bad options, existing output without ``--overwrite``, an output path that is
or contains an input path, a missing connector), 1 runtime failure.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import logging
import os
import posixpath
import re
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse, urlunparse

from kamlib.cli._session import command_session
from kamlib.errors import ConnectorUnavailableError, KamlibError, SchemaError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

__all__ = [
    "add_parser",
    "read_input",
    "run_scorecard",
    "write_atomic",
    "write_output",
    "write_table",
]

log = logging.getLogger("kamlib.scorecard")

OUTPUT_FORMATS = ("parquet", "csv", "delta")
INPUT_FORMATS = ("parquet", "csv")
_INPUTS = ("transactions", "surveys", "wallets", "targets")


def add_parser(sub: Any) -> None:
    """Register ``kamlib scorecard`` on the CLI's sub-parsers."""
    p = sub.add_parser(
        "scorecard",
        help="compute the account scorecard from files and write it to a path or a table",
        description="Compute kamlib's account scorecard (one row per account) at --as-of from "
        "transaction, survey, wallet and target files and write it with Spark to --output (any "
        "Spark file system URI) or to the catalog table --output-table. Exit codes: "
        "0 ok, 2 bad input, 1 runtime failure.",
    )
    p.add_argument("--transactions", required=True, help="transactions (account, date, amount)")
    p.add_argument("--surveys", help="NPS survey responses (account, response date, score)")
    p.add_argument("--wallets", help="wallet estimates (account, wallet)")
    p.add_argument("--targets", help="account revenue targets (account, target)")
    p.add_argument("--as-of", required=True, help="scoring date (ISO date or datetime)")
    out = p.add_mutually_exclusive_group(required=True)
    out.add_argument("--output", help="output path or URI (a directory)")
    out.add_argument(
        "--output-table",
        help="catalog table ([catalog.][db.]name); delta: MERGE on (account, as_of), "
        "parquet/csv: dynamic overwrite of the as_of partition",
    )
    p.add_argument("--format", default="parquet", choices=OUTPUT_FORMATS, help="output format")
    p.add_argument(
        "--input-format", default="parquet", choices=INPUT_FORMATS, help="format of all inputs"
    )
    p.add_argument(
        "--overwrite", action="store_true", help="replace an existing output path or whole table"
    )
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
def _redact(uri: str) -> str:
    """``uri`` without user info (``s3a://KEY:SECRET@bucket/x`` -> ``s3a://***@bucket/x``)."""
    parsed = urlparse(uri)
    if parsed.netloc and "@" in parsed.netloc:
        return urlunparse(parsed._replace(netloc="***@" + parsed.netloc.rpartition("@")[2]))
    return uri


def _normalized(uri: str) -> str:
    """A comparable form of a path or URI (string work only: nothing is read from disk)."""
    parsed = urlparse(uri)
    scheme = parsed.scheme.lower()
    if scheme in ("", "file") or (len(scheme) == 1 and os.name == "nt"):
        local = parsed.path if scheme == "file" else uri
        return "file://" + os.path.abspath(local).replace(os.sep, "/").rstrip("/")
    path = posixpath.normpath(parsed.path or "/")
    return f"{scheme}://{parsed.netloc.lower()}{path}".rstrip("/")


def _check_not_an_input(output: str, inputs: dict[str, str]) -> None:
    """An output that is, lies inside or contains an input path would destroy that input."""
    out = _normalized(output)
    for name, path in inputs.items():
        inp = _normalized(path)
        if out == inp or out.startswith(inp + "/") or inp.startswith(out + "/"):
            raise SchemaError(
                f"kamlib scorecard: --output {_redact(output)!r} overlaps --{name} "
                f"{_redact(path)!r}; writing there would destroy the input, choose another path"
            )


def _missing_filesystem(
    exc: BaseException, path: str, label: str = "--output", command: str = "kamlib scorecard"
) -> ConnectorUnavailableError | None:
    """A 'no FileSystem for scheme' failure as a one-line connector error (else ``None``)."""
    from kamlib.connectors import _filesystem_error, _filesystem_missing

    if not _filesystem_missing(exc):
        return None
    return _filesystem_error(command, label, path)


def read_input(
    spark: SparkSession, path: str, fmt: str, *, name: str, command: str = "kamlib scorecard"
) -> DataFrame:
    """Read one input of ``command`` with Spark (``kamlib scorecard``, ``kamlib report``).

    A missing path or one without readable data is a :class:`SchemaError`, a missing file
    system (``s3a://`` without hadoop-aws) a :class:`ConnectorUnavailableError`; credentials
    in the path are redacted in both.
    """
    reader = spark.read
    if fmt == "csv":
        reader = reader.option("header", "true").option("inferSchema", "true")
    shown = _redact(path)
    try:
        return reader.format(fmt).load(path)
    except Exception as exc:
        text = str(exc)
        if "PATH_NOT_FOUND" in text or "Path does not exist" in text:
            raise SchemaError(f"{command}: --{name} path {shown!r} does not exist") from None
        if "UNABLE_TO_INFER_SCHEMA" in text:
            raise SchemaError(
                f"{command}: --{name} path {shown!r} holds no readable {fmt} data"
            ) from None
        missing = _missing_filesystem(exc, path, f"--{name}", command)
        if missing is not None:
            raise missing from None
        raise


def _coerce_dates(df: DataFrame, column: str) -> DataFrame:
    """CSV inputs: turn an ISO-formatted string date column into a timestamp (else unchanged)."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    if column in df.columns and isinstance(df.schema[column].dataType, T.StringType):
        return df.withColumn(column, F.try_to_timestamp(F.col(column)))
    return df


# ---------------------------------------------------------------------------------------------
# output: paths
# ---------------------------------------------------------------------------------------------
def _delta_coordinate() -> str:
    from kamlib.connectors import packages

    try:
        return packages(delta=True)[0]
    except SchemaError:
        return "io.delta:delta-spark for your Spark release"


def _spark_delta_missing(exc: BaseException) -> bool:
    text = str(exc)
    return (
        "DATA_SOURCE_NOT_FOUND" in text
        or "Failed to find the data source: delta" in text
        or "DeltaSparkSessionExtension" in text
        or "DeltaCatalog" in text
    )


def _already_exists(exc: BaseException) -> bool:
    text = str(exc)
    return any(
        marker in text
        for marker in (
            "PATH_ALREADY_EXISTS",
            "DELTA_PATH_EXISTS",
            "TABLE_OR_VIEW_ALREADY_EXISTS",
            "already exists",
            "already existent",
        )
    )


def _exists_error(path: str) -> SchemaError:
    return SchemaError(
        f"kamlib scorecard: --output {_redact(path)!r} already exists; "
        "pass --overwrite to replace it"
    )


def _delta_missing_error(table: bool) -> ConnectorUnavailableError:
    if table:
        return ConnectorUnavailableError(
            "kamlib scorecard --output-table --format delta: the Spark Delta connector is "
            f"not on the classpath; add {_delta_coordinate()} "
            "(kamlib.connectors.packages(delta=True)) with "
            "spark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension and "
            "spark.sql.catalog.spark_catalog=org.apache.spark.sql.delta.catalog.DeltaCatalog"
        )
    return ConnectorUnavailableError(
        "kamlib scorecard --format delta: neither the Spark Delta connector "
        f"({_delta_coordinate()}, kamlib.connectors.packages(delta=True)) nor the 'deltalake' "
        "Python package is available; add one of them (pip install 'kamlib[delta]')"
    )


def _require_delta(spark: SparkSession, *, table: bool) -> None:
    """Fail before any Spark job when ``--format delta`` has no writer (nothing is written)."""
    from kamlib.streaming.sinks import delta_connector_available

    if delta_connector_available(spark):
        return
    if not table:
        try:
            import deltalake  # noqa: F401
        except ImportError:
            pass
        else:
            return
    raise _delta_missing_error(table)


def _write_delta_rs(df: DataFrame, path: str, *, overwrite: bool) -> None:
    """Fallback without the Spark Delta connector: the ``deltalake`` package on the driver."""
    try:
        from deltalake import write_deltalake
    except ImportError:
        raise _delta_missing_error(table=False) from None
    table = df.toArrow()
    try:
        write_deltalake(path, table, mode="overwrite" if overwrite else "error")
    except Exception as exc:
        if not overwrite and _already_exists(exc):
            raise _exists_error(path) from None
        raise


def write_output(
    df: DataFrame, path: str, *, fmt: str = "parquet", overwrite: bool = False
) -> None:
    """Write ``df`` to the path or URI ``path`` with Spark.

    Parameters
    ----------
    df : pyspark.sql.DataFrame
        The rows to write.
    path : str
        A local path or any URI Spark's Hadoop file systems write (``s3a://``, ``abfss://``,
        ``gs://``, ``hdfs://``, ``file:``). No Python file API touches it.
    fmt : {"parquet", "csv", "delta"}
        Output format (csv with a header row).
    overwrite : bool
        Replace an existing output; without it an existing path is a :class:`SchemaError`.

    Notes
    -----
    parquet and csv use Spark's file commit protocol: data files become visible when the job
    commits, and a failed write leaves no data files. ``overwrite`` deletes the old directory
    before writing (Spark's ``mode("overwrite")``), so only Delta replaces atomically.

    ``fmt="delta"`` writes one Delta commit with Spark's ``delta`` data source
    (``mode("overwrite")``: a new table version, readers see the old or the new table, never a
    mix). Without the connector on the classpath the ``deltalake`` package writes the table from
    the driver (the rows are collected as Arrow), else :class:`kamlib.ConnectorUnavailableError`
    names both.

    Examples
    --------
    >>> write_output(card, "s3a://lake/scorecard", fmt="delta", overwrite=True)  # doctest: +SKIP
    """
    if fmt not in OUTPUT_FORMATS:
        raise SchemaError(
            function="write_output",
            argument="fmt",
            expected=f"one of {OUTPUT_FORMATS}",
            found=repr(fmt),
        )
    writer = df.write.mode("overwrite" if overwrite else "error")
    if fmt == "csv":
        writer = writer.option("header", "true")
    try:
        writer.format(fmt).save(path)
    except Exception as exc:
        if fmt == "delta" and _spark_delta_missing(exc):
            log.info("Spark Delta connector not available; writing with the deltalake package")
            _write_delta_rs(df, path, overwrite=overwrite)
            return
        if not overwrite and _already_exists(exc):
            raise _exists_error(path) from None
        missing = _missing_filesystem(exc, path)
        if missing is not None:
            raise missing from None
        raise


#: Former name of :func:`write_output` (the output is no longer staged and renamed).
write_atomic = write_output


# ---------------------------------------------------------------------------------------------
# output: catalog tables
# ---------------------------------------------------------------------------------------------
_IDENT = r"(?:[A-Za-z_][A-Za-z0-9_]*|`(?:[^`]|``)+`)"
_TABLE_NAME = re.compile(rf"^{_IDENT}(?:\.{_IDENT}){{0,2}}$")


def _check_table_name(name: str) -> str:
    if not isinstance(name, str) or not _TABLE_NAME.match(name.strip()):
        raise SchemaError(
            f"kamlib scorecard: --output-table {name!r} is not a table name "
            "([catalog.][database.]table, identifiers or `quoted`)"
        )
    return name.strip()


def _quote(column: str) -> str:
    return "`" + column.replace("`", "``") + "`"


def _table_provider(spark: SparkSession, name: str) -> str | None:
    """The existing table's provider (``"delta"``, ``"parquet"``, ...) or ``None`` if absent."""
    if not spark.catalog.tableExists(name):
        return None
    rows = spark.sql(f"DESCRIBE TABLE EXTENDED {name}").collect()
    for row in rows:
        if str(row[0]).strip().lower() == "provider":
            return str(row[1]).strip().lower()
    return "unknown"


def _is_connect(spark: SparkSession) -> bool:
    return type(spark).__module__.startswith("pyspark.sql.connect")


def _merge_delta(
    spark: SparkSession, df: DataFrame, name: str, *, account_col: str, as_of: _dt.datetime
) -> None:
    """MERGE ``df`` into the Delta table ``name`` on (account, as_of); one Delta commit.

    Matched rows are updated, new ones inserted, and rows of the same ``as_of`` that the new
    run no longer scores are deleted, so a rerun replaces the day exactly.
    """
    from pyspark.sql import functions as F

    acc = _quote(account_col)
    day = _as_of_sql(as_of)
    condition = f"t.{acc} <=> s.{acc} AND t.`as_of` = s.`as_of`"
    delta_table: Any = None
    if not _is_connect(spark):
        with contextlib.suppress(ImportError):
            from delta.tables import DeltaTable

            delta_table = DeltaTable
    if delta_table is not None:
        log.info("MERGE into %s with delta.tables.DeltaTable", name)
        (
            delta_table.forName(spark, name)
            .alias("t")
            .merge(df.alias("s"), condition)
            .whenMatchedUpdateAll()
            .whenNotMatchedInsertAll()
            .whenNotMatchedBySourceDelete(condition=F.expr(f"t.`as_of` = {day}"))
            .execute()
        )
        return
    log.info("MERGE into %s with SQL MERGE INTO", name)
    view = f"kamlib_scorecard_{int(time.time() * 1e6)}"
    df.createOrReplaceTempView(view)
    try:
        spark.sql(
            f"MERGE INTO {name} AS t USING {view} AS s ON {condition} "
            "WHEN MATCHED THEN UPDATE SET * "
            "WHEN NOT MATCHED THEN INSERT * "
            f"WHEN NOT MATCHED BY SOURCE AND t.`as_of` = {day} THEN DELETE"
        )
    finally:
        spark.catalog.dropTempView(view)


def _as_of_sql(as_of: _dt.datetime) -> str:
    return f"TIMESTAMP '{as_of.isoformat(sep=' ')}'"


def write_table(
    df: DataFrame,
    name: str,
    *,
    as_of: _dt.datetime,
    account_col: str = "account_id",
    fmt: str = "delta",
    overwrite: bool = False,
) -> None:
    """Write a scorecard (with an ``as_of`` column) to the session catalog table ``name``.

    Parameters
    ----------
    df : pyspark.sql.DataFrame
        One row per account, with ``account_col`` and ``as_of`` columns.
    name : str
        ``[catalog.][database.]table``.
    as_of : datetime
        The scoring instant of this run (the value of ``df``'s ``as_of``).
    account_col : str
        The account key.
    fmt : {"delta", "parquet", "csv"}
        Table provider when the table is created; an existing table must have this provider.
    overwrite : bool
        Replace the whole table (``saveAsTable`` with ``mode("overwrite")``; for Delta one
        atomic commit) instead of upserting the day.

    Notes
    -----
    * The first run creates the table with ``saveAsTable``.
    * Delta, later runs: ``MERGE`` on (``account_col``, ``as_of``): matched rows are updated, new
      accounts inserted and rows of this ``as_of`` that are no longer scored deleted, in one
      commit; other days are untouched. Uses ``delta.tables.DeltaTable`` on classic sessions and
      SQL ``MERGE INTO`` on Spark Connect.
    * parquet/csv: the table is partitioned by ``as_of`` and created with
      ``partitionOverwriteMode=dynamic``; later runs ``insertInto(overwrite=True)``, which
      replaces only this day's partition (Spark's dynamic partition overwrite).

    Examples
    --------
    >>> write_table(card, "kam.scorecard", as_of=as_of, fmt="delta")  # doctest: +SKIP
    """
    name = _check_table_name(name)
    if fmt not in OUTPUT_FORMATS:
        raise SchemaError(
            function="write_table",
            argument="fmt",
            expected=f"one of {OUTPUT_FORMATS}",
            found=repr(fmt),
        )
    spark = df.sparkSession
    try:
        provider = _table_provider(spark, name)
        if provider is not None and provider != fmt and not overwrite:
            raise SchemaError(
                f"kamlib scorecard: --output-table {name} is a {provider} table; "
                f"pass --format {provider} (or --overwrite to replace it)"
            )
        writer = df.write.format(fmt)
        if fmt != "delta":
            writer = writer.partitionBy("as_of").option("partitionOverwriteMode", "dynamic")
        if provider is None or overwrite:
            writer.mode("overwrite" if overwrite else "error").saveAsTable(name)
        elif fmt == "delta":
            _merge_delta(spark, df, name, account_col=account_col, as_of=as_of)
        else:
            columns = spark.table(name).columns
            missing = sorted(set(columns) - set(df.columns))
            if missing:
                raise SchemaError(
                    f"kamlib scorecard: --output-table {name} has columns this run does not "
                    f"produce: {missing}; pass --overwrite to replace the table"
                )
            df.select(*columns).write.option("partitionOverwriteMode", "dynamic").insertInto(
                name, overwrite=True
            )
    except (SchemaError, KamlibError):
        raise
    except Exception as exc:
        if fmt == "delta" and _spark_delta_missing(exc):
            raise _delta_missing_error(table=True) from None
        raise


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
    as_of = _preflight(spark, args)
    with _step("reading inputs"):
        tx, surveys, wallets, targets = _read_inputs(spark, args)
    with _step("computing the scorecard"):
        card = _compute(tx, surveys, wallets, targets, as_of=as_of, args=args)
    from pyspark.sql import functions as F

    card = card.withColumn("as_of", F.lit(as_of.isoformat(sep=" ")).cast("timestamp"))
    target = f"table {args.output_table}" if args.output_table else _redact(args.output)
    try:
        with _step(f"writing {args.format} to {target}"):
            _write(card, args, as_of=as_of)
        n = int(card.count())
    finally:
        with contextlib.suppress(Exception):
            card.unpersist()
    log.info("wrote %d account rows to %s", n, target)
    return n


def _preflight(spark: SparkSession, args: argparse.Namespace) -> _dt.datetime:
    """The checked ``--as-of``; the file systems and Delta connector the run needs are loaded.

    Connectors first, so a missing jar fails before any input is read or output written.
    """
    from kamlib._validation import parse_timestamp
    from kamlib.connectors import _require_filesystems

    as_of = parse_timestamp("kamlib scorecard", "--as-of", args.as_of)
    if as_of > _dt.datetime(9999, 1, 1):  # pragma: no cover - defensive
        raise SchemaError("kamlib scorecard: --as-of is out of range")
    paths = {f"--{name}": getattr(args, name, None) for name in _INPUTS}
    _require_filesystems(spark, "kamlib scorecard", {**paths, "--output": args.output})
    if args.format == "delta":
        _require_delta(spark, table=bool(args.output_table))
    return as_of


def _read_inputs(
    spark: SparkSession, args: argparse.Namespace
) -> tuple[DataFrame, DataFrame | None, DataFrame | None, DataFrame | None]:
    """The transactions and the optional surveys, wallets and targets (csv dates coerced)."""
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
    return tx, surveys, wallets, targets


def _compute(
    tx: DataFrame,
    surveys: DataFrame | None,
    wallets: DataFrame | None,
    targets: DataFrame | None,
    *,
    as_of: _dt.datetime,
    args: argparse.Namespace,
) -> DataFrame:
    """:func:`kamlib.scorecard.account_scorecard` with the command's columns and options."""
    from kamlib.scorecard import account_scorecard

    return account_scorecard(
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


def _write(card: DataFrame, args: argparse.Namespace, *, as_of: _dt.datetime) -> None:
    """Write the scorecard to ``--output-table`` or ``--output``."""
    if args.output_table:
        write_table(
            card,
            args.output_table,
            as_of=as_of,
            account_col=args.account_col,
            fmt=args.format,
            overwrite=args.overwrite,
        )
    else:
        write_output(card, args.output, fmt=args.format, overwrite=args.overwrite)


def _run(args: argparse.Namespace) -> int:
    from kamlib.cli import EXIT_FAILURE, EXIT_OK

    started = time.perf_counter()
    # Checks that need no Spark come first (bad input before any session). Paths are compared
    # as strings only: existence is Spark's business (errorifexists / PATH_NOT_FOUND).
    if args.output_table:
        _check_table_name(args.output_table)
    else:
        inputs = {name: getattr(args, name) for name in _INPUTS if getattr(args, name)}
        _check_not_an_input(args.output, inputs)
    spark, created = command_session(app_name="kamlib-scorecard", remote=args.remote)
    try:
        run_scorecard(spark, args)
    except ConnectorUnavailableError as exc:
        # A missing connector is fixed by the caller's configuration: bad input, one line.
        raise SchemaError(str(exc).splitlines()[0]) from None
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
