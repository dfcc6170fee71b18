"""decode_json: every record in exactly one output, readable errors, typed round trip."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kamlib.errors import SchemaError
from kamlib.schema import ORDER_EVENT, SURVEY_EVENT
from kamlib.streaming import Decoded, decode_json
from tests.reference.streaming import decode_order

RECORD_SCHEMA = "value string, topic string, partition int, offset long, timestamp timestamp"
T0 = dt.datetime(2024, 1, 1)


def _records(spark: Any, lines: list[str | None], topic: str = "t") -> Any:
    rows = [(line, topic, 0, i, T0) for i, line in enumerate(lines)]
    return spark.createDataFrame(rows, RECORD_SCHEMA)


def _order(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "event_id": "e1",
        "account_id": "a1",
        "event_time": "2024-03-01T12:30:00",
        "amount": 12.5,
        "currency": "EUR",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not _DROP}


_DROP = object()


@pytest.mark.connect
def test_errors_are_readable_and_outputs_partition_input(spark: Any) -> None:
    lines = [
        json.dumps(_order()),
        "not json at all",
        json.dumps(_order(event_id=_DROP)),
        json.dumps(_order(amount="twelve")),
        json.dumps(_order(event_id=None)),
        "[1, 2, 3]",
        json.dumps(_order(event_time="yesterday")),
        json.dumps(_order(currency=None)),  # nullable field: null is fine
        json.dumps(_order(currency=_DROP, event_id="e9")),
        None,
        "",
    ]
    valid, quarantine = decode_json(_records(spark, lines), ORDER_EVENT)
    assert valid.columns == [*ORDER_EVENT.fieldNames(), "topic", "partition", "offset", "timestamp"]
    assert quarantine.columns == ["raw", "error", "topic", "partition", "offset", "timestamp"]
    errors = {r.offset: r.error for r in quarantine.collect()}
    assert errors == {
        1: "invalid JSON",
        2: "missing required field 'event_id'",
        3: "wrong type for 'amount'",
        4: "missing required field 'event_id'",
        5: "invalid JSON",
        6: "wrong type for 'event_time'",
        9: "invalid JSON",
        10: "invalid JSON",
    }
    got = {r.offset: r for r in valid.collect()}
    assert sorted(got) == [0, 7, 8]
    assert got[0].event_time == dt.datetime(2024, 3, 1, 12, 30)
    assert got[0].amount == 12.5
    assert got[0].currency == "EUR"
    assert got[7].currency is None
    assert got[8].event_id == "e9"


@pytest.mark.connect
def test_a_record_is_exactly_one_json_object(spark: Any) -> None:
    one = json.dumps(_order())
    lines = [
        one + " trailing",
        one + one,
        one + "\n" + one,
        one + ", " + one,
        one + "}",
        one[:-1] + ', "amount": 99}',
        one[:-1] + ', "amount": "x"}',
        "  " + one + " \r\n",
        "{}",
    ]
    valid, quarantine = decode_json(_records(spark, lines), ORDER_EVENT)
    several = "not exactly one JSON object (trailing data or several objects)"
    errors = {r.offset: r.error for r in quarantine.collect()}
    assert {k: v for k, v in errors.items() if k < 5} == dict.fromkeys(range(5), several)
    assert errors[5] == "duplicate key 'amount'"
    assert "duplicate key 'amount'" in errors[6]
    assert errors[8].startswith("missing required field")
    assert [r.offset for r in valid.collect()] == [7]


def test_survey_score_range_and_integer_type(spark: Any) -> None:
    head = {"event_id": "s", "account_id": "a", "event_time": "2024-05-01T10:00:00"}
    lines = [
        json.dumps({**head, "score": 9}),
        json.dumps({**head, "score": 11}),
        json.dumps({**head, "score": -1}),
        json.dumps({**head, "score": 7.5}),
        json.dumps({**head, "score": "7"}),
        json.dumps({**head, "score": 0}),
        json.dumps({**head, "score": 10}),
    ]
    valid, quarantine = decode_json(_records(spark, lines, "surveys"), SURVEY_EVENT)
    assert sorted(r.score for r in valid.collect()) == [0, 9, 10]
    errors = {r.offset: r.error for r in quarantine.collect()}
    assert errors == {
        1: "out of range: score 11 (expected 0..10)",
        2: "out of range: score -1 (expected 0..10)",
        3: "wrong type for 'score'",
        4: "wrong type for 'score'",
    }
    # ranges={} switches the default check off
    valid_all, _ = decode_json(_records(spark, lines[:3], "surveys"), SURVEY_EVENT, ranges={})
    assert valid_all.count() == 3


def test_binary_values_and_extra_columns_are_kept(spark: Any) -> None:
    df = spark.createDataFrame(
        [
            (b"k", json.dumps(_order()).encode(), "t", 3, 7, T0, "f.jsonl"),
            (None, b"{", "t", 3, 8, T0, "f.jsonl"),
        ],
        "key binary, value binary, topic string, partition int, offset long, "
        "timestamp timestamp, file string",
    )
    decoded = decode_json(df, ORDER_EVENT)
    assert isinstance(decoded, Decoded)
    assert decoded.valid.columns[-1] == "file"
    assert "key" not in decoded.valid.columns
    q = decoded.quarantine.collect()
    assert [(r.raw, r.error, r.partition, r.offset, r.file) for r in q] == [
        ("{", "invalid JSON", 3, 8, "f.jsonl")
    ]


def test_schema_errors_before_any_job(spark: Any) -> None:
    df = spark.createDataFrame([("x",)], "value string")
    with pytest.raises(SchemaError, match=r"decode_json.*'topic'"):
        decode_json(df, ORDER_EVENT)
    bad = spark.createDataFrame(
        [(1, "t", 0, 0, T0)], RECORD_SCHEMA.replace("value string", "value int")
    )
    with pytest.raises(SchemaError, match="string or binary"):
        decode_json(bad, ORDER_EVENT)
    with pytest.raises(SchemaError, match="StructType"):
        decode_json(_records(spark, ["{}"]), "event_id string")  # type: ignore[arg-type]
    with pytest.raises(SchemaError, match="ranges="):
        decode_json(_records(spark, ["{}"]), ORDER_EVENT, ranges={"nope": (0, 1)})


# ------------------------------------------------------------------ property test (hypothesis)

_text = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789 -_", min_size=1, max_size=8)
_times = st.datetimes(min_value=dt.datetime(2020, 1, 1), max_value=dt.datetime(2030, 1, 1)).map(
    lambda t: t.replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%S")
)
_amounts = st.one_of(
    st.integers(min_value=-(10**6), max_value=10**6),
    st.floats(min_value=-1e9, max_value=1e9, allow_nan=False, allow_infinity=False),
)


@st.composite
def order_lines(draw: st.DrawFn) -> str:
    """A JSON-lines order record, valid or corrupted in one of several ways."""
    obj: dict[str, Any] = {
        "event_id": draw(st.one_of(_text, st.integers(0, 10**6))),
        "account_id": draw(_text),
        "event_time": draw(_times),
        "amount": draw(_amounts),
    }
    if draw(st.booleans()):
        obj["currency"] = draw(st.sampled_from(["EUR", "USD", None]))
    kind = draw(
        st.sampled_from(
            [
                "valid",
                "valid",
                "valid",
                "drop",
                "null",
                "bad_amount",
                "bad_time",
                "truncate",
                "garbage",
                "array",
                "nan",
                "trailing",
                "two",
                "dupkey",
            ]
        )
    )
    field = draw(st.sampled_from(["event_id", "account_id", "event_time", "amount"]))
    if kind == "drop":
        del obj[field]
    elif kind == "null":
        obj[field] = None
    elif kind == "bad_amount":
        obj["amount"] = draw(st.sampled_from(["12.5", "abc", True, [1]]))
    elif kind == "bad_time":
        obj["event_time"] = draw(st.sampled_from(["soon", "2024-13-45T99:00:00", ""]))
    elif kind == "nan":
        obj["amount"] = draw(st.sampled_from(["NaN", "Infinity"]))
    text = json.dumps(obj)
    if kind == "truncate":
        text = text[: draw(st.integers(1, len(text) - 1))]
    elif kind == "garbage":
        text = draw(st.sampled_from(["", "hello", "{", "}", '{"a":', "null", "42"]))
    elif kind == "array":
        text = json.dumps([obj])
    elif kind == "trailing":
        text += draw(st.sampled_from([" x", "}", "]", ",1", "\n{}", " null"]))
    elif kind == "two":
        text += draw(st.sampled_from(["", " ", "\n", ","])) + json.dumps(obj)
    elif kind == "dupkey":
        text = text[:-1] + ", " + json.dumps({field: obj.get(field, 1)})[1:]
    return text


@settings(max_examples=5)
@given(lines=st.lists(order_lines(), min_size=20, max_size=80))
def test_property_every_line_in_exactly_one_output(spark: Any, lines: list[str]) -> None:
    valid, quarantine = decode_json(_records(spark, lines), ORDER_EVENT)
    got_valid = {r.offset: r.asDict() for r in valid.collect()}
    got_bad = {r.offset: r.error for r in quarantine.collect()}
    assert not set(got_valid) & set(got_bad)
    assert set(got_valid) | set(got_bad) == set(range(len(lines)))
    for i, line in enumerate(lines):
        expected, error = decode_order(line)
        if expected is None:
            assert i in got_bad, (line, got_valid.get(i))
            assert got_bad[i], line
            if error == "invalid JSON":
                assert got_bad[i] == "invalid JSON", line
            elif error == "not one object":
                assert got_bad[i].startswith("not exactly one JSON object"), line
            elif error == "duplicate":
                assert "duplicate key" in got_bad[i], line
            elif error == "missing":
                assert got_bad[i].startswith("missing required field"), line
        else:
            assert i in got_valid, (line, got_bad.get(i))
            row = got_valid[i]
            for name, value in expected.items():
                assert row[name] == value, (line, name, row[name], value)
