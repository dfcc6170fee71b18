"""RFM summaries of transaction logs: the sufficient statistics of the CLV models.

:func:`rfm_summary` turns a transaction log into one row per account with ``frequency``,
``recency``, ``T`` and ``monetary_value``; :func:`calibration_holdout` adds the statistics of
a holdout period. Both are native Spark aggregations (one shuffle by account, then a daily and
a per-account ``groupBy``) and match lifetimes' ``summary_data_from_transaction_data`` and
``calibration_and_holdout_data`` value for value.
"""

from __future__ import annotations

import datetime as _dt
from typing import TYPE_CHECKING, Any, Literal

from kamlib._scoring import clean_numeric_sql
from kamlib._validation import (
    any_column_name,
    check_choice,
    parse_timestamp,
    quote,
    require_columns,
)
from kamlib.clv._units import DAYS_PER_UNIT, Freq
from kamlib.errors import SchemaError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

__all__ = ["Freq", "HoldoutMonetary", "calibration_holdout", "rfm_summary"]

_PREFIX = "__kamlib_rfm_"

#: How :func:`calibration_holdout` averages the holdout spend: over transaction ``"rows"``
#: (lifetimes) or over purchase ``"days"`` (same-day sums, the calibration definition).
HoldoutMonetary = Literal["rows", "days"]


def _unit(func: str, freq: str) -> float:
    check_choice(func, "freq", freq, Freq)
    return DAYS_PER_UNIT[freq]


def _as_day(func: str, arg: str, value: Any) -> _dt.date:
    return parse_timestamp(func, arg, value).date()


def _validate(
    func: str, df: DataFrame, account_col: str, date_col: str, value_col: str, freq: str
) -> float:
    require_columns(
        df,
        func,
        account_col=(account_col, "any"),
        date_col=(date_col, "temporal"),
        value_col=(value_col, "numeric"),
    )
    reserved = {"frequency", "recency", "T", "monetary_value", "n_excluded"}
    if account_col in reserved:
        raise SchemaError(
            f"{func}(): account_col= must not be one of the output columns {sorted(reserved)}, "
            f"found {account_col!r}"
        )
    return _unit(func, freq)


def _daily(
    df: DataFrame,
    account_col: str,
    date_col: str,
    value_col: str,
    end: _dt.date | None,
    start_after: _dt.date | None = None,
    *,
    keep_null_accounts: bool = False,
) -> DataFrame:
    """One row per (account, day): summed valid value, valid and invalid row counts.

    With ``keep_null_accounts`` the rows with a null account stay, all invalid (one null
    account group, counted by :func:`_summarise`); otherwise they are dropped. The amount is
    cast to double (sums cannot overflow); NaN and ±inf are invalid (``clean_numeric_sql``).
    """
    from pyspark.sql import functions as F

    account, day, amount = quote(account_col), f"{_PREFIX}day", f"{_PREFIX}amount"
    base = df.selectExpr(
        account,
        f"to_date({quote(date_col)}) AS {day}",
        f"CAST({clean_numeric_sql(df, value_col)} AS DOUBLE) AS {amount}",
    )
    where = [] if keep_null_accounts else [f"{account} IS NOT NULL"]
    if end is not None:
        where.append(f"({day} IS NULL OR {day} <= DATE'{end.isoformat()}')")
    if start_after is not None:
        where.append(f"({day} IS NULL OR {day} > DATE'{start_after.isoformat()}')")
    if where:
        base = base.where(" AND ".join(where))
    valid = f"{account} IS NOT NULL AND {day} IS NOT NULL AND {amount} IS NOT NULL"
    # Shuffle the rows once, by account: the daily sums and the per-account aggregate that
    # follows then need no second exchange. (A plain groupBy(account, day) would partially
    # aggregate first, which barely reduces transaction rows but costs a hash map over every
    # (account, day), and then shuffle again by account: about twice the time at 1M accounts.)
    return (
        base.repartition(account)
        .groupBy(account, day)
        .agg(
            F.expr(f"sum(CASE WHEN {valid} THEN {amount} END) AS {_PREFIX}value"),
            F.expr(f"count_if({valid}) AS {_PREFIX}valid"),
            F.expr(f"count_if(NOT ({valid})) AS {_PREFIX}invalid"),
        )
    )


