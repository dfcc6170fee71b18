"""BG/NBD with time-invariant covariates (Fader & Hardie 2007).

References: the likelihood and predictions of each account are the published BG/NBD formulas
(``tests/reference/clv_models.py``) at the account's own parameters
alpha_i = alpha exp(-g . z), a_i = a exp(d_a . z), b_i = b exp(d_b . z); the coefficients are
checked on data simulated from known values.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from kamlib import SchemaError
from kamlib.clv import (
    BetaGeo,
    GammaGamma,
    ModifiedBetaGeo,
    ParetoNBD,
    customer_lifetime_value,
    evaluate_holdout,
    model_from_json,
)
from kamlib.clv import _likelihoods as L
from kamlib.datasets import load_cdnow_summary
from kamlib.errors import ModelFormatError
from tests.reference.clv_models import bg_conditional_expected, bg_likelihood, bg_p_alive

TRUTH = {"r": 0.5, "alpha": 5.0, "a": 0.8, "b": 2.5, "g": 0.5, "da": 0.7, "db": -0.4}


def simulate_bgnbd(alpha_i, a_i, b_i, r, T, rng):
    """BG/NBD purchase histories, account by account in vectorised steps (numpy only)."""
    n = T.size
    lam = rng.gamma(r, 1.0 / alpha_i)
    p = rng.beta(a_i, b_i)
    t, x, tx = np.zeros(n), np.zeros(n), np.zeros(n)
    alive = np.ones(n, dtype=bool)
    while alive.any():
        idx = np.flatnonzero(alive)
        t[idx] += rng.exponential(1.0 / lam[idx])
        over = t[idx] > T[idx]
        alive[idx[over]] = False
        buy = idx[~over]
        x[buy] += 1
        tx[buy] = t[buy]
        alive[buy[rng.random(buy.size) < p[buy]]] = False
    return x, tx


def _random_groups(n=200, seed=3):
    rng = np.random.default_rng(seed)
    T = rng.uniform(5, 40, n)
    x = rng.poisson(2, n).astype(float)
    tx = np.where(x > 0, T * rng.uniform(0, 1, n), 0.0)
    w = rng.integers(1, 4, n).astype(float)
    zp = rng.normal(size=(n, 2))
    zd = np.column_stack([rng.integers(0, 2, n), rng.normal(size=n)]).astype(float)
    return x, tx, T, w, zp, zd


def test_loglik_is_the_plain_likelihood_at_each_accounts_parameters():
    x, tx, T, w, zp, zd = _random_groups()
    # log r, log alpha, log a, log b, g (2), d_a (2), d_b (2)
    theta = np.array([*np.log([0.4, 3.0, 0.9, 2.5]), 0.3, -0.2, 0.5, -0.1, -0.4, 0.2])
    ll, _ = L.bg_cov_loglik_grad(theta, L.BGCovData.build(x, tx, T, w, zp, zd))
    ref = 0.0
    for i in range(x.size):
        alpha_i = 3.0 * math.exp(-(0.3 * zp[i, 0] - 0.2 * zp[i, 1]))
        a_i = 0.9 * math.exp(0.5 * zd[i, 0] - 0.1 * zd[i, 1])
        b_i = 2.5 * math.exp(-0.4 * zd[i, 0] + 0.2 * zd[i, 1])
        ref += w[i] * math.log(bg_likelihood(0.4, alpha_i, a_i, b_i, int(x[i]), tx[i], T[i]))
    assert ll == pytest.approx(ref, rel=1e-10)


def test_gradient_matches_finite_differences():
    x, tx, T, w, zp, zd = _random_groups()
    data = L.BGCovData.build(x, tx, T, w, zp, zd)
    theta = np.array([-0.9, 1.1, -0.1, 0.9, 0.3, -0.2, 0.5, -0.1, -0.4, 0.2])
    _, grad = L.bg_cov_loglik_grad(theta, data)
    h = 1e-6
    for i in range(theta.size):
        e = np.zeros_like(theta)
        e[i] = h
        fd = L.bg_cov_loglik_grad(theta + e, data)[0] - L.bg_cov_loglik_grad(theta - e, data)[0]
        assert grad[i] == pytest.approx(fd / (2 * h), rel=1e-6, abs=1e-5), i


def test_no_covariates_is_the_plain_likelihood():
    x, tx, T, w, _, _ = _random_groups()
    empty = np.zeros((x.size, 0))
    p = (0.4, 3.0, 0.9, 2.5)
    ll, grad = L.bg_cov_loglik_grad(np.log(p), L.BGCovData.build(x, tx, T, w, empty, empty))
    plain = L.BGData.build(x, tx, T, w)
    assert ll == pytest.approx(L.bg_loglik_total(p, plain), rel=1e-13)
    np.testing.assert_allclose(grad, L.bg_loglik_grad(p, plain) * np.array(p), rtol=1e-10)


def test_kernels_broadcast_per_row_parameters():
    rng = np.random.default_rng(5)
    n = 50
    T = rng.uniform(1, 40, n)
    x = rng.poisson(3, n).astype(float)
    tx = np.where(x > 0, T * rng.uniform(0, 1, n), 0.0)
    alpha = rng.uniform(1, 10, n)
    a = rng.uniform(0.3, 2.0, n)
    a[:3] = 1.0  # the removable singularity, row by row
    b = rng.uniform(0.5, 4.0, n)
    got = L.bg_conditional_expected((0.6, alpha, a, b), 12.0, x, tx, T)
    alive = L.bg_probability_alive((0.6, alpha, a, b), x, tx, T)
    for i in range(n):
        ai = a[i] if abs(a[i] - 1) > 1e-3 else 1.0 + 1e-7
        ref = bg_conditional_expected(0.6, alpha[i], ai, b[i], 12.0, int(x[i]), tx[i], T[i])
        assert got[i] == pytest.approx(ref, rel=1e-6)
        assert alive[i] == pytest.approx(
            bg_p_alive(0.6, alpha[i], a[i], b[i], int(x[i]), tx[i], T[i]), rel=1e-12
        )


@pytest.fixture(scope="module")
def simulated(spark):
    rng = np.random.default_rng(2007)
    n = 20_000
    z1 = rng.normal(size=n)
    z2 = (rng.random(n) < 0.4).astype(float)
    T = rng.uniform(30.0, 60.0, n)
    alpha_i = TRUTH["alpha"] * np.exp(-TRUTH["g"] * z1)
    a_i = TRUTH["a"] * np.exp(TRUTH["da"] * z2)
    b_i = TRUTH["b"] * np.exp(TRUTH["db"] * z2)
    x, tx = simulate_bgnbd(alpha_i, a_i, b_i, TRUTH["r"], T, rng)
    pdf = pd.DataFrame(
        {"account_id": np.arange(n), "frequency": x, "recency": tx, "T": T, "z1": z1, "z2": z2}
    )
    # five accounts with a missing covariate: excluded and counted
    pdf.loc[:2, "z1"] = np.nan
    pdf["z2"] = pdf["z2"].astype(object)
    pdf.loc[3:4, "z2"] = None
    pdf["z2"] = pdf["z2"].astype(float)
    df = spark.createDataFrame(pdf).cache()
    model = BetaGeo().fit(df, purchase_covariates=["z1"], dropout_covariates=["z2"])
    return df, pdf, model


@pytest.mark.connect
def test_coefficients_recovered_within_three_standard_errors(simulated):
    _, _, model = simulated
    coef, se = model.coefficients, model.coefficient_standard_errors
    assert set(coef) == {"purchase", "dropout_a", "dropout_b"}
    for group, key in (("purchase", "g"), ("dropout_a", "da"), ("dropout_b", "db")):
        (name,) = coef[group]
        assert se[group][name] > 0
        assert abs(coef[group][name] - TRUTH[key]) < 3 * se[group][name], (group, coef, se)
    for name in ("r", "alpha", "a", "b"):
        assert abs(model.params[name] - TRUTH[name]) < 3 * model.standard_errors[name], name
    assert model.fit_info["excluded"] == 5
    assert model.fit_info["n"] == 20_000 - 5
    assert model.n_params == 7
    assert model.aic == pytest.approx(14 - 2 * model.log_likelihood)
    assert model.covariate_columns == ("z1", "z2")


@pytest.mark.connect
def test_predictions_use_each_accounts_parameters(simulated):
    df, pdf, model = simulated
    scored = (
        model.expected_purchases(df.where("account_id < 40"), 10.0)
        .transform(model.probability_alive)
        .orderBy("account_id")
        .toPandas()
    )
    p, c = model.params, model.coefficients
    g, da, db = c["purchase"]["z1"], c["dropout_a"]["z2"], c["dropout_b"]["z2"]
    for row in scored.itertuples():
        if row.account_id < 5:  # missing covariate -> null prediction
            assert math.isnan(row.expected_purchases)
            assert math.isnan(row.p_alive)
            continue
        alpha_i = p["alpha"] * math.exp(-g * row.z1)
        a_i = p["a"] * math.exp(da * row.z2)
        b_i = p["b"] * math.exp(db * row.z2)
        ref = bg_conditional_expected(
            p["r"], alpha_i, a_i, b_i, 10.0, int(row.frequency), row.recency, row.T
        )
        assert row.expected_purchases == pytest.approx(ref, rel=1e-8)
        alive = bg_p_alive(p["r"], alpha_i, a_i, b_i, int(row.frequency), row.recency, row.T)
        assert row.p_alive == pytest.approx(alive, rel=1e-10)
    # CLV through the same parameters: equal to a plain model at one account's parameters
    one = pdf.iloc[[10]].assign(monetary_value=20.0)
    gg = GammaGamma().fit_arrays([1.0, 2.0, 3.0, 5.0], [10.0, 30.0, 20.0, 25.0])
    spark = df.sparkSession
    clv = customer_lifetime_value(
        spark.createDataFrame(one), transaction_model=model, spend_model=gg, months=6
    ).first()
    r10 = one.iloc[0]
    local = BetaGeo.from_dict(
        {
            "kamlib_model": "BetaGeo",
            "params": {
                "r": p["r"],
                "alpha": p["alpha"] * math.exp(-g * r10.z1),
                "a": p["a"] * math.exp(da * r10.z2),
                "b": p["b"] * math.exp(db * r10.z2),
            },
        }
    )
    ref = customer_lifetime_value(
        spark.createDataFrame(one.drop(columns=["z1", "z2"])),
        transaction_model=local,
        spend_model=gg,
        months=6,
    ).first()
    assert clv.clv == pytest.approx(ref.clv, rel=1e-9)
    # evaluate_holdout reads the covariates too
    holdout = df.where("account_id < 200").selectExpr("*", "1.0 as frequency_holdout")
    row = evaluate_holdout(holdout, transaction_model=model, duration=10.0).first()
    assert (row.n_accounts, row.n_excluded) == (195, 5)


@pytest.mark.connect
def test_missing_covariate_column_is_a_schema_error(simulated):
    df, _, model = simulated
    with pytest.raises(SchemaError, match="z1"):
        model.expected_purchases(df.drop("z1"), 10.0)
    with pytest.raises(SchemaError, match="z2"):
        model.probability_alive(df.drop("z2"))
    with pytest.raises(SchemaError, match="nope"):
        BetaGeo().fit(df, purchase_covariates=["nope"])
    with pytest.raises(SchemaError, match="purchase_covariates"):
        BetaGeo().fit(df, purchase_covariates="z1")
    with pytest.raises(SchemaError, match="BetaGeo only"):
        ParetoNBD().fit(df, dropout_covariates=["z2"])
    with pytest.raises(SchemaError, match="BetaGeo only"):
        ModifiedBetaGeo().fit(df, dropout_covariates=["z2"])
    with pytest.raises(SchemaError, match="covariates"):
        model.conditional_expected_purchases_np(1.0, 1.0, 1.0, 2.0)


@pytest.mark.connect
def test_json_round_trip_with_coefficients(simulated):
    model = simulated[2]
    loaded = model_from_json(model.to_json())
    assert loaded.coefficients == model.coefficients
    assert loaded.coefficient_standard_errors == model.coefficient_standard_errors
    assert loaded.params == model.params
    cols = {"z1": np.array([0.3, -1.0]), "z2": np.array([1.0, 0.0])}
    args = (5.0, np.array([2.0, 0.0]), np.array([10.0, 0.0]), np.array([30.0, 20.0]))
    np.testing.assert_array_equal(
        loaded.conditional_expected_purchases_np(*args, covariates=cols),
        model.conditional_expected_purchases_np(*args, covariates=cols),
    )
    doc = json.loads(model.to_json())
    doc["fit"]["coefficients"]["purchase"]["z1"] = "big"
    with pytest.raises(ModelFormatError, match="coefficients"):
        model_from_json(json.dumps(doc))
    doc = json.loads(model.to_json())
    del doc["fit"]["coefficients"]["dropout_b"]
    with pytest.raises(ModelFormatError, match="dropout_a and dropout_b"):
        model_from_json(json.dumps(doc))
    doc = json.loads(model.to_json())
    doc["kamlib_model"] = "ParetoNBD"
    doc["params"] = {"r": 1.0, "alpha": 1.0, "s": 1.0, "beta": 1.0}
    with pytest.raises(ModelFormatError, match="no covariates"):
        model_from_json(json.dumps(doc))


def test_json_without_coefficients_still_loads():
    old = {
        "kamlib_model": "BetaGeo",
        "format_version": 1,
        "kamlib_version": "0.1.0",
        "settings": {"penalizer": 0.0},
        "params": {"r": 0.24, "alpha": 4.4, "a": 0.79, "b": 2.43},
        "fit": {"n": 2357.0},
    }
    model = model_from_json(json.dumps(old))
    assert model.coefficients == {"purchase": {}, "dropout_a": {}, "dropout_b": {}}
    assert model.covariate_columns == ()
    assert model.n_params == 4
    assert float(model.conditional_expected_purchases_np(39, 2, 30.43, 38.86)) > 0
    assert "coefficients" not in json.loads(model.to_json())["fit"]


@pytest.mark.connect
def test_zero_covariates_equals_plain_fit(spark):
    summary = load_cdnow_summary(spark)
    plain = BetaGeo().fit(summary)
    same = BetaGeo().fit(summary, purchase_covariates=(), dropout_covariates=())
    assert same.params == plain.params
    assert same.coefficients == {"purchase": {}, "dropout_a": {}, "dropout_b": {}}
    # a covariate with no effect (pure noise) leaves the parameters where the plain fit is
    pdf = summary.toPandas()
    pdf["noise"] = np.random.default_rng(0).normal(size=len(pdf))
    noisy = BetaGeo().fit(spark.createDataFrame(pdf), purchase_covariates=["noise"])
    g = noisy.coefficients["purchase"]["noise"]
    assert abs(g) < 3 * noisy.coefficient_standard_errors["purchase"]["noise"]
    assert noisy.log_likelihood >= plain.log_likelihood - 1e-6
    assert noisy.log_likelihood - plain.log_likelihood < 6.0  # chi2(1) at 0.1%: 10.8 / 2


def test_unique_rows_matches_numpy():
    rng = np.random.default_rng(11)
    rows = np.column_stack(
        [rng.integers(0, 4, 500), rng.normal(size=500).round(1), rng.integers(0, 3, 500)]
    ).astype(float)
    got, inverse = L._unique_rows(rows)
    ref, ref_inverse = np.unique(rows, axis=0, return_inverse=True)
    np.testing.assert_array_equal(got, ref)
    np.testing.assert_array_equal(got[inverse], rows)
    np.testing.assert_array_equal(inverse, np.asarray(ref_inverse).ravel())


@pytest.mark.parametrize(
    "values",
    [
        np.random.default_rng(1).integers(0, 50, 1000).astype(float),  # whole days: bincount
        np.random.default_rng(2).integers(0, 9, 10),  # integer dtype
        np.random.default_rng(3).random(100),  # fractional: np.unique
        np.array([0.0, 1e12, 5.0]),  # integers over a wide range: np.unique
        np.array([-1.0, 2.0, 2.0]),  # negative
        np.array([1.5, 1.5, 2.0]),
        np.array([3.0]),
        np.array([], dtype=float),
    ],
)
def test_unique_inverse_matches_numpy(values):
    got, inverse = L.unique_inverse(values)
    ref, ref_inverse = np.unique(values, return_inverse=True)
    np.testing.assert_array_equal(got, ref)
    assert got.dtype == ref.dtype
    np.testing.assert_array_equal(inverse, np.asarray(ref_inverse).ravel())
