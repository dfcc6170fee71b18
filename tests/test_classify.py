"""kamlib.classify: classification, concentration and key-account scores vs pure-Python refs."""

from __future__ import annotations

import math
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kamlib import SchemaError
from kamlib.classify import classify_accounts, concentration, key_account_score
from kamlib.testing import assert_approx_rows, rows_by_key, stack_cases, to_dataframe
from kamlib.testing.strategies import transactions
from tests.reference import classify as ref

TX_SCHEMA = "case int, account_id string, order_date date, amount double"
CLASSIFY_COLS = [
    "value",
    "value_rank",
    "value_share",
    "cumulative_share",
    "abc_tier",
    "is_key_account",
    "null_values",
]
CONCENTRATION_COLS = [
    "n_accounts",
    "total_value",
    "hhi",
    "top_share_value",
    "gini",
    "null_accounts",
]
CRITERIA_SCHEMA = "case int, account_id string, x double, y double, z int"


def tx_rows(*pairs):
    return [{"account_id": a, "amount": v} for a, v in pairs]


def tx_df(spark, rows, schema="account_id string, amount double"):
    return to_dataframe(spark, rows, schema)


# ---------------------------------------------------------------------------------------------
# Property tests: many cases in ONE DataFrame, by="case"
# ---------------------------------------------------------------------------------------------

case_lists = st.lists(
    transactions(min_rows=1, max_rows=25, max_accounts=8, allow_null_amounts=True),
    min_size=1,
    max_size=30,
)
shares = st.sampled_from([0.2, 0.1, 0.25, 0.5, 1 / 3, 1.0])


@settings(max_examples=6)
@given(cases=case_lists, top_share=shares, thresholds=st.sampled_from([(0.8, 0.95), (0.5, 0.9)]))
def test_classify_matches_reference(spark, cases, top_share, thresholds):
    df = to_dataframe(spark, stack_cases(cases), TX_SCHEMA)
    out = classify_accounts(df, by="case", top_share=top_share, abc_thresholds=thresholds)
    actual = rows_by_key(out, ["case", "account_id"])
    expected = {
        (i, acct): row
        for i, rows in enumerate(cases)
        for acct, row in ref.classify(rows, top_share=top_share, thresholds=thresholds).items()
    }
    assert_approx_rows(actual, expected, columns=CLASSIFY_COLS, rtol=1e-9, atol=1e-12)
    # invariants: the k rule and ABC tiers are prefixes of the ranking
    for i in range(len(cases)):
        group = [r for (c, _), r in actual.items() if c == i]
        valued = [r for r in group if r["value"] is not None]
        n_key = sum(r["is_key_account"] for r in group)
        assert n_key == (ref.key_k(len(valued), top_share) if valued else 0)
        tiers = "".join(r["abc_tier"] for r in sorted(group, key=lambda r: r["value_rank"]))
        assert tiers == "".join(sorted(tiers))


@settings(max_examples=5)
@given(cases=case_lists, top_share=shares)
def test_concentration_matches_reference(spark, cases, top_share):
    df = to_dataframe(spark, stack_cases(cases), TX_SCHEMA)
    out = concentration(df, by="case", top_share=top_share)
    actual = rows_by_key(out, "case")
    expected = {i: ref.concentration(rows, top_share=top_share) for i, rows in enumerate(cases)}
    assert_approx_rows(actual, expected, columns=CONCENTRATION_COLS, rtol=1e-9, atol=1e-9)
    for row in actual.values():
        if row["hhi"] is not None:
            assert 0.0 <= row["hhi"] <= 10000.0 + 1e-6
            assert 10000.0 / row["n_accounts"] - 1e-6 <= row["hhi"]
            assert 0.0 <= row["gini"] <= (row["n_accounts"] - 1) / row["n_accounts"] + 1e-12
            assert 0.0 < row["top_share_value"] <= 1.0 + 1e-12


maybe_value = st.one_of(
    st.integers(0, 6).map(float), st.integers(0, 6).map(float), st.none(), st.just(math.nan)
)


