"""Pure-Python references for kamlib.nps (one group), from the formulas in API.md."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from statistics import NormalDist
from typing import Any


def _whole(x: Any, low: float, high: float) -> bool:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return False
    return low <= x <= high and float(x).is_integer()


def category(score: Any) -> str | None:
    if not _whole(score, 0, 10):
        return None
    return "promoter" if score >= 9 else "passive" if score >= 7 else "detractor"


def nps(
    rows: Iterable[Mapping[str, Any]],
    *,
    weight_col: str | None = None,
    confidence: float = 0.95,
) -> dict[str, Any]:
    n = invalid = 0
    counts = {"promoter": 0, "passive": 0, "detractor": 0}
    wsum = {"promoter": 0.0, "passive": 0.0, "detractor": 0.0}
    w2 = 0.0
    for row in rows:
        cat = category(row["score"])
        w = 1.0 if weight_col is None else row[weight_col]
        if weight_col is not None and (w is None or math.isnan(w) or w < 0 or math.isinf(w)):
            cat = None
        if cat is None:
            invalid += 1
            continue
        n += 1
        counts[cat] += 1
        wsum[cat] += w
        w2 += w * w
    out: dict[str, Any] = {
        "n": n,
        "invalid": invalid,
        "promoters": counts["promoter"],
        "passives": counts["passive"],
        "detractors": counts["detractor"],
    }
    total = sum(wsum.values())
    if n == 0 or total == 0:
        out.update(nps=None, std_error=None, margin_of_error=None, ci_low=None, ci_high=None)
        return out
    p_p, p_d = wsum["promoter"] / total, wsum["detractor"] / total
    n_eff = n if weight_col is None else total**2 / w2
    var = (p_p + p_d - (p_p - p_d) ** 2) / n_eff
    se = 100.0 * math.sqrt(max(var, 0.0))
    z = NormalDist().inv_cdf(0.5 + confidence / 2.0)
    score = 100.0 * (p_p - p_d)
    out.update(
        nps=score,
        std_error=se,
        margin_of_error=z * se,
        ci_low=max(score - z * se, -100.0),
        ci_high=min(score + z * se, 100.0),
    )
    return out


def wilson(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval (in percent)."""
    z = NormalDist().inv_cdf(0.5 + confidence / 2.0)
    p = successes / n
    center = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return 100 * max(center - half, 0.0), 100 * min(center + half, 1.0)


def csat(
    rows: Iterable[Mapping[str, Any]],
    *,
    scale_max: int = 5,
    satisfied_min: int = 4,
    confidence: float = 0.95,
) -> dict[str, Any]:
    n = invalid = satisfied = 0
    for row in rows:
        s = row["score"]
        if not _whole(s, 1, scale_max):
            invalid += 1
            continue
        n += 1
        satisfied += s >= satisfied_min
    out: dict[str, Any] = {"n": n, "invalid": invalid, "satisfied": satisfied}
    if n == 0:
        out.update(csat=None, ci_low=None, ci_high=None)
    else:
        low, high = wilson(satisfied, n, confidence)
        out.update(csat=100.0 * satisfied / n, ci_low=low, ci_high=high)
    return out
