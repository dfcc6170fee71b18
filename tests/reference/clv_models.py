"""Plain reference formulas of the CLV models, written from the papers (not from kamlib code).

Direct (non-log) forms with scipy's ``gamma``/``beta``/``hyp2f1``, and numerical integration
(``scipy.integrate.quad``) where the papers give integrals. Valid for moderate inputs only
(small x, no overflow), which is all the tests feed them.

* BG/NBD: Fader, Hardie & Lee (2005), eqs. (6), (8), (9), (10); P(alive): FHL note 021.
* MBG/NBD: Batislam, Denizel & Filiztekin (2007).
* Pareto/NBD: Schmittlein, Morrison & Colombo (1987), written as a mixture over the lifetime
  tau ~ Pareto(II)(s, beta) with the purchase rate integrated out (NBD), so
  ``L = G(x) [S(T) / (alpha+T)^(r+x) + int_{t_x}^T f(tau) / (alpha+tau)^(r+x) d tau]``.
* Gamma-Gamma: Fader, Hardie & Lee (2005) "RFM and CLV", note 025 eq. (1a), (5).
"""

from __future__ import annotations

import math

from scipy import integrate
from scipy.special import beta as B
from scipy.special import gamma as G
from scipy.special import hyp2f1


# ---------------------------------------------------------------------------------------------
# BG/NBD
# ---------------------------------------------------------------------------------------------
def bg_likelihood(r: float, alpha: float, a: float, b: float, x: int, tx: float, T: float) -> float:
    """FHL (2005) eq. (6)."""
    common = G(r + x) * alpha**r / G(r)
    value = B(a, b + x) / B(a, b) * common / (alpha + T) ** (r + x)
    if x > 0:
        value += B(a + 1, b + x - 1) / B(a, b) * common / (alpha + tx) ** (r + x)
    return float(value)


def bg_p_alive(r: float, alpha: float, a: float, b: float, x: int, tx: float, T: float) -> float:
    """FHL note 021: P(alive) = 1 / (1 + delta_{x>0} a/(b+x-1) ((alpha+T)/(alpha+tx))^(r+x))."""
    if x == 0:
        return 1.0
    return 1.0 / (1.0 + a / (b + x - 1) * ((alpha + T) / (alpha + tx)) ** (r + x))


def bg_conditional_expected(
    r: float, alpha: float, a: float, b: float, t: float, x: int, tx: float, T: float
) -> float:
    """FHL (2005) eq. (10), evaluated literally."""
    hyp = hyp2f1(r + x, b + x, a + b + x - 1, t / (alpha + T + t))
    numer = (a + b + x - 1) / (a - 1) * (1 - ((alpha + T) / (alpha + T + t)) ** (r + x) * hyp)
    denom = 1 + (x > 0) * a / (b + x - 1) * ((alpha + T) / (alpha + tx)) ** (r + x)
    return float(numer / denom)


def bg_expected(r: float, alpha: float, a: float, b: float, t: float) -> float:
    """FHL (2005) eq. (9)."""
    hyp = hyp2f1(r, b, a + b - 1, t / (alpha + t))
    return float((a + b - 1) / (a - 1) * (1 - (alpha / (alpha + t)) ** r * hyp))


def bg_pmf(r: float, alpha: float, a: float, b: float, n: int, t: float) -> float:
    """FHL (2005) eq. (8) with its finite sum."""
    p0 = alpha / (alpha + t)
    first = B(a, b + n) / B(a, b) * G(r + n) / (G(r) * math.factorial(n)) * p0**r * (1 - p0) ** n
    if n == 0:
        return float(first)
    finite = sum(G(r + j) / (G(r) * math.factorial(j)) * (t / (alpha + t)) ** j for j in range(n))
    return float(first + B(a + 1, b + n - 1) / B(a, b) * (1 - p0**r * finite))


# ---------------------------------------------------------------------------------------------
# Modified BG/NBD
# ---------------------------------------------------------------------------------------------
def mbg_likelihood(
    r: float, alpha: float, a: float, b: float, x: int, tx: float, T: float
) -> float:
    """Batislam et al. (2007): dropout also possible right after the first purchase."""
    common = G(r + x) * alpha**r / G(r)
    return float(
        B(a, b + x + 1) / B(a, b) * common / (alpha + T) ** (r + x)
        + B(a + 1, b + x) / B(a, b) * common / (alpha + tx) ** (r + x)
    )


def mbg_p_alive(r: float, alpha: float, a: float, b: float, x: int, tx: float, T: float) -> float:
    """P(alive) = 1 / (1 + a/(b+x) ((alpha+T)/(alpha+tx))^(r+x))."""
    return 1.0 / (1.0 + a / (b + x) * ((alpha + T) / (alpha + tx)) ** (r + x))


