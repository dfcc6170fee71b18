"""kamlib.churn: point-in-time features, labels and training frames."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyspark.sql import functions as F

from kamlib import SchemaError
from kamlib.churn import (
    assemble_features,
    churn_features,
    churn_labels,
    feature_columns,
    training_frame,
    usage_features,
    vector_slots,
)
from kamlib.testing import assert_approx_rows, rows_by_key, to_dataframe
from kamlib.testing.strategies import transactions
from tests.reference import churn as ref

TX = "account_id string, order_date date, amount double"
TX_TS = "account_id string, order_date timestamp, amount double"
USAGE = "account_id string, event_date date, usage double"
START = dt.date(2024, 1, 1)
WINDOWS = (1, 7, 30)


def feature_names(windows):
    names = ["recency_days", "tenure_days", "excluded_rows"]
    for w in windows:
        names += [
            f"n_orders_{w}d",
            f"revenue_{w}d",
            f"revenue_trend_{w}d",
            f"revenue_slope_{w}d",
            f"spike_ratio_{w}d",
        ]
    return names


@st.composite
def logs(draw, max_cases=12):
    """Many small transaction logs stacked into one (accounts prefixed by case), some undated."""
    cases = draw(
        st.lists(
            transactions(max_rows=12, max_accounts=3, max_days=120, allow_null_amounts=True),
            min_size=1,
            max_size=max_cases,
        )
    )
    rows = []
    for i, case in enumerate(cases):
        for row in case:
            undated = draw(st.integers(0, 19)) == 0
            rows.append(
                {
                    "account_id": f"c{i}_{row['account_id']}",
                    "order_date": None if undated else row["order_date"],
                    "amount": row["amount"],
                }
            )
    return rows


as_of_days = st.integers(min_value=0, max_value=130).map(lambda d: START + dt.timedelta(days=d))


def at_midnight(d):
    return dt.datetime(d.year, d.month, d.day)


# ------------------------------------------------------------------------------------------
# Reference tests
# ------------------------------------------------------------------------------------------


@settings(max_examples=4)
@given(rows=logs(), as_of=as_of_days)
def test_features_match_reference(spark, rows, as_of):
    df = to_dataframe(spark, rows, TX)
    actual = rows_by_key(churn_features(df, as_of=as_of, windows=WINDOWS), "account_id")
    expected = ref.churn_features(rows, at_midnight(as_of), WINDOWS)
    assert_approx_rows(actual, expected, columns=feature_names(WINDOWS), rtol=1e-9, atol=1e-9)


@settings(max_examples=5)
@given(rows=logs(), as_of=as_of_days, horizon=st.integers(1, 60), purchases_only=st.booleans())
def test_labels_match_reference(spark, rows, as_of, horizon, purchases_only):
    df = to_dataframe(spark, rows, TX)
    out = churn_labels(df, as_of=as_of, horizon_days=horizon, purchases_only=purchases_only)
    actual = rows_by_key(out, "account_id")
    expected = ref.churn_labels(rows, at_midnight(as_of), horizon, purchases_only=purchases_only)
    assert_approx_rows(actual, expected)


@settings(max_examples=3)
@given(
    rows=logs(max_cases=8),
    days=st.lists(st.integers(0, 130), min_size=1, max_size=4, unique=True),
    horizon=st.integers(1, 45),
)
def test_training_frame_matches_reference(spark, rows, days, horizon):
    as_ofs = [START + dt.timedelta(days=d) for d in days]
    df = to_dataframe(spark, rows, TX)
    tf = training_frame(df, as_of_dates=as_ofs, horizon_days=horizon, windows=WINDOWS)
    actual = rows_by_key(tf, ["as_of", "account_id"])
    expected = {}
    for a in as_ofs:
        feats = ref.churn_features(rows, at_midnight(a), WINDOWS)
        labels = ref.churn_labels(rows, at_midnight(a), horizon)
        for acc, values in feats.items():
            expected[(a, acc)] = {**values, **labels[acc]}
    columns = [*feature_names(WINDOWS), "churned", "label_excluded_rows"]
    assert_approx_rows(actual, expected, columns=columns, rtol=1e-9, atol=1e-9)


# ------------------------------------------------------------------------------------------
# No leakage (point in time)
# ------------------------------------------------------------------------------------------


def _tag(rows, prefix):
    return [{**r, "account_id": f"{prefix}|{r['account_id']}"} for r in rows]


def _split(result):
    full, cut = {}, {}
    for key, row in result.items():
        prefix, account = key.split("|", 1)
        values = {k: v for k, v in row.items() if k != "account_id"}
        (full if prefix == "full" else cut)[account] = values
    return full, cut


@settings(max_examples=4)
@given(rows=logs(), as_of=as_of_days, horizon=st.integers(1, 60))
def test_no_leakage(spark, rows, as_of, horizon):
    """Features on the full log == features on the log without rows at or after as_of, and
    labels on the full log == labels on the log without rows at or after as_of + horizon.
    Both copies go into ONE DataFrame (accounts prefixed), so one Spark job each."""
    cutoff = as_of
    end = as_of + dt.timedelta(days=horizon)
    before = [r for r in rows if r["order_date"] is None or r["order_date"] < cutoff]
    upto = [r for r in rows if r["order_date"] is None or r["order_date"] < end]
    feats_df = to_dataframe(spark, _tag(rows, "full") + _tag(before, "cut"), TX)
    full, cut = _split(rows_by_key(churn_features(feats_df, as_of=as_of), "account_id"))
    assert full == cut
    labels_df = to_dataframe(spark, _tag(rows, "full") + _tag(upto, "cut"), TX)
    out = churn_labels(labels_df, as_of=as_of, horizon_days=horizon)
    full, cut = _split(rows_by_key(out, "account_id"))
    assert full == cut
    # churned depends only on the rows inside the horizon
    for account, row in full.items():
        inside = [
            r
            for r in rows
            if r["account_id"] == account
            and r["order_date"] is not None
            and cutoff <= r["order_date"] < end
            and r["amount"] is not None
        ]
        assert row["churned"] == (not inside)


@pytest.mark.connect
def test_training_frame_features_do_not_see_the_horizon(spark):
    rows = [
        {"account_id": "a", "order_date": dt.date(2024, 1, 10), "amount": 100.0},
        {"account_id": "a", "order_date": dt.date(2024, 2, 1), "amount": 5000.0},
    ]
    future = [*rows, {"account_id": "a", "order_date": dt.date(2024, 2, 2), "amount": 9.0}]
    a = training_frame(to_dataframe(spark, rows, TX), as_of_dates=["2024-02-01"])
    b = training_frame(to_dataframe(spark, future, TX), as_of_dates=["2024-02-01"])
    ra, rb = a.first().asDict(), b.first().asDict()
    assert ra["revenue_30d"] == 100.0
    assert ra["churned"] is False  # the order on as_of itself is in the horizon
    assert {k: v for k, v in ra.items()} == {k: v for k, v in rb.items()}


# ------------------------------------------------------------------------------------------
# Edge cases
# ------------------------------------------------------------------------------------------


@pytest.mark.connect
def test_edge_cases(spark):
    rows = [
        # one transaction
        {"account_id": "one", "order_date": dt.date(2024, 3, 1), "amount": 50.0},
        # all on one day
        {"account_id": "day", "order_date": dt.date(2024, 3, 20), "amount": 10.0},
        {"account_id": "day", "order_date": dt.date(2024, 3, 20), "amount": 30.0},
        {"account_id": "day", "order_date": dt.date(2024, 3, 20), "amount": -5.0},
        # refunds only in the window, purchases before it
        {"account_id": "ref", "order_date": dt.date(2024, 1, 5), "amount": 80.0},
        {"account_id": "ref", "order_date": dt.date(2024, 3, 25), "amount": -20.0},
        # null date and null amount
        {"account_id": "nul", "order_date": None, "amount": 10.0},
        {"account_id": "nul", "order_date": dt.date(2024, 3, 30), "amount": None},
        {"account_id": "nul", "order_date": dt.date(2024, 3, 29), "amount": 7.0},
    ]
    df = to_dataframe(spark, rows, TX)
    out = rows_by_key(churn_features(df, as_of="2024-03-31", windows=(30,)), "account_id")
    assert set(out) == {"one", "day", "ref", "nul"}
    one = out["one"]
    assert (one["recency_days"], one["tenure_days"], one["n_orders_30d"]) == (30, 30, 1)
    assert one["revenue_30d"] == 50.0
    assert one["spike_ratio_30d"] == pytest.approx(30.0)  # all revenue on 1 of 30 days
    assert one["revenue_trend_30d"] is None  # nothing in the 30 days before the window
    day = out["day"]
    assert (day["recency_days"], day["tenure_days"], day["n_orders_30d"]) == (11, 11, 2)
    assert day["revenue_30d"] == 35.0
    assert day["spike_ratio_30d"] == pytest.approx(30.0)
    ref_ = out["ref"]
    assert ref_["revenue_30d"] == -20.0
    assert ref_["n_orders_30d"] == 0
    # daily revenue is -20 on one day and 0 on 29 days: max 0, mean -2/3
    assert ref_["spike_ratio_30d"] == pytest.approx(0.0)
    assert ref_["revenue_slope_30d"] < 0
    nul = out["nul"]
    assert nul["excluded_rows"] == 2
    assert (nul["recency_days"], nul["revenue_30d"], nul["n_orders_30d"]) == (2, 7.0, 1)
    # as_of before any data: empty, no error; after all data: everyone churned
    assert churn_features(df, as_of="2023-01-01").count() == 0
    assert churn_labels(df, as_of="2023-01-01").count() == 0
    labels = churn_labels(df, as_of="2030-01-01")
    assert labels.filter(~F.col("churned")).count() == 0
    assert labels.count() == 4
    late = rows_by_key(churn_features(df, as_of="2030-01-01", windows=(30,)), "account_id")
    assert late["one"]["revenue_30d"] == 0.0
    assert late["one"]["spike_ratio_30d"] is None


def test_only_null_amounts_before_as_of(spark):
    rows = [{"account_id": "x", "order_date": dt.date(2024, 1, 1), "amount": None}]
    out = churn_features(to_dataframe(spark, rows, TX), as_of="2024-02-01").first()
    assert out["recency_days"] is None
    assert out["excluded_rows"] == 1
    assert out["revenue_30d"] == 0.0


def test_timestamps_equal_dates_and_non_midnight_as_of(spark):
    base = [
        ("a", dt.datetime(2024, 3, 1, 0, 0), 10.0),
        ("a", dt.datetime(2024, 3, 10, 23, 59, 59), 20.0),
        ("a", dt.datetime(2024, 3, 30, 13, 0), 5.0),
        ("b", dt.datetime(2024, 2, 2, 6, 0), 7.0),
        ("b", dt.datetime(2024, 3, 31, 0, 0), 99.0),  # at as_of: not read
    ]
    ts = spark.createDataFrame(base, TX_TS)
    dates = spark.createDataFrame([(a, t.date(), v) for a, t, v in base], TX)
    cols = feature_names((7, 30))
    a = rows_by_key(churn_features(ts, as_of="2024-03-31", windows=(7, 30)), "account_id")
    b = rows_by_key(
        churn_features(dates, as_of=dt.date(2024, 3, 31), windows=(7, 30)), "account_id"
    )
    assert_approx_rows(a, b, columns=cols)
    # a non-midnight cutoff: exact 24-hour days counted back from as_of
    as_of = dt.datetime(2024, 3, 30, 12, 0)
    rows = [{"account_id": a_, "order_date": t, "amount": v} for a_, t, v in base]
    out = rows_by_key(churn_features(ts, as_of=as_of, windows=(7, 30)), "account_id")
    expected = ref.churn_features(rows, as_of, (7, 30))
    assert_approx_rows(out, expected, columns=cols)
    # 2024-03-30 13:00 is after the 12:00 cutoff (not read): last order 19.5 days back -> 20
    assert out["a"]["recency_days"] == 20
    labels = rows_by_key(churn_labels(ts, as_of=as_of, horizon_days=1), "account_id")
    assert labels == {
        k: {"account_id": k, **v} for k, v in ref.churn_labels(rows, as_of, 1).items()
    }
    tf = training_frame(ts, as_of_dates=[as_of, "2024-03-29T12:00"], windows=(7, 30))
    assert {r["as_of"] for r in tf.select("as_of").collect()} == {
        as_of,
        dt.datetime(2024, 3, 29, 12),
    }


def test_iso_string_date_and_datetime_as_of_agree(spark):
    df = to_dataframe(
        spark,
        [
            {"account_id": "a", "order_date": dt.date(2024, 1, 1), "amount": 1.0},
            {"account_id": "a", "order_date": dt.date(2024, 1, 20), "amount": 2.0},
        ],
        TX,
    )
    results = [
        churn_features(df, as_of=v, windows=(30,)).collect()
        for v in ("2024-02-01", dt.date(2024, 2, 1), dt.datetime(2024, 2, 1))
    ]
    assert results[0] == results[1] == results[2]


# ------------------------------------------------------------------------------------------
# Usage features
# ------------------------------------------------------------------------------------------


@st.composite
def usage_logs(draw):
    n = draw(st.integers(0, 40))
    rows = []
    for _ in range(n):
        rows.append(
            {
                "account_id": f"u{draw(st.integers(0, 5))}",
                "event_date": None
                if draw(st.integers(0, 19)) == 0
                else START + dt.timedelta(days=draw(st.integers(0, 80))),
                "usage": draw(st.one_of(st.none(), st.integers(0, 50).map(float)))
                if draw(st.booleans())
                else float(draw(st.integers(0, 50))),
            }
        )
    return rows


@settings(max_examples=5)
@given(rows=usage_logs(), as_of=st.integers(0, 90).map(lambda d: START + dt.timedelta(days=d)))
def test_usage_matches_reference(spark, rows, as_of):
    df = to_dataframe(spark, rows, USAGE)
    out = usage_features(df, as_of=as_of, metric_col="usage", windows=(1, 7, 30))
    expected = ref.usage_features(rows, at_midnight(as_of), (1, 7, 30), 0.05)
    assert_approx_rows(rows_by_key(out, "account_id"), expected, rtol=1e-9, atol=1e-9)


@pytest.mark.connect
def test_usage_plateau_and_decline(spark):
    rows = []
    for i in range(60):
        day = START + dt.timedelta(days=i)
        rows.append(("flat", day, 10.0))
        rows.append(("grow", day, float(i)))
        rows.append(("fall", day, float(60 - i)))
    df = spark.createDataFrame(rows, USAGE)
    out = rows_by_key(
        usage_features(df, as_of=START + dt.timedelta(days=60), metric_col="usage"),
        "account_id",
    )
    assert out["flat"]["usage_plateau_30d"] is True
    assert out["flat"]["usage_slope_30d"] == pytest.approx(0.0)
    assert out["grow"]["usage_slope_30d"] == pytest.approx(1.0)
    assert out["fall"]["usage_slope_30d"] == pytest.approx(-1.0)
    assert out["grow"]["usage_plateau_30d"] is False
    assert out["fall"]["usage_90d"] == sum(60 - i for i in range(60))


# ------------------------------------------------------------------------------------------
# Training frame joins and pyspark.ml helpers
# ------------------------------------------------------------------------------------------


@pytest.mark.connect
def test_training_frame_with_usage_surveys_wallets(spark):
    tx = to_dataframe(
        spark,
        [
            {"account_id": "a", "order_date": dt.date(2024, 1, 10), "amount": 100.0},
            {"account_id": "a", "order_date": dt.date(2024, 6, 10), "amount": 300.0},
            {"account_id": "b", "order_date": dt.date(2024, 5, 1), "amount": 50.0},
        ],
        TX,
    )
    usage = spark.createDataFrame(
        [("a", dt.date(2024, 6, 1) - dt.timedelta(days=i), 4.0) for i in range(1, 31)], USAGE
    )
    surveys = spark.createDataFrame(
        [
            ("a", dt.date(2024, 5, 1), 10.0),  # recent (last 90 days before 2024-07-01)
            ("a", dt.date(2024, 5, 2), 3.0),
            ("a", dt.date(2024, 2, 1), 9.0),  # previous 90 days
            ("a", dt.date(2024, 5, 3), 11.0),  # invalid
            ("a", dt.date(2024, 8, 1), 0.0),  # after as_of: not read
            ("b", None, 8.0),  # undated
        ],
        "account_id string, response_date date, score double",
    )
    wallets = spark.createDataFrame([("a", 1000.0), ("b", 0.0)], "account_id string, wallet double")
    tf = training_frame(
        tx,
        as_of_dates=["2024-07-01"],
        windows=(30,),
        usage=usage,
        surveys=surveys,
        wallets=wallets,
    )
    out = rows_by_key(tf, "account_id")
    a, b = out["a"], out["b"]
    assert a["nps_90d"] == pytest.approx(ref.nps([10.0, 3.0]))
    assert a["nps_prev_90d"] == pytest.approx(100.0)
    assert a["nps_change_90d"] == pytest.approx(-100.0)
    assert a["survey_responses_90d"] == 2
    assert a["survey_excluded_rows"] == 1
    assert b["nps_90d"] is None
    assert b["survey_excluded_rows"] == 1
    assert a["share_of_wallet"] == pytest.approx(0.4)
    assert b["share_of_wallet"] is None  # wallet <= 0
    assert a["usage_90d"] == 120.0
    assert a["usage_30d"] == 0.0  # usage stopped a month before as_of
    assert b["usage_90d"] == 0.0
    assert b["usage_plateau_30d"] is False
    names = feature_columns(tf)
    assert "churned" not in names
    assert "as_of" not in names
    assert "survey_excluded_rows" not in names
    assert {"share_of_wallet", "nps_change_90d", "usage_plateau_30d"} <= set(names)
    assembled = assemble_features(tf)
    slots = vector_slots(tf)
    rows = assembled.select("features", "label").collect()
    assert all(len(r.features) == len(slots) for r in rows)
    assert {r.label for r in rows} <= {0.0, 1.0}
    assert all(v == v for r in rows for v in r.features.toArray())  # no NaN


def test_training_frame_on_synthetic_data_is_consistent(spark):
    from kamlib.datasets import synthetic_transactions

    tx = synthetic_transactions(spark, 300, seed=3)
    dates = ["2024-09-01", "2024-12-01"]
    tf = training_frame(tx, as_of_dates=dates, windows=(30, 90))
    for d in dates:
        single = churn_features(tx, as_of=d, windows=(30, 90)).join(
            churn_labels(tx, as_of=d), "account_id"
        )
        part = tf.filter(F.col("as_of") == F.lit(dt.date.fromisoformat(d))).drop("as_of")
        assert sorted(part.collect()) == sorted(single.select(part.columns).collect())


# ------------------------------------------------------------------------------------------
# Bad input
# ------------------------------------------------------------------------------------------


@pytest.mark.connect
def test_bad_input(spark):
    df = to_dataframe(spark, [], TX)
    with pytest.raises(SchemaError, match=r"churn_features\(\): column 'order_dt'"):
        churn_features(df, as_of="2024-01-01", date_col="order_dt")
    bad = spark.createDataFrame([], "account_id string, order_date string, amount double")
    with pytest.raises(SchemaError, match="must be date or timestamp, found string"):
        churn_features(bad, as_of="2024-01-01")
    txt = spark.createDataFrame([], "account_id string, order_date date, amount string")
    with pytest.raises(SchemaError, match="'amount' must be numeric"):
        churn_labels(txt, as_of="2024-01-01")
    with pytest.raises(SchemaError, match="as_of="):
        churn_features(df, as_of="not a date")
    with pytest.raises(SchemaError, match="as_of="):
        churn_features(df, as_of=20240101)
    with pytest.raises(SchemaError, match="windows="):
        churn_features(df, as_of="2024-01-01", windows=(30, 0))
    with pytest.raises(SchemaError, match="windows="):
        churn_features(df, as_of="2024-01-01", windows=())
    with pytest.raises(SchemaError, match="windows="):
        churn_features(df, as_of="2024-01-01", windows=(30, 30))
    with pytest.raises(SchemaError, match="horizon_days="):
        churn_labels(df, as_of="2024-01-01", horizon_days=0)
    with pytest.raises(SchemaError, match="purchases_only"):
        churn_labels(df, as_of="2024-01-01", value_col=None, purchases_only=True)
    with pytest.raises(SchemaError, match="as_of_dates="):
        training_frame(df, as_of_dates="2024-01-01")
    with pytest.raises(SchemaError, match="as_of_dates="):
        training_frame(df, as_of_dates=[])
    with pytest.raises(SchemaError, match="same time of day"):
        training_frame(df, as_of_dates=["2024-01-01", "2024-02-01T06:00"])
    with pytest.raises(SchemaError, match="must not repeat"):
        training_frame(df, as_of_dates=["2024-01-01", dt.date(2024, 1, 1)])
    usage = spark.createDataFrame([], USAGE)
    with pytest.raises(SchemaError, match="usage_features\\(\\): column 'clicks'"):
        usage_features(usage, as_of="2024-01-01", metric_col="clicks")
    with pytest.raises(SchemaError, match="plateau_tolerance="):
        usage_features(usage, as_of="2024-01-01", metric_col="usage", plateau_tolerance=-1)
    with pytest.raises(SchemaError, match="training_frame\\(\\): column 'wallet'"):
        training_frame(
            df, as_of_dates=["2024-01-01"], wallets=spark.createDataFrame([], "account_id string")
        )
    with pytest.raises(SchemaError, match="'churned' must be boolean, found int"):
        assemble_features(
            spark.createDataFrame([], "account_id string, x double, churned int"),
        )


def test_labels_without_value_col(spark):
    df = spark.createDataFrame(
        [("a", dt.date(2024, 1, 1)), ("a", dt.date(2024, 2, 3)), ("b", dt.date(2024, 1, 2))],
        "account_id string, order_date date",
    )
    out = rows_by_key(churn_labels(df, as_of="2024-02-01", value_col=None), "account_id")
    assert out["a"]["churned"] is False
    assert out["b"]["churned"] is True
