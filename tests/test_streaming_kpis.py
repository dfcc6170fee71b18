"""kamlib.streaming.kpis: batch and streaming checks against the pure-Python reference."""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kamlib import SchemaError
from kamlib.schema import ORDER_EVENT
from kamlib.streaming import (
    deduplicate_events,
    flag_late,
    late_rows,
    progress_watermark,
    streaming_nps,
    windowed_revenue,
)
from kamlib.testing import assert_approx_rows, stack_cases
from tests.reference import streaming_kpis as ref

T0 = dt.datetime(2024, 3, 1)
ORDER_DDL = "event_id string, account_id string, event_time timestamp, amount double"
SURVEY_DDL = "event_id string, account_id string, event_time timestamp, score int"


def _orders(spark, rows):
    cols = ["event_id", "account_id", "event_time", "amount"]
    return spark.createDataFrame([tuple(r[c] for c in cols) for r in rows], ORDER_DDL)


@st.composite
def order_case(draw):
    n = draw(st.integers(0, 12))
    events = []
    for i in range(n):
        events.append(
            {
                "event_id": f"e{i}",
                "account_id": draw(st.sampled_from(["a", "b", "c"])),
                "event_time": T0 + dt.timedelta(seconds=draw(st.integers(0, 4 * 86400))),
                "amount": float(draw(st.integers(-50, 300))),
            }
        )
    dups = draw(st.lists(st.integers(0, max(n - 1, 0)), max_size=6)) if n else []
    rows = events + [dict(events[i]) for i in dups]
    return draw(st.permutations(rows))


@pytest.mark.connect
@settings(max_examples=5)
@given(
    cases=st.lists(order_case(), min_size=1, max_size=25),
    window=st.sampled_from([("1 day", 86400), ("6 hours", 21600), ("90 minutes", 5400)]),
)
def test_windowed_revenue_matches_reference_with_duplicates(spark, cases, window):
    text, seconds = window
    stacked = stack_cases(cases)
    for row in stacked:  # event ids are unique per case
        row["event_id"] = f"{row['case']}-{row['event_id']}"
    df = spark.createDataFrame(
        [
            (r["case"], r["event_id"], r["account_id"], r["event_time"], r["amount"])
            for r in stacked
        ],
        "case int, " + ORDER_DDL,
    )
    out = windowed_revenue(df, window=text, by="case")
    assert out.columns == [
        "case",
        "account_id",
        "window_start",
        "window_end",
        "revenue",
        "orders",
    ]
    actual = {(r.case, r.account_id, r.window_start): r.asDict() for r in out.collect()}
    expected = ref.windowed_revenue(ref.dedupe(stacked), seconds=seconds, by=["case"])
    assert_approx_rows(actual, expected, columns=["revenue", "orders", "window_end"])


def test_windowed_revenue_without_dedupe_counts_every_copy(spark):
    rows = [
        {"event_id": "x", "account_id": "a", "event_time": T0, "amount": 5.0},
        {"event_id": "x", "account_id": "a", "event_time": T0, "amount": 5.0},
    ]
    out = windowed_revenue(_orders(spark, rows), dedupe=False).first()
    assert (out.revenue, out.orders) == (10.0, 2)
    assert deduplicate_events(_orders(spark, rows)).count() == 1


@st.composite
def survey_case(draw):
    n = draw(st.integers(0, 15))
    return [
        {
            "event_id": f"s{i}",
            "account_id": draw(st.sampled_from(["a", "b"])),
            "event_time": T0 + dt.timedelta(seconds=draw(st.integers(0, 3 * 86400))),
            "score": draw(st.one_of(st.none(), st.integers(-1, 11))),
        }
        for i in range(n)
    ]


