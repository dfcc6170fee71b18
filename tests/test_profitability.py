"""kamlib.profitability: account profitability against a plain-Python reference."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kamlib import SchemaError
from kamlib.profitability import account_profitability
from kamlib.testing import assert_approx_rows, rows_by_key, stack_cases, to_dataframe
from tests.reference import profitability as ref

SCHEMA = "account_id string, revenue double, cost double, cts double"
CASE_SCHEMA = "case int, " + SCHEMA
COLS = [
    "revenue",
    "cost",
    "cost_to_serve",
    "gross_profit",
    "gross_margin",
    "net_contribution",
    "net_margin",
    "excluded_rows",
    "profit_rank",
    "margin_percentile",
    "cumulative_contribution_share",
]


@st.composite
def lines(draw):
    money = st.integers(-50, 500).map(float)
    maybe = st.one_of(money, money, money, money, st.none())
    row = st.fixed_dictionaries(
        {
            "account_id": st.sampled_from(["a", "b", "c", "d", "e"]),
            "revenue": maybe,
            "cost": maybe,
            "cts": maybe,
        }
    )
    return draw(st.lists(row, max_size=15))


@settings(max_examples=5)
@given(cases=st.lists(lines(), min_size=1, max_size=30), with_cts=st.booleans())
def test_matches_reference_many_cases(spark, cases, with_cts):
    data = stack_cases(cases)
    df = to_dataframe(spark, data, CASE_SCHEMA)
    cts = "cts" if with_cts else None
    got = rows_by_key(
        account_profitability(df, cost_to_serve_col=cts, by="case"), ["case", "account_id"]
    )
    want = ref.account_profitability(data, cost_to_serve_col=cts, by="case")
    assert_approx_rows(got, want, columns=COLS, atol=1e-9)
    for r in got.values():
        assert r["net_contribution"] <= r["gross_profit"] + 1e-9 or r["cost_to_serve"] < 0
        if r["gross_margin"] is not None:
            assert r["revenue"] > 0
        if r["margin_percentile"] is not None:
            assert 0.0 <= r["margin_percentile"] <= 1.0
    # the whale curve ends at exactly 1 when the group's total contribution is positive
    by_case: dict[int, list[dict]] = {}
    for (case, _), r in got.items():
        by_case.setdefault(case, []).append(r)
    for rs in by_case.values():
        last = max(rs, key=lambda r: r["profit_rank"])
        assert sorted(r["profit_rank"] for r in rs) == list(range(1, len(rs) + 1))
        if last["cumulative_contribution_share"] is not None:
            assert math.isclose(last["cumulative_contribution_share"], 1.0, rel_tol=1e-9)


@pytest.mark.connect
def test_worked_example(spark):
    df = to_dataframe(
        spark,
        [
            {"account_id": "big", "revenue": 1000.0, "cost": 700.0, "cts": 250.0},
            {"account_id": "mid", "revenue": 400.0, "cost": 200.0, "cts": 20.0},
            {"account_id": "mid", "revenue": -100.0, "cost": -60.0, "cts": 0.0},
            {"account_id": "small", "revenue": 50.0, "cost": 20.0, "cts": 80.0},
            {"account_id": "refund", "revenue": -30.0, "cost": 0.0, "cts": 5.0},
            {"account_id": "small", "revenue": None, "cost": 5.0, "cts": 0.0},
        ],
        SCHEMA,
    )
    got = rows_by_key(account_profitability(df, cost_to_serve_col="cts"), "account_id")
    mid, big, small, refund = got["mid"], got["big"], got["small"], got["refund"]
    assert (mid["revenue"], mid["cost"], mid["gross_profit"]) == (300.0, 140.0, 160.0)
    assert mid["gross_margin"] == pytest.approx(160 / 300)
    assert mid["net_contribution"] == 140.0
    assert big["net_contribution"] == 50.0
    assert small["net_contribution"] == -50.0
    assert small["excluded_rows"] == 1
    assert refund["gross_margin"] is None
    assert refund["net_margin"] is None
    assert refund["margin_percentile"] is None
    assert [got[a]["profit_rank"] for a in ("mid", "big", "refund", "small")] == [1, 2, 3, 4]
    total = 140 + 50 - 35 - 50
    assert mid["cumulative_contribution_share"] == pytest.approx(140 / total)
    assert big["cumulative_contribution_share"] == pytest.approx(190 / total)
    assert small["cumulative_contribution_share"] == pytest.approx(1.0)
    # margins: small -1.0 < big 0.05 < mid 0.4667
    assert (small["margin_percentile"], big["margin_percentile"], mid["margin_percentile"]) == (
        0.0,
        0.5,
        1.0,
    )


def test_without_cost_to_serve_and_with_by(spark):
    df = spark.createDataFrame(
        [("x", "n", 10, 4), ("y", "n", 10, 6), ("x", "s", 5, 5)],
        "acct string, region string, rev int, cogs int",
    )
    out = account_profitability(
        df, account_col="acct", revenue_col="rev", cost_col="cogs", by="region"
    )
    assert out.columns[:2] == ["region", "acct"]
    got = rows_by_key(out, ["region", "acct"])
    assert got[("n", "x")]["net_contribution"] == got[("n", "x")]["gross_profit"] == 6.0
    assert got[("n", "x")]["cost_to_serve"] == 0.0
    assert got[("n", "x")]["profit_rank"] == 1
    assert got[("s", "x")]["profit_rank"] == 1
    assert got[("s", "x")]["cumulative_contribution_share"] is None  # total profit 0
    assert got[("s", "x")]["margin_percentile"] == 0.0


def test_empty_input(spark):
    out = account_profitability(to_dataframe(spark, [], SCHEMA))
    assert out.count() == 0
    assert "net_contribution" in out.columns


@pytest.mark.connect
def test_bad_input(spark):
    df = to_dataframe(spark, [{"account_id": "a", "revenue": 1.0, "cost": 0.5}], SCHEMA)
    with pytest.raises(SchemaError, match=r"column 'price' \(argument revenue_col=\) not found"):
        account_profitability(df, revenue_col="price")
    with pytest.raises(SchemaError, match=r"column 'cost' must be numeric, found string"):
        account_profitability(df.withColumn("cost", df["cost"].cast("string")))
    with pytest.raises(SchemaError, match=r"'region' \(argument by=\) not found"):
        account_profitability(df, by="region")
    with pytest.raises(SchemaError, match="must not contain the account column"):
        account_profitability(df, by="account_id")
    with pytest.raises(SchemaError, match="'cost_to_serve' clashes with an output column"):
        account_profitability(df.withColumnRenamed("cts", "cost_to_serve"), by="cost_to_serve")
    with pytest.raises(SchemaError, match=r"argument cost_to_serve_col="):
        account_profitability(df, cost_to_serve_col="nope")
