"""The portfolio report built on an account scorecard.

Every plot is drawn from a small aggregate computed in Spark (a few hundred rows at most), so
the report scales with the number of plot points, not with the number of accounts.
"""

from __future__ import annotations

import datetime as _dt
import itertools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from kamlib.report._html import Section, html_table, image, kpi_tiles, render_html

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

__all__ = ["AT_RISK_COLUMNS", "OPTIONAL_SECTION_IDS", "SECTION_IDS", "scorecard_report"]

#: Section ids of :func:`scorecard_report`, in page order. ``mrr-bridge`` and
#: ``cohort-retention`` appear with ``mrr=``, ``whitespace`` with ``whitespace=`` and
#: ``health-trend`` with ``health_history=`` (see :data:`OPTIONAL_SECTION_IDS`).
SECTION_IDS: tuple[str, ...] = (
    "summary",
    "pareto",
    "tier-mix",
    "clv-distribution",
    "nps-trend",
    "retention-trend",
    "revenue-bridge",
    "mrr-bridge",
    "cohort-retention",
    "whitespace",
    "health-trend",
    "at-risk",
)

#: Sections of :data:`SECTION_IDS` that need an optional input of :func:`scorecard_report`.
OPTIONAL_SECTION_IDS: tuple[str, ...] = (
    "mrr-bridge",
    "cohort-retention",
    "whitespace",
    "health-trend",
)

#: Columns shown in the at-risk key accounts table (those present in the scorecard).
AT_RISK_COLUMNS: tuple[str, ...] = (
    "revenue",
    "revenue_growth",
    "abc_tier",
    "clv",
    "p_alive",
    "recency_days",
    "nps",
    "share_of_wallet",
    "target_attainment",
    "health_score",
    "health_band",
)

_BLUE = "#2b6cb0"
_ORANGE = "#dd6b20"
_GREEN = "#2f855a"
_RED = "#c53030"
_GREY = "#718096"
_TIER_COLORS = {"A": _BLUE, "B": _ORANGE, "C": _GREY}


def _figure(width: float = 9.0, height: float = 3.8) -> Any:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    return fig


