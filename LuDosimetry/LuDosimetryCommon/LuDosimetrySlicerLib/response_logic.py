"""Response analysis and a patient's clinical follow-up in the scene (LuDosimetryLib.response and
LuDosimetryLib.trial do every computation).

For the Concordance module's cohort view, :func:`run_response` (outputs under the subject
``Cohort``, folder ``LuDosimetry response``):

- ``patients``: one row per patient (``response.analysis.patient_rows``: dose, PSA change,
  PCWG3 and RECIP categories, survival columns);
- ``statistics``: quantity, value, unit, source rows (outcome definition, AUC with DeLong CI,
  Youden threshold, Firth slope, Cox log hazard ratio per Gy per endpoint);
- ``roc_table`` + ``roc_chart``: the ROC curve (1 − specificity, sensitivity) and the chance line;
- per survival endpoint (``pfs``, ``rpfs``, ``os``) a Kaplan–Meier step table and chart with
  one series per dose group.

For the Planning module, :func:`load_patient_follow_up` (outputs under the patient, folder
``LuDosimetry follow-up``): the adverse events beside the dose of the cycle they began in, the
response assessments (PSA with PCWG3 change from baseline, PSMA-PET volume with RECIP 1.0) and a
PSA chart.
"""

from __future__ import annotations

import csv
import math
import os
import tempfile
from dataclasses import dataclass, field

from . import hierarchy
from .nodes import columns_table, plot_chart, rows_to_table, set_node_attributes, table_to_rows

__all__ = ["ResponseOutputs", "run_response", "FollowUpOutputs", "load_patient_follow_up", "km_step_columns"]


@dataclass
class ResponseOutputs:
    """Nodes created by :func:`run_response`."""

    patients: object
    statistics: object
    analysis: dict
    roc_table: object = None
    roc_chart: object = None
    km_tables: dict = field(default_factory=dict)
    km_charts: dict = field(default_factory=dict)


def _table_node_to_csv(node) -> str:
    rows = table_to_rows(node)
    table = node.GetTable()
    names = [table.GetColumn(c).GetName() for c in range(table.GetNumberOfColumns())]
    fd, path = tempfile.mkstemp(suffix=".csv", prefix="ludosimetry_response_")
    with os.fdopen(fd, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=names)
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if isinstance(v, float) and v != v else
                            (repr(v) if isinstance(v, float) else v)) for k, v in r.items()})
    return path


def km_step_columns(km: dict) -> dict[str, list[float]]:
    """A Kaplan–Meier curve (``KaplanMeier`` as a dict) as step-plot columns ``time_months``, ``survival``."""
    t, s = [km["times"][0]], [km["survival"][0]]
    for k in range(1, len(km["times"])):
        t += [km["times"][k], km["times"][k]]
        s += [km["survival"][k - 1], km["survival"][k]]
    return {"time_months": t, "survival": s}


