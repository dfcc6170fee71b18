"""Pure-Python references for kamlib.wallet."""

from __future__ import annotations

import math
from typing import Any


def _ok(x: Any) -> bool:
    return x is not None and not (isinstance(x, float) and math.isnan(x))


def share_of_wallet(spend: float | None, wallet: float | None) -> dict[str, Any]:
    share = spend / wallet if _ok(spend) and _ok(wallet) and wallet > 0 else None
    headroom = max(wallet - spend, 0.0) if _ok(spend) and _ok(wallet) else None
    return {"share_of_wallet": share, "wallet_headroom": headroom}


def war(rank: float | None, n: float | None) -> float | None:
    """Keiningham et al. (2011): (1 - r / (n + 1)) * 2 / n for whole 1 <= r <= n."""
    if not (_ok(rank) and _ok(n)):
        return None
    if not float(rank).is_integer() or not float(n).is_integer() or n < 1 or rank < 1 or rank > n:
        return None
    return (1.0 - rank / (n + 1.0)) * 2.0 / n
