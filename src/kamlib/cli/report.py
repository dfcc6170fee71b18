"""``kamlib report``: the portfolio report, or one account's QBR page, from saved tables.

Reads the scorecard written by ``kamlib scorecard`` (``--scorecard``), the transactions it
was computed from and optional contracts, surveys, health history (stacked scorecards with an
``as_of`` column) and alerts, and writes one self-contained HTML file: the portfolio report
(:func:`kamlib.report.scorecard_report`) or, with ``--account ID``, that account's QBR page
(:func:`kamlib.report.account_report`). Contracts give the MRR sections
(:func:`kamlib.recurring.contract_mrr`); transactions with a product column give whitespace
(:func:`kamlib.growth.whitespace`) and, with ``--next-products``, recommendations
(:func:`kamlib.growth.next_products`).

Exit codes: 0 success, 2 bad input (missing path or column, unknown account), 1 runtime failure.
"""

from __future__ import annotations

import argparse
import logging
import os
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import urlparse

from kamlib.errors import SchemaError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

__all__ = ["add_parser", "run_report"]

log = logging.getLogger("kamlib.report")

INPUT_FORMATS = ("parquet", "csv", "delta")


def add_parser(sub: Any) -> None:
    """Register ``kamlib report`` on the CLI's sub-parsers."""
    p = sub.add_parser(
        "report",
        help="write the portfolio HTML report, or one account's QBR page with --account",
        description="Build the HTML portfolio report (or, with --account, one account's QBR "
        "page) from a saved scorecard and its inputs. Exit codes: 0 ok, 2 bad input, 1 failure.",
    )
    p.add_argument("--scorecard", required=True, help="scorecard written by `kamlib scorecard`")
    p.add_argument("--transactions", required=True, help="transactions (account, date, amount)")
    p.add_argument("--as-of", required=True, help="the scorecard's scoring date")
    p.add_argument("--output", required=True, help="HTML file to write")
    p.add_argument("--account", default=None, help="write this account's QBR page instead")
    p.add_argument("--contracts", help="contracts (account, start/end date, amount, interval)")
    p.add_argument("--surveys", help="NPS survey responses (account, response date, score)")
    p.add_argument("--health-history", help="stacked scorecards with an as_of column")
    p.add_argument("--alerts", help="alerts (e.g. evaluate_alerts output) for the QBR page")
    p.add_argument(
        "--next-products",
        action="store_true",
        help="add next-product recommendations (fits FPGrowth on the product sets)",
    )
    p.add_argument("--input-format", default="parquet", choices=INPUT_FORMATS)
    p.add_argument("--account-col", default="account_id")
    p.add_argument("--date-col", default="order_date")
    p.add_argument("--value-col", default="amount")
    p.add_argument("--product-col", default="product")
    p.add_argument("--survey-date-col", default="response_date")
    p.add_argument("--score-col", default="score")
    p.add_argument("--title", default=None, help="page title")
    p.add_argument("--remote", help="Spark Connect URL (sc://host:port) to use")
    p.set_defaults(handler=_run)


def _is_local(path: str) -> bool:
    return urlparse(path).scheme in ("", "file")


def _read(spark: SparkSession, path: str, fmt: str, name: str) -> DataFrame:
    local = urlparse(path).path if path.startswith("file:") else path
    if _is_local(path) and not os.path.exists(local):
        raise SchemaError(f"kamlib report: --{name} path {path!r} does not exist")
    from kamlib.cli.scorecard import read_input

    return read_input(spark, path, fmt, name=name, command="kamlib report")


