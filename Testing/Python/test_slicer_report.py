"""Save report in the Dose module (through the MRML stand-in): the scene's results become a results
folder and the library's patient report, whose numbers are the statistics table's (issue 19)."""

from __future__ import annotations

import re


def test_save_report_writes_the_library_report_of_the_scene(slicer, tmp_path):
    from test_slicer_stages import _load_patient

    from LuDosimetryLib.results import read_doses_csv
    from LuDosimetrySlicerLib import alignment_logic, dose_logic
    from LuDosimetrySlicerLib.report_logic import save_report

    spects, cts, labels, _ = _load_patient()
    aligned = alignment_logic.run_alignment(spects[0], labels=labels, refine_kidneys=False)
    out = dose_logic.run_dose(aligned.aligned["tp1"], labels, method="led")
    html = save_report(out.dose_volume, out.statistics, labels, cts[0], tmp_path / "report", dvh_table=out.dvh_table)
    assert html == tmp_path / "report" / "report.html"
    for name in ("doses.csv", "dvh.csv", "dose_Gy.nii.gz", "ct_HU.nii.gz", "labels.nii.gz", "run.json"):
        assert (tmp_path / "report" / name).is_file(), name
    rows = {r["region"]: r for r in read_doses_csv(tmp_path / "report" / "doses.csv")}
    from LuDosimetrySlicerLib.nodes import table_to_rows

    table = table_to_rows(out.statistics)
    stats_regions = [r["region"] for r in table]
    stats_dose = [r["dose_Gy"] for r in table]
    assert set(rows) == set(stats_regions)
    page = html.read_text(encoding="utf-8")
    assert "SYN1" in page and 'id="oar-table"' in page and 'id="lesion-table"' in page
    assert 'id="key-image"' in page and "data:image/png;base64," in page
    for region, dose in zip(stats_regions, stats_dose):
        shown = re.search(rf'<tr data-region="{region}">.*?data-value="([^"]*)"', page)
        assert shown and float(shown.group(1)) == float(dose) == float(rows[region]["dose_Gy"]), region