@st.composite
def criteria_case(draw):
    n = draw(st.integers(1, 9))
    return [
        {
            "account_id": f"a{j}",
            "x": draw(maybe_value),
            "y": draw(st.one_of(st.floats(-5, 5, allow_nan=False), st.none())),
            "z": draw(st.one_of(st.integers(0, 3), st.none())),
        }
        for j in range(n)
    ]


weights_strategy = st.fixed_dictionaries(
    {
        "x": st.sampled_from([0.0, 1.0, 2.5]),
        "y": st.sampled_from([0.0, 1.0, 3.0]),
        "z": st.sampled_from([1.0, 0.5]),
    }
)


@settings(max_examples=5)
@given(
    cases=st.lists(criteria_case(), min_size=1, max_size=30),
    weights=weights_strategy,
    lower=st.sets(st.sampled_from(["x", "y", "z"])),
    top_share=shares,
)
def test_key_account_score_matches_reference(spark, cases, weights, lower, top_share):
    df = to_dataframe(spark, stack_cases(cases), CRITERIA_SCHEMA)
    out = key_account_score(
        df, criteria=weights, by="case", top_share=top_share, lower_is_better=sorted(lower)
    )
    assert out.columns == [*df.columns, "kam_score", "is_key_account"]
    actual = rows_by_key(out, ["case", "account_id"])
    expected = {
        (i, acct): row
        for i, rows in enumerate(cases)
        for acct, row in ref.key_account_score(
            rows, criteria=weights, top_share=top_share, lower_is_better=lower
        ).items()
    }
    assert_approx_rows(
        actual, expected, columns=["kam_score", "is_key_account"], rtol=1e-9, atol=1e-9
    )
    per_case = Counter(c for (c, _), r in actual.items() if r["is_key_account"])
    for i in range(len(cases)):
        scored = sum(1 for (c, _), r in actual.items() if c == i and r["kam_score"] is not None)
        assert per_case.get(i, 0) == (ref.key_k(scored, top_share) if scored else 0)
        for (c, _), r in actual.items():
            if c == i and r["kam_score"] is not None:
                assert 0.0 <= r["kam_score"] <= 100.0


# ---------------------------------------------------------------------------------------------
# Worked examples and edge cases
# ---------------------------------------------------------------------------------------------


@pytest.mark.connect
def test_classify_worked_example(spark):
    df = tx_df(
        spark,
        tx_rows(("a", 50.0), ("b", 30.0), ("c", 15.0), ("d", 5.0), ("a", 10.0), ("e", -2.0)),
    )
    out = rows_by_key(classify_accounts(df), "account_id")
    assert [out[a]["value_rank"] for a in "abcde"] == [1, 2, 3, 4, 5]
    assert [out[a]["abc_tier"] for a in "abcde"] == ["A", "A", "B", "C", "C"]
    assert [out[a]["is_key_account"] for a in "abcde"] == [True, False, False, False, False]
    assert out["e"]["value_share"] == 0.0
    assert out["e"]["cumulative_share"] == pytest.approx(1.0)
    assert out["c"]["cumulative_share"] == pytest.approx(105 / 110)


def test_classify_crossing_account_is_a_and_ties_by_account(spark):
    # b and a tie: a ranks first. Cumulative before c is 0.8 exactly -> c is B.
    df = tx_df(spark, tx_rows(("b", 40.0), ("a", 40.0), ("c", 15.0), ("d", 5.0)))
    out = rows_by_key(classify_accounts(df, top_share=0.5), "account_id")
    assert out["a"]["value_rank"] == 1
    assert out["b"]["value_rank"] == 2
    assert [out[a]["abc_tier"] for a in "abcd"] == ["A", "A", "B", "C"]
    assert [out[a]["is_key_account"] for a in "abcd"] == [True, True, False, False]