def run_report(spark: SparkSession, args: argparse.Namespace) -> str:
    """Build the report HTML for parsed ``kamlib report`` arguments on ``spark``."""
    from kamlib._validation import parse_timestamp
    from kamlib.report import account_report, scorecard_report

    func = "kamlib report"
    as_of = parse_timestamp(func, "--as-of", args.as_of)
    card, tx, surveys, history, alerts, contracts = _report_inputs(spark, args)
    mrr = None
    if contracts is not None:
        from kamlib.recurring import contract_mrr

        mrr = contract_mrr(contracts, account_col=args.account_col)
    whitespace, recommendations = _growth_frames(tx, args, func)
    if args.account is not None:
        return account_report(
            card,
            account_id=args.account,
            transactions=tx,
            as_of=as_of,
            mrr=mrr,
            surveys=surveys,
            health_history=history,
            whitespace=whitespace,
            recommendations=recommendations,
            alerts=alerts,
            account_col=args.account_col,
            date_col=args.date_col,
            value_col=args.value_col,
            survey_date_col=args.survey_date_col,
            score_col=args.score_col,
            product_col=args.product_col,
            title=args.title,
        )
    return scorecard_report(
        card,
        transactions=tx,
        as_of=as_of,
        surveys=surveys,
        account_col=args.account_col,
        date_col=args.date_col,
        value_col=args.value_col,
        survey_date_col=args.survey_date_col,
        score_col=args.score_col,
        mrr=mrr,
        whitespace=whitespace,
        recommendations=recommendations,
        product_col=args.product_col,
        health_history=history,
        **({"title": args.title} if args.title else {}),
    )


class _ReportInputs(NamedTuple):
    """The frames ``kamlib report`` reads (the optional ones None when not given)."""

    card: DataFrame
    transactions: DataFrame
    surveys: DataFrame | None
    history: DataFrame | None
    alerts: DataFrame | None
    contracts: DataFrame | None


def _report_inputs(spark: SparkSession, args: argparse.Namespace) -> _ReportInputs:
    """Scorecard, transactions and the optional surveys, health history, alerts, contracts.

    CSV inputs get their ISO date columns as timestamps.
    """
    from kamlib.cli.scorecard import _coerce_dates

    fmt = args.input_format

    def optional(path: str | None, name: str) -> DataFrame | None:
        return _read(spark, path, fmt, name) if path else None

    card = _read(spark, args.scorecard, fmt, "scorecard")
    tx = _read(spark, args.transactions, fmt, "transactions")
    surveys = optional(args.surveys, "surveys")
    history = optional(args.health_history, "health-history")
    alerts = optional(args.alerts, "alerts")
    contracts = optional(args.contracts, "contracts")
    if fmt == "csv":
        tx = _coerce_dates(tx, args.date_col)
        if surveys is not None:
            surveys = _coerce_dates(surveys, args.survey_date_col)
        if contracts is not None:
            contracts = _coerce_dates(_coerce_dates(contracts, "start_date"), "end_date")
        if history is not None:
            history = _coerce_dates(history, "as_of")
    return _ReportInputs(card, tx, surveys, history, alerts, contracts)


def _growth_frames(
    tx: DataFrame, args: argparse.Namespace, func: str
) -> tuple[DataFrame | None, DataFrame | None]:
    """The whitespace matrix and (``--next-products``) recommendations, when tx has products."""
    if args.product_col not in tx.columns:
        if args.next_products:
            raise SchemaError(
                f"{func}: --next-products needs a {args.product_col!r} column in --transactions "
                "(set --product-col)"
            )
        return None, None
    from kamlib.growth import next_products, whitespace

    matrix = whitespace(
        tx, account_col=args.account_col, product_col=args.product_col, value_col=args.value_col
    )
    recommendations = None
    if args.next_products:
        recommendations = next_products(
            tx, account_col=args.account_col, product_col=args.product_col
        )
    return matrix, recommendations


def _run(args: argparse.Namespace) -> int:
    from kamlib.cli._session import command_session
    from kamlib.report import write_html

    if not _is_local(args.output):
        raise SchemaError(f"kamlib report: --output {args.output!r} must be a local HTML file path")
    for name in ("scorecard", "transactions", "contracts", "surveys", "health_history", "alerts"):
        path = getattr(args, name)
        if path and _is_local(path) and not os.path.exists(urlparse(path).path or path):
            flag = name.replace("_", "-")
            raise SchemaError(f"kamlib report: --{flag} path {path!r} does not exist")
    spark, created = command_session(app_name="kamlib-report", remote=args.remote)
    try:
        text = run_report(spark, args)
    finally:
        if created:
            spark.stop()
    path = write_html(
        text, urlparse(args.output).path if args.output.startswith("file:") else args.output
    )
    print(f"kamlib report: wrote {path}")
    return 0
