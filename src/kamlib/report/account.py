"""The per-account QBR page: one key account's revenue, MRR, health, NPS, CLV and growth.

:func:`account_report` takes the portfolio's DataFrames (scorecard, transactions and the
optional contract MRR, surveys, health history, whitespace, recommendations and alerts) and
returns one self-contained HTML page for one account. It is pure (DataFrames in, HTML out):
every Spark job filters to the account first, except the portfolio medians and percentiles
of the health drivers (one aggregate over the scorecard).
"""

from __future__ import annotations

import datetime as _dt
import html as _html
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from kamlib.errors import SchemaError
from kamlib.report._html import Section, html_table, image, kpi_tiles, render_html
from kamlib.report.sections import complete_months, money, pct

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

__all__ = ["ACCOUNT_SECTION_IDS", "account_report"]

#: Section ids of :func:`account_report`, in page order (each optional input adds its own).
ACCOUNT_SECTION_IDS: tuple[str, ...] = (
    "account-summary",
    "revenue-history",
    "mrr-movements",
    "health",
    "nps",
    "clv-forecast",
    "targets",
    "whitespace",
    "alerts",
)

_BLUE = "#2b6cb0"
_ORANGE = "#dd6b20"
_GREY = "#718096"


def _figure(width: float = 9.0, height: float = 3.4) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _fmt(value: Any, kind: str = "num") -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    if kind == "money":
        return money(float(value))
    if kind == "pct":
        return pct(float(value))
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.2f}"
    return str(value)


def _get(row: Mapping[str, Any], name: str) -> Any:
    return row.get(name)


def _summary(row: Mapping[str, Any], account_id: str, as_of: _dt.datetime) -> Section:
    items = [
        ("trailing revenue", _fmt(_get(row, "revenue"), "money")),
        ("revenue growth", _fmt(_get(row, "revenue_growth"), "pct")),
        ("value rank", _fmt(_get(row, "value_rank"))),
        ("ABC tier", _fmt(_get(row, "abc_tier"))),
        ("key account", _fmt(_get(row, "is_key_account"))),
        ("health", f"{_fmt(_get(row, 'health_score'))} ({_fmt(_get(row, 'health_band'))})"),
        ("NPS", _fmt(_get(row, "nps"))),
        ("12-month CLV", _fmt(_get(row, "clv"), "money")),
        ("share of wallet", _fmt(_get(row, "share_of_wallet"), "pct")),
        ("target attainment", _fmt(_get(row, "target_attainment"), "pct")),
    ]
    return Section(
        "account-summary",
        f"Account {account_id}",
        kpi_tiles(items),
        note=f"Scorecard as of {as_of.date()}; revenue is trailing 12-month revenue.",
    )


def _revenue_history(
    transactions: DataFrame,
    mrr: DataFrame | None,
    *,
    account_id: Any,
    as_of: _dt.datetime,
    account_col: str,
    date_col: str,
    value_col: str,
    months: int,
) -> Section:
    """Monthly invoiced revenue (bars) and contract MRR (line) of the account."""
    rows, mrr_rows = _monthly_rows(
        transactions,
        mrr,
        account_id=account_id,
        as_of=as_of,
        account_col=account_col,
        date_col=date_col,
        value_col=value_col,
        months=months,
    )
    fig = _figure()
    ax = fig.add_subplot()
    labels = sorted({r["month"] for r in rows} | {r["month"] for r in mrr_rows})
    index = {m: i for i, m in enumerate(labels)}
    if rows:
        ax.bar(
            [index[r["month"]] for r in rows],
            [float(r["revenue"] or 0.0) for r in rows],
            color=_BLUE,
            alpha=0.7,
            label="invoiced revenue",
        )
    if mrr_rows:
        ax.step(
            [index[r["month"]] for r in mrr_rows],
            [float(r["mrr"] or 0.0) for r in mrr_rows],
            where="mid",
            color=_ORANGE,
            lw=2,
            label="contract MRR",
        )
    if labels:
        step = max(1, len(labels) // 12)
        ax.set_xticks(range(0, len(labels), step), [str(m)[:7] for m in labels][::step])
        ax.tick_params(axis="x", labelrotation=45)
        ax.legend(loc="upper left")
    from matplotlib.ticker import FuncFormatter

    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: money(v)))
    ax.grid(alpha=0.3, axis="y")
    total = sum(float(r["revenue"] or 0.0) for r in rows)
    return Section(
        "revenue-history",
        "Revenue and MRR history",
        image(fig, "account revenue history"),
        note=f"Invoiced revenue per month over the last {months} months ({money(total)} in "
        f"{sum(int(r['invoices']) for r in rows)} invoices)"
        + ("; the line is the contract MRR." if mrr_rows else "."),
    )


