"""account_scorecard: columns, one row per account, point in time, agreement with the metrics."""

from __future__ import annotations

import datetime as dt
import math

import pytest

from kamlib import SchemaError
from kamlib.scorecard import DEFAULT_HEALTH_WEIGHTS, SCORECARD_COLUMNS, account_scorecard

AS_OF = dt.date(2025, 10, 1)
N = 400


def _by_account(df, columns):
    return {r["account_id"]: tuple(r[c] for c in columns) for r in df.collect()}


def _close(a, b, rel=1e-9, abs_=1e-9):
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    if isinstance(a, (int, float)) and not isinstance(a, bool):
        return math.isclose(a, b, rel_tol=rel, abs_tol=abs_)
    return a == b


def _assert_same(left, right, columns, **tol):
    assert left.keys() == right.keys()
    for key, values in left.items():
        for column, a, b in zip(columns, values, right[key], strict=True):
            assert _close(a, b, **tol), (key, column, a, b)


@pytest.fixture(scope="module")
def data(spark):
    from kamlib.datasets import (
        synthetic_surveys,
        synthetic_targets,
        synthetic_transactions,
        synthetic_wallets,
    )

    tx = synthetic_transactions(spark, N, seed=11).cache()
    surveys = synthetic_surveys(spark, N, seed=11).cache()
    wallets = synthetic_wallets(spark, N, seed=11).cache()
    targets = synthetic_targets(spark, N, seed=11).cache()
    yield tx, surveys, wallets, targets
    for frame in (tx, surveys, wallets, targets):
        frame.unpersist()


@pytest.fixture(scope="module")
def card(data):
    tx, surveys, wallets, targets = data
    result = account_scorecard(tx, as_of=AS_OF, surveys=surveys, wallets=wallets, targets=targets)
    yield result
    result.unpersist()


@pytest.fixture(scope="module")
def rows(card):
    return {r["account_id"]: r.asDict() for r in card.collect()}


def test_columns_and_one_row_per_account(data, card, rows):
    from pyspark.sql import functions as F

    tx = data[0]
    expected = {
        r["account_id"]
        for r in tx.where(F.col("order_date") < F.lit(AS_OF))
        .select("account_id")
        .distinct()
        .collect()
    }
    assert set(rows) == expected
    assert card.count() == len(expected)
    for column in (
        *SCORECARD_COLUMNS,
        "nps",
        "nps_responses",
        "wallet",
        "share_of_wallet",
        "wallet_headroom",
        "target",
        "target_attainment",
        "recency_days",
        "tenure_days",
        "n_orders_90d",
        "revenue_90d",
        "revenue_trend_90d",
    ):
        assert column in card.columns, column
    assert card.columns[0] == "account_id"


def test_point_in_time(spark, data, rows):
    """Rows on or after as_of (orders, new accounts, surveys) do not change anything."""
    tx, surveys, wallets, targets = data
    late_tx = spark.createDataFrame(
        [
            ("A00000001", AS_OF, 1e6),
            ("A00000002", AS_OF + dt.timedelta(days=3), 5e5),
            ("ZNEW", AS_OF + dt.timedelta(days=1), 100.0),
        ],
        "account_id string, order_date date, amount double",
    )
    late_surveys = spark.createDataFrame(
        [("A00000001", AS_OF, 0.0), ("A00000003", AS_OF + dt.timedelta(days=9), 10.0)],
        "account_id string, response_date date, score double",
    )
    later = account_scorecard(
        tx.unionByName(late_tx),
        as_of=AS_OF,
        surveys=surveys.unionByName(late_surveys),
        wallets=wallets,
        targets=targets,
        cache=False,
    )
    columns = [c for c in later.columns if c != "account_id"]
    again = _by_account(later, columns)
    _assert_same(
        {k: tuple(v[c] for c in columns) for k, v in rows.items()},
        again,
        columns,
        rel=1e-7,
        abs_=1e-9,
    )


