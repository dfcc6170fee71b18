"""Recurring revenue: contract MRR, MRR movements, the MRR bridge and cohort retention.

- :func:`contract_mrr`: contracts / subscriptions (start, end, amount, billing interval) ->
  MRR per account (and product) per month; an invoice for ``interval_months`` months is spread
  evenly over them, so an annual contract never shows as expansion then churn.
- :func:`mrr_movements`: new, reactivated, expansion, contraction, churned, flat per
  account-month (the rules of :func:`kamlib.retention.revenue_bridge`).
- :func:`mrr_bridge`: per month starting / ending MRR, the movement totals, GRR, NRR, quick
  ratio, ARR, paying accounts and ARPA.
- :func:`cohort_retention`: logo and revenue retention by cohort and period number, on
  transactions or on :func:`contract_mrr` output.

Everything is native Spark (explode of month sequences, aggregations, one window per
account); nothing is collected to the driver.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Literal

from kamlib._validation import (
    any_column_name,
    check_choice,
    column_names,
    finite,
    normalize_by,
    require_columns,
)
from kamlib.errors import SchemaError
from kamlib.retention import _P as _RP
from kamlib.retention import (
    _bridge_frames,
    _grouped,
    _Inputs,
    _period_index,
    _period_start,
    _quoted,
    _rates_columns,
    _validate,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

__all__ = ["Period", "cohort_retention", "contract_mrr", "mrr_bridge", "mrr_movements"]

Period = Literal["month", "quarter", "year"]

_M = "__kamlib_m"


def _check_by(
    func: str, df: DataFrame, by: str | Iterable[str] | None, used: list[str]
) -> list[str]:
    keys = normalize_by(func, by)
    existing = column_names(df)
    for key in keys:
        if key not in existing:
            raise SchemaError(
                f"{func}(): column {key!r} (argument by=) not found; the DataFrame has "
                + ", ".join(repr(c) for c in existing)
            )
        if key in used:
            raise SchemaError(f"{func}(): by= must not repeat an input column, found {key!r}")
    return keys


@any_column_name("contract_mrr")
def contract_mrr(
    contracts: DataFrame,
    *,
    account_col: str = "account_id",
    start_col: str = "start_date",
    end_col: str = "end_date",
    amount_col: str = "amount",
    interval_months_col: str = "interval_months",
    product_col: str | None = None,
    observation_end: Any = None,
    by: str | Iterable[str] | None = None,
) -> DataFrame:
    r"""Monthly recurring revenue per account (and product) per month from contracts.

    .. math::

        \text{MRR}_{a,m} = \sum_{c \text{ active on } \mathrm{last}(m)}
        \frac{\text{amount}_c}{\text{interval\_months}_c}

    where contract *c* is active on day *d* when :math:`\text{start}_c \le d` and
    (:math:`\text{end}_c` is null or :math:`\text{end}_c > d`). ``amount`` is the invoice
    for one billing interval (1 = monthly, 3 = quarterly, 12 = annual, any whole number of
    months), so an annual invoice contributes amount / 12 to each month it covers.

    Parameters
    ----------
    contracts : pyspark.sql.DataFrame
        One row per contract (or subscription line).
    account_col, start_col, end_col, amount_col, interval_months_col : str
        Account id; start and end (date or timestamp; end null = open-ended); the invoice
        amount per billing interval (numeric); the billing interval in months (numeric).
    product_col : str, optional
        Product column: one output row per (account, product, month).
    observation_end : date, datetime or ISO string, optional
        Last day of the month grid; default the latest start or end date in the data (per
        ``by`` group).
    by : str or sequence of str, optional
        Segment columns (kept in the output; each group has its own default observation end).

    Returns
    -------
    pyspark.sql.DataFrame
        One row per (``by``..., account[, product], month) with MRR > 0: ``month`` (date, first
        day of the month), ``mrr`` (double), ``excluded_rows`` (contract rows of the group
        excluded as invalid; the same on every row of the group, as in
        :func:`kamlib.retention.retention_rates`).

    Notes
    -----
    Excluded (and counted in ``excluded_rows``): a null account, start, amount or interval
    (or product, with ``product_col``); an end before the start; an interval <= 0, not
    finite or not a whole number; a negative or non-finite (NaN, ±inf) amount; and every
    extra copy of an exactly duplicated contract row (the first copy is kept). A wrongly
    typed column is a :class:`~kamlib.SchemaError` before any job. A group whose contracts are
    all invalid has no rows, so its count is not visible; count invalid rows yourself if you
    need that case.

    References
    ----------
    D. Skok, "SaaS Metrics 2.0" (forEntrepreneurs, 2013): MRR as normalised monthly contract
    value.

    Examples
    --------
    >>> import datetime as dt
    >>> from kamlib.recurring import contract_mrr
    >>> c = spark.createDataFrame(
    ...     [("a", dt.date(2024, 1, 1), dt.date(2024, 4, 1), 1200.0, 12)],
    ...     "account_id string, start_date date, end_date date, amount double, "
    ...     "interval_months int")
    >>> for r in contract_mrr(c).orderBy("month").collect():
    ...     print(r.month, r.mrr, r.excluded_rows)
    2024-01-01 100.0 0
    2024-02-01 100.0 0
    2024-03-01 100.0 0
    """
    func = "contract_mrr"
    keys, obs = _check_contract_args(
        func,
        contracts,
        account_col=account_col,
        start_col=start_col,
        end_col=end_col,
        amount_col=amount_col,
        interval_months_col=interval_months_col,
        product_col=product_col,
        observation_end=observation_end,
        by=by,
    )
    from pyspark.sql import functions as F

    ids = [*keys, account_col] + ([product_col] if product_col else [])
    base = _contract_base(
        contracts,
        ids,
        account_col=account_col,
        start_col=start_col,
        end_col=end_col,
        amount_col=amount_col,
        interval_months_col=interval_months_col,
        product_col=product_col,
    )
    # Exact duplicates collapse here; the extra copies are counted as excluded.
    distinct = base.groupBy(*base.columns).agg(F.count(F.lit(1)).alias("__kamlib_n"))
    with_group = _with_contract_group(distinct, keys, obs)
    exploded = _explode_months(with_group, ids)
    per_month = exploded.groupBy(*ids, _M).agg(
        F.sum(F.col("__kamlib_a") / F.col("__kamlib_i")).alias("mrr"),
        F.max("__kamlib_ex").alias("excluded_rows"),
    )
    return per_month.filter(F.col("mrr") > 0).select(
        *ids,
        F.expr(_period_start(_M, "month")).alias("month"),
        F.col("mrr").cast("double").alias("mrr"),
        F.col("excluded_rows").cast("long").alias("excluded_rows"),
    )


def _check_contract_args(
    func: str,
    contracts: DataFrame,
    *,
    account_col: str,
    start_col: str,
    end_col: str,
    amount_col: str,
    interval_months_col: str,
    product_col: str | None,
    observation_end: Any,
    by: str | Iterable[str] | None,
) -> tuple[list[str], _dt.date | None]:
    """Column types, ``by`` keys, output-name clashes and ``observation_end`` (before any job)."""
    cols: dict[str, tuple[str, Literal["any", "temporal", "numeric"]]] = {
        "account_col": (account_col, "any"),
        "start_col": (start_col, "temporal"),
        "end_col": (end_col, "temporal"),
        "amount_col": (amount_col, "numeric"),
        "interval_months_col": (interval_months_col, "numeric"),
    }
    if product_col is not None:
        cols["product_col"] = (product_col, "any")
    require_columns(contracts, func, **cols)
    used = [account_col, start_col, end_col, amount_col, interval_months_col]
    if product_col:
        used.append(product_col)
    keys = _check_by(func, contracts, by, used)
    for name in [account_col, *keys] + ([product_col] if product_col else []):
        if name in ("month", "mrr", "excluded_rows"):
            raise SchemaError(f"{func}(): column {name!r} clashes with an output column")
    obs: _dt.date | None = None
    if observation_end is not None:
        from kamlib._validation import parse_timestamp

        obs = parse_timestamp(func, "observation_end", observation_end).date()
    return keys, obs


def _contract_base(
    contracts: DataFrame,
    ids: list[str],
    *,
    account_col: str,
    start_col: str,
    end_col: str,
    amount_col: str,
    interval_months_col: str,
    product_col: str | None,
) -> DataFrame:
    """Ids, start and end dates, amount and interval as doubles, and the validity flag."""
    from pyspark.sql import functions as F

    start = F.to_date(F.col(start_col))
    end = F.to_date(F.col(end_col))
    amount = F.col(amount_col).cast("double")
    interval = F.col(interval_months_col).cast("double")
    valid = (
        F.col(account_col).isNotNull()
        & start.isNotNull()
        & amount.isNotNull()
        & interval.isNotNull()
        & (end.isNull() | (end >= start))
        & finite(interval)
        & (interval > 0)
        & (interval % F.lit(1.0) == F.lit(0.0))
        & finite(amount)
        & (amount >= 0)
    )
    if product_col:
        valid = valid & F.col(product_col).isNotNull()
    return contracts.select(
        *[F.col(c) for c in ids],
        start.alias("__kamlib_s"),
        end.alias("__kamlib_e"),
        amount.alias("__kamlib_a"),
        interval.alias("__kamlib_i"),
        F.coalesce(valid, F.lit(False)).alias("__kamlib_ok"),
    )


def _with_contract_group(distinct: DataFrame, keys: list[str], obs: _dt.date | None) -> DataFrame:
    """The valid distinct contracts with their group's excluded count and last month index."""
    from pyspark.sql import functions as F

    ok = F.col("__kamlib_ok")
    # Per-group excluded counts and default observation end: one small aggregation (one row
    # per group), broadcast back; no single-partition window over all contracts.
    last_day = F.greatest(F.col("__kamlib_s"), F.coalesce("__kamlib_e", "__kamlib_s"))
    per_group = distinct.groupBy(*keys).agg(
        F.sum(F.when(ok, F.col("__kamlib_n") - 1).otherwise(F.col("__kamlib_n"))).alias(
            "__kamlib_ex"
        ),
        _period_index(
            F.lit(obs) if obs is not None else F.max(F.when(ok, last_day)), "month"
        ).alias("__kamlib_last"),
    )
    renamed = per_group.select(
        *[F.col(k).alias(f"__kamlib_g{i}") for i, k in enumerate(keys)],
        "__kamlib_ex",
        "__kamlib_last",
    )
    valid_rows = distinct.filter(ok)
    if keys:
        cond = [F.col(k).eqNullSafe(F.col(f"__kamlib_g{i}")) for i, k in enumerate(keys)]
        return valid_rows.join(F.broadcast(renamed), on=cond, how="inner")
    return valid_rows.crossJoin(F.broadcast(renamed))


