"""Plain-Python reference for kamlib.profitability, written from the documented formulas."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any


def account_profitability(
    rows: Iterable[dict[str, Any]],
    *,
    account_col: str = "account_id",
    revenue_col: str = "revenue",
    cost_col: str = "cost",
    cost_to_serve_col: str | None = None,
    by: str | None = None,
) -> dict[tuple[Any, Any], dict[str, Any]]:
    """Return ``{(group, account): row}``; ``group`` is None without ``by``."""
    sums: dict[tuple[Any, Any], dict[str, Any]] = {}
    value_cols = [revenue_col, cost_col] + ([cost_to_serve_col] if cost_to_serve_col else [])
    for r in rows:
        key = (r[by] if by else None, r[account_col])
        acc = sums.setdefault(key, {"revenue": 0.0, "cost": 0.0, "cts": 0.0, "excluded": 0})
        if any(r[c] is None for c in value_cols):
            acc["excluded"] += 1
            continue
        acc["revenue"] += float(r[revenue_col])
        acc["cost"] += float(r[cost_col])
        if cost_to_serve_col:
            acc["cts"] += float(r[cost_to_serve_col])
    out: dict[tuple[Any, Any], dict[str, Any]] = {}
    groups: dict[Any, list[tuple[Any, Any]]] = defaultdict(list)
    for key, acc in sums.items():
        rev = acc["revenue"]
        gross = rev - acc["cost"]
        net = gross - acc["cts"]
        out[key] = {
            "revenue": rev,
            "cost": acc["cost"],
            "cost_to_serve": acc["cts"],
            "gross_profit": gross,
            "gross_margin": gross / rev if rev > 0 else None,
            "net_contribution": net,
            "net_margin": net / rev if rev > 0 else None,
            "excluded_rows": acc["excluded"],
        }
        groups[key[0]].append(key)
    for keys in groups.values():
        # rank: net contribution descending, account ascending (null accounts last)
        ranked = sorted(keys, key=lambda k: (-out[k]["net_contribution"], k[1] is None, k[1] or ""))
        total = sum(out[k]["net_contribution"] for k in keys)
        running = 0.0
        for i, k in enumerate(ranked, start=1):
            running += out[k]["net_contribution"]
            out[k]["profit_rank"] = i
            out[k]["cumulative_contribution_share"] = running / total if total > 0 else None
        with_margin = [k for k in keys if out[k]["net_margin"] is not None]
        n = len(with_margin)
        for k in keys:
            m = out[k]["net_margin"]
            if m is None:
                out[k]["margin_percentile"] = None
            else:
                below = sum(1 for j in with_margin if out[j]["net_margin"] < m)
                out[k]["margin_percentile"] = below / (n - 1) if n > 1 else 0.0
    return out
