r"""Holdout evaluation of the CLV transaction models: errors, tracking, model comparison.

* :func:`evaluate_holdout`: RMSE, MAE and bias of the predicted holdout purchases of each
  account, next to the naive run-rate baseline (lifetimes #299: a run rate can beat a badly
  fitted model, so every evaluation shows it).
* :func:`purchase_tracking`: cumulative expected vs actual repeat purchases per period over the
  calibration and holdout periods (the tracking plots of Fader, Hardie & Lee 2005, figures 2-3,
  and lifetimes' ``expected_cumulative_transactions``).
* :func:`compare_models`: several fitted models side by side, ranked by holdout RMSE, AIC and
  BIC.

The holdout errors are computed on the executors (Arrow batches) and reduced by one Spark
aggregation; :func:`evaluate_holdout` and :func:`compare_models` return lazy DataFrames (no job
runs until an action). :func:`purchase_tracking` collects two small per-day aggregates.
"""

from __future__ import annotations

import datetime as _dt
import math
import typing
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from kamlib._arrow import with_numpy_columns
from kamlib._validation import (
    check_choice,
    check_int,
    check_name,
    check_positive,
    col,
    finite,
    parse_timestamp,
    require_columns,
)
from kamlib.clv._base import (
    CovariateTransactionModel,
    PurchaseCountModel,
    TransactionModel,
    check_model,
    covariate_columns,
)
from kamlib.clv._units import DAYS_PER_UNIT
from kamlib.errors import SchemaError

if TYPE_CHECKING:
    from numpy.typing import NDArray
    from pyspark.sql import Column, DataFrame

    from kamlib.clv._units import Freq

__all__ = ["compare_models", "evaluate_holdout", "purchase_tracking"]

_P = "__kamlib_eval_"
#: Name of the naive run-rate row of :func:`compare_models`.
BASELINE_NAME = "run_rate"


def _predict(
    model: TransactionModel,
    t: NDArray[np.float64],
    x: NDArray[np.float64],
    tx: NDArray[np.float64],
    T: NDArray[np.float64],
    cols: Mapping[str, NDArray[np.float64]],
) -> NDArray[np.float64]:
    """Conditional expected purchases; covariate models read their columns from ``cols``."""
    if covariate_columns(model):
        with_covariates = typing.cast("CovariateTransactionModel", model)
        out = with_covariates.conditional_expected_purchases_np(t, x, tx, T, covariates=cols)
    else:
        out = model.conditional_expected_purchases_np(t, x, tx, T)
    return np.asarray(out, dtype=np.float64)


def _holdout_errors(
    func: str,
    df: DataFrame,
    models: Sequence[Any],
    names: tuple[str, str, str, str, str],
    duration: float | None,
) -> tuple[DataFrame, Column, list[str]]:
    """Score ``models`` on the holdout and aggregate their errors and the baseline's (lazy).

    ``names`` are the frequency, recency, T, holdout and duration columns. Returns the one-row
    aggregate of :func:`_error_aggregates`, its valid count and the prediction columns (the
    baseline last).
    """
    scored, preds = _scored_holdout(func, df, models, names, duration)
    agg, n = _error_aggregates(scored, preds)
    return agg, n, preds