def _money(x: float | None) -> str:
    if x is None or x != x:
        return "-"
    for unit, div in (("bn", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= div:
            return f"{x / div:,.1f}{unit}"
    return f"{x:,.0f}"


# ---------------------------------------------------------------------------------------------
# sections
# ---------------------------------------------------------------------------------------------
def _summary(
    card: DataFrame,
    account_col: str,
    top_share: float,
    as_of: _dt.datetime,
    extra: Sequence[tuple[str, str]] = (),
) -> Section:
    from pyspark.sql import functions as F

    from kamlib.classify import concentration

    aggs = [
        F.count("*").alias("n"),
        F.sum("revenue").alias("revenue"),
        F.sum(F.col("is_key_account").cast("int")).alias("n_key"),
        F.sum(F.when(F.col("is_key_account"), F.col("revenue"))).alias("key_revenue"),
        F.sum("clv").alias("clv"),
        F.sum("revenue_forecast_365d").alias("forecast"),
        F.sum(F.when(F.col("health_band") == "red", 1).otherwise(0)).alias("n_red"),
    ]
    row = card.agg(*aggs).first()
    assert row is not None
    conc = concentration(
        card.select(account_col, "revenue"),
        account_col=account_col,
        value_col="revenue",
        top_share=top_share,
    ).first()
    n = int(row["n"] or 0)
    key_share = (row["key_revenue"] or 0.0) / row["revenue"] if row["revenue"] else float("nan")
    items = [
        ("accounts", f"{n:,}"),
        ("trailing revenue", _money(row["revenue"])),
        ("key accounts", f"{int(row['n_key'] or 0):,}"),
        ("key-account revenue share", f"{100 * key_share:.1f}%"),
        ("forecast next 365 days", _money(row["forecast"])),
        ("portfolio CLV", _money(row["clv"])),
        ("HHI", f"{conc['hhi']:,.0f}" if conc and conc["hhi"] is not None else "-"),
        ("Gini", f"{conc['gini']:.2f}" if conc and conc["gini"] is not None else "-"),
        ("red health accounts", f"{int(row['n_red'] or 0):,}"),
        *extra,
    ]
    return Section(
        "summary",
        "Portfolio summary",
        kpi_tiles(items),
        note=f"Scored as of {as_of.date().isoformat()}; revenue is trailing 12-month revenue.",
    )


def _pareto(card: DataFrame, top_share: float, points: int = 200) -> Section:
    from pyspark.sql import functions as F

    n_row = card.agg(F.count("*").alias("n")).first()
    n = int(n_row["n"]) if n_row else 0
    bucket = F.ceil(F.col("value_rank") * F.lit(points) / F.lit(max(n, 1)))
    rows = (
        card.where(F.col("cumulative_share").isNotNull())
        .groupBy(bucket.alias("b"))
        .agg(F.max("value_rank").alias("rank"), F.max("cumulative_share").alias("cum"))
        .orderBy("b")
        .collect()
    )
    xs = [0.0] + [100.0 * r["rank"] / max(n, 1) for r in rows]
    ys = [0.0] + [100.0 * r["cum"] for r in rows]
    cut = 100.0 * top_share
    key_cum = next((y for x, y in zip(xs, ys, strict=True) if x >= cut - 1e-9), float("nan"))
    fig = _figure()
    ax = fig.add_subplot()
    ax.plot(xs, ys, color=_BLUE, lw=2, label="cumulative revenue share")
    ax.plot([0, 100], [0, 100], color=_GREY, ls=":", lw=1, label="equal shares")
    ax.axvline(cut, color=_RED, ls="--", lw=1.5, label=f"key-account cut (top {cut:.0f}%)")
    if key_cum == key_cum:
        ax.axhline(key_cum, color=_RED, ls=":", lw=1)
        ax.annotate(
            f"top {cut:.0f}% of accounts = {key_cum:.0f}% of revenue",
            (cut, key_cum),
            xytext=(cut + 5, max(key_cum - 25, 5)),
            arrowprops={"arrowstyle": "->", "color": _RED},
            color=_RED,
        )
    ax.set_xlabel("accounts, ranked by trailing revenue (%)")
    ax.set_ylabel("cumulative share of revenue (%)")
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 101)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    return Section(
        "pareto",
        "Portfolio Pareto curve",
        image(fig, "Pareto curve"),
        note="Share of trailing revenue held by the top accounts; the dashed line is the "
        "key-account cut.",
    )


def _tier_mix(card: DataFrame) -> Section:
    from pyspark.sql import functions as F

    rows = (
        card.groupBy("abc_tier")
        .agg(
            F.count("*").alias("accounts"),
            F.sum("revenue").alias("revenue"),
            F.sum("clv").alias("clv"),
        )
        .orderBy("abc_tier")
        .collect()
    )
    tiers = [str(r["abc_tier"]) for r in rows]
    total_acc = sum(int(r["accounts"]) for r in rows) or 1
    total_rev = sum(max(float(r["revenue"] or 0.0), 0.0) for r in rows) or 1.0
    total_clv = sum(float(r["clv"] or 0.0) for r in rows) or 1.0
    metrics = ("accounts", "revenue", "clv")
    totals = {"accounts": total_acc, "revenue": total_rev, "clv": total_clv}
    fig = _figure(9.0, 3.2)
    ax = fig.add_subplot()
    for i, metric in enumerate(metrics):
        left = 0.0
        for r, tier in zip(rows, tiers, strict=True):
            share = 100.0 * max(float(r[metric] or 0.0), 0.0) / totals[metric]
            ax.barh(
                i,
                share,
                left=left,
                color=_TIER_COLORS.get(tier, _GREY),
                label=f"tier {tier}" if i == 0 else None,
            )
            if share >= 6:
                ax.text(
                    left + share / 2,
                    i,
                    f"{share:.0f}%",
                    ha="center",
                    va="center",
                    color="white",
                    fontweight="bold",
                )
            left += share
    ax.set_yticks(range(len(metrics)), ["accounts", "trailing revenue", "CLV"])
    ax.set_xlabel("share (%)")
    ax.set_xlim(0, 100)
    ax.invert_yaxis()
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.25), ncol=3, frameon=False)
    table = html_table(
        ["tier", "accounts", "trailing revenue", "CLV"],
        [[t, int(r["accounts"]), r["revenue"], r["clv"]] for t, r in zip(tiers, rows, strict=True)],
    )
    return Section(
        "tier-mix",
        "ABC tier mix",
        image(fig, "tier mix") + table,
        note="Tier A holds the first 80% of revenue, B the next 15%, C the rest.",
    )