def _monthly_rows(
    transactions: DataFrame,
    mrr: DataFrame | None,
    *,
    account_id: Any,
    as_of: _dt.datetime,
    account_col: str,
    date_col: str,
    value_col: str,
    months: int,
) -> tuple[list[Any], list[Any]]:
    """The account's revenue and invoices per month, and its MRR per complete month."""
    from pyspark.sql import functions as F

    as_of_date = F.lit(as_of.date().isoformat()).cast("date")
    first = F.add_months(F.trunc(as_of_date, "month"), -int(months))
    month = F.trunc(F.to_date(F.col(date_col)), "month")
    rows = (
        transactions.where(F.col(account_col) == F.lit(account_id))
        .where((F.to_date(F.col(date_col)) < as_of_date) & (month >= first))
        .groupBy(month.alias("month"))
        .agg(F.sum(value_col).alias("revenue"), F.count(F.lit(1)).alias("invoices"))
        .orderBy("month")
        .collect()
    )
    mrr_rows: list[Any] = []
    if mrr is not None:
        mrr_rows = (
            complete_months(mrr.where(F.col(account_col) == F.lit(account_id)), "month", as_of)
            .where(F.to_date(F.col("month")) >= first)
            .groupBy("month")
            .agg(F.sum("mrr").alias("mrr"))
            .orderBy("month")
            .collect()
        )
    return rows, mrr_rows


def _mrr_movements(
    mrr: DataFrame, *, account_id: Any, as_of: _dt.datetime, account_col: str, limit: int
) -> Section:
    from pyspark.sql import functions as F

    from kamlib.recurring import mrr_movements

    own = complete_months(mrr.where(F.col(account_col) == F.lit(account_id)), "month", as_of)
    moves = mrr_movements(own, account_col=account_col)
    rows = (
        moves.where(F.col("movement") != F.lit("flat"))
        .orderBy(F.desc("month"))
        .limit(max(1, int(limit)))
        .collect()
    )
    table = html_table(
        ["month", "movement", "previous MRR", "MRR", "change"],
        [
            [str(r["month"])[:7], r["movement"], r["previous_mrr"], r["mrr"], r["delta"]]
            for r in rows
        ],
    )
    return Section(
        "mrr-movements",
        "MRR movements",
        table if rows else "<p>No MRR changes.</p>",
        note=f"The {len(rows)} most recent months in which the account's contract MRR changed "
        "(new, reactivated, expansion, contraction, churned).",
    )


def _health(
    card: DataFrame,
    row: Mapping[str, Any],
    history: DataFrame | None,
    *,
    account_id: Any,
    account_col: str,
    weights: Mapping[str, float],
    lower_is_better: tuple[str, ...],
) -> Section:
    """Health drivers against the portfolio and, with a history, the account's trend."""
    body = _driver_table(card, row, weights=weights, lower_is_better=lower_is_better)
    if history is not None:
        body += _health_history(history, account_id=account_id, account_col=account_col)
    return Section(
        "health",
        "Health score and drivers",
        body or "<p>No health drivers in the scorecard.</p>",
        note=f"Health {_fmt(row.get('health_score'))} ({_fmt(row.get('health_band'))}). "
        "Standing = share of accounts the account beats on the driver (direction-adjusted), "
        "the percent rank the percentile health method weights.",
    )


