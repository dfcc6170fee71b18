"""The ``kamlib scorecard`` batch job: success paths, bad input (exit 2), Spark-only writes
(exit 1), catalog tables (Delta MERGE per day, parquet dynamic partition overwrite) and ``s3a://``."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest

from kamlib import SchemaError
from kamlib.cli import EXIT_BAD_INPUT, EXIT_FAILURE, EXIT_OK, main
from kamlib.cli.scorecard import write_output, write_table

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


def test_missing_input_is_bad_input(spark, tmp_path, capsys):
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


def _data_files(path: Path) -> list[str]:
    if not path.exists():
        return []
    return sorted(
        str(p.relative_to(path))
        for p in path.rglob("*")
        if p.is_file() and not p.name.startswith((".", "_"))
    )


def test_runtime_failure_leaves_no_data_files(spark, inputs, tmp_path, monkeypatch):
    """A task failing mid-write: exit 1, Spark's commit protocol publishes no data file."""
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
    assert _data_files(out) == []
    assert _siblings(out) == []


@pytest.mark.parametrize("where", ["same", "inside", "parent"])
def test_output_overlapping_an_input_is_refused(tmp_path, capsys, where):
    tx = tmp_path / "data" / "tx"
    tx.mkdir(parents=True)
    (tx / "keep.txt").write_text("input")
    output = {"same": tx, "inside": tx / "card", "parent": tmp_path / "data"}[where]
    argv = ["scorecard", "--transactions", str(tx), "--as-of", AS_OF, "--output", str(output)]
    assert main([*argv, "--overwrite"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "overlaps --transactions" in err
    assert (tx / "keep.txt").read_text() == "input"
    assert sorted(p.name for p in tx.iterdir()) == ["keep.txt"]


def test_overlap_check_compares_uris_not_files():
    from kamlib.cli.scorecard import _check_not_an_input

    _check_not_an_input("s3a://b/out", {"transactions": "s3a://b/tx"})
    _check_not_an_input("s3a://b/tx2", {"transactions": "s3a://b/tx"})
    with pytest.raises(SchemaError, match="overlaps"):
        _check_not_an_input("s3a://b/tx/card/", {"transactions": "s3a://b/./tx"})
    with pytest.raises(SchemaError, match="overlaps"):
        _check_not_an_input("file:///tmp/x/tx", {"surveys": "/tmp/x/tx/"})
    with pytest.raises(SchemaError) as info:
        _check_not_an_input("s3a://KEY:SECRET@b/tx", {"transactions": "s3a://KEY:SECRET@b/tx"})
    assert "SECRET" not in str(info.value)


def test_write_output_formats(spark, tmp_path):
    df = spark.createDataFrame([(1, "x"), (2, "y")], "id int, name string")
    write_output(df, str(tmp_path / "p"), fmt="parquet")
    write_output(df, str(tmp_path / "c"), fmt="csv")
    assert spark.read.parquet(str(tmp_path / "p")).count() == 2
    assert spark.read.option("header", "true").csv(str(tmp_path / "c")).count() == 2
    with pytest.raises(SchemaError, match="already exists"):
        write_output(df, str(tmp_path / "p"))
    write_output(df.limit(1), "file://" + str(tmp_path / "p"), overwrite=True)
    assert spark.read.parquet(str(tmp_path / "p")).count() == 1
    assert sorted(os.listdir(tmp_path)) == ["c", "p"]


def _delta_connector(spark) -> bool:
    from kamlib.streaming.sinks import delta_connector_available

    return bool(delta_connector_available(spark))


def test_write_output_delta_is_one_commit_per_run(spark, tmp_path):
    if not _delta_connector(spark):
        if os.environ.get("CI") and os.environ.get("KAMLIB_JARS"):
            pytest.fail("the Delta connector jars are in KAMLIB_JARS but not on the session")
        pytest.skip("needs the Spark Delta connector (KAMLIB_JARS)")
    df = spark.createDataFrame([(1, "x"), (2, "y")], "id int, name string")
    target = tmp_path / "d"
    write_output(df, str(target), fmt="delta")
    with pytest.raises(SchemaError, match="already exists"):
        write_output(df, str(target), fmt="delta")
    write_output(df.limit(1), str(target), fmt="delta", overwrite=True)
    history = spark.sql(f"DESCRIBE HISTORY delta.`{target}`").orderBy("version").collect()
    assert [row["version"] for row in history] == [0, 1]  # a new version, not a directory swap
    assert spark.read.format("delta").load(str(target)).count() == 1
    assert sorted(os.listdir(tmp_path)) == ["d"]


def test_write_output_delta_falls_back_to_deltalake(spark, tmp_path, monkeypatch):
    """Without the connector (simulated), the deltalake package writes the table."""
    pytest.importorskip("deltalake")
    from deltalake import DeltaTable

    import kamlib.cli.scorecard as cli_module

    monkeypatch.setattr(cli_module, "_spark_delta_missing", lambda exc: True)
    real_save = type(spark.range(1).write).save

    def no_delta(self, path=None, format=None, **kw):
        if getattr(self, "_kamlib_fmt", None) == "delta" or format == "delta":
            raise RuntimeError("[DATA_SOURCE_NOT_FOUND] Failed to find the data source: delta")
        return real_save(self, path, format=format, **kw)

    real_format = type(spark.range(1).write).format

    def tag_format(self, source):
        out = real_format(self, source)
        out._kamlib_fmt = source
        return out

    monkeypatch.setattr(type(spark.range(1).write), "format", tag_format)
    monkeypatch.setattr(type(spark.range(1).write), "save", no_delta)
    df = spark.createDataFrame([(1, "x"), (2, "y")], "id int, name string")
    target = tmp_path / "d"
    write_output(df, str(target), fmt="delta")
    assert DeltaTable(str(target)).to_pyarrow_table().num_rows == 2
    with pytest.raises(SchemaError, match="already exists"):
        write_output(df, str(target), fmt="delta")
    write_output(df.limit(1), str(target), fmt="delta", overwrite=True)
    table = DeltaTable(str(target))
    assert table.to_pyarrow_table().num_rows == 1
    assert table.version() == 1


# ---------------------------------------------------------------------------------------------
# catalog tables
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def database(spark, tmp_path):
    """A throw-away database whose tables live under tmp_path (not in ./spark-warehouse)."""
    name = f"kamlib_test_{os.getpid()}_{tmp_path.name.replace('-', '_')}"[:100]
    location = (tmp_path / "warehouse").as_uri()
    spark.sql(f"CREATE DATABASE {name} LOCATION '{location}'")
    yield name
    spark.sql(f"DROP DATABASE IF EXISTS {name} CASCADE")


def _day(spark, rows, as_of: str):
    from pyspark.sql import functions as F

    df = spark.createDataFrame(rows, "account_id string, revenue double")
    return df.withColumn("as_of", F.lit(as_of).cast("timestamp"))


def _table_rows(spark, name) -> dict[tuple[str, str], float]:
    return {
        (r["account_id"], r["as_of"].date().isoformat()): r["revenue"]
        for r in spark.table(name).collect()
    }


@pytest.mark.parametrize("fmt", ["delta", "parquet"])
def test_table_rerun_replaces_the_day_and_keeps_others(spark, database, fmt):
    import datetime as _dt

    if fmt == "delta" and not _delta_connector(spark):
        pytest.skip("needs the Spark Delta connector (KAMLIB_JARS)")
    name = f"{database}.card_{fmt}"
    d1, d2 = _dt.datetime(2026, 1, 1), _dt.datetime(2026, 1, 2)
    write_table(
        _day(spark, [("a", 1.0), ("b", 2.0), ("c", 3.0)], "2026-01-01"), name, as_of=d1, fmt=fmt
    )
    write_table(_day(spark, [("a", 5.0), ("b", 6.0)], "2026-01-02"), name, as_of=d2, fmt=fmt)
    # rerun of day 1: a updated, b unchanged, c no longer scored (gone), d new
    write_table(
        _day(spark, [("a", 10.0), ("b", 2.0), ("d", 4.0)], "2026-01-01"), name, as_of=d1, fmt=fmt
    )
    assert _table_rows(spark, name) == {
        ("a", "2026-01-01"): 10.0,
        ("b", "2026-01-01"): 2.0,
        ("d", "2026-01-01"): 4.0,
        ("a", "2026-01-02"): 5.0,
        ("b", "2026-01-02"): 6.0,
    }
    # the same rerun again: nothing changes (idempotent)
    write_table(
        _day(spark, [("a", 10.0), ("b", 2.0), ("d", 4.0)], "2026-01-01"), name, as_of=d1, fmt=fmt
    )
    assert spark.table(name).count() == 5
    if fmt == "delta":
        ops = [
            r["operation"]
            for r in spark.sql(f"DESCRIBE HISTORY {name}").orderBy("version").collect()
        ]
        assert ops[0].startswith("CREATE")
        assert set(ops[1:]) == {"MERGE"}
        assert len(ops) == 4  # one commit per run


def test_table_overwrite_replaces_everything(spark, database):
    import datetime as _dt

    name = f"{database}.card_over"
    d1, d2 = _dt.datetime(2026, 1, 1), _dt.datetime(2026, 1, 2)
    write_table(_day(spark, [("a", 1.0)], "2026-01-01"), name, as_of=d1, fmt="parquet")
    write_table(
        _day(spark, [("b", 2.0)], "2026-01-02"), name, as_of=d2, fmt="parquet", overwrite=True
    )
    assert _table_rows(spark, name) == {("b", "2026-01-02"): 2.0}


def test_table_sql_merge_path(spark, database, monkeypatch):
    """The SQL MERGE INTO path (used on Spark Connect) gives the same day replacement."""
    import datetime as _dt

    import kamlib.cli.scorecard as cli_module

    if not _delta_connector(spark):
        pytest.skip("needs the Spark Delta connector (KAMLIB_JARS)")
    monkeypatch.setattr(cli_module, "_is_connect", lambda session: True)
    name = f"{database}.card_sql"
    d1 = _dt.datetime(2026, 1, 1)
    write_table(_day(spark, [("a", 1.0), ("c", 3.0)], "2026-01-01"), name, as_of=d1)
    write_table(_day(spark, [("a", 2.0), ("b", 5.0)], "2026-01-01"), name, as_of=d1)
    assert _table_rows(spark, name) == {("a", "2026-01-01"): 2.0, ("b", "2026-01-01"): 5.0}


def test_table_errors(spark, database):
    import datetime as _dt

    d1 = _dt.datetime(2026, 1, 1)
    df = _day(spark, [("a", 1.0)], "2026-01-01")
    with pytest.raises(SchemaError, match="not a table name"):
        write_table(df, "bad name; DROP TABLE x", as_of=d1)
    name = f"{database}.card_kind"
    write_table(df, name, as_of=d1, fmt="parquet")
    with pytest.raises(SchemaError, match="is a parquet table; pass --format parquet"):
        write_table(df, name, as_of=d1, fmt="delta")


def _revenue_before(paths: dict[str, str], spark, as_of: str) -> dict[str, float]:
    """Pure-Python reference: accounts with a transaction before ``as_of`` and their revenue
    over the trailing 365 days (``as_of - 365d <= date < as_of``, the scorecard's default)."""
    cutoff = dt.datetime.fromisoformat(as_of)
    start = cutoff - dt.timedelta(days=365)
    totals: dict[str, float] = {}
    for row in spark.read.parquet(paths["transactions"]).collect():
        when = row["order_date"]
        when = when if isinstance(when, dt.datetime) else dt.datetime.combine(when, dt.time())
        if when < cutoff:
            amount = float(row["amount"]) if when >= start else 0.0
            totals[row["account_id"]] = totals.get(row["account_id"], 0.0) + amount
    return totals


def test_cli_output_table_delta_merge_per_day(spark, inputs, database):
    if not _delta_connector(spark):
        pytest.skip("needs the Spark Delta connector (KAMLIB_JARS)")
    name = f"{database}.scorecard"
    base = _args(inputs["parquet"], Path("unused"))
    at = base.index("--output")
    argv = [*base[:at], "--output-table", name, *base[at + 2 :], "--format", "delta"]
    assert main(argv) == EXIT_OK
    first = spark.table(name).count()
    assert main(argv) == EXIT_OK  # rerun of the same day
    assert spark.table(name).count() == first
    later = list(argv)
    later[later.index("--as-of") + 1] = "2026-02-01"
    assert main(later) == EXIT_OK
    card = spark.table(name)
    days = {
        r["as_of"].date().isoformat(): r["n"]
        for r in card.groupBy("as_of").count().withColumnRenamed("count", "n").collect()
    }
    expected = {
        day: _revenue_before(inputs["parquet"], spark, day) for day in ("2026-01-01", "2026-02-01")
    }
    assert days == {day: len(rev) for day, rev in expected.items()}
    for row in card.select("account_id", "as_of", "revenue").collect():
        want = expected[row["as_of"].date().isoformat()][row["account_id"]]
        assert row["revenue"] == pytest.approx(want, rel=1e-9)


def test_cli_bad_table_name_is_bad_input(capsys):
    argv = ["scorecard", "--transactions", "x", "--as-of", AS_OF, "--output-table", "a b"]
    assert main(argv) == EXIT_BAD_INPUT
    assert "not a table name" in capsys.readouterr().err


def test_cli_needs_exactly_one_output(capsys):
    with pytest.raises(SystemExit) as info:
        main(["scorecard", "--transactions", "x", "--as-of", AS_OF])
    assert info.value.code == EXIT_BAD_INPUT
    with pytest.raises(SystemExit):
        main(
            [
                "scorecard",
                "--transactions",
                "x",
                "--as-of",
                AS_OF,
                "--output",
                "o",
                "--output-table",
                "t",
            ]
        )


# ---------------------------------------------------------------------------------------------
# object store
# ---------------------------------------------------------------------------------------------
def test_cli_scorecard_to_s3a(spark, inputs, s3a):
    """Inputs and output on s3a:// (moto on loopback): parquet, then a Delta overwrite."""
    s3_inputs = {}
    for name, path in inputs["parquet"].items():
        uri = s3a.uri(f"in/{name}")
        spark.read.parquet(path).write.parquet(uri)
        s3_inputs[name] = uri
    out = s3a.uri("out/card")
    argv = _args(s3_inputs, Path("unused"))
    argv[argv.index("--output") + 1] = out
    assert main(argv) == EXIT_OK
    written = spark.read.parquet(out)
    assert written.count() == 300
    assert main(argv) == EXIT_BAD_INPUT  # exists, no --overwrite
    keys = s3a.keys("out/card/")
    assert "out/card/_SUCCESS" in keys
    assert not [k for k in keys if "_temporary" in k or "/." in k]
    if _delta_connector(spark):
        delta_out = s3a.uri("out/card_delta")
        argv[argv.index("--output") + 1] = delta_out
        assert main([*argv, "--format", "delta"]) == EXIT_OK
        assert main([*argv, "--format", "delta", "--overwrite"]) == EXIT_OK
        history = spark.sql(f"DESCRIBE HISTORY delta.`{delta_out}`").collect()
        assert len(history) == 2
        assert spark.read.format("delta").load(delta_out).count() == 300
