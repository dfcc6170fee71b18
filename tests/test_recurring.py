"""kamlib.recurring and kamlib.hierarchy against the pure-Python references."""

from __future__ import annotations

import datetime as dt
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kamlib import SchemaError
from kamlib.classify import classify_accounts
from kamlib.hierarchy import roll_up, ultimate_parents
from kamlib.recurring import cohort_retention, contract_mrr, mrr_bridge, mrr_movements
from kamlib.testing import assert_approx_rows, rows_by_key, stack_cases, to_dataframe
from tests.reference import recurring as ref

CONTRACTS = (
    "case int, account_id string, start_date date, end_date date, amount double, "
    "interval_months int, product string"
)
MRR_SCHEMA = "case int, account_id string, month date, mrr double"
TX_SCHEMA = "case int, account_id string, order_date date, amount double"
BRIDGE_COLS = [
    "starting_mrr",
    "new_mrr",
    "reactivation_mrr",
    "expansion_mrr",
    "contraction_mrr",
    "churned_mrr",
    "ending_mrr",
    "grr",
    "nrr",
    "quick_ratio",
    "arr",
    "paying_accounts",
    "arpa",
    "excluded_rows",
]
COHORT_COLS = [
    "cohort_accounts",
    "active_accounts",
    "revenue",
    "logo_retention",
    "revenue_retention",
    "excluded_rows",
]


def d(y: int, m: int, day: int = 1) -> dt.date:
    return dt.date(y, m, day)


@st.composite
def contract_rows(draw):
    base = d(2023, 1, 1)
    day = st.integers(0, 500).map(lambda k: base + dt.timedelta(days=k))
    row = st.fixed_dictionaries(
        {
            "account_id": st.sampled_from(["a", "b", "c", None]),
            "start_date": st.one_of(day, day, day, day, st.none()),
            "end_date": st.one_of(day, st.none()),
            "amount": st.one_of(
                st.integers(0, 1200).map(float),
                st.integers(0, 1200).map(float),
                st.sampled_from([-5.0, float("inf"), float("nan"), None]),
            ),
            "interval_months": st.sampled_from([1, 1, 3, 12, 12, 5, 0, -1, None]),
            "product": st.sampled_from(["p1", "p2"]),
        }
    )
    rows = draw(st.lists(row, min_size=0, max_size=8))
    if rows and draw(st.booleans()):
        rows.append(dict(rows[0]))  # an exact duplicate
    return rows


