"""Issue 18: the predicted dose comes through the measured route's dose engine (one run with a PET)."""

from __future__ import annotations

import sys

import pytest

from LuDosimetryLib.cli import main
from LuDosimetryLib.phantom import generate_patient, write_patient_folder
from LuDosimetryLib.results import read_doses_csv


def test_prediction_and_measurement_call_the_same_dose_functions(tmp_path):
    """During one ``ludosimetry run`` of the sample patient with its PET, the dose map of a TIA map
    (pipeline.dose_from_tia) and the partial-volume convention (dose.regional.corrected_doses) are wrapped
    to record their callers: the measured route (dose_maps, reported_region_doses) and the prediction
    (predicted_doses) both called these very objects, so a concordance bias can only come from imaging
    and kinetics."""
    from LuDosimetryLib import pipeline
    from LuDosimetryLib.dose import regional

    calls: list[tuple[str, str]] = []

    def spy(fn):
        def wrapper(*args, **kwargs):
            calls.append((fn.__name__, sys._getframe(1).f_code.co_name))
            return fn(*args, **kwargs)
        return wrapper

    patient = generate_patient("small", seed=0)
    folder = write_patient_folder(patient, tmp_path / "patient", dicom=False)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pipeline, "dose_from_tia", spy(pipeline.dose_from_tia))
        mp.setattr(regional, "corrected_doses", spy(regional.corrected_doses))
        assert main(["run", str(folder), "--out", str(tmp_path / "results")]) == 0
    callers: dict[str, set[str]] = {}
    for fn, caller in calls:
        callers.setdefault(fn, set()).add(caller)
    assert {"dose_maps", "predicted_doses"} <= callers["dose_from_tia"]  # SPECT TIA map, predicted TIA map
    assert {"reported_region_doses", "predicted_doses"} <= callers["corrected_doses"]
    pred = {r["region"]: r for r in read_doses_csv(tmp_path / "results" / "prediction" / "doses.csv")}
    meas = {r["region"]: r for r in read_doses_csv(tmp_path / "results" / "doses.csv")}
    assert pred["kidney_left"]["dose_method"] == meas["kidney_left"]["dose_method"] == "kernel+gtm-pvc"
    assert float(pred["kidney_left"]["dose_Gy"]) > 0
