"""Plain-Python reference for kamlib.recurring and kamlib.hierarchy, from API.md v0.2.

Deliberately naive: day-by-day "active on the month's last day" checks, a dense month grid,
explicit loops; the bridge is computed from the movements' own definitions, not from
kamlib.retention.
"""

from __future__ import annotations

import calendar
import datetime as dt
import math
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from tests.reference.retention import period_index, period_start


def _month_last_day(index: int) -> dt.date:
    y, m = index // 12, index % 12 + 1
    return dt.date(y, m, calendar.monthrange(y, m)[1])


def _valid_contract(r: dict[str, Any], product_col: str | None) -> bool:
    a, s, e, amt, iv = (
        r.get(k) for k in ("account_id", "start_date", "end_date", "amount", "interval_months")
    )
    if a is None or s is None or amt is None or iv is None:
        return False
    if product_col and r.get(product_col) is None:
        return False
    if e is not None and e < s:
        return False
    if not math.isfinite(float(amt)) or float(amt) < 0:
        return False
    return float(iv) > 0 and float(iv) == int(float(iv))


def contract_mrr(
    rows: Iterable[dict[str, Any]],
    *,
    product_col: str | None = None,
    observation_end: dt.date | None = None,
    by: str | None = None,
) -> list[dict[str, Any]]:
    groups: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    excluded: dict[Any, int] = defaultdict(int)
    seen: set[tuple[Any, ...]] = set()
    cols = ["account_id", "start_date", "end_date", "amount", "interval_months"]
    if product_col:
        cols.append(product_col)
    for r in rows:
        g = r[by] if by else None
        key = (g, *(r.get(c) for c in cols))
        if not _valid_contract(r, product_col):
            excluded[g] += 1
            continue
        if key in seen:
            excluded[g] += 1
            continue
        seen.add(key)
        groups[g].append(r)
    out: list[dict[str, Any]] = []
    for g, grows in groups.items():
        end = observation_end or max(
            max(r["start_date"], r["end_date"] or r["start_date"]) for r in grows
        )
        first = min(period_index(r["start_date"], "month") for r in grows)
        last = period_index(end, "month")
        mrr: dict[tuple[Any, ...], float] = defaultdict(float)
        for m in range(first, last + 1):
            day = _month_last_day(m)
            for r in grows:
                active = r["start_date"] <= day and (r["end_date"] is None or r["end_date"] > day)
                if active:
                    k = (r["account_id"], r[product_col] if product_col else None, m)
                    mrr[k] += float(r["amount"]) / float(r["interval_months"])
        for (a, p, m), v in mrr.items():
            if v > 0:
                row = {
                    "account_id": a,
                    "month": period_start(m, "month"),
                    "mrr": v,
                    "excluded_rows": excluded[g],
                }
                if by:
                    row[by] = g
                if product_col:
                    row[product_col] = p
                out.append(row)
    return out


def mrr_movements(rows: Iterable[dict[str, Any]], *, by: str | None = None) -> list[dict[str, Any]]:
    groups: dict[Any, dict[tuple[Any, int], float]] = defaultdict(lambda: defaultdict(float))
    for r in rows:
        if r["account_id"] is None or r["month"] is None or r["mrr"] is None:
            continue
        g = r[by] if by else None
        groups[g][(r["account_id"], period_index(r["month"], "month"))] += float(r["mrr"])
    out = []
    for g, raw in groups.items():
        first = min(m for _, m in raw)
        last = max(m for _, m in raw)
        accounts = sorted({a for a, _ in raw})

        def val(a: Any, m: int, raw: dict[tuple[Any, int], float] = raw) -> float:
            return max(raw.get((a, m), 0.0), 0.0)

        for a in accounts:
            for m in range(first + 1, last + 1):
                prev, cur = val(a, m - 1), val(a, m)
                if prev <= 0 and cur <= 0:
                    continue
                if prev == 0:
                    ever = any(val(a, q) > 0 for q in range(first, m))
                    mv = "reactivated" if ever else "new"
                elif cur == 0:
                    mv = "churned"
                else:
                    mv = "expansion" if cur > prev else "contraction" if cur < prev else "flat"
                row = {
                    "account_id": a,
                    "month": period_start(m, "month"),
                    "previous_mrr": prev,
                    "mrr": cur,
                    "delta": cur - prev,
                    "movement": mv,
                }
                if by:
                    row[by] = g
                out.append(row)
    return out


