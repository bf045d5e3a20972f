"""The synthetic patient folder and the `ludosimetry phantom` / `demo` commands (size small)."""

import json
from datetime import datetime

import numpy as np
import pytest
import SimpleITK as sitk

from LuDosimetryLib.calibration.store import CalibrationStore
from LuDosimetryLib.cli import main
from LuDosimetryLib.errors import InputError
from LuDosimetryLib.labels import LabelTable
from LuDosimetryLib.phantom import generate_patient, write_patient_folder

SIDECAR_KEYS = {"modality", "units", "decay_correction", "acquisition_start", "duration_s", "injection"}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    patient = generate_patient("small", seed=7, timepoints_h=(5.0, 96.0))
    out = write_patient_folder(patient, tmp_path_factory.mktemp("p") / "patient", dicom=False)
    return patient, out


def test_folder_holds_everything_listed(folder):
    _, out = folder
    doc = json.loads((out / "patient.json").read_text())
    for rel in doc["written"]:
        assert (out / rel).exists(), rel
    for rel in ("labels/labels.nii.gz", "labels/labels.csv", "truth.json", "calibration.json",
                "nifti/cycle1/tp1/ct.nii.gz", "nifti/cycle1/tp2/nm_bed3.nii.gz", "nifti/pet/pt_dynamic.nii.gz",
                "nifti/pet/pt_static.nii.gz", "nifti/pet/ct.nii.gz"):
        assert (out / rel).is_file(), rel
    assert not list(out.parent.glob(".*partial"))


def test_sidecar_times_equal_truth_to_the_second(folder):
    _, out = folder
    truth = json.loads((out / "truth.json").read_text())
    for tp in truth["cycles"][0]["timepoints"]:
        for bed in tp["beds"]:
            side = json.loads((out / "nifti" / "cycle1" / tp["label"] / f"nm_bed{bed['bed']}.json").read_text())
            assert SIDECAR_KEYS <= set(side)
            assert side["modality"] == "NM" and side["units"] == "counts" and side["decay_correction"] == "NONE"
            start = datetime.fromisoformat(side["acquisition_start"])
            assert start == datetime.fromisoformat(bed["acquisition_start"]) and start.microsecond == 0
            assert side["duration_s"] == bed["duration_s"]
            inj = datetime.fromisoformat(side["injection"]["datetime"])
            mid_h = ((start - inj).total_seconds() + side["duration_s"] / 2) / 3600
            assert mid_h == pytest.approx(bed["time_h"], abs=1e-9)
            assert side["injection"]["activity_Bq"] == truth["cycles"][0]["injection"]["activity_Bq"]
            assert (side["cycle"], side["timepoint"], side["bed"]) == (1, tp["timepoint"], bed["bed"])
            assert side["camera"]["collimator"] == truth["camera"]["collimator"]
    dyn = json.loads((out / "nifti" / "pet" / "pt_dynamic.json").read_text())
    assert dyn["units"] == "Bq/mL" and dyn["modality"] == "PT"
    assert [f["start_s"] for f in dyn["frames"]] == [f["start_s"] for f in truth["pet"]["dynamic"]["frames"]]
    assert dyn["acquisition_start"] == truth["pet"]["dynamic"]["acquisition_start"]
    static = json.loads((out / "nifti" / "pet" / "pt_static.json").read_text())
    assert static["acquisition_start"] == truth["pet"]["static"]["acquisition_start"]


def test_images_read_back_with_values_and_geometry(folder):
    patient, out = folder
    bed = patient.cycles[0].timepoints[1].beds[0]
    img = sitk.ReadImage(str(out / "nifti" / "cycle1" / "tp2" / "nm_bed1.nii.gz"))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(img), sitk.GetArrayFromImage(bed.counts))
    np.testing.assert_allclose(img.GetOrigin(), bed.counts.GetOrigin(), atol=1e-4)
    labels = sitk.ReadImage(str(out / "labels" / "labels.nii.gz"))
    ct = sitk.ReadImage(str(out / "nifti" / "cycle1" / "tp1" / "ct.nii.gz"))
    assert labels.GetSize() == ct.GetSize()
    np.testing.assert_allclose(labels.GetOrigin(), ct.GetOrigin(), atol=1e-4)
    dyn = sitk.ReadImage(str(out / "nifti" / "pet" / "pt_dynamic.nii.gz"))
    assert dyn.GetDimension() == 4 and dyn.GetSize()[3] == 24


def test_label_table_and_calibration_store_read_back(folder):
    patient, out = folder
    table = LabelTable.read(out / "labels" / "labels.csv")
    assert table == patient.label_table
    store = CalibrationStore.load(out / "calibration.json")
    entry = store.lookup(patient.camera.key())
    truth = json.loads((out / "truth.json").read_text())
    assert entry.sensitivity_cps_per_MBq == truth["calibration"]["sensitivity_cps_per_MBq"]
    assert entry.dead_time_s == truth["calibration"]["dead_time_s"]


def test_existing_folder_is_not_overwritten_without_force(folder):
    patient, out = folder
    with pytest.raises(InputError, match="exists and is not empty") as err:
        write_patient_folder(patient, out, dicom=False)
    assert str(out) in str(err.value)


def test_cli_writes_then_refuses_to_overwrite_without_force(tmp_path, capsys):
    out = tmp_path / "p"
    assert main(["phantom", "--size", "small", "--seed", "2", "--no-pet", "--no-dicom", "--out", str(out)]) == 0
    assert (out / "truth.json").is_file()
    before = (out / "truth.json").read_bytes()
    assert main(["phantom", "--size", "small", "--seed", "9", "--no-pet", "--no-dicom", "--out", str(out)]) == 2
    assert str(out) in capsys.readouterr().err
    assert (out / "truth.json").read_bytes() == before
    args = ["phantom", "--size", "small", "--seed", "9", "--no-pet", "--no-dicom", "--out", str(out)]
    assert main([*args, "--force"]) == 0
    assert json.loads((out / "truth.json").read_text())["seed"] == 9


def test_demo_command_reuses_the_cached_patient(tmp_path):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--size", "small", "--no-dicom"]) == 0
    stamp = (out / "sample_patient" / "truth.json").stat().st_mtime_ns
    assert main(["demo", "--out", str(out), "--size", "small", "--no-dicom"]) == 0
    assert (out / "sample_patient" / "truth.json").stat().st_mtime_ns == stamp
    run = json.loads((out / "results" / "run.json").read_text())
    assert run["command"] == "ludosimetry demo"
    assert "kidney_left" in (out / "results" / "report.html").read_text()
