"""kamlib.streaming.alerts: rules against the pure-Python reference, batch and foreachBatch."""

from __future__ import annotations

import datetime as dt
import json
import os
import pickle
import time
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kamlib import SchemaError
from kamlib.schema import ORDER_EVENT
from kamlib.streaming import (
    DetractorBurstRule,
    DropRule,
    SpikeRule,
    alerts_each_batch,
    evaluate_alerts,
    new_alerts,
    windowed_revenue,
)
from kamlib.streaming.enrich import ReadTable
from kamlib.testing import assert_approx_rows
from tests.reference import streaming_kpis as ref

T0 = dt.datetime(2024, 3, 1)
DAY = dt.timedelta(days=1)
KPI_DDL = "account_id string, window_start timestamp, window_end timestamp, revenue double"


def _kpis(spark, table):
    return spark.createDataFrame(
        [(a, w, w + DAY, v) for (a, w), v in sorted(table.items())], KPI_DDL
    )


kpi_tables = st.dictionaries(
    st.tuples(
        st.sampled_from([f"{c}{i}" for c in "ab" for i in range(6)]),
        st.integers(0, 12).map(lambda d: T0 + d * DAY),
    ),
    st.sampled_from([0.0, 1.0, 2.0, 4.0, 10.0, 11.0, 30.0]),
    max_size=80,
)


@pytest.mark.connect
@settings(max_examples=3)
@given(table=kpi_tables, n=st.integers(1, 4), fill=st.booleans())
def test_drop_and_spike_match_reference(spark, table, n, fill):
    rules = [
        DropRule("revenue", ratio=0.5, baseline_windows=n, min_baseline=2.0),
        SpikeRule("revenue", ratio=2.0, baseline_windows=n, min_history=1),
    ]
    out = evaluate_alerts(_kpis(spark, table), rules=rules, fill_missing=fill)
    assert out.columns[:3] == ["account_id", "window_start", "window_end"]
    rows = out.collect()
    for rule, kind, args in [
        ("revenue_drop", "drop", {"ratio": 0.5, "min_baseline": 2.0}),
        ("revenue_spike", "spike", {"ratio": 2.0, "min_baseline": 0.0, "min_history": 1}),
    ]:
        got = {(r.account_id, r.window_start): r.asDict() for r in rows if r.rule == rule}
        if fill:
            expected = ref.ratio_alerts(table, kind=kind, baseline_windows=n, step=DAY, **args)
        else:  # without filling, the history is the account's own rows only
            expected = {}
            for account in {a for a, _ in table}:
                sub = {(a, w): v for (a, w), v in table.items() if a == account}
                series = dict(enumerate(sorted(sub.items(), key=lambda kv: kv[0][1])))
                idx = {(0, i): v for i, (_, v) in series.items()}
                fired = ref.ratio_alerts(
                    {("x", T0 + i * DAY): v for (_, i), v in idx.items()},
                    kind=kind,
                    baseline_windows=n,
                    step=DAY,
                    **args,
                )
                for (_, w), cell in fired.items():
                    expected[series[(w - T0).days][0]] = cell
        assert_approx_rows(got, expected, columns=["value", "baseline"])


def test_detractor_burst_and_messages(spark):
    nps = spark.createDataFrame(
        [
            ("a", T0, T0 + DAY, 6, 3),
            ("b", T0, T0 + DAY, 4, 3),
            ("c", T0, T0 + DAY, 2, 2),
            ("d", T0, T0 + DAY, 0, 0),
        ],
        "account_id string, window_start timestamp, window_end timestamp, n long, detractors long",
    )
    out = evaluate_alerts(nps, rules=[DetractorBurstRule(min_detractors=3, share=0.5)])
    rows = {r.account_id: r for r in out.collect()}
    expected = ref.detractor_alerts(
        [r.asDict() for r in nps.collect()], min_detractors=3, share=0.5
    )
    assert set(rows) == {a for a, _ in expected} == {"a", "b"}
    assert rows["b"].message == "3 detractors out of 4 responses (75%)"
    assert (rows["a"].severity, rows["a"].value, rows["a"].baseline) == ("critical", 3.0, 0.5)


def test_drop_to_zero_is_detected_only_with_fill(spark):
    table = {("a", T0 + i * DAY): 10.0 for i in range(4)} | {("b", T0 + 5 * DAY): 1.0}
    kpis = _kpis(spark, table)
    rule = DropRule("revenue", baseline_windows=3)
    filled = {
        (r.account_id, r.window_start.day) for r in evaluate_alerts(kpis, rules=rule).collect()
    }
    assert filled == {("a", 5), ("a", 6)}
    assert evaluate_alerts(kpis, rules=rule, fill_missing=False).count() == 0


@pytest.mark.parametrize("account", ["_s", "_v", "_b", "_step"])
def test_account_column_named_like_an_old_temporary(spark, account):
    table = {("a", T0 + i * DAY): 10.0 for i in range(4)} | {("b", T0 + 5 * DAY): 1.0}
    kpis = _kpis(spark, table).withColumnRenamed("account_id", account)
    rule = DropRule("revenue", baseline_windows=3)
    alerts = evaluate_alerts(kpis, rules=rule, account_col=account).collect()
    assert {(r[account], r.window_start.day) for r in alerts} == {("a", 5), ("a", 6)}


