"""Account hierarchies: ultimate parents and roll-up of any family to the parent account.

- :func:`ultimate_parents`: one row per account with its ``ultimate_parent_id`` (pointer
  jumping: about log2(depth) joins; cycles and self-loops raise :class:`~kamlib.SchemaError`).
- :func:`roll_up`: replace the account column of any DataFrame (transactions, contracts,
  surveys, ...) by the ultimate parent, so every kamlib family runs on the parent accounts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kamlib._validation import any_column_name, require_columns
from kamlib.errors import SchemaError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

__all__ = ["roll_up", "ultimate_parents"]


@any_column_name("ultimate_parents")
def ultimate_parents(
    hierarchy: DataFrame, *, account_col: str = "account_id", parent_col: str = "parent_id"
) -> DataFrame:
    r"""The ultimate parent (top of the parent chain) of every account.

    Following :math:`a \to \text{parent}(a) \to \ldots` until an account without a parent:
    that account is the ultimate parent (an account with a null parent is its own ultimate
    parent). A parent id that does not appear as an account is treated as a root.

    Parameters
    ----------
    hierarchy : pyspark.sql.DataFrame
        One row per account with its direct parent (null for roots).
    account_col, parent_col : str
        Account id and parent id columns (same type).

    Returns
    -------
    pyspark.sql.DataFrame
        One row per account: ``account_col``, ``ultimate_parent_id``, ``depth`` (number of
        parent links to the ultimate parent; 0 for roots).

    Raises
    ------
    SchemaError
        Missing columns; an account listed twice with different parents; a self-loop or a
        cycle (the message names an account on the cycle).

    Notes
    -----
    This function is **eager**: it runs Spark jobs when called (unlike the other
    transformations of kamlib). Pointer jumping replaces every account's pointer by its
    pointer's pointer, so the chains resolve in about :math:`\log_2(\text{depth})`
    iterations; each iteration is one join, is checkpointed (``localCheckpoint``, which keeps
    the plan small) and runs one count of the unresolved accounts, the explicit action that
    detects cycles (unresolved accounts that stop decreasing). Only counts and, on a cycle,
    one account id come back to the driver. Rows with a null account are ignored.

    Examples
    --------
    >>> from kamlib.hierarchy import ultimate_parents
    >>> h = spark.createDataFrame(
    ...     [("hq", None), ("eu", "hq"), ("de", "eu"), ("solo", None)],
    ...     "account_id string, parent_id string")
    >>> for r in ultimate_parents(h).orderBy("account_id").collect():
    ...     print(r.account_id, r.ultimate_parent_id, r.depth)
    de hq 2
    eu hq 1
    hq hq 0
    solo solo 0
    """
    from pyspark.sql import functions as F

    func = "ultimate_parents"
    require_columns(
        hierarchy, func, account_col=(account_col, "any"), parent_col=(parent_col, "any")
    )
    if account_col == parent_col:
        raise SchemaError(f"{func}(): account_col and parent_col must differ, both {account_col!r}")
    state = _resolve_pointers(
        _initial_pointers(_checked_edges(hierarchy, account_col, parent_col)), parent_col
    )
    return state.select(
        F.col("a").alias(account_col),
        F.col("ptr").alias("ultimate_parent_id"),
        F.col("d").cast("int").alias("depth"),
    )


def _checked_edges(hierarchy: DataFrame, account_col: str, parent_col: str) -> DataFrame:
    """Distinct (account ``a``, parent ``p``) edges; one parent per account, no self-loop."""
    from pyspark.sql import functions as F

    func = "ultimate_parents"
    edges = (
        hierarchy.select(F.col(account_col).alias("a"), F.col(parent_col).alias("p"))
        .filter(F.col("a").isNotNull())
        .distinct()
    )
    dup = edges.groupBy("a").count().filter(F.col("count") > 1).limit(1).collect()
    if dup:
        raise SchemaError(
            f"{func}(): account {dup[0]['a']!r} is listed with more than one parent in "
            f"column {parent_col!r}"
        )
    selfloop = edges.filter(F.col("a") == F.col("p")).limit(1).collect()
    if selfloop:
        raise SchemaError(
            f"{func}(): account {selfloop[0]['a']!r} is its own parent in column "
            f"{parent_col!r} (a self-loop)"
        )
    return edges


def _initial_pointers(edges: DataFrame) -> DataFrame:
    """``ptr`` = current ancestor (pointer), ``d`` = links walked, ``done`` = ``ptr`` is a root."""
    from pyspark.sql import functions as F

    known = edges.select(F.col("a").alias("k"))
    return (
        edges.join(known, F.col("p") == F.col("k"), "left")
        .select(
            "a",
            F.coalesce(F.col("p"), F.col("a")).alias("ptr"),
            F.when(F.col("p").isNull(), F.lit(0)).otherwise(F.lit(1)).alias("d"),
            (F.col("p").isNull() | F.col("k").isNull()).alias("done"),
        )
        .localCheckpoint()
    )


def _jump(state: DataFrame) -> DataFrame:
    """One pointer-jumping step: every unresolved pointer becomes its pointer's pointer."""
    from pyspark.sql import functions as F

    nxt = state.select(
        F.col("a").alias("n_a"),
        F.col("ptr").alias("n_ptr"),
        F.col("d").alias("n_d"),
        F.col("done").alias("n_done"),
    )
    return (
        state.join(nxt, F.col("ptr") == F.col("n_a"), "left")
        .select(
            "a",
            F.when(F.col("done"), F.col("ptr")).otherwise(F.col("n_ptr")).alias("ptr"),
            F.when(F.col("done"), F.col("d")).otherwise(F.col("d") + F.col("n_d")).alias("d"),
            (F.col("done") | F.coalesce(F.col("n_done"), F.lit(False))).alias("done"),
        )
        .localCheckpoint()
    )


