"""Point-in-time churn features, labels and training frames.

Every feature at a cutoff ``as_of`` reads only rows dated strictly *before* ``as_of``; every
label reads only rows in ``[as_of, as_of + horizon_days)``. Both rules are enforced inside the
aggregate expressions themselves (each feature aggregate is masked to the past, each label
aggregate to the horizon), so a training frame built here cannot leak the future into its
features, whatever the input contains.

Time is counted in whole days back from ``as_of``: a row at time ``t < as_of`` lies on *day*
``k = ceil((as_of - t) / 1 day)`` (``k = 1`` is the last day before ``as_of``). For date columns
and a midnight ``as_of`` (the usual case) this is simply ``datediff(as_of, date)``; timestamps
are therefore floored to their calendar date. Window ``w`` holds the rows with
``1 <= k <= w``, i.e. ``as_of - w days <= t < as_of``.

Functions
---------
- :func:`churn_features`: recency, tenure and per-window order counts, revenue, revenue trend,
  revenue slope and spike ratio.
- :func:`usage_features`: per-window usage, usage slope and a usage-plateau flag.
- :func:`churn_labels`: ``churned`` = no transaction in the next ``horizon_days``.
- :func:`training_frame`: features and labels for many ``as_of`` dates in one pass, with
  optional usage, NPS-trend and share-of-wallet features.
- :func:`feature_columns` and :func:`assemble_features`: ``pyspark.ml``-ready feature vectors
  with explicit null handling.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kamlib._spark import check_pyspark

try:
    from pyspark.sql import Column
    from pyspark.sql import functions as F
except ImportError:  # pragma: no cover - exercised in a subprocess without pyspark
    check_pyspark()  # one clear ImportError naming the extras
    raise

from kamlib._validation import (
    TEMP_PREFIX,
    any_column_name,
    check_fraction,
    check_int,
    check_name,
    column_names,
    finite,
    nps_classes,
    parse_timestamp,
    require_columns,
)
from kamlib.errors import SchemaError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from kamlib._validation import ColumnKind

__all__ = [
    "assemble_features",
    "churn_features",
    "churn_labels",
    "feature_columns",
    "training_frame",
    "usage_features",
    "vector_slots",
]

# Internal column names (prefixed so they never collide with user columns).
_DAY = f"{TEMP_PREFIX}day"
_BUCKET = f"{TEMP_PREFIX}k"
_ASOF_DAY = f"{TEMP_PREFIX}asof_day"
_Y = f"{TEMP_PREFIX}y"
_NPOS = f"{TEMP_PREFIX}npos"
_NVALID = f"{TEMP_PREFIX}nvalid"
_NEXCL = f"{TEMP_PREFIX}nexcl"
_N_PAST = f"{TEMP_PREFIX}n_past"
_SPEND = f"{TEMP_PREFIX}spend"
_WALLET = f"{TEMP_PREFIX}wallet"
_SCORE = f"{TEMP_PREFIX}score"
_AS_OF = "as_of"

#: Columns that are identifiers, labels or data-quality counts, never model features.
NON_FEATURE_COLUMNS = (
    "as_of",
    "churned",
    "label",
    "excluded_rows",
    "label_excluded_rows",
    "usage_excluded_rows",
    "survey_excluded_rows",
)


# --------------------------------------------------------------------------------------------
# Validation helpers
# --------------------------------------------------------------------------------------------


def _check_windows(func: str, arg: str, windows: Any) -> tuple[int, ...]:
    if isinstance(windows, (str, bytes)) or not isinstance(windows, Iterable):
        raise SchemaError(
            f"{func}(): {arg}= must be a sequence of positive ints, found {windows!r}"
        )
    result = tuple(windows)
    if not result:
        raise SchemaError(f"{func}(): {arg}= must not be empty, found {windows!r}")
    for w in result:
        if isinstance(w, bool) or not isinstance(w, int) or w < 1:
            raise SchemaError(
                f"{func}(): {arg}= must contain positive ints (days), found {w!r} in {windows!r}"
            )
    if len(set(result)) != len(result):
        raise SchemaError(f"{func}(): {arg}= must not repeat a window, found {windows!r}")
    return result


def _seconds_of_day(moment: _dt.datetime) -> float:
    return moment.hour * 3600 + moment.minute * 60 + moment.second + moment.microsecond / 1e6


def _split_as_of(moment: _dt.datetime) -> tuple[_dt.date, float]:
    """Return (day, seconds since midnight) of a parsed ``as_of``."""
    return moment.date(), _seconds_of_day(moment)


def _day_expr(date_col: str, shift_seconds: float) -> Column:
    """Calendar day of each row, shifted back by the time of day of ``as_of``.

    With ``shift_seconds = s`` (as_of = D + s), a row at time t lies ``k`` days before as_of
    with ``k = datediff(D, to_date(t - s))`` = ``ceil((as_of - t) / 1 day)``. The shift works on
    wall-clock time (``timestamp_ntz``), so daylight-saving changes never move a row a day.
    """
    if shift_seconds == 0:
        return F.to_date(F.col(date_col))
    shifted = F.col(date_col).cast("timestamp_ntz") - F.make_dt_interval(
        secs=F.lit(shift_seconds).cast("decimal(18,6)")
    )
    return F.to_date(shifted)


def _bucket(as_of_day: Column) -> Column:
    return F.datediff(as_of_day, F.col(_DAY))


# --------------------------------------------------------------------------------------------
# Transaction features: daily pre-aggregation and per-window aggregates
# --------------------------------------------------------------------------------------------


def _daily(df: DataFrame, account_col: str, value_col: str, day: Column) -> DataFrame:
    """One row per (account, day): summed amount, positive rows, valid rows, excluded rows.

    The input is hash-partitioned by account first, so this aggregation and every later
    per-account aggregation run without another shuffle. Rows with a null day (null date)
    form one group per account with ``_NEXCL`` = their number.
    """
    amount = F.col(value_col).cast("double")
    amount = F.when(finite(amount), amount)  # NaN and ±inf are invalid: excluded and counted
    return (
        df.select(F.col(account_col), day.alias(_DAY), amount.alias(_Y))
        .repartition(F.col(account_col))
        .groupBy(account_col, _DAY)
        .agg(
            F.sum(_Y).alias(_Y),
            F.count(F.when(F.col(_Y) > 0, True)).alias(_NPOS),
            F.count(_Y).alias(_NVALID),
            F.count(F.when(F.col(_Y).isNull() | F.col(_DAY).isNull(), True)).alias(_NEXCL),
        )
    )


def _sum0(expr: Column) -> Column:
    return F.coalesce(F.sum(expr), F.lit(0))


def _feature_aggs(windows: Sequence[int], extra_spend_days: int | None) -> list[Column]:
    """Aggregates over daily rows with day bucket ``_BUCKET``; each masked to the past (k >= 1).

    SQL text: one ``expr`` per aggregate (a Column chain would be a dozen Py4J calls each).
    """
    k, y, p = _BUCKET, _Y, TEMP_PREFIX
    past, valid_day = f"{k} >= 1", f"{k} >= 1 AND {_NVALID} > 0"
    aggs = [
        f"count(CASE WHEN {past} THEN true END) AS {_N_PAST}",
        f"min(CASE WHEN {valid_day} THEN {k} END) AS recency_days",
        f"max(CASE WHEN {valid_day} THEN {k} END) AS tenure_days",
        f"CAST(coalesce(sum(CASE WHEN {past} OR {_DAY} IS NULL THEN {_NEXCL} END), 0) AS BIGINT) "
        "AS excluded_rows",
    ]
    for w in windows:
        in_w = f"{past} AND {k} <= {w}"
        aggs += [
            f"CAST(coalesce(sum(CASE WHEN {in_w} THEN {_NPOS} END), 0) AS BIGINT) AS n_orders_{w}d",
            f"coalesce(sum(CASE WHEN {in_w} THEN {y} END), 0D) AS revenue_{w}d",
            f"coalesce(sum(CASE WHEN {k} > {w} AND {k} <= {2 * w} THEN {y} END), 0D) "
            f"AS {p}prev_{w}",
            # sum over days of d * y_d with d = w - k (0 = oldest day of the window)
            f"coalesce(sum(CASE WHEN {in_w} THEN {y} * ({w} - {k}) END), 0D) AS {p}sdy_{w}",
            f"max(CASE WHEN {in_w} AND {_NVALID} > 0 THEN {y} END) AS {p}max_{w}",
            f"count(CASE WHEN {in_w} AND {_NVALID} > 0 THEN true END) AS {p}days_{w}",
        ]
    if extra_spend_days is not None:
        aggs.append(
            f"coalesce(sum(CASE WHEN {past} AND {k} <= {extra_spend_days} THEN {y} END), 0D) "
            f"AS {_SPEND}"
        )
    return [F.expr(a) for a in aggs]


def _slope(w: int, sum_y: str, sum_dy: str) -> str:
    """SQL: least-squares slope of y_d on d = 0..w-1 from sum(y) and sum(d*y) (zero days in).

    slope = (w * S_dy - S_d * S_y) / (w * S_dd - S_d^2) with S_d = w(w-1)/2 and
    w * S_dd - S_d^2 = w^2 (w^2 - 1) / 12; null for w = 1.
    """
    if w < 2:
        return "CAST(NULL AS DOUBLE)"
    s_d = w * (w - 1) / 2.0
    denominator = w * w * (w * w - 1) / 12.0
    return f"(({float(w)!r}D * {sum_dy} - {s_d!r}D * {sum_y}) / {denominator!r}D)"


def _feature_select(windows: Sequence[int]) -> list[Column]:
    """The public feature columns from :func:`_feature_aggs`' aggregates."""
    p = TEMP_PREFIX
    cols = [
        "CAST(recency_days AS INT) AS recency_days",
        "CAST(tenure_days AS INT) AS tenure_days",
    ]
    for w in windows:
        revenue, max_obs = f"revenue_{w}d", f"{p}max_{w}"
        # days without a valid order count as 0 revenue in the maximum
        max_daily = (
            f"CASE WHEN {p}days_{w} < {w} THEN greatest(coalesce({max_obs}, 0D), 0D) "
            f"ELSE {max_obs} END"
        )
        cols += [
            f"n_orders_{w}d",
            revenue,
            f"try_divide({revenue}, {p}prev_{w}) AS revenue_trend_{w}d",
            f"{_slope(w, revenue, f'{p}sdy_{w}')} AS revenue_slope_{w}d",
            f"try_divide({max_daily}, {revenue} / {float(w)!r}D) AS spike_ratio_{w}d",
        ]
    cols.append("excluded_rows")
    return [F.expr(c) for c in cols]