def run_response(table_node, *, outcome: str = "psa50", group_rule: str = "youden", n_bootstrap: int = 1000,
                 seed: int = 0, progress=None) -> ResponseOutputs:
    """Dose–response analysis of the response table in ``table_node`` (columns of ``docs/response.md``).

    Parameters
    ----------
    table_node : vtkMRMLTableNode
        One row per lesion (``patient, lesion, dose_Gy, mass_g, psa_baseline_ng_per_mL,
        psa_best_ng_per_mL`` [, PSMA-PET, PCWG3 and survival columns]).
    outcome : str
        Outcome definition by name (``LuDosimetryLib.response.categories.OUTCOME_DEFINITIONS``).
    group_rule : str
        Survival dose groups: ``youden``, ``median`` or a dose in Gy.
    """
    from LuDosimetryLib.errors import InputError
    from LuDosimetryLib.response.analysis import analyse_response, patient_rows
    from LuDosimetryLib.response.table import read_response_table

    report = progress or (lambda f, m: None)
    report(0.0, "reading response table")
    path = _table_node_to_csv(table_node)
    try:
        try:
            patients = read_response_table(path)
        except InputError as exc:
            raise InputError(exc.reason, source=f"table node {table_node.GetName()!r}") from None
    finally:
        os.unlink(path)
    report(0.2, "dose–response statistics")
    res = analyse_response(patients, outcome=outcome, group_rule=group_rule, n_bootstrap=n_bootstrap, seed=seed)
    folder = hierarchy.stage_folder("Cohort", "response")
    prows = patient_rows(patients)
    ptable = rows_to_table(prows, name="Response patients")
    set_node_attributes(ptable, {"Stage": "response", "Outcome": outcome, "Source": table_node.GetName()})
    hierarchy.place(ptable, folder)
    stats = [{"quantity": f"evaluable patients ({outcome})", "value": res["n_evaluable"], "unit": "",
              "source": res["outcome_definition"]},
             {"quantity": f"positive ({outcome})", "value": res[f"n_responders_{outcome}"], "unit": "",
              "source": res["outcome_definition"]}]
    roc = res.get(f"roc_{outcome}")
    if roc:
        stats.append({"quantity": "AUC", "value": roc["auc"], "unit": "",
                      "source": f"DeLong 95 % CI {roc['auc_ci95'][0]:.3f}–{roc['auc_ci95'][1]:.3f}"})
        y = res[f"youden_{outcome}"]
        stats.append({"quantity": "Youden threshold", "value": y["threshold"], "unit": "Gy",
                      "source": f"optimism-corrected J {y['youden_corrected']:.3f} ({y['n_bootstrap']} bootstraps)"})
        f = res[f"logistic_firth_{outcome}"]
        stats.append({"quantity": "Firth logistic slope", "value": f["coefficients"][1], "unit": "1/Gy",
                      "source": f"profile 95 % CI {f['slope_ci95'][0]:.4g}–{f['slope_ci95'][1]:.4g}"})
    for name in ("pfs", "rpfs", "os"):
        cox = res.get(name, {}).get("cox")
        if cox:
            lo, hi = cox["coefficient_ci95"][0]
            stats.append({"quantity": f"{name} Cox log hazard ratio", "value": cox["coefficients"][0], "unit": "1/Gy",
                          "source": f"95 % CI {lo:.4g}–{hi:.4g}; Schoenfeld p {cox['ph_test_p_value'][0]:.3g}"})
    stable = rows_to_table(stats, name="Response statistics", columns=("quantity", "value", "unit", "source"))
    set_node_attributes(stable, {"Stage": "response", "Outcome": outcome})
    hierarchy.place(stable, folder)
    out = ResponseOutputs(ptable, stable, res)
    if roc:
        rt = columns_table({"false_positive_rate": [1 - s for s in roc["specificity"]],
                            "sensitivity": list(roc["sensitivity"]), "chance": [1 - s for s in roc["specificity"]]},
                           name=f"ROC {outcome}")
        hierarchy.place(rt, folder)
        out.roc_table = rt
        out.roc_chart = plot_chart(rt, [{"x": "false_positive_rate", "y": "sensitivity", "name": f"ROC {outcome}"},
                                        {"x": "false_positive_rate", "y": "chance", "name": "chance"}],
                                   name=f"ROC {outcome} chart", title=f"ROC: tumour dose for {outcome} "
                                   f"(AUC {roc['auc']:.2f})", x_title="1 − specificity", y_title="sensitivity")
        hierarchy.place(out.roc_chart, folder)
    report(0.8, "Kaplan–Meier charts")
    for name in ("pfs", "rpfs", "os"):
        if name not in res:
            continue
        tables, series = {}, []
        for g, km in res[name]["kaplan_meier"].items():
            t = columns_table(km_step_columns(km), name=f"KM {name} {g} dose")
            hierarchy.place(t, folder)
            tables[g] = t
            series.append({"x": "time_months", "y": "survival", "name": f"{g} dose", "table": t})
        first = next(iter(tables.values()))
        thr = res[name]["threshold_Gy"]
        chart = plot_chart(first, series, name=f"KM {name} chart",
                           title=f"{res[name]['endpoint']} by dose group (threshold {thr:.3g} Gy)",
                           x_title="time (months)", y_title="survival probability")
        hierarchy.place(chart, folder)
        out.km_tables[name], out.km_charts[name] = tables, chart
    report(1.0, "done")
    return out


@dataclass
class FollowUpOutputs:
    """Nodes created by :func:`load_patient_follow_up`."""

    toxicities: object
    response: object
    psa_chart: object = None
    patient_id: str = ""