def test_classification_equals_classify_accounts_on_trailing_revenue(spark, data, rows):
    from pyspark.sql import functions as F

    from kamlib.classify import classify_accounts

    tx = data[0]
    start = AS_OF - dt.timedelta(days=365)
    before = tx.where(F.col("order_date") < F.lit(AS_OF))
    trailing = before.where(F.col("order_date") >= F.lit(start)).select("account_id", "amount")
    zeros = before.select("account_id").distinct().withColumn("amount", F.lit(0.0))
    expected = classify_accounts(trailing.unionByName(zeros))
    cols = ["value", "value_rank", "value_share", "cumulative_share", "abc_tier", "is_key_account"]
    want = _by_account(expected, cols)
    got = {
        k: (
            v["revenue"],
            v["value_rank"],
            v["value_share"],
            v["cumulative_share"],
            v["abc_tier"],
            v["is_key_account"],
        )
        for k, v in rows.items()
    }
    _assert_same(got, want, cols, rel=1e-9, abs_=1e-6)
    assert {v["abc_tier"] for v in rows.values()} == {"A", "B", "C"}
    assert sum(v["is_key_account"] for v in rows.values()) == math.ceil(0.2 * len(rows))


def test_churn_nps_wallet_equal_their_functions(spark, data, rows):
    from pyspark.sql import functions as F

    from kamlib.churn import churn_features
    from kamlib.nps import nps

    tx, surveys, wallets, _ = data
    features = churn_features(tx, as_of=AS_OF, windows=(30, 90, 180, 365))
    cols = [
        "recency_days",
        "tenure_days",
        "n_orders_90d",
        "revenue_90d",
        "revenue_trend_90d",
        "revenue_slope_180d",
        "revenue_365d",
        "revenue_trend_365d",
    ]
    want = _by_account(features, cols)
    got = {k: tuple(v[c] for c in cols) for k, v in rows.items()}
    _assert_same(got, want, cols)
    for v in rows.values():
        assert _close(v["revenue"], v["revenue_365d"])
        assert _close(v["revenue_growth"], v["revenue_trend_365d"])

    per_account = nps(surveys.where(F.col("response_date") < F.lit(AS_OF)), by="account_id")
    want_nps = _by_account(per_account, ["nps", "n"])
    for key, v in rows.items():
        expected = want_nps.get(key, (None, None))
        assert _close(v["nps"], expected[0]), key
        assert v["nps_responses"] == expected[1], key

    wallet = {r["account_id"]: r["wallet"] for r in wallets.collect()}
    for key, v in rows.items():
        w = wallet.get(key)
        assert _close(v["wallet"], w)
        if w is None or w <= 0:
            assert v["share_of_wallet"] is None
        else:
            assert _close(v["share_of_wallet"], v["revenue"] / w, rel=1e-12)
            assert _close(v["wallet_headroom"], max(w - v["revenue"], 0.0), rel=1e-12)


def test_clv_columns_equal_the_models(spark, data, rows):
    from kamlib.clv import BetaGeo, GammaGamma, customer_lifetime_value, rfm_summary

    tx = data[0]
    summary = rfm_summary(
        tx.where(tx.order_date < AS_OF), observation_end=AS_OF - dt.timedelta(days=1)
    )
    bg = BetaGeo().fit(summary)
    gg = GammaGamma().fit(summary)
    scored = bg.probability_alive(summary)
    scored = bg.expected_purchases(scored, 90, output_col="ep90")
    scored = bg.probability_no_purchase(scored, 90, output_col="p0")
    scored = gg.expected_spend(scored)
    scored = customer_lifetime_value(scored, transaction_model=bg, spend_model=gg)
    cols = ["frequency", "recency", "T", "p_alive", "ep90", "p0", "expected_spend", "clv"]
    want = _by_account(scored, cols)
    got = {
        k: (
            v["frequency"],
            v["recency"],
            v["T"],
            v["p_alive"],
            v["expected_purchases_90d"],
            v["p_no_purchase_90d"],
            v["expected_spend"],
            v["clv"],
        )
        for k, v in rows.items()
    }
    _assert_same(got, want, cols, rel=1e-6, abs_=1e-9)
    for v in rows.values():
        assert _close(
            v["revenue_forecast_90d"], v["expected_purchases_90d"] * v["expected_spend"], rel=1e-12
        )
        assert _close(
            v["revenue_forecast_365d"],
            v["expected_purchases_365d"] * v["expected_spend"],
            rel=1e-12,
        )
        assert v["expected_purchases_365d"] >= v["expected_purchases_90d"] - 1e-12
        assert 0.0 <= v["p_alive"] <= 1.0
        # no purchase is at least as likely as being dead now (BG/NBD: 1 - P_A (1 - q^(r+x)))
        assert 1.0 - v["p_alive"] - 1e-12 <= v["p_no_purchase_90d"] <= 1.0


