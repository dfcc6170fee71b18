"""A realistic B2B key-account portfolio: contracts, invoices and companion tables.

Generated with numpy on the driver (a seeded :class:`numpy.random.Generator`, fully
vectorised) and handed to Spark through Arrow: it is a dataset generator meant for up to
about 50,000 accounts (20,000 accounts take a few seconds).
"""

from __future__ import annotations

import datetime as _dt
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from kamlib.datasets._synthetic import _check_args

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

__all__ = ["PORTFOLIO_END", "PORTFOLIO_START", "Portfolio", "synthetic_portfolio"]

#: First day of the generated window (the first contracts start in this month).
PORTFOLIO_START = _dt.date(2022, 1, 1)
#: First day after the generated window: no invoice is dated on or after it.
PORTFOLIO_END = _dt.date(2026, 1, 1)
_MONTHS = 48
_TERMS = 5  # 12-month terms per account: enough to cover the window from any birth month

# product, category, list price per seat-month, adoption probability per renewal, drop rate
_PRODUCTS: tuple[tuple[str, str, float, float, float], ...] = (
    ("core", "platform", 1.00, 1.00, 0.00),
    ("analytics", "platform", 0.45, 0.22, 0.03),
    ("support", "service", 0.25, 0.20, 0.04),
    ("integration", "platform", 0.35, 0.12, 0.03),
    ("training", "service", 0.10, 0.10, 0.08),
)
_REGIONS = np.array(["EMEA", "Americas", "APAC"])
_INDUSTRIES = np.array(["Manufacturing", "Retail", "Finance", "Healthcare", "Technology"])

CONTRACTS_DDL = (
    "contract_id string, account_id string, product string, start_date date, end_date date, "
    "amount double, interval_months int"
)
TRANSACTIONS_DDL = "account_id string, order_date date, amount double, product string"
PRODUCTS_DDL = "product string, category string, list_price double"
SURVEYS_DDL = "account_id string, response_date date, score double"
WALLETS_DDL = (
    "account_id string, wallet double, region string, industry string, n_brands int, brand_rank int"
)
TARGETS_DDL = "account_id string, target double"
HIERARCHY_DDL = "account_id string, parent_id string"


class Portfolio(NamedTuple):
    """The tables of :func:`synthetic_portfolio` (Spark DataFrames)."""

    contracts: DataFrame
    transactions: DataFrame
    products: DataFrame
    surveys: DataFrame
    wallets: DataFrame
    targets: DataFrame
    hierarchy: DataFrame


def _ids(index: np.ndarray) -> np.ndarray:
    if index.size == 0:  # np.char.zfill cannot size an empty array
        return np.array([], dtype="<U9")
    return np.char.add("A", np.char.zfill(index.astype(str), 8))


def _month_dates(months: np.ndarray) -> np.ndarray:
    """Month offsets from PORTFOLIO_START -> numpy ``datetime64[D]`` first days of month."""
    base = np.datetime64(PORTFOLIO_START.isoformat(), "M")
    return (base + months.astype("timedelta64[M]")).astype("datetime64[D]")


def generate_portfolio(n_accounts: int, seed: int) -> dict[str, dict[str, Any]]:
    """The portfolio as plain numpy columns (the pure core of :func:`synthetic_portfolio`)."""
    rng = np.random.default_rng([int(seed), 15])
    n = int(n_accounts)
    # The steps draw from ``rng`` in this order: reordering them changes the data.
    accounts = _draw_accounts(rng, n)
    terms = _draw_terms(rng, accounts)
    contracts = _contracts(terms)
    transactions = _invoices(contracts, terms)
    surveys = _draw_surveys(rng, accounts)
    wallets = _draw_wallets(rng, accounts)
    targets = _draw_targets(rng, accounts)
    hierarchy = _draw_hierarchy(rng, n)
    return {
        "contracts": contracts,
        "transactions": transactions,
        "products": _products(),
        "surveys": surveys,
        "wallets": wallets,
        "targets": targets,
        "hierarchy": hierarchy,
    }


class _Accounts(NamedTuple):
    """Per-account draws of :func:`generate_portfolio` (indexed by account number)."""

    seats: np.ndarray
    price: np.ndarray
    birth: np.ndarray
    survived: np.ndarray
    interval: np.ndarray
    growth: np.ndarray


class _Terms(NamedTuple):
    """The active contract terms: account, product, term index, start month and billing."""

    a: np.ndarray
    p: np.ndarray
    k: np.ndarray
    start_m: np.ndarray
    iv: np.ndarray
    amount: np.ndarray
    last: np.ndarray