def _explode_months(with_group: DataFrame, ids: list[str]) -> DataFrame:
    """One row per contract and month index it is active on the last day of (up to the grid end)."""
    from pyspark.sql import functions as F

    first_m = _period_index(F.col("__kamlib_s"), "month")
    # Active on the last day of month m  <=>  month(start) <= m < month(end).
    stop = F.least(
        F.coalesce(_period_index(F.col("__kamlib_e"), "month") - F.lit(1), F.col("__kamlib_last")),
        F.col("__kamlib_last"),
    )
    return with_group.select(
        *ids,
        "__kamlib_ex",
        "__kamlib_a",
        "__kamlib_i",
        F.explode(
            F.when(first_m <= stop, F.sequence(first_m, stop)).otherwise(
                F.array().cast("array<int>")
            )
        ).alias(_M),
    )


@any_column_name("mrr_movements")
def mrr_movements(
    mrr: DataFrame,
    *,
    account_col: str = "account_id",
    month_col: str = "month",
    mrr_col: str = "mrr",
    by: str | Iterable[str] | None = None,
) -> DataFrame:
    r"""Classify each account's month-over-month MRR movement.

    Monthly MRR per account :math:`M_{a,t} = \max(\sum \text{mrr}, 0)` (summed over the
    account's rows in the month, e.g. over products; missing months are 0). For every month
    after the first month of the data, each account with :math:`M_{a,t-1} > 0` or
    :math:`M_{a,t} > 0` gets one row with ``movement``: ``new`` (first MRR ever),
    ``reactivated`` (previous 0, MRR in an earlier month), ``expansion``
    (:math:`M_t > M_{t-1} > 0`), ``contraction`` (:math:`0 < M_t < M_{t-1}`), ``churned``
    (:math:`M_{t-1} > 0 = M_t`) or ``flat`` -- exactly the rules of
    :func:`kamlib.retention.revenue_bridge` with ``period="month"``.

    Parameters
    ----------
    mrr : pyspark.sql.DataFrame
        MRR rows, e.g. the output of :func:`contract_mrr`.
    account_col, month_col, mrr_col : str
        Account id, month (date or timestamp; any day of the month) and MRR (numeric).
    by : str or sequence of str, optional
        Segment columns, as in :func:`~kamlib.retention.revenue_bridge`.

    Returns
    -------
    pyspark.sql.DataFrame
        One row per (``by``..., account, month): ``month`` (first day), ``previous_mrr``,
        ``mrr``, ``delta`` = mrr - previous_mrr, ``movement``.

    Notes
    -----
    Rows with a null account, month or MRR are excluded (:func:`mrr_bridge` counts them in
    ``excluded_rows``).

    Examples
    --------
    >>> import datetime as dt
    >>> from kamlib.recurring import mrr_movements
    >>> m = spark.createDataFrame(
    ...     [("a", dt.date(2024, 1, 1), 100.0), ("a", dt.date(2024, 2, 1), 80.0)],
    ...     "account_id string, month date, mrr double")
    >>> r = mrr_movements(m).first()
    >>> r.month, r.previous_mrr, r.mrr, r.delta, r.movement
    (datetime.date(2024, 2, 1), 100.0, 80.0, -20.0, 'contraction')
    """
    inputs = _month_inputs("mrr_movements", mrr, account_col, month_col, mrr_col, by)
    bridge, _ = _bridge_frames(mrr, inputs)
    return bridge.selectExpr(
        *_quoted(inputs.keys, account_col),
        f"{_period_start(_RP, 'month')} AS month",
        "previous_revenue AS previous_mrr",
        "revenue AS mrr",
        "revenue - previous_revenue AS delta",
        "movement",
    )


