"""Maven coordinates of the JVM connectors kamlib's I/O uses, matched to a Spark release.

Kafka sources and sinks, the Delta Lake connector, ``s3a://`` object stores and Avro are JVM
artifacts that are not part of the ``pyspark`` wheel. :func:`packages` returns the coordinates to
put on ``spark.jars.packages`` (or ``spark-submit --packages``) for the Spark a job runs on, so
the versions always match: a connector built for another Spark minor release fails at run time
with errors that do not name the cause.

This module imports without pyspark; the version of the running Spark is read from
``pyspark.__version__`` only when :func:`packages` is called without ``spark_version``.
"""

from __future__ import annotations

import re

from kamlib.errors import SchemaError

__all__ = ["SCALA_BINARY", "SUPPORTED_SPARK", "packages"]

#: Scala binary version of the Spark 4 builds (pip's pyspark and the official distributions).
SCALA_BINARY = "2.13"

#: Spark minor release -> (Delta Lake release, Hadoop release the Spark distribution ships).
#: Delta publishes one artifact per Spark minor (``io.delta:delta-spark_<minor>_2.13``); the
#: Hadoop version is the one in that Spark release's ``hadoop-client-api`` jar, which
#: ``hadoop-aws`` must equal.
SUPPORTED_SPARK: dict[str, tuple[str, str]] = {
    "4.0": ("4.4.0", "3.4.1"),
    "4.1": ("4.4.0", "3.4.2"),
    "4.2": ("4.4.0", "3.5.0"),
}

_VERSION = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")


def _running_spark_version() -> str:
    try:
        from pyspark import __version__ as version
    except ImportError:
        raise SchemaError(
            "packages(): pyspark is not importable; pass spark_version='X.Y.Z' "
            "(the Spark release the job runs on)",
            function="packages",
            argument="spark_version",
        ) from None
    return str(version)


def packages(
    *,
    kafka: bool = False,
    delta: bool = False,
    avro: bool = False,
    s3: bool = False,
    spark_version: str | None = None,
) -> list[str]:
    """Maven coordinates of the connectors matching a Spark release, for ``spark.jars.packages``.

    Parameters
    ----------
    kafka : bool
        Structured Streaming Kafka source and sink
        (``org.apache.spark:spark-sql-kafka-0-10_2.13:<spark>``), used by
        :func:`kamlib.streaming.kafka_source` and :func:`kamlib.streaming.kafka_sink`.
    delta : bool
        Delta Lake (``io.delta:delta-spark_<major.minor>_2.13:<delta>``); also set
        ``spark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension`` and
        ``spark.sql.catalog.spark_catalog=org.apache.spark.sql.delta.catalog.DeltaCatalog``.
    avro : bool
        Avro data source and ``from_avro`` (``org.apache.spark:spark-avro_2.13:<spark>``).
    s3 : bool
        ``s3a://`` paths (``org.apache.hadoop:hadoop-aws:<hadoop>``, at the Hadoop release that
        Spark release ships; it brings the AWS SDK bundle).
    spark_version : str, optional
        ``"X.Y.Z"``; default the installed ``pyspark.__version__`` (no session is started).
        Supported minor releases are the keys of :data:`SUPPORTED_SPARK`.

    Returns
    -------
    list of str
        ``group:artifact:version`` coordinates in the order kafka, delta, avro, s3 (empty when
        no connector is asked for). Join them with ``","`` for ``spark.jars.packages``.

    Raises
    ------
    SchemaError
        ``spark_version`` is not ``X.Y.Z`` of a supported minor release, or it is omitted and
        pyspark is not importable.

    Notes
    -----
    Kafka and Avro are released with Spark itself (same version number); Delta Lake ships one
    build per Spark minor release; ``hadoop-aws`` must equal the Hadoop client bundled with
    Spark, else ``s3a://`` fails with class-loading errors. Scala is 2.13 (:data:`SCALA_BINARY`),
    the only Scala of Spark 4.

    References
    ----------
    Delta Lake releases and their Spark compatibility: https://docs.delta.io/releases

    Examples
    --------
    >>> from kamlib.connectors import packages
    >>> packages(kafka=True, s3=True, spark_version="4.2.0")
    ['org.apache.spark:spark-sql-kafka-0-10_2.13:4.2.0', 'org.apache.hadoop:hadoop-aws:3.5.0']
    >>> packages(delta=True, spark_version="4.0.1")
    ['io.delta:delta-spark_4.0_2.13:4.4.0']
    """
    for name, flag in (("kafka", kafka), ("delta", delta), ("avro", avro), ("s3", s3)):
        if not isinstance(flag, bool):
            raise SchemaError(
                function="packages", argument=name, expected="a bool", found=repr(flag)
            )
    if spark_version is None:
        version = _running_spark_version()
    elif isinstance(spark_version, str):
        version = spark_version.strip()
    else:
        raise SchemaError(
            function="packages",
            argument="spark_version",
            expected="a 'X.Y.Z' string",
            found=repr(spark_version),
        )
    supported = ", ".join(f"{minor}.x" for minor in SUPPORTED_SPARK)
    match = _VERSION.match(version)
    minor = f"{match.group(1)}.{match.group(2)}" if match else None
    if minor is None or minor not in SUPPORTED_SPARK:
        raise SchemaError(
            f"packages(): no kamlib-tested connectors for Spark {version!r}; "
            f"supported Spark releases: {supported} (pass spark_version= to choose one)",
            function="packages",
            argument="spark_version",
            expected=f"one of {supported}",
            found=repr(version),
        )
    delta_version, hadoop_version = SUPPORTED_SPARK[minor]
    coordinates: list[str] = []
    if kafka:
        coordinates.append(f"org.apache.spark:spark-sql-kafka-0-10_{SCALA_BINARY}:{version}")
    if delta:
        coordinates.append(f"io.delta:delta-spark_{minor}_{SCALA_BINARY}:{delta_version}")
    if avro:
        coordinates.append(f"org.apache.spark:spark-avro_{SCALA_BINARY}:{version}")
    if s3:
        coordinates.append(f"org.apache.hadoop:hadoop-aws:{hadoop_version}")
    return coordinates
