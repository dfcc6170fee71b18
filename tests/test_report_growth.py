"""Report sections for MRR, cohorts, whitespace and health trend, and the per-account QBR page.

The numbers on the pages are checked against the pure-Python references of
``tests/reference`` (MRR bridge, cohorts, whitespace, NPS) or against sums written here from
the formulas (least-squares health slope, invoiced revenue), by parsing the HTML tables back.
"""

from __future__ import annotations

import datetime as dt
import html as _html
import itertools
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from kamlib.cli import EXIT_BAD_INPUT, main
from kamlib.errors import SchemaError
from kamlib.report import (
    ACCOUNT_SECTION_IDS,
    OPTIONAL_SECTION_IDS,
    SECTION_IDS,
    account_report,
    scorecard_report,
)
from kamlib.report.sections import (
    cohort_section,
    health_trend_section,
    mrr_bridge_section,
    whitespace_section,
)
from tests.reference import growth as ref_growth
from tests.reference import nps as ref_nps
from tests.reference import recurring as ref_rec

IMG = re.compile(r'<img class="plot" alt="[^"]*" src="data:image/png;base64,([A-Za-z0-9+/=]+)">')
AS_OF = dt.datetime(2025, 6, 15)


def _sections(page: str) -> dict[str, str]:
    return dict(re.findall(r'<section id="([^"]+)">(.*?)</section>', page, flags=re.S))


def _tables(body: str) -> list[list[list[str]]]:
    """Every table of an HTML fragment as rows of unescaped cell texts (header row first)."""
    out = []
    for table in re.findall(r"<table>(.*?)</table>", body, flags=re.S):
        rows = []
        for row in re.findall(r"<tr>(.*?)</tr>", table, flags=re.S):
            cells = re.findall(r"<t[hd]>(.*?)</t[hd]>", row, flags=re.S)
            rows.append([_html.unescape(re.sub(r"<[^>]+>", "", c)).strip() for c in cells])
        out.append(rows)
    return out


def _num(text: str) -> float | None:
    t = text.replace(",", "").rstrip("%")
    if t in ("–", "-", ""):
        return None
    return float(t)


def _close(shown: str, value: float | None, pct: bool = False) -> bool:
    """A formatted cell (2 decimals, 0 at >= 1000, or a 1-decimal percentage) matches."""
    got = _num(shown)
    if value is None:
        return got is None
    assert got is not None, shown
    if pct:
        return abs(got - 100 * value) <= 0.051
    tolerance = 0.51 if abs(value) >= 1000 else 0.0051
    return abs(got - value) <= tolerance


# --------------------------------------------------------------------------- hand-built inputs
CONTRACTS = [
    # monthly, open-ended
    ("a", dt.date(2024, 1, 1), None, 100.0, 1),
    # annual, one term then churn: must not show as expansion then churn every year
    ("b", dt.date(2024, 3, 1), dt.date(2025, 3, 1), 1200.0, 12),
    # quarterly, expanded by a second contract
    ("c", dt.date(2024, 6, 1), None, 300.0, 3),
    ("c", dt.date(2024, 9, 1), None, 600.0, 3),
    # monthly, lapses and comes back (reactivation)
    ("d", dt.date(2024, 2, 1), dt.date(2024, 5, 1), 50.0, 1),
    ("d", dt.date(2024, 8, 1), None, 80.0, 1),
    # annual, renewed at a higher amount (expansion once, at the renewal)
    ("e", dt.date(2024, 4, 1), dt.date(2025, 4, 1), 2400.0, 12),
    ("e", dt.date(2025, 4, 1), None, 3600.0, 12),
]
OBS_END = dt.date(2025, 6, 1)


def _contract_rows() -> list[dict[str, Any]]:
    keys = ("account_id", "start_date", "end_date", "amount", "interval_months")
    return [dict(zip(keys, c, strict=True)) for c in CONTRACTS]


