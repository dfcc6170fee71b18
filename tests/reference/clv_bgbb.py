"""Plain reference formulas of the BG/BB model, written from the paper (not from kamlib code).

Fader, P. S., Hardie, B. G. S. and Shang, J. (2010), "Customer-Base Analysis in a Discrete-Time
Noncontractual Setting", Marketing Science 29(6): likelihood eq. (5), P(alive) eq. (11) with the
lifetimes convention (alive at period n + m), conditional expectation eq. (13). Direct
(non-log) forms with scipy's ``beta`` and ``gamma``, valid for the small n the tests use.
"""

from __future__ import annotations

from scipy.special import beta as B
from scipy.special import gamma as G


def bgbb_likelihood(a: float, b: float, g: float, d: float, x: int, tx: int, n: int) -> float:
    """FHS (2010) eq. (5)."""
    total = B(a + x, b + n - x) / B(a, b) * B(g, d + n) / B(g, d)
    for i in range(int(n - tx)):
        total += B(a + x, b + tx - x + i) / B(a, b) * B(g + 1, d + tx + i) / B(g, d)
    return float(total)


def bgbb_p_alive(
    a: float, b: float, g: float, d: float, x: int, tx: int, n: int, m: int = 0
) -> float:
    """P(alive at period n + m | x, t_x, n) (lifetimes' conditional_probability_alive)."""
    num = B(a + x, b + n - x) / B(a, b) * B(g, d + n + m) / B(g, d)
    return float(num / bgbb_likelihood(a, b, g, d, x, tx, n))


def bgbb_expected(a: float, b: float, g: float, d: float, t: int, x: int, tx: int, n: int) -> float:
    """FHS (2010) eq. (13): expected purchases in periods n+1 .. n+t."""
    lik = bgbb_likelihood(a, b, g, d, x, tx, n)
    bracket = G(1 + d + n) / G(g + d + n) - G(1 + d + n + t) / G(g + d + n + t)
    return float(
        B(a + x + 1, b + n - x) / B(a, b) * d / (g - 1) * G(g + d) / G(1 + d) * bracket / lik
    )


def bgbb_expected_by_sum(
    a: float, b: float, g: float, d: float, t: int, x: int, tx: int, n: int
) -> float:
    """Same expectation summed period by period: sum_k P(alive at n+k, buy) (independent check).

    Given (p, theta), E[purchase in period n+k | alive at n] = p (1 - theta)^k; integrating
    against the posterior gives B(a+x+1, b+n-x)/B(a,b) * B(g, d+n+k)/B(g,d) / L per period.
    """
    lik = bgbb_likelihood(a, b, g, d, x, tx, n)
    total = 0.0
    for k in range(1, t + 1):
        total += B(a + x + 1, b + n - x) / B(a, b) * B(g, d + n + k) / B(g, d) / lik
    return float(total)
