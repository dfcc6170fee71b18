"""Reference horizon risks written from the models' individual-level definitions.

Not from kamlib code: each conditional probability is ``P(data and future event) / P(data)``
with the individual-level model written out and the heterogeneity integrated numerically
(mpmath quadrature over the purchase rate for BG/NBD and MBG/NBD) or exactly through Beta
moments (BG/BB, where every term is a monomial in p and theta). Slow, moderate inputs only.
Pareto/NBD is checked against lifetimes 0.11.3 numbers instead (a double quadrature is too
slow for the test suite).

* BG/NBD (Fader, Hardie & Lee 2005): purchases ~ Poisson(lambda) while alive, drop out with
  probability p after each purchase; lambda ~ Gamma(r, alpha), p ~ Beta(a, b).
* MBG/NBD (Batislam et al. 2007): as BG/NBD plus a drop-out opportunity at time 0.
* BG/BB (Fader, Hardie & Shang 2010): alive at the start of each period with probability
  1 - theta, buys in a period alive with probability p; p ~ Beta(alpha, beta),
  theta ~ Beta(gamma, delta).
"""

from __future__ import annotations

import mpmath as mp

mp.mp.dps = 30


def _gamma_density(lam: mp.mpf, r: float, alpha: float) -> mp.mpf:
    return alpha**r * lam ** (r - 1) * mp.exp(-alpha * lam) / mp.gamma(r)


def _pois(n: int, mean: mp.mpf) -> mp.mpf:
    return mp.exp(-mean) * mean**n / mp.factorial(n)


def _pois_sf(n: int, mean: mp.mpf) -> mp.mpf:
    """P(Poisson(mean) >= n)."""
    return 1 - mp.fsum(_pois(j, mean) for j in range(n))


def _beta_moment(a: float, b: float, i: float, j: float) -> mp.mpf:
    """E[p^i (1-p)^j] for p ~ Beta(a, b)."""
    return mp.beta(a + i, b + j) / mp.beta(a, b)


def bg_conditional(
    params: tuple[float, float, float, float],
    x: int,
    tx: float,
    T: float,
    *,
    n: int | None = None,
    t: float = 0.0,
    alive_at: float | None = None,
    modified: bool = False,
) -> float:
    """P(N(T, T+t) = n | x, t_x, T) (``n`` given) or P(alive at T + ``alive_at``) (BG/MBG)."""
    r, alpha, a, b = params
    k = 1 if modified else 0  # drop-out opportunities before the first repeat purchase

    def weight_alive(extra_fail: float) -> mp.mpf:
        # E_p[(1-p)^(x + k + extra)] : survived x + k (+ future) drop-out opportunities
        return _beta_moment(a, b, 0, x + k + extra_fail)

    def dead_term(lam: mp.mpf) -> mp.mpf:
        # died at the last observed purchase opportunity (t_x; or at 0 for MBG with x = 0)
        if x == 0 and not modified:
            return mp.mpf(0)
        return _beta_moment(a, b, 1, x + k - 1) * lam**x * mp.exp(-lam * tx)

    def data_density(lam: mp.mpf) -> mp.mpf:
        alive = weight_alive(0) * lam**x * mp.exp(-lam * T)
        return _gamma_density(lam, r, alpha) * (alive + dead_term(lam))

    def event_density(lam: mp.mpf) -> mp.mpf:
        base = lam**x * mp.exp(-lam * T)
        mean = lam * t
        if alive_at is not None:
            # alive at T + s: no drop-out after any of the N ~ Poisson(lam s) purchases in
            # (T, T + s]: E[(1-p)^N | p] = exp(-lam s p), and the Beta moment generating
            # function E_p[(1-p)^m exp(-c p)] = B(a, b+m)/B(a, b) 1F1(a; a+b+m; -c)
            m = x + k
            total = weight_alive(0) * mp.hyp1f1(a, a + b + m, -lam * alive_at)
            return _gamma_density(lam, r, alpha) * base * total
        assert n is not None
        # alive at T: n purchases, surviving all, or dying after the n-th (n >= 1)
        p_n = weight_alive(n) * _pois(n, mean)
        if n > 0:
            p_n += _beta_moment(a, b, 1, x + k + n - 1) * _pois_sf(n, mean)
        value = base * p_n
        if n == 0:
            value += dead_term(lam)
        return _gamma_density(lam, r, alpha) * value

    num = mp.quad(event_density, [0, 1, 10, mp.inf])
    den = mp.quad(data_density, [0, 1, 10, mp.inf])
    return float(num / den)


def bgbb_conditional(
    params: tuple[float, float, float, float],
    x: int,
    tx: int,
    n: int,
    *,
    k: int | None = None,
    periods: int = 0,
    alive_at: int | None = None,
) -> float:
    """BG/BB P(k purchases in the next ``periods`` | history) or P(alive at n + alive_at).

    Enumerates the individual-level events (death time, purchases) as monomials in p and theta
    and takes their exact Beta moments.
    """
    al, be, ga, de = params

    def moment(pi: float, pj: float, ti: float, tj: float) -> mp.mpf:
        return _beta_moment(al, be, pi, pj) * _beta_moment(ga, de, ti, tj)

    # P(data): alive through n, or died at the start of period tx + i + 1 (i = 0..n-tx-1)
    data = moment(x, n - x, 0, n)
    for i in range(n - tx):
        data += moment(x, tx - x + i, 1, tx + i)
    if alive_at is not None:
        return float(moment(x, n - x, 0, n + alive_at) / data)
    assert k is not None
    event = mp.mpf(0)
    # alive at n, then survives j more periods (dies at the start of n + j + 1) or all
    for j in range(periods + 1):
        if k > j:
            continue
        choose = mp.binomial(j, k)
        if j < periods:
            event += choose * moment(x + k, n - x + j - k, 1, n + j)
        else:
            event += choose * moment(x + k, n - x + j - k, 0, n + j)
    if k == 0:
        for i in range(n - tx):
            event += moment(x, tx - x + i, 1, tx + i)
    return float(event / data)


def pnbd_new_pmf(params: tuple[float, float, float, float], n: int, t: float) -> float:
    """Pareto/NBD P(X(t) = n) of a new customer (Schmittlein et al. 1987): NBD counts up to
    the lifetime tau ~ Pareto(II)(s, beta), ``S(t) NBD(n; t) + int_0^t f(tau) NBD(n; tau)``.
    """
    r, alpha, s, beta = params

    def nbd(tau: mp.mpf) -> mp.mpf:
        return (
            mp.gamma(r + n)
            / mp.gamma(r)
            / mp.factorial(n)
            * (alpha / (alpha + tau)) ** r
            * (tau / (alpha + tau)) ** n
        )

    def density(tau: mp.mpf) -> mp.mpf:
        return s / beta * (beta / (beta + tau)) ** (s + 1)

    points = [0, min(beta, t) / 10, min(beta, t), t]
    integral = mp.quad(lambda tau: density(tau) * nbd(tau), sorted(set(points)))
    return float((beta / (beta + t)) ** s * nbd(mp.mpf(t)) + integral)
