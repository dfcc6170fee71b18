"""Structured Streaming helpers for KAM dashboards.

Sources that all return the Kafka record shape (``key``, ``value``, ``topic``, ``partition``,
``offset``, ``timestamp``), JSON decoding that quarantines bad records instead of losing them,
streaming KPIs with watermarks and de-duplication, enrichment with account reference data,
sessionization, per-account alerts, sinks with checkpoints that survive restarts, and the query
runner behind ``kamlib stream``.

The package exports what users call; plumbing (record constants, connector probes, type aliases,
the runner's building blocks) stays importable from the submodules (``kamlib.streaming.sinks``,
``.sources``, ``.runner``, ...).
"""

from __future__ import annotations

from kamlib.streaming.alerts import (
    DetractorBurstRule,
    DropRule,
    SpikeRule,
    alerts_each_batch,
    evaluate_alerts,
    new_alerts,
)
from kamlib.streaming.decode import (
    Decoded,
    decode_json,
)
from kamlib.streaming.enrich import (
    ReadTable,
    enrich_with_accounts,
    refreshing_reference,
    unknown_accounts,
)
from kamlib.streaming.kinesis import (
    kinesis_records,
    kinesis_source,
)
from kamlib.streaming.kpis import (
    deduplicate_events,
    flag_late,
    late_rows,
    progress_watermark,
    streaming_nps,
    windowed_revenue,
)
from kamlib.streaming.runner import (
    StreamReport,
    run_order_stream,
)
from kamlib.streaming.sessions import (
    session_engagement,
    sessionize,
)
from kamlib.streaming.sinks import (
    delta_batch_writer,
    delta_sink,
    idempotent_writer,
    parquet_sink,
)
from kamlib.streaming.sources import (
    KafkaOptions,
    file_source,
    fixture_source,
    kafka_options,
    kafka_sink,
    kafka_source,
)

__all__ = [
    "Decoded",
    "DetractorBurstRule",
    "DropRule",
    "KafkaOptions",
    "ReadTable",
    "SpikeRule",
    "StreamReport",
    "alerts_each_batch",
    "decode_json",
    "deduplicate_events",
    "delta_batch_writer",
    "delta_sink",
    "enrich_with_accounts",
    "evaluate_alerts",
    "file_source",
    "fixture_source",
    "flag_late",
    "idempotent_writer",
    "kafka_options",
    "kafka_sink",
    "kafka_source",
    "kinesis_records",
    "kinesis_source",
    "late_rows",
    "new_alerts",
    "parquet_sink",
    "progress_watermark",
    "refreshing_reference",
    "run_order_stream",
    "session_engagement",
    "sessionize",
    "streaming_nps",
    "unknown_accounts",
    "windowed_revenue",
]