def _clv_distribution(card: DataFrame) -> Section:
    from pyspark.sql import functions as F

    width = 0.1
    binned = card.where(F.col("clv") >= 1).select(
        "abc_tier", (F.floor(F.log10("clv") / F.lit(width))).alias("bin")
    )
    rows = binned.groupBy("abc_tier", "bin").agg(F.count("*").alias("n")).collect()
    stats = card.agg(
        F.count(F.when(F.col("clv").isNull() | (F.col("clv") < 1), 1)).alias("non_positive"),
        F.percentile_approx("clv", 0.5).alias("median"),
        F.percentile_approx("clv", 0.9).alias("p90"),
    ).first()
    fig = _figure()
    ax = fig.add_subplot()
    if rows:
        bins = sorted({int(r["bin"]) for r in rows})
        lo, hi = bins[0], bins[-1]
        edges = [10 ** (width * b) for b in range(lo, hi + 2)]
        bottom = [0.0] * (hi - lo + 1)
        for tier in sorted({str(r["abc_tier"]) for r in rows}, reverse=True):
            counts = [0.0] * (hi - lo + 1)
            for r in rows:
                if str(r["abc_tier"]) == tier:
                    counts[int(r["bin"]) - lo] = float(r["n"])
            ax.bar(
                edges[:-1],
                counts,
                width=[b - a for a, b in itertools.pairwise(edges)],
                bottom=bottom,
                align="edge",
                color=_TIER_COLORS.get(tier, _GREY),
                label=f"tier {tier}",
                edgecolor="white",
                linewidth=0.3,
            )
            bottom = [b + c for b, c in zip(bottom, counts, strict=True)]
        ax.set_xscale("log")
        ax.legend()
    ax.set_xlabel("12-month CLV (log scale)")
    ax.set_ylabel("accounts")
    ax.grid(alpha=0.3, axis="y")
    note = "Discounted 12-month CLV from BG/NBD x Gamma-Gamma."
    if stats is not None:
        note += (
            f" Median {_money(stats['median'])}, 90th percentile {_money(stats['p90'])};"
            f" {int(stats['non_positive'] or 0):,} accounts with CLV below 1 or unknown not shown."
        )
    return Section("clv-distribution", "CLV distribution", image(fig, "CLV histogram"), note=note)


def _nps_trend(
    surveys: DataFrame, *, as_of: _dt.datetime, date_col: str, score_col: str
) -> Section:
    from pyspark.sql import functions as F

    from kamlib.nps import nps

    cutoff = F.lit(as_of.isoformat(sep=" ")).cast("timestamp")
    monthly = surveys.where(F.col(date_col) < cutoff).withColumn(
        "month", F.trunc(F.col(date_col).cast("date"), "month")
    )
    rows = nps(monthly, score_col=score_col, by="month").orderBy("month").collect()
    rows = [r for r in rows if r["nps"] is not None]
    fig = _figure()
    ax = fig.add_subplot()
    if rows:
        xs = [r["month"] for r in rows]
        ax.fill_between(
            xs,
            [r["ci_low"] for r in rows],
            [r["ci_high"] for r in rows],
            color=_BLUE,
            alpha=0.2,
            label="95% confidence band",
        )
        ax.plot(xs, [r["nps"] for r in rows], color=_BLUE, marker="o", ms=3, label="NPS")
        ax.axhline(0, color=_GREY, lw=0.8)
        ax.legend(loc="lower left")
    ax.set_ylabel("NPS")
    ax.grid(alpha=0.3)
    n_total = sum(int(r["n"]) for r in rows)
    return Section(
        "nps-trend",
        "Net Promoter Score by month",
        image(fig, "NPS trend"),
        note=f"NPS = % promoters (9-10) - % detractors (0-6), {n_total:,} valid responses; "
        "band = normal-approximation 95% interval.",
    )


