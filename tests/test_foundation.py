"""Foundation: errors, schema validation, optional pyspark import, CLI basics."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Literal

import pytest

import kamlib
from kamlib import (
    ConnectorUnavailableError,
    ConvergenceError,
    KamlibError,
    NotFittedError,
    SchemaError,
)
from kamlib._validation import (
    check_choice,
    check_fraction,
    normalize_by,
    parse_timestamp,
    require_columns,
)
from kamlib.cli import main


def test_error_hierarchy():
    assert issubclass(SchemaError, KamlibError)
    assert issubclass(SchemaError, ValueError)
    assert issubclass(ConvergenceError, RuntimeError)
    assert issubclass(NotFittedError, RuntimeError)
    assert issubclass(ConnectorUnavailableError, RuntimeError)
    assert isinstance(kamlib.__version__, str)


@pytest.fixture(scope="module")
def orders(spark):
    return spark.createDataFrame(
        [("a", dt.date(2024, 1, 1), 10.0, "x")],
        "account_id string, order_date date, amount double, note string",
    )


def test_missing_column_lists_columns(orders):
    with pytest.raises(SchemaError) as info:
        require_columns(orders, "nps", score_col=("score", "numeric"))
    msg = str(info.value)
    assert msg.startswith("nps(): column 'score' (argument score_col=) not found")
    assert "'account_id', 'order_date', 'amount', 'note'" in msg


def test_typo_did_you_mean(orders):
    with pytest.raises(SchemaError, match="Did you mean 'amount'"):
        require_columns(orders, "concentration", value_col=("amuont", "numeric"))
    with pytest.raises(SchemaError, match="Did you mean 'account_id'"):
        require_columns(orders, "concentration", account_col=("Account_ID", "any"))


def test_wrong_type(orders):
    with pytest.raises(SchemaError, match=r"nps\(\): column 'note' must be numeric, found string"):
        require_columns(orders, "nps", score_col=("note", "numeric"))
    with pytest.raises(SchemaError, match="must be date or timestamp, found double"):
        require_columns(orders, "rfm_summary", date_col=("amount", "temporal"))


def test_no_columns(spark):
    empty = spark.createDataFrame([], "struct<>")
    with pytest.raises(SchemaError, match="no columns at all"):
        require_columns(empty, "classify_accounts", value_col=("amount", "numeric"))


def test_column_argument_must_be_str(orders):
    with pytest.raises(SchemaError, match="score_col= must be a column name"):
        require_columns(orders, "nps", score_col=(3, "numeric"))  # type: ignore[arg-type]


def test_choice_lists_allowed_values():
    Period = Literal["month", "quarter", "year"]
    assert check_choice("revenue_bridge", "period", "month", Period) == "month"
    with pytest.raises(SchemaError, match="period= must be one of 'month', 'quarter', 'year'"):
        check_choice("revenue_bridge", "period", "week", Period)


def test_fraction_and_by():
    assert check_fraction("f", "top_share", 0.2) == 0.2
    with pytest.raises(SchemaError, match=r"top_share= must be in \(0.0, 1.0\]"):
        check_fraction("f", "top_share", 0)
    by = ("region", "tier")
    assert normalize_by("f", by) == ["region", "tier"]
    assert normalize_by("f", None) == []
    assert normalize_by("f", "region") == ["region"]


def test_parse_timestamp():
    assert parse_timestamp("f", "as_of", "2024-03-01") == dt.datetime(2024, 3, 1)
    assert parse_timestamp("f", "as_of", dt.date(2024, 3, 1)) == dt.datetime(2024, 3, 1)
    aware = dt.datetime(2024, 3, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert parse_timestamp("f", "as_of", aware) == dt.datetime(2024, 3, 1)
    with pytest.raises(SchemaError, match="as_of= must be a date"):
        parse_timestamp("f", "as_of", "yesterday")


def _run_python(code: str, extra_path: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if extra_path:
        env["PYTHONPATH"] = extra_path
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


def test_import_without_pyspark_names_extras():
    code = """
    import sys
    sys.modules['pyspark'] = None  # simulate an environment without pyspark
    import kamlib  # the package itself imports without pyspark
    try:
        import kamlib.churn  # a module that needs Spark names the extras
    except ImportError as exc:
        print(exc)
    """
    out = _run_python(code)
    assert "PySpark is not installed" in out.stdout
    assert "kamlib[spark]" in out.stdout
    assert "kamlib[connect]" in out.stdout


def test_import_with_old_pyspark_refused(tmp_path: Path):
    fake = tmp_path / "pyspark"
    fake.mkdir()
    (fake / "__init__.py").write_text("__version__ = '3.5.1'\n")
    code = """
    try:
        import kamlib.churn
    except ImportError as exc:
        print(exc)
    """
    src = Path(kamlib.__file__).resolve().parents[1]
    out = _run_python(code, extra_path=os.pathsep.join([str(tmp_path), str(src)]))
    assert "found PySpark 3.5.1, which is too old" in out.stdout


def test_cli_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert kamlib.__version__ in capsys.readouterr().out


def test_cli_help_lists_commands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "demo" in capsys.readouterr().out


def test_check_java_message(monkeypatch):
    from kamlib.testing import check_java

    monkeypatch.setenv("JAVA_HOME", "/nonexistent")
    with pytest.raises(KamlibError, match=r"Java was not found\. kamlib needs Java 17"):
        check_java()


@pytest.mark.parametrize(
    ("master", "partitions"),
    [("local", "4"), ("local[2]", "8"), ("local[3, 2]", "12"), ("spark://h:7077", None)],
)
def test_local_sessions_size_shuffles_to_their_cores(master, partitions):
    from kamlib._spark import _local_shuffle_partitions

    got = _local_shuffle_partitions(master).get("spark.sql.shuffle.partitions")
    assert got == partitions
    assert _local_shuffle_partitions("local[*]")["spark.sql.shuffle.partitions"] == str(
        4 * (os.cpu_count() or 2)
    )