def _scored_holdout(
    func: str,
    df: DataFrame,
    models: Sequence[Any],
    names: tuple[str, str, str, str, str],
    duration: float | None,
) -> tuple[DataFrame, list[str]]:
    """Stage the inputs, add one prediction column per model and the baseline (lazy)."""
    from pyspark.sql import functions as F

    frequency_col, recency_col, T_col, holdout_col, duration_col = names
    for arg, value in (
        ("frequency_col", frequency_col),
        ("recency_col", recency_col),
        ("T_col", T_col),
        ("holdout_col", holdout_col),
    ):
        check_name(func, arg, value)
    columns: dict[str, tuple[str, Any]] = {
        "frequency_col": (frequency_col, "numeric"),
        "recency_col": (recency_col, "numeric"),
        "T_col": (T_col, "numeric"),
        "holdout_col": (holdout_col, "numeric"),
    }
    if duration is None:
        check_name(func, "duration_col", duration_col)
        columns["duration_col"] = (duration_col, "numeric")
    else:
        duration = check_positive(func, "duration", duration, allow_zero=True)
    require_columns(df, func, **columns)
    covariates = list(dict.fromkeys(c for m in models for c in covariate_columns(m)))
    for c in covariates:  # the columns a covariate model reads (SchemaError before any job)
        require_columns(df, func, covariates=(c, "numeric"))

    x, tx, t_age, actual, dur = (f"{_P}{n}" for n in ("x", "tx", "T", "actual", "duration"))
    duration_expr = F.lit(duration) if duration is not None else col(duration_col)
    staged = df.select(
        col(frequency_col).cast("double").alias(x),
        col(recency_col).cast("double").alias(tx),
        col(T_col).cast("double").alias(t_age),
        col(holdout_col).cast("double").alias(actual),
        duration_expr.cast("double").alias(dur),
        *[col(c).cast("double").alias(c) for c in covariates],
    )
    outputs = [f"{_P}pred_{i}" for i in range(len(models))]
    fitted = list(models)

    def score(cols: Mapping[str, NDArray[np.float64]]) -> dict[str, NDArray[np.float64]]:
        xs, txs, ts, ds = cols[x], cols[tx], cols[t_age], cols[dur]
        ok = np.isfinite(xs) & np.isfinite(txs) & np.isfinite(ts) & np.isfinite(ds)
        ok &= (xs >= 0) & (txs >= 0) & (txs <= ts) & (ds >= 0)
        safe = (np.where(ok, v, d) for v, d in ((ds, 0.0), (xs, 0.0), (txs, 0.0), (ts, 1.0)))
        s_d, s_x, s_tx, s_t = safe
        result = {}
        with np.errstate(all="ignore"):
            for name, model in zip(outputs, fitted, strict=True):
                pred = _predict(model, s_d, s_x, s_tx, s_t, cols)
                result[name] = np.where(ok, pred, np.nan)
        return result

    scored = with_numpy_columns(
        staged, score, inputs=[x, tx, t_age, dur, *covariates], outputs=outputs
    )
    xc, tc, dc = F.col(x), F.col(t_age), F.col(dur)
    run_rate = F.when(tc > 0, F.try_divide(xc, tc) * dc).when(tc == 0, F.lit(0.0))
    baseline = f"{_P}baseline"
    scored = scored.withColumn(baseline, run_rate)
    return scored, [*outputs, baseline]


def _error_aggregates(scored: DataFrame, preds: list[str]) -> tuple[DataFrame, Column]:
    """One row: valid/excluded counts and per-prediction error sums (valid rows only)."""
    from pyspark.sql import functions as F

    actual = F.col(f"{_P}actual")
    ok = finite(actual)
    for p in preds:
        ok = ok & finite(F.col(p))
    aggs = [
        F.count(F.when(ok, F.lit(1))).alias(f"{_P}n"),
        F.count(F.when(~ok, F.lit(1))).alias(f"{_P}excluded"),
        F.sum(F.when(ok, actual)).alias(f"{_P}sum_actual"),
    ]
    for p in preds:
        err = F.col(p) - actual
        aggs += [
            F.sum(F.when(ok, err * err)).alias(f"{p}_sse"),
            F.sum(F.when(ok, F.abs(err))).alias(f"{p}_sae"),
            F.sum(F.when(ok, err)).alias(f"{p}_se"),
            F.sum(F.when(ok, F.col(p))).alias(f"{p}_sum"),
        ]
    n = F.col(f"{_P}n").cast("double")
    return scored.agg(*aggs), n


def _metrics(p: str, n: Column) -> tuple[Column, Column, Column]:
    from pyspark.sql import functions as F

    rmse = F.sqrt(F.try_divide(F.col(f"{p}_sse"), n))
    mae = F.try_divide(F.col(f"{p}_sae"), n)
    bias = F.try_divide(F.col(f"{p}_se"), n)
    return rmse, mae, bias