def _retention(
    transactions: DataFrame,
    *,
    as_of: _dt.datetime,
    account_col: str,
    date_col: str,
    value_col: str,
    period: Literal["month", "quarter", "year"],
    bridge_periods: int,
) -> tuple[Section, Section, list[Any]]:
    """The GRR / NRR trend and the revenue-bridge waterfall of the complete periods."""
    from pyspark.sql import functions as F

    from kamlib.retention import retention_rates

    # Only complete periods: rows before the start of the period that contains as_of.
    unit = {"month": "month", "quarter": "quarter", "year": "year"}[period]
    start = F.date_trunc(unit, F.lit(as_of.isoformat(sep=" ")).cast("timestamp"))
    complete = transactions.where(F.col(date_col) < start)
    rows = (
        retention_rates(
            complete, account_col=account_col, date_col=date_col, value_col=value_col, period=period
        )
        .orderBy("period")
        .collect()
    )
    rows = [r for r in rows if r["starting_revenue"] is not None and r["starting_revenue"] > 0]
    last = rows[-bridge_periods:]
    return _retention_trend(rows, period), _bridge_waterfall(last, period), rows


def _retention_trend(rows: list[Any], period: str) -> Section:
    """Line chart of NRR, GRR and logo retention per period."""
    fig = _figure()
    ax = fig.add_subplot()
    if rows:
        xs = [r["period"] for r in rows]
        ax.plot(
            xs,
            [100 * (r["nrr"] or 0) for r in rows],
            color=_BLUE,
            marker="o",
            ms=4,
            label="NRR (net revenue retention)",
        )
        ax.plot(
            xs,
            [100 * (r["grr"] or 0) for r in rows],
            color=_ORANGE,
            marker="s",
            ms=4,
            label="GRR (gross revenue retention)",
        )
        ax.plot(
            xs,
            [100 * (r["logo_retention"] or 0) for r in rows],
            color=_GREY,
            ls=":",
            label="logo retention",
        )
        ax.axhline(100, color=_GREY, lw=0.8)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        ax.tick_params(axis="x", labelrotation=30)
    ax.set_ylabel("% of starting revenue")
    ax.grid(alpha=0.3)
    return Section(
        "retention-trend",
        f"GRR / NRR by {period}",
        image(fig, "GRR and NRR trend"),
        note="GRR = (start - contraction - churn) / start; NRR adds expansion. Complete "
        f"{period}s before the scoring date only.",
    )


def _bridge_waterfall(last: list[Any], period: str) -> Section:
    """Waterfall from the first period's starting revenue to the last period's revenue."""
    fig2 = _figure()
    ax2 = fig2.add_subplot()
    if last:
        steps = [
            ("start", float(last[0]["starting_revenue"])),
            ("new", sum(float(r["new_revenue"] or 0) for r in last)),
            ("reactivated", sum(float(r["reactivated_revenue"] or 0) for r in last)),
            ("expansion", sum(float(r["expansion_revenue"] or 0) for r in last)),
            ("contraction", -sum(float(r["contraction_revenue"] or 0) for r in last)),
            ("churned", -sum(float(r["churned_revenue"] or 0) for r in last)),
        ]
        level = 0.0
        peak = 0.0
        labels = []
        for i, (label, amount) in enumerate(steps):
            if i == 0:
                ax2.bar(i, amount, color=_BLUE)
                level = amount
            else:
                color = _GREEN if amount >= 0 else _RED
                ax2.bar(i, amount, bottom=level, color=color)
                level += amount
            peak = max(peak, level, level - amount)
            labels.append(label)
            ax2.text(i, max(level, 0), _money(amount), ha="center", va="bottom", fontsize=9)
        end = float(last[-1]["ending_revenue"])
        ax2.bar(len(steps), end, color=_BLUE)
        ax2.text(len(steps), end, _money(end), ha="center", va="bottom", fontsize=9)
        labels.append("end")
        ax2.set_xticks(range(len(labels)), labels)
        ax2.set_ylim(0, max(peak, end, 1.0) * 1.12)
        first, final = last[0]["period"], last[-1]["period"]
        title = f"Revenue bridge, {period}ly movements {first} to {final}"
    else:
        title = "Revenue bridge"
    from matplotlib.ticker import FuncFormatter

    ax2.yaxis.set_major_formatter(FuncFormatter(lambda v, _: _money(v)))
    ax2.set_ylabel(f"{period}ly revenue")
    ax2.grid(alpha=0.3, axis="y")
    return Section(
        "revenue-bridge",
        title,
        image(fig2, "revenue bridge waterfall"),
        note=f"Revenue of the first {period} -> sum of new, reactivated, expansion, contraction "
        f"and churned revenue over the last {len(last)} {period}s -> revenue of the last {period}.",
    )