def _list_price() -> np.ndarray:
    return np.array([p[2] for p in _PRODUCTS])


def _draw_accounts(rng: np.random.Generator, n: int) -> _Accounts:
    """Size, price, birth month, terms survived, billing interval and seat growth."""
    # Account size: lognormal seats (heavy right tail -> Pareto-like revenue concentration).
    seats = np.exp(rng.normal(3.0, 1.45, n))
    price = rng.lognormal(np.log(40.0), 0.2, n)  # per seat-month on core, per account
    # Birth month: 45% are the existing book (first term starts in the first year of the
    # window), the rest are new logos acquired uniformly over the window.
    existing = rng.random(n) < 0.45
    birth = np.where(existing, rng.integers(-12, 0, n), rng.integers(0, _MONTHS, n))
    # Terms survived before logo churn (churn at a renewal date): Geometric(p_churn).
    p_churn = np.where(seats > np.quantile(seats, 0.8), 0.06, 0.14)
    survived = rng.geometric(p_churn)  # >= 1 term
    interval = rng.choice(np.array([12, 1, 3]), n, p=[0.6, 0.3, 0.1])
    # Seat growth per renewal (per account, shared by its products).
    growth = np.exp(np.cumsum(rng.normal(0.08, 0.10, (n, _TERMS)), axis=1))
    growth[:, 0] = 1.0
    return _Accounts(seats, price, birth, survived, interval, growth)


def _draw_terms(rng: np.random.Generator, acc: _Accounts) -> _Terms:
    """Product adoption and drop terms, then the (account, product, term) rows in the window."""
    n, n_prod = acc.seats.size, len(_PRODUCTS)
    adopt_p = np.array([p[3] for p in _PRODUCTS])
    drop_p = np.array([p[4] for p in _PRODUCTS])
    # Term at which each product is adopted (core: term 0; others Geometric - 1, some at 0).
    adopt = rng.geometric(adopt_p, (n, n_prod)) - 1
    adopt[:, 0] = 0
    initial = rng.random((n, n_prod)) < 0.25
    adopt = np.where(initial, 0, adopt)
    drop = adopt + rng.geometric(np.maximum(drop_p, 1e-9), (n, n_prod))
    drop[:, 0] = _TERMS + 1

    grid = np.meshgrid(np.arange(n), np.arange(n_prod), np.arange(_TERMS), indexing="ij")
    a, p, k = grid[0].ravel(), grid[1].ravel(), grid[2].ravel()
    start_m = acc.birth[a] + 12 * k
    active = (
        (k < acc.survived[a])
        & (k >= adopt[a, p])
        & (k < drop[a, p])
        & (start_m < _MONTHS)
        & (start_m + 12 > 0)
    )
    a, p, k, start_m = a[active], p[active], k[active], start_m[active]
    iv = acc.interval[a]
    monthly = np.round(acc.seats[a] * acc.growth[a, k] * acc.price[a] * _list_price()[p], 2)
    amount = np.round(monthly * iv, 2)
    # A term is the last one when the account churns after it or the product is dropped
    # after it.
    last = (k + 1 >= acc.survived[a]) | (k + 1 >= drop[a, p])
    return _Terms(a, p, k, start_m, iv, amount, last)


def _contracts(terms: _Terms) -> dict[str, Any]:
    """One contract per term; an ongoing monthly term in the last year is open-ended."""
    a, p, k, start_m, iv = terms.a, terms.p, terms.k, terms.start_m, terms.iv
    ongoing = (~terms.last) & (start_m + 12 >= _MONTHS)
    open_ended = ongoing & (iv == 1)
    start = _month_dates(start_m)
    end = _month_dates(start_m + 12)
    return {
        "contract_id": np.char.add(
            np.char.add(_ids(a), "-"), np.char.add(np.char.add(p.astype(str), "-"), k.astype(str))
        ),
        "account_id": _ids(a),
        "product": np.array([q[0] for q in _PRODUCTS])[p],
        "start_date": start,
        "end_date": np.where(open_ended, np.datetime64("NaT"), end),
        "amount": terms.amount,
        "interval_months": iv.astype("int32"),
    }