# --------------------------------------------------------------------------------------------
# Public transformations
# --------------------------------------------------------------------------------------------


@any_column_name("churn_features")
def churn_features(
    df: DataFrame,
    *,
    as_of: Any,
    account_col: str = "account_id",
    date_col: str = "order_date",
    value_col: str = "amount",
    windows: Sequence[int] = (30, 90, 180),
) -> DataFrame:
    r"""Point-in-time churn features per account from a transaction log.

    One row per account with at least one dated row before ``as_of``. Only rows with
    ``date < as_of`` are read, so the result is identical whether or not later rows exist.

    Parameters
    ----------
    df : pyspark.sql.DataFrame
        Transactions: ``account_col``, ``date_col`` (date or timestamp), ``value_col``
        (numeric; negative for refunds).
    as_of : date, datetime or str
        Cutoff (exclusive): a date, a datetime or an ISO 8601 string.
    account_col, date_col, value_col : str
        Column names.
    windows : sequence of int
        Window lengths in days (default 30, 90, 180).

    Returns
    -------
    pyspark.sql.DataFrame
        ``account_col``, ``recency_days``, ``tenure_days`` (int) and, per window ``w``,
        ``n_orders_{w}d`` (long), ``revenue_{w}d``, ``revenue_trend_{w}d``,
        ``revenue_slope_{w}d``, ``spike_ratio_{w}d`` (double), then ``excluded_rows`` (long).

    Notes
    -----
    A row at time ``t < as_of`` lies on day ``k = ceil((as_of - t) / 1 day)`` before as_of
    (``datediff(as_of, date)`` for dates and a midnight ``as_of``; timestamps are floored to
    their date). Window ``w`` = rows with ``1 <= k <= w`` (``as_of - w days <= t < as_of``);
    daily revenue ``y_d`` is the sum of the amounts on day ``d = w - k`` (``d = 0`` oldest,
    ``d = w - 1`` newest), 0 on days without orders.

    - ``recency_days`` = smallest ``k`` (``as_of`` - last order date), ``tenure_days`` =
      largest ``k`` (``as_of`` - first order date), in whole days.
    - ``n_orders_{w}d`` = rows in the window with amount > 0; ``revenue_{w}d`` = sum of amounts
      (refunds included, so it can be negative).
    - ``revenue_trend_{w}d`` = ``revenue_{w}d`` / revenue of the ``w`` days before the window
      (``as_of - 2w <= t < as_of - w``); null when that earlier revenue is 0.
    - ``revenue_slope_{w}d`` = least-squares slope of ``y_d`` on ``d`` over all ``w`` days:
      :math:`(w S_{dy} - S_d S_y) / (w^2 (w^2 - 1) / 12)` with :math:`S_d = w(w-1)/2`
      (null for ``w = 1``). Revenue per day per day.
    - ``spike_ratio_{w}d`` = :math:`\max_d y_d / (\frac{1}{w}\sum_d y_d)` over all ``w`` days
      (a day without orders has ``y_d = 0``, so the maximum is at least 0 when such a day
      exists); null when the mean is 0. Net refunds make the mean negative and so the ratio
      negative: read it together with ``revenue_{w}d``.
    - Rows with a null date or a null amount are excluded from every feature and counted in
      ``excluded_rows``: null amounts dated before ``as_of`` plus all undated rows of the
      account (undated rows are not "later rows"). Accounts whose rows before ``as_of`` all
      have null amounts appear with null recency and tenure and zero windows.

    References
    ----------
    Kaufman, Rosset and Perlich (2011), "Leakage in data mining: formulation, detection, and
    avoidance", KDD: features must use only information available at prediction time.

    Examples
    --------
    >>> import datetime as dt
    >>> tx = spark.createDataFrame(
    ...     [("a", dt.date(2024, 1, 1), 10.0), ("a", dt.date(2024, 1, 20), 30.0),
    ...      ("a", dt.date(2024, 3, 1), 99.0)],
    ...     "account_id string, order_date date, amount double")
    >>> row = churn_features(tx, as_of="2024-01-31", windows=(30,)).first()
    >>> row.recency_days, row.tenure_days, row.n_orders_30d, row.revenue_30d
    (11, 30, 2, 40.0)
    >>> row.spike_ratio_30d
    22.5
    """
    func = "churn_features"
    require_columns(
        df,
        func,
        account_col=(account_col, "any"),
        date_col=(date_col, "temporal"),
        value_col=(value_col, "numeric"),
    )
    moment = parse_timestamp(func, "as_of", as_of)
    wins = _check_windows(func, "windows", windows)
    as_of_day, shift = _split_as_of(moment)
    day = _day_expr(date_col, shift)
    # read only rows before as_of (and undated rows, which are counted as excluded)
    source = df.select(account_col, date_col, value_col).filter(
        F.col(date_col).isNull() | (day < F.lit(as_of_day))
    )
    daily = _daily(source, account_col, value_col, day)
    daily = daily.withColumn(_BUCKET, _bucket(F.lit(as_of_day)))
    agg = daily.groupBy(account_col).agg(*_feature_aggs(wins, None))
    return agg.filter(F.col(_N_PAST) > 0).select(F.col(account_col), *_feature_select(wins))


