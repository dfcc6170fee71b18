"""Streaming benchmark: ``kamlib stream`` against a hand-written query doing the same work.

JSON-lines order events (1% malformed) are written to 10 files before timing starts. In the
same run, with ``available_now`` triggers:

* hand-written Spark: ``readStream`` -> ``from_json`` -> drop rows missing required fields ->
  watermark 1 day -> ``dropDuplicatesWithinWatermark(event_id)`` -> 1-day windows per
  account -> parquet (one query, one output);
* ``kamlib stream`` (``run_order_stream``): the same parse (plus the strict checks that
  quarantine malformed, trailing-data and duplicate-key records), de-duplication and daily
  revenue, writing three outputs (orders, quarantine, revenue_daily), exactly-once.

Both on the file source and (``--kafka``) on a real single-node KRaft broker (3 partitions;
needs ``KAMLIB_JARS`` from ``make jars``). The ratio is kamlib's throughput over the
hand-written one (target >= 0.9); both revenue totals must agree. Each run uses fresh
outputs and checkpoints after two warm-ups on a small separate input; timings include query
start-up and the final no-data batch that closes the windows.

    python benchmarks/bench_streaming.py --events 200000 --kafka
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from _common import bench_session, emit_json, print_table

from kamlib.testing.pytest_plugin import connector_conf

TARGET_RATIO = 0.9
N_FILES = 10
MALFORMED = 0.01
SHUFFLE_PARTITIONS = 2


def write_events(folder: Path, events: int, *, seed: int = 7) -> int:
    """Write ``events`` JSON lines (1% malformed) into 10 files; return the line count."""
    rng = random.Random(seed)
    start = dt.datetime(2024, 1, 1)
    folder.mkdir(parents=True, exist_ok=True)
    per_file = -(-events // N_FILES)
    written = 0
    for f in range(N_FILES):
        lines = []
        for i in range(f * per_file, min(events, (f + 1) * per_file)):
            if rng.random() < MALFORMED:
                lines.append('{"event_id": "broken-' + str(i) + '", "amount": ')
                continue
            when = start + dt.timedelta(seconds=i * 30 + rng.randint(0, 600))
            lines.append(
                json.dumps(
                    {
                        "event_id": f"e{i}",
                        "account_id": f"a{rng.randint(0, 9999)}",
                        "event_time": when.strftime("%Y-%m-%dT%H:%M:%S"),
                        "amount": round(rng.uniform(-50, 500), 2),
                        "currency": "EUR",
                    }
                )
            )
        tmp = folder.parent / f".part-{f}.tmp"
        tmp.write_text("\n".join(lines) + "\n")
        tmp.replace(folder / f"orders-{f:02d}.jsonl")
        written += len(lines)
    return written


def _timed_query(start: Any) -> float:
    began = time.perf_counter()
    query = start()
    query.awaitTermination()
    return time.perf_counter() - began


def hand_written(spark: Any, raw: Any, out: Path, chk: Path) -> Any:
    """The same stateful work written by hand: parse, dedupe within the watermark, daily window.

    ``raw`` has a string ``value`` column (a text file stream or Kafka values cast to string).
    Records whose required fields do not parse are dropped (no quarantine output).
    """
    from pyspark.sql import functions as F

    from kamlib.schema import ORDER_EVENT

    parsed = raw.select(F.from_json(F.col("value").cast("string"), ORDER_EVENT).alias("e"))
    orders = parsed.select("e.*").where(
        F.col("event_id").isNotNull()
        & F.col("account_id").isNotNull()
        & F.col("event_time").isNotNull()
        & F.col("amount").isNotNull()
    )
    daily = (
        orders.withWatermark("event_time", "1 day")
        .dropDuplicatesWithinWatermark(["event_id"])
        .groupBy("account_id", F.window("event_time", "1 day"))
        .agg(F.sum("amount").alias("revenue"), F.count(F.lit(1)).alias("orders"))
        .select("account_id", F.to_date("window.start").alias("day"), "revenue", "orders")
    )
    return (
        daily.writeStream.format("parquet")
        .option("path", str(out))
        .option("checkpointLocation", str(chk))
        .outputMode("append")
        .trigger(availableNow=True)
        .start()
    )


def kamlib_query(spark: Any, records: Any, out: Path, chk: Path) -> Any:
    """The same single query with kamlib's functions: decode_json -> revenue_daily_stream."""
    from kamlib.schema import ORDER_EVENT
    from kamlib.streaming import decode_json, parquet_sink
    from kamlib.streaming.runner import revenue_daily_stream

    valid, _ = decode_json(records, ORDER_EVENT)
    daily = revenue_daily_stream(valid, watermark="1 day")
    return parquet_sink(daily, str(out), checkpoint=str(chk), available_now=True)


def _kamlib_stream(spark: Any, records: Any, out: Path, chk: Path) -> float:
    from kamlib.streaming.runner import run_order_stream

    began = time.perf_counter()
    run_order_stream(
        spark,
        input="",
        source=records,
        output=str(out),
        checkpoint=str(chk),
        available_now=True,
        handle_signals=False,
    )
    return time.perf_counter() - began


def _revenue_total(spark: Any, path: Path) -> float:
    from pyspark.sql import functions as F

    return float(spark.read.parquet(str(path)).agg(F.sum("revenue")).first()[0])


