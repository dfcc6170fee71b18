"""Revenue retention: the revenue bridge (new, expansion, contraction, churn) and GRR / NRR.

- :func:`revenue_bridge`: one row per (account, period) that moves revenue, classified as
  ``new``, ``reactivated``, ``expansion``, ``contraction``, ``churned`` or ``flat``; with a
  product column, the revenue that comes from products the account never bought before
  (cross-sell) and the rest of the expansion (upsell).
- :func:`retention_rates`: one row per period with the bridge totals, gross and net revenue
  retention (GRR, NRR) and logo retention.

Both run as a handful of native Spark aggregations and one window per account (no job per
period, nothing collected to the driver) and accept ``by=`` for segments (region, manager,
...), each segment with its own period grid.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Literal, NamedTuple

from kamlib._validation import (
    TEMP_PREFIX,
    any_column_name,
    check_choice,
    check_group_keys,
    check_output_collisions,
    check_unique_columns,
    finite,
    normalize_by,
    quote,
    require_columns,
)

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, GroupedData

__all__ = ["MOVEMENTS", "Period", "retention_rates", "revenue_bridge"]

Period = Literal["month", "quarter", "year"]

#: The movement labels of :func:`revenue_bridge`, in bridge order.
MOVEMENTS: tuple[str, ...] = ("new", "reactivated", "expansion", "contraction", "churned", "flat")

# Internal column names (prefixed so they cannot clash with user columns).
_P = f"{TEMP_PREFIX}pidx"
_V = f"{TEMP_PREFIX}value"
_EX = f"{TEMP_PREFIX}excluded"
_CS = f"{TEMP_PREFIX}cross"
_FIRST = f"{TEMP_PREFIX}first"
_LAST = f"{TEMP_PREFIX}last"
_G = f"{TEMP_PREFIX}g"
_VALID = f"{TEMP_PREFIX}valid"
_PREV_P = f"{TEMP_PREFIX}prev_p"
_PREV_V = f"{TEMP_PREFIX}prev_v"
_NEXT_P = f"{TEMP_PREFIX}next_p"
_EARLIER = f"{TEMP_PREFIX}earlier"
_CHURN = f"{TEMP_PREFIX}churn"
_ROW = f"{TEMP_PREFIX}row"
_CHURN_NEXT = f"{TEMP_PREFIX}churn_next"
_CHURN_NEXT_N = f"{TEMP_PREFIX}churn_next_n"
_PRESENT = f"{TEMP_PREFIX}present"
_MAP = f"{TEMP_PREFIX}map"
_T = f"{TEMP_PREFIX}t"
_T1 = f"{TEMP_PREFIX}t1"
#: The revenue totals of :func:`retention_rates`, in output order.
_REVENUE_TOTALS = (
    "starting_revenue",
    "new_revenue",
    "reactivated_revenue",
    "expansion_revenue",
    "contraction_revenue",
    "churned_revenue",
    "ending_revenue",
)
_OUTPUT_NAMES = frozenset(
    {
        "period",
        "previous_revenue",
        "revenue",
        "movement",
        "cross_sell_revenue",
        "upsell_revenue",
        *_REVENUE_TOTALS,
        "grr",
        "nrr",
        "starting_accounts",
        "retained_accounts",
        "logo_retention",
        "new_accounts",
        "reactivated_accounts",
        "churned_accounts",
        "expansion_cross_sell_revenue",
        "excluded_rows",
    }
)


def _period_index(date: Column, period: str) -> Column:
    """Integer index of the period containing ``date`` (consecutive periods differ by 1)."""
    from pyspark.sql import functions as F

    year = F.year(date)
    if period == "year":
        return year
    month0 = F.month(date) - F.lit(1)
    if period == "quarter":
        return year * F.lit(4) + F.floor(month0 / F.lit(3)).cast("int")
    return year * F.lit(12) + month0


def _period_start(index: str, period: str) -> str:
    """SQL: first day of the period whose index is in column ``index`` (see :func:`_period_index`).

    SQL text rather than a Column: one ``expr`` per use instead of a dozen Column calls
    (each a Py4J round trip on classic Spark), which is most of a small call's cost.
    """
    if period == "year":
        return f"make_date({index}, 1, 1)"
    per_year = 4 if period == "quarter" else 12
    months = 3 if period == "quarter" else 1
    year = f"CAST(floor({index} / {per_year}) AS INT)"
    return f"make_date({year}, ({index} - {year} * {per_year}) * {months} + 1, 1)"


class _Inputs(NamedTuple):
    """The checked column arguments of :func:`revenue_bridge` and :func:`retention_rates`."""

    account_col: str
    date_col: str
    value_col: str
    period: str
    product_col: str | None
    #: The ``by`` group keys.
    keys: list[str]


def _validate(
    df: DataFrame,
    func: str,
    *,
    account_col: str,
    date_col: str,
    value_col: str,
    period: str,
    product_col: str | None,
    by: str | Iterable[str] | None,
) -> _Inputs:
    """Check the columns, period, group keys and output collisions of ``func``."""
    check_choice(func, "period", period, Period)
    keys = normalize_by(func, by)
    cols: dict[str, tuple[str, Literal["any", "temporal", "numeric"]]] = {
        "account_col": (account_col, "any"),
        "date_col": (date_col, "temporal"),
        "value_col": (value_col, "numeric"),
    }
    if product_col is not None:
        cols["product_col"] = (product_col, "any")
    require_columns(df, func, **cols)
    check_unique_columns(df, func)
    inputs = [account_col, date_col, value_col] + ([product_col] if product_col else [])
    check_group_keys(df, func, keys, account_col=None, inputs=inputs)
    check_output_collisions(
        func, {**dict.fromkeys(keys, "by"), account_col: "account_col"}, _OUTPUT_NAMES
    )
    return _Inputs(account_col, date_col, value_col, period, product_col, keys)


def _account_periods(
    parted: DataFrame,
    *,
    account_col: str,
    product_col: str | None,
    keys: list[str],
    sums: list[str],
) -> DataFrame:
    """Per-(``keys``, account, period) sums of the ``sums`` columns of account-partitioned rows.

    With a product column also ``_CS``, the cross-sell revenue: product revenue (floored at 0)
    in the first period the account bought that product with positive revenue. The input must
    be hash-partitioned by ``keys`` and the account, so neither aggregation nor the product
    window needs another exchange.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    if product_col is None:
        return parted.groupBy(*keys, account_col, _P).agg(*[F.sum(c).alias(c) for c in sums])
    per_product = parted.groupBy(*keys, account_col, product_col, _P).agg(
        *[F.sum(c).alias(c) for c in sums]
    )
    wp = Window.partitionBy(*keys, account_col, product_col)
    prod_rev = F.greatest(F.col(_V).cast("double"), F.lit(0.0))
    first_pos = F.min(F.when(prod_rev > 0, F.col(_P))).over(wp)
    cs = F.when((prod_rev > 0) & (F.col(_P) == first_pos), prod_rev).otherwise(F.lit(0.0))
    return (
        per_product.select(*keys, account_col, _P, *sums, cs.alias(_CS))
        .groupBy(*keys, account_col, _P)
        .agg(*[F.sum(c).alias(c) for c in [*sums, _CS]])
    )


