"""Bad I/O input to ``kamlib stream`` and ``kamlib scorecard``: one stderr line, exit 2.

Unreachable bootstrap servers, a missing topic, a wrong ``--starting-offsets``, an ``s3a://``
path without the hadoop-aws jar and ``--format delta`` without a Delta writer each give one
line naming what to fix, exit code 2, nothing written, and no secret in the message. The
jar-less cases run in ONE child process (a fresh JVM without ``KAMLIB_JARS``; the test
session's JVM has every connector).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kamlib.cli import EXIT_BAD_INPUT, main
from kamlib.errors import SchemaError
from tests.services.kafka import KafkaBroker, free_port

SECRET = "Io-S3cret-pw-7731"
JAAS = (
    "org.apache.kafka.common.security.plain.PlainLoginModule required "
    f'username="u" password="{SECRET}";'
)
SECRET_OPTS = ["--kafka-option", f"kafka.sasl.jaas.config={JAAS}"]
ROOT = Path(__file__).resolve().parents[1]


def _one_line(capsys: Any, argv: list[str]) -> str:
    """Run the CLI; assert exit 2, exactly one stderr line, no traceback, no secret."""
    assert main(argv) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"kamlib {argv[0]}: bad input: "), err
    assert "Traceback" not in err
    assert SECRET not in err
    return lines[0]


def _stream(tmp_path: Path, *extra: str) -> list[str]:
    out, chk = tmp_path / "out", tmp_path / "chk"
    return ["stream", "--output", str(out), "--checkpoint", str(chk), "--available-now", *extra]


def _nothing_written(tmp_path: Path) -> None:
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "chk").exists()


# --------------------------------------------------------------------------- Kafka


def test_unreachable_bootstrap_servers(tmp_path: Path, capsys: Any) -> None:
    dead = f"127.0.0.1:{free_port()}"  # bound then released: nothing listens there
    argv = _stream(tmp_path, "--source", "kafka", "--bootstrap-servers", dead, "--topic", "t")
    argv += [*SECRET_OPTS, "--kafka-option", "kafka.security.protocol=SASL_PLAINTEXT"]
    err = _one_line(capsys, argv)
    assert "cannot reach" in err
    assert dead in err
    assert "--bootstrap-servers" in err
    _nothing_written(tmp_path)


@pytest.fixture
def silent_listener() -> Iterator[str]:
    """``127.0.0.1:<port>`` accepting TCP connections and never answering (not Kafka)."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        for conn in accepted:
            conn.close()
        server.close()


def test_server_answering_no_kafka_metadata(silent_listener: str) -> None:
    pytest.importorskip("confluent_kafka")
    from kamlib.cli.stream import check_kafka

    with pytest.raises(SchemaError) as info:
        check_kafka("kamlib stream", silent_listener, "t", {}, timeout=0.5)
    message = str(info.value)
    assert "\n" not in message
    assert silent_listener in message
    assert "no Kafka metadata" in message


def test_missing_topic(kafka_service: KafkaBroker, tmp_path: Path, capsys: Any) -> None:
    pytest.importorskip("confluent_kafka")
    servers = kafka_service.bootstrap
    argv = _stream(tmp_path, "--source", "kafka", "--bootstrap-servers", servers)
    err = _one_line(capsys, [*argv, "--topic", "no-such-topic-io", *SECRET_OPTS])
    assert "no-such-topic-io" in err
    assert servers in err
    assert "--topic" in err
    _nothing_written(tmp_path)


@pytest.mark.parametrize(
    ("offsets", "named"),
    [
        ("yesterday", "'earliest', 'latest' or JSON"),
        ('{"orders": ', "'earliest', 'latest' or JSON"),
        ("[0, 1]", "'earliest', 'latest' or JSON"),
        ('{"orders": {"0": "x"}}', "orders/0"),
        ('{"orders": {"0": -3}}', "orders/0"),
        ('{"orders": {"first": 0}}', "'first'"),
        ('{"other": {"0": 0}}', "'other'"),
    ],
)
def test_wrong_starting_offsets(tmp_path: Path, capsys: Any, offsets: str, named: str) -> None:
    """Rejected before any Kafka check or Spark session (the servers do not even exist)."""
    dead = f"127.0.0.1:{free_port()}"
    argv = _stream(tmp_path, "--source", "kafka", "--bootstrap-servers", dead, "--topic", "orders")
    err = _one_line(capsys, [*argv, "--starting-offsets", offsets, *SECRET_OPTS])
    assert "--starting-offsets" in err
    assert named in err
    assert "cannot reach" not in err
    _nothing_written(tmp_path)