def _invoices(contracts: dict[str, Any], terms: _Terms) -> dict[str, Any]:
    """One invoice per billing interval of each term, dated before PORTFOLIO_END."""
    start_m, iv = terms.start_m, terms.iv
    per_term = 12 // iv
    owner = np.repeat(np.arange(terms.a.size), per_term)
    offset = np.arange(owner.size) - np.repeat(np.cumsum(per_term) - per_term, per_term)
    inv_m = start_m[owner] + offset * iv[owner]
    keep = (inv_m >= 0) & (inv_m < _MONTHS)
    owner, inv_m = owner[keep], inv_m[keep]
    return {
        "account_id": contracts["account_id"][owner],
        "order_date": _month_dates(inv_m),
        "amount": terms.amount[owner],
        "product": contracts["product"][owner],
    }


def _products() -> dict[str, Any]:
    return {
        "product": np.array([q[0] for q in _PRODUCTS]),
        "category": np.array([q[1] for q in _PRODUCTS]),
        "list_price": _list_price() * 40.0,
    }


def _draw_surveys(rng: np.random.Generator, acc: _Accounts) -> dict[str, Any]:
    """0-3 NPS responses per account while it is a customer (NPS ~ +30)."""
    n = acc.seats.size
    birth, survived = acc.birth, acc.survived
    # Latent satisfaction -> ~45% promoters, ~15% detractors; churning accounts answer lower.
    n_resp = rng.integers(0, 4, n)
    who = np.repeat(np.arange(n), n_resp)
    churner = survived * 12 + birth < _MONTHS + 12
    latent = rng.normal(8.5, 1.0, n) - 0.8 * churner
    score = np.clip(np.rint(latent[who] + rng.normal(0.0, 1.1, who.size)), 0, 10)
    first_m = np.maximum(birth[who], 0)
    last_m = np.minimum(birth[who] + 12 * survived[who], _MONTHS)
    resp_m = first_m + np.floor(rng.random(who.size) * np.maximum(last_m - first_m, 1))
    resp_day = _month_dates(resp_m.astype(np.int64)) + rng.integers(0, 28, who.size).astype(
        "timedelta64[D]"
    )
    return {"account_id": _ids(who), "response_date": resp_day, "score": score}


def _draw_wallets(rng: np.random.Generator, acc: _Accounts) -> dict[str, Any]:
    """The account's potential annual spend on the category (share of wallet 15-80%)."""
    n = acc.seats.size
    potential = acc.seats * acc.price * _list_price().sum() * 12.0
    share = rng.beta(2.5, 3.0, n)
    wallets = {
        "account_id": _ids(np.arange(n)),
        "wallet": np.round(potential / np.clip(share, 0.15, 0.8), 2),
        "region": _REGIONS[rng.integers(0, _REGIONS.size, n)],
        "industry": _INDUSTRIES[rng.integers(0, _INDUSTRIES.size, n)],
        "n_brands": rng.integers(1, 6, n).astype("int32"),
        "brand_rank": rng.integers(1, 4, n).astype("int32"),
    }
    wallets["brand_rank"] = np.minimum(wallets["brand_rank"], wallets["n_brands"])
    return wallets