def _summable(df: DataFrame, value_col: str) -> Column:
    """``value_col`` in a type whose sums are exact where possible and cannot overflow.

    Integers become ``decimal(38,0)`` and decimals ``decimal(38, scale)`` (exact, so "flat"
    does not depend on summation order, and no bigint overflow: ANSI mode would raise);
    floating point becomes double. Sums are cast to double afterwards.
    """
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    dtype = df.select(value_col).schema.fields[0].dataType  # resolved as Spark does
    if isinstance(dtype, T.DecimalType):
        return F.col(value_col).cast(f"decimal(38,{dtype.scale})")
    if isinstance(dtype, T.IntegralType):
        return F.col(value_col).cast("decimal(38,0)")
    return F.col(value_col).cast("double")


def _valid_row(account_col: str, date_col: str, value_col: str) -> Column:
    """An input row counts when its account, date and value are set and the value finite."""
    from pyspark.sql import functions as F

    return F.col(account_col).isNotNull() & F.col(date_col).isNotNull() & finite(F.col(value_col))


class _Masks(NamedTuple):
    """Movement masks of an (account, period) row, SQL (see :func:`_movement_masks`)."""

    new: str
    reactivated: str
    expansion: str
    contraction: str
    churned: str
    retained: str


def _movement_masks(previous: str, revenue: str, earlier: str) -> _Masks:
    """SQL movement masks of a row with previous and current revenue (both >= 0, not null).

    ``earlier``: the account had revenue > 0 in some period before the previous one. Shared
    by the bridge rows (:func:`_bridge_rows`) and the totals of :func:`_period_totals`.
    """
    gained = f"({previous} = 0 AND {revenue} > 0)"
    retained = f"({previous} > 0 AND {revenue} > 0)"
    return _Masks(
        new=f"({gained} AND NOT {earlier})",
        reactivated=f"({gained} AND {earlier})",
        expansion=f"({retained} AND {revenue} > {previous})",
        contraction=f"({retained} AND {revenue} < {previous})",
        churned=f"({previous} > 0 AND {revenue} = 0)",
        retained=retained,
    )


