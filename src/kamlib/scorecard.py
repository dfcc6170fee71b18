"""The account scorecard: one row per account joining every kamlib metric family.

:func:`account_scorecard` is the table a KAM dashboard reads: revenue and growth, ABC tier and
key-account flag, CLV, P(alive) and revenue forecasts from the BG/NBD and Gamma-Gamma models,
NPS, share of wallet, churn features, health score and band, and attainment of account-specific
targets. Every column comes from the metric function that defines it (see the column list in
:func:`account_scorecard`), so the scorecard never disagrees with the individual metrics.
"""

from __future__ import annotations

import datetime as _dt
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from kamlib._validation import (
    TEMP_PREFIX,
    check_bands,
    check_choice,
    check_fraction,
    check_increasing_pair,
    check_int,
    check_name,
    check_positive,
    parse_timestamp,
    require_columns,
)
from kamlib.clv._base import SpendModel, TransactionModel, check_model
from kamlib.clv._units import DAYS_PER_UNIT, Freq
from kamlib.errors import SchemaError

if TYPE_CHECKING:
    import numpy as np
    from pyspark.sql import Column, DataFrame

    from kamlib.churn_model import ChurnModel

__all__ = ["DEFAULT_HEALTH_WEIGHTS", "SCORECARD_COLUMNS", "account_scorecard"]

log = logging.getLogger("kamlib.scorecard")


#: Default health weights (renormalised over the columns that exist, e.g. without surveys
#: ``nps`` is dropped). ``recency_days`` is "lower is better".
DEFAULT_HEALTH_WEIGHTS: dict[str, float] = {
    "p_alive": 0.30,
    "recency_days": 0.20,
    "revenue_trend_90d": 0.20,
    "nps": 0.15,
    "share_of_wallet": 0.15,
}


#: Columns produced by the CLV step (summary, BG/NBD + Gamma-Gamma scores, forecasts).
_CLV_COLUMNS: tuple[str, ...] = (
    "frequency",
    "recency",
    "T",
    "monetary_value",
    "p_alive",
    "p_no_purchase_90d",
    "expected_purchases_90d",
    "expected_purchases_365d",
    "expected_spend",
    "revenue_forecast_90d",
    "revenue_forecast_365d",
    "clv",
)

#: Core output columns (always present; the churn windows add their own columns, and
#: ``surveys=``, ``wallets=``, ``targets=`` add the NPS, wallet and target columns).
SCORECARD_COLUMNS: tuple[str, ...] = (
    "revenue",
    "revenue_growth",
    "value_rank",
    "value_share",
    "cumulative_share",
    "abc_tier",
    "is_key_account",
    "recency_days",
    "tenure_days",
    *_CLV_COLUMNS,
    "health_score",
    "health_band",
)


def _type_of(df: DataFrame, column: str) -> str:
    return str(df.schema[column].dataType.simpleString())


def _check_windows(func: str, windows: Sequence[int]) -> tuple[int, ...]:
    if isinstance(windows, (str, bytes)) or not isinstance(windows, Sequence) or not windows:
        raise SchemaError(
            function=func,
            argument="churn_windows",
            expected="a non-empty sequence of positive ints (days)",
            found=repr(windows),
        )
    return tuple(check_int(func, "churn_windows", w, unit="days") for w in windows)


def _check_names(func: str, arg: str, names: str | Sequence[str]) -> tuple[str, ...]:
    """A column name or a sequence of them (a ``str`` is ONE name, never its characters)."""
    if isinstance(names, str):
        return (check_name(func, arg, names),)
    if not isinstance(names, Sequence):
        raise SchemaError(
            function=func,
            argument=arg,
            expected="a column name or a sequence of column names",
            found=type(names).__name__,
        )
    return tuple(check_name(func, arg, n) for n in names)


def _check_weights(func: str, weights: Mapping[str, float]) -> dict[str, float]:
    if not isinstance(weights, Mapping) or not weights:
        raise SchemaError(
            f"{func}(): health_weights= must be a non-empty mapping of column -> weight, "
            f"found {weights!r}"
        )
    result: dict[str, float] = {}
    for key, w in weights.items():
        if not isinstance(key, str):
            raise SchemaError(f"{func}(): health_weights= keys must be column names, found {key!r}")
        result[key] = check_positive(func, f"health_weights[{key!r}]", w)
    return result


