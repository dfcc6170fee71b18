"""Real services started by the tests (a KRaft Kafka broker, ...)."""

from typing import Any


def kafka_on_classpath(spark: Any) -> bool:
    """Whether the Kafka data source is on the session's classpath (probe, no broker)."""
    from kamlib.streaming.sources import _connector_missing

    try:
        spark.read.format("kafka").load().schema  # noqa: B018
    except Exception as exc:
        return not _connector_missing(exc)
    return True
