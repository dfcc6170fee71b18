"""``synthetic_portfolio``: schemas, determinism and the documented generative truth."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import functions as F

from kamlib.classify import concentration
from kamlib.datasets import Portfolio, synthetic_portfolio
from kamlib.datasets._portfolio import generate_portfolio
from kamlib.errors import SchemaError
from kamlib.nps import nps
from kamlib.retention import retention_rates

N = 3_000
SEED = 11
YEARS = (2023, 2024, 2025)

SCHEMAS = {
    "contracts": [
        ("contract_id", "string"),
        ("account_id", "string"),
        ("product", "string"),
        ("start_date", "date"),
        ("end_date", "date"),
        ("amount", "double"),
        ("interval_months", "int"),
    ],
    "transactions": [
        ("account_id", "string"),
        ("order_date", "date"),
        ("amount", "double"),
        ("product", "string"),
    ],
    "products": [("product", "string"), ("category", "string"), ("list_price", "double")],
    "surveys": [("account_id", "string"), ("response_date", "date"), ("score", "double")],
    "wallets": [
        ("account_id", "string"),
        ("wallet", "double"),
        ("region", "string"),
        ("industry", "string"),
        ("n_brands", "int"),
        ("brand_rank", "int"),
    ],
    "targets": [("account_id", "string"), ("target", "double")],
    "hierarchy": [("account_id", "string"), ("parent_id", "string")],
}


@pytest.fixture(scope="module")
def pf(spark) -> Portfolio:
    return synthetic_portfolio(spark, N, seed=SEED)


@pytest.fixture(scope="module")
def tx_pd(pf) -> pd.DataFrame:
    return pf.transactions.toPandas()


def _reference_rates(tx: pd.DataFrame) -> dict[int, tuple[float, float]]:
    """GRR = sum_a min(R_{a,t-1}, R_{a,t}) / S_t, NRR = sum_a R_{a,t} / S_t over R_{a,t-1} > 0."""
    year = pd.to_datetime(tx["order_date"]).dt.year
    rev: dict[tuple[str, int], float] = {}
    for acc, y, amt in zip(tx["account_id"], year, tx["amount"], strict=True):
        rev[(acc, y)] = rev.get((acc, y), 0.0) + amt
    out = {}
    for y in YEARS:
        start = retained = ending = 0.0
        for (acc, yy), prev in rev.items():
            if yy != y - 1 or prev <= 0:
                continue
            cur = rev.get((acc, y), 0.0)
            start += prev
            retained += min(prev, cur)
            ending += cur
        out[y] = (retained / start, ending / start)
    return out


def test_schemas(pf):
    for name, expected in SCHEMAS.items():
        df = getattr(pf, name)
        assert [(f.name, f.dataType.simpleString()) for f in df.schema.fields] == expected, name


def test_contract_and_invoice_consistency(pf, tx_pd):
    contracts = pf.contracts.toPandas()
    assert set(contracts["interval_months"]) == {1, 3, 12}
    assert contracts["end_date"].isna().any()  # open-ended monthly contracts
    assert (contracts["amount"] > 0).all()
    closed = contracts.dropna(subset=["end_date"])
    assert (closed["end_date"] > closed["start_date"]).all()
    assert contracts["contract_id"].is_unique
    assert tx_pd["order_date"].min() >= dt.date(2022, 1, 1)
    assert tx_pd["order_date"].max() < dt.date(2026, 1, 1)
    # Every invoice is one contract's billing amount, for a product the account holds.
    cols = [contracts[c] for c in ("account_id", "product", "amount")]
    pairs = set(zip(*cols, strict=True))
    assert all(
        p in pairs for p in zip(tx_pd["account_id"], tx_pd["product"], tx_pd["amount"], strict=True)
    )
    # Multi-product: many accounts hold more than one product line.
    n_products = contracts.groupby("account_id")["product"].nunique()
    assert (n_products >= 2).mean() > 0.4
    assert pf.products.count() == 5
    hierarchy = pf.hierarchy.toPandas()
    parents = set(hierarchy["parent_id"].dropna())
    assert 10 <= len(parents) <= N // 10
    assert not parents & set(hierarchy.loc[hierarchy["parent_id"].notna(), "account_id"])


def test_retention_ranges_with_kamlib_and_reference(pf, tx_pd):
    rates = retention_rates(pf.transactions, period="year").orderBy("period").collect()
    by_year = {r["period"].year: (r["grr"], r["nrr"]) for r in rates}
    reference = _reference_rates(tx_pd)
    for y in YEARS:
        grr, nrr = by_year[y]
        assert 0.85 <= grr <= 0.95, (y, grr)
        assert 1.00 <= nrr <= 1.20, (y, nrr)
        assert grr == pytest.approx(reference[y][0], rel=1e-9)
        assert nrr == pytest.approx(reference[y][1], rel=1e-9)
    # Expansion comes from both seat growth (upsell) and new products (cross-sell).
    cross = retention_rates(pf.transactions, period="year", product_col="product").collect()
    assert sum(r["expansion_cross_sell_revenue"] for r in cross) > 0
    assert sum(r["upsell_revenue"] for r in cross) > 0


def test_pareto_share_and_nps(pf, tx_pd):
    revenue = pf.transactions.groupBy("account_id").agg(F.sum("amount").alias("amount"))
    share = concentration(revenue, top_share=0.2).first()["top_share_value"]
    assert 0.70 <= share <= 0.85
    totals = np.sort(tx_pd.groupby("account_id")["amount"].sum().to_numpy())[::-1]
    k = int(np.ceil(0.2 * totals.size))
    assert totals[:k].sum() / totals.sum() == pytest.approx(share, rel=1e-9)
    score = nps(pf.surveys).first()["nps"]
    assert 20 <= score <= 40
    s = pf.surveys.toPandas()["score"]
    assert 100 * ((s >= 9).mean() - (s <= 6).mean()) == pytest.approx(score, rel=1e-9)


def test_same_seed_same_data_and_other_seed_differs(spark):
    a = generate_portfolio(300, 5)
    b = generate_portfolio(300, 5)
    c = generate_portfolio(300, 6)
    for name in a:
        for col in a[name]:
            assert np.array_equal(
                np.asarray(a[name][col], dtype=object), np.asarray(b[name][col], dtype=object)
            ), (name, col)
    assert not np.array_equal(a["transactions"]["amount"][:50], c["transactions"]["amount"][:50])
    left = synthetic_portfolio(spark, 300, seed=5).transactions
    right = synthetic_portfolio(spark, 300, seed=5).transactions
    assert left.exceptAll(right).count() == 0
    assert right.exceptAll(left).count() == 0


@pytest.mark.parametrize("n", [1, 2, 5])
def test_tiny_books_generate(spark, n):
    for seed in range(10):  # books so small that some tables are empty
        data = generate_portfolio(n, seed)
        assert set(data["hierarchy"]["account_id"]) == {f"A{i:08d}" for i in range(n)}
        assert set(data["contracts"]["account_id"]) <= set(data["hierarchy"]["account_id"])
    pf = synthetic_portfolio(spark, n, seed=0)
    assert pf.hierarchy.count() == n


def test_bad_arguments(spark):
    with pytest.raises(SchemaError, match="n_accounts"):
        synthetic_portfolio(spark, 0, seed=1)
    with pytest.raises(SchemaError, match="seed"):
        synthetic_portfolio(spark, 10, seed=-1)
