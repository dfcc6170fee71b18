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
