"""Write a trial's endpoint tables, plots and report section into a results folder.

Files (CSV column names carry units; rates in percent):

=============================  =================================================================
``dlt.csv``                    DLTs within the window per escalation group × stratum, decision
``response.csv``               per patient: PCWG3 best PSA response, RECIP 1.0 best response
``response_rates.csv``         ORR and PSA50 with Clopper–Pearson 95 % intervals
``adverse_events.csv``         patients by worst CTCAE grade per term (all and related)
``delayed_adverse_events.csv`` delayed AEs of interest, one row per event
``prom.csv``                   PROM response rates
``survival.csv``               per patient: months and event flags of PSA-PFS, rPFS, PFS, OS
``survival_summary.csv``       Kaplan–Meier medians with 95 % CI, per group
``dose_toxicity.csv``          per patient and cycle: organ doses and worst AE grades
``dose_toxicity_models.csv``   Firth logistic regressions of DLT / AE grade ≥ 2 on organ dose
``biomarker.csv``              whole-body tumour dose (cycle-1 lesions) vs survival (Cox) and outcome (Firth)
``trial.json``                 every table and the Kaplan–Meier curves
=============================  =================================================================
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..plotting import new_figure, save_png
from ..report import Report
from ..results import write_csv, write_json
from .cohort import TrialPatient
from .endpoints import (
    adverse_event_rows,
    biomarker_rows,
    delayed_ae_rows,
    dlt_rows,
    dose_toxicity_models,
    dose_toxicity_rows,
    prom_rows,
    rate_rows,
    response_rows,
    salvage_rows,
    survival_rows,
    survival_times,
)

__all__ = ["analyse_trial", "write_trial_results"]

_TITLES = {"pfs": "progression-free survival", "rpfs": "radiographic PFS", "psa_pfs": "PSA-PFS",
           "os": "overall survival"}


def analyse_trial(patients: Sequence[TrialPatient], *, rule: str = "3+3", dlt_window_weeks: float = 12.0,
                  horizon_months: float = 12.0, delayed_after_months: float = 12.0) -> dict:
    """Every endpoint table (a JSON-able dict; module docstring)."""
    resp = response_rows(patients, horizon_months=horizon_months)
    times = [survival_times(p) for p in patients]
    surv_summary, curves = survival_rows(patients, times)
    prom, unknown = prom_rows(patients, horizon_months=horizon_months)
    warnings = []
    if unknown:
        warnings.append(f"PROM instrument(s) without a response rule, no rate reported: {', '.join(unknown)}")
    tox_models, tox_warnings = dose_toxicity_models(patients, window_weeks=dlt_window_weeks)
    warnings += tox_warnings
    biomarker, bio_warnings = biomarker_rows(patients, times, resp)
    warnings += bio_warnings
    no_outcomes = [p.patient_id for p, t in zip(patients, times) if not t]
    if no_outcomes:
        warnings.append(f"no outcomes block, left out of survival: {', '.join(no_outcomes)}")
    return {"n_patients": len(patients),
            "parameters": {"escalation_rule": rule, "dlt_window_weeks": dlt_window_weeks,
                           "best_response_horizon_months": horizon_months,
                           "delayed_after_months": delayed_after_months},
            "dlt": dlt_rows(patients, rule=rule, window_weeks=dlt_window_weeks),
            "response": resp, "response_rates": rate_rows(resp) + salvage_rows(patients, times),
            "adverse_events": adverse_event_rows(patients) + adverse_event_rows(patients, related_only=True),
            "delayed_adverse_events": delayed_ae_rows(patients, after_months=delayed_after_months),
            "prom": prom,
            "survival": [{"patient": p.patient_id, "escalation_group": p.escalation_group, **t}
                         for p, t in zip(patients, times) if t],
            "survival_summary": surv_summary, "kaplan_meier": curves,
            "dose_toxicity": dose_toxicity_rows(patients), "dose_toxicity_models": tox_models,
            "biomarker": biomarker,
            "warnings": warnings}


def _plot_km(curves: dict, path: Path, title: str) -> Path:
    fig, ax = new_figure()
    for name, km in curves.items():
        med = f"{km['median']:.3g} months" if np.isfinite(km["median"]) else "not reached"
        ax.step(km["times"], km["survival"], where="post", label=f"{name} (median {med})")
        cens = [t for t, n in zip(km["times"], km["censored"]) if n]
        ax.plot(cens, [np.interp(t, km["times"], km["survival"]) for t in cens], "|", color="k")
    ax.set(xlabel="months from cycle 1", ylabel=title, ylim=(0, 1.02), title=f"Kaplan–Meier: {title}")
    ax.legend(loc="best", fontsize="small")
    return save_png(fig, path)


def _plot_dose_toxicity(rows: list[dict], path: Path) -> Path:
    fig, ax = new_figure()
    last: dict[str, dict] = {}
    for r in rows:
        last[r["patient"]] = r
    worst = {p: max(x["worst_grade_renal"] for x in rows if x["patient"] == p) for p in last}
    x = [last[p]["cumulative_kidney_dose_Gy"] for p in last]
    y = [worst[p] + np.random.default_rng(len(p)).uniform(-0.08, 0.08) for p in last]
    ax.scatter(x, y, marker="o")
    ax.set(xlabel="cumulative kidney absorbed dose (Gy)", ylabel="worst renal AE grade (CTCAE v5.0)",
           title="Kidney dose vs renal toxicity", yticks=range(0, 6))
    return save_png(fig, path)


def _plot_dlt(rows: list[dict], path: Path) -> Path:
    fig, ax = new_figure()
    sel = [r for r in rows if r["risk_stratum"] == "all"]
    names = [r["escalation_group"] for r in sel]
    ax.bar(names, [r["n_dlt_evaluable"] for r in sel], color="0.8", label="DLT-evaluable")
    ax.bar(names, [r["n_dlt"] for r in sel], color="C3", label="with DLT")
    for i, r in enumerate(sel):
        ax.text(i, r["n_dlt_evaluable"] + 0.1, r["decision"], ha="center", fontsize="small")
    ax.set(xlabel="escalation group", ylabel="patients", title=f"DLTs and decisions ({sel[0]['rule'] if sel else ''})")
    ax.legend(loc="best")
    return save_png(fig, path)


def write_trial_results(patients: Sequence[TrialPatient], folder: str | Path, *, report: Report | None = None,
                        **kwargs) -> dict:
    """Analyse (:func:`analyse_trial`, keywords passed on) and write the files and plots; return the analysis."""
    out = Path(folder)
    res = analyse_trial(patients, **kwargs)
    tables = ("dlt", "response", "response_rates", "adverse_events", "delayed_adverse_events", "prom", "survival",
              "survival_summary", "dose_toxicity", "dose_toxicity_models", "biomarker")
    first_cols = {"delayed_adverse_events": ["patient", "escalation_group", "term", "grade", "attribution",
                                             "onset_date", "onset_months", "cumulative_kidney_dose_Gy"],
                  "biomarker": ["analysis", "n_patients", "n_events", "estimate_per_Gy", "ci95_low_per_Gy",
                                "ci95_high_per_Gy", "p_value", "schoenfeld_p_value", "auc", "note"],
                  "dose_toxicity_models": ["outcome", "predictor", "predictor_column", "n_patients", "n_events",
                                           "intercept", "slope_per_Gy", "slope_ci95_low_per_Gy",
                                           "slope_ci95_high_per_Gy", "p_value", "separated", "method"],
                  "prom": ["instrument", "response_definition", "n_responders", "n_evaluable", "rate_percent",
                           "ci95_low_percent", "ci95_high_percent"]}
    for name in tables:
        rows = res[name]
        cols = list(rows[0]) if rows else first_cols.get(name, ["patient"])
        write_csv(out / f"{name}.csv", rows, cols)
    write_json(out / "trial.json", res)
    figures = []
    if res["dlt"]:
        figures.append((_plot_dlt(res["dlt"], out / "dlt.png").name, "DLT-evaluable patients, DLTs and decisions"))
    for name, curves in res["kaplan_meier"].items():
        if curves:
            figures.append((_plot_km(curves, out / f"km_{name}.png", _TITLES[name]).name,
                            f"Kaplan–Meier {_TITLES[name]} per escalation group"))
    if res["dose_toxicity"]:
        figures.append((_plot_dose_toxicity(res["dose_toxicity"], out / "dose_toxicity.png").name,
                        "cumulative kidney dose vs worst renal AE grade"))
    if report is not None:
        sec = report.section("trial", "Trial endpoints")
        p = res["parameters"]
        sec.paragraph(f"{res['n_patients']} patients. Escalation rule: {p['escalation_rule']}; DLT window "
                      f"{p['dlt_window_weeks']:g} weeks from cycle 1; best response within "
                      f"{p['best_response_horizon_months']:g} months (PSA: PCWG3, confirmed; PSMA PET: RECIP 1.0); "
                      f"delayed AEs after {p['delayed_after_months']:g} months up to 5 years.")
        sec.table(res["dlt"], ["escalation_group", "risk_stratum", "n_patients", "n_dlt_evaluable", "n_dlt",
                               "decision"], caption="Dose-limiting toxicities and escalation decisions")
        sec.table(res["response_rates"], caption="Response rates (Clopper–Pearson 95 % CI)")
        sec.table(res["survival_summary"], caption="Kaplan–Meier medians (months)")
        if res["prom"]:
            sec.table(res["prom"], caption="PROM response rates")
        if res["biomarker"]:
            sec.table(res["biomarker"], caption="Whole-body tumour dose of cycle 1 (ledger lesions) against survival "
                      "and the combined outcome after two cycles")
        if res["dose_toxicity_models"]:
            sec.table(res["dose_toxicity_models"], ["outcome", "predictor", "n_patients", "n_events", "slope_per_Gy",
                                                    "slope_ci95_low_per_Gy", "slope_ci95_high_per_Gy", "p_value"],
                      caption="Dose–toxicity (Firth logistic regression; slope = log odds ratio per Gy)")
        sec.table([r for r in res["adverse_events"] if r["attribution"] == "related"][:30],
                  ["term", "n_patients_any_grade", "percent_any_grade", "n_patients_grade_3_or_higher"],
                  caption="Treatment-related adverse events (CTCAE v5.0), patients by worst grade")
        for w in res["warnings"]:
            sec.paragraph(w, css_class="warn")
        for f, caption in figures:
            sec.figure(f, caption)
    return res
