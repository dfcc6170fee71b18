r"""Discrete-time non-contractual CLV: the BG/BB model and its RFM summary.

Accounts that can buy at most once per period (a yearly order, a quarterly renewal, an annual
donation) are summarised by :func:`discrete_rfm_summary` into ``(frequency, recency,
n_periods)`` and modelled by :class:`BetaGeoBetaBinom` (beta-geometric/beta-Bernoulli).

References
----------
Fader, P. S., Hardie, B. G. S. and Shang, J. (2010), "Customer-Base Analysis in a
Discrete-Time Noncontractual Setting", *Marketing Science* 29(6), 1086-1108 (the BG/BB model,
equations (5), (11) and (13); the donation data of Table 1). The formulas are those of
lifetimes' ``BetaGeoBetaBinomFitter``.
"""

from __future__ import annotations

import datetime as _dt
import math
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from scipy.optimize import minimize
from scipy.special import betaln, gammaln, logsumexp

from kamlib._arrow import with_numpy_columns
from kamlib._validation import (
    any_column_name,
    check_choice,
    check_finite_positive,
    check_fraction,
    check_int,
    parse_timestamp,
    require_columns,
)
from kamlib.clv import _horizon as H
from kamlib.clv import _likelihoods as L
from kamlib.clv.models import (
    _covariance,
    _distinct_summary,
    _PredictiveModel,
    _require_summary,
    _standard_errors,
)
from kamlib.errors import ConvergenceError, SchemaError

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame
    from typing_extensions import Self

    from kamlib._validation import ColumnKind

__all__ = ["BetaGeoBetaBinom", "Period", "discrete_rfm_summary"]

#: Length of one purchase opportunity in :func:`discrete_rfm_summary`.
Period = Literal["year", "quarter", "month"]

_PREFIX = "__kamlib_drfm_"


def _period_index(col: Column, period: str) -> Column:
    from pyspark.sql import functions as F

    if period == "year":
        return F.year(col)
    if period == "quarter":
        return F.year(col) * F.lit(4) + F.quarter(col) - F.lit(1)
    return F.year(col) * F.lit(12) + F.month(col) - F.lit(1)