def test_classify_nulls_and_non_positive_groups(spark):
    df = tx_df(
        spark,
        [
            {"account_id": "a", "amount": None},
            {"account_id": "a", "amount": None},
            {"account_id": "b", "amount": -5.0},
            {"account_id": "c", "amount": 0.0},
            {"account_id": "c", "amount": None},
        ],
    )
    out = rows_by_key(classify_accounts(df, top_share=1.0), "account_id")
    assert out["a"]["value"] is None
    assert out["a"]["null_values"] == 2
    assert out["a"]["value_rank"] == 3
    assert out["a"]["is_key_account"] is False
    assert out["c"]["null_values"] == 1
    assert out["c"]["value"] == 0.0
    assert all(out[a]["value_share"] is None for a in "abc")
    assert all(out[a]["cumulative_share"] is None for a in "abc")
    assert all(out[a]["abc_tier"] == "C" for a in "abc")
    assert out["b"]["is_key_account"]
    assert out["c"]["is_key_account"]
    conc = concentration(df).first()
    assert conc.n_accounts == 2
    assert conc.null_accounts == 1
    assert conc.total_value == -5.0
    assert conc.hhi is None
    assert conc.gini is None
    assert conc.top_share_value is None


def test_classify_multiple_by_columns_and_integer_values(spark):
    df = to_dataframe(
        spark,
        [
            {"region": "EU", "year": 2024, "account_id": 1, "amount": 5},
            {"region": "EU", "year": 2024, "account_id": 2, "amount": 10},
            {"region": "EU", "year": 2025, "account_id": 1, "amount": 7},
            {"region": "US", "year": 2024, "account_id": 1, "amount": 1},
        ],
        "region string, year int, account_id int, amount int",
    )
    out = classify_accounts(df, by=["region", "year"])
    assert out.columns[:3] == ["region", "year", "account_id"]
    got = rows_by_key(out, ["region", "year", "account_id"])
    assert got[("EU", 2024, 2)]["value_rank"] == 1
    assert got[("EU", 2024, 1)]["value_share"] == pytest.approx(1 / 3)
    assert got[("EU", 2025, 1)]["is_key_account"]
    assert got[("US", 2024, 1)]["value_rank"] == 1


@pytest.mark.connect
def test_concentration_equal_shares_and_monopoly(spark):
    rows = [
        {"case": n, "account_id": f"a{j}", "amount": 7.0} for n in range(1, 8) for j in range(n)
    ]
    rows += [{"case": 100, "account_id": "big", "amount": 10.0}]
    rows += [{"case": 100, "account_id": f"z{j}", "amount": 0.0} for j in range(4)]
    df = to_dataframe(spark, rows, "case int, account_id string, amount double")
    out = rows_by_key(concentration(df, by="case"), "case")
    for n in range(1, 8):
        assert out[n]["hhi"] == pytest.approx(10000.0 / n)
        assert out[n]["gini"] == pytest.approx(0.0, abs=1e-12)
        assert out[n]["top_share_value"] == pytest.approx(ref.key_k(n, 0.2) / n)
    assert out[100]["hhi"] == pytest.approx(10000.0)
    assert out[100]["gini"] == pytest.approx(4 / 5)
    assert out[100]["top_share_value"] == pytest.approx(1.0)


def test_concentration_known_gini(spark):
    # Values 1, 2, 3, 4: mean absolute difference 1.25, Gini = 1.25 / (2 * 2.5) = 0.25.
    df = tx_df(spark, tx_rows(("a", 1.0), ("b", 2.0), ("c", 3.0), ("d", 4.0)))
    r = concentration(df, top_share=0.5).first()
    assert r.gini == pytest.approx(0.25)
    assert r.hhi == pytest.approx(10000 * (1 + 4 + 9 + 16) / 100)
    assert r.top_share_value == pytest.approx(0.7)


