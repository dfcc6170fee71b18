"""Non-finite amounts (NaN, +inf, -inf) and nulls are invalid values: excluded and counted.

Property: adding hostile rows to accounts that already have valid rows changes nothing but the
function's counter column (``null_values``, ``excluded_rows``, ``n_excluded``, ``invalid``),
which grows by exactly the number of hostile rows. Reference = the result on the same data with
the hostile rows removed. Many hypothesis cases share ONE DataFrame (``by="case"``).
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kamlib.churn import churn_features
from kamlib.classify import classify_accounts, concentration
from kamlib.clv import rfm_summary
from kamlib.nps import csat, nps
from kamlib.profitability import account_profitability
from kamlib.retention import retention_rates, revenue_bridge
from kamlib.testing import stack_cases, to_dataframe
from kamlib.wallet import share_of_wallet

HOSTILE = [math.nan, math.inf, -math.inf, None]
START = dt.date(2024, 1, 1)
AS_OF = dt.date(2025, 3, 1)
TRIED: Counter[str] = Counter()

SCHEMA = "case int, account_id string, order_date date, amount double, cost double"


@st.composite
def case_rows(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Valid rows (whole-number amounts, so sums are exact in any order) + hostile rows."""
    accounts = draw(st.lists(st.sampled_from("abcdef"), min_size=1, max_size=4, unique=True))
    good = []
    for acct in accounts:
        for _ in range(draw(st.integers(1, 4))):
            good.append(
                {
                    "account_id": acct,
                    "order_date": START + dt.timedelta(days=draw(st.integers(0, 420))),
                    "amount": float(draw(st.integers(-50, 1000))),
                    "cost": float(draw(st.integers(0, 300))),
                    "bad": False,
                }
            )
    bad = []
    for _ in range(draw(st.integers(0, 4))):
        column = draw(st.sampled_from(["amount", "cost"]))
        row = {
            "account_id": draw(st.sampled_from(accounts)),
            "order_date": START + dt.timedelta(days=draw(st.integers(0, 420))),
            "amount": 1.0,
            "cost": 1.0,
            "bad": column,
        }
        row[column] = draw(st.sampled_from(HOSTILE))
        bad.append(row)
    return good + bad


def _frames(spark, cases, columns=("amount",)):
    """(all rows, hostile DataFrame, DataFrame without the rows hostile in ``columns``)."""
    data = stack_cases(cases)
    hostile = to_dataframe(spark, data, SCHEMA)
    clean = to_dataframe(spark, [r for r in data if r["bad"] not in columns], SCHEMA)
    return data, hostile, clean


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    return a == b


def _compare(
    got: list[Any],
    want: list[Any],
    key: Callable[[dict[str, Any]], object],
    counter: str | None,
    extra: Counter[object],
) -> None:
    g = {key(r.asDict()): r.asDict() for r in got}
    w = {key(r.asDict()): r.asDict() for r in want}
    assert set(g) == set(w)
    for k, row in g.items():
        ref = w[k]
        for column, value in row.items():
            if column == counter:
                assert value == ref[column] + extra[k], (k, column)
            else:
                assert _same(value, ref[column]), (k, column, value, ref[column])


def _bad_by(data, key, column="amount"):
    counts: Counter[object] = Counter()
    for r in data:
        if r["bad"] == column:
            counts[key(r)] += 1
            TRIED[column] += 1
    return counts


CASES = st.lists(case_rows(), min_size=1, max_size=12)


@settings(max_examples=3)
@given(cases=CASES)
def test_classify_and_concentration(spark, cases):
    data, hostile, clean = _frames(spark, cases)
    key = lambda r: (r["case"], r["account_id"])  # noqa: E731
    bad = _bad_by(data, key)
    _compare(
        classify_accounts(hostile, by="case").collect(),
        classify_accounts(clean, by="case").collect(),
        key,
        "null_values",
        bad,
    )
    # concentration has no counter: hostile rows are documented as excluded, so it is unchanged
    _compare(
        concentration(hostile, by="case").collect(),
        concentration(clean, by="case").collect(),
        lambda r: r["case"],
        None,
        Counter(),
    )


@settings(max_examples=3)
@given(cases=CASES)
def test_retention_rates_and_bridge(spark, cases):
    data, hostile, clean = _frames(spark, cases)
    bad = _bad_by(data, lambda r: r["case"])
    period_key = lambda r: (r["case"], r["period"])  # noqa: E731
    rates = retention_rates(hostile, by="case").collect()
    want = retention_rates(clean, by="case").collect()
    extra = Counter({(c, r["period"]): n for r in rates for c, n in bad.items() if r["case"] == c})
    _compare(rates, want, period_key, "excluded_rows", extra)
    _compare(
        revenue_bridge(hostile, by="case").collect(),
        revenue_bridge(clean, by="case").collect(),
        lambda r: (r["case"], r["account_id"], r["period"]),
        None,
        Counter(),
    )