def _driver_table(
    card: DataFrame,
    row: Mapping[str, Any],
    *,
    weights: Mapping[str, float],
    lower_is_better: tuple[str, ...],
) -> str:
    """Each weighted driver: weight, the account's value, the portfolio median and standing."""
    from pyspark.sql import functions as F

    drivers = [c for c in weights if c in card.columns]
    if not drivers:
        return ""
    aggs = []
    for c in drivers:
        value = row.get(c)
        aggs.append(F.percentile_approx(F.col(c), 0.5).alias(f"{c}__median"))
        if value is not None:
            v = F.lit(value)
            beats = F.col(c) > v if c in lower_is_better else F.col(c) < v
            share = F.avg(F.when(F.col(c).isNotNull(), beats.cast("double")))
            aggs.append(share.alias(f"{c}__beats"))
    stats = card.agg(*aggs).first()
    total = sum(float(weights[c]) for c in drivers)
    rows = []
    for c in drivers:
        value = row.get(c)
        median = stats[f"{c}__median"] if stats is not None else None
        standing: float | None = None
        if stats is not None and value is not None and stats[f"{c}__beats"] is not None:
            standing = 100.0 * float(stats[f"{c}__beats"])
        rows.append(
            [
                c,
                f"{100 * float(weights[c]) / total:.0f}%",
                value,
                median,
                None if standing is None else round(standing, 0),
                "lower" if c in lower_is_better else "higher",
            ]
        )
    return html_table(
        ["driver", "weight", "account", "portfolio median", "standing (0-100)", "better"],
        rows,
    )


def _health_history(history: DataFrame, *, account_id: Any, account_col: str) -> str:
    """The account's health-score chart over the snapshots and its trend statistics."""
    from pyspark.sql import functions as F

    from kamlib.health import health_trend

    own = history.where(F.col(account_col) == F.lit(account_id))
    points = own.select("as_of", "health_score", "health_band").orderBy("as_of").collect()
    trend = health_trend(own, account_col=account_col).first()
    fig = _figure(9.0, 2.8)
    ax = fig.add_subplot()
    if points:
        xs = [str(p["as_of"])[:10] for p in points]
        ax.axhspan(0, 40, color="#fed7d7", alpha=0.6)
        ax.axhspan(40, 70, color="#fefcbf", alpha=0.6)
        ax.axhspan(70, 100, color="#c6f6d5", alpha=0.6)
        ax.plot(xs, [p["health_score"] for p in points], color="#1a202c", marker="o")
        ax.set_ylim(0, 100)
        ax.set_ylabel("health score")
    body = image(fig, "account health trend")
    if trend is not None:
        body += html_table(
            ["snapshots", "last change", "slope per 30 days", "band changes"],
            [
                [
                    trend["n_snapshots"],
                    trend["health_change_last"],
                    trend["health_slope_30d"],
                    trend["band_changes"],
                ]
            ],
        )
    return body


def _nps(
    surveys: DataFrame,
    *,
    account_id: Any,
    as_of: _dt.datetime,
    account_col: str,
    date_col: str,
    score_col: str,
    limit: int,
) -> Section:
    from pyspark.sql import functions as F

    from kamlib.nps import nps, nps_category

    own = surveys.where(F.col(account_col) == F.lit(account_id)).where(
        F.col(date_col) < F.lit(as_of.isoformat(sep=" ")).cast("timestamp")
    )
    summary = nps(own, score_col=score_col).first()
    rows = (
        nps_category(own, score_col=score_col)
        .orderBy(F.desc(date_col))
        .select(date_col, score_col, "nps_category")
        .limit(max(1, int(limit)))
        .collect()
    )
    tiles = kpi_tiles(
        [
            ("NPS", "-" if summary is None or summary["nps"] is None else f"{summary['nps']:+.0f}"),
            ("responses", str(int(summary["n"])) if summary is not None else "0"),
        ]
    )
    table = html_table(["date", "score", "category"], [[str(r[0])[:10], r[1], r[2]] for r in rows])
    return Section(
        "nps",
        "Net Promoter Score",
        tiles + (table if rows else "<p>No responses.</p>"),
        note="NPS = % promoters (9-10) - % detractors (0-6) of the account's responses before "
        "the scoring date; the most recent responses are listed.",
    )


#: (label, scorecard column, format) of the CLV and forecast tiles.
_CLV_TILES: tuple[tuple[str, str, str], ...] = (
    ("12-month CLV", "clv", "money"),
    ("P(alive)", "p_alive", "pct"),
    ("forecast next 90 days", "revenue_forecast_90d", "money"),
    ("forecast next 365 days", "revenue_forecast_365d", "money"),
    ("expected orders (365 days)", "expected_purchases_365d", "num"),
    ("average order value", "monetary_value", "money"),
)

