"""Self-contained HTML reports with inline PNG plots (no network needed to view them).

* :class:`Section` and :func:`render_html`: a page of titled sections with an inline style sheet.
* :func:`figure_data_uri`: a matplotlib figure as a ``data:image/png;base64,...`` URI (rendered
  with the Agg canvas directly; the global pyplot backend is never touched).
* :func:`scorecard_report`: the portfolio report of :mod:`kamlib.demo` built from an
  :func:`kamlib.scorecard.account_scorecard` result (only small aggregates reach the driver).
* The portfolio report's optional sections (:mod:`kamlib.report.sections`): MRR movements and
  the cohort retention heatmap (with ``mrr=``), whitespace headroom (``whitespace=``) and the
  health trend (``health_history=``).
* :func:`account_report`: one account's QBR page (revenue and MRR history and movements,
  health drivers and trend, NPS, CLV and forecast, targets, whitespace and next products,
  recent alerts); ``kamlib report --account ID`` writes it.
* :func:`write_html`: write a report atomically.

Plotting needs ``matplotlib`` (``pip install 'kamlib[plot]'``).
"""

from __future__ import annotations

from kamlib.report._html import Section, figure_data_uri, html_table, render_html, write_html
from kamlib.report.account import ACCOUNT_SECTION_IDS, account_report
from kamlib.report.scorecard import OPTIONAL_SECTION_IDS, SECTION_IDS, scorecard_report

__all__ = [
    "ACCOUNT_SECTION_IDS",
    "OPTIONAL_SECTION_IDS",
    "SECTION_IDS",
    "Section",
    "account_report",
    "figure_data_uri",
    "html_table",
    "render_html",
    "scorecard_report",
    "write_html",
]