@settings(max_examples=3)
@given(cases=CASES)
def test_account_profitability(spark, cases):
    data, hostile, clean = _frames(spark, cases, ("amount", "cost"))
    key = lambda r: (r["case"], r["account_id"])  # noqa: E731
    bad = _bad_by(data, key) + _bad_by(data, key, "cost")
    kw = {"revenue_col": "amount", "cost_col": "cost", "by": "case"}
    _compare(
        account_profitability(hostile, **kw).collect(),
        account_profitability(clean, **kw).collect(),
        key,
        "excluded_rows",
        bad,
    )


def _per_account(df):
    from pyspark.sql import functions as F

    return df.withColumn("account_id", F.concat_ws("-", "case", "account_id")).drop("case")


@settings(max_examples=3)
@given(cases=CASES)
def test_rfm_summary_and_churn_features(spark, cases):
    data, hostile, clean = _frames(spark, cases)
    key = lambda r: f"{r['case']}-{r['account_id']}"  # noqa: E731
    bad = _bad_by(data, key)
    positive = Counter({k: n for k, n in bad.items()})
    h, c = _per_account(hostile), _per_account(clean)
    _compare(
        rfm_summary(h, observation_end=AS_OF).collect(),
        rfm_summary(c, observation_end=AS_OF).collect(),
        lambda r: r["account_id"],
        "n_excluded",
        positive,
    )
    _compare(
        churn_features(h, as_of=AS_OF).collect(),
        churn_features(c, as_of=AS_OF).collect(),
        lambda r: r["account_id"],
        "excluded_rows",
        bad,
    )


@settings(max_examples=3)
@given(cases=CASES)
def test_nps_and_csat_count_non_finite_scores_as_invalid(spark, cases):
    from pyspark.sql import functions as F

    data, hostile, clean = _frames(spark, cases)
    bad = _bad_by(data, lambda r: r["case"])

    def scores(df, top):
        return df.withColumn("score", F.pmod(F.abs(F.col("amount")), F.lit(top + 1.0)))

    def csat_scores(df):
        return df.withColumn(
            "score", F.when(F.col("amount").isNull(), F.lit(None)).otherwise(F.col("amount"))
        ).withColumn("score", F.pmod(F.abs(F.col("score")), F.lit(5.0)) + F.lit(1.0))

    key = lambda r: r["case"]  # noqa: E731
    _compare(
        nps(scores(hostile, 10), by="case").collect(),
        nps(scores(clean, 10), by="case").collect(),
        key,
        "invalid",
        bad,
    )
    _compare(
        csat(csat_scores(hostile), by="case").collect(),
        csat(csat_scores(clean), by="case").collect(),
        key,
        "invalid",
        bad,
    )


def test_share_of_wallet_non_finite_gives_null(spark):
    rows = [(1.0 * i, w) for i, w in enumerate([100.0, math.nan, math.inf, -math.inf, None, 50.0])]
    rows += [(s, 10.0) for s in HOSTILE]
    TRIED["wallet"] += 2 * len(HOSTILE)
    df = spark.createDataFrame(rows, "spend double, wallet double")
    got = [(r.share_of_wallet, r.wallet_headroom) for r in share_of_wallet(df).collect()]
    assert got[0] == (0.0, 100.0)
    assert got[5] == (5.0 / 50.0, 45.0)
    for share, headroom in got[1:5] + got[6:]:
        assert share is None
        assert headroom is None


@pytest.fixture(scope="module", autouse=True)
def _report_tried():
    yield
    print(f"\nhostile values tried: {sum(TRIED.values())} {dict(TRIED)}")


def test_bigint_and_decimal_sums_do_not_overflow(spark):
    from decimal import Decimal

    big = 2**62
    huge = Decimal("9" * 38)
    TRIED["overflow"] += 8
    rows = [("a", dt.date(2024, 1, 1), big, huge), ("a", dt.date(2024, 1, 2), big, huge)]
    rows += [("b", dt.date(2024, 1, 3), big, huge), ("b", dt.date(2024, 1, 4), big, huge)]
    df = spark.createDataFrame(
        rows, "account_id string, order_date date, n bigint, d decimal(38,0)"
    )
    for column in ("n", "d"):
        expected = 2.0 * float(big if column == "n" else huge)
        got = {r.account_id: r.value for r in classify_accounts(df, value_col=column).collect()}
        assert got == {"a": pytest.approx(expected), "b": pytest.approx(expected)}
        prof = account_profitability(df, revenue_col=column, cost_col=column).collect()
        assert {r.account_id: r.revenue for r in prof} == got
        rfm = rfm_summary(df, value_col=column, observation_end="2024-02-01").collect()
        assert all(math.isfinite(r.monetary_value) for r in rfm)
        feats = churn_features(df, value_col=column, as_of="2024-02-01").collect()
        assert len(feats) == 2
