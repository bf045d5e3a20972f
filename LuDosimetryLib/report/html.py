"""HTML building blocks of the clinical reports: number formatting, tables, embedded figures, page.

One self-contained page: images are embedded as PNG ``data:`` URIs, the stylesheet is inline (a
screen layout and an A4 print layout: page breaks between sections, table rows never split,
header rows repeated), there is no script and no external resource (fonts included). Every
piece of patient data passes through :func:`esc`.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .flags import split_flags

__all__ = ["esc", "num", "fmt_sig", "fmt_value", "fmt_pm", "fmt_interval", "fmt_percent", "flags_html",
           "Cell", "table_html", "figure_html", "png_data_uri", "page_html", "REPORT_CSS", "MAX_SHOWN_REL_UNCERTAINTY"]

#: A relative uncertainty above this (1000 %) is written "unbounded" rather than as a number.
MAX_SHOWN_REL_UNCERTAINTY = 10.0


def esc(value: object) -> str:
    """HTML-escaped text of ``value`` (quotes included)."""
    return html.escape("" if value is None else str(value), quote=True)


def num(value: object) -> float:
    """``value`` as float; empty, missing or unparsable → NaN."""
    if value is None or value == "":
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def fmt_sig(value: float, sig: int = 3) -> str:
    """``value`` with ``sig`` significant digits, plain notation between 1e-3 and 1e6 ("—" if not finite)."""
    if not math.isfinite(value):
        return "—"
    if value == 0:
        return "0"
    mag = math.floor(math.log10(abs(value)))
    if -3 <= mag < 6:
        digits = sig - 1 - mag
        rounded = round(value, digits)
        if rounded != 0 and math.floor(math.log10(abs(rounded))) > mag:  # 9.996 → 10.0
            digits -= 1
            rounded = round(value, digits)
        return f"{rounded:.{max(digits, 0)}f}"
    return f"{value:.{sig - 1}e}"


def fmt_value(value: float, unit: str = "", sig: int = 3) -> str:
    """``3.52 Gy``; "—" when not finite."""
    text = fmt_sig(value, sig)
    return f"{text} {unit}".strip() if text != "—" and unit else text


def fmt_pm(value: float, rel_uncertainty: float, unit: str = "", sig: int = 3) -> str:
    """``3.52 ± 0.41 Gy`` (k = 1); "unbounded" above 1000 %; ``3.52 Gy ± n/a`` when not estimated.

    The uncertainty gets the decimals of the value, so both read alike.
    """
    if not math.isfinite(value):
        return "—"
    if not math.isfinite(rel_uncertainty):
        return f"{fmt_value(value, unit, sig)} ± n/a"
    if rel_uncertainty > MAX_SHOWN_REL_UNCERTAINTY:
        return f"{fmt_sig(value, sig)} ± unbounded {unit}".strip()
    u = abs(value) * rel_uncertainty
    v = fmt_sig(value, sig)
    if "e" in v:
        return f"{v} ± {u:.{sig - 1}e} {unit}".strip()
    # the uncertainty is rounded where the value is (411000 ± 232000, 3.52 ± 0.41); an uncertainty
    # that would round to 0 keeps one significant digit and the value as many decimals (1.031 ± 0.004)
    mag = math.floor(math.log10(abs(float(v)))) if float(v) else 0
    digits = sig - 1 - mag
    if u > 0 and round(u, digits) == 0:
        digits = -math.floor(math.log10(u))
        v = f"{round(value, digits):.{max(digits, 0)}f}"
    ut = f"{round(u, digits):.{max(digits, 0)}f}"
    return f"{v} ± {ut} {unit}".strip()


def fmt_interval(low: float, high: float, unit: str = "", sig: int = 3) -> str:
    """``2.8 – 4.4 Gy``; an empty or non-finite upper bound is written "unbounded"."""
    lo = fmt_sig(low, sig) if math.isfinite(low) else "—"
    hi = fmt_sig(high, sig) if math.isfinite(high) and abs(high) < 1e6 * max(abs(low), 1.0) else "unbounded"
    if lo == "—" and hi == "unbounded":
        return "—"
    return f"{lo} – {hi} {unit}".strip() if hi != "unbounded" else f"{lo} {unit} – unbounded".replace("  ", " ")


def fmt_percent(fraction: float, sig: int = 2) -> str:
    """A fraction as a percentage: 0.123 → ``12 %``."""
    return "—" if not math.isfinite(fraction) else f"{fmt_sig(100.0 * fraction, sig)} %"


def flags_html(value: object) -> str:
    """Flags as words (``ci_unbounded``, …), each in a ``<span class="flag">``, or empty."""
    return " ".join(f'<span class="flag">{esc(f)}</span>' for f in split_flags(value))


@dataclass(frozen=True)
class Cell:
    """A table cell: HTML (already escaped), right-aligned when numeric, an optional CSS class."""

    html: str
    numeric: bool = False
    css: str = ""


def _cell(c: Cell | str) -> str:
    if isinstance(c, str):
        c = Cell(esc(c))
    cls = " ".join(x for x in ("num" if c.numeric else "", c.css) if x)
    return f'<td class="{cls}">{c.html}</td>' if cls else f"<td>{c.html}</td>"


def table_html(header: Sequence[str], rows: Iterable[Sequence[Cell | str]], *, caption: str = "",
               css: str = "", table_id: str = "") -> str:
    """A table: escaped header texts, cells (:class:`Cell` or plain text, escaped), a caption."""
    attrs = (f' id="{esc(table_id)}"' if table_id else "") + (f' class="{esc(css)}"' if css else "")
    out = [f"<table{attrs}>"]
    if caption:
        out.append(f"<caption>{esc(caption)}</caption>")
    out.append("<thead><tr>" + "".join(f"<th>{h}</th>" for h in header) + "</tr></thead><tbody>")
    for row in rows:
        out.append("<tr>" + "".join(_cell(c) for c in row) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def png_data_uri(png: bytes | str | Path) -> str:
    """A ``data:image/png;base64,…`` URI of PNG bytes or a PNG file."""
    data = png if isinstance(png, bytes) else Path(png).read_bytes()
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def figure_html(png: bytes | str | Path, caption: str, *, alt: str = "", css: str = "", fig_id: str = "") -> str:
    """A figure with its PNG embedded and an escaped caption."""
    attrs = (f' id="{esc(fig_id)}"' if fig_id else "") + (f' class="{esc(css)}"' if css else "")
    return (f'<figure{attrs}><img src="{png_data_uri(png)}" alt="{esc(alt or caption)}">'
            f"<figcaption>{esc(caption)}</figcaption></figure>")


REPORT_CSS = """
:root{--ink:#1d2327;--muted:#5b6770;--rule:#c9d1d6;--head:#eef2f4;--warn:#9a3b00;--warnbg:#fff4e5;
--over:#a40000;--near:#8a5a00}
*{box-sizing:border-box}
html{font-family:"DejaVu Sans","Liberation Sans",Arial,Helvetica,sans-serif;font-size:13px;color:var(--ink)}
body{margin:0 auto;padding:12px 20px;max-width:1400px;line-height:1.35}
h1{font-size:1.45rem;margin:0 0 2px 0}h2{font-size:1.15rem;margin:14px 0 6px 0;border-bottom:2px solid var(--rule);
padding-bottom:2px}h3{font-size:1rem;margin:10px 0 4px 0}
p{margin:4px 0}.muted{color:var(--muted)}.small{font-size:.88rem}
header.report{display:grid;grid-template-columns:minmax(0,1.1fr) minmax(0,1fr);gap:4px 24px;
border-bottom:3px solid var(--ink);padding-bottom:6px}
dl.facts{display:grid;grid-template-columns:max-content minmax(0,1fr) max-content minmax(0,1fr);gap:1px 10px;
margin:4px 0;font-size:.92rem}dl.facts dt{color:var(--muted)}dl.facts dd{margin:0;font-weight:600;
overflow-wrap:anywhere}
.method{font-size:.86rem;color:#333;margin:0}
.warnings{background:var(--warnbg);border-left:4px solid var(--warn);padding:4px 10px;margin:8px 0}
.warnings h2{border:0;margin:2px 0;color:var(--warn);font-size:1rem}.warnings ul{margin:2px 0;padding-left:18px}
.warnings li{margin:1px 0}
.overview{display:grid;grid-template-columns:minmax(0,1.55fr) minmax(0,1fr);gap:16px;align-items:start}
.overview figure{margin:0}.overview img{width:100%}
table{border-collapse:collapse;width:100%;font-size:.9rem;margin:4px 0 8px 0}
caption{text-align:left;font-size:.85rem;color:var(--muted);caption-side:bottom;padding-top:2px}
th,td{border:1px solid var(--rule);padding:2px 6px;vertical-align:top}
th{background:var(--head);text-align:left;font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.over{color:var(--over);font-weight:700}td.near{color:var(--near);font-weight:600}
.flag{display:inline-block;font-family:"DejaVu Sans Mono",monospace;font-size:.78rem;background:#f1f1f1;
border:1px solid #ddd;border-radius:3px;padding:0 3px;margin:0 2px 1px 0}
figure{margin:6px 0}figure img{max-width:100%;height:auto;display:block}
figcaption{font-size:.85rem;color:var(--muted)}
.grid2{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1fr);gap:10px}
.scale input{display:none}.scale label{border:1px solid var(--rule);padding:1px 8px;cursor:pointer;
border-radius:3px;margin-right:4px;font-size:.85rem}
.scale input:checked+label{background:var(--ink);color:#fff}
.scale .log{display:none}#tac-log:checked~.panels .log{display:block}#tac-log:checked~.panels .lin{display:none}
dl.dict{font-size:.9rem;margin:4px 0}dl.dict div{display:grid;grid-template-columns:16em minmax(0,1fr);gap:0 12px;
padding:1px 0}dl.dict dt{font-family:"DejaVu Sans Mono",monospace;overflow-wrap:anywhere}dl.dict dd{margin:0}
section.appendix h2:first-child{border-top:3px solid var(--ink);padding-top:4px}
.stage table{font-size:.8rem;table-layout:fixed;width:100%}.stage img{max-width:48%}
.stage th,.stage td,.stage td.num{white-space:normal;overflow-wrap:anywhere;word-break:break-word}
footer{margin-top:16px;font-size:.8rem;color:var(--muted);border-top:1px solid var(--rule)}
@media (max-width:1000px){.overview,header.report,.grid2{grid-template-columns:minmax(0,1fr)}}
@page{size:A4;margin:12mm 11mm 14mm 11mm}
@media print{
html{font-size:8.6pt}body{max-width:none;padding:0}
header.report{grid-template-columns:minmax(0,1fr)}dl.facts{grid-template-columns:max-content minmax(0,1fr)
max-content minmax(0,1fr)}
section.page{break-before:page}
h2,h3{break-after:avoid}
table{break-inside:auto}tr,figure,img,dl.dict div{break-inside:avoid}thead{display:table-header-group}
.keep,table:not(.wide),section#prediction{break-inside:avoid}
.overview{grid-template-columns:minmax(0,1fr)}.overview figure img{max-width:55%}
table.wide{font-size:6.8pt}table.wide th,table.wide td{padding:1px 2px}
table.wide .flag{font-size:6pt}
.stage table{font-size:6.5pt}.stage th,.stage td{padding:1px 2px}
.scale label{display:none}
}
"""


def page_html(title: str, body: str) -> str:
    """The whole page: doctype, inline stylesheet, escaped title, ``body`` (already HTML)."""
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{esc(title)}</title><style>{REPORT_CSS}</style></head><body>\n{body}\n</body></html>\n")