@pytest.mark.connect
@settings(max_examples=4)
@given(cases=st.lists(survey_case(), min_size=1, max_size=20))
def test_streaming_nps_batch_matches_reference(spark, cases):
    stacked = stack_cases(cases)
    for row in stacked:
        row["event_id"] = f"{row['case']}-{row['event_id']}"
    cols = ["case", "event_id", "account_id", "event_time", "score"]
    df = spark.createDataFrame(
        [tuple(r[c] for c in cols) for r in stacked], "case int, " + SURVEY_DDL
    )
    out = streaming_nps(df, by=["case", "account_id"])
    actual = {(r.case, r.account_id, r.window_start): r.asDict() for r in out.collect()}
    expected = ref.windowed_nps(stacked, by=["case", "account_id"])
    assert_approx_rows(
        actual, expected, columns=["n", "invalid", "promoters", "passives", "detractors", "nps"]
    )


def test_streaming_nps_fractional_scores_invalid(spark):
    df = spark.createDataFrame(
        [("1", T0, 9.5), ("2", T0, 9.0), ("3", T0, float("nan"))],
        "event_id string, event_time timestamp, score double",
    )
    row = streaming_nps(df, dedupe=False).first()
    assert (row.n, row.invalid, row.promoters, row.nps) == (1, 2, 1, 100.0)


def test_bad_input(spark):
    df = _orders(spark, [])
    with pytest.raises(SchemaError, match=r"windowed_revenue\(\): column 'amt'"):
        windowed_revenue(df, amount_col="amt")
    with pytest.raises(SchemaError, match="must be numeric, found string"):
        windowed_revenue(df, amount_col="account_id")
    with pytest.raises(SchemaError, match="must be timestamp, found double"):
        windowed_revenue(df, time_col="amount")
    with pytest.raises(SchemaError, match=r"window= must be a positive duration"):
        windowed_revenue(df, window="1 fortnight")
    with pytest.raises(SchemaError, match=r"watermark= must be a positive duration"):
        windowed_revenue(df, watermark="0 days")
    with pytest.raises(SchemaError, match="by= must not contain 'account_id'"):
        windowed_revenue(df, by="account_id")
    with pytest.raises(SchemaError, match="dedupe= must be True or False"):
        windowed_revenue(df, dedupe="yes")  # type: ignore[arg-type]
    with pytest.raises(SchemaError, match=r"column 'eid' \(argument event_id_col=\)"):
        windowed_revenue(df, event_id_col="eid")
    with pytest.raises(SchemaError, match=r"streaming_nps\(\): column 'score'"):
        streaming_nps(df)
    with pytest.raises(SchemaError, match=r"deduplicate_events\(\): column 'id'"):
        deduplicate_events(df, event_id_col="id")
    assert windowed_revenue(df, window=dt.timedelta(hours=2)).count() == 0


def test_progress_helpers():
    progress = {
        "eventTime": {"watermark": "2024-01-02T12:00:00.000Z"},
        "stateOperators": [
            {"operatorName": "stateStoreSave", "numRowsDroppedByWatermark": 1},
            {"operatorName": "dedupeWithinWatermark", "numRowsDroppedByWatermark": 2},
        ],
    }
    assert late_rows(progress) == 3
    assert late_rows(json.dumps(progress)) == 3
    assert late_rows({"stateOperators": []}) == 0
    assert progress_watermark(progress) == dt.datetime(2024, 1, 2, 12)
    assert progress_watermark({}) is None
    with pytest.raises(SchemaError, match="late_rows"):
        late_rows(42)


def test_flag_late(spark):
    df = spark.createDataFrame(
        [(T0,), (T0 + dt.timedelta(days=2),), (None,)], "event_time timestamp"
    )
    flags = [r.is_late for r in flag_late(df, watermark_time=T0 + dt.timedelta(days=1)).collect()]
    assert flags == [True, False, False]
    assert [r.is_late for r in flag_late(df, watermark_time=None).collect()] == [False] * 3


# --------------------------------------------------------------------------- streaming


def _land(directory: Path, batches):
    """Write one JSON-lines file per batch with increasing modification times."""
    directory.mkdir(parents=True, exist_ok=True)
    t = time.time() - 1000
    for i, rows in enumerate(batches):
        path = directory / f"part-{i:03d}.json"
        with path.open("w") as fh:
            for row in rows:
                fh.write(json.dumps({**row, "event_time": row["event_time"].isoformat()}) + "\n")
        os.utime(path, (t + 10 * i, t + 10 * i))


