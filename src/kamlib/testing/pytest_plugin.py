"""pytest plugin giving a session-scoped, tuned ``spark`` fixture.

Enable it in a ``conftest.py`` with ``pytest_plugins = ["kamlib.testing.pytest_plugin"]``.
Run the suite against Spark Connect with ``pytest --kamlib-spark=connect`` (the in-process
Connect server binds port 15002, so do not combine it with parallel workers).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from kamlib.testing._session import local_spark_session

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def pytest_addoption(parser: Any) -> None:
    """Add ``--kamlib-spark={classic,connect}``."""
    parser.addoption(
        "--kamlib-spark",
        action="store",
        default="classic",
        choices=("classic", "connect"),
        help="Run the spark fixture as a classic local session or through Spark Connect.",
    )


@pytest.fixture(scope="session")
def spark_mode(request: pytest.FixtureRequest) -> str:
    """``"classic"`` or ``"connect"``, from ``--kamlib-spark``."""
    return str(request.config.getoption("--kamlib-spark"))


@pytest.fixture(scope="session")
def spark(spark_mode: str) -> Iterator[SparkSession]:
    """One local SparkSession for the whole test run (classic or Spark Connect)."""
    session = local_spark_session(app_name="kamlib-tests", remote=spark_mode == "connect")
    yield session
    session.stop()
