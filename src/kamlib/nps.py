"""Net Promoter Score and customer satisfaction with confidence intervals.

* :func:`nps_category`: promoter / passive / detractor per response.
* :func:`nps`: NPS per group (optionally weighted) with standard error and a normal interval.
* :func:`csat`: CSAT (% satisfied) per group with a Wilson score interval.

Invalid responses (null, NaN, non-integer or out-of-range scores, and for weighted NPS null,
NaN, infinite or negative weights) are excluded from the statistics and counted in ``invalid``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist
from typing import TYPE_CHECKING

from kamlib._scoring import clean_numeric, clip
from kamlib._validation import (
    NPS_DETRACTOR_MAX,
    NPS_PROMOTER_MIN,
    TEMP_PREFIX,
    any_column_name,
    check_columns,
    check_fraction,
    check_int,
    normalize_by,
    nps_classes,
    require_columns,
)
from kamlib.errors import SchemaError

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

__all__ = ["csat", "nps", "nps_category"]


def _z(confidence: float) -> float:
    """Two-sided standard normal quantile for ``confidence`` (0.95 -> 1.95996...)."""
    return NormalDist().inv_cdf((1.0 + confidence) / 2.0)


def _whole_in_range(score: Column, low: float, high: float) -> Column:
    """True where ``score`` (a NaN-free double) is a whole number in [low, high]; never null."""
    from pyspark.sql import functions as F

    inside = score.isNotNull() & (score >= low) & (score <= high) & (score % 1.0 == 0.0)
    return F.coalesce(inside, F.lit(False))


def _nps_score(df: DataFrame, score_col: str) -> tuple[Column, Column]:
    score = clean_numeric(df, score_col).cast("double")
    valid, _, _ = nps_classes(score)
    return score, valid


def nps_category(df: DataFrame, *, score_col: str = "score") -> DataFrame:
    """Add ``nps_category``: "promoter" (9-10), "passive" (7-8) or "detractor" (0-6).

    The category is null for null, NaN, non-integer (7.5) or out-of-range (-1, 11) scores.

    Parameters
    ----------
    df : pyspark.sql.DataFrame
        Survey responses.
    score_col : str
        Numeric 0..10 "how likely are you to recommend" score.

    Returns
    -------
    pyspark.sql.DataFrame
        The input with ``nps_category`` added.

    References
    ----------
    Reichheld, *The one number you need to grow*, Harvard Business Review 81(12) (2003).

    Examples
    --------
    >>> df = spark.createDataFrame([(10,), (8,), (3,), (11,), (None,)], "score int")
    >>> [r.nps_category for r in nps_category(df).collect()]
    ['promoter', 'passive', 'detractor', None, None]
    """
    from pyspark.sql import functions as F

    require_columns(df, "nps_category", score_col=(score_col, "numeric"))
    score, valid = _nps_score(df, score_col)
    category = (
        F.when(~valid, F.lit(None).cast("string"))
        .when(score >= NPS_PROMOTER_MIN, F.lit("promoter"))
        .when(score >= 7, F.lit("passive"))
        .otherwise(F.lit("detractor"))
    )
    return df.withColumn("nps_category", category)


#: 2**-600: scales weights up to the largest double into a range whose squares sum finitely.
_TINY = 2.0**-600


@any_column_name("nps")
def nps(
    df: DataFrame,
    *,
    score_col: str = "score",
    by: str | Sequence[str] | None = None,
    weight_col: str | None = None,
    confidence: float = 0.95,
) -> DataFrame:
    r"""Net Promoter Score per group with standard error and confidence interval.

    With :math:`p_P, p_D` the (weighted) proportions of promoters (9-10) and detractors (0-6)
    among the valid responses:

    .. math::

        \text{nps} = 100\,(p_P - p_D), \qquad
        \operatorname{var} = \frac{p_P + p_D - (p_P - p_D)^2}{n_\text{eff}}, \qquad
        \text{std\_error} = 100\sqrt{\operatorname{var}}

    with :math:`n_\text{eff} = n` unweighted and :math:`(\sum w)^2 / \sum w^2` (Kish's
    effective sample size) weighted; both are invariant to a common factor of the weights, and
    the sums are rescaled where they would overflow, so any finite weights work (up to the
    largest double). ``margin_of_error`` :math:`= z\cdot` ``std_error`` with
    :math:`z` the two-sided standard normal quantile for ``confidence`` (1.96 for 0.95), and
    ``ci_low``, ``ci_high`` = nps :math:`\mp` margin, clamped to [-100, 100].

    Output, one row per group: ``n`` (valid responses), ``invalid`` (null / NaN / non-integer
    / out-of-range scores, and null / NaN / infinite / negative weights), ``promoters``,
    ``passives``, ``detractors`` (raw counts of valid responses, also when weighted), ``nps``,
    ``std_error``, ``margin_of_error``, ``ci_low``, ``ci_high``. When ``n = 0`` (or, weighted,
    when every valid weight is 0) nps and all statistics are null.

    A response with weight 0 is valid: it counts in ``n`` and in the raw counts but adds
    nothing to the proportions or to :math:`n_\text{eff}`.

    Parameters
    ----------
    df : pyspark.sql.DataFrame
        Survey responses.
    score_col : str
        Numeric 0..10 score.
    by : str or sequence of str, optional
        Segment columns (account, region, quarter, ...).
    weight_col : str, optional
        Numeric response weight (survey weights, account revenue).
    confidence : float
        Confidence level of the interval, in (0, 1).

    Returns
    -------
    pyspark.sql.DataFrame

    References
    ----------
    Reichheld (2003); Rocks, *The variance and standard error of the Net Promoter Score*
    (2016), trinomial variance; Kish, *Survey Sampling* (1965) for the effective sample size.

    Examples
    --------
    >>> df = spark.createDataFrame([(s,) for s in [10, 9, 9, 8, 7, 6, 3, 10, None, 12]],
    ...                            "score int")
    >>> r = nps(df).first()
    >>> r.n, r.invalid, r.promoters, r.passives, r.detractors, r.nps
    (8, 2, 4, 2, 2, 25.0)
    >>> round(r.std_error, 4), round(r.ci_low, 2), round(r.ci_high, 2)
    (29.3151, -32.46, 82.46)
    """
    from pyspark.sql import functions as F

    func = "nps"
    require_columns(df, func, score_col=(score_col, "numeric"))
    groups = normalize_by(func, by)
    check_columns(df, func, dict.fromkeys(groups, "any"), args=dict.fromkeys(groups, "by"))
    if weight_col is not None:
        require_columns(df, func, weight_col=(weight_col, "numeric"))
    level = check_fraction(func, "confidence", confidence, high_inclusive=False)
    z = _z(level)

    score, valid = _nps_score(df, score_col)
    if weight_col is None:
        aggregated = _unweighted_counts(df, groups, score, valid)
    else:
        weight = clean_numeric(df, weight_col).cast("double")
        valid = valid & F.coalesce((weight >= 0) & (weight < F.lit(math.inf)), F.lit(False))
        aggregated = _weighted_counts(df, groups, score, valid, weight)
    p_p, p_d, n_eff = _shares(weighted=weight_col is not None)
    return _with_interval(aggregated, groups, p_p, p_d, n_eff, z)


# Internal column names of :func:`nps` (prefixed so they cannot clash with user columns):
# the sums of weights (all, promoters, detractors, squared) and the same scaled by 2**-600.
_CODE = f"{TEMP_PREFIX}nps_code"
_RESPONSES = f"{TEMP_PREFIX}total"
_SW = f"{TEMP_PREFIX}sw"
_SW2 = f"{TEMP_PREFIX}sw2"
_SWP = f"{TEMP_PREFIX}swp"
_SWD = f"{TEMP_PREFIX}swd"
_SWS = f"{TEMP_PREFIX}sws"
_SW2S = f"{TEMP_PREFIX}sw2s"
_SWPS = f"{TEMP_PREFIX}swps"
_SWDS = f"{TEMP_PREFIX}swds"


def _unweighted_counts(df: DataFrame, groups: list[str], score: Column, valid: Column) -> DataFrame:
    """Response counts per group from one small integer code per response.

    Four counts (everything else follows from them), so the aggregation is about as cheap as
    a plain count; the sums of weights are the counts.
    """
    from pyspark.sql import functions as F

    coded = df.select(
        *groups,
        F.when(~valid, F.lit(-1))
        .when(score >= NPS_PROMOTER_MIN, F.lit(2))
        .when(score <= NPS_DETRACTOR_MAX, F.lit(0))
        .otherwise(F.lit(1))
        .alias(_CODE),
    )
    c = F.col(_CODE)
    counted = coded.groupBy(*groups).agg(
        F.count(F.lit(1)).alias(_RESPONSES),
        F.count_if(c >= 0).alias("n"),
        F.count_if(c == 2).alias("promoters"),
        F.count_if(c == 0).alias("detractors"),
    )
    return counted.select(
        *groups,
        "n",
        (F.col(_RESPONSES) - F.col("n")).alias("invalid"),
        "promoters",
        (F.col("n") - F.col("promoters") - F.col("detractors")).alias("passives"),
        "detractors",
        F.col("n").cast("double").alias(_SW),
        F.col("promoters").cast("double").alias(_SWP),
        F.col("detractors").cast("double").alias(_SWD),
    )


def _weighted_counts(
    df: DataFrame, groups: list[str], score: Column, valid: Column, weight: Column
) -> DataFrame:
    """Response counts and sums of weights (plain and scaled by 2**-600) per group."""
    from pyspark.sql import functions as F

    promoter = valid & (score >= NPS_PROMOTER_MIN)
    detractor = valid & (score <= NPS_DETRACTOR_MAX)
    passive = valid & (score > NPS_DETRACTOR_MAX) & (score < NPS_PROMOTER_MIN)
    return df.groupBy(*groups).agg(
        F.count_if(valid).alias("n"),
        F.count_if(~valid).alias("invalid"),
        F.count_if(promoter).alias("promoters"),
        F.count_if(passive).alias("passives"),
        F.count_if(detractor).alias("detractors"),
        F.sum(F.when(valid, weight)).alias(_SW),
        F.sum(F.when(valid, weight * weight)).alias(_SW2),
        F.sum(F.when(promoter, weight).otherwise(0.0)).alias(_SWP),
        F.sum(F.when(detractor, weight).otherwise(0.0)).alias(_SWD),
        # The same sums of weights scaled by 2**-600, read only when a plain sum
        # overflowed (weights beyond ~1e154): then the weights too small to survive the
        # scaling are negligible beside the large ones.
        F.sum(F.when(valid, weight * _TINY)).alias(_SWS),
        F.sum(F.when(valid, (weight * _TINY) * (weight * _TINY))).alias(_SW2S),
        F.sum(F.when(promoter, weight * _TINY).otherwise(0.0)).alias(_SWPS),
        F.sum(F.when(detractor, weight * _TINY).otherwise(0.0)).alias(_SWDS),
    )


def _shares(*, weighted: bool) -> tuple[Column, Column, Column]:
    """Promoter and detractor shares and the (effective) sample size of the counts."""
    from pyspark.sql import functions as F

    p_p = F.try_divide(F.col(_SWP), F.col(_SW))
    p_d = F.try_divide(F.col(_SWD), F.col(_SW))
    if not weighted:
        return p_p, p_d, F.col("n").cast("double")
    inf = F.lit(math.inf)
    overflow = (F.col(_SW) == inf) | (F.col(_SW2) == inf)
    p_p = F.when(overflow, F.try_divide(F.col(_SWPS), F.col(_SWS))).otherwise(p_p)
    p_d = F.when(overflow, F.try_divide(F.col(_SWDS), F.col(_SWS))).otherwise(p_d)
    # (sum w)^2 / sum w^2 as (sum w / sqrt(sum w^2))^2: no intermediate overflow.
    root = F.when(overflow, F.try_divide(F.col(_SWS), F.sqrt(F.col(_SW2S)))).otherwise(
        F.try_divide(F.col(_SW), F.sqrt(F.col(_SW2)))
    )
    return p_p, p_d, root * root


def _with_interval(
    aggregated: DataFrame,
    groups: list[str],
    p_p: Column,
    p_d: Column,
    n_eff: Column,
    z: float,
) -> DataFrame:
    """The output columns: counts, ``nps``, its standard error and confidence interval."""
    from pyspark.sql import functions as F

    trinomial = clip(p_p + p_d - (p_p - p_d) * (p_p - p_d), low=0.0)
    std_error = F.lit(100.0) * F.sqrt(F.try_divide(trinomial, n_eff))
    score_expr = F.lit(100.0) * (p_p - p_d)
    staged = aggregated.select(
        *groups,
        "n",
        "invalid",
        "promoters",
        "passives",
        "detractors",
        F.when(F.col("n") > 0, score_expr).alias("nps"),
        F.when(F.col("n") > 0, std_error).alias("std_error"),
    )
    margin = F.lit(z) * F.col("std_error")
    return staged.select(
        "*",
        margin.alias("margin_of_error"),
        clip(F.col("nps") - margin, low=-100.0).alias("ci_low"),
        clip(F.col("nps") + margin, high=100.0).alias("ci_high"),
    )


@any_column_name("csat")
def csat(
    df: DataFrame,
    *,
    score_col: str = "score",
    scale_max: int = 5,
    satisfied_min: int = 4,
    by: str | Sequence[str] | None = None,
    confidence: float = 0.95,
) -> DataFrame:
    r"""Customer satisfaction (% satisfied) per group with a Wilson score interval.

    Scores are whole numbers on the scale ``1..scale_max``; a response is satisfied when its
    score is >= ``satisfied_min`` (4 and 5 on the usual 5-point scale). With :math:`s`
    satisfied out of :math:`n` valid responses, :math:`\hat p = s/n` and :math:`z` the
    two-sided normal quantile for ``confidence``:

    .. math::

        \text{csat} = 100\,\hat p, \qquad
        \text{ci} = 100\,\frac{\hat p + \frac{z^2}{2n} \mp
        z\sqrt{\frac{\hat p(1-\hat p)}{n} + \frac{z^2}{4n^2}}}{1 + \frac{z^2}{n}}

    (the Wilson score interval, which stays inside [0, 100] and is sensible for small
    :math:`n` and for 0% or 100%). Output, one row per group: ``n``, ``invalid`` (null, NaN,
    non-integer, < 1 or > ``scale_max``), ``satisfied`` (extra), ``csat``, ``ci_low``,
    ``ci_high``; the last three are null when ``n = 0``.

    Parameters
    ----------
    df : pyspark.sql.DataFrame
        Survey responses.
    score_col : str
        Numeric satisfaction score.
    scale_max : int
        Top of the 1..scale_max scale (>= 2).
    satisfied_min : int
        Lowest satisfied score, in 1..scale_max.
    by : str or sequence of str, optional
        Segment columns.
    confidence : float
        Confidence level of the interval, in (0, 1).

    Returns
    -------
    pyspark.sql.DataFrame

    References
    ----------
    Wilson, *Probable inference, the law of succession, and statistical inference*, JASA 22
    (1927); Brown, Cai & DasGupta, *Interval estimation for a binomial proportion*, Statistical
    Science 16 (2001).

    Examples
    --------
    >>> df = spark.createDataFrame([(s,) for s in [5, 4, 4, 3, 2, 5, 0, None]], "score int")
    >>> r = csat(df).first()
    >>> r.n, r.invalid, r.satisfied, round(r.csat, 2), round(r.ci_low, 2), round(r.ci_high, 2)
    (6, 2, 4, 66.67, 30.0, 90.32)
    """
    from pyspark.sql import functions as F

    func = "csat"
    require_columns(df, func, score_col=(score_col, "numeric"))
    groups = normalize_by(func, by)
    check_columns(df, func, dict.fromkeys(groups, "any"), args=dict.fromkeys(groups, "by"))
    top = check_int(func, "scale_max", scale_max, low=2)
    threshold = check_int(func, "satisfied_min", satisfied_min, low=1)
    if threshold > top:
        raise SchemaError(
            f"{func}(): satisfied_min= must be <= scale_max={top}, found {satisfied_min!r}"
        )
    level = check_fraction(func, "confidence", confidence, high_inclusive=False)
    z = _z(level)

    score = clean_numeric(df, score_col).cast("double")
    valid = _whole_in_range(score, 1.0, float(top))
    aggregated = df.groupBy(*groups).agg(
        F.count_if(valid).alias("n"),
        F.count_if(~valid).alias("invalid"),
        F.count_if(valid & (score >= threshold)).alias("satisfied"),
    )
    n = F.col("n").cast("double")
    p = F.try_divide(F.col("satisfied").cast("double"), n)
    z2 = z * z
    denominator = F.lit(1.0) + F.try_divide(F.lit(z2), n)
    center = F.try_divide(p + F.try_divide(F.lit(z2 / 2.0), n), denominator)
    spread = F.sqrt(
        clip(F.try_divide(p * (F.lit(1.0) - p), n) + F.try_divide(F.lit(z2 / 4.0), n * n), low=0.0)
    )
    half = F.try_divide(F.lit(z) * spread, denominator)
    return aggregated.select(
        *groups,
        "n",
        "invalid",
        "satisfied",
        (F.lit(100.0) * p).alias("csat"),
        clip(F.lit(100.0) * (center - half), low=0.0).alias("ci_low"),
        clip(F.lit(100.0) * (center + half), high=100.0).alias("ci_high"),
    )
