"""Private helpers shared by the classify, nps and health families.

* :func:`validate_weights` / :func:`weighted_percent_rank_score`: the weighted percent-rank score
  behind :func:`kamlib.classify.key_account_score` and :func:`kamlib.health.health_score`.
* :func:`key_count`: the "first k by rank" rule, ``k = max(ceil(top_share * n - 1e-9), 1)``.
* :func:`clean_numeric`: NaN -> null for floating point columns.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from kamlib._validation import check_columns, check_fraction
from kamlib.errors import SchemaError

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

__all__ = [
    "KEY_TOLERANCE",
    "check_top_share",
    "clean_numeric",
    "clip",
    "key_count",
    "validate_weights",
    "weighted_percent_rank_score",
]

#: Tolerance of the key-account rule ``k = ceil(top_share * n - KEY_TOLERANCE)``.
KEY_TOLERANCE = 1e-9


def _is_floating(df: DataFrame, column: str) -> bool:
    from pyspark.sql import types as T_

    data_type = df.schema[column].dataType
    return isinstance(data_type, (T_.DoubleType, T_.FloatType))


def clean_numeric(df: DataFrame, column: str) -> Column:
    """Return ``column`` with NaN and ±inf turned into null (floating point columns only).

    Non-finite numbers are invalid values (:func:`kamlib._validation.finite`): callers count
    them with the nulls. The name is quoted, so dots, backticks and spaces are literal.
    """
    from pyspark.sql import functions as F

    return F.expr(clean_numeric_sql(df, column))


def clean_numeric_sql(df: DataFrame, column: str) -> str:
    """SQL of :func:`clean_numeric` (one expression instead of a chain of Column calls)."""
    from kamlib._validation import quote

    name = quote(column)
    if _is_floating(df, column):
        return f"CASE WHEN NOT isnan({name}) AND abs({name}) < double('inf') THEN {name} END"
    return name


def clip(column: Column, low: float | None = None, high: float | None = None) -> Column:
    """Clamp ``column`` to [low, high], keeping nulls null (``greatest`` / ``least`` skip nulls)."""
    from pyspark.sql import functions as F

    result = column
    if low is not None:
        result = F.greatest(result, F.lit(low))
    if high is not None:
        result = F.least(result, F.lit(high))
    return F.when(column.isNotNull(), result)


def key_count(n: Column, top_share: float) -> Column:
    """``k = max(ceil(top_share * n - 1e-9), 1)`` as a Spark expression (``n`` a count column)."""
    from pyspark.sql import functions as F

    return F.greatest(F.ceil(F.lit(top_share) * n - F.lit(KEY_TOLERANCE)), F.lit(1))


def key_count_sql(n: str, top_share: float) -> str:
    """SQL of :func:`key_count` (``n`` the SQL of a count)."""
    return f"greatest(ceil({float(top_share)!r}D * {n} - {KEY_TOLERANCE!r}D), 1)"


def validate_weights(
    df: DataFrame,
    func: str,
    arg: str,
    weights: Mapping[str, float],
    lower_is_better: str | Iterable[str],
) -> tuple[dict[str, float], frozenset[str]]:
    """Validate a ``{column: weight}`` mapping and the ``lower_is_better`` names (schema only).

    Weights must be finite, non-negative and not all zero; every column must exist and be
    numeric; every ``lower_is_better`` name must be one of the weighted columns. Returns a copy
    of the weights (as floats) and the set of lower-is-better columns.
    """
    if not isinstance(weights, Mapping):
        raise SchemaError(
            f"{func}(): {arg}= must be a mapping of column name to weight, "
            f"found {type(weights).__name__}"
        )
    if len(weights) == 0:
        raise SchemaError(f"{func}(): {arg}= must name at least one column, found an empty mapping")
    clean: dict[str, float] = {}
    for column, weight in weights.items():
        if not isinstance(column, str):
            raise SchemaError(
                f"{func}(): {arg}= keys must be column names (str), found {type(column).__name__}"
            )
        if (
            isinstance(weight, bool)
            or not isinstance(weight, (int, float))
            or not math.isfinite(weight)
            or weight < 0
        ):
            raise SchemaError(
                f"{func}(): {arg}= weight of {column!r} must be a finite number >= 0, "
                f"found {weight!r}"
            )
        clean[column] = float(weight)
    if sum(clean.values()) <= 0:
        raise SchemaError(f"{func}(): {arg}= weights must not all be zero, found {dict(weights)!r}")
    check_columns(df, func, dict.fromkeys(clean, "numeric"), args=dict.fromkeys(clean, arg))
    names: list[str]
    if isinstance(lower_is_better, str):
        names = [lower_is_better]
    else:
        try:
            names = list(lower_is_better)
        except TypeError:
            raise SchemaError(
                f"{func}(): lower_is_better= must be a sequence of column names, "
                f"found {type(lower_is_better).__name__}"
            ) from None
    for name in names:
        if name not in clean:
            raise SchemaError(
                f"{func}(): lower_is_better= names {name!r}, which is not one of the "
                f"{arg}= columns {sorted(clean)!r}"
            )
    return clean, frozenset(names)


def weighted_percent_rank_score(
    df: DataFrame,
    *,
    weights: Mapping[str, float],
    lower_is_better: frozenset[str],
    by: Sequence[str],
) -> Column:
    """Return the 0..100 weighted percent-rank score of each row within its ``by`` group.

    For each column ``c`` with weight ``w_c``: ``pr_c = (rank_c - 1) / (m_c - 1)`` where
    ``rank_c`` is the (min-tie) rank of the row's value among the ``m_c`` non-null values of
    ``c`` in the group (ascending, or descending for lower-is-better columns) and ``pr_c = 0``
    when ``m_c = 1``; ``pr_c`` is null where the value is null (or NaN). The score is
    ``100 * sum(w_c * pr_c) / sum(w_c)`` over the non-null ``pr_c``; null when that weight sum
    is 0 (every weighted value missing).
    """
    from pyspark.sql import functions as F

    from kamlib._validation import quote

    partition = f"PARTITION BY {', '.join(quote(c) for c in by)} " if by else ""
    numerator, denominator = ["0D"], ["0D"]
    for column, weight in weights.items():
        value = clean_numeric_sql(df, column)
        direction = "DESC" if column in lower_is_better else "ASC"
        rank = f"rank() OVER ({partition}ORDER BY {value} {direction} NULLS LAST)"
        count = f"count({value}) OVER ({partition.strip()})"
        percent_rank = (
            f"CASE WHEN {value} IS NOT NULL THEN "
            f"coalesce(try_divide(CAST({rank} - 1 AS DOUBLE), {count} - 1), 0D) END"
        )
        w = f"CAST({float(weight)!r} AS DOUBLE)"
        numerator.append(f"coalesce({w} * {percent_rank}, 0D)")
        denominator.append(f"CASE WHEN {value} IS NOT NULL THEN {w} ELSE 0D END")
    # one SQL expression: a Column chain here is hundreds of Py4J calls per score
    return F.expr(f"100D * try_divide({' + '.join(numerator)}, {' + '.join(denominator)})")


def check_top_share(func: str, top_share: float) -> float:
    """Validate ``top_share`` in (0, 1]."""
    return check_fraction(func, "top_share", top_share, low=0.0, high=1.0)
