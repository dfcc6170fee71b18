"""Key-account classification: value ranking, ABC tiers, key-account scores, concentration.

* :func:`classify_accounts`: per-account value, rank, share, cumulative share, ABC tier and
  the top-share key-account flag.
* :func:`key_account_score`: a 0..100 score from weighted percent ranks of strategic criteria
  (strategic importance, growth potential, ...) and the key-account flag on that score.
* :func:`concentration`: per-group HHI, top-share value, Gini coefficient.

All results are computed with native Spark aggregates and window functions, per ``by`` group.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from kamlib._scoring import (
    check_top_share,
    clean_numeric_sql,
    clip,
    key_count,
    key_count_sql,
    validate_weights,
    weighted_percent_rank_score,
)
from kamlib._validation import (
    TEMP_PREFIX,
    any_column_name,
    check_columns,
    check_group_keys,
    check_increasing_pair,
    check_output_collisions,
    normalize_by,
    quote,
    require_columns,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

__all__ = ["classify_accounts", "concentration", "key_account_score"]

# Internal column names (prefixed so they cannot clash with user columns).
_POS = f"{TEMP_PREFIX}pos"
_BEFORE = f"{TEMP_PREFIX}before"
_TOTAL = f"{TEMP_PREFIX}total"
_N = f"{TEMP_PREFIX}n"
#: The helper columns :func:`_ranked` adds beside its outputs.
_HELPERS = (_POS, _BEFORE, _TOTAL, _N)

_OUTPUTS = (
    "value",
    "value_rank",
    "value_share",
    "cumulative_share",
    "abc_tier",
    "is_key_account",
    "null_values",
)


def _classified(
    df: DataFrame,
    *,
    account_col: str,
    value_col: str,
    by: list[str],
    top_share: float,
    thresholds: tuple[float, float],
) -> DataFrame:
    """Per (by..., account) classification, plus the helper column ``_N`` (valued accounts).

    Built from SQL expressions: one aggregation, then :func:`_ranked`.
    """
    from pyspark.sql import functions as F

    # Summed as double: bigint and decimal sums cannot overflow (ANSI would raise).
    value = f"CAST({clean_numeric_sql(df, value_col)} AS DOUBLE)"
    accounts = df.groupBy(*[quote(c) for c in (*by, account_col)]).agg(
        F.expr(f"sum({value}) AS value"), F.expr(f"count_if({value} IS NULL) AS null_values")
    )
    return _ranked(
        accounts, account_col=account_col, by=by, top_share=top_share, thresholds=thresholds
    )


def _ranked(
    accounts: DataFrame,
    *,
    account_col: str,
    by: list[str],
    top_share: float,
    thresholds: tuple[float, float],
    value_col: str = "value",
) -> DataFrame:
    """Add the rank, shares, tier, key-account flag and the helpers ``_POS``, ``_TOTAL``, ``_N``.

    ``accounts`` has one row per (by..., account) and a double column ``value_col`` (null
    where the account has no valid value); all its columns pass through. The scorecard ranks
    its per-account frame with this directly (no aggregation and no join back).
    """
    value = quote(value_col)
    group = f"PARTITION BY {', '.join(quote(c) for c in by)}" if by else ""
    ordered = f"{group} ORDER BY {value} DESC NULLS LAST, {quote(account_col)} ASC"
    positive = f"CASE WHEN {value} IS NOT NULL THEN greatest({value}, 0.0D) END"
    before = f"{ordered} ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING"
    staged = accounts.selectExpr(
        "*",
        f"row_number() OVER ({ordered}) AS value_rank",
        f"{positive} AS {_POS}",
        f"coalesce(sum({positive}) OVER ({before}), 0.0D) AS {_BEFORE}",
        f"sum({positive}) OVER ({group}) AS {_TOTAL}",
        f"count({value}) OVER ({group}) AS {_N}",
    )
    share = f"try_divide({_POS}, {_TOTAL})"
    a, b = (f"{float(t)!r}D" for t in thresholds)
    before_share = f"try_divide({_BEFORE}, {_TOTAL})"
    return staged.selectExpr(
        "*",
        f"{share} AS value_share",
        f"CASE WHEN {share} IS NOT NULL THEN try_divide({_BEFORE} + {_POS}, {_TOTAL}) END"
        " AS cumulative_share",
        f"CASE WHEN {value} IS NULL OR {value} <= 0 THEN 'C' WHEN {before_share} < {a}"
        f" THEN 'A' WHEN {before_share} < {b} THEN 'B' ELSE 'C' END AS abc_tier",
        f"{value} IS NOT NULL AND value_rank <= {key_count_sql(_N, top_share)} AS is_key_account",
    )


@any_column_name("classify_accounts")
def classify_accounts(
    df: DataFrame,
    *,
    account_col: str = "account_id",
    value_col: str = "amount",
    by: str | Sequence[str] | None = None,
    top_share: float = 0.2,
    abc_thresholds: Sequence[float] = (0.8, 0.95),
) -> DataFrame:
    r"""Rank accounts by value; add shares, cumulative shares, ABC tiers and the key-account flag.

    Returns one row per ``(by..., account)`` with:

    * ``value``: the sum of ``value_col`` over the account's rows (refunds included), as a
      double (cast before summing, so bigint and decimal sums cannot overflow).
    * ``value_rank``: 1 = largest value; ties broken by account id ascending
      (``row_number`` over value descending, account ascending).
    * ``value_share`` :math:`= \max(v, 0) / \sum_j \max(v_j, 0)`, null if that sum is 0.
    * ``cumulative_share``: the sum of ``value_share`` of the accounts ranked at or above this
      one (itself included); null where ``value_share`` is null.
    * ``abc_tier``: "A" if the cumulative share *before* the account is < ``abc_thresholds[0]``,
      "B" if it is < ``abc_thresholds[1]``, otherwise "C" (so the account that crosses 80% is
      still "A"); accounts with value <= 0 are always "C".
    * ``is_key_account``: the first :math:`k = \max(\lceil \text{top\_share}\cdot n - 10^{-9}
      \rceil, 1)` accounts by rank, with :math:`n` the accounts of the group that have a value.
    * ``null_values`` (extra): rows of the account whose ``value_col`` is null, NaN or ±inf. Those
      rows are excluded from the sum; an account with *only* such rows has a null ``value``,
      is ranked after every valued account, has null shares, tier "C", is never a key account
      and does not count in :math:`n`.

    Parameters
    ----------
    df : pyspark.sql.DataFrame
        Transactions (or any rows with an account and a numeric value).
    account_col, value_col : str
        Account id and value columns.
    by : str or sequence of str, optional
        Segment columns (region, manager, period): everything is computed per segment.
    top_share : float
        Share of accounts flagged as key accounts, in (0, 1].
    abc_thresholds : (float, float)
        Cumulative-share limits of tiers A and B, ``0 < A < B <= 1``.

    Returns
    -------
    pyspark.sql.DataFrame

    References
    ----------
    Pareto / ABC analysis of customer revenue, e.g. Kotler & Keller, *Marketing Management*.

    Examples
    --------
    >>> df = spark.createDataFrame(
    ...     [("a", 50.0), ("b", 30.0), ("c", 15.0), ("d", 5.0), ("a", 10.0), ("e", -2.0)],
    ...     "account_id string, amount double")
    >>> out = classify_accounts(df).orderBy("value_rank")
    >>> for r in out.collect():
    ...     print(r.account_id, r.value, r.value_rank, round(r.value_share, 4),
    ...           r.abc_tier, r.is_key_account)
    a 60.0 1 0.5455 A True
    b 30.0 2 0.2727 A False
    c 15.0 3 0.1364 B False
    d 5.0 4 0.0455 C False
    e -2.0 5 0.0 C False
    """
    func = "classify_accounts"
    require_columns(df, func, account_col=(account_col, "any"), value_col=(value_col, "numeric"))
    groups = normalize_by(func, by)
    check_columns(df, func, dict.fromkeys(groups, "any"), args=dict.fromkeys(groups, "by"))
    check_group_keys(df, func, groups, account_col=account_col)
    check_output_collisions(
        func, {**dict.fromkeys(groups, "by"), account_col: "account_col"}, _OUTPUTS
    )
    share = check_top_share(func, top_share)
    thresholds = check_increasing_pair(
        func,
        "abc_thresholds",
        abc_thresholds,
        low=0.0,
        high=1.0,
        low_inclusive=False,
        meaning="(A, B) of the cumulative value share",
    )
    classified = _classified(
        df,
        account_col=account_col,
        value_col=value_col,
        by=groups,
        top_share=share,
        thresholds=thresholds,
    )
    return classified.select(*groups, account_col, *_OUTPUTS)


@any_column_name("concentration")
def concentration(
    df: DataFrame,
    *,
    account_col: str = "account_id",
    value_col: str = "amount",
    by: str | Sequence[str] | None = None,
    top_share: float = 0.2,
) -> DataFrame:
    r"""Measure how concentrated value is across accounts: HHI, top-share value and Gini.

    Account values are the sums of ``value_col`` per account (as in :func:`classify_accounts`),
    shares :math:`s_i = \max(v_i, 0) / \sum_j \max(v_j, 0)`. One row per group with:

    * ``n_accounts``: accounts with a value (accounts whose rows are all null are excluded and
      counted in the extra column ``null_accounts``).
    * ``total_value``: the sum of account values, negatives included (null when
      ``n_accounts`` is 0).
    * ``hhi`` :math:`= \sum_i (100\, s_i)^2 \in [0, 10000]`; :math:`10000/n` for equal shares.
    * ``top_share_value``: the share of positive value held by the top
      :math:`k = \max(\lceil \text{top\_share}\cdot n - 10^{-9}\rceil, 1)` accounts
      (ties by account id), a fraction in [0, 1].
    * ``gini``: the Gini coefficient of :math:`x_i = \max(v_i, 0)` over the :math:`n`
      accounts, with :math:`x_{(1)} \le \dots \le x_{(n)}` sorted ascending:
      :math:`G = \frac{2 \sum_i i\, x_{(i)}}{n \sum_i x_i} - \frac{n + 1}{n}`
      (equivalently :math:`\sum_i \sum_j |x_i - x_j| / (2 n^2 \bar{x})`); 0 for equal values,
      at most :math:`(n - 1)/n`.

    ``hhi``, ``top_share_value`` and ``gini`` are null when the group has no positive value.

    Parameters
    ----------
    df : pyspark.sql.DataFrame
        Transactions (or one row per account).
    account_col, value_col : str
        Account id and value columns.
    by : str or sequence of str, optional
        Segment columns; one output row per segment.
    top_share : float
        Share of accounts counted as the top accounts, in (0, 1].

    Returns
    -------
    pyspark.sql.DataFrame

    References
    ----------
    Herfindahl-Hirschman index: U.S. DOJ & FTC, *Horizontal Merger Guidelines* (2010), 5.3.
    Gini coefficient: Damgaard & Weiner, *Describing inequality in plant size or fecundity*,
    Ecology 81 (2000), sorted-data formula.

    Examples
    --------
    >>> df = spark.createDataFrame(
    ...     [("a", 25.0), ("b", 25.0), ("c", 25.0), ("d", 25.0)],
    ...     "account_id string, amount double")
    >>> r = concentration(df).first()
    >>> r.n_accounts, r.total_value, round(r.hhi, 6), r.top_share_value, round(r.gini, 6)
    (4, 100.0, 2500.0, 0.25, 0.0)
    """
    from pyspark.sql import functions as F

    func = "concentration"
    require_columns(df, func, account_col=(account_col, "any"), value_col=(value_col, "numeric"))
    groups = normalize_by(func, by)
    check_columns(df, func, dict.fromkeys(groups, "any"), args=dict.fromkeys(groups, "by"))
    check_group_keys(df, func, groups, account_col=account_col)
    share = check_top_share(func, top_share)
    classified = _classified(
        df,
        account_col=account_col,
        value_col=value_col,
        by=groups,
        top_share=share,
        thresholds=(0.8, 0.95),
    )
    n = F.max(_N).cast("double")
    total = F.max(_TOTAL)
    ascending_index = F.col(_N) + 1 - F.col("value_rank")
    weighted = F.sum(F.when(F.col("value").isNotNull(), ascending_index * F.col(_POS)))
    gini = F.try_divide(2.0 * weighted, n * total) - F.try_divide(n + 1.0, n)
    return classified.groupBy(*groups).agg(
        F.count("value").alias("n_accounts"),
        F.sum("value").alias("total_value"),
        (F.lit(10000.0) * F.sum(F.col("value_share") * F.col("value_share"))).alias("hhi"),
        F.sum(F.when(F.col("is_key_account"), F.col("value_share"))).alias("top_share_value"),
        F.when(total > 0, clip(gini, low=0.0)).alias("gini"),
        F.count_if(F.col("value").isNull()).alias("null_accounts"),
    )


def key_account_score(
    df: DataFrame,
    *,
    criteria: Mapping[str, float],
    account_col: str = "account_id",
    by: str | Sequence[str] | None = None,
    top_share: float = 0.2,
    lower_is_better: str | Iterable[str] = (),
) -> DataFrame:
    r"""Score accounts 0..100 on weighted strategic criteria and flag the top share as key.

    ``df`` has one row per account (per group) with numeric criteria columns, e.g. strategic
    importance, growth potential, relationship strength. For every criterion :math:`c` the
    percent rank within the group is

    .. math:: pr_c = \frac{\operatorname{rank}_c - 1}{m_c - 1}

    with :math:`\operatorname{rank}_c` the (min-tie) rank of the account's value among the
    :math:`m_c` non-null values of :math:`c` in the group, ascending (descending for names in
    ``lower_is_better``, so lower values score higher), and :math:`pr_c = 0` when
    :math:`m_c = 1`. Then

    .. math:: \text{kam\_score} = 100\,\frac{\sum_c w_c\, pr_c}{\sum_c w_c}

    over the criteria that are non-null for the account (weights renormalised; NaN counts as
    null). The score is null when every weighted criterion is missing. ``is_key_account`` flags
    the first :math:`k = \max(\lceil \text{top\_share}\cdot n - 10^{-9}\rceil, 1)` accounts by
    ``kam_score`` (descending, ties by account id ascending), with :math:`n` the accounts of
    the group that have a score; accounts with a null score are never key accounts.

    Parameters
    ----------
    df : pyspark.sql.DataFrame
        One row per account (per ``by`` group); other columns are kept.
    criteria : Mapping[str, float]
        Criterion column -> weight (finite, >= 0, not all zero).
    account_col : str
        Account id column (tie-breaker of the key-account rule).
    by : str or sequence of str, optional
        Segment columns: percent ranks and key accounts are computed per segment.
    top_share : float
        Share of scored accounts flagged as key accounts, in (0, 1].
    lower_is_better : str or iterable of str
        Criteria where a lower value is better (cost to serve, days overdue, ...).

    Returns
    -------
    pyspark.sql.DataFrame
        The input with ``kam_score`` and ``is_key_account`` added (replaced if present).

    References
    ----------
    McDonald, Millman & Rogers, *Key account management: theory, practice and challenges*,
    Journal of Marketing Management 13 (1997): attractiveness / strategic-importance portfolios.

    Examples
    --------
    >>> df = spark.createDataFrame(
    ...     [("a", 9.0, 1.0), ("b", 5.0, 3.0), ("c", 1.0, 5.0), ("d", 7.0, None)],
    ...     "account_id string, importance double, growth double")
    >>> out = key_account_score(df, criteria={"importance": 3, "growth": 1}, top_share=0.25)
    >>> for r in out.orderBy("account_id").collect():
    ...     print(r.account_id, round(r.kam_score, 2), r.is_key_account)
    a 75.0 True
    b 37.5 False
    c 25.0 False
    d 66.67 False
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    func = "key_account_score"
    require_columns(df, func, account_col=(account_col, "any"))
    groups = normalize_by(func, by)
    check_columns(df, func, dict.fromkeys(groups, "any"), args=dict.fromkeys(groups, "by"))
    share = check_top_share(func, top_share)
    weights, lower = validate_weights(df, func, "criteria", criteria, lower_is_better)
    scored = df.withColumn(
        "kam_score",
        weighted_percent_rank_score(df, weights=weights, lower_is_better=lower, by=groups),
    )
    group = Window.partitionBy(*groups)
    ordered = group.orderBy(F.col("kam_score").desc_nulls_last(), F.col(account_col).asc())
    is_key = F.col("kam_score").isNotNull() & (
        F.row_number().over(ordered) <= key_count(F.count("kam_score").over(group), share)
    )
    return scored.withColumn("is_key_account", is_key)