def _bridge_frames(df: DataFrame, inputs: _Inputs) -> tuple[DataFrame, DataFrame]:
    """Return (bridge rows with integer period index, per-group bounds and excluded counts)."""
    account_col, product_col, keys = inputs.account_col, inputs.product_col, inputs.keys
    base = _retention_input(df, inputs, null_invalid=False)
    bounds = _group_bounds(base, keys)
    positive = _positive_periods(base, account_col=account_col, product_col=product_col, keys=keys)
    neighbours = _with_neighbours(positive, account_col=account_col, keys=keys)
    rows = _bridge_candidates(_join_bounds(neighbours, bounds, keys), account_col, keys)
    return _bridge_rows(rows, account_col=account_col, product_col=product_col, keys=keys), bounds


def _retention_input(df: DataFrame, inputs: _Inputs, *, null_invalid: bool) -> DataFrame:
    """The input's keys, account, [product,] period index and valid value, one projection.

    Invalid rows (see :func:`_valid_row`) always have a null value. For the bridge
    (``null_invalid=False``) they keep account and period and are flagged in ``_VALID``;
    for the totals (``null_invalid=True``) account, product and period are nulled too and
    ``_EX`` is 1 (0 for valid rows), ready to be summed.
    """
    from pyspark.sql import functions as F

    account_col, date_col, value_col, period, product_col, keys = inputs
    valid = _valid_row(account_col, date_col, value_col)

    def kept(column: Column) -> Column:
        return F.when(valid, column) if null_invalid else column

    flag = (
        F.when(valid, F.lit(0)).otherwise(F.lit(1)).alias(_EX)
        if null_invalid
        else valid.alias(_VALID)
    )
    return df.select(
        *[F.col(k) for k in keys],
        kept(F.col(account_col)).alias(account_col),
        *([kept(F.col(product_col)).alias(product_col)] if product_col else []),
        kept(_period_index(F.to_date(F.col(date_col)), period)).alias(_P),
        F.when(valid, _summable(df, value_col)).alias(_V),
        flag,
    )


def _group_bounds(base: DataFrame, keys: list[str]) -> DataFrame:
    """Per-group first and last valid period and the excluded-row count.

    A cheap aggregation straight from the input (partial aggregation leaves one row per group
    and task), not from the shuffled per-account aggregate, so it adds no large shuffle.
    """
    from pyspark.sql import functions as F

    return base.groupBy(*keys).agg(
        F.min(F.when(F.col(_VALID), F.col(_P))).alias(_FIRST),
        F.max(F.when(F.col(_VALID), F.col(_P))).alias(_LAST),
        F.count_if(~F.col(_VALID)).alias(_EX),
    )


def _positive_periods(
    base: DataFrame, *, account_col: str, product_col: str | None, keys: list[str]
) -> DataFrame:
    """The (account, period) rows with revenue > 0 (double) and their cross-sell revenue.

    One shuffle for the whole bridge: the valid rows are hash-partitioned by account once;
    the per-(account, [product,] period) sums and the per-account windows then need no
    further exchange (hash partitioning on the account satisfies all those clusterings).
    """
    from pyspark.sql import functions as F

    account_period = _account_periods(
        base.filter(F.col(_VALID)).repartition(*keys, account_col),
        account_col=account_col,
        product_col=product_col,
        keys=keys,
        sums=[_V],
    )
    if product_col is None:
        account_period = account_period.withColumn(_CS, F.lit(0.0))
    return account_period.select(
        *keys,
        account_col,
        _P,
        F.greatest(F.col(_V).cast("double"), F.lit(0.0)).alias(_V),
        _CS,
    ).filter(F.col(_V) > 0)


def _with_neighbours(positive: DataFrame, *, account_col: str, keys: list[str]) -> DataFrame:
    """Add the account's previous positive period and revenue and its next positive period."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    w = Window.partitionBy(*keys, account_col).orderBy(_P)
    return positive.select(
        *keys,
        account_col,
        _P,
        _V,
        _CS,
        F.lag(_P).over(w).alias(_PREV_P),
        F.lag(_V).over(w).alias(_PREV_V),
        F.lead(_P).over(w).alias(_NEXT_P),
    )


def _join_bounds(rows: DataFrame, bounds: DataFrame, keys: list[str]) -> DataFrame:
    """Broadcast-join each row with its group's first and last period (null-safe keys)."""
    from pyspark.sql import functions as F

    bounds_b = bounds.select(
        *[F.col(k).alias(f"{_G}{i}") for i, k in enumerate(keys)], _FIRST, _LAST
    )
    cond = [F.col(k).eqNullSafe(F.col(f"{_G}{i}")) for i, k in enumerate(keys)]
    if cond:
        return rows.join(F.broadcast(bounds_b), on=cond, how="inner")
    return rows.crossJoin(F.broadcast(bounds_b))


