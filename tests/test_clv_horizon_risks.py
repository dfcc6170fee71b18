"""Horizon risks: P(no purchase), P(exactly n purchases), P(alive at T + t) on every model."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kamlib import SchemaError
from kamlib.clv import BetaGeo, BetaGeoBetaBinom, ModifiedBetaGeo, ParetoNBD
from kamlib.clv import _horizon as H
from tests.reference import clv_horizon as R

# Published CDNOW estimates (weeks): FHL (2005) BG/NBD, Batislam et al. (2007) MBG/NBD as
# fitted by lifetimes, Fader & Hardie note 009 Pareto/NBD; FHS (2010) BG/BB donation data.
BG = (0.243, 4.414, 0.793, 2.426)
MBG = (0.525, 6.183, 0.891, 1.614)
PNBD = (0.5534, 10.5802, 0.6061, 11.6562)
BGBB = (1.204, 0.750, 0.657, 2.783)

# lifetimes 0.11.3 ``ParetoNBDFitter.conditional_probability_of_n_purchases_up_to_time(n, t,
# x, t_x, T)`` with ``params_ = PNBD`` (computed in a throwaway venv: numpy 1.26.4, pandas
# 2.1.4, scipy 1.12.0), keyed by (n, t, x, t_x, T).
LIFETIMES_PNBD_PMF = {
    (0, 2.0, 0, 0.0, 38.86): 0.9936718459494225,
    (1, 2.0, 0, 0.0, 38.86): 0.006137240816071954,
    (0, 39.0, 2, 30.43, 38.86): 0.4080952823591622,
    (1, 39.0, 2, 30.43, 38.86): 0.21926521337599167,
    (2, 39.0, 2, 30.43, 38.86): 0.15174605207559397,
    (3, 52.0, 5, 36.0, 38.86): 0.1088765363221108,
    (1, 1.0, 1, 1.71, 38.86): 0.004980070260516424,
    (0, 10.0, 10, 38.0, 38.86): 0.18411187384665073,
    (4, 26.0, 10, 38.0, 38.86): 0.12898432425777098,
}
# lifetimes 0.11.3 ``BetaGeoBetaBinomFitter.conditional_probability_alive(m, x, t_x, n)`` with
# params_ = BGBB, for (x, t_x) = (0,0), (1,1), (3,5), (6,6), (2,6) and n = 6.
BGBB_ACCOUNTS = ([0, 1, 3, 6, 2], [0, 1, 5, 6, 6], [6, 6, 6, 6, 6])
LIFETIMES_BGBB_ALIVE = {
    0: [0.11609661329298412, 0.07460006829896637, 0.8240885155365206, 1.0, 1.0],
    1: [0.10801658416867374, 0.06940809320654891, 0.7667340499954726, 0.930402542372872,
        0.9304025423725641],
    3: [0.09540597518143457, 0.06130490858250221, 0.6772201723246457, 0.8217808640176678,
        0.8217808640173955],
}  # fmt: skip
# lifetimes 0.11.3 ``conditional_expected_number_of_purchases_up_to_time(3, x, t_x, n)``.
LIFETIMES_BGBB_EXPECTED_3 = [
    0.04611370680857818,
    0.05424188972121379,
    1.1429324553936666,
    2.3766087968165843,
    1.0570036903106337,
]

MODELS = {
    "bg": (BetaGeo, BG),
    "mbg": (ModifiedBetaGeo, MBG),
    "pnbd": (ParetoNBD, PNBD),
}


def _model(kind: str) -> BetaGeo | ParetoNBD:
    cls, params = MODELS[kind]
    model = cls()
    model._set_fitted(dict(zip(cls.param_names, params, strict=True)), n=1000.0)
    return model


def _bgbb() -> BetaGeoBetaBinom:
    model = BetaGeoBetaBinom()
    model._set_fitted(dict(zip(model.param_names, BGBB, strict=True)), n=1000.0)
    return model


# -- references ----------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["bg", "mbg"])
@pytest.mark.parametrize(
    ("x", "tx", "T", "n", "t"),
    [(0, 0.0, 38.86, 0, 20.0), (2, 30.43, 38.86, 1, 39.0), (5, 10.0, 30.0, 3, 20.0)],
)
def test_bg_family_pmf_matches_individual_level_reference(kind, x, tx, T, n, t):
    model = _model(kind)
    expected = R.bg_conditional(MODELS[kind][1], x, tx, T, n=n, t=t, modified=kind == "mbg")
    got = float(model.conditional_probability_of_n_purchases_np(n, t, x, tx, T))
    assert got == pytest.approx(expected, rel=1e-7, abs=1e-9)


@pytest.mark.parametrize("kind", ["bg", "mbg"])
@pytest.mark.parametrize(("x", "tx", "T"), [(0, 0.0, 38.86), (2, 30.43, 38.86), (5, 10.0, 30.0)])
def test_bg_family_future_alive_matches_reference(kind, x, tx, T):
    model = _model(kind)
    expected = R.bg_conditional(MODELS[kind][1], x, tx, T, alive_at=15.0, modified=kind == "mbg")
    got = float(model.conditional_probability_alive_np(15.0, x, tx, T))
    assert got == pytest.approx(expected, rel=1e-7, abs=1e-9)


def test_pareto_nbd_pmf_matches_lifetimes():
    model = _model("pnbd")
    keys = list(LIFETIMES_PNBD_PMF)
    n, t, x, tx, T = (np.array(col, dtype=float) for col in zip(*keys, strict=True))
    got = model.conditional_probability_of_n_purchases_np(n, t, x, tx, T)
    want = np.array(list(LIFETIMES_PNBD_PMF.values()))
    np.testing.assert_allclose(got, want, rtol=1e-10)
    zero = n == 0
    np.testing.assert_allclose(
        model.probability_no_purchase_np(t[zero], x[zero], tx[zero], T[zero]),
        want[zero],
        rtol=1e-10,
    )


def test_pareto_nbd_future_alive_is_survival_of_the_posterior_dropout_rate():
    # given alive at T, mu ~ Gamma(s, beta + T): P(alive at T + t) = P_A E[exp(-mu t)]
    model = _model("pnbd")
    _r, _alpha, s, beta = PNBD
    x, tx, T = 2.0, 30.43, 38.86
    p_a = float(model.probability_alive_np(x, tx, T))
    for t in (1.0, 10.0, 100.0):
        want = p_a * ((beta + T) / (beta + T + t)) ** s
        assert float(model.conditional_probability_alive_np(t, x, tx, T)) == pytest.approx(want)


def test_bgbb_matches_reference_and_lifetimes():
    model = _bgbb()
    x, tx, n = (np.array(c, dtype=float) for c in BGBB_ACCOUNTS)
    for m, want in LIFETIMES_BGBB_ALIVE.items():
        np.testing.assert_allclose(H.bgbb_conditional_alive(BGBB, m, x, tx, n), want, rtol=1e-9)
    k = np.arange(0, 5)[:, None]
    pmf = model.conditional_probability_of_n_purchases_np(k, 3, x, tx, n)
    np.testing.assert_allclose((k * pmf).sum(axis=0), LIFETIMES_BGBB_EXPECTED_3, rtol=1e-9)
    np.testing.assert_allclose(pmf.sum(axis=0), 1.0, atol=1e-12)
    for i in range(x.size):
        for kk in range(5):
            ref = R.bgbb_conditional(BGBB, int(x[i]), int(tx[i]), int(n[i]), k=kk, periods=3)
            assert pmf[kk, i] == pytest.approx(ref, abs=1e-13)
    np.testing.assert_allclose(model.probability_no_purchase_np(3, x, tx, n), pmf[0], atol=1e-15)


# -- properties (many accounts in one array per example) -------------------------------------------
_param = st.floats(0.05, 8.0)


@st.composite
def _accounts(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    size = 40
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    T = rng.uniform(0.0, 80.0, size)
    x = rng.integers(0, 20, size).astype(float)
    tx = np.where(x > 0, rng.uniform(0.0, 1.0, size) * T, 0.0)
    return x, tx, T


@settings(deadline=None, max_examples=12)
@given(kind=st.sampled_from(["bg", "mbg", "pnbd"]), p=st.tuples(_param, _param, _param, _param),
       acc=_accounts(), t=st.floats(0.5, 60.0))  # fmt: skip
def test_pmf_properties(kind, p, acc, t):
    cls = MODELS[kind][0]
    model = cls()
    model._set_fitted(dict(zip(cls.param_names, p, strict=True)), n=1.0)
    x, tx, T = acc
    ns = np.arange(0, 600)[:, None]
    pmf = model.conditional_probability_of_n_purchases_np(ns, t, x, tx, T)
    assert np.all(np.isfinite(pmf))
    assert np.all((pmf >= 0) & (pmf <= 1))
    expected = model.conditional_expected_purchases_np(t, x, tx, T)
    tail_ok = pmf[-1] < 1e-13  # heavy tails (tiny s or a) need more than 600 terms
    np.testing.assert_allclose(pmf.sum(axis=0)[tail_ok], 1.0, atol=1e-9)
    np.testing.assert_allclose(
        (ns * pmf).sum(axis=0)[tail_ok],
        expected[tail_ok],
        rtol=1e-5 if kind == "pnbd" else 1e-8,  # Pareto/NBD: 96-point quadrature
        atol=1e-9,
    )
    np.testing.assert_allclose(model.probability_no_purchase_np(t, x, tx, T), pmf[0], rtol=1e-12)
    alive = model.conditional_probability_alive_np(
        np.array([[0.0], [t], [2 * t], [50 * t]]), x, tx, T
    )
    np.testing.assert_allclose(alive[0], model.probability_alive_np(x, tx, T), rtol=1e-12)
    assert np.all(np.diff(alive, axis=0) <= 1e-12)
    assert np.all((alive >= 0) & (alive <= 1))
    # a brand-new account (frequency 0, T -> 0) is a draw from the population
    new = model.conditional_probability_of_n_purchases_np(ns[:20, 0], t, 0.0, 0.0, 0.0)
    if kind == "pnbd":
        # ParetoNBD.probability_of_purchases_np integrates over F(tau) and loses up to ~1%
        # relative in the far tail when t >> beta: compare with the lifetime integral itself
        for k in (0, 1, 4, 12, 19):
            ref = R.pnbd_new_pmf(p, k, t)
            assert new[k] == pytest.approx(ref, rel=1e-9, abs=1e-15)
    else:
        np.testing.assert_allclose(
            new, model.probability_of_purchases_np(ns[:20, 0], t), rtol=1e-9, atol=1e-12
        )


@settings(deadline=None, max_examples=25)
@given(p=st.tuples(_param, _param, _param, _param), seed=st.integers(0, 2**31 - 1),
       periods=st.integers(1, 12))  # fmt: skip
def test_bgbb_pmf_properties(p, seed, periods):
    model = BetaGeoBetaBinom()
    model._set_fitted(dict(zip(model.param_names, p, strict=True)), n=1.0)
    rng = np.random.default_rng(seed)
    n = rng.integers(0, 15, 40).astype(float)
    tx = np.floor(rng.uniform(0, 1, 40) * (n + 1))
    x = np.where(tx > 0, np.floor(rng.uniform(0, 1, 40) * tx) + 1, 0.0)
    k = np.arange(0, periods + 2)[:, None]
    pmf = model.conditional_probability_of_n_purchases_np(k, periods, x, tx, n)
    assert np.all(np.isfinite(pmf))
    assert np.all((pmf >= 0) & (pmf <= 1))
    np.testing.assert_allclose(pmf.sum(axis=0), 1.0, atol=1e-10)
    assert np.all(pmf[-1] == 0.0)  # at most one purchase per period
    np.testing.assert_allclose(
        (k * pmf).sum(axis=0), model.conditional_expected_purchases_np(periods, x, tx, n), rtol=1e-8
    )
    alive = np.stack([model.probability_alive_np(x, tx, n, m) for m in range(periods + 1)])
    assert np.all(np.diff(alive, axis=0) <= 1e-12)


def test_invalid_summaries_are_nan():
    x = np.array([-1.0, 2.0, np.nan, 0.0, 1.0])
    tx = np.array([0.0, 5.0, 1.0, 3.0, 1.0])
    T = np.array([4.0, 4.0, 4.0, 4.0, np.inf])
    for kind in MODELS:
        model = _model(kind)
        assert np.all(np.isnan(model.conditional_probability_of_n_purchases_np(1, 5.0, x, tx, T)))
        assert np.all(np.isnan(model.conditional_probability_alive_np(5.0, x, tx, T)))
    bad = H.bgbb_conditional_pmf(BGBB, 0, 3, [-1, 2, 1.5, 0, 3], [0, 1, 2, 2, 3], [4, 4, 4, 4, 2])
    assert np.all(np.isnan(bad))


def test_extreme_accounts_stay_finite():
    model = _model("bg")
    x = np.array([0.0, 500.0, 5000.0, 1.0])
    tx = np.array([0.0, 999.0, 1000.0, 1e-9])
    T = np.array([1e6, 1000.0, 1000.0, 1e6])
    for n in (0, 1, 50, 5000):
        p = model.conditional_probability_of_n_purchases_np(n, 365.0, x, tx, T)
        assert np.all(np.isfinite(p))
        assert np.all((p >= 0) & (p <= 1))
    alive = model.conditional_probability_alive_np(365.0, x, tx, T)
    assert np.all(np.isfinite(alive))
    assert np.all((alive >= 0) & (alive <= 1))


# -- Spark -----------------------------------------------------------------------------------------
SUMMARY_ROWS = [
    ("a", 2.0, 30.43, 38.86),
    ("b", 0.0, 0.0, 38.86),
    ("c", 5.0, 36.0, 38.86),
    ("d", 1.0, 1.71, 38.86),
    ("neg", -1.0, 0.0, 10.0),
    ("late", 3.0, 12.0, 10.0),
    ("null", None, 1.0, 10.0),
]


@pytest.fixture(scope="module")
def summary(spark):
    return spark.createDataFrame(
        SUMMARY_ROWS, "account_id string, frequency double, recency double, T double"
    )


@pytest.mark.connect
@pytest.mark.parametrize("kind", ["bg", "mbg", "pnbd"])
def test_spark_horizon_columns(summary, kind):
    model = _model(kind)
    scored = (
        summary.transform(model.probability_no_purchase, 13.0)
        .transform(model.probability_of_n_purchases, 13.0, 2)
        .transform(model.probability_alive)
        .transform(lambda d: model.probability_alive(d, future_t=26.0, output_col="p_alive_26"))
    )
    assert scored.columns == [
        *summary.columns,
        "p_no_purchase",
        "p_n_purchases",
        "p_alive",
        "p_alive_26",
    ]
    rows = {r.account_id: r for r in scored.collect()}
    for acc, x, tx, T in SUMMARY_ROWS[:4]:
        row = rows[acc]
        assert row.p_no_purchase == pytest.approx(
            float(model.conditional_probability_of_n_purchases_np(0, 13.0, x, tx, T)), rel=1e-12
        )
        assert row.p_n_purchases == pytest.approx(
            float(model.conditional_probability_of_n_purchases_np(2, 13.0, x, tx, T)), rel=1e-12
        )
        assert row.p_alive == pytest.approx(float(model.probability_alive_np(x, tx, T)))
        assert row.p_alive_26 == pytest.approx(
            float(model.conditional_probability_alive_np(26.0, x, tx, T)), rel=1e-12
        )
        assert row.p_alive_26 <= row.p_alive + 1e-15
    for acc in ("neg", "late", "null"):
        assert rows[acc].p_no_purchase is None
        assert rows[acc].p_n_purchases is None
        assert rows[acc].p_alive_26 is None


@pytest.mark.connect
def test_spark_bgbb_horizon_columns(spark):
    rows = [(float(x), float(t), float(n)) for x, t, n in zip(*BGBB_ACCOUNTS, strict=True)]
    df = spark.createDataFrame(
        [*rows, (-1.0, 0.0, 6.0)], "frequency double, recency double, n_periods double"
    )
    model = _bgbb()
    scored = (
        df.transform(model.probability_no_purchase, 3)
        .transform(model.probability_of_n_purchases, 3, 1)
        .transform(lambda d: model.probability_alive(d, future_t=3, output_col="a3"))
        .transform(lambda d: model.probability_alive(d, future_periods=3, output_col="b3"))
        .collect()
    )
    x, tx, n = (np.array(c, dtype=float) for c in BGBB_ACCOUNTS)
    p0 = model.probability_no_purchase_np(3, x, tx, n)
    p1 = model.conditional_probability_of_n_purchases_np(1, 3, x, tx, n)
    for i, row in enumerate(scored[:-1]):
        assert row.p_no_purchase == pytest.approx(p0[i], rel=1e-12)
        assert row.p_n_purchases == pytest.approx(p1[i], rel=1e-12)
        assert row.a3 == pytest.approx(LIFETIMES_BGBB_ALIVE[3][i], rel=1e-9)
        assert row.a3 == row.b3
    assert scored[-1].p_no_purchase is None
    assert scored[-1].p_n_purchases is None


def test_option_validation(spark):
    df = spark.createDataFrame([(1.0, 1.0, 2.0)], "frequency double, recency double, T double")
    model = _model("bg")
    for bad_t in (0, -1.0, math.inf, math.nan, "3"):
        with pytest.raises(SchemaError, match="t"):
            model.probability_no_purchase(df, bad_t)
        with pytest.raises(SchemaError):
            model.probability_of_n_purchases(df, bad_t, 1)
    for bad_n in (-1, 1.5, True, "2"):
        with pytest.raises(SchemaError, match="n"):
            model.probability_of_n_purchases(df, 4.0, bad_n)
    for bad_f in (-1.0, math.inf):
        with pytest.raises(SchemaError, match="future_t"):
            model.probability_alive(df, future_t=bad_f)
    with pytest.raises(SchemaError, match="frequency"):
        model.probability_no_purchase(df.drop("frequency"), 4.0)
    bgbb = _bgbb()
    with pytest.raises(SchemaError, match="t"):
        bgbb.probability_no_purchase(df, 2.5)
    with pytest.raises(SchemaError, match="future_t"):
        bgbb.probability_alive(df, future_periods=2, future_t=3)
