"""``kamlib stream``: end-to-end file pipeline, exactly once across a stop and a restart."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from kamlib.cli import EXIT_BAD_INPUT, build_parser, main
from kamlib.cli.stream import run_stream
from kamlib.streaming.runner import run_order_stream
from tests.reference.streaming import count_lines, simulate_order_stream

DELAY = dt.timedelta(days=1)
T = "%Y-%m-%dT%H:%M:%S"


def _event(eid: str, account: str, when: dt.datetime, amount: float) -> str:
    return json.dumps(
        {"event_id": eid, "account_id": account, "event_time": when.strftime(T), "amount": amount}
    )


def _day_events(prefix: str, day: dt.datetime, n: int = 20, base: float = 0.0) -> list[str]:
    """n events of one day, 50 minutes apart (spread < the 1-day watermark delay)."""
    return [
        _event(f"{prefix}-{i}", f"a{i % 3}", day + dt.timedelta(minutes=50 * i), base + 1.25 * i)
        for i in range(n)
    ]


def _land(folder: Path, name: str, lines: list[str], age_seconds: float) -> str:
    """Write a file elsewhere, then move it in with a chosen modification time (= order)."""
    text = "\n".join(lines) + "\n"
    tmp = folder.parent / f".{name}.tmp"
    tmp.write_text(text)
    mtime = time.time() - age_seconds
    os.utime(tmp, (mtime, mtime))
    os.replace(tmp, folder / name)
    return text


def _first_run_files() -> dict[str, list[str]]:
    a1 = [*_day_events("a1", dt.datetime(2024, 1, 3)), "{broken", '{"event_id": "x"}']
    a2 = _day_events("a2", dt.datetime(2024, 1, 4), base=100.0)
    a3 = _day_events("a3", dt.datetime(2024, 1, 5), base=200.0)
    return {"a1.jsonl": a1, "a2.jsonl": a2, "a3.jsonl": a3}


def _second_run_files(first: dict[str, list[str]]) -> dict[str, list[str]]:
    new_b1 = _day_events("b1", dt.datetime(2024, 1, 6), base=300.0)
    late = [_event(f"late-{i}", "a0", dt.datetime(2024, 1, 2, 12), 1000.0 + i) for i in range(4)]
    malformed = [
        "not json",
        json.dumps({"event_id": "m1", "account_id": "a0", "amount": 1.0}),  # no event_time
        json.dumps(
            {
                "event_id": "m2",
                "account_id": "a0",
                "event_time": "2024-01-06T01:00:00",
                "amount": "x",
            }
        ),
    ]
    b1 = first["a3.jsonl"][:5] + late + malformed + new_b1  # 5 duplicates of run-1 events
    new_b2 = _day_events("b2", dt.datetime(2024, 1, 7), base=400.0)
    b2 = [*new_b2, new_b2[3], new_b1[7]]  # a duplicate within the file and one of b1
    return {"b1.jsonl": b1, "b2.jsonl": b2}


def _wait_for(path: Path, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return True
        time.sleep(0.2)
    return False


def _read(spark: Any, path: Path) -> list[Any]:
    return list(spark.read.parquet(str(path)).collect())


def test_stream_parser_is_registered() -> None:
    args = build_parser().parse_args(
        ["stream", "--input", "i", "--output", "o", "--checkpoint", "c", "--available-now"]
    )
    assert callable(args.handler)
    assert args.available_now is True
    assert args.watermark == "1 day"


def test_missing_checkpoint_is_bad_input(tmp_path: Path, capsys: Any) -> None:
    code = main(["stream", "--input", str(tmp_path), "--output", str(tmp_path), "--checkpoint", ""])
    assert code == EXIT_BAD_INPUT
    assert "checkpoint" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        *[(f, v) for f in ("--watermark", "--trigger-interval") for v in ("bogus", "-1 day")],
        ("--trigger-interval", "1 fortnight"),
        ("--watermark", "0 seconds"),  # a zero trigger interval is valid: batches back to back
    ],
)
def test_bad_durations_are_one_line_bad_input(
    tmp_path: Path, capsys: Any, flag: str, value: str
) -> None:
    base = ["stream", "--input", str(tmp_path), "--output", str(tmp_path / "o")]
    code = main([*base, "--checkpoint", str(tmp_path / "c"), flag, value])
    assert code == EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert f"{flag} must be a" in err[0]
    assert "duration such as" in err[0]
    assert not (tmp_path / "o").exists()


def _path_cases(tmp: Path) -> list[tuple[list[str], str, str]]:
    """(arguments, flag named in the message, what it says) for unusable path combinations."""
    (tmp / "in").mkdir()
    (tmp / "file").write_text("x")
    (tmp / "real").mkdir()
    (tmp / "link").symlink_to(tmp / "real")
    i, o, c = str(tmp / "in"), str(tmp / "o"), str(tmp / "c")
    f = str(tmp / "file")
    return [
        (["--input", i, "--output", f, "--checkpoint", c], "--output", "existing file"),
        (["--input", i, "--output", o, "--checkpoint", f], "--checkpoint", "existing file"),
        (["--input", f, "--output", o, "--checkpoint", c], "--input", "existing file"),
        (["--input", i, "--output", i, "--checkpoint", c], "--input and --output", "same path"),
        (["--input", i, "--output", o, "--checkpoint", o], "--output and --checkpoint", "same"),
        (["--input", i, "--output", o, "--checkpoint", f"{o}/chk"], "--checkpoint", "inside"),
        (["--input", i, "--output", f"{i}/out", "--checkpoint", c], "--output", "inside"),
        (["--input", f"{c}/x/in", "--output", o, "--checkpoint", c], "--input", "inside"),
        (["--input", i, "--output", f"{tmp}/real/", "--checkpoint", f"{tmp}/link"], "same", "same"),
        (["--input", i, "--output", f"{o}/../in/", "--checkpoint", c], "same", "same path"),
        (
            ["--input", i, "--output", "s3a://b/kam", "--checkpoint", "s3a://b/kam/_chk"],
            "inside",
            "--checkpoint",
        ),
        (["--input", i, "--output", "s3a://b/kam/", "--checkpoint", "s3a://b/kam"], "same", "same"),
    ]


def test_unusable_paths_are_one_line_bad_input_before_spark(
    tmp_path: Path, capsys: Any, monkeypatch: Any
) -> None:
    import kamlib.cli.stream as stream

    def no_spark(**_: Any) -> Any:
        raise AssertionError("a Spark session was started")

    monkeypatch.setattr(stream, "command_session", no_spark)
    cases = _path_cases(tmp_path)
    for args, flag, what in cases:
        code = main(["stream", *args, "--available-now"])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == EXIT_BAD_INPUT, args
        assert len(err) == 1, err
        assert flag in err[0], (args, err[0])
        assert what in err[0], (args, err[0])
        assert "Traceback" not in err[0]
    assert not (tmp_path / "o").exists()
    assert not (tmp_path / "c").exists()
    # separate siblings (and URIs that only share a prefix) pass the check
    ok = [("--input", str(tmp_path / "in")), ("--output", str(tmp_path / "o"))]
    stream.check_paths("kamlib stream", [*ok, ("--checkpoint", str(tmp_path / "o2"))])
    stream.check_paths(
        "kamlib stream",
        [("--output", "s3a://b/kam"), ("--checkpoint", "s3a://b/kam2"), ("--input", "/kam")],
    )


def test_exactly_once_across_stop_and_restart(spark: Any, tmp_path: Path) -> None:
    landing, out, chk = tmp_path / "in", tmp_path / "out", tmp_path / "chk"
    landing.mkdir()
    first = _first_run_files()
    texts = [
        _land(landing, name, lines, age_seconds=300 - 10 * i)
        for i, (name, lines) in enumerate(first.items())
    ]

    # Run 1: the real CLI in its own process, one file per micro-batch, processing-time
    # trigger; stopped by SIGTERM as soon as the first batch has been committed.
    log = tmp_path / "run1.log"
    with open(log, "w") as handle:
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "kamlib", "stream",
                "--input", str(landing), "--output", str(out), "--checkpoint", str(chk),
                "--max-files-per-trigger", "1", "--trigger-interval", "1 second",
                "--shuffle-partitions", "2",
            ],
            stdout=handle,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYSPARK_PYTHON": sys.executable},
        )  # fmt: skip
        try:
            committed = chk / "orders" / "commits" / "0"  # Spark's commit log of batch 0
            assert _wait_for(committed, timeout=240), log.read_text()[-3000:]
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
    output = log.read_text()
    assert code == 0, output[-3000:]
    assert "stopped by signal" in output

    # More files land while the pipeline is down: duplicates, malformed and late events.
    second = _second_run_files(first)
    texts += [
        _land(landing, name, lines, age_seconds=100 - 10 * i)
        for i, (name, lines) in enumerate(second.items())
    ]

    # Run 2: restart from the checkpoint (available_now, one file per batch as before).
    report = run_order_stream(
        spark,
        input=str(landing),
        output=str(out),
        checkpoint=str(chk),
        available_now=True,
        max_files_per_trigger=1,
        shuffle_partitions=2,
    )

    ref = simulate_order_stream([*first.values(), *second.values()], delay=DELAY)
    total = count_lines(texts)
    orders = _read(spark, out / "orders")
    quarantine = _read(spark, out / "quarantine")
    ids = [r.event_id for r in orders]
    assert len(ids) == len(set(ids)), "an order was written twice"
    assert sorted(ids) == sorted(o["event_id"] for o in ref["kept"])
    assert len(quarantine) == ref["quarantined"] == 5
    assert len({(r.file, r.offset) for r in quarantine}) == len(quarantine)
    assert len(ref["late"]) == 4
    assert ref["duplicates"] == 7
    assert len(orders) + len(quarantine) + len(ref["late"]) + ref["duplicates"] == total
    # Late events and duplicates all arrived in run 2: its metrics count every one of them.
    assert report.total("late", "orders") == len(ref["late"])
    assert report.total("duplicates", "orders") == ref["duplicates"]
    assert report.total("quarantined", "orders") == 3

    revenue = {
        (r.account_id, r.day): (r.revenue, r.orders) for r in _read(spark, out / "revenue_daily")
    }
    assert len(revenue) == len(_read(spark, out / "revenue_daily"))  # one row per account-day
    expected = ref["revenue_daily"]
    assert sorted(expected) == sorted(revenue)
    for key, (amount, n) in expected.items():
        assert revenue[key][0] == pytest.approx(amount)
        assert revenue[key][1] == n

    # Run 3 through the CLI entry point: nothing new, nothing changes.
    assert (
        run_stream(
            input=str(landing),
            output=str(out),
            checkpoint=str(chk),
            available_now=True,
            spark=spark,
        )
        == 0
    )
    assert len(_read(spark, out / "orders")) == len(orders)
    assert len(_read(spark, out / "quarantine")) == len(quarantine)
    assert len(_read(spark, out / "revenue_daily")) == len(revenue)


@pytest.mark.connect
def test_file_pipeline_available_now(spark: Any, tmp_path: Path) -> None:
    landing, out, chk = tmp_path / "in", tmp_path / "out", tmp_path / "chk"
    landing.mkdir()
    files = {
        "d1.jsonl": [*_day_events("d1", dt.datetime(2024, 2, 1), n=6), "oops"],
        "d2.jsonl": [
            *_day_events("d2", dt.datetime(2024, 2, 3), n=6),
            _day_events("d1", dt.datetime(2024, 2, 1), n=1)[0],
        ],
    }
    for i, (name, lines) in enumerate(files.items()):
        _land(landing, name, lines, age_seconds=60 - i)
    report = run_order_stream(
        spark, input=str(landing), output=str(out), checkpoint=str(chk), available_now=True
    )
    ref = simulate_order_stream([files["d1.jsonl"] + files["d2.jsonl"]], delay=DELAY)
    orders = _read(spark, out / "orders")
    assert sorted(r.event_id for r in orders) == sorted(o["event_id"] for o in ref["kept"])
    assert [c for c in spark.read.parquet(str(out / "orders")).columns] == [
        "event_id", "account_id", "event_time", "amount", "currency"
    ]  # fmt: skip
    quarantine = spark.read.parquet(str(out / "quarantine"))
    assert {"raw", "error", "topic", "partition", "offset", "timestamp"} <= set(quarantine.columns)
    assert [r.raw for r in quarantine.collect()] == ["oops"]
    revenue = spark.read.parquet(str(out / "revenue_daily"))
    assert revenue.columns == ["account_id", "day", "revenue", "orders"]
    got = {(r.account_id, r.day): (r.revenue, r.orders) for r in revenue.collect()}
    assert got.keys() == ref["revenue_daily"].keys()
    for key, (amount, n) in ref["revenue_daily"].items():
        assert got[key][0] == pytest.approx(amount)
        assert got[key][1] == n
    assert report.total("rows_in", "orders") == 14
    assert report.total("valid", "orders") == 13
    assert report.total("duplicates", "orders") == 1


def test_restart_after_a_crash_in_the_first_offset_write(spark: Any, tmp_path: Path) -> None:
    # Spark writes offsets/N to a hidden temporary file and renames it; a process killed
    # in between leaves only the temporary file. Spark 4.1+ then refuses to start the
    # query (its checkpoint has no batch but a non-empty offsets folder) unless the
    # runner lets it.
    landing, out, chk = tmp_path / "in", tmp_path / "out", tmp_path / "chk"
    landing.mkdir()
    files = _first_run_files()
    for i, (name, lines) in enumerate(files.items()):
        _land(landing, name, lines, age_seconds=300 - 10 * i)
    for query in ("orders", "orders_files", "quarantine", "revenue_daily"):
        offsets = chk / query / "offsets"
        offsets.mkdir(parents=True)
        (offsets / ".0.0b5c1d36-7d7e-4e55-9c41-2f4a8a0c9e11.tmp").write_text("v1\n")
    key = "spark.sql.streaming.verifyCheckpointDirectoryEmptyOnStart"
    before = spark.conf.get(key, None)
    run_order_stream(
        spark, input=str(landing), output=str(out), checkpoint=str(chk), available_now=True
    )
    assert spark.conf.get(key, None) == before
    ref = simulate_order_stream(list(files.values()), delay=DELAY)
    ids = [r.event_id for r in _read(spark, out / "orders")]
    assert sorted(ids) == sorted(o["event_id"] for o in ref["kept"])
    assert len(_read(spark, out / "quarantine")) == ref["quarantined"]
