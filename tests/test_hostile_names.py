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
    for dup in (
        ["account_id", "order_date", "amount", "cost", "amount"],
        ["account_id", "order_date", "amount", "cost", "AMOUNT"],
    ):
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


# -- v0.2 families ------------------------------------------------------------------------------
# Each case: (plain schema, rows, hostile name of every column, call). The hostile names mix
# dots, backticks, spaces, unicode, names starting with "__kamlib_" (several equal to the
# function's own temporaries, upper and lower case) and names equal to an output column for
# inputs that are not kept (e.g. an amount called "mrr"). The call receives a dict
# plain -> actual name and the frames, and must give the same rows as with the plain names.
D = dt.date


def _v02_cases() -> dict[str, dict[str, Any]]:
    from kamlib.clv import discrete_rfm_summary
    from kamlib.growth import next_products, whitespace
    from kamlib.health import evaluate_health, health_score, health_trend
    from kamlib.hierarchy import roll_up, ultimate_parents
    from kamlib.recurring import cohort_retention, contract_mrr, mrr_bridge, mrr_movements

    contracts = (
        "case int, account_id string, start_date date, end_date date, amount double, "
        "interval_months int, product string",
        [
            (0, "a", D(2024, 1, 1), D(2024, 4, 1), 1200.0, 12, "x"),
            (0, "a", D(2024, 2, 1), None, 30.0, 1, "y"),
            (0, "b", D(2024, 1, 15), D(2024, 3, 1), 90.0, 3, "x"),
            (1, "a", D(2024, 3, 1), None, 10.0, 1, "x"),
            (1, "c", D(2024, 1, 1), D(2023, 1, 1), 10.0, 1, "x"),  # end < start: excluded
        ],
    )
    mrr = (
        "case int, account_id string, month date, mrr double",
        [
            (0, "a", D(2024, 1, 1), 100.0),
            (0, "b", D(2024, 1, 1), 50.0),
            (0, "a", D(2024, 2, 1), 120.0),
            (0, "c", D(2024, 2, 1), 30.0),
            (0, "b", D(2024, 4, 1), 20.0),
            (1, "a", D(2024, 1, 1), 10.0),
            (1, "a", D(2024, 2, 1), 5.0),
            (1, None, D(2024, 2, 1), 5.0),
        ],
    )
    tx = (
        "case int, account_id string, order_date date, amount double",
        [
            (0, "a", D(2024, 1, 5), 100.0),
            (0, "b", D(2024, 1, 9), 50.0),
            (0, "a", D(2024, 2, 9), 120.0),
            (0, "b", D(2024, 4, 9), 10.0),
            (1, "a", D(2023, 3, 1), 1.0),
            (1, "c", D(2024, 3, 1), 7.0),
            (1, "c", None, 7.0),
        ],
    )
    basket = (
        "segment string, account_id string, product string, amount double",
        [
            ("s", "a", "x", 10.0),
            ("s", "b", "x", 30.0),
            ("s", "b", "y", 5.0),
            ("s", "c", "z", 1.0),
            ("t", "d", "x", 4.0),
            ("t", "e", "y", 2.0),
            ("t", "e", "x", 8.0),
        ],
    )
    hier = (
        "account_id string, parent_id string",
        [("hq", None), ("eu", "hq"), ("de", "eu"), ("fr", "eu"), ("solo", None)],
    )
    signals = (
        "seg string, account_id string, usage double, tickets int, nps double",
        [
            ("s", "a", 90.0, 0, 50.0),
            ("s", "b", 40.0, 5, None),
            ("s", "c", 70.0, 1, -20.0),
            ("s", "d", None, 2, 10.0),
            ("t", "e", 10.0, 3, 0.0),
            ("t", "f", 20.0, 1, 80.0),
        ],
    )
    snapshots = (
        "account_id string, as_of date, health_score double, health_band string",
        [
            ("a", D(2024, 1, 1), 80.0, "green"),
            ("a", D(2024, 1, 31), 60.0, "yellow"),
            ("a", D(2024, 3, 1), 50.0, "yellow"),
            ("b", D(2024, 1, 1), 30.0, "red"),
            ("b", D(2024, 2, 1), None, None),
        ],
    )
    scores = (
        "account_id string, health_score double, health_band string",
        [("a", 10.0, "red"), ("b", 50.0, "yellow"), ("c", 90.0, "green"), ("d", 20.0, "red")],
    )
    labels = (
        "account_id string, churned boolean",
        [("a", True), ("b", False), ("c", False), ("d", False)],
    )
    log = (
        "account_id string, day date",
        [("a", D(2020, 3, 1)), ("a", D(2022, 5, 1)), ("b", D(2021, 1, 1)), ("c", None)],
    )
    return {
        "contract_mrr": {
            "frames": [contracts],
            "names": {
                "case": "__KAMLIB_case",
                "account_id": "acct.id",
                "start_date": "__kamlib_s",  # the function's own temporary
                "end_date": "end date",
                "amount": "mrr",  # an output column; amounts are not kept
                "interval_months": "int`m",
                "product": "prödukt €",
            },
            "call": lambda n, f: contract_mrr(
                f[0],
                account_col=n["account_id"],
                start_col=n["start_date"],
                end_col=n["end_date"],
                amount_col=n["amount"],
                interval_months_col=n["interval_months"],
                product_col=n["product"],
                by=n["case"],
            ),
        },
        "mrr_movements": {
            "frames": [mrr],
            "names": {
                "case": "c.a.s.e",
                "account_id": "__kamlib_col0__",
                "month": "mö`nth",
                "mrr": "previous_mrr",
            },
            "call": lambda n, f: mrr_movements(
                f[0],
                account_col=n["account_id"],
                month_col=n["month"],
                mrr_col=n["mrr"],
                by=[n["case"]],
            ),
        },
        "mrr_bridge": {
            "frames": [mrr],
            "names": {
                "case": "__kamlib_col1__",
                "account_id": "a b",
                "month": "__kamlib_m",
                "mrr": "arr",
            },
            "call": lambda n, f: mrr_bridge(
                f[0],
                account_col=n["account_id"],
                month_col=n["month"],
                mrr_col=n["mrr"],
                by=n["case"],
            ),
        },
        "cohort_retention": {
            "frames": [tx],
            "names": {
                "case": "ca se",
                "account_id": "acct.id",
                "order_date": "__kamlib_p",
                "amount": "revenue",
            },
            "call": lambda n, f: cohort_retention(
                f[0],
                account_col=n["account_id"],
                date_col=n["order_date"],
                value_col=n["amount"],
                by=n["case"],
            ),
        },
        "whitespace": {
            "frames": [basket],
            "names": {
                "segment": "__kamlib_segment",
                "account_id": "acct.id",
                "product": "prod`x",
                "amount": "headroom",
            },
            "call": lambda n, f: whitespace(
                f[0],
                account_col=n["account_id"],
                product_col=n["product"],
                value_col=n["amount"],
                segment_col=n["segment"],
            ),
        },
        "next_products": {
            "frames": [basket],
            "names": {
                "segment": "s.eg",
                "account_id": "a`b c",
                "product": "rank",
                "amount": "__kamlib_a",
            },
            "call": lambda n, f: next_products(
                f[0], account_col=n["account_id"], product_col=n["product"], min_support=0.2
            ),
        },
        "ultimate_parents": {
            "frames": [hier],
            "names": {"account_id": "acct.id", "parent_id": "__kamlib_p"},
            "call": lambda n, f: ultimate_parents(
                f[0], account_col=n["account_id"], parent_col=n["parent_id"]
            ),
        },
        "roll_up": {
            "frames": [tx, hier],
            "names": {
                "case": "__kamlib_acc",
                "account_id": "acct.id",
                "order_date": "dä te",
                "amount": "ultimate_parent_id.x",
                "parent_id": "par`ent",
            },
            "call": lambda n, f: roll_up(
                f[0],
                f[1],
                account_col=n["account_id"],
                parent_col=n["parent_id"],
                original_col="orig",
            ),
        },
        "health_score": {
            "frames": [signals],
            "names": {
                "seg": "se g",
                "account_id": "acct.id",
                "usage": "usage.x",
                "tickets": "tick`ets",
                "nps": "__kamlib_s",
            },
            "call": lambda n, f: health_score(
                f[0],
                weights={n["usage"]: 2, n["tickets"]: 1, n["nps"]: 1},
                lower_is_better=[n["tickets"]],
                by=n["seg"],
                critical={n["nps"]: -10},
            ),
        },
        "health_score_thresholds": {
            "frames": [signals],
            "names": {
                "seg": "seg",
                "account_id": "acct.id",
                "usage": "ü",
                "tickets": "__KAMLIB_t",
                "nps": "n p s",
            },
            "call": lambda n, f: health_score(
                f[0],
                weights={n["usage"]: 1, n["tickets"]: 1},
                method="thresholds",
                thresholds={n["usage"]: (20, 80), n["tickets"]: (4, 0)},
                critical={n["nps"]: 0},
            ),
        },
        "health_trend": {
            "frames": [snapshots],
            "names": {
                "account_id": "__kamlib_t",
                "as_of": "as.of",
                "health_score": "sc`ore",
                "health_band": "band €",
            },
            "call": lambda n, f: health_trend(
                f[0],
                account_col=n["account_id"],
                as_of_col=n["as_of"],
                score_col=n["health_score"],
                band_col=n["health_band"],
            ),
        },
        "evaluate_health": {
            "frames": [scores, labels],
            "names": {
                "account_id": "__kamlib_s",
                "health_score": "s.c",
                "health_band": "b`d",
                "churned": "__kamlib_y",
            },
            "call": lambda n, f: evaluate_health(
                f[0],
                f[1],
                account_col=n["account_id"],
                score_col=n["health_score"],
                band_col=n["health_band"],
                label_col=n["churned"],
            ),
        },
        "discrete_rfm_summary": {
            "frames": [log],
            "names": {"account_id": "acct.id", "day": "__kamlib_drfm_day"},
            "call": lambda n, f: discrete_rfm_summary(
                f[0], account_col=n["account_id"], date_col=n["day"], period="year"
            ),
        },
    }