def _check_usage_columns(
    func: str,
    usage: DataFrame,
    *,
    account_col: str,
    date: tuple[str, str],
    metric: tuple[str, str],
) -> str:
    """Check a usage frame's account, date and metric columns; return the metric column.

    ``date`` and ``metric`` are (argument name, column) pairs, so the messages name the
    caller's keyword (``date_col`` of :func:`usage_features`, ``usage_date_col`` of
    :func:`training_frame`).
    """
    (date_arg, date_col), (metric_arg, metric_col) = date, metric
    metric_col = check_name(func, metric_arg, metric_col)
    columns: dict[str, tuple[str, ColumnKind]] = {
        "account_col": (account_col, "any"),
        date_arg: (date_col, "temporal"),
        metric_arg: (metric_col, "numeric"),
    }
    require_columns(usage, func, **columns)
    return metric_col


def usage_features(
    df: DataFrame,
    *,
    as_of: Any,
    metric_col: str,
    account_col: str = "account_id",
    date_col: str = "event_date",
    windows: Sequence[int] = (30, 90),
    plateau_tolerance: float = 0.05,
) -> DataFrame:
    r"""Point-in-time product-usage features per account.

    One row per account with at least one dated usage row before ``as_of``; only rows with
    ``date < as_of`` are read.

    Parameters
    ----------
    df : pyspark.sql.DataFrame
        Usage events or daily usage: ``account_col``, ``date_col`` (date or timestamp),
        ``metric_col`` (numeric).
    as_of : date, datetime or str
        Cutoff (exclusive).
    metric_col : str
        The usage measure to sum per day (e.g. ``"usage"`` or ``"active_users"``).
    account_col, date_col : str
        Column names.
    windows : sequence of int
        Window lengths in days (default 30 and 90).
    plateau_tolerance : float
        Largest relative change of the fitted usage trend across a window that still counts
        as a plateau (default 0.05 = 5%).

    Returns
    -------
    pyspark.sql.DataFrame
        ``account_col``, per window ``usage_{w}d``, ``usage_slope_{w}d`` (double),
        ``usage_plateau_{w}d`` (bool), then ``usage_excluded_rows`` (long).

    Notes
    -----
    Days are counted back from ``as_of`` as in :func:`churn_features`; daily usage ``u_d``
    (``d = 0..w-1``, 0 on days without rows) is the sum of ``metric_col`` per day.

    - ``usage_{w}d`` = :math:`\sum_d u_d`.
    - ``usage_slope_{w}d`` = least-squares slope of ``u_d`` on ``d`` (zero days included), as
      ``revenue_slope`` in :func:`churn_features`; null for ``w = 1``.
    - ``usage_plateau_{w}d`` is true when the account used the product in the window
      (``usage_{w}d > 0``) but the fitted trend line moves by at most ``plateau_tolerance``
      of the mean daily usage from the first to the last day of the window:
      :math:`|\hat\beta_w| (w - 1) \le \tau \, \bar u_w`, :math:`\bar u_w = usage_{w}d / w`.
      Growth has stalled (neither growing nor declining); a decline shows as a negative slope
      instead. False when there was no usage in the window; null for ``w = 1``.
    - Rows with a null date or a null metric are excluded and counted in
      ``usage_excluded_rows`` (null metrics dated before ``as_of`` plus undated rows).

    Examples
    --------
    >>> import datetime as dt
    >>> usage = spark.createDataFrame(
    ...     [("a", dt.date(2024, 1, 1) + dt.timedelta(days=i), 5.0) for i in range(30)],
    ...     "account_id string, event_date date, usage double")
    >>> row = usage_features(usage, as_of="2024-01-31", metric_col="usage", windows=(30,)).first()
    >>> row.usage_30d, row.usage_slope_30d, row.usage_plateau_30d
    (150.0, 0.0, True)
    """
    func = "usage_features"
    metric_col = _check_usage_columns(
        func,
        df,
        account_col=account_col,
        date=("date_col", date_col),
        metric=("metric_col", metric_col),
    )
    moment = parse_timestamp(func, "as_of", as_of)
    wins = _check_windows(func, "windows", windows)
    tol = check_fraction(func, "plateau_tolerance", plateau_tolerance, high=float("inf"))
    as_of_day, shift = _split_as_of(moment)
    day = _day_expr(date_col, shift)
    source = df.select(
        F.col(account_col), day.alias(_DAY), F.col(metric_col).cast("double").alias(_Y)
    ).filter(F.col(_DAY).isNull() | (F.col(_DAY) < F.lit(as_of_day)))
    k = _bucket(F.lit(as_of_day))
    agg = source.groupBy(account_col).agg(*_usage_aggs(k, wins))
    return agg.filter(F.col(_N_PAST) > 0).select(F.col(account_col), *_usage_select(wins, tol))


