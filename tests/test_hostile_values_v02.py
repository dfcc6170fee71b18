"""Bad values never leak in the v0.2 families: NaN / ±inf are invalid, huge numbers never overflow.

One DataFrame per function holds many hostile cases (NaN, inf, -inf, null, 1e308, bigint max,
decimal(38,0) near its limit), told apart by a ``case`` column (``by=`` or the account), so each
function runs a handful of Spark jobs. References are written from the documented formulas in
pure Python (invalid values filtered first), never from kamlib's output.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter, defaultdict
from decimal import Decimal
from typing import Any

import pytest

from kamlib.clv import discrete_rfm_summary, rfm_summary
from kamlib.growth import whitespace
from kamlib.health import health_score, health_trend
from kamlib.recurring import cohort_retention, contract_mrr

D = dt.date
NAN, INF = float("nan"), float("inf")
BIG = 9223372036854775807  # bigint max
DEC = Decimal("9" * 37)  # decimal(38,0), two of them overflow a decimal(38,0) sum
HOSTILE = [NAN, INF, -INF, None, 1e308, 0.0, -1.0, 5.0]
TRIED: Counter[str] = Counter()


def _second(v: Any) -> Any:
    """The value of a second row summed with ``v``: two 1e308 would overflow to inf (then
    inf - inf = NaN downstream, a property of IEEE doubles, not of bad input)."""
    return 1.0 if v == 1e308 else v


def _finite(v: Any) -> bool:
    return v is not None and math.isfinite(float(v))


def _close(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) or isinstance(b, float):
        a, b = float(a), float(b)
        if math.isinf(a) or math.isinf(b):
            return a == b
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    return bool(a == b)


def _assert_rows(got: dict[Any, dict[str, Any]], want: dict[Any, dict[str, Any]]) -> None:
    assert set(got) == set(want), (sorted(map(repr, got)), sorted(map(repr, want)))
    for key, row in want.items():
        for col, value in row.items():
            assert _close(got[key][col], value), (key, col, got[key][col], value)


def _no_nan(rows: list[Any], only: tuple[str, ...] = ()) -> None:
    """No NaN in any output column (or in the columns ``only``, for pass-through inputs)."""
    for r in rows:
        for k, v in r.asDict().items():
            if not only or k in only:
                assert not (isinstance(v, float) and math.isnan(v)), (k, r)


# -- contract_mrr -------------------------------------------------------------------------------
# Every case: a valid contract of account "ok" (12 / month) plus hostile contracts of account "h".
# Columns amount (double), amount_big (bigint), amount_dec (decimal(38,0)) are read in turn.
MRR_SCHEMA = (
    "case int, account_id string, start_date date, end_date date, amount double, "
    "amount_big bigint, amount_dec decimal(38,0), interval_months double"
)
MRR_HOSTILE: list[tuple[Any, Any, Any, Any]] = [
    # (amount, amount_big, amount_dec, interval)
    *[(a, 1, Decimal(1), 1.0) for a in HOSTILE],
    *[(12.0, 1, Decimal(1), i) for i in (NAN, INF, -INF, None, 0.0, 1.5, -3.0, 1e308, 3.0)],
    (12.0, BIG, DEC, 1.0),
    (1e308, BIG, DEC, 2.0),
]


def _mrr_rows() -> list[tuple[Any, ...]]:
    rows = []
    for case, (amount, big, dec, interval) in enumerate(MRR_HOSTILE):
        rows.append((case, "ok", D(2024, 1, 1), None, 12.0, 12, Decimal(12), 1.0))
        # two copies that differ in the start month, so they are not exact duplicates
        rows.append((case, "h", D(2024, 1, 1), None, amount, big, dec, interval))
        rows.append((case, "h", D(2024, 2, 1), None, amount, big, dec, interval))
    return rows


def _mrr_reference(column: int) -> dict[Any, dict[str, Any]]:
    """MRR = sum over active contracts of amount / interval; months Jan..Mar 2024."""
    want: dict[Any, dict[str, Any]] = {}
    for case, row in enumerate(MRR_HOSTILE):
        amount, interval = row[column], row[3]
        ok = (
            _finite(amount)
            and float(amount) >= 0
            and _finite(interval)
            and interval > 0
            and float(interval).is_integer()
        )
        excluded = 0 if ok else 2
        for m in (1, 2, 3):
            want[(case, "ok", D(2024, m, 1))] = {"mrr": 12.0, "excluded_rows": excluded}
            if ok:
                mrr = float(amount) / float(interval) * (1 if m == 1 else 2)
                if mrr > 0:
                    want[(case, "h", D(2024, m, 1))] = {"mrr": mrr, "excluded_rows": excluded}
    return want


def test_contract_mrr_hostile_values(spark):
    df = spark.createDataFrame(_mrr_rows(), MRR_SCHEMA)
    for column, name in ((0, "amount"), (1, "amount_big"), (2, "amount_dec")):
        out = contract_mrr(df, amount_col=name, by="case", observation_end="2024-03-31")
        rows = out.collect()
        TRIED["contract_mrr"] += len(MRR_HOSTILE)
        _no_nan(rows)
        got = {(r.case, r.account_id, r.month): r.asDict() for r in rows}
        _assert_rows(got, _mrr_reference(column))


# -- cohort_retention ---------------------------------------------------------------------------
TX_SCHEMA = (
    "case int, account_id string, order_date date, amount double, big bigint, dec decimal(38,0)"
)
TX_HOSTILE: list[tuple[Any, Any, Any]] = [
    *[(v, 1, Decimal(1)) for v in HOSTILE],
    (1.0, BIG, DEC),
    (-1e308, -BIG, -DEC),
]


def _tx_rows() -> list[tuple[Any, ...]]:
    rows = []
    for case, (v, big, dec) in enumerate(TX_HOSTILE):
        rows += [
            (case, "ok", D(2024, 1, 5), 10.0, 10, Decimal(10)),
            (case, "ok", D(2024, 2, 5), 10.0, 10, Decimal(10)),
            # two rows of "h" in January: sums of bigint max / decimal(38,0) must not overflow
            (case, "h", D(2024, 1, 10), v, big, dec),
            (case, "h", D(2024, 1, 20), _second(v), big, dec),
            (case, "h", D(2024, 3, 1), 1.0, 1, Decimal(1)),
        ]
    return rows


def _cohort_reference(rows: list[tuple[Any, ...]], col: int) -> dict[Any, dict[str, Any]]:
    """The docstring formula: V = max(sum of valid values, 0); cohort = first period V > 0."""
    excluded: Counter[int] = Counter()
    sums: dict[tuple[int, str, int], float] = defaultdict(float)
    last: dict[int, int] = {}
    for row in rows:
        case, acct, day, value = row[0], row[1], row[2], row[col]
        if not _finite(value):
            excluded[case] += 1
            continue
        p = day.year * 12 + day.month - 1
        sums[(case, acct, p)] += float(value)
        last[case] = max(last.get(case, p), p)
    v = {k: max(s, 0.0) for k, s in sums.items() if s > 0}
    cohort: dict[tuple[int, str], int] = {}
    for case, acct, p in sorted(v):
        cohort.setdefault((case, acct), p)
    want: dict[Any, dict[str, Any]] = {}
    for case in last:
        for c in sorted({p for (k, _), p in cohort.items() if k == case}):
            members = [a for (k, a), p in cohort.items() if k == case and p == c]
            r0 = sum(v[(case, a, c)] for a in members)
            for k in range(last[case] - c + 1):
                vals = [v.get((case, a, c + k), 0.0) for a in members]
                active = sum(1 for x in vals if x > 0)
                revenue = sum(vals)
                want[(case, D(c // 12, c % 12 + 1, 1), k)] = {
                    "cohort_accounts": len(members),
                    "active_accounts": active,
                    "revenue": revenue,
                    "logo_retention": active / len(members),
                    "revenue_retention": revenue / r0,
                    "excluded_rows": excluded[case],
                }
    return want


def test_cohort_retention_hostile_values(spark):
    rows = _tx_rows()
    df = spark.createDataFrame(rows, TX_SCHEMA)
    for col, name in ((3, "amount"), (4, "big"), (5, "dec")):
        out = cohort_retention(df, value_col=name, by="case").collect()
        TRIED["cohort_retention"] += len(TX_HOSTILE)
        _no_nan(out)
        got = {(r.case, r.cohort, r.period_number): r.asDict() for r in out}
        _assert_rows(got, _cohort_reference(rows, col))


# -- whitespace ---------------------------------------------------------------------------------
def _ws_reference(rows: list[tuple[Any, ...]], col: int) -> dict[Any, dict[str, Any]]:
    spent: dict[tuple[int, str, str], float] = defaultdict(float)
    accounts: dict[int, set[str]] = defaultdict(set)
    for row in rows:
        seg, acct, prod, value = row[0], row[1], row[2], row[col]
        if acct is None or prod is None or not _finite(value) or float(value) < 0:
            continue
        spent[(seg, acct, prod)] += float(value)
        accounts[seg].add(acct)
    want: dict[Any, dict[str, Any]] = {}
    for seg, members in accounts.items():
        products = {p for (s, _, p), r in spent.items() if s == seg and r > 0}
        for p in products:
            buyers = sorted(r for (s, _, q), r in spent.items() if s == seg and q == p and r > 0)
            n = len(buyers)
            lo, hi = buyers[(n - 1) // 2], buyers[n // 2]
            median = lo + (hi - lo) / 2  # the midpoint, without overflowing lo + hi
            for a in members:
                r = spent.get((seg, a, p), 0.0)
                want[(seg, a, p)] = {
                    "revenue": r,
                    "bought": r > 0,
                    "penetration": n / len(members),
                    "peer_revenue": median,
                    "headroom": max(median - r, 0.0),
                }
    return want


def test_whitespace_hostile_values(spark):
    rows = []
    for case, (v, big, dec) in enumerate(TX_HOSTILE):
        rows += [
            (case, "a", "x", 10.0, 10, Decimal(10)),
            (case, "b", "x", 30.0, 30, Decimal(30)),
            (case, "b", "y", v, big, dec),
            (case, "b", "y", _second(v), big, dec),
            (case, "c", "y", v, big, dec),  # c only has hostile rows
        ]
    df = spark.createDataFrame(
        rows,
        "case int, account_id string, product string, amount double, big bigint, dec decimal(38,0)",
    )
    for col, name in ((3, "amount"), (4, "big"), (5, "dec")):
        out = whitespace(df, value_col=name, segment_col="case").collect()
        TRIED["whitespace"] += len(TX_HOSTILE)
        _no_nan(out)
        got = {(r.case, r.account_id, r.product): r.asDict() for r in out}
        _assert_rows(got, _ws_reference(rows, col))


# -- health_score -------------------------------------------------------------------------------
HS_SCHEMA = "case int, account_id string, usage double, big bigint, dec decimal(38,0), t int"


def _pr(values: dict[str, Any], lower: bool) -> dict[str, float | None]:
    """Min-tie percent rank among the finite values; None for invalid ones."""
    ok = {a: float(v) for a, v in values.items() if _finite(v)}
    out: dict[str, float | None] = dict.fromkeys(values)
    m = len(ok)
    for a, v in ok.items():
        below = sum(1 for w in ok.values() if (w > v if lower else w < v))
        out[a] = 0.0 if m == 1 else below / (m - 1)
    return out


def _combine(parts: list[tuple[float, float | None]]) -> float | None:
    num = sum(w * s for w, s in parts if s is not None)
    den = sum(w for w, s in parts if s is not None)
    return None if den == 0 else 100.0 * num / den


def _band(score: float | None, red: bool) -> str | None:
    if red:
        return "red"
    if score is None:
        return None
    return "red" if score < 40 else "yellow" if score < 70 else "green"


def test_health_score_hostile_values(spark):
    rows = []
    for case, (v, big, dec) in enumerate(TX_HOSTILE):
        rows += [
            (case, "a", v, big, dec, 1),
            (case, "b", 3.0, 3, Decimal(3), 2),
            (case, "c", -7.0, -7, Decimal(-7), 0),
            (case, "d", None, None, None, None),
        ]
    df = spark.createDataFrame(rows, HS_SCHEMA)
    for idx, name in ((2, "usage"), (3, "big"), (4, "dec")):
        pct = health_score(
            df, weights={name: 2, "t": 1}, lower_is_better=["t"], by="case", critical={name: -5}
        ).collect()
        thr = health_score(
            df,
            weights={name: 1, "t": 1},
            method="thresholds",
            thresholds={name: (0, 10), "t": (2, 0)},
        ).collect()
        TRIED["health_score"] += 2 * len(TX_HOSTILE)
        _no_nan(pct, ("health_score",))
        _no_nan(thr, ("health_score",))
        want_pct: dict[Any, dict[str, Any]] = {}
        want_thr: dict[Any, dict[str, Any]] = {}
        for case in range(len(TX_HOSTILE)):
            mine = [r for r in rows if r[0] == case]
            u = _pr({r[1]: r[idx] for r in mine}, lower=False)
            t = _pr({r[1]: r[5] for r in mine}, lower=True)
            for r in mine:
                score = _combine([(2.0, u[r[1]]), (1.0, t[r[1]])])
                red = _finite(r[idx]) and float(r[idx]) <= -5
                want_pct[(case, r[1])] = {"health_score": score, "health_band": _band(score, red)}
                su = min(max(float(r[idx]) / 10.0, 0.0), 1.0) if _finite(r[idx]) else None
                st = None if r[5] is None else min(max((r[5] - 2) / -2.0, 0.0), 1.0)
                score = _combine([(1.0, su), (1.0, st)])
                want_thr[(case, r[1])] = {"health_score": score, "health_band": _band(score, False)}
        _assert_rows({(r.case, r.account_id): r.asDict() for r in pct}, want_pct)
        _assert_rows({(r.case, r.account_id): r.asDict() for r in thr}, want_thr)


# -- health_trend -------------------------------------------------------------------------------
def _slope(points: list[tuple[float, float]]) -> float | None:
    if len({t for t, _ in points}) < 2:
        return None
    tm = sum(t for t, _ in points) / len(points)
    ym = sum(y for _, y in points) / len(points)
    num = sum((t - tm) * (y - ym) for t, y in points)
    den = sum((t - tm) ** 2 for t, _ in points)
    return 30.0 * num / den


def test_health_trend_hostile_values(spark):
    d = [D(2024, 1, 1), D(2024, 1, 31), D(2024, 3, 1)]
    series: dict[str, list[tuple[dt.date, Any]]] = {
        f"v{i}": [(d[0], v), (d[1], 50.0), (d[2], 60.0)] for i, v in enumerate(HOSTILE)
    }
    series.update(
        {f"last{i}": [(d[0], 50.0), (d[1], 40.0), (d[2], v)] for i, v in enumerate(HOSTILE)}
    )
    series["one"] = [(d[0], 10.0)]
    series["one_valid"] = [(d[0], NAN), (d[1], 10.0), (d[2], INF)]
    series["same_day"] = [(d[0], 10.0), (d[0], 20.0)]
    series["none"] = [(d[0], None), (d[1], NAN)]
    rows = [(a, day, y, None if not _finite(y) else "g") for a, s in series.items() for day, y in s]
    df = spark.createDataFrame(rows, "account_id string, as_of date, score double, band string")
    out = health_trend(df, score_col="score", band_col="band").collect()
    TRIED["health_trend"] += len(series)
    _no_nan(out)
    epoch = D(1970, 1, 1)
    want: dict[Any, dict[str, Any]] = {}
    for a, s in series.items():
        ordered = sorted(s, key=lambda p: p[0])
        ys = [float(y) if _finite(y) else None for _, y in ordered]
        points = [
            ((day - epoch).days, y)
            for (day, _), y in zip(ordered, ys, strict=True)
            if y is not None
        ]
        change = None
        if len(ys) > 1 and ys[-1] is not None and ys[-2] is not None:
            change = ys[-1] - ys[-2]
        row: dict[str, Any] = {"n_snapshots": len(s), "health_change_last": change}
        slope = _slope(points)
        if slope is None or math.isfinite(slope):
            row["health_slope_30d"] = slope
        if a == "same_day":  # two rows at one date: "last" and "change" are not defined
            del row["health_change_last"]
        else:
            row["health_score_last"] = ys[-1]
        want[a] = row
    _assert_rows({r.account_id: r.asDict() for r in out}, want)


# -- rfm_summary --------------------------------------------------------------------------------
def test_rfm_summary_hostile_values(spark):
    rows = []
    for case, (v, big, dec) in enumerate(TX_HOSTILE):
        a = f"a{case}"
        rows += [
            (a, D(2024, 1, 1), 10.0, 10, Decimal(10)),
            (a, D(2024, 1, 8), v, big, dec),
            (a, D(2024, 1, 8), _second(v), big, dec),
            (a, D(2024, 1, 15), 4.0, 4, Decimal(4)),
            (a, None, 1.0, 1, Decimal(1)),
        ]
    rows += [(None, D(2024, 1, 3), 1.0, 1, Decimal(1)), (None, None, NAN, None, None)]
    rows += [(None, D(2030, 1, 1), 1.0, 1, Decimal(1))]  # after observation_end: ignored
    rows += [("only_bad", D(2024, 1, 2), NAN, None, None)]
    df = spark.createDataFrame(
        rows, "account_id string, order_date date, amount double, big bigint, dec decimal(38,0)"
    )
    for idx, name in ((2, "amount"), (3, "big"), (4, "dec")):
        out = rfm_summary(df, value_col=name, observation_end="2024-01-29").collect()
        TRIED["rfm_summary"] += len(TX_HOSTILE) + 3
        _no_nan(out)
        want: dict[Any, dict[str, Any]] = {}
        for case in range(len(TX_HOSTILE)):
            v = TX_HOSTILE[case][idx - 2]
            days = {D(2024, 1, 1): 10.0, D(2024, 1, 15): 4.0}
            bad = 1
            if _finite(v):
                days[D(2024, 1, 8)] = float(v) + float(_second(v) if idx == 2 else v)
            else:
                bad += 2
            ordered = sorted(days)
            x = len(ordered) - 1
            want[f"a{case}"] = {
                "frequency": float(x),
                "recency": float((ordered[-1] - ordered[0]).days),
                "T": float((D(2024, 1, 29) - ordered[0]).days),
                "monetary_value": sum(days[d] for d in ordered[1:]) / x,
                "n_excluded": bad,
            }
        # null-account rows on or before the observation end: one row, null statistics
        want[None] = dict.fromkeys(["frequency", "recency", "T", "monetary_value"])
        want[None]["n_excluded"] = 2
        _assert_rows({r.account_id: r.asDict() for r in out}, want)


def test_models_fit_past_the_null_account_row(spark):
    """The null-account row of rfm_summary (all statistics null) is skipped by the fits: the
    parameters equal those fitted without it, and its predictions are null."""
    from pyspark.sql import functions as F

    from kamlib.clv import BetaGeo, GammaGamma
    from kamlib.datasets import synthetic_transactions

    tx = synthetic_transactions(spark, 300, seed=1)
    kind = tx.schema["account_id"].dataType
    nulls = tx.limit(3).withColumn("account_id", F.lit(None).cast(kind))
    summary = rfm_summary(tx.unionByName(nulls)).cache()
    accounts = summary.where(F.col("account_id").isNotNull())
    TRIED["model fits"] += 2
    for model in (BetaGeo, GammaGamma):
        assert model().fit(summary).params == model().fit(accounts).params
    row = BetaGeo().fit(summary).probability_alive(summary).where("account_id is null").first()
    assert row is not None
    assert row.n_excluded == 3
    assert row.p_alive is None
    summary.unpersist()


# -- discrete_rfm_summary -----------------------------------------------------------------------
def test_discrete_rfm_summary_hostile_dates(spark):
    """No amounts are read; null accounts and dates are ignored (documented), extreme years work."""
    rows = [
        ("a", D(1, 1, 1)),
        ("a", D(9999, 12, 31)),
        ("a", None),
        ("b", D(2020, 6, 1)),
        ("b", D(2020, 6, 2)),
        ("c", None),
        (None, D(2021, 1, 1)),
    ]
    df = spark.createDataFrame(rows, "account_id string, ts date")
    out = discrete_rfm_summary(df, account_col="account_id", date_col="ts").collect()
    TRIED["discrete_rfm_summary"] += len(rows)
    _no_nan(out)
    want = {
        "a": {"frequency": 1.0, "recency": 9998.0, "n_periods": 9998.0},
        "b": {"frequency": 0.0, "recency": 0.0, "n_periods": 9999.0 - 2020.0},
    }
    _assert_rows({r.account_id: r.asDict() for r in out}, want)


@pytest.fixture(scope="module", autouse=True)
def _report_tried():
    yield
    print(f"\nhostile values tried: {sum(TRIED.values())} {dict(TRIED)}")
