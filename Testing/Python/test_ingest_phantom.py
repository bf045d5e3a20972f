"""The synthetic sample patient (size small) loads to its ground truth: activity per bed, one voxel
by hand, times p.i. to the second, and the NIfTI route equals the DICOM route."""

from __future__ import annotations

import math
from datetime import datetime

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from LuDosimetryLib.ingest import load_patient
from LuDosimetryLib.phantom import generate_patient, write_patient_folder
from LuDosimetryLib.results import RunRecord


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    patient = generate_patient("small", seed=11, timepoints_h=(5.0, 24.0))
    out = write_patient_folder(patient, tmp_path_factory.mktemp("ph") / "patient", dicom=True)
    rec = RunRecord("test")
    return patient.truth, out, load_patient(out, record=rec, route="dicom"), rec


def test_sample_patient_activity_per_bed_and_times_match_the_truth(sample):
    truth, _, pat, rec = sample
    (cyc_t,) = truth["cycles"]
    (cyc,) = pat.cycles
    inj = datetime.fromisoformat(cyc_t["injection"]["datetime"])
    assert cyc.administration.injection_datetime == inj
    assert cyc.administration.injected_activity_Bq == pytest.approx(cyc_t["injection"]["activity_Bq"], rel=1e-6)
    assert len(cyc.timepoints) == len(cyc_t["timepoints"])
    for tp, tp_t in zip(cyc.timepoints, cyc_t["timepoints"]):
        assert len(tp.beds) == len(tp_t["beds"])
        for bed, bt in zip(tp.beds, tp_t["beds"]):
            assert round(bed.time_h * 3600) == round(bt["time_h"] * 3600)  # to the second
            assert bed.acquisition_start == datetime.fromisoformat(bt["acquisition_start"])
            total = float(sitk.GetArrayViewFromImage(bed.image).sum(dtype=np.float64)) * \
                float(np.prod(bed.image.GetSpacing())) / 1000.0
            assert total == pytest.approx(bt["activity_in_fov_Bq"], rel=5e-3), (tp.label, bt["bed"])
            assert bed.axial_extent_mm == pytest.approx(tuple(bt["z_range_mm"]), abs=1e-3)
    assert not [w for w in rec.warnings if "typical" in w["message"]]


def test_one_voxel_by_hand(sample):
    truth, out, pat, _ = sample
    cal = truth["calibration"]
    bt = truth["cycles"][0]["timepoints"][0]["beds"][0]
    bed = pat.cycles[0].timepoints[0].beds[0]
    ds = pydicom.dcmread(out / "dicom" / "cycle1" / "tp1" / "NM_bed1" / "NM.dcm")
    stored = ds.pixel_array.astype(np.float64)
    k, j, i = (s // 2 for s in stored.shape)
    if "RealWorldValueMappingSequence" in ds:
        rw = ds.RealWorldValueMappingSequence[0]
        counts = stored[k, j, i] * float(rw.RealWorldValueSlope) + float(rw.RealWorldValueIntercept)
        total = stored.sum() * float(rw.RealWorldValueSlope)
    else:
        counts = stored[k, j, i] * float(ds.get("RescaleSlope", 1)) + float(ds.get("RescaleIntercept", 0))
        total = stored.sum() * float(ds.get("RescaleSlope", 1))
    T = float(ds.RotationInformationSequence[0].ActualFrameDuration) / 1000 * \
        int(ds.RotationInformationSequence[0].NumberOfFramesInRotation)
    assert T == pytest.approx(bt["duration_s"])
    m = total / T  # observed count rate of the bed (cps)
    n = m
    for _ in range(100):  # paralysable: n = m·exp(nτ), fixed point
        n = m * math.exp(n * cal["dead_time_s"])
    spacing = [float(x) for x in ds.PixelSpacing] + [abs(float(ds.SpacingBetweenSlices))]
    voxel_mL = spacing[0] * spacing[1] * spacing[2] / 1000.0
    expected = counts / T / cal["sensitivity_cps_per_MBq"] * (n / m) * 1e6 / voxel_mL
    got = sitk.GetArrayViewFromImage(bed.image)
    if float(ds.SpacingBetweenSlices) < 0:
        k = stored.shape[0] - 1 - k
    assert got[k, j, i] == pytest.approx(expected, rel=1e-5)


def test_nifti_route_gives_the_dicom_numbers(sample):
    _, out, pd, _ = sample
    pn = load_patient(out, route="nifti")
    for td, tn in zip(pd.cycles[0].timepoints, pn.cycles[0].timepoints):
        assert tn.time_h == pytest.approx(td.time_h, abs=1e-9)
        for bd, bn in zip(td.beds, tn.beds):
            assert bn.time_h == pytest.approx(bd.time_h, abs=1e-9)
            assert bn.image.GetOrigin() == pytest.approx(bd.image.GetOrigin(), abs=1e-3)
            a, b = sitk.GetArrayViewFromImage(bd.image), sitk.GetArrayViewFromImage(bn.image)
            np.testing.assert_allclose(b, a, rtol=1e-5, atol=float(a.max()) * 1e-6)
    assert pn.cycles[0].administration.injection_datetime == pd.cycles[0].administration.injection_datetime
    for sd, sn in zip(pd.pet_studies, pn.pet_studies):
        assert len(sd.dynamic_frames) == len(sn.dynamic_frames)
        for fd, fn in [*zip(sd.dynamic_frames, sn.dynamic_frames), (sd.static, sn.static)]:
            assert fn.time_h == pytest.approx(fd.time_h, abs=1e-6)
            a, b = sitk.GetArrayViewFromImage(fd.image), sitk.GetArrayViewFromImage(fn.image)
            # DICOM PET is int16 with a per-slice slope: quantisation ≤ max/65535
            np.testing.assert_allclose(b, a, rtol=0, atol=float(a.max()) * 3e-5)
