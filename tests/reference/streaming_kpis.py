"""Pure-Python references for kamlib.streaming analytics (kpis, enrich, sessions, alerts).

Written from the documented definitions, not from the Spark code: windows are half-open
``[start, start + length)`` aligned to the Unix epoch (UTC); timestamps are naive UTC datetimes.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

EPOCH = dt.datetime(1970, 1, 1)


def window_start(t: dt.datetime, seconds: int) -> dt.datetime:
    offset = int((t - EPOCH).total_seconds())
    return EPOCH + dt.timedelta(seconds=offset - offset % seconds)


def dedupe(rows: Iterable[Mapping[str, Any]], key: str = "event_id") -> list[dict[str, Any]]:
    """First copy of each event id (duplicates in the fixtures are exact copies)."""
    seen: set[Any] = set()
    out = []
    for row in rows:
        if row[key] in seen:
            continue
        seen.add(row[key])
        out.append(dict(row))
    return out


def windowed_revenue(
    rows: Iterable[Mapping[str, Any]], *, seconds: int = 86400, by: Sequence[str] = ()
) -> dict[tuple[Any, ...], dict[str, Any]]:
    """{(by..., account, window_start): {revenue, orders, window_end}} over de-duplicated rows."""
    out: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        start = window_start(row["event_time"], seconds)
        key = (*(row[b] for b in by), row["account_id"], start)
        cell = out.setdefault(
            key,
            {"revenue": 0.0, "orders": 0, "window_end": start + dt.timedelta(seconds=seconds)},
        )
        if row["amount"] is not None:
            cell["revenue"] += row["amount"]
        cell["orders"] += 1
    return out


def _valid(score: Any) -> bool:
    if score is None or (isinstance(score, float) and math.isnan(score)):
        return False
    return 0 <= score <= 10 and float(score).is_integer()


def windowed_nps(
    rows: Iterable[Mapping[str, Any]], *, seconds: int = 86400, by: Sequence[str] = ()
) -> dict[tuple[Any, ...], dict[str, Any]]:
    """{(by..., window_start): {n, invalid, promoters, passives, detractors, nps}}."""
    out: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        key = (*(row[b] for b in by), window_start(row["event_time"], seconds))
        cell = out.setdefault(
            key, {"n": 0, "invalid": 0, "promoters": 0, "passives": 0, "detractors": 0}
        )
        score = row["score"]
        if not _valid(score):
            cell["invalid"] += 1
            continue
        cell["n"] += 1
        if score >= 9:
            cell["promoters"] += 1
        elif score >= 7:
            cell["passives"] += 1
        else:
            cell["detractors"] += 1
    for cell in out.values():
        n = cell["n"]
        cell["nps"] = 100.0 * (cell["promoters"] - cell["detractors"]) / n if n else None
    return out


def enrich(
    events: Iterable[Mapping[str, Any]],
    accounts: Iterable[Mapping[str, Any]],
    *,
    columns: Sequence[str],
    how: str = "left",
) -> list[dict[str, Any]]:
    """Left (or inner) join on account_id, with the ``is_known_account`` flag."""
    ref = {a["account_id"]: a for a in accounts}
    out = []
    for event in events:
        match = ref.get(event["account_id"])
        if match is None and how == "inner":
            continue
        row = dict(event)
        for c in columns:
            row[c] = None if match is None else match[c]
        row["is_known_account"] = match is not None
        out.append(row)
    return out


def sessionize(
    rows: Iterable[Mapping[str, Any]], *, gap_seconds: int
) -> dict[tuple[Any, ...], dict[str, Any]]:
    """{(account, user, session_start): {session_end, duration_seconds, events, closes_at}}.

    Events of one user belong to the same session while the time since the previous event is
    at most the gap (Spark merges session windows that touch); ``closes_at`` = last event + gap.
    """
    per_user: dict[tuple[Any, Any], list[dt.datetime]] = defaultdict(list)
    for row in rows:
        per_user[(row["account_id"], row["user_id"])].append(row["event_time"])
    out: dict[tuple[Any, ...], dict[str, Any]] = {}
    gap = dt.timedelta(seconds=gap_seconds)
    for (account, user), times in per_user.items():
        times.sort()
        sessions: list[list[dt.datetime]] = []
        for t in times:
            if sessions and t - sessions[-1][-1] <= gap:
                sessions[-1].append(t)
            else:
                sessions.append([t])
        for s in sessions:
            out[(account, user, s[0])] = {
                "session_end": s[-1],
                "duration_seconds": (s[-1] - s[0]).total_seconds(),
                "events": len(s),
                "closes_at": s[-1] + gap,
            }
    return out


def engagement(
    sessions: Mapping[tuple[Any, ...], Mapping[str, Any]], *, seconds: int = 86400
) -> dict[tuple[Any, ...], dict[str, Any]]:
    """Per (account, window_start) of the session's close time minus 1 microsecond."""
    cells: dict[tuple[Any, ...], dict[str, Any]] = {}
    for (account, user, _start), s in sessions.items():
        t = s["closes_at"] - dt.timedelta(microseconds=1)
        key = (account, window_start(t, seconds))
        cell = cells.setdefault(
            key, {"sessions": 0, "total_duration_seconds": 0.0, "users": set(), "events": 0}
        )
        cell["sessions"] += 1
        cell["total_duration_seconds"] += s["duration_seconds"]
        cell["users"].add(user)
        cell["events"] += s["events"]
    out = {}
    for key, cell in cells.items():
        out[key] = {
            "sessions": cell["sessions"],
            "total_duration_seconds": cell["total_duration_seconds"],
            "mean_duration_seconds": cell["total_duration_seconds"] / cell["sessions"],
            "active_users": len(cell["users"]),
            "events": cell["events"],
        }
    return out