@any_column_name("discrete_rfm_summary")
def discrete_rfm_summary(
    df: DataFrame,
    *,
    account_col: str,
    date_col: str,
    period: Period = "year",
    observation_end: Any = None,
) -> DataFrame:
    r"""One row per account with the BG/BB sufficient statistics of a transaction log.

    Each calendar period (year, quarter or month) is one purchase opportunity. For an account
    whose first purchase falls in period :math:`p_0`:

    * ``frequency`` :math:`x` = number of distinct periods after :math:`p_0` with a purchase,
    * ``recency`` :math:`t_x` = :math:`p_{last} - p_0`, the index of the last such period
      (0 if none),
    * ``n_periods`` :math:`n` = :math:`p_{end} - p_0`, the opportunities after the first
      period up to ``observation_end`` (default: the latest date in ``df``).

    Rows after ``observation_end`` and rows with a null account or date are ignored.

    Parameters
    ----------
    df : pyspark.sql.DataFrame
        Transaction log.
    account_col, date_col : str
        Account identifier and transaction date/timestamp columns.
    period : {"year", "quarter", "month"}
        Length of one purchase opportunity.
    observation_end : date, datetime or ISO string, optional
        Last day observed.

    Returns
    -------
    pyspark.sql.DataFrame
        ``account_col, frequency, recency, n_periods`` (doubles).

    References
    ----------
    Fader, Hardie and Shang (2010), section 2.

    Examples
    --------
    >>> import datetime as dt
    >>> log = spark.createDataFrame(
    ...     [("a", dt.date(2020, 3, 1)), ("a", dt.date(2022, 5, 1)), ("b", dt.date(2021, 1, 1))],
    ...     "account string, day date")
    >>> s = discrete_rfm_summary(log, account_col="account", date_col="day")
    >>> [tuple(r) for r in s.orderBy("account").collect()]
    [('a', 1.0, 2.0, 2.0), ('b', 0.0, 0.0, 1.0)]
    """
    from pyspark.sql import functions as F

    func = "discrete_rfm_summary"
    require_columns(df, func, account_col=(account_col, "any"), date_col=(date_col, "temporal"))
    check_choice(func, "period", period, Period)
    reserved = {"frequency", "recency", "n_periods"}
    if account_col in reserved:
        raise SchemaError(
            f"{func}(): account_col= must not be one of the output columns {sorted(reserved)}, "
            f"found {account_col!r}"
        )
    end: _dt.date | None = None
    if observation_end is not None:
        end = parse_timestamp(func, "observation_end", observation_end).date()
    day = F.to_date(F.col(date_col))
    base = df.select(F.col(account_col).alias(account_col), day.alias(f"{_PREFIX}day")).where(
        F.col(account_col).isNotNull() & F.col(f"{_PREFIX}day").isNotNull()
    )
    if end is not None:
        base = base.where(F.col(f"{_PREFIX}day") <= F.lit(end))
    p = _period_index(F.col(f"{_PREFIX}day"), period)
    per_account = base.groupBy(account_col).agg(
        F.min(p).alias(f"{_PREFIX}first"),
        F.max(p).alias(f"{_PREFIX}last"),
        F.count_distinct(p).alias(f"{_PREFIX}periods"),
    )
    if end is None:
        ends = base.agg(F.max(F.col(f"{_PREFIX}day")).alias(f"{_PREFIX}end"))
        per_account = per_account.crossJoin(F.broadcast(ends))
        end_period = _period_index(F.col(f"{_PREFIX}end"), period)
    else:
        end_period = _period_index(F.lit(end), period)
    first = F.col(f"{_PREFIX}first")
    return per_account.select(
        F.col(account_col),
        (F.col(f"{_PREFIX}periods") - 1).cast("double").alias("frequency"),
        (F.col(f"{_PREFIX}last") - first).cast("double").alias("recency"),
        (end_period - first).cast("double").alias("n_periods"),
    )


# -- BG/BB formulas (numpy) -------------------------------------------------------------------
Params = tuple[float, float, float, float]


def _f(value: Any) -> np.ndarray:
    return np.asarray(value, dtype=np.float64)


def bgbb_loglik_terms(params: Params, x: Any, tx: Any, n: Any) -> np.ndarray:
    r"""Per-account log-likelihood of the BG/BB model (Fader, Hardie and Shang 2010, eq. 5).

    .. math::
        L = \frac{B(\alpha+x, \beta+n-x)}{B(\alpha,\beta)} \frac{B(\gamma, \delta+n)}
        {B(\gamma,\delta)} + \sum_{i=0}^{n-t_x-1} \frac{B(\alpha+x, \beta+t_x-x+i)}
        {B(\alpha,\beta)} \frac{B(\gamma+1, \delta+t_x+i)}{B(\gamma,\delta)}
    """
    a, b, g, d = params
    x, tx, n = np.broadcast_arrays(_f(x), _f(tx), _f(n))
    base_ab = betaln(a, b)
    base_gd = betaln(g, d)
    first = betaln(a + x, b + n - x) - base_ab + betaln(g, d + n) - base_gd
    gap = n - tx
    max_gap = int(np.max(gap)) if gap.size else 0
    terms = [first]
    for i in range(max_gap):
        term = betaln(a + x, b + tx - x + i) - base_ab + betaln(g + 1, d + tx + i) - base_gd
        terms.append(np.where(i < gap, term, -np.inf))
    return np.asarray(logsumexp(np.stack(terms), axis=0), dtype=np.float64)


