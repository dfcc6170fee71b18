"""``kamlib stream``: JSON-lines order files -> orders, quarantine and daily revenue (parquet).

Reads order events (one JSON object per line, :data:`kamlib.schema.ORDER_EVENT`) from files
dropped into ``--input`` and writes ``OUTPUT/orders``, ``OUTPUT/quarantine`` and
``OUTPUT/revenue_daily``; see :func:`kamlib.streaming.runner.run_order_stream`. Restarting
with the same ``--checkpoint`` continues where the last run stopped: nothing is lost or
written twice.
"""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = ["add_parser", "run_stream"]


def add_parser(sub: Any) -> None:
    """Register ``kamlib stream`` on the CLI's sub-parsers."""
    p = sub.add_parser(
        "stream",
        help="stream JSON-lines order files into orders, quarantine and daily revenue parquet",
        description="Read JSON-lines order events from files landed in --input, quarantine "
        "malformed records, de-duplicate by event_id within the watermark and write "
        "OUTPUT/orders, OUTPUT/quarantine and OUTPUT/revenue_daily as parquet. Restarts from "
        "--checkpoint lose and duplicate nothing.",
    )
    p.add_argument("--input", required=True, help="directory where order files are landed")
    p.add_argument("--output", required=True, help="output directory")
    p.add_argument(
        "--checkpoint", required=True, help="checkpoint directory (keep it between runs)"
    )
    p.add_argument(
        "--available-now",
        action="store_true",
        help="process the files present now and exit (default: run until SIGINT/SIGTERM)",
    )
    p.add_argument(
        "--watermark",
        default="1 day",
        help="how late events may arrive, e.g. '1 day' or '2 hours' (default: 1 day)",
    )
    p.add_argument(
        "--trigger-interval",
        default="10 seconds",
        help="micro-batch interval without --available-now (default: 10 seconds)",
    )
    p.add_argument(
        "--max-files-per-trigger",
        type=int,
        default=None,
        help="at most this many new files per micro-batch",
    )
    p.add_argument(
        "--shuffle-partitions",
        type=int,
        default=4,
        help="state partitions, fixed by the checkpoint at the first run (default: 4)",
    )
    p.add_argument(
        "--master", default="local[2]", help="Spark master for a local run (default local[2])"
    )
    p.set_defaults(handler=_run)


def _session(master: str) -> SparkSession:
    """The active session (spark-submit, Connect via SPARK_REMOTE) or a local one."""
    from pyspark.sql import SparkSession

    if os.environ.get("SPARK_REMOTE") or os.environ.get("PYSPARK_GATEWAY_PORT"):
        return SparkSession.builder.appName("kamlib-stream").getOrCreate()
    from kamlib.testing import local_spark_session

    return local_spark_session(app_name="kamlib-stream", master=master)


def _run(args: argparse.Namespace) -> int:
    return run_stream(
        input=args.input,
        output=args.output,
        checkpoint=args.checkpoint,
        available_now=args.available_now,
        watermark=args.watermark,
        trigger_interval=args.trigger_interval,
        max_files_per_trigger=args.max_files_per_trigger,
        shuffle_partitions=args.shuffle_partitions,
        master=args.master,
    )


def run_stream(
    *,
    input: str,
    output: str,
    checkpoint: str,
    available_now: bool = False,
    watermark: str = "1 day",
    trigger_interval: str = "10 seconds",
    max_files_per_trigger: int | None = None,
    shuffle_partitions: int = 4,
    master: str = "local[2]",
    spark: SparkSession | None = None,
) -> int:
    """Run the ``kamlib stream`` pipeline and print a summary; return the exit code (0).

    Uses ``spark`` if given, else the active session (spark-submit, ``SPARK_REMOTE``) or a
    new local one (stopped at the end).
    """
    from kamlib.errors import SchemaError
    from kamlib.streaming.runner import run_order_stream
    from kamlib.streaming.sinks import require_checkpoint

    require_checkpoint("kamlib stream", checkpoint)  # before any Spark session starts
    for name, value in (("--input", input), ("--output", output)):
        if not value:
            raise SchemaError(f"kamlib stream: {name} must be a directory, found {value!r}")
    own = spark is None
    session = spark if spark is not None else _session(master)
    try:
        report = run_order_stream(
            session,
            input=input,
            output=output,
            checkpoint=checkpoint,
            available_now=available_now,
            watermark=watermark,
            processing_time=trigger_interval,
            max_files_per_trigger=max_files_per_trigger,
            shuffle_partitions=shuffle_partitions,
        )
    finally:
        if own and not os.environ.get("PYSPARK_GATEWAY_PORT"):
            session.stop()
    for b in report.batches:
        if b.valid is not None:
            print(
                f"kamlib stream: {b.query} batch {b.batch_id}: {b.rows_in} in, {b.valid} valid, "
                f"{b.quarantined} quarantined, {b.late} late, {b.duplicates} duplicates"
            )
    print(
        f"kamlib stream: {report.total('rows_in', 'orders')} records, "
        f"{report.total('valid', 'orders')} valid, "
        f"{report.total('quarantined', 'orders')} quarantined, "
        f"{report.total('late')} late (dropped, beyond the watermark), "
        f"{report.total('duplicates')} duplicates"
        + (" (stopped by signal)" if report.stopped_by_signal else "")
    )
    return 0
