"""kamlib.retention: revenue bridge and GRR / NRR against a plain-Python reference."""

from __future__ import annotations

import datetime as dt
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kamlib import SchemaError
from kamlib.retention import MOVEMENTS, retention_rates, revenue_bridge
from kamlib.testing import assert_approx_rows, rows_by_key, stack_cases, to_dataframe
from tests.reference import retention as ref

SCHEMA = "account_id string, order_date date, amount double"
PRODUCT_SCHEMA = "case int, account_id string, order_date date, amount double, product string"

BRIDGE_COLS = ["previous_revenue", "revenue", "movement"]
PRODUCT_BRIDGE_COLS = [*BRIDGE_COLS, "cross_sell_revenue", "upsell_revenue"]
RATE_COLS = [
    "starting_revenue",
    "new_revenue",
    "reactivated_revenue",
    "expansion_revenue",
    "contraction_revenue",
    "churned_revenue",
    "ending_revenue",
    "grr",
    "nrr",
    "starting_accounts",
    "retained_accounts",
    "logo_retention",
    "new_accounts",
    "reactivated_accounts",
    "churned_accounts",
    "excluded_rows",
]
PRODUCT_RATE_COLS = [
    *RATE_COLS,
    "cross_sell_revenue",
    "expansion_cross_sell_revenue",
    "upsell_revenue",
]


def d(year: int, month: int, day: int = 1) -> dt.date:
    return dt.date(year, month, day)


def tx(spark, rows, schema=SCHEMA):
    return to_dataframe(spark, rows, schema)


def rows(*triples):
    return [{"account_id": a, "order_date": day, "amount": v} for a, day, v in triples]


# ---------------------------------------------------------------------------------------------
# Hypothesis: many cases in ONE DataFrame, by="case"
# ---------------------------------------------------------------------------------------------


@st.composite
def case_rows(draw, *, max_days=420, nulls=True):
    """A transaction log with refunds, products, and (optionally) null dates/amounts."""
    start = d(2023, 1, 1) + dt.timedelta(days=draw(st.integers(0, 60)))
    amount = st.integers(-150, 400).map(float)
    if nulls:
        amount = st.one_of(amount, amount, amount, amount, amount, st.none())
    day = st.integers(0, max_days).map(lambda k: start + dt.timedelta(days=k))
    if nulls:
        day = st.one_of(day, day, day, day, day, day, st.none())
    row = st.fixed_dictionaries(
        {
            "account_id": st.sampled_from(["a", "b", "c", "d"]),
            "order_date": day,
            "amount": amount,
            "product": st.sampled_from(["p1", "p2", "p3", None]),
        }
    )
    return draw(st.lists(row, min_size=0, max_size=25))


def _key_bridge(rows_):
    return {(r["case"], r["account_id"], r["period"]): r for r in rows_}


def _key_rates(rows_):
    return {(r["case"], r["period"]): r for r in rows_}


def _check_invariants(rates):
    for r in rates.values():
        lhs = (
            r["starting_revenue"]
            + r["new_revenue"]
            + r["reactivated_revenue"]
            + r["expansion_revenue"]
            - r["contraction_revenue"]
            - r["churned_revenue"]
        )
        assert math.isclose(lhs, r["ending_revenue"], rel_tol=1e-9, abs_tol=1e-6), r
        if r["starting_revenue"] > 0:
            assert -1e-12 <= r["grr"] <= 1 + 1e-12
            assert r["nrr"] >= r["grr"] - 1e-12
            assert 0 <= r["logo_retention"] <= 1
        else:
            assert r["grr"] is None
            assert r["nrr"] is None


@settings(max_examples=5)
@given(
    cases=st.lists(case_rows(), min_size=1, max_size=30),
    period=st.sampled_from(["month", "quarter"]),
    with_product=st.booleans(),
)
def test_matches_reference_many_cases(spark, cases, period, with_product):
    data = stack_cases(cases)
    df = tx(spark, data, PRODUCT_SCHEMA)
    product_col = "product" if with_product else None
    opts = {"period": period, "product_col": product_col, "by": "case"}

    got_bridge = rows_by_key(revenue_bridge(df, **opts), ["case", "account_id", "period"])
    want_bridge = _key_bridge(ref.revenue_bridge(data, **opts))
    cols = PRODUCT_BRIDGE_COLS if with_product else BRIDGE_COLS
    assert_approx_rows(got_bridge, want_bridge, columns=cols, atol=1e-6)

    got_rates = rows_by_key(retention_rates(df, **opts), ["case", "period"])
    want_rates = _key_rates(ref.retention_rates(data, **opts))
    assert_approx_rows(
        got_rates, want_rates, columns=PRODUCT_RATE_COLS if with_product else RATE_COLS, atol=1e-6
    )
    _check_invariants(got_rates)
    for r in got_bridge.values():
        assert r["movement"] in MOVEMENTS