def _usage_aggs(k: Column, windows: Sequence[int]) -> list[Column]:
    past = k >= 1
    y = F.col(_Y)
    aggs = [
        F.count(F.when(past, True)).alias(_N_PAST),
        F.count(F.when((past | F.col(_DAY).isNull()) & (y.isNull() | F.col(_DAY).isNull()), True))
        .cast("long")
        .alias("usage_excluded_rows"),
    ]
    for w in windows:
        in_w = past & (k <= w)
        aggs += [
            F.coalesce(F.sum(F.when(in_w, y)), F.lit(0.0)).alias(f"usage_{w}d"),
            F.coalesce(F.sum(F.when(in_w, y * (F.lit(w) - k))), F.lit(0.0)).alias(
                f"{TEMP_PREFIX}usdy_{w}"
            ),
        ]
    return aggs


def _usage_select(windows: Sequence[int], tol: float) -> list[Column]:
    cols: list[Column] = []
    for w in windows:
        total = F.col(f"usage_{w}d")
        slope = F.expr(_slope(w, f"usage_{w}d", f"{TEMP_PREFIX}usdy_{w}"))
        if w < 2:
            plateau = F.lit(None).cast("boolean")
        else:
            plateau = (total > 0) & (
                F.abs(slope) * F.lit(float(w - 1)) <= F.lit(tol) * total / F.lit(float(w))
            )
        cols += [
            total,
            slope.alias(f"usage_slope_{w}d"),
            plateau.alias(f"usage_plateau_{w}d"),
        ]
    cols.append(F.col("usage_excluded_rows"))
    return cols


def churn_labels(
    df: DataFrame,
    *,
    as_of: Any,
    horizon_days: int = 90,
    account_col: str = "account_id",
    date_col: str = "order_date",
    value_col: str | None = "amount",
    purchases_only: bool = False,
) -> DataFrame:
    """Churn labels: no transaction in the ``horizon_days`` days from ``as_of``.

    One row per account with at least one dated row before ``as_of`` (the same accounts as
    :func:`churn_features`); only rows before ``as_of + horizon_days`` are read.

    Parameters
    ----------
    df : pyspark.sql.DataFrame
        Transactions.
    as_of : date, datetime or str
        Start of the label horizon (inclusive).
    horizon_days : int
        Horizon length in days (default 90).
    account_col, date_col : str
        Column names.
    value_col : str or None
        Amount column. Rows with a null amount are not transactions (they are excluded and
        counted). ``None``: every dated row is a transaction.
    purchases_only : bool
        Count only rows with a positive amount as transactions (refunds alone then do not keep
        an account alive). Default ``False``: any transaction row, refunds included, as the
        contract reads "no transaction".

    Returns
    -------
    pyspark.sql.DataFrame
        ``account_col``, ``churned`` (bool), ``label_excluded_rows`` (long: rows in the
        horizon with a null amount plus undated rows of the account).

    Notes
    -----
    ``churned`` = no transaction with ``as_of <= t < as_of + horizon_days``. Labels near the
    end of the data are right-censored: choose ``as_of <= last date - horizon_days``.

    Examples
    --------
    >>> import datetime as dt
    >>> tx = spark.createDataFrame(
    ...     [("a", dt.date(2024, 1, 1), 10.0), ("a", dt.date(2024, 2, 15), 5.0),
    ...      ("b", dt.date(2024, 1, 5), 20.0)],
    ...     "account_id string, order_date date, amount double")
    >>> sorted(churn_labels(tx, as_of="2024-02-01", horizon_days=30).select(
    ...     "account_id", "churned").collect())
    [Row(account_id='a', churned=False), Row(account_id='b', churned=True)]
    """
    func = "churn_labels"
    columns: dict[str, tuple[str, Any]] = {
        "account_col": (account_col, "any"),
        "date_col": (date_col, "temporal"),
    }
    if value_col is not None:
        columns["value_col"] = (value_col, "numeric")
    require_columns(df, func, **columns)
    moment = parse_timestamp(func, "as_of", as_of)
    horizon = check_int(func, "horizon_days", horizon_days, unit="days")
    if not isinstance(purchases_only, bool):
        raise SchemaError(f"{func}(): purchases_only= must be a bool, found {purchases_only!r}")
    if purchases_only and value_col is None:
        raise SchemaError(f"{func}(): purchases_only=True needs value_col= (the amount column)")
    as_of_day, shift = _split_as_of(moment)
    day = _day_expr(date_col, shift)
    amount = F.col(value_col).cast("double") if value_col is not None else F.lit(0.0)
    source = df.select(F.col(account_col), day.alias(_DAY), amount.alias(_Y)).filter(
        F.col(_DAY).isNull() | (F.col(_DAY) < F.lit(as_of_day + _dt.timedelta(days=horizon)))
    )
    k = _bucket(F.lit(as_of_day))
    agg = source.groupBy(account_col).agg(
        F.count(F.when(k >= 1, True)).alias(_N_PAST),
        *_label_aggs(
            k,
            horizon,
            tx_count=F.when(_is_transaction(F.col(_Y), purchases_only), 1).otherwise(0),
            excl_count=F.when(F.col(_Y).isNull() | F.col(_DAY).isNull(), 1).otherwise(0),
        ),
    )
    return agg.filter(F.col(_N_PAST) > 0).select(account_col, "churned", "label_excluded_rows")