def test_prefitted_models_are_used(spark, data):
    from kamlib.clv import BetaGeo, GammaGamma

    tx = data[0]
    bg = BetaGeo()
    bg._set_fitted({"r": 0.5, "alpha": 20.0, "a": 0.5, "b": 2.0})
    gg = GammaGamma()
    gg._set_fitted({"p": 5.0, "q": 4.0, "v": 100.0})
    card = account_scorecard(tx, as_of=AS_OF, transaction_model=bg, spend_model=gg, cache=False)
    row = card.where("frequency = 0").select("expected_spend").first()
    assert row["expected_spend"] == pytest.approx(5.0 * 100.0 / 3.0)


def test_targets_attainment(spark):
    tx = spark.createDataFrame(
        [
            ("a", dt.date(2025, 1, 10), 100.0),
            ("a", dt.date(2025, 5, 1), 50.0),
            ("b", dt.date(2025, 3, 3), 40.0),
            ("b", dt.date(2025, 6, 3), 40.0),
            ("c", dt.date(2025, 2, 1), 10.0),
            ("d", dt.date(2025, 4, 1), 30.0),
            ("d", dt.date(2025, 8, 1), 30.0),
        ],
        "account_id string, order_date date, amount double",
    )
    targets = spark.createDataFrame(
        [("a", 100.0), ("a", 200.0), ("b", 0.0), ("c", None), ("x", 5.0)],
        "account_id string, target double",
    )
    from kamlib.clv import BetaGeo, GammaGamma

    bg = BetaGeo()
    bg._set_fitted({"r": 0.5, "alpha": 20.0, "a": 0.5, "b": 2.0})
    gg = GammaGamma()
    gg._set_fitted({"p": 5.0, "q": 4.0, "v": 100.0})
    card = account_scorecard(
        tx, as_of="2025-10-01", targets=targets, transaction_model=bg, spend_model=gg
    )
    got = _by_account(card, ["revenue", "target", "target_attainment"])
    assert got["a"] == (150.0, 300.0, 0.5)
    assert got["b"] == (80.0, 0.0, None)  # zero target: undefined attainment
    assert got["c"] == (10.0, None, None)
    assert got["d"] == (60.0, None, None)  # no target row
    assert "x" not in got  # targets never add accounts
    card.unpersist()


def test_health_bands_and_weights(card, rows):
    from kamlib.health import health_score

    for v in rows.values():
        score, band = v["health_score"], v["health_band"]
        if score is None:
            assert band is None
            continue
        assert 0.0 <= score <= 100.0
        assert band == ("red" if score < 40 else "yellow" if score < 70 else "green")
    assert {v["health_band"] for v in rows.values()} >= {"red", "yellow", "green"}
    # Re-scoring the scorecard's own columns with the default weights gives the same score.
    again = health_score(
        card.drop("health_score", "health_band"),
        weights=DEFAULT_HEALTH_WEIGHTS,
        lower_is_better=("recency_days",),
    )
    want = _by_account(again, ["health_score", "health_band"])
    got = {k: (v["health_score"], v["health_band"]) for k, v in rows.items()}
    _assert_same(got, want, ["health_score", "health_band"], rel=1e-9, abs_=1e-9)


