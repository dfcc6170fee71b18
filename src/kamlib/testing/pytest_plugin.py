"""pytest plugin giving a session-scoped, tuned ``spark`` fixture.

Enable it in a ``conftest.py`` with ``pytest_plugins = ["kamlib.testing.pytest_plugin"]``.
Run the suite against Spark Connect with ``pytest --kamlib-spark=connect`` (the in-process
Connect server binds port 15002, so do not combine it with parallel workers).
"""

from __future__ import annotations

import glob
import os
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


def connector_conf(jars_dir: str | None = None) -> dict[str, str]:
    """Spark settings that put the cached connector jars on the classpath (empty if none).

    ``jars_dir`` (default: the ``KAMLIB_JARS`` environment variable, set by ``make test`` to the
    folder ``scripts/fetch-jars.sh`` fills) holds a ``spark/`` folder of Kafka, Delta, s3a and
    Avro jars. They go on ``extraClassPath`` (no copy per session, unlike ``spark.jars``) and
    Delta's session extension and catalog are enabled.
    """
    folder = jars_dir if jars_dir is not None else os.environ.get("KAMLIB_JARS", "")
    spark_jars = os.path.join(folder, "spark")
    if not folder or not glob.glob(os.path.join(spark_jars, "*.jar")):
        return {}
    classpath = os.path.join(spark_jars, "*")
    return {
        "spark.driver.extraClassPath": classpath,
        "spark.executor.extraClassPath": classpath,
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
    }


@pytest.fixture(scope="session")
def spark(spark_mode: str) -> Iterator[SparkSession]:
    """One local SparkSession for the whole test run (classic or Spark Connect).

    Classic sessions get the connector jars of ``KAMLIB_JARS`` (see :func:`connector_conf`).
    """
    remote = spark_mode == "connect"
    conf = {} if remote else connector_conf()
    session = local_spark_session(app_name="kamlib-tests", remote=remote, conf=conf)
    yield session
    session.stop()