def _order(eid, account, when, amount):
    return {"event_id": eid, "account_id": account, "event_time": when, "amount": amount}


@pytest.mark.connect
def test_streaming_windowed_revenue_dedupe_and_late_rows(spark, tmp_path):
    day = dt.timedelta(days=1)
    hour = dt.timedelta(hours=1)
    batches = [
        [
            _order("a", "A", T0 + 10 * hour, 10.0),
            _order("b", "A", T0 + 11 * hour, 5.0),
            _order("c", "B", T0 + day + hour, 1.0),
        ],
        # duplicate of a; max event time -> day 2 12:00
        [_order("a", "A", T0 + 10 * hour, 10.0), _order("d", "A", T0 + 2 * day + 12 * hour, 7.0)],
        # e, f are older than the watermark of the batch before (T0 + 1h) -> on time
        [
            _order("e", "A", T0 + 5 * hour, 3.0),
            _order("f", "B", T0 + day + 3 * hour, 2.0),
            _order("g", "B", T0 + 4 * day, 1.0),
        ],
        # watermark of the previous batch: day 1 12:00 -> h is late, the replayed a is late
        [_order("h", "A", T0 + day + 2 * hour, 4.0), _order("a", "A", T0 + 10 * hour, 10.0)],
    ]
    _land(tmp_path / "in", batches)
    stream = (
        spark.readStream.schema(ORDER_EVENT)
        .option("maxFilesPerTrigger", 1)
        .json(str(tmp_path / "in"))
    )
    query = (
        windowed_revenue(stream, window="1 day", watermark="1 day")
        .writeStream.format("parquet")
        .option("path", str(tmp_path / "out"))
        .option("checkpointLocation", str(tmp_path / "chk"))
        .outputMode("append")
        .trigger(availableNow=True)
        .start()
    )
    query.awaitTermination()
    progress = query.recentProgress
    assert sum(late_rows(p) for p in progress) == 2
    assert progress_watermark(progress[-1]) == T0 + 3 * day
    out = spark.read.parquet(str(tmp_path / "out"))
    actual = {(r.account_id, r.window_start): r.asDict() for r in out.collect()}
    on_time = [r for b in batches for r in b if r["event_id"] != "h"]
    expected = ref.windowed_revenue(ref.dedupe(on_time))
    # windows closed by the final watermark (T0 + 3 days) only
    closed = {k: v for k, v in expected.items() if v["window_end"] <= T0 + 3 * day}
    assert_approx_rows(actual, closed, columns=["revenue", "orders", "window_end"])


def test_streaming_nps_per_account(spark, tmp_path):
    from kamlib.schema import SURVEY_EVENT

    day = dt.timedelta(days=1)
    scores = [("a", 10), ("a", 9), ("a", 3), ("b", 7), ("b", 0), ("a", 10)]
    first = [
        {
            "event_id": f"s{i}",
            "account_id": acc,
            "event_time": T0 + i * dt.timedelta(hours=1),
            "score": s,
        }
        for i, (acc, s) in enumerate(scores)
    ]
    first.append(dict(first[0]))  # duplicate delivery
    later = [{"event_id": "z", "account_id": "a", "event_time": T0 + 3 * day, "score": 8}]
    _land(tmp_path / "in", [first, later])
    stream = (
        spark.readStream.schema(SURVEY_EVENT)
        .option("maxFilesPerTrigger", 1)
        .json(str(tmp_path / "in"))
    )
    query = (
        streaming_nps(stream, by="account_id")
        .writeStream.format("parquet")
        .option("path", str(tmp_path / "out"))
        .option("checkpointLocation", str(tmp_path / "chk"))
        .outputMode("append")
        .trigger(availableNow=True)
        .start()
    )
    query.awaitTermination()
    out = spark.read.parquet(str(tmp_path / "out"))
    actual = {(r.account_id, r.window_start): r.asDict() for r in out.collect()}
    expected = ref.windowed_nps(ref.dedupe(first), by=["account_id"])
    assert_approx_rows(actual, expected, columns=["n", "promoters", "detractors", "nps"])
    assert actual[("a", T0)]["nps"] == 50.0