def _is_transaction(y: Column, purchases_only: bool) -> Column:
    return (y > 0) if purchases_only else y.isNotNull()


def _label_aggs(k: Column, horizon: int, *, tx_count: Column, excl_count: Column) -> list[Column]:
    """Label aggregates; each is masked to the horizon (``1 - horizon <= k <= 0``).

    ``tx_count`` / ``excl_count`` are per-row counts of transactions / excluded rows.
    """
    in_h = (k <= 0) & (k >= 1 - horizon)
    return [
        (_sum0(F.when(in_h, tx_count)) == 0).alias("churned"),
        _sum0(F.when(in_h | F.col(_DAY).isNull(), excl_count))
        .cast("long")
        .alias("label_excluded_rows"),
    ]


# --------------------------------------------------------------------------------------------
# Training frame
# --------------------------------------------------------------------------------------------


def _parse_as_of_dates(func: str, as_of_dates: Any) -> tuple[list[_dt.date], float, bool]:
    if isinstance(as_of_dates, (str, bytes, _dt.date)) or not isinstance(as_of_dates, Iterable):
        raise SchemaError(
            f"{func}(): as_of_dates= must be a sequence of dates, datetimes or ISO strings, "
            f"found {as_of_dates!r}"
        )
    moments = [parse_timestamp(func, "as_of_dates", v) for v in as_of_dates]
    if not moments:
        raise SchemaError(f"{func}(): as_of_dates= must not be empty")
    if len(set(moments)) != len(moments):
        raise SchemaError(f"{func}(): as_of_dates= must not repeat a date, found {as_of_dates!r}")
    shifts = {_seconds_of_day(m) for m in moments}
    if len(shifts) != 1:
        raise SchemaError(
            f"{func}(): as_of_dates= must all have the same time of day (e.g. all midnight), "
            f"found {sorted(m.isoformat() for m in moments)}"
        )
    shift = shifts.pop()
    return sorted(m.date() for m in moments), shift, shift == 0


def training_frame(
    df: DataFrame,
    *,
    as_of_dates: Sequence[Any],
    horizon_days: int = 90,
    account_col: str = "account_id",
    date_col: str = "order_date",
    value_col: str = "amount",
    windows: Sequence[int] = (30, 90, 180),
    purchases_only: bool = False,
    usage: DataFrame | None = None,
    usage_metric_col: str = "usage",
    usage_date_col: str = "event_date",
    usage_windows: Sequence[int] = (30, 90),
    plateau_tolerance: float = 0.05,
    surveys: DataFrame | None = None,
    score_col: str = "score",
    survey_date_col: str = "response_date",
    nps_window_days: int = 90,
    wallets: DataFrame | None = None,
    wallet_col: str = "wallet",
    wallet_spend_days: int = 365,
) -> DataFrame:
    r"""Churn features and labels for many ``as_of`` dates, stacked, in one pass per input.

    For each ``as_of`` in ``as_of_dates`` and each account with a dated transaction before it:
    the :func:`churn_features` columns and the :func:`churn_labels` label, plus optional
    usage, NPS-trend and share-of-wallet features. The ``as_of`` dates are a small broadcast
    DataFrame cross-joined with the (daily pre-aggregated) transactions, then one
    ``groupBy(as_of, account)`` computes everything: no Spark job per date.

    Parameters
    ----------
    df : pyspark.sql.DataFrame
        Transactions (``account_col``, ``date_col``, ``value_col``).
    as_of_dates : sequence of date, datetime or str
        Cutoffs; all must share one time of day (usually midnight).
    horizon_days : int
        Label horizon (default 90).
    account_col, date_col, value_col, windows, purchases_only
        As in :func:`churn_features` and :func:`churn_labels`.
    usage : pyspark.sql.DataFrame, optional
        Usage rows (``account_col``, ``usage_date_col``, ``usage_metric_col``): adds the
        :func:`usage_features` columns for ``usage_windows``. Accounts without usage rows get
        zero usage, zero slope and no plateau.
    surveys : pyspark.sql.DataFrame, optional
        Survey responses (``account_col``, ``survey_date_col``, ``score_col`` on 0-10): adds
        ``nps_{n}d``, ``nps_prev_{n}d``, ``nps_change_{n}d``, ``survey_responses_{n}d`` and
        ``survey_excluded_rows`` with ``n = nps_window_days``.
    wallets : pyspark.sql.DataFrame, optional
        One row per account with ``wallet_col`` (annual category spend): adds
        ``share_of_wallet`` = revenue of the last ``wallet_spend_days`` days / wallet.

    Returns
    -------
    pyspark.sql.DataFrame
        ``as_of`` (date; timestamp when the cutoffs are not at midnight), ``account_col``, the
        churn features, ``excluded_rows``, ``churned``, ``label_excluded_rows`` and the
        optional columns. Feed it to :func:`assemble_features` for ``pyspark.ml``.

    Notes
    -----
    Point in time: features at ``as_of`` use only rows with ``t < as_of``, labels only rows with
    ``as_of <= t < as_of + horizon_days``, surveys only responses before ``as_of``; each
    aggregate is masked accordingly, so no feature can see the horizon.

    - NPS per account and period (valid integer scores 0-10 only, as :func:`kamlib.nps.nps`):
      :math:`100 (n_{9,10} - n_{0..6}) / n`; ``nps_{n}d`` over ``[as_of - n, as_of)``,
      ``nps_prev_{n}d`` over ``[as_of - 2n, as_of - n)``, ``nps_change_{n}d`` = their
      difference (null when either period has no valid response). Null, fractional or
      out-of-range scores and undated responses are counted in ``survey_excluded_rows``.
    - ``share_of_wallet`` = trailing ``wallet_spend_days`` revenue / ``wallet_col``, null where
      the wallet is null or <= 0 (as :func:`kamlib.wallet.share_of_wallet`). The wallet table
      must hold one row per account; it is a static snapshot, so make sure it was estimated
      before the earliest ``as_of`` if leakage matters.
    - Choose ``as_of_dates`` with ``as_of + horizon_days`` before the end of the data, else the
      labels are right-censored (everyone looks churned).

    Examples
    --------
    >>> import datetime as dt
    >>> tx = spark.createDataFrame(
    ...     [("a", dt.date(2024, 1, 1), 10.0), ("a", dt.date(2024, 2, 15), 5.0),
    ...      ("b", dt.date(2024, 1, 5), 20.0)],
    ...     "account_id string, order_date date, amount double")
    >>> tf = training_frame(tx, as_of_dates=["2024-02-01", "2024-03-01"], horizon_days=30,
    ...                     windows=(30,))
    >>> [(r.as_of.isoformat(), r.account_id, r.revenue_30d, r.churned)
    ...  for r in tf.orderBy("as_of", "account_id").collect()]
    [('2024-02-01', 'a', 0.0, False), ('2024-02-01', 'b', 20.0, True), ('2024-03-01', 'a', 5.0, True), ('2024-03-01', 'b', 0.0, True)]
    """  # noqa: E501
    func = "training_frame"
    opts = _check_training(
        func,
        df,
        as_of_dates=as_of_dates,
        horizon_days=horizon_days,
        account_col=account_col,
        date_col=date_col,
        value_col=value_col,
        windows=windows,
        purchases_only=purchases_only,
        usage=usage,
        usage_metric_col=usage_metric_col,
        usage_date_col=usage_date_col,
        usage_windows=usage_windows,
        plateau_tolerance=plateau_tolerance,
        surveys=surveys,
        score_col=score_col,
        survey_date_col=survey_date_col,
        nps_window_days=nps_window_days,
        wallets=wallets,
        wallet_col=wallet_col,
        wallet_spend_days=wallet_spend_days,
    )
    as_of_df, as_of_value = _as_of_frame(df, opts)
    frame = _transaction_rows(
        df,
        as_of_df,
        opts,
        account_col=account_col,
        date_col=date_col,
        value_col=value_col,
        purchases_only=purchases_only,
    )
    if usage is not None:
        frame = _with_usage(
            frame,
            usage,
            as_of_df,
            opts,
            account_col=account_col,
            usage_date_col=usage_date_col,
            usage_metric_col=opts.usage_metric_col,
        )
    if surveys is not None:
        frame = _with_survey_nps(
            frame,
            surveys,
            as_of_df,
            opts,
            account_col=account_col,
            survey_date_col=survey_date_col,
            score_col=score_col,
        )
    if wallets is not None:
        frame = _with_share_of_wallet(
            frame, wallets, account_col=account_col, wallet_col=wallet_col
        )
    ordered = [c for c in column_names(frame) if c not in (_ASOF_DAY, account_col)]
    return frame.select(as_of_value.alias(_AS_OF), F.col(account_col), *ordered)


