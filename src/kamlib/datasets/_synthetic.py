"""Reproducible synthetic KAM data generated inside Spark.

The generator works on *blocks* of accounts: Spark creates one row per block id and an
Arrow batch function (``mapInArrow``, because Spark has no native gamma or beta sampler)
draws each block's accounts from ``numpy.random.default_rng([seed, table, block])``. The
output therefore depends only on ``seed`` and ``n_accounts``, never on partitioning, and
no per-account data passes through the driver.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from kamlib._validation import check_positive
from kamlib.errors import SchemaError

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame, SparkSession

__all__ = [
    "SyntheticTruth",
    "synthetic_surveys",
    "synthetic_targets",
    "synthetic_transactions",
    "synthetic_usage",
    "synthetic_wallets",
]

BLOCK_SIZE = 2_000
_EPOCH = _dt.date(1970, 1, 1)
_REGIONS = ("EMEA", "Americas", "APAC")
_INDUSTRIES = ("Manufacturing", "Retail", "Finance", "Healthcare", "Technology")
_PRODUCTS = ("core", "analytics", "support", "training", "integration")
_TABLE_IDS = {"transactions": 1, "surveys": 2, "wallets": 3, "usage": 4, "targets": 5}


@dataclasses.dataclass(frozen=True)
class SyntheticTruth:
    """Generative parameters of :func:`synthetic_transactions` (time unit: days).

    Purchase rates ``lambda ~ Gamma(shape=r, rate=alpha)`` and dropout probabilities
    ``p ~ Beta(a, b)`` follow the BG/NBD model (Fader, Hardie and Lee 2005); spend per
    transaction ``z ~ Gamma(shape=p, rate=nu)`` with ``nu ~ Gamma(shape=q, rate=v)`` follows the
    Gamma-Gamma model. Each account's first purchase falls uniformly in the first
    ``birth_days`` days of the ``days``-day window that starts on ``start``.
    """

    r: float = 0.75
    alpha: float = 40.0
    a: float = 0.8
    b: float = 2.5
    p: float = 6.0
    q: float = 3.8
    v: float = 150.0
    start: _dt.date = _dt.date(2024, 1, 1)
    days: int = 730
    birth_days: int = 365

    def observation_end(self) -> _dt.date:
        """Last day of the generated window (inclusive)."""
        return self.start + _dt.timedelta(days=self.days - 1)


def _account_id(index: np.ndarray) -> np.ndarray:
    return np.char.add("A", np.char.zfill(index.astype(str), 8))


def _rng(seed: int, table: str, block: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), _TABLE_IDS[table], int(block)])


def _block_accounts(block: int, n_accounts: int) -> np.ndarray:
    lo = block * BLOCK_SIZE
    return np.arange(lo, min(lo + BLOCK_SIZE, n_accounts), dtype=np.int64)


def _transactions_block(
    block: int, n_accounts: int, seed: int, truth: SyntheticTruth, with_products: bool
) -> dict[str, Any]:
    rng = _rng(seed, "transactions", block)
    idx = _block_accounts(block, n_accounts)
    n = idx.size
    lam = rng.gamma(truth.r, 1.0 / truth.alpha, n)
    p_drop = rng.beta(truth.a, truth.b, n)
    nu = rng.gamma(truth.q, 1.0 / truth.v, n)
    birth = rng.uniform(0.0, truth.birth_days, n)
    horizon = truth.days - birth  # T in days (continuous)
    k = rng.poisson(lam * horizon)  # repeat purchases of an immortal customer in (0, T]
    death_after = rng.geometric(np.clip(p_drop, 1e-12, 1.0))  # dies after this many repeats
    x = np.minimum(k, death_after)
    owner = np.repeat(np.arange(n), 1 + x)  # first purchase + x repeats
    # Repeat purchase times: the first x of k sorted uniforms on (0, T]; equivalently the
    # x smallest order statistics, drawn per account.
    times = np.empty(owner.size)
    pos = 0
    offsets = rng.random(int(k.sum()))
    off_pos = 0
    for i in range(n):
        times[pos] = 0.0
        ki, xi = int(k[i]), int(x[i])
        if xi:
            u = np.sort(offsets[off_pos : off_pos + ki])[:xi]
            times[pos + 1 : pos + 1 + xi] = u * horizon[i]
        off_pos += ki
        pos += 1 + xi
    day = np.floor(birth[owner] + times).astype(np.int64)
    day = np.minimum(day, truth.days - 1)
    amount = rng.gamma(truth.p, 1.0 / nu[owner])
    start_ord = (truth.start - _EPOCH).days
    data: dict[str, Any] = {
        "account_id": _account_id(idx[owner]),
        "order_date": (start_ord + day).astype("int32"),
        "amount": np.round(amount, 2),
    }
    if with_products:
        weights = np.array([0.5, 0.2, 0.15, 0.1, 0.05])
        data["product"] = np.array(_PRODUCTS)[rng.choice(len(_PRODUCTS), owner.size, p=weights)]
    return data


def _to_arrow(data: dict[str, Any], schema: pa.Schema) -> pa.RecordBatch:
    import pyarrow as pa

    arrays = []
    for field in schema:
        values = data[field.name]
        if pa.types.is_date32(field.type):
            arrays.append(
                pa.array(np.asarray(values, dtype="int32"), type=pa.int32()).cast(field.type)
            )
        else:
            arrays.append(pa.array(values, type=field.type))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _blocks(spark: SparkSession, n_accounts: int) -> DataFrame:
    n_blocks = max(1, math.ceil(n_accounts / BLOCK_SIZE))
    partitions = max(1, min(n_blocks, 4 * 16))
    return spark.range(0, n_blocks, 1, numPartitions=partitions).withColumnRenamed("id", "block")


def _check_args(func: str, n_accounts: int, seed: int) -> None:
    if isinstance(n_accounts, bool) or not isinstance(n_accounts, int) or n_accounts < 1:
        raise SchemaError(f"{func}(): n_accounts= must be a positive int, found {n_accounts!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise SchemaError(f"{func}(): seed= must be a non-negative int, found {seed!r}")


def _generate(
    spark: SparkSession,
    n_accounts: int,
    ddl: str,
    make_block: Any,
) -> DataFrame:
    from pyspark.sql.pandas.types import to_arrow_schema
    from pyspark.sql.types import StructType

    spark_schema = StructType.fromDDL(ddl)
    assert isinstance(spark_schema, StructType)
    arrow_schema = to_arrow_schema(spark_schema)

    def generate(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            for block in batch.column(0).to_pylist():
                yield _to_arrow(make_block(int(block)), arrow_schema)

    return _blocks(spark, n_accounts).mapInArrow(generate, spark_schema)


def synthetic_transactions(
    spark: SparkSession,
    n_accounts: int,
    seed: int = 0,
    *,
    truth: SyntheticTruth | None = None,
    with_products: bool = False,
) -> DataFrame:
    """Generate a transaction log from a known BG/NBD + Gamma-Gamma process.

    Parameters
    ----------
    spark : pyspark.sql.SparkSession
        Session (classic or Spark Connect) to generate in.
    n_accounts : int
        Number of accounts (``A00000000``, ``A00000001``, ...). Every account has at least
        one transaction (its first purchase).
    seed : int
        Random seed; the same ``(n_accounts, seed, truth)`` always gives the same rows.
    truth : SyntheticTruth, optional
        Generative parameters (daily time unit); defaults to ``SyntheticTruth()``.
    with_products : bool
        Add a ``product`` column (for cross-sell metrics).

    Returns
    -------
    pyspark.sql.DataFrame
        ``account_id`` string, ``order_date`` date, ``amount`` double (and ``product``).

    Notes
    -----
    Account ``i`` is born at ``u_i ~ U(0, birth_days)``; its repeat purchases are the first
    ``min(K_i, D_i)`` points of a Poisson process with rate ``lambda_i`` on ``(0, T_i]``, where
    ``K_i ~ Poisson(lambda_i T_i)`` and ``D_i ~ Geometric(p_i)`` is the repeat purchase after
    which it drops out: exactly the BG/NBD story. Times are floored to days, so purchases on
    the same day merge in :func:`kamlib.clv.rfm_summary` (rare at the default rates).

    References
    ----------
    Fader, Hardie and Lee (2005), "Counting Your Customers the Easy Way", Marketing Science 24(2).
    Fader and Hardie (2013), "The Gamma-Gamma Model of Monetary Value".

    Examples
    --------
    >>> from kamlib.datasets import synthetic_transactions
    >>> tx = synthetic_transactions(spark, 1_000, seed=42)  # doctest: +SKIP
    """
    _check_args("synthetic_transactions", n_accounts, seed)
    truth = truth or SyntheticTruth()
    ddl = "account_id string, order_date date, amount double"
    if with_products:
        ddl += ", product string"

    def make(block: int) -> dict[str, Any]:
        return _transactions_block(block, n_accounts, seed, truth, with_products)

    return _generate(spark, n_accounts, ddl, make)


def synthetic_surveys(
    spark: SparkSession, n_accounts: int, seed: int = 0, *, truth: SyntheticTruth | None = None
) -> DataFrame:
    """Generate NPS survey responses (0..10 scores, a few invalid) for synthetic accounts.

    Each account answers 0-4 surveys on random dates in the window; each account has a latent
    satisfaction, so scores cluster by account. About 1% of scores are null and 0.5% out of
    range (11), to exercise invalid-value counting. Columns: ``account_id``,
    ``response_date`` (date), ``score`` (double).
    """
    _check_args("synthetic_surveys", n_accounts, seed)
    truth = truth or SyntheticTruth()

    def make(block: int) -> dict[str, Any]:
        rng = _rng(seed, "surveys", block)
        idx = _block_accounts(block, n_accounts)
        counts = rng.integers(0, 5, idx.size)
        owner = np.repeat(np.arange(idx.size), counts)
        latent = rng.normal(7.5, 1.8, idx.size)
        score = np.clip(np.rint(latent[owner] + rng.normal(0, 1.2, owner.size)), 0, 10)
        score = score.astype(float)
        noise = rng.random(owner.size)
        score[noise < 0.005] = 11.0
        score_list: list[float | None] = [
            None if u > 0.99 else s for s, u in zip(score.tolist(), noise.tolist(), strict=True)
        ]
        day = rng.integers(0, truth.days, owner.size)
        return {
            "account_id": _account_id(idx[owner]),
            "response_date": ((truth.start - _EPOCH).days + day).astype("int32"),
            "score": score_list,
        }

    return _generate(spark, n_accounts, "account_id string, response_date date, score double", make)


def _latent_annual_spend(block: int, n: int, seed: int, truth: SyntheticTruth) -> np.ndarray:
    """Replay a block's transaction draws: expected annual spend = (1 + 365 lambda) p / nu."""
    latent = _rng(seed, "transactions", block)
    lam = latent.gamma(truth.r, 1.0 / truth.alpha, n)
    latent.beta(truth.a, truth.b, n)  # dropout probabilities: keeps the draw order
    nu = latent.gamma(truth.q, 1.0 / truth.v, n)
    return np.asarray((1.0 + lam * 365.0) * truth.p / nu)


