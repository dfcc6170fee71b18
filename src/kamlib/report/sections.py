"""Portfolio report sections for contracts and growth: MRR bridge, cohorts, whitespace, health.

Each function takes DataFrames and returns a :class:`~kamlib.report.Section` (pure: no I/O);
the Spark work is a small aggregate collected to the driver (one row per month, cohort cell,
product or listed account), never the account-level tables.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from kamlib._validation import TEMP_PREFIX
from kamlib.report._html import Section, html_table, image

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

__all__ = [
    "cohort_section",
    "health_trend_section",
    "mrr_bridge_section",
    "whitespace_section",
]

_BLUE = "#2b6cb0"
_ORANGE = "#dd6b20"
_GREEN = "#2f855a"
_LIGHT_GREEN = "#68d391"
_RED = "#c53030"
_LIGHT_RED = "#fc8181"
_YELLOW = "#d69e2e"
_GREY = "#718096"


def _figure(width: float = 9.0, height: float = 3.8) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def money(x: float | None) -> str:
    """``12.3k`` / ``4.5M`` style amount (``-`` for null / NaN)."""
    if x is None or x != x:
        return "-"
    for unit, div in (("bn", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= div:
            return f"{x / div:,.1f}{unit}"
    return f"{x:,.0f}"


def pct(x: float | None, digits: int = 1) -> str:
    """A fraction as a percentage (``-`` for null)."""
    if x is None or x != x:
        return "-"
    return f"{100 * x:.{digits}f}%"


def _as_of_lit(as_of: _dt.datetime) -> Column:
    from pyspark.sql import functions as F

    return F.lit(as_of.date().isoformat()).cast("date")


def complete_months(mrr: DataFrame, month_col: str, as_of: _dt.datetime) -> DataFrame:
    """Rows of months whose last day is before ``as_of`` (MRR is measured on that day)."""
    from pyspark.sql import functions as F

    return mrr.where(F.add_months(F.to_date(F.col(month_col)), 1) <= _as_of_lit(as_of))


# --------------------------------------------------------------------------------- MRR bridge
def mrr_bridge_section(
    mrr: DataFrame,
    *,
    as_of: _dt.datetime,
    account_col: str = "account_id",
    month_col: str = "month",
    mrr_col: str = "mrr",
    months: int = 12,
) -> tuple[Section, list[Any]]:
    """Monthly MRR movements (stacked bars) with ending MRR, and the last months' bridge table.

    ``mrr`` is :func:`kamlib.recurring.contract_mrr` output; months that are not complete at
    ``as_of`` are left out. Returns the section and the collected bridge rows (all months).
    """
    from kamlib.recurring import mrr_bridge

    rows = (
        mrr_bridge(
            complete_months(mrr, month_col, as_of),
            account_col=account_col,
            month_col=month_col,
            mrr_col=mrr_col,
        )
        .orderBy(month_col)
        .collect()
    )
    shown = rows[-max(1, int(months)) :]
    fig = _mrr_chart(shown, month_col)
    table = _mrr_table(shown, month_col)
    return (
        Section(
            "mrr-bridge",
            "MRR movements",
            image(fig, "MRR movements by month") + table,
            note="Contract MRR (amount / billing interval on each month's last day): ending = "
            "starting + new + reactivation + expansion - contraction - churned; an annual "
            "invoice is spread over its 12 months, so it never shows as expansion then churn. "
            f"Last {len(shown)} complete months before {as_of.date()}.",
        ),
        rows,
    )


def _mrr_chart(shown: list[Any], month_col: str) -> Any:
    """Stacked monthly MRR movements (gains up, losses down) with the ending MRR line."""
    fig = _figure()
    ax = fig.add_subplot()
    if shown:
        xs = list(range(len(shown)))

        def values(name: str, sign: float = 1.0) -> list[float]:
            return [sign * float(r[name] or 0.0) for r in shown]

        bottom = [0.0] * len(shown)
        for name, color, label in (
            ("new_mrr", _GREEN, "new"),
            ("reactivation_mrr", _LIGHT_GREEN, "reactivation"),
            ("expansion_mrr", _BLUE, "expansion"),
        ):
            v = values(name)
            ax.bar(xs, v, bottom=bottom, color=color, label=label)
            bottom = [b + x for b, x in zip(bottom, v, strict=True)]
        bottom = [0.0] * len(shown)
        for name, color, label in (
            ("contraction_mrr", _LIGHT_RED, "contraction"),
            ("churned_mrr", _RED, "churned"),
        ):
            v = values(name, -1.0)
            ax.bar(xs, v, bottom=bottom, color=color, label=label)
            bottom = [b + x for b, x in zip(bottom, v, strict=True)]
        ax.axhline(0, color=_GREY, lw=0.8)
        ax.set_xticks(xs, [str(r[month_col])[:7] for r in shown])
        ax.tick_params(axis="x", labelrotation=45)
        ax.set_ylabel("MRR movement")
        ax2 = ax.twinx()
        ax2.plot(xs, values("ending_mrr"), color="#1a202c", marker="o", ms=3, label="ending MRR")
        ax2.set_ylabel("ending MRR")
        ax2.set_ylim(bottom=0)
        from matplotlib.ticker import FuncFormatter

        for axis in (ax, ax2):
            axis.yaxis.set_major_formatter(FuncFormatter(lambda v, _: money(v)))
        handles, labels = ax.get_legend_handles_labels()
        h2, l2 = ax2.get_legend_handles_labels()
        ax.legend(
            handles + h2,
            labels + l2,
            loc="upper center",
            bbox_to_anchor=(0.5, -0.3),
            ncol=6,
            frameon=False,
        )
        ax.grid(alpha=0.3, axis="y")
    return fig


def _mrr_table(shown: list[Any], month_col: str) -> str:
    """The bridge table of the last six shown months."""
    table_rows = [
        [
            str(r[month_col])[:7],
            r["starting_mrr"],
            r["new_mrr"],
            r["reactivation_mrr"],
            r["expansion_mrr"],
            r["contraction_mrr"],
            r["churned_mrr"],
            r["ending_mrr"],
            pct(r["grr"]),
            pct(r["nrr"]),
            r["quick_ratio"],
            r["arr"],
        ]
        for r in shown[-6:]
    ]
    return html_table(
        [
            "month",
            "starting",
            "new",
            "reactivation",
            "expansion",
            "contraction",
            "churned",
            "ending",
            "GRR",
            "NRR",
            "quick ratio",
            "ARR",
        ],
        table_rows,
    )


# ----------------------------------------------------------------------------- cohort heatmap
def cohort_section(
    df: DataFrame,
    *,
    as_of: _dt.datetime,
    account_col: str = "account_id",
    date_col: str = "month",
    value_col: str = "mrr",
    period: Literal["month", "quarter", "year"] = "quarter",
    max_cohorts: int = 12,
    max_periods: int = 12,
) -> tuple[Section, list[Any]]:
    """Heatmaps of logo and revenue retention by cohort and period number.

    ``df`` is :func:`kamlib.recurring.contract_mrr` output (default columns) or transactions;
    only complete periods before ``as_of`` are used, and the most recent ``max_cohorts``
    cohorts and first ``max_periods`` period numbers are drawn.
    """
    from pyspark.sql import functions as F

    from kamlib.recurring import cohort_retention

    start = F.to_date(F.date_trunc(period, _as_of_lit(as_of).cast("timestamp")))
    complete = df.where(F.to_date(F.col(date_col)) < start)
    rows = (
        cohort_retention(
            complete,
            account_col=account_col,
            date_col=date_col,
            value_col=value_col,
            period=period,
        )
        .where(F.col("period_number") < F.lit(int(max_periods)))
        .orderBy("cohort", "period_number")
        .collect()
    )
    cohorts = sorted({r["cohort"] for r in rows})[-max(1, int(max_cohorts)) :]
    keep = set(cohorts)
    rows = [r for r in rows if r["cohort"] in keep]
    n_periods = 1 + max((int(r["period_number"]) for r in rows), default=-1)
    fig = _figure(11.0, 0.9 + 0.38 * max(len(cohorts), 1))
    size = {r["cohort"]: int(r["cohort_accounts"]) for r in rows}
    labels = [f"{_period_label(c, period)} (n={size.get(c, 0)})" for c in cohorts]
    for i, (metric, title) in enumerate(
        (("logo_retention", "logo retention"), ("revenue_retention", "revenue retention"))
    ):
        ax = fig.add_subplot(1, 2, i + 1)
        grid = [[float("nan")] * max(n_periods, 1) for _ in cohorts]
        index = {c: j for j, c in enumerate(cohorts)}
        for r in rows:
            value = r[metric]
            if value is not None:
                grid[index[r["cohort"]]][int(r["period_number"])] = 100.0 * float(value)
        if cohorts:
            im = ax.imshow(grid, aspect="auto", cmap="RdYlGn", vmin=0, vmax=120)
            for y, line in enumerate(grid):
                for x, v in enumerate(line):
                    if v == v:
                        ax.text(x, y, f"{v:.0f}", ha="center", va="center", fontsize=7)
            ax.set_yticks(range(len(cohorts)), labels if i == 0 else [""] * len(cohorts))
            ax.set_xticks(range(max(n_periods, 1)))
            fig.colorbar(im, ax=ax, shrink=0.8, label="%")
        ax.set_xlabel(f"{period}s since acquisition")
        ax.set_title(title)
    return (
        Section(
            "cohort-retention",
            f"Cohort retention by {period}",
            image(fig, "cohort retention heatmap"),
            note=f"Cohort = first {period} with {value_col} > 0. Logo retention = active / cohort "
            f"accounts; revenue retention = the cohort's {value_col} in the {period} / its "
            f"{period}-0 {value_col} (above 100% = expansion outgrows churn). Complete "
            f"{period}s before {as_of.date()}.",
        ),
        rows,
    )


def _period_label(day: Any, period: str) -> str:
    if not isinstance(day, _dt.date):
        return str(day)
    if period == "quarter":
        return f"{day.year} Q{(day.month - 1) // 3 + 1}"
    if period == "year":
        return str(day.year)
    return f"{day.year}-{day.month:02d}"


# --------------------------------------------------------------------------------- whitespace
def whitespace_section(
    whitespace: DataFrame,
    card: DataFrame,
    *,
    account_col: str = "account_id",
    product_col: str = "product",
    recommendations: DataFrame | None = None,
    limit: int = 10,
) -> tuple[Section, list[Any]]:
    """Headroom per product (key accounts vs the rest) and the accounts with the most headroom.

    ``whitespace`` is :func:`kamlib.growth.whitespace` output; ``card`` the scorecard (for
    ``is_key_account`` and ``revenue``); ``recommendations`` optionally
    :func:`kamlib.growth.next_products` output (the top recommendation per listed account).
    """
    per_product = _headroom_by_product(
        whitespace, card, account_col=account_col, product_col=product_col
    )
    columns, table_rows = _top_headroom_accounts(
        whitespace,
        card,
        account_col=account_col,
        product_col=product_col,
        recommendations=recommendations,
        limit=limit,
    )
    fig = _headroom_chart(per_product, product_col)
    total = sum(float(r["headroom"] or 0.0) for r in per_product)
    key_total = sum(float(r["key_headroom"] or 0.0) for r in per_product)
    return (
        Section(
            "whitespace",
            "Whitespace and cross-sell headroom",
            image(fig, "whitespace headroom by product") + html_table(columns, table_rows),
            note=f"Total headroom {money(total)} ({money(key_total)} in key accounts): for each "
            "account and product sold to its peers, max(peer median revenue - own revenue, 0). "
            f"The {len(table_rows)} accounts with the most headroom are listed.",
        ),
        per_product,
    )


_KEY = f"{TEMP_PREFIX}key"
_REC = f"{TEMP_PREFIX}rec"
_CONF = f"{TEMP_PREFIX}conf"


def _headroom_by_product(
    whitespace: DataFrame, card: DataFrame, *, account_col: str, product_col: str
) -> list[Any]:
    """Accounts, buyers, revenue and headroom (all and key accounts') per product, collected."""
    from pyspark.sql import functions as F

    keyed = whitespace.join(
        card.select(account_col, F.col("is_key_account").alias(_KEY)), account_col, "left"
    )
    is_key = F.coalesce(F.col(_KEY), F.lit(False))
    return (
        keyed.groupBy(product_col)
        .agg(
            F.count(F.lit(1)).alias("accounts"),
            F.sum(F.col("bought").cast("int")).alias("buyers"),
            F.sum("revenue").alias("revenue"),
            F.sum("headroom").alias("headroom"),
            F.sum(F.when(is_key, F.col("headroom"))).alias("key_headroom"),
        )
        .orderBy(F.desc("headroom"), product_col)
        .collect()
    )


def _top_headroom_accounts(
    whitespace: DataFrame,
    card: DataFrame,
    *,
    account_col: str,
    product_col: str,
    recommendations: DataFrame | None,
    limit: int,
) -> tuple[list[str], list[list[Any]]]:
    """The table (columns, rows) of the accounts with the most headroom."""
    from pyspark.sql import functions as F

    top = (
        whitespace.groupBy(account_col)
        .agg(
            F.sum("headroom").alias("headroom"),
            F.max_by(F.col(product_col), F.col("headroom")).alias("top_product"),
            F.sum(F.col("bought").cast("int")).alias("products_bought"),
        )
        .join(card.select(account_col, "revenue", "is_key_account"), account_col, "left")
    )
    columns = [account_col, "revenue", "is_key_account", "products_bought", "headroom"]
    columns.append("largest gap")
    if recommendations is not None:
        rec = recommendations.where(F.col("rank") == 1).select(
            account_col,
            F.col("recommended_product").alias(_REC),
            F.col("confidence").alias(_CONF),
        )
        top = top.join(rec, account_col, "left")
    listed = top.orderBy(F.desc("headroom"), account_col).limit(max(1, int(limit))).collect()
    table_rows = []
    for r in listed:
        row = [
            r[account_col],
            r["revenue"],
            r["is_key_account"],
            r["products_bought"],
            r["headroom"],
            r["top_product"],
        ]
        if recommendations is not None:
            rec_text = "-" if r[_REC] is None else f"{r[_REC]} ({pct(r[_CONF], 0)})"
            row.append(rec_text)
        table_rows.append(row)
    if recommendations is not None:
        columns.append("next product (confidence)")
    return columns, table_rows


def _headroom_chart(per_product: list[Any], product_col: str) -> Any:
    """Horizontal bars of the headroom per product, key accounts first."""
    fig = _figure(9.0, 0.9 + 0.45 * max(len(per_product), 1))
    ax = fig.add_subplot()
    if per_product:
        names = [str(r[product_col]) for r in per_product]
        key = [float(r["key_headroom"] or 0.0) for r in per_product]
        rest = [float(r["headroom"] or 0.0) - k for r, k in zip(per_product, key, strict=True)]
        ys = list(range(len(names)))
        ax.barh(ys, key, color=_BLUE, label="key accounts")
        ax.barh(ys, rest, left=key, color=_GREY, label="other accounts")
        for y, r in zip(ys, per_product, strict=True):
            share = (r["buyers"] or 0) / r["accounts"] if r["accounts"] else 0.0
            ax.text(
                float(r["headroom"] or 0.0),
                y,
                f"  {pct(share, 0)} bought",
                va="center",
                fontsize=8,
            )
        ax.set_yticks(ys, names)
        ax.invert_yaxis()
        from matplotlib.ticker import FuncFormatter

        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: money(v)))
        ax.set_xlabel("headroom (peer median revenue - own revenue, summed over accounts)")
        ax.legend(loc="lower right")
        ax.grid(alpha=0.3, axis="x")
    return fig


