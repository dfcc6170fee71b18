"""``kamlib stream``: order events -> orders, quarantine and daily revenue (parquet or Delta).

Reads order events (one JSON object per line, :data:`kamlib.schema.ORDER_EVENT`) from files
dropped into ``--input`` (or Kafka values) and writes ``OUTPUT/orders``, ``OUTPUT/quarantine``
and ``OUTPUT/revenue_daily`` (``--format parquet`` or ``delta``; local paths or any Hadoop
file system URI such as ``s3a://``); see :func:`kamlib.streaming.runner.run_order_stream`.
Restarting
with the same ``--checkpoint`` continues where the last run stopped: nothing is lost or
written twice.
"""

from __future__ import annotations

import argparse
import contextlib
import re
from collections.abc import Iterator
from itertools import combinations
from typing import TYPE_CHECKING, Any

from kamlib.cli._session import command_session

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from kamlib.errors import KamlibError
    from kamlib.streaming.runner import StreamReport
    from kamlib.streaming.sources import KafkaOptions

__all__ = ["add_parser", "check_paths", "run_stream"]


def add_parser(sub: Any) -> None:
    """Register ``kamlib stream`` on the CLI's sub-parsers."""
    p = sub.add_parser(
        "stream",
        help="stream order events into orders, quarantine and daily revenue (parquet or Delta)",
        description="Read JSON-lines order events from files landed in --input, quarantine "
        "malformed records, de-duplicate by event_id within the watermark and write "
        "OUTPUT/orders, OUTPUT/quarantine and OUTPUT/revenue_daily as parquet or Delta (local "
        "paths or URIs such as s3a://bucket/path). Restarts from "
        "--checkpoint lose and duplicate nothing.",
    )
    _add_source_arguments(p)
    _add_output_arguments(p)
    _add_run_arguments(p)
    p.set_defaults(handler=_run)


def _add_source_arguments(p: argparse.ArgumentParser) -> None:
    """Where the order events come from: files under ``--input`` or Kafka."""
    p.add_argument(
        "--source",
        choices=("files", "kafka"),
        default="files",
        help="where order events come from: files landed in --input (default) or Kafka",
    )
    p.add_argument("--input", default=None, help="directory where order files are landed")
    p.add_argument("--bootstrap-servers", default=None, help="Kafka host:port[,host:port]")
    p.add_argument("--topic", default=None, help="Kafka topic(s) of order events (comma list)")
    p.add_argument(
        "--starting-offsets",
        default="earliest",
        help="where a fresh checkpoint starts reading Kafka: earliest (default), latest, or JSON "
        'offsets for every partition, e.g. \'{"orders": {"0": 42, "1": -2}}\' '
        "(-2 earliest, -1 latest)",
    )
    p.add_argument(
        "--kafka-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra Kafka source option, repeatable (e.g. kafka.security.protocol=SASL_SSL); "
        "secret values are redacted in every message",
    )


def _add_output_arguments(p: argparse.ArgumentParser) -> None:
    """The output and checkpoint locations and the output format."""
    p.add_argument(
        "--output", required=True, help="output directory or URI (e.g. s3a://bucket/kam)"
    )
    p.add_argument(
        "--checkpoint",
        required=True,
        help="checkpoint directory or URI (keep it between runs)",
    )
    p.add_argument(
        "--format",
        choices=("parquet", "delta"),
        default="parquet",
        help="output format: parquet (default) or Delta tables (the Delta Spark connector, "
        "else the deltalake package)",
    )


def _add_run_arguments(p: argparse.ArgumentParser) -> None:
    """Triggering, watermark, partitioning and the local Spark master."""
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


def _kafka_options(func: str, pairs: list[str]) -> dict[str, str]:
    from kamlib.errors import SchemaError

    options: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            name = key.strip() or "?"
            raise SchemaError(
                f"{func}: --kafka-option must be KEY=VALUE, found a value for {name!r}"
            )
        options[key.strip()] = value
    return options


