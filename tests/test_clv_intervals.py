"""Predictive intervals of expected purchases and CLV: coverage on simulated BG/NBD truth."""

from __future__ import annotations

import numpy as np
import pytest

from kamlib import SchemaError
from kamlib.clv import (
    BetaGeo,
    GammaGamma,
    ModifiedBetaGeo,
    customer_lifetime_value,
    model_from_json,
)

TRUTH = {"r": 0.25, "alpha": 4.0, "a": 0.8, "b": 2.5}
HOLDOUT = 39.0


def simulate(n: int, seed: int) -> tuple[np.ndarray, ...]:
    """Calibration summary and holdout purchases from the BG/NBD generative process.

    Each account buys as a Poisson process with rate lambda ~ Gamma(r, alpha) from its first
    purchase at time 0 and drops out after each purchase with probability p ~ Beta(a, b);
    calibration ages T ~ U(10, 52) weeks, holdout the next 39 weeks.
    """
    rng = np.random.default_rng(seed)
    lam = rng.gamma(TRUTH["r"], 1.0 / TRUTH["alpha"], n)
    p = rng.beta(TRUTH["a"], TRUTH["b"], n)
    T = rng.uniform(10.0, 52.0, n)
    x, tx, hold = np.zeros(n), np.zeros(n), np.zeros(n)
    for i in range(n):
        t, last, cnt, h = 0.0, 0.0, 0, 0
        while True:
            t += rng.exponential(1.0 / lam[i])
            if t > T[i] + HOLDOUT:
                break
            if t <= T[i]:
                cnt, last = cnt + 1, t
            else:
                h += 1
            if rng.uniform() < p[i]:
                break
        x[i], tx[i], hold[i] = cnt, last, h
    return x, tx, T, hold


@pytest.fixture(scope="module")
def simulated(spark):
    x, tx, T, hold = simulate(4000, seed=7)
    rows = [
        (i, float(a), float(b), float(c), float(d))
        for i, (a, b, c, d) in enumerate(zip(x, tx, T, hold, strict=True))
    ]
    df = spark.createDataFrame(
        rows, "account_id long, frequency double, recency double, T double, holdout double"
    )
    return df, BetaGeo().fit(df)


@pytest.mark.connect
def test_coverage_on_simulated_bg_nbd(simulated):
    df, model = simulated
    scored = model.expected_purchases(df, HOLDOUT, interval=0.8, output_col="e80")
    scored = model.expected_purchases(scored, HOLDOUT, interval=0.9, output_col="e90")
    pdf = scored.toPandas()
    assert len(pdf) == 4000
    point = model.conditional_expected_purchases_np(HOLDOUT, pdf.frequency, pdf.recency, pdf["T"])
    np.testing.assert_allclose(pdf.e80, point, rtol=1e-12)
    for level, col in ((0.8, "e80"), (0.9, "e90")):
        low, high = pdf[f"{col}_low"], pdf[f"{col}_high"]
        assert (low <= high).all()
        assert (low >= 0).all()
        assert np.all(low == np.floor(low))
        assert np.all(high == np.floor(high))
        covered = float(((pdf.holdout >= low) & (pdf.holdout <= high)).mean())
        assert level - 0.02 <= covered <= level + 0.06, (level, covered)
    # nested: the 90% interval contains the 80% one
    assert (pdf.e90_low <= pdf.e80_low).all()
    assert (pdf.e90_high >= pdf.e80_high).all()


@pytest.mark.connect
def test_interval_columns_and_invalid_rows(spark, simulated):
    _, model = simulated
    df = spark.createDataFrame(
        [(2.0, 30.0, 38.0), (0.0, 0.0, 20.0), (-1.0, 0.0, 5.0), (None, 1.0, 5.0)],
        "frequency double, recency double, T double",
    )
    scored = model.expected_purchases(df, 10.0, interval=0.5)
    assert scored.columns == [
        *df.columns,
        "expected_purchases",
        "expected_purchases_low",
        "expected_purchases_high",
    ]
    rows = scored.collect()
    for r in rows[:2]:
        assert 0 <= r.expected_purchases_low <= r.expected_purchases_high
    for r in rows[2:]:
        assert r.expected_purchases_low is None
        assert r.expected_purchases_high is None
    for bad in (0.0, 1.0, 1.5, -0.2):
        with pytest.raises(SchemaError, match="interval"):
            model.expected_purchases(df, 10.0, interval=bad)