def evaluate_holdout(
    df: DataFrame,
    *,
    transaction_model: TransactionModel,
    frequency_col: str = "frequency",
    recency_col: str = "recency",
    T_col: str = "T",
    holdout_col: str = "frequency_holdout",
    duration_col: str = "duration_holdout",
    duration: float | None = None,
) -> DataFrame:
    r"""Holdout accuracy of a transaction model next to the naive run-rate baseline.

    For each account :math:`i` with calibration summary :math:`(x_i, t_{x,i}, T_i)`, holdout
    purchases :math:`y_i` over a holdout of length :math:`t_i`, the prediction is the model's
    conditional expectation :math:`\hat y_i = E[X(t_i) \mid x_i, t_{x,i}, T_i]` and the
    baseline the calibration run rate :math:`\tilde y_i = x_i / T_i \cdot t_i` (0 when
    :math:`T_i = 0`). Over the :math:`n` valid accounts:

    .. math::

        \mathrm{rmse} = \sqrt{\tfrac{1}{n}\textstyle\sum_i (\hat y_i - y_i)^2}, \quad
        \mathrm{mae} = \tfrac{1}{n}\textstyle\sum_i |\hat y_i - y_i|, \quad
        \mathrm{bias} = \tfrac{1}{n}\textstyle\sum_i (\hat y_i - y_i),

    and ``baseline_rmse``, ``baseline_mae``, ``baseline_bias`` the same with :math:`\tilde y_i`.
    A positive bias means the model over-predicts.

    Parameters
    ----------
    df : pyspark.sql.DataFrame
        One row per account, e.g. :func:`kamlib.clv.calibration_holdout` output, which the
        defaults read directly.
    transaction_model : BetaGeo, ParetoNBD or ModifiedBetaGeo
        Fitted on the calibration columns. A model fitted with covariates reads them from
        ``df`` under the same names.
    frequency_col, recency_col, T_col : str
        Calibration summary columns.
    holdout_col : str
        Observed repeat purchases in the holdout period.
    duration_col : str
        Length of the holdout period in the model's time unit (``duration_holdout``).
    duration : float, optional
        One holdout length for every account, instead of ``duration_col``.

    Returns
    -------
    pyspark.sql.DataFrame
        One row: ``n_accounts`` (long), ``n_excluded`` (long; rows with a null/NaN input or
        invalid summary, left out of every statistic), ``rmse``, ``mae``, ``bias``,
        ``baseline_rmse``, ``baseline_mae``, ``baseline_bias``, ``actual_mean``,
        ``predicted_mean``, ``baseline_mean`` (doubles; null when no account is valid).
        Lazy: computed by one Arrow pass and one aggregation when an action runs.

    References
    ----------
    Fader, P. S., Hardie, B. G. S. and Lee, K. L. (2005). "Counting Your Customers the Easy
    Way". Marketing Science 24(2), 275-284 (holdout validation on CDNOW).

    Examples
    --------
    >>> from kamlib.clv import BetaGeo, calibration_holdout
    >>> from kamlib.datasets import load_cdnow
    >>> ch = calibration_holdout(load_cdnow(spark), calibration_end="1997-09-30",
    ...                          observation_end="1998-06-30", freq="W")
    >>> row = evaluate_holdout(ch, transaction_model=BetaGeo().fit(ch)).first()
    >>> row.n_accounts, round(row.rmse, 3), round(row.baseline_rmse, 3)
    (2357, 1.608, 2.212)
    """
    from pyspark.sql import functions as F

    func = "evaluate_holdout"
    check_model(
        func,
        "transaction_model",
        transaction_model,
        TransactionModel,
        methods=("conditional_expected_purchases_np",),
    )
    names = (frequency_col, recency_col, T_col, holdout_col, duration_col)
    agg, n, preds = _holdout_errors(func, df, [transaction_model], names, duration)
    model_pred, baseline = preds
    rmse, mae, bias = _metrics(model_pred, n)
    b_rmse, b_mae, b_bias = _metrics(baseline, n)
    return agg.select(
        F.col(f"{_P}n").cast("long").alias("n_accounts"),
        F.col(f"{_P}excluded").cast("long").alias("n_excluded"),
        rmse.alias("rmse"),
        mae.alias("mae"),
        bias.alias("bias"),
        b_rmse.alias("baseline_rmse"),
        b_mae.alias("baseline_mae"),
        b_bias.alias("baseline_bias"),
        F.try_divide(F.col(f"{_P}sum_actual"), n).alias("actual_mean"),
        F.try_divide(F.col(f"{model_pred}_sum"), n).alias("predicted_mean"),
        F.try_divide(F.col(f"{baseline}_sum"), n).alias("baseline_mean"),
    )