@dataclass(frozen=True)
class _TrainingOptions:
    """The checked options of :func:`training_frame` (``None`` where the input is not given)."""

    days: list[_dt.date]
    shift: float
    midnight: bool
    horizon: int
    wins: tuple[int, ...]
    usage_metric_col: str
    uwins: tuple[int, ...] = ()  # with usage=
    tol: float = 0.0  # with usage=
    nps_days: int = 0  # with surveys=
    spend_days: int | None = None  # with wallets=


def _check_training(
    func: str,
    df: DataFrame,
    *,
    as_of_dates: Sequence[Any],
    horizon_days: int,
    account_col: str,
    date_col: str,
    value_col: str,
    windows: Sequence[int],
    purchases_only: bool,
    usage: DataFrame | None,
    usage_metric_col: str,
    usage_date_col: str,
    usage_windows: Sequence[int],
    plateau_tolerance: float,
    surveys: DataFrame | None,
    score_col: str,
    survey_date_col: str,
    nps_window_days: int,
    wallets: DataFrame | None,
    wallet_col: str,
    wallet_spend_days: int,
) -> _TrainingOptions:
    """Check the columns of every input and the options (schema only, no Spark job)."""
    require_columns(
        df,
        func,
        account_col=(account_col, "any"),
        date_col=(date_col, "temporal"),
        value_col=(value_col, "numeric"),
    )
    if _AS_OF in (account_col, date_col, value_col):
        raise SchemaError(f"{func}(): input columns must not be named {_AS_OF!r}")
    days, shift, midnight = _parse_as_of_dates(func, as_of_dates)
    horizon = check_int(func, "horizon_days", horizon_days, unit="days")
    wins = _check_windows(func, "windows", windows)
    uwins: tuple[int, ...] = ()
    tol = 0.0
    if usage is not None:
        usage_metric_col = _check_usage_columns(
            func,
            usage,
            account_col=account_col,
            date=("usage_date_col", usage_date_col),
            metric=("usage_metric_col", usage_metric_col),
        )
        uwins = _check_windows(func, "usage_windows", usage_windows)
        tol = check_fraction(func, "plateau_tolerance", plateau_tolerance, high=float("inf"))
    nps_days = 0
    if surveys is not None:
        require_columns(
            surveys,
            func,
            account_col=(account_col, "any"),
            survey_date_col=(survey_date_col, "temporal"),
            score_col=(score_col, "numeric"),
        )
        nps_days = check_int(func, "nps_window_days", nps_window_days, unit="days")
    spend_days: int | None = None
    if wallets is not None:
        require_columns(
            wallets, func, account_col=(account_col, "any"), wallet_col=(wallet_col, "numeric")
        )
        spend_days = check_int(func, "wallet_spend_days", wallet_spend_days, unit="days")
    if not isinstance(purchases_only, bool):
        raise SchemaError(f"{func}(): purchases_only= must be a bool, found {purchases_only!r}")
    return _TrainingOptions(
        days, shift, midnight, horizon, wins, usage_metric_col, uwins, tol, nps_days, spend_days
    )