def synthetic_wallets(
    spark: SparkSession, n_accounts: int, seed: int = 0, *, truth: SyntheticTruth | None = None
) -> DataFrame:
    """Generate wallet estimates (total category spend per account per year).

    One row per account: ``account_id``, ``wallet`` (double, a few null), ``region``,
    ``industry`` (segments for ``by=``), ``n_brands`` and ``brand_rank`` (int, for the Wallet
    Allocation Rule). The wallet is consistent with :func:`synthetic_transactions` for the same
    ``seed`` and ``truth``: it is the account's latent expected annual spend (purchase rate x 365
    x mean spend per purchase, from the same draws) divided by a share of wallet drawn from
    Beta(2, 3), so an account's share of wallet is usually between 10% and 70%.
    """
    _check_args("synthetic_wallets", n_accounts, seed)
    truth = truth or SyntheticTruth()

    def make(block: int) -> dict[str, Any]:
        idx = _block_accounts(block, n_accounts)
        annual_spend = _latent_annual_spend(block, idx.size, seed, truth)
        rng = _rng(seed, "wallets", block)
        share = rng.beta(2.0, 3.0, idx.size)
        wallet = np.round(annual_spend / np.clip(share, 0.02, 1.0), 2)
        wallet_list: list[float | None] = [
            None if u < 0.02 else w
            for w, u in zip(wallet.tolist(), rng.random(idx.size).tolist(), strict=True)
        ]
        n_brands = rng.integers(1, 6, idx.size)
        rank = np.minimum(rng.integers(1, 6, idx.size), n_brands)
        return {
            "account_id": _account_id(idx),
            "wallet": wallet_list,
            "region": np.array(_REGIONS)[rng.integers(0, len(_REGIONS), idx.size)],
            "industry": np.array(_INDUSTRIES)[rng.integers(0, len(_INDUSTRIES), idx.size)],
            "n_brands": n_brands.astype("int32"),
            "brand_rank": rank.astype("int32"),
        }

    ddl = (
        "account_id string, wallet double, region string, industry string, "
        "n_brands int, brand_rank int"
    )
    return _generate(spark, n_accounts, ddl, make)


