"""Spark jobs per call (issue 17): counted with the status tracker of a job group.

Classic Spark only (the status tracker is not part of Spark Connect). With adaptive query
execution every query stage is a job of its own, so counts are compared with a plain query of
the same shape in the same session rather than with fixed numbers.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
from collections.abc import Iterator

import pytest

_groups = itertools.count()


@contextlib.contextmanager
def recorded_jobs(spark) -> Iterator[list[int]]:
    """The ids of the Spark jobs started inside the block (filled in when it exits)."""
    sc = spark.sparkContext
    group = f"kamlib-jobs-{next(_groups)}"
    jobs: list[int] = []
    sc.setJobGroup(group, group)
    try:
        yield jobs
    finally:
        sc.setLocalProperty("spark.jobGroup.id", None)
        jobs.extend(sc.statusTracker().getJobIdsForGroup(group))


@pytest.fixture(scope="module")
def summary(spark):
    from kamlib.clv import rfm_summary
    from kamlib.datasets import synthetic_transactions

    tx = synthetic_transactions(spark, 400, seed=5)
    frame = rfm_summary(tx, observation_end=dt.date(2025, 12, 31))
    # rfm_summary's null-account row and accounts Gamma-Gamma cannot use (no repeat, <= 0)
    extra = spark.createDataFrame(
        [(None, None, None, None, None), ("z0", 0.0, 0.0, 10.0, 0.0), ("z1", 2.0, 5.0, 9.0, -1.0)],
        "account_id string, frequency double, recency double, T double, monetary_value double",
    )
    return frame.select(*extra.columns).unionByName(extra).cache()


def test_joint_fit_equals_the_two_fits_in_the_jobs_of_one(spark, summary):
    from kamlib.clv import BetaGeo, GammaGamma
    from kamlib.clv.models import _fit_with_spend

    summary.count()
    with recorded_jobs(spark) as one_fit:
        bg = BetaGeo(penalizer=0.01).fit(summary)
    gg = GammaGamma(penalizer=0.01).fit(summary)
    joint_bg, joint_gg = BetaGeo(penalizer=0.01), GammaGamma(penalizer=0.01)
    with recorded_jobs(spark) as joint:
        _fit_with_spend(summary, joint_bg, joint_gg)
    assert len(joint) == len(one_fit) >= 1
    for name, value in bg.params.items():
        assert joint_bg.params[name] == pytest.approx(value, rel=1e-8)
    for name, value in gg.params.items():
        assert joint_gg.params[name] == pytest.approx(value, rel=1e-8)
    assert joint_gg.excluded == gg.excluded >= 2
    assert joint_bg.fit_info["n"] == bg.fit_info["n"]


def test_scorecard_runs_only_its_fit_before_the_action(spark):
    from kamlib.clv import BetaGeo, rfm_summary
    from kamlib.datasets import synthetic_transactions
    from kamlib.scorecard import account_scorecard

    tx = synthetic_transactions(spark, 300, seed=8).cache()
    tx.count()
    as_of = dt.date(2026, 1, 1)
    summary = rfm_summary(
        tx.where(tx.order_date < as_of), observation_end=as_of - dt.timedelta(days=1)
    )
    with recorded_jobs(spark) as one_fit:
        BetaGeo().fit(summary)
    with recorded_jobs(spark) as built:
        card = account_scorecard(tx, as_of=as_of, cache=False)
    # both models from one read of the summary; nothing counted, collected or logged eagerly
    assert len(built) == len(one_fit)
    assert card.count() == 300
