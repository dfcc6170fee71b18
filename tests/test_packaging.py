"""Packaging as users get it: wheel + sdist in a local PEP 503 index, installed into a fresh venv
with only the ``connect`` extra, then used from that thin Spark Connect client against a server
started from the full pyspark.
"""

from __future__ import annotations

import html
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import textwrap
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import kamlib

pytestmark = pytest.mark.packaging

ROOT = Path(__file__).resolve().parents[1]


def _run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]
    if result.returncode != 0:
        raise AssertionError(
            f"command failed ({result.returncode}): {' '.join(cmd)}\n"
            f"stdout:\n{result.stdout[-4000:]}\nstderr:\n{result.stderr[-4000:]}"
        )
    return result


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(ROOT)])
    return out


@pytest.fixture(scope="module")
def simple_index(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A PEP 503 'simple' repository directory holding the built wheel and sdist."""
    index = tmp_path_factory.mktemp("index")
    project = index / "kamlib"
    project.mkdir()
    links = []
    for file in sorted(dist.iterdir()):
        shutil.copy(file, project / file.name)
        links.append(f'<a href="{html.escape(file.name)}">{html.escape(file.name)}</a><br/>')
    (project / "index.html").write_text(
        "<!DOCTYPE html><html><body>" + "".join(links) + "</body></html>"
    )
    (index / "index.html").write_text(
        '<!DOCTYPE html><html><body><a href="kamlib/">kamlib</a></body></html>'
    )
    return index


def test_wheel_and_sdist_contents(dist: Path):
    wheels = list(dist.glob("kamlib-*.whl"))
    sdists = list(dist.glob("kamlib-*.tar.gz"))
    assert len(wheels) == 1
    assert len(sdists) == 1
    assert wheels[0].name.startswith(f"kamlib-{kamlib.__version__}-")
    names = zipfile.ZipFile(wheels[0]).namelist()
    assert "kamlib/py.typed" in names
    assert "kamlib/datasets/data/CDNOW_sample.txt" in names
    assert "kamlib/datasets/data/cdnow_customers_summary_with_transactions.csv" in names
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(wheels[0]).read(metadata).decode()
    requires = [line for line in text.splitlines() if line.startswith("Requires-Dist:")]
    hard = [r for r in requires if "extra ==" not in r]
    assert not any("pyspark" in r for r in hard), "pyspark must never be a hard dependency"
    spark_extra = [r for r in requires if r.startswith("Requires-Dist: pyspark") and "'spark'" in r]
    assert spark_extra
    assert ">=4.0" in spark_extra[0]
    assert "<5" in spark_extra[0]
    assert any("pyspark-client" in r and "connect" in r for r in requires)
    with tarfile.open(sdists[0]) as tar:
        members = tar.getnames()
    assert any(m.endswith("src/kamlib/py.typed") for m in members)
    assert any(m.endswith("src/kamlib/datasets/data/CDNOW_sample.txt") for m in members)


def _default_index_url() -> str:
    """The index pip uses by default (read from pip itself, not hard-coded)."""
    configured = os.environ.get("PIP_INDEX_URL")
    if configured:
        return configured
    from pip._internal.models.index import PyPI

    return str(PyPI.simple_url)


@pytest.fixture(scope="module")
def thin_venv(simple_index: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with kamlib[connect] from the local index: no JVM, Connect-only pyspark."""
    venv = tmp_path_factory.mktemp("thin") / "venv"
    _run([sys.executable, "-m", "venv", str(venv)])
    py = venv / "bin" / "python"
    _run(
        [
            str(py), "-m", "pip", "install", "--quiet",
            "--index-url", simple_index.as_uri() + "/",
            "--extra-index-url", _default_index_url(),
            f"kamlib[connect]=={kamlib.__version__}",
        ]
    )  # fmt: skip
    return venv


def test_install_from_local_index(thin_venv: Path, simple_index: Path):
    py = str(thin_venv / "bin" / "python")
    probe = textwrap.dedent(
        """
        import json, pathlib, importlib.metadata as md, kamlib, kamlib.datasets
        root = pathlib.Path(kamlib.__file__).parent
        dist = md.distribution("kamlib")
        print(json.dumps({
            "version": kamlib.__version__,
            "typed": (root / "py.typed").exists(),
            "data": (root / "datasets" / "data" / "CDNOW_sample.txt").exists(),
            "installed_from_wheel": dist.read_text("WHEEL") is not None,
            "has_pyspark_client": any(d.metadata["Name"] == "pyspark-client"
                                      for d in md.distributions()),
            "has_full_pyspark": any(d.metadata["Name"] == "pyspark"
                                    for d in md.distributions()),
        }))
        """
    )
    info = json.loads(_run([py, "-c", probe]).stdout.strip().splitlines()[-1])
    assert info == {
        "version": kamlib.__version__,
        "typed": True,
        "data": True,
        "installed_from_wheel": True,
        "has_pyspark_client": True,
        "has_full_pyspark": False,
    }
    out = _run([str(thin_venv / "bin" / "kamlib"), "--version"]).stdout
    assert out.strip() == f"kamlib {kamlib.__version__}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def connect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A Spark Connect server started from the full pyspark, in its own process."""
    port = _free_port()
    script = tmp_path_factory.mktemp("server") / "server.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import time
            from pyspark.sql import SparkSession
            spark = (SparkSession.builder.master("local[2]")
                     .config("spark.plugins", "org.apache.spark.sql.connect.SparkConnectPlugin")
                     .config("spark.connect.grpc.binding.port", "{port}")
                     .config("spark.sql.shuffle.partitions", "2")
                     .config("spark.ui.enabled", "false")
                     .config("spark.sql.session.timeZone", "UTC")
                     .getOrCreate())
            print("READY", flush=True)
            while True:
                time.sleep(1)
            """
        )
    )
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable}
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        deadline = time.monotonic() + 120
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if "READY" in line:
                break
            if proc.poll() is not None:
                raise AssertionError("the Spark Connect server process exited early")
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.5)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_thin_connect_client_runs_transformations(thin_venv: Path, connect_server: int, tmp_path):
    client = tmp_path / "client.py"
    client.write_text(
        textwrap.dedent(
            f"""
            import json
            from pyspark.sql import SparkSession
            import kamlib
            from kamlib.datasets import load_cdnow
            from kamlib.classify import classify_accounts
            from kamlib.clv import BetaGeo, rfm_summary

            spark = SparkSession.builder.remote("sc://localhost:{connect_server}").getOrCreate()
            tx = load_cdnow(spark)
            tiers = classify_accounts(tx, value_col="amount")
            summary = rfm_summary(tx, observation_end="1998-06-30")
            scored = BetaGeo().fit(summary).expected_purchases(summary, 30.0)
            expected = scored.where("expected_purchases > 0").count()
            by_tier = tiers.groupBy("abc_tier").count().collect()
            counts = {{r["abc_tier"]: r["count"] for r in by_tier}}
            try:
                classify_accounts(tx, value_col="amuont")
                error = None
            except kamlib.SchemaError as exc:
                error = str(exc)
            print(json.dumps({{"rows": tiers.count(), "key": tiers.filter("is_key_account").count(),
                              "tiers": counts, "error": error, "expected": expected}}))
            spark.stop()
            """
        )
    )
    out = _run([str(thin_venv / "bin" / "python"), str(client)], cwd=str(tmp_path))
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["rows"] == 2357
    assert result["key"] == 472  # ceil(0.2 * 2357)
    assert set(result["tiers"]) == {"A", "B", "C"}
    assert "Did you mean 'amount'" in result["error"]
    assert result["expected"] == 2357  # a model column scored by the thin client's Arrow UDF


@pytest.fixture(scope="module")
def bare_venv(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the plain wheel (numpy, scipy, pyarrow pulled from PyPI): no pyspark."""
    venv = tmp_path_factory.mktemp("bare") / "venv"
    _run([sys.executable, "-m", "venv", str(venv)])
    wheel = next(dist.glob("kamlib-*.whl"))
    _run(
        [
            str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
            "--index-url", _default_index_url(), str(wheel),
        ]
    )  # fmt: skip
    return venv


def test_bare_install_without_pyspark(bare_venv: Path):
    py = str(bare_venv / "bin" / "python")
    probe = (
        "import importlib.util, kamlib; "
        "print(kamlib.__version__, importlib.util.find_spec('pyspark') is None)"
    )
    assert _run([py, "-c", probe]).stdout.split() == [kamlib.__version__, "True"]
    out = _run([str(bare_venv / "bin" / "kamlib"), "--version"]).stdout
    assert out.strip() == f"kamlib {kamlib.__version__}"
    helped = _run([str(bare_venv / "bin" / "kamlib"), "--help"]).stdout
    assert "usage: kamlib" in helped
    failed = subprocess.run(
        [str(bare_venv / "bin" / "kamlib"), "demo"], capture_output=True, text=True, check=False
    )
    assert failed.returncode == 1
    assert "Traceback" not in failed.stderr
    assert "kamlib[spark]" in failed.stderr