def _draw_targets(rng: np.random.Generator, acc: _Accounts) -> dict[str, Any]:
    """Annual targets: current run-rate (core seats x price x adopted mix) times a stretch."""
    n = acc.seats.size
    acct = np.arange(n)
    grown = acc.growth[acct, np.clip((_MONTHS - acc.birth) // 12, 0, 4)]
    run_rate = acc.seats * acc.price * 12.0 * grown
    return {
        "account_id": _ids(acct),
        "target": np.maximum(np.round(run_rate * rng.lognormal(0.35, 0.25, n), -1), 10.0),
    }


def _draw_hierarchy(rng: np.random.Generator, n: int) -> dict[str, Any]:
    """~3% of accounts are parents; ~15% of the others are their subsidiaries."""
    n_parents = max(1, n // 33)
    parents = rng.choice(n, n_parents, replace=False)
    is_parent = np.zeros(n, dtype=bool)
    is_parent[parents] = True
    child = (~is_parent) & (rng.random(n) < 0.15)
    parent_of = np.full(n, -1)
    parent_of[child] = parents[rng.integers(0, n_parents, int(child.sum()))]
    return {
        "account_id": _ids(np.arange(n)),
        "parent_id": np.where(
            parent_of >= 0, _ids(np.maximum(parent_of, 0)).astype(object), np.array(None)
        ),
    }


def _frame(spark: SparkSession, data: dict[str, Any], ddl: str) -> DataFrame:
    """Turn numpy columns into a pyarrow Table -> ``spark.createDataFrame`` (Arrow path)."""
    import pyarrow as pa
    from pyspark.sql.pandas.types import to_arrow_schema
    from pyspark.sql.types import StructType

    spark_schema = StructType.fromDDL(ddl)
    assert isinstance(spark_schema, StructType)
    schema = to_arrow_schema(spark_schema)
    arrays = []
    for field in schema:
        values = np.asarray(data[field.name])
        if values.dtype.kind == "M":
            arrays.append(pa.array(values.astype("datetime64[D]"), type=pa.date32()))
        elif values.dtype == object:
            arrays.append(pa.array(values.tolist(), type=field.type))
        else:
            arrays.append(pa.array(values, type=field.type))
    table = pa.Table.from_arrays(arrays, schema=schema)
    return spark.createDataFrame(table, schema=spark_schema)


def synthetic_portfolio(spark: SparkSession, n_accounts: int, *, seed: int = 0) -> Portfolio:
    """Generate a B2B key-account portfolio with a documented generative truth.

    The window is 2022-01-01 .. 2025-12-31 (48 months); score it ``as_of="2026-01-01"``.
    Accounts ``A00000000``, ``A00000001``, ... buy 12-month contract terms per product that
    renew at each anniversary until the account churns.

    ==========================  ==============================================================
    Property                    Generative truth
    ==========================  ==============================================================
    Account size                seats ~ LogNormal(3, 1.45), price ~ LogNormal(log 40, 0.2):
                                the top 20% of accounts hold ~70-85% of revenue
    Acquisition                 45% existing book (signed in 2021, renewing in 2022), the
                                rest new logos uniformly over the 48 months
    Billing                     interval 12 (60%), 1 (30%) or 3 (10%) months per account; one
                                invoice of ``amount`` per interval (``amount / interval`` MRR)
    Renewals                    one contract row per 12-month term; ``end_date`` = the renewal
                                date (exclusive); an ongoing monthly term is open-ended (null)
    Logo churn                  at a renewal, Geometric: 14% per year (6% for the top 20%)
    Seat growth                 x exp(N(0.08, 0.10)) per renewal, shared by the products
    Cross-sell                  analytics / support / integration / training adopted at a
                                renewal with probability 22% / 20% / 12% / 10% (25% of them at
                                the start); dropped at a renewal with 3-8%
    Retention (annual revenue)  GRR 85-95%, NRR 100-120% with
                                :func:`kamlib.retention.retention_rates` (``period="year"``)
    NPS                         0-3 responses per account, about 45% promoters and 15%
                                detractors: NPS ~ +30 (churning accounts score lower)
    Wallet / targets            potential spend / Beta(2.5, 3) share; target = run rate x
                                LogNormal(0.35, 0.25)
    Hierarchy                   ~3% of accounts are parents, ~15% of the rest subsidiaries
    ==========================  ==============================================================

    Parameters
    ----------
    spark : pyspark.sql.SparkSession
        Session (classic or Spark Connect) to create the DataFrames in.
    n_accounts : int
        Number of accounts (driver-side generation: meant for up to ~50,000).
    seed : int
        Random seed; the same ``(n_accounts, seed)`` always gives the same rows.

    Returns
    -------
    Portfolio
        ``contracts`` (contract_id, account_id, product, start_date, end_date, amount,
        interval_months), ``transactions`` (invoices: account_id, order_date, amount,
        product), ``products`` (product, category, list_price), ``surveys`` (account_id,
        response_date, score 0-10), ``wallets`` (as :func:`synthetic_wallets`), ``targets``
        (account_id, target) and ``hierarchy`` (account_id, parent_id; null for top level).

    Examples
    --------
    >>> from kamlib.datasets import synthetic_portfolio
    >>> pf = synthetic_portfolio(spark, 200, seed=1)
    >>> pf.contracts.columns[:3]
    ['contract_id', 'account_id', 'product']
    """
    _check_args("synthetic_portfolio", n_accounts, seed)
    data = generate_portfolio(n_accounts, seed)
    ddl = {
        "contracts": CONTRACTS_DDL,
        "transactions": TRANSACTIONS_DDL,
        "products": PRODUCTS_DDL,
        "surveys": SURVEYS_DDL,
        "wallets": WALLETS_DDL,
        "targets": TARGETS_DDL,
        "hierarchy": HIERARCHY_DDL,
    }
    return Portfolio(**{name: _frame(spark, data[name], ddl[name]) for name in Portfolio._fields})
