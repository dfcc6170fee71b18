r"""Maximum-likelihood transaction and spend models: BG/NBD, Pareto/NBD, MBG/NBD, Gamma-Gamma.

The transaction models' fits never collect per-account rows: Spark reduces the summary to its
distinct ``(frequency, recency, T)`` tuples with counts (Gamma-Gamma collects every account's
``(frequency, monetary_value)`` pair, which are nearly all distinct), the driver maximises the
count-weighted log-likelihood (log-parameter space, L-BFGS-B, analytic gradients for BG/NBD,
MBG/NBD and Gamma-Gamma) and scoring runs as Arrow batch functions on the executors.

Every model also has a numpy interface (``fit_arrays`` and the ``*_np`` methods) that works on
plain arrays, for diagnostics, CLV and tests.

References
----------
* Fader, P. S., Hardie, B. G. S. and Lee, K. L. (2005), "Counting Your Customers the Easy Way:
  An Alternative to the Pareto/NBD Model", *Marketing Science* 24(2), 275-284.
* Schmittlein, D. C., Morrison, D. G. and Colombo, R. (1987), "Counting Your Customers: Who Are
  They and What Will They Do Next?", *Management Science* 33(1), 1-24; Fader, P. S. and Hardie,
  B. G. S. (2005), "A Note on Deriving the Pareto/NBD Model and Related Expressions".
* Batislam, E. P., Denizel, M. and Filiztekin, A. (2007), "Empirical validation and comparison
  of models for customer base analysis", *International Journal of Research in Marketing* 24(3).
* Fader, P. S., Hardie, B. G. S. and Lee, K. L. (2005), "RFM and CLV: Using Iso-Value Curves
  for Customer Base Analysis", *Journal of Marketing Research* 42(4), 415-430.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal, NamedTuple

import numpy as np
from scipy.optimize import minimize

from kamlib._arrow import NumpyFunc, with_numpy_columns
from kamlib._validation import (
    ColumnKind,
    check_finite_positive,
    check_fraction,
    check_int,
    require_columns,
)
from kamlib.clv import _horizon as H
from kamlib.clv import _likelihoods as L
from kamlib.clv._base import FittedModel, _PenalizedModel
from kamlib.errors import ConvergenceError, SchemaError

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame
    from typing_extensions import Self

    from kamlib.clv._likelihoods import FloatArray

__all__ = ["BetaGeo", "GammaGamma", "ModifiedBetaGeo", "ParetoNBD"]

_Objective = Callable[[np.ndarray], tuple[float, np.ndarray]]


def _as_array(func: str, name: str, value: Any) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        raise SchemaError(f"{func}(): {name} must be numeric, found {value!r}") from None
    return arr


@contextlib.contextmanager
def _single_threaded_blas() -> Iterator[None]:
    """Run the tiny optimiser linear algebra with one BLAS thread, then restore.

    L-BFGS-B works on 4x4 problems; OpenBLAS worker threads only add synchronisation cost, which
    explodes on a loaded 2-core machine. ``threadpoolctl`` finds and limits every BLAS loaded.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


def _require_summary(
    df: DataFrame,
    func: str,
    names: tuple[str, str, str],
    weights_col: str | None = None,
    *,
    age_arg: str = "T_col",
    **more: tuple[str, ColumnKind],
) -> None:
    """The (frequency, recency, T[, weights]) columns of a fit or a prediction: numeric.

    ``age_arg`` is the keyword that names the third column in messages (BG/BB:
    ``n_periods_col``). ``more`` are further ``argument=(column, kind)`` pairs checked in the
    same call (one message names every missing column).
    """
    age: tuple[str, ColumnKind] = (names[2], "numeric")
    require_columns(
        df,
        func,
        frequency_col=(names[0], "numeric"),
        recency_col=(names[1], "numeric"),
        **{age_arg: age},
        **more,
    )
    if weights_col is not None:
        require_columns(df, func, weights_col=(weights_col, "numeric"))


def _without_null_account_row(df: DataFrame, names: tuple[str, str, str]) -> DataFrame:
    """``df`` without rows whose frequency, recency and T are all null.

    That is :func:`~kamlib.clv.rfm_summary`'s row counting the rows with a null account (already
    excluded and counted there): a fit skips it. A row with only some statistics null is still
    invalid (:class:`SchemaError`).
    """
    from kamlib._validation import col

    return df.where(~(col(names[0]).isNull() & col(names[1]).isNull() & col(names[2]).isNull()))


def _valid_only(values: Any, x: np.ndarray, tx: np.ndarray, t_age: np.ndarray) -> FloatArray:
    """``values`` where the summary is valid, NaN (null in Spark) where it is not.

    Invalid: nulls, negative frequency, recency > T or < 0, recency > 0 without repeat
    purchases (:func:`kamlib.clv._horizon.continuous_valid`).
    """
    ok = H.continuous_valid(np.asarray(x, float), np.asarray(tx, float), np.asarray(t_age, float))
    return np.where(ok, values, np.nan)


def _distinct_summary(
    df: DataFrame, names: tuple[str, str, str], weights_col: str | None
) -> list[np.ndarray]:
    """The distinct (frequency, recency, age) tuples of ``df`` and their summed weights.

    Four float64 arrays on the driver (nulls as NaN); a row weighs 1, or its ``weights_col``.
    """
    from pyspark.sql import functions as F

    weight = F.lit(1.0) if weights_col is None else F.col(weights_col).cast("double")
    distinct = (
        df.select(
            F.col(names[0]).cast("double").alias("x"),
            F.col(names[1]).cast("double").alias("tx"),
            F.col(names[2]).cast("double").alias("T"),
            weight.alias("w"),
        )
        .groupBy("x", "tx", "T")
        .agg(F.sum("w").alias("n"))
    )
    return _collect_arrays(distinct, ["x", "tx", "T", "n"])


def _collect_arrays(df: DataFrame, columns: list[str]) -> list[np.ndarray]:
    """Bring a small aggregated DataFrame to the driver as float64 arrays (nulls as NaN).

    Uses Arrow (``toArrow``) rather than Row objects: a few hundred thousand distinct tuples
    transfer in milliseconds.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    table = df.select(*columns).toArrow()
    return [
        np.asarray(
            pc.cast(table.column(c), pa.float64()).to_numpy(zero_copy_only=False),
            dtype=np.float64,
        )
        for c in columns
    ]


_COEF_GROUPS = ("purchase", "dropout_a", "dropout_b")


def _covariate_names(func: str, arg: str, names: Any) -> list[str]:
    """A sequence of distinct, non-empty column names (a bare string is one name too many)."""
    from kamlib._validation import check_name

    def error(problem: str, expected: str) -> SchemaError:
        return SchemaError(
            f"{func}(): {arg}= {problem}",
            function=func,
            argument=arg,
            expected=expected,
            found=repr(names),
        )

    if isinstance(names, str) or not isinstance(names, (list, tuple)):
        raise error(
            f"must be a list or tuple of column names, found {names!r}",
            "a list or tuple of column names",
        )
    out = [check_name(func, arg, n) for n in names]
    if len(set(out)) != len(out):
        raise error(f"repeats a column: {names!r}", "distinct column names")
    return out


def _check_coefficients(
    model: str, value: Any, supported: bool
) -> dict[str, dict[str, float]] | None:
    """Validate a stored ``coefficients`` document (JSON load or fit); None when absent/empty."""
    from kamlib.errors import ModelFormatError

    if value is None:
        return None
    if not isinstance(value, Mapping) or not set(value) <= set(_COEF_GROUPS):
        raise ModelFormatError(
            "fit.coefficients", f"expected an object with keys among {list(_COEF_GROUPS)}"
        )
    out: dict[str, dict[str, float]] = {}
    for group in _COEF_GROUPS:
        entries = value.get(group, {})
        if not isinstance(entries, Mapping):
            raise ModelFormatError(f"fit.coefficients.{group}", "expected an object")
        checked: dict[str, float] = {}
        for name, coef in entries.items():
            if (
                not isinstance(name, str)
                or not name
                or isinstance(coef, bool)
                or not isinstance(coef, (int, float))
                or not math.isfinite(float(coef))
            ):
                raise ModelFormatError(
                    f"fit.coefficients.{group}", "expected column name -> finite number"
                )
            checked[name] = float(coef)
        out[group] = checked
    if list(out["dropout_a"]) != list(out["dropout_b"]):
        raise ModelFormatError(
            "fit.coefficients", "dropout_a and dropout_b must name the same columns"
        )
    if not any(out.values()):
        return None
    if not supported:
        raise ModelFormatError("fit.coefficients", f"a {model} model has no covariates")
    return out


#: Weighted means and standard deviations ``(mp, sp, md, sd)`` of the covariate columns.
_Moments = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _covariate_groups(
    func: str,
    frequency: Any,
    recency: Any,
    T: Any,
    weights: Any,
    purchase: Mapping[str, Any],
    dropout: Mapping[str, Any],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """Checked ``(x, tx, T, n, zp, zd)`` of a covariate fit, and the weight left out.

    Groups with a non-finite covariate are left out (their weight is counted), and so are the
    groups of weight 0; ConvergenceError when none remain.
    """
    x = _as_array(func, "frequency", frequency)
    tx = _as_array(func, "recency", recency)
    t_age = _as_array(func, "T", T)
    n = np.ones_like(x) if weights is None else _as_array(func, "weights", weights)
    zp_cols = [_as_array(func, f"covariate {c!r}", v) for c, v in purchase.items()]
    zd_cols = [_as_array(func, f"covariate {c!r}", v) for c, v in dropout.items()]
    if any(v.size != x.size for v in [tx, t_age, n, *zp_cols, *zd_cols]):
        raise SchemaError(
            f"{func}(): frequency, recency, T, weights and covariates must have the same length"
        )
    zp = np.stack(zp_cols, axis=1) if zp_cols else np.zeros((x.size, 0))
    zd = np.stack(zd_cols, axis=1) if zd_cols else np.zeros((x.size, 0))
    finite_z = np.all(np.isfinite(zp), axis=1) & np.all(np.isfinite(zd), axis=1)
    excluded = round(float(n[~finite_z].sum()))
    keep = finite_z & (n > 0)
    if not np.any(keep):
        raise ConvergenceError(f"{func}(): no accounts to fit (empty input)")
    return x[keep], tx[keep], t_age[keep], n[keep], zp[keep], zd[keep], excluded


def _weighted_moments(n: np.ndarray, total: float, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted column means and standard deviations of ``z`` (a zero deviation becomes 1)."""
    mean = (n @ z) / total
    sd = np.sqrt(np.maximum((n @ (z - mean) ** 2) / total, 0.0))
    return mean, np.where(sd > 0, sd, 1.0)