@pytest.mark.connect
def test_key_account_score_example(spark):
    df = to_dataframe(
        spark,
        [
            {"account_id": "a", "importance": 9.0, "growth": 1.0, "cost": 10.0},
            {"account_id": "b", "importance": 5.0, "growth": 3.0, "cost": 20.0},
            {"account_id": "c", "importance": 1.0, "growth": 5.0, "cost": 30.0},
            {"account_id": "d", "importance": None, "growth": None, "cost": None},
        ],
        "account_id string, importance double, growth double, cost double",
    )
    out = rows_by_key(
        key_account_score(
            df, criteria={"importance": 2, "growth": 1, "cost": 1}, lower_is_better=["cost"]
        ),
        "account_id",
    )
    assert out["a"]["kam_score"] == pytest.approx(75.0)
    assert out["b"]["kam_score"] == pytest.approx(50.0)
    assert out["c"]["kam_score"] == pytest.approx(25.0)
    assert out["d"]["kam_score"] is None
    assert out["d"]["is_key_account"] is False
    assert [out[a]["is_key_account"] for a in "abc"] == [True, False, False]


def test_key_account_score_does_not_mutate_arguments(spark):
    df = to_dataframe(spark, [{"account_id": "a", "x": 1.0}], "account_id string, x double")
    criteria = {"x": 1.0}
    lower = ["x"]
    out = key_account_score(df, criteria=criteria, lower_is_better=lower).first()
    assert criteria == {"x": 1.0}
    assert lower == ["x"]
    assert out.kam_score == 0.0
    assert out.is_key_account


# ---------------------------------------------------------------------------------------------
# Bad input: SchemaError before any Spark job
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def orders(spark):
    return to_dataframe(
        spark,
        [{"account_id": "a", "amount": 1.0, "label": "x", "x": 1.0}],
        "account_id string, amount double, label string, x double",
    )


@pytest.mark.parametrize("func", [classify_accounts, concentration])
def test_value_functions_schema_errors(orders, func):
    name = func.__name__
    with pytest.raises(SchemaError, match=rf"{name}\(\): column 'amuont'.*Did you mean 'amount'"):
        func(orders, value_col="amuont")
    with pytest.raises(SchemaError, match=rf"{name}\(\): column 'label' must be numeric"):
        func(orders, value_col="label")
    with pytest.raises(SchemaError, match="account_col="):
        func(orders, account_col="acount")
    with pytest.raises(SchemaError, match="column 'region'"):
        func(orders, by="region")
    with pytest.raises(SchemaError, match="by= must not contain the account column"):
        func(orders, by="account_id")
    for bad in (0.0, -0.1, 1.5, "0.2", float("nan")):
        with pytest.raises(SchemaError, match="top_share="):
            func(orders, top_share=bad)


def test_classify_bad_thresholds(orders):
    for bad in ((0.95, 0.8), (0.8,), (0.0, 0.5), (0.8, 1.2), (0.8, 0.8), "ab", 3):
        with pytest.raises(SchemaError, match="abc_thresholds="):
            classify_accounts(orders, abc_thresholds=bad)


def test_key_account_score_bad_criteria(orders):
    cases = [
        ({}, "at least one column"),
        ({"x": -1.0}, "must be a finite number >= 0"),
        ({"x": float("inf")}, "must be a finite number >= 0"),
        ({"x": True}, "must be a finite number >= 0"),
        ({"x": 0.0}, "must not all be zero"),
        ({"label": 1.0}, "column 'label' must be numeric"),
        ({"xx": 1.0}, r"column 'xx' \(argument criteria=\) not found"),
        (["x"], "must be a mapping"),
    ]
    for criteria, message in cases:
        with pytest.raises(SchemaError, match=message):
            key_account_score(orders, criteria=criteria)
    with pytest.raises(SchemaError, match="lower_is_better= names 'amount'"):
        key_account_score(orders, criteria={"x": 1.0}, lower_is_better=["amount"])
    with pytest.raises(SchemaError, match="lower_is_better= names 'y'"):
        key_account_score(orders, criteria={"x": 1.0}, lower_is_better="y")
    with pytest.raises(SchemaError, match="top_share="):
        key_account_score(orders, criteria={"x": 1.0}, top_share=0)
