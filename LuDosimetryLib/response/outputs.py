"""Write a dose–response analysis into a results folder (JSON, CSV, plots, report section)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..report import Report
from ..results import write_csv, write_json
from .analysis import analyse_response, lesion_rows, patient_rows
from .plots import plot_dose_response, plot_kaplan_meier, plot_roc
from .table import PatientRecord

__all__ = ["write_response_results"]


def write_response_results(patients: Sequence[PatientRecord], folder: str | Path, *, report: Report | None = None,
                           group_rule: str | float = "youden", n_bootstrap: int = 1000, seed: int = 0) -> dict:
    """Analyse and write ``response.json``, ``response.csv``, ``lesions.csv`` and the plots; return the analysis."""
    out = Path(folder)
    res = analyse_response(patients, group_rule=group_rule, n_bootstrap=n_bootstrap, seed=seed)
    prows = patient_rows(patients)
    write_json(out / "response.json", res)
    write_csv(out / "response.csv", prows, list(prows[0]))
    les = lesion_rows(patients)
    write_csv(out / "lesions.csv", les, list(les[0]))
    sec = report.section("response", "Dose–response") if report else None
    if sec:
        sec.paragraph(f"{len(patients)} patients, {res['n_responders_psa50']} PSA50 responders.")
        sec.table(prows, ["patient", "n_lesions", "wholebody_tumour_dose_Gy", "psa_best_change_percent", "psa50"])
        for w in res.get("warnings", []):
            sec.paragraph(w, css_class="warn")
    thr = res.get("youden_psa50", {}).get("threshold")
    plot_dose_response(prows, out / "dose_response.png", threshold_Gy=thr)
    figures = [("dose_response.png", "Whole-body tumour dose vs best PSA change")]
    if "roc_psa50" in res:
        plot_roc(res["roc_psa50"], out / "roc.png")
        figures.append(("roc.png", "ROC for PSA50"))
    if "pfs" in res:
        plot_kaplan_meier(res["pfs"]["kaplan_meier"], out / "kaplan_meier.png", threshold_Gy=res["pfs"]["threshold_Gy"])
        figures.append(("kaplan_meier.png", "PSA-PFS by dose group"))
    if sec:
        for f, caption in figures:
            sec.figure(f, caption)
    return res