@st.composite
def expanding_case(draw):
    """Accounts buying every month with non-decreasing monthly revenue: only expansion."""
    months = draw(st.integers(2, 6))
    out = []
    for a in draw(st.sets(st.sampled_from(["a", "b", "c"]), min_size=1)):
        level = draw(st.integers(1, 100))
        for m in range(months):
            level += draw(st.integers(0, 50))
            out.append({"account_id": a, "order_date": d(2024, m + 1, 15), "amount": float(level)})
    return out


@settings(max_examples=3)
@given(cases=st.lists(expanding_case(), min_size=1, max_size=20))
def test_only_expansion_grr_le_one_le_nrr(spark, cases):
    df = tx(
        spark, stack_cases(cases), "case int, account_id string, order_date date, amount double"
    )
    rates = rows_by_key(retention_rates(df, by="case"), ["case", "period"])
    assert rates
    for r in rates.values():
        assert r["grr"] <= 1.0 <= r["nrr"]
        assert r["grr"] == pytest.approx(1.0)
        assert r["contraction_revenue"] == 0.0
        assert r["churned_revenue"] == 0.0
        assert r["logo_retention"] == 1.0


# ---------------------------------------------------------------------------------------------
# Worked examples and edge cases
# ---------------------------------------------------------------------------------------------

EXAMPLE = rows(
    ("a", d(2024, 1, 3), 100.0),
    ("a", d(2024, 2, 3), 150.0),
    ("a", d(2024, 3, 3), 150.0),
    ("a", d(2024, 4, 3), 50.0),
    ("b", d(2024, 1, 9), 80.0),
    ("b", d(2024, 3, 9), 60.0),  # churned in Feb, reactivated in Mar
    ("c", d(2024, 2, 20), 30.0),
    ("c", d(2024, 2, 21), -50.0),  # refund: Feb revenue -20 -> 0
    ("c", d(2024, 4, 1), 25.0),  # first positive revenue: new (not reactivated)
    ("e", d(2024, 4, 30), 10.0),
)


@pytest.mark.connect
def test_worked_example_bridge(spark):
    got = rows_by_key(revenue_bridge(tx(spark, EXAMPLE)), ["account_id", "period"])
    want = {
        ("a", d(2024, 2, 1)): (100.0, 150.0, "expansion"),
        ("a", d(2024, 3, 1)): (150.0, 150.0, "flat"),
        ("a", d(2024, 4, 1)): (150.0, 50.0, "contraction"),
        ("b", d(2024, 2, 1)): (80.0, 0.0, "churned"),
        ("b", d(2024, 3, 1)): (0.0, 60.0, "reactivated"),
        ("b", d(2024, 4, 1)): (60.0, 0.0, "churned"),
        ("c", d(2024, 4, 1)): (0.0, 25.0, "new"),
        ("e", d(2024, 4, 1)): (0.0, 10.0, "new"),
    }
    assert {k: (v["previous_revenue"], v["revenue"], v["movement"]) for k, v in got.items()} == want