# ------------------------------------------------------------------------------- health trend
_BAND_COLORS = {"green": _GREEN, "yellow": _YELLOW, "red": _RED}


def health_trend_section(
    history: DataFrame,
    card: DataFrame | None = None,
    *,
    account_col: str = "account_id",
    as_of_col: str = "as_of",
    score_col: str = "health_score",
    band_col: str = "health_band",
    limit: int = 10,
) -> tuple[Section, list[Any]]:
    """Health band mix per snapshot date and the key accounts whose health falls fastest.

    ``history`` stacks scorecards at several dates (one row per account and ``as_of_col``);
    per account :func:`kamlib.health.health_trend` gives the slope and last change. With
    ``card`` only its key accounts are listed.
    """
    from kamlib.health import health_trend

    mix = _band_mix(history, as_of_col=as_of_col, score_col=score_col, band_col=band_col)
    trend = health_trend(
        history,
        account_col=account_col,
        as_of_col=as_of_col,
        score_col=score_col,
        band_col=band_col,
    )
    n, declining, improving = _slope_counts(trend)
    columns, listed = _fastest_falling(trend, card, account_col=account_col, limit=limit)
    fig = _band_chart(mix, as_of_col)
    who = "key accounts" if card is not None else "accounts"
    return (
        Section(
            "health-trend",
            "Health trend",
            image(fig, "health band mix by snapshot")
            + html_table(columns, [list(r) for r in listed]),
            note=f"{len(mix)} snapshots; of {n:,} accounts {declining:,} decline by more than 1 "
            f"point per 30 days and {improving:,} improve (least-squares slope of the health "
            f"score). The {len(listed)} {who} falling fastest are listed.",
        ),
        listed,
    )


