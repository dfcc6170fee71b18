"""``kamlib demo``: the report has every section and an inline PNG per plot; Chromium renders it."""

from __future__ import annotations

import io
import re
import shutil
import subprocess

import pytest

from kamlib.cli import main
from kamlib.report import SECTION_IDS, Section, figure_data_uri, render_html, write_html

#: Sections that hold a plot (the summary and at-risk sections are tables/tiles).
PLOT_SECTIONS = (
    "pareto",
    "tier-mix",
    "clv-distribution",
    "nps-trend",
    "retention-trend",
    "revenue-bridge",
    "mrr-bridge",
    "cohort-retention",
    "whitespace",
)
IMG = re.compile(r'<img class="plot" alt="[^"]*" src="data:image/png;base64,([A-Za-z0-9+/=]+)">')


def _sections(html: str) -> dict[str, str]:
    parts = re.findall(r'<section id="([^"]+)">(.*?)</section>', html, flags=re.S)
    return dict(parts)


@pytest.fixture(scope="module")
def report(tmp_path_factory, spark):
    """Run the demo once (small) in-process; it reuses the active test session."""
    from kamlib.demo import run_demo

    out = tmp_path_factory.mktemp("demo")
    stream = io.StringIO()
    result = run_demo(n_accounts=2_000, seed=3, output=out, stream=stream)
    return result, stream.getvalue()


def test_report_has_every_section_and_inline_plots(report):
    result, _ = report
    html = result.report_path.read_text(encoding="utf-8")
    sections = _sections(html)
    # the demo has one scorecard snapshot, hence no health-trend section
    assert list(sections) == [s for s in SECTION_IDS if s != "health-trend"]
    for section_id in PLOT_SECTIONS:
        images = IMG.findall(sections[section_id])
        assert len(images) == 1, section_id
        assert len(images[0]) > 5_000, section_id  # a real PNG, not an empty canvas
    assert "<table>" in sections["at-risk"]
    assert "<table>" in sections["tier-mix"]
    assert "http://" not in html  # viewable offline
    assert "https://" not in html
    top = result.top_accounts[0]["account_id"]
    qbr = (result.report_path.parent / f"account-{top}.html").read_text(encoding="utf-8")
    assert f"Quarterly business review: {top}" in qbr
    assert "mrr-movements" in _sections(qbr)


def test_demo_prints_progress_and_top_accounts(report):
    result, text = report
    assert re.search(r"\[1/5\] starting local Spark \.\.\. \d+\.\ds", text)
    assert "Top 10 key accounts" in text
    assert len(result.top_accounts) == 10
    assert all(row["value_rank"] <= 400 for row in result.top_accounts)  # 20% of 2000
    ranks = [row["value_rank"] for row in result.top_accounts]
    assert ranks == sorted(ranks)


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed")
def test_report_renders_in_headless_chromium(report, tmp_path):
    result, _ = report
    png = tmp_path / "report.png"
    cmd = [
        "chromium",
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        f"--screenshot={png}",
        "--window-size=1400,6000",
        result.report_path.as_uri(),
    ]
    subprocess.run(cmd, check=False, capture_output=True, timeout=180)
    assert png.exists()
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 100_000  # plots and tables, not a blank page


def test_render_html_building_blocks(tmp_path):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(2, 2))
    fig.add_subplot().plot([0, 1], [1, 0])
    uri = figure_data_uri(fig)
    assert uri.startswith("data:image/png;base64,")
    page = render_html("T <&>", [Section("a-b", "Title", f'<img src="{uri}">', note="n")])
    assert '<section id="a-b">' in page
    assert "T &lt;&amp;&gt;" in page
    path = write_html(page, tmp_path / "sub" / "r.html")
    assert path.read_text(encoding="utf-8") == page
    assert sorted(p.name for p in path.parent.iterdir()) == ["r.html"]


def test_demo_cli_rejects_tiny_portfolio(capsys):
    assert main(["demo", "--accounts", "3"]) == 2
    assert "--accounts must be at least 10" in capsys.readouterr().err


def test_demo_without_matplotlib_fails_in_one_line_before_spark(monkeypatch, capsys, tmp_path):
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    assert main(["demo", "--accounts", "10", "--output", str(tmp_path / "r")]) == 1
    captured = capsys.readouterr()
    assert captured.err.strip().splitlines() == [
        "kamlib demo: the report needs matplotlib, which is not installed: "
        "pip install 'kamlib[plot]'"
    ]
    assert "starting local Spark" not in captured.out
    assert not (tmp_path / "r").exists()
