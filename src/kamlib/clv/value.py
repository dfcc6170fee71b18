r"""Discounted customer lifetime value from a transaction model and a spend model.

:func:`customer_lifetime_value` follows lifetimes' ``GammaGammaFitter.customer_lifetime_value``
exactly: monthly steps of ``factor`` time units (30 days, or 4.345 weeks, per month),

.. math::

    \mathrm{CLV} = \sum_{i=1}^{M} \frac{E[Z \mid x, m]\,
        \bigl(E[X(i f) \mid x, t_x, T] - E[X((i-1) f) \mid x, t_x, T]\bigr)}{(1 + d)^{i}},

where :math:`E[X(t) \mid x, t_x, T]` is the transaction model's conditional expected number
of purchases in the next :math:`t` time units, :math:`E[Z \mid x, m]` the spend model's
conditional expected spend per purchase, :math:`M` the number of months and :math:`d` the
monthly discount rate.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from kamlib._arrow import NumpyFunc, with_numpy_columns
from kamlib._validation import check_choice, check_fraction, check_positive, require_columns
from kamlib.clv._base import (
    CovariateTransactionModel,
    IntervalModel,
    SpendModel,
    TransactionModel,
    check_model,
    covariate_columns,
)
from kamlib.clv._units import MONTH_FACTOR, ClvFreq
from kamlib.clv.models import _require_summary
from kamlib.errors import SchemaError

if TYPE_CHECKING:
    from numpy.typing import NDArray
    from pyspark.sql import DataFrame

__all__ = ["MONTH_FACTOR", "ClvFreq", "clv_multi_np", "clv_np", "customer_lifetime_value"]


def clv_np(
    transaction_model: TransactionModel,
    spend_model: SpendModel,
    frequency: Any,
    recency: Any,
    T: Any,
    monetary_value: Any,
    *,
    months: int = 12,
    discount_rate: float = 0.01,
    freq: str = "D",
) -> NDArray[np.float64]:
    """:func:`customer_lifetime_value` on numpy arrays (the kernel run on the executors).

    Accounts with a non-finite input get NaN.
    """
    return clv_multi_np(
        transaction_model,
        spend_model,
        frequency,
        recency,
        T,
        monetary_value,
        months=(months,),
        discount_rate=discount_rate,
        freq=freq,
    )[0]


def clv_multi_np(
    transaction_model: TransactionModel,
    spend_model: SpendModel,
    frequency: Any,
    recency: Any,
    T: Any,
    monetary_value: Any,
    *,
    months: Sequence[int] = (12,),
    discount_rate: float = 0.01,
    freq: str = "D",
    covariates: Mapping[str, Any] | None = None,
) -> list[NDArray[np.float64]]:
    """:func:`clv_np` for several horizons in one pass (one array per entry of ``months``).

    A transaction model fitted with covariates reads them from ``covariates`` (column ->
    array); its per-account parameters rule out the factorised shortcut.
    """
    x = np.asarray(frequency, dtype=np.float64)
    tx = np.asarray(recency, dtype=np.float64)
    t_age = np.asarray(T, dtype=np.float64)
    m = np.asarray(monetary_value, dtype=np.float64)
    x, tx, t_age, m = np.broadcast_arrays(x, tx, t_age, m)
    ok = np.isfinite(x) & np.isfinite(tx) & np.isfinite(t_age) & np.isfinite(m)
    # neutral values where inputs are missing, so the models never see NaN
    x0 = np.where(ok, x, 0.0)
    tx0 = np.where(ok, tx, 0.0)
    t0 = np.where(ok, t_age, 1.0)
    m0 = np.where(ok, m, 0.0)
    factor = MONTH_FACTOR[freq]
    horizons = [int(h) for h in months]
    spend = np.asarray(spend_model.expected_spend_np(x0, m0), dtype=np.float64)
    with_covariates = bool(covariate_columns(transaction_model))
    if _factorises(transaction_model) and x0.size and not with_covariates:
        parts = _discounted_purchases_factorised(
            transaction_model, x0, tx0, t0, horizons, discount_rate, factor
        )
        return [np.where(ok, spend * part, np.nan) for part in parts]

    def expected(t: float) -> NDArray[np.float64]:
        if with_covariates:
            model = typing.cast("CovariateTransactionModel", transaction_model)
            out = model.conditional_expected_purchases_np(t, x0, tx0, t0, covariates=covariates)
        else:
            out = transaction_model.conditional_expected_purchases_np(t, x0, tx0, t0)
        return np.asarray(out, dtype=np.float64)

    previous = expected(0.0)
    total = np.zeros_like(x0)
    at: dict[int, NDArray[np.float64]] = {0: np.where(ok, total, np.nan)}
    for i in range(1, max(horizons, default=0) + 1):
        current = expected(i * factor)
        total += spend * (current - previous) / (1.0 + discount_rate) ** i
        previous = current
        if i in horizons:
            at[i] = np.where(ok, total, np.nan)
    return [at[h] for h in horizons]


def _factorises(model: TransactionModel) -> bool:
    """Whether ``E[X(t) | x, t_x, T] = P(alive | x, t_x, T) * G(t; x, T)`` holds exactly.

    True for kamlib's BG/NBD, MBG/NBD and Pareto/NBD: given that the account is alive, the
    posterior of its purchase (and dropout) rates depends on ``x`` and ``T`` only.
    """
    from kamlib.clv.models import BetaGeo, ParetoNBD

    return isinstance(model, (BetaGeo, ParetoNBD))


def _discounted_purchases_factorised(
    model: TransactionModel,
    x: NDArray[np.float64],
    tx: NDArray[np.float64],
    t_age: NDArray[np.float64],
    months: list[int],
    discount_rate: float,
    factor: float,
) -> list[NDArray[np.float64]]:
    r""":math:`\sum_i (E[X(i f)] - E[X((i-1) f)]) / (1 + d)^i` through the factorisation.

    The time-dependent part :math:`G(t; x, T) = E[X(t) \mid x, T, T] / P(\text{alive} \mid
    x, T, T)` is evaluated once per distinct ``(x, T)`` pair of the batch (the expensive
    hypergeometric terms), then multiplied by each account's :math:`P(\text{alive})`.
    Mathematically identical to the direct sum (tested to 1e-10 relative).
    """
    pairs, inverse = np.unique(x + 1j * t_age, return_inverse=True)
    ux = np.ascontiguousarray(pairs.real)
    ut = np.ascontiguousarray(pairs.imag)
    alive_at_t = np.asarray(model.probability_alive_np(ux, ut, ut), dtype=np.float64)
    previous = np.asarray(model.conditional_expected_purchases_np(0.0, ux, ut, ut), dtype=float)
    acc = np.zeros_like(ux)
    at: dict[int, NDArray[np.float64]] = {0: acc.copy()}
    for i in range(1, max(months, default=0) + 1):
        current = np.asarray(
            model.conditional_expected_purchases_np(i * factor, ux, ut, ut), dtype=np.float64
        )
        acc += (current - previous) / (1.0 + discount_rate) ** i
        previous = current
        if i in months:
            at[i] = acc.copy()
    alive = np.asarray(model.probability_alive_np(x, tx, t_age), dtype=np.float64)
    return [
        np.asarray(alive * (at[h] / alive_at_t)[inverse.ravel()], dtype=np.float64) for h in months
    ]


def customer_lifetime_value(
    df: DataFrame,
    *,
    transaction_model: TransactionModel,
    spend_model: SpendModel,
    months: int | Sequence[int] = 12,
    discount_rate: float = 0.01,
    freq: ClvFreq = "D",
    output_col: str = "clv",
    frequency_col: str = "frequency",
    recency_col: str = "recency",
    T_col: str = "T",
    monetary_value_col: str = "monetary_value",
    interval: float | None = None,
) -> DataFrame:
    r"""Add the discounted customer lifetime value of each account over the next ``months``.

    .. math::

        \mathrm{CLV} = \sum_{i=1}^{M} \frac{E[Z \mid x, m]\,
            \bigl(E[X(i f) \mid x, t_x, T] - E[X((i-1) f) \mid x, t_x, T]\bigr)}{(1 + d)^{i}}

    with :math:`f` = 30 (``freq="D"``), 4.345 (``"W"``), 1 (``"M"``) or 720 (``"H"``) time
    units per month: the definition of lifetimes' ``GammaGammaFitter.customer_lifetime_value``
    (and ``lifetimes.utils._customer_lifetime_value``). ``freq`` must be the time unit the
    models were fitted in (the ``freq`` of :func:`kamlib.clv.rfm_summary`).

    Parameters
    ----------
    df : pyspark.sql.DataFrame
        A summary with ``frequency``, ``recency``, ``T`` and ``monetary_value`` columns (other
        columns pass through).
    transaction_model : BetaGeo, ParetoNBD or ModifiedBetaGeo
        Fitted; its ``conditional_expected_purchases_np(t, frequency, recency, T)`` is used.
    spend_model : GammaGamma
        Fitted; its ``expected_spend_np(frequency, monetary_value)`` is used (accounts with
        frequency 0 get the population mean spend, as in lifetimes).
    months : int or sequence of int
        Horizon in months (>= 1). A sequence such as ``(3, 6, 12)`` adds one column
        ``{output_col}_{m}m`` per horizon (``clv_3m``, ``clv_6m``, ``clv_12m``), computed in
        one pass; a single int adds ``output_col``.
    discount_rate : float
        Monthly discount rate (>= 0).
    freq : {"D", "W", "M", "H"}
        Time unit of ``recency`` and ``T``.
    output_col : str
        Output column (double; null where an input is null).
    frequency_col, recency_col, T_col, monetary_value_col : str
        Input column names.
    interval : float, optional
        In (0, 1): also add ``{output_col}_low`` and ``{output_col}_high`` (``clv_low``,
        ``clv_high``; with a sequence of months ``clv_{m}m_low`` and ``clv_{m}m_high`` per
        horizon). With :math:`[k_{lo}, k_{hi}]` the transaction model's predictive interval
        of the number of purchases in the horizon :math:`H = M f`
        (``transaction_model.predictive_interval_np``: the account's conditional pmf mixed
        over parameter uncertainty), ``clv_low = clv * k_lo / E[X(H)]`` and ``clv_high = clv *
        k_hi / E[X(H)]``: the purchase count's uncertainty valued at the account's discounted
        value per expected purchase. Spend per purchase stays at its conditional expectation
        (the spend model's own uncertainty is not included). Same Arrow pass.

    Returns
    -------
    pyspark.sql.DataFrame
        ``df`` with ``output_col`` added, computed on the executors in Arrow batches (no
        per-account data reaches the driver).

    References
    ----------
    Fader, P. S., Hardie, B. G. S. and Lee, K. L. (2005). "RFM and CLV: Using Iso-Value
    Curves for Customer Base Analysis". Journal of Marketing Research 42(4), 415-430.

    Examples
    --------
    >>> from kamlib.clv import BetaGeo, GammaGamma
    >>> from kamlib.datasets import load_cdnow_summary
    >>> summary = load_cdnow_summary(spark)
    >>> bg, gg = BetaGeo().fit(summary), GammaGamma().fit(summary)
    >>> clv = customer_lifetime_value(summary, transaction_model=bg, spend_model=gg,
    ...                               freq="W", months=12)
    >>> round(clv.where("account_id = '1'").first().clv, 2)
    36.28
    """
    score, inputs, outputs = _clv_scorer(
        df,
        transaction_model=transaction_model,
        spend_model=spend_model,
        months=months,
        discount_rate=discount_rate,
        freq=freq,
        output_col=output_col,
        names=(frequency_col, recency_col, T_col, monetary_value_col),
        interval=interval,
    )
    return with_numpy_columns(df, score, inputs=inputs, outputs=outputs)


def _clv_scorer(
    df: DataFrame,
    *,
    transaction_model: TransactionModel,
    spend_model: SpendModel,
    months: int | Sequence[int],
    discount_rate: float,
    freq: ClvFreq,
    output_col: str,
    names: tuple[str, str, str, str],
    interval: float | None,
) -> tuple[NumpyFunc, list[str], list[str]]:
    """The checked arguments of :func:`customer_lifetime_value` as an Arrow batch function.

    Returns the function, its input and its output columns (the scorecard fuses it with the
    transaction model's other predictions into one pass).
    """
    func = "customer_lifetime_value"
    _require_summary(
        df,
        func,
        names[:3],
        monetary_value_col=(names[3], "numeric"),
    )
    horizons = _check_months(func, months)
    rate = check_positive(func, "discount_rate", discount_rate, allow_zero=True)
    check_choice(func, "freq", freq, ClvFreq)
    level = _check_clv_models(func, transaction_model, spend_model, interval)
    covariates = _clv_covariates(func, df, transaction_model, interval, level)
    outputs = [output_col] if isinstance(months, int) else [f"{output_col}_{h}m" for h in horizons]
    bounds = [f"{o}_{side}" for o in outputs for side in ("low", "high")] if level else []
    score = _clv_score(
        transaction_model,
        spend_model,
        names,
        outputs,
        horizons=horizons,
        rate=rate,
        freq=freq,
        covariates=covariates,
        level=level,
    )
    inputs = list(dict.fromkeys([*names, *covariates]))
    return score, inputs, [*outputs, *bounds]


def _check_clv_models(
    func: str, transaction_model: Any, spend_model: Any, interval: float | None
) -> float | None:
    """Check the two models (and the interval support); the checked ``interval`` level."""
    check_model(
        func,
        "transaction_model",
        transaction_model,
        TransactionModel,
        methods=("conditional_expected_purchases_np",),
    )
    check_model(func, "spend_model", spend_model, SpendModel, methods=("expected_spend_np",))
    if interval is None:
        return None
    level = check_fraction(func, "interval", interval, high_inclusive=False)
    check_model(
        func,
        "transaction_model",
        transaction_model,
        IntervalModel,
        methods=("predictive_interval_np",),
    )
    return level


def _clv_covariates(
    func: str,
    df: DataFrame,
    transaction_model: TransactionModel,
    interval: float | None,
    level: float | None,
) -> tuple[str, ...]:
    """The covariate columns the transaction model reads (checked numeric in ``df``).

    SchemaError before any job; intervals are not available for a covariate model.
    """
    covariates = covariate_columns(transaction_model)
    for c in covariates:
        require_columns(df, func, covariates=(c, "numeric"))
    if level is not None and covariates:
        raise SchemaError(
            function=func,
            argument="interval",
            expected="None for a model with covariates (intervals use the plain parameters)",
            found=repr(interval),
        )
    return covariates


def _clv_score(
    transaction_model: TransactionModel,
    spend_model: SpendModel,
    names: tuple[str, str, str, str],
    outputs: list[str],
    *,
    horizons: list[int],
    rate: float,
    freq: ClvFreq,
    covariates: tuple[str, ...],
    level: float | None,
) -> typing.Callable[[Mapping[str, NDArray[np.float64]]], dict[str, NDArray[np.float64]]]:
    """The Arrow batch function: CLV per horizon, and its bounds when ``level`` is set."""

    def score(cols: Mapping[str, NDArray[np.float64]]) -> dict[str, NDArray[np.float64]]:
        values = clv_multi_np(
            transaction_model,
            spend_model,
            cols[names[0]],
            cols[names[1]],
            cols[names[2]],
            cols[names[3]],
            months=horizons,
            discount_rate=rate,
            freq=freq,
            covariates=cols if covariates else None,
        )
        result = dict(zip(outputs, values, strict=True))
        if level is not None:
            result.update(
                _clv_bounds(
                    typing.cast("IntervalModel", transaction_model),
                    cols[names[0]],
                    cols[names[1]],
                    cols[names[2]],
                    values,
                    horizons,
                    MONTH_FACTOR[freq],
                    level,
                    outputs,
                )
            )
        return result

    return score


def _clv_bounds(
    model: IntervalModel,
    frequency: NDArray[np.float64],
    recency: NDArray[np.float64],
    T: NDArray[np.float64],
    values: list[NDArray[np.float64]],
    horizons: list[int],
    factor: float,
    level: float,
    outputs: list[str],
) -> dict[str, NDArray[np.float64]]:
    """``clv * k_lo / E[X(H)]`` and ``clv * k_hi / E[X(H)]`` per horizon (NaN where invalid)."""
    out: dict[str, NDArray[np.float64]] = {}
    for name, clv, months in zip(outputs, values, horizons, strict=True):
        horizon = months * factor
        low, high = model.predictive_interval_np(horizon, frequency, recency, T, interval=level)
        expected = np.asarray(
            model.conditional_expected_purchases_np(horizon, frequency, recency, T),
            dtype=np.float64,
        )
        with np.errstate(divide="ignore", invalid="ignore"):
            per_purchase = np.where(expected > 0, clv / expected, 0.0)
        out[f"{name}_low"] = np.asarray(per_purchase * low, dtype=np.float64)
        out[f"{name}_high"] = np.asarray(per_purchase * high, dtype=np.float64)
    return out


def _check_months(func: str, months: Any) -> list[int]:
    items = [months] if isinstance(months, int) and not isinstance(months, bool) else months
    if isinstance(months, (str, bytes)) or not isinstance(items, (list, tuple)) or not items:
        raise SchemaError(
            f"{func}(): months= must be an int >= 1 or a non-empty sequence of them, "
            f"found {months!r}"
        )
    for m in items:
        if isinstance(m, bool) or not isinstance(m, int) or m < 1:
            raise SchemaError(f"{func}(): months= must be an int >= 1, found {months!r}")
    if len(set(items)) != len(items):
        raise SchemaError(f"{func}(): months= has repeated horizons: {months!r}")
    return [int(m) for m in items]