def test_custom_health_weights_and_bands(data):
    tx = data[0]
    card = account_scorecard(
        tx,
        as_of=AS_OF,
        health_weights={"recency_days": 1.0},
        health_bands=(50.0, 90.0),
        cache=False,
    )
    rows = card.select("recency_days", "health_score", "health_band").collect()
    by_recency = sorted(rows, key=lambda r: r["recency_days"])
    assert by_recency[0]["health_score"] >= by_recency[-1]["health_score"]
    for r in rows:
        s = r["health_score"]
        assert r["health_band"] == ("red" if s < 50 else "yellow" if s < 90 else "green")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"value_col": "amt"}, r"account_scorecard\(\): column 'amt'"),
        ({"as_of": "yesterday"}, "as_of= must be a date"),
        ({"freq": "M"}, "freq= must be one of"),
        ({"churn_windows": (0,)}, "churn_windows="),
        ({"clv_months": 0}, "clv_months= must be a positive int"),
        ({"health_weights": {"bogus": 1.0}}, "health_weights= names columns"),
        ({"top_share": 1.5}, "top_share="),
        (
            {"abc_thresholds": (0.9, 0.5)},
            r"account_scorecard\(\): abc_thresholds= must be increasing",
        ),
        ({"health_bands": (70, 40)}, r"account_scorecard\(\): health_bands= must be increasing"),
        ({"health_bands": "ab"}, "health_bands= must be two numbers"),
        ({"health_lower_is_better": [""]}, "health_lower_is_better= must be a column name"),
        ({"health_lower_is_better": 3}, "health_lower_is_better= must be a column name or"),
        ({"transaction_model": "bgnbd.json"}, "transaction_model= must be a fitted Transaction"),
        ({"spend_model": object()}, "spend_model= must be a fitted SpendModel"),
    ],
)
def test_bad_options_raise_schema_error(spark, kwargs, match):
    tx = spark.createDataFrame(
        [("a", dt.date(2025, 1, 1), 1.0)], "account_id string, order_date date, amount double"
    )
    options = {"as_of": "2025-06-01", **kwargs}
    with pytest.raises(SchemaError, match=match):
        account_scorecard(tx, **options)


def test_bad_side_inputs_raise_before_any_job(spark):
    tx = spark.createDataFrame(
        [("a", dt.date(2025, 1, 1), 1.0)], "account_id string, order_date date, amount double"
    )
    bad_surveys = spark.createDataFrame(
        [("a", "2025-01-01", 9.0)], "account_id string, response_date string, score double"
    )
    with pytest.raises(SchemaError, match="'response_date' must be date or timestamp"):
        account_scorecard(tx, as_of="2025-06-01", surveys=bad_surveys)
    bad_wallets = spark.createDataFrame([(1, 5.0)], "account_id int, wallet double")
    with pytest.raises(SchemaError, match="account_id' of wallets= must have the type"):
        account_scorecard(tx, as_of="2025-06-01", wallets=bad_wallets)
    bad_targets = spark.createDataFrame([("a", "5")], "account_id string, goal string")
    with pytest.raises(SchemaError, match=r"targets=: column 'target' .*not found"):
        account_scorecard(tx, as_of="2025-06-01", targets=bad_targets)


@pytest.mark.connect
def test_small_scorecard_runs(spark):
    """Also run under Spark Connect: one row per account, every core column present."""
    from kamlib.datasets import synthetic_surveys, synthetic_transactions, synthetic_wallets

    tx = synthetic_transactions(spark, 150, seed=5)
    card = account_scorecard(
        tx,
        as_of="2025-07-01",
        surveys=synthetic_surveys(spark, 150, seed=5),
        wallets=synthetic_wallets(spark, 150, seed=5),
    )
    try:
        assert set(SCORECARD_COLUMNS) <= set(card.columns)
        assert card.count() == card.select("account_id").distinct().count() > 0
        assert card.where("health_band is null").count() == 0
    finally:
        card.unpersist()


def test_health_lower_is_better_string_is_one_column(data):
    """A bare string names one column; it is never iterated per character."""
    from kamlib.clv import BetaGeo, GammaGamma

    bg = BetaGeo()
    bg._set_fitted({"r": 0.5, "alpha": 20.0, "a": 0.5, "b": 2.0})
    gg = GammaGamma()
    gg._set_fitted({"p": 5.0, "q": 4.0, "v": 100.0})
    options = {"as_of": AS_OF, "transaction_model": bg, "spend_model": gg, "cache": False}
    as_str = account_scorecard(data[0], health_lower_is_better="recency_days", **options)
    as_tuple = account_scorecard(data[0], health_lower_is_better=("recency_days",), **options)
    got = {r.account_id: r.health_score for r in as_str.collect()}
    assert got == {r.account_id: r.health_score for r in as_tuple.collect()}