def _bridge_candidates(joined: DataFrame, account_col: str, keys: list[str]) -> DataFrame:
    """One struct ``_ROW`` per positive period and per churn into the next period.

    Fields: ``p``, ``previous``, ``revenue``, ``first_ever`` (no earlier positive period) and
    ``cross``; rows in the group's first period are dropped (nothing to compare with).
    """
    from pyspark.sql import functions as F

    p = F.col(_P)
    current = F.struct(
        p.alias("p"),
        F.when(F.col(_PREV_P) == p - F.lit(1), F.col(_PREV_V))
        .otherwise(F.lit(0.0))
        .alias("previous"),
        F.col(_V).alias("revenue"),
        F.col(_PREV_P).isNull().alias("first_ever"),
        F.col(_CS).alias("cross"),
    )
    churn_row = F.when(
        (F.col(_NEXT_P).isNull() | (F.col(_NEXT_P) != p + F.lit(1)))
        & (p + F.lit(1) <= F.col(_LAST)),
        F.struct(
            (p + F.lit(1)).alias("p"),
            F.col(_V).alias("previous"),
            F.lit(0.0).alias("revenue"),
            F.lit(False).alias("first_ever"),
            F.lit(0.0).alias("cross"),
        ),
    )
    return joined.select(
        *keys,
        account_col,
        F.col(_FIRST),
        F.explode(F.array_compact(F.array(current, churn_row))).alias(_ROW),
    ).filter(F.col(f"{_ROW}.p") > F.col(_FIRST))


def _bridge_rows(
    rows: DataFrame, *, account_col: str, product_col: str | None, keys: list[str]
) -> DataFrame:
    """Label each candidate row with its movement (and the cross-sell / upsell split)."""
    previous, revenue, cross = f"{_ROW}.previous", f"{_ROW}.revenue", f"{_ROW}.cross"
    masks = _movement_masks(previous, revenue, f"(NOT {_ROW}.first_ever)")
    movement = (
        f"CASE WHEN {masks.new} THEN 'new' WHEN {masks.reactivated} THEN 'reactivated' "
        f"WHEN {masks.churned} THEN 'churned' WHEN {masks.expansion} THEN 'expansion' "
        f"WHEN {masks.contraction} THEN 'contraction' ELSE 'flat' END"
    )
    extra: list[str] = []
    if product_col is not None:
        upsell = (
            f"CASE WHEN {masks.expansion} THEN greatest({revenue} - {previous} - {cross}, 0D) "
            "ELSE 0D END"
        )
        extra = [f"{cross} AS cross_sell_revenue", f"{upsell} AS upsell_revenue"]
    return rows.selectExpr(
        *_quoted(keys, account_col),
        f"{_ROW}.p AS {_P}",
        f"{previous} AS previous_revenue",
        f"{revenue} AS revenue",
        f"{movement} AS movement",
        *extra,
    )


def _grouped(small: DataFrame, keys: list[str]) -> GroupedData:
    """``small.groupBy(*keys)``, for the per-group step over (group, period) totals.

    Without keys the totals are a few hundred rows: on one partition (``coalesce(1)``,
    no shuffle) they satisfy the global aggregation, which then needs no exchange (one
    stage and its scheduling less per call).
    """
    return (small if keys else small.coalesce(1)).groupBy(*keys)


def _quoted(keys: list[str], *names: str) -> list[str]:
    """The group keys and ``names`` as quoted SQL column references."""
    return [quote(c) for c in [*keys, *names]]


def _period_totals(df: DataFrame, inputs: _Inputs) -> tuple[DataFrame, list[str], list[str]]:
    """Per-(group, period) bridge totals for :func:`retention_rates`, in one pass over the input.

    Returns the totals (one row per ``keys`` and period index) and the names of the revenue
    and count columns. Each (account, period) with revenue > 0 contributes to its own period
    (``starting_revenue`` etc. without the churn part); an account whose revenue stops after
    the period contributes its revenue to ``_CHURN_NEXT`` / ``_CHURN_NEXT_N`` of that period,
    which the caller shifts to the next period (no exploded churn rows). The columns
    ``_PRESENT`` (valid input rows in the period: the grid bounds) and ``_EX`` (excluded
    input rows; invalid rows are folded into one (group, null period) row) come from the same
    pass, so bounds and excluded counts need no second scan.
    """
    account_col, product_col, keys = inputs.account_col, inputs.product_col, inputs.keys
    base = _retention_input(df, inputs, null_invalid=True)
    # One shuffle: hash-partition by account; the per-(account, [product,] period) sums and
    # the per-account window below then need no further exchange.
    account_period = _account_periods(
        base.repartition(*keys, account_col),
        account_col=account_col,
        product_col=product_col,
        keys=keys,
        sums=[_V, _EX],
    )
    rows = _account_period_rows(
        account_period, account_col=account_col, product_col=product_col, keys=keys
    )
    aggs, sums, counts = _totals_aggs(product_col is not None)
    return rows.groupBy(*keys, _P).agg(*aggs), sums, counts


