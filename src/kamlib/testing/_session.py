"""A tuned local SparkSession for tests and notebooks."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING

from kamlib.errors import KamlibError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = ["TEST_SPARK_CONF", "check_java", "local_spark_session"]

#: Configuration used by kamlib's own tests: small shuffles, no UI, UTC, quiet.
TEST_SPARK_CONF: dict[str, str] = {
    "spark.sql.shuffle.partitions": "2",
    "spark.default.parallelism": "2",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.ansi.enabled": "true",
    "spark.driver.memory": "2g",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.streaming.forceDeleteTempCheckpointLocation": "true",
    "spark.log.level": "ERROR",
}

_JAVA_HELP = (
    "kamlib needs Java 17 or newer to run local Spark. Install a JDK (for example "
    "'apt-get install openjdk-17-jre-headless' or https://adoptium.net) and make sure 'java' is "
    "on PATH or JAVA_HOME is set."
)


def check_java(minimum: int = 17) -> int:
    """Return the major version of the Java that local Spark will use.

    Raises
    ------
    KamlibError
        With one line saying what to install when Java is missing or older than ``minimum``.
    """
    java_home = os.environ.get("JAVA_HOME")
    java = os.path.join(java_home, "bin", "java") if java_home else shutil.which("java")
    if not java or not os.path.exists(java):
        raise KamlibError(f"Java was not found. {_JAVA_HELP}")
    try:
        out = subprocess.run(
            [java, "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except OSError as exc:  # pragma: no cover - broken installation
        raise KamlibError(f"Java at {java} could not be run ({exc}). {_JAVA_HELP}") from None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not match:
        raise KamlibError(f"Could not read the Java version from {java}. {_JAVA_HELP}")
    major = int(match.group(1))
    if major == 1 and match.group(2):  # "1.8" style
        major = int(match.group(2))
    if major < minimum:
        raise KamlibError(f"Java {major} found at {java}, but {minimum}+ is needed. {_JAVA_HELP}")
    return major


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
    from pyspark.sql import SparkSession

    check_java()
    # Python workers must run the same interpreter (and see the same packages) as the driver;
    # PySpark reads PYSPARK_PYTHON when it starts the JVM, so set it if the user has not.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    settings = {**TEST_SPARK_CONF, **dict(conf or {})}
    builder = SparkSession.builder.appName(app_name)
    builder = builder.remote(master) if remote else builder.master(master)
    for key, value in settings.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()