def check_kafka(
    func: str,
    bootstrap_servers: str,
    topics: str,
    options: dict[str, str],
    timeout: float = 5.0,
    starting_offsets: str | dict[str, dict[int, int]] = "earliest",
) -> None:
    """Fail fast (one-line :class:`SchemaError`) on unreachable servers or a missing topic.

    Reachability is a TCP connect to each ``host:port``; the metadata checks use
    ``confluent_kafka`` (a development dependency, optional) when it is installed and the
    connection is plaintext (with SASL/SSL the Spark source reports problems): servers that
    accept connections but answer no Kafka metadata request, missing topics, and JSON
    ``starting_offsets`` that do not list every partition of the subscribed topics (Spark
    requires all of them). Messages never contain option values.
    """
    from kamlib.errors import SchemaError

    servers = [s.strip() for s in bootstrap_servers.split(",") if s.strip()]
    if not servers:
        raise SchemaError(f"{func}: --bootstrap-servers must be host:port[,host:port]")
    _check_reachable(func, servers, timeout)
    try:
        from confluent_kafka.admin import AdminClient
    except ImportError:  # pragma: no cover - optional client
        return
    if options.get("kafka.security.protocol", "PLAINTEXT").upper() != "PLAINTEXT":
        return
    admin = AdminClient({"bootstrap.servers": ",".join(servers), "log_level": 0})
    try:
        metadata = admin.list_topics(timeout=timeout * 2).topics
    except Exception:
        raise SchemaError(
            f"{func}: the Kafka bootstrap servers ({', '.join(servers)}) accept connections "
            f"but answered no Kafka metadata request within {timeout * 2:g}s; check "
            "--bootstrap-servers (a Kafka listener) and kafka.security.protocol"
        ) from None
    subscribed = [t.strip() for t in topics.split(",") if t.strip()]
    if len(subscribed) == 1 and subscribed[0].startswith("pattern:"):
        return  # a subscription pattern may match topics created later
    missing = [t for t in subscribed if t not in metadata]
    if missing:
        raise SchemaError(
            f"{func}: Kafka topic(s) {', '.join(missing)} do not exist on {', '.join(servers)}; "
            "create them or fix --topic"
        )
    if isinstance(starting_offsets, dict):
        for topic in subscribed:
            _check_partitions(func, topic, set(metadata[topic].partitions), starting_offsets)


def _check_reachable(func: str, servers: list[str], timeout: float) -> None:
    """A TCP connect to one of ``servers`` (``host:port``) succeeds, else a one-line error."""
    import socket

    from kamlib.errors import SchemaError

    for server in servers:
        host, sep, port = server.rpartition(":")
        if not sep or not port.isdigit():
            raise SchemaError(f"{func}: --bootstrap-servers entry {server!r} is not host:port")
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
                return
        except OSError:
            continue
    raise SchemaError(
        f"{func}: cannot reach any Kafka bootstrap server ({', '.join(servers)}); "
        "check --bootstrap-servers and the network"
    )


def _check_partitions(
    func: str, topic: str, actual: set[int], starting_offsets: dict[str, dict[int, int]]
) -> None:
    """JSON ``--starting-offsets`` list exactly the partitions of ``topic`` (Spark needs all)."""
    from kamlib.errors import SchemaError

    given = set(starting_offsets.get(topic, {}))
    if given == actual:
        return
    absent = sorted(actual - given)
    unknown = sorted(given - actual)
    problem = (
        f"has no partition(s) {', '.join(map(str, unknown))}"
        if unknown
        else f"lacks partition(s) {', '.join(map(str, absent))}"
    )
    raise SchemaError(
        f"{func}: --starting-offsets {problem} of topic {topic!r} (partitions "
        f"{', '.join(map(str, sorted(actual)))}); give an offset for every partition of "
        "every subscribed topic (-2: earliest, -1: latest)"
    )


_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def check_paths(func: str, paths: list[tuple[str, str]]) -> None:
    """One-line :class:`SchemaError` for unusable ``--input`` / ``--output`` / ``--checkpoint``.

    Runs before any Spark session starts. A local path that is an existing regular file is
    rejected (each of them is a directory); two of the paths must neither be equal nor nested
    one inside the other (a checkpoint inside the output, an output inside the landing
    directory, ...). Local paths are compared after resolving ``~``, ``..`` and symlinks;
    remote URIs (``scheme://...``) only as strings (trailing slashes ignored), and a URI is
    never compared with a local path. Nothing is created or written here.
    """
    import os

    from kamlib.errors import SchemaError

    resolved: list[tuple[str, str, str, bool]] = []  # flag, given, comparable form, remote
    for flag, value in paths:
        if _URI.match(value):
            resolved.append((flag, value, value.rstrip("/") or value, True))
            continue
        local = os.path.realpath(os.path.expanduser(value))
        if os.path.isfile(local):
            raise SchemaError(
                f"{func}: {flag} {value!r} is an existing file; give a directory "
                "(it is created if missing)"
            )
        resolved.append((flag, value, local, False))
    for (flag_a, given_a, a, remote_a), (flag_b, given_b, b, remote_b) in combinations(resolved, 2):
        if remote_a != remote_b:
            continue
        sep = "/" if remote_a else os.sep
        if a == b:
            raise SchemaError(
                f"{func}: {flag_a} and {flag_b} are the same path {given_a!r}; give them "
                "separate directories"
            )
        for (inner, in_given, in_path), (outer, out_given, out_path) in (
            ((flag_b, given_b, b), (flag_a, given_a, a)),
            ((flag_a, given_a, a), (flag_b, given_b, b)),
        ):
            if in_path.startswith(out_path.rstrip(sep) + sep):
                raise SchemaError(
                    f"{func}: {inner} {in_given!r} is inside {outer} {out_given!r}; give "
                    "them separate, non-nested directories"
                )