def _covariate_objective(data: L.BGCovData, total: float, penalizer: float) -> _Objective:
    """``-LL / N`` of the covariate BG/NBD and its gradient, L2 penalty on r, alpha, a, b."""

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        ll, grad = L.bg_cov_loglik_grad(theta, data)
        if not math.isfinite(ll) or not np.all(np.isfinite(grad)):
            return math.inf, np.zeros_like(theta)
        value = -ll / total
        g = -grad / total
        if penalizer:
            p4 = np.exp(theta[:4])
            value += penalizer * float(p4 @ p4)
            g[:4] += 2.0 * penalizer * p4 * p4
        return value, g

    return objective


def _natural_units(
    theta: np.ndarray,
    scale: float,
    mp: np.ndarray,
    sp: np.ndarray,
    md: np.ndarray,
    sd: np.ndarray,
) -> tuple[tuple[float, float, float, float], np.ndarray]:
    """``(r, alpha, a, b)`` and the whole log-parameter vector in natural units.

    alpha_i = alpha_z exp(-g_z (z - m) / s) = alpha exp(-g z), likewise for a and b.
    """
    kp, kd = sp.size, sd.size
    g = theta[4 : 4 + kp] / sp
    da = theta[4 + kp : 4 + kp + kd] / sd
    db = theta[4 + kp + kd :] / sd
    r = math.exp(theta[0])
    alpha = math.exp(theta[1]) * math.exp(float(g @ mp)) / scale
    a = math.exp(theta[2]) * math.exp(-float(da @ md))
    b = math.exp(theta[3]) * math.exp(-float(db @ md))
    return (r, alpha, a, b), np.concatenate([np.log([r, alpha, a, b]), g, da, db])


def _newton_polished(
    theta: np.ndarray, loglik: float, grad: np.ndarray, hess: np.ndarray, natural: L.BGCovData
) -> tuple[np.ndarray, float]:
    """One Newton step from the L-BFGS-B optimum, kept when it does not lower the likelihood.

    Analytic gradient, numeric Hessian; the step is tiny, so the Hessian is kept for the
    standard errors.
    """
    candidate = theta - _newton_step(hess, grad)
    cand_ll, _ = L.bg_cov_loglik_grad(candidate, natural)
    if math.isfinite(cand_ll) and cand_ll >= loglik:
        return candidate, cand_ll
    return theta, loglik


def _coefficient_groups(
    purchase: Collection[str], dropout: Collection[str], values: np.ndarray
) -> dict[str, dict[str, float]]:
    """``values[4:]`` (g, d_a, d_b) of a covariate fit by group and covariate name."""
    kp, kd = len(purchase), len(dropout)
    return {
        "purchase": dict(zip(purchase, values[4 : 4 + kp].tolist(), strict=True)),
        "dropout_a": dict(zip(dropout, values[4 + kp : 4 + kp + kd].tolist(), strict=True)),
        "dropout_b": dict(zip(dropout, values[4 + kp + kd :].tolist(), strict=True)),
    }


#: A fitted log-parameter (in the scaled units the optimiser sees) beyond +-16 (a value outside
#: [1e-7, 9e6]) is a run towards a boundary of the parameter space, not an interior maximum.
_IDENTIFIED_LOG = 16.0


def _check_identified(
    func: str, names: tuple[str, ...], log_params: np.ndarray, hess: np.ndarray
) -> None:
    """ConvergenceError unless the optimum is interior and the Hessian is negative definite."""
    at_bound = [n for n, v in zip(names, log_params, strict=True) if abs(v) >= _IDENTIFIED_LOG]
    if at_bound:
        raise ConvergenceError(
            f"{func}(): {', '.join(at_bound)} ran to the boundary of the parameter space "
            f"(log values {np.round(log_params, 1).tolist()}): the data do not identify the model "
            f"(typical causes: very few accounts, nearly identical accounts, or no sign of "
            f"dropout); use more data or penalizer > 0"
        )
    eigen = np.linalg.eigvalsh(-(hess + hess.T) / 2) if np.all(np.isfinite(hess)) else None
    if eigen is None or eigen.min() <= 1e-12 * max(abs(eigen.max()), 1.0):
        raise ConvergenceError(
            f"{func}(): the log-likelihood is flat or not concave at the optimum (singular "
            f"Hessian), so the parameters are not identified by these data; use more varied "
            f"accounts or penalizer > 0"
        )


def _minimize(
    func: str,
    objective: _Objective,
    starts: list[np.ndarray],
    *,
    maxiter: int,
    tol: float,
) -> tuple[np.ndarray, Any]:
    """L-BFGS-B from each start; return the best converged result or raise ConvergenceError."""
    best: Any = None
    messages: list[str] = []
    for x0 in starts:
        if best is not None:
            break  # the first converged start is kept; later starts are fallbacks
        value0, _ = objective(x0)
        if not math.isfinite(value0):
            messages.append("non-finite objective at the starting point")
            continue
        with _single_threaded_blas():
            res = minimize(
                objective,
                x0,
                jac=True,
                method="L-BFGS-B",
                bounds=[(-30.0, 30.0)] * x0.size,
                # a curvature memory as long as the parameter vector (covariate fits)
                options={
                    "maxiter": maxiter,
                    "ftol": tol,
                    "gtol": 1e-9,
                    "maxls": 50,
                    "maxcor": max(10, x0.size),
                },
            )
        msg = str(res.message)
        if not (res.success and np.all(np.isfinite(res.x)) and math.isfinite(float(res.fun))):
            messages.append(msg)
            continue
        if best is None or res.fun < best.fun:
            best = res
    if best is None:
        raise ConvergenceError(
            f"{func}(): the optimiser did not converge ({'; '.join(dict.fromkeys(messages))}); "
            f"try a larger penalizer or more iterations (maxiter=)"
        )
    return np.asarray(best.x), best


def _newton_step(hess: np.ndarray, grad: np.ndarray) -> np.ndarray:
    try:
        step = np.linalg.solve(hess, grad)
    except np.linalg.LinAlgError:
        return np.zeros_like(grad)
    return step if np.all(np.isfinite(step)) else np.zeros_like(grad)


def _standard_errors(names: tuple[str, ...], hessian: np.ndarray) -> dict[str, float]:
    try:
        cov = np.linalg.inv(-hessian)
        diag = np.diag(cov)
        se = np.where(diag > 0, np.sqrt(np.abs(diag)), np.nan)
    except np.linalg.LinAlgError:
        se = np.full(len(names), np.nan)
    return {name: float(v) for name, v in zip(names, se, strict=True)}


def _covariance(hessian: np.ndarray) -> list[list[float]]:
    """Inverse observed information ``inv(-H)`` as nested lists (NaN if singular)."""
    try:
        cov = np.linalg.inv(-hessian)
    except np.linalg.LinAlgError:
        cov = np.full(hessian.shape, np.nan)
    return [[float(v) for v in row] for row in cov]


def _fitted_covariance(model: FittedModel) -> np.ndarray | None:
    """The fit's parameter covariance; older saved models: the diagonal of the squared SEs."""
    info = model._fit_info
    names = model.param_names
    cov = info.get("covariance")
    if isinstance(cov, list) and len(cov) == len(names):
        try:
            arr = np.asarray(cov, dtype=np.float64)
        except (TypeError, ValueError):
            arr = None
        if arr is not None and arr.shape == (len(names), len(names)):
            return arr
    se = info.get("standard_errors")
    if isinstance(se, Mapping) and all(isinstance(se.get(n), (int, float)) for n in names):
        return np.diag([float(se[n]) ** 2 for n in names])
    return None


#: Parameter draws (scrambled Sobol points, and their seed) mixed into the predictive intervals.
INTERVAL_DRAWS = 64
INTERVAL_SEED = 20240601


class _PredictiveModel(_PenalizedModel):
    """A penalized model with predictive intervals (the BG/NBD family and BG/BB)."""

    def _interval_draws(self, draws: int) -> list[np.ndarray]:
        """``draws`` parameter vectors for the predictive intervals.

        From the fit's asymptotic normal on the log scale (:func:`_fitted_covariance`), with
        the fixed :data:`INTERVAL_SEED` so that interval columns are reproducible.
        """
        params = self._p("predictive_interval_np")
        return H.parameter_draws(params, _fitted_covariance(self), draws, INTERVAL_SEED)


class _Kernels(NamedTuple):
    """A transaction model's scoring functions, each ``kernel(params, *args, x, t_x, T)``."""

    #: Conditional expected purchases in the next ``t``: ``(params, t, x, t_x, T)``.
    conditional: Callable[..., FloatArray]
    #: P(alive at T): ``(params, x, t_x, T)``.
    alive: Callable[..., FloatArray]
    #: Conditional pmf of the next-t purchases: ``(params, n, t, x, t_x, T)``.
    pmf: Callable[..., FloatArray]
    #: P(alive at T + future_t): ``(params, future_t, x, t_x, T)``.
    future_alive: Callable[..., FloatArray]
    #: Predictive interval: ``(draws, level, t, x, t_x, T) -> (low, high)``.
    interval: Callable[..., tuple[FloatArray, FloatArray]]