def _as_of_literal(as_of: _dt.datetime) -> Column:
    """``as_of`` as a Spark timestamp, interpreted in the session time zone."""
    from pyspark.sql import functions as F

    return F.lit(as_of.isoformat(sep=" ")).cast("timestamp")


def account_scorecard(
    transactions: DataFrame,
    *,
    as_of: _dt.date | _dt.datetime | str,
    surveys: DataFrame | None = None,
    wallets: DataFrame | None = None,
    targets: DataFrame | None = None,
    account_col: str = "account_id",
    date_col: str = "order_date",
    value_col: str = "amount",
    survey_date_col: str = "response_date",
    score_col: str = "score",
    survey_window_days: int | None = None,
    wallet_col: str = "wallet",
    target_col: str = "target",
    revenue_window_days: int = 365,
    churn_windows: Sequence[int] = (30, 90, 180),
    top_share: float = 0.2,
    abc_thresholds: Sequence[float] = (0.8, 0.95),
    health_weights: Mapping[str, float] | None = None,
    health_lower_is_better: str | Sequence[str] = ("recency_days",),
    health_bands: tuple[float, float] = (40.0, 70.0),
    clv_months: int = 12,
    discount_rate: float = 0.01,
    freq: Freq = "D",
    penalizer: float = 0.0,
    transaction_model: TransactionModel | None = None,
    spend_model: SpendModel | None = None,
    churn_model: ChurnModel | None = None,
    product_col: str | None = None,
    segment_col: str | None = None,
    cache: bool = True,
) -> DataFrame:
    r"""Build the account scorecard: one row per account with a transaction before ``as_of``.

    Point in time: only transactions with ``date_col < as_of`` (and surveys with
    ``survey_date_col < as_of``) are read, so the result is identical whether or not later
    rows exist. ``as_of`` is a date, a datetime or an ISO string (timestamps are interpreted
    in the session time zone).

    Columns (``account_col`` first):

    * Revenue and growth: ``revenue`` = sum of ``value_col`` over the trailing
      ``revenue_window_days`` days (:math:`as\_of - w \le date < as\_of`, the
      ``revenue_{w}d`` column of :func:`kamlib.churn.churn_features`; refunds included) and
      ``revenue_growth`` = ``revenue`` / the same sum over the ``w`` days before
      (``revenue_trend_{w}d``; null when that earlier window is 0).
    * Classification (:func:`kamlib.classify.classify_accounts` on ``revenue``):
      ``value_rank``, ``value_share``, ``cumulative_share``, ``abc_tier``, ``is_key_account``.
    * Churn features (:func:`kamlib.churn.churn_features` with windows ``churn_windows`` plus
      ``revenue_window_days``): ``recency_days``, ``tenure_days``, ``n_orders_{w}d``,
      ``revenue_{w}d``, ``revenue_trend_{w}d``, ``revenue_slope_{w}d``, ``spike_ratio_{w}d``.
    * CLV (:func:`kamlib.clv.rfm_summary` at ``as_of`` with ``freq``; BG/NBD and Gamma-Gamma
      fitted on it unless ``transaction_model`` / ``spend_model`` are given): ``frequency``,
      ``recency``, ``T``, ``monetary_value``, ``p_alive``, ``p_no_purchase_90d`` (P(no purchase
      in the next 90 days, converted to the model's time unit), ``expected_purchases_90d`` and
      ``expected_purchases_365d`` (expected purchases in the next 90 / 365 *days*),
      ``expected_spend``, ``revenue_forecast_90d`` and ``revenue_forecast_365d``
      (:math:`E[X(t)] \cdot E[Z]`), ``clv`` (:func:`kamlib.clv.customer_lifetime_value` over
      ``clv_months`` months at monthly ``discount_rate``).
    * With ``surveys=``: ``nps`` (:func:`kamlib.nps.nps` per account over the surveys before
      ``as_of``, or only the last ``survey_window_days`` days), ``nps_responses`` (its ``n``),
      ``nps_ci_low``, ``nps_ci_high``. Accounts without surveys get nulls.
    * With ``wallets=``: ``wallet`` (one estimate per account; several rows are averaged),
      ``share_of_wallet`` and ``wallet_headroom`` (:func:`kamlib.wallet.share_of_wallet` with
      spend = ``revenue``, i.e. trailing 12-month spend with the default window).
    * With ``targets=``: ``target`` (summed per account) and ``target_attainment`` =
      ``revenue / target`` (null where the target is null or 0).
    * With ``product_col=``: ``whitespace_headroom`` (the sum over the products sold in the
      account's segment of :func:`kamlib.growth.whitespace` ``headroom``: peer median revenue
      minus the account's own, at least 0) and ``top_recommendation`` with
      ``top_recommendation_confidence`` (the first :func:`kamlib.growth.next_products`
      recommendation; null where no rule applies), both over the trailing
      ``revenue_window_days`` window; ``segment_col`` (a column of ``transactions``, e.g. the
      industry; its first value per account) groups the peers.
    * ``health_score`` and ``health_band`` (:func:`kamlib.health.health_score` over all
      accounts). Default weights :data:`DEFAULT_HEALTH_WEIGHTS`: ``p_alive`` 0.30,
      ``recency_days`` 0.20 (lower is better), ``revenue_trend_90d`` 0.20, ``nps`` 0.15,
      ``share_of_wallet`` 0.15; weights of columns that do not exist (no surveys, no wallets)
      are dropped and the rest renormalised by the health score itself.

    Passes over the data: the filtered transactions (three columns) are persisted once
    (``cache=True``); ``churn_features``, ``rfm_summary`` and the model fits read that cache,
    so the source is scanned once. The result is then persisted and materialised, the
    transaction cache released, and the cached result returned: call ``unpersist()`` on it when
    done. With ``cache=False`` nothing is persisted and the source is read by the CLV fit and
    again by each action on the result.

    Parameters
    ----------
    transactions : pyspark.sql.DataFrame
        ``account_col``, ``date_col`` (date or timestamp), ``value_col`` (numeric).
    as_of : date, datetime or str
        Scoring time; only earlier rows are used.
    surveys, wallets, targets : pyspark.sql.DataFrame, optional
        NPS responses (``account_col``, ``survey_date_col``, ``score_col``), wallet estimates
        (``account_col``, ``wallet_col``) and account targets (``account_col``, ``target_col``).
    account_col, date_col, value_col, survey_date_col, score_col, wallet_col, target_col : str
        Column names.
    survey_window_days : int, optional
        Use only surveys from the last this many days before ``as_of`` (default: all).
    revenue_window_days : int
        Trailing window of ``revenue`` (default 365 days: annual revenue).
    churn_windows : sequence of int
        Windows (days) of the churn features.
    top_share, abc_thresholds
        Key-account share and ABC thresholds of :func:`kamlib.classify.classify_accounts`.
    health_weights : Mapping[str, float], optional
        Scorecard column -> weight for the health score (see above for the default).
    health_lower_is_better : str or sequence of str
        Weighted columns where lower values are healthier (default ``recency_days``); a
        string is one column name.
    health_bands : (float, float)
        Red/yellow and yellow/green cut points of the health band.
    clv_months, discount_rate, freq, penalizer
        CLV horizon (months), monthly discount rate, RFM time unit ("D" or "W") and the L2
        penalizer of the model fits.
    transaction_model, spend_model : fitted models, optional
        Pre-fitted BG/NBD-like and Gamma-Gamma models to score with instead of fitting.
    product_col, segment_col : str, optional
        Product (and peer segment) columns of ``transactions``: add the whitespace headroom
        and the top next-product recommendation (see above).
    churn_model : kamlib.churn_model.ChurnModel, optional
        A fitted churn classifier (:func:`kamlib.churn_model.fit_churn_model`) whose features
        the scorecard has (the churn features of ``churn_windows``, ``recency_days``, ...):
        adds ``churn_probability``.
    cache : bool
        Persist the filtered transactions and the result (see above).

    Returns
    -------
    pyspark.sql.DataFrame
        One row per account (persisted when ``cache=True``).

    Raises
    ------
    SchemaError
        Before any Spark job, if a column is missing or mistyped in any input, the account
        columns of the inputs have different types, or an option is invalid.
    ConvergenceError
        If a CLV model fit fails to converge.

    References
    ----------
    Fader, Hardie and Lee (2005), "Counting Your Customers the Easy Way", Marketing Science.
    Fader and Hardie (2013), "The Gamma-Gamma Model of Monetary Value".
    Reichheld (2003), "The One Number You Need to Grow", Harvard Business Review.

    Examples
    --------
    >>> from kamlib.datasets import synthetic_transactions
    >>> from kamlib.scorecard import account_scorecard
    >>> tx = synthetic_transactions(spark, 500, seed=1)
    >>> card = account_scorecard(tx, as_of="2026-01-01")
    >>> card.select("account_id", "abc_tier", "clv", "health_band").count()
    500
    >>> _ = card.unpersist()
    """
    func = "account_scorecard"
    opts = _check_options(
        func,
        as_of=as_of,
        freq=freq,
        revenue_window_days=revenue_window_days,
        churn_windows=churn_windows,
        clv_months=clv_months,
        discount_rate=discount_rate,
        penalizer=penalizer,
        top_share=top_share,
        survey_window_days=survey_window_days,
        abc_thresholds=abc_thresholds,
        health_bands=health_bands,
        health_lower_is_better=health_lower_is_better,
        transaction_model=transaction_model,
        spend_model=spend_model,
    )
    cols = _Columns(
        account_col,
        date_col,
        value_col,
        survey_date_col,
        score_col,
        wallet_col,
        target_col,
        product_col,
        segment_col,
    )
    _check_inputs(func, transactions, cols, surveys=surveys, wallets=wallets, targets=targets)
    weights = _check_weights(
        func, DEFAULT_HEALTH_WEIGHTS if health_weights is None else health_weights
    )
    tx = _filtered_transactions(transactions, opts, cols, cache=cache)
    card = _assembled(
        func,
        tx,
        opts,
        cols,
        weights,
        surveys=surveys,
        wallets=wallets,
        targets=targets,
        survey_window_days=survey_window_days,
        top_share=top_share,
        custom_weights=health_weights is not None,
        churn_model=churn_model,
    )
    if cache:
        card = _materialise(card, tx, opts.as_of)
    return card