@pytest.mark.connect
def test_worked_example_rates(spark):
    got = rows_by_key(retention_rates(tx(spark, EXAMPLE)), "period")
    assert sorted(got) == [d(2024, 2, 1), d(2024, 3, 1), d(2024, 4, 1)]
    feb, mar, apr = got[d(2024, 2, 1)], got[d(2024, 3, 1)], got[d(2024, 4, 1)]
    assert feb["starting_revenue"] == 180.0
    assert feb["expansion_revenue"] == 50.0
    assert feb["churned_revenue"] == 80.0
    assert feb["ending_revenue"] == 150.0
    assert feb["grr"] == pytest.approx(100 / 180)
    assert feb["nrr"] == pytest.approx(150 / 180)
    assert (feb["starting_accounts"], feb["retained_accounts"]) == (2, 1)
    assert feb["logo_retention"] == 0.5
    assert mar["reactivated_revenue"] == 60.0
    assert mar["grr"] == 1.0
    assert mar["reactivated_accounts"] == 1
    assert apr["starting_revenue"] == 210.0
    assert apr["contraction_revenue"] == 100.0
    assert apr["churned_revenue"] == 60.0
    assert apr["new_revenue"] == 35.0
    assert apr["new_accounts"] == 2
    assert apr["ending_revenue"] == 85.0
    assert apr["grr"] == pytest.approx(50 / 210)
    assert all(r["excluded_rows"] == 0 for r in got.values())


def test_empty_input(spark):
    df = tx(spark, [])
    assert revenue_bridge(df).count() == 0
    assert retention_rates(df).count() == 0
    assert revenue_bridge(df).columns == [
        "account_id",
        "period",
        "previous_revenue",
        "revenue",
        "movement",
    ]


def test_single_period_has_no_rows(spark):
    df = tx(spark, rows(("a", d(2024, 5, 1), 10.0), ("b", d(2024, 5, 30), 5.0)))
    assert revenue_bridge(df).count() == 0
    assert retention_rates(df).count() == 0


def test_account_in_one_period_churns_once(spark):
    df = tx(
        spark,
        rows(("a", d(2024, 1, 1), 10.0), ("b", d(2024, 2, 1), 5.0), ("z", d(2024, 6, 1), 1.0)),
    )
    got = revenue_bridge(df).filter("account_id = 'b'").orderBy("period").collect()
    assert [(r.period, r.movement) for r in got] == [
        (d(2024, 2, 1), "new"),
        (d(2024, 3, 1), "churned"),
    ]


def test_gap_periods_are_in_the_grid(spark):
    df = tx(spark, rows(("a", d(2024, 1, 1), 10.0), ("a", d(2024, 5, 1), 20.0)))
    got = rows_by_key(retention_rates(df), "period")
    assert sorted(got) == [d(2024, m, 1) for m in (2, 3, 4, 5)]
    assert got[d(2024, 2, 1)]["churned_revenue"] == 10.0
    for m in (3, 4):
        r = got[d(2024, m, 1)]
        assert r["starting_revenue"] == 0.0
        assert r["ending_revenue"] == 0.0
        assert r["grr"] is None
        assert r["nrr"] is None
        assert r["logo_retention"] is None
        assert r["starting_accounts"] == 0
    assert got[d(2024, 5, 1)]["reactivated_revenue"] == 20.0


def test_refund_only_period_extends_grid_and_floors(spark):
    # The refund in March is a valid row: it extends the grid, and March revenue is floored at 0.
    df = tx(spark, rows(("a", d(2024, 1, 1), 10.0), ("a", d(2024, 3, 1), -40.0)))
    got = rows_by_key(revenue_bridge(df), "period")
    assert list(got) == [d(2024, 2, 1)]
    assert got[d(2024, 2, 1)]["movement"] == "churned"
    rates = rows_by_key(retention_rates(df), "period")
    assert sorted(rates) == [d(2024, 2, 1), d(2024, 3, 1)]
    assert rates[d(2024, 3, 1)]["ending_revenue"] == 0.0


@pytest.mark.connect
@pytest.mark.parametrize(
    ("period", "expected"),
    [
        ("quarter", [(d(2024, 4, 1), "expansion"), (d(2024, 7, 1), "churned")]),
        ("year", [(d(2025, 1, 1), "churned")]),
    ],
)
def test_quarter_and_year(spark, period, expected):
    df = tx(
        spark,
        rows(
            ("a", d(2024, 1, 31), 10.0),
            ("a", d(2024, 3, 1), 10.0),
            ("a", d(2024, 4, 1), 30.0),
            ("b", d(2025, 2, 1), 1.0),
        ),
    )
    got = revenue_bridge(df, period=period).filter("account_id = 'a'").orderBy("period")
    assert [(r.period, r.movement) for r in got.collect()] == expected