def _account_period_rows(
    account_period: DataFrame, *, account_col: str, product_col: str | None, keys: list[str]
) -> DataFrame:
    """Each (account, period) with its revenue (floored at 0) and what its neighbours imply.

    All of an account's periods (also those with revenue <= 0), in order: ``_PREV_V`` is the
    previous period's revenue (0 unless the previous row is the period before),
    ``_EARLIER`` whether any earlier period had revenue > 0, ``_CHURN`` whether the account
    has revenue now and none in the next period (its churn lands there).
    """
    rev = f"greatest(CAST({_V} AS DOUBLE), 0D)"
    w = f"OVER (PARTITION BY {', '.join(_quoted(keys, account_col))} ORDER BY {_P}"
    adjacent = f"lag({_P}) {w}) = {_P} - 1"
    next_positive = f"lead({_P}) {w}) = {_P} + 1 AND lead({_V}) {w}) > 0"
    return account_period.selectExpr(
        *_quoted(keys),
        _P,
        f"{rev} AS {_V}",
        _EX,
        *([_CS] if product_col else []),
        f"CASE WHEN {adjacent} THEN greatest(CAST(lag({_V}) {w}) AS DOUBLE), 0D) ELSE 0D END "
        f"AS {_PREV_V}",
        f"coalesce(max({rev}) {w} ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) > 0, false) "
        f"AS {_EARLIER}",
        f"{_V} > 0 AND NOT coalesce({next_positive}, false) AS {_CHURN}",
    )


def _totals_aggs(with_products: bool) -> tuple[list[Column], list[str], list[str]]:
    """The (group, period) aggregations, and the names of the revenue and count totals.

    Only periods with revenue > 0 have a row of their own; a churn into a period is counted
    by the account's last period with revenue (``_CHURN_NEXT``).
    """
    from pyspark.sql import functions as F

    p, r, prev = _P, _V, _PREV_V
    masks = _movement_masks(prev, r, _EARLIER)
    active = f"{r} > 0"
    sums = {
        "starting_revenue": (masks.retained, prev),
        "new_revenue": (masks.new, r),
        "reactivated_revenue": (masks.reactivated, r),
        "expansion_revenue": (masks.expansion, f"{r} - {prev}"),
        "contraction_revenue": (masks.contraction, f"{prev} - {r}"),
        "ending_revenue": (active, r),
    }
    if with_products:
        exp_cross = f"least({_CS}, {r} - {prev})"
        sums["cross_sell_revenue"] = (active, _CS)
        sums["expansion_cross_sell_revenue"] = (masks.expansion, exp_cross)
        sums["upsell_revenue"] = (masks.expansion, f"{r} - {prev} - {exp_cross}")
    counts = {
        "retained_accounts": masks.retained,
        "new_accounts": masks.new,
        "reactivated_accounts": masks.reactivated,
    }
    aggs = [
        *[f"sum(CASE WHEN {c} THEN {v} ELSE 0D END) AS {n}" for n, (c, v) in sums.items()],
        *[f"count_if({c}) AS {n}" for n, c in counts.items()],
        f"sum(CASE WHEN {_CHURN} THEN {r} ELSE 0D END) AS {_CHURN_NEXT}",
        f"count_if({_CHURN}) AS {_CHURN_NEXT_N}",
        f"count_if({p} IS NOT NULL) AS {_PRESENT}",
        f"sum({_EX}) AS {_EX}",
    ]
    return [F.expr(a) for a in aggs], list(sums), list(counts)