def _assembled(
    func: str,
    tx: DataFrame,
    opts: _Options,
    cols: _Columns,
    weights: dict[str, float],
    *,
    surveys: DataFrame | None,
    wallets: DataFrame | None,
    targets: DataFrame | None,
    survey_window_days: int | None,
    top_share: float,
    custom_weights: bool,
    churn_model: ChurnModel | None,
) -> DataFrame:
    """The scorecard of the filtered transactions: the joined frames, health and churn scored."""
    base = _classified(_revenue_frame(tx, opts, cols), opts, cols, top_share=top_share)
    extra = _extra_frames(
        tx,
        opts,
        cols,
        surveys=surveys,
        wallets=wallets,
        targets=targets,
        survey_window_days=survey_window_days,
    )
    used = _used_weights(
        func,
        opts,
        weights,
        columns=[*base.columns, *(c for f in extra for c in f.columns)],
        custom_weights=custom_weights,
        wallets=wallets is not None,
        targets=targets is not None,
        churn_model=churn_model,
    )
    clv = _clv_frame(tx, opts, cols)  # the only eager step: the model fits (unless given)
    card = _joined(base, clv, extra, cols, wallets=wallets is not None, targets=targets is not None)
    return _scored(card, opts, used, cols, churn_model=churn_model)


