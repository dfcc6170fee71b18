"""Plain reference of lifetimes' CLV and of the published BG/NBD and Gamma-Gamma formulas.

Written from Fader, Hardie and Lee (2005) "Counting Your Customers the Easy Way" (eq. 10) and
"RFM and CLV" (Gamma-Gamma conditional mean), and from lifetimes 0.11.3
``utils._customer_lifetime_value`` (the loop is kept exactly as there: ``i`` runs over
``steps * factor`` and the discount exponent is ``i / factor``). Scalar Python, no vectorisation.
"""

from __future__ import annotations

import math

from scipy.special import hyp2f1

FACTOR = {"W": 4.345, "M": 1.0, "D": 30, "H": 30 * 24}


class FakeBetaGeo:
    """The numpy interface of a fitted BG/NBD model, from the published formulas."""

    def __init__(self, r: float, alpha: float, a: float, b: float) -> None:
        self.params = {"r": r, "alpha": alpha, "a": a, "b": b}

    def conditional_expected(self, t: float, x: float, tx: float, T: float) -> float:
        r, alpha, a, b = (self.params[k] for k in ("r", "alpha", "a", "b"))
        if t == 0:
            return 0.0
        z = t / (alpha + T + t)
        numer = (a + b + x - 1) / (a - 1)
        numer *= 1 - ((alpha + T) / (alpha + T + t)) ** (r + x) * hyp2f1(
            r + x, b + x, a + b + x - 1, z
        )
        denom = 1.0
        if x > 0:
            denom += a / (b + x - 1) * ((alpha + T) / (alpha + tx)) ** (r + x)
        return numer / denom

    def conditional_expected_purchases_np(self, t, frequency, recency, T):
        import numpy as np

        x, tx, tt = np.broadcast_arrays(
            np.asarray(frequency, float), np.asarray(recency, float), np.asarray(T, float)
        )
        out = [
            self.conditional_expected(float(t), a, b, c) for a, b, c in zip(x, tx, tt, strict=True)
        ]
        return np.asarray(out, dtype=float)


class FakeGammaGamma:
    """The numpy interface of a fitted Gamma-Gamma model."""

    def __init__(self, p: float, q: float, v: float) -> None:
        self.params = {"p": p, "q": q, "v": v}

    def expected_spend(self, x: float, m: float) -> float:
        p, q, v = (self.params[k] for k in ("p", "q", "v"))
        mean = p * v / (q - 1)
        if x <= 0:
            return mean
        w = p * x / (p * x + q - 1)
        return (1 - w) * mean + w * m

    def expected_spend_np(self, frequency, monetary_value):
        import numpy as np

        x, m = np.broadcast_arrays(np.asarray(frequency, float), np.asarray(monetary_value, float))
        return np.asarray(
            [self.expected_spend(a, b) for a, b in zip(x, m, strict=True)], dtype=float
        )


def lifetimes_clv(
    transaction: FakeBetaGeo,
    spend: FakeGammaGamma,
    x: float,
    tx: float,
    T: float,
    m: float,
    *,
    time: int = 12,
    discount_rate: float = 0.01,
    freq: str = "D",
) -> float:
    """lifetimes' ``_customer_lifetime_value`` for one customer, loop kept as written there."""
    factor = FACTOR[freq]
    value = spend.expected_spend(x, m)
    clv = 0.0
    for step in range(1, time + 1):
        i = step * factor
        expected = transaction.conditional_expected(i, x, tx, T) - transaction.conditional_expected(
            i - factor, x, tx, T
        )
        clv += value * expected / (1 + discount_rate) ** (i / factor)
    assert math.isfinite(clv)
    return clv


def bg_pmf(r: float, alpha: float, a: float, b: float, x: int, t: float) -> float:
    """BG/NBD P(X(t) = x) of a new customer (Fader, Hardie and Lee 2005, eq. 8), scalar."""
    from scipy.special import betaln, gammaln

    base = betaln(a, b)
    log_nbd = (
        gammaln(r + x)
        - gammaln(r)
        - gammaln(x + 1)
        + r * math.log(alpha / (alpha + t))
        + x * math.log(t / (alpha + t))
    )
    value = math.exp(betaln(a, b + x) - base + log_nbd)
    if x > 0:
        partial = sum(
            math.exp(
                gammaln(r + j)
                - gammaln(r)
                - gammaln(j + 1)
                + r * math.log(alpha / (alpha + t))
                + j * math.log(t / (alpha + t))
            )
            for j in range(x)
        )
        value += math.exp(betaln(a + 1, b + x - 1) - base) * (1 - partial)
    return value
