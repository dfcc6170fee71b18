"""Run every kamlib benchmark and write ``benchmarks/results/latest.{json,md}``.

Each benchmark runs in its own process (its own SparkSession) and prints one machine-readable
JSON line; ratios are always against a bare-Spark baseline measured in the same process.

    python benchmarks/run_all.py            # full sizes from the issues (1M accounts, ...)
    python benchmarks/run_all.py --quick    # 10x smaller, for a smoke run
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
RESULTS = HERE / "results"

#: script, full-size arguments, quick arguments
BENCHMARKS: list[tuple[str, list[str], list[str]]] = [
    ("bench_metrics.py", ["--accounts", "1000000"], ["--accounts", "100000"]),
    ("bench_clv.py", ["--accounts", "1000000"], ["--accounts", "100000"]),
    ("bench_churn.py", ["--accounts", "1000000"], ["--accounts", "100000"]),
    ("bench_streaming.py", ["--events", "1000000"], ["--events", "100000"]),
    ("bench_latency.py", [], ["--no-lifetimes"]),
    ("bench_recurring.py", ["--accounts", "100000"], ["--accounts", "20000"]),
    ("bench_predictive.py", ["--accounts", "1000000"], ["--accounts", "100000"]),
]


def _last_json(stdout: str) -> dict[str, Any] | None:
    for line in reversed(stdout.splitlines()):
        text = line.removeprefix("BENCH_JSON ").strip()
        if text.startswith("{"):
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                continue
            if isinstance(value, dict):
                return value
    return None


def _rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    rows = result.get("rows")
    if isinstance(rows, list):
        return [r for r in rows if isinstance(r, dict)]
    return [{"step": k, "value": v} for k, v in result.items() if isinstance(v, (int, float))]


def _markdown(results: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = [
        f"Benchmarks run {meta['date']} on {meta['machine']} (local[2]); "
        "ratios are to the bare-Spark baseline measured in the same run.",
        "",
        "| benchmark | step | seconds / value | ratio | target |",
        "|---|---|---:|---:|---|",
    ]
    for result in results:
        name = str(result.get("benchmark", result.get("script", "?")))
        if "error" in result:
            lines.append(f"| {name} | failed: {result['error']} | | | |")
            continue
        for row in _rows(result):
            value = row.get("seconds", row.get("value", ""))
            value_text = f"{value:,.2f}" if isinstance(value, (int, float)) else str(value)
            step = str(row.get("step", ""))
            if isinstance(row.get("events_per_s"), (int, float)):
                step += f" ({row['events_per_s']:,.0f} events/s)"
            ratio = row.get("ratio")
            ratio_text = f"{ratio:.2f}x" if isinstance(ratio, (int, float)) else ""
            lines.append(
                f"| {name} | {step} | {value_text} | {ratio_text} | {row.get('target', '')} |"
            )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="10x smaller inputs")
    parser.add_argument(
        "--only",
        nargs="*",
        help="run only these scripts (e.g. bench_clv.py); the others keep their latest results",
    )
    args = parser.parse_args()
    results: list[dict[str, Any]] = []
    failed = False
    for script, full, quick in BENCHMARKS:
        if args.only and script not in args.only:
            continue
        path = HERE / script
        if not path.exists():
            results.append({"script": script, "error": "script missing"})
            failed = True
            continue
        cmd = [sys.executable, str(path), *(quick if args.quick else full)]
        print(f"== {' '.join(cmd[1:])}", flush=True)
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        print(proc.stdout[-6000:])
        result = _last_json(proc.stdout)
        if proc.returncode != 0 or result is None:
            failed = True
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            results.append({"script": script, "error": tail[0][:200]})
            continue
        result.setdefault("script", script)
        results.append(result)
    meta = {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {platform.python_version()}",
        "quick": bool(args.quick),
    }
    RESULTS.mkdir(exist_ok=True)
    previous = RESULTS / "latest.json"
    if args.only and previous.exists():
        # A partial run keeps the other benchmarks' latest results (marked with their date).
        ran = {r.get("script") for r in results}
        old = json.loads(previous.read_text())
        kept = [
            {**r, "measured": r.get("measured", old.get("meta", {}).get("date"))}
            for r in old.get("results", [])
            if r.get("script") not in ran
        ]
        order = [name for name, _, _ in BENCHMARKS]
        results = sorted(
            kept + results,
            key=lambda r: order.index(r["script"]) if r.get("script") in order else len(order),
        )
    (RESULTS / "latest.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    table = _markdown(results, meta)
    (RESULTS / "latest.md").write_text(table)
    print(table)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
