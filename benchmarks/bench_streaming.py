"""Issue 7 benchmark: streaming throughput of the order pipeline with ``available_now``.

JSON-lines order events (1% malformed) are written to 10 files before timing starts.

* baseline (bare Spark, same run): ``readStream.text`` -> parquet sink, availableNow;
* kamlib pipeline: ``file_source`` -> ``decode_json`` -> de-duplicate ``event_id`` within a
  1-day watermark -> daily revenue per account (event-time windows) -> parquet, availableNow;
* ``kamlib stream`` end to end (``run_order_stream``: orders + quarantine + revenue_daily).

Each run uses fresh output and checkpoint directories, after a warm-up on a small separate
input. Timings include query start-up and the final no-data batch that closes windows, a fixed
cost that matters less at larger sizes. Target: pipeline >= 100k events/s.

    python benchmarks/bench_streaming.py --events 200000
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from _common import bench_session, emit_json, print_table

TARGET_EVENTS_PER_SECOND = 100_000
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


def run(spark: Any, events: int) -> dict[str, Any]:
    """Run the benchmark on ``events`` generated order events; return rates and timings."""
    from kamlib.schema import ORDER_EVENT
    from kamlib.streaming import decode_json, file_source
    from kamlib.streaming.runner import (
        pin_shuffle_partitions,
        revenue_daily_stream,
        run_order_stream,
    )
    from kamlib.streaming.sinks import parquet_sink

    work = Path(tempfile.mkdtemp(prefix="kamlib-bench-stream-"))
    try:
        landing = work / "in"
        lines = write_events(landing, events)

        warm = work / "warm"
        write_events(warm, 20_000, seed=1)

        def baseline(src: Path = landing, tag: str = "base") -> Any:
            raw = spark.readStream.text(str(src))
            return parquet_sink(
                raw,
                str(work / f"{tag}_out"),
                checkpoint=str(work / f"{tag}_chk"),
                available_now=True,
            )

        def pipeline(src: Path = landing, tag: str = "rev") -> Any:
            valid, _ = decode_json(file_source(spark, str(src)), ORDER_EVENT)
            return parquet_sink(
                revenue_daily_stream(valid, watermark="1 day"),
                str(work / f"{tag}_out"),
                checkpoint=str(work / f"{tag}_chk"),
                available_now=True,
            )

        # Streaming state lives in one state-store partition per shuffle partition: pin a
        # small number for local[2] (as ``run_order_stream(shuffle_partitions=...)`` does).
        pin_shuffle_partitions(spark, SHUFFLE_PARTITIONS)
        # Warm-up on a small separate input (JIT compilation, code generation caches).
        for i in range(2):
            _timed_query(lambda i=i: baseline(warm, f"warm_base{i}"))
            _timed_query(lambda i=i: pipeline(warm, f"warm_rev{i}"))
        base_s = _timed_query(baseline)
        pipe_s = _timed_query(pipeline)
        began = time.perf_counter()
        report = run_order_stream(
            spark,
            input=str(landing),
            output=str(work / "cli_out"),
            checkpoint=str(work / "cli_chk"),
            available_now=True,
            handle_signals=False,
        )
        cli_s = time.perf_counter() - began
        quarantined = report.total("quarantined", "orders")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    base_rate, pipe_rate, cli_rate = lines / base_s, lines / pipe_s, lines / cli_s
    rows: list[dict[str, Any]] = [
        {
            "step": "baseline: text read + parquet write",
            "seconds": base_s,
            "events_per_s": base_rate,
        },
        {
            "step": "file -> decode -> dedupe -> windowed revenue -> parquet",
            "seconds": pipe_s,
            "events_per_s": pipe_rate,
            "ratio": pipe_s / base_s,
            "target": f">={TARGET_EVENTS_PER_SECOND // 1000}k ev/s",
            "ok": pipe_rate >= TARGET_EVENTS_PER_SECOND,
        },
        {
            "step": "kamlib stream: orders + quarantine + revenue",
            "seconds": cli_s,
            "ratio": cli_s / base_s,
            "events_per_s": cli_rate,
        },
    ]
    return {
        "benchmark": "streaming",
        "events": lines,
        "quarantined": quarantined,
        "baseline_events_per_s": base_rate,
        "pipeline_events_per_s": pipe_rate,
        "cli_events_per_s": cli_rate,
        "rows": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    args = parser.parse_args()
    spark = bench_session("kamlib-bench-streaming")
    try:
        result = run(spark, args.events)
    finally:
        spark.stop()
    print_table(
        f"kamlib streaming benchmark: {result['events']:,} events "
        f"({result['quarantined']:,} malformed), 10 files, available_now",
        result["rows"],
    )
    for row in result["rows"]:
        print(f"  {row['step']:<56} {row['events_per_s']:>12,.0f} events/s")
    emit_json(result)


if __name__ == "__main__":
    main()