def test_json_starting_offsets_must_cover_every_partition(
    kafka_service: KafkaBroker, tmp_path: Path, capsys: Any
) -> None:
    pytest.importorskip("confluent_kafka")
    from kamlib.cli.stream import check_kafka
    from kamlib.streaming.sources import _parse_starting_offsets

    topic = kafka_service.create_topic(partitions=3)
    servers = kafka_service.bootstrap
    argv = _stream(tmp_path, "--source", "kafka", "--bootstrap-servers", servers, "--topic", topic)
    err = _one_line(capsys, [*argv, "--starting-offsets", json.dumps({topic: {"0": -2}})])
    assert "--starting-offsets" in err
    assert "lacks partition(s) 1, 2" in err
    assert topic in err
    err = _one_line(capsys, [*argv, "--starting-offsets", json.dumps({topic: {"7": 0}})])
    assert "has no partition(s) 7" in err
    _nothing_written(tmp_path)
    # every partition given (-2 earliest, -1 latest, an offset): accepted
    spec = _parse_starting_offsets("t", json.dumps({topic: {"0": -2, "1": -1, "2": 5}}), [topic])
    assert spec == {topic: {0: -2, 1: -1, 2: 5}}
    check_kafka("kamlib stream", servers, topic, {}, starting_offsets=spec)
    assert _parse_starting_offsets("t", " Earliest ", [topic]) == "earliest"


# --------------------------------------------------------------------------- connectors

#: Runs in a fresh JVM without connector jars (and with the deltalake package hidden): each
#: case calls the CLI's main() and reports its exit code and stderr lines.
_CHILD = r"""
import contextlib, io, json, logging, sys
sys.modules["deltalake"] = None  # no delta-rs fallback either
# kamlib's INFO progress log goes to the process's stderr (as in a real run), so the
# per-case capture below holds exactly what main() prints as the error
logging.basicConfig(level=logging.INFO, stream=sys.__stderr__)
from kamlib._spark import local_session
spark = local_session(app_name="io-errors", master="local[1]",
                      conf={"spark.sql.warehouse.dir": sys.argv[1]})
from kamlib.cli import main
report = {}
for name, argv in json.loads(sys.argv[2]).items():
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(argv)
    report[name] = {"code": code, "err": err.getvalue().strip().splitlines()}
print("REPORT " + json.dumps(report))
"""


