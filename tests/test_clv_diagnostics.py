"""kamlib.clv.diagnostics: the tables behind the lifetimes diagnostic plots."""

from __future__ import annotations

import numpy as np
import pytest

from kamlib import NotFittedError, SchemaError
from kamlib.clv import (
    BetaGeo,
    calibration_holdout,
    calibration_holdout_purchases,
    period_transactions,
    probability_of_purchases,
)
from kamlib.datasets import load_cdnow, load_cdnow_summary
from tests.reference.clv_value import bg_pmf


@pytest.fixture(scope="module")
def cdnow(spark):
    summary = load_cdnow_summary(spark).cache()
    return summary, BetaGeo().fit(summary)


@pytest.mark.connect
def test_period_transactions_against_reference(spark, cdnow):
    summary, bg = cdnow
    table = period_transactions(summary, bg, max_frequency=7)
    assert table.columns == ["frequency", "observed", "expected"]
    rows = table.collect()
    assert [r.frequency for r in rows] == list(range(8))
    assert sum(r.observed for r in rows) == 2357
    assert sum(r.expected for r in rows) == pytest.approx(2357)
    # reference: sum over accounts of the published BG/NBD pmf at each account's T
    ages = [r.T for r in summary.select("T").collect()]
    p = bg.params
    for r in rows[:-1]:
        expected = sum(bg_pmf(p["r"], p["alpha"], p["a"], p["b"], r.frequency, T) for T in ages)
        assert r.expected == pytest.approx(expected, rel=1e-8)
    observed = [r.frequency for r in summary.select("frequency").collect()]
    assert rows[-1].observed == sum(1 for x in observed if x >= 7)
    # the fit is good on CDNOW: every bin within 15% (or 25 accounts)
    for r in rows:
        assert abs(r.observed - r.expected) <= max(0.15 * r.observed, 25)


@pytest.mark.connect
def test_calibration_holdout_purchases(spark):
    ch = calibration_holdout(
        load_cdnow(spark), calibration_end="1997-09-30", observation_end="1998-06-30", freq="W"
    ).cache()
    bg = BetaGeo().fit(ch)
    table = calibration_holdout_purchases(ch, bg, max_frequency=5)
    assert table.columns == ["frequency", "n_accounts", "observed", "expected"]
    rows = table.collect()
    assert [r.frequency for r in rows] == [0, 1, 2, 3, 4, 5]
    assert sum(r.n_accounts for r in rows) == 2357
    local = ch.select(
        "frequency", "recency", "T", "frequency_holdout", "duration_holdout"
    ).collect()
    x = np.array([r.frequency for r in local])
    pred = bg.conditional_expected_purchases_np(
        np.array([r.duration_holdout for r in local]),
        x,
        np.array([r.recency for r in local]),
        np.array([r.T for r in local]),
    )
    holdout = np.array([r.frequency_holdout for r in local])
    for r in rows:
        mask = np.minimum(x, 5) == r.frequency
        assert r.n_accounts == int(mask.sum())
        assert r.observed == pytest.approx(holdout[mask].mean(), rel=1e-12)
        assert r.expected == pytest.approx(pred[mask].mean(), rel=1e-10)
    # model tracks the holdout reasonably (FHL 2005 figure 4): within 0.5 purchases per bin
    for r in rows:
        assert abs(r.observed - r.expected) < 0.5


def test_probability_of_purchases(spark, cdnow):
    _, bg = cdnow
    p = bg.params
    table = probability_of_purchases(bg, range(4), [10.0, 39.0, 78.0], spark=spark)
    assert table.columns == ["n", "t", "probability"]
    rows = table.collect()
    assert len(rows) == 12
    for r in rows:
        assert r.probability == pytest.approx(
            bg_pmf(p["r"], p["alpha"], p["a"], p["b"], r.n, r.t), rel=1e-9
        )
    total = probability_of_purchases(bg, range(400), 39.0, spark=spark)
    assert sum(r.probability for r in total.collect()) == pytest.approx(1.0, abs=1e-6)
    single = probability_of_purchases(bg, 0, 39, spark=spark).collect()
    assert len(single) == 1


def test_bad_input(spark, cdnow):
    summary, bg = cdnow
    with pytest.raises(SchemaError, match="max_frequency= must be an int >= 1"):
        period_transactions(summary, bg, max_frequency=0)
    with pytest.raises(SchemaError, match="column 'age'"):
        period_transactions(summary, bg, T_col="age")
    with pytest.raises(SchemaError, match="column 'frequency_holdout'"):
        calibration_holdout_purchases(summary, bg)
    with pytest.raises(SchemaError) as info:
        period_transactions(summary, object())  # type: ignore[arg-type]
    assert (info.value.function, info.value.argument, info.value.found) == (
        "period_transactions",
        "model",
        "object",
    )
    assert "PurchaseCountModel" in str(info.value.expected)
    with pytest.raises(NotFittedError):
        period_transactions(summary, BetaGeo())
    with pytest.raises(SchemaError, match="n= must be ints >= 0"):
        probability_of_purchases(bg, [-1], 1.0, spark=spark)
    with pytest.raises(SchemaError, match="t= must be >= 0"):
        probability_of_purchases(bg, [1], -1.0, spark=spark)
