"""The synthetic patient's DICOM series: valid, read back with the geometry, values and times of the truth."""

import shutil
import subprocess
from datetime import datetime

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from LuDosimetryLib.phantom import generate_patient, write_patient_folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    patient = generate_patient("small", seed=11, timepoints_h=(5.0, 24.0))
    out = write_patient_folder(patient, tmp_path_factory.mktemp("d") / "patient", dicom=True)
    return patient, out


def _series(path):
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(path)))
    # PET slices carry their own RescaleSlope; without a float output GDCM takes the pixel type
    # from the first slice (slope 1 on an empty slice: int16) and later slices overflow.
    reader.SetOutputPixelType(sitk.sitkFloat32)
    return reader.Execute()


def _dciodvfy_errors(path) -> list[str]:
    res = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, check=False)
    return [ln for ln in (res.stdout + res.stderr).splitlines() if ln.startswith("Error")]


def test_every_series_kind_passes_dciodvfy(folder):
    _, out = folder
    assert shutil.which("dciodvfy")
    for sub in ("cycle1/tp1/CT", "cycle1/tp1/NM_bed2", "pet/CT", "pet/PT_dynamic", "pet/PT_static"):
        first = sorted((out / "dicom" / sub).glob("*.dcm"))[0]
        assert _dciodvfy_errors(first) == [], sub


def test_nm_beds_read_back_with_counts_geometry_and_times(folder):
    patient, out = folder
    truth = patient.truth["cycles"][0]
    for tp, tp_truth in zip(patient.cycles[0].timepoints, truth["timepoints"]):
        for bed, bed_truth in zip(tp.beds, tp_truth["beds"]):
            path = out / "dicom" / "cycle1" / tp.label / f"NM_bed{bed.index}" / "NM.dcm"
            img = sitk.ReadImage(str(path))
            np.testing.assert_array_equal(sitk.GetArrayFromImage(img).astype(np.float32),
                                          sitk.GetArrayFromImage(bed.counts))
            np.testing.assert_allclose(img.GetOrigin(), bed.counts.GetOrigin(), atol=1e-3)
            np.testing.assert_allclose(img.GetSpacing(), bed.counts.GetSpacing(), atol=1e-6)
            ds = pydicom.dcmread(path)
            start = datetime.strptime(ds.AcquisitionDate + ds.AcquisitionTime[:6], "%Y%m%d%H%M%S")
            assert start == datetime.fromisoformat(bed_truth["acquisition_start"])
            rot = ds.RotationInformationSequence[0]
            assert float(rot.ActualFrameDuration) == bed.frame_duration_s * 1000.0
            rp = ds.RadiopharmaceuticalInformationSequence[0]
            inj = datetime.strptime(str(rp.RadiopharmaceuticalStartDateTime)[:14], "%Y%m%d%H%M%S")
            assert inj == patient.cycles[0].administration.injection_datetime
            assert float(rp.RadionuclideTotalDose) == pytest.approx(7400.0)  # NM: MBq (PS3.3 C.8.4.10)


def test_each_timepoint_has_its_own_frame_of_reference_and_ct(folder):
    patient, out = folder
    fors = set()
    for tp in patient.cycles[0].timepoints:
        ct = _series(out / "dicom" / "cycle1" / tp.label / "CT")
        np.testing.assert_array_equal(sitk.GetArrayFromImage(ct), sitk.GetArrayFromImage(tp.ct).astype(np.float32))
        np.testing.assert_allclose(ct.GetOrigin(), tp.ct.GetOrigin(), atol=1e-3)
        ds_ct = pydicom.dcmread(sorted((out / "dicom" / "cycle1" / tp.label / "CT").glob("*.dcm"))[0])
        ds_nm = pydicom.dcmread(out / "dicom" / "cycle1" / tp.label / "NM_bed1" / "NM.dcm")
        assert ds_ct.FrameOfReferenceUID == ds_nm.FrameOfReferenceUID
        fors.add(ds_ct.FrameOfReferenceUID)
    assert len(fors) == len(patient.cycles[0].timepoints)


def test_pet_series_hold_bqml_with_decay_correction_and_frame_times(folder):
    patient, out = folder
    pt = patient.pet
    files = sorted((out / "dicom" / "pet" / "PT_dynamic").glob("*.dcm"))
    datasets = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
    assert {ds.Units for ds in datasets} == {"BQML"}
    assert {ds.DecayCorrection for ds in datasets} == {"START"}
    assert int(datasets[0].NumberOfTimeSlices) == len(pt.frame_specs)
    durations = sorted({float(ds.ActualFrameDuration) for ds in datasets})
    assert durations == sorted({f.duration_s * 1000.0 for f in pt.frame_specs})
    static = pydicom.dcmread(sorted((out / "dicom" / "pet" / "PT_static").glob("*.dcm"))[0], stop_before_pixels=True)
    start = datetime.strptime(static.AcquisitionDate + static.AcquisitionTime[:6], "%Y%m%d%H%M%S")
    assert start == pt.static_start
    img = _series(out / "dicom" / "pet" / "PT_static")
    # decay-corrected to the series start: the stored values exceed the mid-frame ones by DecayFactor
    factor = float(static.DecayFactor)
    ref = sitk.GetArrayFromImage(pt.static).astype(np.float64)
    got = sitk.GetArrayFromImage(img).astype(np.float64)
    assert got.sum() == pytest.approx(ref.sum() * factor, rel=1e-3)