#: (label, scorecard column, format) of the targets and wallet tiles.
_TARGET_TILES: tuple[tuple[str, str, str], ...] = (
    ("target", "target", "money"),
    ("trailing revenue", "revenue", "money"),
    ("attainment", "target_attainment", "pct"),
    ("wallet", "wallet", "money"),
    ("share of wallet", "share_of_wallet", "pct"),
    ("wallet headroom", "wallet_headroom", "money"),
)


def _tiles(row: Mapping[str, Any], spec: tuple[tuple[str, str, str], ...]) -> list[tuple[str, str]]:
    """(label, formatted value) of each ``spec`` column of the scorecard row."""
    return [(label, _fmt(row.get(col), kind)) for label, col, kind in spec]


def _clv(row: Mapping[str, Any]) -> Section:
    items = _tiles(row, _CLV_TILES)
    if row.get("clv_low") is not None and row.get("clv_high") is not None:
        items.append(("CLV interval", f"{money(row['clv_low'])} - {money(row['clv_high'])}"))
    return Section(
        "clv-forecast",
        "CLV and forecast",
        kpi_tiles(items),
        note="BG/NBD x Gamma-Gamma: probability the account is still buying, expected orders "
        "and spend, discounted 12-month CLV.",
    )


def _targets(row: Mapping[str, Any]) -> Section:
    return Section(
        "targets",
        "Targets and wallet",
        kpi_tiles(_tiles(row, _TARGET_TILES)),
        note="Attainment = trailing revenue / target; share of wallet = revenue / the "
        "account's estimated wallet.",
    )


def _whitespace(
    whitespace: DataFrame | None,
    recommendations: DataFrame | None,
    *,
    account_id: Any,
    account_col: str,
    product_col: str,
) -> Section:
    from pyspark.sql import functions as F

    body = ""
    if whitespace is not None:
        rows = (
            whitespace.where(F.col(account_col) == F.lit(account_id))
            .orderBy(F.desc("headroom"), product_col)
            .select(product_col, "bought", "revenue", "penetration", "peer_revenue", "headroom")
            .collect()
        )
        total = sum(float(r["headroom"] or 0.0) for r in rows)
        body += f"<p>Total headroom {_html.escape(money(total))}.</p>" + html_table(
            ["product", "bought", "revenue", "peer penetration", "peer revenue", "headroom"],
            [[r[0], r[1], r[2], pct(r[3], 0), r[4], r[5]] for r in rows],
        )
    if recommendations is not None:
        recs = (
            recommendations.where(F.col(account_col) == F.lit(account_id))
            .orderBy("rank")
            .select("rank", "recommended_product", "confidence", "lift")
            .collect()
        )
        body += "<h3>Recommended next products</h3>" + (
            html_table(
                ["rank", "product", "confidence", "lift"],
                [[r[0], r[1], pct(r[2], 0), r[3]] for r in recs],
            )
            if recs
            else "<p>No association rule applies to this account.</p>"
        )
    return Section(
        "whitespace",
        "Whitespace and next products",
        body,
        note="Headroom = max(median revenue of the peers that buy the product - own revenue, 0); "
        "recommendations come from association rules over the portfolio's product sets.",
    )


def _alerts(alerts: DataFrame, *, account_id: Any, account_col: str, limit: int) -> Section:
    from pyspark.sql import functions as F

    own = alerts.where(F.col(account_col) == F.lit(account_id))
    order = "window_end" if "window_end" in alerts.columns else None
    cols: list[str] = [
        c
        for c in ("window_start", "window_end", "rule", "severity", "value", "baseline", "message")
        if c in alerts.columns
    ] or [c for c in alerts.columns if c != account_col]
    if order is not None:
        own = own.orderBy(F.desc(order))
    rows = own.select(*cols).limit(max(1, int(limit))).collect()
    return Section(
        "alerts",
        "Recent alerts",
        html_table(cols, [[str(v) if isinstance(v, _dt.datetime) else v for v in r] for r in rows])
        if rows
        else "<p>No alerts.</p>",
        note=f"The {len(rows)} most recent alerts raised for the account.",
    )


