"""Pure-Python references for kamlib.classify, written from the formulas in API.md.

Inputs are lists of row dicts for ONE group; outputs are keyed by account id.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any


def key_k(n: int, top_share: float) -> int:
    """Smallest integer >= top_share * n (1e-9 tolerance), at least 1."""
    return max(math.ceil(top_share * n - 1e-9), 1)


def account_values(
    rows: Iterable[Mapping[str, Any]], account_col: str = "account_id", value_col: str = "amount"
) -> dict[Any, tuple[float | None, int]]:
    """Account -> (sum of non-null values or None if all null, count of null values)."""
    sums: dict[Any, float | None] = {}
    nulls: dict[Any, int] = {}
    for row in rows:
        acct, value = row[account_col], row[value_col]
        sums.setdefault(acct, None)
        nulls.setdefault(acct, 0)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            nulls[acct] += 1
        else:
            sums[acct] = (sums[acct] or 0.0) + value
    return {a: (sums[a], nulls[a]) for a in sums}


def classify(
    rows: Iterable[Mapping[str, Any]],
    *,
    top_share: float = 0.2,
    thresholds: Sequence[float] = (0.8, 0.95),
) -> dict[Any, dict[str, Any]]:
    """Reference classify_accounts for one group."""
    values = account_values(rows)
    valued = sorted((a for a in values if values[a][0] is not None), key=lambda a: a)
    valued.sort(key=lambda a: -values[a][0])  # stable: ties stay by account id ascending
    unvalued = sorted(a for a in values if values[a][0] is None)
    order = valued + unvalued
    n = len(valued)
    total_pos = sum(max(values[a][0], 0.0) for a in valued)
    k = key_k(n, top_share) if n else 0
    out: dict[Any, dict[str, Any]] = {}
    # Cumulative shares as (sum of positive values so far) / total: exact with whole amounts.
    pos_so_far = 0.0
    for rank, acct in enumerate(order, start=1):
        value, nulls = values[acct]
        if value is None or total_pos == 0:
            share = cumulative = before = None
        else:
            share = max(value, 0.0) / total_pos
            before = pos_so_far / total_pos
            cumulative = (pos_so_far + max(value, 0.0)) / total_pos
        if value is None or value <= 0 or before is None:
            tier = "C"
        elif before < thresholds[0]:
            tier = "A"
        elif before < thresholds[1]:
            tier = "B"
        else:
            tier = "C"
        if value is not None:
            pos_so_far += max(value, 0.0)
        out[acct] = {
            "value": value,
            "value_rank": rank,
            "value_share": share,
            "cumulative_share": cumulative,
            "abc_tier": tier,
            "is_key_account": value is not None and rank <= k,
            "null_values": nulls,
        }
    return out


def gini(xs: Sequence[float]) -> float | None:
    """Mean absolute difference definition: sum_ij |xi - xj| / (2 n^2 mean); None if sum 0."""
    n = len(xs)
    total = sum(xs)
    if n == 0 or total <= 0:
        return None
    mad = sum(abs(a - b) for a in xs for b in xs)
    return mad / (2.0 * n * total)


def concentration(rows: Iterable[Mapping[str, Any]], *, top_share: float = 0.2) -> dict[str, Any]:
    """Reference concentration for one group."""
    values = account_values(rows)
    vals = {a: v for a, (v, _) in values.items() if v is not None}
    n = len(vals)
    pos = {a: max(v, 0.0) for a, v in vals.items()}
    total_pos = sum(pos.values())
    if n == 0 or total_pos == 0:
        hhi = top = g = None
    else:
        hhi = sum((100.0 * p / total_pos) ** 2 for p in pos.values())
        order = sorted(vals, key=lambda a: (-vals[a], a))
        top = sum(pos[a] for a in order[: key_k(n, top_share)]) / total_pos
        g = gini(list(pos.values()))
    return {
        "n_accounts": n,
        "total_value": sum(vals.values()) if n else None,
        "hhi": hhi,
        "top_share_value": top,
        "gini": g,
        "null_accounts": len(values) - n,
    }


def percent_ranks(values: Sequence[float | None], *, lower_is_better: bool = False) -> list[Any]:
    """(rank - 1) / (m - 1) among the m non-null values (min-tie rank); 0 if m == 1."""
    present = [v for v in values if v is not None and not math.isnan(v)]
    m = len(present)
    out: list[float | None] = []
    for v in values:
        if v is None or math.isnan(v):
            out.append(None)
            continue
        better = sum(1 for u in present if (u > v if lower_is_better else u < v))
        out.append(0.0 if m == 1 else better / (m - 1))
    return out


def weighted_score(
    rows: Sequence[Mapping[str, Any]],
    weights: Mapping[str, float],
    lower_is_better: Iterable[str] = (),
) -> list[float | None]:
    """100 * sum(w * pr) / sum(w) over the non-null criteria of each row."""
    lower = set(lower_is_better)
    ranks = {c: percent_ranks([r[c] for r in rows], lower_is_better=c in lower) for c in weights}
    scores: list[float | None] = []
    for i in range(len(rows)):
        num = den = 0.0
        for c, w in weights.items():
            pr = ranks[c][i]
            if pr is not None:
                num += w * pr
                den += w
        scores.append(100.0 * num / den if den > 0 else None)
    return scores


def key_account_score(
    rows: Sequence[Mapping[str, Any]],
    *,
    criteria: Mapping[str, float],
    top_share: float = 0.2,
    lower_is_better: Iterable[str] = (),
) -> dict[Any, dict[str, Any]]:
    """Reference key_account_score for one group (one row per account)."""
    scores = weighted_score(rows, criteria, lower_is_better)
    scored = [(s, r["account_id"]) for s, r in zip(scores, rows, strict=False) if s is not None]
    scored.sort(key=lambda t: (-t[0], t[1]))
    k = key_k(len(scored), top_share) if scored else 0
    keys = {a for _, a in scored[:k]}
    return {
        r["account_id"]: {"kam_score": s, "is_key_account": r["account_id"] in keys}
        for s, r in zip(scores, rows, strict=False)
    }
