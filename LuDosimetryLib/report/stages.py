"""report.html: one self-contained page, one section per stage.

Stages add sections in data-flow order; each section holds paragraphs, tables (from row
mappings, numbers formatted with their unit-bearing column names) and figures (PNG files in the
results folder, named relative to the page and embedded when the page is written). Text is
escaped; no script, no external resource. The patient and cohort reports are
:mod:`LuDosimetryLib.report.patient` and :mod:`LuDosimetryLib.report.cohort`; this page serves
the other commands (calibration, planning, prediction, response).
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..results import atomic_write_text
from .flags import split_flags
from .html import png_data_uri

__all__ = ["Report", "Section", "STAGE_ORDER"]

#: Order of sections in the page; unknown stages go last.
STAGE_ORDER = ("summary", "ingest", "calibration", "alignment", "tac", "kinetics", "dose", "radiobiology",
               "prediction", "concordance", "response", "planning", "cohort", "warnings")

_CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:70em;color:#222}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;font-size:.9em;margin:.5em 0}th,td{border:1px solid #ccc;padding:.2em .5em}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
figure{display:inline-block;margin:.5em}figcaption{font-size:.85em;color:#555}img{max-width:32em}
.warn{color:#8a4b00}"""


_FIGURE_MARK = "ludosimetry-figure:"


def _embed_figures(page: str, base: Path | None) -> str:
    """Replace each figure reference by the PNG's data URI (or the plain relative path when absent)."""
    def sub(m: re.Match) -> str:
        rel = html.unescape(m.group(1))
        path = base / rel if base is not None else None
        if path is not None and path.is_file():
            return f'src="{png_data_uri(path)}"'
        return f'src="{html.escape(rel, quote=True)}"'

    return re.sub(r'src="' + _FIGURE_MARK + r'([^"]*)"', sub, page)


def _fmt(value: Any, column: str = "") -> tuple[str, bool]:
    if column == "flags":
        return html.escape("; ".join(split_flags(value))), False
    if isinstance(value, list | tuple):
        return html.escape("; ".join(str(v) for v in value)), False
    if isinstance(value, bool) or value is None:
        return html.escape("" if value is None else str(value)), False
    if isinstance(value, int):
        return str(value), True
    if isinstance(value, float):
        if not math.isfinite(value):
            return "", True
        return (f"{value:.4g}" if abs(value) < 1e5 else f"{value:.4e}"), True
    return html.escape(str(value)), False


@dataclass
class Section:
    """A section of the report: a title and an ordered list of HTML blocks."""

    stage: str
    title: str
    blocks: list[str] = field(default_factory=list)

    def paragraph(self, text: str, *, css_class: str = "") -> Section:
        """Add a paragraph of plain text (escaped)."""
        cls = f' class="{css_class}"' if css_class else ""
        self.blocks.append(f"<p{cls}>{html.escape(text)}</p>")
        return self

    def table(self, rows: Iterable[Mapping[str, Any]], columns: Sequence[str] | None = None, *,
              caption: str = "") -> Section:
        """Add a table of rows; ``columns`` selects and orders the columns."""
        rows = list(rows)
        cols = list(columns) if columns else (list(rows[0]) if rows else [])
        out = ["<table>"]
        if caption:
            out.append(f"<caption>{html.escape(caption)}</caption>")
        out.append("<tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in cols) + "</tr>")
        for row in rows:
            cells = []
            for c in cols:
                text, num = _fmt(row.get(c), c)
                cells.append(f'<td class="num">{text}</td>' if num else f"<td>{text}</td>")
            out.append("<tr>" + "".join(cells) + "</tr>")
        out.append("</table>")
        self.blocks.append("".join(out))
        return self

    def figure(self, relative_path: str, caption: str = "") -> Section:
        """Add a figure (a PNG in the results folder, path relative to report.html; embedded on write)."""
        src = html.escape(relative_path, quote=True)
        self.blocks.append(f'<figure><img src="{_FIGURE_MARK}{src}" alt="{html.escape(caption, quote=True)}">'
                           f"<figcaption>{html.escape(caption)}</figcaption></figure>")
        return self


@dataclass
class Report:
    """The report page; ``section(stage, title)`` returns (creating once) a stage's section."""

    title: str
    sections: dict[str, Section] = field(default_factory=dict)

    def section(self, stage: str, title: str | None = None) -> Section:
        """The section of ``stage``, created with ``title`` on first use."""
        if stage not in self.sections:
            self.sections[stage] = Section(stage, title or stage.capitalize())
        return self.sections[stage]

    def render(self, base: str | Path | None = None) -> str:
        """The whole page as HTML text; figures found under ``base`` are embedded (PNG data URIs)."""
        order = {s: i for i, s in enumerate(STAGE_ORDER)}
        secs = sorted(self.sections.values(), key=lambda s: order.get(s.stage, len(order)))
        body = [f"<h1>{html.escape(self.title)}</h1>"]
        for s in secs:
            body.append(f'<section id="{html.escape(s.stage, quote=True)}"><h2>{html.escape(s.title)}</h2>')
            body.extend(s.blocks)
            body.append("</section>")
        page = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                f"<title>{html.escape(self.title)}</title><style>{_CSS}</style></head><body>\n"
                + "\n".join(body) + "\n</body></html>\n")
        return _embed_figures(page, Path(base) if base is not None else None)

    def write(self, path: str | Path) -> Path:
        """Write the page atomically, its figures embedded."""
        return atomic_write_text(path, self.render(Path(path).parent))
