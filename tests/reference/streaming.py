"""Pure-Python references for kamlib.streaming I/O: JSON decoding and the order pipeline.

Written from the documented rules (``decode_json`` docstring, ``kamlib stream`` docs), not
from the Spark code. Timestamps are naive UTC datetimes.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterable, Sequence
from typing import Any

EPOCH = dt.datetime(1970, 1, 1)
ORDER_REQUIRED = ("event_id", "account_id", "event_time", "amount")


def parse_time(value: Any) -> dt.datetime | None:
    """ISO 8601 'YYYY-MM-DDTHH:MM:SS[.ffffff]' (the only form the tests generate)."""
    if not isinstance(value, str):
        return None
    try:
        return dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        return None


_DUPLICATE = "\x00duplicate"


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) < len(pairs):
        out[_DUPLICATE] = True
    return out


def decode_order(line: str) -> tuple[dict[str, Any] | None, str | None]:
    """(typed order, None) for a valid ORDER_EVENT line, else (None, first error class).

    Error classes: ``invalid JSON``, ``not one object`` (trailing data after the first value),
    ``duplicate`` (a top-level key twice), ``missing``, ``wrong type``, ``non-finite``.
    """
    try:
        obj = json.loads(line, object_pairs_hook=_pairs)
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data":
            first = json.JSONDecoder().raw_decode(line.lstrip())[0]
            return None, "not one object" if isinstance(first, dict) else "invalid JSON"
        return None, "invalid JSON"
    if not isinstance(obj, dict):
        return None, "invalid JSON"
    if obj.pop(_DUPLICATE, False):
        return None, "duplicate"
    for name in ORDER_REQUIRED:
        if obj.get(name) is None:
            return None, "missing"
    out: dict[str, Any] = {}
    for name in ("event_id", "account_id"):
        value = obj[name]
        if isinstance(value, (dict, list)):
            return None, "wrong type"  # the tests only generate scalars for string fields
        out[name] = value if isinstance(value, str) else json.dumps(value)
    when = parse_time(obj["event_time"])
    if when is None:
        return None, "wrong type"
    out["event_time"] = when
    amount = obj["amount"]
    if isinstance(amount, bool) or not isinstance(amount, (int, float)):
        return None, "wrong type"
    if not math.isfinite(float(amount)):
        return None, "non-finite"
    out["amount"] = float(amount)
    currency = obj.get("currency")
    out["currency"] = None if currency is None else str(currency)
    return out, None


def day_of(t: dt.datetime) -> dt.date:
    return t.date()


def simulate_order_stream(
    batches: Sequence[Sequence[str]], *, delay: dt.timedelta
) -> dict[str, Any]:
    """Replay the order pipeline batch by batch (one batch = the lines of one file).

    Per batch the watermark is ``max(event_time of valid records in earlier batches) -
    delay``. A valid record behind it is *late* (dropped, counted); a valid record whose
    ``event_id`` was kept before and whose ``event_time + delay`` is still ahead of the
    watermark is a *duplicate*; everything else is kept. Daily revenue covers the kept
    orders of the days whose end is at or before the final watermark.
    """
    kept: list[dict[str, Any]] = []
    quarantined = 0
    late: list[str] = []
    duplicates = 0
    state: dict[str, dt.datetime] = {}  # event_id -> expiry (event_time + delay)
    max_time: dt.datetime | None = None
    for lines in batches:
        watermark = None if max_time is None else max_time - delay
        batch_max = max_time
        for line in lines:
            order, _error = decode_order(line)
            if order is None:
                quarantined += 1
                continue
            t = order["event_time"]
            batch_max = t if batch_max is None or t > batch_max else batch_max
            if watermark is not None and t <= watermark:
                late.append(order["event_id"])
                continue
            expiry = state.get(order["event_id"])
            if expiry is not None and (watermark is None or expiry > watermark):
                duplicates += 1
                continue
            state[order["event_id"]] = t + delay
            kept.append(order)
        max_time = batch_max
    final = None if max_time is None else max_time - delay
    revenue: dict[tuple[str, dt.date], list[float]] = {}
    for order in kept:
        day = day_of(order["event_time"])
        end = dt.datetime(day.year, day.month, day.day) + dt.timedelta(days=1)
        if final is None or end > final:
            continue
        acc = revenue.setdefault((order["account_id"], day), [0.0, 0])
        acc[0] += order["amount"]
        acc[1] += 1
    return {
        "kept": kept,
        "quarantined": quarantined,
        "late": late,
        "duplicates": duplicates,
        "revenue_daily": {k: (v[0], int(v[1])) for k, v in revenue.items()},
        "watermark": final,
    }


def count_lines(texts: Iterable[str]) -> int:
    """Number of records a file source produces: ``str.splitlines`` lines per file."""
    return sum(len(text.splitlines()) for text in texts)