def mrr_bridge(rows: list[dict[str, Any]], *, by: str | None = None) -> list[dict[str, Any]]:
    valid = [
        r
        for r in rows
        if r["account_id"] is not None and r["month"] is not None and r["mrr"] is not None
    ]
    excluded: dict[Any, int] = defaultdict(int)
    for r in rows:
        if r not in valid:
            excluded[r[by] if by else None] += 1
    grid: dict[Any, tuple[int, int]] = {}
    for r in valid:
        g = r[by] if by else None
        m = period_index(r["month"], "month")
        lo, hi = grid.get(g, (m, m))
        grid[g] = (min(lo, m), max(hi, m))
    moves = mrr_movements(valid, by=by)
    out = []
    for g, (lo, hi) in grid.items():
        for m in range(lo + 1, hi + 1):
            month = period_start(m, "month")
            mv = [x for x in moves if (x[by] if by else None) == g and x["month"] == month]

            def tot(kind: str, f: Any, mv: list[dict[str, Any]] = mv) -> float:
                return sum(f(x) for x in mv if x["movement"] == kind)

            start = sum(x["previous_mrr"] for x in mv)
            new = tot("new", lambda x: x["mrr"])
            rea = tot("reactivated", lambda x: x["mrr"])
            exp = tot("expansion", lambda x: x["mrr"] - x["previous_mrr"])
            con = tot("contraction", lambda x: x["previous_mrr"] - x["mrr"])
            chu = tot("churned", lambda x: x["previous_mrr"])
            end = sum(x["mrr"] for x in mv)
            paying = sum(1 for x in mv if x["mrr"] > 0)
            row = {
                "month": month,
                "starting_mrr": start,
                "new_mrr": new,
                "reactivation_mrr": rea,
                "expansion_mrr": exp,
                "contraction_mrr": con,
                "churned_mrr": chu,
                "ending_mrr": end,
                "grr": (start - con - chu) / start if start > 0 else None,
                "nrr": (start + exp - con - chu) / start if start > 0 else None,
                "quick_ratio": (new + rea + exp) / (con + chu) if con + chu > 0 else None,
                "arr": 12 * end,
                "paying_accounts": paying,
                "arpa": end / paying if paying else None,
                "excluded_rows": excluded[g],
            }
            if by:
                row[by] = g
            out.append(row)
    return out


def cohort_retention(
    rows: Iterable[dict[str, Any]],
    *,
    date_col: str = "order_date",
    value_col: str = "amount",
    period: str = "month",
    by: str | None = None,
) -> list[dict[str, Any]]:
    groups: dict[Any, dict[tuple[Any, int], float]] = defaultdict(lambda: defaultdict(float))
    last: dict[Any, int] = {}
    excluded: dict[Any, int] = defaultdict(int)
    for r in rows:
        g = r[by] if by else None
        if r["account_id"] is None or r[date_col] is None or r[value_col] is None:
            excluded[g] += 1
            continue
        p = period_index(r[date_col], period)
        groups[g][(r["account_id"], p)] += float(r[value_col])
        last[g] = max(last.get(g, p), p)
    out = []
    for g, raw in groups.items():
        val = {k: max(v, 0.0) for k, v in raw.items()}
        cohort: dict[Any, int] = {}
        for (a, p), v in val.items():
            if v > 0:
                cohort[a] = min(cohort.get(a, p), p)
        for c in sorted(set(cohort.values())):
            members = [a for a, ca in cohort.items() if ca == c]
            r0 = sum(val.get((a, c), 0.0) for a in members)
            for k in range(0, last[g] - c + 1):
                act = sum(1 for a in members if val.get((a, c + k), 0.0) > 0)
                rev = sum(val.get((a, c + k), 0.0) for a in members)
                row = {
                    "cohort": period_start(c, period),
                    "period_number": k,
                    "cohort_accounts": len(members),
                    "active_accounts": act,
                    "revenue": rev,
                    "logo_retention": act / len(members),
                    "revenue_retention": rev / r0,
                    "excluded_rows": excluded[g],
                }
                if by:
                    row[by] = g
                out.append(row)
    return out


def ultimate_parents(edges: dict[Any, Any]) -> dict[Any, Any]:
    """{account: parent or None} -> {account: ultimate parent}; raises ValueError on a cycle."""
    out = {}
    for a in edges:
        seen = {a}
        cur = a
        while edges.get(cur) is not None:
            cur = edges[cur]
            if cur in seen:
                raise ValueError(f"cycle through {cur!r}")
            seen.add(cur)
        out[a] = cur
    return out