@pytest.mark.connect
def test_timestamps_equal_dates(spark):
    rows_ts = [
        ("a", dt.datetime(2024, 1, 31, 23, 59, 59), 10.0),
        ("a", dt.datetime(2024, 2, 1, 0, 0, 0), 30.0),
        ("b", dt.datetime(2024, 2, 15, 12, 0), 5.0),
    ]
    df_ts = spark.createDataFrame(rows_ts, "account_id string, order_date timestamp, amount double")
    df_d = tx(spark, rows(*[(a, t.date(), v) for a, t, v in rows_ts]))
    assert sorted(revenue_bridge(df_ts).collect()) == sorted(revenue_bridge(df_d).collect())
    assert revenue_bridge(df_ts).schema["period"].dataType.simpleString() == "date"


def test_null_rows_are_excluded_and_counted(spark):
    data = [
        *rows(("a", d(2024, 1, 1), 10.0), ("a", d(2024, 2, 1), 10.0)),
        {"account_id": "a", "order_date": None, "amount": 99.0},
        {"account_id": "a", "order_date": d(2024, 2, 2), "amount": None},
        {"account_id": None, "order_date": d(2024, 2, 2), "amount": 7.0},
        {"account_id": "b", "order_date": d(2030, 1, 1), "amount": None},  # must not extend grid
    ]
    df = tx(spark, data)
    got = rows_by_key(retention_rates(df), "period")
    assert list(got) == [d(2024, 2, 1)]
    assert got[d(2024, 2, 1)]["excluded_rows"] == 4
    assert got[d(2024, 2, 1)]["ending_revenue"] == 10.0
    assert got[d(2024, 2, 1)]["grr"] == 1.0


def test_integer_and_decimal_amounts(spark):
    df = spark.createDataFrame(
        [("a", d(2024, 1, 1), 5), ("a", d(2024, 2, 1), 7)],
        "account_id string, order_date date, amount int",
    )
    (r,) = revenue_bridge(df).collect()
    assert (r.previous_revenue, r.revenue, r.movement) == (5.0, 7.0, "expansion")
    dec = df.selectExpr("account_id", "order_date", "cast(amount as decimal(12,2)) as amount")
    (r2,) = retention_rates(dec).collect()
    assert r2.nrr == pytest.approx(1.4)


def test_custom_column_names_and_by(spark):
    df = spark.createDataFrame(
        [
            ("x", "north", d(2024, 1, 1), 10.0),
            ("x", "north", d(2024, 2, 1), 5.0),
            ("x", "south", d(2024, 3, 1), 8.0),
            ("y", None, d(2024, 2, 1), 3.0),
            ("y", None, d(2024, 3, 1), 3.0),
        ],
        "acct string, region string, ts date, val double",
    )
    out = revenue_bridge(df, account_col="acct", date_col="ts", value_col="val", by="region")
    assert out.columns[:3] == ["region", "acct", "period"]
    got = rows_by_key(out, ["region", "acct", "period"])
    # south's grid starts in March (its own first period), so it has no rows.
    assert set(got) == {("north", "x", d(2024, 2, 1)), (None, "y", d(2024, 3, 1))}
    assert got[(None, "y", d(2024, 3, 1))]["movement"] == "flat"
    rates = rows_by_key(
        retention_rates(df, account_col="acct", date_col="ts", value_col="val", by=["region"]),
        ["region", "period"],
    )
    assert set(rates) == {("north", d(2024, 2, 1)), (None, d(2024, 3, 1))}


