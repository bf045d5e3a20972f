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
                           outcome: str = "psa50", group_rule: str | float = "youden", n_bootstrap: int = 1000,
                           seed: int = 0) -> dict:
    """Analyse and write ``response.json``, ``response.csv``, ``lesions.csv``, ``survival_cox.csv`` and the
    plots; return the analysis."""
    out = Path(folder)
    res = analyse_response(patients, outcome=outcome, group_rule=group_rule, n_bootstrap=n_bootstrap, seed=seed)
    prows = patient_rows(patients)
    write_json(out / "response.json", res)
    write_csv(out / "response.csv", prows, list(prows[0]))
    les = lesion_rows(patients)
    write_csv(out / "lesions.csv", les, list(les[0]))
    sec = report.section("response", "Dose–response") if report else None
    if sec:
        sec.paragraph(f"{len(patients)} patients ({res['n_evaluable']} evaluable); outcome {outcome!r}: "
                      f"{res['outcome_definition']}; {res[f'n_responders_{outcome}']} positive.")
        sec.table(prows, ["patient", "n_lesions", "wholebody_tumour_dose_Gy", "psa_best_change_percent", "psa50"])
        for w in res.get("warnings", []):
            sec.paragraph(w, css_class="warn")
    thr = res.get(f"youden_{outcome}", {}).get("threshold")
    plot_dose_response(prows, out / "dose_response.png", threshold_Gy=thr)
    figures = [("dose_response.png", "Whole-body tumour dose vs best PSA change")]
    if f"roc_{outcome}" in res:
        plot_roc(res[f"roc_{outcome}"], out / "roc.png", title=f"ROC: whole-body tumour dose for {outcome}")
        figures.append(("roc.png", f"ROC for {outcome}"))
    cox_rows = []
    for name in ("pfs", "rpfs", "os"):
        if name not in res:
            continue
        r = res[name]
        fname = "kaplan_meier.png" if name == "pfs" else f"kaplan_meier_{name}.png"
        plot_kaplan_meier(r["kaplan_meier"], out / fname, threshold_Gy=r["threshold_Gy"], ylabel=r["endpoint"])
        figures.append((fname, f"{r['endpoint']} by dose group"))
        if "cox" in r:
            c = r["cox"]
            cox_rows.append({"endpoint": name, "n_patients": c["n"], "n_events": c["n_events"],
                             "log_hazard_ratio_per_Gy": c["coefficients"][0], "standard_error_per_Gy":
                             c["standard_errors"][0], "log_hazard_ratio_ci95_low_per_Gy": c["coefficient_ci95"][0][0],
                             "log_hazard_ratio_ci95_high_per_Gy": c["coefficient_ci95"][0][1],
                             "hazard_ratio_per_Gy": c["hazard_ratios"][0], "p_value": c["p_values"][0],
                             "schoenfeld_p_value": c["ph_test_p_value"][0],
                             "logrank_p_value": r.get("logrank", {}).get("p_value")})
    if cox_rows:
        write_csv(out / "survival_cox.csv", cox_rows, list(cox_rows[0]))
        if sec:
            sec.table(cox_rows, caption="Cox proportional hazards, whole-body tumour dose continuous")
    if sec:
        for f, caption in figures:
            sec.figure(f, caption)
    return res
