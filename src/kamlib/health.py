"""Account health score: weighted percent ranks of health signals, banded red / yellow / green."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Literal

from kamlib._scoring import clean_numeric, validate_weights, weighted_percent_rank_score
from kamlib._validation import (
    any_column_name,
    check_bands,
    check_choice,
    check_columns,
    normalize_by,
)
from kamlib.errors import SchemaError

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

__all__ = ["evaluate_health", "health_score", "health_trend"]

HealthMethod = Literal["percentile", "thresholds"]


def _finite_number(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def _check_thresholds(
    func: str,
    thresholds: Mapping[str, Sequence[float]] | None,
    weights: Mapping[str, float],
    lower: frozenset[str],
) -> dict[str, tuple[float, float]]:
    if not isinstance(thresholds, Mapping):
        raise SchemaError(
            f"{func}(): method='thresholds' needs thresholds={{column: (poor, good)}}, "
            f"found {type(thresholds).__name__}"
        )
    clean: dict[str, tuple[float, float]] = {}
    for column, pair in thresholds.items():
        try:
            items = list(pair)
        except TypeError:
            items = []
        if len(items) != 2 or not all(_finite_number(v) for v in items):
            raise SchemaError(
                f"{func}(): thresholds= for {column!r} must be two finite numbers "
                f"(poor, good), found {pair!r}"
            )
        poor, good = float(items[0]), float(items[1])
        if poor == good:
            raise SchemaError(
                f"{func}(): thresholds= for {column!r} must have poor != good, found {pair!r}"
            )
        if column in lower and poor < good:
            raise SchemaError(
                f"{func}(): {column!r} is in lower_is_better= but thresholds= (poor={poor}, "
                f"good={good}) says higher is better"
            )
        clean[column] = (poor, good)
    missing = [c for c in weights if c not in clean]
    extra = [c for c in clean if c not in weights]
    if missing or extra:
        raise SchemaError(
            f"{func}(): with method='thresholds' every weights= column needs a thresholds= "
            f"pair and vice versa; missing {missing!r}, not weighted {extra!r}"
        )
    return clean


def _threshold_score(
    df: DataFrame, weights: Mapping[str, float], thresholds: Mapping[str, tuple[float, float]]
) -> Column:
    from pyspark.sql import functions as F

    numerator: Column = F.lit(0.0)
    denominator: Column = F.lit(0.0)
    for column, weight in weights.items():
        poor, good = thresholds[column]
        value = clean_numeric(df, column).cast("double")
        scaled = (value - F.lit(poor)) / F.lit(good - poor)
        part = F.least(F.greatest(scaled, F.lit(0.0)), F.lit(1.0))
        part = F.when(value.isNotNull(), part)
        numerator = numerator + F.coalesce(F.lit(weight) * part, F.lit(0.0))
        denominator = denominator + F.when(value.isNotNull(), F.lit(weight)).otherwise(0.0)
    return F.lit(100.0) * F.try_divide(numerator, denominator)


def _critical_condition(
    df: DataFrame,
    func: str,
    critical: Mapping[str, float],
    thresholds: Mapping[str, tuple[float, float]],
    lower: frozenset[str],
) -> Column | None:
    from pyspark.sql import functions as F

    if not isinstance(critical, Mapping):
        raise SchemaError(
            f"{func}(): critical= must be a mapping {{column: limit}}, "
            f"found {type(critical).__name__}"
        )
    for column, limit in critical.items():
        if not isinstance(column, str) or not _finite_number(limit):
            raise SchemaError(
                f"{func}(): critical= must map column names to finite numbers, "
                f"found {column!r}: {limit!r}"
            )
    check_columns(
        df, func, dict.fromkeys(critical, "numeric"), args=dict.fromkeys(critical, "critical")
    )
    condition: Column | None = None
    for column, limit in critical.items():
        value = clean_numeric(df, column)
        if column in thresholds:
            poor, good = thresholds[column]
            lower_is_worse = poor < good
        else:
            lower_is_worse = column not in lower
        hit = value <= F.lit(limit) if lower_is_worse else value >= F.lit(limit)
        hit = F.coalesce(hit, F.lit(False))
        condition = hit if condition is None else condition | hit
    return condition


@any_column_name("health_score")
def health_score(
    df: DataFrame,
    *,
    weights: Mapping[str, float],
    lower_is_better: str | Iterable[str] = (),
    by: str | Sequence[str] | None = None,
    bands: Sequence[float] = (40, 70),
    method: HealthMethod = "percentile",
    thresholds: Mapping[str, Sequence[float]] | None = None,
    critical: Mapping[str, float] | None = None,
) -> DataFrame:
    r"""Add a 0..100 account health score and its red / yellow / green band.

    ``method="percentile"`` (default) scores each signal by its percent rank in the group
    (below); ``method="thresholds"`` scores it against absolute standards.

    For every signal column :math:`c` (usage, NPS, revenue growth, open tickets, days
    overdue, ...) the percent rank within the ``by`` group is
    :math:`pr_c = (\operatorname{rank}_c - 1) / (m_c - 1)`, with
    :math:`\operatorname{rank}_c` the (min-tie) rank of the row's value among the :math:`m_c`
    non-null values of :math:`c` in the group, ascending (descending for ``lower_is_better``
    signals, so lower is healthier), and :math:`pr_c = 0` when :math:`m_c = 1`. Then

    .. math:: \text{health\_score} = 100\,\frac{\sum_c w_c\, pr_c}{\sum_c w_c}

    over the signals that are non-null for the row (weights renormalised; NaN counts as
    null); null when every weighted signal is missing. ``health_band`` is "red" for scores
    below ``bands[0]``, "yellow" below ``bands[1]``, otherwise "green"; null for a null score.
    The percent-rank scoring is the same as :func:`kamlib.classify.key_account_score`.

    With ``method="thresholds"`` and ``thresholds={c: (poor_c, good_c)}`` (one pair for every
    weighted column, poor != good, both finite) the percent rank is replaced by

    .. math:: s_c = \min(\max((x_c - poor_c) / (good_c - poor_c),\ 0),\ 1)

    i.e. 0 at or beyond poor, 1 at or beyond good, linear between; ``poor > good`` means lower
    is better (``lower_is_better`` is then optional, and an error if it contradicts a pair).
    The weighting, null renormalisation, ``by`` (ignored by thresholds) and bands are as above.

    ``critical={c: limit}`` (either method) forces ``health_band = "red"`` where the column is
    at or beyond the limit on its poor side, whatever the score (even a null one): for a
    column with a thresholds pair the poor side is the side of ``poor``; otherwise it is
    "low is bad" (``x <= limit``) unless the column is in ``lower_is_better``
    (``x >= limit``). Null / NaN values never trigger a critical rule.

    Parameters
    ----------
    df : pyspark.sql.DataFrame
        One row per account (per group); other columns are kept.
    weights : Mapping[str, float]
        Signal column -> weight (finite, >= 0, not all zero).
    lower_is_better : str or iterable of str
        Signals where a lower value is healthier; must be keys of ``weights``.
    by : str or sequence of str, optional
        Segment columns: accounts are ranked against their own segment.
    bands : (float, float)
        Band limits, ``0 <= red/yellow < yellow/green <= 100``.
    method : {"percentile", "thresholds"}
        Scoring of each signal: percent rank in the group, or absolute thresholds.
    thresholds : Mapping[str, (float, float)], optional
        ``{column: (poor, good)}``; required with ``method="thresholds"``.
    critical : Mapping[str, float], optional
        ``{column: limit}`` rules forcing the red band; columns need not be weighted.

    Returns
    -------
    pyspark.sql.DataFrame
        The input with ``health_score`` and ``health_band`` added (replaced if present).

    References
    ----------
    Percent-rank (empirical CDF) scoring of composite indicators: OECD/JRC, *Handbook on
    Constructing Composite Indicators* (2008), section 5 (normalisation by ranking).

    Examples
    --------
    >>> df = spark.createDataFrame(
    ...     [("a", 90.0, 0), ("b", 40.0, 5), ("c", 70.0, 1), ("d", None, 2)],
    ...     "account_id string, usage double, tickets int")
    >>> out = health_score(df, weights={"usage": 2, "tickets": 1}, lower_is_better=["tickets"])
    >>> for r in out.orderBy("account_id").collect():
    ...     print(r.account_id, round(r.health_score, 2), r.health_band)
    a 100.0 green
    b 0.0 red
    c 55.56 yellow
    d 33.33 red
    >>> t = health_score(df, weights={"usage": 1}, method="thresholds",
    ...                  thresholds={"usage": (50, 80)}, critical={"usage": 75})
    >>> [(r.account_id, r.health_score and round(r.health_score, 1), r.health_band)
    ...  for r in t.orderBy("account_id").collect()]
    [('a', 100.0, 'green'), ('b', 0.0, 'red'), ('c', 66.7, 'red'), ('d', None, None)]
    """
    from pyspark.sql import functions as F

    func = "health_score"
    check_choice(func, "method", method, HealthMethod)
    groups = normalize_by(func, by)
    check_columns(df, func, dict.fromkeys(groups, "any"), args=dict.fromkeys(groups, "by"))
    clean, lower = validate_weights(df, func, "weights", weights, lower_is_better)
    low, high = check_bands(func, "bands", bands)
    pairs: dict[str, tuple[float, float]] = {}
    if method == "thresholds":
        pairs = _check_thresholds(func, thresholds, clean, lower)
    elif thresholds is not None:
        raise SchemaError(f"{func}(): thresholds= needs method='thresholds'")
    is_critical = (
        None if critical is None else _critical_condition(df, func, critical, pairs, lower)
    )
    if method == "thresholds":
        score = _threshold_score(df, clean, pairs)
    else:
        score = weighted_percent_rank_score(df, weights=clean, lower_is_better=lower, by=groups)
    scored = df.withColumn("health_score", score)
    band = F.when(F.lit(False), F.lit(None).cast("string"))
    if is_critical is not None:
        band = band.when(is_critical, F.lit("red"))
    band = (
        band.when(F.col("health_score").isNull(), F.lit(None).cast("string"))
        .when(F.col("health_score") < low, F.lit("red"))
        .when(F.col("health_score") < high, F.lit("yellow"))
        .otherwise(F.lit("green"))
    )
    return scored.withColumn("health_band", band)


@any_column_name("health_trend")
def health_trend(
    df: DataFrame,
    *,
    account_col: str = "account_id",
    as_of_col: str = "as_of",
    score_col: str = "health_score",
    band_col: str | None = "health_band",
) -> DataFrame:
    r"""Per-account health trend over stacked snapshots (e.g. scorecards at several as_of).

    ``df`` holds one row per (account, as_of) -- for instance
    ``account_scorecard(tx, as_of=d).withColumn("as_of", F.lit(d))`` for several dates
    ``d``, unioned. For each account, with :math:`t` the as_of date in days and :math:`y` the
    score over the snapshots where the score is non-null:

    .. math::

        \text{health\_slope\_30d} = 30\,\frac{\sum (t - \bar t)(y - \bar y)}{\sum (t - \bar t)^2}

    (least-squares slope, points per 30 days; null -- never NaN -- with fewer than two
    distinct dates with a score). NaN and ±inf scores count as missing scores.
    ``health_change_last`` = score at the last snapshot - score at the one before (null if
    either is null or there is one snapshot); ``band_changes`` = number of consecutive
    snapshot pairs whose band differs (null bands count as a band of their own).

    Parameters
    ----------
    df : pyspark.sql.DataFrame
        Stacked snapshots.
    account_col, as_of_col, score_col : str
        Column names (as_of a date or timestamp, score numeric).
    band_col : str or None
        Band column; ``None``: no band columns in the output.

    Returns
    -------
    pyspark.sql.DataFrame
        ``account_col, n_snapshots, first_as_of, last_as_of, health_score_last,
        health_change_last, health_slope_30d`` and, with a band column, ``health_band_last``,
        ``band_changes``.

    Examples
    --------
    >>> import datetime as dt
    >>> d = [dt.date(2024, 1, 1), dt.date(2024, 1, 31), dt.date(2024, 3, 1)]
    >>> df = spark.createDataFrame(
    ...     [("a", d[0], 80.0, "green"), ("a", d[1], 60.0, "yellow"), ("a", d[2], 50.0, "yellow")],
    ...     "account_id string, as_of date, health_score double, health_band string")
    >>> r = health_trend(df).collect()[0]
    >>> r.n_snapshots, r.health_change_last, round(r.health_slope_30d, 2), r.band_changes
    (3, -10.0, -15.0, 1)
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    func = "health_trend"
    columns: dict[str, tuple[str, str]] = {
        "account_col": (account_col, "any"),
        "as_of_col": (as_of_col, "temporal"),
        "score_col": (score_col, "numeric"),
    }
    if band_col is not None:
        columns["band_col"] = (band_col, "any")
    from kamlib._validation import require_columns

    require_columns(df, func, **columns)  # type: ignore[arg-type]
    order = Window.partitionBy(account_col).orderBy(F.col(as_of_col).asc())
    score = clean_numeric(df, score_col).cast("double")
    days = F.datediff(F.to_date(F.col(as_of_col)), F.lit("1970-01-01").cast("date"))
    rows = df.select(
        F.col(account_col),
        F.col(as_of_col).alias("__kamlib_t"),
        days.cast("double").alias("__kamlib_d"),
        score.alias("__kamlib_y"),
        (score - F.lag(score).over(order)).alias("__kamlib_chg"),
        *(
            []
            if band_col is None
            else [
                F.col(band_col).alias("__kamlib_b"),
                F.when(
                    F.row_number().over(order) > 1,
                    ~F.col(band_col).eqNullSafe(F.lag(F.col(band_col)).over(order)),
                ).alias("__kamlib_bc"),
            ]
        ),
    )
    # Null (never NaN) with fewer than two distinct as_of points with a score, and wherever
    # the least-squares arithmetic itself is not a number (e.g. scores near ±1e308).
    points = F.count_distinct(F.when(F.col("__kamlib_y").isNotNull(), F.col("__kamlib_d")))
    raw_slope = F.lit(30.0) * F.regr_slope("__kamlib_y", "__kamlib_d")
    slope = F.when((points >= 2) & ~F.isnan(raw_slope), raw_slope)
    aggs = [
        F.count(F.lit(1)).cast("int").alias("n_snapshots"),
        F.min("__kamlib_t").alias("first_as_of"),
        F.max("__kamlib_t").alias("last_as_of"),
        F.max_by("__kamlib_y", "__kamlib_t").alias("health_score_last"),
        F.max_by("__kamlib_chg", "__kamlib_t").alias("health_change_last"),
        slope.alias("health_slope_30d"),
    ]
    if band_col is not None:
        aggs += [
            F.max_by("__kamlib_b", "__kamlib_t").alias("health_band_last"),
            F.sum(F.col("__kamlib_bc").cast("int")).cast("int").alias("__kamlib_n_bc"),
        ]
    out = rows.groupBy(account_col).agg(*aggs)
    if band_col is not None:
        out = out.withColumn("band_changes", F.coalesce(F.col("__kamlib_n_bc"), F.lit(0))).drop(
            "__kamlib_n_bc"
        )
    return out