@st.composite
def mrr_rows(draw):
    month = st.integers(0, 14).map(lambda k: d(2023 + k // 12, k % 12 + 1))
    row = st.fixed_dictionaries(
        {
            "account_id": st.sampled_from(["a", "b", "c", "d", None]),
            "month": st.one_of(month, month, month, month, st.none()),
            "mrr": st.one_of(st.integers(0, 50).map(float), st.none()),
        }
    )
    return draw(st.lists(row, min_size=0, max_size=25))


def _same_nan(rows_):
    # nan never equals nan: the reference drops such rows anyway; keep for Spark input.
    return rows_


@settings(max_examples=5, deadline=None)
@given(cases=st.lists(contract_rows(), min_size=1, max_size=25), with_product=st.booleans())
def test_contract_mrr_matches_reference(spark, cases, with_product):
    data = stack_cases(cases)
    df = to_dataframe(spark, data, CONTRACTS)
    product_col = "product" if with_product else None
    got = contract_mrr(df, product_col=product_col, by="case")
    key = (
        ["case", "account_id", "product", "month"]
        if with_product
        else ["case", "account_id", "month"]
    )
    # NaN rows: the reference's duplicate check compares nan != nan; give them unique keys.
    want_rows = ref.contract_mrr(data, product_col=product_col, by="case")
    want = {tuple(r[k] for k in key): r for r in want_rows}
    assert_approx_rows(rows_by_key(got, key), want, columns=["mrr", "excluded_rows"], atol=1e-9)


def test_contract_mrr_annual_is_flat(spark):
    df = to_dataframe(
        spark,
        [
            {
                "case": 0,
                "account_id": "a",
                "start_date": d(2024, 1, 15),
                "end_date": d(2026, 1, 15),
                "amount": 12000.0,
                "interval_months": 12,
                "product": "p",
            },
            {
                "case": 0,
                "account_id": "a",
                "start_date": d(2024, 3, 1),
                "end_date": None,
                "amount": 300.0,
                "interval_months": 3,
                "product": "q",
            },
        ],
        CONTRACTS,
    )
    mrr = contract_mrr(df, observation_end="2025-12-31")
    got = rows_by_key(mrr, "month")
    assert len(got) == 24
    assert got[d(2024, 1)]["mrr"] == 1000.0
    assert got[d(2024, 3)]["mrr"] == 1100.0
    assert got[d(2025, 12)]["mrr"] == 1100.0
    moves = {r.movement for r in mrr_movements(mrr).collect()}
    assert moves == {"expansion", "flat"}


def test_contract_mrr_bad_rows_counted(spark):
    good = {
        "case": 0,
        "account_id": "a",
        "start_date": d(2024, 1, 1),
        "end_date": d(2024, 3, 1),
        "amount": 10.0,
        "interval_months": 1,
        "product": "p",
    }
    bad = [
        {**good, "end_date": d(2023, 12, 1)},
        {**good, "interval_months": 0},
        {**good, "interval_months": None},
        {**good, "amount": -1.0},
        {**good, "amount": float("inf")},
        {**good, "account_id": None},
        dict(good),
    ]
    out = contract_mrr(to_dataframe(spark, [good, *bad], CONTRACTS)).collect()
    assert [(r.month, r.mrr, r.excluded_rows) for r in sorted(out, key=lambda r: r.month)] == [
        (d(2024, 1), 10.0, 7),
        (d(2024, 2), 10.0, 7),
    ]


def test_contract_mrr_schema_errors(spark):
    df = spark.createDataFrame([("a", "x")], "account_id string, start_date string")
    with pytest.raises(SchemaError, match="contract_mrr"):
        contract_mrr(df)


def _check_identity(rows_):
    for r in rows_.values():
        lhs = (
            r["starting_mrr"]
            + r["new_mrr"]
            + r["reactivation_mrr"]
            + r["expansion_mrr"]
            - r["contraction_mrr"]
            - r["churned_mrr"]
        )
        assert math.isclose(lhs, r["ending_mrr"], rel_tol=1e-9, abs_tol=1e-6), r
        assert r["contraction_mrr"] >= 0
        assert r["churned_mrr"] >= 0
        assert r["arr"] == pytest.approx(12 * r["ending_mrr"])


@settings(max_examples=5, deadline=None)
@given(cases=st.lists(mrr_rows(), min_size=1, max_size=30))
def test_movements_and_bridge_match_reference(spark, cases):
    data = stack_cases(cases)
    df = to_dataframe(spark, data, MRR_SCHEMA)
    got_m = rows_by_key(mrr_movements(df, by="case"), ["case", "account_id", "month"])
    want_m = {
        (r["case"], r["account_id"], r["month"]): r for r in ref.mrr_movements(data, by="case")
    }
    assert_approx_rows(got_m, want_m, columns=["previous_mrr", "mrr", "delta", "movement"])
    got_b = rows_by_key(mrr_bridge(df, by="case"), ["case", "month"])
    want_b = {(r["case"], r["month"]): r for r in ref.mrr_bridge(data, by="case")}
    assert_approx_rows(got_b, want_b, columns=BRIDGE_COLS, atol=1e-9)
    _check_identity(got_b)


@settings(max_examples=4, deadline=None)
@given(
    cases=st.lists(mrr_rows(), min_size=1, max_size=30),
    period=st.sampled_from(["month", "quarter", "year"]),
)
def test_cohort_retention_matches_reference(spark, cases, period):
    data = [
        {
            "case": r["case"],
            "account_id": r["account_id"],
            "order_date": r["month"],
            "amount": r["mrr"],
        }
        for r in stack_cases(cases)
    ]
    df = to_dataframe(spark, data, TX_SCHEMA)
    got = rows_by_key(
        cohort_retention(df, period=period, by="case"), ["case", "cohort", "period_number"]
    )
    want = {
        (r["case"], r["cohort"], r["period_number"]): r
        for r in ref.cohort_retention(data, period=period, by="case")
    }
    assert_approx_rows(got, want, columns=COHORT_COLS, atol=1e-9)


def test_cohort_retention_on_contract_mrr(spark):
    df = to_dataframe(
        spark,
        [
            {
                "case": 0,
                "account_id": "a",
                "start_date": d(2024, 1, 1),
                "end_date": None,
                "amount": 1200.0,
                "interval_months": 12,
                "product": "p",
            },
            {
                "case": 0,
                "account_id": "b",
                "start_date": d(2024, 1, 1),
                "end_date": d(2024, 3, 1),
                "amount": 100.0,
                "interval_months": 1,
                "product": "p",
            },
        ],
        CONTRACTS,
    )
    mrr = contract_mrr(df, observation_end=d(2024, 4, 30))
    got = rows_by_key(cohort_retention(mrr, date_col="month", value_col="mrr"), "period_number")
    assert [got[k]["active_accounts"] for k in range(4)] == [2, 2, 1, 1]
    assert got[3]["revenue_retention"] == pytest.approx(0.5)


def test_cohort_period_validated(spark):
    df = spark.createDataFrame(
        [("a", d(2024, 1, 1), 1.0)], "account_id string, order_date date, amount double"
    )
    with pytest.raises(SchemaError, match="period"):
        cohort_retention(df, period="week")  # type: ignore[arg-type]


def test_bridge_worked_example(spark):
    m = spark.createDataFrame(
        [
            ("a", d(2024, 1), 100.0),
            ("b", d(2024, 1), 50.0),
            ("a", d(2024, 2), 100.0),
            ("b", d(2024, 3), 50.0),
        ],
        "account_id string, month date, mrr double",
    )
    rows_ = rows_by_key(mrr_bridge(m), "month")
    feb, mar = rows_[d(2024, 2)], rows_[d(2024, 3)]
    assert feb["churned_mrr"] == 50.0
    assert feb["quick_ratio"] == 0.0
    assert feb["grr"] == pytest.approx(2 / 3)
    assert mar["reactivation_mrr"] == 50.0
    assert mar["churned_mrr"] == 100.0
    assert mar["quick_ratio"] == 0.5
    assert mar["paying_accounts"] == 1
    assert mar["arpa"] == 50.0


# --------------------------------------------------------------------------------- hierarchy


@st.composite
def forests(draw):
    n = draw(st.integers(1, 40))
    edges = {}
    for i in range(n):
        # parent index < i: acyclic; sometimes a parent that is not an account
        choice = draw(st.integers(-2, i - 1)) if i else draw(st.integers(-2, -1))
        edges[f"n{i}"] = None if choice == -1 else "ext" if choice == -2 else f"n{choice}"
    return edges


@settings(max_examples=5, deadline=None)
@given(edges=forests())
def test_ultimate_parents_matches_reference(spark, edges):
    h = spark.createDataFrame(list(edges.items()), "account_id string, parent_id string")
    got = {r.account_id: r.ultimate_parent_id for r in ultimate_parents(h).collect()}
    assert got == ref.ultimate_parents(edges)


def test_deep_chain(spark):
    edges = {f"n{i}": (f"n{i - 1}" if i else None) for i in range(100)}
    h = spark.createDataFrame(list(edges.items()), "account_id string, parent_id string")
    got = rows_by_key(ultimate_parents(h), "account_id")
    assert got["n99"]["ultimate_parent_id"] == "n0"
    assert got["n99"]["depth"] == 99


@pytest.mark.parametrize(
    "edges",
    [
        [("a", "a")],
        [("r", None), ("a", "b"), ("b", "c"), ("c", "a"), ("t1", "t2"), ("t2", "t3"), ("t3", "a")],
    ],
)
def test_cycles_raise(spark, edges):
    h = spark.createDataFrame(edges, "account_id string, parent_id string")
    with pytest.raises(SchemaError, match=r"'[abc]'"):
        ultimate_parents(h)


def test_roll_up_then_classify(spark):
    h = spark.createDataFrame(
        [("hq", None), ("eu", "hq"), ("us", "hq"), ("solo", None)],
        "account_id string, parent_id string",
    )
    tx = spark.createDataFrame(
        [("eu", 30.0), ("us", 30.0), ("solo", 50.0), ("x", 5.0)], "account_id string, amount double"
    )
    out = rows_by_key(classify_accounts(roll_up(tx, h)), "account_id")
    assert set(out) == {"hq", "solo", "x"}
    assert out["hq"]["value"] == 60.0
    assert out["hq"]["value_rank"] == 1


@pytest.mark.connect
def test_connect_bridge_and_cohorts(spark):
    m = spark.createDataFrame(
        [("a", d(2024, 1), 100.0), ("a", d(2024, 2), 120.0), ("b", d(2024, 2), 10.0)],
        "account_id string, month date, mrr double",
    )
    r = mrr_bridge(m).first()
    assert r.expansion_mrr == 20.0
    assert r.new_mrr == 10.0
    c = cohort_retention(m, date_col="month", value_col="mrr").count()
    assert c == 3


@pytest.mark.connect
def test_connect_contract_mrr_and_hierarchy(spark):
    df = to_dataframe(
        spark,
        [
            {
                "case": 0,
                "account_id": "a",
                "start_date": d(2024, 1, 1),
                "end_date": d(2024, 4, 1),
                "amount": 300.0,
                "interval_months": 3,
                "product": "p",
            }
        ],
        CONTRACTS,
    )
    assert [r.mrr for r in contract_mrr(df).collect()] == [100.0, 100.0, 100.0]
    h = spark.createDataFrame([("a", "b"), ("b", None)], "account_id string, parent_id string")
    assert {r.account_id: r.ultimate_parent_id for r in ultimate_parents(h).collect()} == {
        "a": "b",
        "b": "b",
    }
