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
from collections.abc import Mapping
from typing import Any

from kamlib.errors import ConnectorUnavailableError, SchemaError

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


# --------------------------------------------------------------------------- file systems

#: What Hadoop / Spark say when a URI scheme has no file system implementation on the
#: classpath (``hadoop-aws`` missing for ``s3a://``, ``gcs-connector`` for ``gs://``, ...).
_NO_FILESYSTEM = re.compile(
    r"No FileSystem for scheme|UnsupportedFileSystemException|"
    r"ClassNotFoundException:\s*(?:Class\s+)?org\.apache\.hadoop\.fs\.\S+FileSystem|"
    r"FileSystem\S*\s+not found",
    re.IGNORECASE,
)

#: URI scheme -> (what provides it, Maven coordinate hint when kamlib does not pin one).
_FILESYSTEM_PROVIDERS: dict[str, str] = {
    "gs": "the GCS connector jar (com.google.cloud.bigdataoss:gcs-connector)",
    "abfs": "the hadoop-azure jar (org.apache.hadoop:hadoop-azure)",
    "abfss": "the hadoop-azure jar (org.apache.hadoop:hadoop-azure)",
    "wasb": "the hadoop-azure jar (org.apache.hadoop:hadoop-azure)",
    "wasbs": "the hadoop-azure jar (org.apache.hadoop:hadoop-azure)",
}


def _redact_uri(uri: str) -> str:
    """``uri`` without user info (``s3a://KEY:SECRET@bucket/x`` -> ``s3a://***@bucket/x``)."""
    from urllib.parse import urlparse, urlunparse

    parsed = urlparse(uri)
    if parsed.netloc and "@" in parsed.netloc:
        return urlunparse(parsed._replace(netloc="***@" + parsed.netloc.rpartition("@")[2]))
    return uri


def _scheme(path: str) -> str:
    from urllib.parse import urlparse

    scheme = urlparse(path).scheme.lower()
    return "" if len(scheme) <= 1 else scheme  # "" or a Windows drive letter: local


def _filesystem_missing(exc: BaseException | str) -> bool:
    """Whether an exception (or its text) says a URI scheme has no Hadoop file system."""
    return bool(_NO_FILESYSTEM.search(str(exc)))


def _filesystem_error(func: str, label: str, path: str) -> ConnectorUnavailableError:
    """The one-line error for a path whose scheme has no file system on the Spark classpath.

    ``func`` is the command or function (``"kamlib stream"``), ``label`` the argument that
    holds ``path`` (``"--output"``). The message names the jar to add; for ``s3a://`` the
    ``hadoop-aws`` coordinate matching the running Spark and ``kamlib.connectors.packages``.
    """
    scheme = _scheme(path) or "file"
    shown = _redact_uri(path)
    if scheme in ("s3a", "s3", "s3n"):
        try:
            coordinate = packages(s3=True)[0]
        except SchemaError:
            coordinate = "org.apache.hadoop:hadoop-aws (at the Hadoop version of your Spark)"
        fix = (
            f"add {coordinate} (kamlib.connectors.packages(s3=True)) to spark.jars.packages "
            "or spark-submit --packages"
        )
        if scheme != "s3a":
            fix += f", and use s3a:// instead of {scheme}://"
        return ConnectorUnavailableError(
            f"{func}: {label} {shown!r} needs the hadoop-aws jar, which is not on the Spark "
            f"classpath; {fix}"
        )
    provider = _FILESYSTEM_PROVIDERS.get(scheme, f"the Hadoop file system jar for {scheme}://")
    return ConnectorUnavailableError(
        f"{func}: {label} {shown!r}: Spark has no file system for {scheme}:// paths; add "
        f"{provider} to the Spark classpath (spark.jars.packages or spark-submit --packages)"
    )


def _require_filesystems(spark: Any, func: str, paths: Mapping[str, str | None]) -> None:
    """Fail fast when a path's URI scheme has no file system on the session's classpath.

    For each distinct ``scheme://authority`` among ``paths`` (label -> path or URI; local
    paths and ``file:`` are skipped) Spark resolves a path that does not exist there
    (``spark.read.format("text").load``, two paths): without the file system jar this fails at once
    with "No FileSystem for scheme" / ``ClassNotFoundException``, which becomes the one-line
    :class:`~kamlib.errors.ConnectorUnavailableError` of :func:`_filesystem_error`. Any other
    outcome (the path is missing, the store refuses the request) is left to the real read or
    write. With the jar present this costs one metadata request per store; nothing is
    written. Works on Spark Connect (no JVM access).
    """
    import uuid
    from urllib.parse import urlparse

    seen: set[tuple[str, str]] = set()
    for label, path in paths.items():
        if not path or not isinstance(path, str):
            continue
        scheme = _scheme(path)
        if scheme in ("", "file"):
            continue
        netloc = urlparse(path).netloc
        if (scheme, netloc) in seen:
            continue
        seen.add((scheme, netloc))
        # Two paths: with one, Spark first looks for a file-sink log there and logs a WARN
        # with the whole stack trace when the file system is missing.
        probe = f"{scheme}://{netloc}/__kamlib_fs_probe_{uuid.uuid4().hex[:12]}"
        failure: str | None = None
        try:
            reader = spark.read.format("text")
            reader.load([probe, f"{probe}_"]).schema  # noqa: B018 - forces the analysis
        except Exception as exc:
            failure = str(exc)
        if failure is not None and _filesystem_missing(failure):
            raise _filesystem_error(func, label, path)
