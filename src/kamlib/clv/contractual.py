r"""Contractual (subscription / renewal) retention: the shifted-beta-geometric model.

Each account renews at every renewal opportunity with its own probability :math:`1 - \theta`
and churns with probability :math:`\theta`; across accounts :math:`\theta \sim
\mathrm{Beta}(\alpha, \beta)`. The period of churn :math:`T` then follows the
shifted-beta-geometric (sBG) distribution (Fader and Hardie 2007):

.. math::

    P(T = t) = \frac{B(\alpha + 1, \beta + t - 1)}{B(\alpha, \beta)}, \qquad
    S(t) = P(T > t) = \frac{B(\alpha, \beta + t)}{B(\alpha, \beta)}, \qquad
    r(t) = \frac{S(t)}{S(t-1)} = \frac{\beta + t - 1}{\alpha + \beta + t - 1}.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, overload

import numpy as np
from scipy import optimize, special

from kamlib._validation import check_columns, check_positive
from kamlib.clv._base import FittedModel
from kamlib.errors import ConvergenceError, SchemaError

if TYPE_CHECKING:
    from numpy.typing import ArrayLike, NDArray
    from pyspark.sql import DataFrame

__all__ = ["ShiftedBetaGeo"]

_LOG_BOUND = 20.0


#: A fitted log-parameter beyond +-13 (alpha or beta outside [2e-6, 4e5]) means the optimiser
#: ran towards a boundary the data do not rule out: reported as not identified.
_IDENTIFIED_LOG = 13.0


def _opportunities(method: str, t: Any, *, minimum: float) -> NDArray[np.float64]:
    """``t`` as a float array; every value finite and >= ``minimum`` (else SchemaError)."""
    try:
        tt = np.asarray(t, dtype=np.float64)
    except (TypeError, ValueError):
        raise SchemaError(
            f"ShiftedBetaGeo.{method}(): t= must be a number or an array of numbers, found {t!r}"
        ) from None
    bad = ~np.isfinite(tt) | (tt < minimum)
    if np.any(bad):
        raise SchemaError(
            f"ShiftedBetaGeo.{method}(): t= must be finite and >= {minimum:g}, "
            f"found {tt[bad].ravel()[:3].tolist()}"
        )
    return tt


def _sbg_loglik_terms(
    log_params: NDArray[np.float64],
    periods: NDArray[np.float64],
    churned: NDArray[np.bool_],
    weights: NDArray[np.float64],
) -> tuple[float, NDArray[np.float64]]:
    """Weighted log-likelihood and its gradient in (log alpha, log beta)."""
    alpha, beta = np.exp(log_params)
    t = periods
    base = special.betaln(alpha, beta)
    ll = (
        np.where(
            churned,
            special.betaln(alpha + 1.0, beta + t - 1.0),
            special.betaln(alpha, beta + t),
        )
        - base
    )
    dig = special.digamma
    psi_ab = dig(alpha + beta)
    psi_abt = dig(alpha + beta + t)
    d_alpha = np.where(
        churned,
        dig(alpha + 1.0) - psi_abt - dig(alpha) + psi_ab,
        psi_ab - psi_abt,
    )
    d_beta = np.where(
        churned,
        dig(beta + t - 1.0) - psi_abt - dig(beta) + psi_ab,
        dig(beta + t) - psi_abt - dig(beta) + psi_ab,
    )
    total = float(np.sum(weights * ll))
    grad = np.array(
        [alpha * float(np.sum(weights * d_alpha)), beta * float(np.sum(weights * d_beta))]
    )
    return total, grad


def _sbg_hessian(
    alpha: float,
    beta: float,
    periods: NDArray[np.float64],
    churned: NDArray[np.bool_],
    weights: NDArray[np.float64],
) -> NDArray[np.float64]:
    """Hessian of the weighted log-likelihood in (alpha, beta)."""
    tri = special.polygamma
    t = periods
    p_ab = tri(1, alpha + beta)
    p_abt = tri(1, alpha + beta + t)
    h_aa = np.where(churned, tri(1, alpha + 1.0) - tri(1, alpha), 0.0) - p_abt + p_ab
    h_ab = -p_abt + p_ab
    h_bb = np.where(churned, tri(1, beta + t - 1.0), tri(1, beta + t)) - p_abt - tri(1, beta) + p_ab
    return np.array(
        [
            [np.sum(weights * h_aa), np.sum(weights * h_ab)],
            [np.sum(weights * h_ab), np.sum(weights * h_bb)],
        ]
    )


def _newton_polish(
    start: NDArray[np.float64],
    periods: NDArray[np.float64],
    churned: NDArray[np.bool_],
    weights: NDArray[np.float64],
) -> tuple[float, float]:
    """A few Newton steps from the L-BFGS-B solution with the analytic Hessian.

    Makes the optimum independent of the order and grouping of the data to machine precision;
    a step is kept only if it stays positive and does not lower the likelihood.
    """
    x = np.asarray(start, dtype=np.float64)
    ll, grad_log = _sbg_loglik_terms(np.log(x), periods, churned, weights)
    for _ in range(8):
        grad = grad_log / x
        hess = _sbg_hessian(float(x[0]), float(x[1]), periods, churned, weights)
        try:
            step = np.linalg.solve(hess, grad)
        except np.linalg.LinAlgError:
            break
        candidate = x - step
        if np.any(candidate <= 0) or not np.all(np.isfinite(candidate)):
            break
        new_ll, new_grad = _sbg_loglik_terms(np.log(candidate), periods, churned, weights)
        if not np.isfinite(new_ll) or new_ll < ll - 1e-12 * abs(ll):
            break
        x, ll, grad_log = candidate, new_ll, new_grad
        if np.max(np.abs(step) / x) < 1e-15:
            break
    return float(x[0]), float(x[1])


class ShiftedBetaGeo(FittedModel):
    r"""Shifted-beta-geometric (sBG) model of contractual retention (Fader and Hardie 2007).

    Fit on one row per account: ``periods`` = renewal opportunities observed (>= 1) and
    ``churned`` = whether the account churned at the last of them. A churned account
    contributes :math:`\log P(T = \text{periods})`, an active one the right-censored
    :math:`\log S(\text{periods})`. Parameters ``alpha`` and ``beta`` are estimated by maximum
    likelihood (L-BFGS-B on their logs with analytic gradients); standard errors come from
    the inverse of the analytic Hessian.

    The Spark fit reduces the accounts to the counts of each distinct (periods, churned)
    pair, so its cost on the driver does not grow with the number of accounts.

    References
    ----------
    Fader, P. S. and Hardie, B. G. S. (2007). "How to Project Customer Retention". Journal of
    Interactive Marketing 21(1), 76-90.

    Fader, P. S. and Hardie, B. G. S. (2010). "Customer-Base Valuation in a Contractual
    Setting: The Perils of Ignoring Heterogeneity". Marketing Science 29(1), 85-93.

    Examples
    --------
    >>> sbg = ShiftedBetaGeo().fit_survivors([1000, 869, 743, 653, 593, 551, 517, 491])
    >>> {k: round(v, 3) for k, v in sbg.params.items()}
    {'alpha': 0.668, 'beta': 3.806}
    >>> round(float(sbg.survival(12)), 3)
    0.378
    """

    model_type = "ShiftedBetaGeo"
    param_names = ("alpha", "beta")

    def __init__(self) -> None:
        super().__init__()

    # -- fitting --------------------------------------------------------------------------
    def fit(
        self,
        df: DataFrame,
        *,
        periods_col: str = "periods",
        churned_col: str = "churned",
    ) -> ShiftedBetaGeo:
        """Fit on one row per account (Spark reduces it to (periods, churned) counts).

        Parameters
        ----------
        df : pyspark.sql.DataFrame
            One row per account.
        periods_col : str
            Renewal opportunities observed (integer-valued, >= 1).
        churned_col : str
            Boolean (or 0/1 integer): churned at the last observed opportunity.

        Returns
        -------
        ShiftedBetaGeo
            ``self``, fitted. Rows with a null, non-integer or < 1 ``periods`` or a null
            ``churned`` are excluded and counted in :attr:`excluded`.
        """
        from pyspark.sql import functions as F
        from pyspark.sql import types as T_

        func = "ShiftedBetaGeo.fit"
        check_columns(
            df,
            func,
            {periods_col: "numeric"},
            args={periods_col: "periods_col"},
        )
        check_columns(df, func, {churned_col: "any"}, args={churned_col: "churned_col"})
        churn_type = df.schema[churned_col].dataType
        if not isinstance(churn_type, (T_.BooleanType, T_.IntegralType)):
            raise SchemaError(
                f"{func}(): column {churned_col!r} must be boolean (or 0/1 integer), "
                f"found {churn_type.simpleString()}"
            )
        periods = F.col(periods_col).cast("double")
        churned = F.col(churned_col)
        if isinstance(churn_type, T_.IntegralType):
            churned = F.when(churned.isin(0, 1), churned == 1)
        valid = (
            periods.isNotNull()
            & ~F.isnan(periods)
            & (periods >= 1)
            & (periods == F.floor(periods))
            & churned.isNotNull()
        )
        rows = (
            df.select(
                valid.alias("valid"),
                F.when(valid, periods).alias("periods"),
                F.when(valid, churned).alias("churned"),
            )
            .groupBy("valid", "periods", "churned")
            .count()
            .collect()
        )
        good = [r for r in rows if r["valid"]]
        excluded = sum(int(r["count"]) for r in rows if not r["valid"])
        if not good:
            raise SchemaError(
                f"{func}(): no valid rows to fit (need {periods_col} >= 1 and a non-null "
                f"{churned_col}); {excluded} rows were excluded"
            )
        return self._fit_counts(
            np.array([float(r["periods"]) for r in good]),
            np.array([bool(r["churned"]) for r in good]),
            np.array([float(r["count"]) for r in good]),
            excluded=excluded,
        )

    def fit_arrays(
        self,
        periods: ArrayLike,
        churned: ArrayLike,
        *,
        weights: ArrayLike | None = None,
    ) -> ShiftedBetaGeo:
        """Fit from numpy arrays (one entry per account, or per group with ``weights``).

        Parameters
        ----------
        periods : array_like of int
            Renewal opportunities observed (>= 1).
        churned : array_like of bool
            Churned at the last opportunity.
        weights : array_like of float, optional
            Number of accounts behind each entry (default 1).
        """
        t = np.asarray(periods, dtype=np.float64).ravel()
        c = np.asarray(churned, dtype=bool).ravel()
        w = np.ones_like(t) if weights is None else np.asarray(weights, dtype=np.float64).ravel()
        if not (t.shape == c.shape == w.shape):
            raise SchemaError(
                "ShiftedBetaGeo.fit_arrays(): periods, churned and weights must have the same "
                f"length, found {t.size}, {c.size} and {w.size}"
            )
        if t.size == 0 or np.any(~np.isfinite(t)) or np.any(t < 1) or np.any(t != np.floor(t)):
            raise SchemaError(
                "ShiftedBetaGeo.fit_arrays(): periods must be integers >= 1 (and not empty)"
            )
        if np.any(~np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
            raise SchemaError(
                "ShiftedBetaGeo.fit_arrays(): weights must be finite, >= 0 and not all zero"
            )
        return self._fit_counts(t, c, w, excluded=0)

    def fit_survivors(self, survivors: Sequence[float]) -> ShiftedBetaGeo:
        """Fit from a cohort's survivor series (active accounts at the start of periods 0..k).

        ``survivors[t-1] - survivors[t]`` accounts churned at period ``t``; the
        ``survivors[k]`` still active are right-censored at ``k`` (Fader and Hardie 2007).
        """
        s = np.asarray(survivors, dtype=np.float64).ravel()
        if s.size < 2 or np.any(np.diff(s) > 0) or np.any(s < 0):
            raise SchemaError(
                "ShiftedBetaGeo.fit_survivors(): survivors must be a non-increasing series of "
                f"at least 2 non-negative counts, found {list(s)!r}"
            )
        k = s.size - 1
        periods = np.concatenate([np.arange(1, k + 1, dtype=np.float64), [float(k)]])
        churned = np.concatenate([np.ones(k, dtype=bool), [False]])
        weights = np.concatenate([-np.diff(s), [s[-1]]])
        return self.fit_arrays(periods, churned, weights=weights)

    def fit_lost(self, lost: Sequence[float], active: float) -> ShiftedBetaGeo:
        """Fit from the number of accounts lost at each period and those still active.

        ``lost[t - 1]`` accounts churned at renewal opportunity ``t`` (t = 1..k) and
        ``active`` accounts are still active after the k-th (right-censored at k).

        Examples
        --------
        >>> sbg = ShiftedBetaGeo().fit_lost([369, 163, 86, 56, 37, 27, 21], active=241)
        >>> {k: round(v, 3) for k, v in sbg.params.items()}
        {'alpha': 0.704, 'beta': 1.182}
        """
        n_lost = np.asarray(lost, dtype=np.float64).ravel()
        if n_lost.size < 1 or np.any(n_lost < 0) or not (np.isfinite(active) and active >= 0):
            raise SchemaError(
                "ShiftedBetaGeo.fit_lost(): lost must be at least one count >= 0 and active a "
                f"count >= 0, found {list(n_lost)!r} and {active!r}"
            )
        k = n_lost.size
        periods = np.concatenate([np.arange(1, k + 1, dtype=np.float64), [float(k)]])
        churned = np.concatenate([np.ones(k, dtype=bool), [False]])
        weights = np.concatenate([n_lost, [float(active)]])
        return self.fit_arrays(periods, churned, weights=weights)

    def _fit_counts(
        self,
        periods: NDArray[np.float64],
        churned: NDArray[np.bool_],
        weights: NDArray[np.float64],
        *,
        excluded: int,
    ) -> ShiftedBetaGeo:
        n = float(weights.sum())
        lost = float(weights[churned].sum())
        if lost == 0.0:
            raise ConvergenceError(
                "ShiftedBetaGeo.fit(): no account churned in the data, so the churn "
                "probabilities (alpha, beta) are not identified; fit on a cohort observed long "
                "enough for some accounts to leave"
            )
        if lost == n and bool(np.all(periods[churned] == 1.0)):
            raise ConvergenceError(
                "ShiftedBetaGeo.fit(): every account churned at the first renewal, so beta is "
                "not identified (it runs to 0); fit on data with renewals"
            )

        def objective(x: NDArray[np.float64]) -> tuple[float, NDArray[np.float64]]:
            ll, grad = _sbg_loglik_terms(x, periods, churned, weights)
            return -ll / n, -grad / n

        result = optimize.minimize(
            objective,
            x0=np.zeros(2),
            jac=True,
            method="L-BFGS-B",
            bounds=[(-_LOG_BOUND, _LOG_BOUND)] * 2,
            options={"maxiter": 1000, "ftol": 1e-15, "gtol": 1e-10},
        )
        if not np.all(np.isfinite(result.x)) or not np.isfinite(result.fun):
            raise ConvergenceError(f"ShiftedBetaGeo.fit(): the optimiser failed ({result.message})")
        if not result.success:
            raise ConvergenceError(f"ShiftedBetaGeo.fit(): no convergence ({result.message})")
        if np.any(np.abs(result.x) >= _IDENTIFIED_LOG):
            raise ConvergenceError(
                "ShiftedBetaGeo.fit(): a parameter ran to its bound (log value "
                f"{result.x.tolist()}); the data do not identify alpha and beta (for example, "
                f"no account ever churned) ({result.message})"
            )
        alpha, beta = _newton_polish(np.exp(result.x), periods, churned, weights)
        log_likelihood = _sbg_loglik_terms(np.log([alpha, beta]), periods, churned, weights)[0]
        hessian = _sbg_hessian(alpha, beta, periods, churned, weights)
        try:
            cov = np.linalg.inv(-hessian)
            se = np.sqrt(np.clip(np.diag(cov), 0.0, None))
        except np.linalg.LinAlgError:
            se = np.full(2, math.nan)
        self._set_fitted(
            {"alpha": alpha, "beta": beta},
            log_likelihood=float(log_likelihood),
            standard_errors={"alpha": float(se[0]), "beta": float(se[1])},
            iterations=int(result.nit),
            message=str(result.message),
            n=n,
            excluded=int(excluded),
        )
        return self

    @property
    def excluded(self) -> int:
        """Rows excluded from the Spark fit (null, non-integer or < 1 periods, null churned)."""
        self._require_fitted("excluded")
        return int(self._fit_info.get("excluded", 0))

    # -- predictions ----------------------------------------------------------------------
    @overload
    def survival(self, t: float) -> float: ...
    @overload
    def survival(self, t: ArrayLike) -> NDArray[np.float64] | float: ...
    def survival(self, t: Any) -> Any:
        r"""Probability of still being active after ``t`` renewal opportunities.

        :math:`S(t) = B(\alpha, \beta + t) / B(\alpha, \beta)`; ``S(0) = 1``.
        """
        p = self._require_fitted("survival")
        tt = _opportunities("survival", t, minimum=0.0)
        out = np.exp(
            special.betaln(p["alpha"], p["beta"] + tt) - special.betaln(p["alpha"], p["beta"])
        )
        return float(out) if out.ndim == 0 else out

    @overload
    def retention_rate(self, t: float) -> float: ...
    @overload
    def retention_rate(self, t: ArrayLike) -> NDArray[np.float64] | float: ...
    def retention_rate(self, t: Any) -> Any:
        r"""Probability of renewing at opportunity ``t`` (>= 1) given active until then.

        :math:`r(t) = (\beta + t - 1) / (\alpha + \beta + t - 1)`, increasing in ``t``.
        """
        p = self._require_fitted("retention_rate")
        tt = _opportunities("retention_rate", t, minimum=1.0)
        out = (p["beta"] + tt - 1.0) / (p["alpha"] + p["beta"] + tt - 1.0)
        return float(out) if out.ndim == 0 else out

    @overload
    def churn_probability(self, t: float) -> float: ...
    @overload
    def churn_probability(self, t: ArrayLike) -> NDArray[np.float64] | float: ...
    def churn_probability(self, t: Any) -> Any:
        r"""Probability of churning exactly at opportunity ``t`` (>= 1), :math:`P(T = t)`."""
        p = self._require_fitted("churn_probability")
        tt = _opportunities("churn_probability", t, minimum=1.0)
        out = np.exp(
            special.betaln(p["alpha"] + 1.0, p["beta"] + tt - 1.0)
            - special.betaln(p["alpha"], p["beta"])
        )
        return float(out) if out.ndim == 0 else out

    def discounted_expected_lifetime(self, discount_rate: float) -> float:
        r"""Discounted expected lifetime of a new account, in payments (Fader and Hardie 2010).

        :math:`\mathrm{DEL}(d) = \sum_{t \ge 0} S(t) / (1+d)^t
        = {}_2F_1(1, \beta; \alpha + \beta; 1/(1+d))`, counting the first payment at
        acquisition (t = 0) undiscounted.
        """
        p = self._require_fitted("discounted_expected_lifetime")
        d = check_positive("discounted_expected_lifetime", "discount_rate", discount_rate)
        return float(special.hyp2f1(1.0, p["beta"], p["alpha"] + p["beta"], 1.0 / (1.0 + d)))

    def expected_residual_lifetime(
        self,
        df: DataFrame,
        *,
        discount_rate: float,
        periods_col: str = "periods",
        churned_col: str | None = None,
        output_col: str = "derl",
    ) -> DataFrame:
        r"""Add the discounted expected residual lifetime (DERL) of each active account.

        For an account active after ``n = periods`` renewal opportunities (n renewals made),
        evaluated just before its next renewal decision (Fader and Hardie 2010, eq. 6):

        .. math::

            \mathrm{DERL}(d \mid n) = \sum_{t > n} \frac{S(t)}{S(n)} \frac{1}{(1+d)^{t-n-1}}
            = \frac{\beta + n}{\alpha + \beta + n}\,
              {}_2F_1\!\left(1, \beta + n + 1; \alpha + \beta + n + 1; \frac{1}{1+d}\right).

        The value counts expected future payments: the *upcoming* renewal payment (weighted
        by the probability of renewing, undiscounted since it falls at the decision point),
        each later one discounted by :math:`(1+d)` per period. It does **not** count the
        payment already made for the current period. Multiply by the payment per period to
        get a residual value. ``n = 0`` is an account at its first renewal decision:
        :math:`\mathrm{DERL}(d \mid 0) = (1 + d)(\mathrm{DEL}(d) - 1)`.

        Parameters
        ----------
        df : pyspark.sql.DataFrame
            One row per account.
        discount_rate : float
            Discount rate per period, > 0.
        periods_col : str
            Renewal opportunities survived so far (integer >= 0).
        churned_col : str, optional
            Boolean; churned accounts get a null DERL (they have no residual lifetime).
        output_col : str
            Output column (double; null for invalid ``periods``).

        Examples
        --------
        >>> sbg = ShiftedBetaGeo().fit_survivors([1000, 631, 468, 382, 326, 289, 262, 241])
        >>> accounts = spark.createDataFrame([(1, 1), (2, 7)], "account_id int, periods int")
        >>> out = sbg.expected_residual_lifetime(accounts, discount_rate=0.1)
        >>> [round(r.derl, 3) for r in out.orderBy("account_id").collect()]
        [4.103, 6.842]
        """
        from pyspark.sql import functions as F

        from kamlib._arrow import with_numpy_columns

        func = "expected_residual_lifetime"
        p = self._require_fitted(func)
        d = check_positive(func, "discount_rate", discount_rate)
        check_columns(df, func, {periods_col: "numeric"}, args={periods_col: "periods_col"})
        if churned_col is not None:
            check_columns(df, func, {churned_col: "boolean"}, args={churned_col: "churned_col"})
        alpha, beta = p["alpha"], p["beta"]
        tmp = f"__kamlib_derl_{output_col}"

        def derl(cols: Any) -> dict[str, NDArray[np.float64]]:
            n = cols[periods_col]
            ok = np.isfinite(n) & (n >= 0) & (n == np.floor(n))
            nn = np.where(ok, n, 0.0)
            value = (
                (beta + nn)
                / (alpha + beta + nn)
                * special.hyp2f1(1.0, beta + nn + 1.0, alpha + beta + nn + 1.0, 1.0 / (1.0 + d))
            )
            return {tmp: np.where(ok, value, np.nan)}

        scored = with_numpy_columns(df, derl, inputs=[periods_col], outputs=[tmp])
        value = F.col(tmp)
        if churned_col is not None:
            value = F.when(~F.col(churned_col), value)
        columns = [F.col(f"`{c}`") for c in df.columns if c != output_col]
        return scored.select(*columns, value.alias(output_col))

    def expected_residual_lifetime_np(
        self, periods: ArrayLike, *, discount_rate: float
    ) -> NDArray[np.float64]:
        """:meth:`expected_residual_lifetime` on a numpy array of periods (driver side)."""
        p = self._require_fitted("expected_residual_lifetime_np")
        d = check_positive("expected_residual_lifetime_np", "discount_rate", discount_rate)
        n = np.asarray(periods, dtype=np.float64)
        alpha, beta = p["alpha"], p["beta"]
        out = (
            (beta + n)
            / (alpha + beta + n)
            * special.hyp2f1(1.0, beta + n + 1.0, alpha + beta + n + 1.0, 1.0 / (1.0 + d))
        )
        return np.asarray(out, dtype=np.float64)