def _month_inputs(
    func: str,
    mrr: DataFrame,
    account_col: str,
    month_col: str,
    mrr_col: str,
    by: str | Iterable[str] | None,
) -> _Inputs:
    """The checked MRR columns (under ``func``'s argument names) as monthly bridge inputs."""
    require_columns(
        mrr,
        func,
        account_col=(account_col, "any"),
        month_col=(month_col, "temporal"),
        mrr_col=(mrr_col, "numeric"),
    )
    return _validate(
        mrr,
        func,
        account_col=account_col,
        date_col=month_col,
        value_col=mrr_col,
        period="month",
        product_col=None,
        by=by,
    )


@any_column_name("mrr_bridge")
def mrr_bridge(
    mrr: DataFrame,
    *,
    account_col: str = "account_id",
    month_col: str = "month",
    mrr_col: str = "mrr",
    by: str | Iterable[str] | None = None,
) -> DataFrame:
    r"""The MRR bridge per month: starting and ending MRR, movements, GRR, NRR, quick ratio.

    Totals of the :func:`mrr_movements` rows of month *t*:

    .. math::

        \text{ending} &= \text{starting} + \text{new} + \text{reactivation} + \text{expansion}
        - \text{contraction} - \text{churned} \\
        \text{GRR} &= \frac{\text{starting} - \text{contraction} - \text{churned}}{\text{starting}},
        \qquad
        \text{NRR} = \frac{\text{starting} + \text{expansion} - \text{contraction}
        - \text{churned}}{\text{starting}} \\
        \text{quick ratio} &= \frac{\text{new} + \text{reactivation} + \text{expansion}}
        {\text{contraction} + \text{churned}}

    ``arr`` = 12 x ending MRR, ``paying_accounts`` = accounts with MRR > 0 in the month,
    ``arpa`` = ending MRR / paying accounts.

    Parameters
    ----------
    mrr : pyspark.sql.DataFrame
        MRR rows, e.g. the output of :func:`contract_mrr`.
    account_col, month_col, mrr_col, by
        As in :func:`mrr_movements`.

    Returns
    -------
    pyspark.sql.DataFrame
        One row per (``by``..., ``month``) for every month of the grid after the first:
        ``starting_mrr``, ``new_mrr``, ``reactivation_mrr``, ``expansion_mrr``,
        ``contraction_mrr``, ``churned_mrr`` (both positive), ``ending_mrr``, ``grr``, ``nrr``
        (null when starting MRR is 0), ``quick_ratio`` (null when contraction + churned is 0),
        ``arr``, ``paying_accounts``, ``arpa`` (null with no paying accounts),
        ``excluded_rows`` (input rows with a null account, month or MRR).

    References
    ----------
    D. Skok, "SaaS Metrics 2.0" (forEntrepreneurs, 2013); the SaaS quick ratio (M. Mamoon,
    Social Capital, 2015).

    Examples
    --------
    >>> import datetime as dt
    >>> from kamlib.recurring import mrr_bridge
    >>> m = spark.createDataFrame(
    ...     [("a", dt.date(2024, 1, 1), 100.0), ("b", dt.date(2024, 1, 1), 50.0),
    ...      ("a", dt.date(2024, 2, 1), 120.0), ("c", dt.date(2024, 2, 1), 30.0)],
    ...     "account_id string, month date, mrr double")
    >>> r = mrr_bridge(m).first()
    >>> r.starting_mrr, r.new_mrr, r.expansion_mrr, r.churned_mrr, r.ending_mrr
    (150.0, 30.0, 20.0, 50.0, 150.0)
    >>> r.quick_ratio, r.arr, r.paying_accounts, r.arpa
    (1.0, 1800.0, 2, 75.0)
    """
    inputs = _month_inputs("mrr_bridge", mrr, account_col, month_col, mrr_col, by)
    grid, c = _rates_columns(mrr, inputs)
    gain = f"({c['new_revenue']} + {c['reactivated_revenue']} + {c['expansion_revenue']})"
    loss = f"({c['contraction_revenue']} + {c['churned_revenue']})"
    paying = f"({c['retained_accounts']} + {c['new_accounts']} + {c['reactivated_accounts']})"
    return grid.selectExpr(
        *_quoted(inputs.keys),
        f"{c['period']} AS month",
        f"{c['starting_revenue']} AS starting_mrr",
        f"{c['new_revenue']} AS new_mrr",
        f"{c['reactivated_revenue']} AS reactivation_mrr",
        f"{c['expansion_revenue']} AS expansion_mrr",
        f"{c['contraction_revenue']} AS contraction_mrr",
        f"{c['churned_revenue']} AS churned_mrr",
        f"{c['ending_revenue']} AS ending_mrr",
        f"{c['grr']} AS grr",
        f"{c['nrr']} AS nrr",
        f"try_divide({gain}, CASE WHEN {loss} > 0 THEN {loss} END) AS quick_ratio",
        f"12D * {c['ending_revenue']} AS arr",
        f"{paying} AS paying_accounts",
        f"try_divide({c['ending_revenue']}, CASE WHEN {paying} > 0 THEN CAST({paying} AS DOUBLE) "
        "END) AS arpa",
        f"{c['excluded_rows']} AS excluded_rows",
    )