@dataclass(frozen=True)
class _Columns:
    """The column names of :func:`account_scorecard`'s inputs."""

    account: str
    date: str
    value: str
    survey_date: str
    score: str
    wallet: str
    target: str
    product: str | None
    segment: str | None


@dataclass(frozen=True)
class _Options:
    """The checked options of :func:`account_scorecard`."""

    as_of: _dt.datetime
    window: int
    windows: tuple[int, ...]
    months: int
    abc: tuple[float, float]
    bands: tuple[float, float]
    lower_is_better: tuple[str, ...]
    freq: Freq
    discount_rate: float
    penalizer: float
    transaction_model: TransactionModel | None
    spend_model: SpendModel | None


def _check_options(
    func: str,
    *,
    as_of: _dt.date | _dt.datetime | str,
    freq: Freq,
    revenue_window_days: int,
    churn_windows: Sequence[int],
    clv_months: int,
    discount_rate: float,
    penalizer: float,
    top_share: float,
    survey_window_days: int | None,
    abc_thresholds: Sequence[float],
    health_bands: tuple[float, float],
    health_lower_is_better: str | Sequence[str],
    transaction_model: TransactionModel | None,
    spend_model: SpendModel | None,
) -> _Options:
    """Check the scalar options and the given models (no DataFrame is read)."""
    as_of_ts = parse_timestamp(func, "as_of", as_of)
    check_choice(func, "freq", freq, Freq)
    window = check_int(func, "revenue_window_days", revenue_window_days, unit="days")
    windows = _check_windows(func, churn_windows)
    months = check_int(func, "clv_months", clv_months, unit="months")
    check_positive(func, "discount_rate", discount_rate, allow_zero=True)
    check_positive(func, "penalizer", penalizer, allow_zero=True)
    check_fraction(func, "top_share", top_share)
    if survey_window_days is not None:
        check_int(func, "survey_window_days", survey_window_days, unit="days")
    abc = check_increasing_pair(
        func,
        "abc_thresholds",
        abc_thresholds,
        low=0.0,
        high=1.0,
        low_inclusive=False,
        meaning="(A, B) of the cumulative value share",
    )
    bands = check_bands(func, "health_bands", health_bands)
    lower_is_better = _check_names(func, "health_lower_is_better", health_lower_is_better)
    if transaction_model is not None:
        check_model(func, "transaction_model", transaction_model, TransactionModel)
    if spend_model is not None:
        check_model(func, "spend_model", spend_model, SpendModel)
    return _Options(
        as_of_ts,
        window,
        windows,
        months,
        abc,
        bands,
        lower_is_better,
        freq,
        float(discount_rate),
        float(penalizer),
        transaction_model,
        spend_model,
    )