@pytest.fixture(scope="module")
def mrr(spark: Any) -> Any:
    from kamlib.recurring import contract_mrr

    contracts = spark.createDataFrame(
        CONTRACTS,
        "account_id string, start_date date, end_date date, amount double, interval_months int",
    )
    return contract_mrr(contracts, observation_end=OBS_END)


def _ref_mrr() -> list[dict[str, Any]]:
    rows = ref_rec.contract_mrr(_contract_rows(), observation_end=OBS_END)
    complete = []
    for r in rows:  # complete months: the month's last day is before AS_OF
        m = r["month"]
        nxt = dt.date(m.year + (m.month == 12), m.month % 12 + 1, 1)
        if nxt <= AS_OF.date():
            complete.append(r)
    return complete


def test_mrr_bridge_section_matches_reference(mrr: Any) -> None:
    section, rows = mrr_bridge_section(mrr, as_of=AS_OF, months=12)
    expected = ref_rec.mrr_bridge(_ref_mrr())
    assert [r["month"] for r in rows] == [e["month"] for e in expected]
    assert rows[-1]["month"] == dt.date(2025, 5, 1)  # June 2025 is not complete at AS_OF
    assert len(IMG.findall(section.body)) == 1
    (table,) = _tables(section.body)
    header, *body = table
    assert header[:8] == [
        "month",
        "starting",
        "new",
        "reactivation",
        "expansion",
        "contraction",
        "churned",
        "ending",
    ]
    last6 = expected[-6:]
    assert [r[0] for r in body] == [e["month"].isoformat()[:7] for e in last6]
    names = [
        "starting_mrr",
        "new_mrr",
        "reactivation_mrr",
        "expansion_mrr",
        "contraction_mrr",
        "churned_mrr",
        "ending_mrr",
    ]
    for cells, e in zip(body, last6, strict=True):
        for i, name in enumerate(names, start=1):
            assert _close(cells[i], e[name]), (e["month"], name, cells[i], e[name])
        assert _close(cells[8], e["grr"], pct=True)
        assert _close(cells[9], e["nrr"], pct=True)
        assert _close(cells[11], e["arr"])
    by_month = {e["month"]: e for e in expected}
    # b's annual contract churns in March 2025 (its whole 100/month), e expands in April 2025
    assert by_month[dt.date(2025, 3, 1)]["churned_mrr"] == pytest.approx(100.0)
    assert by_month[dt.date(2025, 4, 1)]["expansion_mrr"] == pytest.approx(100.0)


def test_cohort_section_matches_reference(mrr: Any) -> None:
    section, rows = cohort_section(mrr, as_of=AS_OF, period="quarter")
    # complete quarters before 2025-04-01 only
    quarter_rows = [r for r in _ref_mrr() if r["month"] < dt.date(2025, 4, 1)]
    expected = ref_rec.cohort_retention(
        quarter_rows, date_col="month", value_col="mrr", period="quarter"
    )
    got = {(r["cohort"], r["period_number"]): r for r in rows}
    assert set(got) == {(e["cohort"], e["period_number"]) for e in expected}
    for e in expected:
        r = got[(e["cohort"], e["period_number"])]
        assert r["cohort_accounts"] == e["cohort_accounts"]
        assert r["logo_retention"] == pytest.approx(e["logo_retention"])
        assert r["revenue_retention"] == pytest.approx(e["revenue_retention"])
    assert len(IMG.findall(section.body)) == 1
    assert section.id == "cohort-retention"


TX = [
    # account, product, amount
    ("a", "core", 100.0),
    ("a", "support", 30.0),
    ("b", "core", 300.0),
    ("c", "core", 50.0),
    ("c", "analytics", 80.0),
    ("d", "analytics", 40.0),
    ("d", "support", 10.0),
    ("e", "core", 20.0),
    ("e", "core", 10.0),
    ("f", "training", 5.0),
]
CARD = [("a", 130.0, True), ("b", 300.0, True), ("c", 130.0, False), ("d", 50.0, False)]
CARD += [("e", 30.0, False), ("f", 5.0, False)]