@any_column_name("evaluate_health")
def evaluate_health(
    scores: DataFrame,
    labels: DataFrame,
    *,
    account_col: str = "account_id",
    score_col: str = "health_score",
    band_col: str = "health_band",
    label_col: str = "churned",
) -> DataFrame:
    r"""Check that low health means churn risk: AUC and churn rate per band.

    ``scores`` is a health table (e.g. :func:`health_score` or ``account_scorecard`` at
    ``as_of``), ``labels`` the :func:`kamlib.churn.churn_labels` output at the same ``as_of``
    (``label_col`` boolean, ``True`` = churned). Accounts are inner-joined; accounts with a
    null score or label are left out of the AUC (and a null band is a row of its own).

    The AUC treats lower health as higher risk (Mann-Whitney):

    .. math:: \text{auc} = \frac{1}{n_1 n_0} \sum_{i:\,churned} \sum_{j:\,retained}
        \left([s_i < s_j] + \tfrac12 [s_i = s_j]\right)

    computed in Spark from the per-score counts (no pairwise join); null when either class is
    empty. 1 = every churner scored below every retained account, 0.5 = no better than chance.

    Returns
    -------
    pyspark.sql.DataFrame
        One row per band: ``band_col, n_accounts, n_churned, churn_rate, auc`` (the same
        portfolio AUC on every row).

    Examples
    --------
    >>> s = spark.createDataFrame([("a", 10.0, "red"), ("b", 50.0, "yellow"), ("c", 90.0, "green"),
    ...     ("d", 20.0, "red")], "account_id string, health_score double, health_band string")
    >>> l = spark.createDataFrame([("a", True), ("b", False), ("c", False), ("d", False)],
    ...     "account_id string, churned boolean")
    >>> out = evaluate_health(s, l).orderBy("health_band")
    >>> [(r.health_band, r.churn_rate, r.auc) for r in out.collect()]
    [('green', 0.0, 1.0), ('red', 0.5, 1.0), ('yellow', 0.0, 1.0)]
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from kamlib._validation import require_columns

    func = "evaluate_health"
    require_columns(
        scores,
        func,
        account_col=(account_col, "any"),
        score_col=(score_col, "numeric"),
        band_col=(band_col, "any"),
    )
    require_columns(
        labels, func, account_col=(account_col, "any"), label_col=(label_col, "boolean")
    )
    joined = scores.select(
        account_col,
        clean_numeric(scores, score_col).cast("double").alias("__kamlib_s"),
        F.col(band_col).alias("__kamlib_band"),
    ).join(labels.select(account_col, F.col(label_col).alias("__kamlib_y")), account_col)
    pos = F.col("__kamlib_y").cast("int")
    per_score = (
        joined.where(F.col("__kamlib_s").isNotNull() & F.col("__kamlib_y").isNotNull())
        .groupBy("__kamlib_s")
        .agg(F.sum(pos).alias("__kamlib_p"), F.sum(1 - pos).alias("__kamlib_q"))
    )
    above = Window.orderBy(F.col("__kamlib_s").desc()).rowsBetween(
        Window.unboundedPreceding, Window.currentRow
    )
    auc = (
        per_score.withColumn(
            "__kamlib_q_above", F.sum("__kamlib_q").over(above) - F.col("__kamlib_q")
        )
        .agg(
            F.sum(
                F.col("__kamlib_p") * F.col("__kamlib_q_above")
                + 0.5 * F.col("__kamlib_p") * F.col("__kamlib_q")
            ).alias("__kamlib_u"),
            F.sum("__kamlib_p").alias("__kamlib_n1"),
            F.sum("__kamlib_q").alias("__kamlib_n0"),
        )
        .select(
            F.try_divide(
                F.col("__kamlib_u"), (F.col("__kamlib_n1") * F.col("__kamlib_n0")).cast("double")
            ).alias("auc")
        )
    )
    bands = (
        joined.where(F.col("__kamlib_y").isNotNull())
        .groupBy(F.col("__kamlib_band").alias(band_col))
        .agg(
            F.count(F.lit(1)).alias("n_accounts"),
            F.sum(pos).alias("n_churned"),
        )
    )
    return bands.withColumn(
        "churn_rate", F.try_divide(F.col("n_churned").cast("double"), F.col("n_accounts"))
    ).crossJoin(auc)
