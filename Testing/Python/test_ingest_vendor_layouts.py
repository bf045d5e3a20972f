"""DICOM written by LuDosimetryLib.dicomio.write in the Siemens, GE and Philips layouts (and the
generic one, negative NM spacing, oblique, Bq/mL) is read back to the values and times written."""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta

import numpy as np
import pytest
import SimpleITK as sitk

from LuDosimetryLib.calibration.store import CalibrationEntry, CalibrationStore
from LuDosimetryLib.dicomio.write import (
    DicomPatient,
    DicomStudy,
    PetFrameTiming,
    Radiopharmaceutical,
    new_uid,
    write_ct_series,
    write_nm_tomo,
    write_pet_series,
)
from LuDosimetryLib.errors import DicomError
from LuDosimetryLib.ingest import load_patient
from LuDosimetryLib.model import Camera
from LuDosimetryLib.nuclides import get_nuclide

INJ = datetime(2026, 4, 7, 10, 30, 0)
PATIENT = DicomPatient("LAYOUT01")
SENS = 11.0
FRAME_S, PROJ = 15.0, 60


def _image(arr, spacing=(4.8, 4.8, 4.8), origin=(-24.0, -20.0, -30.0), direction=None):
    img = sitk.GetImageFromArray(arr.astype(np.float32))
    img.SetSpacing(spacing)
    img.SetOrigin(origin)
    if direction is not None:
        img.SetDirection(direction)
    return img


def _oblique():
    a = math.radians(12.0)
    R = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1.0]])
    return tuple(R.ravel())


def _write(root, *, vendor, negative=False, units="CNTS", direction=None, start_h=24.0, values=None):
    rng = np.random.default_rng(11)
    counts = rng.uniform(0, 900, (8, 9, 10)) if values is None else values
    img = _image(counts, direction=direction)
    study = DicomStudy(new_uid(), INJ + timedelta(hours=start_h), new_uid())
    cam = Camera(f"{vendor.upper()} TEST", "Model X", "MEGP", ((187.2, 228.8),), "OSEM 3i10s")
    start = INJ + timedelta(hours=start_h)
    ct = sitk.GetImageFromArray(np.zeros((8, 9, 10), np.float32))
    ct.CopyInformation(img)
    write_ct_series(ct, root / "dicom" / "CT", patient=PATIENT, study=study, series_datetime=start)
    write_nm_tomo(img, root / "dicom" / "NM", patient=PATIENT, study=study, acquisition_start=start,
                  frame_duration_s=FRAME_S, projections_per_detector=PROJ, camera=cam,
                  radiopharmaceutical=Radiopharmaceutical("Lu-177", "177Lu-PSMA-I&T", INJ, 6.8e9), units=units,
                  vendor=vendor, negative_spacing=negative)
    store, _ = CalibrationStore().add(CalibrationEntry(cam.key(), SENS, 0.02, None, date="2026-01-01"))
    store.save(root / "calibration.json")
    return img, counts, start


@pytest.mark.parametrize(("vendor", "negative", "oblique"), [
    ("generic", False, False), ("siemens", False, False), ("ge", False, False), ("philips", False, False),
    ("siemens", True, False), ("ge", True, True), ("philips", False, True)])
