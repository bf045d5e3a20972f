"""Cohort statistics from the patients' results folders.

- **Concordance**: PET-predicted (``prediction/doses.csv``) vs SPECT-measured (``doses.csv``)
  mean doses per region, where both exist (:mod:`LuDosimetryLib.concordance`).
- **Prediction models**: leave-one-patient-out validation of the population, kinetic and
  calibrated models on the patients' PET features and measured doses
  (:mod:`LuDosimetryLib.cohort.model_validation`): ``prediction_features.csv``,
  ``model_validation.csv`` (CCC, bias, limits of agreement per model and organ),
  ``calibrated_model.json`` (fitted on all patients, for new ones) and
  ``population_halflives_cohort.csv`` (lesion effective half-lives by type).
- **Dose–response**: a clinical table beside the patient folders (``clinical.csv``: the columns
  of :mod:`LuDosimetryLib.response.table` except ``dose_Gy``, one row per lesion) joined with each
  patient's measured lesion doses (the reported ``dose_Gy`` and the CT ``mass_g`` of ``doses.csv``, so the
  whole-body tumour dose uses the same mass convention as the dose stage).
"""

from __future__ import annotations

import csv
from pathlib import Path

from ..concordance.outputs import write_concordance_results
from ..concordance.table import DosePair
from ..errors import InputError
from ..report import Report
from ..response.outputs import write_response_results
from ..response.table import read_response_table
from ..results import read_doses_csv, reported_dose, write_csv
from .summary import collect_dose_pairs

__all__ = ["response_table_rows", "write_cohort_statistics", "truth_ratio_rows", "add_truth_ratio_section",
           "TRUTH_RATIO_REGIONS", "TRUTH_RATIO_BOUNDS", "MIN_LESION_VOLUME_ML"]

#: Organs whose measured/true dose ratio a synthetic cohort checks (issue 15), and lesions from this volume.
TRUTH_RATIO_REGIONS = ("kidney_left", "kidney_right", "parotid_left", "parotid_right", "submandibular_left",
                       "submandibular_right", "lacrimal_left", "lacrimal_right", "liver", "spleen")
MIN_LESION_VOLUME_ML = 0.5
#: The range the measured/true ratios should lie in at 11 mm SPECT FWHM.
TRUTH_RATIO_BOUNDS = (0.85, 1.15)


def truth_ratio_rows(cohort_dir: Path, results_dir: Path, patient_ids: list[str]) -> list[dict]:
    """Measured ``dose_Gy`` over the like-for-like truth (``dose_kernel_Gy`` of each patient's truth.json)
    for the organs of :data:`TRUTH_RATIO_REGIONS` and the lesions of ≥ 0.5 mL (synthetic cohorts only).

    Patients without a truth.json holding ``dose_kernel_Gy`` (real patients) are left out.
    """
    import json

    rows = []
    for pid in patient_ids:
        truth_path = Path(cohort_dir) / pid / "truth.json"
        doses_path = Path(results_dir) / "patients" / pid / "doses.csv"
        if not (truth_path.is_file() and doses_path.is_file()):
            continue
        truth = json.loads(truth_path.read_text(encoding="utf-8"))
        kernel = truth["cycles"][0].get("dose_kernel_Gy")
        if not kernel:
            continue
        for r in read_doses_csv(doses_path):
            region, kind = r["region"], r.get("kind", "")
            vol = float(r.get("volume_mL") or 0.0)
            wanted = region in TRUTH_RATIO_REGIONS or (kind == "lesion" and vol >= MIN_LESION_VOLUME_ML)
            dose = reported_dose(r, source=str(doses_path))
            if not wanted or dose is None or not kernel.get(region):
                continue
            ratio = dose / kernel[region]
            rows.append({"patient": pid, "region": region, "kind": kind, "volume_mL": vol, "dose_Gy": dose,
                         "dose_method": r.get("dose_method", ""), "true_dose_Gy": kernel[region], "ratio": ratio,
                         "within_bounds": TRUTH_RATIO_BOUNDS[0] <= ratio <= TRUTH_RATIO_BOUNDS[1]})
    return rows


def add_truth_ratio_section(report: Report, rows: list[dict]) -> None:
    """A report table of the measured/true ratios (one row per patient and region)."""
    lo, hi = TRUTH_RATIO_BOUNDS
    out = [r for r in rows if not r["within_bounds"]]
    sec = report.section("truth_ratios", "Measured against like-for-like truth (synthetic cohort)")
    sec.paragraph(f"dose_Gy of doses.csv over the true TIA through the same kernel physics (truth.json "
                  f"dose_kernel_Gy); expected within {lo}-{hi} at 11 mm SPECT FWHM for kidneys, salivary and "
                  f"lacrimal glands, liver, spleen and lesions ≥ {MIN_LESION_VOLUME_ML} mL. "
                  f"{len(rows) - len(out)} of {len(rows)} within.", css_class="warn" if out else "")
    sec.table(rows, ["patient", "region", "volume_mL", "dose_Gy", "dose_method", "true_dose_Gy", "ratio",
                     "within_bounds"])