@any_column_name("cohort_retention")
def cohort_retention(
    df: DataFrame,
    *,
    account_col: str = "account_id",
    date_col: str = "order_date",
    value_col: str = "amount",
    period: Period = "month",
    by: str | Iterable[str] | None = None,
) -> DataFrame:
    r"""Logo and revenue retention by acquisition cohort and period number.

    Per account and period, value :math:`V_{a,t} = \max(\sum \text{value}, 0)`. An account's
    cohort :math:`c_a` is its first period with :math:`V > 0`; for cohort *c* and period
    number :math:`k = 0, 1, \ldots` up to the last period of the data (per ``by`` group):

    .. math::

        \text{active}_{c,k} = \#\{a : c_a = c,\ V_{a,c+k} > 0\}, \qquad
        \text{revenue}_{c,k} = \sum_{a: c_a = c} V_{a,c+k}

    ``logo_retention`` = active / cohort accounts, ``revenue_retention`` = revenue / the
    cohort's period-0 revenue.

    Parameters
    ----------
    df : pyspark.sql.DataFrame
        Transactions, or :func:`contract_mrr` output (``date_col="month", value_col="mrr"``).
    account_col, date_col, value_col : str
        Account id, date or timestamp, numeric value.
    period : {"month", "quarter", "year"}
        Calendar period of cohorts and period numbers.
    by : str or sequence of str, optional
        Segment columns; each group has its own last period.

    Returns
    -------
    pyspark.sql.DataFrame
        One row per (``by``..., ``cohort``, ``period_number``): ``cohort`` (date, first day of
        the period), ``period_number``, ``cohort_accounts``, ``active_accounts``, ``revenue``,
        ``logo_retention``, ``revenue_retention``, ``excluded_rows`` (input rows of the group
        with a null account, date or value, or a NaN or ±inf value).

    References
    ----------
    Cohort analysis as in ChartMogul / Baremetrics; P. S. Fader and B. G. S. Hardie,
    "Customer-base analysis" (cohort "C3" charts).

    Examples
    --------
    >>> import datetime as dt
    >>> from kamlib.recurring import cohort_retention
    >>> tx = spark.createDataFrame(
    ...     [("a", dt.date(2024, 1, 5), 100.0), ("b", dt.date(2024, 1, 9), 50.0),
    ...      ("a", dt.date(2024, 2, 9), 120.0)],
    ...     "account_id string, order_date date, amount double")
    >>> for r in cohort_retention(tx).orderBy("period_number").collect():
    ...     print(r.cohort, r.period_number, r.active_accounts, r.logo_retention,
    ...           r.revenue_retention)
    2024-01-01 0 2 1.0 1.0
    2024-01-01 1 1 0.5 0.8
    """
    func = "cohort_retention"
    check_choice(func, "period", period, Period)
    require_columns(
        df,
        func,
        account_col=(account_col, "any"),
        date_col=(date_col, "temporal"),
        value_col=(value_col, "numeric"),
    )
    keys = _check_by(func, df, by, [account_col, date_col, value_col])
    base = _cohort_base(df, keys, account_col, date_col, value_col, period)
    cells = _cohort_cells(base, keys, account_col)
    return _cohort_output(_cohort_grid(cells, keys), keys, period)


