"""kamlib.health: health score and bands vs the pure-Python percent-rank reference."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kamlib import SchemaError
from kamlib.health import evaluate_health, health_score, health_trend
from kamlib.testing import assert_approx_rows, rows_by_key, stack_cases, to_dataframe
from tests.reference import health as ref

SCHEMA = "case int, account_id string, usage double, nps double, tickets int"

usage = st.one_of(st.integers(0, 5).map(float), st.none(), st.just(math.nan))
nps_values = st.one_of(st.floats(-100, 100, allow_nan=False), st.none())
tickets = st.one_of(st.integers(0, 4), st.none())


@st.composite
def health_case(draw):
    n = draw(st.integers(1, 9))
    return [
        {
            "account_id": f"a{j}",
            "usage": draw(usage),
            "nps": draw(nps_values),
            "tickets": draw(tickets),
        }
        for j in range(n)
    ]


@settings(max_examples=5)
@given(
    cases=st.lists(health_case(), min_size=1, max_size=30),
    weights=st.fixed_dictionaries(
        {"usage": st.sampled_from([0.0, 1.0, 2.0]), "nps": st.sampled_from([0.5, 1.0])},
        optional={"tickets": st.sampled_from([0.0, 1.0, 3.0])},
    ),
    lower=st.sampled_from([(), ("tickets",), ("usage", "nps")]),
    bands=st.sampled_from([(40, 70), (25.0, 50.0), (0, 100)]),
)
def test_health_score_matches_reference(spark, cases, weights, lower, bands):
    lower = tuple(c for c in lower if c in weights)
    df = to_dataframe(spark, stack_cases(cases), SCHEMA)
    out = health_score(df, weights=weights, lower_is_better=lower, by="case", bands=bands)
    assert out.columns == [*df.columns, "health_score", "health_band"]
    actual = rows_by_key(out, ["case", "account_id"])
    expected = {
        (i, acct): row
        for i, rows in enumerate(cases)
        for acct, row in ref.health(
            rows, weights=weights, lower_is_better=lower, bands=bands
        ).items()
    }
    assert_approx_rows(
        actual, expected, columns=["health_score", "health_band"], rtol=1e-9, atol=1e-9
    )
    for row in actual.values():
        assert row["health_score"] is None or 0.0 <= row["health_score"] <= 100.0


@pytest.mark.connect
def test_health_example_and_bands(spark):
    df = to_dataframe(
        spark,
        [
            {"account_id": "a", "usage": 90.0, "tickets": 0},
            {"account_id": "b", "usage": 40.0, "tickets": 5},
            {"account_id": "c", "usage": 70.0, "tickets": 1},
            {"account_id": "d", "usage": None, "tickets": 2},
            {"account_id": "e", "usage": None, "tickets": None},
        ],
        "account_id string, usage double, tickets int",
    )
    out = rows_by_key(
        health_score(df, weights={"usage": 2, "tickets": 1}, lower_is_better="tickets"),
        "account_id",
    )
    # usage ranks among 3 values; tickets (lower is better) among 4 values
    assert out["a"]["health_score"] == pytest.approx(100.0)
    assert out["b"]["health_score"] == pytest.approx(0.0)
    assert out["c"]["health_score"] == pytest.approx(100 * (2 * 0.5 + 2 / 3) / 3)
    assert out["d"]["health_score"] == pytest.approx(100 / 3)
    assert out["e"]["health_score"] is None
    assert {k: v["health_band"] for k, v in out.items()} == {
        "a": "green",
        "b": "red",
        "c": "yellow",
        "d": "red",
        "e": None,
    }


def test_health_band_boundaries(spark):
    # Five accounts: percent ranks 0, 25, 50, 75, 100 on one signal.
    df = to_dataframe(
        spark,
        [{"account_id": f"a{i}", "usage": float(i)} for i in range(5)],
        "account_id string, usage double",
    )
    out = rows_by_key(health_score(df, weights={"usage": 1}, bands=(25, 75)), "account_id")
    assert [out[f"a{i}"]["health_band"] for i in range(5)] == [
        "red",
        "yellow",
        "yellow",
        "green",
        "green",
    ]


def test_health_schema_errors(spark):
    df = to_dataframe(spark, [{"usage": 1.0, "label": "x"}], "usage double, label string")
    with pytest.raises(SchemaError, match=r"health_score\(\): column 'usgae'.*'usage'"):
        health_score(df, weights={"usgae": 1.0})
    with pytest.raises(SchemaError, match="column 'label' must be numeric, found string"):
        health_score(df, weights={"label": 1.0})
    with pytest.raises(SchemaError, match="must not all be zero"):
        health_score(df, weights={"usage": 0})
    with pytest.raises(SchemaError, match="finite number >= 0"):
        health_score(df, weights={"usage": math.nan})
    with pytest.raises(SchemaError, match="lower_is_better= names 'label'"):
        health_score(df, weights={"usage": 1}, lower_is_better=["label"])
    with pytest.raises(SchemaError, match="column 'segment'"):
        health_score(df, weights={"usage": 1}, by="segment")
    for bad in ((70, 40), (40,), (-1, 50), (40, 101), (40, 40), "xy", None):
        with pytest.raises(SchemaError, match="bands="):
            health_score(df, weights={"usage": 1}, bands=bad)


@st.composite
def threshold_case(draw):
    n = draw(st.integers(1, 6))
    return [
        {
            "account_id": f"a{j}",
            "usage": draw(usage),
            "nps": draw(nps_values),
            "tickets": draw(tickets),
        }
        for j in range(n)
    ]


@settings(max_examples=5, deadline=None)
@given(
    cases=st.lists(threshold_case(), min_size=1, max_size=30),
    usage_pair=st.sampled_from([(1.0, 4.0), (4.0, 1.0), (0.0, 5.0)]),
    nps_pair=st.sampled_from([(-50.0, 50.0), (0.0, 30.0)]),
    critical=st.sampled_from([None, {"tickets": 3}, {"usage": 1.0, "nps": -60.0}]),
)
def test_health_thresholds_match_reference(spark, cases, usage_pair, nps_pair, critical):
    weights = {"usage": 2.0, "nps": 1.0}
    thresholds = {"usage": usage_pair, "nps": nps_pair}
    df = to_dataframe(spark, stack_cases(cases), SCHEMA)
    out = health_score(
        df, weights=weights, method="thresholds", thresholds=thresholds, critical=critical
    )
    assert out.columns == [*df.columns, "health_score", "health_band"]
    actual = rows_by_key(out, ["case", "account_id"])
    expected = {
        (i, acct): row
        for i, rows in enumerate(cases)
        for acct, row in ref.threshold_health(
            rows, weights=weights, thresholds=thresholds, critical=critical
        ).items()
    }
    assert_approx_rows(
        actual, expected, columns=["health_score", "health_band"], rtol=1e-9, atol=1e-9
    )


@pytest.mark.connect
def test_health_thresholds_boundaries_and_critical(spark):
    df = to_dataframe(
        spark,
        [{"account_id": f"a{i}", "usage": float(i), "tickets": 6 - i} for i in range(7)],
        "account_id string, usage double, tickets int",
    )
    out = rows_by_key(
        health_score(
            df,
            weights={"usage": 1.0, "tickets": 1.0},
            method="thresholds",
            thresholds={"usage": (1, 5), "tickets": (5, 1)},  # tickets: lower is better
            critical={"tickets": 5},  # poor side of tickets = >= 5
        ),
        "account_id",
    )
    assert [out[f"a{i}"]["health_score"] for i in range(7)] == pytest.approx(
        [0.0, 0.0, 25.0, 50.0, 75.0, 100.0, 100.0]
    )
    assert out["a1"]["health_band"] == "red"
    assert out["a4"]["health_band"] == "green"


def test_health_thresholds_schema_errors(spark):
    df = to_dataframe(spark, [{"account_id": "a", "usage": 1.0}], "account_id string, usage double")
    w = {"usage": 1.0}
    with pytest.raises(SchemaError, match="poor != good"):
        health_score(df, weights=w, method="thresholds", thresholds={"usage": (1, 1)})
    with pytest.raises(SchemaError, match="finite"):
        health_score(df, weights=w, method="thresholds", thresholds={"usage": (0, math.inf)})
    with pytest.raises(SchemaError, match="needs a thresholds"):
        health_score(df, weights=w, method="thresholds", thresholds={})
    with pytest.raises(SchemaError, match="thresholds="):
        health_score(df, weights=w, method="thresholds")
    with pytest.raises(SchemaError, match="method="):
        health_score(df, weights=w, method="absolute")
    with pytest.raises(SchemaError, match="'tickets'"):
        health_score(df, weights=w, critical={"tickets": 1})
    with pytest.raises(SchemaError, match="finite"):
        health_score(df, weights=w, critical={"usage": math.nan})


def test_health_trend(spark):
    import datetime as dt

    d = [dt.date(2024, 1, 1), dt.date(2024, 1, 31), dt.date(2024, 3, 1)]
    rows = [
        ("a", d[0], 80.0, "green"),
        ("a", d[1], None, None),
        ("a", d[2], 50.0, "yellow"),
        ("b", d[1], 30.0, "red"),
    ]
    df = spark.createDataFrame(
        rows, "account_id string, as_of date, health_score double, health_band string"
    )
    out = rows_by_key(health_trend(df), "account_id")
    assert out["a"]["n_snapshots"] == 3
    assert out["a"]["health_slope_30d"] == pytest.approx(-15.0)  # (50 - 80) / 60 days * 30
    assert out["a"]["health_change_last"] is None
    assert out["a"]["band_changes"] == 2
    assert out["a"]["health_band_last"] == "yellow"
    assert out["b"]["health_slope_30d"] is None
    assert out["b"]["band_changes"] == 0


@settings(max_examples=5, deadline=None)
@given(
    data=st.lists(st.tuples(st.integers(0, 5).map(float), st.booleans()), min_size=1, max_size=40)
)
def test_evaluate_health_auc_matches_pairwise(spark, data):
    scores = spark.createDataFrame(
        [(f"a{i}", s, "red" if s < 2 else "green") for i, (s, _) in enumerate(data)],
        "account_id string, health_score double, health_band string",
    )
    labels = spark.createDataFrame(
        [(f"a{i}", y) for i, (_, y) in enumerate(data)], "account_id string, churned boolean"
    )
    out = evaluate_health(scores, labels).collect()
    expected = ref.auc([s for s, _ in data], [y for _, y in data])
    for r in out:
        if expected is None:
            assert r.auc is None
        else:
            assert r.auc == pytest.approx(expected)
        members = [y for s, y in data if ("red" if s < 2 else "green") == r.health_band]
        assert r.n_accounts == len(members)
        assert r.churn_rate == pytest.approx(sum(members) / len(members))
    assert sum(r.n_accounts for r in out) == len(data)
