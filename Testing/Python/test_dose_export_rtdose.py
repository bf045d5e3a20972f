"""Dose export as DICOM RT Dose on the CT frame of reference (writer: LuDosimetryLib.dicomio.write)."""

from __future__ import annotations

import subprocess
from datetime import datetime

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from LuDosimetryLib.dicomio.write import DicomPatient, DicomStudy, new_uid
from LuDosimetryLib.dose.export import write_dose_rt
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
