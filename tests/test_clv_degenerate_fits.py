"""Degenerate data never "converges": one account, identical accounts, boundary runs."""

from __future__ import annotations

import numpy as np
import pytest

from kamlib.clv import BetaGeo, ModifiedBetaGeo, ParetoNBD
from kamlib.errors import ConvergenceError

MODELS = [BetaGeo, ModifiedBetaGeo, ParetoNBD]


@pytest.mark.parametrize("cls", MODELS)
def test_one_account_is_not_identified(cls):
    with pytest.raises(ConvergenceError, match="same \\(frequency, recency, T\\)"):
        cls().fit_arrays([3], [20.0], [40.0])


@pytest.mark.parametrize("cls", MODELS)
def test_identical_accounts_are_not_identified(cls):
    n = 500
    with pytest.raises(ConvergenceError, match="same \\(frequency, recency, T\\)"):
        cls().fit_arrays(np.full(n, 2.0), np.full(n, 30.0), np.full(n, 52.0))
    # the same as count-weighted distinct tuples
    with pytest.raises(ConvergenceError, match="same \\(frequency, recency, T\\)"):
        cls().fit_arrays([2.0], [30.0], [52.0], [float(n)])


@pytest.mark.parametrize("cls", [BetaGeo, ModifiedBetaGeo])
def test_tiny_samples_run_to_the_boundary(cls):
    with pytest.raises(ConvergenceError, match=r"boundary|not identified|flat"):
        cls().fit_arrays([0, 1, 2], [0.0, 1.0, 3.0], [4.0, 4.0, 5.0])


@pytest.mark.parametrize("cls", MODELS)
def test_a_penalty_makes_tiny_samples_fit(cls):
    model = cls(penalizer=0.1).fit_arrays([0, 1, 2], [0.0, 1.0, 3.0], [4.0, 4.0, 5.0])
    assert all(np.isfinite(v) and v > 0 for v in model.params.values())
