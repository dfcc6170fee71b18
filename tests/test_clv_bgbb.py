"""BG/BB (Fader, Hardie & Shang 2010) and the discrete RFM summary."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kamlib import SchemaError
from kamlib.clv import BetaGeoBetaBinom, discrete_rfm_summary, model_from_json
from kamlib.clv.discrete import bgbb_conditional_expected, bgbb_probability_alive
from tests.reference.clv_bgbb import (
    bgbb_expected,
    bgbb_expected_by_sum,
    bgbb_likelihood,
    bgbb_p_alive,
)

# The donation data: 11,104 first-time supporters of a US non-profit (1995 cohort), annual
# repeat donations 1996-2001 (n = 6). (x, t_x, count) patterns of Table 1 of Fader, Hardie and
# Shang (2010), Marketing Science 29(6), 1086-1108; also lifetimes' datasets/donations.csv.
DONATIONS = [
    (0, 0, 3464), (1, 1, 1091), (1, 2, 277), (1, 3, 129), (1, 4, 78), (1, 5, 119),
    (1, 6, 129), (2, 2, 613), (2, 3, 255), (2, 4, 155), (2, 5, 173), (2, 6, 234),
    (3, 3, 322), (3, 4, 181), (3, 5, 225), (3, 6, 357), (4, 4, 240), (4, 5, 284),
    (4, 6, 512), (5, 5, 335), (5, 6, 728), (6, 6, 1203),
]  # fmt: skip
# Published estimates (FHS 2010, section 3) and log-likelihood -33,225.6.
PUBLISHED = {"alpha": 1.204, "beta": 0.750, "gamma": 0.657, "delta": 2.783}


@pytest.fixture(scope="module")
def donations(spark):
    rows = [(float(x), float(tx), 6.0, float(c)) for x, tx, c in DONATIONS]
    return spark.createDataFrame(
        rows, "frequency double, recency double, n_periods double, w double"
    )


@pytest.fixture(scope="module")
def fitted(donations):
    return BetaGeoBetaBinom().fit(donations, weights_col="w")


def test_donations_published_estimates(fitted):
    assert sum(c for *_, c in DONATIONS) == 11104
    for name, published in PUBLISHED.items():
        assert float(f"{fitted.params[name]:.3g}") == pytest.approx(float(f"{published:.3g}"))
        assert fitted.params[name] == pytest.approx(published, abs=6e-4)
    assert fitted.log_likelihood == pytest.approx(-33225.6, abs=0.1)
    assert fitted.fit_info["n"] == 11104
    assert fitted.fit_info["n_distinct"] == 22
    k = 4
    assert fitted.aic == pytest.approx(2 * k - 2 * fitted.log_likelihood)
    assert fitted.bic == pytest.approx(k * math.log(11104) - 2 * fitted.log_likelihood)


def test_unweighted_rows_equal_weighted_tuples(spark, fitted):
    rows = [(float(x), float(tx), 6.0) for x, tx, c in DONATIONS for _ in range(c // 20 + 1)]
    counts = [float(c // 20 + 1) for *_, c in DONATIONS]
    df = spark.createDataFrame(rows, "frequency double, recency double, n_periods double")
    a = BetaGeoBetaBinom().fit(df)
    b = BetaGeoBetaBinom().fit_arrays(
        [x for x, _, _ in DONATIONS], [t for _, t, _ in DONATIONS], [6] * 22, counts
    )
    for name in a.param_names:
        assert a.params[name] == pytest.approx(b.params[name], rel=1e-5)


def test_predictions_match_reference(fitted, donations):
    p = fitted._p("test")
    scored = fitted.probability_alive(
        fitted.expected_purchases(donations, 5, output_col="e5"), future_periods=2
    )
    scored = fitted.probability_alive(scored, output_col="p0").toPandas()
    for row in scored.itertuples():
        x, tx, n = int(row.frequency), int(row.recency), int(row.n_periods)
        assert row.e5 == pytest.approx(bgbb_expected(*p, 5, x, tx, n), rel=1e-9)
        assert row.e5 == pytest.approx(bgbb_expected_by_sum(*p, 5, x, tx, n), rel=1e-9)
        assert row.p_alive == pytest.approx(bgbb_p_alive(*p, x, tx, n, 2), rel=1e-9)
        assert row.p0 == pytest.approx(bgbb_p_alive(*p, x, tx, n, 0), rel=1e-9)
    # lifetimes 0.11.3 BetaGeoBetaBinomFitter on donations.csv: x=1, t_x=2, n=6, 10 periods
    assert fitted.conditional_expected_purchases_np(10, 1, 2, 6)[()] == pytest.approx(
        0.5616, abs=2e-4
    )


@settings(max_examples=60, deadline=None)
@given(
    st.floats(0.1, 5),
    st.floats(0.1, 5),
    st.floats(0.1, 5).filter(lambda v: abs(v - 1) > 0.05),
    st.floats(0.1, 5),
    st.integers(1, 12),
    st.data(),
)
def test_formulas_property(a, b, g, d, n, data):
    tx = data.draw(st.integers(0, n))
    x = 0 if tx == 0 else data.draw(st.integers(1, tx))
    t = data.draw(st.integers(0, 10))
    params = (a, b, g, d)
    ll = bgbb_likelihood(a, b, g, d, x, tx, n)
    alive = float(bgbb_probability_alive(params, x, tx, n))
    assert alive == pytest.approx(bgbb_p_alive(a, b, g, d, x, tx, n), rel=1e-8)
    assert 0 <= alive <= 1 + 1e-12
    later = float(bgbb_probability_alive(params, x, tx, n, t))
    assert later <= alive + 1e-12
    e = float(bgbb_conditional_expected(params, t, x, tx, n))
    assert e == pytest.approx(bgbb_expected_by_sum(a, b, g, d, t, x, tx, n), rel=1e-7, abs=1e-12)
    assert 0 <= e <= t + 1e-9
    assert ll > 0


def test_persistence(fitted):
    loaded = model_from_json(fitted.to_json())
    assert isinstance(loaded, BetaGeoBetaBinom)
    assert loaded.params == fitted.params
    np.testing.assert_array_equal(
        loaded.conditional_expected_purchases_np(3, [0, 2], [0, 5], [6, 6]),
        fitted.conditional_expected_purchases_np(3, [0, 2], [0, 5], [6, 6]),
    )


def test_fit_validates(spark):
    bad = spark.createDataFrame(
        [(3.0, 2.0, 6.0)], "frequency double, recency double, n_periods double"
    )
    with pytest.raises(SchemaError):
        BetaGeoBetaBinom().fit(bad)
    with pytest.raises(SchemaError):
        BetaGeoBetaBinom().fit(bad, n_periods_col="missing")


@pytest.mark.connect
def test_discrete_rfm_summary(spark):
    log = spark.createDataFrame(
        [
            ("a", dt.date(2020, 3, 1)),
            ("a", dt.date(2020, 9, 1)),
            ("a", dt.date(2022, 5, 1)),
            ("a", dt.date(2023, 1, 1)),
            ("b", dt.date(2021, 1, 1)),
            ("c", dt.date(2023, 2, 1)),
            ("c", dt.date(2024, 1, 1)),
            (None, dt.date(2020, 1, 1)),
        ],
        "account string, day date",
    )
    out = discrete_rfm_summary(log, account_col="account", date_col="day")
    got = {r.account: (r.frequency, r.recency, r.n_periods) for r in out.collect()}
    assert got == {"a": (2.0, 3.0, 4.0), "b": (0.0, 0.0, 3.0), "c": (1.0, 1.0, 1.0)}
    out = discrete_rfm_summary(
        log, account_col="account", date_col="day", period="quarter", observation_end="2023-06-30"
    )
    got = {r.account: (r.frequency, r.recency, r.n_periods) for r in out.collect()}
    # a: quarters 2020Q1, 2020Q3, 2022Q2, 2023Q1 -> indices 0, 2, 9, 12; end 2023Q2 = 13
    assert got == {"a": (3.0, 12.0, 13.0), "b": (0.0, 0.0, 9.0), "c": (0.0, 0.0, 1.0)}
    with pytest.raises(SchemaError):
        discrete_rfm_summary(log, account_col="account", date_col="day", period="week")  # type: ignore[arg-type]


def test_betageo_weights_col_equals_repeated_rows(spark):
    # Nine accounts do not identify BG/NBD unpenalised (a ConvergenceError); a small penalty
    # keeps the comparison about the weights.
    from kamlib.clv import BetaGeo

    tuples = [(0.0, 0.0, 30.0, 3.0), (2.0, 10.0, 30.0, 2.0), (5.0, 25.0, 30.0, 1.0)]
    tuples += [(1.0, 5.0, 20.0, 2.0), (3.0, 18.0, 25.0, 1.0)]
    weighted = spark.createDataFrame(tuples, "frequency double, recency double, T double, w double")
    rows = [t[:3] for t in tuples for _ in range(int(t[3]))]
    plain = spark.createDataFrame(rows, "frequency double, recency double, T double")
    a = BetaGeo(penalizer=0.01).fit(weighted, weights_col="w")
    b = BetaGeo(penalizer=0.01).fit(plain)
    for name in a.param_names:
        assert a.params[name] == pytest.approx(b.params[name], rel=1e-6)
    assert a.fit_info["n"] == 9.0


@pytest.mark.parametrize("value", [math.inf, -1.0, math.nan])
def test_horizons_must_be_finite_non_negative(value):
    """``t`` and ``future_periods`` are checked before anything else (no fit, no Spark)."""
    model = BetaGeoBetaBinom()
    with pytest.raises(SchemaError) as info:
        model.expected_purchases(None, value)
    assert (info.value.function, info.value.argument) == (
        "BetaGeoBetaBinom.expected_purchases",
        "t",
    )
    with pytest.raises(SchemaError) as info:
        model.probability_alive(None, future_periods=value)
    assert info.value.argument == "future_periods"
