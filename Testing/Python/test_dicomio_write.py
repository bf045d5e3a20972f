"""DICOM writers: what real readers (dciodvfy, GDCM via SimpleITK, pydicom, dcm2niix) get back.

Every expectation comes from the input image and the physics (decay law, DICOM definitions), not from
the writer's own helpers: frame reference times are found by root-finding the frame-average equation,
decay factors from exp(λΔt) with λ from the nuclide table.
"""

from __future__ import annotations

import math
import re
import subprocess
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from scipy import integrate, optimize

from LuDosimetryLib.dicomio import (
    NM_VENDORS,
    DicomPatient,
    DicomStudy,
    PetFrameTiming,
    Radiopharmaceutical,
    new_uid,
    write_ct_series,
    write_nm_tomo,
    write_pet_series,
    write_rt_dose,
)
from LuDosimetryLib.errors import ConsistencyError, InputError
from LuDosimetryLib.model import Camera
from LuDosimetryLib.nuclides import get_nuclide
from LuDosimetryLib.timing import to_acquisition_time

SIZE = (16, 20, 12)  # (i, j, k)
PATIENT = DicomPatient("LUD-001", weight_kg=82.5, height_m=1.78, birth_date="19550102")
STUDY = DicomStudy(new_uid("test/study"), datetime(2026, 3, 3, 10, 0, 0), new_uid("test/for"), description="tp2")
LU = Radiopharmaceutical("177Lu", "177Lu-PSMA-617", datetime(2026, 3, 2, 23, 41, 7), 7.42e9)
GA = Radiopharmaceutical("Ga-68", "68Ga-PSMA-11", datetime(2026, 2, 20, 9, 12, 33), 151.3e6)
CAMERA = Camera("SIEMENS NM", "Symbia Intevo Bold", "MELP", ((187.2, 228.8),), "xSPECT Quant 24i1s")
NM_START = datetime(2026, 3, 3, 10, 4, 51, 250000)


def _oblique_direction() -> np.ndarray:
    a, b = np.deg2rad(12.0), np.deg2rad(-7.0)
    rz = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, math.cos(b), -math.sin(b)], [0, math.sin(b), math.cos(b)]])
    return rz @ rx


def _image(values: np.ndarray, *, spacing=(4.8, 4.0, 3.5), origin=(-41.0, 12.5, -300.25), oblique=False):
    img = sitk.GetImageFromArray(values.astype(np.float32))
    img.SetSpacing(spacing)
    img.SetOrigin(origin)
    if oblique:
        img.SetDirection(_oblique_direction().ravel())
    return img


def _random(seed: int, low: float, high: float) -> np.ndarray:
    return np.random.default_rng(seed).uniform(low, high, SIZE[::-1])


def _dciodvfy(path: Path) -> None:
    out = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, check=False)
    text = out.stdout + out.stderr
    errors = [line for line in text.splitlines() if line.startswith("Error")]
    assert out.returncode == 0 and not errors, f"dciodvfy {path.name}:\n{text}"


