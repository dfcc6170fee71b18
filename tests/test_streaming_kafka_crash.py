"""``kamlib stream --source kafka`` survives SIGKILL of its process group mid-batch.

The real CLI runs as a subprocess (its own session, so its own process group) against the
session's KRaft broker, with a small ``maxOffsetsPerTrigger`` so a run is many
micro-batches. It is killed with SIGKILL three times at random points after it committed at
least one batch, more events (fresh, malformed and re-sent duplicates) are produced while it
is down, and a final ``--available-now`` run drains the topic. The outputs are compared with
a pure-Python replay of everything produced (``simulate_order_stream`` of
``tests/reference/streaming.py``): every distinct valid event exactly once in ``orders``,
every malformed record exactly once in ``quarantine``, and the daily revenue of the closed
days exact.

Late data is kept out of the picture on purpose: all events before the final one lie within
less than the watermark delay of each other, so none can be behind the watermark whatever
the (timing dependent) batch boundaries are; the final event, produced after the last kill,
is the only one that advances the watermark far enough to close days.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import glob
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from kamlib.cli.stream import run_stream
from tests.reference.streaming import decode_order, simulate_order_stream
from tests.services.kafka import KafkaBroker

pytestmark = pytest.mark.slow

DELAY = dt.timedelta(days=3)
WATERMARK = "3 days"
START = dt.datetime(2024, 3, 1)
SPAN = dt.timedelta(days=2, hours=23)  # < DELAY: no event before the closer can be late
CLOSER_TIME = dt.datetime(2024, 3, 7, 6)  # watermark -> 2024-03-04 06:00: closes 03-01..03-03
KILLS = 3
MAX_OFFSETS = 8
T = "%Y-%m-%dT%H:%M:%S"
# generous: a fresh JVM + the first stateful batch, on a loaded 2-core CI machine
COMMIT_TIMEOUT = 400.0


def _spark_jars() -> list[str]:
    """The connector jars for the CLI's own session; fail in CI, skip locally without them."""
    folder = os.environ.get("KAMLIB_JARS", "")
    jars = sorted(glob.glob(os.path.join(folder, "spark", "*.jar"))) if folder else []
    if not jars:
        reason = f"no Spark connector jars in {folder or '$KAMLIB_JARS'}/spark (run `make jars`)"
        if os.environ.get("CI"):
            pytest.fail(f"Kafka connector jars required in CI: {reason}", pytrace=False)
        pytest.skip(reason)
    return jars


