"""Spark glue of the CLV models: fit from a summary DataFrame, scoring, persistence."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pyspark.sql import functions as F

from kamlib import NotFittedError, SchemaError
from kamlib.clv import (
    BetaGeo,
    GammaGamma,
    ModifiedBetaGeo,
    ParetoNBD,
    load_model,
)
from kamlib.datasets import load_cdnow_summary

PUBLISHED = {
    BetaGeo: {"r": 0.2426, "alpha": 4.4136, "a": 0.7929, "b": 2.4259},
    ParetoNBD: {"r": 0.5533, "alpha": 10.5777, "s": 0.6062, "beta": 11.6677},
    ModifiedBetaGeo: {"r": 0.525, "alpha": 6.183, "a": 0.891, "b": 1.614},
}


@pytest.fixture(scope="module")
def summary(spark):
    return load_cdnow_summary(spark)


def _columns(df, *names):
    rows = df.orderBy("account_id").select(*names).toPandas()
    return [rows[n].to_numpy(dtype=float) for n in names]


@pytest.mark.connect
def test_cdnow_published_estimates(summary):
    fitted = {}
    for cls, published in PUBLISHED.items():
        fitted[cls] = model = cls().fit(summary)
        assert model.params == pytest.approx(published, rel=1e-3), cls.__name__
        assert model.fit_info["n"] == 2357
    bg = fitted[BetaGeo]
    assert float(bg.conditional_expected_purchases_np(39, 2, 30.43, 38.86)) == pytest.approx(
        1.2259, abs=1e-4
    )
    assert float(bg.probability_alive_np(2, 30.43, 38.86)) == pytest.approx(0.7266, abs=1e-4)
    gg = GammaGamma().fit(summary)
    assert gg.params == pytest.approx({"p": 6.2488, "q": 3.7446, "v": 15.4477}, rel=1e-3)
    assert gg.excluded == summary.filter("frequency = 0").count()
    assert isinstance(gg.excluded, int)


@pytest.mark.connect
def test_spark_scoring_equals_numpy(summary):
    x, tx, T, m = _columns(summary, "frequency", "recency", "T", "monetary_value")
    for cls in (BetaGeo, ModifiedBetaGeo, ParetoNBD):
        model = cls().fit_arrays(x, tx, T)
        scored = model.expected_purchases(summary, 39).transform(model.probability_alive)
        assert scored.columns == [*summary.columns, "expected_purchases", "p_alive"]
        got_e, got_a = _columns(scored, "expected_purchases", "p_alive")
        np.testing.assert_allclose(
            got_e, model.conditional_expected_purchases_np(39, x, tx, T), rtol=1e-12
        )
        np.testing.assert_allclose(got_a, model.probability_alive_np(x, tx, T), rtol=1e-12)
    gg = GammaGamma().fit_arrays(x, m)
    (got,) = _columns(gg.expected_spend(summary), "expected_spend")
    np.testing.assert_allclose(got, gg.expected_spend_np(x, m), rtol=1e-12)


@pytest.mark.connect
def test_expected_spend_is_null_where_the_mean_does_not_exist(spark):
    # E[Z | x, m] = p (v + x m) / (p x + q - 1), finite only for p x + q > 1: with q = 0.5 the
    # population mean (x = 0) does not exist; with p = 0.3 neither does x = 1's.
    df = spark.createDataFrame(
        [(0.0, 0.0), (1.0, 10.0), (3.0, 20.0)], "frequency double, monetary_value double"
    )
    for p, q, v in [(2.0, 0.5, 10.0), (0.3, 0.5, 10.0), (2.0, 3.0, 10.0)]:
        gg = GammaGamma()
        gg._set_fitted({"p": p, "q": q, "v": v})
        got = [r.expected_spend for r in gg.expected_spend(df).orderBy("frequency").collect()]
        want = [
            p * (v + x * m) / (p * x + q - 1) if p * x + q > 1 else None
            for x, m in [(0.0, 0.0), (1.0, 10.0), (3.0, 20.0)]
        ]
        assert got == [None if w is None else pytest.approx(w, rel=1e-12) for w in want]
        np_got = gg.expected_spend_np([0.0, 1.0, 3.0], [0.0, 10.0, 20.0])
        assert [None if np.isnan(g) else pytest.approx(g) for g in np_got] == got


def test_custom_columns_keep_other_columns(summary):
    renamed = summary.select(
        "account_id",
        F.col("frequency").cast("int").alias("x"),
        F.col("recency").alias("t_x"),
        F.col("T").alias("age"),
        F.col("monetary_value").alias("zbar"),
        F.lit("keep").alias("segment"),
    ).limit(300)
    cols = {"frequency_col": "x", "recency_col": "t_x", "T_col": "age"}
    model = BetaGeo().fit(renamed, **cols)
    out = model.expected_purchases(renamed, 10.0, output_col="e10", **cols)
    out = model.probability_alive(out, output_col="alive", **cols)
    assert out.columns == [*renamed.columns, "e10", "alive"]
    assert out.count() == 300
    assert out.filter("segment = 'keep' and e10 >= 0 and alive between 0 and 1").count() == 300
    gg = GammaGamma().fit(renamed, frequency_col="x", monetary_value_col="zbar")
    spend = gg.expected_spend(renamed, frequency_col="x", monetary_value_col="zbar", output_col="s")
    assert spend.columns == [*renamed.columns, "s"]


def test_validation_and_not_fitted(summary):
    with pytest.raises(SchemaError, match=r"BetaGeo.fit\(\).*'freq'.*frequency_col"):
        BetaGeo().fit(summary, frequency_col="freq")
    with pytest.raises(SchemaError, match="numeric"):
        ParetoNBD().fit(summary, frequency_col="account_id")
    with pytest.raises(SchemaError, match="monetary"):
        GammaGamma().fit(summary, monetary_value_col="spend")
    with pytest.raises(NotFittedError):
        BetaGeo().expected_purchases(summary, 10)
    with pytest.raises(NotFittedError):
        ModifiedBetaGeo().probability_alive(summary)
    with pytest.raises(NotFittedError):
        GammaGamma().expected_spend(summary)
    fitted = BetaGeo(penalizer=0.1).fit_arrays([0, 1, 2], [0.0, 1.0, 3.0], [4.0, 4.0, 5.0])
    with pytest.raises(SchemaError, match="t= must be"):
        fitted.expected_purchases(summary, -1.0)


def test_saved_model_scores_identically(summary, tmp_path):
    small = summary.limit(200)
    model = ParetoNBD().fit(summary)
    model.save(tmp_path / "pnbd.json")
    loaded = load_model(tmp_path / "pnbd.json")
    a = _columns(model.expected_purchases(small, 52), "expected_purchases")[0]
    b = _columns(loaded.expected_purchases(small, 52), "expected_purchases")[0]
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("model_cls", ["BetaGeo", "ModifiedBetaGeo", "ParetoNBD"])
def test_invalid_summaries_score_null_and_bad_t_is_rejected(spark, model_cls):
    """Negative frequency, recency > T, recency without repeat purchases, T < 0 and nulls
    score null (countable with isNull); a valid row beside them keeps its number."""
    import kamlib.clv as clv
    from kamlib import SchemaError

    model = getattr(clv, model_cls)()
    params = (
        {"r": 0.5, "alpha": 5.0, "s": 0.8, "beta": 10.0}
        if model_cls == "ParetoNBD"
        else {"r": 0.5, "alpha": 5.0, "a": 0.8, "b": 2.0}
    )
    model._set_fitted(params)
    rows = [
        (0, 2.0, 10.0, 20.0),
        (1, -1.0, 10.0, 20.0),
        (2, 2.0, 30.0, 20.0),
        (3, 0.0, 5.0, 20.0),
        (4, 1.0, 1.0, -3.0),
        (5, None, 1.0, 20.0),
    ]
    df = spark.createDataFrame(rows, "id int, frequency double, recency double, T double")
    scored = model.probability_alive(model.expected_purchases(df, 10.0)).orderBy("id").collect()
    assert scored[0].expected_purchases > 0
    assert 0 < scored[0].p_alive <= 1
    assert all(r.expected_purchases is None and r.p_alive is None for r in scored[1:])
    for bad in (math.inf, math.nan, -1.0):
        with pytest.raises(SchemaError, match="t="):
            model.expected_purchases(df, bad)
