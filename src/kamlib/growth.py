"""Account growth: whitespace (account x product headroom) and next-product recommendations."""

from __future__ import annotations

import operator
from functools import reduce
from typing import TYPE_CHECKING, Any

from kamlib._validation import any_column_name, check_fraction, finite, require_columns
from kamlib.errors import SchemaError

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

__all__ = ["next_products", "whitespace"]

_SEGMENT = "__kamlib_segment"


def _valid_amount(value_col: str) -> Column:
    """True where ``value_col`` is a finite (not NaN, not ±inf), non-negative, non-null number."""
    from pyspark.sql import functions as F

    value = F.col(value_col)
    return finite(value) & (value >= 0)


@any_column_name("whitespace")
def whitespace(
    df: DataFrame,
    *,
    account_col: str = "account_id",
    product_col: str = "product",
    value_col: str = "amount",
    segment_col: str | None = None,
) -> DataFrame:
    r"""Account x product whitespace matrix with peer penetration, peer revenue and headroom.

    Within each segment :math:`s`, let :math:`A_s` be the accounts with at least one valid row
    and :math:`r_{a,p}` the sum of account :math:`a`'s valid amounts of product :math:`p`
    (0 if none). The products of the segment are those with at least one buyer
    (:math:`r_{a,p} > 0`); for each of them and each :math:`a \in A_s`:

    .. math::

        \text{penetration}_{s,p} &= |\{a \in A_s : r_{a,p} > 0\}| \,/\, |A_s| \\
        \text{peer\_revenue}_{s,p} &= \operatorname{median}\{r_{a,p} : a \in A_s, r_{a,p} > 0\} \\
        \text{headroom}_{a,p} &= \max(\text{peer\_revenue}_{s,p} - r_{a,p},\ 0)

    The median is exact (Spark ``median`` = ``percentile(.., 0.5)``, not an approximation):
    the middle value of an odd count, the mean of the two middle values of an even count.

    Invalid rows -- null, NaN, infinite or negative amounts, null account or product -- are
    excluded before anything is computed: they add no revenue and an account whose rows are
    all invalid is not part of :math:`A_s` (so it does not dilute the penetration). Count them
    with ``df.filter(~(amount >= 0 and finite))`` if you need the number; no hidden job runs
    here. A null segment value is a segment of its own.

    Parameters
    ----------
    df : pyspark.sql.DataFrame
        Transactions (or any account x product amounts).
    account_col, product_col, value_col : str
        Column names (value numeric).
    segment_col : str, optional
        Peer segment column (industry, tier, region). ``None``: all accounts are one segment
        and the output has no segment column.

    Returns
    -------
    pyspark.sql.DataFrame
        ``[segment_col,] account_col, product_col, revenue, bought, penetration,
        peer_revenue, headroom``: one row per (segment, account, product sold in the segment).

    References
    ----------
    Whitespace analysis as in key-account planning (account x product grid of penetration and
    peer benchmarks), e.g. McDonald & Rogers, *Malcolm McDonald on Key Account Management* (2017).

    Examples
    --------
    >>> df = spark.createDataFrame(
    ...     [("a", "x", 10.0), ("b", "x", 30.0), ("b", "y", 5.0), ("c", "z", 1.0)],
    ...     "account_id string, product string, amount double")
    >>> out = whitespace(df).filter("account_id = 'a'").orderBy("product")
    >>> for r in out.collect():
    ...     print(r["product"], r.revenue, r.bought, round(r.penetration, 3), r.headroom)
    x 10.0 True 0.667 10.0
    y 0.0 False 0.333 5.0
    z 0.0 False 0.333 1.0
    """
    from pyspark.sql import functions as F

    func = "whitespace"
    columns: dict[str, tuple[str, str]] = {
        "account_col": (account_col, "any"),
        "product_col": (product_col, "any"),
        "value_col": (value_col, "numeric"),
    }
    if segment_col is not None:
        columns["segment_col"] = (segment_col, "any")
    require_columns(df, func, **columns)  # type: ignore[arg-type]
    names = {account_col, product_col, value_col} | ({segment_col} if segment_col else set())
    if len(names) != 3 + (segment_col is not None):
        raise SchemaError(f"{func}(): the column arguments must name distinct columns")

    segment = F.col(segment_col) if segment_col is not None else F.lit(0)
    valid = df.where(
        F.col(account_col).isNotNull() & F.col(product_col).isNotNull() & _valid_amount(value_col)
    ).select(
        segment.alias(_SEGMENT),
        F.col(account_col).alias("_a"),
        F.col(product_col).alias("_p"),
        F.col(value_col).cast("double").alias("_v"),
    )
    spent = valid.groupBy(_SEGMENT, "_a", "_p").agg(F.sum("_v").alias("_r"))
    accounts = valid.select(_SEGMENT, "_a").distinct()
    n_accounts = accounts.groupBy(_SEGMENT).agg(F.count(F.lit(1)).alias("_n"))
    products = (
        spent.where(F.col("_r") > 0)
        .groupBy(_SEGMENT, "_p")
        .agg(F.count(F.lit(1)).alias("_buyers"), F.median("_r").alias("peer_revenue"))
        .join(n_accounts, _SEGMENT)
    )
    grid = accounts.join(products, _SEGMENT).join(spent, [_SEGMENT, "_a", "_p"], "left")
    revenue = F.coalesce(F.col("_r"), F.lit(0.0))
    out = grid.select(
        F.col(_SEGMENT),
        F.col("_a").alias(account_col),
        F.col("_p").alias(product_col),
        revenue.alias("revenue"),
        (revenue > 0).alias("bought"),
        (F.col("_buyers") / F.col("_n")).alias("penetration"),
        F.col("peer_revenue"),
        F.greatest(F.col("peer_revenue") - revenue, F.lit(0.0)).alias("headroom"),
    )
    if segment_col is None:
        return out.drop(_SEGMENT)
    return out.withColumnRenamed(_SEGMENT, segment_col)