def _run(args: argparse.Namespace) -> int:
    return run_stream(
        source=args.source,
        bootstrap_servers=args.bootstrap_servers,
        topic=args.topic,
        starting_offsets=args.starting_offsets,
        kafka_options=_kafka_options("kamlib stream", args.kafka_option),
        input=args.input,
        output=args.output,
        checkpoint=args.checkpoint,
        available_now=args.available_now,
        watermark=args.watermark,
        trigger_interval=args.trigger_interval,
        max_files_per_trigger=args.max_files_per_trigger,
        shuffle_partitions=args.shuffle_partitions,
        master=args.master,
        format=args.format,
    )


def run_stream(
    *,
    input: str | None = None,
    output: str,
    checkpoint: str,
    available_now: bool = False,
    watermark: str = "1 day",
    trigger_interval: str = "10 seconds",
    max_files_per_trigger: int | None = None,
    shuffle_partitions: int = 4,
    master: str = "local[2]",
    spark: SparkSession | None = None,
    source: str = "files",
    bootstrap_servers: str | None = None,
    topic: str | None = None,
    starting_offsets: str = "earliest",
    kafka_options: dict[str, str] | None = None,
    format: str = "parquet",
) -> int:
    """Run the ``kamlib stream`` pipeline and print a summary; return the exit code (0).

    Uses ``spark`` if given, else the active session (spark-submit, ``SPARK_REMOTE``) or a
    new local one (stopped at the end).
    """
    from kamlib.streaming.runner import run_order_stream

    func = "kamlib stream"
    paths = {"--input": input if source == "files" else None, "--output": output}
    offsets = _check_arguments(
        func,
        source=source,
        format=format,
        topic=topic,
        starting_offsets=starting_offsets,
        watermark=watermark,
        trigger_interval=trigger_interval,
        paths=paths,
        checkpoint=checkpoint,
    )
    options = dict(kafka_options or {})
    built = None
    if source == "kafka":
        built = _checked_kafka(func, bootstrap_servers, topic, starting_offsets, offsets, options)
    with _own_session(spark, master) as session, _scrubbed(built):
        _check_session(session, func, format=format, paths={**paths, "--checkpoint": checkpoint})
        stream_source = None
        if source == "kafka":
            from kamlib.streaming.sources import kafka_source

            stream_source = kafka_source(
                session,
                bootstrap_servers=bootstrap_servers or "",
                topics=(topic or "").split(","),
                starting_offsets=starting_offsets,
                options=options,
            )
        report = run_order_stream(
            session,
            source=stream_source,
            input=input or "",
            output=output,
            checkpoint=checkpoint,
            available_now=available_now,
            watermark=watermark,
            processing_time=trigger_interval,
            max_files_per_trigger=max_files_per_trigger,
            shuffle_partitions=shuffle_partitions,
            format="delta" if format == "delta" else "parquet",
        )
    _print_report(report)
    return 0


@contextlib.contextmanager
def _own_session(spark: SparkSession | None, master: str) -> Iterator[SparkSession]:
    """``spark``, else the command's session (active, ``SPARK_REMOTE`` or a new local one).

    A session started here is stopped at the end.
    """
    session, own = (
        (spark, False)
        if spark is not None
        else command_session(app_name="kamlib-stream", master=master)
    )
    try:
        yield session
    finally:
        if own:
            session.stop()