def _check_inputs(
    func: str,
    transactions: DataFrame,
    cols: _Columns,
    *,
    surveys: DataFrame | None,
    wallets: DataFrame | None,
    targets: DataFrame | None,
) -> None:
    """Check the columns of every input and that their account columns share one type."""
    account_col, date_col, value_col = cols.account, cols.date, cols.value
    product_col, segment_col = cols.product, cols.segment
    survey_date_col, score_col = cols.survey_date, cols.score
    wallet_col, target_col = cols.wallet, cols.target
    require_columns(
        transactions,
        func,
        account_col=(account_col, "any"),
        date_col=(date_col, "temporal"),
        value_col=(value_col, "numeric"),
    )
    if segment_col is not None and product_col is None:
        raise SchemaError(
            function=func, argument="segment_col", expected="used with product_col=", found="None"
        )
    if product_col is not None:
        require_columns(transactions, func, product_col=(product_col, "any"))
    if segment_col is not None:
        require_columns(transactions, func, segment_col=(segment_col, "any"))
    account_type = _type_of(transactions, account_col)
    inputs: list[tuple[str, DataFrame, dict[str, tuple[str, Any]]]] = []
    if surveys is not None:
        inputs.append(
            (
                "surveys",
                surveys,
                {
                    "survey_date_col": (survey_date_col, "temporal"),
                    "score_col": (score_col, "numeric"),
                },
            )
        )
    if wallets is not None:
        inputs.append(("wallets", wallets, {"wallet_col": (wallet_col, "numeric")}))
    if targets is not None:
        inputs.append(("targets", targets, {"target_col": (target_col, "numeric")}))
    for name, frame, required in inputs:
        try:
            require_columns(frame, func, account_col=(account_col, "any"), **required)
        except SchemaError as exc:
            raise SchemaError(str(exc).replace(f"{func}(): ", f"{func}(): {name}=: ", 1)) from None
        found = _type_of(frame, account_col)
        if found != account_type:
            raise SchemaError(
                f"{func}(): column {account_col!r} of {name}= must have the type of the "
                f"transactions' account column ({account_type}), found {found}"
            )


