"""Enrichment of live events with account reference data (stream-static join).

:func:`enrich_with_accounts` joins events (streaming or batch) with a *static* account table:
tier, key-account flag, account manager, region, for example from the batch scorecard
(:func:`kamlib.classify.classify_accounts`) or any table keyed by account. Streaming KPIs can
then be cut by those attributes (``windowed_revenue(enriched, by=["abc_tier"])``).

Reference tables that change
----------------------------
A static DataFrame in a stream-static join is planned once, when the query starts. For a
plain parquet (or CSV, JSON) table the *file list* is fixed at that moment: rows appended as
new files are not seen, and overwriting the table makes the running query fail with
``FAILED_READ_FILE.FILE_NOT_EXIST`` (both verified on Spark 4). Two patterns pick up changes:

* restart the query after the reference table changes (the checkpoint makes this safe); or
* re-read the reference in every micro-batch inside ``foreachBatch``:
  :func:`refreshing_reference` builds such a function (picklable, so it also runs on Spark
  Connect), e.g. ``stream.writeStream.foreachBatch(refreshing_reference(ReadTable(path),
  sink))``.

Events of accounts missing from the reference are kept (``how="left"``) with null attributes
and ``is_known_account = false``, so they can be counted (:func:`unknown_accounts`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from kamlib._validation import check_choice, column_names, require_columns
from kamlib.errors import SchemaError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

__all__ = [
    "ReadTable",
    "ReferenceRefresher",
    "enrich_with_accounts",
    "refreshing_reference",
    "unknown_accounts",
]

JoinHow = Literal["left", "inner"]


def _reference_columns(
    func: str, accounts: DataFrame, account_col: str, columns: Sequence[str] | None
) -> list[str]:
    available = column_names(accounts)
    if columns is None:
        return [c for c in available if c != account_col]
    if isinstance(columns, str):
        columns = [columns]
    chosen = list(columns)
    for column in chosen:
        if not isinstance(column, str):
            raise SchemaError(
                f"{func}(): columns= must be reference column names, found {column!r}"
            )
        require_columns(accounts, func, columns=(column, "any"))
    if account_col in chosen:
        raise SchemaError(f"{func}(): columns= must not contain the account column {account_col!r}")
    return chosen


def enrich_with_accounts(
    events: DataFrame,
    accounts: DataFrame,
    *,
    account_col: str = "account_id",
    columns: Sequence[str] | None = None,
    how: JoinHow = "left",
    flag_col: str | None = "is_known_account",
) -> DataFrame:
    """Join events with account attributes from a static reference table.

    Parameters
    ----------
    events : pyspark.sql.DataFrame
        Events, streaming or batch, with ``account_col``.
    accounts : pyspark.sql.DataFrame
        Static (batch) reference table with ``account_col`` and attribute columns. It must hold
        one row per account; a repeated account would repeat its events.
    account_col : str
        Join key, in both tables.
    columns : sequence of str, optional
        Reference columns to add; default all except ``account_col``. They must not already
        exist in ``events``.
    how : {"left", "inner"}
        ``"left"`` keeps events of unknown accounts with null attributes; ``"inner"`` drops them
        (count them first with :func:`unknown_accounts` if you choose this).
    flag_col : str or None
        Name of the boolean column that says whether the account was found in the reference
        (``None``: do not add it).

    Returns
    -------
    pyspark.sql.DataFrame
        The events' columns, then ``columns``, then ``flag_col``.

    Raises
    ------
    SchemaError
        Missing or clashing columns, or a streaming reference table (a stream-stream join needs
        watermarks on both sides and is not what this function does).

    Examples
    --------
    >>> events = spark.createDataFrame(
    ...     [("e1", "a"), ("e2", "zz")], "event_id string, account_id string")
    >>> accounts = spark.createDataFrame([("a", "A", True)],
    ...     "account_id string, abc_tier string, is_key_account boolean")
    >>> enriched = enrich_with_accounts(events, accounts)
    >>> [tuple(r) for r in enriched.orderBy("event_id").collect()]
    [('e1', 'a', 'A', True, True), ('e2', 'zz', None, None, False)]
    """
    from pyspark.sql import functions as F

    func = "enrich_with_accounts"
    check_choice(func, "how", how, JoinHow)
    if flag_col is not None and (not isinstance(flag_col, str) or not flag_col):
        raise SchemaError(f"{func}(): flag_col= must be a column name or None, found {flag_col!r}")
    require_columns(events, func, account_col=(account_col, "any"))
    require_columns(accounts, func, account_col=(account_col, "any"))
    if accounts.isStreaming:
        raise SchemaError(
            f"{func}(): accounts must be a static (batch) DataFrame, found a streaming DataFrame"
        )
    chosen = _reference_columns(func, accounts, account_col, columns)
    event_cols = column_names(events)
    outputs = [*chosen, *([flag_col] if flag_col else [])]
    clash = [c for c in outputs if c in event_cols]
    if clash:
        raise SchemaError(
            f"{func}(): reference column(s) {', '.join(repr(c) for c in clash)} already exist "
            f"in the events; choose other columns= or rename them first"
        )
    marker = "__kamlib_known"
    reference = accounts.select(
        F.col(account_col).alias("__kamlib_key"),
        *[F.col(c) for c in chosen],
        F.lit(True).alias(marker),
    )
    joined = events.join(
        reference, F.col(account_col) == F.col("__kamlib_key"), "left" if how == "left" else "inner"
    )
    flag = [F.coalesce(F.col(marker), F.lit(False)).alias(flag_col)] if flag_col else []
    return joined.select(*[F.col(c) for c in event_cols], *[F.col(c) for c in chosen], *flag)


def unknown_accounts(
    enriched: DataFrame,
    *,
    account_col: str = "account_id",
    flag_col: str = "is_known_account",
) -> DataFrame:
    """Events per account that the reference table did not know (``flag_col`` false).

    Returns ``account_id``, ``events``; on a stream use ``complete`` output mode or run it on
    each micro-batch.

    Examples
    --------
    >>> events = spark.createDataFrame([("a",), ("x",), ("x",)], "account_id string")
    >>> accounts = spark.createDataFrame([("a",)], "account_id string")
    >>> [tuple(r) for r in unknown_accounts(enrich_with_accounts(events, accounts)).collect()]
    [('x', 2)]
    """
    from pyspark.sql import functions as F

    func = "unknown_accounts"
    require_columns(enriched, func, account_col=(account_col, "any"))
    require_columns(enriched, func, flag_col=(flag_col, "boolean"))
    return (
        enriched.where(~F.col(flag_col)).groupBy(account_col).agg(F.count(F.lit(1)).alias("events"))
    )


@dataclass(frozen=True)
class ReadTable:
    """A picklable reference loader: ``spark.read.format(format).options(**options).load(path)``.

    Use it with :func:`refreshing_reference` to re-read a reference table in every micro-batch.

    Examples
    --------
    >>> ReadTable("/data/accounts")
    ReadTable(path='/data/accounts', format='parquet', options={})
    """

    path: str
    format: str = "parquet"
    options: Mapping[str, str] = field(default_factory=dict)

    def __call__(self, spark: SparkSession) -> DataFrame:
        """Read the table with ``spark``."""
        return spark.read.format(self.format).options(**dict(self.options)).load(self.path)


@dataclass(frozen=True)
class ReferenceRefresher:
    """``foreachBatch`` function that re-reads the reference table and enriches each batch.

    Built by :func:`refreshing_reference`; calling it with ``(batch_df, batch_id)`` loads the
    reference with ``load(batch_df.sparkSession)``, joins with :func:`enrich_with_accounts`, and
    passes ``(enriched, batch_id)`` to ``sink``.
    """

    load: Callable[[SparkSession], DataFrame]
    sink: Callable[[DataFrame, int], Any]
    account_col: str = "account_id"
    columns: tuple[str, ...] | None = None
    how: JoinHow = "left"
    flag_col: str | None = "is_known_account"

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        """Enrich one micro-batch with the current reference and hand it to the sink."""
        accounts = self.load(batch.sparkSession)
        enriched = enrich_with_accounts(
            batch,
            accounts,
            account_col=self.account_col,
            columns=self.columns,
            how=self.how,
            flag_col=self.flag_col,
        )
        self.sink(enriched, batch_id)


def refreshing_reference(
    load: Callable[[SparkSession], DataFrame] | str,
    sink: Callable[[DataFrame, int], Any],
    *,
    account_col: str = "account_id",
    columns: Sequence[str] | None = None,
    how: JoinHow = "left",
    flag_col: str | None = "is_known_account",
) -> ReferenceRefresher:
    """Build a ``foreachBatch`` function that enriches each micro-batch with a fresh reference.

    The reference is re-read at every micro-batch, so updates to the account table (new
    accounts, a changed tier or manager, a table rewritten by the nightly scorecard) apply from
    the next micro-batch on, without restarting the query.

    Parameters
    ----------
    load : callable or str
        ``load(spark) -> DataFrame`` (a module-level function or :class:`ReadTable`, so that it
        pickles for Spark Connect), or a parquet path (shorthand for ``ReadTable(path)``).
    sink : callable
        ``sink(enriched_batch, batch_id)``: writes the enriched micro-batch, e.g. one of the
        idempotent writers of :mod:`kamlib.streaming.sinks` or your own function.
    account_col, columns, how, flag_col
        As in :func:`enrich_with_accounts`.

    Returns
    -------
    ReferenceRefresher
        Pass it to ``writeStream.foreachBatch(...)``.

    Examples
    --------
    >>> def write(batch, batch_id):  # doctest: +SKIP
    ...     batch.write.mode("append").parquet("/out/enriched")
    >>> query = (events.writeStream  # doctest: +SKIP
    ...     .foreachBatch(refreshing_reference("/ref/accounts", write))
    ...     .option("checkpointLocation", "/chk/enriched").start())
    """
    func = "refreshing_reference"
    check_choice(func, "how", how, JoinHow)
    if isinstance(load, str):
        load = ReadTable(load)
    if not callable(load):
        raise SchemaError(f"{func}(): load= must be a callable or a path, found {load!r}")
    if not callable(sink):
        raise SchemaError(f"{func}(): sink= must be a callable, found {sink!r}")
    if isinstance(columns, str):
        columns = [columns]
    return ReferenceRefresher(
        load=load,
        sink=sink,
        account_col=account_col,
        columns=None if columns is None else tuple(columns),
        how=how,
        flag_col=flag_col,
    )
