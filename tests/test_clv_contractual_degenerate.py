"""sBG: degenerate data is a ConvergenceError saying why; invalid t is a SchemaError."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kamlib.clv import ShiftedBetaGeo
from kamlib.errors import ConvergenceError, SchemaError

# Fader & Hardie (2007), "How to project customer retention", regular customers: survivors of
# 1000 after 0..7 years; published MLE alpha = 0.704, beta = 1.182.
SURVIVORS = [1000, 631, 468, 382, 326, 289, 262, 241]


def test_nobody_churns_is_not_identified():
    with pytest.raises(ConvergenceError, match="no account churned"):
        ShiftedBetaGeo().fit_arrays([3, 5, 7, 2], [False, False, False, False])
    with pytest.raises(ConvergenceError, match="no account churned"):
        ShiftedBetaGeo().fit_survivors([100, 100, 100, 100])


def test_everyone_churns_at_the_first_renewal_is_not_identified():
    with pytest.raises(ConvergenceError, match="first renewal"):
        ShiftedBetaGeo().fit_arrays([1, 1, 1], [True, True, True])


def test_published_fit_still_works():
    model = ShiftedBetaGeo().fit_survivors(SURVIVORS)
    assert model.params["alpha"] == pytest.approx(0.704, abs=0.001)
    assert model.params["beta"] == pytest.approx(1.182, abs=0.001)


@pytest.mark.parametrize(
    ("method", "bad"),
    [
        ("survival", -1),
        ("survival", math.nan),
        ("survival", math.inf),
        ("retention_rate", 0),
        ("retention_rate", 0.5),
        ("churn_probability", 0),
        ("churn_probability", [1, 2, -3]),
        ("survival", "soon"),
    ],
)
def test_invalid_t_is_a_schema_error(method, bad):
    model = ShiftedBetaGeo().fit_survivors(SURVIVORS)
    with pytest.raises(SchemaError, match="t="):
        getattr(model, method)(bad)


def test_valid_t_keeps_the_closed_forms():
    model = ShiftedBetaGeo().fit_survivors(SURVIVORS)
    a, b = model.params["alpha"], model.params["beta"]
    assert model.survival(0) == 1.0
    # S(t) = prod_{i=1..t} r(i), r(i) = (b + i - 1) / (a + b + i - 1)
    expected = np.cumprod([(b + i - 1) / (a + b + i - 1) for i in range(1, 8)])
    np.testing.assert_allclose(model.survival(np.arange(1, 8)), expected, rtol=1e-12)
    assert 0.0 < model.retention_rate(1) < model.retention_rate(5) < 1.0
    assert model.churn_probability(1) == pytest.approx(a / (a + b))