def test_missing_jars_in_a_fresh_jvm(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """s3a:// without hadoop-aws, --format delta without Delta, Kafka without its connector."""
    from kamlib.connectors import packages

    try:  # the broker is optional here: the other cases need no Kafka
        broker: KafkaBroker | None = request.getfixturevalue("kafka_service")
    except pytest.skip.Exception:
        broker = None

    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "a.jsonl").write_text('{"event_id": "e1"}\n')
    warehouse = tmp_path / "warehouse"

    def stream(case: str, *extra: str, output: str | None = None, chk: str | None = None) -> Any:
        return [
            "stream",
            *("--input", str(landing)),
            *("--output", output or str(tmp_path / case / "out")),
            *("--checkpoint", chk or str(tmp_path / case / "chk")),
            "--available-now",
            *extra,
        ]

    def scorecard(case: str, *extra: str, tx: str | None = None) -> list[str]:
        tx = tx or str(tmp_path / "no-such-transactions")  # never read: the check comes first
        return ["scorecard", "--transactions", tx, "--as-of", "2026-01-01", *extra]

    s3_secret = f"s3a://AKIAIO:{SECRET}@lake"
    cases = {
        "stream_s3a_output": stream("a", output=f"{s3_secret}/kam"),
        "stream_s3a_checkpoint": stream("b", chk="s3a://lake/chk"),
        "stream_delta": stream("c", "--format", "delta"),
        "scorecard_s3a_output": scorecard("d", "--output", f"{s3_secret}/card"),
        "scorecard_s3a_input": scorecard("e", "--output", str(tmp_path / "e"), tx="s3a://l/tx"),
        "scorecard_delta": scorecard("f", "--output", str(tmp_path / "f"), "--format", "delta"),
        "scorecard_delta_table": scorecard("g", "--output-table", "kam_card", "--format", "delta"),
    }
    expected = {
        "stream_s3a_output": ("kamlib stream", "--output", packages(s3=True)[0]),
        "stream_s3a_checkpoint": ("kamlib stream", "--checkpoint", packages(s3=True)[0]),
        "stream_delta": ("kamlib stream", "--format delta", packages(delta=True)[0]),
        "scorecard_s3a_output": ("kamlib scorecard", "--output", packages(s3=True)[0]),
        "scorecard_s3a_input": ("kamlib scorecard", "--transactions", packages(s3=True)[0]),
        "scorecard_delta": ("kamlib scorecard", "--format delta", packages(delta=True)[0]),
        "scorecard_delta_table": ("kamlib scorecard", "--output-table", packages(delta=True)[0]),
    }
    if broker is not None:
        kafka = ["--source", "kafka", "--bootstrap-servers", broker.bootstrap]
        cases["stream_kafka"] = stream("h", *kafka, "--topic", broker.create_topic(), *SECRET_OPTS)
        expected["stream_kafka"] = ("kamlib stream", "Kafka", packages(kafka=True)[0])
    env = {k: v for k, v in os.environ.items() if k not in ("KAMLIB_JARS", "PYSPARK_SUBMIT_ARGS")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT)])
    run = subprocess.run(
        [sys.executable, "-c", _CHILD, str(warehouse), json.dumps(cases)],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
        check=False,
        cwd=tmp_path,
    )
    lines = [line for line in run.stdout.splitlines() if line.startswith("REPORT ")]
    assert run.returncode == 0, run.stderr[-3000:]
    assert lines, run.stderr[-3000:]
    report = json.loads(lines[0][len("REPORT ") :])
    # kamlib's probes leave no JVM stack trace on the process's stderr either
    assert "\tat org.apache" not in run.stderr, run.stderr[-3000:]
    for case, (prefix, flag, coordinate) in expected.items():
        got = report[case]
        assert got["code"] == EXIT_BAD_INPUT, (case, got)
        assert len(got["err"]) == 1, (case, got)
        line = got["err"][0]
        assert line.startswith(f"{prefix}: bad input: "), (case, line)
        assert flag in line, (case, line)
        assert coordinate in line, (case, line)
        assert "kamlib.connectors.packages(" in line, (case, line)
        assert SECRET not in line, (case, line)
        assert "AKIAIO" not in line, (case, line)
    # nothing half-written: no output, checkpoint, table or warehouse directory
    for case in "abcdefgh":
        assert not (tmp_path / case).exists(), case
    assert not warehouse.exists() or not any(warehouse.iterdir())


def test_probe_passes_with_the_jar(spark: Any, s3a: Any) -> None:
    """With hadoop-aws on the classpath the probe costs a lookup and writes nothing."""
    from kamlib.connectors import _require_filesystems

    _require_filesystems(spark, "kamlib stream", {"--output": s3a.uri("kam/out")})
    assert s3a.keys() == []


def test_runtime_failure_of_a_kafka_stream_is_one_scrubbed_line(
    spark: Any, tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A query failure quoting the options back: exit 1, one line, the password redacted."""
    from kamlib.cli import EXIT_FAILURE
    from kamlib.errors import KamlibError

    def fail(*args: Any, **kwargs: Any) -> None:
        raise KamlibError(f"streaming query failed: options {JAAS}\n\tat org.apache.spark.X")

    monkeypatch.setattr("kamlib.cli.stream.check_kafka", lambda *a, **k: None)
    monkeypatch.setattr("kamlib.streaming.sources.kafka_source", lambda *a, **k: None)
    monkeypatch.setattr("kamlib.streaming.runner.run_order_stream", fail)
    argv = _stream(tmp_path, "--source", "kafka", "--bootstrap-servers", "127.0.0.1:9")
    assert main([*argv, "--topic", "t", *SECRET_OPTS]) == EXIT_FAILURE
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert SECRET not in err
    assert "redacted" in err
    assert "at org.apache" not in err