def account_report(
    card: DataFrame,
    *,
    account_id: Any,
    transactions: DataFrame,
    as_of: _dt.date | _dt.datetime | str,
    mrr: DataFrame | None = None,
    surveys: DataFrame | None = None,
    health_history: DataFrame | None = None,
    whitespace: DataFrame | None = None,
    recommendations: DataFrame | None = None,
    alerts: DataFrame | None = None,
    account_col: str = "account_id",
    date_col: str = "order_date",
    value_col: str = "amount",
    survey_date_col: str = "response_date",
    score_col: str = "score",
    product_col: str = "product",
    health_weights: Mapping[str, float] | None = None,
    health_lower_is_better: tuple[str, ...] = ("recency_days",),
    history_months: int = 24,
    limit: int = 12,
    title: str | None = None,
) -> str:
    """One account's QBR page (see :data:`ACCOUNT_SECTION_IDS`) as self-contained HTML.

    Sections: a KPI summary from the scorecard row; invoiced revenue per month (and the
    contract MRR line with ``mrr``) over ``history_months``; with ``mrr`` the latest MRR
    movements (:func:`kamlib.recurring.mrr_movements`); the health score with its drivers
    (the account's value, the portfolio median and its standing = direction-adjusted share
    of accounts it beats, the percent rank of the percentile health method) and, with
    ``health_history`` (stacked scorecards with an ``as_of`` column), its trend
    (:func:`kamlib.health.health_trend`); with ``surveys`` the account's NPS and latest
    responses; CLV and forecast; target attainment and wallet; with ``whitespace``
    (:func:`kamlib.growth.whitespace` output) and/or ``recommendations``
    (:func:`kamlib.growth.next_products` output) the product gaps and next products; with
    ``alerts`` (e.g. :func:`kamlib.streaming.evaluate_alerts` output) the recent alerts.

    Parameters
    ----------
    card : pyspark.sql.DataFrame
        :func:`kamlib.scorecard.account_scorecard` result.
    account_id
        The account to report (a value of ``account_col``).
    transactions : pyspark.sql.DataFrame
        The transactions the scorecard was computed from.
    as_of : date, datetime or str
        The scoring date; history and MRR use complete months before it.
    mrr, surveys, health_history, whitespace, recommendations, alerts : DataFrame, optional
        Optional inputs; each adds its section (``mrr``: :func:`kamlib.recurring.contract_mrr`
        output with ``month`` and ``mrr``).
    health_weights : Mapping[str, float], optional
        Health drivers and weights (default: the scorecard's default weights).

    Returns
    -------
    str
        A complete HTML page (inline CSS, inline PNG plots, no external resources).

    Raises
    ------
    SchemaError
        When ``account_id`` is not in ``card`` (one Spark job) or a column is missing.

    Examples
    --------
    >>> html = account_report(card, account_id="A00000042", transactions=tx,
    ...                       as_of="2026-01-01")  # doctest: +SKIP
    """
    from kamlib._validation import parse_timestamp
    from kamlib.scorecard import DEFAULT_HEALTH_WEIGHTS

    func = "account_report"
    as_of_ts = parse_timestamp(func, "as_of", as_of)
    _check_inputs(
        func,
        card,
        transactions,
        mrr=mrr,
        health_history=health_history,
        account_col=account_col,
        date_col=date_col,
        value_col=value_col,
    )
    row = _account_row(func, card, account_id=account_id, account_col=account_col)

    sections = _performance_sections(
        card,
        row,
        transactions,
        mrr,
        health_history,
        account_id=account_id,
        as_of=as_of_ts,
        account_col=account_col,
        date_col=date_col,
        value_col=value_col,
        weights=dict(DEFAULT_HEALTH_WEIGHTS if health_weights is None else health_weights),
        lower_is_better=tuple(health_lower_is_better),
        months=max(1, int(history_months)),
        limit=limit,
    )
    sections += _relationship_sections(
        row,
        surveys,
        whitespace,
        recommendations,
        alerts,
        account_id=account_id,
        as_of=as_of_ts,
        account_col=account_col,
        survey_date_col=survey_date_col,
        score_col=score_col,
        product_col=product_col,
        limit=limit,
    )
    return render_html(
        title or f"Quarterly business review: {account_id}",
        sections,
        subtitle=f"Account {account_id}, scored as of {as_of_ts.date()}",
    )


