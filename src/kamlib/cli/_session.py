"""The one SparkSession policy of kamlib's commands."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = ["command_session"]

log = logging.getLogger("kamlib")


def command_session(
    *, app_name: str, remote: str | None = None, master: str | None = None
) -> tuple[SparkSession, bool]:
    """Return ``(session, owned)`` for a ``kamlib`` command; stop the session only if owned.

    In order: ``remote`` (``--remote``) or ``SPARK_REMOTE`` gives a Spark Connect session; an
    active session (a notebook, a test, in-process callers) is reused; under ``spark-submit``
    (``PYSPARK_GATEWAY_PORT`` set) the submitted configuration is used; otherwise a local
    session on ``master`` (default ``local[2]``) from :func:`kamlib._spark.local_session`, which
    honours ``PYSPARK_SUBMIT_ARGS`` (``--jars``, ``--packages``) and ``spark-defaults.conf``.
    """
    from pyspark.sql import SparkSession

    from kamlib._spark import local_session

    url = remote or os.environ.get("SPARK_REMOTE")
    if url:
        return SparkSession.builder.remote(url).appName(app_name).getOrCreate(), True
    active = SparkSession.getActiveSession()
    if active is not None:
        log.info("using the active Spark session")
        return active, False
    if os.environ.get("PYSPARK_GATEWAY_PORT"):  # spark-submit started the JVM for us
        log.info("using the spark-submit session (SparkSession.builder.getOrCreate())")
        return SparkSession.builder.appName(app_name).getOrCreate(), False
    log.info("starting a local Spark session (%s)", master or "local[2]")
    return local_session(app_name=app_name, master=master or "local[2]"), True