def _cohort_base(
    df: DataFrame, keys: list[str], account_col: str, date_col: str, value_col: str, period: Period
) -> DataFrame:
    """Keys, account, period index, value as a double and the excluded flag of each row.

    An invalid row (null account, date or value, NaN or ±inf value) keeps only its keys and
    ``__kamlib_ex`` = 1: the invalid rows of a group fold into one (null account, null
    period) cell, which carries the group's excluded count through the same pass.
    """
    from pyspark.sql import functions as F

    # The value is summed as a double, so bigint / decimal sums cannot overflow under ANSI.
    valid = F.col(account_col).isNotNull() & F.col(date_col).isNotNull() & finite(F.col(value_col))
    return df.select(
        *keys,
        F.when(valid, F.col(account_col)).alias(account_col),
        F.when(valid, _period_index(F.to_date(F.col(date_col)), period)).alias("__kamlib_p"),
        F.when(valid, F.col(value_col).cast("double")).alias("__kamlib_v"),
        F.when(valid, F.lit(0)).otherwise(F.lit(1)).alias("__kamlib_ex"),
    )


def _cohort_cells(base: DataFrame, keys: list[str], account_col: str) -> DataFrame:
    """Per (group, cohort, period number): active accounts and revenue, in one pass.

    One shuffle: rows are hash-partitioned by account, summed per (account, period) and the
    account's cohort (first period with V > 0) is a window over the same partitioning. Cells
    with a null cohort (accounts without positive value, the invalid rows) carry only the
    group's last valid period (``__kamlib_last``) and excluded rows (``__kamlib_ex``).
    """
    from pyspark.sql import functions as F

    per = (
        base.repartition(*keys, account_col)
        .groupBy(*keys, account_col, "__kamlib_p")
        .agg(F.sum("__kamlib_v").alias("__kamlib_v"), F.sum("__kamlib_ex").alias("__kamlib_ex"))
    )
    value = "greatest(__kamlib_v, 0D)"
    window = f"OVER (PARTITION BY {', '.join(_quoted(keys, account_col))})"
    return (
        per.selectExpr(
            *_quoted(keys),
            "__kamlib_p",
            f"{value} AS __kamlib_v",
            "__kamlib_ex",
            f"min(CASE WHEN {value} > 0 THEN __kamlib_p END) {window} AS __kamlib_c",
        )
        .groupBy(*keys, "__kamlib_c", F.expr("__kamlib_p - __kamlib_c AS period_number"))
        .agg(
            F.expr("count_if(__kamlib_v > 0) AS active_accounts"),
            F.expr("sum(CASE WHEN __kamlib_v > 0 THEN __kamlib_v END) AS revenue"),
            F.expr("max(__kamlib_p) AS __kamlib_last"),
            F.expr("sum(__kamlib_ex) AS __kamlib_ex"),
        )
    )


