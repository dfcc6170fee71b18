"""kamlib.clv.evaluation: holdout errors, tracking table, model comparison.

References are written by hand from the definitions (RMSE/MAE/bias over accounts, run rate
x / T * duration, cumulative sums over birth days) with the published BG/NBD formulas of
``tests/reference/clv_models.py``, never from kamlib's own outputs.
"""

from __future__ import annotations

import datetime as dt
import math

import pytest

from kamlib import NotFittedError, SchemaError
from kamlib.clv import (
    BetaGeo,
    ParetoNBD,
    calibration_holdout,
    compare_models,
    evaluate_holdout,
    purchase_tracking,
)
from kamlib.datasets import load_cdnow
from tests.reference.clv_models import bg_conditional_expected, bg_expected

P1 = {"r": 0.25, "alpha": 4.0, "a": 0.8, "b": 2.5}
P2 = {"r": 0.6, "alpha": 9.0, "a": 1.3, "b": 3.0}


def _bg(params):
    return BetaGeo.from_dict({"kamlib_model": "BetaGeo", "params": params, "fit": {"n": 5.0}})


# (frequency, recency, T, frequency_holdout, duration_holdout)
ROWS = [
    (0.0, 0.0, 30.0, 0.0, 20.0),
    (2.0, 10.0, 25.0, 1.0, 20.0),
    (5.0, 28.0, 30.0, 4.0, 20.0),
    (1.0, 3.0, 20.0, 3.0, 10.0),
    (0.0, 0.0, 0.0, 1.0, 20.0),  # T = 0: run rate 0
]
INVALID = [
    (None, 0.0, 10.0, 0.0, 20.0),  # null frequency
    (1.0, 3.0, 20.0, None, 20.0),  # null holdout
    (float("nan"), 0.0, 10.0, 0.0, 20.0),  # NaN frequency
    (3.0, 12.0, 10.0, 1.0, 20.0),  # recency > T
]
SCHEMA = (
    "frequency double, recency double, T double, frequency_holdout double, duration_holdout double"
)


def _ref_pred(p, row):
    x, tx, T, _, d = row
    return bg_conditional_expected(p["r"], p["alpha"], p["a"], p["b"], d, x, tx, T)


def _ref_errors(preds, actual):
    errs = [p - a for p, a in zip(preds, actual, strict=True)]
    n = len(errs)
    return (
        math.sqrt(sum(e * e for e in errs) / n),
        sum(abs(e) for e in errs) / n,
        sum(errs) / n,
    )


def _run_rate(row):
    x, _, T, _, d = row
    return x / T * d if T > 0 else 0.0


@pytest.fixture(scope="module")
def frame(spark):
    return spark.createDataFrame(ROWS + INVALID, SCHEMA)


def test_evaluate_holdout_against_hand_reference(frame):
    out = evaluate_holdout(frame, transaction_model=_bg(P1))
    assert out.columns == [
        "n_accounts",
        "n_excluded",
        "rmse",
        "mae",
        "bias",
        "baseline_rmse",
        "baseline_mae",
        "baseline_bias",
        "actual_mean",
        "predicted_mean",
        "baseline_mean",
    ]
    (row,) = out.collect()
    assert (row.n_accounts, row.n_excluded) == (len(ROWS), len(INVALID))
    actual = [r[3] for r in ROWS]
    preds = [_ref_pred(P1, r) for r in ROWS]
    rmse, mae, bias = _ref_errors(preds, actual)
    assert (row.rmse, row.mae, row.bias) == pytest.approx((rmse, mae, bias), rel=1e-9)
    base = [_run_rate(r) for r in ROWS]
    assert base[4] == 0.0
    b_rmse, b_mae, b_bias = _ref_errors(base, actual)
    assert (row.baseline_rmse, row.baseline_mae, row.baseline_bias) == pytest.approx(
        (b_rmse, b_mae, b_bias), rel=1e-12
    )
    assert row.actual_mean == pytest.approx(sum(actual) / len(ROWS))
    assert row.predicted_mean == pytest.approx(sum(preds) / len(ROWS), rel=1e-9)
    assert row.baseline_mean == pytest.approx(sum(base) / len(ROWS))


def test_evaluate_holdout_fixed_duration_and_names(spark):
    df = spark.createDataFrame(
        [(r[0], r[1], r[2], r[3]) for r in ROWS], "x double, tx double, age double, y double"
    )
    out = evaluate_holdout(
        df,
        transaction_model=_bg(P2),
        frequency_col="x",
        recency_col="tx",
        T_col="age",
        holdout_col="y",
        duration=15.0,
    ).first()
    fixed = [(*r[:4], 15.0) for r in ROWS]
    rmse, mae, bias = _ref_errors([_ref_pred(P2, r) for r in fixed], [r[3] for r in fixed])
    assert (out.rmse, out.mae, out.bias) == pytest.approx((rmse, mae, bias), rel=1e-9)
    b = _ref_errors([_run_rate(r) for r in fixed], [r[3] for r in fixed])
    assert out.baseline_rmse == pytest.approx(b[0], rel=1e-12)