def _band_mix(history: DataFrame, *, as_of_col: str, score_col: str, band_col: str) -> list[Any]:
    """Accounts, mean score and accounts per band of each snapshot, collected in date order."""
    from pyspark.sql import functions as F

    return (
        history.groupBy(as_of_col)
        .agg(
            F.count(F.lit(1)).alias("n"),
            F.avg(score_col).alias("mean_score"),
            *[
                F.sum(F.when(F.col(band_col) == F.lit(b), 1).otherwise(0)).alias(b)
                for b in ("red", "yellow", "green")
            ],
        )
        .orderBy(as_of_col)
        .collect()
    )


def _slope_counts(trend: DataFrame) -> tuple[int, int, int]:
    """Accounts, and those whose health falls / rises by more than 1 point per 30 days."""
    from pyspark.sql import functions as F

    counts = trend.agg(
        F.count(F.lit(1)).alias("n"),
        F.sum(F.when(F.col("health_slope_30d") < -1, 1).otherwise(0)).alias("declining"),
        F.sum(F.when(F.col("health_slope_30d") > 1, 1).otherwise(0)).alias("improving"),
    ).first()
    n = int(counts["n"] or 0) if counts else 0
    declining = int(counts["declining"] or 0) if counts else 0
    improving = int(counts["improving"] or 0) if counts else 0
    return n, declining, improving


