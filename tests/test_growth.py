"""kamlib.growth: whitespace and next_products vs pure-Python references."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kamlib import SchemaError
from kamlib.growth import next_products, whitespace
from kamlib.testing import stack_cases, to_dataframe
from tests.reference import growth as ref

SCHEMA = "case int, account_id string, product string, amount double"

amounts = st.one_of(
    st.integers(0, 50).map(float),
    st.just(-3.0),
    st.none(),
    st.just(math.nan),
    st.just(math.inf),
)


@st.composite
def ws_case(draw):
    n = draw(st.integers(1, 12))
    return [
        {
            "account_id": draw(st.sampled_from(["a", "b", "c", "d", "e", None])),
            "product": draw(st.sampled_from(["p", "q", "r", None])),
            "amount": draw(amounts),
        }
        for _ in range(n)
    ]


@settings(max_examples=3, deadline=None)
@given(cases=st.lists(ws_case(), min_size=1, max_size=40))
def test_whitespace_matches_reference(spark, cases):
    df = to_dataframe(spark, stack_cases(cases), SCHEMA)
    out = whitespace(df, segment_col="case")
    assert out.columns == [
        "case",
        "account_id",
        "product",
        "revenue",
        "bought",
        "penetration",
        "peer_revenue",
        "headroom",
    ]
    actual = {(r["case"], r["account_id"], r["product"]): r.asDict() for r in out.collect()}
    expected = {
        key: row
        for i, rows in enumerate(cases)
        for key, row in ref.whitespace([{**r, "case": i} for r in rows], segment="case").items()
    }
    assert set(actual) == set(expected)
    for key, exp in expected.items():
        got = actual[key]
        assert got["bought"] == exp["bought"]
        for col in ("revenue", "penetration", "peer_revenue", "headroom"):
            assert got[col] == pytest.approx(exp[col], rel=1e-12, abs=1e-12), (key, col)


@pytest.mark.connect
def test_whitespace_exact_median_and_no_segment(spark):
    rows = [
        {"account_id": "a", "product": "x", "amount": 1.0},
        {"account_id": "b", "product": "x", "amount": 2.0},
        {"account_id": "c", "product": "x", "amount": 10.0},
        {"account_id": "d", "product": "x", "amount": 100.0},
        {"account_id": "d", "product": "y", "amount": -5.0},
        {"account_id": "e", "product": "y", "amount": None},
    ]
    df = to_dataframe(spark, rows, "account_id string, product string, amount double")
    out = whitespace(df)
    assert out.columns == [
        "account_id",
        "product",
        "revenue",
        "bought",
        "penetration",
        "peer_revenue",
        "headroom",
    ]
    got = {r.account_id: r for r in out.collect()}
    assert set(got) == {"a", "b", "c", "d"}  # e has no valid row; y never bought
    assert {r.product for r in got.values()} == {"x"}
    assert got["a"].peer_revenue == 6.0  # (2 + 10) / 2, exact
    assert got["a"].headroom == 5.0
    assert got["d"].headroom == 0.0
    assert got["a"].penetration == 1.0


def test_whitespace_schema_errors(spark):
    df = to_dataframe(
        spark,
        [{"account_id": "a", "product": "x", "amount": "1"}],
        "account_id string, product string, amount string",
    )
    with pytest.raises(SchemaError, match="must be numeric"):
        whitespace(df)
    with pytest.raises(SchemaError, match="segment_col"):
        whitespace(df.withColumn("amount", df.amount.cast("double")), segment_col="industry")


def _baskets(draw):
    n = draw(st.integers(3, 15))
    return {
        f"a{j}": draw(st.sets(st.sampled_from("pqrst"), min_size=1, max_size=4)) for j in range(n)
    }


@settings(max_examples=10, deadline=None)
@given(data=st.data())
def test_next_products_matches_reference(spark, data):
    baskets = _baskets(data.draw)
    k = data.draw(st.integers(1, 3))
    support = data.draw(st.sampled_from([0.1, 0.2, 0.34]))
    conf = data.draw(st.sampled_from([0.0, 0.3, 0.6]))
    rows = [{"account_id": a, "product": p} for a, b in baskets.items() for p in sorted(b)]
    df = to_dataframe(spark, rows, "account_id string, product string")
    out = next_products(df, k=k, min_support=support, min_confidence=conf).collect()
    got: dict[str, list] = {}
    for r in sorted(out, key=lambda r: (r.account_id, r["rank"])):
        got.setdefault(r.account_id, []).append((r.recommended_product, r.confidence, r.lift))
        assert r.recommended_product not in baskets[r.account_id]
    expected = ref.next_products(baskets, k=k, min_support=support, min_confidence=conf)
    assert set(got) == set(expected)
    for a, recs in expected.items():
        assert [p for p, _, _ in got[a]] == [p for p, _, _ in recs], a
        for (_, c, lift), (_, ce, le) in zip(got[a], recs, strict=True):
            assert c == pytest.approx(ce)
            assert lift == pytest.approx(le)


def test_next_products_with_more_items_than_one_mask_word(spark):
    # 70 products (two 63-bit mask words): account j buys products 2j, 2j+1, 2j+2 (mod 70)
    baskets = {f"a{j:02d}": {f"p{(2 * j + d) % 70:02d}" for d in range(3)} for j in range(35)}
    rows = [{"account_id": a, "product": p} for a, b in baskets.items() for p in sorted(b)]
    df = to_dataframe(spark, rows, "account_id string, product string")
    out = next_products(df, k=2, min_support=0.02, min_confidence=0.1).collect()
    got = {}
    for r in sorted(out, key=lambda r: (r.account_id, r["rank"])):
        got.setdefault(r.account_id, []).append((r.recommended_product, r.confidence, r.lift))
    expected = ref.next_products(baskets, k=2, min_support=0.02, min_confidence=0.1)
    assert len(expected) == 35
    assert got.keys() == expected.keys()
    for a, recs in expected.items():
        assert [p for p, _, _ in got[a]] == [p for p, _, _ in recs], a
        for (_, c, lift), (_, ce, le) in zip(got[a], recs, strict=True):
            assert c == pytest.approx(ce)
            assert lift == pytest.approx(le)


@pytest.mark.connect
def test_next_products_example(spark):
    rows = [("a", "x"), ("a", "y"), ("b", "x"), ("b", "y"), ("c", "x"), ("d", "z")]
    df = to_dataframe(
        spark,
        [{"account_id": a, "product": p} for a, p in rows],
        "account_id string, product string",
    )
    out = next_products(df, min_support=0.2, min_confidence=0.1).collect()
    assert [(r.account_id, r["rank"], r.recommended_product) for r in out] == [("c", 1, "y")]
    assert out[0].confidence == pytest.approx(2 / 3)
    assert out[0].lift == pytest.approx((2 / 3) / 0.5)
    with pytest.raises(SchemaError, match="k="):
        next_products(df, k=0)