def test_whitespace_section_matches_reference(spark: Any) -> None:
    from kamlib.growth import whitespace

    tx = spark.createDataFrame(TX, "account_id string, product string, amount double")
    card = spark.createDataFrame(CARD, "account_id string, revenue double, is_key_account boolean")
    recs = spark.createDataFrame(
        [("e", 1, "support", 0.5, 1.5), ("e", 2, "analytics", 0.25, 1.0)],
        "account_id string, rank int, recommended_product string, confidence double, lift double",
    )
    section, per_product = whitespace_section(whitespace(tx), card, recommendations=recs, limit=3)
    ref = ref_growth.whitespace(
        [dict(zip(("account_id", "product", "amount"), r, strict=True)) for r in TX]
    )
    key = {a for a, _, k in CARD if k}
    totals: dict[str, float] = {}
    key_totals: dict[str, float] = {}
    for (_, account, product), v in ref.items():
        totals[product] = totals.get(product, 0.0) + v["headroom"]
        if account in key:
            key_totals[product] = key_totals.get(product, 0.0) + v["headroom"]
    assert {r["product"]: r["headroom"] for r in per_product} == pytest.approx(totals)
    assert {r["product"]: r["key_headroom"] or 0.0 for r in per_product} == pytest.approx(
        {p: key_totals.get(p, 0.0) for p in totals}
    )
    per_account: dict[str, float] = {}
    for (_, account, _p), v in ref.items():
        per_account[account] = per_account.get(account, 0.0) + v["headroom"]
    top3 = sorted(per_account, key=lambda a: (-per_account[a], a))[:3]
    (table,) = _tables(section.body)
    header, *body = table
    assert header[-1] == "next product (confidence)"
    assert [r[0] for r in body] == top3
    for cells in body:
        assert _close(cells[4], per_account[cells[0]])
    rec_cells = {r[0]: r[-1] for r in body}
    if "e" in rec_cells:
        assert rec_cells["e"] == "support (50%)"
    assert f"Total headroom {_money(sum(totals.values()))}" in section.note