def _cohort_grid(cells: DataFrame, keys: list[str]) -> DataFrame:
    """Every period number of every cohort up to its group's last period, with its cell.

    Per group one row: the last period, the excluded count, the cohorts (period-0 cells) and a
    (cohort, period number) -> cell map; the grid is exploded from it (no join).
    """
    from pyspark.sql import functions as F

    cell = "named_struct('active_accounts', active_accounts, 'revenue', revenue)"
    per_group = _grouped(cells, keys).agg(
        F.expr("max(__kamlib_last) AS __kamlib_last"),
        F.expr("sum(__kamlib_ex) AS excluded_rows"),
        F.expr(
            "collect_list(CASE WHEN period_number = 0 THEN "
            f"named_struct('__kamlib_c', __kamlib_c, 'cell', {cell}) END) AS __kamlib_cohorts"
        ),
        F.expr(
            "map_from_entries(collect_list(CASE WHEN __kamlib_c IS NOT NULL THEN "
            f"struct(named_struct('__kamlib_c', __kamlib_c, 'period_number', period_number), "
            f"{cell}) END)) AS __kamlib_map"
        ),
    )
    # One generator for the whole grid: per cohort k, period numbers n = 0 .. last - k.
    k, n = "__kamlib_k", "__kamlib_n"
    key = f"named_struct('__kamlib_c', {k}.__kamlib_c, 'period_number', {n})"
    cell_of = (
        f"{n} -> named_struct('__kamlib_c', {k}.__kamlib_c, 'period_number', {n}, "
        f"'cohort_accounts', {k}.cell.active_accounts, '__kamlib_r0', {k}.cell.revenue, "
        f"'__kamlib_cell', try_element_at(__kamlib_map, {key}))"
    )
    cells_of = f"{k} -> transform(sequence(0, __kamlib_last - {k}.__kamlib_c), {cell_of})"
    return per_group.selectExpr(
        *_quoted(keys),
        "excluded_rows",
        f"inline(flatten(transform(__kamlib_cohorts, {cells_of})))",
    )


def _cohort_output(joined: DataFrame, keys: list[str], period: Period) -> DataFrame:
    """The public columns: cohort start, counts, revenue and the two retention ratios."""
    active = "CAST(coalesce(__kamlib_cell.active_accounts, 0) AS BIGINT)"
    retention = "try_divide(coalesce(__kamlib_cell.revenue, 0D), __kamlib_r0)"
    return joined.selectExpr(
        *_quoted(keys),
        f"{_period_start('__kamlib_c', period)} AS cohort",
        "CAST(period_number AS INT) AS period_number",
        "CAST(cohort_accounts AS BIGINT) AS cohort_accounts",
        f"{active} AS active_accounts",
        "coalesce(__kamlib_cell.revenue, 0D) AS revenue",
        f"try_divide(CAST({active} AS DOUBLE), CAST(cohort_accounts AS DOUBLE)) AS logo_retention",
        # null, never NaN, if an overflowed (infinite) revenue meets an infinite base
        f"CASE WHEN NOT isnan({retention}) THEN {retention} END AS revenue_retention",
        "CAST(excluded_rows AS BIGINT) AS excluded_rows",
    )