@any_column_name("next_products")
def next_products(
    df: DataFrame,
    *,
    account_col: str = "account_id",
    product_col: str = "product",
    k: int = 3,
    min_support: float = 0.01,
    min_confidence: float = 0.1,
) -> DataFrame:
    r"""Recommend products an account has not bought, from association rules (FPGrowth).

    Each account's basket :math:`B_a` is the set of distinct non-null products in its rows.
    Spark ML :class:`pyspark.ml.fpm.FPGrowth` mines the rules :math:`X \Rightarrow y` with
    support :math:`\ge` ``min_support`` and confidence
    :math:`P(y \mid X) = \operatorname{supp}(X \cup y) / \operatorname{supp}(X)
    \ge` ``min_confidence``; lift :math:`= \text{confidence} / \operatorname{supp}(y)`.

    Aggregation: for each account and candidate :math:`y \notin B_a`, the rules that apply are
    those with :math:`X \subseteq B_a`; the best of them (highest confidence, then highest
    lift) gives the candidate's ``confidence`` and ``lift``. Candidates are ranked by
    confidence desc, lift desc, product asc; the first ``k`` are kept (``rank`` = 1..k).
    Accounts without an applicable rule have no rows. Fitting runs Spark jobs (the FPGrowth
    fit, then one collect of the rules, which a broadcast join would bring to the driver
    anyway); the recommendation itself is lazy: the rules become bit masks over the items
    they mention, so "antecedent in basket" is a few integer operations per (account, rule)
    pair. Works on Spark Connect.

    Parameters
    ----------
    df : pyspark.sql.DataFrame
        Rows of (account, product), e.g. transactions; amounts are not read.
    account_col, product_col : str
        Column names; products must be a string or numeric column.
    k : int
        Maximum recommendations per account (>= 1).
    min_support, min_confidence : float
        FPGrowth thresholds in (0, 1] and [0, 1].

    Returns
    -------
    pyspark.sql.DataFrame
        ``account_col, rank, recommended_product, confidence, lift``.

    References
    ----------
    Agrawal, Imielinski & Swami (1993), *Mining association rules between sets of items in
    large databases*, SIGMOD; Han, Pei & Yin (2000), *Mining frequent patterns without
    candidate generation* (FP-growth), SIGMOD.

    Examples
    --------
    >>> df = spark.createDataFrame(
    ...     [("a", "x"), ("a", "y"), ("b", "x"), ("b", "y"), ("c", "x")],
    ...     "account_id string, product string")
    >>> r = next_products(df, min_support=0.3).collect()
    >>> [(x.account_id, x.rank, x.recommended_product, round(x.confidence, 3)) for x in r]
    [('c', 1, 'y', 0.667)]
    """
    from pyspark.ml.fpm import FPGrowth
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    func = "next_products"
    require_columns(df, func, account_col=(account_col, "any"), product_col=(product_col, "any"))
    if account_col == product_col:
        raise SchemaError(f"{func}(): account_col= and product_col= must differ")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise SchemaError(f"{func}(): k= must be an integer >= 1, found {k!r}")
    support = check_fraction(func, "min_support", min_support)
    confidence = check_fraction(func, "min_confidence", min_confidence, low_inclusive=True)

    pairs = df.where(F.col(account_col).isNotNull() & F.col(product_col).isNotNull()).select(
        F.col(account_col).alias("_a"), F.col(product_col).alias("_i")
    )
    baskets = pairs.groupBy("_a").agg(F.array_distinct(F.collect_list("_i")).alias("_items"))
    model = FPGrowth(itemsCol="_items", minSupport=support, minConfidence=confidence).fit(baskets)
    index, rules, words = _masked_rules(pairs, model.associationRules)
    masks = pairs.join(F.broadcast(index), "_i").groupBy("_a").agg(*_mask_aggs(words))
    applies = [
        (F.col(f"_x{w}").bitwiseAND(F.bitwise_not(F.col(f"_b{w}"))) == 0)
        & (F.col(f"_y{w}").bitwiseAND(F.col(f"_b{w}")) == 0)
        for w in range(words)
    ]
    best = (
        masks.join(F.broadcast(rules), reduce(operator.and_, applies))
        .groupBy("_a", "_y")
        .agg(F.max(F.struct("confidence", "_lift_key", "lift")).alias("_best"))
    )
    ranked = Window.partitionBy("_a").orderBy(
        F.col("_best.confidence").desc(), F.col("_best._lift_key").desc(), F.col("_y").asc()
    )
    return (
        best.withColumn("rank", F.row_number().over(ranked))
        .where(F.col("rank") <= k)
        .select(
            F.col("_a").alias(account_col),
            F.col("rank").cast("int").alias("rank"),
            F.col("_y").alias("recommended_product"),
            F.col("_best.confidence").alias("confidence"),
            F.col("_best.lift").alias("lift"),
        )
    )