def test_whitespace_headroom_and_top_recommendation(spark):
    """Reference from the whitespace formula: headroom = sum over the segment's products of
    max(median buyers' revenue - own revenue, 0), over the trailing revenue window."""
    import statistics

    from kamlib.clv import BetaGeo, GammaGamma

    as_of = dt.date(2025, 6, 1)
    old = dt.date(2024, 1, 5)  # outside the 365-day window: ignored by the growth columns
    rows = []
    baskets = {
        "a1": {"crm": 100.0, "erp": 50.0},
        "a2": {"crm": 300.0},
        "a3": {"crm": 200.0, "erp": 150.0, "bi": 10.0},
        "a4": {"erp": 40.0},
        "b1": {"crm": 10.0, "bi": 70.0},
        "b2": {"bi": 30.0},
    }
    for account, basket in baskets.items():
        segment = account[0]
        for i, (product, amount) in enumerate(sorted(basket.items())):
            rows.append((account, dt.date(2025, 3, 1 + i), amount, product, segment))
    rows.append(("a2", old, 999.0, "erp", "a"))
    tx = spark.createDataFrame(
        rows, "account_id string, order_date date, amount double, product string, seg string"
    )
    bg = BetaGeo()
    bg._set_fitted({"r": 0.5, "alpha": 20.0, "a": 0.5, "b": 2.0})
    gg = GammaGamma()
    gg._set_fitted({"p": 5.0, "q": 4.0, "v": 100.0})
    card = account_scorecard(
        tx,
        as_of=as_of,
        product_col="product",
        segment_col="seg",
        transaction_model=bg,
        spend_model=gg,
        cache=False,
    )
    got = {r.account_id: r.asDict() for r in card.collect()}
    for segment in ("a", "b"):
        members = {a: b for a, b in baskets.items() if a[0] == segment}
        products = {p for b in members.values() for p in b}
        peer = {p: statistics.median(b[p] for b in members.values() if p in b) for p in products}
        for account, basket in members.items():
            expected = sum(max(peer[p] - basket.get(p, 0.0), 0.0) for p in products)
            assert got[account]["whitespace_headroom"] == pytest.approx(expected), account
    for account, row in got.items():
        if row["top_recommendation"] is not None:
            assert row["top_recommendation"] not in baskets[account]
            assert 0 < row["top_recommendation_confidence"] <= 1
    # a4 bought erp only; accounts with erp bought crm 2 times of 3: crm is the best rule
    assert got["a4"]["top_recommendation"] == "crm"
    with pytest.raises(SchemaError, match="segment_col="):
        account_scorecard(tx, as_of=as_of, segment_col="seg")
    with pytest.raises(SchemaError, match="column 'sku'"):
        account_scorecard(tx, as_of=as_of, product_col="sku")


class _Delegating:
    """A transaction model that is not one of kamlib's classes (scored method by method)."""

    def __init__(self, model):
        self.__dict__["_model"] = model

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.__dict__["_model"], name)


def test_other_transaction_models_score_like_the_fused_pass(spark, data):
    from kamlib.clv import BetaGeo, GammaGamma, rfm_summary

    tx = data[0]
    summary = rfm_summary(
        tx.where(tx.order_date < AS_OF), observation_end=AS_OF - dt.timedelta(days=1)
    )
    bg, gg = BetaGeo().fit(summary), GammaGamma().fit(summary)
    cols = ["p_alive", "p_no_purchase_90d", "expected_purchases_90d", "expected_purchases_365d"]
    cols += ["clv"]

    def card(model):
        out = account_scorecard(
            tx, as_of=AS_OF, transaction_model=model, spend_model=gg, cache=False
        )
        return _by_account(out, cols)

    _assert_same(card(_Delegating(bg)), card(bg), cols, rel=1e-9, abs_=1e-12)
