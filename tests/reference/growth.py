"""Pure-Python references for kamlib.growth (written from the formulas in the docstrings)."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from itertools import combinations
from typing import Any


def _median(values: Sequence[float]) -> float:
    s = sorted(values)
    n = len(s)
    mid = n // 2
    return s[mid] if n % 2 else (s[mid - 1] + s[mid]) / 2


def _valid(v: Any) -> bool:
    return v is not None and math.isfinite(v) and v >= 0


def whitespace(
    rows: Sequence[Mapping[str, Any]], *, segment: str | None = None
) -> dict[tuple[Any, Any, Any], dict[str, Any]]:
    """(segment, account, product) -> revenue, bought, penetration, peer_revenue, headroom."""
    spent: dict[Any, dict[Any, dict[Any, float]]] = defaultdict(lambda: defaultdict(dict))
    for r in rows:
        if r["account_id"] is None or r["product"] is None or not _valid(r["amount"]):
            continue
        s = r[segment] if segment else None
        acct = spent[s][r["account_id"]]
        acct[r["product"]] = acct.get(r["product"], 0.0) + float(r["amount"])
    out: dict[tuple[Any, Any, Any], dict[str, Any]] = {}
    for s, accounts in spent.items():
        buyers: dict[Any, list[float]] = defaultdict(list)
        for products in accounts.values():
            for p, v in products.items():
                if v > 0:
                    buyers[p].append(v)
        for p, revs in buyers.items():
            peer = _median(revs)
            for a, products in accounts.items():
                rev = products.get(p, 0.0)
                out[(s, a, p)] = {
                    "revenue": rev,
                    "bought": rev > 0,
                    "penetration": len(revs) / len(accounts),
                    "peer_revenue": peer,
                    "headroom": max(peer - rev, 0.0),
                }
    return out


def next_products(
    baskets: Mapping[Any, Iterable[Any]], *, k: int, min_support: float, min_confidence: float
) -> dict[Any, list[tuple[Any, float, float]]]:
    """account -> [(product, confidence, lift)] by brute-force rule enumeration."""
    sets = {a: frozenset(b) for a, b in baskets.items()}
    n = len(sets)

    def supp(x: frozenset[Any]) -> float:
        return sum(1 for b in sets.values() if x <= b) / n

    # min_support > 0, so every frequent itemset lies inside some basket: enumerate those
    # subsets (not every combination of the item universe).
    candidates = {
        frozenset(c)
        for b in sets.values()
        for size in range(1, len(b) + 1)
        for c in combinations(sorted(b), size)
    }
    frequent = [c for c in candidates if supp(c) >= min_support]
    rules = []
    for itemset in frequent:
        if len(itemset) < 2:
            continue
        for y in itemset:
            x = itemset - {y}
            conf = supp(itemset) / supp(x)
            if conf >= min_confidence:
                rules.append((x, y, conf, conf / supp(frozenset([y]))))
    out: dict[Any, list[tuple[Any, float, float]]] = {}
    for a, b in sets.items():
        best: dict[Any, tuple[float, float]] = {}
        for x, y, conf, lift in rules:
            if x <= b and y not in b and (conf, lift) > best.get(y, (-1.0, -1.0)):
                best[y] = (conf, lift)
        ranked = sorted(best.items(), key=lambda t: (-t[1][0], -t[1][1], t[0]))[:k]
        if ranked:
            out[a] = [(y, c, lift) for y, (c, lift) in ranked]
    return out