def _as_of_frame(df: DataFrame, opts: _TrainingOptions) -> tuple[DataFrame, Column]:
    """The cutoff days as a small broadcast DataFrame, and the output ``as_of`` expression."""
    spark = df.sparkSession
    as_of_df = spark.createDataFrame([(d,) for d in opts.days], f"{_ASOF_DAY} date")
    if opts.midnight:
        as_of_value = F.col(_ASOF_DAY)
    else:
        base = F.col(_ASOF_DAY).cast("timestamp_ntz") + F.make_dt_interval(
            secs=F.lit(opts.shift).cast("decimal(18,6)")
        )
        as_of_value = base.cast("timestamp")
    return F.broadcast(as_of_df), as_of_value


def _transaction_rows(
    df: DataFrame,
    as_of_df: DataFrame,
    opts: _TrainingOptions,
    *,
    account_col: str,
    date_col: str,
    value_col: str,
    purchases_only: bool,
) -> DataFrame:
    """Churn features and labels per (cutoff, account) with a transaction before the cutoff.

    One shuffle (by account), daily rows, a cross join with the cutoffs and one aggregation.
    """
    k = _bucket(F.col(_ASOF_DAY))
    day = _day_expr(date_col, opts.shift)
    daily = _daily(df.select(account_col, date_col, value_col), account_col, value_col, day)
    tx_count = F.col(_NPOS) if purchases_only else F.col(_NVALID)
    joined = (
        daily.crossJoin(as_of_df)
        .withColumn(_BUCKET, k)
        .filter(F.col(_DAY).isNull() | (F.col(_BUCKET) >= 1 - opts.horizon))
    )
    kc = F.col(_BUCKET)
    agg = joined.groupBy(_ASOF_DAY, account_col).agg(
        *_feature_aggs(opts.wins, opts.spend_days),
        *_label_aggs(kc, opts.horizon, tx_count=tx_count, excl_count=F.col(_NEXCL)),
    )
    result = agg.filter(F.col(_N_PAST) > 0)
    keep = [F.col(_ASOF_DAY), F.col(account_col), *_feature_select(opts.wins)]
    keep += [F.col("churned"), F.col("label_excluded_rows")]
    if opts.spend_days is not None:
        keep.append(F.col(_SPEND))
    return result.select(*keep)


def _with_usage(
    frame: DataFrame,
    usage: DataFrame,
    as_of_df: DataFrame,
    opts: _TrainingOptions,
    *,
    account_col: str,
    usage_date_col: str,
    usage_metric_col: str,
) -> DataFrame:
    """Add the usage features; accounts without usage get zero usage and slope, no plateau."""
    k = _bucket(F.col(_ASOF_DAY))
    uday = _day_expr(usage_date_col, opts.shift)
    usrc = usage.select(
        F.col(account_col), uday.alias(_DAY), F.col(usage_metric_col).cast("double").alias(_Y)
    ).crossJoin(as_of_df)
    usrc = usrc.filter(F.col(_DAY).isNull() | (k >= 1))
    uagg = usrc.groupBy(_ASOF_DAY, account_col).agg(*_usage_aggs(k, opts.uwins))
    ufeat = uagg.filter(F.col(_N_PAST) > 0).select(
        F.col(_ASOF_DAY), F.col(account_col), *_usage_select(opts.uwins, opts.tol)
    )
    frame = frame.join(ufeat, on=[_ASOF_DAY, account_col], how="left")
    fills: dict[str, Any] = {"usage_excluded_rows": 0}
    for w in opts.uwins:
        fills[f"usage_{w}d"] = 0.0
        fills[f"usage_slope_{w}d"] = 0.0 if w >= 2 else None
        fills[f"usage_plateau_{w}d"] = False if w >= 2 else None
    return frame.fillna({c: v for c, v in fills.items() if v is not None})


def _with_survey_nps(
    frame: DataFrame,
    surveys: DataFrame,
    as_of_df: DataFrame,
    opts: _TrainingOptions,
    *,
    account_col: str,
    survey_date_col: str,
    score_col: str,
) -> DataFrame:
    """Add the NPS-trend features (zero responses where an account has no survey)."""
    nps_days = opts.nps_days
    return frame.join(
        _nps_features(
            surveys, as_of_df, account_col, survey_date_col, score_col, nps_days, opts.shift
        ),
        on=[_ASOF_DAY, account_col],
        how="left",
    ).fillna({f"survey_responses_{nps_days}d": 0, "survey_excluded_rows": 0})


def _with_share_of_wallet(
    frame: DataFrame, wallets: DataFrame, *, account_col: str, wallet_col: str
) -> DataFrame:
    """Replace the trailing spend column by ``share_of_wallet`` (null where wallet <= 0)."""
    wal = wallets.select(F.col(account_col), F.col(wallet_col).cast("double").alias(_WALLET))
    frame = frame.join(wal, on=account_col, how="left")
    wallet = F.col(_WALLET)
    return frame.withColumn(
        "share_of_wallet",
        F.when(wallet > 0, F.try_divide(F.col(_SPEND), wallet)),
    ).drop(_WALLET, _SPEND)


def _nps_features(
    surveys: DataFrame,
    as_of_df: DataFrame,
    account_col: str,
    date_col: str,
    score_col: str,
    n: int,
    shift: float,
) -> DataFrame:
    score = F.col(_SCORE)
    valid, promoter, detractor = nps_classes(score)
    src = surveys.select(
        F.col(account_col),
        _day_expr(date_col, shift).alias(_DAY),
        F.col(score_col).cast("double").alias(_SCORE),
    ).crossJoin(as_of_df)
    k = _bucket(F.col(_ASOF_DAY))
    src = src.filter(F.col(_DAY).isNull() | (k >= 1))
    recent = (k >= 1) & (k <= n) & valid
    prev = (k > n) & (k <= 2 * n) & valid

    def _nps(mask: Column) -> Column:
        promoters = F.count(F.when(mask & promoter, True))
        detractors = F.count(F.when(mask & detractor, True))
        total = F.count(F.when(mask, True))
        return F.try_divide(F.lit(100.0) * (promoters - detractors), total)

    agg = src.groupBy(_ASOF_DAY, account_col).agg(
        _nps(recent).alias(f"nps_{n}d"),
        _nps(prev).alias(f"nps_prev_{n}d"),
        F.count(F.when(recent, True)).cast("long").alias(f"survey_responses_{n}d"),
        F.count(F.when(F.col(_DAY).isNull() | ((k >= 1) & ~F.coalesce(valid, F.lit(False))), True))
        .cast("long")
        .alias("survey_excluded_rows"),
    )
    return agg.withColumn(f"nps_change_{n}d", F.col(f"nps_{n}d") - F.col(f"nps_prev_{n}d")).select(
        _ASOF_DAY,
        account_col,
        f"nps_{n}d",
        f"nps_prev_{n}d",
        f"nps_change_{n}d",
        f"survey_responses_{n}d",
        "survey_excluded_rows",
    )


