"""A tuned local SparkSession for tests and notebooks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from kamlib._spark import LOCAL_SPARK_CONF, check_java, local_session

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = ["TEST_SPARK_CONF", "check_java", "local_spark_session"]

#: Configuration used by kamlib's own tests: the local-session defaults (UTC,
#: ANSI, Arrow, no console progress) plus small shuffles, no UI, quiet.
TEST_SPARK_CONF: dict[str, str] = {
    **LOCAL_SPARK_CONF,
    "spark.sql.shuffle.partitions": "2",
    "spark.default.parallelism": "2",
    "spark.ui.enabled": "false",
    "spark.driver.memory": "2g",
    "spark.sql.streaming.forceDeleteTempCheckpointLocation": "true",
    "spark.log.level": "ERROR",
}


def local_spark_session(
    *,
    app_name: str = "kamlib",
    master: str = "local[2]",
    conf: Mapping[str, str] | None = None,
    remote: bool = False,
) -> SparkSession:
    """Create (or get) a local SparkSession tuned for tests, notebooks and the demo.

    Parameters
    ----------
    app_name : str
        Spark application name.
    master : str
        Spark master URL; ``local[2]`` by default.
    conf : Mapping[str, str], optional
        Extra settings, applied over :data:`TEST_SPARK_CONF`.
    remote : bool
        Start an in-process Spark Connect server (``SparkSession.builder.remote(master)``,
        needs ``pyspark[connect]``) instead of a classic session.

    Returns
    -------
    pyspark.sql.SparkSession
        The session. The caller owns it and should ``stop()`` it.

    Examples
    --------
    >>> from kamlib.testing import local_spark_session
    >>> spark = local_spark_session(app_name="my-tests")  # doctest: +SKIP
    """
    settings = {**TEST_SPARK_CONF, **dict(conf or {})}
    return local_session(app_name=app_name, master=master, conf=settings, remote=remote)