def bgbb_probability_alive(
    params: Params, x: Any, tx: Any, n: Any, future_periods: float = 0.0
) -> np.ndarray:
    r"""P(alive at period ``n + future_periods``), as lifetimes' ``conditional_probability_alive``.

    .. math:: \frac{B(\alpha+x, \beta+n-x)}{B(\alpha,\beta)}
        \frac{B(\gamma, \delta+n+m)}{B(\gamma,\delta)} / L
    """
    a, b, g, d = params
    x, tx, n = np.broadcast_arrays(_f(x), _f(tx), _f(n))
    log_num = (
        betaln(a + x, b + n - x) - betaln(a, b) + betaln(g, d + n + future_periods) - betaln(g, d)
    )
    return np.asarray(np.exp(log_num - bgbb_loglik_terms(params, x, tx, n)), dtype=np.float64)


def bgbb_conditional_expected(params: Params, t: float, x: Any, tx: Any, n: Any) -> np.ndarray:
    r"""Expected purchases in periods ``n+1 .. n+t`` given the history (FHS 2010, eq. 13).

    .. math:: \frac{1}{L} \frac{B(\alpha+x+1, \beta+n-x)}{B(\alpha,\beta)}
        \frac{\delta}{\gamma-1} \frac{\Gamma(\gamma+\delta)}{\Gamma(1+\delta)}
        \left[\frac{\Gamma(1+\delta+n)}{\Gamma(\gamma+\delta+n)}
        - \frac{\Gamma(1+\delta+n+t)}{\Gamma(\gamma+\delta+n+t)}\right]
    """
    a, b, g, d = params
    x, tx, n = np.broadcast_arrays(_f(x), _f(tx), _f(n))
    log_l = bgbb_loglik_terms(params, x, tx, n)
    p2 = betaln(a + x + 1, b + n - x) - betaln(a, b)
    p3 = d / (g - 1.0) * math.exp(gammaln(g + d) - gammaln(1 + d))
    p4 = np.exp(gammaln(1 + d + n) - gammaln(g + d + n))
    p5 = np.exp(gammaln(1 + d + n + t) - gammaln(g + d + n + t))
    return np.asarray(np.exp(p2 - log_l) * p3 * (p4 - p5), dtype=np.float64)


