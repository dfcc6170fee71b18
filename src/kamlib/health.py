"""Account health score: weighted percent ranks of health signals, banded red / yellow / green."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from kamlib._scoring import validate_weights, weighted_percent_rank_score
from kamlib._validation import check_columns, normalize_by
from kamlib.errors import SchemaError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

__all__ = ["health_score"]


def _check_bands(func: str, bands: Sequence[float]) -> tuple[float, float]:
    try:
        items = list(bands)
    except TypeError:
        raise SchemaError(
            f"{func}(): bands= must be two numbers (red/yellow, yellow/green), "
            f"found {type(bands).__name__}"
        ) from None
    if len(items) != 2 or any(
        isinstance(b, bool) or not isinstance(b, (int, float)) or not math.isfinite(b)
        for b in items
    ):
        raise SchemaError(
            f"{func}(): bands= must be two numbers (red/yellow, yellow/green), found {items!r}"
        )
    low, high = float(items[0]), float(items[1])
    if not (0.0 <= low < high <= 100.0):
        raise SchemaError(
            f"{func}(): bands= must satisfy 0 <= low < high <= 100, found {tuple(items)!r}"
        )
    return low, high


def health_score(
    df: DataFrame,
    *,
    weights: Mapping[str, float],
    lower_is_better: str | Iterable[str] = (),
    by: str | Sequence[str] | None = None,
    bands: Sequence[float] = (40, 70),
) -> DataFrame:
    r"""Add a 0..100 account health score and its red / yellow / green band.

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
    """
    from pyspark.sql import functions as F

    func = "health_score"
    groups = normalize_by(func, by)
    check_columns(df, func, dict.fromkeys(groups, "any"), args=dict.fromkeys(groups, "by"))
    clean, lower = validate_weights(df, func, "weights", weights, lower_is_better)
    low, high = _check_bands(func, bands)
    score = weighted_percent_rank_score(df, weights=clean, lower_is_better=lower, by=groups)
    scored = df.withColumn("health_score", score)
    band = (
        F.when(F.col("health_score").isNull(), F.lit(None).cast("string"))
        .when(F.col("health_score") < low, F.lit("red"))
        .when(F.col("health_score") < high, F.lit("yellow"))
        .otherwise(F.lit("green"))
    )
    return scored.withColumn("health_band", band)
