"""kamlib.streaming.sessions: sessionization and engagement against the pure-Python reference."""

from __future__ import annotations

import datetime as dt
import json
import os
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kamlib import SchemaError
from kamlib.schema import USAGE_EVENT
from kamlib.streaming import session_engagement, sessionize
from kamlib.testing import assert_approx_rows, stack_cases
from tests.reference import streaming_kpis as ref

T0 = dt.datetime(2024, 3, 1)
USAGE_DDL = "event_id string, account_id string, user_id string, event_time timestamp"


@st.composite
def usage_case(draw):
    n = draw(st.integers(0, 15))
    events = [
        {
            "event_id": f"e{i}",
            "account_id": draw(st.sampled_from(["a", "b"])),
            "user_id": draw(st.sampled_from(["u1", "u2", "u3"])),
            # minute resolution around the gap (30 min) and day boundaries
            "event_time": T0 + dt.timedelta(minutes=draw(st.integers(0, 3 * 24 * 60)) // 5 * 5),
        }
        for i in range(n)
    ]
    dups = draw(st.lists(st.integers(0, max(n - 1, 0)), max_size=4)) if n else []
    return events + [dict(events[i]) for i in dups]


@pytest.mark.connect
@settings(max_examples=3)
@given(cases=st.lists(usage_case(), min_size=1, max_size=20))
def test_sessions_and_engagement_match_reference(spark, cases):
    stacked = stack_cases(cases)
    for row in stacked:  # one account namespace per case
        row["account_id"] = f"{row['case']}:{row['account_id']}"
        row["event_id"] = f"{row['case']}:{row['event_id']}"
    cols = ["event_id", "account_id", "user_id", "event_time"]
    df = spark.createDataFrame([tuple(r[c] for c in cols) for r in stacked], USAGE_DDL)
    sessions = sessionize(df, gap="30 minutes").cache()
    expected = ref.sessionize(ref.dedupe(stacked), gap_seconds=1800)
    actual = {(r.account_id, r.user_id, r.session_start): r.asDict() for r in sessions.collect()}
    assert_approx_rows(actual, expected, columns=["session_end", "duration_seconds", "events"])
    for key, row in actual.items():
        assert row["session_window"]["end"] == expected[key]["closes_at"]
    engagement = session_engagement(sessions, window="1 day")
    got = {(r.account_id, r.window_start): r.asDict() for r in engagement.collect()}
    assert_approx_rows(got, ref.engagement(expected))
    sessions.unpersist()


def test_gap_boundary_is_inclusive(spark):
    gap = dt.timedelta(minutes=30)
    df = spark.createDataFrame(
        [
            ("1", "a", "u", T0),
            ("2", "a", "u", T0 + gap),  # exactly the gap: same session
            ("3", "a", "u", T0 + 2 * gap + dt.timedelta(seconds=1)),  # new session
        ],
        USAGE_DDL,
    )
    got = sorted((r.events, r.duration_seconds) for r in sessionize(df, gap=gap).collect())
    assert got == [(1, 0.0), (2, 1800.0)]


def test_bad_input(spark):
    df = spark.createDataFrame([], USAGE_DDL)
    with pytest.raises(SchemaError, match=r"sessionize\(\): column 'uid'"):
        sessionize(df, user_col="uid")
    with pytest.raises(SchemaError, match="gap= must be a positive duration"):
        sessionize(df, gap="soon")
    with pytest.raises(SchemaError, match="must be timestamp, found string"):
        sessionize(df, time_col="user_id")
    with pytest.raises(SchemaError, match="must differ"):
        sessionize(df, user_col="account_id")
    with pytest.raises(SchemaError, match=r"session_engagement\(\): column 'session_window'"):
        session_engagement(df)
    bad = df.selectExpr(
        "account_id",
        "user_id",
        "event_time as session_window",
        "1.0 as duration_seconds",
        "1 as events",
    )
    with pytest.raises(SchemaError, match="must be a session window struct"):
        session_engagement(bad)


@pytest.mark.connect
def test_streaming_sessions_chained_with_engagement(spark, tmp_path):
    m = dt.timedelta(minutes=1)
    batches = [
        [
            ("1", "A", "u1", T0 + 600 * m),
            ("2", "A", "u1", T0 + 610 * m),
            ("3", "A", "u2", T0 + 605 * m),
        ],
        [("4", "A", "u1", T0 + 660 * m), ("2", "A", "u1", T0 + 610 * m)],
        [("5", "A", "u1", T0 + 36 * 60 * m)],
        [("6", "B", "u3", T0 + 84 * 60 * m)],
    ]
    src = tmp_path / "in"
    src.mkdir()
    t = time.time() - 1000
    for i, rows in enumerate(batches):
        path = src / f"part-{i}.json"
        with path.open("w") as fh:
            for eid, acc, user, when in rows:
                fh.write(
                    json.dumps(
                        {
                            "event_id": eid,
                            "account_id": acc,
                            "user_id": user,
                            "event_time": when.isoformat(),
                        }
                    )
                    + "\n"
                )
        os.utime(path, (t + 10 * i, t + 10 * i))
    stream = spark.readStream.schema(USAGE_EVENT).option("maxFilesPerTrigger", 1).json(str(src))
    out = session_engagement(sessionize(stream, gap="30 minutes", watermark="1 hour"))
    query = (
        out.writeStream.format("parquet")
        .option("path", str(tmp_path / "out"))
        .option("checkpointLocation", str(tmp_path / "chk"))
        .outputMode("append")
        .trigger(availableNow=True)
        .start()
    )
    query.awaitTermination()
    got = {
        (r.account_id, r.window_start): r.asDict()
        for r in spark.read.parquet(str(tmp_path / "out")).collect()
    }
    rows = [
        dict(zip(["event_id", "account_id", "user_id", "event_time"], r, strict=True))
        for b in batches
        for r in b
    ]
    expected = ref.engagement(ref.sessionize(ref.dedupe(rows), gap_seconds=1800))
    # final watermark: B's event (day 3 12:00) - 1 hour -> windows ending by then are closed
    closed = {k: v for k, v in expected.items() if k[1] + dt.timedelta(days=1) <= T0 + 83 * 60 * m}
    assert set(closed) == {("A", T0), ("A", T0 + dt.timedelta(days=1))}
    assert_approx_rows(got, closed)
