"""Leave-one-patient-out validation of the prediction models on a cohort with PET and SPECT.

Input: feature rows (:data:`LuDosimetryLib.prediction.models.FEATURE_COLUMNS` plus
``measured_dose_Gy_per_GBq``, optionally ``measured_effective_half_life_h`` and ``activity_GBq``),
one per patient and region — written by the cohort run (``statistics/prediction_features.csv``,
from each patient's ``prediction/pet_features.csv`` and measured ``doses.csv``/``fits.csv``), or
drawn by the cheap synthetic path (:func:`LuDosimetryLib.phantom.cohort_kinetics.synthetic_feature_table`).

For each patient P and each model, everything learnt from data is learnt on the other patients
only: the lesion effective half-lives by type (:func:`~LuDosimetryLib.prediction.models.cohort_lesion_table`)
for ``population`` and ``kinetic``, and the regressions of ``calibrated``. P's predictions are then
compared with P's measured doses; the pooled pairs get the same statistics as ``ludosimetry
concordance`` (:func:`LuDosimetryLib.concordance.analysis.concordance_by_group`): CCC, bias and
limits of agreement per organ group, one table with a ``model`` column.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from ..concordance.analysis import concordance_by_group, concordance_rows
from ..concordance.table import DosePair
from ..errors import InputError
from ..prediction.models import (
    DEFAULT_RETENTION_EXPONENT,
    MODELS,
    cohort_lesion_table,
    fit_calibrated_model,
    model_dose_per_GBq,
)
from ..prediction.population import PopulationTable, load_population_table

__all__ = ["lopo_predictions", "lopo_concordance", "VALIDATION_COLUMNS", "write_model_validation",
           "collect_feature_rows"]

#: Columns of the validation table (model + the concordance columns used most).
VALIDATION_COLUMNS = ("model", "group", "n", "n_patients", "ccc", "ccc_ci95_low", "ccc_ci95_high", "ba_bias_Gy",
                      "ba_loa_low_Gy", "ba_loa_high_Gy", "ba_bias_percent", "ratio_geometric_mean", "ratio_loa_low",
                      "ratio_loa_high", "pearson_r")


def lopo_predictions(rows: Sequence[Mapping], *, models: Sequence[str] = MODELS,
                     population: PopulationTable | None = None,
                     exponent: float = DEFAULT_RETENTION_EXPONENT) -> list[dict]:
    """Leave-one-patient-out predicted doses per GBq of every row, for each model.

    Returns rows ``patient, region, kind, model, predicted_Gy_per_GBq, measured_Gy_per_GBq,
    pi95_low_Gy_per_GBq, pi95_high_Gy_per_GBq, activity_GBq``; a calibrated prediction without a fit
    for its key (too few training rows) is left out and counted in ``not_calibrated``.

    Raises
    ------
    InputError
        Fewer than 3 patients, or an unknown model name.
    """
    bad = [m for m in models if m not in MODELS]
    if bad:
        raise InputError(f"unknown model(s) {bad}; choose from {', '.join(MODELS)}", source="models")
    base = population or load_population_table(None)
    patients = sorted({str(r["patient"]) for r in rows})
    if len(patients) < 3:
        raise InputError(f"leave-one-patient-out needs ≥ 3 patients, got {len(patients)}", source="feature table")
    out = []
    for p in patients:
        test = [r for r in rows if str(r["patient"]) == p]
        train = [r for r in rows if str(r["patient"]) != p]
        table = cohort_lesion_table(base, train, source="leave-one-patient-out cohort")
        cal = fit_calibrated_model(train, base, exponent=exponent, source=f"LOPO without {p}") \
            if "calibrated" in models else None
        for r in test:
            if r.get("leaves"):  # composite groups: validated through their leaves
                continue
            meas = r.get("measured_dose_Gy_per_GBq")
            if meas in (None, "") or float(meas) <= 0:
                continue
            activity = r.get("activity_GBq")
            if activity in (None, "") or not float(activity) > 0:  # the doses in Gy are per-GBq doses × this
                raise InputError(f"no therapy activity for region {r['region']} (activity_GBq); the concordance "
                                 "in Gy needs it", source=f"patient {p}")
            common = {"patient": p, "region": r["region"], "kind": r.get("kind") or "organ",
                      "measured_Gy_per_GBq": float(meas), "activity_GBq": float(activity)}
            for m in models:
                if m == "calibrated":
                    pred = cal.predict(r, base)
                    if pred is None:
                        continue
                    out.append({**common, "model": m, "predicted_Gy_per_GBq": pred["dose_Gy_per_GBq"],
                                "pi95_low_Gy_per_GBq": pred["pi95_low_Gy_per_GBq"],
                                "pi95_high_Gy_per_GBq": pred["pi95_high_Gy_per_GBq"]})
                else:
                    out.append({**common, "model": m, "pi95_low_Gy_per_GBq": None, "pi95_high_Gy_per_GBq": None,
                                "predicted_Gy_per_GBq": model_dose_per_GBq(r, table, model=m, exponent=exponent)})
    return out


def lopo_concordance(predictions: Sequence[Mapping], *, n_bootstrap: int = 200, seed: int = 0) -> list[dict]:
    """Per model and organ group: the concordance rows of ``ludosimetry concordance`` (absolute doses, Gy)."""
    out = []
    for m in dict.fromkeys(str(r["model"]) for r in predictions):
        pairs = [DosePair(str(r["patient"]), str(r["region"]), str(r["kind"]),
                          float(r["predicted_Gy_per_GBq"]) * float(r["activity_GBq"]),
                          float(r["measured_Gy_per_GBq"]) * float(r["activity_GBq"]))
                 for r in predictions if r["model"] == m]
        res = [g for g in concordance_by_group(pairs, n_bootstrap=n_bootstrap, seed=seed) if g.scope == "cohort"]
        out += [{"model": m, **row} for row in concordance_rows(res)]
    return out


def collect_feature_rows(results_dir: str | Path, patient_ids: Sequence[str]) -> list[dict]:
    """Feature rows of a cohort run: each patient's ``prediction/pet_features.csv`` joined with its
    measured ``doses.csv`` (``dose_per_activity_Gy_per_GBq``) and ``fits.csv`` (``effective_half_life_h``),
    and the therapy activity of ``prediction/run.json`` (else the measured route's: ``dose_Gy`` /
    ``dose_per_activity_Gy_per_GBq`` of ``doses.csv``). Patients without either file are skipped."""
    import json

    from ..results import read_csv, read_doses_csv

    out = []
    for pid in patient_ids:
        folder = Path(results_dir) / "patients" / pid
        feats, meas = folder / "prediction" / "pet_features.csv", folder / "doses.csv"
        if not (feats.is_file() and meas.is_file()):
            continue
        measured = {r["region"]: r for r in read_doses_csv(meas)}
        fits = {r["region"]: r for r in read_csv(folder / "fits.csv")} if (folder / "fits.csv").is_file() else {}
        try:
            run = json.loads((folder / "prediction" / "run.json").read_text(encoding="utf-8"))
            activity = run["parameters"]["prediction"].get("therapy_activity_GBq_used")
        except (OSError, json.JSONDecodeError, KeyError):
            activity = None
        for r in read_csv(feats):
            m = measured.get(r["region"], {})
            if not (m.get("dose_per_activity_Gy_per_GBq") and r.get("dose_per_tia_Gy_per_Bq_h")):
                continue  # not measured, or not in the predicted dose map
            per_gbq = float(m["dose_per_activity_Gy_per_GBq"])
            row_activity = activity if activity else (float(m["dose_Gy"]) / per_gbq if m.get("dose_Gy") and per_gbq > 0
                                                      else None)
            out.append({**r, "patient": pid, "measured_dose_Gy_per_GBq": per_gbq,
                        "measured_effective_half_life_h": fits.get(r["region"], {}).get("effective_half_life_h"),
                        "activity_GBq": row_activity})
    return out


def write_model_validation(rows: Sequence[Mapping], folder: str | Path, *, report=None,
                           population: PopulationTable | None = None,
                           exponent: float = DEFAULT_RETENTION_EXPONENT) -> dict[str, Path]:
    """LOPO predictions (``model_validation_predictions.csv``), the CCC table per model and organ
    (``model_validation.csv``), the calibrated model fitted on every patient
    (``calibrated_model.json``) and the cohort lesion half-lives, into ``folder``; a report section."""
    from ..results import write_csv

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    base = population or load_population_table(None)
    preds = lopo_predictions(rows, population=base, exponent=exponent)
    table = lopo_concordance(preds)
    out = {"model_validation_predictions.csv": write_csv(
        folder / "model_validation_predictions.csv", preds,
        ["patient", "region", "kind", "model", "predicted_Gy_per_GBq", "pi95_low_Gy_per_GBq", "pi95_high_Gy_per_GBq",
         "measured_Gy_per_GBq", "activity_GBq"])}
    out["model_validation.csv"] = write_csv(folder / "model_validation.csv", table, VALIDATION_COLUMNS) \
        if table else None
    model = fit_calibrated_model(rows, base, exponent=exponent, source=str(folder))
    out["calibrated_model.json"] = model.write(folder / "calibrated_model.json")
    from ..prediction.population import write_population_table

    out["population_halflives_cohort.csv"] = write_population_table(
        cohort_lesion_table(base, rows, source=f"cohort {folder}"), folder / "population_halflives_cohort.csv")
    if report is not None:
        sec = report.section("model_validation", "Prediction models: leave-one-patient-out validation")
        sec.paragraph(f"{len({r['patient'] for r in rows})} patients with PET features and measured SPECT doses. "
                      "Each patient's doses are predicted by each model learnt on the other patients only; "
                      "CCC, bias and limits of agreement per organ group (absolute doses, Gy).")
        sec.table(table, list(VALIDATION_COLUMNS))
    return {k: v for k, v in out.items() if v is not None}