def _at_risk(card: DataFrame, account_col: str, limit: int) -> tuple[Section, list[Any]]:
    from pyspark.sql import functions as F

    cols = [c for c in AT_RISK_COLUMNS if c in card.columns]
    risky = card.where(
        F.col("is_key_account")
        & ((F.col("health_band") == "red") | (F.coalesce(F.col("p_alive"), F.lit(1.0)) < 0.5))
    )
    n_row = risky.agg(F.count("*").alias("n")).first()
    n = int(n_row["n"]) if n_row else 0
    rows = risky.orderBy(F.desc("revenue"), account_col).select(account_col, *cols).limit(limit)
    collected = rows.collect()
    table = html_table([account_col, *cols], [list(r) for r in collected])
    return (
        Section(
            "at-risk",
            "At-risk key accounts",
            table,
            note=f"{n:,} key accounts with a red health band or P(alive) < 0.5; the "
            f"{len(collected)} largest by trailing revenue are listed.",
        ),
        collected,
    )


def scorecard_report(
    card: DataFrame,
    *,
    transactions: DataFrame,
    as_of: _dt.date | _dt.datetime | str,
    surveys: DataFrame | None = None,
    account_col: str = "account_id",
    date_col: str = "order_date",
    value_col: str = "amount",
    survey_date_col: str = "response_date",
    score_col: str = "score",
    top_share: float = 0.2,
    retention_period: Literal["month", "quarter", "year"] = "quarter",
    bridge_periods: int = 4,
    at_risk_limit: int = 20,
    title: str = "kamlib account portfolio report",
    subtitle: str = "",
    mrr: DataFrame | None = None,
    cohort_period: Literal["month", "quarter", "year"] = "quarter",
    mrr_months: int = 12,
    whitespace: DataFrame | None = None,
    recommendations: DataFrame | None = None,
    product_col: str = "product",
    health_history: DataFrame | None = None,
    as_of_col: str = "as_of",
) -> str:
    """Build the portfolio report HTML from a scorecard (see :data:`SECTION_IDS`).

    Parameters
    ----------
    card : pyspark.sql.DataFrame
        The result of :func:`kamlib.scorecard.account_scorecard`.
    transactions : pyspark.sql.DataFrame
        The transactions it was computed from (for the GRR/NRR trend and revenue bridge of
        :func:`kamlib.retention.retention_rates`, complete periods before ``as_of``).
    as_of : date, datetime or str
        The scoring date of ``card``.
    surveys : pyspark.sql.DataFrame, optional
        NPS responses for the monthly NPS trend (:func:`kamlib.nps.nps` by month, with its
        confidence interval). Without surveys the section says so.
    retention_period : str
        "month", "quarter" or "year" for the retention trend and bridge.
    bridge_periods : int
        Number of most recent periods summed in the revenue bridge.
    mrr : pyspark.sql.DataFrame, optional
        :func:`kamlib.recurring.contract_mrr` output (``account_col``, ``month``, ``mrr``).
        Adds the ``mrr-bridge`` section (:func:`kamlib.recurring.mrr_bridge` of the complete
        months before ``as_of``: movements per month, ending MRR, the last months' GRR, NRR,
        quick ratio and ARR) and the ``cohort-retention`` heatmaps
        (:func:`kamlib.recurring.cohort_retention` on the MRR by ``cohort_period``), and the
        latest month's MRR and ARR to the summary.
    cohort_period : {"month", "quarter", "year"}
        Cohort and period length of the heatmap.
    mrr_months : int
        Months drawn in the MRR movements chart.
    whitespace : pyspark.sql.DataFrame, optional
        :func:`kamlib.growth.whitespace` output: adds the ``whitespace`` section (headroom per
        product, key accounts vs the rest, and the accounts with the most headroom).
    recommendations : pyspark.sql.DataFrame, optional
        :func:`kamlib.growth.next_products` output: the top recommendation of each listed
        whitespace account.
    health_history : pyspark.sql.DataFrame, optional
        Scorecards at several dates stacked with an ``as_of_col`` column: adds the
        ``health-trend`` section (band mix per snapshot and the key accounts whose
        :func:`kamlib.health.health_trend` slope falls fastest).

    Returns
    -------
    str
        A complete HTML page; every plot is an inline ``data:image/png;base64`` image.
    """
    from kamlib._validation import check_choice, parse_timestamp

    as_of_ts = parse_timestamp("scorecard_report", "as_of", as_of)
    check_choice(
        "scorecard_report", "retention_period", retention_period, ("month", "quarter", "year")
    )
    trend, bridge, retention_rows = _retention(
        transactions,
        as_of=as_of_ts,
        account_col=account_col,
        date_col=date_col,
        value_col=value_col,
        period=retention_period,
        bridge_periods=max(1, int(bridge_periods)),
    )
    extra = _retention_kpis(retention_rows, retention_period)
    if surveys is not None:
        extra += _nps_kpi(surveys, score_col)
    check_choice("scorecard_report", "cohort_period", cohort_period, ("month", "quarter", "year"))
    growth, growth_kpis = _growth_sections(
        card,
        as_of=as_of_ts,
        account_col=account_col,
        mrr=mrr,
        cohort_period=cohort_period,
        mrr_months=mrr_months,
        whitespace=whitespace,
        recommendations=recommendations,
        product_col=product_col,
        health_history=health_history,
        as_of_col=as_of_col,
    )
    extra += growth_kpis
    sections = [
        _summary(card, account_col, top_share, as_of_ts, extra),
        _pareto(card, top_share),
        _tier_mix(card),
        _clv_distribution(card),
    ]
    if surveys is not None:
        sections.append(
            _nps_trend(surveys, as_of=as_of_ts, date_col=survey_date_col, score_col=score_col)
        )
    else:
        sections.append(Section("nps-trend", "Net Promoter Score by month", "<p>No surveys.</p>"))
    sections.extend([trend, bridge, *growth])
    sections.append(_at_risk(card, account_col, at_risk_limit)[0])
    return render_html(title, sections, subtitle=subtitle or f"Scored as of {as_of_ts.date()}")