@any_column_name("revenue_bridge")
def revenue_bridge(
    df: DataFrame,
    *,
    account_col: str = "account_id",
    date_col: str = "order_date",
    value_col: str = "amount",
    period: Period = "month",
    product_col: str | None = None,
    by: str | Iterable[str] | None = None,
) -> DataFrame:
    r"""Classify each account's period-over-period revenue movement.

    Period revenue :math:`R_{a,t} = \max\left(\sum \text{value}, 0\right)` over the account's
    transactions dated in period :math:`t` (refunds may make the sum negative; it is floored at
    0). The period grid runs from the first to the last period that has any valid transaction
    (per ``by`` group); periods without transactions have revenue 0. For every period after
    the first one, each account with :math:`R_{a,t-1} > 0` or :math:`R_{a,t} > 0` gets one
    row, whose ``movement`` is

    - ``new``: :math:`R_{a,t} > 0` and no earlier period with revenue > 0;
    - ``reactivated``: :math:`R_{a,t-1} = 0 < R_{a,t}`, with revenue in an earlier period;
    - ``expansion``: :math:`R_{a,t} > R_{a,t-1} > 0`;
    - ``contraction``: :math:`0 < R_{a,t} < R_{a,t-1}`;
    - ``churned``: :math:`R_{a,t-1} > 0 = R_{a,t}` (one row; the account then has no rows
      until it comes back as ``reactivated``);
    - ``flat``: :math:`R_{a,t} = R_{a,t-1} > 0`.

    "Earlier" includes the first period of the data, which itself gets no rows (nothing to
    compare it with).

    Parameters
    ----------
    df : pyspark.sql.DataFrame
        Transactions.
    account_col : str
        Account id column.
    date_col : str
        Date or timestamp column (timestamps are converted to dates in the session time zone).
    value_col : str
        Numeric amount; may be negative (refunds).
    period : {"month", "quarter", "year"}
        Calendar period of the bridge.
    product_col : str, optional
        Product column; adds ``cross_sell_revenue`` and ``upsell_revenue``.
    by : str or sequence of str, optional
        Segment columns (region, manager, ...). Each segment has its own period grid, starting
        at its own first period; an account appearing in two segments is two bridge accounts.

    Returns
    -------
    pyspark.sql.DataFrame
        One row per (``by``..., account, period): ``period`` (date, first day of the period),
        ``previous_revenue``, ``revenue`` (doubles), ``movement`` (string) and, with
        ``product_col``:

        - ``cross_sell_revenue``: :math:`\sum_p \max(R_{a,p,t}, 0)` over the products *p* the
          account never bought (with positive product-period revenue) in an earlier period,
          where :math:`R_{a,p,t}` is the account's revenue from product *p* in period *t*.
          This is the literal definition: every product of a ``new`` account is cross-sell,
          and because product revenue is floored per product while account revenue is
          floored after summing, it can exceed ``revenue`` when refunds of older products
          offset it.
        - ``upsell_revenue``: the part of an ``expansion`` not explained by cross-sell,
          :math:`\max(R_{a,t} - R_{a,t-1} - \text{cross\_sell\_revenue}, 0)`; 0 for other
          movements. Rows with a null product count as one "unknown" product.

    Notes
    -----
    Rows with a null account, date or value, or a NaN/±inf value, are excluded;
    :func:`retention_rates` reports how many in ``excluded_rows``. Revenue columns are
    doubles; sums are taken in the input type first (exact for integer and decimal
    amounts, so ``flat`` is reliable there; with floating point amounts, equal totals made
    of different parts may differ in the last bit). The work is one shuffle of the input
    by account, one window per account and a broadcast join with the per-group first and
    last periods.

    References
    ----------
    The SaaS revenue bridge ("ARR/MRR waterfall"): e.g. KeyBanc Capital Markets & Sapphire
    Ventures, *SaaS Survey*; D. Skok, "SaaS Metrics 2.0" (forEntrepreneurs, 2013).

    Examples
    --------
    >>> import datetime as dt
    >>> from kamlib.retention import revenue_bridge
    >>> tx = spark.createDataFrame(
    ...     [("a", dt.date(2024, 1, 5), 100.0), ("a", dt.date(2024, 2, 9), 150.0),
    ...      ("b", dt.date(2024, 2, 1), 40.0), ("a", dt.date(2024, 3, 3), -10.0)],
    ...     "account_id string, order_date date, amount double")
    >>> bridge = revenue_bridge(tx).orderBy("period", "account_id")
    >>> for r in bridge.collect():
    ...     print(r.account_id, r.period, r.previous_revenue, r.revenue, r.movement)
    a 2024-02-01 100.0 150.0 expansion
    b 2024-02-01 0.0 40.0 new
    a 2024-03-01 150.0 0.0 churned
    b 2024-03-01 40.0 0.0 churned
    """
    inputs = _validate(
        df,
        "revenue_bridge",
        account_col=account_col,
        date_col=date_col,
        value_col=value_col,
        period=period,
        product_col=product_col,
        by=by,
    )
    bridge, _ = _bridge_frames(df, inputs)
    extra = ["cross_sell_revenue", "upsell_revenue"] if product_col else []
    return bridge.selectExpr(
        *_quoted(inputs.keys, account_col),
        f"{_period_start(_P, period)} AS period",
        "previous_revenue",
        "revenue",
        "movement",
        *extra,
    )