def test_covariance_persists_and_old_documents_still_load(simulated):
    _, model = simulated
    cov = np.asarray(model.fit_info["covariance"])
    assert cov.shape == (4, 4)
    se = np.sqrt(np.diag(cov))
    np.testing.assert_allclose(se, [model.standard_errors[n] for n in model.param_names])
    loaded = model_from_json(model.to_json())
    x, tx, T = np.array([0.0, 3.0, 10.0]), np.array([0.0, 20.0, 30.0]), np.array([30.0, 40.0, 40.0])
    want = model.predictive_interval_np(20.0, x, tx, T, interval=0.8)
    got = loaded.predictive_interval_np(20.0, x, tx, T, interval=0.8)
    np.testing.assert_array_equal(want, got)
    # a document written before the covariance was stored: the squared SEs are used
    import json

    doc = json.loads(model.to_json())
    del doc["fit"]["covariance"]
    old = model_from_json(json.dumps(doc))
    low, high = old.predictive_interval_np(20.0, x, tx, T, interval=0.8)
    assert np.all(low <= high)


def _reference_interval(pmf: np.ndarray, level: float) -> tuple[int, int]:
    """The documented rule, written out: low = (1-c)/2 quantile, high = first k >= low with
    F(k) - F(low - 1) >= c."""
    cdf = np.cumsum(pmf)
    low = int(np.argmax(cdf >= (1 - level) / 2 - 1e-10))
    below = cdf[low - 1] if low > 0 else 0.0
    high = next(k for k in range(low, pmf.size) if cdf[k] - below >= level - 1e-10)
    return low, high


def test_interval_rule_without_parameter_uncertainty(simulated):
    _, model = simulated
    sharp = BetaGeo()
    sharp._set_fitted(model.params, covariance=np.zeros((4, 4)).tolist())
    x = np.array([0.0, 1.0, 5.0, 20.0, 2.0])
    tx = np.array([0.0, 10.0, 30.0, 40.0, 1.0])
    T = np.array([40.0, 40.0, 40.0, 40.0, 40.0])
    ks = np.arange(0, 400)[:, None]
    pmf = sharp.conditional_probability_of_n_purchases_np(ks, 52.0, x, tx, T)
    for level in (0.5, 0.8, 0.9, 0.99):
        low, high = sharp.predictive_interval_np(52.0, x, tx, T, interval=level)
        want = [_reference_interval(pmf[:, i], level) for i in range(x.size)]
        assert list(zip(low, high, strict=True)) == want
    # parameter uncertainty only adds spread: the mixture interval is never narrower here
    wide = BetaGeo()
    wide._set_fitted(
        model.params, covariance=(np.asarray(model.fit_info["covariance"]) * 4).tolist()
    )
    lo_s, hi_s = sharp.predictive_interval_np(52.0, x, tx, T, interval=0.9)
    lo_w, hi_w = wide.predictive_interval_np(52.0, x, tx, T, interval=0.9)
    assert np.all(hi_w - lo_w >= hi_s - lo_s)


@pytest.mark.connect
def test_clv_interval_columns(spark, simulated):
    df, bg = simulated
    gg = GammaGamma()
    gg._set_fitted({"p": 6.0, "q": 4.0, "v": 15.0})
    summary = df.selectExpr("*", "CASE WHEN frequency > 0 THEN 20.0 ELSE 0.0 END AS monetary_value")
    summary = summary.limit(300)
    one = customer_lifetime_value(
        summary, transaction_model=bg, spend_model=gg, freq="W", months=6, interval=0.8
    )
    assert one.columns[-3:] == ["clv", "clv_low", "clv_high"]
    many = customer_lifetime_value(
        summary, transaction_model=bg, spend_model=gg, freq="W", months=(3, 12), interval=0.8
    )
    assert many.columns[-6:] == [
        "clv_3m",
        "clv_12m",
        "clv_3m_low",
        "clv_3m_high",
        "clv_12m_low",
        "clv_12m_high",
    ]
    pdf = many.toPandas()
    x, tx, T = pdf.frequency.to_numpy(), pdf.recency.to_numpy(), pdf["T"].to_numpy()
    for m in (3, 12):
        low, high = bg.predictive_interval_np(m * 4.345, x, tx, T, interval=0.8)
        expected = bg.conditional_expected_purchases_np(m * 4.345, x, tx, T)
        clv = pdf[f"clv_{m}m"].to_numpy()
        np.testing.assert_allclose(pdf[f"clv_{m}m_low"], clv * low / expected, rtol=1e-10)
        np.testing.assert_allclose(pdf[f"clv_{m}m_high"], clv * high / expected, rtol=1e-10)
        assert (pdf[f"clv_{m}m_low"] <= pdf[f"clv_{m}m_high"]).all()
    single = one.toPandas()
    np.testing.assert_allclose(single.clv, pdf.clv_3m * 0 + single.clv)  # same rows
    with pytest.raises(SchemaError, match="interval"):
        customer_lifetime_value(summary, transaction_model=bg, spend_model=gg, interval=2.0)