def load_patient_follow_up(ledger_path) -> FollowUpOutputs:
    """A patient's toxicities (beside the dose of the cycle they began in) and response assessments.

    Parameters
    ----------
    ledger_path : path
        The patient's ledger (JSON) with ``follow_up`` / ``outcomes`` blocks (``docs/trial.md``); not modified.
    """
    import json
    from pathlib import Path

    from LuDosimetryLib.errors import InputError
    from LuDosimetryLib.response.categories import recip_category
    from LuDosimetryLib.trial.cohort import trial_patient_from_ledger

    p = Path(ledger_path)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read the ledger: {exc}", source=str(p)) from None
    pt = trial_patient_from_ledger(doc, source=str(p))
    folder = hierarchy.stage_folder(pt.patient_id, "follow-up")
    tox = []
    for a in pt.follow_up.adverse_events():
        cyc = [c for c in pt.cycles if c.administration_date <= a.onset_date]
        c = cyc[-1] if cyc else None
        tox.append({"onset_date": a.onset_date.isoformat(), "days_after_cycle_1": pt.day(a.onset_date),
                    "term": a.term, "grade": a.grade, "attribution": a.attribution, "dlt": int(a.dlt),
                    "cycle": c.cycle if c else math.nan,
                    "cycle_kidney_dose_Gy": c.dose_Gy.get("kidney", math.nan) if c else math.nan,
                    "cumulative_kidney_dose_Gy": sum(x.dose_Gy.get("kidney", 0.0) for x in cyc)})
    cols = ("onset_date", "days_after_cycle_1", "term", "grade", "attribution", "dlt", "cycle", "cycle_kidney_dose_Gy",
            "cumulative_kidney_dose_Gy")
    ttable = rows_to_table(tox, name=f"{pt.patient_id} toxicities", columns=cols)
    set_node_attributes(ttable, {"Stage": "follow-up", "PatientID": pt.patient_id, "Ledger": str(p)})
    hierarchy.place(ttable, folder)
    psa = pt.follow_up.lab_series("psa_ng_per_mL")
    base_psa = next((v for d, v in reversed(psa) if d <= pt.start_date), None)
    pets = pt.follow_up.psma_pet_series()
    base_pet = next((x for d, x in reversed(pets) if d <= pt.start_date), None)
    resp = []
    for v in pt.follow_up.visits:
        row = {"date": v.date.isoformat(), "days_after_cycle_1": pt.day(v.date), "psa_ng_per_mL": math.nan,
               "psa_change_percent": math.nan, "total_tumour_volume_mL": math.nan, "new_lesions": "", "recip": ""}
        if "psa_ng_per_mL" in v.labs:
            row["psa_ng_per_mL"] = v.labs["psa_ng_per_mL"]
            if base_psa:
                row["psa_change_percent"] = 100 * (v.labs["psa_ng_per_mL"] - base_psa) / base_psa
        if v.psma_pet is not None:
            row["total_tumour_volume_mL"] = v.psma_pet.total_tumour_volume_mL
            row["new_lesions"] = "yes" if v.psma_pet.new_lesions else "no"
            if base_pet is not None and v.date > pt.start_date and base_pet.total_tumour_volume_mL > 0:
                row["recip"] = v.psma_pet.recip or recip_category(base_pet.total_tumour_volume_mL,
                                                                  v.psma_pet.total_tumour_volume_mL,
                                                                  v.psma_pet.new_lesions)
        if not math.isnan(row["psa_ng_per_mL"]) or v.psma_pet is not None:
            resp.append(row)
    rtable = rows_to_table(resp, name=f"{pt.patient_id} response")
    set_node_attributes(rtable, {"Stage": "follow-up", "PatientID": pt.patient_id})
    hierarchy.place(rtable, folder)
    out = FollowUpOutputs(ttable, rtable, patient_id=pt.patient_id)
    if psa:
        pt_table = columns_table({"days_after_cycle_1": [pt.day(d) for d, _ in psa],
                                  "psa_ng_per_mL": [v for _, v in psa]}, name=f"{pt.patient_id} PSA")
        hierarchy.place(pt_table, folder)
        out.psa_chart = plot_chart(pt_table, [{"x": "days_after_cycle_1", "y": "psa_ng_per_mL", "name": "PSA"}],
                                   name=f"{pt.patient_id} PSA chart", title=f"{pt.patient_id}: PSA",
                                   x_title="days after cycle 1", y_title="PSA (ng/mL)")
        hierarchy.place(out.psa_chart, folder)
    return out
