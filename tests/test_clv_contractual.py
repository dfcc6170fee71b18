"""kamlib.clv.contractual: the shifted-beta-geometric model (Fader and Hardie 2007, 2010)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import special

from kamlib import ConvergenceError, NotFittedError, SchemaError
from kamlib.clv import ShiftedBetaGeo, load_model, model_from_json

HIGH_END = [1000, 869, 743, 653, 593, 551, 517, 491]
REGULAR = [1000, 631, 468, 382, 326, 289, 262, 241]


def _expand(survivors):
    """One row per customer: lost in year t -> (t, churned); year-7 survivors censored."""
    rows = []
    k = len(survivors) - 1
    for t in range(1, k + 1):
        rows += [(t, True)] * (survivors[t - 1] - survivors[t])
    rows += [(k, False)] * survivors[-1]
    return rows


def _published(x):
    """Round as published: 3 decimals (at least 3 significant digits for these values)."""
    return round(x, 3)


def _reference_loglik(alpha, beta, rows):
    """Plain-Python sBG log-likelihood from the published formulas (no vectorisation)."""
    total = 0.0
    base = math.lgamma(alpha) + math.lgamma(beta) - math.lgamma(alpha + beta)
    for t, churned in rows:
        if churned:
            num = math.lgamma(alpha + 1) + math.lgamma(beta + t - 1) - math.lgamma(alpha + beta + t)
        else:
            num = math.lgamma(alpha) + math.lgamma(beta + t) - math.lgamma(alpha + beta + t)
        total += num - base
    return total


@pytest.mark.connect
@pytest.mark.parametrize(
    ("survivors", "alpha", "beta"),
    [(HIGH_END, 0.668, 3.806), (REGULAR, 0.704, 1.182)],
)
def test_published_estimates_from_one_row_per_customer(spark, survivors, alpha, beta):
    rows = _expand(survivors)
    assert len(rows) == 1000
    df = spark.createDataFrame(
        [(i, t, c) for i, (t, c) in enumerate(rows)],
        "account_id int, periods int, churned boolean",
    )
    model = ShiftedBetaGeo().fit(df)
    assert _published(model.params["alpha"]) == alpha
    assert _published(model.params["beta"]) == beta
    assert model.excluded == 0
    assert model.fit_info["n"] == 1000
    assert model.log_likelihood == pytest.approx(
        _reference_loglik(model.params["alpha"], model.params["beta"], rows), rel=1e-12
    )
    same = ShiftedBetaGeo().fit_survivors(survivors)
    assert same.params == pytest.approx(model.params, rel=1e-10)


def test_fit_is_the_maximum_and_standard_errors_match_numeric_hessian():
    rows = _expand(REGULAR)
    model = ShiftedBetaGeo().fit_survivors(REGULAR)
    a, b = model.params["alpha"], model.params["beta"]
    best = _reference_loglik(a, b, rows)
    for da, db in [(1e-3, 0), (-1e-3, 0), (0, 1e-3), (0, -1e-3)]:
        assert _reference_loglik(a + da, b + db, rows) < best
    # numeric Hessian of the reference log-likelihood
    h = 1e-4
    f = lambda x, y: _reference_loglik(x, y, rows)  # noqa: E731
    haa = (f(a + h, b) - 2 * f(a, b) + f(a - h, b)) / h**2
    hbb = (f(a, b + h) - 2 * f(a, b) + f(a, b - h)) / h**2
    hab = (f(a + h, b + h) - f(a + h, b - h) - f(a - h, b + h) + f(a - h, b - h)) / (4 * h * h)
    cov = np.linalg.inv(-np.array([[haa, hab], [hab, hbb]]))
    se = model.standard_errors
    assert se["alpha"] == pytest.approx(math.sqrt(cov[0, 0]), rel=1e-3)
    assert se["beta"] == pytest.approx(math.sqrt(cov[1, 1]), rel=1e-3)


def test_survival_retention_and_churn_curves():
    model = ShiftedBetaGeo().fit_survivors(HIGH_END)
    a, b = model.params["alpha"], model.params["beta"]
    t = np.arange(0, 20)
    s = model.survival(t)
    assert s[0] == pytest.approx(1.0)
    assert np.all(np.diff(s) < 0)
    # S(t) = prod of retention rates, P(T = t) = S(t-1) - S(t)
    assert s[1:] == pytest.approx(np.cumprod(model.retention_rate(t[1:])), rel=1e-12)
    assert model.churn_probability(t[1:]) == pytest.approx(s[:-1] - s[1:], rel=1e-10)
    assert model.retention_rate(1) == pytest.approx(b / (a + b))
    assert isinstance(model.survival(3), float)
    assert isinstance(model.retention_rate(3.0), float)
    # fitted survivor curve close to the published data (Fader and Hardie 2007, figure 3)
    assert 1000 * model.survival(7) == pytest.approx(491, abs=5)


@settings(max_examples=30)
@given(
    alpha=st.floats(min_value=0.05, max_value=20),
    beta=st.floats(min_value=0.05, max_value=20),
    n=st.integers(min_value=0, max_value=30),
    d=st.floats(min_value=0.01, max_value=1.0),
)
def test_derl_equals_the_discounted_sum(alpha, beta, n, d):
    model = ShiftedBetaGeo()
    model._set_fitted({"alpha": alpha, "beta": beta})
    derl = float(model.expected_residual_lifetime_np([n], discount_rate=d)[0])
    # direct sum: sum_{t > n} S(t) / S(n) / (1 + d)^(t - n - 1)
    t = np.arange(n + 1, n + 20000, dtype=float)
    log_s = special.betaln(alpha, beta + t) - special.betaln(alpha, beta + n)
    direct = float(np.sum(np.exp(log_s - (t - n - 1) * np.log1p(d))))
    assert derl == pytest.approx(direct, rel=1e-6)
    del_ = model.discounted_expected_lifetime(d)
    assert float(model.expected_residual_lifetime_np([0], discount_rate=d)[0]) == pytest.approx(
        (del_ - 1.0) * (1.0 + d), rel=1e-9, abs=1e-12
    )


@pytest.mark.connect
def test_expected_residual_lifetime_on_spark(spark):
    model = ShiftedBetaGeo().fit_survivors(REGULAR)
    df = spark.createDataFrame(
        [("a", 1, False), ("b", 7, False), ("c", 3, True), ("d", None, False), ("e", -1, False)],
        "account_id string, periods int, churned boolean",
    )
    out = model.expected_residual_lifetime(df, discount_rate=0.1, churned_col="churned")
    assert out.columns == ["account_id", "periods", "churned", "derl"]
    got = {r.account_id: r.derl for r in out.collect()}
    expected = model.expected_residual_lifetime_np([1, 7], discount_rate=0.1)
    assert got["a"] == pytest.approx(expected[0], rel=1e-12)
    assert got["b"] == pytest.approx(expected[1], rel=1e-12)
    assert [got["c"], got["d"], got["e"]] == [None, None, None]
    # DERL grows with tenure (survivors are the low-churn accounts), falls with the rate
    assert got["b"] > got["a"]
    lower = model.expected_residual_lifetime(df, discount_rate=0.2, output_col="v")
    assert {r.account_id: r.v for r in lower.collect()}["a"] < got["a"]


def test_invalid_rows_are_excluded_and_counted(spark):
    rows = [(t, c) for t, c in _expand(HIGH_END)]
    data = [(float(t), int(c)) for t, c in rows] + [(None, 1), (0.0, 0), (2.5, 1), (3.0, None)]
    df = spark.createDataFrame(data, "periods double, churned int")
    model = ShiftedBetaGeo().fit(df)
    assert model.excluded == 4
    assert _published(model.params["alpha"]) == 0.668


def test_json_round_trip(tmp_path):
    model = ShiftedBetaGeo().fit_survivors(HIGH_END)
    again = model_from_json(model.to_json())
    assert isinstance(again, ShiftedBetaGeo)
    assert again.params == model.params
    assert again.standard_errors == model.standard_errors
    path = tmp_path / "sbg.json"
    model.save(path)
    loaded = load_model(path)
    t = np.arange(1, 10)
    assert np.array_equal(loaded.survival(t), model.survival(t))


def test_errors(spark):
    with pytest.raises(NotFittedError):
        _ = ShiftedBetaGeo().params
    with pytest.raises(NotFittedError):
        ShiftedBetaGeo().survival(1)
    df = spark.createDataFrame([(1, "yes")], "periods int, churned string")
    with pytest.raises(SchemaError, match="column 'churned' must be boolean"):
        ShiftedBetaGeo().fit(df)
    with pytest.raises(SchemaError, match="column 'tenure'"):
        ShiftedBetaGeo().fit(df, periods_col="tenure")
    with pytest.raises(SchemaError, match="periods must be integers >= 1"):
        ShiftedBetaGeo().fit_arrays([0, 1], [True, False])
    with pytest.raises(SchemaError, match="same length"):
        ShiftedBetaGeo().fit_arrays([1, 2], [True])
    with pytest.raises(SchemaError, match="non-increasing"):
        ShiftedBetaGeo().fit_survivors([100, 120])
    model = ShiftedBetaGeo().fit_survivors(HIGH_END)
    with pytest.raises(SchemaError, match="discount_rate= must be > 0"):
        model.expected_residual_lifetime(df, discount_rate=0.0)
    empty = spark.createDataFrame([(None, True)], "periods int, churned boolean")
    with pytest.raises(SchemaError, match="no valid rows"):
        ShiftedBetaGeo().fit(empty)


def test_degenerate_data_raises_convergence_error():
    # nobody ever churns: the MLE runs off to alpha -> 0 (a boundary), so no interior optimum
    with pytest.raises(ConvergenceError):
        ShiftedBetaGeo().fit_arrays([5, 5, 5], [False, False, False])


def test_fit_lost_equals_fit_survivors():
    lost = [HIGH_END[t - 1] - HIGH_END[t] for t in range(1, len(HIGH_END))]
    a = ShiftedBetaGeo().fit_lost(lost, active=HIGH_END[-1])
    b = ShiftedBetaGeo().fit_survivors(HIGH_END)
    assert a.params == pytest.approx(b.params, rel=1e-12)
    with pytest.raises(SchemaError, match="fit_lost"):
        ShiftedBetaGeo().fit_lost([-1], active=3)
