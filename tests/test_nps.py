"""kamlib.nps: NPS categories, NPS with intervals and CSAT vs pure-Python references."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kamlib import SchemaError
from kamlib.nps import csat, nps, nps_category
from kamlib.testing import assert_approx_rows, rows_by_key, stack_cases, to_dataframe
from kamlib.testing.strategies import SURVEY_SCHEMA, survey_responses
from tests.reference import nps as ref

NPS_COLS = [
    "n",
    "invalid",
    "promoters",
    "passives",
    "detractors",
    "nps",
    "std_error",
    "margin_of_error",
    "ci_low",
    "ci_high",
]
CSAT_COLS = ["n", "invalid", "satisfied", "csat", "ci_low", "ci_high"]


@settings(max_examples=5)
@given(
    cases=st.lists(
        survey_responses(min_rows=1, max_rows=30, weighted=True), min_size=1, max_size=30
    ),
    weighted=st.booleans(),
    confidence=st.sampled_from([0.95, 0.9, 0.99, 0.5]),
)
def test_nps_matches_reference(spark, cases, weighted, confidence):
    df = to_dataframe(spark, stack_cases(cases), f"case int, {SURVEY_SCHEMA}")
    weight_col = "weight" if weighted else None
    out = nps(df, by="case", weight_col=weight_col, confidence=confidence)
    assert out.columns == ["case", *NPS_COLS]
    actual = rows_by_key(out, "case")
    expected = {
        i: ref.nps(rows, weight_col=weight_col, confidence=confidence)
        for i, rows in enumerate(cases)
    }
    assert_approx_rows(actual, expected, columns=NPS_COLS, rtol=1e-9, atol=1e-9)
    for row in actual.values():
        assert row["n"] == row["promoters"] + row["passives"] + row["detractors"]
        if row["nps"] is not None:
            assert -100.0 <= row["ci_low"] <= row["nps"] <= row["ci_high"] <= 100.0


@settings(max_examples=5)
@given(
    cases=st.lists(
        st.lists(
            st.one_of(st.integers(0, 7).map(float), st.none(), st.sampled_from([2.5, -1.0, 8.0])),
            max_size=30,
        ),
        min_size=1,
        max_size=30,
    ),
    scale=st.sampled_from([(5, 4), (7, 6), (5, 1), (3, 3)]),
)
def test_csat_matches_reference(spark, cases, scale):
    scale_max, satisfied_min = scale
    rows = stack_cases([[{"score": s} for s in case] for case in cases])
    df = to_dataframe(spark, rows, "case int, score double")
    out = csat(df, by="case", scale_max=scale_max, satisfied_min=satisfied_min)
    actual = rows_by_key(out, "case")
    expected = {
        i: ref.csat([{"score": s} for s in case], scale_max=scale_max, satisfied_min=satisfied_min)
        for i, case in enumerate(cases)
        if case
    }
    assert_approx_rows(actual, expected, columns=CSAT_COLS, rtol=1e-9, atol=1e-9)


@pytest.mark.connect
def test_nps_category(spark):
    scores = [0.0, 6.0, 7.0, 8.0, 9.0, 10.0, None, 7.5, -1.0, 11.0, math.nan]
    df = to_dataframe(
        spark, [{"i": i, "score": s} for i, s in enumerate(scores)], "i int, score double"
    )
    out = rows_by_key(nps_category(df), "i")
    assert [out[i]["nps_category"] for i in range(len(scores))] == [ref.category(s) for s in scores]
    assert [out[i]["nps_category"] for i in range(6)] == [
        "detractor",
        "detractor",
        "passive",
        "passive",
        "promoter",
        "promoter",
    ]


@pytest.mark.connect
def test_nps_worked_example_and_groups(spark):
    rows = [{"seg": "x", "score": s} for s in [10, 9, 9, 8, 7, 6, 3, 10, None, 12]]
    rows += [{"seg": "y", "score": s} for s in [None, 11]]
    df = to_dataframe(spark, rows, "seg string, score int")
    out = rows_by_key(nps(df, by="seg"), "seg")
    x = out["x"]
    assert (x["n"], x["invalid"], x["promoters"], x["passives"], x["detractors"]) == (
        8,
        2,
        4,
        2,
        2,
    )
    assert x["nps"] == pytest.approx(25.0)
    # var = (0.5 + 0.25 - 0.25^2) / 8; z(0.95) = 1.959963985
    se = 100 * math.sqrt((0.75 - 0.0625) / 8)
    assert x["std_error"] == pytest.approx(se)
    assert x["margin_of_error"] == pytest.approx(1.959963984540054 * se)
    y = out["y"]
    assert (y["n"], y["invalid"]) == (0, 2)
    assert all(y[c] is None for c in NPS_COLS[5:])


def test_nps_all_promoters_and_empty_input(spark):
    df = to_dataframe(spark, [{"score": 10.0}] * 5, "score double")
    r = nps(df).first()
    assert r.nps == 100.0
    assert r.std_error == 0.0
    assert r.ci_low == 100.0
    assert r.ci_high == 100.0
    empty = nps(to_dataframe(spark, [], "score double")).first()
    assert empty.n == 0
    assert empty.invalid == 0
    assert empty.nps is None
    assert empty.ci_low is None


def test_nps_margin_shrinks_with_n_and_ci_clamped(spark):
    base = [10.0, 10.0, 9.0, 8.0, 7.0, 5.0, 2.0, 0.0, 9.0, 10.0]
    rows = stack_cases([[{"score": s} for s in base * m] for m in (1, 2, 4, 8, 16)])
    df = to_dataframe(spark, rows, "case int, score double")
    out = rows_by_key(nps(df, by="case"), "case")
    margins = [out[i]["margin_of_error"] for i in range(5)]
    assert all(a > b for a, b in itertools.pairwise(margins))
    assert margins[0] / margins[2] == pytest.approx(2.0)
    assert len({round(out[i]["nps"], 9) for i in range(5)}) == 1
    # 2 promoters out of 2: nps 100, std error 0; 9 promoters + 1 detractor: ci_high clamped
    clamp = to_dataframe(spark, [{"score": s} for s in [10.0] * 9 + [0.0]], "score double")
    r = nps(clamp, confidence=0.99).first()
    assert r.nps == pytest.approx(80.0)
    assert r.ci_high == 100.0
    assert r.ci_low == pytest.approx(80.0 - r.margin_of_error)


def test_weighted_nps_effective_n_and_zero_weights(spark):
    rows = [
        {"score": 10, "weight": 3.0},
        {"score": 9, "weight": 1.0},
        {"score": 4, "weight": 2.0},
        {"score": 8, "weight": 0.0},
        {"score": 8, "weight": -1.0},
        {"score": 8, "weight": None},
        {"score": 8, "weight": math.inf},
    ]
    df = to_dataframe(spark, rows, "score int, weight double")
    r = nps(df, weight_col="weight").first()
    assert (r.n, r.invalid, r.promoters, r.passives, r.detractors) == (4, 3, 2, 1, 1)
    p_p, p_d = 4 / 6, 2 / 6
    n_eff = 36 / 14
    assert r.nps == pytest.approx(100 * (p_p - p_d))
    assert r.std_error == pytest.approx(100 * math.sqrt((p_p + p_d - (p_p - p_d) ** 2) / n_eff))
    zero = to_dataframe(spark, [{"score": 10, "weight": 0.0}], "score int, weight double")
    z = nps(zero, weight_col="weight").first()
    assert z.n == 1
    assert z.nps is None
    assert z.margin_of_error is None


@pytest.mark.parametrize("scale", [1e-100, 1e150, 1e200, 1e307])
def test_weighted_nps_is_scale_invariant_for_huge_and_tiny_weights(spark, scale):
    """NPS, its std error and n_eff depend on the weights only up to a common factor."""
    weights = [3.0, 1.0, 2.0, 0.5, 4.0]
    scores = [10, 9, 4, 8, 0]
    rows = [{"score": s, "weight": w * scale} for s, w in zip(scores, weights, strict=True)]
    r = nps(to_dataframe(spark, rows, "score int, weight double"), weight_col="weight").first()
    total = sum(weights)
    p_p, p_d = (3.0 + 1.0) / total, (2.0 + 4.0) / total
    n_eff = total**2 / sum(w * w for w in weights)
    assert r.nps == pytest.approx(100 * (p_p - p_d), rel=1e-12)
    expected = 100 * math.sqrt((p_p + p_d - (p_p - p_d) ** 2) / n_eff)
    assert r.std_error == pytest.approx(expected, rel=1e-12)


@pytest.mark.connect
def test_csat_example_and_wilson_against_scipy(spark):
    scipy_stats = pytest.importorskip("scipy.stats")
    df = to_dataframe(
        spark,
        [{"score": s} for s in [5.0, 4.0, 4.0, 3.0, 2.0, 5.0, 0.0, None, 4.5, 6.0]],
        "score double",
    )
    r = csat(df).first()
    assert (r.n, r.invalid, r.satisfied) == (6, 4, 4)
    assert r.csat == pytest.approx(400 / 6)
    ci = scipy_stats.binomtest(4, 6).proportion_ci(confidence_level=0.95, method="wilson")
    assert r.ci_low == pytest.approx(100 * ci.low)
    assert r.ci_high == pytest.approx(100 * ci.high)
    # 0 of 10 satisfied: Wilson upper bound z^2 / (n + z^2) (closed form)
    none = to_dataframe(spark, [{"score": 1.0}] * 10, "score double")
    r0 = csat(none).first()
    z2 = 1.959963984540054**2
    assert r0.csat == 0.0
    assert r0.ci_low == pytest.approx(0.0, abs=1e-12)
    assert r0.ci_high == pytest.approx(100 * z2 / (10 + z2))


def test_nps_schema_errors(spark):
    df = to_dataframe(
        spark, [{"score": 1.0, "label": "x", "w": 1.0}], "score double, label string, w double"
    )
    with pytest.raises(SchemaError, match=r"nps\(\): column 'scroe'.*Did you mean 'score'"):
        nps(df, score_col="scroe")
    with pytest.raises(SchemaError, match=r"nps\(\): column 'label' must be numeric, found string"):
        nps(df, score_col="label")
    with pytest.raises(SchemaError, match="weight_col="):
        nps(df, weight_col="weight")
    with pytest.raises(SchemaError, match="column 'label' must be numeric"):
        nps(df, weight_col="label")
    with pytest.raises(SchemaError, match="column 'region'"):
        nps(df, by=["region"])
    for bad in (0.0, 1.0, 1.5, "0.95"):
        with pytest.raises(SchemaError, match="confidence="):
            nps(df, confidence=bad)
    with pytest.raises(SchemaError, match=r"nps_category\(\): column 'label' must be numeric"):
        nps_category(df, score_col="label")


def test_csat_schema_errors(spark):
    df = to_dataframe(spark, [{"score": 1.0, "label": "x"}], "score double, label string")
    with pytest.raises(SchemaError, match=r"csat\(\): column 'label' must be numeric"):
        csat(df, score_col="label")
    with pytest.raises(SchemaError, match="scale_max="):
        csat(df, scale_max=1)
    with pytest.raises(SchemaError, match="scale_max="):
        csat(df, scale_max=5.0)
    with pytest.raises(SchemaError, match="satisfied_min="):
        csat(df, satisfied_min=6)
    with pytest.raises(SchemaError, match="satisfied_min="):
        csat(df, satisfied_min=0)
    with pytest.raises(SchemaError, match="confidence="):
        csat(df, confidence=1.2)
