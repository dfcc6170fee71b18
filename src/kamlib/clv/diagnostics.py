r"""Goodness-of-fit diagnostics of the CLV transaction models, as small DataFrames.

The tables behind lifetimes' ``plot_period_transactions`` and
``plot_calibration_purchases_vs_holdout_purchases``, plus the population distribution of the
number of repeat purchases. Spark aggregates the accounts (distinct ``T`` values with counts,
or per-frequency means); only those few rows reach the driver, and the results come back as
small Spark DataFrames (``.toPandas()`` them to plot).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

import numpy as np

from kamlib._arrow import with_numpy_columns
from kamlib._validation import check_positive, require_columns
from kamlib.clv._base import PurchaseCountModel, TransactionModel, check_model
from kamlib.clv.models import _require_summary
from kamlib.errors import SchemaError

if TYPE_CHECKING:
    from numpy.typing import NDArray
    from pyspark.sql import DataFrame, SparkSession

__all__ = ["calibration_holdout_purchases", "period_transactions", "probability_of_purchases"]


def _check_max_frequency(func: str, max_frequency: int) -> int:
    if isinstance(max_frequency, bool) or not isinstance(max_frequency, int) or max_frequency < 1:
        raise SchemaError(f"{func}(): max_frequency= must be an int >= 1, found {max_frequency!r}")
    return max_frequency


def period_transactions(
    df: DataFrame,
    model: PurchaseCountModel,
    *,
    max_frequency: int = 7,
    frequency_col: str = "frequency",
    T_col: str = "T",
) -> DataFrame:
    r"""Observed vs expected number of accounts by number of repeat purchases.

    For each repeat-purchase count :math:`k < K` (``K = max_frequency``) the expected number
    of accounts is

    .. math::

        E[N_k] = \sum_{T} n_T\, P(X(T) = k),

    summed over the distinct ages :math:`T` with :math:`n_T` accounts each, where
    :math:`P(X(t) = k)` is the model's population probability of :math:`k` repeat purchases
    in :math:`(0, t]`. The last row (``frequency = K``) holds the accounts with :math:`K` or
    more repeat purchases (expected: the remainder). This is the table of lifetimes'
    ``plot_period_transactions``, with exact expectations instead of a simulated sample.

    Parameters
    ----------
    df : pyspark.sql.DataFrame
        RFM summary (one row per account).
    model : BetaGeo, ParetoNBD or ModifiedBetaGeo
        Fitted transaction model.
    max_frequency : int
        Number of single-count bins; the last bin is "max_frequency or more".
    frequency_col, T_col : str
        Input columns.

    Returns
    -------
    pyspark.sql.DataFrame
        ``frequency`` (int), ``observed`` (long), ``expected`` (double), ordered by frequency.

    Examples
    --------
    >>> from kamlib.clv import BetaGeo
    >>> from kamlib.datasets import load_cdnow_summary
    >>> summary = load_cdnow_summary(spark)
    >>> table = period_transactions(summary, BetaGeo().fit(summary), max_frequency=3)
    >>> [(r.frequency, r.observed, round(r.expected)) for r in table.collect()]
    [(0, 1411, 1408), (1, 439, 460), (2, 214, 192), (3, 293, 297)]
    """
    from pyspark.sql import functions as F

    func = "period_transactions"
    require_columns(df, func, frequency_col=(frequency_col, "numeric"), T_col=(T_col, "numeric"))
    k_max = _check_max_frequency(func, max_frequency)
    check_model(func, "model", model, PurchaseCountModel, methods=("probability_of_purchases_np",))
    x = F.col(frequency_col).cast("double")
    ages = (
        df.where(F.col(T_col).isNotNull() & x.isNotNull())
        .groupBy(F.col(T_col).cast("double").alias("T"))
        .count()
        .collect()
    )
    observed_rows = (
        df.where(x.isNotNull())
        .groupBy(F.least(F.floor(x), F.lit(k_max)).cast("int").alias("k"))
        .count()
        .collect()
    )
    observed = {int(r["k"]): int(r["count"]) for r in observed_rows}
    t_values = np.array([float(r["T"]) for r in ages], dtype=np.float64)
    counts = np.array([float(r["count"]) for r in ages], dtype=np.float64)
    total = float(counts.sum())
    expected = np.zeros(k_max + 1)
    if t_values.size:
        for k in range(k_max):
            probs = np.asarray(model.probability_of_purchases_np(float(k), t_values), dtype=float)
            expected[k] = float(np.sum(counts * probs))
        expected[k_max] = total - float(expected[:k_max].sum())
    rows = [(k, observed.get(k, 0), float(expected[k])) for k in range(k_max + 1)]
    return df.sparkSession.createDataFrame(
        rows, "frequency int, observed long, expected double"
    ).orderBy("frequency")


def calibration_holdout_purchases(
    df: DataFrame,
    model: TransactionModel,
    *,
    max_frequency: int = 7,
    frequency_col: str = "frequency",
    recency_col: str = "recency",
    T_col: str = "T",
    frequency_holdout_col: str = "frequency_holdout",
    duration_holdout_col: str = "duration_holdout",
) -> DataFrame:
    r"""Mean holdout purchases vs the model's conditional expectation, by calibration frequency.

    For each calibration frequency :math:`k` (the last bin ``max_frequency`` holds the
    accounts with that many or more), over the accounts in the bin:

    * ``observed``: mean of ``frequency_holdout``;
    * ``expected``: mean of :math:`E[X(t_h) \mid x, t_x, T]` with :math:`t_h` the account's
      ``duration_holdout``.

    This is the table of lifetimes' ``plot_calibration_purchases_vs_holdout_purchases``
    (``kind="frequency_cal"``). The expectations are computed on the executors.

    Parameters
    ----------
    df : pyspark.sql.DataFrame
        Output of :func:`kamlib.clv.calibration_holdout`.
    model : BetaGeo, ParetoNBD or ModifiedBetaGeo
        Transaction model fitted on the calibration columns.
    max_frequency : int
        Bins ``0 .. max_frequency - 1`` and a last "max_frequency or more" bin.

    Returns
    -------
    pyspark.sql.DataFrame
        ``frequency`` (int), ``n_accounts`` (long), ``observed``, ``expected`` (double),
        ordered by frequency; only bins with accounts.
    """
    from pyspark.sql import functions as F

    func = "calibration_holdout_purchases"
    _require_summary(
        df,
        func,
        (frequency_col, recency_col, T_col),
        frequency_holdout_col=(frequency_holdout_col, "numeric"),
        duration_holdout_col=(duration_holdout_col, "numeric"),
    )
    k_max = _check_max_frequency(func, max_frequency)
    check_model(
        func, "model", model, TransactionModel, methods=("conditional_expected_purchases_np",)
    )
    names = (frequency_col, recency_col, T_col, duration_holdout_col)
    out = "__kamlib_expected_holdout"

    def score(cols: Mapping[str, NDArray[np.float64]]) -> dict[str, NDArray[np.float64]]:
        x, tx, t_age, t_h = (cols[n] for n in names)
        ok = np.isfinite(x) & np.isfinite(tx) & np.isfinite(t_age) & np.isfinite(t_h)
        value = model.conditional_expected_purchases_np(
            np.where(ok, t_h, 0.0),
            np.where(ok, x, 0.0),
            np.where(ok, tx, 0.0),
            np.where(ok, t_age, 1.0),
        )
        return {out: np.where(ok, np.asarray(value, dtype=np.float64), np.nan)}

    staged = df.select(*[F.col(f"`{c}`") for c in dict.fromkeys([*names, frequency_holdout_col])])
    scored = with_numpy_columns(staged, score, inputs=list(dict.fromkeys(names)), outputs=[out])
    bin_col = F.least(F.floor(F.col(frequency_col)), F.lit(k_max)).cast("int")
    return (
        scored.where(F.col(out).isNotNull() & F.col(frequency_holdout_col).isNotNull())
        .groupBy(bin_col.alias("frequency"))
        .agg(
            F.count(F.lit(1)).alias("n_accounts"),
            F.avg(F.col(frequency_holdout_col).cast("double")).alias("observed"),
            F.avg(F.col(out)).alias("expected"),
        )
        .orderBy("frequency")
    )


def probability_of_purchases(
    model: PurchaseCountModel,
    n: int | Iterable[int],
    t: float | Iterable[float],
    *,
    spark: SparkSession | None = None,
) -> DataFrame:
    r"""Table of :math:`P(X(t) = n)`: probability of exactly ``n`` repeat purchases in ``(0, t]``.

    For a randomly chosen new account of the population (the model's unconditional
    distribution, e.g. FHL 2005 eq. 8 for BG/NBD), for every combination of ``n`` and ``t``.

    Parameters
    ----------
    model : BetaGeo, ParetoNBD or ModifiedBetaGeo
        Fitted transaction model.
    n : int or iterable of int
        Numbers of repeat purchases (>= 0).
    t : float or iterable of float
        Horizons in the model's time unit (>= 0).
    spark : SparkSession, optional
        Session to create the result in (default: the active session).

    Returns
    -------
    pyspark.sql.DataFrame
        ``n`` (int), ``t`` (double), ``probability`` (double), ordered by ``t`` then ``n``.

    Examples
    --------
    >>> from kamlib.clv import BetaGeo
    >>> from kamlib.datasets import load_cdnow_summary
    >>> bg = BetaGeo().fit(load_cdnow_summary(spark))
    >>> table = probability_of_purchases(bg, range(3), 39.0, spark=spark)
    >>> [round(r.probability, 3) for r in table.collect()]
    [0.574, 0.199, 0.085]
    """
    func = "probability_of_purchases"
    check_model(func, "model", model, PurchaseCountModel, methods=("probability_of_purchases_np",))
    ns = [n] if isinstance(n, (int, np.integer)) else list(n)
    ts = [t] if isinstance(t, (int, float, np.number)) else list(t)
    for value in ns:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise SchemaError(f"{func}(): n= must be ints >= 0, found {value!r}")
    horizons = [check_positive(func, "t", float(v), allow_zero=True) for v in ts]
    rows = []
    for t_value, k in itertools.product(sorted(horizons), sorted(int(v) for v in ns)):
        p = float(np.asarray(model.probability_of_purchases_np(float(k), t_value)).reshape(-1)[0])
        rows.append((k, t_value, p))
    if spark is None:
        from pyspark.sql import SparkSession

        session = SparkSession.getActiveSession()
        if session is None:
            raise SchemaError(f"{func}(): no active SparkSession; pass spark=")
        spark = session
    return spark.createDataFrame(rows, "n int, t double, probability double")