def _money(x: float) -> str:
    for unit, div in (("bn", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= div:
            return f"{x / div:,.1f}{unit}"
    return f"{x:,.0f}"


def _slope(points: list[tuple[dt.date, float]]) -> float:
    ts = [(d - dt.date(1970, 1, 1)).days for d, _ in points]
    ys = [y for _, y in points]
    tm, ym = sum(ts) / len(ts), sum(ys) / len(ys)
    num = sum((t - tm) * (y - ym) for t, y in zip(ts, ys, strict=True))
    den = sum((t - tm) ** 2 for t in ts)
    return 30.0 * num / den


def test_health_trend_section_lists_fastest_decliners(spark: Any) -> None:
    dates = [dt.date(2025, 1, 1), dt.date(2025, 2, 15), dt.date(2025, 4, 1)]
    scores = {
        "a": [80.0, 60.0, 35.0],
        "b": [50.0, 55.0, 72.0],
        "c": [90.0, 70.0, 75.0],
        "d": [65.0, 30.0, 20.0],  # not a key account: not listed
        "e": [40.0, 41.0, 39.0],
        "f": [70.0, 69.0, 30.0],
    }

    def band(s: float) -> str:
        return "red" if s < 40 else "yellow" if s < 70 else "green"

    history = spark.createDataFrame(
        [(a, d, s, band(s)) for a, ys in scores.items() for d, s in zip(dates, ys, strict=True)],
        "account_id string, as_of date, health_score double, health_band string",
    )
    card = spark.createDataFrame(
        [(a, 100.0, a != "d") for a in scores],
        "account_id string, revenue double, is_key_account boolean",
    )
    section, listed = health_trend_section(history, card, limit=3)
    slopes = {a: _slope(list(zip(dates, ys, strict=True))) for a, ys in scores.items()}
    expected = sorted((a for a in scores if a != "d"), key=lambda a: (slopes[a], a))[:3]
    assert [r["account_id"] for r in listed] == expected
    for r in listed:
        assert r["health_slope_30d"] == pytest.approx(slopes[r["account_id"]])
        ys = scores[r["account_id"]]
        assert r["health_change_last"] == pytest.approx(ys[-1] - ys[-2])
        assert r["band_changes"] == sum(band(x) != band(y) for x, y in itertools.pairwise(ys))
    declining = sum(1 for s in slopes.values() if s < -1)
    assert f"{declining:,} decline" in section.note
    (table,) = _tables(section.body)
    assert [row[0] for row in table[1:]] == expected
    assert len(IMG.findall(section.body)) == 1


# ------------------------------------------------------------------------ portfolio + QBR page
@pytest.fixture(scope="module")
def portfolio(spark: Any) -> dict[str, Any]:
    from pyspark.sql import functions as F

    from kamlib.datasets import synthetic_portfolio
    from kamlib.datasets._portfolio import PORTFOLIO_END
    from kamlib.growth import next_products, whitespace
    from kamlib.recurring import contract_mrr
    from kamlib.scorecard import account_scorecard

    pf = synthetic_portfolio(spark, 300, seed=11)
    tx = pf.transactions.persist()
    card = account_scorecard(
        tx,
        as_of=PORTFOLIO_END,
        surveys=pf.surveys,
        wallets=pf.wallets,
        targets=pf.targets,
        penalizer=0.001,
    ).persist()
    # A cheap health history: the scorecard's health at as_of plus two synthetic earlier
    # snapshots (score shifted per account), enough for the trend machinery.
    base = card.select("account_id", "health_score", "health_band")
    history = base.withColumn("as_of", F.lit(PORTFOLIO_END).cast("date"))
    for days, shift in ((90, 6.0), (180, 12.0)):
        earlier = base.withColumn(
            "health_score",
            F.least(
                F.lit(100.0), F.col("health_score") + F.lit(shift) * (F.hash("account_id") % 3)
            ),
        ).withColumn("as_of", F.lit(PORTFOLIO_END - dt.timedelta(days=days)).cast("date"))
        history = history.unionByName(earlier)
    return {
        "pf": pf,
        "tx": tx,
        "card": card,
        "as_of": PORTFOLIO_END,
        "mrr": contract_mrr(pf.contracts).persist(),
        "whitespace": whitespace(tx),
        "recs": next_products(tx, min_support=0.05),
        "history": history,
    }


def test_portfolio_report_sections_follow_inputs(portfolio: dict[str, Any]) -> None:
    p = portfolio
    full = scorecard_report(
        p["card"],
        transactions=p["tx"],
        as_of=p["as_of"],
        surveys=p["pf"].surveys,
        mrr=p["mrr"],
        whitespace=p["whitespace"],
        recommendations=p["recs"],
        health_history=p["history"],
    )
    sections = _sections(full)
    assert list(sections) == list(SECTION_IDS)
    for sid in OPTIONAL_SECTION_IDS:
        assert len(IMG.findall(sections[sid])) == 1, sid
    assert "ARR" in sections["summary"]
    assert "whitespace headroom" in sections["summary"]
    plain = scorecard_report(p["card"], transactions=p["tx"], as_of=p["as_of"])
    assert list(_sections(plain)) == [s for s in SECTION_IDS if s not in OPTIONAL_SECTION_IDS]


def _top_account(card: Any) -> str:
    from pyspark.sql import functions as F

    row = card.where(F.col("is_key_account")).orderBy("value_rank").first()
    return str(row["account_id"])


def test_account_report_content(portfolio: dict[str, Any], spark: Any, tmp_path: Path) -> None:
    from pyspark.sql import functions as F

    p = portfolio
    account = _top_account(p["card"])
    alerts = spark.createDataFrame(
        [
            (account, dt.datetime(2025, 12, 1), dt.datetime(2025, 12, 2), "drop", "warn", "x"),
            ("other", dt.datetime(2025, 12, 1), dt.datetime(2025, 12, 2), "drop", "warn", "y"),
        ],
        "account_id string, window_start timestamp, window_end timestamp, rule string, "
        "severity string, message string",
    )
    page = account_report(
        p["card"],
        account_id=account,
        transactions=p["tx"],
        as_of=p["as_of"],
        mrr=p["mrr"],
        surveys=p["pf"].surveys,
        health_history=p["history"],
        whitespace=p["whitespace"],
        recommendations=p["recs"],
        alerts=alerts,
    )
    sections = _sections(page)
    assert list(sections) == list(ACCOUNT_SECTION_IDS)
    assert f"Quarterly business review: {account}" in page
    assert "http://" not in page
    assert "https://" not in page
    as_of = p["as_of"]

    # revenue history: invoices of the last 24 complete months, summed here in Python
    tx_rows = [r.asDict() for r in p["tx"].where(F.col("account_id") == account).collect()]
    first = dt.date(as_of.year - 2, as_of.month, 1)
    own = [r for r in tx_rows if first <= r["order_date"] < as_of]
    assert (
        f"({_money(sum(r['amount'] for r in own))} in {len(own)} invoices)"
        in (sections["revenue-history"])
    )
    assert len(IMG.findall(sections["revenue-history"])) == 1

    # MRR movements: the reference movements of the account's contracts, latest first
    contracts = [
        r.asDict() for r in p["pf"].contracts.where(F.col("account_id") == account).collect()
    ]
    all_contracts = [r.asDict() for r in p["pf"].contracts.collect()]
    obs = max(max(c["start_date"], c["end_date"] or c["start_date"]) for c in all_contracts)
    ref_mrr = ref_rec.contract_mrr(contracts, observation_end=obs)
    ref_mrr = [r for r in ref_mrr if r["month"] < as_of]  # complete months before as_of
    moves = [m for m in ref_rec.mrr_movements(ref_mrr) if m["movement"] != "flat"]
    moves.sort(key=lambda m: m["month"], reverse=True)
    (table,) = _tables(sections["mrr-movements"])
    body = table[1:]
    assert [(r[0], r[1]) for r in body] == [
        (m["month"].isoformat()[:7], m["movement"]) for m in moves[:12]
    ]
    for cells, m in zip(body, moves, strict=False):
        assert _close(cells[3], m["mrr"])
        assert _close(cells[4], m["delta"])

    # NPS of the account's responses before as_of
    surveys = [
        r.asDict()
        for r in p["pf"].surveys.where(F.col("account_id") == account).collect()
        if r["response_date"] < as_of
    ]
    ref = ref_nps.nps(surveys)
    if ref["nps"] is not None:
        assert f"{ref['nps']:+.0f}" in sections["nps"]

    # whitespace rows: the reference matrix of the portfolio's transactions
    ws = ref_growth.whitespace([r.asDict() for r in p["tx"].collect()])
    mine = {prod: v for (_, a, prod), v in ws.items() if a == account}
    (ws_table, *_recs) = _tables(sections["whitespace"])
    listed = {r[0]: r for r in ws_table[1:]}
    assert set(listed) == set(mine)
    for prod, v in mine.items():
        assert _close(listed[prod][5], v["headroom"])
        assert listed[prod][1] == ("yes" if v["bought"] else "no")
    assert "Recommended next products" in sections["whitespace"]

    # health drivers: the account's standing on p_alive = share of accounts it beats
    card_rows = [r.asDict() for r in p["card"].select("account_id", "p_alive").collect()]
    mine_p = next(r["p_alive"] for r in card_rows if r["account_id"] == account)
    others = [r["p_alive"] for r in card_rows if r["p_alive"] is not None]
    standing = 100.0 * sum(x < mine_p for x in others) / len(others)
    (drivers, *_rest) = _tables(sections["health"])
    p_alive_row = next(r for r in drivers if r[0] == "p_alive")
    assert abs(_num(p_alive_row[4]) - round(standing)) <= 1  # type: ignore[operator]
    assert len(IMG.findall(sections["health"])) == 1

    # alerts: only the account's own
    (alert_table,) = _tables(sections["alerts"])
    assert [r[-1] for r in alert_table[1:]] == ["x"]

    with pytest.raises(SchemaError, match="not in the scorecard"):
        account_report(p["card"], account_id="nope", transactions=p["tx"], as_of=as_of)


def test_account_report_minimal_inputs(portfolio: dict[str, Any]) -> None:
    p = portfolio
    page = account_report(
        p["card"], account_id=_top_account(p["card"]), transactions=p["tx"], as_of=p["as_of"]
    )
    assert list(_sections(page)) == [
        "account-summary",
        "revenue-history",
        "health",
        "clv-forecast",
        "targets",
    ]


def test_report_cli_account_and_portfolio(
    portfolio: dict[str, Any], tmp_path: Path, capsys: Any
) -> None:
    p = portfolio
    paths = {}
    for name, df in (
        ("scorecard", p["card"]),
        ("transactions", p["tx"]),
        ("contracts", p["pf"].contracts),
        ("surveys", p["pf"].surveys),
        ("health-history", p["history"]),
    ):
        paths[name] = str(tmp_path / name)
        df.write.parquet(paths[name])
    args = ["report", "--as-of", p["as_of"].isoformat()]
    for name, path in paths.items():
        args += [f"--{name}", path]
    account = _top_account(p["card"])
    out = tmp_path / "qbr.html"
    assert main([*args, "--account", account, "--output", str(out)]) == 0
    sections = _sections(out.read_text(encoding="utf-8"))
    assert list(sections) == [s for s in ACCOUNT_SECTION_IDS if s != "alerts"]
    portfolio_out = tmp_path / "portfolio.html"
    assert main([*args, "--output", str(portfolio_out)]) == 0
    assert list(_sections(portfolio_out.read_text(encoding="utf-8"))) == list(SECTION_IDS)
    capsys.readouterr()
    assert main([*args, "--account", "no-such", "--output", str(tmp_path / "x.html")]) == (
        EXIT_BAD_INPUT
    )
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "no-such" in err
    assert not (tmp_path / "x.html").exists()
    missing = [*args, "--alerts", str(tmp_path / "missing"), "--output", str(tmp_path / "y.html")]
    assert main(missing) == EXIT_BAD_INPUT
    assert "--alerts" in capsys.readouterr().err
    with_next = tmp_path / "next.html"
    assert main([*args, "--next-products", "--output", str(with_next)]) == 0
    assert list(_sections(with_next.read_text(encoding="utf-8"))) == list(SECTION_IDS)
    no_products = [
        *args,
        "--product-col",
        "nope",
        "--next-products",
        "--output",
        str(tmp_path / "z"),
    ]
    assert main(no_products) == EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "--next-products needs a 'nope' column" in err
    assert not (tmp_path / "z").exists()


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed")
def test_account_page_renders_in_headless_chromium(
    portfolio: dict[str, Any], tmp_path: Path
) -> None:
    from kamlib.report import write_html

    p = portfolio
    page = account_report(
        p["card"],
        account_id=_top_account(p["card"]),
        transactions=p["tx"],
        as_of=p["as_of"],
        mrr=p["mrr"],
        surveys=p["pf"].surveys,
        whitespace=p["whitespace"],
    )
    path = write_html(page, tmp_path / "qbr.html")
    png = tmp_path / "qbr.png"
    cmd = [
        "chromium",
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        f"--user-data-dir={tmp_path / 'profile'}",
        f"--screenshot={png}",
        "--window-size=1400,4000",
        path.as_uri(),
    ]
    subprocess.run(cmd, check=False, capture_output=True, timeout=180)
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 50_000
