"""Self-contained HTML reports with inline PNG plots (no network needed to view them).

* :class:`Section` and :func:`render_html`: a page of titled sections with an inline style sheet.
* :func:`figure_data_uri`: a matplotlib figure as a ``data:image/png;base64,...`` URI (rendered
  with the Agg canvas directly; the global pyplot backend is never touched).
* :func:`scorecard_report`: the portfolio report of :mod:`kamlib.demo` built from an
  :func:`kamlib.scorecard.account_scorecard` result (only small aggregates reach the driver).
* :func:`write_html`: write a report atomically.

Plotting needs ``matplotlib`` (``pip install 'kamlib[plot]'``).
"""

from __future__ import annotations

from kamlib.report._html import Section, figure_data_uri, html_table, render_html, write_html
from kamlib.report.scorecard import SECTION_IDS, scorecard_report

__all__ = [
    "SECTION_IDS",
    "Section",
    "figure_data_uri",
    "html_table",
    "render_html",
    "scorecard_report",
    "write_html",
]
