"""kamlib.connectors.packages(): coordinates per Spark release, never drifting from jvm/pom.xml."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from kamlib import SchemaError
from kamlib.connectors import SUPPORTED_SPARK, packages

ROOT = Path(__file__).resolve().parents[1]
POM = ROOT / "jvm" / "pom.xml"
NS = {"m": "http://maven.apache.org/POM/4.0.0"}


def _pom_coordinates() -> tuple[str, list[str]]:
    """(spark version, group:artifact:version of every dependency) with properties resolved."""
    root = ET.parse(POM).getroot()
    props = {el.tag.split("}")[1]: (el.text or "").strip() for el in root.find("m:properties", NS)}

    def resolve(text: str) -> str:
        return re.sub(r"\$\{([^}]+)\}", lambda m: props[m.group(1)], text.strip())

    coords = []
    for dep in root.findall("m:dependencies/m:dependency", NS):
        parts = [
            resolve(dep.find(f"m:{k}", NS).text or "") for k in ("groupId", "artifactId", "version")
        ]
        coords.append(":".join(parts))
    return props["spark.version"], coords


def test_pinned_test_spark_matches_the_pom() -> None:
    spark_version, pom = _pom_coordinates()
    assert sorted(
        packages(kafka=True, delta=True, avro=True, s3=True, spark_version=spark_version)
    ) == sorted(pom)


def test_pom_spark_is_the_pinned_test_pyspark() -> None:
    spark_version, _ = _pom_coordinates()
    pins = re.findall(r'"pyspark(?:\[[^\]]*\])?==([^"]+)"', (ROOT / "pyproject.toml").read_text())
    assert pins, "pyproject pins the test pyspark with =="
    assert set(pins) == {spark_version}, pins


def test_running_spark_by_default() -> None:
    pyspark = pytest.importorskip("pyspark")
    assert packages(kafka=True) == [
        f"org.apache.spark:spark-sql-kafka-0-10_2.13:{pyspark.__version__}"
    ]


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        (
            "4.0.1",
            [
                "org.apache.spark:spark-sql-kafka-0-10_2.13:4.0.1",
                "io.delta:delta-spark_4.0_2.13:4.4.0",
                "org.apache.spark:spark-avro_2.13:4.0.1",
                "org.apache.hadoop:hadoop-aws:3.4.1",
            ],
        ),
        (
            "4.1.1",
            [
                "org.apache.spark:spark-sql-kafka-0-10_2.13:4.1.1",
                "io.delta:delta-spark_4.1_2.13:4.4.0",
                "org.apache.spark:spark-avro_2.13:4.1.1",
                "org.apache.hadoop:hadoop-aws:3.4.2",
            ],
        ),
        (
            "4.2.0",
            [
                "org.apache.spark:spark-sql-kafka-0-10_2.13:4.2.0",
                "io.delta:delta-spark_4.2_2.13:4.4.0",
                "org.apache.spark:spark-avro_2.13:4.2.0",
                "org.apache.hadoop:hadoop-aws:3.5.0",
            ],
        ),
    ],
)
def test_each_supported_release(version: str, expected: list[str]) -> None:
    assert packages(kafka=True, delta=True, avro=True, s3=True, spark_version=version) == expected


def test_only_what_is_asked() -> None:
    assert packages(spark_version="4.2.0") == []
    assert packages(s3=True, spark_version="4.2.0") == ["org.apache.hadoop:hadoop-aws:3.5.0"]
    assert packages(delta=True, kafka=True, spark_version="4.1.3") == [
        "org.apache.spark:spark-sql-kafka-0-10_2.13:4.1.3",
        "io.delta:delta-spark_4.1_2.13:4.4.0",
    ]


@pytest.mark.parametrize(
    "version", ["3.5.1", "4.3.0", "5.0.0", "4.2", "4.2.0-preview1", "latest", ""]
)
def test_unknown_spark_lists_supported(version: str) -> None:
    with pytest.raises(SchemaError) as info:
        packages(kafka=True, spark_version=version)
    message = str(info.value)
    assert "\n" not in message
    for minor in SUPPORTED_SPARK:
        assert f"{minor}.x" in message
    assert info.value.function == "packages"
    assert info.value.argument == "spark_version"


def test_bad_flag_types() -> None:
    with pytest.raises(SchemaError, match="kafka"):
        packages(kafka="yes", spark_version="4.2.0")  # type: ignore[arg-type]
    with pytest.raises(SchemaError, match="spark_version"):
        packages(kafka=True, spark_version=4.2)  # type: ignore[arg-type]


def test_imports_and_runs_without_pyspark(tmp_path: Path) -> None:
    """No pyspark: the module imports, an explicit version works, the default is a clear error."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        textwrap.dedent(
            """
            import sys

            class _NoPyspark:
                def find_spec(self, name, path=None, target=None):
                    if name == "pyspark" or name.startswith("pyspark."):
                        raise ModuleNotFoundError(f"No module named {name!r}", name=name)
                    return None

            sys.meta_path.insert(0, _NoPyspark())
            """
        )
    )
    script = textwrap.dedent(
        """
        from kamlib.connectors import packages
        from kamlib import SchemaError
        print(packages(s3=True, spark_version="4.2.0"))
        try:
            packages(s3=True)
        except SchemaError as exc:
            print("error:", exc)
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONSTARTUP"}
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(ROOT / "src")])
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "['org.apache.hadoop:hadoop-aws:3.5.0']" in out.stdout
    assert "error: packages(): pyspark is not importable; pass spark_version=" in out.stdout
