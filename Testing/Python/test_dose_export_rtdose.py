"""Dose export as DICOM RT Dose on the CT frame of reference (writer: LuDosimetryLib.dicomio.write)."""

from __future__ import annotations

import subprocess
from datetime import datetime

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from LuDosimetryLib.dicomio.write import DicomPatient, DicomStudy, new_uid, write_ct_series
from LuDosimetryLib.dose.export import crop_to_ct, write_dose_rt
from LuDosimetryLib.errors import InputError

PATIENT = DicomPatient("LUD-DOSE-1")
STUDY = DicomStudy(new_uid("dose-test/study"), datetime(2026, 3, 4, 9, 30), new_uid("dose-test/ct-for"))


def ct_and_dose():
    ct = sitk.Image(64, 64, 40, sitk.sitkInt16)
    ct.SetSpacing((1.2, 1.2, 2.0))
    ct.SetOrigin((-38.0, -40.0, -120.0))
    rng = np.random.default_rng(5)
    arr = rng.uniform(0.0, 25.0, (8, 10, 12)).astype(np.float32)
    dose = sitk.GetImageFromArray(arr)
    dose.SetSpacing((4.8, 4.8, 4.8))
    dose.SetOrigin((-30.0, -30.0, -110.0))  # inside the CT
    return ct, dose, arr


def test_rt_dose_round_trip_on_ct_frame_of_reference(tmp_path):
    ct, dose, arr = ct_and_dose()
    path = write_dose_rt(dose, tmp_path / "RTDOSE", patient=PATIENT, study=STUDY, reference_ct=ct,
                         referenced_rt_plan_uid=new_uid("dose-test/plan"))
    out = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, check=False)
    errors = [ln for ln in (out.stdout + out.stderr).splitlines() if ln.startswith("Error")]
    assert out.returncode == 0 and not errors, out.stdout + out.stderr
    ds = pydicom.dcmread(path)
    assert ds.Modality == "RTDOSE" and ds.DoseUnits == "GY"
    assert ds.FrameOfReferenceUID == STUDY.frame_of_reference_uid
    scaling = float(ds.DoseGridScaling)
    np.testing.assert_allclose(ds.pixel_array * scaling, arr, atol=scaling / 2 * 1.0001)
    read = sitk.ReadImage(str(path))  # GDCM: geometry (it returns stored integers, unscaled)
    assert read.GetSize() == dose.GetSize()
    np.testing.assert_allclose(read.GetOrigin(), dose.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(read.GetSpacing(), dose.GetSpacing(), atol=1e-5)


def test_rt_dose_outside_the_ct_is_refused(tmp_path):
    ct, dose, _ = ct_and_dose()
    dose.SetOrigin((200.0, -30.0, -110.0))
    with pytest.raises(InputError, match="lies outside the reference CT"):
        write_dose_rt(dose, tmp_path / "RTDOSE", patient=PATIENT, study=STUDY, reference_ct=ct)
    assert not (tmp_path / "RTDOSE").exists()


def test_dose_wider_than_the_ct_is_cropped_to_it_and_the_share_left_out_counted(tmp_path):
    """A clinical SPECT field of view (566 mm) is wider than its CT's (500 mm): RT Dose keeps the inside."""
    ct, dose, arr = ct_and_dose()
    dose.SetOrigin((-50.0, -30.0, -110.0))  # the CT spans x −38.6…37.4 mm at voxel edges: 3 dose columns outside
    assert crop_to_ct(ct_and_dose()[1], ct)[1] == 0.0
    with pytest.raises(InputError, match="lies outside the reference CT"):
        write_dose_rt(dose, tmp_path / "whole", patient=PATIENT, study=STUDY, reference_ct=ct)
    inside, outside = crop_to_ct(dose, ct)
    x = -50.0 + 4.8 * np.arange(12)  # dose voxel centres along x
    keep = (x >= -38.6) & (x <= 38.2)
    assert inside.GetSize() == (int(keep.sum()), 10, 8)
    np.testing.assert_allclose(inside.GetOrigin()[0], x[keep][0])
    assert outside == pytest.approx(1.0 - arr[:, :, keep].sum(dtype=np.float64) / arr.sum(dtype=np.float64), rel=1e-6)
    path = write_dose_rt(inside, tmp_path / "RTDOSE", patient=PATIENT, study=STUDY, reference_ct=ct)
    ds = pydicom.dcmread(path)
    np.testing.assert_allclose(ds.pixel_array * float(ds.DoseGridScaling), arr[:, :, keep],
                               atol=float(ds.DoseGridScaling) / 2 * 1.0001)
    far = sitk.Image(dose)
    far.SetOrigin((400.0, -30.0, -110.0))
    with pytest.raises(InputError, match="no dose voxel lies inside"):
        crop_to_ct(far, ct)


@pytest.mark.parametrize("hot_outside, warned", [(False, False), (True, True)])
def test_run_writes_the_rt_dose_of_a_wide_spect_cropped_and_warns_when_dose_is_lost(tmp_path, hot_outside, warned):
    """The pipeline's export: cropped RT Dose recorded in run.json; a warning names a share above 0.1 %."""
    from LuDosimetryLib.model import Timepoint
    from LuDosimetryLib.pipeline import RT_DOSE_OUTSIDE_WARN, _export_rt_dose
    from LuDosimetryLib.results import RunRecord

    ct = ct_and_dose()[0]
    files = write_ct_series(sitk.Cast(ct, sitk.sitkFloat32) - 1000.0, tmp_path / "CT", patient=PATIENT,
                            study=STUDY, series_datetime=datetime(2026, 3, 4, 9, 30))
    arr = np.full((8, 10, 12), 1e-4, np.float32)
    arr[:, :, 5] = 2.0  # the body, inside the CT
    if hot_outside:
        arr[:, :, 0] = 0.5  # dose beyond the CT's field of view (e.g. a truncated arm)
    wide = sitk.GetImageFromArray(arr)
    wide.SetSpacing((4.8, 4.8, 4.8))
    wide.SetOrigin((-50.0, -30.0, -110.0))
    reference = Timepoint("tp1", 4.0, wide, ct=ct, provenance={"ct_file": str(files[0])})
    record = RunRecord("test")
    path = _export_rt_dose(wide, reference, tmp_path / "rtdose", record)
    assert path is not None and path.exists()
    info = record.stages["dose"]["rt_dose"]
    assert info["cropped_to_ct"] and info["size"] == [9, 10, 8]
    assert (info["summed_dose_outside_fraction"] > RT_DOSE_OUTSIDE_WARN) is warned
    assert any("RT Dose holds the dose inside the CT" in w["message"] for w in record.warnings) is warned
    assert pydicom.dcmread(path).FrameOfReferenceUID == STUDY.frame_of_reference_uid
