"""The patient and cohort reports in a real browser (headless Chromium), and their numbers (issue 19).

One module fixture runs the small synthetic patient once (``run_patient``), builds a three-patient
cohort folder from copies of its results (measured doses scaled per patient, so the concordance
has spread), writes both reports and renders each in Chromium at 1400 × 900 px, in print media at
the A4 printable width, and to A4 PDF. The tests then check what a reader would see: no missing
image, no console error, nothing wider than the screen or the page, the organs-at-risk table and a
dose image on the first screen, no table row split across PDF pages, ≤ 12 pages before the
appendix, and the page's numbers equal to doses.csv's.
"""

from __future__ import annotations

import html
import re
import shutil
import subprocess
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest

from LuDosimetryLib.report.browser import A4_IN, Browser, find_browser
from LuDosimetryLib.report.html import fmt_sig
from LuDosimetryLib.results import read_csv, write_csv

#: Printable width of A4 with the report's 11 mm side margins (CSS px at 96 px/in).
A4_PRINT_WIDTH_PX = int((A4_IN[0] * 25.4 - 22.0) / 25.4 * 96)

_MEASURE = """(() => {
  const r = e => { if (!e) return null; const b = e.getBoundingClientRect();
                   return [b.top, b.bottom, b.left, b.right]; };
  const imgs = [...document.images];
  return {
    scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth,
    images: imgs.length, broken: imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt),
    external: [...document.querySelectorAll('[src],[href]')].map(e => e.getAttribute('src') || e.getAttribute('href'))
      .filter(u => u && !u.startsWith('data:') && !u.startsWith('#')),
    scripts: document.scripts.length,
    oar: r(document.querySelector('#oar-table')), key: r(document.querySelector('#key-image img')),
    rows: [...document.querySelectorAll('tr[data-region]')].map(tr => [tr.closest('table').id,
      tr.querySelector('td.dose') ? tr.querySelector('td.dose').innerText.trim() : '']),
    headers: Object.fromEntries([...document.querySelectorAll('table[id]')].map(t =>
      [t.id, t.querySelector('th') ? t.querySelector('th').innerText.trim() : ''])),
  };
})()"""


def _render(html_path: Path, out: Path, name: str) -> dict:
    t0 = time.perf_counter()
    with Browser(width=1400, height=900) as b:
        b.open(html_path)
        screen = b.evaluate(_MEASURE)
        (out / f"{name}_screen.png").write_bytes(b.screenshot())
        b.emulate_media("print")
        b.set_viewport(A4_PRINT_WIDTH_PX, 1100)
        printed = b.evaluate(_MEASURE)
        b.emulate_media("")
        pdf = b.print_pdf(footer=name)
        console = list(b.console)
    (out / f"{name}.pdf").write_bytes(pdf)
    seconds = time.perf_counter() - t0
    n_pages = int(re.search(r"Pages:\s+(\d+)", subprocess.run(["pdfinfo", str(out / f"{name}.pdf")], check=True,
                                                               capture_output=True, text=True).stdout).group(1))
    text = subprocess.run(["pdftotext", "-layout", str(out / f"{name}.pdf"), "-"], check=True, capture_output=True,
                          text=True).stdout
    pages = [re.sub(r"\s+", " ", p) for p in text.split("\f")][:n_pages]
    print(f"\n{name}: rendered (screen, print, PDF) in {seconds:.1f} s; {n_pages} PDF pages")
    return {"screen": screen, "print": printed, "console": console, "pages": pages, "seconds": seconds}


def _scaled_copy(src: Path, dst: Path, factor: float, predicted_factor: float) -> None:
    shutil.copytree(src, dst)
    for table, f in ((dst / "doses.csv", factor), (dst / "prediction" / "doses.csv", predicted_factor)):
        rows = read_csv(table)
        for r in rows:
            for col in ("dose_Gy", "map_mean_dose_Gy", "mean_dose_Gy", "mean_dose_pv_corrected_Gy"):
                if r.get(col):
                    r[col] = repr(float(r[col]) * f)
        write_csv(table, rows, list(rows[0]))


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    assert find_browser(), "Chromium is needed (Debian: apt-get install chromium; `make setup` installs it)"
    assert shutil.which("pdftotext") and shutil.which("pdfinfo"), "poppler-utils is needed (apt-get install)"
    from LuDosimetryLib.cohort.statistics import write_cohort_statistics
    from LuDosimetryLib.phantom import generate_patient, write_patient_folder
    from LuDosimetryLib.pipeline import run_patient
    from LuDosimetryLib.report.cohort import write_cohort_report

    root = tmp_path_factory.mktemp("report")
    patient = generate_patient("small", seed=0)
    folder = write_patient_folder(patient, root / "patient", dicom=False)
    results = root / "results"
    run_patient(folder, results)
    cohort = root / "cohort"
    ids = ["P01", "P02", "P03"]
    for pid, factor, predicted in zip(ids, (0.8, 1.0, 1.3), (1.0, 1.2, 0.9)):
        _scaled_copy(results, cohort / "patients" / pid, factor, predicted)
    write_csv(cohort / "cohort.csv", [{"patient": p, "status": "done", "seconds": 1.0, "error": ""} for p in ids],
              ["patient", "status", "seconds", "error"])
    write_cohort_statistics(root / "no_clinical_table", cohort, ids, report=None, n_bootstrap=50)
    write_cohort_report(cohort)
    return {"results": results, "cohort": cohort,
            "patient": _render(results / "report.html", root, "patient"),
            "cohort_page": _render(cohort / "report.html", root, "cohort")}


