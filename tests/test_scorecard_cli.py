"""The ``kamlib scorecard`` batch job: success paths, bad input (exit 2), atomic writes (exit 1)."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest

from kamlib import SchemaError
from kamlib.cli import EXIT_BAD_INPUT, EXIT_FAILURE, EXIT_OK, main
from kamlib.scorecard_cli import write_atomic

AS_OF = "2026-01-01"


def _siblings(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir() if p.name != path.name)


@pytest.fixture(scope="module")
def inputs(spark, tmp_path_factory):
    """Small synthetic inputs written as parquet and csv."""
    from kamlib.datasets import (
        synthetic_surveys,
        synthetic_targets,
        synthetic_transactions,
        synthetic_wallets,
    )

    root = tmp_path_factory.mktemp("scorecard_inputs")
    n = 300
    frames = {
        "transactions": synthetic_transactions(spark, n, seed=3),
        "surveys": synthetic_surveys(spark, n, seed=3),
        "wallets": synthetic_wallets(spark, n, seed=3),
        "targets": synthetic_targets(spark, n, seed=3),
    }
    paths: dict[str, dict[str, str]] = {"parquet": {}, "csv": {}}
    for name, frame in frames.items():
        frame = frame.coalesce(1)
        p = root / "parquet" / name
        frame.write.parquet(str(p))
        paths["parquet"][name] = str(p)
        c = root / "csv" / name
        frame.write.option("header", "true").csv(str(c))
        paths["csv"][name] = str(c)
    return paths


def _args(paths: dict[str, str], output: Path, *extra: str) -> list[str]:
    return [
        "scorecard",
        "--transactions",
        paths["transactions"],
        "--surveys",
        paths["surveys"],
        "--wallets",
        paths["wallets"],
        "--targets",
        paths["targets"],
        "--as-of",
        AS_OF,
        "--output",
        str(output),
        *extra,
    ]


@pytest.mark.parametrize(
    ("input_format", "output_format"),
    [pytest.param("parquet", "parquet", marks=pytest.mark.connect), ("csv", "csv")],
)
def test_success_writes_one_row_per_account(spark, inputs, tmp_path, input_format, output_format):
    out = tmp_path / "card"
    code = main(
        _args(
            inputs[input_format],
            out,
            "--input-format",
            input_format,
            "--format",
            output_format,
        )
    )
    assert code == EXIT_OK
    assert _siblings(out) == []  # no temporary directories left behind
    reader = spark.read.option("header", "true").option("inferSchema", "true")
    written = reader.format(output_format).load(str(out))
    assert written.count() == 300
    assert written.select("account_id").distinct().count() == 300
    for column in (
        "abc_tier",
        "clv",
        "p_alive",
        "nps",
        "share_of_wallet",
        "health_score",
        "target_attainment",
        "revenue_forecast_365d",
    ):
        assert column in written.columns


def test_existing_output_needs_overwrite(spark, inputs, tmp_path, capsys):
    out = tmp_path / "card"
    out.mkdir()
    (out / "keep.txt").write_text("old")
    code = main(_args(inputs["parquet"], out))
    assert code == EXIT_BAD_INPUT
    assert "--overwrite" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "old"


def test_overwrite_replaces_output(spark, inputs, tmp_path):
    out = tmp_path / "card"
    out.mkdir()
    (out / "stale.txt").write_text("old")
    assert main(_args(inputs["parquet"], out, "--overwrite")) == EXIT_OK
    assert not (out / "stale.txt").exists()
    assert spark.read.parquet(str(out)).count() == 300
    assert _siblings(out) == []


def test_missing_input_is_bad_input(tmp_path, capsys):
    code = main(
        [
            "scorecard",
            "--transactions",
            str(tmp_path / "nope"),
            "--as-of",
            AS_OF,
            "--output",
            str(tmp_path / "out"),
        ]
    )
    assert code == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "bad input" in err
    assert "does not exist" in err
    assert not (tmp_path / "out").exists()


def test_wrong_column_type_is_bad_input(spark, tmp_path, capsys):
    src = tmp_path / "tx"
    spark.createDataFrame(
        [("a", dt.date(2025, 1, 1), "12.5")], "account_id string, order_date date, amount string"
    ).write.parquet(str(src))
    out = tmp_path / "out"
    code = main(["scorecard", "--transactions", str(src), "--as-of", AS_OF, "--output", str(out)])
    assert code == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "'amount' must be numeric, found string" in err
    assert not out.exists()
    assert _siblings(out) == ["tx"]


def test_bad_as_of_is_bad_input(spark, inputs, tmp_path, capsys):
    out = tmp_path / "out"
    args = _args(inputs["parquet"], out)
    args[args.index("--as-of") + 1] = "not-a-date"
    assert main(args) == EXIT_BAD_INPUT
    assert "as-of" in capsys.readouterr().err
    assert not out.exists()


def test_runtime_failure_leaves_no_partial_output(spark, inputs, tmp_path, monkeypatch):
    """A failure while Spark writes: exit 1, no output, no temporary leftovers."""
    from pyspark.sql import functions as F

    import kamlib.scorecard as scorecard_module

    def failing(transactions, **kwargs):
        # Some rows write fine, then a task fails mid-write.
        return transactions.repartition(4).withColumn(
            "boom",
            F.when(F.col("amount") > 500, F.raise_error(F.lit("injected failure"))).otherwise(1),
        )

    monkeypatch.setattr(scorecard_module, "account_scorecard", failing)
    out = tmp_path / "card"
    code = main(_args(inputs["parquet"], out))
    assert code == EXIT_FAILURE
    assert not out.exists()
    assert _siblings(out) == []


def test_failure_during_rename_keeps_old_output(spark, tmp_path, monkeypatch):
    import kamlib.scorecard_cli as cli_module

    out = tmp_path / "card"
    out.mkdir()
    (out / "old.txt").write_text("old")
    df = spark.range(10)
    original = cli_module._FileSystem.rename
    calls = []

    def flaky(self, src, dst):
        calls.append((src, dst))
        if len(calls) == 2:  # the staging -> output rename
            raise OSError("disk went away")
        original(self, src, dst)

    monkeypatch.setattr(cli_module._FileSystem, "rename", flaky)
    with pytest.raises(OSError, match="disk went away"):
        write_atomic(df, str(out), overwrite=True)
    assert (out / "old.txt").read_text() == "old"
    assert _siblings(out) == []


def test_write_atomic_formats(spark, tmp_path):
    df = spark.createDataFrame([(1, "x"), (2, "y")], "id int, name string")
    write_atomic(df, str(tmp_path / "p"), fmt="parquet")
    write_atomic(df, str(tmp_path / "c"), fmt="csv")
    assert spark.read.parquet(str(tmp_path / "p")).count() == 2
    assert spark.read.option("header", "true").csv(str(tmp_path / "c")).count() == 2
    with pytest.raises(SchemaError, match="already exists"):
        write_atomic(df, str(tmp_path / "p"))
    assert sorted(os.listdir(tmp_path)) == ["c", "p"]


def test_write_atomic_delta(spark, tmp_path):
    pytest.importorskip("deltalake")
    from deltalake import DeltaTable

    df = spark.createDataFrame([(1, "x"), (2, "y")], "id int, name string")
    target = tmp_path / "d"
    write_atomic(df, str(target), fmt="delta")
    assert DeltaTable(str(target)).to_pyarrow_table().num_rows == 2
    write_atomic(df.limit(1), str(target), fmt="delta", overwrite=True)
    table = DeltaTable(str(target))
    assert table.to_pyarrow_table().num_rows == 1
    assert table.version() == 1  # a new Delta version, not a directory swap
    assert sorted(os.listdir(tmp_path)) == ["d"]