def _resolve_pointers(state: DataFrame, parent_col: str) -> DataFrame:
    """Jump until every pointer is a root; a cycle (unresolved count stalls) is a SchemaError."""
    from pyspark.sql import functions as F

    remaining = state.filter(~F.col("done")).count()
    jumps_after_stall = 0
    stalled_at = 0
    while remaining > 0:
        state = _jump(state)
        if stalled_at:
            # Cyclic part: jump until 2**jumps >= unresolved accounts, so every pointer sits
            # on a cycle (tails are shorter than the number of unresolved accounts).
            jumps_after_stall += 1
            if 2**jumps_after_stall >= stalled_at:
                on_cycle = state.filter(~F.col("done")).select("ptr").limit(1).collect()
                raise SchemaError(
                    f"ultimate_parents(): column {parent_col!r} has a cycle through account "
                    f"{on_cycle[0]['ptr']!r}"
                )
            continue
        now = state.filter(~F.col("done")).count()
        if now == remaining:
            stalled_at = now
        remaining = now
    return state


@any_column_name("roll_up")
def roll_up(
    df: DataFrame,
    hierarchy: DataFrame,
    *,
    account_col: str = "account_id",
    parent_col: str = "parent_id",
    original_col: str | None = None,
) -> DataFrame:
    """Replace ``account_col`` by the account's ultimate parent (accounts without one stay).

    Then every family (``classify_accounts``, ``retention_rates``, ``contract_mrr``, ...) runs
    on the parent accounts: ``roll_up(tx, h).transform(classify_accounts)``.

    Parameters
    ----------
    df : pyspark.sql.DataFrame
        Any DataFrame with an account column.
    hierarchy : pyspark.sql.DataFrame
        As in :func:`ultimate_parents` (or its output, with ``ultimate_parent_id``).
    account_col, parent_col : str
        Account column (of both frames) and the hierarchy's parent column.
    original_col : str, optional
        Keep the original account id under this name.

    Returns
    -------
    pyspark.sql.DataFrame
        ``df`` with ``account_col`` replaced (a broadcast-free left join on the account).

    Notes
    -----
    Eager when ``hierarchy`` is not already :func:`ultimate_parents` output (it calls it).

    Examples
    --------
    >>> from kamlib.hierarchy import roll_up
    >>> h = spark.createDataFrame(
    ...     [("eu", "hq"), ("hq", None)], "account_id string, parent_id string")
    >>> tx = spark.createDataFrame([("eu", 5.0), ("x", 1.0)], "account_id string, amount double")
    >>> sorted(tuple(r) for r in roll_up(tx, h).collect())
    [('hq', 5.0), ('x', 1.0)]
    """
    from pyspark.sql import functions as F

    require_columns(df, "roll_up", account_col=(account_col, "any"))
    if "ultimate_parent_id" in hierarchy.columns:
        parents = hierarchy
    else:
        parents = ultimate_parents(hierarchy, account_col=account_col, parent_col=parent_col)
    mapping = parents.select(
        F.col(account_col).alias("__kamlib_acc"), F.col("ultimate_parent_id").alias("__kamlib_up")
    )
    joined = df.join(mapping, F.col(account_col) == F.col("__kamlib_acc"), "left")
    out = []
    for c in df.columns:
        if c == account_col:
            if original_col:
                out.append(F.col(account_col).alias(original_col))
            out.append(F.coalesce(F.col("__kamlib_up"), F.col(account_col)).alias(account_col))
        else:
            out.append(F.col(c))
    return joined.select(*out)