def test_bgbb_intervals_follow_the_rule(spark):
    from kamlib.clv import BetaGeoBetaBinom

    sharp = BetaGeoBetaBinom()
    sharp._set_fitted(
        {"alpha": 1.204, "beta": 0.750, "gamma": 0.657, "delta": 2.783},
        covariance=np.zeros((4, 4)).tolist(),
    )
    x = np.array([0.0, 1.0, 3.0, 6.0, 2.0])
    tx = np.array([0.0, 1.0, 5.0, 6.0, 6.0])
    n = np.full(5, 6.0)
    ks = np.arange(0, 6)[:, None]
    pmf = sharp.conditional_probability_of_n_purchases_np(ks, 5, x, tx, n)
    for level in (0.5, 0.8, 0.9):
        low, high = sharp.predictive_interval_np(5, x, tx, n, interval=level)
        want = [_reference_interval(pmf[:, i], level) for i in range(x.size)]
        assert list(zip(low, high, strict=True)) == want
    df = spark.createDataFrame(
        [(float(a), float(b), float(c)) for a, b, c in zip(x, tx, n, strict=True)]
        + [(-1.0, 0.0, 6.0)],
        "frequency double, recency double, n_periods double",
    )
    rows = sharp.expected_purchases(df, 5, interval=0.8).collect()
    low, high = sharp.predictive_interval_np(5, x, tx, n, interval=0.8)
    for i, r in enumerate(rows[:-1]):
        assert (r.expected_purchases_low, r.expected_purchases_high) == (low[i], high[i])
        assert 0 <= r.expected_purchases_low <= r.expected_purchases <= 5
    assert rows[-1].expected_purchases_low is None
    with pytest.raises(SchemaError, match="t"):
        sharp.expected_purchases(df, 2.5, interval=0.8)


@pytest.mark.parametrize("cls", [BetaGeo, ModifiedBetaGeo])
def test_recurrence_interval_equals_the_generic_pmf_interval(simulated, cls):
    from kamlib.clv import _horizon as H

    _, model = simulated
    m = cls()
    m._set_fitted(model.params, covariance=model.fit_info["covariance"])
    x, tx, T, _ = simulate(300, seed=3)
    draws = m._interval_draws(50)
    for level in (0.5, 0.8, 0.95):
        fast = H.predictive_interval(m._pmf_kernel(), draws, level, 26.0, x, tx, T)
        slow = H.bg_predictive_interval(
            draws, level, 26.0, x, tx, T, modified=cls is ModifiedBetaGeo
        )
        np.testing.assert_array_equal(fast, slow)


def test_pareto_nbd_interval_equals_the_generic_pmf_interval():
    from kamlib.clv import ParetoNBD
    from kamlib.clv import _horizon as H

    model = ParetoNBD()
    model._set_fitted(
        {"r": 0.55, "alpha": 10.58, "s": 0.61, "beta": 11.67},
        covariance=np.diag([0.002, 0.5, 0.01, 4.0]).tolist(),
    )
    x, tx, T, _ = simulate(150, seed=5)
    x[0] = -1.0  # invalid row
    draws = model._interval_draws(20)
    want = H.predictive_interval(H.pnbd_conditional_pmf, draws, 0.8, 26.0, x, tx, T)
    got = model.predictive_interval_np(26.0, x, tx, T, interval=0.8, draws=20)
    np.testing.assert_array_equal(got, want)
    assert np.isnan(got[0][0])
    assert np.all(got[0][1:] <= got[1][1:])


@pytest.mark.parametrize("recurrence", [False, True])
def test_interval_search_in_blocks_equals_one_search(simulated, monkeypatch, recurrence):
    """The search over distinct accounts in bounded blocks gives the intervals of one search."""
    from kamlib.clv import _horizon as H

    _, model = simulated
    x, tx, T, _ = simulate(400, seed=11)
    x[5] = -1.0  # an invalid row stays NaN whatever the blocks
    draws = model._interval_draws(16)

    def interval() -> tuple[np.ndarray, np.ndarray]:
        if recurrence:
            return H.bg_predictive_interval(draws, 0.9, 26.0, x, tx, T)
        return H.predictive_interval(model._pmf_kernel(), draws, 0.9, 26.0, x, tx, T)

    one = interval()
    monkeypatch.setattr(H, "_BLOCK", 7)  # 400 distinct accounts -> 58 blocks, the last short
    blocked = interval()
    np.testing.assert_array_equal(blocked, one)
    assert np.isnan(blocked[0][5])
    assert np.isfinite(blocked[0][np.arange(400) != 5]).all()
