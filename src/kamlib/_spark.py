"""PySpark availability and version checks (pyspark is an extra, never a hard dependency)."""

from __future__ import annotations

import importlib
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

__all__ = [
    "LOCAL_SPARK_CONF",
    "MIN_PYSPARK",
    "check_java",
    "check_pyspark",
    "is_remote",
    "local_session",
]

MIN_PYSPARK = (4, 0)

_INSTALL_HINT = (
    "kamlib needs PySpark >= 4.0. Install it with one of the extras: "
    "pip install 'kamlib[spark]' (local or classic Spark), "
    "pip install 'kamlib[connect]' (Spark Connect thin client, e.g. serverless platforms), "
    "or use the pyspark your Spark platform provides."
)


def _parse_version(text: str) -> tuple[int, int]:
    parts = []
    for piece in text.split(".")[:2]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    while len(parts) < 2:
        parts.append(0)
    return parts[0], parts[1]


def check_pyspark() -> str:
    """Check that a supported PySpark is importable and return its version.

    Returns
    -------
    str
        The installed PySpark version.

    Raises
    ------
    ImportError
        If PySpark is missing (the message names kamlib's extras) or older than 4.0
        (the message gives the version found).
    """
    try:
        pyspark = importlib.import_module("pyspark")
    except ImportError as exc:
        raise ImportError(f"PySpark is not installed. {_INSTALL_HINT}") from exc
    version = str(getattr(pyspark, "__version__", "0.0"))
    if _parse_version(version) < MIN_PYSPARK:
        raise ImportError(f"kamlib found PySpark {version}, which is too old. {_INSTALL_HINT}")
    return version


def is_remote() -> bool:
    """Return whether the current process talks to Spark through Spark Connect."""
    from pyspark.sql.utils import is_remote as _is_remote

    return bool(_is_remote())


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


#: Settings of a local session started by kamlib's commands (no cluster configured).
LOCAL_SPARK_CONF: dict[str, str] = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.ansi.enabled": "true",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.ui.showConsoleProgress": "false",
}


def _local_shuffle_partitions(master: str) -> dict[str, str]:
    """``spark.sql.shuffle.partitions`` = 4 x the cores of a ``local[N]`` / ``local[*]`` master.

    Spark's default of 200 is sized for clusters; on a laptop each of those tasks costs
    scheduling time for a few KB of data (the demo's MRR bridge on 20,000 accounts: 12 s with
    200 partitions, 1.3 s with 8). Other masters keep their own setting.
    """
    match = re.fullmatch(r"local(?:\[(\d+|\*)(?:,\s*\d+)?\])?", master.strip())
    if match is None:
        return {}
    cores = match.group(1)
    if cores is None:  # plain "local": one core
        n = 1
    elif cores == "*":
        n = os.cpu_count() or 2
    else:
        n = int(cores)
    return {"spark.sql.shuffle.partitions": str(4 * max(1, n))}


def local_session(
    *,
    app_name: str = "kamlib",
    master: str = "local[2]",
    conf: Mapping[str, str] | None = None,
    remote: bool = False,
) -> SparkSession:
    """Create (or get) a local SparkSession: Java checked, workers on this interpreter.

    ``conf`` is applied over :data:`LOCAL_SPARK_CONF` and, for a ``local[N]`` master, 4 x N
    shuffle partitions (instead of Spark's cluster-sized 200); with ``remote`` an in-process
    Spark Connect server is started (``builder.remote(master)``). Options Spark itself reads
    (``PYSPARK_SUBMIT_ARGS`` such as ``--jars`` / ``--packages``, ``spark-defaults.conf``) apply.
    """
    from pyspark.sql import SparkSession

    check_java()
    # Python workers must run the same interpreter (and see the same packages) as the driver.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(app_name)
    builder = builder.remote(master) if remote else builder.master(master)
    settings = {**LOCAL_SPARK_CONF, **_local_shuffle_partitions(master), **dict(conf or {})}
    for key, value in settings.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()
