"""A Spark standalone cluster on 127.0.0.1 for tests: one master and N workers.

Started from the pyspark package's own launcher (``$SPARK_HOME/bin/spark-class``, with
``SPARK_HOME`` = the pyspark package folder), each daemon a child process of the caller with
its logs and work directories in a temporary folder. :func:`standalone_cluster` waits until
every worker has registered (the master's JSON status page) and stops everything, deleting the
folder, on exit.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field

from kamlib.errors import KamlibError

__all__ = ["ClusterUnavailableError", "StandaloneCluster", "standalone_cluster"]


class ClusterUnavailableError(KamlibError, RuntimeError):
    """The standalone cluster could not be started (the message says why)."""


@dataclass
class StandaloneCluster:
    """A running cluster: ``master_url`` (``spark://127.0.0.1:PORT``) and its status page."""

    master_url: str
    web_url: str
    spark_home: str
    workers: int
    root: str
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def status(self) -> dict[str, object]:
        """The master's JSON status (``/json/``): workers, applications, cores, memory."""
        with urllib.request.urlopen(f"{self.web_url}/json/", timeout=5) as response:
            data = json.loads(response.read().decode())
        return dict(data)

    def alive_workers(self) -> int:
        """Workers the master sees as ALIVE."""
        try:
            workers = self.status().get("workers", [])
        except (OSError, ValueError):
            return 0
        if not isinstance(workers, list):
            return 0
        return sum(1 for w in workers if isinstance(w, dict) and w.get("state") == "ALIVE")

    def logs(self) -> str:
        """The tail of every daemon log (for error messages)."""
        parts = []
        for name in sorted(os.listdir(self.root)):
            if name.endswith(".log"):
                with open(os.path.join(self.root, name), errors="replace") as handle:
                    parts.append(f"--- {name}\n" + "".join(handle.readlines()[-15:]))
        return "\n".join(parts)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _spark_home() -> str:
    import pyspark

    return os.path.dirname(os.path.abspath(pyspark.__file__))


def _environment(spark_home: str, root: str) -> dict[str, str]:
    env = dict(os.environ)
    env["SPARK_HOME"] = spark_home
    env["SPARK_LOCAL_IP"] = "127.0.0.1"
    env["SPARK_LOCAL_DIRS"] = os.path.join(root, "local")
    env["SPARK_LOG_DIR"] = root
    env["SPARK_CONF_DIR"] = os.path.join(root, "conf")
    env.setdefault("PYSPARK_PYTHON", sys.executable)
    env.setdefault("SPARK_DAEMON_MEMORY", "512m")
    # Executors start Python workers with the worker's environment: absolute import paths only.
    if env.get("PYTHONPATH"):
        env["PYTHONPATH"] = os.pathsep.join(
            os.path.abspath(p) for p in env["PYTHONPATH"].split(os.pathsep) if p
        )
    return env


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=20)


@contextlib.contextmanager
def standalone_cluster(
    *,
    workers: int = 2,
    cores_per_worker: int = 1,
    memory_per_worker: str = "1g",
    timeout: float = 120.0,
) -> Iterator[StandaloneCluster]:
    """Start a standalone master and ``workers`` workers on 127.0.0.1; stop them on exit.

    Raises
    ------
    ClusterUnavailableError
        Java or pyspark's launcher is missing, or the workers did not register within
        ``timeout`` seconds (the message has the daemons' log tails).

    Examples
    --------
    >>> with standalone_cluster(workers=2) as cluster:  # doctest: +SKIP
    ...     spark = local_spark_session(master=cluster.master_url)
    """
    spark_home = _spark_home()
    launcher = _launcher(spark_home)
    root = tempfile.mkdtemp(prefix="kamlib-cluster-")
    os.makedirs(os.path.join(root, "conf"))
    port, web_port = _free_port(), _free_port()
    cluster = StandaloneCluster(
        master_url=f"spark://127.0.0.1:{port}",
        web_url=f"http://127.0.0.1:{web_port}",
        spark_home=spark_home,
        workers=workers,
        root=root,
    )
    env = _environment(spark_home, root)
    start = functools.partial(_launch, cluster, launcher, env)
    try:
        start("master", _MASTER, "--port", str(port), "--webui-port", str(web_port))
        for i in range(workers):
            work = os.path.join(root, f"work-{i}")
            os.makedirs(work)
            start(
                f"worker-{i}",
                _WORKER,
                *("--webui-port", str(_free_port()), "--work-dir", work),
                *("--cores", str(cores_per_worker), "--memory", memory_per_worker),
                cluster.master_url,
            )
        _wait_for_workers(cluster, timeout)
        yield cluster
    finally:
        for process in reversed(cluster.processes):  # workers first, then the master
            _stop(process)
        shutil.rmtree(root, ignore_errors=True)


_MASTER = "org.apache.spark.deploy.master.Master"
_WORKER = "org.apache.spark.deploy.worker.Worker"


def _launcher(spark_home: str) -> str:
    """``spark_home``'s ``bin/spark-class``, once Java is checked (else ClusterUnavailableError)."""
    from kamlib.testing._session import check_java

    try:
        check_java()
    except KamlibError as exc:
        raise ClusterUnavailableError(str(exc)) from None
    launcher = os.path.join(spark_home, "bin", "spark-class")
    if not os.path.exists(launcher):
        raise ClusterUnavailableError(f"no Spark launcher at {launcher}")
    return launcher


def _launch(
    cluster: StandaloneCluster,
    launcher: str,
    env: dict[str, str],
    name: str,
    main_class: str,
    *args: str,
) -> None:
    """Start one daemon on 127.0.0.1 in its own process group, logging to ``<root>/<name>.log``."""
    log = open(os.path.join(cluster.root, f"{name}.log"), "wb")  # noqa: SIM115 - closed by the child
    try:
        process = subprocess.Popen(
            [launcher, main_class, "--host", "127.0.0.1", *args],
            env=env,
            cwd=cluster.root,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: stop() ends the JVM tree
        )
    finally:
        log.close()
    cluster.processes.append(process)


def _wait_for_workers(cluster: StandaloneCluster, timeout: float) -> None:
    """Until every worker is ALIVE; ClusterUnavailableError (with log tails) on exit or timeout."""
    deadline = time.monotonic() + timeout
    while cluster.alive_workers() < cluster.workers:
        dead = [p for p in cluster.processes if p.poll() is not None]
        if dead or time.monotonic() > deadline:
            why = "a daemon exited" if dead else f"not ready after {timeout:.0f}s"
            raise ClusterUnavailableError(
                f"standalone cluster at {cluster.master_url}: {why}\n{cluster.logs()}"
            )
        time.sleep(0.5)