def _retention_kpis(rows: list[Any], period: str) -> list[tuple[str, str]]:
    """The GRR and NRR tiles of the last complete period (none without periods)."""
    extra: list[tuple[str, str]] = []
    if rows:
        last = rows[-1]
        label = f"{period} {last['period']}"
        for key in ("grr", "nrr"):
            value = last[key]
            extra.append(
                (f"{key.upper()} ({label})", "-" if value is None else f"{100 * value:.1f}%")
            )
    return extra


def _nps_kpi(surveys: DataFrame, score_col: str) -> list[tuple[str, str]]:
    """The NPS tile over all responses (none when there is no valid response)."""
    from kamlib.nps import nps

    nps_row = nps(surveys, score_col=score_col).first()
    if nps_row is not None and nps_row["nps"] is not None:
        return [("NPS (all responses)", f"{nps_row['nps']:+.0f}")]
    return []


def _growth_sections(
    card: DataFrame,
    *,
    as_of: _dt.datetime,
    account_col: str,
    mrr: DataFrame | None,
    cohort_period: Literal["month", "quarter", "year"],
    mrr_months: int,
    whitespace: DataFrame | None,
    recommendations: DataFrame | None,
    product_col: str,
    health_history: DataFrame | None,
    as_of_col: str,
) -> tuple[list[Section], list[tuple[str, str]]]:
    """The optional MRR, cohort, whitespace and health-trend sections and their KPI tiles."""
    growth: list[Section] = []
    extra: list[tuple[str, str]] = []
    if mrr is not None:
        from kamlib.report.sections import cohort_section, mrr_bridge_section

        mrr_section, mrr_rows = mrr_bridge_section(
            mrr, as_of=as_of, account_col=account_col, months=mrr_months
        )
        growth.append(mrr_section)
        growth.append(
            cohort_section(mrr, as_of=as_of, account_col=account_col, period=cohort_period)[0]
        )
        if mrr_rows:
            last_mrr = mrr_rows[-1]
            extra.append((f"MRR ({str(last_mrr['month'])[:7]})", _money(last_mrr["ending_mrr"])))
            extra.append(("ARR", _money(last_mrr["arr"])))
    if whitespace is not None:
        from kamlib.report.sections import whitespace_section

        ws_section, ws_rows = whitespace_section(
            whitespace,
            card,
            account_col=account_col,
            product_col=product_col,
            recommendations=recommendations,
        )
        growth.append(ws_section)
        extra.append(
            ("whitespace headroom", _money(sum(float(r["headroom"] or 0.0) for r in ws_rows)))
        )
    if health_history is not None:
        from kamlib.report.sections import health_trend_section

        growth.append(
            health_trend_section(
                health_history, card, account_col=account_col, as_of_col=as_of_col
            )[0]
        )
    return growth, extra