def ratio_alerts(
    kpis: Mapping[tuple[Any, dt.datetime], float],
    *,
    kind: str,
    ratio: float,
    baseline_windows: int,
    min_baseline: float,
    step: dt.timedelta,
    min_history: int | None = None,
) -> dict[tuple[Any, dt.datetime], dict[str, float]]:
    """Drop / spike alerts: {(account, window_start): {value, baseline}}.

    Missing windows between an account's first window and the latest window of the whole
    table count as 0. The baseline is the mean over the previous ``baseline_windows`` windows
    (fewer at the start of an account's history; at least ``min_history`` are required,
    default ``baseline_windows``). Drop: baseline > 0, baseline >= min_baseline and
    value < ratio * baseline. Spike: the same with value > ratio * baseline.
    """
    need = baseline_windows if min_history is None else min_history
    if not kpis:
        return {}
    last = max(w for _, w in kpis)
    firsts: dict[Any, dt.datetime] = {}
    for account, w in kpis:
        firsts[account] = min(w, firsts.get(account, w))
    out = {}
    for account, first in firsts.items():
        series = []
        w = first
        while w <= last:
            series.append((w, float(kpis.get((account, w), 0.0) or 0.0)))
            w += step
        for i, (w, value) in enumerate(series):
            history = [v for _, v in series[max(0, i - baseline_windows) : i]]
            if len(history) < max(need, 1):
                continue
            baseline = sum(history) / len(history)
            if baseline <= 0 or baseline < min_baseline:
                continue
            fired = value < ratio * baseline if kind == "drop" else value > ratio * baseline
            if fired:
                out[(account, w)] = {"value": value, "baseline": baseline}
    return out


def detractor_alerts(
    rows: Iterable[Mapping[str, Any]], *, min_detractors: int, share: float
) -> dict[tuple[Any, dt.datetime], dict[str, float]]:
    out = {}
    for row in rows:
        d, n = row["detractors"], row["n"]
        if n and d >= min_detractors and d / n >= share:
            out[(row["account_id"], row["window_start"])] = {"value": float(d)}
    return out