def test_evaluate_holdout_all_invalid_gives_nulls(spark):
    df = spark.createDataFrame(INVALID, SCHEMA)
    row = evaluate_holdout(df, transaction_model=_bg(P1)).first()
    assert row.n_accounts == 0
    assert row.n_excluded == len(INVALID)
    assert row.rmse is None
    assert row.baseline_bias is None


def test_evaluate_holdout_errors_before_any_job(frame):
    with pytest.raises(SchemaError, match="frequency_holdout"):
        evaluate_holdout(frame.drop("frequency_holdout"), transaction_model=_bg(P1))
    with pytest.raises(SchemaError, match="duration_holdout"):
        evaluate_holdout(frame.drop("duration_holdout"), transaction_model=_bg(P1))
    # duration= makes the duration column unnecessary
    evaluate_holdout(frame.drop("duration_holdout"), transaction_model=_bg(P1), duration=5.0)
    with pytest.raises(SchemaError, match="transaction_model"):
        evaluate_holdout(frame, transaction_model=object())
    with pytest.raises(NotFittedError):
        evaluate_holdout(frame, transaction_model=BetaGeo())
    with pytest.raises(SchemaError):
        evaluate_holdout(frame, transaction_model=_bg(P1), duration=-1.0)


def test_compare_models_ranks(frame):
    m1, m2 = _bg(P1), _bg(P2)
    m1._fit_info["log_likelihood"] = -100.0
    m2._fit_info["log_likelihood"] = -90.0
    table = compare_models(frame, models={"one": m1, "two": m2})
    assert table.columns == [
        "model",
        "n_params",
        "log_likelihood",
        "aic",
        "bic",
        "n_accounts",
        "rmse",
        "mae",
        "bias",
        "rank_rmse",
        "rank_aic",
        "rank_bic",
    ]
    rows = {r.model: r for r in table.collect()}
    assert set(rows) == {"one", "two", "run_rate"}
    actual = [r[3] for r in ROWS]
    rmse = {
        "one": _ref_errors([_ref_pred(P1, r) for r in ROWS], actual)[0],
        "two": _ref_errors([_ref_pred(P2, r) for r in ROWS], actual)[0],
        "run_rate": _ref_errors([_run_rate(r) for r in ROWS], actual)[0],
    }
    for name, value in rmse.items():
        assert rows[name].rmse == pytest.approx(value, rel=1e-9)
        assert rows[name].n_accounts == len(ROWS)
    order = sorted(rmse, key=rmse.get)
    assert [r.model for r in table.collect()] == order
    assert [rows[n].rank_rmse for n in order] == [1, 2, 3]
    # aic = 2k - 2LL; bic = k ln(5) - 2LL (fit n = 5)
    assert rows["one"].aic == pytest.approx(8 + 200.0)
    assert rows["two"].bic == pytest.approx(4 * math.log(5) + 180.0)
    assert (rows["two"].rank_aic, rows["one"].rank_aic) == (1, 2)
    assert (rows["two"].rank_bic, rows["one"].rank_bic) == (1, 2)
    assert rows["run_rate"].aic is None
    assert rows["run_rate"].rank_aic is None
    assert rows["run_rate"].n_params is None
    assert rows["one"].n_params == 4
    # a list is named by class; the baseline can be left out
    names = [
        r.model for r in compare_models(frame, models=[m1, m2], include_baseline=False).collect()
    ]
    assert sorted(names) == ["BetaGeo", "BetaGeo_2"]


def test_compare_models_rejects_bad_input(frame):
    with pytest.raises(SchemaError):
        compare_models(frame, models={})
    with pytest.raises(SchemaError):
        compare_models(frame, models={"run_rate": _bg(P1)})
    with pytest.raises(SchemaError):
        compare_models(frame, models={"x": "not a model"})
    with pytest.raises(SchemaError):
        compare_models(frame, models=_bg(P1))


