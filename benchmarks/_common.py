"""Shared helpers for kamlib benchmarks: a tuned session, timers, data staging, tables.

Every benchmark measures its bare-Spark baseline in the same run and reports ratios to it,
so numbers are comparable across machines. Data is generated and written to parquet before
timing starts; each timed step reads that parquet and forces full evaluation with the
``noop`` sink (or a real parquet write where the pipeline writes).
"""

from __future__ import annotations

import gc
import json
import os
import resource
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

DATA_DIR = Path(os.environ.get("KAMLIB_BENCH_DATA", Path(__file__).parent / "data"))


def bench_session(
    app_name: str = "kamlib-bench",
    *,
    driver_memory: str = "8g",
    conf: dict[str, str] | None = None,
) -> Any:
    """A local[2] session for the benchmarks (UI off, 8 shuffle partitions, AQE, + ``conf``)."""
    from kamlib.testing import local_spark_session

    return local_spark_session(
        app_name=app_name,
        conf={
            "spark.driver.memory": driver_memory,
            "spark.sql.shuffle.partitions": "8",
            "spark.sql.adaptive.enabled": "true",
            **(conf or {}),
        },
    )


def timed(fn: Callable[[], Any], *, repeat: int = 1) -> float:
    """Best wall-clock seconds of ``repeat`` runs of ``fn``."""
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def noop(df: Any) -> None:
    """Force full evaluation of ``df`` without the cost of writing it anywhere."""
    df.write.format("noop").mode("overwrite").save()


def stage_parquet(name: str, make: Callable[[], Any], *, rebuild: bool = False) -> str:
    """Write ``make()`` to ``DATA_DIR/name`` once (reused across runs) and return the path."""
    path = DATA_DIR / name
    marker = path / "_SUCCESS"
    if rebuild and path.exists():
        shutil.rmtree(path)
    if not marker.exists():
        make().write.mode("overwrite").parquet(str(path))
    return str(path)


def peak_rss_mib() -> float:
    """Peak resident memory of this (driver Python) process in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def print_table(title: str, rows: list[dict[str, Any]]) -> None:
    """Print rows of {step, seconds, ratio, target, ...} as an aligned table."""
    print(f"\n{title}")
    print(f"{'step':<42} {'seconds':>9} {'ratio':>7} {'target':>8}")
    for row in rows:
        ratio = row.get("ratio")
        target = row.get("target")
        print(
            f"{row['step']:<42} {row.get('seconds', row.get('value', float('nan'))):>9.2f} "
            f"{'' if ratio is None else f'{ratio:.2f}x':>7} {'' if target is None else target:>8}"
        )


def emit_json(payload: dict[str, Any]) -> None:
    """Print one JSON line (machine-readable result)."""
    print("BENCH_JSON " + json.dumps(payload, sort_keys=True))