@pytest.mark.parametrize("page", ["patient", "cohort_page"])
def test_report_renders_offline_without_errors_or_overflow(rendered, page):
    r = rendered[page]
    errors = [c for c in r["console"] if c["level"] in ("error", "warning")]
    assert not errors, errors
    screen, printed = r["screen"], r["print"]
    assert screen["images"] >= 2 and not screen["broken"], screen["broken"]
    assert not screen["external"] and screen["scripts"] == 0
    assert screen["scrollWidth"] <= screen["innerWidth"], "wider than a 1400 px screen"
    assert printed["scrollWidth"] <= A4_PRINT_WIDTH_PX, f"wider than the A4 page: {printed['scrollWidth']} px"


def test_first_screen_shows_the_organs_at_risk_and_a_dose_image(rendered):
    s = rendered["patient"]["screen"]
    assert s["oar"] is not None and s["oar"][1] <= 900, f"OAR table ends at {s['oar']} px"
    assert s["key"] is not None and s["key"][1] <= 900 and s["key"][3] <= 1400, f"key image at {s['key']}"


@pytest.mark.parametrize("page", ["patient", "cohort_page"])
def test_pdf_tables_are_not_cut(rendered, page):
    r = rendered[page]
    pages = r["pages"]
    by_table: dict[str, list[str]] = {}
    for table, dose in r["print"]["rows"]:
        if dose:
            by_table.setdefault(table, []).append(re.sub(r"\s+", " ", dose))
    appendix = next(i for i, p in enumerate(pages) if "A.1 Every region" in p)
    for table, doses in by_table.items():
        # the summary tables come before the appendix, the appendix's tables after its start
        span = range(appendix) if table in ("oar-table", "lesion-table", "cohort-patients") else \
            range(appendix, len(pages))
        on = [i for i in span if any(d in pages[i] for d in doses)]
        for d in doses:  # every row whole on a page
            assert any(d in pages[i] for i in span), f"{table}: row with {d!r} is split across pages"
        header = r["print"]["headers"][table]
        for i in on:  # a table running over pages repeats its header on each
            assert header in pages[i], f"{table}: page {i + 1} has rows without the header"
        if table in ("oar-table", "lesion-table"):  # the summary tables are never split
            assert len(on) == 1, f"{table} runs over pages {[i + 1 for i in on]}"


def test_demo_report_has_at_most_12_pages_before_the_appendix(rendered):
    pages = rendered["patient"]["pages"]
    first_appendix = next(i for i, p in enumerate(pages) if "A.1 Every region" in p)
    print(f"\npatient report: {first_appendix} PDF pages before the appendix, {len(pages)} in all")
    assert 2 <= first_appendix <= 12, f"appendix starts on page {first_appendix + 1}"


class _Rows(HTMLParser):
    """data-value of the reported-dose cells, and their text, per table and region."""

    def __init__(self):
        super().__init__()
        self.table = ""
        self.region = ""
        self.cells: dict[tuple[str, str], list[tuple[str, str]]] = {}
        self._span = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self.table = a.get("id", "")
        elif tag == "tr":
            self.region = a.get("data-region", "")
        elif tag == "span" and "data-value" in a and self.region:
            self._span = [a["data-value"], ""]

    def handle_data(self, data):
        if self._span is not None:
            self._span[1] += data

    def handle_endtag(self, tag):
        if tag == "span" and self._span is not None:
            self.cells.setdefault((self.table, self.region), []).append(tuple(self._span))
            self._span = None


