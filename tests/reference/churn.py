"""Plain-Python reference for kamlib.churn, written from the formulas (not from the Spark code).

Rows are dicts with ``account_id``, a date/datetime (or None) and an amount (or None).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any


def as_datetime(value: dt.date | dt.datetime) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value
    return dt.datetime(value.year, value.month, value.day)


def days_before(as_of: dt.datetime, t: dt.date | dt.datetime) -> int:
    """k = ceil((as_of - t) / 1 day); k >= 1 means t < as_of, k <= 0 means t >= as_of."""
    delta = as_of - as_datetime(t)
    whole = delta.days  # floor
    rest = delta - dt.timedelta(days=whole)
    return whole + (1 if rest > dt.timedelta(0) else 0)


def least_squares_slope(ys: list[float]) -> float | None:
    """Ordinary least-squares slope of ys[d] on d = 0..n-1 (None if n < 2)."""
    n = len(ys)
    if n < 2:
        return None
    mean_d = (n - 1) / 2
    mean_y = sum(ys) / n
    num = sum((d - mean_d) * (y - mean_y) for d, y in enumerate(ys))
    den = sum((d - mean_d) ** 2 for d in range(n))
    return num / den


def daily_series(pairs: list[tuple[int, float]], w: int) -> list[float]:
    """Daily sums y[d], d = 0 (oldest) .. w-1 (newest), from (k, amount) pairs, zero-filled."""
    ys = [0.0] * w
    for k, amount in pairs:
        if 1 <= k <= w:
            ys[w - k] += amount
    return ys


def churn_features(
    rows: list[dict[str, Any]],
    as_of: dt.datetime,
    windows: tuple[int, ...],
    *,
    date_col: str = "order_date",
    value_col: str = "amount",
) -> dict[str, dict[str, Any]]:
    by_account: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_account[row["account_id"]].append(row)
    result: dict[str, dict[str, Any]] = {}
    for account, items in by_account.items():
        undated = sum(1 for r in items if r[date_col] is None)
        dated = [
            (days_before(as_of, r[date_col]), r[value_col])
            for r in items
            if r[date_col] is not None
        ]
        past = [(k, v) for k, v in dated if k >= 1]
        if not past:
            continue
        valid = [(k, v) for k, v in past if v is not None]
        out: dict[str, Any] = {
            "recency_days": min(k for k, _ in valid) if valid else None,
            "tenure_days": max(k for k, _ in valid) if valid else None,
            "excluded_rows": undated + sum(1 for _, v in past if v is None),
        }
        for w in windows:
            ys = daily_series(valid, w)
            revenue = sum(v for k, v in valid if k <= w)
            earlier = sum(v for k, v in valid if w < k <= 2 * w)
            mean = sum(ys) / w
            out[f"n_orders_{w}d"] = sum(1 for k, v in valid if k <= w and v > 0)
            out[f"revenue_{w}d"] = float(revenue)
            out[f"revenue_trend_{w}d"] = None if earlier == 0 else revenue / earlier
            out[f"revenue_slope_{w}d"] = least_squares_slope(ys)
            out[f"spike_ratio_{w}d"] = None if mean == 0 else max(ys) / mean
        result[account] = out
    return result


def usage_features(
    rows: list[dict[str, Any]],
    as_of: dt.datetime,
    windows: tuple[int, ...],
    tolerance: float,
    *,
    date_col: str = "event_date",
    metric_col: str = "usage",
) -> dict[str, dict[str, Any]]:
    by_account: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_account[row["account_id"]].append(row)
    result: dict[str, dict[str, Any]] = {}
    for account, items in by_account.items():
        undated = sum(1 for r in items if r[date_col] is None)
        dated = [
            (days_before(as_of, r[date_col]), r[metric_col])
            for r in items
            if r[date_col] is not None
        ]
        past = [(k, v) for k, v in dated if k >= 1]
        if not past:
            continue
        valid = [(k, v) for k, v in past if v is not None]
        out: dict[str, Any] = {
            "usage_excluded_rows": undated + sum(1 for _, v in past if v is None)
        }
        for w in windows:
            ys = daily_series(valid, w)
            total = sum(ys)
            slope = least_squares_slope(ys)
            out[f"usage_{w}d"] = float(total)
            out[f"usage_slope_{w}d"] = slope
            if slope is None:
                out[f"usage_plateau_{w}d"] = None
            else:
                # fitted line: change first -> last day within tolerance * mean daily usage
                out[f"usage_plateau_{w}d"] = (
                    total > 0 and abs(slope) * (w - 1) <= tolerance * total / w
                )
        result[account] = out
    return result


def churn_labels(
    rows: list[dict[str, Any]],
    as_of: dt.datetime,
    horizon: int,
    *,
    purchases_only: bool = False,
    date_col: str = "order_date",
    value_col: str = "amount",
) -> dict[str, dict[str, Any]]:
    by_account: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_account[row["account_id"]].append(row)
    end = as_of + dt.timedelta(days=horizon)
    result: dict[str, dict[str, Any]] = {}
    for account, items in by_account.items():
        dated = [r for r in items if r[date_col] is not None]
        if not any(as_datetime(r[date_col]) < as_of for r in dated):
            continue
        horizon_rows = [r for r in dated if as_of <= as_datetime(r[date_col]) < end]

        def is_tx(r: dict[str, Any]) -> bool:
            v = r[value_col]
            return v is not None and (v > 0 if purchases_only else True)

        result[account] = {
            "churned": not any(is_tx(r) for r in horizon_rows),
            "label_excluded_rows": (len(items) - len(dated))
            + sum(1 for r in horizon_rows if r[value_col] is None),
        }
    return result


def nps(scores: list[float]) -> float | None:
    valid = [s for s in scores if s is not None and 0 <= s <= 10 and s == int(s)]
    if not valid:
        return None
    return 100.0 * (sum(s >= 9 for s in valid) - sum(s <= 6 for s in valid)) / len(valid)