def mbg_conditional_expected(
    r: float, alpha: float, a: float, b: float, t: float, x: int, tx: float, T: float
) -> float:
    """Conditional expectation of the MBG/NBD (Wagner & Hoppe 2008), evaluated literally."""
    hyp = hyp2f1(r + x, b + x + 1, a + b + x, t / (alpha + T + t))
    numer = (a + b + x) / (a - 1) * (1 - ((alpha + T) / (alpha + T + t)) ** (r + x) * hyp)
    return float(numer * mbg_p_alive(r, alpha, a, b, x, tx, T))


# ---------------------------------------------------------------------------------------------
# Pareto/NBD, as a mixture over the (Pareto II) lifetime
# ---------------------------------------------------------------------------------------------
def _pareto_density(s: float, beta: float, tau: float) -> float:
    return s * beta**s / (beta + tau) ** (s + 1)


def pnbd_likelihood(
    r: float, alpha: float, s: float, beta: float, x: int, tx: float, T: float
) -> float:
    """Alive at T, or died at tau in (t_x, T]; lambda integrated out analytically."""
    gx = G(r + x) * alpha**r / G(r)
    alive = (beta / (beta + T)) ** s / (alpha + T) ** (r + x)
    if tx < T:
        dead, _ = integrate.quad(
            lambda tau: _pareto_density(s, beta, tau) / (alpha + tau) ** (r + x),
            tx,
            T,
            epsabs=0.0,
            epsrel=1e-12,
            limit=200,
        )
    else:
        dead = 0.0
    return float(gx * (alive + dead))


def pnbd_p_alive(
    r: float, alpha: float, s: float, beta: float, x: int, tx: float, T: float
) -> float:
    """Share of the likelihood coming from 'still alive at T'."""
    gx = G(r + x) * alpha**r / G(r)
    alive = gx * (beta / (beta + T)) ** s / (alpha + T) ** (r + x)
    return float(alive / pnbd_likelihood(r, alpha, s, beta, x, tx, T))


def pnbd_conditional_expected(
    r: float, alpha: float, s: float, beta: float, t: float, x: int, tx: float, T: float
) -> float:
    """P(alive) * E[lambda] * E[(1 - exp(-mu t)) / mu] with the posteriors given alive at T.

    Given alive: lambda ~ Gamma(r + x, alpha + T), mu ~ Gamma(s, beta + T), independent.
    """
    shape, rate = s, beta + T

    def integrand(mu: float) -> float:
        dens = math.exp(
            shape * math.log(rate) + (shape - 1) * math.log(mu) - rate * mu - math.lgamma(shape)
        )
        return dens * (-math.expm1(-mu * t)) / mu

    expect, _ = integrate.quad(integrand, 0.0, math.inf, epsabs=0.0, epsrel=1e-10, limit=200)
    return float(pnbd_p_alive(r, alpha, s, beta, x, tx, T) * (r + x) / (alpha + T) * expect)


def pnbd_expected(r: float, alpha: float, s: float, beta: float, t: float) -> float:
    """Schmittlein et al. (1987): E[X(t)] = r beta / (alpha (s - 1)) [1 - (beta/(beta+t))^(s-1)]."""
    return float(r * beta / (alpha * (s - 1)) * (1 - (beta / (beta + t)) ** (s - 1)))


def _nbd_pmf(r: float, alpha: float, n: int, t: float) -> float:
    return float(
        G(r + n) / (G(r) * math.factorial(n)) * (alpha / (alpha + t)) ** r * (t / (alpha + t)) ** n
    )


def pnbd_pmf(r: float, alpha: float, s: float, beta: float, n: int, t: float) -> float:
    """P(X(t) = n) = S(t) NBD(n; t) + int_0^t f(tau) NBD(n; tau) d tau."""
    alive = (beta / (beta + t)) ** s * _nbd_pmf(r, alpha, n, t)
    dead, _ = integrate.quad(
        lambda tau: _pareto_density(s, beta, tau) * _nbd_pmf(r, alpha, n, tau),
        0.0,
        t,
        epsabs=0.0,
        epsrel=1e-11,
        limit=200,
    )
    return float(alive + dead)


# ---------------------------------------------------------------------------------------------
# Gamma-Gamma
# ---------------------------------------------------------------------------------------------
def gg_density(p: float, q: float, v: float, x: int, m: float) -> float:
    """Density of the mean spend m over x transactions (note 025 eq. 1a)."""
    return float(
        G(p * x + q)
        / (G(p * x) * G(q))
        * v**q
        * m ** (p * x - 1)
        * x ** (p * x)
        / (v + m * x) ** (p * x + q)
    )


def gg_expected_spend(p: float, q: float, v: float, x: int, m: float) -> float:
    """E[Z | x, m] = (q-1)/(px+q-1) pv/(q-1) + px/(px+q-1) m; population mean if x = 0."""
    if x == 0:
        return p * v / (q - 1)
    return (q - 1) / (p * x + q - 1) * (p * v / (q - 1)) + p * x / (p * x + q - 1) * m
