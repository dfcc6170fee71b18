"""``kamlib stream --source kafka`` against the real KRaft broker: outputs, bad input, crashes."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from kamlib.cli import EXIT_BAD_INPUT, main
from kamlib.cli.stream import run_stream
from tests.reference.streaming import simulate_order_stream
from tests.services.kafka import KafkaBroker, free_port

DELAY = dt.timedelta(days=1)
SECRET = "Kafka-S3cret-pw"
JAAS = (
    "org.apache.kafka.common.security.plain.PlainLoginModule required "
    f'username="u" password="{SECRET}";'
)


def _events(prefix: str, days: int, per_day: int) -> list[str]:
    out = []
    for d in range(days):
        day = dt.datetime(2024, 3, 1) + dt.timedelta(days=d)
        for i in range(per_day):
            when = day + dt.timedelta(minutes=(1440 // per_day) * i)
            out.append(
                json.dumps(
                    {
                        "event_id": f"{prefix}-{d}-{i}",
                        "account_id": f"a{i % 5}",
                        "event_time": when.strftime("%Y-%m-%dT%H:%M:%S"),
                        "amount": round(1.25 * i + d, 2),
                    }
                )
            )
    return out


def _malformed(n: int) -> list[str]:
    kinds = [
        lambda i: f"{{broken {i}",
        lambda i: json.dumps({"event_id": f"m{i}", "account_id": "a0", "amount": 1.0}),
        lambda i: json.dumps(
            {
                "event_id": f"m{i}",
                "account_id": "a0",
                "event_time": "2024-03-01T01:00:00",
                "amount": "x",
            }
        ),
    ]
    return [kinds[i % 3](i) for i in range(n)]


def _check_outputs(spark: Any, out: Path, valid: list[str], malformed: list[str]) -> dict[str, int]:
    ref = simulate_order_stream([valid], delay=DELAY)
    orders = [r.event_id for r in spark.read.parquet(str(out / "orders")).collect()]
    assert len(orders) == len(set(orders)), "duplicated orders"
    assert sorted(orders) == sorted(o["event_id"] for o in ref["kept"])
    quarantine = [r.raw for r in spark.read.parquet(str(out / "quarantine")).collect()]
    assert sorted(quarantine) == sorted(malformed)
    revenue = spark.read.parquet(str(out / "revenue_daily")).collect()
    got = {(r.account_id, r.day): (r.revenue, r.orders) for r in revenue}
    assert len(got) == len(revenue), "duplicated revenue rows"
    assert got.keys() == ref["revenue_daily"].keys()
    for key, (amount, n) in ref["revenue_daily"].items():
        assert got[key][0] == pytest.approx(amount)
        assert got[key][1] == n
    return {"orders": len(orders), "quarantine": len(quarantine), "revenue_rows": len(revenue)}


def test_stream_kafka_available_now_writes_three_outputs(
    spark: Any, kafka_service: KafkaBroker, tmp_path: Path
) -> None:
    topic = kafka_service.create_topic()
    valid = _events("k", days=3, per_day=8)
    malformed = _malformed(4)
    kafka_service.produce(topic, [*valid[:10], *malformed, *valid[10:]])
    out, chk = tmp_path / "out", tmp_path / "chk"
    code = run_stream(
        source="kafka",
        bootstrap_servers=kafka_service.bootstrap,
        topic=topic,
        starting_offsets="earliest",
        kafka_options={"maxOffsetsPerTrigger": "12", "failOnDataLoss": "true"},
        output=str(out),
        checkpoint=str(chk),
        available_now=True,
        spark=spark,
    )
    assert code == 0
    _check_outputs(spark, out, valid, malformed)
    quarantine = spark.read.parquet(str(out / "quarantine")).collect()
    assert all(r.topic == topic and r.partition in (0, 1, 2) for r in quarantine)
    assert all(r.offset is not None for r in quarantine)


def _bad(capsys: Any, argv: list[str]) -> str:
    assert main(argv) == EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert SECRET not in err
    assert "Traceback" not in err
    return err


def test_stream_kafka_bad_input_one_line_exit_2(
    kafka_service: KafkaBroker, tmp_path: Path, capsys: Any
) -> None:
    base = ["stream", "--source", "kafka", "--output", str(tmp_path / "o")]
    base += ["--checkpoint", str(tmp_path / "c"), "--available-now"]
    secret_opt = ["--kafka-option", f"kafka.sasl.jaas.config={JAAS}"]
    dead = f"127.0.0.1:{free_port()}"
    err = _bad(capsys, [*base, "--bootstrap-servers", dead, "--topic", "t", *secret_opt])
    assert "cannot reach" in err
    assert dead in err
    err = _bad(
        capsys,
        [*base, "--bootstrap-servers", kafka_service.bootstrap, "--topic", "no-such-topic"],
    )
    assert "no-such-topic" in err
    assert "do not exist" in err
    err = _bad(
        capsys,
        [
            *base,
            "--bootstrap-servers",
            kafka_service.bootstrap,
            "--topic",
            "t",
            "--starting-offsets",
            "yesterday",
            *secret_opt,
        ],
    )
    assert "--starting-offsets" in err
    err = _bad(
        capsys,
        [
            *base,
            *("--bootstrap-servers", kafka_service.bootstrap, "--topic", "t"),
            *("--kafka-option", "SUBSCRIBE=other"),
        ],
    )
    assert "SUBSCRIBE" in err
    err = _bad(capsys, [*base, "--topic", "t"])
    assert "--bootstrap-servers" in err