#: Bits used per mask word (a signed 64-bit long; the sign bit stays free).
_BITS = 63


def _masked_rules(
    pairs: DataFrame, association_rules: DataFrame
) -> tuple[DataFrame, DataFrame, int]:
    """The rules as bit masks over the items they mention, built from one collect.

    Returns the item index (``_i``, mask word ``_w``, bit ``_bit``), the rules (antecedent
    masks ``_x*``, consequent masks ``_y*``, consequent ``_y``, ``confidence``, ``lift`` and
    ``_lift_key``, the lift with nulls ordered last) and the number of mask words. Only
    items of some rule matter: a basket's other items can neither satisfy an antecedent nor
    be recommended. The rules reach the driver once, as a broadcast join would take them.
    """
    from pyspark.sql import types as T

    collected = association_rules.select("antecedent", "consequent", "confidence", "lift").collect()
    items = sorted({i for r in collected for i in [*r["antecedent"], *r["consequent"]]})
    # item -> (mask word, bit value): item n is bit n % 63 of word n // 63
    slot = {item: (n // _BITS, 1 << (n % _BITS)) for n, item in enumerate(items)}
    words = max(1, -(-len(items) // _BITS))

    def mask(values: list[Any]) -> list[int]:
        out = [0] * words
        for value in values:
            word, bit = slot[value]
            out[word] |= bit
        return out

    item_type = pairs.schema["_i"].dataType
    rules_schema = T.StructType(
        [
            *[T.StructField(f"_{p}{w}", T.LongType()) for p in "xy" for w in range(words)],
            T.StructField("_y", item_type),
            T.StructField("confidence", T.DoubleType()),
            T.StructField("lift", T.DoubleType()),
            T.StructField("_lift_key", T.DoubleType()),
        ]
    )
    rules = [
        (
            *mask(list(r["antecedent"])),
            *mask([r["consequent"][0]]),
            r["consequent"][0],
            float(r["confidence"]),
            None if r["lift"] is None else float(r["lift"]),
            float("-inf") if r["lift"] is None else float(r["lift"]),
        )
        for r in collected
    ]
    index_schema = T.StructType(
        [
            T.StructField("_i", item_type),
            T.StructField("_w", T.IntegerType()),
            T.StructField("_bit", T.LongType()),
        ]
    )
    spark = pairs.sparkSession
    return (
        spark.createDataFrame([(item, *slot[item]) for item in items], index_schema),
        spark.createDataFrame(rules, rules_schema),
        words,
    )


def _mask_aggs(words: int) -> list[Column]:
    """``bit_or`` of the basket's item bits per mask word, as columns ``_b0 .. _b{words-1}``."""
    from pyspark.sql import functions as F

    zero = F.lit(0).cast("long")
    return [
        F.bit_or(F.when(F.col("_w") == w, F.col("_bit")).otherwise(zero)).alias(f"_b{w}")
        for w in range(words)
    ]