def test_purchase_tracking_against_hand_reference(spark):
    d0 = dt.date(2024, 1, 1)
    day = lambda k: d0 + dt.timedelta(days=k)  # noqa: E731
    tx = spark.createDataFrame(
        [
            ("a", day(0), 10.0),
            ("a", day(0), 5.0),  # same day: one purchase
            ("a", day(3), 1.0),
            ("a", day(9), 1.0),
            ("a", day(16), 1.0),  # holdout
            ("b", day(2), 1.0),
            ("b", day(2), 1.0),
            ("b", day(12), float("nan")),  # invalid amount: not a purchase
            ("b", day(13), 1.0),
            ("c", day(5), 1.0),
            ("c", day(19), 1.0),  # holdout
            ("d", day(11), 1.0),  # first purchase after the calibration end: not in the cohort
            ("d", day(15), 1.0),
            (None, day(4), 1.0),
        ],
        "account_id string, order_date date, amount double",
    )
    model = _bg(P1)
    cal, end = day(9), day(19)
    table = purchase_tracking(
        tx,
        transaction_model=model,
        calibration_end=cal,
        observation_end=end,
        period_days=7,
        freq="D",
    )
    rows = table.collect()
    assert [r.period for r in rows] == [1, 2, 3]
    assert [r.period_end for r in rows] == [day(6), day(13), day(19)]
    assert [r.is_holdout for r in rows] == [False, True, True]
    births = {0: 1, 2: 1, 5: 1}
    repeats = [3, 9, 16, 13, 19]
    for row, e in zip(rows, (6, 13, 19), strict=True):
        expected = sum(
            n * bg_expected(P1["r"], P1["alpha"], P1["a"], P1["b"], float(e - b))
            for b, n in births.items()
            if e - b > 0
        )
        assert row.cumulative_expected == pytest.approx(expected, rel=1e-9)
        assert row.cumulative_actual == sum(1 for d in repeats if d <= e)
    assert [r.actual for r in rows] == [1.0, 2.0, 2.0]
    assert rows[1].expected == pytest.approx(
        rows[1].cumulative_expected - rows[0].cumulative_expected
    )
    # weeks as the model unit: ages in weeks
    weekly = purchase_tracking(
        tx, transaction_model=model, calibration_end=cal, observation_end=end, freq="W"
    ).collect()
    expected = sum(
        n * bg_expected(P1["r"], P1["alpha"], P1["a"], P1["b"], (19 - b) / 7.0)
        for b, n in births.items()
    )
    assert weekly[-1].cumulative_expected == pytest.approx(expected, rel=1e-9)


def test_purchase_tracking_errors(spark):
    tx = spark.createDataFrame(
        [("a", dt.date(2024, 1, 1), 1.0)], "account_id string, order_date date, amount double"
    )
    with pytest.raises(SchemaError, match="observation_end"):
        purchase_tracking(
            tx,
            transaction_model=_bg(P1),
            calibration_end="2024-02-01",
            observation_end="2024-01-01",
        )
    with pytest.raises(SchemaError, match="period_days"):
        purchase_tracking(
            tx, transaction_model=_bg(P1), calibration_end="2024-02-01", period_days=0
        )
    with pytest.raises(SchemaError, match="amount"):
        purchase_tracking(
            tx.drop("amount"), transaction_model=_bg(P1), calibration_end="2024-02-01"
        )


@pytest.mark.connect
def test_cdnow_holdout_comparison(spark):
    tx = load_cdnow(spark).cache()
    ch = calibration_holdout(
        tx, calibration_end="1997-09-30", observation_end="1998-06-30", freq="W"
    ).cache()
    bg, pnbd = BetaGeo().fit(ch), ParetoNBD().fit(ch)
    row = evaluate_holdout(ch, transaction_model=bg).first()
    assert (row.n_accounts, row.n_excluded) == (2357, 0)
    # FHL (2005): BG/NBD tracks the CDNOW holdout far better than the naive run rate
    assert row.rmse < 0.8 * row.baseline_rmse
    assert abs(row.bias) < 0.15
    assert row.baseline_bias > 0.3
    table = compare_models(ch, models={"bg": bg, "pnbd": pnbd}).collect()
    assert table[-1].model == "run_rate"
    assert {r.model: r.rmse for r in table}["bg"] == pytest.approx(row.rmse, rel=1e-12)
    track = purchase_tracking(
        tx, transaction_model=bg, calibration_end="1997-09-30", observation_end="1998-06-30"
    ).collect()
    assert len(track) == 78
    assert track[38].period_end == dt.date(1997, 9, 30)
    totals = ch.groupBy().sum("frequency", "frequency_holdout").first()
    assert track[38].cumulative_actual == totals[0]
    assert track[-1].cumulative_actual == totals[0] + totals[1]
    assert not track[38].is_holdout
    assert track[39].is_holdout
    # cumulative tracking within 5% from the calibration end on (FHL 2005, figure 2; the
    # first weeks, while the cohort is still being acquired, are under-predicted)
    for r in track[38:]:
        assert abs(r.cumulative_expected - r.cumulative_actual) < 0.05 * r.cumulative_actual
