"""The cohort statistics read the reported dose (``dose_Gy``) of every patient's doses.csv."""

from __future__ import annotations

import pytest

from LuDosimetryLib.cohort.statistics import response_table_rows
from LuDosimetryLib.cohort.summary import collect_dose_pairs
from LuDosimetryLib.errors import InputError
from LuDosimetryLib.results import DOSES_COLUMNS, write_csv


def _patient(root, pid, measured, predicted, *, old=False):
    folder = root / "patients" / pid
    rows = [{"region": r, "kind": k, "dose_Gy": d, "dose_method": "kernel+gtm-pvc", "map_mean_dose_Gy": 0.5 * d,
             "mass_g": 2.0} for r, k, d in measured]
    if old:
        rows = [{"region": r["region"], "mean_dose_Gy": r["map_mean_dose_Gy"]} for r in rows]
    write_csv(folder / "doses.csv", rows, ["region"] if old else DOSES_COLUMNS)
    write_csv(folder / "prediction" / "doses.csv",
              [{"region": r, "dose_Gy": d, "dose_method": "led", "prediction_model": "pet_prediction"}
               for r, d in predicted], DOSES_COLUMNS)


def test_concordance_pairs_and_response_rows_use_the_reported_dose_not_the_map_mean(tmp_path):
    _patient(tmp_path, "P1", [("lacrimal_left", "organ", 9.0), ("lesion_node_1", "lesion", 23.0)],
             [("lacrimal_left", 8.0), ("lesion_node_1", 20.0), ("liver", 3.0)])
    pairs = collect_dose_pairs(tmp_path, ["P1"])
    assert [(p["region"], p["predicted_Gy"], p["measured_Gy"], p["measured_method"]) for p in pairs] == [
        ("lacrimal_left", 8.0, 9.0, "kernel+gtm-pvc"), ("lesion_node_1", 20.0, 23.0, "kernel+gtm-pvc")]
    clinical = tmp_path / "clinical.csv"
    write_csv(clinical, [{"patient": "P1", "lesion": "lesion_node_1", "psa_baseline_ng_per_mL": 10,
                          "psa_best_ng_per_mL": 2}], ["patient", "lesion"])
    (row,) = response_table_rows(clinical, tmp_path, ["P1"])
    assert row["dose_Gy"] == 23.0 and row["dose_method"] == "kernel+gtm-pvc" and row["mass_g"] == "2.0"


def test_a_results_folder_with_the_old_columns_is_refused_by_name(tmp_path):
    _patient(tmp_path, "P1", [("kidney_left", "organ", 4.0)], [("kidney_left", 4.2)], old=True)
    with pytest.raises(InputError, match=r"mean_dose_Gy.*now dose_Gy"):
        collect_dose_pairs(tmp_path, ["P1"])
