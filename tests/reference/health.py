"""Pure-Python reference for kamlib.health.health_score (one group)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from tests.reference.classify import weighted_score


def band(score: float | None, bands: Sequence[float] = (40, 70)) -> str | None:
    if score is None:
        return None
    if score < bands[0]:
        return "red"
    if score < bands[1]:
        return "yellow"
    return "green"


def health(
    rows: Sequence[Mapping[str, Any]],
    *,
    weights: Mapping[str, float],
    lower_is_better: Iterable[str] = (),
    bands: Sequence[float] = (40, 70),
) -> dict[Any, dict[str, Any]]:
    scores = weighted_score(rows, weights, lower_is_better)
    return {
        r["account_id"]: {"health_score": s, "health_band": band(s, bands)}
        for s, r in zip(scores, rows, strict=False)
    }


def threshold_health(
    rows: Sequence[Mapping[str, Any]],
    *,
    weights: Mapping[str, float],
    thresholds: Mapping[str, Sequence[float]],
    critical: Mapping[str, float] | None = None,
    lower_is_better: Iterable[str] = (),
    bands: Sequence[float] = (40, 70),
) -> dict[Any, dict[str, Any]]:
    """health_score(method="thresholds"): clipped linear scores, weighted; critical -> red."""
    import math

    lower = set(lower_is_better)
    out: dict[Any, dict[str, Any]] = {}
    for r in rows:
        num = den = 0.0
        for c, w in weights.items():
            x = r[c]
            if x is None or (isinstance(x, float) and math.isnan(x)):
                continue
            poor, good = thresholds[c]
            s = min(max((x - poor) / (good - poor), 0.0), 1.0)
            num += w * s
            den += w
        score = 100.0 * num / den if den > 0 else None
        hit = False
        for c, limit in (critical or {}).items():
            x = r[c]
            if x is None or (isinstance(x, float) and math.isnan(x)):
                continue
            low_bad = thresholds[c][0] < thresholds[c][1] if c in thresholds else c not in lower
            hit = hit or (x <= limit if low_bad else x >= limit)
        out[r["account_id"]] = {
            "health_score": score,
            "health_band": "red" if hit else band(score, bands),
        }
    return out


def auc(scores: Sequence[float], churned: Sequence[bool]) -> float | None:
    """Brute-force pairwise Mann-Whitney AUC, lower score = higher risk."""
    pos = [s for s, y in zip(scores, churned, strict=True) if y]
    neg = [s for s, y in zip(scores, churned, strict=True) if not y]
    if not pos or not neg:
        return None
    wins = sum((p < n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))