def _summarise(daily: DataFrame, account_col: str, end: _dt.date | None, unit: float) -> DataFrame:
    """Per account: frequency, recency, T, monetary value and excluded rows from the days."""
    from pyspark.sql import functions as F

    account, p, per = quote(account_col), _PREFIX, f"{unit!r}D"
    day, value = (
        f"CASE WHEN {p}valid > 0 THEN {p}day END",
        f"CASE WHEN {p}valid > 0 THEN {p}value END",
    )
    per_account = daily.groupBy(account).agg(
        *[
            F.expr(sql)
            for sql in (
                f"min({day}) AS {p}first",
                f"max({day}) AS {p}last",
                f"count_if({p}valid > 0) AS {p}days",
                f"sum({value}) AS {p}total",
                # value of the first purchase day (min_by keeps a hash aggregate; nulls skipped)
                f"min_by({value}, {day}) AS {p}first_value",
                f"sum({p}invalid) AS n_excluded",
            )
        ]
    )
    if end is None:
        # the latest date of the rows with an account (null-account rows never set the end)
        ends = daily.selectExpr(f"max(CASE WHEN {account} IS NOT NULL THEN {p}day END) AS {p}end")
        per_account = per_account.crossJoin(F.broadcast(ends))
        end_sql = f"{p}end"
    else:
        end_sql = f"DATE'{end.isoformat()}'"
    # The null-account group (only with keep_null_accounts) has no purchase: one row with null
    # statistics and its excluded row count, so those rows never vanish silently.
    has, n = f"{account} IS NOT NULL", f"{p}days"
    return per_account.where(f"{n} > 0 OR {account} IS NULL").selectExpr(
        account,
        f"CASE WHEN {has} THEN CAST({n} - 1 AS DOUBLE) END AS frequency",
        f"CASE WHEN {has} THEN datediff({p}last, {p}first) / {per} END AS recency",
        f"CASE WHEN {has} THEN datediff({end_sql}, {p}first) / {per} END AS T",
        f"CASE WHEN {has} AND {n} > 1 THEN ({p}total - {p}first_value) / CAST({n} - 1 AS DOUBLE)"
        f" WHEN {has} THEN 0.0D END AS monetary_value",
        "CAST(n_excluded AS BIGINT) AS n_excluded",
    )


