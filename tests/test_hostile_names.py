"""Any column name Spark allows works; duplicate or colliding names are a SchemaError.

Property: renaming the input columns to hostile names (dots, backticks, spaces, unicode,
names equal to Spark keywords) and passing those names gives the same result as the plain
names, with the result's columns renamed the same way. Many cases share ONE DataFrame.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kamlib import SchemaError
from kamlib.churn import churn_features
from kamlib.classify import classify_accounts, concentration
from kamlib.clv import rfm_summary
from kamlib.nps import csat, nps
from kamlib.profitability import account_profitability
from kamlib.retention import retention_rates, revenue_bridge
from kamlib.testing import stack_cases, to_dataframe
from kamlib.wallet import share_of_wallet

TRIED: Counter[str] = Counter()
PLAIN = ["case", "account_id", "order_date", "amount", "cost"]
SCHEMA = "case int, account_id string, order_date date, amount double, cost double"
START = dt.date(2024, 1, 1)

_PIECES = st.sampled_from([".", "`", " ", "ü", "€", "-", "a", "b", "1", "é", "``", "..", "select"])
HOSTILE_NAME = (
    st.lists(_PIECES, min_size=1, max_size=5)
    .map("".join)
    .filter(lambda s: s.strip() == s and s != "")
)


@st.composite
def renamings(draw: st.DrawFn) -> dict[str, str]:
    names = draw(st.lists(HOSTILE_NAME, min_size=5, max_size=5, unique_by=str.lower))
    TRIED["names"] += len(names)
    return dict(zip(PLAIN, names, strict=True))


ROWS = st.lists(
    st.fixed_dictionaries(
        {
            "account_id": st.sampled_from("abcd"),
            "order_date": st.integers(0, 300).map(lambda d: START + dt.timedelta(days=d)),
            "amount": st.integers(-20, 500).map(float),
            "cost": st.integers(0, 100).map(float),
        }
    ),
    min_size=1,
    max_size=8,
)


def _rows(df, rename: dict[str, str] | None = None) -> list[dict[str, Any]]:
    back = {v: k for k, v in (rename or {}).items()}
    out = [{back.get(k, k): v for k, v in r.asDict().items()} for r in df.collect()]
    return sorted(out, key=lambda r: repr(sorted((k, repr(v)) for k, v in r.items())))


def _same(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert set(x) == set(y)
        for k in x:
            if isinstance(x[k], float) and isinstance(y[k], float):
                assert math.isclose(x[k], y[k], rel_tol=1e-9, abs_tol=1e-12) or (
                    math.isnan(x[k]) and math.isnan(y[k])
                )
            else:
                assert x[k] == y[k], k


def _calls(n: dict[str, str]):
    acc, date, amt, cost, case = n["account_id"], n["order_date"], n["amount"], n["cost"], n["case"]
    tx = {"account_col": acc, "date_col": date, "value_col": amt}
    return {
        "classify_accounts": lambda df: classify_accounts(
            df, account_col=acc, value_col=amt, by=case
        ),
        "concentration": lambda df: concentration(df, account_col=acc, value_col=amt, by=[case]),
        "share_of_wallet": lambda df: share_of_wallet(df, spend_col=cost, wallet_col=amt),
        "nps": lambda df: nps(df, score_col=cost, by=case),
        "csat": lambda df: csat(df, score_col=cost, by=case),
        "retention_rates": lambda df: retention_rates(df, **tx, by=case),
        "revenue_bridge": lambda df: revenue_bridge(df, **tx, by=case),
        "account_profitability": lambda df: account_profitability(
            df, account_col=acc, revenue_col=amt, cost_col=cost, by=case
        ),
        "churn_features": lambda df: churn_features(df, as_of="2025-01-01", **tx),
        "rfm_summary": lambda df: rfm_summary(df, observation_end="2025-01-01", **tx),
    }


@settings(max_examples=3)
@given(cases=st.lists(ROWS, min_size=1, max_size=6), rename=renamings())
def test_hostile_names_give_the_same_result(spark, cases, rename):
    data = stack_cases(cases)
    plain = to_dataframe(spark, data, SCHEMA)
    hostile = plain.toDF(*[rename[c] for c in PLAIN])
    identity = {c: c for c in PLAIN}
    for name, call in _calls(rename).items():
        TRIED[name] += 1
        _same(_rows(call(hostile), rename), _rows(_calls(identity)[name](plain)))


def test_duplicate_names_are_a_schema_error(spark):
    df = spark.createDataFrame(
        [("a", dt.date(2024, 1, 1), 1.0, 1.0, 1.0)],
        "account_id string, order_date date, amount double, cost double, x double",
    )
    for dup in (["account_id", "order_date", "amount", "cost", "amount"],
                ["account_id", "order_date", "amount", "cost", "AMOUNT"]):  # fmt: skip
        bad = df.toDF(*dup)
        for name, call in _calls(dict(zip(PLAIN, ["account_id", *dup[:4]], strict=True))).items():
            if name in {"nps", "csat", "share_of_wallet"}:
                continue  # by=/score columns differ; covered by the generic rule below
            TRIED["duplicates"] += 1
            with pytest.raises(SchemaError, match="duplicate column names") as info:
                call(bad)
            assert info.value.expected == "unique column names"


@pytest.mark.parametrize(
    ("func", "kwargs", "taken"),
    [
        (classify_accounts, {"account_col": "value"}, "value"),
        (classify_accounts, {"account_col": "abc_tier"}, "abc_tier"),
        (retention_rates, {"account_col": "period"}, "period"),
        (revenue_bridge, {"account_col": "movement"}, "movement"),
        (account_profitability, {"account_col": "revenue", "revenue_col": "amount"}, "revenue"),
    ],
)
def test_account_named_like_an_output_is_a_schema_error(spark, func, kwargs, taken):
    TRIED["collisions"] += 1
    df = spark.createDataFrame(
        [("a", dt.date(2024, 1, 1), 1.0, 1.0)],
        f"`{taken}` string, order_date date, amount double, cost double",
    )
    with pytest.raises(SchemaError, match="clashes with an output column") as info:
        func(df, **kwargs)
    assert info.value.column == taken
    assert info.value.argument == "account_col"


def test_schema_errors_name_the_users_column(spark):
    df = spark.createDataFrame([("a", "x")], "`acct.id` string, `amt usd` string")
    with pytest.raises(SchemaError, match="column 'amt usd' must be numeric") as info:
        classify_accounts(df, account_col="acct.id", value_col="amt usd")
    assert info.value.column == "amt usd"
    assert "__kamlib" not in str(info.value)


@pytest.fixture(scope="module", autouse=True)
def _report_tried():
    yield
    print(f"\nhostile names tried: {sum(TRIED.values())} {dict(TRIED)}")
