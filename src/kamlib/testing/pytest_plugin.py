"""pytest plugin giving a session-scoped, tuned ``spark`` fixture.

Enable it in a ``conftest.py`` with ``pytest_plugins = ["kamlib.testing.pytest_plugin"]``.
Run the suite against Spark Connect with ``pytest --kamlib-spark=connect`` (the in-process
Connect server binds port 15002, so do not combine it with parallel workers), or against a real
standalone cluster on 127.0.0.1 with ``pytest --kamlib-spark=cluster`` (a master and two workers
started for the session, see :func:`kamlib.testing._cluster.standalone_cluster`; kamlib's own
suite runs its ``-m cluster`` tests that way).
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
    """Add ``--kamlib-spark={classic,connect,cluster}``."""
    parser.addoption(
        "--kamlib-spark",
        action="store",
        default="classic",
        choices=("classic", "connect", "cluster"),
        help="Run the spark fixture as a classic local session, through Spark Connect, or on a "
        "standalone cluster (master + 2 workers) started on 127.0.0.1 for the session.",
    )


@pytest.fixture(scope="session")
def spark_mode(request: pytest.FixtureRequest) -> str:
    """``"classic"``, ``"connect"`` or ``"cluster"``, from ``--kamlib-spark``."""
    return str(request.config.getoption("--kamlib-spark"))


def connector_conf(jars_dir: str | None = None) -> dict[str, str]:
    """Spark settings that put the cached connector jars on the classpath (empty if none).

    ``jars_dir`` (default: the ``KAMLIB_JARS`` environment variable, set by ``make test`` to the
    folder ``scripts/fetch-jars.sh`` fills) holds a ``spark/`` folder of Kafka, Delta, s3a and
    Avro jars. They go on ``extraClassPath`` (no copy per session, unlike ``spark.jars``),
    Delta's session extension and catalog are enabled, and Delta's snapshot state is rebuilt
    with 2 partitions instead of 50 (small local tables).
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
        # Delta rebuilds a table's snapshot with 50 shuffle partitions by default, each a task:
        # on local[2] and test-sized tables that is most of every Delta read and commit.
        "spark.databricks.delta.snapshotPartitions": "2",
    }


#: Settings of the cluster-mode session: two 1-core executors (one per worker), so that an
#: application submitted beside it (``spark-submit`` tests) gets the other two cores.
CLUSTER_SPARK_CONF: dict[str, str] = {
    "spark.cores.max": "2",
    "spark.executor.memory": "768m",
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
}


@pytest.fixture(scope="session")
def spark_cluster(spark_mode: str) -> Iterator[Any]:
    """The standalone cluster of ``--kamlib-spark=cluster`` (skipped in the other modes).

    Two workers of 2 cores and 2 GiB on 127.0.0.1. If it cannot start the tests fail when the
    ``CI`` environment variable is set and are skipped otherwise.
    """
    if spark_mode != "cluster":
        pytest.skip("needs --kamlib-spark=cluster")
    from kamlib.testing._cluster import ClusterUnavailableError, standalone_cluster

    try:
        context = standalone_cluster(workers=2, cores_per_worker=2, memory_per_worker="2g")
        cluster = context.__enter__()
    except ClusterUnavailableError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"the standalone Spark cluster did not start: {exc}", pytrace=False)
        pytest.skip(f"the standalone Spark cluster did not start: {exc}")
    try:
        yield cluster
    finally:
        context.__exit__(None, None, None)


@pytest.fixture(scope="session")
def spark(spark_mode: str, request: pytest.FixtureRequest) -> Iterator[SparkSession]:
    """One SparkSession for the whole test run: local classic, Spark Connect, or the cluster.

    Classic and cluster sessions get the connector jars of ``KAMLIB_JARS`` (see
    :func:`connector_conf`; on the cluster the executors read the same folder).
    """
    remote = spark_mode == "connect"
    conf = {} if remote else connector_conf()
    master = "local[2]"
    if spark_mode == "cluster":
        master = request.getfixturevalue("spark_cluster").master_url
        conf = {**conf, **CLUSTER_SPARK_CONF}
    session = local_spark_session(app_name="kamlib-tests", master=master, remote=remote, conf=conf)
    yield session
    session.stop()