# --------------------------------------------------------------------------------------------
# pyspark.ml helpers
# --------------------------------------------------------------------------------------------


def feature_columns(
    df: DataFrame,
    *,
    account_col: str = "account_id",
    exclude: Iterable[str] = (),
) -> list[str]:
    """Names of the model feature columns of a :func:`training_frame` (schema only).

    Every numeric or boolean column except the account, ``as_of``, the label ``churned`` and
    the data-quality counts (``excluded_rows``, ``label_excluded_rows``,
    ``usage_excluded_rows``, ``survey_excluded_rows``) and anything in ``exclude``.

    Examples
    --------
    >>> import datetime as dt
    >>> tx = spark.createDataFrame([("a", dt.date(2024, 1, 1), 10.0)],
    ...     "account_id string, order_date date, amount double")
    >>> feature_columns(training_frame(tx, as_of_dates=["2024-02-01"], windows=(30,)))
    ['recency_days', 'tenure_days', 'n_orders_30d', 'revenue_30d', 'revenue_trend_30d', 'revenue_slope_30d', 'spike_ratio_30d']
    """  # noqa: E501
    from pyspark.sql import types as T

    skip = {account_col, *NON_FEATURE_COLUMNS, *exclude}
    return [
        field.name
        for field in df.schema.fields
        if field.name not in skip and isinstance(field.dataType, (T.NumericType, T.BooleanType))
    ]


def assemble_features(
    df: DataFrame,
    *,
    features: Sequence[str] | None = None,
    account_col: str = "account_id",
    fill_value: float = 0.0,
    missing_indicators: bool = True,
    features_col: str = "features",
    label_col: str | None = "churned",
    output_label_col: str = "label",
) -> DataFrame:
    """Add a ``pyspark.ml`` feature vector (and a double label) with explicit null handling.

    Each feature is cast to double; a null (undefined trend, spike ratio, NPS, share of
    wallet, ...) becomes ``fill_value`` and, with ``missing_indicators``, an extra vector slot
    ``1.0`` flags it, so tree models can tell "undefined" from a real ``fill_value``. The vector
    is built with native expressions (``array_to_vector``), not a fitted transformer.

    Parameters
    ----------
    df : pyspark.sql.DataFrame
        Typically a :func:`training_frame`.
    features : sequence of str, optional
        Feature columns (default :func:`feature_columns`).
    account_col : str
        Account column (excluded from the default features).
    fill_value : float
        Value that replaces nulls.
    missing_indicators : bool
        Append one indicator per nullable feature (in the schema) to the vector.
    features_col : str
        Output vector column.
    label_col : str or None
        Boolean label to convert; ``None`` for scoring frames without labels.
    output_label_col : str
        Output double label column (``1.0`` = churned).

    Returns
    -------
    pyspark.sql.DataFrame
        ``df`` plus ``features_col`` (``VectorUDT``) and ``output_label_col``. The slot names
        are :func:`vector_slots` of the same arguments (for feature importances).

    Examples
    --------
    >>> import datetime as dt
    >>> tx = spark.createDataFrame([("a", dt.date(2024, 1, 1), 10.0)],
    ...     "account_id string, order_date date, amount double")
    >>> tf = training_frame(tx, as_of_dates=["2024-02-01"], windows=(30,))
    >>> row = assemble_features(tf, missing_indicators=False).first()
    >>> row.features.toArray().tolist(), row.label
    ([31.0, 31.0, 0.0, 0.0, 0.0, 0.0, 0.0], 1.0)
    """
    from pyspark.ml.functions import array_to_vector

    func = "assemble_features"
    names = list(features) if features is not None else feature_columns(df, account_col=account_col)
    if not names:
        raise SchemaError(f"{func}(): no feature columns found in {column_names(df)}")
    for name in names:
        require_columns(df, func, features=(name, "any"))
    if label_col is not None:
        require_columns(df, func, label_col=(label_col, "boolean"))
    slots = _slots(df, names, missing_indicators)
    fill = F.lit(float(fill_value))
    values: list[Column] = []
    for name, is_indicator in slots:
        col = F.col(name).cast("double")
        values.append(
            F.when(col.isNull(), 1.0).otherwise(0.0) if is_indicator else F.coalesce(col, fill)
        )
    out = df.withColumn(features_col, array_to_vector(F.array(*values)))
    if label_col is not None:
        out = out.withColumn(output_label_col, F.col(label_col).cast("double"))
    return out


def _slots(df: DataFrame, names: Sequence[str], missing_indicators: bool) -> list[tuple[str, bool]]:
    nullable = {f.name: f.nullable for f in df.schema.fields}
    slots = [(n, False) for n in names]
    if missing_indicators:
        slots += [(n, True) for n in names if nullable.get(n, True)]
    return slots


def vector_slots(
    df: DataFrame,
    *,
    features: Sequence[str] | None = None,
    account_col: str = "account_id",
    missing_indicators: bool = True,
) -> list[str]:
    """Names of the slots of :func:`assemble_features`' vector, in order (schema only).

    A missing-value indicator slot is named ``"{feature}_is_null"``.

    Examples
    --------
    >>> import datetime as dt
    >>> tx = spark.createDataFrame([("a", dt.date(2024, 1, 1), 10.0)],
    ...     "account_id string, order_date date, amount double")
    >>> tf = training_frame(tx, as_of_dates=["2024-02-01"], windows=(30,))
    >>> vector_slots(tf)[-2:]
    ['revenue_slope_30d_is_null', 'spike_ratio_30d_is_null']
    """
    names = list(features) if features is not None else feature_columns(df, account_col=account_col)
    return [f"{n}_is_null" if ind else n for n, ind in _slots(df, names, missing_indicators)]