def test_report_numbers_equal_doses_csv(rendered):
    results = rendered["results"]
    from LuDosimetryLib.results import read_doses_csv

    doses = {r["region"]: r for r in read_doses_csv(results / "doses.csv")}
    parser = _Rows()
    parser.feed((results / "report.html").read_text(encoding="utf-8"))
    seen = {table for table, _ in parser.cells}
    assert {"oar-table", "lesion-table", "all-regions"} <= seen
    checked = 0
    for (table, region), spans in parser.cells.items():
        if table not in ("oar-table", "lesion-table", "all-regions"):
            continue
        (dose_value, dose_text), (gbq_value, gbq_text) = spans[0], spans[1]
        row = doses[region]
        assert dose_value == row["dose_Gy"], (table, region)
        assert html.unescape(dose_text).startswith(fmt_sig(float(row["dose_Gy"]))), (table, region, dose_text)
        assert gbq_value == row["dose_per_activity_Gy_per_GBq"]
        assert html.unescape(gbq_text) == fmt_sig(float(row["dose_per_activity_Gy_per_GBq"]))
        checked += 1
    assert {r for (t, r) in parser.cells if t == "all-regions"} == set(doses)
    lesions = [r for r, v in doses.items() if v["kind"] == "lesion"]
    assert {r for (t, r) in parser.cells if t == "lesion-table"} == set(lesions)
    assert checked >= len(doses) + len(lesions) + 4
    # no number above 1e6 in any uncertainty or interval cell of the page (doses and TIAs)
    page = (results / "report.html").read_text(encoding="utf-8")
    cells = re.findall(r'<td class="num(?: dose| ci)?">(.*?)</td>', page)
    assert len(cells) > 100
    for cell in cells:
        text = re.sub(r"<[^>]+>", "", html.unescape(cell))
        if "±" in text or "–" in text:
            for x in re.findall(r"\d+(?:\.\d+)?(?:e[+-]?\d+)?", text):
                assert float(x) <= 1e6, text
    assert "['" not in page and "&#x27;]" not in page  # flags are words, never Python list text


def test_cohort_report_numbers_equal_the_patients_doses_csv(rendered):
    cohort = rendered["cohort"]
    from LuDosimetryLib.results import read_doses_csv

    parser = _Rows()
    parser.feed((cohort / "report.html").read_text(encoding="utf-8"))
    page = (cohort / "report.html").read_text(encoding="utf-8")
    assert 'id="concordance-figure"' in page and 'id="forest-figure"' in page
    for pid in ("P01", "P02", "P03"):
        doses = {r["region"]: r for r in read_doses_csv(cohort / "patients" / pid / "doses.csv")}
        assert f'<td class="">{pid}</td>' in page or f"<td>{pid}</td>" in page
        for region in ("kidney_left", "lesion_bone_1"):
            assert f'data-value="{doses[region]["dose_Gy"]}"' in page


@pytest.mark.parametrize("hold", [0, 2, 12])
def test_browser_starts_whatever_descriptors_the_caller_holds(hold):
    """The DevTools pipes land on the browser's descriptors 3 and 4 even when the caller holds them
    (a regression: after matplotlib and scipy had opened files, Chromium found no pipe)."""
    import os

    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(hold)]
    try:
        with Browser() as b:
            assert "Chrome" in b.call("Browser.getVersion")["product"]
    finally:
        for fd in held:
            os.close(fd)


def test_report_command_writes_pdf_and_first_screen(rendered, tmp_path, capsys):
    from PIL import Image

    from LuDosimetryLib.cli import main

    folder = tmp_path / "results"
    shutil.copytree(rendered["results"], folder)
    (folder / "report.html").unlink()
    assert main(["report", str(folder), "--pdf", "--screenshot", str(tmp_path / "first.png")]) == 0
    assert (folder / "report.html").is_file() and (folder / "report.pdf").read_bytes()[:5] == b"%PDF-"
    assert Image.open(tmp_path / "first.png").size == (1400, 900)


def test_pdf_without_chromium_says_how_to_install_it_and_keeps_the_html(rendered, tmp_path, capsys, monkeypatch):
    from LuDosimetryLib.cli import main

    folder = tmp_path / "results"
    shutil.copytree(rendered["results"], folder)
    monkeypatch.setenv("LUDOSIMETRY_CHROMIUM", str(tmp_path / "no-such-browser"))
    assert main(["report", str(folder), "--pdf"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "apt-get install chromium" in err[0] and "report.pdf not written" in err[0]
    assert (folder / "report.html").is_file() and not (folder / "report.pdf").exists()
