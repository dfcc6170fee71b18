"""Pure numpy/scipy cores of the CLV transaction and spend models.

Everything here works on float arrays and plain parameter tuples, with no Spark. The fitting
objectives are count-weighted log-likelihoods over distinct ``(x, t_x, T)`` tuples; special
functions are evaluated once per distinct value of ``x``, ``t_x`` and ``T`` and gathered, so an
evaluation over a few hundred thousand tuples costs milliseconds.

Notation: ``x`` = frequency (repeat purchases), ``tx`` = recency, ``T`` = age, ``n`` = count
(weight) of each tuple. Parameters are positive; the optimisers work on their logarithms.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import betainc, betaln, digamma, expit, gammaln, hyp2f1, logsumexp

__all__ = [
    "BGData",
    "GGData",
    "PairIndex",
    "bg_conditional_expected",
    "bg_loglik_terms",
    "bg_neg_loglik_grad",
    "bg_pmf",
    "bg_probability_alive",
    "gg_expected_spend",
    "gg_loglik_terms",
    "gg_neg_loglik_grad",
    "gg_neg_loglik_grad_data",
    "log_hyp2f1_c_eq_a_plus_1",
    "mbg_conditional_expected",
    "mbg_loglik_terms",
    "mbg_neg_loglik_grad",
    "mbg_pmf",
    "mbg_probability_alive",
    "pnbd_conditional_expected",
    "pnbd_expected",
    "pnbd_loglik_terms",
    "pnbd_pmf",
    "pnbd_probability_alive",
]

FloatArray = np.ndarray
Params = tuple[float, ...]

_GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(96)
_GL_U = 0.5 * (_GL_NODES + 1.0)
_GL_LOGW = np.log(0.5 * _GL_WEIGHTS)


def unique_inverse(values: Any) -> tuple[FloatArray, np.ndarray]:
    """``np.unique(values, return_inverse=True)`` for a 1-D array, in linear time when it can.

    Summaries in whole days or counts are small non-negative integers: then the distinct
    values come from one ``bincount`` over their range instead of a sort (about 10x faster on
    half a million tuples). Anything else goes through ``np.unique``.
    """
    v = np.asarray(values).ravel()
    if v.size and v.dtype.kind in "fiu":
        lo, hi = v.min(), v.max()
        if lo >= 0 and hi <= 4 * v.size + 1024:
            codes = v.astype(np.int64)
            if np.array_equal(codes, v):
                present = np.bincount(codes, minlength=int(hi) + 1) > 0
                rank = np.cumsum(present) - 1
                return np.flatnonzero(present).astype(v.dtype), rank[codes]
    u, inverse = np.unique(v, return_inverse=True)
    return u, np.asarray(inverse).ravel()


def _f(value: Any) -> FloatArray:
    return np.asarray(value, dtype=np.float64)


# ---------------------------------------------------------------------------------------------
# Distinct-value data layout
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _TupleSet:
    """Tuples carrying the per-tuple term, indexed by distinct x and distinct (T, t_x) pair."""

    n: FloatArray
    x: FloatArray
    ix: np.ndarray
    ip: np.ndarray
    pair_t: np.ndarray
    pair_tx: np.ndarray

    @classmethod
    def build(
        cls, n: FloatArray, x: FloatArray, ix: np.ndarray, it: np.ndarray, itx: np.ndarray, m: int
    ) -> _TupleSet:
        key = it.astype(np.int64) * m + itx
        upairs, ip = unique_inverse(key)
        return cls(n=n, x=x, ix=ix, ip=ip, pair_t=upairs // m, pair_tx=upairs % m)


@dataclass(frozen=True)
class BGData:
    """Count-weighted distinct tuples with per-distinct-value indices (built once per fit).

    ``ux``: distinct frequencies with total counts ``Nx``; ``ut``: distinct T with counts ``NT``
    and count-weighted sums of x ``NTx``; ``utx``: distinct recencies. ``pos`` holds the tuples
    with ``x > 0`` (the only ones with a "dropped out after the last purchase" term in BG/NBD),
    ``every`` all tuples (MBG/NBD), each indexed by distinct x and distinct (T, t_x) pair.
    """

    x: FloatArray
    tx: FloatArray
    T: FloatArray
    n: FloatArray
    ux: FloatArray
    Nx: FloatArray
    ut: FloatArray
    NT: FloatArray
    NTx: FloatArray
    utx: FloatArray
    pos: _TupleSet
    every: _TupleSet
    total: float

    @classmethod
    def build(cls, x: Any, tx: Any, T: Any, n: Any = None) -> BGData:
        """Index arrays of equal length (``n`` defaults to ones)."""
        x, tx, T = _f(x).ravel(), _f(tx).ravel(), _f(T).ravel()
        n = np.ones_like(x) if n is None else _f(n).ravel()
        ux, ix = unique_inverse(x)
        ut, it = unique_inverse(T)
        utx, itx = unique_inverse(tx)
        m = max(utx.size, 1)
        pos = x > 0
        return cls(
            x=x,
            tx=tx,
            T=T,
            n=n,
            ux=ux,
            Nx=np.bincount(ix, weights=n, minlength=ux.size),
            ut=ut,
            NT=np.bincount(it, weights=n, minlength=ut.size),
            NTx=np.bincount(it, weights=n * x, minlength=ut.size),
            utx=utx,
            pos=_TupleSet.build(n[pos], x[pos], ix[pos], it[pos], itx[pos], m),
            every=_TupleSet.build(n, x, ix, it, itx, m),
            total=float(n.sum()),
        )

    def rescaled(self, scale: float) -> BGData:
        """The same tuples with recency and T multiplied by ``scale`` (indices reused)."""
        return dataclasses.replace(
            self, tx=self.tx * scale, T=self.T * scale, ut=self.ut * scale, utx=self.utx * scale
        )


# ---------------------------------------------------------------------------------------------
# BG/NBD (Fader, Hardie & Lee 2005)
# ---------------------------------------------------------------------------------------------
def bg_loglik_terms(params: Params, x: Any, tx: Any, T: Any) -> FloatArray:
    """Per-customer BG/NBD log-likelihood (plain elementwise form, any broadcastable shapes)."""
    r, alpha, a, b = params
    x, tx, T = _f(x), _f(tx), _f(T)
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    a2 = betaln(a, b + x) - betaln(a, b)
    a3 = -(r + x) * np.log(alpha + T)
    a4 = np.log(a) - np.log(b + np.maximum(x, 1.0) - 1.0) - (r + x) * np.log(alpha + tx)
    a4 = np.where(x > 0, a4, -np.inf)
    return np.asarray(a1 + a2 + np.logaddexp(a3, a4))


def _bg_like_core(params: Params, d: BGData, modified: bool) -> tuple[float, FloatArray]:
    """Total log-likelihood and its gradient w.r.t. (r, alpha, a, b) for BG/NBD or MBG/NBD.

    Both models share ``LL = A1 + A2 + A3 + log(1 + exp(u))`` with
    ``u = log a - log(b + x - k) + (r + x)(log(alpha + T) - log(alpha + t_x))``; BG/NBD has
    ``k = 1`` and the last term only for ``x > 0``, MBG/NBD has ``k = 0`` and it for every ``x``,
    plus ``A2 = log B(a, b + x + k') - log B(a, b)`` with ``k' = 0`` (BG) or ``1`` (MBG).
    """
    r, alpha, a, b = params
    ux, Nx = d.ux, d.Nx
    shift = 1.0 if modified else 0.0
    # Terms depending only on x, aggregated with the counts per distinct x.
    ll = float(
        Nx
        @ (
            gammaln(r + ux)
            - gammaln(r)
            + r * np.log(alpha)
            + betaln(a, b + ux + shift)
            - betaln(a, b)
        )
    )
    psi_abx = digamma(a + b + ux + shift)
    g_r = float(Nx @ (digamma(r + ux) - digamma(r) + np.log(alpha)))
    g_alpha = r / alpha * d.total
    g_a = float(Nx @ (digamma(a + b) - psi_abx))
    g_b = float(Nx @ (digamma(b + ux + shift) - digamma(b) + digamma(a + b) - psi_abx))
    # A3 = -(r + x) log(alpha + T), aggregated per distinct T.
    log_at = np.log(alpha + d.ut)
    inv_at = 1.0 / (alpha + d.ut)
    ll -= float(r * (d.NT @ log_at) + d.NTx @ log_at)
    g_r -= float(d.NT @ log_at)
    g_alpha -= float(r * (d.NT @ inv_at) + d.NTx @ inv_at)
    # log(1 + exp(u)) per tuple; (T, t_x) terms per distinct pair, then gathered.
    ts = d.every if modified else d.pos
    if ts.x.size:
        log_atx = np.log(alpha + d.utx)
        inv_atx = 1.0 / (alpha + d.utx)
        inv_bx = 1.0 / (b + np.maximum(ux - 1.0 + shift, 0.0))
        c_x = np.log(a) + np.log(inv_bx)
        dlog = (log_at[ts.pair_t] - log_atx[ts.pair_tx])[ts.ip]
        rx = r + ts.x
        u = c_x[ts.ix] + rx * dlog
        softplus = np.maximum(u, 0.0) + np.log1p(np.exp(-np.abs(u)))
        ll += float(np.dot(ts.n, softplus))
        with np.errstate(over="ignore"):
            nw = ts.n / (1.0 + np.exp(-u))  # n * expit(u)
        g_r += float(np.dot(nw, dlog))
        dinv = inv_at[ts.pair_t] - inv_atx[ts.pair_tx]
        g_alpha += float(np.dot(np.bincount(ts.ip, weights=nw * rx, minlength=dinv.size), dinv))
        g_a += float(nw.sum()) / a
        g_b -= float(np.dot(np.bincount(ts.ix, weights=nw, minlength=ux.size), inv_bx))
    return ll, np.array([g_r, g_alpha, g_a, g_b])


def bg_neg_loglik_grad(
    log_params: FloatArray, d: BGData, penalizer: float = 0.0, scale: float = 1.0
) -> tuple[float, FloatArray]:
    """Objective of the BG/NBD fit and its gradient in log-parameter space.

    ``-LL / N + penalizer * sum(p ** 2)``. The caller passes data in time units where the largest
    T is 1 (as lifetimes' ``BetaGeoFitter`` does), so ``alpha`` is penalised in those units;
    ``scale`` is informational.
    """
    return _objective(log_params, d, penalizer, scale, modified=False)


def mbg_neg_loglik_grad(
    log_params: FloatArray, d: BGData, penalizer: float = 0.0, scale: float = 1.0
) -> tuple[float, FloatArray]:
    """Objective of the MBG/NBD fit (as :func:`bg_neg_loglik_grad`)."""
    return _objective(log_params, d, penalizer, scale, modified=True)


def _objective(
    log_params: FloatArray, d: BGData, penalizer: float, scale: float, *, modified: bool
) -> tuple[float, FloatArray]:
    params = np.exp(np.asarray(log_params, dtype=np.float64))
    ll, grad = _bg_like_core(tuple(params), d, modified)
    if not np.isfinite(ll):
        return np.inf, np.zeros(4)
    value = -ll / d.total
    g_log = -grad * params / d.total
    if penalizer:
        # ``d`` is already time-scaled, so ``params`` are the scaled parameters
        value += penalizer * float(params @ params)
        g_log = g_log + 2.0 * penalizer * params * params
    return value, g_log


def bg_loglik_total(params: Params, d: BGData, modified: bool = False) -> float:
    """Total (count-weighted) log-likelihood of BG/NBD or MBG/NBD."""
    return _bg_like_core(params, d, modified)[0]


def bg_loglik_grad(params: Params, d: BGData, modified: bool = False) -> FloatArray:
    """Gradient of :func:`bg_loglik_total` w.r.t. the natural parameters."""
    return _bg_like_core(params, d, modified)[1]


_A_ONE = 1e-6
_A_STEP = 1e-4


def _average_around_one(func: Callable[..., FloatArray], params: Params, *args: Any) -> FloatArray:
    r, alpha, _, b = params
    lo = func((r, alpha, 1.0 - _A_STEP, b), *args)
    hi = func((r, alpha, 1.0 + _A_STEP, b), *args)
    return np.asarray(0.5 * (lo + hi))


def bg_conditional_expected(params: tuple[Any, ...], t: Any, x: Any, tx: Any, T: Any) -> FloatArray:
    r"""E[X(T, T + t) | x, t_x, T] of the BG/NBD model (FHL 2005 eq. 10), NaN-free.

    Uses Euler's transformation ``(1-z)^{r+x} 2F1(r+x, b+x; c; z) =
    (1-z)^{a-1} 2F1(a+b-1-r, a-1; c; z)`` with ``c = a+b+x-1`` and ``z = t/(alpha+T+t)``, which
    stays well conditioned for large x, and never takes the log of the hypergeometric term
    (lifetimes #442: ``x = 0`` with ``a + b < 1`` makes it negative). At the removable
    singularity ``a = 1`` the value is the mean of ``a = 1 -+ 1e-4`` (error ~1e-8).
    """
    r, alpha, a, b = params
    if np.ndim(a) == 0:
        if abs(a - 1.0) < _A_ONE:
            return _average_around_one(bg_conditional_expected, params, t, x, tx, T)
    else:  # per-row parameters (covariates): average around a = 1 only where needed
        a_arr = _f(a)
        near = np.abs(a_arr - 1.0) < _A_ONE
        if np.any(near):
            lo = bg_conditional_expected(
                (r, alpha, np.where(near, 1.0 - _A_STEP, a_arr), b), t, x, tx, T
            )
            hi = bg_conditional_expected(
                (r, alpha, np.where(near, 1.0 + _A_STEP, a_arr), b), t, x, tx, T
            )
            return np.asarray(np.where(near, 0.5 * (lo + hi), lo))
    t, x, tx, T = np.broadcast_arrays(_f(t), _f(x), _f(tx), _f(T))
    z = t / (alpha + T + t)
    c = a + b + x - 1.0
    hyp = _euler_hyp(a + b - 1.0 - r, a - 1.0, c, z)
    bracket = c * (1.0 - np.exp((a - 1.0) * np.log1p(-z)) * hyp)
    small_c = np.abs(c) < 1e-9
    if np.any(small_c):
        # lim_{c->0} c * (1 - (1-z)^{a-1} F(A, B; c; z)) = -(1-z)^{a-1} A B z 2F1(A+1, B+1; 2; z)
        A_, B_ = a + b - 1.0 - r, a - 1.0
        lim = -np.exp((a - 1.0) * np.log1p(-z)) * A_ * B_ * z * hyp2f1(A_ + 1, B_ + 1, 2.0, z)
        bracket = np.where(small_c, lim, bracket)
    numer = bracket / (a - 1.0)
    log_div = (
        np.log(a)
        - np.log(b + np.maximum(x, 1.0) - 1.0)
        + (r + x) * (np.log(alpha + T) - np.log(alpha + tx))
    )
    p_alive = np.where(x > 0, expit(-log_div), 1.0)
    return np.asarray(np.where(t > 0, numer * p_alive, 0.0))


def _euler_hyp(A: Any, B: Any, C: FloatArray, z: FloatArray) -> FloatArray:
    """``2F1(A, B; C; z)`` for ``0 <= z < 1``; scipy first, the power series where it fails.

    scipy returns ``inf`` for some integer ``C - A - B`` near ``z = 1`` (e.g. ``2F1(2, 1; 101;
    0.96)``); the series converges there (``z < 1``) and is summed directly.
    """
    Cs = np.where(np.abs(C) < 1e-9, 1.0, C)
    with np.errstate(invalid="ignore", over="ignore"):
        out = np.asarray(hyp2f1(A, B, Cs, z), dtype=np.float64)
    bad = ~np.isfinite(out) & (z < 1.0)
    if np.any(bad):
        out = np.array(out, copy=True)
        a_bad = np.broadcast_to(A, out.shape)[bad]
        b_bad = np.broadcast_to(B, out.shape)[bad]
        c_bad = np.broadcast_to(Cs, out.shape)[bad]
        out[bad] = _hyp2f1_series(a_bad, b_bad, c_bad, np.broadcast_to(z, out.shape)[bad])
    return out


def _hyp2f1_series(
    A: Any, B: Any, C: FloatArray, z: FloatArray, max_terms: int = 200_000
) -> FloatArray:
    total = np.ones_like(z)
    term = np.ones_like(z)
    active = np.ones(z.shape, dtype=bool)
    for k in range(max_terms):
        term = np.where(active, term * (A + k) * (B + k) / ((C + k) * (k + 1.0)) * z, 0.0)
        total = total + term
        active = np.abs(term) > 1e-17 * np.abs(total)
        if not active.any():
            break
    return total


def bg_probability_alive(params: Params, x: Any, tx: Any, T: Any) -> FloatArray:
    r"""P(alive | x, t_x, T) of the BG/NBD model (Fader, Hardie & Lee 2008, note 021)."""
    r, alpha, a, b = params
    x, tx, T = np.broadcast_arrays(_f(x), _f(tx), _f(T))
    log_div = (
        np.log(a)
        - np.log(b + np.maximum(x, 1.0) - 1.0)
        + (r + x) * (np.log(alpha + T) - np.log(alpha + tx))
    )
    return np.asarray(np.where(x > 0, expit(-log_div), 1.0))


def _nbd_logpmf(r: float, alpha: float, n: FloatArray, t: FloatArray) -> FloatArray:
    """Log NBD(n; t): log P(N(t) = n) with N(t) ~ Poisson(lambda t), lambda ~ Gamma(r, alpha)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        log_z = np.where(n > 0, n * (np.log(t) - np.log(alpha + t)), 0.0)
        return np.asarray(
            gammaln(r + n)
            - gammaln(r)
            - gammaln(n + 1.0)
            + r * (np.log(alpha) - np.log(alpha + t))
            + log_z
        )


def _nbd_sf(r: float, alpha: float, n: FloatArray, t: FloatArray) -> FloatArray:
    """P(N(t) >= n) of the NBD (1 for n = 0)."""
    z = t / (alpha + t)
    return np.asarray(np.where(n > 0, betainc(np.maximum(n, 1.0), r, z), 1.0))


def bg_pmf(params: Params, n: Any, t: Any) -> FloatArray:
    r"""P(X(t) = n) of the BG/NBD model (FHL 2005 eq. 8)."""
    r, alpha, a, b = params
    n, t = np.broadcast_arrays(_f(n), _f(t))
    first = np.exp(betaln(a, b + n) - betaln(a, b) + _nbd_logpmf(r, alpha, n, t))
    second = np.where(
        n > 0,
        np.exp(betaln(a + 1.0, np.maximum(b + n - 1.0, 1e-300)) - betaln(a, b))
        * _nbd_sf(r, alpha, n, t),
        0.0,
    )
    return np.asarray(first + second)


# ---------------------------------------------------------------------------------------------
# Modified BG/NBD (Batislam, Denizel & Filiztekin 2007)
# ---------------------------------------------------------------------------------------------
def mbg_loglik_terms(params: Params, x: Any, tx: Any, T: Any) -> FloatArray:
    """Per-customer MBG/NBD log-likelihood."""
    r, alpha, a, b = params
    x, tx, T = _f(x), _f(tx), _f(T)
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    a2 = betaln(a, b + x + 1.0) - betaln(a, b)
    a3 = -(r + x) * np.log(alpha + T)
    u = np.log(a) - np.log(b + x) + (r + x) * (np.log(alpha + T) - np.log(alpha + tx))
    return np.asarray(a1 + a2 + a3 + np.logaddexp(0.0, u))


def mbg_probability_alive(params: Params, x: Any, tx: Any, T: Any) -> FloatArray:
    """P(alive | x, t_x, T) of the MBG/NBD model (Batislam et al. 2007)."""
    r, alpha, a, b = params
    x, tx, T = np.broadcast_arrays(_f(x), _f(tx), _f(T))
    u = np.log(a) - np.log(b + x) + (r + x) * (np.log(alpha + T) - np.log(alpha + tx))
    return np.asarray(expit(-u))


def mbg_conditional_expected(params: Params, t: Any, x: Any, tx: Any, T: Any) -> FloatArray:
    """E[X(T, T + t) | x, t_x, T] of the MBG/NBD model (Euler-transformed as for BG/NBD)."""
    r, alpha, a, b = params
    if abs(a - 1.0) < _A_ONE:
        return _average_around_one(mbg_conditional_expected, params, t, x, tx, T)
    t, x, tx, T = np.broadcast_arrays(_f(t), _f(x), _f(tx), _f(T))
    z = t / (alpha + T + t)
    c = a + b + x
    hyp = _euler_hyp(a + b - r, a - 1.0, c, z)
    numer = c / (a - 1.0) * (1.0 - np.exp((a - 1.0) * np.log1p(-z)) * hyp)
    return np.asarray(np.where(t > 0, numer * mbg_probability_alive(params, x, tx, T), 0.0))


def mbg_pmf(params: Params, n: Any, t: Any) -> FloatArray:
    """P(X(t) = n) of the MBG/NBD model (dropout possible at time 0)."""
    r, alpha, a, b = params
    n, t = np.broadcast_arrays(_f(n), _f(t))
    first = np.exp(betaln(a, b + n + 1.0) - betaln(a, b) + _nbd_logpmf(r, alpha, n, t))
    second = np.exp(betaln(a + 1.0, b + n) - betaln(a, b)) * _nbd_sf(r, alpha, n, t)
    return np.asarray(first + second)


# ---------------------------------------------------------------------------------------------
# Pareto/NBD (Schmittlein, Morrison & Colombo 1987; Fader & Hardie 2005 note 009)
# ---------------------------------------------------------------------------------------------
def log_hyp2f1_c_eq_a_plus_1(a: Any, b: Any, z: Any) -> FloatArray:
    r"""``log 2F1(a, b; a + 1; z)`` for ``a, b > 0`` and ``0 <= z < 1``.

    scipy's ``hyp2f1`` first; where it overflows or fails, the Euler integral
    ``2F1(a, b; a+1; z) = \int_0^1 (1 - z u^{1/a})^{-b} du`` by Gauss-Legendre in log space.
    """
    a, b, z = np.broadcast_arrays(_f(a), _f(b), _f(z))
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        out = np.log(hyp2f1(a, b, a + 1.0, z))
    bad = ~np.isfinite(out)
    if np.any(bad):
        ab, bb, zb = a[bad], b[bad], z[bad]
        uu = _GL_U[None, :] ** (1.0 / ab[:, None])
        logs = -bb[:, None] * np.log1p(-zb[:, None] * uu) + _GL_LOGW[None, :]
        out = np.array(out, copy=True)
        out[bad] = logsumexp(logs, axis=1)
    return np.asarray(out)


def _pnbd_log_a0(params: Params, x: FloatArray, tx: FloatArray, T: FloatArray) -> FloatArray:
    """Log A_0 of FH note 009 eq. (19)/(20); -inf when T == t_x."""
    l1, l2 = _pnbd_log_term(params, x, tx), _pnbd_log_term(params, x, T)
    with np.errstate(divide="ignore", invalid="ignore"):
        diff = np.minimum(l2 - l1, 0.0)
        out = l1 + np.log(-np.expm1(diff))
    return np.asarray(np.where(tx < T, out, -np.inf))


def _pnbd_parts(
    params: Params, x: Any, tx: Any, T: Any
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(log alive-term, log dead-term, log-likelihood) per customer, both terms with A1."""
    r, alpha, s, beta = params
    x, tx, T = np.broadcast_arrays(_f(x), _f(tx), _f(T))
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha) + s * np.log(beta)
    alive = a1 - (r + x) * np.log(alpha + T) - s * np.log(beta + T)
    dead = a1 + np.log(s) - np.log(r + s + x) + _pnbd_log_a0(params, x, tx, T)
    return alive, dead, np.logaddexp(alive, dead)


def pnbd_loglik_terms(params: Params, x: Any, tx: Any, T: Any) -> FloatArray:
    r"""Per-customer Pareto/NBD log-likelihood (FH note 009 eq. 18), in log space."""
    return _pnbd_parts(params, x, tx, T)[2]


@dataclass(frozen=True)
class PairIndex:
    """Distinct ``(x, t_x)`` and ``(x, T)`` pairs of a :class:`BGData` (Pareto/NBD terms)."""

    x1: FloatArray
    t1: FloatArray
    inv1: FloatArray
    x2: FloatArray
    t2: FloatArray
    inv2: FloatArray

    @classmethod
    def build(cls, d: BGData) -> PairIndex:
        """Index the distinct pairs once per fit."""
        u1, inv1 = _unique_rows(np.stack([d.x, d.tx], axis=1))
        u2, inv2 = _unique_rows(np.stack([d.x, d.T], axis=1))
        return cls(u1[:, 0], u1[:, 1], inv1, u2[:, 0], u2[:, 1], inv2)


def _pnbd_log_term(params: Params, x: FloatArray, t: FloatArray) -> FloatArray:
    """``log 2F1(r+s+x, b; r+s+x+1; z) - (r+s+x) log(big + t)`` per pair (the A_0 terms)."""
    r, alpha, s, beta = params
    if alpha >= beta:
        big, diff_, second = alpha, alpha - beta, np.full_like(x, s + 1.0)
    else:
        big, diff_, second = beta, beta - alpha, r + x
    return np.asarray(
        log_hyp2f1_c_eq_a_plus_1(r + s + x, second, diff_ / (big + t))
        - (r + s + x) * np.log(big + t)
    )


def pnbd_loglik_total(params: Params, d: BGData, pairs: PairIndex | None = None) -> float:
    """Count-weighted Pareto/NBD log-likelihood.

    Hypergeometric terms are evaluated once per distinct ``(x, t_x)`` and ``(x, T)`` pair, the
    "alive" term once per distinct ``(x, T)`` pair, the gamma functions once per distinct x.
    """
    pairs = pairs or PairIndex.build(d)
    r, alpha, s, beta = params
    l1 = _pnbd_log_term(params, pairs.x1, pairs.t1)[pairs.inv1]
    x2, t2 = pairs.x2, pairs.t2
    l2 = _pnbd_log_term(params, x2, t2)
    alive2 = -(r + x2) * np.log(alpha + t2) - s * np.log(beta + t2)
    const2 = np.log(s) - np.log(r + s + x2)
    with np.errstate(divide="ignore", invalid="ignore"):
        # log A_0 = l1 + log(1 - exp(l2 - l1)); -inf when T == t_x (then l1 == l2 exactly)
        log_a0 = l1 + np.log(-np.expm1(np.minimum(l2[pairs.inv2] - l1, 0.0)))
        alive = alive2[pairs.inv2]
        dead = const2[pairs.inv2] + log_a0
        gap = alive - dead
        mix = np.where(gap > 0, alive, dead) + np.log1p(np.exp(-np.abs(gap)))
    ll = float(np.dot(d.n, mix))
    ll += float(d.Nx @ (gammaln(r + d.ux) - gammaln(r)))
    ll += d.total * float(r * np.log(alpha) + s * np.log(beta))
    return ll


def _composite_rule(breaks: tuple[float, ...], order: int) -> tuple[FloatArray, FloatArray]:
    """Gauss-Legendre nodes and weights of ``order`` points on each panel between ``breaks``."""
    x, w = np.polynomial.legendre.leggauss(order)
    lo, hi = np.array(breaks[:-1])[:, None], np.array(breaks[1:])[:, None]
    return (lo + 0.5 * (x + 1.0) * (hi - lo)).ravel(), (0.5 * w * (hi - lo)).ravel()


#: Composite Gauss-Legendre rule (panels refined towards 1, where the integrand of
#: 2F1(a, b; a + 1; z) peaks for z near 1) for its parameter derivatives, in w = v^(1/4).
_GRAD_W, _GRAD_WEIGHTS = _composite_rule((0.0, 0.5, 0.8, 0.95, 0.99, 0.999, 1.0), 12)
_GRAD_M = 4.0
_GRAD_LOGW = np.log(_GRAD_WEIGHTS * _GRAD_M * _GRAD_W ** (_GRAD_M - 1.0))
_GRAD_LOG_V = _GRAD_M * np.log(_GRAD_W)  # log v at the nodes
_GRAD_CHUNK = 8192


def log_hyp2f1_grad(a: Any, b: Any, z: Any) -> tuple[FloatArray, FloatArray, FloatArray]:
    r"""Derivatives of ``log 2F1(a, b; a + 1; z)`` in ``a``, ``b``, ``z`` (a, b > 0, 0 <= z < 1).

    From the Euler integral :math:`F = \int_0^1 K\,dv`, :math:`K = (1 - z v^{1/a})^{-b}`,
    differentiated under the integral sign: with :math:`y = v^{1/a}` and :math:`E` the
    average weighted by :math:`K`,

    .. math::

        \partial_b \log F = E[-\log(1 - z y)],\quad
        \partial_z \log F = E\Bigl[\frac{b y}{1 - z y}\Bigr],\quad
        \partial_a \log F = E\Bigl[-\frac{b z y \log v}{a^2 (1 - z y)}\Bigr].

    The integrals are composite Gauss-Legendre sums (72 points) in :math:`w = v^{1/4}` (which
    removes the :math:`v^{1/a}` end-point singularity), in log space, in chunks of rows;
    relative error below 2e-6 against finite differences of scipy's ``hyp2f1`` over
    a, b in [0.3, 300] (b <= a + 1, as in the Pareto/NBD terms) and z in [0, 0.99].
    """
    a, b, z = (np.ravel(v) for v in np.broadcast_arrays(_f(a), _f(b), _f(z)))
    out = [np.empty(a.size) for _ in range(3)]
    for start in range(0, a.size, _GRAD_CHUNK):
        sl = slice(start, start + _GRAD_CHUNK)
        ac, bc, zc = a[sl, None], b[sl, None], z[sl, None]
        log_v = _GRAD_LOG_V[None, :]
        y = np.exp(log_v / ac)
        zy = zc * y
        log1m = np.log1p(-zy)
        logk = _GRAD_LOGW[None, :] - bc * log1m
        p = np.exp(logk - logk.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        ry = p * y / (1.0 - zy)
        out[0][sl] = -(b[sl] * z[sl] / (a[sl] * a[sl])) * (ry @ log_v[0])
        out[1][sl] = -np.einsum("ij,ij->i", p, log1m)
        out[2][sl] = b[sl] * ry.sum(axis=1)
    return out[0], out[1], out[2]


def _pnbd_log_term_grad(params: Params, x: FloatArray, t: FloatArray) -> FloatArray:
    """Gradient (pairs x 4) in ``(r, alpha, s, beta)`` of ``log 2F1(...) - a log(big + t)``."""
    r, alpha, s, beta = params
    a = r + s + x
    if alpha >= beta:
        big, b = alpha + t, np.full_like(x, s + 1.0)
        z = (alpha - beta) / big
    else:
        big, b = beta + t, r + x
        z = (beta - alpha) / big
    ga, gb, gz = log_hyp2f1_grad(a, b, z)
    log_big = np.log(big)
    if alpha >= beta:
        cols = (ga - log_big, gz * (beta + t) / big**2 - a / big, ga + gb - log_big, -gz / big)
    else:
        cols = (ga + gb - log_big, -gz / big, ga - log_big, gz * (alpha + t) / big**2 - a / big)
    return np.stack(cols, axis=1)


def pnbd_loglik_grad(params: Params, d: BGData, pairs: PairIndex | None = None) -> FloatArray:
    r"""Gradient of :func:`pnbd_loglik_total` in ``(r, alpha, s, beta)`` (analytic).

    With :math:`\pi` the posterior weight of the "alive" term, each account contributes
    :math:`\pi \nabla \log L_{alive} + (1 - \pi) \nabla \log L_{dead}`; in the dead term
    :math:`\nabla \log A_0 = (\nabla l_1 - q \nabla l_2) / (1 - q)`, :math:`q = e^{l_2 - l_1}`,
    where :math:`l_j` are the log hypergeometric terms at :math:`t_x` and :math:`T`, whose
    parameter derivatives come from :func:`log_hyp2f1_grad`.
    """
    pairs = pairs or PairIndex.build(d)
    r, alpha, s, beta = params
    x1, t1, inv1, x2, t2, inv2 = pairs.x1, pairs.t1, pairs.inv1, pairs.x2, pairs.t2, pairs.inv2
    l1 = _pnbd_log_term(params, x1, t1)[inv1]
    l2 = _pnbd_log_term(params, x2, t2)[inv2]
    x = d.x
    alive = (-(r + x2) * np.log(alpha + t2) - s * np.log(beta + t2))[inv2]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        q = np.exp(np.minimum(l2 - l1, 0.0))
        dead = np.log(s) - np.log(r + s + x) + l1 + np.log1p(-q)
        n_dead = d.n * np.where(np.isfinite(dead), expit(dead - alive), 0.0)  # n (1 - pi)
        c1 = np.where(n_dead > 0, n_dead / (1.0 - q), 0.0)
    # per-account weights summed per pair; the pair gradients are (pairs x 4) matrices
    n_alive = d.n - n_dead
    w1 = np.bincount(inv1, weights=c1, minlength=x1.size)
    w2 = np.bincount(inv2, weights=-c1 * q, minlength=x2.size)
    grad = w1 @ _pnbd_log_term_grad(params, x1, t1) + w2 @ _pnbd_log_term_grad(params, x2, t2)
    a2 = np.bincount(inv2, weights=n_alive, minlength=x2.size)
    grad += a2 @ np.stack(
        [-np.log(alpha + t2), -(r + x2) / (alpha + t2), -np.log(beta + t2), -s / (beta + t2)],
        axis=1,
    )
    inv_rsx = float(n_dead @ (1.0 / (r + s + x)))
    grad[0] += -inv_rsx + float(d.Nx @ (digamma(r + d.ux) - digamma(r))) + d.total * math.log(alpha)
    grad[1] += d.total * r / alpha
    grad[2] += float(n_dead.sum()) / s - inv_rsx + d.total * math.log(beta)
    grad[3] += d.total * s / beta
    return np.asarray(grad)


def pnbd_probability_alive(params: Params, x: Any, tx: Any, T: Any) -> FloatArray:
    """P(alive | x, t_x, T) of the Pareto/NBD model (FH note 009 eq. 36-37)."""
    alive, dead, _ = _pnbd_parts(params, x, tx, T)
    return np.asarray(expit(alive - dead))


def pnbd_conditional_expected(params: Params, t: Any, x: Any, tx: Any, T: Any) -> FloatArray:
    r"""E[X(T, T + t) | x, t_x, T] of the Pareto/NBD model (FH note 009 eq. 41)."""
    r, alpha, s, beta = params
    t, x, tx, T = np.broadcast_arrays(_f(t), _f(x), _f(tx), _f(T))
    p_alive = pnbd_probability_alive(params, x, tx, T)
    log_ratio = np.log(beta + T) - np.log(beta + T + t)  # <= 0
    tail = -log_ratio if abs(s - 1.0) < 1e-10 else -np.expm1((s - 1.0) * log_ratio) / (s - 1.0)
    return np.asarray(p_alive * (r + x) * (beta + T) / (alpha + T) * tail)


def pnbd_expected(params: Params, t: Any) -> FloatArray:
    """E[X(t)] of the Pareto/NBD model for a new customer (FH note 009 eq. 27)."""
    r, alpha, s, beta = params
    t = _f(t)
    log_ratio = np.log(beta) - np.log(beta + t)
    tail = -log_ratio if abs(s - 1.0) < 1e-10 else -np.expm1((s - 1.0) * log_ratio) / (s - 1.0)
    return np.asarray(r * beta / alpha * tail)


def pnbd_pmf(params: Params, n: Any, t: Any) -> FloatArray:
    r"""P(X(t) = n) of the Pareto/NBD model.

    With lifetime ``tau`` (Pareto II: ``S(tau) = (beta/(beta+tau))^s``) independent of the purchase
    rate, ``P(X(t) = n) = S(t) NBD(n; t) + \int_0^t f(tau) NBD(n; tau) d tau``; the integral is
    taken over ``u = F(tau)`` by 96-point Gauss-Legendre quadrature (smooth integrand).
    """
    r, alpha, s, beta = params
    n, t = np.broadcast_arrays(_f(n), _f(t))
    shape = n.shape
    n1, t1 = n.ravel(), t.ravel()
    log_surv = s * (np.log(beta) - np.log(beta + t1))
    first = np.exp(log_surv + _nbd_logpmf(r, alpha, n1, t1))
    f_t = -np.expm1(log_surv)  # F(t)
    u = f_t[:, None] * _GL_U[None, :]
    tau = beta * np.expm1(-np.log1p(-u) / s)
    pmf = np.exp(_nbd_logpmf(r, alpha, n1[:, None], tau))
    integral = f_t * (pmf @ (0.5 * _GL_WEIGHTS))
    return np.asarray(np.where(t1 > 0, first + integral, (n1 == 0) * 1.0).reshape(shape))


# ---------------------------------------------------------------------------------------------
# Gamma-Gamma spend model (Fader, Hardie & Lee 2005, "RFM and CLV"; Fader & Hardie note 025)
# ---------------------------------------------------------------------------------------------
def gg_loglik_terms(params: Params, x: Any, m: Any) -> FloatArray:
    r"""Per-customer Gamma-Gamma log-likelihood of the mean spend ``m`` over ``x`` purchases."""
    p, q, v = params
    x, m = _f(x), _f(m)
    px = p * x
    return np.asarray(
        gammaln(px + q)
        - gammaln(px)
        - gammaln(q)
        + q * np.log(v)
        + (px - 1.0) * np.log(m)
        + px * np.log(x)
        - (px + q) * np.log(x * m + v)
    )


def gg_loglik_grad(params: Params, x: FloatArray, m: FloatArray, n: FloatArray) -> FloatArray:
    """Gradient of the count-weighted Gamma-Gamma log-likelihood w.r.t. (p, q, v)."""
    p, q, v = params
    px = p * x
    log_xmv = np.log(x * m + v)
    psi = digamma(px + q)
    g_p = n @ (x * (psi - digamma(px) + np.log(m) + np.log(x) - log_xmv))
    g_q = n @ (psi - digamma(q) + np.log(v) - log_xmv)
    g_v = n @ (q / v - (px + q) / (x * m + v))
    return np.array([g_p, g_q, g_v], dtype=np.float64)


def gg_neg_loglik_grad(
    log_params: FloatArray, x: FloatArray, m: FloatArray, n: FloatArray, penalizer: float = 0.0
) -> tuple[float, FloatArray]:
    """``-LL / N + penalizer * sum(params ** 2)`` and its gradient in log-parameter space."""
    params = np.exp(np.asarray(log_params, dtype=np.float64))
    total = float(n.sum())
    ll = float(n @ gg_loglik_terms(tuple(params), x, m))
    if not np.isfinite(ll):
        return np.inf, np.zeros(3)
    grad = gg_loglik_grad(tuple(params), x, m, n)
    value = -ll / total + penalizer * float(params @ params)
    g_log = -grad * params / total + 2.0 * penalizer * params * params
    return value, g_log


@dataclass(frozen=True)
class GGData:
    """Count-weighted ``(x, m)`` pairs with the parameter-free parts of the likelihood.

    Everything that does not depend on ``(p, q, v)`` is summed once per fit: the terms in
    ``gammaln(p x + q) - gammaln(p x)`` only depend on the (few) distinct frequencies ``ux``
    (with total counts ``Nx``), and ``(p x - 1) log m + p x log x`` reduces to three weighted
    sums. An evaluation then costs one ``log`` and one division over the pairs.
    """

    x: FloatArray
    n: FloatArray
    xm: FloatArray
    nx: FloatArray
    ux: FloatArray
    Nx: FloatArray
    sum_nx_logm_logx: float
    sum_n_logm: float
    total: float

    @classmethod
    def build(cls, x: Any, m: Any, n: Any = None) -> GGData:
        """Index arrays of equal length (``x > 0``, ``m > 0``; ``n`` defaults to ones)."""
        x, m = _f(x).ravel(), _f(m).ravel()
        n = np.ones_like(x) if n is None else _f(n).ravel()
        ux, ix = unique_inverse(x)
        log_m = np.log(m)
        return cls(
            x=x,
            n=n,
            xm=x * m,
            nx=n * x,
            ux=ux,
            Nx=np.bincount(ix.ravel(), weights=n, minlength=ux.size),
            sum_nx_logm_logx=float((n * x) @ (log_m + np.log(x))),
            sum_n_logm=float(n @ log_m),
            total=float(n.sum()),
        )


def gg_neg_loglik_grad_data(
    log_params: FloatArray, d: GGData, penalizer: float = 0.0
) -> tuple[float, FloatArray]:
    """:func:`gg_neg_loglik_grad` on prepared :class:`GGData` (same value and gradient)."""
    params = np.exp(np.asarray(log_params, dtype=np.float64))
    p, q, v = (float(c) for c in params)
    pu = p * d.ux
    log_xmv = np.log(d.xm + v)
    sum_n_log = float(d.n @ log_xmv)
    sum_nx_log = float(d.nx @ log_xmv)
    N = d.total
    ll = (
        float(d.Nx @ (gammaln(pu + q) - gammaln(pu)))
        - N * gammaln(q)
        + N * q * np.log(v)
        + p * d.sum_nx_logm_logx
        - d.sum_n_logm
        - p * sum_nx_log
        - q * sum_n_log
    )
    if not np.isfinite(ll):
        return np.inf, np.zeros(3)
    psi = digamma(pu + q)
    g_p = float((d.Nx * d.ux) @ (psi - digamma(pu))) + d.sum_nx_logm_logx - sum_nx_log
    g_q = float(d.Nx @ psi) - N * digamma(q) + N * np.log(v) - sum_n_log
    g_v = N * q / v - float(d.n @ ((p * d.x + q) / (d.xm + v)))
    grad = np.array([g_p, g_q, g_v], dtype=np.float64)
    value = -ll / N + penalizer * float(params @ params)
    g_log = -grad * params / N + 2.0 * penalizer * params * params
    return value, g_log


def gg_expected_spend(params: Params, x: Any, m: Any) -> FloatArray:
    r"""Conditional expected mean spend ``E[Z | x, m]`` (FHL 2005 "RFM and CLV" eq. 5)."""
    p, q, v = params
    x, m = np.broadcast_arrays(_f(x), _f(m))
    denominator = p * x + q - 1.0
    spent = np.where(x > 0, x * m, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = p * (v + spent) / denominator
    # finite only when p x + q > 1 (x = 0: the population mean, which needs q > 1)
    return np.asarray(np.where(denominator > 0, value, np.nan))


# ---------------------------------------------------------------------------------------------
# Generic numeric helpers
# ---------------------------------------------------------------------------------------------
def numeric_hessian(func: Callable[[FloatArray], float], x0: FloatArray) -> FloatArray:
    """Central-difference Hessian of a scalar function (relative steps)."""
    x0 = np.asarray(x0, dtype=np.float64)
    k = x0.size
    h = 1e-4 * np.maximum(np.abs(x0), 1e-3)
    hess = np.empty((k, k))
    f0 = func(x0)
    for i in range(k):
        ei = np.zeros(k)
        ei[i] = h[i]
        hess[i, i] = (func(x0 + ei) - 2.0 * f0 + func(x0 - ei)) / h[i] ** 2
        for j in range(i + 1, k):
            ej = np.zeros(k)
            ej[j] = h[j]
            val = (
                func(x0 + ei + ej) - func(x0 + ei - ej) - func(x0 - ei + ej) + func(x0 - ei - ej)
            ) / (4.0 * h[i] * h[j])
            hess[i, j] = hess[j, i] = val
    return hess


def jacobian_hessian(grad: Callable[[FloatArray], FloatArray], x0: FloatArray) -> FloatArray:
    """Hessian as the symmetrised forward-difference Jacobian of an analytic gradient."""
    x0 = np.asarray(x0, dtype=np.float64)
    k = x0.size
    h = 1e-6 * np.maximum(np.abs(x0), 1e-3)
    g0 = grad(x0)
    hess = np.empty((k, k))
    for i in range(k):
        e = np.zeros(k)
        e[i] = h[i]
        hess[:, i] = (grad(x0 + e) - g0) / h[i]
    return np.asarray(0.5 * (hess + hess.T))


# ---------------------------------------------------------------------------------------------
# BG/NBD with time-invariant covariates (Fader & Hardie 2007, note 019)
# ---------------------------------------------------------------------------------------------
def _unique_rows(rows: FloatArray) -> tuple[FloatArray, np.ndarray]:
    """``np.unique(rows, axis=0, return_inverse=True)``, through one int64 key when possible.

    Each column is coded by its own (1-D, fast) ``np.unique``; the codes combine into a
    mixed-radix integer unless the product of the column cardinalities overflows int64.
    """
    codes, uniques, radix = [], [], 1
    for j in range(rows.shape[1]):
        u, c = unique_inverse(rows[:, j])
        uniques.append(u)
        codes.append(c.astype(np.int64))
        radix *= max(u.size, 1)
    if radix >= 2**62:
        u_rows, inverse = np.unique(rows, axis=0, return_inverse=True)
        return u_rows, np.asarray(inverse).ravel()
    key = np.zeros(rows.shape[0], dtype=np.int64)
    for c, u in zip(codes, uniques, strict=True):
        key = key * max(u.size, 1) + c
    ukey, inverse = unique_inverse(key)
    out = np.empty((ukey.size, rows.shape[1]))
    rest = ukey.copy()
    for j in range(rows.shape[1] - 1, -1, -1):
        size = max(uniques[j].size, 1)
        out[:, j] = uniques[j][rest % size]
        rest //= size
    return out, inverse


@dataclass(frozen=True)
class _CovCounts:
    """Weights of a covariate fit summed per distinct value, pattern and pair.

    ``Nx`` per distinct x, ``Np`` per purchase pattern, ``Nq`` per (x, dropout pattern) pair,
    ``Nt`` per (purchase pattern, T) pair and ``NXt`` the sums of ``n x`` there.
    """

    Nx: FloatArray
    Np: FloatArray
    Nq: FloatArray
    Nt: FloatArray
    NXt: FloatArray


@dataclass(frozen=True)
class _CovRepeaters:
    """The groups with ``x > 0``: weight, frequency and their pair indices."""

    n: FloatArray
    x: FloatArray
    ixp: np.ndarray
    it: np.ndarray
    itx: np.ndarray


@dataclass(frozen=True)
class BGCovData:
    """Count-weighted distinct (covariates x tuple) groups of a BG/NBD covariate fit.

    ``zp`` (groups x k_p) are the purchase covariates, ``zd`` (groups x k_d) the dropout ones.
    ``upz``/``ipz`` index the distinct purchase-covariate rows (``alpha_i`` is computed per
    distinct row and gathered), ``ux``/``ix`` the distinct frequencies (the ``r``-only special
    functions) and ``pair_x``/``pair_zd``/``ixp`` the distinct (frequency, dropout covariates)
    pairs (the ``a, b`` special functions). With categorical covariates these are small.
    ``counts`` holds the weights summed per distinct value, pattern and pair (every term of
    the likelihood that is linear in the groups is evaluated on those), ``pos`` the groups
    with ``x > 0``, the only ones with a per-group nonlinear term.
    """

    x: FloatArray
    tx: FloatArray
    T: FloatArray
    n: FloatArray
    zp: FloatArray
    zd: FloatArray
    upz: FloatArray
    ipz: np.ndarray
    ux: FloatArray
    ix: np.ndarray
    pair_x: FloatArray
    pair_zd: FloatArray
    ixp: np.ndarray
    t_pattern: np.ndarray
    t_value: FloatArray
    it: np.ndarray
    tx_pattern: np.ndarray
    tx_value: FloatArray
    itx: np.ndarray
    counts: _CovCounts
    pos: _CovRepeaters
    total: float

    @classmethod
    def build(cls, x: Any, tx: Any, T: Any, n: Any, zp: Any, zd: Any) -> BGCovData:
        x, tx, T, n = (np.ascontiguousarray(_f(v).ravel()) for v in (x, tx, T, n))
        zp = np.ascontiguousarray(_f(zp).reshape(x.size, -1))
        zd = np.ascontiguousarray(_f(zd).reshape(x.size, -1))
        ux, ix = unique_inverse(x)
        if zp.shape[1]:
            upz, ipz = _unique_rows(zp)
        else:
            upz, ipz = np.zeros((1, 0)), np.zeros(x.size, dtype=np.int64)
        upair, ixp = _unique_rows(np.concatenate([x[:, None], zd], axis=1))

        def by_pattern(values: FloatArray) -> tuple[np.ndarray, FloatArray, np.ndarray]:
            """Distinct (purchase pattern, value) pairs: pattern and value of each, row index."""
            uv, iv = unique_inverse(values)
            upair_v, inverse = unique_inverse(ipz * uv.size + iv)
            return upair_v // uv.size, uv[upair_v % uv.size], inverse

        t_pattern, t_value, it = by_pattern(T)
        tx_pattern, tx_value, itx = by_pattern(tx)
        counts = _CovCounts(
            Nx=np.bincount(ix, weights=n, minlength=ux.size),
            Np=np.bincount(ipz, weights=n, minlength=upz.shape[0]),
            Nq=np.bincount(ixp, weights=n, minlength=upair.shape[0]),
            Nt=np.bincount(it, weights=n, minlength=t_value.size),
            NXt=np.bincount(it, weights=n * x, minlength=t_value.size),
        )
        p = x > 0
        pos = _CovRepeaters(n=n[p], x=x[p], ixp=ixp[p], it=it[p], itx=itx[p])
        return cls(
            x=x,
            tx=tx,
            T=T,
            n=n,
            zp=zp,
            zd=zd,
            upz=np.ascontiguousarray(upz),
            ipz=ipz,
            ux=ux,
            ix=ix.ravel(),
            pair_x=np.ascontiguousarray(upair[:, 0]),
            pair_zd=np.ascontiguousarray(upair[:, 1:]),
            ixp=ixp.ravel(),
            t_pattern=t_pattern,
            t_value=t_value,
            it=it,
            tx_pattern=tx_pattern,
            tx_value=tx_value,
            itx=itx,
            counts=counts,
            pos=pos,
            total=float(n.sum()),
        )

    def rescaled(self, scale: float) -> BGCovData:
        """Recency and T multiplied by ``scale``."""
        return dataclasses.replace(
            self,
            tx=self.tx * scale,
            T=self.T * scale,
            t_value=self.t_value * scale,
            tx_value=self.tx_value * scale,
        )

    def standardized(
        self, mp: FloatArray, sp: FloatArray, md: FloatArray, sd: FloatArray
    ) -> BGCovData:
        """Covariates centred and scaled column by column (indices reused)."""
        return dataclasses.replace(
            self,
            zp=(self.zp - mp) / sp,
            zd=(self.zd - md) / sd,
            upz=(self.upz - mp) / sp,
            pair_zd=(self.pair_zd - md) / sd,
        )


def bg_cov_row_params(
    base: Params, g: FloatArray, da: FloatArray, db: FloatArray, zp: FloatArray, zd: FloatArray
) -> tuple[Any, FloatArray, FloatArray, FloatArray]:
    r"""Per-row ``(r, alpha_i, a_i, b_i)`` of the covariate BG/NBD.

    :math:`\alpha_i = \alpha e^{-g \cdot z_i}`, :math:`a_i = a e^{d_a \cdot z_i}`,
    :math:`b_i = b e^{d_b \cdot z_i}`.
    """
    r, alpha, a, b = base
    with np.errstate(over="ignore", invalid="ignore"):
        return (
            r,
            alpha * np.exp(-(zp @ g)),
            a * np.exp(zd @ da),
            b * np.exp(zd @ db),
        )


def bg_cov_loglik_grad(theta: FloatArray, d: BGCovData) -> tuple[float, FloatArray]:
    r"""Total log-likelihood of the covariate BG/NBD and its gradient w.r.t. ``theta``.

    ``theta = (log r, log alpha, log a, log b, g (k_p), d_a (k_d), d_b (k_d))``. Each group
    contributes the plain BG/NBD likelihood with its own ``(r, alpha_i, a_i, b_i)``:
    ``lg(x) + r log alpha_i + B(x, pair) - (r + x) log(alpha_i + T) + softplus(u)`` with
    ``u = log a_i - log(b_i + x - 1) + (r + x) log((alpha_i + T) / (alpha_i + t_x))`` for
    ``x > 0``. Every term but the last is linear in the groups and evaluated on the weights
    summed per distinct value, pattern or pair; only the repeaters' ``softplus(u)`` and its
    derivative ``expit(u)`` are computed group by group.
    """
    theta = _f(theta)
    kp, kd = d.zp.shape[1], d.zd.shape[1]
    r, alpha, a, b = np.exp(theta[:4])
    g, da, db = theta[4 : 4 + kp], theta[4 + kp : 4 + kp + kd], theta[4 + kp + kd :]
    c, pos = d.counts, d.pos
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        alpha_p = alpha * np.exp(-(d.upz @ g))  # per distinct purchase-covariate row
        # a, b per distinct (x, dropout covariates) pair
        a_pair = a * np.exp(d.pair_zd @ da)
        b_pair = b * np.exp(d.pair_zd @ db)
        xp = d.pair_x
        psi_ab = digamma(a_pair + b_pair)
        psi_abx = digamma(a_pair + b_pair + xp)
        inv_bx_pair = 1.0 / (b_pair + np.maximum(xp, 1.0) - 1.0)
        log_a_bx_pair = np.log(a_pair) + np.log(inv_bx_pair)
        # (T, pattern) and (t_x, pattern) pairs
        at_pair = alpha_p[d.t_pattern] + d.t_value
        log_at, log_atx = np.log(at_pair), np.log(alpha_p[d.tx_pattern] + d.tx_value)
        w_t = alpha_p[d.t_pattern] / at_pair
        w_tx = alpha_p[d.tx_pattern] / (alpha_p[d.tx_pattern] + d.tx_value)
        log_alpha_p = np.log(alpha_p)
        rx_t = r * c.Nt + c.NXt  # sum of n (r + x) per (T, pattern) pair
        # the repeaters' nonlinear term, group by group
        rx = r + pos.x
        dlog = log_at[pos.it] - log_atx[pos.itx]
        u = log_a_bx_pair[pos.ixp] + rx * dlog
        e = np.exp(-np.abs(u))
        ns = pos.n * (np.where(u >= 0, 1.0, e) / (1.0 + e))  # n expit(u)
        m = ns * rx
        s_pair = np.bincount(pos.ixp, weights=ns, minlength=xp.size)
        m_t = np.bincount(pos.it, weights=m, minlength=at_pair.size)
        m_tx = np.bincount(pos.itx, weights=m, minlength=log_atx.size)
        ll = (
            float(c.Nx @ (gammaln(r + d.ux) - gammaln(r)))
            + r * float(c.Np @ log_alpha_p)
            + float(c.Nq @ (betaln(a_pair, b_pair + xp) - betaln(a_pair, b_pair)))
            - float(rx_t @ log_at)
            + float(pos.n @ (np.maximum(u, 0.0) + np.log1p(e)))
        )
        d_r = (
            float(c.Nx @ (digamma(r + d.ux) - digamma(r)))
            + float(c.Np @ log_alpha_p)
            - float(c.Nt @ log_at)
            + float(ns @ dlog)
        )
        # per purchase pattern: sum of n d(ll)/d(log alpha_i)
        per_pattern = (
            r * c.Np
            - np.bincount(d.t_pattern, weights=(rx_t - m_t) * w_t, minlength=alpha_p.size)
            - np.bincount(d.tx_pattern, weights=m_tx * w_tx, minlength=alpha_p.size)
        )
        # per (x, dropout pattern) pair: sums of n d(ll)/d(log a_i) and n d(ll)/d(log b_i)
        pair_a = c.Nq * a_pair * (psi_ab - psi_abx) + s_pair
        pair_b = (
            c.Nq * b_pair * (digamma(b_pair + xp) - digamma(b_pair) + psi_ab - psi_abx)
            - s_pair * b_pair * inv_bx_pair
        )
    grad = np.concatenate(
        [
            [r * d_r, float(per_pattern.sum()), float(pair_a.sum()), float(pair_b.sum())],
            -(per_pattern @ d.upz),
            pair_a @ d.pair_zd,
            pair_b @ d.pair_zd,
        ]
    )
    return ll, grad