def _check_inputs(
    func: str,
    card: DataFrame,
    transactions: DataFrame,
    *,
    mrr: DataFrame | None,
    health_history: DataFrame | None,
    account_col: str,
    date_col: str,
    value_col: str,
) -> None:
    """Check the columns of the scorecard, the transactions and the optional inputs."""
    from kamlib._validation import require_columns

    require_columns(card, func, account_col=(account_col, "any"))
    require_columns(
        transactions,
        func,
        account_col=(account_col, "any"),
        date_col=(date_col, "temporal"),
        value_col=(value_col, "numeric"),
    )
    if mrr is not None:
        require_columns(
            mrr, func, account_col=(account_col, "any"), month_col=("month", "temporal")
        )
        require_columns(mrr, func, mrr_col=("mrr", "numeric"))
    if health_history is not None:
        require_columns(
            health_history,
            func,
            account_col=(account_col, "any"),
            as_of_col=("as_of", "temporal"),
            score_col=("health_score", "numeric"),
        )


def _account_row(
    func: str, card: DataFrame, *, account_id: Any, account_col: str
) -> dict[str, Any]:
    """The account's scorecard row (one small collect); SchemaError when it is absent."""
    from pyspark.sql import functions as F

    first = card.where(F.col(account_col) == F.lit(account_id)).limit(1).collect()
    if not first:
        raise SchemaError(f"{func}(): account {account_id!r} is not in the scorecard")
    return dict(first[0].asDict())


def _performance_sections(
    card: DataFrame,
    row: Mapping[str, Any],
    transactions: DataFrame,
    mrr: DataFrame | None,
    health_history: DataFrame | None,
    *,
    account_id: Any,
    as_of: _dt.datetime,
    account_col: str,
    date_col: str,
    value_col: str,
    weights: Mapping[str, float],
    lower_is_better: tuple[str, ...],
    months: int,
    limit: int,
) -> list[Section]:
    """The summary, revenue history, MRR movements (with ``mrr``) and health sections."""
    sections = [
        _summary(row, str(account_id), as_of),
        _revenue_history(
            transactions,
            mrr,
            account_id=account_id,
            as_of=as_of,
            account_col=account_col,
            date_col=date_col,
            value_col=value_col,
            months=months,
        ),
    ]
    if mrr is not None:
        sections.append(
            _mrr_movements(
                mrr, account_id=account_id, as_of=as_of, account_col=account_col, limit=limit
            )
        )
    sections.append(
        _health(
            card,
            row,
            health_history,
            account_id=account_id,
            account_col=account_col,
            weights=weights,
            lower_is_better=lower_is_better,
        )
    )
    return sections


def _relationship_sections(
    row: Mapping[str, Any],
    surveys: DataFrame | None,
    whitespace: DataFrame | None,
    recommendations: DataFrame | None,
    alerts: DataFrame | None,
    *,
    account_id: Any,
    as_of: _dt.datetime,
    account_col: str,
    survey_date_col: str,
    score_col: str,
    product_col: str,
    limit: int,
) -> list[Section]:
    """The NPS, CLV, targets, whitespace and alerts sections (those whose inputs exist)."""
    sections: list[Section] = []
    if surveys is not None:
        sections.append(
            _nps(
                surveys,
                account_id=account_id,
                as_of=as_of,
                account_col=account_col,
                date_col=survey_date_col,
                score_col=score_col,
                limit=limit,
            )
        )
    sections.append(_clv(row))
    if any(c in row for c in ("target", "target_attainment", "wallet", "share_of_wallet")):
        sections.append(_targets(row))
    if whitespace is not None or recommendations is not None:
        sections.append(
            _whitespace(
                whitespace,
                recommendations,
                account_id=account_id,
                account_col=account_col,
                product_col=product_col,
            )
        )
    if alerts is not None:
        sections.append(
            _alerts(alerts, account_id=account_id, account_col=account_col, limit=limit)
        )
    return sections
