"""`import kamlib`, errors, model JSON loading and `kamlib --version/--help` need no pyspark.

Each check runs in a subprocess whose import system refuses ``pyspark`` (a ``sitecustomize``
meta-path finder), so an accidental top-level ``import pyspark`` anywhere on these paths fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import kamlib

SRC = Path(kamlib.__file__).resolve().parents[1]

_BLOCKER = textwrap.dedent(
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

_MODEL = {
    "kamlib_model": "BetaGeo",
    "format_version": 1,
    "kamlib_version": "0.1.0",
    "settings": {},
    "params": {"r": 0.24, "alpha": 4.41, "a": 0.79, "b": 2.43},
    "fit": {},
}


@pytest.fixture(scope="module")
def no_pyspark_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    site = tmp_path_factory.mktemp("no_pyspark")
    (site / "sitecustomize.py").write_text(_BLOCKER)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONSTARTUP"}
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(SRC)])
    return env


def _py(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=env, check=False, timeout=120
    )


def test_blocker_really_blocks_pyspark(no_pyspark_env):
    result = _py(no_pyspark_env, "-c", "import pyspark")
    assert result.returncode != 0
    assert "ModuleNotFoundError" in result.stderr


def test_import_kamlib_and_load_model_without_pyspark(no_pyspark_env):
    probe = textwrap.dedent(
        f"""
        import json, sys
        import kamlib, kamlib.errors, kamlib.cli
        from kamlib.clv import BetaGeo, model_from_json
        model = model_from_json({json.dumps(json.dumps(_MODEL))})
        print(json.dumps({{
            "version": kamlib.__version__,
            "type": type(model).__name__,
            "is_betageo": isinstance(model, BetaGeo),
            "r": model.params["r"],
            "pyspark_loaded": any(m == "pyspark" or m.startswith("pyspark.") for m in sys.modules),
            "schema_error": issubclass(kamlib.SchemaError, ValueError),
        }}))
        """
    )
    result = _py(no_pyspark_env, "-c", probe)
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout.strip().splitlines()[-1])
    assert info == {
        "version": kamlib.__version__,
        "type": "BetaGeo",
        "is_betageo": True,
        "r": 0.24,
        "pyspark_loaded": False,
        "schema_error": True,
    }


def test_cli_version_and_help_without_pyspark(no_pyspark_env):
    version = _py(no_pyspark_env, "-m", "kamlib", "--version")
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"kamlib {kamlib.__version__}"
    helped = _py(no_pyspark_env, "-m", "kamlib", "--help")
    assert helped.returncode == 0, helped.stderr
    assert "usage: kamlib" in helped.stdout
    for command in ("demo", "scorecard", "stream"):
        assert command in helped.stdout


def test_spark_command_without_pyspark_says_which_extra(no_pyspark_env):
    result = _py(no_pyspark_env, "-m", "kamlib", "demo")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "kamlib[spark]" in lines[0]
    assert "kamlib[connect]" in lines[0]


@pytest.mark.parametrize("module", ["kamlib.churn", "kamlib.schema"])
def test_spark_modules_raise_one_clear_import_error(no_pyspark_env, module):
    result = _py(no_pyspark_env, "-c", f"import {module}")
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: PySpark is not installed.")
    assert "kamlib[spark]" in last
    assert "kamlib[connect]" in last