@any_column_name("retention_rates")
def retention_rates(
    df: DataFrame,
    *,
    account_col: str = "account_id",
    date_col: str = "order_date",
    value_col: str = "amount",
    period: Period = "month",
    product_col: str | None = None,
    by: str | Iterable[str] | None = None,
) -> DataFrame:
    r"""Gross and net revenue retention, logo retention and the bridge totals per period.

    Sums of the :func:`revenue_bridge` rows of each period :math:`t` (per ``by`` group):

    .. math::

        S_t &= \sum R_{a,t-1} \quad(\text{starting\_revenue}), \qquad
        E_t = \sum R_{a,t} \quad(\text{ending\_revenue}) \\
        \text{GRR}_t &= \frac{S_t - \text{contraction}_t - \text{churned}_t}{S_t}, \qquad
        \text{NRR}_t = \frac{S_t + \text{expansion}_t - \text{contraction}_t
        - \text{churned}_t}{S_t}

    with ``new_revenue`` / ``reactivated_revenue`` = the revenue of new / reactivated rows,
    ``expansion_revenue`` = :math:`\sum (R_t - R_{t-1})` over expansion rows,
    ``contraction_revenue`` = :math:`\sum (R_{t-1} - R_t)` over contraction rows and
    ``churned_revenue`` = :math:`\sum R_{t-1}` over churned rows. The bridge reconciles:
    :math:`S_t + \text{new} + \text{reactivated} + \text{expansion} - \text{contraction}
    - \text{churned} = E_t`, so :math:`0 \le \text{GRR} \le 1` and
    :math:`\text{NRR} = \text{GRR} + \text{expansion}/S_t`.

    Parameters
    ----------
    df : pyspark.sql.DataFrame
        Transactions.
    account_col, date_col, value_col, period, product_col, by
        As in :func:`revenue_bridge`.

    Returns
    -------
    pyspark.sql.DataFrame
        One row per (``by``..., ``period``) for every period of the group's grid after the
        first (periods without any bridge row appear with zeros and null rates):
        ``starting_revenue``, ``new_revenue``, ``reactivated_revenue``, ``expansion_revenue``,
        ``contraction_revenue``, ``churned_revenue``, ``ending_revenue``, ``grr``, ``nrr``
        (null when ``starting_revenue`` is 0), ``starting_accounts`` (previous revenue > 0),
        ``retained_accounts`` (previous and current revenue > 0), ``logo_retention`` =
        retained / starting (null when no starting accounts), ``new_accounts``,
        ``reactivated_accounts``, ``churned_accounts``, ``excluded_rows`` (input rows of the
        group excluded for a null account, date or value; the same on every row of the
        group). With ``product_col`` also ``cross_sell_revenue`` (sum of the bridge's
        cross-sell revenue, all movements), ``expansion_cross_sell_revenue`` (over expansion
        rows, :math:`\min(\text{cross\_sell}, R_t - R_{t-1})`) and ``upsell_revenue``
        (expansion minus its cross-sell part), so
        ``expansion_cross_sell_revenue + upsell_revenue == expansion_revenue``.

    Notes
    -----
    A group whose rows are all invalid has no grid and no output rows; a group with a single
    period has no rows either (there is no period after the first).

    The work is one pass over the input: one shuffle by account (the per-account period sums
    and one window per account need no further exchange), then one aggregation of the
    (account, period) rows into (group, period) totals, in which an account's churn is
    counted in its last period with revenue and shifted to the next period afterwards (no
    exploded churn rows); grid bounds and excluded rows come from the same pass (no second
    scan, no join).

    References
    ----------
    D. Skok, "SaaS Metrics 2.0" (forEntrepreneurs, 2013); KeyBanc Capital Markets & Sapphire
    Ventures, *SaaS Survey* (GRR/NRR definitions).

    Examples
    --------
    >>> import datetime as dt
    >>> from kamlib.retention import retention_rates
    >>> tx = spark.createDataFrame(
    ...     [("a", dt.date(2024, 1, 5), 100.0), ("b", dt.date(2024, 1, 9), 50.0),
    ...      ("a", dt.date(2024, 2, 9), 120.0), ("c", dt.date(2024, 2, 1), 30.0)],
    ...     "account_id string, order_date date, amount double")
    >>> r = retention_rates(tx).first()
    >>> r.period, r.starting_revenue, r.churned_revenue, r.ending_revenue
    (datetime.date(2024, 2, 1), 150.0, 50.0, 150.0)
    >>> round(r.grr, 4), round(r.nrr, 4), r.logo_retention
    (0.6667, 0.8, 0.5)
    """
    inputs = _validate(
        df,
        "retention_rates",
        account_col=account_col,
        date_col=date_col,
        value_col=value_col,
        period=period,
        product_col=product_col,
        by=by,
    )
    looked_up, columns = _rates_columns(df, inputs)
    return looked_up.selectExpr(*_quoted(inputs.keys), *[f"{v} AS {k}" for k, v in columns.items()])


def _rates_columns(df: DataFrame, inputs: _Inputs) -> tuple[DataFrame, dict[str, str]]:
    """The grid rows of :func:`retention_rates` and its output columns (but the keys) as SQL.

    Callers select the columns they publish (:func:`kamlib.recurring.mrr_bridge` renames
    and adds to them) in one projection.
    """
    per_period, sums, counts = _period_totals(df, inputs)
    looked_up = _grid_lookup(per_period, keys=inputs.keys, sums=sums, counts=counts)
    filled, filled_counts = _filled_totals(sums, counts)
    columns = _rates_sql(
        filled, filled_counts, period=inputs.period, with_products=inputs.product_col is not None
    )
    return looked_up, columns