def _assert_same_geometry(read: sitk.Image, written: sitk.Image) -> None:
    assert read.GetSize() == written.GetSize()
    np.testing.assert_allclose(read.GetOrigin(), written.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(read.GetSpacing(), written.GetSpacing(), atol=1e-5)
    np.testing.assert_allclose(read.GetDirection(), written.GetDirection(), atol=1e-6)


def _assert_within(actual: np.ndarray, expected: np.ndarray, tol) -> None:
    err = np.abs(np.asarray(actual, float) - np.asarray(expected, float))
    excess = err - np.broadcast_to(tol, err.shape)
    assert np.all(excess <= 0), f"max error {err.max():g} exceeds tolerance by {excess.max():g}"


def _index_to_lps(img: sitk.Image) -> np.ndarray:
    """4×4 matrix from (i, j, k, 1) to LPS (mm)."""
    m = np.eye(4)
    m[:3, :3] = np.asarray(img.GetDirection()).reshape(3, 3) * np.asarray(img.GetSpacing())
    m[:3, 3] = img.GetOrigin()
    return m


def _to_written_grid(read: sitk.Image, written: sitk.Image) -> np.ndarray:
    """Voxels of ``read`` put on the index grid of ``written`` (same points in LPS, any axis order)."""
    m = np.linalg.inv(_index_to_lps(written)) @ _index_to_lps(read)
    return _reorder(sitk.GetArrayFromImage(read).transpose(2, 1, 0), m).transpose(2, 1, 0)


def _reorder(data_ijk: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Apply index map ``m`` (written index = m @ read index, a signed permutation + shift) to data."""
    rot = np.round(m[:3, :3]).astype(int)
    np.testing.assert_allclose(m[:3, :3], rot, atol=1e-4, err_msg="grids are not the same up to axis order")
    perm = [int(np.flatnonzero(rot[b])[0]) for b in range(3)]  # written axis b <- read axis perm[b]
    out = data_ijk.transpose(perm)
    for b in range(3):
        if rot[b, perm[b]] < 0:
            out = out[(slice(None),) * b + (slice(None, None, -1),)]
    return out


# ---------------------------------------------------------------------------------------------- UIDs

def test_seeded_uids_are_reproducible_distinct_and_valid():
    a, b = new_uid("phantom/seed=1/ct"), new_uid("phantom/seed=1/ct")
    c = new_uid("phantom/seed=1/nm")
    r1, r2 = new_uid(), new_uid()
    assert a == b and a != c and r1 != r2
    for uid in (a, c, r1, r2):
        assert len(uid) <= 64 and re.fullmatch(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))+", uid)


def test_seeded_writers_produce_identical_files(tmp_path):
    counts = np.random.default_rng(5).poisson(20.0, SIZE[::-1]).astype(float)
    a = [_write_nm(tmp_path / f"run{n}", counts, uid_seed="phantom/seed=7/tp1/bed1")[1].read_bytes()
         for n in range(2)]
    ct = [write_ct_series(_image(counts), tmp_path / f"ct{n}", patient=PATIENT, study=STUDY,
                          series_datetime=STUDY.study_datetime, uid_seed="phantom/seed=7/tp1/ct")[0].read_bytes()
          for n in range(2)]
    assert a[0] == a[1] and ct[0] == ct[1]


# ------------------------------------------------------------------------------------------------ CT

@pytest.mark.parametrize("kind", ["axial", "oblique", "left_handed"])
def test_ct_series_is_valid_and_reads_back_with_geometry_and_hu(tmp_path, kind):
    hu = _random(1, -1000.0, 1500.0)
    img = _image(hu, spacing=(0.9765625, 1.25, 2.5), oblique=kind == "oblique")
    if kind == "left_handed":  # slices stacked towards the feet (k along −z): readers sort them by position
        img.SetDirection((1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, -1.0))
    when = datetime(2026, 3, 3, 9, 58, 12, 500000)
    paths = write_ct_series(img, tmp_path / "CT", patient=PATIENT, study=STUDY, series_datetime=when, kvp=130)
    assert len(paths) == SIZE[2]
    assert sorted(p.name for p in (tmp_path / "CT").iterdir()) == sorted(p.name for p in paths)  # no temp files
    for p in (paths[0], paths[-1]):
        _dciodvfy(p)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(tmp_path / "CT")))
    read = reader.Execute()
    if kind == "left_handed":  # GDCM returns the right-handed equivalent: same voxels in LPS
        np.testing.assert_allclose(read.GetOrigin(), img.TransformIndexToPhysicalPoint((0, 0, SIZE[2] - 1)))
        np.testing.assert_array_equal(_to_written_grid(read, img), np.rint(hu))
    else:
        _assert_same_geometry(read, img)
        np.testing.assert_array_equal(sitk.GetArrayFromImage(read), np.rint(hu))
    ds = pydicom.dcmread(paths[3])
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.2" and float(ds.KVP) == 130.0
    assert ds.FrameOfReferenceUID == STUDY.frame_of_reference_uid
    assert datetime.strptime(ds.AcquisitionDate + ds.AcquisitionTime, "%Y%m%d%H%M%S.%f") == when
    assert datetime.strptime(ds.ContentDate + ds.ContentTime, "%Y%m%d%H%M%S.%f") == when
    assert ds.pixel_array.dtype == np.int16


def test_ct_rejects_values_outside_int16(tmp_path):
    hu = _random(2, 0.0, 1.0)
    hu[0, 0, 0] = 40000.0
    with pytest.raises(InputError, match="does not fit int16"):
        write_ct_series(_image(hu), tmp_path, patient=PATIENT, study=STUDY, series_datetime=STUDY.study_datetime)


# ------------------------------------------------------------------------------------------------ NM

def _write_nm(tmp_path, values, **kw):
    img = _image(values, oblique=kw.pop("oblique", False))
    kw.setdefault("camera", CAMERA)
    path = write_nm_tomo(img, tmp_path / "NM", patient=PATIENT, study=STUDY, acquisition_start=NM_START,
                         frame_duration_s=15.0, projections_per_detector=60, radiopharmaceutical=LU, **kw)
    return img, path


@pytest.mark.parametrize("negative_spacing", [False, True], ids=["positive", "negative_spacing"])
def test_nm_integer_counts_read_back_by_gdcm_with_same_lps_geometry(tmp_path, negative_spacing):
    counts = np.random.default_rng(3).poisson(40.0, SIZE[::-1]).astype(float)
    img, path = _write_nm(tmp_path, counts, oblique=True, negative_spacing=negative_spacing)
    _dciodvfy(path)
    ds = pydicom.dcmread(path)
    assert "RealWorldValueMappingSequence" not in ds  # plain counts
    assert (float(ds.SpacingBetweenSlices) < 0) == negative_spacing
    read = sitk.ReadImage(str(path))
    if negative_spacing:
        # GDCM (SimpleITK 2.5) handles the negative spacing: it returns the frames in file order with
        # the origin at the first frame (our last slice) and the slice axis reversed. Same voxels in LPS.
        np.testing.assert_allclose(read.GetOrigin(), img.TransformIndexToPhysicalPoint((0, 0, SIZE[2] - 1)),
                                   atol=1e-4)
        d = np.asarray(read.GetDirection()).reshape(3, 3)
        np.testing.assert_allclose(d[:, 2], -np.asarray(img.GetDirection()).reshape(3, 3)[:, 2], atol=1e-6)
        np.testing.assert_allclose(read.GetSpacing(), img.GetSpacing(), atol=1e-5)
    else:
        _assert_same_geometry(read, img)
    np.testing.assert_array_equal(_to_written_grid(read, img), counts)
    assert int(ds.CountsAccumulated) == int(counts.sum())


@pytest.mark.parametrize("units", ["CNTS", "BQML"])
def test_nm_scaled_values_come_back_through_real_world_value_mapping(tmp_path, units):
    values = _random(4, 0.0, 3.0e5)  # non-integer and above 65535
    img, path = _write_nm(tmp_path, values, units=units)
    _dciodvfy(path)
    ds = pydicom.dcmread(path)
    rwvm = ds.RealWorldValueMappingSequence[0]
    assert rwvm.MeasurementUnitsCodeSequence[0].CodeValue == {"CNTS": "{counts}", "BQML": "Bq/ml"}[units]
    slope, intercept = float(rwvm.RealWorldValueSlope), float(rwvm.RealWorldValueIntercept)
    true = ds.pixel_array.astype(float) * slope + intercept
    np.testing.assert_allclose(true, values, atol=slope / 2 * 1.0001)
    # GDCM ignores the Real World Value Mapping: SimpleITK returns the stored integers.
    read = sitk.ReadImage(str(path))
    _assert_same_geometry(read, img)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(read), ds.pixel_array)
    assert ds.Units == units


def test_nm_timing_isotope_and_detector_tags_read_back_exactly(tmp_path):
    _, path = _write_nm(tmp_path, np.ones(SIZE[::-1]), corrected_image=("ATTN", "SCAT", "DTIM"))
    ds = pydicom.dcmread(path)
    assert list(ds.ImageType) == ["ORIGINAL", "PRIMARY", "RECON TOMO", "EMISSION"]
    assert ds.NumberOfFrames == SIZE[2] and ds.Modality == "NM"
    assert datetime.strptime(ds.AcquisitionDate + ds.AcquisitionTime, "%Y%m%d%H%M%S.%f") == NM_START
    rot = ds.RotationInformationSequence[0]
    assert rot.ActualFrameDuration == 15000 and rot.NumberOfFramesInRotation == 60
    win = ds.EnergyWindowInformationSequence[0].EnergyWindowRangeSequence[0]
    assert (float(win.EnergyWindowLowerLimit), float(win.EnergyWindowUpperLimit)) == (187.2, 228.8)
    assert ds.DetectorInformationSequence[0].CollimatorGridName == "MELP"
    assert list(ds.CorrectedImage) == ["ATTN", "SCAT", "DTIM"]
    rp = ds.RadiopharmaceuticalInformationSequence[0]
    assert datetime.strptime(rp.RadiopharmaceuticalStartDateTime, "%Y%m%d%H%M%S.%f") == LU.injection_datetime
    assert rp.RadiopharmaceuticalStartTime.startswith("234107")
    assert float(rp.RadionuclideTotalDose) == pytest.approx(7420.0, rel=1e-12)  # MBq in the NM Isotope module
    assert float(rp.RadionuclideHalfLife) == pytest.approx(get_nuclide("Lu-177").half_life_h * 3600.0, rel=1e-12)
    code = rp.RadionuclideCodeSequence[0]
    assert (code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning) == ("447553000", "SCT", "^177^Lutetium")
    assert ds.ReconstructionMethod == "xSPECT Quant 24i1s"


def test_nm_rejects_bad_input(tmp_path):
    with pytest.raises(InputError, match="vendor: unknown vendor layout 'hermes'"):
        _write_nm(tmp_path, np.ones(SIZE[::-1]), vendor="hermes")
    with pytest.raises(InputError, match="units: units must be 'CNTS' or 'BQML'"):
        _write_nm(tmp_path, np.ones(SIZE[::-1]), units="CPS")
    neg = np.ones(SIZE[::-1])
    neg[1, 2, 3] = -0.5
    with pytest.raises(InputError, match=r"NM image: NM values must be ≥ 0"):
        _write_nm(tmp_path, neg)
    with pytest.raises(InputError, match=r"camera\.energy_windows_keV"):
        _write_nm(tmp_path, np.ones(SIZE[::-1]), camera=Camera("X", "Y", "LEHR", (), "OSEM"))
    late = Radiopharmaceutical("Lu-177", "177Lu-PSMA-617", NM_START + timedelta(minutes=1), 7.4e9)
    with pytest.raises(ConsistencyError, match=r"acquisition starts at 2026-03-03T10:04:51\.250000, before the"):
        write_nm_tomo(_image(np.ones(SIZE[::-1])), tmp_path / "NM", patient=PATIENT, study=STUDY,
                      acquisition_start=NM_START, frame_duration_s=15.0, projections_per_detector=60,
                      camera=CAMERA, radiopharmaceutical=late)
    no_activity = Radiopharmaceutical("Lu-177", "177Lu-PSMA-617", LU.injection_datetime, float("nan"))
    with pytest.raises(InputError, match=r"radiopharmaceutical\.total_dose_Bq: must be a finite activity > 0 Bq"):
        write_nm_tomo(_image(np.ones(SIZE[::-1])), tmp_path / "NM", patient=PATIENT, study=STUDY,
                      acquisition_start=NM_START, frame_duration_s=15.0, projections_per_detector=60,
                      camera=CAMERA, radiopharmaceutical=no_activity)
    assert not (tmp_path / "NM").exists() or not any((tmp_path / "NM").iterdir())


# ----------------------------------------------------------------------------------------------- PET

PET_START = datetime(2026, 2, 20, 9, 13, 3)
PET_TIMINGS = (PetFrameTiming(PET_START, 60.0), PetFrameTiming(PET_START + timedelta(seconds=60), 240.0),
               PetFrameTiming(PET_START + timedelta(seconds=300), 600.0))


def _frame_reference_time_numeric(lam_per_s: float, duration_s: float) -> float:
    """Seconds after frame start at which e^(−λt) equals its mean over the frame (quadrature + root)."""
    mean = integrate.quad(lambda t: math.exp(-lam_per_s * t), 0.0, duration_s)[0] / duration_s
    return optimize.brentq(lambda t: math.exp(-lam_per_s * t) - mean, 0.0, duration_s, xtol=1e-9)


def _pet_frames(*, oblique: bool = False) -> list[sitk.Image]:
    return [_image(_random(10 + n, 0.0, 2.0e4) * (1.0 - 0.2 * n), spacing=(2.0, 2.0, 3.0), oblique=oblique)
            for n in range(3)]


def _dt(value: str) -> datetime:
    return datetime.strptime(value, "%Y%m%d%H%M%S.%f")


@pytest.mark.parametrize("decay_correction", ["START", "ADMIN", "NONE"])
def test_pet_dynamic_decay_correction_round_trips_to_acquisition_time(tmp_path, decay_correction):
    frames = _pet_frames()
    paths = write_pet_series(frames, tmp_path / "PT", patient=PATIENT, study=STUDY, radiopharmaceutical=GA,
                             timings=PET_TIMINGS, decay_correction=decay_correction)
    nz = SIZE[2]
    assert len(paths) == 3 * nz
    _dciodvfy(paths[0])
    _dciodvfy(paths[-1])
    lam_per_s = math.log(2.0) / (get_nuclide("Ga-68").half_life_h * 3600.0)
    for n, (frame, timing) in enumerate(zip(frames, PET_TIMINGS)):
        files = [str(p) for p in paths[n * nz:(n + 1) * nz]]
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(files)
        read = reader.Execute()
        _assert_same_geometry(read, frame)
        ds = pydicom.dcmread(files[0])
        assert ds.Units == "BQML" and ds.DecayCorrection == decay_correction
        assert list(ds.SeriesType) == ["DYNAMIC", "IMAGE"] and ds.NumberOfTimeSlices == 3
        assert ds.ImageIndex == n * nz + 1 and ds.ActualFrameDuration == round(timing.duration_s * 1000)
        assert ("DECY" in ds.CorrectedImage) == (decay_correction != "NONE")
        assert {"ATTN", "SCAT"} <= set(ds.CorrectedImage)
        series_start = _dt(ds.SeriesDate + ds.SeriesTime)
        assert series_start == PET_START
        assert _dt(ds.AcquisitionDate + ds.AcquisitionTime) == timing.start
        rp = ds.RadiopharmaceuticalInformationSequence[0]
        injection = _dt(rp.RadiopharmaceuticalStartDateTime)
        assert injection == GA.injection_datetime and float(rp.RadionuclideTotalDose) == pytest.approx(151.3e6)
        assert rp.RadionuclideCodeSequence[0].CodeValue == "35337001"
        # Frame reference time: independent root-finding on the frame-average equation
        t_ref = timing.start + timedelta(seconds=_frame_reference_time_numeric(lam_per_s, timing.duration_s))
        frt_s = float(ds.FrameReferenceTime) / 1000.0
        assert (series_start + timedelta(seconds=frt_s) - t_ref).total_seconds() == pytest.approx(0.0, abs=1e-3)
        reference = {"START": series_start, "ADMIN": injection, "NONE": None}[decay_correction]
        if reference is None:
            assert "DecayFactor" not in ds
            expected_factor = 1.0
        else:
            expected_factor = math.exp(lam_per_s * (t_ref - reference).total_seconds())
            assert float(ds.DecayFactor) == pytest.approx(expected_factor, rel=1e-9)
        values = sitk.GetArrayFromImage(read).astype(np.float64)
        slopes = np.array([float(pydicom.dcmread(f, stop_before_pixels=True).RescaleSlope) for f in files])
        frame_values = sitk.GetArrayFromImage(frame).astype(np.float64) * expected_factor
        _assert_within(values, frame_values, slopes[:, None, None] / 2 * 1.001)
        # back to acquisition time with the library's convention function, time = frame reference time
        time_h = (series_start + timedelta(seconds=frt_s) - injection).total_seconds() / 3600.0
        start_h = (series_start - injection).total_seconds() / 3600.0
        back = to_acquisition_time(frame_values.astype(np.float32), decay_correction, "Ga-68", time_h=time_h,
                                   series_start_h=start_h)
        np.testing.assert_allclose(back, sitk.GetArrayFromImage(frame), rtol=2e-6)
        _assert_within(to_acquisition_time(values, decay_correction, "Ga-68", time_h=time_h, series_start_h=start_h),
                       sitk.GetArrayFromImage(frame), slopes[:, None, None] / 2 * 1.001 / expected_factor)


def test_pet_static_single_frame_is_static_image(tmp_path):
    frame = _pet_frames()[0]
    paths = write_pet_series([frame], tmp_path / "PT", patient=PATIENT, study=STUDY, radiopharmaceutical=GA,
                             timings=[PetFrameTiming(PET_START, 180.0)], decay_correction="ADMIN")
    _dciodvfy(paths[0])
    ds = pydicom.dcmread(paths[0])
    assert list(ds.SeriesType) == ["STATIC", "IMAGE"] and "NumberOfTimeSlices" not in ds
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(tmp_path / "PT")))
    _assert_same_geometry(reader.Execute(), frame)


def test_pet_rejects_bad_input(tmp_path):
    frames = _pet_frames()
    kw = dict(patient=PATIENT, study=STUDY, radiopharmaceutical=GA)
    with pytest.raises(InputError, match="timings: need one timing per frame, got 3 frames and 2 timings"):
        write_pet_series(frames, tmp_path, timings=PET_TIMINGS[:2], **kw)
    with pytest.raises(InputError, match="decay_correction: must be 'START', 'ADMIN' or 'NONE', got 'DECAY'"):
        write_pet_series(frames, tmp_path, timings=PET_TIMINGS, decay_correction="DECAY", **kw)
    overlap = (PET_TIMINGS[0], PetFrameTiming(PET_START + timedelta(seconds=30), 60.0), PET_TIMINGS[2])
    with pytest.raises(InputError, match=r"frame 1 starts at .* before frame 0 ends"):
        write_pet_series(frames, tmp_path, timings=overlap, **kw)
    shifted = [*frames[:2], _image(np.ones(SIZE[::-1]), spacing=(2.0, 2.0, 3.0), origin=(0.0, 0.0, 0.0))]
    with pytest.raises(ConsistencyError, match=r"frames: frame 2 is not on the grid of frame 0 \(size"):
        write_pet_series(shifted, tmp_path, timings=PET_TIMINGS, **kw)


# ------------------------------------------------------------------------------------------- RT Dose

def test_rt_dose_reads_back_in_gray_on_the_study_frame_of_reference(tmp_path):
    dose = _random(20, 0.0, 35.0)
    img = _image(dose, spacing=(4.8, 4.8, 4.8), oblique=True)
    path = write_rt_dose(img, tmp_path / "RD", patient=PATIENT, study=STUDY,
                         referenced_rt_plan_uid=new_uid("test/plan"))
    _dciodvfy(path)
    ds = pydicom.dcmread(path)
    assert ds.DoseUnits == "GY" and ds.FrameOfReferenceUID == STUDY.frame_of_reference_uid
    scaling = float(ds.DoseGridScaling)
    np.testing.assert_allclose(ds.pixel_array * scaling, dose, atol=scaling / 2 * 1.0001)
    np.testing.assert_allclose(np.asarray(ds.GridFrameOffsetVector, float), np.arange(SIZE[2]) * 4.8, atol=1e-9)
    read = sitk.ReadImage(str(path))
    _assert_same_geometry(read, img)
    # GDCM (SimpleITK 2.5) does not apply DoseGridScaling: it returns the stored integers.
    np.testing.assert_array_equal(sitk.GetArrayFromImage(read), ds.pixel_array)
    # 32 bit (not checkable by dciodvfy, which aborts on it): finer quantisation, same reading rule
    path32 = write_rt_dose(img, tmp_path / "RD32", patient=PATIENT, study=STUDY, bits_allocated=32)
    ds32 = pydicom.dcmread(path32)
    assert ds32.BitsAllocated == 32 and "ReferencedRTPlanSequence" not in ds32
    np.testing.assert_allclose(ds32.pixel_array * float(ds32.DoseGridScaling), dose, atol=dose.max() * 1e-9)
    with pytest.raises(InputError, match="bits_allocated: must be 16 or 32, got 8"):
        write_rt_dose(img, tmp_path / "RD8", patient=PATIENT, study=STUDY, bits_allocated=8)
    assert not (tmp_path / "RD8").exists()


# ------------------------------------------------------------------------------------ NM vendor layouts

def _true_nm_values(ds: pydicom.Dataset) -> np.ndarray:
    """What docs/dicom_layouts.md tells a reader to do: RWVM, else Rescale, else the stored counts."""
    stored = ds.pixel_array.astype(float)
    if "RealWorldValueMappingSequence" in ds:
        item = ds.RealWorldValueMappingSequence[0]
        return stored * float(item.RealWorldValueSlope) + float(item.RealWorldValueIntercept)
    if "RescaleSlope" in ds:
        return stored * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    return stored


@pytest.mark.parametrize("vendor", NM_VENDORS)
@pytest.mark.parametrize("units", ["CNTS", "BQML"])
def test_nm_vendor_layouts_are_valid_and_documented_reading_recovers_values(tmp_path, vendor, units):
    values = _random(30, 0.0, 2.0e5) if units == "BQML" else np.random.default_rng(31).poisson(
        900.0, SIZE[::-1]).astype(float) * 100.0  # integer counts above 65535: must be scaled
    _, path = _write_nm(tmp_path, values, vendor=vendor, units=units,
                          camera=Camera("", "Model X", "MEGP", ((187.2, 228.8), (101.7, 124.3)), "OSEM 4i8s SC AC"))
    _dciodvfy(path)
    ds = pydicom.dcmread(path)
    slope_max = values.max() / 65535.0
    np.testing.assert_allclose(_true_nm_values(ds), values, atol=slope_max / 2 * 1.001)
    layout_manufacturer = {"generic": "LuDosimetry", "siemens": "SIEMENS NM", "ge": "GE MEDICAL SYSTEMS",
                           "philips": "Philips Medical Systems"}[vendor]
    assert ds.Manufacturer == layout_manufacturer and ds.ManufacturerModelName == "Model X"
    assert len(ds.EnergyWindowInformationSequence) == 2
    # where the reconstruction name is
    if vendor in ("siemens", "ge"):
        assert ds.SeriesDescription == "OSEM 4i8s SC AC" and "ReconstructionMethod" not in ds
    else:
        assert ds.ReconstructionMethod == "OSEM 4i8s SC AC" and ds.SeriesDescription == "SPECT"
    # how scaled values are declared, and what GDCM (SimpleITK) makes of it
    read = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
    if vendor in ("generic", "siemens"):
        assert "RealWorldValueMappingSequence" in ds and "RescaleSlope" not in ds
        assert ds.RealWorldValueMappingSequence[0].MeasurementUnitsCodeSequence[0].CodeValue == (
            "Bq/ml" if units == "BQML" else "{counts}")
        np.testing.assert_array_equal(read, ds.pixel_array)  # GDCM ignores RWVM
    else:
        assert "RealWorldValueMappingSequence" not in ds and "RescaleSlope" in ds
        np.testing.assert_allclose(read, values, atol=slope_max / 2 * 1.001)  # GDCM applies Rescale in NM
    # dcm2niix treats the scaling attributes like GDCM does
    nii, _ = _dcm2niix(path.parent, tmp_path / "nii")
    converted = float(np.asarray(nii.dataobj, dtype=float).max())
    assert converted == pytest.approx(float(read.max()), rel=1e-6)
    # injection time: ge writes the time of day only
    rp = ds.RadiopharmaceuticalInformationSequence[0]
    assert rp.RadiopharmaceuticalStartTime == "234107.000000"
    assert ("RadiopharmaceuticalStartDateTime" in rp) == (vendor != "ge")


# ---------------------------------------------------------------------------------------------- dcm2niix

def _dcm2niix(folder: Path, out: Path):
    import nibabel as nib

    out.mkdir()
    run = subprocess.run(["dcm2niix", "-z", "n", "-b", "n", "-f", "%s", "-o", str(out), str(folder)],
                         capture_output=True, text=True, check=False)
    files = sorted(out.glob("*.nii"))
    assert run.returncode == 0 and len(files) == 1, run.stdout + run.stderr
    return nib.load(files[0]), run.stdout


def _nifti_index_to_lps(nii) -> np.ndarray:
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ nii.affine  # RAS -> LPS


def _nifti_on_grid(nii, img: sitk.Image, data: np.ndarray) -> np.ndarray:
    """NIfTI voxels put on the [k, j, i] grid of ``img`` using the NIfTI affine (same LPS points)."""
    m = np.linalg.inv(_index_to_lps(img)) @ _nifti_index_to_lps(nii)
    np.testing.assert_allclose(m[:3, 3], np.round(m[:3, 3]), atol=1e-3)
    out = _reorder(data, m)
    shift = np.round(m[:3, 3]).astype(int)
    assert np.all(shift == np.where(np.round(m[:3, :3]).sum(axis=1) < 0, np.asarray(img.GetSize()) - 1, 0)), \
        f"NIfTI grid is shifted from the written grid by {m[:3, 3]} voxels"
    return out.transpose(2, 1, 0)


@pytest.mark.parametrize("oblique", [False, True], ids=["axial", "oblique"])
def test_dcm2niix_agrees_with_written_ct_and_dynamic_pet(tmp_path, oblique):
    hu = np.rint(_random(40, -1000.0, 1500.0))
    ct = _image(hu, spacing=(0.9765625, 1.25, 2.5), oblique=oblique)
    write_ct_series(ct, tmp_path / "CT", patient=PATIENT, study=STUDY, series_datetime=STUDY.study_datetime)
    nii, _ = _dcm2niix(tmp_path / "CT", tmp_path / "nii_ct")
    assert nii.shape == SIZE
    np.testing.assert_allclose(nii.header.get_zooms(), ct.GetSpacing(), atol=1e-5)
    np.testing.assert_array_equal(_nifti_on_grid(nii, ct, np.asanyarray(nii.dataobj)), hu)

    frames = _pet_frames(oblique=oblique)
    write_pet_series(frames, tmp_path / "PT", patient=PATIENT, study=STUDY, radiopharmaceutical=GA,
                     timings=PET_TIMINGS, decay_correction="NONE")
    nii, _ = _dcm2niix(tmp_path / "PT", tmp_path / "nii_pt")
    assert nii.shape == (*SIZE, 3)
    np.testing.assert_allclose(nii.header.get_zooms()[:3], frames[0].GetSpacing(), atol=1e-5)
    data = np.asarray(nii.dataobj, dtype=np.float64)
    for n, frame in enumerate(frames):
        expected = sitk.GetArrayFromImage(frame)
        slope_max = np.abs(expected).max(axis=(1, 2))[:, None, None] / 32767.0
        _assert_within(_nifti_on_grid(nii, frame, data[..., n]), expected, slope_max / 2 * 1.001 + 1e-3)


@pytest.mark.parametrize("negative_spacing", [False, True], ids=["positive", "negative_spacing"])
def test_dcm2niix_nm_recon_tomo_difference_is_recorded(tmp_path, negative_spacing):
    """dcm2niix (v1.0.20220720) on reconstructed NM tomo.

    - Positive SpacingBetweenSlices: geometry and counts agree; dcm2niix only warns
      "Unable to determine slice direction: please check whether slices are flipped".
    - Negative SpacingBetweenSlices: dcm2niix keeps the frames in file order and the origin at the
      first frame (correct), but steps +|SpacingBetweenSlices| along the slice normal instead of
      −|SpacingBetweenSlices|: the volume is mirrored about its first frame (z of frame f is
      z0 + f·|Δ| instead of z0 − f·|Δ|), i.e. displaced by up to 2·(n−1)·|Δ| and upside down.
      GDCM/SimpleITK reads the same file correctly (test above).
    """
    counts = np.random.default_rng(50).poisson(30.0, SIZE[::-1]).astype(float)
    img, path = _write_nm(tmp_path, counts, negative_spacing=negative_spacing)
    nii, log = _dcm2niix(path.parent, tmp_path / "nii")
    assert "Unable to determine slice direction" in log
    assert nii.shape == SIZE
    np.testing.assert_allclose(nii.header.get_zooms(), img.GetSpacing(), atol=1e-5)
    data = np.asanyarray(nii.dataobj).astype(float)
    if not negative_spacing:
        np.testing.assert_array_equal(_nifti_on_grid(nii, img, data), counts)
        return
    # the exact difference: dcm2niix's slice axis is the written one reversed, origin at the top slice
    a = _nifti_index_to_lps(nii)
    top = np.asarray(img.TransformIndexToPhysicalPoint((0, 0, SIZE[2] - 1)))
    a_true_first_voxel = a[:3, :3] @ np.array([0, SIZE[1] - 1, 0]) + a[:3, 3]  # dcm2niix flips rows (j)
    np.testing.assert_allclose(a_true_first_voxel, top, atol=1e-3)
    k_dir = np.asarray(img.GetDirection()).reshape(3, 3)[:, 2] * img.GetSpacing()[2]
    np.testing.assert_allclose(a[:3, 2], k_dir, atol=1e-4)  # +Δ: should be −Δ for file-order frames
    # the voxel data are the frames in file order (written slices reversed), rows flipped
    np.testing.assert_array_equal(data.transpose(2, 1, 0), counts[::-1, ::-1, :])