def test_product_cross_sell_and_upsell(spark):
    data = [
        {"account_id": "a", "order_date": d(2024, 1, 5), "amount": 100.0, "product": "p1"},
        {"account_id": "a", "order_date": d(2024, 2, 5), "amount": 120.0, "product": "p1"},
        {"account_id": "a", "order_date": d(2024, 2, 6), "amount": 30.0, "product": "p2"},
        {"account_id": "a", "order_date": d(2024, 3, 6), "amount": 40.0, "product": "p2"},
        {"account_id": "a", "order_date": d(2024, 3, 6), "amount": 200.0, "product": "p1"},
        {"account_id": "b", "order_date": d(2024, 3, 1), "amount": 10.0, "product": "p3"},
    ]
    df = tx(spark, data, "account_id string, order_date date, amount double, product string")
    got = rows_by_key(revenue_bridge(df, product_col="product"), ["account_id", "period"])
    feb = got[("a", d(2024, 2, 1))]
    assert (feb["movement"], feb["cross_sell_revenue"], feb["upsell_revenue"]) == (
        "expansion",
        30.0,
        20.0,
    )
    mar = got[("a", d(2024, 3, 1))]
    assert (mar["cross_sell_revenue"], mar["upsell_revenue"]) == (0.0, 90.0)
    new = got[("b", d(2024, 3, 1))]
    assert (new["movement"], new["cross_sell_revenue"], new["upsell_revenue"]) == ("new", 10.0, 0.0)
    rates = rows_by_key(retention_rates(df, product_col="product"), "period")
    r = rates[d(2024, 2, 1)]
    assert (r["expansion_cross_sell_revenue"], r["upsell_revenue"]) == (30.0, 20.0)
    assert rates[d(2024, 3, 1)]["cross_sell_revenue"] == 10.0
    # product_col does not change the bridge itself
    plain = rows_by_key(revenue_bridge(df), ["account_id", "period"])
    assert {k: (v["revenue"], v["movement"]) for k, v in plain.items()} == {
        k: (v["revenue"], v["movement"]) for k, v in got.items()
    }


# ---------------------------------------------------------------------------------------------
# Bad input: SchemaError before any Spark job
# ---------------------------------------------------------------------------------------------


@pytest.mark.connect
@pytest.mark.parametrize("func", [revenue_bridge, retention_rates])
def test_bad_input(spark, func):
    df = tx(spark, rows(("a", d(2024, 1, 1), 1.0)))
    name = func.__name__
    with pytest.raises(SchemaError, match=rf"{name}\(\): period= must be one of 'month'"):
        func(df, period="week")
    with pytest.raises(SchemaError, match=r"column 'amt' \(argument value_col=\) not found"):
        func(df, value_col="amt")
    with pytest.raises(SchemaError, match=r"column 'order_date' must be date or timestamp"):
        func(df.selectExpr("account_id", "cast(order_date as string) order_date", "amount"))
    with pytest.raises(SchemaError, match=r"column 'amount' must be numeric, found string"):
        func(df.selectExpr("account_id", "order_date", "cast(amount as string) amount"))
    with pytest.raises(SchemaError, match=r"'region' \(argument by=\) not found"):
        func(df, by="region")
    with pytest.raises(SchemaError, match=r"'prod' \(argument product_col=\) not found"):
        func(df, product_col="prod")
    with pytest.raises(SchemaError, match="by= must not repeat"):
        func(df, by="account_id")
    with pytest.raises(SchemaError, match="'period' clashes with an output column"):
        func(df.withColumn("period", df["amount"]), by="period")


def test_does_not_mutate_by_argument(spark):
    df = spark.createDataFrame(
        [("a", "r", d(2024, 1, 1), 1.0)],
        "account_id string, region string, order_date date, amount double",
    )
    by = ["region"]
    retention_rates(df, by=by)
    assert by == ["region"]


def test_bigint_max_amounts_do_not_overflow(spark):
    # ANSI mode raises on bigint overflow: two Long.MAX_VALUE rows in one month must sum
    # exactly (reference by hand: January = 2 * (2**63 - 1), February = 2**63 - 1).
    big = 2**63 - 1
    df = spark.createDataFrame(
        [
            ("a", d(2024, 1, 1), big),
            ("a", d(2024, 1, 2), big),
            ("a", d(2024, 2, 1), big),
            ("b", d(2024, 1, 1), big),
            ("b", d(2024, 2, 1), big),
        ],
        "account_id string, order_date date, amount bigint",
    )
    got = rows_by_key(revenue_bridge(df), "account_id")
    assert got["a"]["previous_revenue"] == float(2 * big)
    assert got["a"]["revenue"] == float(big)
    assert got["a"]["movement"] == "contraction"
    assert got["b"]["movement"] == "flat"  # exact sums: equal bigint totals compare equal
    (r,) = retention_rates(df).collect()
    assert r.starting_revenue == float(3 * big)
    assert r.ending_revenue == float(2 * big)
    assert r.contraction_revenue == float(big)
    assert r.grr == pytest.approx(2 / 3)
    assert r.nrr == pytest.approx(2 / 3)
