"""Account profitability: gross margin, net contribution after cost to serve, whale curve.

Key account management is about profitable growth: the largest accounts by revenue are often
not the most profitable ones once discounts, cost of goods and the cost to serve them (KAM
team time, logistics, customisation, payment terms) are counted. :func:`account_profitability`
aggregates revenue and costs per account and adds margins, a profit rank, a margin percentile
and the cumulative-profit ("whale curve") share.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Literal

from kamlib._validation import (
    any_column_name,
    check_group_keys,
    check_output_collisions,
    check_unique_columns,
    finite,
    normalize_by,
    require_columns,
)

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

__all__ = ["account_profitability"]

_OUTPUT_NAMES = frozenset(
    {
        "revenue",
        "cost",
        "cost_to_serve",
        "gross_profit",
        "gross_margin",
        "net_contribution",
        "net_margin",
        "excluded_rows",
        "profit_rank",
        "margin_percentile",
        "cumulative_contribution_share",
    }
)


@any_column_name("account_profitability")
def account_profitability(
    df: DataFrame,
    *,
    account_col: str = "account_id",
    revenue_col: str = "revenue",
    cost_col: str = "cost",
    cost_to_serve_col: str | None = None,
    by: str | Iterable[str] | None = None,
) -> DataFrame:
    r"""Gross profit, margins and net contribution per account, ranked within each group.

    Input rows (transactions, invoice lines or one row per account) are summed per
    (``by``..., account): revenue :math:`R`, cost of goods :math:`C` and cost to serve
    :math:`S` (0 when ``cost_to_serve_col`` is not given). Then

    .. math::

        \text{gross\_profit} &= R - C, \qquad
        \text{gross\_margin} = \frac{R - C}{R} \quad (R > 0) \\
        \text{net\_contribution} &= R - C - S, \qquad
        \text{net\_margin} = \frac{R - C - S}{R} \quad (R > 0)

    Margins are null when :math:`R \le 0` (a margin on zero or negative revenue is
    meaningless). Within each group, accounts are ranked by net contribution
    (``profit_rank`` 1 = largest, ties broken by account ascending) and
    ``cumulative_contribution_share`` is the running sum of net contribution down that ranking
    divided by the group's total net contribution: Kaplan's *whale curve*, which typically
    rises above 1 (the most profitable accounts earn more than 100% of the profit) and falls
    back to 1 as the loss-making accounts are added. It is null when the total is <= 0.
    ``margin_percentile`` is the percent rank of ``net_margin`` among the group's accounts
    with a margin (0 = lowest, 1 = highest; null without a margin; 0 for a single account).

    Parameters
    ----------
    df : pyspark.sql.DataFrame
        Rows with revenue and costs. Costs are positive amounts (a credit is negative).
    account_col : str
        Account id column.
    revenue_col : str
        Numeric revenue (net of discounts and refunds; may be negative).
    cost_col : str
        Numeric cost of goods sold / direct cost.
    cost_to_serve_col : str, optional
        Numeric cost to serve (sales and KAM time, logistics, support, payment terms). Without
        it ``cost_to_serve`` is 0 and net contribution equals gross profit.
    by : str or sequence of str, optional
        Group columns (region, manager, year, ...): sums, ranks and shares are per group.

    Returns
    -------
    pyspark.sql.DataFrame
        One row per (``by``..., account): ``revenue``, ``cost``, ``cost_to_serve``,
        ``gross_profit``, ``gross_margin``, ``net_contribution``, ``net_margin`` (doubles),
        ``excluded_rows`` (input rows of the account with a null, NaN or ±inf revenue, cost
        or cost to serve: they are left out of all sums), ``profit_rank``, ``margin_percentile``,
        ``cumulative_contribution_share``. Rows with a null account form one row with a null
        account id, as in ``groupBy`` (nothing is dropped).

    Notes
    -----
    One aggregation per account plus one window per group (the group's accounts are ranked
    together, so without ``by`` the ranking runs in one partition, like any global rank).

    References
    ----------
    R. S. Kaplan and V. G. Narayanan (2001), "Measuring and Managing Customer
    Profitability", Journal of Cost Management 15(5), 5-15. R. S. Kaplan and S. R. Anderson
    (2004), "Time-Driven Activity-Based Costing", Harvard Business Review 82(11).

    Examples
    --------
    >>> from kamlib.profitability import account_profitability
    >>> lines = spark.createDataFrame(
    ...     [("a", 100.0, 60.0, 5.0), ("a", 50.0, 30.0, 5.0), ("b", 80.0, 40.0, 50.0)],
    ...     "account_id string, revenue double, cost double, cts double")
    >>> out = account_profitability(lines, cost_to_serve_col="cts").orderBy("profit_rank")
    >>> for r in out.collect():
    ...     print(r.account_id, r.gross_profit, r.gross_margin, r.net_contribution,
    ...           r.profit_rank, round(r.cumulative_contribution_share, 4))
    a 60.0 0.4 50.0 1 1.25
    b 40.0 0.5 -10.0 2 1.0
    """
    func = "account_profitability"
    keys = _validate(
        df,
        func,
        account_col=account_col,
        revenue_col=revenue_col,
        cost_col=cost_col,
        cost_to_serve_col=cost_to_serve_col,
        by=by,
    )
    per_account = _account_totals(
        df,
        keys,
        account_col=account_col,
        revenue_col=revenue_col,
        cost_col=cost_col,
        cost_to_serve_col=cost_to_serve_col,
    )
    return _ranked(_margins(per_account, keys, account_col), keys, account_col)


def _validate(
    df: DataFrame,
    func: str,
    *,
    account_col: str,
    revenue_col: str,
    cost_col: str,
    cost_to_serve_col: str | None,
    by: str | Iterable[str] | None,
) -> list[str]:
    """Check the columns, group keys and output collisions; return the group keys."""
    keys = normalize_by(func, by)
    cols: dict[str, tuple[str, Literal["any", "numeric"]]] = {
        "account_col": (account_col, "any"),
        "revenue_col": (revenue_col, "numeric"),
        "cost_col": (cost_col, "numeric"),
    }
    if cost_to_serve_col is not None:
        cols["cost_to_serve_col"] = (cost_to_serve_col, "numeric")
    require_columns(df, func, **cols)
    check_unique_columns(df, func)
    check_group_keys(df, func, keys, account_col=account_col)
    check_output_collisions(
        func, {**dict.fromkeys(keys, "by"), account_col: "account_col"}, _OUTPUT_NAMES
    )
    return keys


def _account_totals(
    df: DataFrame,
    keys: list[str],
    *,
    account_col: str,
    revenue_col: str,
    cost_col: str,
    cost_to_serve_col: str | None,
) -> DataFrame:
    """Revenue, cost and cost to serve per account (as double) over the all-finite rows."""
    from pyspark.sql import functions as F

    value_cols = [revenue_col, cost_col, *([cost_to_serve_col] if cost_to_serve_col else [])]
    valid = F.lit(True)
    for c in value_cols:
        valid = valid & finite(F.col(c))

    def total(c: str) -> Column:
        return F.coalesce(F.sum(F.when(valid, F.col(c).cast("double"))), F.lit(0.0))

    return df.groupBy(*keys, account_col).agg(
        total(revenue_col).alias("revenue"),
        total(cost_col).alias("cost"),
        (total(cost_to_serve_col) if cost_to_serve_col else F.lit(0.0)).alias("cost_to_serve"),
        F.count_if(~valid).alias("excluded_rows"),
    )


def _margins(per_account: DataFrame, keys: list[str], account_col: str) -> DataFrame:
    """Add gross profit, net contribution and their margins (null where revenue <= 0)."""
    from pyspark.sql import functions as F

    revenue = F.col("revenue")
    gross = revenue - F.col("cost")
    net = gross - F.col("cost_to_serve")
    positive = F.when(revenue > 0, revenue)
    return per_account.select(
        *keys,
        account_col,
        "revenue",
        "cost",
        "cost_to_serve",
        gross.alias("gross_profit"),
        F.try_divide(gross, positive).alias("gross_margin"),
        net.alias("net_contribution"),
        F.try_divide(net, positive).alias("net_margin"),
        F.col("excluded_rows").cast("long").alias("excluded_rows"),
    )


def _ranked(measures: DataFrame, keys: list[str], account_col: str) -> DataFrame:
    """Add the profit rank, margin percentile and cumulative contribution share per group."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    order = [F.col("net_contribution").desc(), F.col(account_col).asc_nulls_last()]
    w_rank = Window.partitionBy(*keys).orderBy(*order)
    w_running = w_rank.rowsBetween(Window.unboundedPreceding, Window.currentRow)
    w_group = Window.partitionBy(*keys)
    has_margin = F.col("net_margin").isNotNull()
    w_margin = Window.partitionBy(*keys, has_margin).orderBy(F.col("net_margin").asc())
    group_total = F.sum("net_contribution").over(w_group)
    return measures.select(
        *keys,
        account_col,
        "revenue",
        "cost",
        "cost_to_serve",
        "gross_profit",
        "gross_margin",
        "net_contribution",
        "net_margin",
        "excluded_rows",
        F.row_number().over(w_rank).alias("profit_rank"),
        F.when(has_margin, F.percent_rank().over(w_margin)).alias("margin_percentile"),
        F.try_divide(
            F.sum("net_contribution").over(w_running), F.when(group_total > 0, group_total)
        ).alias("cumulative_contribution_share"),
    )
