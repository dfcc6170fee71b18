"""Churn classifier: time split, AUC against a pairwise (Mann-Whitney) reference, persistence."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from kamlib.churn import churn_features, training_frame
from kamlib.churn_model import ChurnModel, fit_churn_model
from kamlib.errors import ConvergenceError, KamlibError, SchemaError

AS_OF = ["2023-04-01", "2023-07-01", "2023-10-01", "2024-01-01"]
VALIDATION = "2024-01-01"


def _transactions(spark, n_accounts=300, seed=7):
    """Accounts buy at a Poisson rate until an exponential lifetime ends (known churners)."""
    rng = np.random.default_rng(seed)
    start = dt.date(2022, 1, 1)
    rows = []
    for i in range(n_accounts):
        rate = rng.gamma(2.0, 2.0) / 30.0  # orders per day
        life = rng.exponential(500.0)
        day = rng.exponential(1 / rate)
        while day < min(life, 820):
            rows.append((f"a{i:04d}", start + dt.timedelta(days=int(day)), float(rng.gamma(2, 50))))
            day += rng.exponential(1 / rate)
    return spark.createDataFrame(rows, "account_id string, order_date date, amount double")


@pytest.fixture(scope="module")
def frame(spark):
    return training_frame(_transactions(spark), as_of_dates=AS_OF, windows=(30, 90)).cache()


def _pairwise_auc(scores, labels):
    pos = [s for s, y in zip(scores, labels, strict=True) if y]
    neg = [s for s, y in zip(scores, labels, strict=True) if not y]
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


@pytest.mark.parametrize("algorithm", ["logistic", "gbt"])
def test_time_split_and_auc_match_the_pairwise_reference(spark, frame, algorithm):
    model = fit_churn_model(frame, validation_as_of=VALIDATION, algorithm=algorithm, max_iter=20)
    rows = frame.collect()
    cutoff = dt.datetime(2024, 1, 1)
    n_valid = sum(1 for r in rows if r.churned is not None and r.as_of >= cutoff.date())
    n_train = sum(
        1
        for r in rows
        if r.churned is not None and r.as_of <= (cutoff - dt.timedelta(days=90)).date()
    )
    assert model.metrics["validation_rows"] == n_valid
    assert model.metrics["train_rows"] == n_train  # the 2023-10-01 cutoff is embargoed
    scored = model.predict(frame.where("as_of >= date'2024-01-01'")).collect()
    probs = [r.churn_probability for r in scored]
    assert all(0.0 <= p <= 1.0 for p in probs)
    reference = _pairwise_auc(probs, [r.churned for r in scored])
    # Spark's ROC is trapezoidal over distinct thresholds: equal to Mann-Whitney with ties = 1/2.
    assert model.metrics["auc_roc"] == pytest.approx(reference, abs=1e-6)
    assert model.metrics["auc_roc"] > 0.7  # recency/frequency carry the churn signal
    assert 0.0 < model.metrics["auc_pr"] <= 1.0


def test_save_load_round_trip_and_scoring_frame(spark, frame, tmp_path):
    model = fit_churn_model(frame, validation_as_of=VALIDATION, algorithm="logistic")
    path = str(tmp_path / "churn")
    model.save(path)
    with pytest.raises(Exception):  # noqa: B017 - Spark's own "path exists" error
        model.save(path)
    model.save(path, overwrite=True)
    loaded = ChurnModel.load(path)
    assert loaded.features == model.features
    assert loaded.metrics == model.metrics
    assert loaded.churn_windows == (30, 90)
    feats = churn_features(_transactions(spark), as_of="2024-03-01", windows=(30, 90))
    a = {r.account_id: r.churn_probability for r in model.predict(feats).collect()}
    b = {r.account_id: r.churn_probability for r in loaded.predict(feats).collect()}
    assert a.keys() == b.keys()
    assert all(a[k] == pytest.approx(b[k], abs=1e-12) for k in a)


def test_load_rejects_a_document_that_is_not_a_churn_model(spark, tmp_path):
    path = str(tmp_path / "bogus")
    spark.createDataFrame([('{"format": "other"}',)], "value string").write.text(f"{path}/kamlib")
    with pytest.raises(KamlibError, match="not a kamlib churn model"):
        ChurnModel.load(path)


def test_bad_options_and_degenerate_splits(spark, frame):
    with pytest.raises(SchemaError):
        fit_churn_model(frame, validation_as_of=VALIDATION, algorithm="svm")  # type: ignore[arg-type]
    with pytest.raises(SchemaError):
        fit_churn_model(frame, validation_as_of=VALIDATION, horizon_days=0)
    with pytest.raises(SchemaError):
        fit_churn_model(frame.drop("churned"), validation_as_of=VALIDATION)
    with pytest.raises(ConvergenceError, match="no train rows"):
        fit_churn_model(frame, validation_as_of="2023-05-01")
    model = fit_churn_model(frame, validation_as_of=VALIDATION, algorithm="logistic")
    with pytest.raises(SchemaError, match="lacks the model's feature columns"):
        model.predict(frame.drop("recency_days"))


@pytest.mark.connect
def test_fit_and_predict_on_connect(spark):
    tf = training_frame(_transactions(spark, n_accounts=120), as_of_dates=AS_OF, windows=(30,))
    model = fit_churn_model(tf, validation_as_of=VALIDATION, algorithm="logistic", max_iter=10)
    assert 0.0 <= model.metrics["auc_roc"] <= 1.0
    assert model.predict(tf).where("churn_probability is null").count() == 0


def test_scorecard_adds_churn_probability(spark, frame):
    from kamlib.scorecard import account_scorecard

    model = fit_churn_model(frame, validation_as_of=VALIDATION, algorithm="logistic")
    tx = _transactions(spark)
    card = account_scorecard(tx, as_of="2024-03-01", churn_windows=(30, 90), churn_model=model)
    feats = churn_features(tx, as_of="2024-03-01", windows=(30, 90))
    expected = {r.account_id: r.churn_probability for r in model.predict(feats).collect()}
    got = {r.account_id: r.churn_probability for r in card.collect()}
    card.unpersist()
    assert got.keys() == expected.keys()
    assert all(got[k] == pytest.approx(expected[k], abs=1e-9) for k in got)
    with pytest.raises(SchemaError, match="churn_model= reads features"):
        account_scorecard(tx, as_of="2024-03-01", churn_windows=(30,), churn_model=model)