def test_bad_input(spark):
    kpis = _kpis(spark, {})
    with pytest.raises(SchemaError, match=r"evaluate_alerts\(\): column 'sessions'"):
        evaluate_alerts(kpis, rules=[DropRule("sessions")])
    with pytest.raises(SchemaError, match=r"DropRule.ratio= must be in \(0.0, 1.0\)"):
        evaluate_alerts(kpis, rules=[DropRule("revenue", ratio=1.5)])
    with pytest.raises(SchemaError, match=r"SpikeRule\.ratio= must be > 1"):
        evaluate_alerts(kpis, rules=[SpikeRule("revenue", ratio=0.9)])
    with pytest.raises(SchemaError) as info:
        evaluate_alerts(kpis, rules=[DropRule("revenue", baseline_windows=0)])
    assert (info.value.argument, info.value.expected, info.value.found) == (
        "DropRule.baseline_windows",
        "an integer >= 1",
        "0",
    )
    with pytest.raises(SchemaError) as info:
        evaluate_alerts(kpis, rules=[SpikeRule("revenue", min_history=0)])
    assert info.value.argument == "SpikeRule.min_history"
    with pytest.raises(SchemaError) as info:
        evaluate_alerts(kpis, rules=[DetractorBurstRule(min_detractors=True)])
    assert info.value.argument == "DetractorBurstRule.min_detractors"
    with pytest.raises(SchemaError, match="found str"):
        alerts_each_batch("revenue", lambda df, batch_id: None)  # type: ignore[arg-type]
    with pytest.raises(SchemaError, match="at least one rule"):
        evaluate_alerts(kpis, rules=[])
    with pytest.raises(SchemaError, match="must hold DropRule"):
        evaluate_alerts(kpis, rules=["revenue"])  # type: ignore[list-item]
    with pytest.raises(SchemaError, match=r"column 'detractors'"):
        evaluate_alerts(kpis, rules=[DetractorBurstRule()])
    with pytest.raises(SchemaError, match="must be timestamp"):
        evaluate_alerts(kpis, rules=[DropRule("revenue")], window_col="account_id")
    with pytest.raises(SchemaError, match="sink= must be a callable"):
        alerts_each_batch([DropRule("revenue")], None)  # type: ignore[arg-type]


@pytest.mark.connect
def test_new_alerts_only_for_batch_windows(spark):
    history = _kpis(spark, {("a", T0 + i * DAY): 10.0 for i in range(3)})
    batch = _kpis(spark, {("a", T0 + 3 * DAY): 1.0, ("b", T0 + 3 * DAY): 5.0})
    rules = DropRule("revenue", baseline_windows=3)
    got = [
        (r.account_id, r.window_start) for r in new_alerts(history, batch, rules=rules).collect()
    ]
    assert got == [("a", T0 + 3 * DAY)]
    # the history may already contain the batch (replayed batch): no double counting
    again = new_alerts(history.unionByName(batch), batch, rules=rules).collect()
    assert [(r.value, r.baseline) for r in again] == [(1.0, 10.0)]
    # an old window re-sent in a batch does not re-alert other windows
    assert new_alerts(history, history.limit(0), rules=rules).count() == 0


@dataclass(frozen=True)
class AppendParquet:
    path: str

    def __call__(self, batch, batch_id):
        batch.write.mode("append").parquet(self.path)


def test_evaluator_pickles():
    evaluator = alerts_each_batch(
        SpikeRule("orders"), AppendParquet("/a"), load_history="/h", kpi_sink=AppendParquet("/k")
    )
    assert pickle.loads(pickle.dumps(evaluator)) == evaluator
    assert evaluator.load_history == ReadTable("/h")


@pytest.mark.connect
def test_streaming_alerts_each_batch(spark, tmp_path):
    """Daily revenue from a stream; alerts per micro-batch against the KPI table written so far."""
    src = tmp_path / "in"
    src.mkdir()
    t = time.time() - 1000
    # account a: 10/day for days 0-3, then 1 on day 4; account b appears on day 4
    batches = [
        [("a", d, 10.0) for d in range(0, 2)],
        [("a", d, 10.0) for d in range(2, 4)],
        [("a", 4, 1.0), ("b", 4, 3.0)],
        [("b", 7, 1.0)],  # advances the watermark past day 4
    ]
    for i, rows in enumerate(batches):
        path = src / f"part-{i}.json"
        with path.open("w") as fh:
            for j, (acc, day, amount) in enumerate(rows):
                when = T0 + day * DAY + dt.timedelta(hours=12)
                fh.write(
                    json.dumps(
                        {
                            "event_id": f"{i}-{j}",
                            "account_id": acc,
                            "event_time": when.isoformat(),
                            "amount": amount,
                        }
                    )
                    + "\n"
                )
        os.utime(path, (t + 10 * i, t + 10 * i))
    kpi_path = str(tmp_path / "kpis")
    stream = spark.readStream.schema(ORDER_EVENT).option("maxFilesPerTrigger", 1).json(str(src))
    evaluator = alerts_each_batch(
        [DropRule("revenue", baseline_windows=3)],
        AppendParquet(str(tmp_path / "alerts")),
        load_history=kpi_path,
        kpi_sink=AppendParquet(kpi_path),
    )
    query = (
        windowed_revenue(stream, watermark="1 day")
        .writeStream.foreachBatch(evaluator)
        .option("checkpointLocation", str(tmp_path / "chk"))
        .outputMode("append")
        .trigger(availableNow=True)
        .start()
    )
    query.awaitTermination()
    kpis = spark.read.parquet(kpi_path)
    assert kpis.count() == 6  # a: days 0-4, b: day 4 (day 7 still open)
    alerts = spark.read.parquet(str(tmp_path / "alerts")).collect()
    assert [(r.account_id, r.window_start, r.value, r.baseline) for r in alerts] == [
        ("a", T0 + 4 * DAY, 1.0, 10.0)
    ]
