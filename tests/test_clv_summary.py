"""kamlib.clv.summary: rfm_summary and calibration_holdout against lifetimes' definitions."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyspark.sql import functions as F

from kamlib import SchemaError
from kamlib.clv import calibration_holdout, rfm_summary
from kamlib.datasets import load_cdnow, load_cdnow_summary
from kamlib.testing import assert_approx_rows, rows_by_key, stack_cases, to_dataframe
from kamlib.testing.strategies import TRANSACTION_SCHEMA, transactions
from tests.reference.clv_summary import calibration_holdout_reference, rfm_summary_reference

SUMMARY_COLS = ["frequency", "recency", "T", "monetary_value", "n_excluded"]
HOLDOUT_COLS = [*SUMMARY_COLS, "frequency_holdout", "monetary_value_holdout", "duration_holdout"]
D = dt.date


def _prefixed(cases):
    """Stack cases into one log; account ids are prefixed by their case number."""
    rows = stack_cases(cases)
    return [{**r, "account_id": f"{r.pop('case')}:{r['account_id']}"} for r in rows]


def _tx(spark, rows):
    return to_dataframe(spark, rows, TRANSACTION_SCHEMA)


@pytest.mark.connect
def test_rfm_summary_by_hand(spark):
    tx = _tx(
        spark,
        [
            {"account_id": "a", "order_date": D(2024, 1, 1), "amount": 10.0},
            {"account_id": "a", "order_date": D(2024, 1, 1), "amount": 5.0},
            {"account_id": "a", "order_date": D(2024, 1, 4), "amount": 20.0},
            {"account_id": "a", "order_date": D(2024, 1, 11), "amount": -4.0},
            {"account_id": "a", "order_date": D(2024, 1, 11), "amount": 30.0},
            {"account_id": "a", "order_date": D(2024, 2, 1), "amount": 99.0},  # after the end
            {"account_id": "b", "order_date": D(2024, 1, 9), "amount": 7.0},
        ],
    )
    got = rows_by_key(rfm_summary(tx, observation_end=D(2024, 1, 15)), "account_id")
    expected = {
        "a": {"frequency": 2.0, "recency": 10.0, "T": 14.0, "monetary_value": 23.0},
        "b": {"frequency": 0.0, "recency": 0.0, "T": 6.0, "monetary_value": 0.0},
    }
    assert_approx_rows(got, expected)
    weekly = rows_by_key(rfm_summary(tx, observation_end="2024-01-15", freq="W"), "account_id")
    assert weekly["a"]["recency"] == pytest.approx(10 / 7)
    assert weekly["a"]["T"] == pytest.approx(2.0)
    # default observation end: the latest date (2024-02-01), so a's last purchase counts
    default = rows_by_key(rfm_summary(tx), "account_id")
    assert default["a"]["frequency"] == 3.0
    assert default["b"]["T"] == float((D(2024, 2, 1) - D(2024, 1, 9)).days)


@settings(max_examples=6)
@given(
    cases=st.lists(transactions(max_rows=25, allow_null_amounts=True), min_size=1, max_size=40),
    freq=st.sampled_from(["D", "W"]),
    end_offset=st.one_of(st.none(), st.integers(min_value=0, max_value=420)),
)
def test_rfm_summary_matches_reference(spark, cases, freq, end_offset):
    rows = _prefixed(cases)
    end = None if end_offset is None else D(2024, 1, 1) + dt.timedelta(days=end_offset)
    expected = rfm_summary_reference(rows, observation_end=end, freq=freq)
    if not rows:
        return
    got = rows_by_key(rfm_summary(_tx(spark, rows), observation_end=end, freq=freq), "account_id")
    assert_approx_rows(got, expected, columns=SUMMARY_COLS, rtol=1e-12, atol=1e-9)


@settings(max_examples=5)
@given(
    cases=st.lists(transactions(max_rows=25, allow_null_amounts=True), min_size=1, max_size=40),
    freq=st.sampled_from(["D", "W"]),
    cal_offset=st.integers(min_value=0, max_value=300),
    extra=st.one_of(st.none(), st.integers(min_value=0, max_value=200)),
    monetary=st.sampled_from(["rows", "days"]),
)
def test_calibration_holdout_matches_reference(spark, cases, freq, cal_offset, extra, monetary):
    rows = _prefixed(cases)
    if not any(r["order_date"] is not None for r in rows):
        return
    cal = D(2024, 1, 1) + dt.timedelta(days=cal_offset)
    end = None if extra is None else cal + dt.timedelta(days=extra)
    expected = calibration_holdout_reference(
        rows, calibration_end=cal, observation_end=end, freq=freq, holdout_monetary=monetary
    )
    result = calibration_holdout(
        _tx(spark, rows),
        calibration_end=cal,
        observation_end=end,
        freq=freq,
        holdout_monetary=monetary,
    )
    assert result.columns == ["account_id", *HOLDOUT_COLS]
    got = rows_by_key(result, "account_id")
    assert_approx_rows(got, expected, columns=HOLDOUT_COLS, rtol=1e-12, atol=1e-9)


@pytest.mark.connect
def test_cdnow_reproduces_published_summary(spark):
    """The key correctness check: the published 39-week CDNOW summary, to its 2 decimals."""
    ours = rfm_summary(load_cdnow(spark), observation_end="1997-09-30", freq="W")
    published = load_cdnow_summary(spark)
    # load_cdnow numbers customers like the published summary (the sample's second column).
    joined = ours.join(
        published.select(
            "account_id",
            F.col("frequency").alias("x"),
            F.col("recency").alias("t_x"),
            F.col("T").alias("T_pub"),
            F.col("monetary_value").alias("zbar"),
        ),
        on="account_id",
        how="full_outer",
    )
    stats = joined.agg(
        F.count("*").alias("n"),
        F.count("account_id").alias("ours"),
        F.count("x").alias("published"),
        F.max(F.abs(F.col("frequency") - F.col("x"))).alias("dx"),
        F.max(F.abs(F.col("recency") - F.col("t_x"))).alias("dtx"),
        F.max(F.abs(F.col("T") - F.col("T_pub"))).alias("dT"),
        F.max(F.abs(F.col("monetary_value") - F.col("zbar"))).alias("dz"),
        F.sum("n_excluded").alias("excluded"),
    ).first()
    assert stats["n"] == stats["ours"] == stats["published"] == 2357
    assert stats["dx"] == 0.0
    assert stats["dtx"] <= 0.005 + 1e-9  # published t_x and T are rounded to 0.01
    assert stats["dT"] <= 0.005 + 1e-9
    assert stats["dz"] <= 0.005 + 1e-9  # zbar is published with 2 decimals
    assert stats["excluded"] == 0
    first = rows_by_key(ours.where(F.col("account_id") == "1"), "account_id")
    (row,) = first.values()
    assert (row["frequency"], round(row["recency"], 2), round(row["T"], 2)) == (2.0, 30.43, 38.86)


def test_cdnow_calibration_holdout(spark):
    result = calibration_holdout(
        load_cdnow(spark), calibration_end="1997-09-30", observation_end="1998-06-30", freq="W"
    )
    stats = result.agg(
        F.count("*").alias("n"),
        F.min("duration_holdout").alias("dmin"),
        F.max("duration_holdout").alias("dmax"),
        F.sum("frequency_holdout").alias("holdout_purchases"),
    ).first()
    assert stats["n"] == 2357
    assert stats["dmin"] == stats["dmax"] == pytest.approx(273 / 7)  # 39 weeks
    assert stats["holdout_purchases"] > 0


def test_timestamps_count_by_date(spark):
    ts = dt.datetime
    tx = spark.createDataFrame(
        [
            ("a", ts(2024, 3, 1, 23, 59), 10.0),
            ("a", ts(2024, 3, 1, 0, 1), 5.0),
            ("a", ts(2024, 3, 3, 8, 0), 4.0),
            ("a", ts(2024, 3, 5, 18, 30), 1.0),
            ("a", ts(2024, 3, 6, 0, 0), 1.0),  # after the end
        ],
        "account_id string, order_date timestamp, amount double",
    )
    got = rows_by_key(rfm_summary(tx, observation_end=ts(2024, 3, 5, 9, 0)), "account_id")
    assert_approx_rows(
        got,
        {"a": {"frequency": 2.0, "recency": 4.0, "T": 4.0, "monetary_value": 2.5}},
    )


def test_invalid_values_are_excluded_and_counted(spark):
    tx = spark.createDataFrame(
        [
            ("a", D(2024, 1, 1), 10.0),
            ("a", D(2024, 1, 2), None),
            ("a", D(2024, 1, 3), float("nan")),
            ("a", None, 3.0),
            ("a", D(2024, 1, 5), -6.0),
            ("b", D(2024, 1, 4), None),
            (None, D(2024, 1, 4), 1.0),
        ],
        "account_id string, order_date date, amount double",
    )
    got = rows_by_key(rfm_summary(tx), "account_id")
    # b has no valid purchase; the null-account row is counted in a row of its own
    assert set(got) == {"a", None}
    assert_approx_rows(
        got,
        {
            "a": {
                "frequency": 1.0,
                "recency": 4.0,
                "T": 4.0,
                "monetary_value": -6.0,
                "n_excluded": 3,
            },
            None: {
                "frequency": None,
                "recency": None,
                "T": None,
                "monetary_value": None,
                "n_excluded": 1,
            },
        },
    )


def test_integer_amounts_and_other_column_names(spark):
    tx = spark.createDataFrame(
        [(1, D(2024, 1, 1), 3), (1, D(2024, 1, 3), 4), (1, D(2024, 1, 6), 6)],
        "cust long, day date, value int",
    )
    out = rfm_summary(tx, account_col="cust", date_col="day", value_col="value")
    assert out.columns == ["cust", *SUMMARY_COLS]
    assert_approx_rows(
        rows_by_key(out, "cust"),
        {1: {"frequency": 2.0, "recency": 5.0, "T": 5.0, "monetary_value": 5.0}},
    )


@pytest.mark.connect
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"account_col": "customer"}, "column 'customer'"),
        ({"date_col": "account_id"}, "column 'account_id' must be date or timestamp, found string"),
        ({"value_col": "account_id"}, "column 'account_id' must be numeric, found string"),
        ({"freq": "M"}, "freq= must be one of 'D', 'W', found 'M'"),
        ({"observation_end": "not a date"}, "observation_end= must be a date"),
        ({"observation_end": 20240101}, "observation_end= must be a date"),
    ],
)
def test_bad_input_rfm_summary(spark, kwargs, message):
    tx = _tx(spark, [])
    with pytest.raises(SchemaError, match=message.replace("(", r"\(")) as info:
        rfm_summary(tx, **kwargs)
    assert "rfm_summary()" in str(info.value)


def test_bad_input_calibration_holdout(spark):
    tx = _tx(spark, [])
    with pytest.raises(SchemaError, match="observation_end= must not be before calibration_end"):
        calibration_holdout(tx, calibration_end="2024-02-01", observation_end="2024-01-01")
    with pytest.raises(SchemaError, match="calibration_end= must be a date"):
        calibration_holdout(tx, calibration_end=None)  # type: ignore[arg-type]
    with pytest.raises(SchemaError, match="freq="):
        calibration_holdout(tx, calibration_end="2024-02-01", freq="d")  # type: ignore[arg-type]
    renamed = tx.withColumnRenamed("account_id", "frequency")
    with pytest.raises(SchemaError, match="must not be one of the output columns"):
        rfm_summary(renamed, account_col="frequency")


def test_empty_input_gives_empty_summary(spark):
    assert rfm_summary(_tx(spark, [])).count() == 0