def response_table_rows(clinical_csv: Path, results_dir: Path, patient_ids: list[str]) -> list[dict]:
    """Rows of a response table: clinical rows of finished patients with their measured lesion dose and mass."""
    done = set(patient_ids)
    out = []
    with Path(clinical_csv).open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    doses: dict[str, dict[str, dict]] = {}
    for i, row in enumerate(rows, start=2):
        pid = row.get("patient", "")
        if pid not in done:
            continue
        if pid not in doses:
            doses[pid] = {r["region"]: r for r in read_doses_csv(results_dir / "patients" / pid / "doses.csv")}
        les = doses[pid].get(row.get("lesion", ""))
        dose = None if les is None else reported_dose(les, source=f"{pid}/doses.csv")
        if dose is None:
            raise InputError(f"row {i}: lesion {row.get('lesion')!r} of patient {pid!r} has no measured dose in "
                             "its doses.csv", source=str(clinical_csv))
        out.append({**row, "dose_Gy": dose, "dose_method": les.get("dose_method", ""),
                    "mass_g": les.get("mass_g") or row.get("mass_g")})
    return out


def write_cohort_statistics(cohort_dir: str | Path, results_dir: str | Path, patient_ids: list[str], *,
                            report: Report, n_bootstrap: int = 1000) -> dict[str, str]:
    """Concordance and dose–response over the finished patients into ``results_dir/statistics``.

    Returns what was done (or why not) per analysis; never fails the cohort for want of data.
    """
    res_dir = Path(results_dir)
    stats_dir = res_dir / "statistics"
    stats_dir.mkdir(parents=True, exist_ok=True)
    done: dict[str, str] = {}
    pairs_rows = collect_dose_pairs(res_dir, patient_ids)
    if len({r["patient"] for r in pairs_rows}) >= 3:
        write_csv(stats_dir / "concordance_table.csv", pairs_rows,
                  ["patient", "region", "kind", "predicted_Gy", "measured_Gy", "measured_method"])
        pairs = [DosePair(r["patient"], r["region"], r["kind"], r["predicted_Gy"], r["measured_Gy"])
                 for r in pairs_rows]
        write_concordance_results(pairs, stats_dir, report=report, n_bootstrap=n_bootstrap)
        done["concordance"] = f"{len(pairs)} pairs"
    else:
        done["concordance"] = "fewer than 3 patients with predicted and measured doses"
    truth_rows = truth_ratio_rows(Path(cohort_dir), res_dir, patient_ids) if Path(cohort_dir).is_dir() else []
    if truth_rows:
        write_csv(stats_dir / "truth_ratios.csv", truth_rows, list(truth_rows[0]))
        add_truth_ratio_section(report, truth_rows)
        n_out = sum(not r["within_bounds"] for r in truth_rows)
        done["truth_ratios"] = f"{len(truth_rows)} measured/true ratios, {n_out} outside {TRUTH_RATIO_BOUNDS}"
    from .model_validation import collect_feature_rows, write_model_validation

    features = collect_feature_rows(res_dir, patient_ids)
    if len({r["patient"] for r in features}) >= 3:
        write_csv(stats_dir / "prediction_features.csv", features, ["patient", *[c for c in features[0]
                                                                                   if c != "patient"]])
        try:
            write_model_validation(features, stats_dir, report=report)
            done["model_validation"] = f"{len(features)} region rows, leave-one-patient-out per model"
        except InputError as exc:  # too few rows for a statistic: said, not fatal for the cohort
            done["model_validation"] = f"not done: {exc.reason}"
    else:
        done["model_validation"] = "fewer than 3 patients with PET features and measured doses"
    clinical = Path(cohort_dir) / "clinical.csv" if Path(cohort_dir).is_dir() else None
    if clinical and clinical.is_file():
        rows = response_table_rows(clinical, res_dir, patient_ids)
        if len({r["patient"] for r in rows}) >= 3:
            table = stats_dir / "response_table.csv"
            write_csv(table, rows, ["patient", "lesion", "dose_Gy", "dose_method", "mass_g", *[
                c for c in rows[0] if c not in ("patient", "lesion", "dose_Gy", "dose_method", "mass_g")]])
            write_response_results(read_response_table(table), stats_dir, report=report, n_bootstrap=n_bootstrap)
            done["response"] = f"{len(rows)} lesions"
        else:
            done["response"] = "fewer than 3 finished patients with clinical data"
    else:
        done["response"] = "no clinical.csv beside the patients"
    return done