def _grid_lookup(
    per_period: DataFrame, *, keys: list[str], sums: list[str], counts: list[str]
) -> DataFrame:
    """Every period of each group's grid after the first, with its totals and the previous one's.

    Per group: the grid bounds (periods with any valid row), the excluded-row count and a
    period -> totals map; then every period of the grid after the first, even without
    bridge rows (no join: a map lookup on one row per group). ``_T`` holds the period's own
    totals, ``_T1`` those of the period before it (whose churn moves into this period).
    """
    from pyspark.sql import functions as F

    totals = ", ".join([*sums, *counts, _CHURN_NEXT, _CHURN_NEXT_N])
    per_group = _grouped(per_period, keys).agg(
        F.expr(f"min(CASE WHEN {_PRESENT} > 0 THEN {_P} END) AS {_FIRST}"),
        F.expr(f"max(CASE WHEN {_PRESENT} > 0 THEN {_P} END) AS {_LAST}"),
        F.expr(f"sum({_EX}) AS {_EX}"),
        F.expr(
            f"map_from_entries(collect_list(CASE WHEN {_P} IS NOT NULL "
            f"THEN struct({_P}, struct({totals})) END)) AS {_MAP}"
        ),
    )
    # One generator: the grid periods with both lookups (a separate lookup step would be
    # one more plan to analyse).
    x = f"{TEMP_PREFIX}x"
    lookups = (
        f"{x} -> named_struct('{_P}', {x}, '{_T}', try_element_at({_MAP}, {x}), "
        f"'{_T1}', try_element_at({_MAP}, {x} - 1))"
    )
    return per_group.selectExpr(
        *_quoted(keys),
        f"{_EX} AS excluded_rows",
        f"inline(transform(CASE WHEN {_FIRST} < {_LAST} THEN sequence({_FIRST} + 1, {_LAST}) "
        f"END, {lookups}))",
    )


def _filled_totals(sums: list[str], counts: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    """SQL: the revenue and count totals of a :func:`_grid_lookup` row (0 where missing).

    The churn out of the previous period is added to ``starting_*`` and is ``churned_*``.
    """
    filled = {c: f"coalesce({_T}.{c}, 0D)" for c in sums}
    filled_counts = {c: f"CAST(coalesce({_T}.{c}, 0) AS BIGINT)" for c in counts}
    churned = f"coalesce({_T1}.{_CHURN_NEXT}, 0D)"
    churned_n = f"CAST(coalesce({_T1}.{_CHURN_NEXT_N}, 0) AS BIGINT)"
    filled["starting_revenue"] = f"({filled['starting_revenue']} + {churned})"
    filled["churned_revenue"] = churned
    filled_counts["starting_accounts"] = f"({filled_counts['retained_accounts']} + {churned_n})"
    filled_counts["churned_accounts"] = churned_n
    return filled, filled_counts


def _rates_sql(
    filled: dict[str, str], filled_counts: dict[str, str], *, period: str, with_products: bool
) -> dict[str, str]:
    """Output column name -> SQL: totals, GRR, NRR, logo retention (rates null without a start)."""
    start = filled["starting_revenue"]
    # Rates use the per-row totals so they stay consistent with the reported columns.
    lost = f"({filled['contraction_revenue']} + {filled['churned_revenue']})"
    grr = f"try_divide({start} - {lost}, CASE WHEN {start} > 0 THEN {start} END)"
    nrr = (
        f"try_divide({start} + {filled['expansion_revenue']} - {lost}, "
        f"CASE WHEN {start} > 0 THEN {start} END)"
    )
    starting_n, retained_n = filled_counts["starting_accounts"], filled_counts["retained_accounts"]
    logo = (
        f"try_divide(CAST({retained_n} AS DOUBLE), "
        f"CASE WHEN {starting_n} > 0 THEN CAST({starting_n} AS DOUBLE) END)"
    )
    accounts = ["new_accounts", "reactivated_accounts", "churned_accounts"]
    products = ["cross_sell_revenue", "expansion_cross_sell_revenue", "upsell_revenue"]
    return {
        "period": _period_start(_P, period),
        **{c: filled[c] for c in _REVENUE_TOTALS},
        "grr": grr,
        "nrr": nrr,
        "starting_accounts": starting_n,
        "retained_accounts": retained_n,
        "logo_retention": logo,
        **{c: filled_counts[c] for c in accounts},
        **{c: filled[c] for c in (products if with_products else [])},
        "excluded_rows": "CAST(excluded_rows AS BIGINT)",
    }