class _TransactionModel(_PredictiveModel):
    """Shared fit/scoring machinery of the BG/NBD-family models (r, alpha, ., .)."""

    _scaled_params: ClassVar[tuple[int, ...]] = (1,)
    #: The model's scoring functions (set by each model).
    _kernels: ClassVar[_Kernels]
    #: Last parameter of the first start of the optimiser (half of it in the second start).
    _last_start: ClassVar[float]

    # -- model-specific hooks ------------------------------------------------------------
    def _objective(self, data: L.BGData, scale: float) -> _Objective:
        raise NotImplementedError

    def _loglik_function(self, data: L.BGData) -> Callable[[tuple[float, ...]], float]:
        raise NotImplementedError

    def _loglik_grad_function(self, data: L.BGData) -> Callable[[tuple[float, ...]], np.ndarray]:
        raise NotImplementedError

    def _starts(self, data: L.BGData) -> list[np.ndarray]:
        rate = _rate_start(data)
        last = self._last_start
        return [
            np.log([1.0, 1.0 / rate, 1.0, last]),
            np.log([0.5, 0.5 / rate, 0.5, last / 2.0]),
            np.full(4, 0.1),
        ]

    # -- fitting ---------------------------------------------------------------------------
    def fit(
        self,
        df: DataFrame,
        *,
        frequency_col: str = "frequency",
        recency_col: str = "recency",
        T_col: str = "T",
        weights_col: str | None = None,
        maxiter: int = 1000,
        tol: float = 1e-12,
        purchase_covariates: Sequence[str] = (),
        dropout_covariates: Sequence[str] = (),
    ) -> Self:
        r"""Fit by maximum likelihood on a summary DataFrame (one row per account).

        Spark reduces the rows to distinct ``(frequency, recency, T)`` tuples with counts; only
        those reach the driver, where :meth:`fit_arrays` maximises the weighted likelihood.

        Parameters
        ----------
        df : pyspark.sql.DataFrame
            Summary such as :func:`kamlib.clv.rfm_summary` output.
        frequency_col, recency_col, T_col : str
            Column names of ``x`` (repeat purchases), ``t_x`` (recency) and ``T`` (age).
        weights_col : str, optional
            Numeric column of row weights (a row stands for that many accounts).
        maxiter : int
            Maximum L-BFGS-B iterations per start.
        tol : float
            Relative tolerance on the objective (L-BFGS-B ``ftol``).
        purchase_covariates, dropout_covariates : sequence of str
            Numeric columns of time-invariant covariates (BG/NBD only; Fader & Hardie 2007):
            :math:`\alpha_i = \alpha e^{-g \cdot z_i}` for the purchase covariates,
            :math:`a_i = a e^{d_a \cdot z_i}`, :math:`b_i = b e^{d_b \cdot z_i}` for the
            dropout ones; see :attr:`coefficients`. Rows with a null or NaN covariate are
            excluded and counted in ``fit_info["excluded"]``. Predictions then read the same
            columns from the scored DataFrame.

        Returns
        -------
        self
            The fitted model.

        Raises
        ------
        SchemaError
            Missing or non-numeric columns, or invalid values (negative frequency, recency > T).
        ConvergenceError
            The optimiser failed from every starting point.
        """
        func = f"{type(self).__name__}.fit"
        if purchase_covariates or dropout_covariates:
            return self._fit_covariates_df(
                df,
                func,
                frequency_col=frequency_col,
                recency_col=recency_col,
                T_col=T_col,
                weights_col=weights_col,
                purchase_covariates=purchase_covariates,
                dropout_covariates=dropout_covariates,
                maxiter=maxiter,
                tol=tol,
            )
        names = (frequency_col, recency_col, T_col)
        _require_summary(df, func, names, weights_col)
        arr = _distinct_summary(_without_null_account_row(df, names), names, weights_col)
        return self.fit_arrays(arr[0], arr[1], arr[2], arr[3], maxiter=maxiter, tol=tol)

    def fit_arrays(
        self,
        frequency: Any,
        recency: Any,
        T: Any,
        weights: Any = None,
        *,
        maxiter: int = 1000,
        tol: float = 1e-12,
        purchase_covariates: Mapping[str, Any] | None = None,
        dropout_covariates: Mapping[str, Any] | None = None,
    ) -> Self:
        """Fit on numpy arrays (optionally count-weighted distinct tuples); returns self.

        The objective is ``-LL / N + penalizer * sum(p ** 2)``, with ``N`` the total weight and
        ``p`` the parameters with time-like ones (``alpha``, and ``beta`` for Pareto/NBD)
        expressed in units where the largest ``T`` is 1, as lifetimes does.
        ``purchase_covariates`` / ``dropout_covariates`` map covariate names to arrays of the
        same length (BG/NBD only, see :meth:`fit`).
        """
        func = f"{type(self).__name__}.fit"
        if purchase_covariates or dropout_covariates:
            return self._fit_covariates(
                func,
                frequency,
                recency,
                T,
                weights,
                dict(purchase_covariates or {}),
                dict(dropout_covariates or {}),
                maxiter=maxiter,
                tol=tol,
                excluded=0,
            )
        started = time.perf_counter()
        x, tx, t_age, n = self._weighted_tuples(func, frequency, recency, T, weights)
        self._check_values(func, x, tx, t_age)
        self._check_varied(func, x, tx, t_age, n)
        scale = 1.0 / float(t_age.max()) if t_age.max() > 0 else 1.0
        natural = L.BGData.build(x, tx, t_age, n)
        data = natural.rescaled(scale)
        with _single_threaded_blas():
            log_params, res = _minimize(
                func, self._objective(data, scale), self._starts(data), maxiter=maxiter, tol=tol
            )
            ptuple, loglik, objective, hess = self._natural_optimum(
                np.exp(log_params), scale, natural, float(res.fun)
            )
        if self.penalizer == 0:
            _check_identified(func, self.param_names, log_params, hess)
        self._set_fitted(
            dict(zip(self.param_names, ptuple, strict=True)),
            log_likelihood=loglik,
            standard_errors=_standard_errors(self.param_names, hess),
            covariance=_covariance(hess),
            iterations=int(res.nit),
            function_evaluations=int(res.nfev),
            converged=True,
            message=str(res.message),
            objective=objective,
            n=float(n.sum()),
            n_distinct=int(x.size),
            time_scale=scale,
            seconds=time.perf_counter() - started,
        )
        return self

    @staticmethod
    def _weighted_tuples(
        func: str, frequency: Any, recency: Any, T: Any, weights: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(x, tx, T, n)`` as arrays of one length, without the tuples of weight 0."""
        x = _as_array(func, "frequency", frequency)
        tx = _as_array(func, "recency", recency)
        t_age = _as_array(func, "T", T)
        n = np.ones_like(x) if weights is None else _as_array(func, "weights", weights)
        if not (x.size == tx.size == t_age.size == n.size):
            raise SchemaError(
                f"{func}(): frequency, recency, T and weights must have the same length, found "
                f"{x.size}, {tx.size}, {t_age.size}, {n.size}"
            )
        keep = n > 0
        x, tx, t_age, n = x[keep], tx[keep], t_age[keep], n[keep]
        if x.size == 0:
            raise ConvergenceError(f"{func}(): no accounts to fit (empty input)")
        return x, tx, t_age, n

    @staticmethod
    def _check_varied(
        func: str, x: np.ndarray, tx: np.ndarray, t_age: np.ndarray, n: np.ndarray
    ) -> None:
        """ConvergenceError when no account repeats or all accounts have one tuple."""
        if not np.any(x > 0):
            raise ConvergenceError(
                f"{func}(): no account has a repeat purchase (every frequency is 0), so the "
                f"likelihood has no maximum (the purchase rate is not identified)"
            )
        if all(np.all(v == v[0]) for v in (x, tx, t_age)):
            raise ConvergenceError(
                f"{func}(): all {float(n.sum()):g} accounts have the same (frequency, recency, "
                f"T) = ({x[0]:g}, {tx[0]:g}, {t_age[0]:g}), so the heterogeneity across "
                f"accounts that the model estimates is not identified; fit on more varied accounts"
            )

    def _natural_optimum(
        self, p_scaled: np.ndarray, scale: float, natural: L.BGData, objective: float
    ) -> tuple[tuple[float, ...], float, float, np.ndarray]:
        """Parameters in natural units, their log-likelihood, the objective and the Hessian.

        ``p_scaled`` is the optimum in the units where the largest ``T`` is 1. With analytic
        gradients (every model here) and no penalizer, one Newton step polishes it to machine
        precision.
        """
        params = p_scaled.copy()
        for i in self._scaled_params:
            params[i] = p_scaled[i] / scale
        ptuple = tuple(float(v) for v in params)
        loglik_fn = self._loglik_function(natural)
        loglik = loglik_fn(ptuple)
        grad_fn = self._loglik_grad_function(natural)
        hess = L.jacobian_hessian(lambda p: grad_fn(tuple(p)), params)
        if self.penalizer == 0:
            candidate = params - _newton_step(hess, grad_fn(ptuple))
            if np.all(candidate > 0):
                cand_tuple = tuple(float(v) for v in candidate)
                cand_ll = loglik_fn(cand_tuple)
                if math.isfinite(cand_ll) and cand_ll >= loglik:
                    return cand_tuple, cand_ll, -cand_ll / natural.total, hess
        return ptuple, loglik, objective, hess

    @staticmethod
    def _check_values(func: str, x: np.ndarray, tx: np.ndarray, t_age: np.ndarray) -> None:
        if not (np.all(np.isfinite(x)) and np.all(np.isfinite(tx)) and np.all(np.isfinite(t_age))):
            raise SchemaError(
                f"{func}(): frequency, recency and T must be finite numbers (no nulls or NaN)"
            )
        if np.any(x < 0):
            raise SchemaError(f"{func}(): frequency must be >= 0, found {x.min()!r}")
        if np.any(tx < 0) or np.any(tx > t_age + 1e-9):
            raise SchemaError(f"{func}(): recency must satisfy 0 <= recency <= T for every account")
        if np.any((x == 0) & (tx != 0)):
            raise SchemaError(f"{func}(): recency must be 0 where frequency is 0")

    # -- covariates (BG/NBD; Fader & Hardie 2007) ------------------------------------------
    _supports_covariates: ClassVar[bool] = False

    def _set_fitted(self, params: Mapping[str, float], **fit_info: Any) -> None:
        coefficients = _check_coefficients(
            type(self).__name__, fit_info.get("coefficients"), self._supports_covariates
        )
        if coefficients is None:
            fit_info.pop("coefficients", None)
        else:
            fit_info["coefficients"] = coefficients
        super()._set_fitted(params, **fit_info)

    @property
    def coefficients(self) -> dict[str, dict[str, float]]:
        """Covariate coefficients (empty dicts for a model fitted without covariates).

        ``{"purchase": {col: g}, "dropout_a": {col: d_a}, "dropout_b": {col: d_b}}``.
        """
        self._require_fitted("coefficients")
        stored = self._fit_info.get("coefficients") or {}
        return {k: dict(stored.get(k, {})) for k in _COEF_GROUPS}

    @property
    def coefficient_standard_errors(self) -> dict[str, dict[str, float]]:
        """Standard errors of :attr:`coefficients` (same layout), from the inverse Hessian."""
        self._require_fitted("coefficient_standard_errors")
        stored = self._fit_info.get("coefficient_standard_errors") or {}
        return {k: dict(stored.get(k, {})) for k in _COEF_GROUPS}

    @property
    def covariate_columns(self) -> tuple[str, ...]:
        """Columns the predictions read (purchase then dropout covariates; empty if none)."""
        if self._params is None:
            return ()
        stored = self._fit_info.get("coefficients") or {}
        names = [*stored.get("purchase", {}), *stored.get("dropout_a", {})]
        return tuple(dict.fromkeys(names))

    @property
    def n_params(self) -> int:
        """Number of estimated parameters (4 plus the covariate coefficients)."""
        stored = self._fit_info.get("coefficients") or {}
        return len(self.param_names) + sum(len(stored.get(k, {})) for k in _COEF_GROUPS)

    def _require_covariates(self, df: DataFrame, func: str) -> tuple[str, ...]:
        """The model's covariate columns, checked numeric in ``df`` (SchemaError, no job)."""
        covariates = self.covariate_columns
        for c in covariates:
            require_columns(df, func, covariates=(c, "numeric"))
        return covariates

    def _row_params(
        self, cols: Mapping[str, np.ndarray] | None
    ) -> tuple[tuple[Any, ...], np.ndarray | bool]:
        """THE prediction hook: per-row parameters from the (Arrow) columns of a batch.

        Returns ``(params, ok)``: the fitted scalars and ``True`` for a model without
        covariates; otherwise ``(r, alpha_i, a_i, b_i)`` as arrays (one value per row) and a
        mask of the rows whose covariates are all finite (the others must become null).
        Every kernel broadcasts these parameters elementwise.
        """
        params = self._p("predict")
        stored = self._fit_info.get("coefficients") or {}
        if not any(stored.get(k) for k in _COEF_GROUPS):
            return params, True
        if cols is None:
            raise SchemaError(
                f"{type(self).__name__}: the model has covariates "
                f"{list(self.covariate_columns)}; pass covariates={{name: array}}"
            )
        missing = [c for c in self.covariate_columns if c not in cols]
        if missing:
            raise SchemaError(
                f"{type(self).__name__}: covariates= lacks {missing} (the model was fitted "
                f"with covariates {list(self.covariate_columns)})"
            )
        purchase, drop_a, drop_b = (stored.get(k, {}) for k in _COEF_GROUPS)

        def matrix(names: Any) -> np.ndarray:
            arrays = [np.asarray(cols[c], dtype=np.float64).ravel() for c in names]
            if not arrays:
                return np.zeros((0, 0))
            return np.stack(arrays, axis=1)

        zp, zd = matrix(purchase), matrix(drop_a)
        size = max(zp.shape[0], zd.shape[0])
        zp = zp if zp.size else np.zeros((size, 0))
        zd = zd if zd.size else np.zeros((size, 0))
        ok = np.all(np.isfinite(zp), axis=1) & np.all(np.isfinite(zd), axis=1)
        zp = np.where(ok[:, None], zp, 0.0)
        zd = np.where(ok[:, None], zd, 0.0)
        rows = L.bg_cov_row_params(
            params,
            np.array([purchase[c] for c in purchase], dtype=np.float64),
            np.array([drop_a[c] for c in drop_a], dtype=np.float64),
            np.array([drop_b[c] for c in drop_a], dtype=np.float64),
            zp,
            zd,
        )
        return rows, ok

    def _fit_covariates_df(
        self,
        df: DataFrame,
        func: str,
        *,
        frequency_col: str,
        recency_col: str,
        T_col: str,
        weights_col: str | None,
        purchase_covariates: Sequence[str],
        dropout_covariates: Sequence[str],
        maxiter: int,
        tol: float,
    ) -> Self:
        """Spark side of the covariate fit: distinct (covariates x tuple) groups with counts."""
        from pyspark.sql import functions as F

        from kamlib._validation import col, finite

        purchase = _covariate_names(func, "purchase_covariates", purchase_covariates)
        dropout = _covariate_names(func, "dropout_covariates", dropout_covariates)
        self._check_covariate_support(func)
        _require_summary(df, func, (frequency_col, recency_col, T_col), weights_col)
        for arg, names in (("purchase_covariates", purchase), ("dropout_covariates", dropout)):
            for c in names:
                kind: ColumnKind = "numeric"
                require_columns(df, func, **{arg: (c, kind)})
        covariates = list(dict.fromkeys([*purchase, *dropout]))
        ok = F.lit(True)
        for c in covariates:
            ok = ok & finite(col(c))
        weight = F.lit(1.0) if weights_col is None else col(weights_col).cast("double")
        keys = ["x", "tx", "T", *[f"z{i}" for i in range(len(covariates))]]
        sources = [frequency_col, recency_col, T_col, *covariates]
        # ``ok`` once per row (a projection of its own), then the keys of invalid rows nulled
        # so that they fall into one group: 2x faster than repeating ``ok`` in every key
        flagged = _without_null_account_row(df, (frequency_col, recency_col, T_col)).select(
            *[col(c).cast("double").alias(k) for c, k in zip(sources, keys, strict=True)],
            ok.alias("ok"),
            weight.alias("w"),
        )
        grouped = (
            flagged.select(*[F.when(F.col("ok"), F.col(k)).alias(k) for k in keys], "ok", "w")
            .groupBy("ok", *keys)
            .agg(F.sum("w").alias("n"), F.count(F.lit(1)).alias("rows"))
        )
        arr = _collect_arrays(grouped, ["ok", *keys, "n", "rows"])
        valid = arr[0] > 0.5
        excluded = round(float(arr[-1][~valid].sum()))
        x, tx, t_age = (a[valid] for a in arr[1:4])
        z = {c: arr[4 + i][valid] for i, c in enumerate(covariates)}
        n = arr[-2][valid]
        return self._fit_covariates(
            func,
            x,
            tx,
            t_age,
            n,
            {c: z[c] for c in purchase},
            {c: z[c] for c in dropout},
            maxiter=maxiter,
            tol=tol,
            excluded=excluded,
        )

    def _check_covariate_support(self, func: str) -> None:
        if not self._supports_covariates:
            raise SchemaError(
                f"{func}(): covariates are supported for BetaGeo only, not {type(self).__name__}",
                function=func,
                argument="purchase_covariates",
                expected="no covariates for this model",
                found="covariates",
            )

    def _fit_covariates(
        self,
        func: str,
        frequency: Any,
        recency: Any,
        T: Any,
        weights: Any,
        purchase: dict[str, Any],
        dropout: dict[str, Any],
        *,
        maxiter: int,
        tol: float,
        excluded: int,
    ) -> Self:
        """Maximum likelihood with covariates over count-weighted groups (numpy side).

        Starts from the plain fit with zero coefficients; optimises on covariates centred and
        scaled to unit variance (and T scaled to 1), then maps back to the original units.
        """
        started = time.perf_counter()
        self._check_covariate_support(func)
        _covariate_names(func, "purchase_covariates", list(purchase))
        _covariate_names(func, "dropout_covariates", list(dropout))
        x, tx, t_age, n, zp, zd, dropped = _covariate_groups(
            func, frequency, recency, T, weights, purchase, dropout
        )
        self._check_values(func, x, tx, t_age)
        theta, res, natural, scale, moments = self._standardized_optimum(
            func, x, tx, t_age, n, zp, zd, maxiter=maxiter, tol=tol
        )
        values, theta_nat = _natural_units(theta, scale, *moments)
        with _single_threaded_blas():
            loglik, grad = L.bg_cov_loglik_grad(theta_nat, natural)
            hess = L.jacobian_hessian(lambda v: L.bg_cov_loglik_grad(v, natural)[1], theta_nat)
        if self.penalizer == 0:
            theta_nat, loglik = _newton_polished(theta_nat, loglik, grad, hess, natural)
            r, alpha, a, b = (float(v) for v in np.exp(theta_nat[:4]))
            values = (r, alpha, a, b)
            names = (
                *self.param_names,
                *[f"g[{c}]" for c in purchase],
                *[f"d_a[{c}]" for c in dropout],
                *[f"d_b[{c}]" for c in dropout],
            )
            free = np.zeros(theta_nat.size - 4)
            _check_identified(func, names, np.concatenate([theta[:4], free]), hess)
        se_all = _standard_errors(tuple(f"p{i}" for i in range(theta_nat.size)), hess)
        se = np.array([se_all[f"p{i}"] for i in range(theta_nat.size)])
        param_se = (np.array(values) * se[:4]).tolist()
        self._set_fitted(
            dict(zip(self.param_names, values, strict=True)),
            log_likelihood=float(loglik),
            standard_errors=dict(zip(self.param_names, param_se, strict=True)),
            coefficients=_coefficient_groups(purchase, dropout, theta_nat),
            coefficient_standard_errors=_coefficient_groups(purchase, dropout, se),
            iterations=int(res.nit),
            function_evaluations=int(res.nfev),
            converged=True,
            message=str(res.message),
            objective=float(res.fun),
            n=float(n.sum()),
            n_distinct=int(x.size),
            excluded=excluded + dropped,
            time_scale=scale,
            seconds=time.perf_counter() - started,
        )
        return self

    def _standardized_optimum(
        self,
        func: str,
        x: np.ndarray,
        tx: np.ndarray,
        t_age: np.ndarray,
        n: np.ndarray,
        zp: np.ndarray,
        zd: np.ndarray,
        *,
        maxiter: int,
        tol: float,
    ) -> tuple[np.ndarray, Any, L.BGCovData, float, _Moments]:
        """L-BFGS-B on standardized covariates and T scaled to 1, from the plain fit.

        Returns the optimum ``theta`` (scaled units), the optimiser result, the groups in
        natural units, the time scale and the weighted moments ``(mp, sp, md, sd)``.
        """
        # the plain fit gives the starting point (and the usual identification checks), on the
        # distinct (x, t_x, T) tuples of the groups
        tuples, inverse = L._unique_rows(np.stack([x, tx, t_age], axis=1))
        plain = type(self)(penalizer=self.penalizer).fit_arrays(
            tuples[:, 0],
            tuples[:, 1],
            tuples[:, 2],
            np.bincount(inverse, weights=n),
            maxiter=maxiter,
            tol=tol,
        )
        base = np.array(plain._p("fit"))
        scale = float(plain._fit_info.get("time_scale", 1.0))
        total = float(n.sum())
        mp, sp = _weighted_moments(n, total, zp)
        md, sd = _weighted_moments(n, total, zd)
        natural = L.BGCovData.build(x, tx, t_age, n, zp, zd)
        data = natural.rescaled(scale).standardized(mp, sp, md, sd)
        start_scaled = base.copy()
        start_scaled[1] = base[1] * scale
        x0 = np.concatenate([np.log(start_scaled), np.zeros(zp.shape[1] + 2 * zd.shape[1])])
        objective = _covariate_objective(data, total, self.penalizer)
        with _single_threaded_blas():
            theta, res = _minimize(func, objective, [x0], maxiter=maxiter, tol=tol)
        return theta, res, natural, scale, (mp, sp, md, sd)

    # -- numpy interface -----------------------------------------------------------------
    def conditional_expected_purchases_np(
        self, t: Any, frequency: Any, recency: Any, T: Any
    ) -> FloatArray:
        """Expected purchases in the next ``t`` units given ``(frequency, recency, T)``."""
        raise NotImplementedError

    def probability_alive_np(self, frequency: Any, recency: Any, T: Any) -> FloatArray:
        """P(alive at T | frequency, recency, T)."""
        raise NotImplementedError

    def expected_purchases_np(self, t: Any) -> FloatArray:
        """Unconditional expected number of repeat purchases of a new customer in ``(0, t]``."""
        raise NotImplementedError

    def probability_of_purchases_np(self, n: Any, t: Any) -> FloatArray:
        """P(X(t) = n): probability of exactly ``n`` repeat purchases in ``(0, t]`` (population)."""
        raise NotImplementedError

    # -- Spark scoring ---------------------------------------------------------------------
    def expected_purchases(
        self,
        df: DataFrame,
        t: float,
        *,
        frequency_col: str = "frequency",
        recency_col: str = "recency",
        T_col: str = "T",
        output_col: str = "expected_purchases",
        interval: float | None = None,
        draws: int = INTERVAL_DRAWS,
    ) -> DataFrame:
        """Add the conditional expected number of purchases in the next ``t`` time units.

        Same as lifetimes' ``conditional_expected_number_of_purchases_up_to_time``; computed
        on the executors in Arrow batches (all other columns are kept).

        With ``interval`` in (0, 1) it also adds ``{output_col}_low`` and
        ``{output_col}_high``: a central predictive interval for the (integer) number of
        purchases in the next ``t`` units, from the account's conditional pmf
        (:meth:`conditional_probability_of_n_purchases_np`) mixed over ``draws`` parameter
        vectors drawn from the fit's asymptotic normal on the log scale (fixed seed, so the
        columns are reproducible); see :meth:`predictive_interval_np`. Same Arrow pass, no
        per-draw rows.
        """
        func = f"{type(self).__name__}.expected_purchases"
        check_finite_positive(func, "t", t, allow_zero=True)
        names = (frequency_col, recency_col, T_col)
        if interval is not None:
            return self._expected_with_interval(df, func, t, interval, draws, names, output_col)
        kernel, args = self._kernel("expected", float(t))
        return self._score_horizon(df, func, names, output_col, kernel, *args)

    def probability_alive(
        self,
        df: DataFrame,
        *,
        frequency_col: str = "frequency",
        recency_col: str = "recency",
        T_col: str = "T",
        output_col: str = "p_alive",
        future_t: float = 0,
    ) -> DataFrame:
        """Add the probability that each account is still alive at ``T + future_t``.

        ``future_t = 0`` (the default) is P(alive now), as lifetimes'
        ``conditional_probability_alive``; ``future_t > 0`` is
        :meth:`conditional_probability_alive_np` (invalid summaries give null).
        """
        func = f"{type(self).__name__}.probability_alive"
        horizon = check_finite_positive(func, "future_t", future_t, allow_zero=True)
        kernel, args = self._kernel("alive", horizon)
        names = (frequency_col, recency_col, T_col)
        return self._score_horizon(df, func, names, output_col, kernel, *args)

    # -- horizon risks (kamlib.clv._horizon) -------------------------------------------------
    def _pmf_kernel(self) -> Callable[..., FloatArray]:
        """``kernel(params, n, t, x, t_x, T)``: the conditional pmf of the next-t purchases."""
        return self._kernels.pmf

    def conditional_probability_of_n_purchases_np(
        self, n: Any, t: Any, frequency: Any, recency: Any, T: Any
    ) -> FloatArray:
        r"""P(exactly ``n`` purchases in :math:`(T, T + t]` | frequency, recency, T).

        .. math::

            P(X(T, T+t) = n \mid x, t_x, T) = \mathbb{1}_{n=0}(1 - P_A)
                + P_A\, P(X(t) = n \mid \text{posterior of an account alive at } T)

        (the model's unconditional pmf with :math:`r + x`, :math:`\alpha + T` and the
        updated dropout parameters; see :mod:`kamlib.clv._horizon`). For Pareto/NBD this is
        Fader & Hardie (2006) note 028 eq. 16, = lifetimes'
        ``ParetoNBDFitter.conditional_probability_of_n_purchases_up_to_time``. NaN where the
        summary is invalid (negative frequency, recency > T, non-finite values).
        """
        return self._pmf_kernel()(
            self._p("conditional_probability_of_n_purchases_np"), n, t, frequency, recency, T
        )

    def probability_no_purchase_np(
        self, t: Any, frequency: Any, recency: Any, T: Any
    ) -> FloatArray:
        r"""P(no purchase in :math:`(T, T + t]`) = :math:`P(X(T, T+t) = 0 \mid x, t_x, T)`."""
        return self._pmf_kernel()(
            self._p("probability_no_purchase_np"), 0.0, t, frequency, recency, T
        )

    def conditional_probability_alive_np(
        self, future_t: Any, frequency: Any, recency: Any, T: Any
    ) -> FloatArray:
        r"""P(alive at :math:`T + t` | frequency, recency, T); = P(alive) at ``future_t = 0``.

        BG/NBD and MBG/NBD: :math:`P_A (\frac{\alpha+T}{\alpha+T+t})^{r+x}\,
        {}_2F_1(r+x, b'; a+b'; \frac{t}{\alpha+T+t})` with :math:`b' = b + x` (BG/NBD) or
        :math:`b + x + 1` (MBG/NBD); Pareto/NBD: :math:`P_A (\frac{\beta+T}{\beta+T+t})^s`.
        """
        return self._kernels.future_alive(
            self._p("conditional_probability_alive_np"), future_t, frequency, recency, T
        )

    def _score_horizon(
        self,
        df: DataFrame,
        func: str,
        names: tuple[str, str, str],
        output_col: str,
        kernel: Callable[..., FloatArray],
        *args: float,
    ) -> DataFrame:
        """One Arrow pass adding ``kernel(params, *args, x, t_x, T)`` as ``output_col``."""
        score, inputs = self._horizon_scorer(df, func, names, [(output_col, kernel, args)])
        return with_numpy_columns(df, score, inputs=inputs, outputs=[output_col])

    def _horizon_scorer(
        self,
        df: DataFrame,
        func: str,
        names: tuple[str, str, str],
        specs: Sequence[tuple[str, Callable[..., FloatArray], tuple[float, ...]]],
    ) -> tuple[NumpyFunc, list[str]]:
        """The Arrow batch function adding ``kernel(params, *args, x, t_x, T)`` per spec.

        The one scoring path of the transaction models, also for several outputs in one pass
        (``specs``: ``(output_col, kernel, args)``; the scorecard fuses them with the CLV):
        per-row parameters from :meth:`_row_params` (covariate models), null where the
        summary or a covariate is invalid. Returns the function and its input columns.
        """
        self._p(func.rsplit(".", 1)[-1])  # NotFittedError before any job
        _require_summary(df, func, names)
        covariates = self._require_covariates(df, func)
        row_params = self._row_params
        specs = list(specs)

        def score(cols: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
            params, ok = row_params(cols if covariates else None)
            x, tx, t_age = cols[names[0]], cols[names[1]], cols[names[2]]
            out = {}
            with np.errstate(all="ignore"):
                for output_col, kernel, args in specs:
                    values = kernel(params, *args, x, tx, t_age)
                    out[output_col] = np.where(ok, _valid_only(values, x, tx, t_age), np.nan)
            return out

        return score, list(dict.fromkeys([*names, *covariates]))

    def _kernel(
        self, kind: Literal["alive", "no_purchase", "expected"], t: float
    ) -> tuple[Callable[..., FloatArray], tuple[float, ...]]:
        """The kernel and arguments of P(alive at T + t), P(no purchase in t), E[X(t)]."""
        if kind == "alive":
            return (self._kernels.future_alive, (t,)) if t > 0 else (self._kernels.alive, ())
        if kind == "no_purchase":
            return self._kernels.pmf, (0.0, t)
        return self._kernels.conditional, (t,)

    def predictive_interval_np(
        self,
        t: float,
        frequency: Any,
        recency: Any,
        T: Any,
        *,
        interval: float,
        draws: int = INTERVAL_DRAWS,
    ) -> tuple[FloatArray, FloatArray]:
        r"""Central predictive interval ``(low, high)`` of the purchases in the next ``t``.

        The predictive pmf of an account is :math:`\bar P(k) = \frac{1}{D} \sum_d
        P(X(T, T+t) = k \mid x, t_x, T, \theta_d)`, with :math:`\theta_d` ``draws`` draws
        from :math:`\log\theta \sim N(\log\hat\theta, \Sigma_{\log})` (the inverse
        observed information of the fit, by the delta method; models saved before it was
        stored use the squared standard errors, without correlations). With :math:`\bar F`
        its distribution function and :math:`c` = ``interval``: ``low`` =
        :math:`\min\{k : \bar F(k) \ge (1 - c)/2\}` and ``high`` = the first :math:`k \ge`
        ``low`` with :math:`\bar F(k) - \bar F(\text{low} - 1) \ge c` (at least :math:`c`
        of the predictive mass; counts are discrete). NaN for invalid summaries.
        """
        func = f"{type(self).__name__}.predictive_interval_np"
        level = check_fraction(func, "interval", interval, high_inclusive=False)
        count = check_int(func, "draws", draws, low=1)
        return self._kernels.interval(
            self._interval_draws(count), level, float(t), frequency, recency, T
        )

    def _expected_with_interval(
        self,
        df: DataFrame,
        func: str,
        t: float,
        interval: float,
        draws: int,
        names: tuple[str, str, str],
        output_col: str,
    ) -> DataFrame:
        level = check_fraction(func, "interval", interval, high_inclusive=False)
        count = check_int(func, "draws", draws, low=1)
        params = self._p("expected_purchases")
        if self.covariate_columns:
            raise SchemaError(
                function=func,
                argument="interval",
                expected="None for a model with covariates (the draws are of the base parameters)",
                found=repr(interval),
            )
        _require_summary(df, func, names)
        kernel, interval_kernel = self._kernels.conditional, self._kernels.interval
        sample = self._interval_draws(count)
        horizon = float(t)
        outputs = [output_col, f"{output_col}_low", f"{output_col}_high"]

        def score(cols: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
            x, tx, age = cols[names[0]], cols[names[1]], cols[names[2]]
            if horizon > 0:
                low, high = interval_kernel(sample, level, horizon, x, tx, age)
            else:
                low = high = np.where(H.continuous_valid(x, tx, age), 0.0, np.nan)
            return {
                outputs[0]: kernel(params, horizon, x, tx, age),
                outputs[1]: low,
                outputs[2]: high,
            }

        return with_numpy_columns(df, score, inputs=list(dict.fromkeys(names)), outputs=outputs)

    def probability_no_purchase(
        self,
        df: DataFrame,
        t: float,
        *,
        frequency_col: str = "frequency",
        recency_col: str = "recency",
        T_col: str = "T",
        output_col: str = "p_no_purchase",
    ) -> DataFrame:
        r"""Add the probability that each account makes no purchase in the next ``t`` units.

        :math:`P(X(T, T+t) = 0 \mid x, t_x, T) = 1 - P_A\,(1 - P(X(t) = 0 \mid
        \text{alive at } T))`; for BG/NBD and MBG/NBD the inner term is
        :math:`(\frac{\alpha + T}{\alpha + T + t})^{r + x}`. Computed on the executors in
        one Arrow pass; null where the summary is invalid (null, negative frequency,
        recency > T).

        Parameters
        ----------
        df : pyspark.sql.DataFrame
            A summary (frequency, recency, T); other columns pass through.
        t : float
            Horizon in the model's time unit (finite, > 0).
        frequency_col, recency_col, T_col : str
            Input columns.
        output_col : str
            Output column (double).

        Examples
        --------
        >>> from kamlib.datasets import load_cdnow_summary
        >>> summary = load_cdnow_summary(spark)
        >>> bg = BetaGeo().fit(summary)
        >>> p = bg.probability_no_purchase(summary, 13.0)  # next quarter, in weeks
        >>> round(p.where("account_id = '1'").first().p_no_purchase, 3)
        0.677
        """
        func = f"{type(self).__name__}.probability_no_purchase"
        horizon = check_finite_positive(func, "t", t)
        names = (frequency_col, recency_col, T_col)
        kernel, args = self._kernel("no_purchase", horizon)
        return self._score_horizon(df, func, names, output_col, kernel, *args)

    def probability_of_n_purchases(
        self,
        df: DataFrame,
        t: float,
        n: int,
        *,
        frequency_col: str = "frequency",
        recency_col: str = "recency",
        T_col: str = "T",
        output_col: str = "p_n_purchases",
    ) -> DataFrame:
        r"""Add P(exactly ``n`` purchases in the next ``t`` units | history) per account.

        See :meth:`conditional_probability_of_n_purchases_np` for the formula (the
        Pareto/NBD values equal lifetimes' ``conditional_probability_of_n_purchases_up_to_time``).
        One Arrow pass on the executors; null where the summary is invalid.

        Parameters
        ----------
        df : pyspark.sql.DataFrame
            A summary (frequency, recency, T); other columns pass through.
        t : float
            Horizon in the model's time unit (finite, > 0).
        n : int
            Number of purchases (>= 0).
        frequency_col, recency_col, T_col, output_col : str
            Input and output column names.

        Examples
        --------
        >>> from kamlib.datasets import load_cdnow_summary
        >>> summary = load_cdnow_summary(spark)
        >>> model = ParetoNBD().fit(summary)
        >>> p = model.probability_of_n_purchases(summary, 39.0, 1)
        >>> 0.0 <= p.first().p_n_purchases <= 1.0
        True
        """
        func = f"{type(self).__name__}.probability_of_n_purchases"
        horizon = check_finite_positive(func, "t", t)
        count = check_int(func, "n", n, low=0)
        names = (frequency_col, recency_col, T_col)
        return self._score_horizon(
            df, func, names, output_col, self._kernels.pmf, float(count), horizon
        )


def _rate_start(data: L.BGData) -> float:
    """Purchase rate estimate sum(n x) / sum(n T) (in the scaled time of ``data``)."""
    total_t = float(data.n @ data.T)
    rate = float(data.n @ data.x) / total_t if total_t > 0 else 1.0
    return max(rate, 1e-6)


class BetaGeo(_TransactionModel):
    r"""BG/NBD model of repeat purchasing (Fader, Hardie & Lee 2005).

    While alive, an account buys as a Poisson process with rate
    :math:`\lambda \sim \mathrm{Gamma}(r, \alpha)`; after every purchase it drops out with
    probability :math:`p \sim \mathrm{Beta}(a, b)`.

    Parameters
    ----------
    penalizer : float
        L2 penalty as lifetimes' ``BetaGeoFitter``: ``penalizer * sum(p ** 2)`` is added to
        the mean negative log-likelihood per account, with ``alpha`` in time units where the
        largest ``T`` is 1.

    Notes
    -----
    Likelihood of an account with ``x`` repeat purchases, last at :math:`t_x`, age :math:`T`:

    .. math::

        L = \frac{B(a, b + x)}{B(a, b)} \frac{\Gamma(r + x) \alpha^r}{\Gamma(r)
            (\alpha + T)^{r + x}} + \mathbb{1}_{x > 0} \frac{B(a + 1, b + x - 1)}{B(a, b)}
            \frac{\Gamma(r + x) \alpha^r}{\Gamma(r) (\alpha + t_x)^{r + x}}

    Conditional expectation (eq. 10) and P(alive) (Fader, Hardie & Lee 2008):

    .. math::

        E[X(t) \mid x, t_x, T] = \frac{a + b + x - 1}{a - 1}
            \frac{1 - \left(\frac{\alpha + T}{\alpha + T + t}\right)^{r + x}
            {}_2F_1\!\left(r + x, b + x; a + b + x - 1; \frac{t}{\alpha + T + t}\right)}
            {1 + \mathbb{1}_{x > 0} \frac{a}{b + x - 1}
            \left(\frac{\alpha + T}{\alpha + t_x}\right)^{r + x}}

        P(\text{alive}) = \left(1 + \mathbb{1}_{x > 0} \frac{a}{b + x - 1}
            \left(\frac{\alpha + T}{\alpha + t_x}\right)^{r + x}\right)^{-1}

    The hypergeometric term is Euler-transformed, so predictions stay finite for ``x = 0`` with
    ``a + b < 1`` (where lifetimes returns NaN, lifetimes #442) and for very large ``x``.

    With ``fit(..., purchase_covariates=, dropout_covariates=)`` each account has its own
    :math:`\alpha_i = \alpha e^{-g \cdot z_i}`, :math:`a_i = a e^{d_a \cdot z_i}`,
    :math:`b_i = b e^{d_b \cdot z_i}` (Fader & Hardie 2007); see :attr:`coefficients`.

    References
    ----------
    Fader, Hardie & Lee (2005), "Counting Your Customers the Easy Way: An Alternative to the
    Pareto/NBD Model", Marketing Science 24(2), 275-284. Fader & Hardie (2007),
    "Incorporating Time-Invariant Covariates into the Pareto/NBD and BG/NBD Models".

    Examples
    --------
    >>> from kamlib.datasets import load_cdnow_summary
    >>> model = BetaGeo().fit(load_cdnow_summary(spark))
    >>> {k: round(v, 3) for k, v in model.params.items()}
    {'r': 0.243, 'alpha': 4.414, 'a': 0.793, 'b': 2.426}
    >>> round(float(model.conditional_expected_purchases_np(39, 2, 30.43, 38.86)), 4)
    1.2259
    """

    model_type: ClassVar[str] = "BetaGeo"
    param_names: ClassVar[tuple[str, ...]] = ("r", "alpha", "a", "b")
    _modified: ClassVar[bool] = False
    _supports_covariates: ClassVar[bool] = True
    _kernels: ClassVar[_Kernels] = _Kernels(
        L.bg_conditional_expected,
        L.bg_probability_alive,
        H.bg_conditional_pmf,
        H.bg_conditional_alive,
        H.bg_predictive_interval,
    )
    _last_start: ClassVar[float] = 3.0

    def _objective(self, data: L.BGData, scale: float) -> _Objective:
        penalizer, modified = self.penalizer, self._modified

        def objective(log_params: np.ndarray) -> tuple[float, np.ndarray]:
            return L._objective(log_params, data, penalizer, scale, modified=modified)

        return objective

    def _loglik_function(self, data: L.BGData) -> Callable[[tuple[float, ...]], float]:
        modified = self._modified

        def loglik(params: tuple[float, ...]) -> float:
            return L.bg_loglik_total(params, data, modified)

        return loglik

    def _loglik_grad_function(self, data: L.BGData) -> Callable[[tuple[float, ...]], np.ndarray]:
        modified = self._modified
        return lambda params: L.bg_loglik_grad(params, data, modified)

    def conditional_expected_purchases_np(
        self,
        t: Any,
        frequency: Any,
        recency: Any,
        T: Any,
        *,
        covariates: Mapping[str, Any] | None = None,
    ) -> FloatArray:
        """Conditional expected purchases in the next ``t`` units (FHL 2005 eq. 10).

        A model fitted with covariates needs ``covariates={column: array}`` (NaN where a
        covariate is missing).
        """
        if not self.covariate_columns:
            return L.bg_conditional_expected(
                self._p("conditional_expected_purchases_np"), t, frequency, recency, T
            )
        params, ok = self._row_params(covariates)
        with np.errstate(all="ignore"):
            out = L.bg_conditional_expected(params, t, frequency, recency, T)
        return np.asarray(np.where(ok, out, np.nan))

    def probability_alive_np(
        self, frequency: Any, recency: Any, T: Any, *, covariates: Mapping[str, Any] | None = None
    ) -> FloatArray:
        """P(alive | frequency, recency, T); exactly 1 when frequency is 0."""
        if not self.covariate_columns:
            return L.bg_probability_alive(self._p("probability_alive_np"), frequency, recency, T)
        params, ok = self._row_params(covariates)
        with np.errstate(all="ignore"):
            out = L.bg_probability_alive(params, frequency, recency, T)
        return np.asarray(np.where(ok, out, np.nan))

    def expected_purchases_np(self, t: Any) -> FloatArray:
        r"""Unconditional :math:`E[X(t)]` of a new customer (FHL 2005 eq. 9)."""
        params = self._p("expected_purchases_np")
        return L.bg_conditional_expected(params, t, 0.0, 0.0, 0.0)

    def probability_of_purchases_np(self, n: Any, t: Any) -> FloatArray:
        r"""Population :math:`P(X(t) = n)` (FHL 2005 eq. 8)."""
        return L.bg_pmf(self._p("probability_of_purchases_np"), n, t)


class ModifiedBetaGeo(BetaGeo):
    r"""Modified BG/NBD model (Batislam, Denizel & Filiztekin 2007).

    As :class:`BetaGeo`, but an account may also drop out right after its first purchase
    (at time 0), so accounts with no repeat purchases are not assumed alive.

    Notes
    -----
    .. math::

        L = \frac{B(a, b + x + 1)}{B(a, b)} \frac{\Gamma(r + x) \alpha^r}{\Gamma(r)
            (\alpha + T)^{r + x}} + \frac{B(a + 1, b + x)}{B(a, b)}
            \frac{\Gamma(r + x) \alpha^r}{\Gamma(r) (\alpha + t_x)^{r + x}}

        P(\text{alive}) = \left(1 + \frac{a}{b + x}
            \left(\frac{\alpha + T}{\alpha + t_x}\right)^{r + x}\right)^{-1}

        E[X(t) \mid x, t_x, T] = \frac{a + b + x}{a - 1}
            \left[1 - \left(\frac{\alpha + T}{\alpha + T + t}\right)^{r + x}
            {}_2F_1\!\left(r + x, b + x + 1; a + b + x; \frac{t}{\alpha + T + t}\right)\right]
            P(\text{alive})

    References
    ----------
    Batislam, Denizel & Filiztekin (2007), "Empirical validation and comparison of models for
    customer base analysis", International Journal of Research in Marketing 24(3), 201-209;
    Wagner & Hoppe (2008) for the conditional expectation.

    Examples
    --------
    >>> from kamlib.datasets import load_cdnow_summary
    >>> model = ModifiedBetaGeo().fit(load_cdnow_summary(spark))
    >>> {k: round(v, 3) for k, v in model.params.items()}
    {'r': 0.525, 'alpha': 6.183, 'a': 0.891, 'b': 1.614}
    """

    model_type: ClassVar[str] = "ModifiedBetaGeo"
    _modified: ClassVar[bool] = True
    _supports_covariates: ClassVar[bool] = False
    _kernels: ClassVar[_Kernels] = _Kernels(
        L.mbg_conditional_expected,
        L.mbg_probability_alive,
        H.bg_conditional_pmf_modified,
        H.bg_conditional_alive_modified,
        H.bg_predictive_interval_modified,
    )

    def conditional_expected_purchases_np(
        self,
        t: Any,
        frequency: Any,
        recency: Any,
        T: Any,
        *,
        covariates: Mapping[str, Any] | None = None,
    ) -> FloatArray:
        """Conditional expected purchases in the next ``t`` units (no covariates)."""
        return L.mbg_conditional_expected(
            self._p("conditional_expected_purchases_np"), t, frequency, recency, T
        )

    def probability_alive_np(
        self, frequency: Any, recency: Any, T: Any, *, covariates: Mapping[str, Any] | None = None
    ) -> FloatArray:
        """P(alive | frequency, recency, T) (below 1 even when frequency is 0)."""
        return L.mbg_probability_alive(self._p("probability_alive_np"), frequency, recency, T)

    def expected_purchases_np(self, t: Any) -> FloatArray:
        r"""Unconditional :math:`E[X(t)]` of a new customer."""
        return L.mbg_conditional_expected(self._p("expected_purchases_np"), t, 0.0, 0.0, 0.0)

    def probability_of_purchases_np(self, n: Any, t: Any) -> FloatArray:
        r"""Population :math:`P(X(t) = n)`."""
        return L.mbg_pmf(self._p("probability_of_purchases_np"), n, t)


class ParetoNBD(_TransactionModel):
    r"""Pareto/NBD model (Schmittlein, Morrison & Colombo 1987).

    While alive, an account buys as a Poisson process with rate
    :math:`\lambda \sim \mathrm{Gamma}(r, \alpha)`; its lifetime is exponential with rate
    :math:`\mu \sim \mathrm{Gamma}(s, \beta)`.

    Parameters
    ----------
    penalizer : float
        L2 penalty as lifetimes' ``ParetoNBDFitter`` applies it to one row per account:
        ``penalizer * sum(p ** 2)`` is added to the *total* negative log-likelihood, with
        ``alpha`` and ``beta`` in time units where the largest ``T`` is 1.

    Notes
    -----
    Likelihood (Fader & Hardie 2005, note 009, eq. 18):

    .. math::

        L = \frac{\Gamma(r + x) \alpha^r \beta^s}{\Gamma(r)} \left[
            \frac{1}{(\alpha + T)^{r + x} (\beta + T)^s} + \frac{s}{r + s + x} A_0 \right]

    with, for :math:`\alpha \ge \beta`,

    .. math::

        A_0 = \frac{{}_2F_1(r + s + x, s + 1; r + s + x + 1;
              \frac{\alpha - \beta}{\alpha + t_x})}{(\alpha + t_x)^{r + s + x}}
            - \frac{{}_2F_1(r + s + x, s + 1; r + s + x + 1;
              \frac{\alpha - \beta}{\alpha + T})}{(\alpha + T)^{r + s + x}}

    (for :math:`\alpha < \beta` swap the roles of :math:`\alpha, \beta` and use
    :math:`r + x` as the second parameter). Everything is evaluated in log space; the
    hypergeometric terms fall back to a log-space Gauss-Legendre evaluation of their Euler
    integral when scipy's series overflows (very large ``x``). The gradient is analytic: the
    hypergeometric terms are differentiated in their parameters under Euler's integral
    (:func:`~kamlib.clv._likelihoods.log_hyp2f1_grad`, composite Gauss-Legendre).

    .. math::

        P(\text{alive}) = \left(1 + \frac{s}{r + s + x} (\alpha + T)^{r + x}
            (\beta + T)^s A_0\right)^{-1},\quad
        E[X(t) \mid \cdot] = P(\text{alive}) \frac{(r + x)(\beta + T)}{(\alpha + T)(s - 1)}
            \left[1 - \left(\frac{\beta + T}{\beta + T + t}\right)^{s - 1}\right]

    Examples
    --------
    >>> from kamlib.datasets import load_cdnow_summary
    >>> model = ParetoNBD().fit(load_cdnow_summary(spark))
    >>> {k: round(v, 2) for k, v in model.params.items()}
    {'r': 0.55, 'alpha': 10.58, 's': 0.61, 'beta': 11.67}
    """

    model_type: ClassVar[str] = "ParetoNBD"
    param_names: ClassVar[tuple[str, ...]] = ("r", "alpha", "s", "beta")
    _scaled_params: ClassVar[tuple[int, ...]] = (1, 3)
    _kernels: ClassVar[_Kernels] = _Kernels(
        L.pnbd_conditional_expected,
        L.pnbd_probability_alive,
        H.pnbd_conditional_pmf,
        H.pnbd_conditional_alive,
        H.pnbd_predictive_interval,
    )
    _last_start: ClassVar[float] = 1.0

    def _objective(self, data: L.BGData, scale: float) -> _Objective:
        # lifetimes' ParetoNBDFitter minimises -sum(ll) + c * sum(p ** 2) (one row per account);
        # dividing everything by N keeps its minimiser and the objective's scale.
        total = data.total
        penalizer = self.penalizer / total
        pairs = L.PairIndex.build(data)

        def objective(log_params: np.ndarray) -> tuple[float, np.ndarray]:
            params = np.exp(log_params)
            ll = L.pnbd_loglik_total(tuple(params), data, pairs)
            if not math.isfinite(ll):
                return math.inf, np.zeros(4)
            grad = L.pnbd_loglik_grad(tuple(params), data, pairs)
            if not np.all(np.isfinite(grad)):
                return math.inf, np.zeros(4)
            value = -ll / total + penalizer * float(params @ params)
            # in log-parameter space: d/d(log p) = p d/dp
            return value, (-grad / total + 2.0 * penalizer * params) * params

        return objective

    def _loglik_function(self, data: L.BGData) -> Callable[[tuple[float, ...]], float]:
        pairs = L.PairIndex.build(data)

        def loglik(params: tuple[float, ...]) -> float:
            return L.pnbd_loglik_total(params, data, pairs)

        return loglik

    def _loglik_grad_function(self, data: L.BGData) -> Callable[[tuple[float, ...]], np.ndarray]:
        pairs = L.PairIndex.build(data)
        return lambda params: L.pnbd_loglik_grad(params, data, pairs)

    def conditional_expected_purchases_np(
        self, t: Any, frequency: Any, recency: Any, T: Any
    ) -> FloatArray:
        """Conditional expected purchases in the next ``t`` units (note 009 eq. 41)."""
        return L.pnbd_conditional_expected(
            self._p("conditional_expected_purchases_np"), t, frequency, recency, T
        )

    def probability_alive_np(self, frequency: Any, recency: Any, T: Any) -> FloatArray:
        """P(alive | frequency, recency, T) (note 009 eq. 36-37)."""
        return L.pnbd_probability_alive(self._p("probability_alive_np"), frequency, recency, T)

    def expected_purchases_np(self, t: Any) -> FloatArray:
        r"""Unconditional E[X(t)] of a new customer (note 009 eq. 27).

        .. math:: E[X(t)] = \frac{r\beta}{\alpha(s-1)}\left[1 - \left(\frac{\beta}{\beta+t}
            \right)^{s-1}\right]
        """
        return L.pnbd_expected(self._p("expected_purchases_np"), t)

    def probability_of_purchases_np(self, n: Any, t: Any) -> FloatArray:
        r"""Population :math:`P(X(t) = n)`, integrating the NBD over the Pareto lifetime."""
        return L.pnbd_pmf(self._p("probability_of_purchases_np"), n, t)


class GammaGamma(_PenalizedModel):
    r"""Gamma-Gamma model of spend per transaction (Fader, Hardie & Lee 2005, "RFM and CLV").

    Each transaction value is :math:`z \sim \mathrm{Gamma}(p, \nu)` with
    :math:`\nu \sim \mathrm{Gamma}(q, v)` across accounts; fitted on the mean repeat spend
    :math:`m` of accounts with ``frequency > 0`` and ``monetary_value > 0`` (the others are
    counted in :attr:`excluded`).

    Parameters
    ----------
    penalizer : float
        L2 penalty as lifetimes' ``GammaGammaFitter``: ``penalizer * (p**2 + q**2 + v**2)``
        added to the mean negative log-likelihood per account.

    Notes
    -----
    .. math::

        \log L = \log\Gamma(px + q) - \log\Gamma(px) - \log\Gamma(q) + q \log v
            + (px - 1)\log m + px \log x - (px + q) \log(x m + v)

        E[Z \mid x, m] = \frac{q - 1}{px + q - 1} \frac{p v}{q - 1}
            + \frac{px}{px + q - 1} m

    Equivalently :math:`E[Z \mid x, m] = p (v + x m) / (px + q - 1)`, finite only when
    :math:`px + q > 1`. Accounts with ``x = 0`` get the population mean :math:`p v / (q - 1)`,
    which exists only for :math:`q > 1`: a fit can find :math:`q \le 1` (very heavy-tailed
    spend), and then those accounts' expected spend (and CLV) is null / NaN, never a negative
    number.

    Examples
    --------
    >>> from kamlib.datasets import load_cdnow_summary
    >>> model = GammaGamma().fit(load_cdnow_summary(spark))
    >>> {k: round(v, 4) for k, v in model.params.items()}
    {'p': 6.2488, 'q': 3.7446, 'v': 15.4477}
    >>> model.excluded
    1411
    """

    model_type: ClassVar[str] = "GammaGamma"
    param_names: ClassVar[tuple[str, ...]] = ("p", "q", "v")

    @property
    def excluded(self) -> int:
        """Accounts left out of the fit (frequency 0 or non-positive monetary value)."""
        self._require_fitted("excluded")
        return int(self._fit_info.get("excluded", 0))

    def fit(
        self,
        df: DataFrame,
        *,
        frequency_col: str = "frequency",
        monetary_value_col: str = "monetary_value",
        recency_col: str = "recency",
        T_col: str = "T",
        maxiter: int = 1000,
        tol: float = 1e-12,
    ) -> GammaGamma:
        """Fit on a summary DataFrame (one row per account); returns self.

        The ``(frequency, monetary_value)`` pair of every account reaches the driver as two
        float64 columns (16 bytes per account, through Arrow, in one job). Monetary values are
        averages of amounts, so the pairs are nearly all distinct: reducing them to distinct
        pairs in Spark first would cost a shuffle without reducing them (0.9 s instead of
        0.3 s at 1M accounts). ``recency_col`` and ``T_col`` are accepted for symmetry with
        the transaction models and not used.
        """
        from pyspark.sql import functions as F

        func = "GammaGamma.fit"
        x, m = _spend_columns(df, func, frequency_col, monetary_value_col)
        ok = (x > 0) & (m > 0) & ~F.isnan(x) & ~F.isnan(m)
        pairs = df.select(F.when(ok, x).alias("x"), F.when(ok, m).alias("m"))
        xs, ms = _collect_arrays(pairs, ["x", "m"])
        return self._fit(func, xs, ms, np.ones_like(xs), np.isfinite(xs), maxiter, tol)

    def fit_arrays(
        self,
        frequency: Any,
        monetary_value: Any,
        weights: Any = None,
        *,
        maxiter: int = 1000,
        tol: float = 1e-12,
    ) -> GammaGamma:
        """Fit on numpy arrays; rows with frequency <= 0 or monetary_value <= 0 are excluded."""
        func = "GammaGamma.fit"
        x = _as_array(func, "frequency", frequency)
        m = _as_array(func, "monetary_value", monetary_value)
        n = np.ones_like(x) if weights is None else _as_array(func, "weights", weights)
        if not (x.size == m.size == n.size):
            raise SchemaError(
                f"{func}(): frequency, monetary_value and weights must have the same length"
            )
        ok = (x > 0) & (m > 0) & np.isfinite(x) & np.isfinite(m)
        return self._fit(func, x, m, n, ok, maxiter, tol)

    def _fit(
        self,
        func: str,
        x: np.ndarray,
        m: np.ndarray,
        n: np.ndarray,
        ok: np.ndarray,
        maxiter: int,
        tol: float,
    ) -> GammaGamma:
        """Fit on the rows where ``ok`` (the others counted as excluded); returns self."""
        started = time.perf_counter()
        excluded = round(float(n[~ok].sum()))
        x, m, n = x[ok], m[ok], n[ok]
        keep = n > 0
        x, m, n = x[keep], m[keep], n[keep]
        if x.size == 0:
            raise ConvergenceError(
                f"{func}(): no accounts with frequency > 0 and monetary_value > 0 to fit"
            )
        if np.unique(m).size < 2:
            raise ConvergenceError(
                f"{func}(): all {x.size} fitted accounts have the same monetary_value, so the "
                f"likelihood has no maximum (spend variation is not identified)"
            )
        penalizer = self.penalizer
        data = L.GGData.build(x, m, n)

        def objective(log_params: np.ndarray) -> tuple[float, np.ndarray]:
            return L.gg_neg_loglik_grad_data(log_params, data, penalizer)

        mean_m = float(n @ m / n.sum())
        starts = [
            np.log([2.0, 3.0, mean_m]),
            np.log([5.0, 3.0, 2.0 * mean_m / 5.0]),
            np.full(3, 0.1),
        ]
        log_params, res = _minimize(func, objective, starts, maxiter=maxiter, tol=tol)
        params = np.exp(log_params)
        ptuple = tuple(float(v) for v in params)
        loglik = float(n @ L.gg_loglik_terms(ptuple, x, m))
        hess = L.jacobian_hessian(lambda p: L.gg_loglik_grad(tuple(p), x, m, n), params)
        self._set_fitted(
            dict(zip(self.param_names, ptuple, strict=True)),
            log_likelihood=loglik,
            standard_errors=_standard_errors(self.param_names, hess),
            iterations=int(res.nit),
            function_evaluations=int(res.nfev),
            converged=True,
            message=str(res.message),
            objective=float(res.fun),
            n=float(n.sum()),
            n_distinct=int(x.size),
            excluded=excluded,
            seconds=time.perf_counter() - started,
        )
        return self

    def expected_spend_np(self, frequency: Any, monetary_value: Any) -> FloatArray:
        """Conditional expected mean spend (population mean ``p v / (q - 1)`` when x = 0)."""
        return L.gg_expected_spend(self._p("expected_spend_np"), frequency, monetary_value)

    def expected_spend(
        self,
        df: DataFrame,
        *,
        frequency_col: str = "frequency",
        monetary_value_col: str = "monetary_value",
        recency_col: str = "recency",
        T_col: str = "T",
        output_col: str = "expected_spend",
    ) -> DataFrame:
        """Add the conditional expected average spend per transaction (native Spark expression).

        ``recency_col`` and ``T_col`` are accepted for symmetry and not used.
        """
        from pyspark.sql import functions as F

        func = "GammaGamma.expected_spend"
        p, q, v = self._p("expected_spend")
        x, m = _spend_columns(df, func, frequency_col, monetary_value_col)
        denominator = F.lit(p) * x + F.lit(q - 1.0)
        spent = F.when(x > 0, x * m).otherwise(F.lit(0.0))  # no monetary value when x = 0
        value = F.when(denominator > 0, F.lit(p) * (F.lit(v) + spent) / denominator)
        return df.withColumn(output_col, value)


def _spend_columns(
    df: DataFrame, func: str, frequency_col: str, monetary_value_col: str
) -> tuple[Column, Column]:
    """Gamma-Gamma's (frequency, monetary_value) columns: checked numeric, cast to double."""
    from pyspark.sql import functions as F

    require_columns(
        df,
        func,
        frequency_col=(frequency_col, "numeric"),
        monetary_value_col=(monetary_value_col, "numeric"),
    )
    return F.col(frequency_col).cast("double"), F.col(monetary_value_col).cast("double")


def _fit_with_spend(
    df: DataFrame,
    transaction_model: _TransactionModel,
    spend_model: GammaGamma,
    *,
    names: tuple[str, str, str, str] = ("frequency", "recency", "T", "monetary_value"),
) -> None:
    """Fit ``transaction_model`` and ``spend_model`` on a summary in ONE Spark job.

    Each summary row emits its (frequency, recency, T) tuple (tag 0, as
    :meth:`_TransactionModel.fit` reads it) and its (frequency, monetary_value) pair (tag 1,
    null where Gamma-Gamma cannot use it, as :meth:`GammaGamma.fit` reads it); one
    aggregation counts both and one Arrow collect brings them to the driver -- one pass over
    the input instead of two. The transaction model sees exactly the arrays of its own
    ``fit``; Gamma-Gamma sees its pairs counted (its own ``fit`` collects them one row per
    account, without the shuffle), so the same weighted likelihood.
    """
    from pyspark.sql import functions as F

    from kamlib._validation import col

    stats = names[:3]
    _require_summary(df, f"{type(transaction_model).__name__}.fit", stats, None)
    x, m = _spend_columns(df, "GammaGamma.fit", names[0], names[3])
    f, r, t = (col(c).cast("double") for c in stats)
    usable = (x > 0) & (m > 0) & ~F.isnan(x) & ~F.isnan(m)
    tuple_row = F.when(
        ~(f.isNull() & r.isNull() & t.isNull()),  # not rfm_summary's null-account row
        F.struct(F.lit(0).alias("tag"), f.alias("a"), r.alias("b"), t.alias("c")),
    )
    pair_row = F.struct(
        F.lit(1).alias("tag"),
        F.when(usable, x).alias("a"),
        F.lit(None).cast("double").alias("b"),
        F.when(usable, m).alias("c"),
    )
    counts = (
        df.select(F.inline(F.array_compact(F.array(tuple_row, pair_row))))
        .groupBy("tag", "a", "b", "c")
        .agg(F.count(F.lit(1)).cast("double").alias("n"))
    )
    tag, a, b, c, n = _collect_arrays(counts, ["tag", "a", "b", "c", "n"])
    tuples, pairs = tag == 0, tag == 1
    transaction_model.fit_arrays(a[tuples], b[tuples], c[tuples], n[tuples])
    spend_model.fit_arrays(a[pairs], c[pairs], n[pairs])