@any_column_name("rfm_summary")
def rfm_summary(
    df: DataFrame,
    *,
    account_col: str = "account_id",
    date_col: str = "order_date",
    value_col: str = "amount",
    observation_end: _dt.date | _dt.datetime | str | None = None,
    freq: Freq = "D",
) -> DataFrame:
    r"""Summarise a transaction log into one RFM row per account.

    For an account whose distinct purchase days up to the observation end are
    :math:`d_0 < d_1 < \dots < d_x`, with :math:`z_j` the summed value of day :math:`d_j`:

    .. math::

        \text{frequency} = x, \quad
        \text{recency} = \frac{d_x - d_0}{u}, \quad
        T = \frac{\text{end} - d_0}{u}, \quad
        \text{monetary\_value} = \frac{1}{x}\sum_{j=1}^{x} z_j \ (0 \text{ if } x = 0),

    with :math:`u = 1` (``freq="D"``) or :math:`u = 7` (``freq="W"``, fractional weeks, as in
    the published CDNOW summary). Same-day transactions are one purchase with their summed
    value (refunds included as negative amounts). This is lifetimes'
    ``summary_data_from_transaction_data(..., freq="D", freq_multiplier=u)``.

    Parameters
    ----------
    df : pyspark.sql.DataFrame
        Transactions: one row per order line.
    account_col, date_col, value_col : str
        Account id (any type), order date (date or timestamp; timestamps count by their date
        in the session time zone) and amount (numeric).
    observation_end : date, datetime or ISO string, optional
        Last day of the observation window (inclusive, by date); later rows are ignored.
        Defaults to the latest date in the data.
    freq : {"D", "W"}
        Time unit of ``recency`` and ``T``.

    Returns
    -------
    pyspark.sql.DataFrame
        ``account_col``, ``frequency``, ``recency``, ``T``, ``monetary_value`` (doubles) and
        ``n_excluded`` (long): one row per account with at least one valid purchase on or
        before the observation end, plus one row with a null account when there are rows
        with a null account (see Notes).

    Notes
    -----
    Rows with a null date, or a null, NaN or ±inf amount, are excluded from the summary and
    counted in ``n_excluded`` of their account (lifetimes would count a null amount as 0).
    Rows with a null account (on or before the observation end) do not vanish: they are
    counted in one extra row with a null account, null ``frequency``, ``recency``, ``T`` and
    ``monetary_value`` and their number in ``n_excluded`` (drop it with
    ``.where(F.col(account_col).isNotNull())`` before fitting a model, which rejects null
    statistics). ``n_excluded`` is an addition to lifetimes' columns.

    References
    ----------
    Fader, P. S., Hardie, B. G. S. and Lee, K. L. (2005). "Counting Your Customers the Easy
    Way: An Alternative to the Pareto/NBD Model". Marketing Science 24(2), 275-284.

    Examples
    --------
    >>> import datetime as dt
    >>> tx = spark.createDataFrame(
    ...     [("a", dt.date(2024, 1, 1), 10.0), ("a", dt.date(2024, 1, 1), 5.0),
    ...      ("a", dt.date(2024, 1, 8), 20.0), ("a", dt.date(2024, 1, 15), 40.0),
    ...      ("b", dt.date(2024, 1, 10), 7.0)],
    ...     "account_id string, order_date date, amount double")
    >>> s = rfm_summary(tx, observation_end="2024-01-29", freq="W").orderBy("account_id")
    >>> [tuple(r)[:5] for r in s.collect()]
    [('a', 2.0, 2.0, 4.0, 30.0), ('b', 0.0, 0.0, 2.7142857142857144, 0.0)]
    """
    func = "rfm_summary"
    unit = _validate(func, df, account_col, date_col, value_col, freq)
    end = None if observation_end is None else _as_day(func, "observation_end", observation_end)
    daily = _daily(df, account_col, date_col, value_col, end, keep_null_accounts=True)
    return _summarise(daily, account_col, end, unit)


