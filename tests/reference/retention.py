"""Plain-Python reference for kamlib.retention, written from the definitions in API.md.

Deliberately naive: a dense period grid, explicit loops, no windows.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from typing import Any


def period_index(day: dt.date | dt.datetime, period: str) -> int:
    if isinstance(day, dt.datetime):
        day = day.date()
    if period == "year":
        return day.year
    if period == "quarter":
        return day.year * 4 + (day.month - 1) // 3
    return day.year * 12 + day.month - 1


def period_start(index: int, period: str) -> dt.date:
    if period == "year":
        return dt.date(index, 1, 1)
    if period == "quarter":
        return dt.date(index // 4, (index % 4) * 3 + 1, 1)
    return dt.date(index // 12, index % 12 + 1, 1)


def _valid(row: dict[str, Any], account_col: str, date_col: str, value_col: str) -> bool:
    return row[account_col] is not None and row[date_col] is not None and row[value_col] is not None


def revenue_bridge(
    rows: Iterable[dict[str, Any]],
    *,
    account_col: str = "account_id",
    date_col: str = "order_date",
    value_col: str = "amount",
    period: str = "month",
    product_col: str | None = None,
    by: str | None = None,
) -> list[dict[str, Any]]:
    """Bridge rows as dicts (with ``period`` as a date); ``by`` is a single column or None."""
    groups: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if _valid(row, account_col, date_col, value_col):
            groups[row[by] if by else None].append(row)
    out: list[dict[str, Any]] = []
    for group, grows in groups.items():
        idx = [period_index(r[date_col], period) for r in grows]
        first, last = min(idx), max(idx)
        raw: dict[tuple[Any, int], float] = defaultdict(float)
        prod_raw: dict[tuple[Any, Any, int], float] = defaultdict(float)
        for r, p in zip(grows, idx, strict=True):
            raw[(r[account_col], p)] += float(r[value_col])
            if product_col:
                prod_raw[(r[account_col], r[product_col], p)] += float(r[value_col])
        accounts = sorted({r[account_col] for r in grows})

        def rev(a: Any, p: int, raw: dict[tuple[Any, int], float] = raw) -> float:
            return max(raw.get((a, p), 0.0), 0.0)

        for a in accounts:
            for p in range(first + 1, last + 1):
                prev, cur = rev(a, p - 1), rev(a, p)
                if not (prev > 0 or cur > 0):
                    continue
                earlier = any(rev(a, q) > 0 for q in range(first, p))
                if prev == 0 and not earlier:
                    movement = "new"
                elif prev == 0:
                    movement = "reactivated"
                elif cur == 0:
                    movement = "churned"
                elif cur > prev:
                    movement = "expansion"
                elif cur < prev:
                    movement = "contraction"
                else:
                    movement = "flat"
                row = {
                    account_col: a,
                    "period": period_start(p, period),
                    "previous_revenue": prev,
                    "revenue": cur,
                    "movement": movement,
                }
                if by:
                    row[by] = group
                if product_col:
                    cross = 0.0
                    products = {k[1] for k in prod_raw if k[0] == a}
                    for prod in products:
                        now = max(prod_raw.get((a, prod, p), 0.0), 0.0)
                        before = any(
                            max(prod_raw.get((a, prod, q), 0.0), 0.0) > 0 for q in range(first, p)
                        )
                        if now > 0 and not before:
                            cross += now
                    row["cross_sell_revenue"] = cross
                    row["upsell_revenue"] = (
                        max(cur - prev - cross, 0.0) if movement == "expansion" else 0.0
                    )
                out.append(row)
    return out


def retention_rates(
    rows: Iterable[dict[str, Any]],
    *,
    account_col: str = "account_id",
    date_col: str = "order_date",
    value_col: str = "amount",
    period: str = "month",
    product_col: str | None = None,
    by: str | None = None,
) -> list[dict[str, Any]]:
    rows = list(rows)
    bridge = revenue_bridge(
        rows,
        account_col=account_col,
        date_col=date_col,
        value_col=value_col,
        period=period,
        product_col=product_col,
        by=by,
    )
    excluded: dict[Any, int] = defaultdict(int)
    bounds: dict[Any, list[int]] = {}
    for r in rows:
        g = r[by] if by else None
        if _valid(r, account_col, date_col, value_col):
            p = period_index(r[date_col], period)
            lo, hi = bounds.get(g, [p, p])
            bounds[g] = [min(lo, p), max(hi, p)]
        else:
            excluded[g] += 1
    out = []
    for g, (first, last) in bounds.items():
        for p in range(first + 1, last + 1):
            day = period_start(p, period)
            rs = [b for b in bridge if b["period"] == day and (not by or b[by] == g)]
            start = sum(b["previous_revenue"] for b in rs)

            def tot(m: str, f: Any, rs: list[dict[str, Any]] = rs) -> float:
                return sum(f(b) for b in rs if b["movement"] == m)

            expansion = tot("expansion", lambda b: b["revenue"] - b["previous_revenue"])
            contraction = tot("contraction", lambda b: b["previous_revenue"] - b["revenue"])
            churned = tot("churned", lambda b: b["previous_revenue"])
            starting_accounts = sum(1 for b in rs if b["previous_revenue"] > 0)
            retained = sum(1 for b in rs if b["previous_revenue"] > 0 and b["revenue"] > 0)
            row: dict[str, Any] = {
                "period": day,
                "starting_revenue": start,
                "new_revenue": tot("new", lambda b: b["revenue"]),
                "reactivated_revenue": tot("reactivated", lambda b: b["revenue"]),
                "expansion_revenue": expansion,
                "contraction_revenue": contraction,
                "churned_revenue": churned,
                "ending_revenue": sum(b["revenue"] for b in rs),
                "grr": (start - contraction - churned) / start if start > 0 else None,
                "nrr": (start + expansion - contraction - churned) / start if start > 0 else None,
                "starting_accounts": starting_accounts,
                "retained_accounts": retained,
                "logo_retention": retained / starting_accounts if starting_accounts else None,
                "new_accounts": sum(1 for b in rs if b["movement"] == "new"),
                "reactivated_accounts": sum(1 for b in rs if b["movement"] == "reactivated"),
                "churned_accounts": sum(1 for b in rs if b["movement"] == "churned"),
                "excluded_rows": excluded[g],
            }
            if product_col:
                row["cross_sell_revenue"] = sum(b["cross_sell_revenue"] for b in rs)
                exp_cross = tot(
                    "expansion",
                    lambda b: min(b["cross_sell_revenue"], b["revenue"] - b["previous_revenue"]),
                )
                row["expansion_cross_sell_revenue"] = exp_cross
                row["upsell_revenue"] = expansion - exp_cross
            if by:
                row[by] = g
            out.append(row)
    return out