def synthetic_usage(
    spark: SparkSession,
    n_accounts: int,
    seed: int = 0,
    *,
    truth: SyntheticTruth | None = None,
    days: int = 180,
) -> DataFrame:
    """Generate daily product usage events for the last ``days`` days of the window.

    One row per (account, active day): ``account_id``, ``event_date`` (date), ``active_users``
    (int) and ``usage`` (double). A third of accounts trend down, a third plateau, a third grow,
    so usage-plateau and decline features have something to find.
    """
    _check_args("synthetic_usage", n_accounts, seed)
    check_positive("synthetic_usage", "days", days)
    truth = truth or SyntheticTruth()

    def make(block: int) -> dict[str, Any]:
        rng = _rng(seed, "usage", block)
        idx = _block_accounts(block, n_accounts)
        level = rng.lognormal(3.0, 0.8, idx.size)
        trend = rng.choice(np.array([-0.004, 0.0, 0.003]), idx.size)
        grid = np.arange(days)
        mult = np.exp(np.outer(trend, grid))
        lam = level[:, None] * mult
        active = rng.random(lam.shape) < 0.8
        usage = rng.poisson(lam).astype(float)
        owner, day = np.nonzero(active)
        first = (truth.observation_end() - _EPOCH).days - days + 1
        users = np.maximum(1, rng.poisson(np.sqrt(lam[owner, day])))
        return {
            "account_id": _account_id(idx[owner]),
            "event_date": (first + day).astype("int32"),
            "active_users": users.astype("int32"),
            "usage": usage[owner, day],
        }

    ddl = "account_id string, event_date date, active_users int, usage double"
    return _generate(spark, n_accounts, ddl, make)


def synthetic_targets(
    spark: SparkSession, n_accounts: int, seed: int = 0, *, truth: SyntheticTruth | None = None
) -> DataFrame:
    """Generate account-specific annual revenue targets: ``account_id``, ``target`` (double).

    Targets are set like a KAM team would: from the account's latent expected annual spend (the
    same draws as :func:`synthetic_transactions` for the same ``seed`` and ``truth``) times a
    stretch factor drawn from LogNormal(0.1, 0.3), rounded to tens.
    """
    _check_args("synthetic_targets", n_accounts, seed)
    truth = truth or SyntheticTruth()

    def make(block: int) -> dict[str, Any]:
        idx = _block_accounts(block, n_accounts)
        annual_spend = _latent_annual_spend(block, idx.size, seed, truth)
        rng = _rng(seed, "targets", block)
        stretch = rng.lognormal(0.1, 0.3, idx.size)
        return {
            "account_id": _account_id(idx),
            "target": np.maximum(np.round(annual_spend * stretch, -1), 10.0),
        }

    return _generate(spark, n_accounts, "account_id string, target double", make)
