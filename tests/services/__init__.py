"""Real services started by the tests (a KRaft Kafka broker, an S3 server, ...)."""

from typing import Any


def kafka_on_classpath(spark: Any) -> bool:
    """Whether the Kafka data source is on the session's classpath (probe, no broker)."""
    from kamlib.streaming.sources import _connector_missing

    try:
        spark.read.format("kafka").load().schema  # noqa: B018
    except Exception as exc:
        return not _connector_missing(exc)
    return True


def s3a_on_classpath(spark: Any, probe_uri: str) -> bool:
    """Whether ``s3a://`` resolves to a file system (reads a missing object under it)."""
    try:
        spark.read.text(probe_uri).schema  # noqa: B018
    except Exception as exc:
        text = str(exc)
        return "No FileSystem for scheme" not in text and "S3AFileSystem not found" not in text
    return True