V02 = _v02_cases()


def _frames(spark, case: dict[str, Any], rename: dict[str, str] | None) -> list[Any]:
    out = []
    for schema, rows in case["frames"]:
        df = spark.createDataFrame(rows, schema)
        if rename:
            df = df.toDF(*[rename.get(c, c) for c in df.columns])
        out.append(df)
    return out


@pytest.mark.parametrize("name", sorted(V02))
def test_v02_hostile_names_give_the_same_result(spark, name):
    case = V02[name]
    rename = case["names"]
    plain = case["call"]({c: c for c in rename}, _frames(spark, case, None))
    hostile = case["call"](rename, _frames(spark, case, rename))
    TRIED[f"v02 {name}"] += len(rename)
    expected = _rows(plain)
    assert expected, "the plain case must produce rows"
    # Inputs named like an output column ("mrr", "revenue", ...) are not kept: only the
    # hostile names that are not output names map back to the plain ones.
    kept = {p: h for p, h in rename.items() if h not in plain.columns}
    _same(_rows(hostile, kept), expected)


def _poisoned(spark, schema: str, names: list[str]):
    """A frame whose data raises if any job reads it (so SchemaError must come first)."""
    from pyspark.sql import functions as F

    cols = [part.strip().split(" ", 1) for part in schema.split(",")]
    boom = F.raise_error(F.lit("a Spark job ran"))
    return (
        spark.range(1)
        .select(*[boom.cast(t).alias(f"c{i}") for i, (_, t) in enumerate(cols)])
        .toDF(*names)
    )