def _valid(rng: random.Random, prefix: str, n: int) -> list[str]:
    out = []
    for i in range(n):
        when = START + dt.timedelta(minutes=rng.randrange(int(SPAN.total_seconds() // 60)))
        out.append(
            json.dumps(
                {
                    "event_id": f"{prefix}-{i}",
                    "account_id": f"a{rng.randrange(7)}",
                    "event_time": when.strftime(T),
                    "amount": round(rng.uniform(1, 500), 2),
                }
            )
        )
    return out


def _malformed(prefix: str, n: int) -> list[str]:
    kinds = [
        lambda i: f"{{broken {prefix} {i}",
        lambda i: json.dumps({"event_id": f"{prefix}-m{i}", "account_id": "a0", "amount": 1.0}),
        lambda i: json.dumps(
            {
                "event_id": f"{prefix}-m{i}",
                "account_id": "a1",
                "event_time": (START + dt.timedelta(hours=i)).strftime(T),
                "amount": "not a number",
            }
        ),
        lambda i: f"[{i}, {prefix!r}]".replace("'", '"'),
    ]
    return [kinds[i % len(kinds)](i) for i in range(n)]


def _is_valid(line: str) -> bool:
    return decode_order(line)[0] is not None


def _phase(rng: random.Random, prefix: str, produced: list[str]) -> list[str]:
    """Fresh valid events, malformed records and re-sent earlier events, shuffled."""
    lines = [*_valid(rng, prefix, 60), *_malformed(prefix, 6)]
    earlier = [line for line in produced if _is_valid(line)]
    lines += rng.sample(earlier, min(len(earlier), 5))  # redeliveries: duplicates
    rng.shuffle(lines)
    return lines


def _count(folder: Path) -> int:
    return len([p for p in folder.glob("*") if p.name.isdigit()]) if folder.exists() else 0


def _group_gone(pgid: int, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def _run_and_kill(
    cmd: list[str], env: dict[str, str], chk: Path, log: Path, rng: random.Random
) -> dict[str, Any]:
    """Start the CLI, SIGKILL its process group at a random point after >= 1 new commit."""
    commits, offsets = chk / "orders" / "commits", chk / "orders" / "offsets"
    before = _count(commits)
    with open(log, "ab") as handle:
        proc = subprocess.Popen(
            cmd, stdout=handle, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    try:
        deadline = time.monotonic() + COMMIT_TIMEOUT
        while _count(commits) <= before:
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.05)
        # Prefer a moment when a batch is planned but not committed (mid-batch), then a
        # random extra delay so the kill lands anywhere inside it (or in a later one).
        until = time.monotonic() + 5
        while _count(offsets) <= _count(commits) and time.monotonic() < until:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 1.5))
        in_flight = _count(offsets) > _count(commits)
        committed = _count(commits) - before
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        assert _group_gone(proc.pid), "the CLI's process group survived SIGKILL"
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    return {"committed": committed, "in_flight": in_flight}


def test_stream_kafka_sigkill_restart_drain_exactly_once(
    kafka_service: KafkaBroker, spark: Any, tmp_path: Path
) -> None:
    jars = _spark_jars()
    seed = int(os.environ.get("KAMLIB_CRASH_SEED", "20240301"))
    rng = random.Random(seed)
    topic = kafka_service.create_topic()
    out, chk, log = tmp_path / "out", tmp_path / "chk", tmp_path / "cli.log"
    env = {
        **os.environ,
        "PYSPARK_PYTHON": sys.executable,
        # the standard pyspark mechanism: spark-submit arguments for the session it launches
        "PYSPARK_SUBMIT_ARGS": f"--jars {','.join(jars)} pyspark-shell",
    }
    env.pop("SPARK_REMOTE", None)
    env.pop("PYSPARK_GATEWAY_PORT", None)
    base = [sys.executable, "-m", "kamlib", "stream", "--source", "kafka"]
    base += ["--bootstrap-servers", kafka_service.bootstrap, "--topic", topic]
    base += ["--output", str(out), "--checkpoint", str(chk), "--watermark", WATERMARK]
    base += ["--shuffle-partitions", "2", "--master", "local[2]"]
    crash = [*base, "--trigger-interval", "0 seconds"]
    crash += ["--kafka-option", f"maxOffsetsPerTrigger={MAX_OFFSETS}"]
    crash += ["--kafka-option", "failOnDataLoss=true"]

    produced: list[str] = []
    kills = []
    started = time.monotonic()
    for k in range(KILLS):
        lines = _phase(rng, f"p{k}", produced)
        kafka_service.produce(topic, lines, key=None)
        produced += lines
        kills.append(_run_and_kill(crash, env, chk, log, rng))
    last = [*_phase(rng, f"p{KILLS}", produced)]
    closer = json.dumps(
        {
            "event_id": "closer",
            "account_id": "a0",
            "event_time": CLOSER_TIME.strftime(T),
            "amount": 1.0,
        }
    )
    kafka_service.produce(topic, [*last, closer], key=None)
    produced += [*last, closer]

    # The final run drains everything with --available-now (in this process, like the CLI).
    code = run_stream(
        source="kafka",
        bootstrap_servers=kafka_service.bootstrap,
        topic=topic,
        kafka_options={"failOnDataLoss": "true"},
        output=str(out),
        checkpoint=str(chk),
        available_now=True,
        watermark=WATERMARK,
        shuffle_partitions=2,
        spark=spark,
    )
    assert code == 0
    elapsed = time.monotonic() - started

    ref = simulate_order_stream([produced], delay=DELAY)
    assert not ref["late"]
    expected_ids = sorted(o["event_id"] for o in ref["kept"])
    assert len(expected_ids) == len(set(expected_ids))
    orders = spark.read.parquet(str(out / "orders")).collect()
    ids = sorted(r.event_id for r in orders)
    assert len(ids) == len(set(ids)), "duplicated orders"
    assert ids == expected_ids, "lost or unexpected orders"
    by_id = {o["event_id"]: o for o in ref["kept"]}
    for row in orders:
        want = by_id[row.event_id]
        assert (row.account_id, row.event_time, row.amount) == (
            want["account_id"],
            want["event_time"],
            pytest.approx(want["amount"]),
        )

    quarantine = spark.read.parquet(str(out / "quarantine")).collect()
    malformed = [line for line in produced if not _is_valid(line)]
    assert len(quarantine) == ref["quarantined"] == len(malformed)
    assert sorted(r.raw for r in quarantine) == sorted(malformed)
    coordinates = {(r.topic, r.partition, r.offset) for r in quarantine}
    assert len(coordinates) == len(quarantine), "a malformed record was quarantined twice"

    revenue = spark.read.parquet(str(out / "revenue_daily")).collect()
    got = {(r.account_id, r.day): (r.revenue, r.orders) for r in revenue}
    assert len(got) == len(revenue), "duplicated revenue rows"
    expected = ref["revenue_daily"]
    assert {day for _, day in expected} == {dt.date(2024, 3, d) for d in (1, 2, 3)}
    assert sorted(got) == sorted(expected)
    for key, (amount, n) in expected.items():
        assert got[key][0] == pytest.approx(amount, abs=1e-6)
        assert got[key][1] == n

    duplicates = sum(1 for line in produced if _is_valid(line)) - len(ids)
    print(
        f"kafka crash test (seed {seed}): {len(produced)} records produced, {KILLS} SIGKILLs "
        f"({sum(k['in_flight'] for k in kills)} with a batch in flight, "
        f"{[k['committed'] for k in kills]} batches committed per run); "
        f"{len(ids)} orders, 0 lost, 0 duplicated ({duplicates} re-sent copies dropped); "
        f"{len(quarantine)} quarantined; {len(revenue)} closed account-days exact; "
        f"{elapsed:.0f}s"
    )