def _bgbb_tuples(
    func: str, frequency: Any, recency: Any, n_periods: Any, weights: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Checked ``(x, t_x, n, w)`` of a BG/BB fit, without the tuples of weight 0 (or NaN)."""
    x = _f(frequency).ravel()
    tx = _f(recency).ravel()
    n = _f(n_periods).ravel()
    w = np.ones_like(x) if weights is None else _f(weights).ravel()
    if not (x.size == tx.size == n.size == w.size):
        raise SchemaError(f"{func}(): frequency, recency, n_periods and weights differ in length")
    keep = np.isfinite(w) & (w > 0)
    x, tx, n, w = x[keep], tx[keep], n[keep], w[keep]
    if x.size == 0:
        raise ConvergenceError(f"{func}(): no accounts to fit (empty input)")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(tx)) and np.all(np.isfinite(n))):
        raise SchemaError(f"{func}(): frequency, recency and n_periods must be finite numbers")
    if np.any(x < 0) or np.any(x > tx + 1e-9) or np.any(tx > n + 1e-9):
        raise SchemaError(
            f"{func}(): need 0 <= frequency <= recency <= n_periods for every account"
        )
    if np.any((x == 0) & (tx != 0)) or np.any((x > 0) & (tx < 1)):
        raise SchemaError(f"{func}(): recency must be 0 exactly where frequency is 0")
    return x, tx, n, w


def _bgbb_optimum(
    func: str,
    x: np.ndarray,
    tx: np.ndarray,
    n: np.ndarray,
    w: np.ndarray,
    pen: float,
    *,
    maxiter: int,
) -> Any:
    """L-BFGS-B then Nelder-Mead on ``-LL / N + pen * sum(p ** 2)`` over the log-parameters."""
    total = float(w.sum())

    def objective(logp: np.ndarray) -> float:
        p = np.exp(logp)
        ll = float(np.dot(w, bgbb_loglik_terms((p[0], p[1], p[2], p[3]), x, tx, n)))
        value = -ll / total + pen * float(np.sum(p**2))
        return value if math.isfinite(value) else 1e300

    res = minimize(
        objective,
        np.zeros(4),
        method="L-BFGS-B",
        bounds=[(-20.0, 20.0)] * 4,
        options={"maxiter": maxiter, "ftol": 1e-14, "gtol": 1e-10},
    )
    res = minimize(
        objective,
        res.x,
        method="Nelder-Mead",
        options={"maxiter": maxiter, "xatol": 1e-10, "fatol": 1e-14},
    )
    if not np.all(np.isfinite(res.x)) or not math.isfinite(float(res.fun)):
        raise ConvergenceError(f"{func}(): the optimiser did not converge ({res.message})")
    return res


class BetaGeoBetaBinom(_PredictiveModel):
    r"""Beta-geometric/beta-Bernoulli (BG/BB) model for discrete purchase opportunities.

    While alive, an account buys in each period with probability :math:`p \sim
    Beta(\alpha, \beta)` and dies at the start of each period with probability :math:`\theta
    \sim Beta(\gamma, \delta)`. Fitted by maximum likelihood over the distinct ``(frequency,
    recency, n_periods)`` tuples with their counts (Spark reduces the rows, the driver fits).

    Parameters
    ----------
    penalizer : float
        L2 penalty on the parameters (0 = plain maximum likelihood).

    References
    ----------
    Fader, P. S., Hardie, B. G. S. and Shang, J. (2010), *Marketing Science* 29(6), 1086-1108;
    on the donation data (11,104 donors, n = 6) alpha = 1.204, beta = 0.750, gamma = 0.657,
    delta = 2.783.

    Examples
    --------
    >>> rows = [(0.0, 0.0, 6.0, 300.0), (6.0, 6.0, 6.0, 200.0), (3.0, 4.0, 6.0, 100.0),
    ...         (1.0, 1.0, 6.0, 150.0), (2.0, 5.0, 6.0, 80.0)]
    >>> schema = "frequency double, recency double, n_periods double, w double"
    >>> s = spark.createDataFrame(rows, schema)
    >>> m = BetaGeoBetaBinom().fit(s, weights_col="w")
    >>> sorted(m.params)
    ['alpha', 'beta', 'delta', 'gamma']
    """

    model_type = "BetaGeoBetaBinom"
    param_names = ("alpha", "beta", "gamma", "delta")

    def _p(self, method: str) -> Params:
        alpha, beta, gamma, delta = super()._p(method)
        return (alpha, beta, gamma, delta)

    def fit(
        self,
        df: DataFrame,
        *,
        frequency_col: str = "frequency",
        recency_col: str = "recency",
        n_periods_col: str = "n_periods",
        weights_col: str | None = None,
        maxiter: int = 2000,
    ) -> Self:
        """Fit on a summary (one row per account, or per tuple with ``weights_col`` counts).

        Raises
        ------
        SchemaError
            Missing or non-numeric columns, or invalid values.
        ConvergenceError
            The optimiser failed.
        """
        func = f"{type(self).__name__}.fit"
        cols: dict[str, tuple[str, ColumnKind]] = {
            "frequency_col": (frequency_col, "numeric"),
            "recency_col": (recency_col, "numeric"),
            "n_periods_col": (n_periods_col, "numeric"),
        }
        if weights_col is not None:
            cols["weights_col"] = (weights_col, "numeric")
        require_columns(df, func, **cols)
        arr = _distinct_summary(df, (frequency_col, recency_col, n_periods_col), weights_col)
        return self.fit_arrays(arr[0], arr[1], arr[2], arr[3], maxiter=maxiter)

    def fit_arrays(
        self,
        frequency: Any,
        recency: Any,
        n_periods: Any,
        weights: Any = None,
        *,
        maxiter: int = 2000,
    ) -> Self:
        """Fit on numpy arrays (optionally count-weighted distinct tuples); returns self."""
        func = f"{type(self).__name__}.fit"
        started = time.perf_counter()
        x, tx, n, w = _bgbb_tuples(func, frequency, recency, n_periods, weights)
        total = float(w.sum())
        res = _bgbb_optimum(func, x, tx, n, w, self.penalizer, maxiter=maxiter)
        params = np.exp(res.x)
        ptuple = (float(params[0]), float(params[1]), float(params[2]), float(params[3]))

        def loglik(p: np.ndarray) -> float:
            return float(np.dot(w, bgbb_loglik_terms((p[0], p[1], p[2], p[3]), x, tx, n)))

        hess = L.numeric_hessian(loglik, params)
        self._set_fitted(
            dict(zip(self.param_names, ptuple, strict=True)),
            log_likelihood=loglik(params),
            standard_errors=_standard_errors(self.param_names, hess),
            covariance=_covariance(hess),
            iterations=int(res.nit),
            converged=bool(res.success),
            message=str(res.message),
            objective=float(res.fun),
            n=total,
            n_distinct=int(x.size),
            seconds=time.perf_counter() - started,
        )
        return self

    # -- numpy interface ---------------------------------------------------------------------
    def conditional_expected_purchases_np(
        self, t: float, frequency: Any, recency: Any, n_periods: Any
    ) -> np.ndarray:
        """Expected purchases in the next ``t`` periods given the history."""
        return bgbb_conditional_expected(
            self._p("expected_purchases"), t, frequency, recency, n_periods
        )

    def probability_alive_np(
        self, frequency: Any, recency: Any, n_periods: Any, future_periods: float = 0.0
    ) -> np.ndarray:
        """P(alive at ``n_periods + future_periods``) given the history."""
        return bgbb_probability_alive(
            self._p("probability_alive"), frequency, recency, n_periods, future_periods
        )

    # -- Spark scoring -------------------------------------------------------------------------
    def expected_purchases(
        self,
        df: DataFrame,
        t: float,
        *,
        frequency_col: str = "frequency",
        recency_col: str = "recency",
        n_periods_col: str = "n_periods",
        output_col: str = "expected_purchases",
        interval: float | None = None,
        draws: int = 200,
    ) -> DataFrame:
        """Add the expected number of purchases in the next ``t`` periods (lifetimes' formula).

        With ``interval`` in (0, 1) (``t`` then a whole number of periods) it also adds
        ``{output_col}_low`` / ``{output_col}_high``: the central predictive interval of
        :meth:`predictive_interval_np`, in the same Arrow pass.
        """
        func = f"{type(self).__name__}.expected_purchases"
        check_finite_positive(func, "t", t, allow_zero=True)
        names = (frequency_col, recency_col, n_periods_col)
        horizon = float(t)
        if interval is None:
            return self._score(df, func, names, output_col, bgbb_conditional_expected, horizon)
        params = self._checked_params(df, func, names)
        level = check_fraction(func, "interval", interval, high_inclusive=False)
        periods = _check_periods(func, t)
        sample = self._interval_draws(check_int(func, "draws", draws, low=1))
        outputs = [output_col, f"{output_col}_low", f"{output_col}_high"]

        def score(c: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
            x, tx, n = c[names[0]], c[names[1]], c[names[2]]
            out = {output_col: bgbb_conditional_expected(params, horizon, x, tx, n)}
            out[outputs[1]], out[outputs[2]] = _bgbb_interval(sample, level, periods, x, tx, n)
            return out

        return with_numpy_columns(df, score, inputs=list(dict.fromkeys(names)), outputs=outputs)

    def predictive_interval_np(
        self,
        t: int,
        frequency: Any,
        recency: Any,
        n_periods: Any,
        *,
        interval: float,
        draws: int = 200,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Central predictive interval of the purchases in the next ``t`` periods.

        The conditional pmf (:meth:`conditional_probability_of_n_purchases_np`) mixed over
        ``draws`` parameter draws from the fit's asymptotic normal on the log scale, and the
        interval rule of :meth:`kamlib.clv.BetaGeo.predictive_interval_np`.
        """
        func = f"{type(self).__name__}.predictive_interval_np"
        level = check_fraction(func, "interval", interval, high_inclusive=False)
        periods = _check_periods(func, t)
        sample = self._interval_draws(check_int(func, "draws", draws, low=1))
        return _bgbb_interval(sample, level, periods, frequency, recency, n_periods)

    def probability_alive(
        self,
        df: DataFrame,
        *,
        future_periods: float = 0,
        frequency_col: str = "frequency",
        recency_col: str = "recency",
        n_periods_col: str = "n_periods",
        output_col: str = "p_alive",
        future_t: float | None = None,
    ) -> DataFrame:
        """Add P(alive at ``n_periods + future_periods``).

        Same as lifetimes' ``BetaGeoBetaBinomFitter.conditional_probability_alive``.
        ``future_t`` is accepted as another name of ``future_periods`` (the keyword of the
        continuous-time models); giving both with different values is a :class:`SchemaError`.
        """
        func = f"{type(self).__name__}.probability_alive"
        check_finite_positive(func, "future_periods", future_periods, allow_zero=True)
        if future_t is not None:
            alias = check_finite_positive(func, "future_t", future_t, allow_zero=True)
            if future_periods not in (0, alias):
                raise SchemaError(
                    function=func,
                    argument="future_t",
                    expected=f"the same value as future_periods={future_periods!r} (or omit one)",
                    found=repr(future_t),
                )
            future_periods = alias
        names = (frequency_col, recency_col, n_periods_col)
        return self._score(df, func, names, output_col, _bgbb_alive_kernel, float(future_periods))

    # -- horizon risks ---------------------------------------------------------------------------
    def conditional_probability_of_n_purchases_np(
        self, n: Any, t: int, frequency: Any, recency: Any, n_periods: Any
    ) -> np.ndarray:
        """P(exactly ``n`` purchases in the next ``t`` periods | history).

        See :func:`kamlib.clv._horizon.bgbb_conditional_pmf` (FHS 2010); NaN where the summary
        is invalid (not 0 <= frequency <= recency <= n_periods whole numbers).
        """
        return H.bgbb_conditional_pmf(
            self._p("conditional_probability_of_n_purchases_np"),
            n,
            int(t),
            frequency,
            recency,
            n_periods,
        )

    def probability_no_purchase_np(
        self, t: int, frequency: Any, recency: Any, n_periods: Any
    ) -> np.ndarray:
        """P(no purchase in the next ``t`` periods | history)."""
        return H.bgbb_conditional_pmf(
            self._p("probability_no_purchase_np"), 0.0, int(t), frequency, recency, n_periods
        )

    def _checked_params(self, df: DataFrame, func: str, names: tuple[str, str, str]) -> Params:
        """The fitted parameters (``NotFittedError`` first), then the summary columns checked."""
        params = self._p(func.rsplit(".", 1)[-1])
        _require_summary(df, func, names, age_arg="n_periods_col")
        return params

    def _score(
        self,
        df: DataFrame,
        func: str,
        names: tuple[str, str, str],
        output_col: str,
        kernel: Callable[..., np.ndarray],
        *args: float,
    ) -> DataFrame:
        """One Arrow pass adding ``kernel(params, *args, x, t_x, n_periods)`` as ``output_col``.

        The scoring path of BG/BB's one-column predictions (the parameters read as for
        ``func``'s method name).
        """
        params = self._checked_params(df, func, names)

        def score(c: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
            return {output_col: kernel(params, *args, c[names[0]], c[names[1]], c[names[2]])}

        return with_numpy_columns(
            df, score, inputs=list(dict.fromkeys(names)), outputs=[output_col]
        )

    def probability_no_purchase(
        self,
        df: DataFrame,
        t: int,
        *,
        frequency_col: str = "frequency",
        recency_col: str = "recency",
        n_periods_col: str = "n_periods",
        output_col: str = "p_no_purchase",
    ) -> DataFrame:
        r"""Add P(no purchase in the next ``t`` periods | frequency, recency, n_periods).

        :math:`P(X(n, n + t) = 0)` from :meth:`conditional_probability_of_n_purchases_np`;
        ``t`` is a whole number of periods (>= 1). Null where the summary is invalid.

        Examples
        --------
        >>> rows = [(0.0, 0.0, 6.0, 300.0), (6.0, 6.0, 6.0, 200.0), (3.0, 4.0, 6.0, 100.0),
        ...         (1.0, 1.0, 6.0, 150.0), (2.0, 5.0, 6.0, 80.0)]
        >>> s = spark.createDataFrame(
        ...     rows, "frequency double, recency double, n_periods double, w double")
        >>> m = BetaGeoBetaBinom().fit(s, weights_col="w")
        >>> p = m.probability_no_purchase(s, 2).orderBy("frequency").first().p_no_purchase
        >>> 0.0 < p < 1.0
        True
        """
        func = f"{type(self).__name__}.probability_no_purchase"
        periods = _check_periods(func, t)
        names = (frequency_col, recency_col, n_periods_col)
        return self._score(df, func, names, output_col, H.bgbb_conditional_pmf, 0.0, periods)

    def probability_of_n_purchases(
        self,
        df: DataFrame,
        t: int,
        n: int,
        *,
        frequency_col: str = "frequency",
        recency_col: str = "recency",
        n_periods_col: str = "n_periods",
        output_col: str = "p_n_purchases",
    ) -> DataFrame:
        r"""Add P(exactly ``n`` purchases in the next ``t`` periods | history).

        .. math::

            P(k) = \mathbb{1}_{k=0}\left(1 - \frac{A}{L}\right) + \frac{1}{L}\Bigl[
                \binom{t}{k} \frac{B(\alpha+x+k, \beta+n-x+t-k)}{B(\alpha,\beta)}
                \frac{B(\gamma, \delta+n+t)}{B(\gamma,\delta)}
              + \sum_{i=k}^{t-1} \binom{i}{k}
                \frac{B(\alpha+x+k, \beta+n-x+i-k)}{B(\alpha,\beta)}
                \frac{B(\gamma+1, \delta+n+i)}{B(\gamma,\delta)}\Bigr]

        with :math:`L` the BG/BB likelihood and :math:`A` its "alive at n" term (Fader, Hardie
        & Shang 2010). ``t`` whole periods (>= 1), ``n`` an int >= 0 (0 when ``n > t``).
        """
        func = f"{type(self).__name__}.probability_of_n_purchases"
        periods = _check_periods(func, t)
        count = check_int(func, "n", n, low=0)
        names = (frequency_col, recency_col, n_periods_col)
        return self._score(
            df, func, names, output_col, H.bgbb_conditional_pmf, float(count), periods
        )


def _bgbb_pmf_kernel(params: Any, k: float, periods: float, x: Any, tx: Any, n: Any) -> np.ndarray:
    return H.bgbb_conditional_pmf(params, k, int(periods), x, tx, n)


def _bgbb_alive_kernel(params: Any, future: float, x: Any, tx: Any, n: Any) -> np.ndarray:
    return bgbb_probability_alive(params, x, tx, n, future)


def _bgbb_interval(
    sample: list[np.ndarray], level: float, periods: int, x: Any, tx: Any, n: Any
) -> tuple[np.ndarray, np.ndarray]:
    return H.predictive_interval(
        _bgbb_pmf_kernel,
        sample,
        level,
        float(periods),
        x,
        tx,
        n,
        valid=H.bgbb_valid,
        max_count=float(periods),
    )


def _check_periods(func: str, t: Any) -> int:
    """``t`` as a whole number of periods >= 1 (an int, or a float with no fraction)."""
    if isinstance(t, float) and math.isfinite(t) and t.is_integer():
        t = int(t)
    return check_int(func, "t", t, low=1, unit="periods")