@pytest.mark.parametrize("name", sorted(V02))
def test_v02_duplicate_names_are_a_schema_error_before_any_job(spark, name):
    case = V02[name]
    plain = {c: c for c in case["names"]}
    for which in range(len(case["frames"])):
        for upper in (False, True):
            frames = []
            for i, (schema, _) in enumerate(case["frames"]):
                names = [part.strip().split()[0] for part in schema.split(",")]
                if i == which:
                    names = [*names[:-1], names[0].upper() if upper else names[0]]
                frames.append(_poisoned(spark, schema, names))
            TRIED["v02 duplicates"] += 1
            with pytest.raises(SchemaError, match="duplicate column names") as info:
                case["call"](plain, frames)
            assert info.value.expected == "unique column names"


def test_v02_schema_errors_name_the_users_column_even_if_it_looks_private(spark):
    from kamlib.health import health_trend

    # "__kamlib_col1__" becomes the private name "__kamlib_col0__" and "a.b" "__kamlib_col1__":
    # the message must be translated back in one pass, not chained into 'a.b'.
    df = spark.createDataFrame(
        [("x", "a", dt.date(2024, 1, 1))], "`__kamlib_col1__` string, `a.b` string, d date"
    )
    TRIED["v02 messages"] += 1
    with pytest.raises(SchemaError, match="column '__kamlib_col1__' must be numeric") as info:
        health_trend(
            df, account_col="a.b", as_of_col="d", score_col="__kamlib_col1__", band_col=None
        )
    assert info.value.column == "__kamlib_col1__"
    assert "a.b" not in str(info.value)
