"""``kamlib demo``: the scorecard on a synthetic portfolio, printed and written as a report."""

from __future__ import annotations

import argparse
from typing import Any

from kamlib.demo import DEFAULT_ACCOUNTS, run_demo

__all__ = ["add_parser"]


def add_parser(sub: Any) -> None:
    """Register ``kamlib demo`` on the CLI's sub-parsers."""
    p = sub.add_parser(
        "demo",
        help="run the account scorecard on synthetic data with a local Spark and write a report",
        description="Generate synthetic KAM data, run the whole scorecard on an embedded local "
        "Spark, print the top key accounts and write an HTML report.",
    )
    p.add_argument(
        "--accounts", type=int, default=DEFAULT_ACCOUNTS, help="number of synthetic accounts"
    )
    p.add_argument("--seed", type=int, default=7, help="random seed of the synthetic data")
    p.add_argument(
        "--output",
        default="kamlib-report",
        help="directory for the HTML report (and the generated input tables under data/)",
    )
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from kamlib.errors import SchemaError

    if args.accounts < 10:
        raise SchemaError(f"kamlib demo: --accounts must be at least 10, found {args.accounts}")
    result = run_demo(n_accounts=args.accounts, seed=args.seed, output=args.output)
    print(f"Report: {result.report_path}")
    return 0