def test_vendor_layouts_read_back_counts_geometry_and_times(tmp_path, vendor, negative, oblique):
    img, counts, _ = _write(tmp_path, vendor=vendor, negative=negative, direction=_oblique() if oblique else None)
    if vendor == "ge":  # StartTime only: the date must come from the user, never from the scan date
        with pytest.raises(DicomError, match=r"NM\.dcm: RadiopharmaceuticalStartDateTime \(0018,1078\) is missing "
                                             r"and .*RadiopharmaceuticalStartTime \(0018,1072\) gives the time of day"):
            load_patient(tmp_path)
        (tmp_path / "dicom" / "ludosimetry.json").write_text(json.dumps({"injection": {"datetime": INJ.isoformat()}}))
    pat = load_patient(tmp_path)
    (tp,) = pat.cycles[0].timepoints
    (bed,) = tp.beds
    adm = pat.cycles[0].administration
    assert adm.injection_datetime == INJ and adm.injected_activity_Bq == pytest.approx(6.8e9, rel=1e-6)
    assert bed.time_h * 3600 == pytest.approx(24 * 3600 + FRAME_S * PROJ / 2, abs=1e-3)
    out = bed.image
    assert out.GetOrigin() == pytest.approx(img.GetOrigin(), abs=1e-3)
    assert out.GetDirection() == pytest.approx(img.GetDirection(), abs=1e-5)
    assert out.GetSpacing() == pytest.approx(img.GetSpacing(), abs=1e-5)
    T = FRAME_S * PROJ
    voxel_mL = 4.8 ** 3 / 1000.0
    expected = counts / T / SENS * 1e6 / voxel_mL
    # the writer quantises non-integer counts to max/65535 per step
    np.testing.assert_allclose(sitk.GetArrayFromImage(out), expected, atol=expected.max() / 65535, rtol=1e-6)


def test_siemens_bq_per_ml_series_is_taken_as_it_is(tmp_path):
    rng = np.random.default_rng(5)
    conc = rng.uniform(0, 5e5, (8, 9, 10))
    _write(tmp_path, vendor="siemens", units="BQML", values=conc)
    bed = load_patient(tmp_path, calibration_store=CalibrationStore()).cycles[0].timepoints[0].beds[0]
    np.testing.assert_allclose(sitk.GetArrayFromImage(bed.image), conc, atol=conc.max() / 65535, rtol=1e-6)
    assert "Bq/ml" in bed.provenance["units"]


@pytest.mark.parametrize("dc", ["START", "ADMIN", "NONE"])
def test_written_dynamic_pet_frames_come_back_at_mid_frame(tmp_path, dc):
    ga = get_nuclide("Ga-68")
    inj = datetime(2026, 1, 5, 11, 0, 0)
    timings = [PetFrameTiming(inj + timedelta(seconds=30), 60.0), PetFrameTiming(inj + timedelta(seconds=90), 240.0),
               PetFrameTiming(inj + timedelta(seconds=330), 600.0)]
    frames = [_image(np.full((4, 5, 6), v), spacing=(3.0, 3.0, 3.0)) for v in (5e4, 3e4, 2e4)]
    study = DicomStudy(new_uid(), inj, new_uid())
    write_pet_series(frames, tmp_path / "dicom" / "PT", patient=PATIENT, study=study,
                     radiopharmaceutical=Radiopharmaceutical("Ga-68", "68Ga-PSMA-11", inj, 1.5e8), timings=timings,
                     decay_correction=dc)
    pat = load_patient(tmp_path)
    (study_,) = pat.pet_studies
    assert study_.administration.nuclide == "Ga-68"
    assert study_.administration.injected_activity_Bq == pytest.approx(1.5e8)
    # command-line values are about the therapy SPECT and never reach the PET administration
    (other,) = load_patient(tmp_path, overrides={"injected_activity_Bq": 7e9}).pet_studies
    assert other.administration.injected_activity_Bq == pytest.approx(1.5e8)
    lam = ga.decay_constant_per_h
    for f, t, v in zip(study_.dynamic_frames, timings, (5e4, 3e4, 2e4)):
        T_h = t.duration_s / 3600
        mid_h = ((t.start - inj).total_seconds() + t.duration_s / 2) / 3600
        assert f.time_h == pytest.approx(mid_h, abs=1e-9)
        # written value = frame mean; at mid-frame it is mean · e^(−λ (t_mid − t_mean)), where
        # e^(−λ(t_mean − t_start)) = (1 − e^(−λT)) / (λT)
        t_mean_from_start = -math.log(-math.expm1(-lam * T_h) / (lam * T_h)) / lam
        exp_mid = v * math.exp(-lam * (T_h / 2 - t_mean_from_start))
        got = sitk.GetArrayFromImage(f.image)
        np.testing.assert_allclose(got, exp_mid, rtol=2e-5)