def _named_models(func: str, models: Any) -> list[tuple[str, Any]]:
    if isinstance(models, Mapping):
        items = [(k, v) for k, v in models.items()]
    elif isinstance(models, (list, tuple)):
        items = []
        seen: dict[str, int] = {}
        for m in models:
            base = type(m).__name__
            seen[base] = seen.get(base, 0) + 1
            items.append((base if seen[base] == 1 else f"{base}_{seen[base]}", m))
    else:
        raise SchemaError(
            f"{func}(): models= must be a mapping name -> fitted model or a list of fitted "
            f"models, found {type(models).__name__}",
            function=func,
            argument="models",
            expected="a mapping or list of fitted transaction models",
            found=type(models).__name__,
        )
    if not items:
        raise SchemaError(
            f"{func}(): models= is empty",
            function=func,
            argument="models",
            expected="at least one fitted model",
            found="nothing",
        )
    for name, model in items:
        if not isinstance(name, str) or not name:
            raise SchemaError(
                f"{func}(): model names must be non-empty strings, found {name!r}",
                function=func,
                argument="models",
                expected="str names",
                found=repr(name),
            )
        if name == BASELINE_NAME:
            raise SchemaError(
                f"{func}(): the name {BASELINE_NAME!r} is reserved for the run-rate baseline",
                function=func,
                argument="models",
                expected=f"a name other than {BASELINE_NAME!r}",
                found=repr(name),
            )
        check_model(
            func,
            f"models[{name!r}]",
            model,
            TransactionModel,
            methods=("conditional_expected_purchases_np",),
        )
    return items