def _filtered_transactions(
    transactions: DataFrame, opts: _Options, cols: _Columns, *, cache: bool
) -> DataFrame:
    """The transactions before ``as_of`` (only the used columns), persisted when ``cache``."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    growth_cols = [c for c in (cols.product, cols.segment) if c is not None]
    tx = transactions.where(F.col(cols.date) < _as_of_literal(opts.as_of)).select(
        cols.account, cols.date, cols.value, *growth_cols
    )
    if cache:
        tx = tx.persist(StorageLevel.MEMORY_AND_DISK)
    return tx


def _revenue_frame(tx: DataFrame, opts: _Options, cols: _Columns) -> DataFrame:
    """The churn features of every window plus ``revenue`` and ``revenue_growth``."""
    from pyspark.sql import functions as F

    from kamlib.churn import churn_features

    features = churn_features(
        tx,
        as_of=opts.as_of,
        account_col=cols.account,
        date_col=cols.date,
        value_col=cols.value,
        windows=tuple(sorted(set(opts.windows) | {opts.window})),
    )
    rev = f"revenue_{opts.window}d"
    trend = f"revenue_trend_{opts.window}d"
    return features.withColumn("revenue", F.col(rev)).withColumn("revenue_growth", F.col(trend))


def _classified(base: DataFrame, opts: _Options, cols: _Columns, *, top_share: float) -> DataFrame:
    """``base`` with the value rank, shares, ABC tier and key-account flag of ``revenue``.

    ``base`` has one row per account, so :func:`kamlib.classify.classify_accounts` on its
    revenue is its window step alone, applied in place (no second aggregation of the
    transactions and no join back).
    """
    from kamlib._scoring import clean_numeric_sql
    from kamlib.classify import _HELPERS, _ranked

    value = f"{TEMP_PREFIX}value"
    revenue = f"CAST({clean_numeric_sql(base, 'revenue')} AS DOUBLE) AS {value}"
    ranked = _ranked(
        base.selectExpr("*", revenue),
        account_col=cols.account,
        by=[],
        top_share=top_share,
        thresholds=opts.abc,
        value_col=value,
    )
    return ranked.drop(value, *_HELPERS)


def _extra_frames(
    tx: DataFrame,
    opts: _Options,
    cols: _Columns,
    *,
    surveys: DataFrame | None,
    wallets: DataFrame | None,
    targets: DataFrame | None,
    survey_window_days: int | None,
) -> list[DataFrame]:
    """The per-account NPS, wallet, target and growth frames of the optional inputs."""
    from pyspark.sql import functions as F

    extra: list[DataFrame] = []
    if surveys is not None:
        extra.append(
            _account_nps(
                surveys,
                as_of=opts.as_of,
                account_col=cols.account,
                date_col=cols.survey_date,
                score_col=cols.score,
                window_days=survey_window_days,
            )
        )
    if wallets is not None:
        extra.append(
            wallets.groupBy(cols.account).agg(
                F.avg(F.col(cols.wallet)).cast("double").alias("wallet")
            )
        )
    if targets is not None:
        extra.append(
            targets.groupBy(cols.account).agg(
                F.sum(F.col(cols.target)).cast("double").alias("target")
            )
        )
    if cols.product is not None:
        since = opts.as_of - _dt.timedelta(days=opts.window)
        since_col = F.lit(since.isoformat(sep=" ")).cast("timestamp")
        extra.append(
            _growth_frame(
                tx.where(F.col(cols.date) >= since_col),
                account_col=cols.account,
                product_col=cols.product,
                value_col=cols.value,
                segment_col=cols.segment,
            )
        )
    return extra


def _used_weights(
    func: str,
    opts: _Options,
    weights: dict[str, float],
    *,
    columns: list[str],
    custom_weights: bool,
    wallets: bool,
    targets: bool,
    churn_model: ChurnModel | None,
) -> dict[str, float]:
    """The health weights of existing columns; checks them and the churn model's features.

    Every output column is known before the model fits (the CLV columns are fixed), so this
    runs before the only eager step.
    """
    present = set(columns) | set(_CLV_COLUMNS)
    if wallets:
        present |= {"share_of_wallet", "wallet_headroom"}
    if targets:
        present.add("target_attainment")
    if churn_model is not None:
        lacking = sorted(set(churn_model.features) - present)
        if lacking:
            raise SchemaError(
                f"{func}(): churn_model= reads features the scorecard does not have: {lacking}; "
                f"train it on churn features with windows among churn_windows={opts.windows}"
            )
    used = {k: w for k, w in weights.items() if k in present}
    if custom_weights and len(used) != len(weights):
        missing = sorted(set(weights) - present)
        raise SchemaError(
            f"{func}(): health_weights= names columns the scorecard does not have: {missing}; "
            f"available: {sorted(present)}"
        )
    return used


def _joined(
    base: DataFrame,
    clv: DataFrame,
    extra: list[DataFrame],
    cols: _Columns,
    *,
    wallets: bool,
    targets: bool,
) -> DataFrame:
    """Left-join every metric frame to ``base``; add share of wallet and target attainment."""
    from pyspark.sql import functions as F

    card = base.join(clv, on=cols.account, how="left")
    for frame in extra:
        card = card.join(frame, on=cols.account, how="left")
    if wallets:
        from kamlib.wallet import share_of_wallet

        card = share_of_wallet(card, spend_col="revenue", wallet_col="wallet")
    if targets:
        card = card.withColumn("target_attainment", F.try_divide(F.col("revenue"), F.col("target")))
    return card


def _scored(
    card: DataFrame,
    opts: _Options,
    used: dict[str, float],
    cols: _Columns,
    *,
    churn_model: ChurnModel | None,
) -> DataFrame:
    """Add the health score, order the columns and add the churn probability."""
    from kamlib.health import health_score

    card = health_score(
        card,
        weights=used,
        lower_is_better=tuple(c for c in opts.lower_is_better if c in used),
        bands=opts.bands,
    )
    ordered = [cols.account] + [c for c in SCORECARD_COLUMNS if c in card.columns]
    rest = [c for c in card.columns if c not in ordered]
    card = card.select(*ordered, *rest)
    if churn_model is not None:
        card = churn_model.predict(card)
    return card


def _materialise(card: DataFrame, tx: DataFrame, as_of: _dt.datetime) -> DataFrame:
    """Persist and materialise the result (one job), then release the transaction cache."""
    from pyspark import StorageLevel

    card = card.persist(StorageLevel.MEMORY_AND_DISK)
    n = card.count()  # the documented materialisation of ``cache=True``
    tx.unpersist()
    log.info("account_scorecard: %d accounts scored at %s", n, as_of.isoformat())
    return card


def _growth_frame(
    tx: DataFrame,
    *,
    account_col: str,
    product_col: str,
    value_col: str,
    segment_col: str | None,
) -> DataFrame:
    """Whitespace headroom and the top next-product recommendation per account."""
    from pyspark.sql import functions as F

    from kamlib.growth import next_products, whitespace

    source = tx
    if segment_col is not None:  # one segment per account: its first value
        first = tx.groupBy(account_col).agg(F.min(segment_col).alias(segment_col))
        source = tx.drop(segment_col).join(first, on=account_col, how="left")
    headroom = (
        whitespace(
            source,
            account_col=account_col,
            product_col=product_col,
            value_col=value_col,
            segment_col=segment_col,
        )
        .groupBy(account_col)
        .agg(F.sum("headroom").alias("whitespace_headroom"))
    )
    top = next_products(tx, account_col=account_col, product_col=product_col, k=1).select(
        account_col,
        F.col("recommended_product").alias("top_recommendation"),
        F.col("confidence").alias("top_recommendation_confidence"),
    )
    return headroom.join(top, on=account_col, how="left")


def _account_nps(
    surveys: DataFrame,
    *,
    as_of: _dt.datetime,
    account_col: str,
    date_col: str,
    score_col: str,
    window_days: int | None,
) -> DataFrame:
    """NPS, response count and confidence interval per account over the surveys before as_of."""
    from pyspark.sql import functions as F

    from kamlib.nps import nps

    cutoff = _as_of_literal(as_of)
    cond = F.col(date_col) < cutoff
    if window_days is not None:
        start = _as_of_literal(as_of - _dt.timedelta(days=window_days))
        cond = cond & (F.col(date_col) >= start)
    per_account = nps(surveys.where(cond), score_col=score_col, by=account_col)
    return per_account.select(
        account_col,
        "nps",
        F.col("n").alias("nps_responses"),
        F.col("ci_low").alias("nps_ci_low"),
        F.col("ci_high").alias("nps_ci_high"),
    )


def _clv_frame(tx: DataFrame, opts: _Options, cols: _Columns) -> DataFrame:
    """RFM summary at ``as_of`` scored with BG/NBD + Gamma-Gamma (fitted unless given)."""
    from pyspark.sql import functions as F

    from kamlib.clv import BetaGeo, GammaGamma, rfm_summary
    from kamlib.clv.models import _fit_with_spend

    as_of, freq, penalizer = opts.as_of, opts.freq, opts.penalizer
    account_col, date_col, value_col = cols.account, cols.date, cols.value

    # Transactions are strictly before as_of: the last observable instant is just before it.
    observation_end = as_of - _dt.timedelta(microseconds=1)
    summary = rfm_summary(
        tx,
        account_col=account_col,
        date_col=date_col,
        value_col=value_col,
        observation_end=observation_end.date(),
        freq=freq,
    )
    bg, gg = opts.transaction_model, opts.spend_model
    if bg is None and gg is None:
        log.info("account_scorecard: fitting BG/NBD and Gamma-Gamma (one pass)")
        new_bg, new_gg = BetaGeo(penalizer=penalizer), GammaGamma(penalizer=penalizer)
        _fit_with_spend(summary, new_bg, new_gg)
        bg, gg = new_bg, new_gg
    if bg is None:
        log.info("account_scorecard: fitting BG/NBD")
        bg = BetaGeo(penalizer=penalizer).fit(summary)
    if gg is None:
        log.info("account_scorecard: fitting Gamma-Gamma")
        gg = GammaGamma(penalizer=penalizer).fit(summary)
    scored = _predicted(summary, bg, gg, opts)
    result: DataFrame = scored.select(
        account_col,
        "frequency",
        "recency",
        "T",
        "monetary_value",
        "p_alive",
        "p_no_purchase_90d",
        "expected_purchases_90d",
        "expected_purchases_365d",
        "expected_spend",
        (F.col("expected_purchases_90d") * F.col("expected_spend")).alias("revenue_forecast_90d"),
        (F.col("expected_purchases_365d") * F.col("expected_spend")).alias("revenue_forecast_365d"),
        "clv",
    )
    return result


def _predicted(
    summary: DataFrame, bg: TransactionModel, gg: SpendModel, opts: _Options
) -> DataFrame:
    """The summary with the model columns: P(alive), horizon risks, spend and CLV.

    With one of kamlib's transaction models all of them come from ONE Arrow pass (the model's
    horizon kernels fused with the CLV function); another :class:`TransactionModel` is
    scored through its public methods, one pass each.
    """
    from kamlib._arrow import with_numpy_columns
    from kamlib.clv import customer_lifetime_value
    from kamlib.clv.models import _TransactionModel
    from kamlib.clv.value import _clv_scorer

    unit = DAYS_PER_UNIT[opts.freq]
    # (output, quantity, horizon in the model's time unit)
    horizons: list[tuple[str, Literal["alive", "no_purchase", "expected"], float]] = [
        ("p_alive", "alive", 0.0),
        ("p_no_purchase_90d", "no_purchase", 90.0 / unit),
        ("expected_purchases_90d", "expected", 90.0 / unit),
        ("expected_purchases_365d", "expected", 365.0 / unit),
    ]
    scored = gg.expected_spend(summary, output_col="expected_spend")
    clv_args: dict[str, Any] = {
        "transaction_model": bg,
        "spend_model": gg,
        "months": opts.months,
        "discount_rate": opts.discount_rate,
        "freq": opts.freq,
        "output_col": "clv",
    }
    if not isinstance(bg, _TransactionModel):
        for output, kind, t in horizons:
            if kind == "alive":
                scored = bg.probability_alive(scored, output_col=output)
            elif kind == "no_purchase":
                scored = bg.probability_no_purchase(scored, t, output_col=output)
            else:
                scored = bg.expected_purchases(scored, t, output_col=output)
        return customer_lifetime_value(scored, **clv_args)
    specs = [(output, *bg._kernel(kind, t)) for output, kind, t in horizons]
    names = ("frequency", "recency", "T", "monetary_value")
    risks, risk_inputs = bg._horizon_scorer(scored, "account_scorecard", names[:3], specs)
    clv, clv_inputs, clv_outputs = _clv_scorer(scored, names=names, interval=None, **clv_args)

    def score(cols: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {**risks(cols), **clv(cols)}

    inputs = list(dict.fromkeys([*risk_inputs, *clv_inputs]))
    outputs = [output for output, _, _ in horizons] + clv_outputs
    return with_numpy_columns(scored, score, inputs=inputs, outputs=outputs)
