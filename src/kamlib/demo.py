"""``kamlib demo``: synthetic data -> account scorecard on a local Spark -> HTML report.

Generates a synthetic B2B key-account portfolio (:func:`kamlib.datasets.synthetic_portfolio`:
contracts with monthly, quarterly and annual billing and renewals, their invoices, NPS surveys,
wallet estimates and account targets; GRR ~90%, NRR ~110%, NPS ~+30), runs
:func:`kamlib.scorecard.account_scorecard` on an embedded local Spark, prints the top key
accounts, and writes a self-contained HTML report (:func:`kamlib.report.scorecard_report`, with
the contract MRR movements, cohort heatmaps and whitespace sections) and the top key account's
QBR page (:func:`kamlib.report.account_report`, ``account-<id>.html`` next to it).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from kamlib.errors import KamlibError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, Row, SparkSession

    from kamlib.datasets import Portfolio

__all__ = ["DEFAULT_ACCOUNTS", "DemoResult", "run_demo"]

#: Default portfolio size: about a minute end to end on a 2-core machine.
DEFAULT_ACCOUNTS = 20_000

_TOP_COLUMNS = (
    "value_rank",
    "revenue",
    "revenue_growth",
    "abc_tier",
    "clv",
    "p_alive",
    "revenue_forecast_365d",
    "nps",
    "share_of_wallet",
    "target_attainment",
    "health_score",
    "health_band",
)


class DemoResult:
    """What :func:`run_demo` produced: the report path, step timings and the top accounts."""

    def __init__(
        self, report_path: Path, timings: dict[str, float], top_accounts: list[dict[str, Any]]
    ) -> None:
        self.report_path = report_path
        self.timings = timings
        self.top_accounts = top_accounts

    @property
    def total_seconds(self) -> float:
        """Wall time of all steps."""
        return sum(self.timings.values())


class _Progress:
    """Step lines with timings: ``[2/6] generating synthetic data ... 3.1s``."""

    def __init__(self, total: int, stream: TextIO) -> None:
        self.total = total
        self.stream = stream
        self.index = 0
        self.timings: dict[str, float] = {}

    @contextlib.contextmanager
    def step(self, label: str) -> Iterator[None]:
        self.index += 1
        print(f"[{self.index}/{self.total}] {label} ...", end="", flush=True, file=self.stream)
        started = time.perf_counter()
        try:
            yield
        except BaseException:
            print(" failed", file=self.stream, flush=True)
            raise
        elapsed = time.perf_counter() - started
        self.timings[label] = elapsed
        print(f" {elapsed:.1f}s", file=self.stream, flush=True)


def _format_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def cell(v: Any) -> str:
        if v is None:
            return "-"
        if isinstance(v, bool):
            return "yes" if v else "no"
        if isinstance(v, float):
            return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:,.2f}"
        return str(v)

    text = [[cell(v) for v in row] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in text]) for i, c in enumerate(columns)]
    line = "  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True))
    rule = "  ".join("-" * w for w in widths)
    body = ["  ".join(v.rjust(w) for v, w in zip(r, widths, strict=True)) for r in text]
    return "\n".join([line, rule, *body])


def _require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise KamlibError(
            "the report needs matplotlib, which is not installed: pip install 'kamlib[plot]'"
        ) from None


def run_demo(
    *,
    n_accounts: int = DEFAULT_ACCOUNTS,
    seed: int = 7,
    output: str | Path = "kamlib-report",
    top: int = 10,
    stream: TextIO | None = None,
) -> DemoResult:
    """Run the whole scorecard on synthetic data and write ``OUTPUT/report.html``.

    Also writes ``OUTPUT/account-<id>.html``, the QBR page of the largest key account, and
    stages the generated input tables as parquet under ``OUTPUT/data/`` (contracts,
    transactions, products, surveys, wallets, targets, hierarchy), read back like a real job's.

    Parameters
    ----------
    n_accounts : int
        Number of synthetic accounts.
    seed : int
        Seed of the synthetic data (same seed, same report numbers).
    output : str or Path
        Directory of the report (created if needed).
    top : int
        Number of top key accounts printed.
    stream : TextIO, optional
        Where progress and the table are printed (default ``sys.stdout``).

    Returns
    -------
    DemoResult
        Report path, step timings and the printed top key accounts.
    """
    from kamlib.cli._session import command_session
    from kamlib.datasets._portfolio import PORTFOLIO_END

    _require_matplotlib()  # the report's charts; checked before any Spark work
    out = stream or sys.stdout
    # Score at the first day after the data window: every month and year is complete.
    as_of: _dt.date = PORTFOLIO_END
    print(f"kamlib demo: {n_accounts:,} synthetic accounts, scored as of {as_of}", file=out)
    progress = _Progress(5, out)
    with progress.step("starting local Spark"):
        # Reuse a session the caller already has (a notebook, a test); otherwise own one.
        spark, owns_session = command_session(app_name="kamlib-demo")
    try:
        with progress.step("generating synthetic data"):
            portfolio, n_tx = _generate(spark, n_accounts, seed, Path(output) / "data")
        print(f"      {n_tx:,} invoices", file=out)
        with progress.step("computing the account scorecard (CLV fits, NPS, wallet, health)"):
            card = _score(portfolio, as_of)
        with progress.step("selecting the top key accounts"):
            columns, rows = _top_accounts(card, top)
        with progress.step("building the HTML report and the top account's QBR page"):
            report_path = _write_reports(
                card,
                portfolio,
                rows,
                as_of=as_of,
                output=Path(output),
                subtitle=f"{n_accounts:,} synthetic B2B key accounts (seed {seed}), "
                f"scored as of {as_of}",
            )
        card.unpersist()
    finally:
        if owns_session:
            spark.stop()
    print(f"\nTop {len(rows)} key accounts by trailing revenue:", file=out)
    print(_format_table(["account_id", *columns], [list(r) for r in rows]), file=out)
    result = DemoResult(report_path.resolve(), progress.timings, [r.asDict() for r in rows])
    print(
        f"\nkamlib demo: done in {result.total_seconds:.1f}s; report written to "
        f"{result.report_path}",
        file=out,
    )
    return result


def _generate(
    spark: SparkSession, n_accounts: int, seed: int, data_dir: Path
) -> tuple[Portfolio, int]:
    """The synthetic portfolio staged as parquet tables under ``data_dir``, and its invoices.

    Generated frames are local data embedded in every query plan (re-planned and re-sent on
    each of the report's queries); reading parquet, as a production job reads its tables,
    makes each query about 5x cheaper at 20,000 accounts.
    """
    from kamlib.datasets import Portfolio, synthetic_portfolio

    generated = synthetic_portfolio(spark, n_accounts, seed=seed)
    tables = {}
    for name, frame in generated._asdict().items():
        path = str(data_dir / name)
        frame.write.mode("overwrite").parquet(path)
        tables[name] = spark.read.parquet(path)
    portfolio = Portfolio(**tables)
    return portfolio, portfolio.transactions.count()


def _score(portfolio: Portfolio, as_of: _dt.date) -> DataFrame:
    """The account scorecard of the portfolio's invoices, surveys, wallets and targets."""
    from kamlib.scorecard import account_scorecard

    # Contract invoices recur on a schedule, so the unpenalised BG/NBD likelihood is
    # flat across accounts (a ConvergenceError); a small L2 penalty identifies it.
    return account_scorecard(
        portfolio.transactions,
        as_of=as_of,
        surveys=portfolio.surveys,
        wallets=portfolio.wallets,
        targets=portfolio.targets,
        penalizer=0.001,
    )


def _top_accounts(card: DataFrame, top: int) -> tuple[list[str], list[Row]]:
    """The printed columns and the ``top`` key accounts by value rank."""
    from pyspark.sql import functions as F

    columns = [c for c in _TOP_COLUMNS if c in card.columns]
    rows = (
        card.where(F.col("is_key_account"))
        .orderBy("value_rank")
        .select("account_id", *columns)
        .limit(top)
        .collect()
    )
    return columns, rows


def _write_reports(
    card: DataFrame,
    portfolio: Portfolio,
    rows: list[Row],
    *,
    as_of: _dt.date,
    output: Path,
    subtitle: str,
) -> Path:
    """Write ``report.html`` and, when there is a top account, its ``account-<id>.html``."""
    from kamlib.growth import next_products, whitespace
    from kamlib.recurring import contract_mrr
    from kamlib.report import account_report, scorecard_report, write_html

    tx, surveys = portfolio.transactions, portfolio.surveys
    mrr = contract_mrr(portfolio.contracts).persist()
    white = whitespace(tx)
    recommendations = next_products(tx, min_support=0.02)
    html = scorecard_report(
        card,
        transactions=tx,
        surveys=surveys,
        as_of=as_of,
        retention_period="year",
        bridge_periods=1,
        title="kamlib key-account portfolio review",
        subtitle=subtitle,
        mrr=mrr,
        whitespace=white,
        recommendations=recommendations,
    )
    report_path = write_html(html, output / "report.html")
    if rows:
        top_id = rows[0]["account_id"]
        page = account_report(
            card,
            account_id=top_id,
            transactions=tx,
            as_of=as_of,
            mrr=mrr,
            surveys=surveys,
            whitespace=white,
            recommendations=recommendations,
        )
        write_html(page, output / f"account-{top_id}.html")
    mrr.unpersist()
    return report_path
