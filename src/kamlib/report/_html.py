"""HTML page assembly for kamlib reports: sections, tables, inline PNG images."""

from __future__ import annotations

import base64
import dataclasses
import datetime as _dt
import html
import io
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kamlib._version import __version__

__all__ = ["Section", "figure_data_uri", "html_table", "render_html", "write_html"]

_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 0;
       background: #f4f6f8; color: #1f2933; }
header { background: #17324d; color: #fff; padding: 24px 40px; }
header h1 { margin: 0 0 4px 0; font-size: 26px; }
header p { margin: 0; opacity: .8; }
main { max-width: 1200px; margin: 0 auto; padding: 20px 40px 60px 40px; }
section { background: #fff; border-radius: 8px; box-shadow: 0 1px 3px rgba(0,0,0,.12);
          padding: 18px 24px; margin: 18px 0; }
section h2 { margin-top: 0; font-size: 20px; color: #17324d; }
section p.note { color: #52606d; font-size: 14px; }
img.plot { max-width: 100%; height: auto; display: block; margin: 8px auto; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { padding: 5px 8px; border-bottom: 1px solid #e4e7eb; text-align: right; }
th { background: #eef2f6; }
td:first-child, th:first-child { text-align: left; }
.kpis { display: flex; flex-wrap: wrap; gap: 12px; }
.kpi { flex: 1 1 150px; background: #eef2f6; border-radius: 6px; padding: 10px 14px; }
.kpi .v { font-size: 22px; font-weight: 600; color: #17324d; }
.kpi .l { font-size: 12px; color: #52606d; text-transform: uppercase; letter-spacing: .04em; }
.band-red { color: #c0392b; font-weight: 600; } .band-yellow { color: #b7791f; font-weight: 600; }
.band-green { color: #2f855a; font-weight: 600; }
footer { color: #7b8794; font-size: 12px; text-align: center; padding: 20px; }
"""


@dataclasses.dataclass(frozen=True)
class Section:
    """One titled report section; ``body`` is trusted HTML built by kamlib."""

    id: str
    title: str
    body: str
    note: str = ""

    def render(self) -> str:
        """Return the section as HTML."""
        note = f'<p class="note">{html.escape(self.note)}</p>' if self.note else ""
        return (
            f'<section id="{html.escape(self.id)}"><h2>{html.escape(self.title)}</h2>'
            f"{note}{self.body}</section>"
        )


def figure_data_uri(figure: Any, *, dpi: int = 100) -> str:
    """Render a matplotlib ``Figure`` to a ``data:image/png;base64,...`` URI.

    Uses the Agg canvas on this figure only (no pyplot, no global backend change).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)  # attaches an Agg canvas to this figure only
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def image(figure: Any, alt: str) -> str:
    """An ``<img>`` tag embedding ``figure`` as an inline PNG."""
    return f'<img class="plot" alt="{html.escape(alt)}" src="{figure_data_uri(figure)}">'


def _cell(value: Any) -> str:
    if value is None:
        return "&ndash;"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value != value:  # NaN
            return "&ndash;"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    text = html.escape(str(value))
    if text in ("red", "yellow", "green"):
        return f'<span class="band-{text}">{text}</span>'
    return text


def html_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A simple HTML table; floats are formatted, nulls shown as a dash."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def kpi_tiles(items: Sequence[tuple[str, str]]) -> str:
    """A row of KPI tiles from ``(label, formatted value)`` pairs."""
    tiles = "".join(
        f'<div class="kpi"><div class="v">{html.escape(v)}</div>'
        f'<div class="l">{html.escape(label)}</div></div>'
        for label, v in items
    )
    return f'<div class="kpis">{tiles}</div>'


def render_html(title: str, sections: Sequence[Section], *, subtitle: str = "") -> str:
    """Assemble a complete, self-contained HTML page (inline CSS, no external resources)."""
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    body = "\n".join(s.render() for s in sections)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<header><h1>{html.escape(title)}</h1><p>{html.escape(subtitle)}</p></header>"
        f"<main>{body}</main>"
        f"<footer>Generated by kamlib {html.escape(__version__)} on {stamp}</footer>"
        "</body></html>\n"
    )


def write_html(text: str, path: str | os.PathLike[str]) -> Path:
    """Write ``text`` to ``path`` atomically (temporary sibling file, then rename)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