def _fastest_falling(
    trend: DataFrame, card: DataFrame | None, *, account_col: str, limit: int
) -> tuple[Sequence[str], list[Any]]:
    """The (key) accounts with the steepest health decline: columns and collected rows."""
    from pyspark.sql import functions as F

    listed_df = trend.where(F.col("health_slope_30d").isNotNull())
    if card is not None:
        listed_df = listed_df.join(
            card.where(F.col("is_key_account")).select(account_col, "revenue"), account_col
        )
    columns: Sequence[str] = [
        account_col,
        *(["revenue"] if card is not None else []),
        "health_score_last",
        "health_band_last",
        "health_change_last",
        "health_slope_30d",
        "band_changes",
    ]
    listed = (
        listed_df.orderBy(F.asc("health_slope_30d"), account_col)
        .select(*columns)
        .limit(max(1, int(limit)))
        .collect()
    )
    return columns, listed


def _band_chart(mix: list[Any], as_of_col: str) -> Any:
    """Stacked band shares per snapshot with the mean health score line."""
    fig = _figure()
    ax = fig.add_subplot()
    if mix:
        xs = list(range(len(mix)))
        bottom = [0.0] * len(mix)
        for band in ("red", "yellow", "green"):
            share = [100.0 * (r[band] or 0) / r["n"] if r["n"] else 0.0 for r in mix]
            ax.bar(xs, share, bottom=bottom, color=_BAND_COLORS[band], label=band, width=0.6)
            bottom = [b + s for b, s in zip(bottom, share, strict=True)]
        ax.set_xticks(xs, [str(r[as_of_col])[:10] for r in mix])
        ax.set_ylabel("% of accounts")
        ax.set_ylim(0, 100)
        ax2 = ax.twinx()
        ax2.plot(xs, [r["mean_score"] for r in mix], color="#1a202c", marker="o", label="mean")
        ax2.set_ylabel("mean health score")
        ax2.set_ylim(0, 100)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=3, frameon=False)
    return fig
