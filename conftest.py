"""Root pytest configuration: the shared Spark fixture, doctest namespace, hypothesis profiles."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

pytest_plugins = ["kamlib.testing.pytest_plugin", "tests.services.kafka", "tests.services.s3"]

# Spark-backed property tests put many generated cases into one DataFrame; a single example
# can take seconds, so there is no deadline, and CI derandomizes for reproducible runs.
settings.register_profile(
    "dev",
    deadline=None,
    max_examples=25,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "ci",
    deadline=None,
    max_examples=25,
    derandomize=True,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture(autouse=True)
def _doctest_spark(request: pytest.FixtureRequest) -> None:
    """Give doctests a ``spark`` name (the session fixture) and ``F``."""
    if type(request.node).__name__ == "DoctestItem":
        namespace = request.getfixturevalue("doctest_namespace")
        from pyspark.sql import functions as F

        namespace["spark"] = request.getfixturevalue("spark")
        namespace["F"] = F
