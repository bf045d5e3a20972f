"""Issue 16 item 3 (and 7): damaged inputs that gave a silently wrong dose now stop ingest by name.

Each case is reproduced on a copy of the small sample patient, cut down to the files the case
needs so that ingest stays cheap: a label map shifted by 60 mm, RescaleSlope removed from 100 of
172 PET slices (or from all), one bed relabelled BQML among counts beds, an injected activity
far below the activity in the field of view, a missing labels.csv, calibration inputs that are
given but unusable.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pydicom
import pytest
import SimpleITK as sitk

from LuDosimetryLib.cli import main
from LuDosimetryLib.errors import ConsistencyError, InputError
from LuDosimetryLib.ingest import load_patient
from LuDosimetryLib.ingest.plausibility import expected_tissue, fov_activity_problems
from LuDosimetryLib.pipeline import run_patient
from LuDosimetryLib.results import RunRecord


@pytest.fixture()
def sample(small_dicom_patient) -> Path:
    return small_dicom_patient


def copy_patient(sample: Path, dst: Path, *parts: str) -> Path:
    """A patient folder holding only ``parts`` of the sample (plus its calibration and patient.json)."""
    dst.mkdir(parents=True, exist_ok=True)
    for name in ("calibration.json", "patient.json"):
        shutil.copy(sample / name, dst / name)
    for part in parts:
        shutil.copytree(sample / part, dst / part)
    return dst


# --- label map on the reference CT -----------------------------------------------------------------
def test_label_map_shifted_60_mm_is_refused_naming_the_regions(sample, tmp_path):
    p = copy_patient(sample, tmp_path / "P", "nifti/cycle1/tp1", "labels")
    seg = load_patient(p, route="nifti").segmentation  # as written: the label map fits the CT
    assert seg is not None
    lab = sitk.ReadImage(str(p / "labels" / "labels.nii.gz"))
    origin = list(lab.GetOrigin())
    origin[1] += 60.0
    lab.SetOrigin(origin)
    sitk.WriteImage(lab, str(p / "labels" / "labels.nii.gz"))
    with pytest.raises(ConsistencyError, match=r"labels\.nii\.gz: the label map does not lie on the reference "
                                               r"CT.*kidney_cortex_left.*--accept label_registration"):
        load_patient(p, route="nifti")
    rec = RunRecord("test")
    load_patient(p, route="nifti", accept=["label_registration"], record=rec)  # the user's explicit override
    assert any("accepted (label_registration)" in w["message"] for w in rec.warnings)


def test_expected_tissue_by_region_name():
    assert expected_tissue("kidney_cortex_left", "organ") == "soft"
    assert expected_tissue("renal_pelvis_right", "organ") == "soft"
    assert expected_tissue("vertebra_l3", "organ") == "bone"
    assert expected_tissue("lung_left", "organ") == "lung"
    assert expected_tissue("lesion_node_2", "lesion") is None
    assert expected_tissue("remainder", "other") is None
    assert expected_tissue("cortical_bone", "other") == "bone"
    assert expected_tissue("lesion_bone_1", "lesion") is None  # lytic, sclerotic or mixed: not checked


# --- quantitation tags -------------------------------------------------------------------------------
@pytest.mark.parametrize("n_removed, match", [
    (100, r"RescaleSlope \(0028,1053\) is missing in 100 of 172 slices"),
    (172, r"PT_static.*MBq in the field of view.*of the administered 180 MBq Ga-68.*--accept fov_activity"),
])
def test_pet_with_rescale_slope_removed_is_refused(sample, tmp_path, n_removed, match):
    p = copy_patient(sample, tmp_path / "P", "dicom/pet/PT_static", "dicom/pet/CT")
    files = sorted((p / "dicom" / "pet" / "PT_static").glob("*.dcm"))
    assert len(files) == 172
    for f in files[:n_removed]:
        ds = pydicom.dcmread(f)
        del ds.RescaleSlope
        ds.save_as(f)
    with pytest.raises(ConsistencyError, match=match):
        load_patient(p)


def test_one_bed_relabelled_bqml_among_counts_beds_is_refused(sample, tmp_path):
    p = copy_patient(sample, tmp_path / "P", "dicom/cycle1/tp1")
    f = p / "dicom" / "cycle1" / "tp1" / "NM_bed2" / "NM.dcm"
    ds = pydicom.dcmread(f)
    assert ds.Units == "CNTS"
    ds.Units = "BQML"
    ds.save_as(f)
    with pytest.raises(ConsistencyError, match=r"beds of timepoint tp1 are stored in different units \(counts: .*"
                                               r"NM_bed1.*Bq/mL: .*NM_bed2"):
        load_patient(p)


def test_activity_in_the_field_of_view_above_the_administered_is_refused(sample, tmp_path):
    p = copy_patient(sample, tmp_path / "P", "dicom/cycle1/tp1")
    load_patient(p)
    with pytest.raises(ConsistencyError, match=r"cycle 1 tp1 .*MBq in the field of view.*administered 1000 MBq"):
        load_patient(p, overrides={"injected_activity_Bq": 1e9})


def test_fov_activity_far_below_the_administered_is_a_warning():
    errors, warnings = fov_activity_problems(1e5, 7.4e9, "Lu-177", 24.0, what="cycle 1 tp2")
    assert errors == [] and "far below" in warnings[0] and "cycle 1 tp2" in warnings[0]
    errors, _ = fov_activity_problems(7.4e9, 7.4e9, "Lu-177", 96.0, what="cycle 1 tp3")
    assert "more than 125%" in errors[0]  # 7.4 GBq at 4 d is 167 % of the decayed 4.4 GBq
    assert fov_activity_problems(3.0e9, 7.4e9, "Lu-177", 24.0, what="x") == ([], [])


# --- labels.csv (item 7: inspect accepted it, run failed later) -------------------------------------
def test_missing_labels_csv_is_refused_naming_the_file(sample, tmp_path, capsys):
    p = copy_patient(sample, tmp_path / "P", "nifti/cycle1/tp1", "labels")
    (p / "labels" / "labels.csv").unlink()
    with pytest.raises(InputError, match=r"labels\.csv not found; write it with the columns label,name,side"):
        load_patient(p, route="nifti")


# --- calibration inputs given but unusable ------------------------------------------------------------
def test_calibration_given_but_missing_or_zero_sensitivity_is_refused(sample, tmp_path, capsys):
    p = copy_patient(sample, tmp_path / "P", "nifti/cycle1/tp1", "labels")
    assert main(["run", str(p), "--out", str(tmp_path / "o"), "--calibration", str(tmp_path / "none.json")]) == 2
    assert "--calibration" in capsys.readouterr().err
    with pytest.raises(InputError, match="calibration store not found"):
        run_patient(p, tmp_path / "o2", parameters={"calibration": str(tmp_path / "none.json")})
    with pytest.raises(InputError, match=r"sensitivity_cps_per_MBq: must be a positive number of cps/MBq, got 0"):
        run_patient(p, tmp_path / "o3", parameters={"sensitivity_cps_per_MBq": 0})
    params = tmp_path / "params.json"
    params.write_text(json.dumps({"sensitivity_cps_per_MBq": 0.0}))
    assert main(["run", str(p), "--out", str(tmp_path / "o4"), "--parameters", str(params)]) == 2
    assert "got 0.0" in capsys.readouterr().err
    assert not any((tmp_path / n).exists() for n in ("o", "o2", "o3", "o4"))


# --- item 7: messages that name what to fix --------------------------------------------------------
def test_duplicated_timepoint_folder_is_named_as_such(sample, tmp_path):
    p = copy_patient(sample, tmp_path / "P", "dicom/cycle1/tp1", "dicom/cycle1/tp2")
    shutil.copytree(p / "dicom" / "cycle1" / "tp2", p / "dicom" / "cycle1" / "tp2 copy")
    with pytest.raises(ConsistencyError, match=r"the same NM image .* is stored 2 times: .*tp2 copy.*"
                                               r"A timepoint or bed folder was duplicated; remove the copies"):
        load_patient(p)


def test_zero_variance_names_the_file_and_the_group(tmp_path, capsys):
    table = tmp_path / "pairs.csv"
    table.write_text("patient,region,predicted_Gy,measured_Gy\n" + "".join(
        f"P{i},kidney_left,3.0,{2.5 + 0.2 * i}\n" for i in range(1, 6)))
    assert main(["concordance", str(table), "--out", str(tmp_path / "o"), "--bootstrap", "100"]) == 2
    err = capsys.readouterr().err
    assert f"{table}: group 'kidney' (cohort, 5 pairs): every predicted_Gy is 3 Gy" in err
    assert "x, y" not in err


def test_missing_transform_is_one_line_naming_the_option(tmp_path, capsys):
    patient = tmp_path / "P"
    patient.mkdir()
    assert main(["predict", str(patient), "--out", str(tmp_path / "o"), "--transform", str(tmp_path / "t.h5")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--transform" in err[0] and "not found" in err[0]
