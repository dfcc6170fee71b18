"""A real single-node KRaft Kafka broker for the tests, and the ``kafka_broker`` fixture.

The broker runs ``kafka.Kafka`` (kafka_2.13 4.1.1) from the Maven jars in
``$KAMLIB_JARS/broker`` as a subprocess of the test session: storage is formatted with
``kafka.tools.StorageTool format --standalone`` (a dynamic KRaft quorum of one controller),
the broker and controller listen on free ``127.0.0.1`` ports, readiness is a successful
metadata request from a real client (``confluent_kafka``), and the folder is deleted when
the session ends.

Without ``KAMLIB_JARS`` the Kafka tests are skipped locally; when ``CI`` is set they fail
instead (CI must really run them).
"""

from __future__ import annotations

import base64
import contextlib
import glob
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

PARTITIONS = 3


class BrokerUnavailableError(RuntimeError):
    """The broker could not be set up (missing jars, java, or it did not start)."""


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (bound to port 0, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def broker_classpath(jars_dir: str) -> str:
    """The broker classpath: every jar of ``<jars_dir>/broker`` (resolved by jvm/broker/pom.xml)."""
    folder = Path(jars_dir) / "broker"
    jars = sorted(glob.glob(str(folder / "*.jar")))
    if not jars:
        raise BrokerUnavailableError(f"no broker jars in {folder} (run `make jars`)")
    return os.pathsep.join(jars)


def _cluster_id() -> str:
    while True:  # a leading "-" would be read as an option by the StorageTool
        cluster = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster.startswith("-"):
            return cluster


class KafkaBroker:
    """A running single-node KRaft broker (``bootstrap`` is ``127.0.0.1:<port>``)."""

    def __init__(self, jars_dir: str, *, startup_timeout: float = 90.0) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="kamlib-kafka-"))
        self.port = free_port()
        self.controller_port = free_port()
        while self.controller_port == self.port:  # pragma: no cover - vanishingly rare
            self.controller_port = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None
        self._log = self.folder / "broker.log"
        try:
            self._start(jars_dir, startup_timeout)
        except BaseException:
            self.stop()
            raise

    def _properties(self) -> Path:
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": f"127.0.0.1:{self.controller_port}",
            "listeners": (
                f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}"
            ),
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.folder / "data"),
            "num.partitions": str(PARTITIONS),
            "auto.create.topics.enable": "false",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "3",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "log.flush.interval.messages": "1",
        }
        path = self.folder / "server.properties"
        path.write_text("".join(f"{key}={value}\n" for key, value in props.items()))
        return path

    def _start(self, jars_dir: str, startup_timeout: float) -> None:
        java = shutil.which("java")
        if java is None:
            raise BrokerUnavailableError("no `java` on PATH (the Kafka broker needs a JDK 17+)")
        classpath = broker_classpath(jars_dir)
        properties = self._properties()
        base = [java, "-Xmx384m", "-XX:+UseSerialGC", "-cp", classpath]
        formatted = subprocess.run(
            [
                *base,
                "kafka.tools.StorageTool",
                "format",
                "-t",
                _cluster_id(),
                "-c",
                str(properties),
                "--standalone",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if formatted.returncode != 0:
            raise BrokerUnavailableError(
                f"kafka StorageTool format failed: {formatted.stderr.strip()[-2000:]}"
            )
        log = open(self._log, "wb")  # noqa: SIM115 - kept open for the broker's lifetime
        self._process = subprocess.Popen(
            [*base, "kafka.Kafka", str(properties)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + startup_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise BrokerUnavailableError(f"the Kafka broker exited:\n{self.log_tail()}")
            if self._ready():
                return
            time.sleep(0.5)
        raise BrokerUnavailableError(
            f"the Kafka broker was not ready in {startup_timeout}s:\n{self.log_tail()}"
        )

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self._log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def _ready(self) -> bool:
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 0})
        try:
            metadata = admin.list_topics(timeout=2)
        except Exception:
            return False
        return bool(metadata.brokers)

    def admin(self) -> Any:
        from confluent_kafka.admin import AdminClient

        return AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 0})

    def create_topic(self, name: str | None = None, *, partitions: int = PARTITIONS) -> str:
        """Create a topic (a fresh unique name by default) with ``partitions`` partitions."""
        from confluent_kafka.admin import NewTopic

        topic = name or f"t-{uuid.uuid4().hex[:12]}"
        admin = self.admin()  # kept alive until the futures resolve
        futures = admin.create_topics([NewTopic(topic, partitions, 1)])
        for future in futures.values():
            future.result(timeout=30)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            meta = admin.list_topics(topic=topic, timeout=5).topics.get(topic)
            if meta is not None and meta.error is None and len(meta.partitions) == partitions:
                return topic
            time.sleep(0.2)
        raise BrokerUnavailableError(f"topic {topic} did not appear")

    def produce(
        self,
        topic: str,
        values: Iterable[str | bytes | dict[str, Any]],
        *,
        key: str | None = "account_id",
        partition: int | None = None,
    ) -> int:
        """Produce ``values`` (dicts are JSON-encoded and keyed by ``key``); returns the count."""
        from confluent_kafka import Producer

        producer = Producer(
            {"bootstrap.servers": self.bootstrap, "log_level": 0, "linger.ms": 5, "acks": "all"}
        )
        count = 0
        for value in values:
            record_key: str | None = None
            if isinstance(value, dict):
                if key is not None and key in value:
                    record_key = str(value[key])
                payload: str | bytes = json.dumps(value)
            else:
                payload = value
            kwargs: dict[str, Any] = {"value": payload}
            if record_key is not None:
                kwargs["key"] = record_key
            if partition is not None:
                kwargs["partition"] = partition
            try:
                producer.produce(topic, **kwargs)
            except BufferError:  # the client's local queue is full: let it deliver, retry once
                producer.flush(30)
                producer.produce(topic, **kwargs)
            producer.poll(0)
            count += 1
        remaining = producer.flush(30)
        if remaining:
            raise BrokerUnavailableError(f"{remaining} records were not delivered to {topic}")
        return count

    def consume(self, topic: str, *, expected: int, timeout: float = 60.0) -> list[Any]:
        """Read ``expected`` records of ``topic`` from the beginning (a fresh group)."""
        from confluent_kafka import Consumer

        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": f"g-{uuid.uuid4().hex[:8]}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "log_level": 0,
            }
        )
        consumer.subscribe([topic])
        records: list[Any] = []
        deadline = time.monotonic() + timeout
        try:
            while len(records) < expected and time.monotonic() < deadline:
                message = consumer.poll(0.5)
                if message is None or message.error():
                    continue
                records.append(message)
        finally:
            consumer.close()
        return records

    def stop(self) -> None:
        """Stop the broker (SIGTERM, then SIGKILL) and delete its folder."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, 15)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, 9)
                process.wait(timeout=10)
        shutil.rmtree(self.folder, ignore_errors=True)


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"Kafka broker required in CI: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def kafka_service() -> Iterator[KafkaBroker]:
    """The session's running :class:`KafkaBroker` (skipped locally without ``KAMLIB_JARS``)."""
    jars = os.environ.get("KAMLIB_JARS", "")
    if not jars:
        _unavailable(
            "KAMLIB_JARS is not set (run `make jars`; the broker comes from its broker/ jars)"
        )
    try:
        broker = KafkaBroker(jars)
    except BrokerUnavailableError as exc:
        _unavailable(str(exc))
        raise  # pragma: no cover - _unavailable never returns
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def kafka_broker(kafka_service: KafkaBroker) -> str:
    """The bootstrap servers (``127.0.0.1:<port>``) of the session's real KRaft broker."""
    return kafka_service.bootstrap


__all__: Sequence[str] = [
    "KafkaBroker",
    "broker_classpath",
    "free_port",
    "kafka_broker",
    "kafka_service",
]