@contextlib.contextmanager
def _scrubbed(built: KafkaOptions | None) -> Iterator[None]:
    """Re-raise kamlib errors without the Kafka options' secrets.

    The last line of defence for "no secret in any message": Spark's runtime failures of a
    Kafka query may quote options back.
    """
    from kamlib.errors import KamlibError

    try:
        yield
    except KamlibError as exc:
        text = built.scrub(str(exc)) if built is not None else str(exc)
        if text == str(exc):
            raise
        raise _same_kind(exc, text) from None


def _check_arguments(
    func: str,
    *,
    source: str,
    format: str,
    topic: str | None,
    starting_offsets: str,
    watermark: str,
    trigger_interval: str,
    paths: dict[str, str | None],
    checkpoint: str,
) -> Any:
    """Every check that needs no Spark session; returns the parsed ``--starting-offsets``."""
    from kamlib.errors import SchemaError
    from kamlib.streaming.sinks import require_checkpoint
    from kamlib.streaming.sources import _parse_starting_offsets

    require_checkpoint(func, checkpoint)  # before any Spark session starts
    if source not in ("files", "kafka"):
        raise SchemaError(f"{func}: --source must be 'files' or 'kafka', found {source!r}")
    if format not in ("parquet", "delta"):
        raise SchemaError(f"{func}: --format must be 'parquet' or 'delta', found {format!r}")
    subscribed = [t.strip() for t in (topic or "").split(",") if t.strip()]
    is_pattern = len(subscribed) == 1 and subscribed[0].startswith("pattern:")
    offsets = _parse_starting_offsets(
        func, starting_offsets, None if is_pattern else subscribed, flag="--starting-offsets"
    )
    _check_durations(func, watermark, trigger_interval)
    given = [("--output", paths["--output"])]
    if source == "files":
        given.append(("--input", paths["--input"]))
    for name, value in given:
        if not value:
            raise SchemaError(f"{func}: {name} must be a directory, found {value!r}")
    # no file where a directory goes, no path inside another
    check_paths(func, [*[(n, v) for n, v in given[::-1] if v], ("--checkpoint", checkpoint)])
    return offsets


def _check_session(
    session: SparkSession, func: str, *, format: str, paths: dict[str, str | None]
) -> None:
    """One-line errors for a URI without its file system jar or ``--format delta`` without Delta."""
    from kamlib.connectors import _require_filesystems

    _require_filesystems(session, func, paths)
    if format == "delta":
        from kamlib.streaming.runner import delta_writer_for

        delta_writer_for(session, func, "--format delta")


def _check_durations(func: str, watermark: str, trigger_interval: str) -> None:
    """``--watermark`` (> 0) and ``--trigger-interval`` (>= 0: batches back to back)."""
    from kamlib._validation import check_duration
    from kamlib.errors import SchemaError

    for flag, duration, zero in (
        ("--watermark", watermark, False),
        ("--trigger-interval", trigger_interval, True),
    ):
        try:
            check_duration(func, flag, duration, allow_zero=zero)
        except SchemaError:
            raise SchemaError(
                f"{func}: {flag} must be a {'' if zero else 'positive '}duration such as "
                "'1 day' or '30 minutes' "
                f"(units: weeks, days, hours, minutes, seconds), found {duration!r}"
            ) from None


def _checked_kafka(
    func: str,
    bootstrap_servers: str | None,
    topic: str | None,
    starting_offsets: str,
    offsets: Any,
    options: dict[str, str],
) -> KafkaOptions:
    """Validated Kafka options, after the broker check (one scrubbed line), before Spark starts."""
    from kamlib.errors import SchemaError
    from kamlib.streaming.sources import kafka_options as build_options

    if not bootstrap_servers or not topic:
        raise SchemaError(f"{func}: --source kafka needs --bootstrap-servers and --topic")
    built = build_options(  # validates the option names (SchemaError) before Spark starts
        bootstrap_servers=bootstrap_servers,
        topics=topic.split(","),
        starting_offsets=starting_offsets,
        options=options,
        func=func,
    )
    try:
        check_kafka(func, bootstrap_servers, topic, options, starting_offsets=offsets)
    except SchemaError as exc:
        raise SchemaError(built.scrub(str(exc))) from None
    return built


def _same_kind(exc: KamlibError, text: str) -> KamlibError:
    """``exc``'s class with the message ``text`` (a plain KamlibError if it cannot take one)."""
    from kamlib.errors import KamlibError

    try:
        return type(exc)(text)
    except TypeError:  # pragma: no cover - every kamlib error takes a message
        return KamlibError(text)


def _print_report(report: StreamReport) -> None:
    """One line per decoded batch, then the totals."""
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