def _info(model: Any, attr: str) -> float | None:
    try:
        value = float(getattr(model, attr))
    except (AttributeError, TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def compare_models(
    df: DataFrame,
    *,
    models: Mapping[str, Any] | Sequence[Any],
    frequency_col: str = "frequency",
    recency_col: str = "recency",
    T_col: str = "T",
    holdout_col: str = "frequency_holdout",
    duration_col: str = "duration_holdout",
    duration: float | None = None,
    include_baseline: bool = True,
) -> DataFrame:
    r"""Rank fitted transaction models by holdout RMSE, AIC and BIC.

    Every model is scored on the same accounts in one Arrow pass (rows where any model's
    prediction or the holdout value is missing are excluded for all models alike), with the
    errors of :func:`evaluate_holdout`. ``aic`` = :math:`2k - 2\ell` and ``bic`` =
    :math:`k \ln N - 2\ell` come from the fits (:math:`k` parameters, :math:`\ell` the
    maximised log-likelihood, :math:`N` accounts); they compare models only when all were
    fitted on the same calibration data.

    Parameters
    ----------
    df : pyspark.sql.DataFrame
        Calibration/holdout summary (:func:`kamlib.clv.calibration_holdout` output).
    models : mapping name -> model, or sequence of models
        Fitted BetaGeo / ParetoNBD / ModifiedBetaGeo models; a sequence is named by class
        (``BetaGeo``, ``BetaGeo_2``, ...).
    frequency_col, recency_col, T_col, holdout_col, duration_col, duration
        As in :func:`evaluate_holdout`.
    include_baseline : bool
        Add the naive run rate as a row named ``"run_rate"`` (no likelihood: null ``aic``,
        ``bic`` and their ranks).

    Returns
    -------
    pyspark.sql.DataFrame
        One row per model, ordered by ``rank_rmse``: ``model`` (str), ``n_params`` (int),
        ``log_likelihood``, ``aic``, ``bic``, ``n_accounts`` (long), ``rmse``, ``mae``,
        ``bias`` (doubles), ``rank_rmse``, ``rank_aic``, ``rank_bic`` (int, 1 = best, ties
        share a rank). Lazy.

    Examples
    --------
    >>> from kamlib.clv import BetaGeo, ParetoNBD, calibration_holdout
    >>> from kamlib.datasets import load_cdnow
    >>> ch = calibration_holdout(load_cdnow(spark), calibration_end="1997-09-30",
    ...                          observation_end="1998-06-30", freq="W")
    >>> table = compare_models(ch, models={"bg": BetaGeo().fit(ch), "pnbd": ParetoNBD().fit(ch)})
    >>> [r.model for r in table.collect()]
    ['pnbd', 'bg', 'run_rate']
    """
    from pyspark.sql import functions as F

    func = "compare_models"
    if not isinstance(include_baseline, bool):
        raise SchemaError(
            function=func,
            argument="include_baseline",
            expected="a bool",
            found=repr(include_baseline),
        )
    items = _named_models(func, models)
    names = (frequency_col, recency_col, T_col, holdout_col, duration_col)
    agg, n, preds = _holdout_errors(func, df, [m for _, m in items], names, duration)
    rows: list[tuple[str, tuple[str, Any]]] = list(zip(preds, items, strict=False))
    if include_baseline:
        rows.append((preds[-1], (BASELINE_NAME, None)))
    entries = [_comparison_entry(pred, name, model, n) for pred, (name, model) in rows]
    long = agg.select(F.explode(F.array(*entries)).alias(f"{_P}row")).select(f"{_P}row.*")
    return _ranked(long)


def _comparison_entry(pred: str, name: str, model: Any, n: Column) -> Column:
    """One row of :func:`compare_models` as a struct (a ``None`` model is the baseline)."""
    from pyspark.sql import functions as F

    rmse, mae, bias = _metrics(pred, n)
    if model is None:
        k, ll, aic, bic = None, None, None, None
    else:
        k = int(model.n_params) if hasattr(model, "n_params") else None
        ll, aic, bic = (_info(model, a) for a in ("log_likelihood", "aic", "bic"))
    return F.struct(
        F.lit(name).cast("string").alias("model"),
        F.lit(k).cast("int").alias("n_params"),
        F.lit(ll).cast("double").alias("log_likelihood"),
        F.lit(aic).cast("double").alias("aic"),
        F.lit(bic).cast("double").alias("bic"),
        F.col(f"{_P}n").cast("long").alias("n_accounts"),
        rmse.alias("rmse"),
        mae.alias("mae"),
        bias.alias("bias"),
    )


def _ranked(long: DataFrame) -> DataFrame:
    """``rank_rmse``, ``rank_aic``, ``rank_bic`` (1 = best, ties share, null stays null)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    whole = Window.partitionBy(F.lit(0))

    def rank(name: str) -> Column:
        ordered = whole.orderBy(F.col(name).asc_nulls_last(), F.col("model"))
        return F.when(F.col(name).isNotNull(), F.rank().over(ordered)).cast("int")

    return (
        long.withColumn("rank_rmse", rank("rmse"))
        .withColumn("rank_aic", rank("aic"))
        .withColumn("rank_bic", rank("bic"))
        .orderBy(F.col("rank_rmse").asc_nulls_last(), F.col("model"))
    )


def purchase_tracking(
    df: DataFrame,
    *,
    transaction_model: PurchaseCountModel,
    calibration_end: _dt.date | _dt.datetime | str,
    observation_end: _dt.date | _dt.datetime | str | None = None,
    period_days: int = 7,
    freq: Freq = "W",
    account_col: str = "account_id",
    date_col: str = "order_date",
    value_col: str = "amount",
) -> DataFrame:
    r"""Cumulative expected vs actual repeat purchases per period (the tracking plot).

    The cohort is the accounts with a first purchase on or before ``calibration_end``; with
    :math:`n_b` accounts making their first purchase on day :math:`b`, periods of
    :math:`L` = ``period_days`` days from the earliest first purchase :math:`d_0`, and
    :math:`e_k = d_0 + kL - 1` the last day of period :math:`k` (the last period ends at the
    observation end):

    .. math::

        \text{cumulative\_expected}_k = \sum_{b \le e_k} n_b\, E\bigl[X\bigl((e_k - b)/u\bigr)
            \bigr], \qquad
        \text{cumulative\_actual}_k = \#\{\text{repeat purchase days} \le e_k\},

    with :math:`E[X(t)]` the model's unconditional expected repeat purchases of a new account
    over :math:`t` time units and :math:`u` the days per model unit (1 for ``freq="D"``, 7
    for ``"W"``). Repeat purchase days are counted as in :func:`kamlib.clv.rfm_summary`
    (distinct days with a valid amount after the first), so ``cumulative_actual`` at the
    calibration end equals the sum of the summary's ``frequency``. This is the weekly
    tracking plot of Fader, Hardie & Lee (2005, figure 2) and lifetimes'
    ``expected_cumulative_transactions``.

    Parameters
    ----------
    df : pyspark.sql.DataFrame
        Transactions (``account_col``, ``date_col``, ``value_col``).
    transaction_model : BetaGeo, ParetoNBD or ModifiedBetaGeo
        Fitted (without covariates) on the calibration summary in unit ``freq``.
    calibration_end : date, datetime or ISO string
        Last day of the calibration period; defines the cohort and ``is_holdout``.
    observation_end : date, datetime or ISO string, optional
        Last day tracked (default: the latest date in ``df``).
    period_days : int
        Period length in days (7: weeks).
    freq : {"D", "W"}
        Time unit the model was fitted in.
    account_col, date_col, value_col : str
        Input columns.

    Returns
    -------
    pyspark.sql.DataFrame
        One row per period: ``period`` (int, 1-based), ``period_end`` (date),
        ``is_holdout`` (bool, period ends after ``calibration_end``), ``actual``,
        ``expected`` (repeat purchases in the period), ``cumulative_actual``,
        ``cumulative_expected`` (doubles), ordered by period. Two small aggregates (births and
        repeat purchases per day) are collected to the driver.

    References
    ----------
    Fader, P. S., Hardie, B. G. S. and Lee, K. L. (2005). "Counting Your Customers the Easy
    Way". Marketing Science 24(2), 275-284, figure 2.

    Examples
    --------
    >>> from kamlib.clv import BetaGeo, rfm_summary
    >>> from kamlib.datasets import load_cdnow
    >>> tx = load_cdnow(spark)
    >>> bg = BetaGeo().fit(rfm_summary(tx, observation_end="1997-09-30", freq="W"))
    >>> track = purchase_tracking(tx, transaction_model=bg, calibration_end="1997-09-30",
    ...                           observation_end="1998-06-30")
    >>> last = track.orderBy("period").collect()[-1]
    >>> last.period, int(last.cumulative_actual), round(last.cumulative_expected)
    (78, 4339, 4161)
    """
    func = "purchase_tracking"
    length, unit, cal, end = _check_tracking_args(
        func,
        df,
        transaction_model,
        calibration_end=calibration_end,
        observation_end=observation_end,
        period_days=period_days,
        freq=freq,
        account_col=account_col,
        date_col=date_col,
        value_col=value_col,
    )
    days, end = _purchase_days(func, df, account_col, date_col, value_col, cal, end)
    births, repeats = _births_and_repeats(func, days, cal)
    out = _tracking_rows(transaction_model, births, repeats, cal, end, length, unit)
    schema = (
        "period int, period_end date, is_holdout boolean, actual double, expected double, "
        "cumulative_actual double, cumulative_expected double"
    )
    return df.sparkSession.createDataFrame(out, schema).orderBy("period")


def _check_tracking_args(
    func: str,
    df: DataFrame,
    transaction_model: PurchaseCountModel,
    *,
    calibration_end: _dt.date | _dt.datetime | str,
    observation_end: _dt.date | _dt.datetime | str | None,
    period_days: int,
    freq: Freq,
    account_col: str,
    date_col: str,
    value_col: str,
) -> tuple[int, float, _dt.date, _dt.date | None]:
    """Model, columns, period length and dates (before any job): length, unit, cal, end."""
    check_model(
        func,
        "transaction_model",
        transaction_model,
        PurchaseCountModel,
        methods=("expected_purchases_np",),
    )
    if covariate_columns(transaction_model):
        raise SchemaError(
            f"{func}(): transaction_model= has covariates; the tracking curve needs the "
            f"population model (fit one without covariates)",
            function=func,
            argument="transaction_model",
            expected="a model without covariates",
            found="a model with covariates",
        )
    for arg, value in (("account_col", account_col), ("date_col", date_col)):
        check_name(func, arg, value)
    check_name(func, "value_col", value_col)
    require_columns(
        df,
        func,
        account_col=(account_col, "any"),
        date_col=(date_col, "temporal"),
        value_col=(value_col, "numeric"),
    )
    length = check_int(func, "period_days", period_days, unit="days")
    check_choice(func, "freq", freq, ("D", "W"))
    unit = DAYS_PER_UNIT[freq]
    cal = parse_timestamp(func, "calibration_end", calibration_end).date()
    end = (
        None
        if observation_end is None
        else parse_timestamp(func, "observation_end", observation_end).date()
    )
    if end is not None and end < cal:
        raise SchemaError(
            f"{func}(): observation_end= must not be before calibration_end= ({cal}), found {end}",
            function=func,
            argument="observation_end",
            expected=f">= {cal}",
            found=str(end),
        )
    return length, unit, cal, end


def _purchase_days(
    func: str,
    df: DataFrame,
    account_col: str,
    date_col: str,
    value_col: str,
    cal: _dt.date,
    end: _dt.date | None,
) -> tuple[DataFrame, _dt.date]:
    """Distinct (account, day) with a valid amount up to the observation end (default: data's)."""
    from pyspark.sql import functions as F

    day, acct = f"{_P}day", f"{_P}account"
    rows = df.select(
        col(account_col).alias(acct),
        F.to_date(col(date_col)).alias(day),
        col(value_col).cast("double").alias(f"{_P}amount"),
    ).where(F.col(acct).isNotNull())
    if end is None:
        last = rows.agg(F.max(day).alias("m")).first()
        if last is None or last["m"] is None:
            raise SchemaError(
                f"{func}(): no dated transactions in df", function=func, found="no rows"
            )
        end = max(last["m"], cal)
    assert end is not None
    days = (
        rows.where(finite(F.col(f"{_P}amount")) & F.col(day).isNotNull())
        .where(F.col(day) <= F.lit(end))
        .select(acct, day)
        .distinct()
    )
    return days, end


def _births_and_repeats(
    func: str, days: DataFrame, cal: _dt.date
) -> tuple[dict[_dt.date, int], dict[_dt.date, int]]:
    """Collected per day: first purchases of the cohort, and the cohort's repeat purchases."""
    from pyspark.sql import functions as F

    day, first, acct = f"{_P}day", f"{_P}first", f"{_P}account"
    firsts = days.groupBy(acct).agg(F.min(day).alias(first)).where(F.col(first) <= F.lit(cal))
    births = {
        r[first]: int(r["n"])
        for r in firsts.groupBy(first).agg(F.count(F.lit(1)).alias("n")).collect()
    }
    if not births:
        raise SchemaError(
            f"{func}(): no account has a valid purchase on or before calibration_end={cal}",
            function=func,
            argument="calibration_end",
            expected="a date after the first purchases",
            found=str(cal),
        )
    repeats = {
        r[day]: int(r["n"])
        for r in days.join(firsts, on=acct, how="inner")
        .where(F.col(day) > F.col(first))
        .groupBy(day)
        .agg(F.count(F.lit(1)).alias("n"))
        .collect()
    }
    return births, repeats


def _tracking_rows(
    transaction_model: PurchaseCountModel,
    births: dict[_dt.date, int],
    repeats: dict[_dt.date, int],
    cal: _dt.date,
    end: _dt.date,
    length: int,
    unit: float,
) -> list[tuple[int, _dt.date, bool, float, float, float, float]]:
    """Per period: end day, holdout flag, actual and expected, and their cumulative sums."""
    start = min(births)
    span = (end - start).days + 1
    n_periods = max(-(-span // length), 1)
    ends = [min(start + _dt.timedelta(days=k * length - 1), end) for k in range(1, n_periods + 1)]
    birth_days = np.array([(b - start).days for b in births], dtype=np.float64)
    birth_counts = np.array(list(births.values()), dtype=np.float64)
    end_days = np.array([(e - start).days for e in ends], dtype=np.float64)
    age = (end_days[:, None] - birth_days[None, :]) / unit
    alive = age >= 0
    expected_each = np.asarray(
        transaction_model.expected_purchases_np(np.where(alive, age, 0.0)), dtype=np.float64
    )
    cum_expected = (np.where(alive, expected_each, 0.0) * birth_counts[None, :]).sum(axis=1)
    repeat_days = np.array([(d - start).days for d in repeats], dtype=np.float64)
    repeat_counts = np.array(list(repeats.values()), dtype=np.float64)
    cum_actual = np.array([float(repeat_counts[repeat_days <= e].sum()) for e in end_days])
    actual = np.diff(cum_actual, prepend=0.0)
    expected = np.diff(cum_expected, prepend=0.0)
    return [
        (
            k + 1,
            ends[k],
            ends[k] > cal,
            float(actual[k]),
            float(expected[k]),
            float(cum_actual[k]),
            float(cum_expected[k]),
        )
        for k in range(n_periods)
    ]