def _compare(
    spark: Any,
    work: Path,
    name: str,
    sources: Callable[[bool], Any],
    lines: int,
    raw: Callable[[bool], Any] | None = None,
) -> list[dict[str, Any]]:
    """Time the three contenders on ``sources(warm)`` (records in the Kafka shape), same run.

    The hand-written query reads ``raw(warm)`` (a plain ``value`` stream) when given.
    """
    contenders = {
        "hand-written query (parse+dedupe+window)": lambda r, o, c: _timed_query(
            lambda: hand_written(spark, r, o, c)
        ),
        "kamlib functions, same one query": lambda r, o, c: _timed_query(
            lambda: kamlib_query(spark, r, o, c)
        ),
        "kamlib stream (3 exactly-once outputs)": lambda r, o, c: _kamlib_stream(spark, r, o, c),
    }
    seconds: dict[str, float] = {}
    totals: dict[str, float] = {}
    for k, (label, run_one) in enumerate(contenders.items()):
        read = raw if (k == 0 and raw is not None) else sources
        for i in range(2):  # warm-up: JIT and code-generation caches
            run_one(read(True), work / f"{name}w{k}{i}", work / f"{name}wc{k}{i}")
        out = work / f"{name}{k}"
        seconds[label] = run_one(read(False), out, work / f"{name}c{k}")
        totals[label] = _revenue_total(spark, out / "revenue_daily" if k == 2 else out)
    base_label, base_s = next(iter(seconds.items()))
    rows: list[dict[str, Any]] = []
    for label, secs in seconds.items():
        row: dict[str, Any] = {"step": f"{name}: {label}", "seconds": secs}
        row["events_per_s"] = lines / secs
        if label != base_label:
            ratio = base_s / secs  # kamlib's throughput relative to the hand-written query
            row.update(ratio=ratio, target=f">={TARGET_RATIO}x", ok=ratio >= TARGET_RATIO)
            row["same_revenue"] = math.isclose(totals[label], totals[base_label], rel_tol=1e-9)
        rows.append(row)
    return rows


def _files_rows(spark: Any, work: Path, landing: Path, lines: int) -> list[dict[str, Any]]:
    """The comparison on the file source (``file_source``; the landing folder as is)."""
    from kamlib.streaming import file_source

    warm = work / "warm"
    write_events(warm, 20_000, seed=1)

    def folder(w: bool) -> str:
        return str(warm if w else landing)

    return _compare(
        spark,
        work,
        "files",
        lambda w: file_source(spark, folder(w)),
        lines,
        raw=lambda w: spark.readStream.text(folder(w)),  # what a hand-written job reads
    )


def _kafka_rows(spark: Any, work: Path, landing: Path, lines: int) -> list[dict[str, Any]]:
    """The comparison on a real KRaft broker (tests/services/kafka.py), 3 partitions."""
    sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
    from services.kafka import KafkaBroker

    from kamlib.streaming import kafka_source

    broker = KafkaBroker(os.environ["KAMLIB_JARS"])
    try:
        topics = {}
        for warm in (True, False):
            folder = work / "warm" if warm else landing
            topics[warm] = broker.create_topic()
            values = [v for f in sorted(folder.glob("*.jsonl")) for v in f.read_text().split("\n")]
            broker.produce(topics[warm], [v for v in values if v], key=None)

        def source(warm: bool) -> Any:
            return kafka_source(
                spark,
                bootstrap_servers=broker.bootstrap,
                topics=topics[warm],
                starting_offsets="earliest",
            )

        return _compare(spark, work, "kafka", source, lines)
    finally:
        broker.stop()


def run(spark: Any, events: int, *, kafka: bool = False) -> dict[str, Any]:
    """Run the benchmark on ``events`` generated order events; return rates and timings."""
    from kamlib.streaming.runner import pin_shuffle_partitions

    work = Path(tempfile.mkdtemp(prefix="kamlib-bench-stream-"))
    try:
        landing = work / "in"
        lines = write_events(landing, events)
        # Streaming state lives in one state-store partition per shuffle partition: pin a
        # small number for local[2] (as ``run_order_stream(shuffle_partitions=...)`` does).
        pin_shuffle_partitions(spark, SHUFFLE_PARTITIONS)
        rows = _files_rows(spark, work, landing, lines)
        if kafka:
            rows += _kafka_rows(spark, work, landing, lines)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {
        "benchmark": "streaming",
        "events": lines,
        "malformed_share": MALFORMED,
        "rows": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument(
        "--kafka",
        action="store_true",
        help="also run both queries on a real KRaft broker (needs KAMLIB_JARS, `make jars`)",
    )
    args = parser.parse_args()
    spark = bench_session("kamlib-bench-streaming", conf=connector_conf())
    try:
        result = run(spark, args.events, kafka=args.kafka)
    finally:
        spark.stop()
    print_table(
        f"kamlib streaming benchmark: {result['events']:,} events "
        f"({MALFORMED:.0%} malformed), 10 files, available_now",
        result["rows"],
    )
    for row in result["rows"]:
        print(f"  {row['step']:<56} {row['events_per_s']:>12,.0f} events/s")
    emit_json(result)


if __name__ == "__main__":
    main()
