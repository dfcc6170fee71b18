"""kamlib.streaming.enrich: stream-static and per-micro-batch enrichment."""

from __future__ import annotations

import datetime as dt
import json
import pickle
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kamlib import SchemaError
from kamlib.schema import ORDER_EVENT
from kamlib.streaming import (
    enrich_with_accounts,
    refreshing_reference,
    unknown_accounts,
    windowed_revenue,
)
from kamlib.streaming.enrich import ReadTable
from tests.reference import streaming_kpis as ref

T0 = dt.datetime(2024, 3, 1)
EVENT_DDL = "event_id string, account_id string, event_time timestamp, amount double"
ACCOUNT_DDL = "account_id string, abc_tier string, is_key_account boolean, manager string"


@pytest.mark.connect
@settings(max_examples=3)
@given(
    events=st.lists(
        st.tuples(st.sampled_from(["a", "b", "c", "x"]), st.integers(0, 100)), max_size=40
    ),
    known=st.sets(st.sampled_from(["a", "b", "c", "d"])),
    how=st.sampled_from(["left", "inner"]),
)
def test_enrich_matches_reference(spark, events, known, how):
    rows = [
        {
            "event_id": f"e{i}",
            "account_id": acc,
            "event_time": T0 + dt.timedelta(hours=h),
            "amount": float(h),
        }
        for i, (acc, h) in enumerate(events)
    ]
    accounts = [
        {"account_id": a, "abc_tier": a.upper(), "is_key_account": a == "a", "manager": f"m{a}"}
        for a in sorted(known)
    ]
    ev = spark.createDataFrame([tuple(r.values()) for r in rows], EVENT_DDL)
    ac = spark.createDataFrame([tuple(a.values()) for a in accounts], ACCOUNT_DDL)
    out = enrich_with_accounts(ev, ac, columns=["abc_tier", "is_key_account"], how=how)
    assert out.columns == [*ev.columns, "abc_tier", "is_key_account", "is_known_account"]
    actual = sorted((r.asDict() for r in out.collect()), key=lambda r: r["event_id"])
    expected = sorted(
        ref.enrich(rows, accounts, columns=["abc_tier", "is_key_account"], how=how),
        key=lambda r: r["event_id"],
    )
    assert actual == expected


@pytest.mark.connect
def test_cut_kpis_by_tier_and_count_unknown(spark):
    ev = spark.createDataFrame(
        [
            ("1", "a", T0, 10.0),
            ("2", "b", T0, 5.0),
            ("3", "zz", T0, 1.0),
            ("4", "zz", T0, 2.0),
        ],
        EVENT_DDL,
    )
    ac = spark.createDataFrame([("a", "A", True, "ann"), ("b", "B", False, "bob")], ACCOUNT_DDL)
    enriched = enrich_with_accounts(ev, ac)
    kpis = windowed_revenue(enriched, by=["abc_tier"])
    got = {(r.abc_tier, r.account_id): r.revenue for r in kpis.collect()}
    assert got == {("A", "a"): 10.0, ("B", "b"): 5.0, (None, "zz"): 3.0}
    assert [tuple(r) for r in unknown_accounts(enriched).collect()] == [("zz", 2)]


def test_bad_input(spark):
    ev = spark.createDataFrame([], EVENT_DDL)
    ac = spark.createDataFrame([], ACCOUNT_DDL)
    with pytest.raises(SchemaError, match="how= must be one of 'left', 'inner', found 'outer'"):
        enrich_with_accounts(ev, ac, how="outer")  # type: ignore[arg-type]
    with pytest.raises(SchemaError, match=r"enrich_with_accounts\(\): column 'region'"):
        enrich_with_accounts(ev, ac, columns=["region"])
    with pytest.raises(SchemaError, match="already exist in the events"):
        enrich_with_accounts(ev, ev.select("account_id", "amount"))
    with pytest.raises(SchemaError, match="must not contain the account column"):
        enrich_with_accounts(ev, ac, columns=["account_id"])
    with pytest.raises(SchemaError, match=r"column 'acct'"):
        enrich_with_accounts(ev, ac, account_col="acct")
    with pytest.raises(SchemaError, match="sink= must be a callable"):
        refreshing_reference("/tmp/x", "not a function")  # type: ignore[arg-type]
    stream = spark.readStream.format("rate").load().withColumnRenamed("value", "account_id")
    with pytest.raises(SchemaError, match="must be a static"):
        enrich_with_accounts(ev, stream)


@dataclass(frozen=True)
class AppendParquet:
    """Test sink: append each micro-batch to a parquet directory."""

    path: str

    def __call__(self, batch, batch_id):
        batch.write.mode("append").parquet(self.path)


def test_refresher_pickles():
    refresher = refreshing_reference("/ref", AppendParquet("/out"), columns="abc_tier")
    clone = pickle.loads(pickle.dumps(refresher))
    assert clone == refresher
    assert clone.load == ReadTable("/ref")
    assert clone.columns == ("abc_tier",)


def _land(directory: Path, name: str, rows):
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".{name}.tmp"
    with tmp.open("w") as fh:
        for eid, acc in rows:
            fh.write(
                json.dumps(
                    {"event_id": eid, "account_id": acc, "event_time": T0.isoformat(), "amount": 1}
                )
                + "\n"
            )
    tmp.rename(directory / name)


@pytest.mark.connect
def test_streaming_reference_refreshed_per_micro_batch(spark, tmp_path):
    ref_path = str(tmp_path / "ref")
    spark.createDataFrame([("a", "A", True, "ann")], ACCOUNT_DDL).write.parquet(ref_path)
    _land(tmp_path / "in", "f0.json", [("1", "a"), ("2", "b")])
    stream = spark.readStream.schema(ORDER_EVENT).json(str(tmp_path / "in"))
    query = (
        stream.writeStream.foreachBatch(
            refreshing_reference(
                ref_path, AppendParquet(str(tmp_path / "out")), columns=["abc_tier"]
            )
        )
        .option("checkpointLocation", str(tmp_path / "chk"))
        .start()
    )
    try:
        query.processAllAvailable()
        # the nightly job rewrites the reference: b is now known, a changed tier
        spark.createDataFrame(
            [("a", "B", True, "ann"), ("b", "C", False, "bob")], ACCOUNT_DDL
        ).write.mode("overwrite").parquet(ref_path)
        _land(tmp_path / "in", "f1.json", [("3", "a"), ("4", "b"), ("5", "q")])
        query.processAllAvailable()
    finally:
        query.stop()
    out = spark.read.parquet(str(tmp_path / "out"))
    got = {r.event_id: (r.abc_tier, r.is_known_account) for r in out.collect()}
    assert got == {
        "1": ("A", True),
        "2": (None, False),
        "3": ("B", True),
        "4": ("C", True),
        "5": (None, False),
    }