def calibration_holdout(
    df: DataFrame,
    *,
    calibration_end: _dt.date | _dt.datetime | str,
    observation_end: _dt.date | _dt.datetime | str | None = None,
    account_col: str = "account_id",
    date_col: str = "order_date",
    value_col: str = "amount",
    freq: Freq = "D",
    holdout_monetary: HoldoutMonetary = "rows",
) -> DataFrame:
    r"""RFM summary of a calibration period plus the purchases of the holdout period after it.

    The calibration columns are :func:`rfm_summary` with ``observation_end=calibration_end``;
    the holdout columns cover the days ``calibration_end < day <= observation_end``:

    * ``frequency_holdout``: number of distinct purchase days in the holdout (0 if none);
    * ``monetary_value_holdout``: mean holdout spend (0 if none). ``holdout_monetary="rows"``
      (default, as lifetimes) averages the transaction rows; ``"days"`` averages the same-day
      sums, i.e. the definition of the calibration ``monetary_value`` (use it to compare
      Gamma-Gamma's expected spend per purchase with the holdout);
    * ``duration_holdout``: (observation_end - calibration_end) in days / unit.

    Only accounts with a purchase by ``calibration_end`` appear. This matches lifetimes'
    ``calibration_and_holdout_data(..., freq="D", freq_multiplier=u)``, with the calibration
    columns named as in :func:`rfm_summary` (no ``_cal`` suffix).

    Parameters
    ----------
    df : pyspark.sql.DataFrame
        Transactions.
    calibration_end : date, datetime or ISO string
        Last day of the calibration period (inclusive).
    observation_end : date, datetime or ISO string, optional
        Last day of the holdout period (inclusive); defaults to the latest date in the data.
    account_col, date_col, value_col, freq
        As in :func:`rfm_summary`.
    holdout_monetary : {"rows", "days"}
        Mean of ``monetary_value_holdout`` over transaction rows (lifetimes) or purchase days.

    Returns
    -------
    pyspark.sql.DataFrame
        ``account_col``, ``frequency``, ``recency``, ``T``, ``monetary_value``, ``n_excluded``,
        ``frequency_holdout``, ``monetary_value_holdout``, ``duration_holdout``.

    Examples
    --------
    >>> import datetime as dt
    >>> tx = spark.createDataFrame(
    ...     [("a", dt.date(2024, 1, 1), 10.0), ("a", dt.date(2024, 1, 5), 20.0),
    ...      ("a", dt.date(2024, 1, 12), 30.0), ("a", dt.date(2024, 1, 12), 10.0),
    ...      ("b", dt.date(2024, 1, 9), 5.0)],
    ...     "account_id string, order_date date, amount double")
    >>> s = calibration_holdout(tx, calibration_end="2024-01-10", observation_end="2024-01-20")
    >>> cols = ["account_id", "frequency", "T", "frequency_holdout",
    ...         "monetary_value_holdout", "duration_holdout"]
    >>> [tuple(r) for r in s.select(cols).orderBy("account_id").collect()]
    [('a', 1.0, 9.0, 1.0, 20.0, 10.0), ('b', 0.0, 1.0, 0.0, 0.0, 10.0)]
    >>> by_day = calibration_holdout(tx, calibration_end="2024-01-10",
    ...                              observation_end="2024-01-20", holdout_monetary="days")
    >>> by_day.where("account_id = 'a'").first().monetary_value_holdout  # 30 + 10 on one day
    40.0
    """
    from pyspark.sql import functions as F

    func = "calibration_holdout"
    unit = _validate(func, df, account_col, date_col, value_col, freq)
    check_choice(func, "holdout_monetary", holdout_monetary, HoldoutMonetary)
    cal = _as_day(func, "calibration_end", calibration_end)
    end = None if observation_end is None else _as_day(func, "observation_end", observation_end)
    if end is not None and end < cal:
        raise SchemaError(
            f"{func}(): observation_end= must not be before calibration_end= ({cal}), found {end}"
        )
    calibration = _summarise(
        _daily(df, account_col, date_col, value_col, cal), account_col, cal, unit
    )

    daily = _daily(df, account_col, date_col, value_col, end, start_after=cal)
    is_purchase = F.col(f"{_PREFIX}valid") > 0
    days = F.count(F.when(is_purchase, F.lit(1))).cast("double")
    # "rows": divide by the valid transaction rows; "days": by the purchase days
    divisor = (
        F.sum(F.when(is_purchase, F.col(f"{_PREFIX}valid"))).cast("double")
        if holdout_monetary == "rows"
        else days
    )
    holdout = daily.groupBy(account_col).agg(
        days.alias("frequency_holdout"),
        F.try_divide(F.sum(F.when(is_purchase, F.col(f"{_PREFIX}value"))), divisor).alias(
            "monetary_value_holdout"
        ),
    )
    joined = calibration.join(holdout, on=account_col, how="left")
    if end is None:
        day = F.to_date(F.col(date_col))
        ends = df.where(F.col(account_col).isNotNull()).agg(F.max(day).alias(f"{_PREFIX}end"))
        joined = joined.crossJoin(F.broadcast(ends))
        duration = F.datediff(F.col(f"{_PREFIX}end"), F.lit(cal)).cast("double") / F.lit(unit)
    else:
        duration = F.lit(float((end - cal).days) / unit)
    return joined.select(
        account_col,
        "frequency",
        "recency",
        "T",
        "monetary_value",
        "n_excluded",
        F.coalesce(F.col("frequency_holdout"), F.lit(0.0)).alias("frequency_holdout"),
        F.coalesce(F.col("monetary_value_holdout"), F.lit(0.0)).alias("monetary_value_holdout"),
        duration.alias("duration_holdout"),
    )
