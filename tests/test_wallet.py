"""kamlib.wallet: share of wallet and the Wallet Allocation Rule vs pure-Python references."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kamlib import SchemaError
from kamlib.testing import assert_approx_rows, rows_by_key, stack_cases, to_dataframe
from kamlib.testing.strategies import WALLET_SCHEMA, wallets
from kamlib.wallet import share_of_wallet, wallet_allocation_rule
from tests.reference import wallet as ref


@settings(max_examples=5)
@given(cases=st.lists(wallets(max_rows=15), min_size=1, max_size=20))
def test_share_of_wallet_matches_reference(spark, cases):
    rows = stack_cases(cases)
    extra = [
        {"case": -1, "account_id": "nan", "spend": math.nan, "wallet": 10.0},
        {"case": -1, "account_id": "over", "spend": 15.0, "wallet": 10.0},
        {"case": -1, "account_id": "neg", "spend": -3.0, "wallet": 10.0},
    ]
    df = to_dataframe(spark, rows + extra, f"case int, {WALLET_SCHEMA}")
    out = share_of_wallet(df)
    assert out.columns == [*df.columns, "share_of_wallet", "wallet_headroom"]
    actual = rows_by_key(out, ["case", "account_id"])
    expected = {
        (r["case"], r["account_id"]): ref.share_of_wallet(r["spend"], r["wallet"])
        for r in rows + extra
    }
    assert_approx_rows(actual, expected, rtol=1e-12)
    assert actual[(-1, "over")]["share_of_wallet"] == 1.5
    assert actual[(-1, "over")]["wallet_headroom"] == 0.0


rank_values = st.one_of(
    st.integers(-1, 8).map(float), st.none(), st.sampled_from([1.5, math.nan, math.inf])
)


@settings(max_examples=5)
@given(pairs=st.lists(st.tuples(rank_values, rank_values), min_size=1, max_size=60))
def test_wallet_allocation_rule_matches_reference(spark, pairs):
    rows = [{"id": i, "brand_rank": r, "n_brands": n} for i, (r, n) in enumerate(pairs)]
    df = to_dataframe(spark, rows, "id int, brand_rank double, n_brands double")
    actual = rows_by_key(wallet_allocation_rule(df), "id")
    expected = {
        r["id"]: {"estimated_share_of_wallet": ref.war(r["brand_rank"], r["n_brands"])}
        for r in rows
    }
    assert_approx_rows(actual, expected, rtol=1e-12)


@pytest.mark.connect
def test_war_sums_to_one_and_published_values(spark):
    rows = [
        {"brand_rank": r, "n_brands": n, "name": f"{n}-{r}"}
        for n in range(1, 16)
        for r in range(0, n + 2)
    ]
    df = to_dataframe(spark, rows, "brand_rank int, n_brands int, name string")
    out = rows_by_key(wallet_allocation_rule(df), "name")
    for n in range(1, 16):
        total = sum(out[f"{n}-{r}"]["estimated_share_of_wallet"] for r in range(1, n + 1))
        assert total == pytest.approx(1.0, abs=1e-12)
        assert out[f"{n}-0"]["estimated_share_of_wallet"] is None
        assert out[f"{n}-{n + 1}"]["estimated_share_of_wallet"] is None
        shares = [out[f"{n}-{r}"]["estimated_share_of_wallet"] for r in range(1, n + 1)]
        assert shares == sorted(shares, reverse=True)
    # Keiningham et al. (2011): one brand 100%; two brands 67% / 33%; three 50% / 33% / 17%.
    assert out["1-1"]["estimated_share_of_wallet"] == pytest.approx(1.0)
    assert out["2-1"]["estimated_share_of_wallet"] == pytest.approx(2 / 3)
    assert out["2-2"]["estimated_share_of_wallet"] == pytest.approx(1 / 3)
    assert [round(out[f"3-{r}"]["estimated_share_of_wallet"], 3) for r in (1, 2, 3)] == [
        0.5,
        0.333,
        0.167,
    ]


@pytest.mark.connect
def test_share_of_wallet_example(spark):
    df = to_dataframe(
        spark,
        [
            {"account_id": "a", "spend": 30, "wallet": 120},
            {"account_id": "b", "spend": 50, "wallet": 0},
            {"account_id": "c", "spend": 10, "wallet": -4},
            {"account_id": "d", "spend": None, "wallet": 10},
        ],
        "account_id string, spend int, wallet int",
    )
    out = rows_by_key(share_of_wallet(df), "account_id")
    assert out["a"]["share_of_wallet"] == 0.25
    assert out["a"]["wallet_headroom"] == 90.0
    assert out["b"]["share_of_wallet"] is None
    assert out["c"]["share_of_wallet"] is None
    assert out["c"]["wallet_headroom"] == 0.0
    assert out["d"]["share_of_wallet"] is None
    assert out["d"]["wallet_headroom"] is None


def test_wallet_schema_errors(spark):
    df = to_dataframe(
        spark,
        [{"spend": 1.0, "wallet": 2.0, "label": "x", "brand_rank": 1, "n_brands": 2}],
        "spend double, wallet double, label string, brand_rank int, n_brands int",
    )
    with pytest.raises(SchemaError, match=r"share_of_wallet\(\): column 'walet'.*'wallet'"):
        share_of_wallet(df, wallet_col="walet")
    with pytest.raises(SchemaError, match="column 'label' must be numeric, found string"):
        share_of_wallet(df, spend_col="label")
    with pytest.raises(SchemaError, match=r"wallet_allocation_rule\(\): column 'rank'"):
        wallet_allocation_rule(df, rank_col="rank")
    with pytest.raises(SchemaError, match="n_brands_col="):
        wallet_allocation_rule(df, n_brands_col="brands")
    with pytest.raises(SchemaError, match="column 'label' must be numeric"):
        wallet_allocation_rule(df, n_brands_col="label")
