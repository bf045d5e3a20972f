"""The report's building blocks: numbers and uncertainties as a physicist reads them, flags in words,
patient data escaped, every flag the library writes explained (issue 19)."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

import LuDosimetryLib
from LuDosimetryLib.report.data import PatientResults
from LuDosimetryLib.report.flags import FLAG_SENTENCES, flag_sentence, split_flags
from LuDosimetryLib.report.html import fmt_interval, fmt_pm, fmt_sig
from LuDosimetryLib.report.patient import build_patient_report

LIB = Path(LuDosimetryLib.__file__).parent


def test_every_flag_the_library_appends_has_a_sentence():
    pattern = re.compile(r"""flags(?:\.append\(|\s*=\s*\[?)\s*"([a-z][a-z0-9_.]*)\"""")
    written = {m.group(1) for p in LIB.rglob("*.py") for m in pattern.finditer(p.read_text(encoding="utf-8"))}
    assert {"ci_unbounded", "uptake_rate_fixed", "below_resolution"} <= written  # the pattern finds them
    missing = sorted(written - set(FLAG_SENTENCES))
    assert not missing, f"flags without a sentence in LuDosimetryLib.report.flags: {missing}"


def test_flags_are_read_from_the_convention_and_from_legacy_list_text():
    assert split_flags("ci_unbounded;uptake_rate_fixed") == ["ci_unbounded", "uptake_rate_fixed"]
    assert split_flags("['uptake_rate_fixed', 'ci_unbounded']") == ["uptake_rate_fixed", "ci_unbounded"]
    assert split_flags("") == [] and split_flags(None) == [] and split_flags(float("nan")) == []
    assert "kidney_cortex_left, renal_pelvis_left" in flag_sentence("group_of_kidney_cortex_left+renal_pelvis_left")


@pytest.mark.parametrize(("value", "rel", "text"), [
    (3.52, 0.1165, "3.52 ± 0.41 Gy"),
    (0.388, 0.12, "0.388 ± 0.047 Gy"),
    (54.6, 0.121, "54.6 ± 6.6 Gy"),
    (1234.5, 0.1, "1230 ± 120 Gy"),
    (411487.4, 0.565, "411000 ± 232000 Gy"),
    (1.0313, 0.004, "1.031 ± 0.004 Gy"),
])
def test_value_plus_minus_uncertainty_share_their_decimals(value, rel, text):
    assert fmt_pm(value, rel, "Gy") == text


def test_huge_or_missing_uncertainties_are_words_not_numbers():
    assert fmt_pm(3.0, 4.5e43, "Gy") == "3.00 ± unbounded Gy"
    assert fmt_pm(3.0, math.nan, "Gy") == "3.00 Gy ± n/a"
    assert fmt_interval(2.0, math.inf, "Gy") == "2.00 Gy – unbounded"
    assert fmt_interval(2.0, 7.5e49, "MBq·h") == "2.00 MBq·h – unbounded"
    assert fmt_interval(2.0, 4.4, "Gy") == "2.00 – 4.40 Gy"
    assert fmt_sig(7.5e49) == "7.50e+49" and fmt_sig(0.000123) == "1.23e-04"


def _results(tmp_path, patient_id="P1", flags="ci_unbounded"):
    doses = [
        {"region": "kidney_left", "kind": "organ", "cycle": "1", "dose_Gy": "4.4", "dose_method": "kernel+gtm-pvc",
         "dose_per_activity_Gy_per_GBq": "0.59", "dose_rel_uncertainty": "0.12", "dose_ci95_low_Gy": "3.4",
         "dose_ci95_high_Gy": "", "flags": flags},
        {"region": "lesion_bone_1", "kind": "lesion", "cycle": "1", "dose_Gy": "39.3",
         "dose_method": "kernel+gtm-pvc", "dose_per_activity_Gy_per_GBq": "5.3", "dose_rel_uncertainty": "2e44",
         "dose_ci95_low_Gy": "30", "dose_ci95_high_Gy": "1e49", "volume_mL": "20", "flags": ""},
    ]
    run = {"stages": {"ingest": {"patient_id": patient_id, "cycle": 1, "injected_activity_Bq": 7.4e9,
                                 "timepoints_h": [5, 24, 96, 192]}}, "parameters": {"pipeline": {}},
           "warnings": [{"stage": "ingest", "message": "<b>bold</b> & co"}]}
    return PatientResults(folder=tmp_path, doses=doses, fits=[], tac=[], dvh={}, run=run)


def test_patient_data_is_escaped(tmp_path):
    page = build_patient_report(_results(tmp_path, patient_id='<script>alert("x")</script>'))
    assert "<script" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; co" in page


def test_unbounded_interval_is_written_unbounded_and_flags_are_words(tmp_path):
    page = build_patient_report(_results(tmp_path))
    oar = page[page.index('id="oar-table"'):page.index("</table>", page.index('id="oar-table"'))]
    assert "3.40 Gy – unbounded" in oar
    assert '<span class="flag">ci_unbounded</span>' in oar
    assert "['" not in page
    # the action flag is among the warnings, with its sentence
    warnings = page[page.index('id="warnings"'):page.index("</section>", page.index('id="warnings"'))]
    assert "ci_unbounded" in warnings and FLAG_SENTENCES["ci_unbounded"][:30] in warnings
    # no number above 1e6 in any uncertainty or interval cell
    for cell in re.findall(r'<td class="num (?:dose|ci)">(.*?)</td>', page):
        text = re.sub(r"<[^>]+>", "", cell)
        for x in re.findall(r"\d+(?:\.\d+)?(?:e[+-]?\d+)?", text):
            assert float(x) <= 1e6, cell


def test_extension_screenshot_and_icon_urls_point_at_files_in_the_repository():
    repo = LIB.parent
    text = (repo / "CMakeLists.txt").read_text(encoding="utf-8")
    urls = []
    for key in ("EXTENSION_SCREENSHOTURLS", "EXTENSION_ICONURL"):
        m = re.search(rf'set\({key} "([^"]+)"\)', text)
        assert m, key
        urls += m.group(1).split()
    assert len(urls) >= 3
    for url in urls:
        path = url.split("/main/", 1)[1]
        assert (repo / path).is_file(), f"{url}: no {path} in the repository"
        if "Screenshots" in path:
            assert (repo / path).stat().st_size > 20_000, f"{path} is not a real screenshot"


def test_cumulative_dose_from_the_ledger_and_percent_of_limit(tmp_path):
    import datetime as dt

    from LuDosimetryLib.planning.ledger import CumulativeDose, CycleEntry, Ledger

    res = _results(tmp_path, flags="")
    res.run["stages"]["ingest"]["cycle"] = 2
    res.ledger = Ledger("P1", cycles=(CycleEntry(1, "standard", dt.date(2026, 1, 5), 7.4e9, "full_protocol",
                                                 cumulative={"kidney": CumulativeDose(4.0, 0.1, 5.0, 0.1)}),))
    page = build_patient_report(res)
    row = re.search(r'<tr data-region="kidney_left">(.*?)</tr>', page).group(1)
    cells = [re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row)]
    assert "Cumulative, ledger (Gy)" in page
    assert "8.40" in cells  # 4.0 Gy of cycle 1 + 4.4 Gy of this cycle
    assert "37 %" in cells  # of the 23 Gy kidney limit


def test_per_patient_ratio_is_predicted_over_measured_like_the_concordance_module():
    from LuDosimetryLib.concordance.agreement import bland_altman
    from LuDosimetryLib.report.cohort import patient_ratio_rows

    pairs = [{"patient": "A", "kind": "organ", "predicted_Gy": str(2.0 * m), "measured_Gy": str(m)}
             for m in (1.0, 3.0, 5.0)]
    (pid, ratio, lo, hi), = patient_ratio_rows(pairs)
    assert pid == "A" and ratio == pytest.approx(2.0) and lo == pytest.approx(2.0) and hi == pytest.approx(2.0)
    ba = bland_altman([2.0, 6.0, 10.0], [1.0, 3.2, 4.9], scale="log_ratio")
    assert ba.ratio > 1.0  # the module's ratio is predicted / measured too
