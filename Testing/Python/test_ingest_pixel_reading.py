"""Pixels read from the offsets the header scan records (issue 20): the same values as pydicom's
decoding, the same CT as GDCM's rescaling, the same PET frames as the pydicom route, and every
damaged file still named."""

from __future__ import annotations

import dataclasses
import shutil
from datetime import datetime, timedelta

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from ingest_builders import ct_series, pt_series, write_series
from pydicom.uid import RLELossless

from LuDosimetryLib.errors import DicomError
from LuDosimetryLib.ingest import inspect_patient, load_patient
from LuDosimetryLib.ingest.dicomtags import read_header
from LuDosimetryLib.ingest.discovery import scan_folder
from LuDosimetryLib.ingest.plausibility import HU_RANGES, _off_tissue_counts
from LuDosimetryLib.ingest.prefetch import Prefetch
from LuDosimetryLib.ingest.series import load_ct, load_pet_frames, native_layout, read_pixels
from LuDosimetryLib.model import Administration

INJ = datetime(2026, 2, 1, 10, 0, 0)
WHEN = datetime(2026, 3, 3, 10, 0)


def _pydicom_route(series):
    """The same series with full data sets and no offsets: every pixel decoded by pydicom's pixel_array."""
    return dataclasses.replace(series, headers=tuple(read_header(f, pixels=True) for f in series.files),
                               pixel_offsets=(None,) * len(series.files))


def test_the_small_phantom_files_read_as_pydicom_decodes_them(small_dicom_patient):
    series = scan_folder(small_dicom_patient / "dicom")
    kinds = set()
    for s in series:
        step = max(1, len(s.files) // 25)  # every series, about 25 files of each
        for f, header, offset in list(zip(s.files, s.headers, s.pixel_offsets))[::step]:
            assert "PixelData" not in header  # the scan keeps headers only
            assert offset is not None and native_layout(header) is not None, f
            fast = read_pixels(header, source=str(f), offset=offset)
            ref = pydicom.dcmread(f).pixel_array
            assert fast.dtype == ref.dtype and fast.shape == ref.shape, f
            np.testing.assert_array_equal(fast, ref)
            kinds.add(s.modality)
    assert {"CT", "NM", "PT"} <= kinds


def test_phantom_ct_is_stored_times_slope_plus_intercept_in_double_then_float32(small_dicom_patient):
    (ct,) = [s for s in scan_folder(small_dicom_patient / "dicom") if s.kind == "CT"][:1]
    img = load_ct(ct)
    assert img.GetPixelID() == sitk.sitkFloat32
    by_z = sorted((float(pydicom.dcmread(f, stop_before_pixels=True).ImagePositionPatient[2]), f)
                   for f in ct.files)
    expected = np.stack([(lambda d: (d.pixel_array.astype(np.float64) * float(d.RescaleSlope)
                                     + float(d.RescaleIntercept)).astype(np.float32))(pydicom.dcmread(f))
                         for _, f in by_z])
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(img), expected)


def test_phantom_pet_frames_are_bit_identical_to_the_pydicom_route(small_dicom_patient):
    pets = [s for s in scan_folder(small_dicom_patient / "dicom") if s.kind == "PET"]
    assert any(s.dynamic for s in pets)
    for s in pets:
        adm = Administration("Ga-68", "PSMA-11", s.acquisition_start - timedelta(minutes=1), 150e6)
        fast = load_pet_frames(s, adm, user={})
        slow = load_pet_frames(_pydicom_route(s), adm, user={})
        assert len(fast) == len(slow) >= 1
        for a, b in zip(fast, slow):
            assert (a.time_h, a.duration_s) == (b.time_h, b.duration_s)
            np.testing.assert_array_equal(sitk.GetArrayViewFromImage(a.image), sitk.GetArrayViewFromImage(b.image))


def _pet(tmp_path, **kw):
    vols = [np.linspace(100.0, 5000.0, 3 * 4 * 5).reshape(3, 4, 5) * (f + 1) for f in range(2)]
    starts = [INJ + timedelta(minutes=1), INJ + timedelta(minutes=11)]
    return write_series(pt_series(vols, starts=starts, durations_s=[600.0, 600.0], injection=INJ, **kw),
                        tmp_path / "PT")


def test_truncated_pet_slice_is_named(tmp_path):
    paths = _pet(tmp_path)
    data = paths[4].read_bytes()
    paths[4].write_bytes(data[: len(data) - 7])
    (s,) = scan_folder(tmp_path)
    with pytest.raises(DicomError, match=r"IM_0004\.dcm: PixelData \(7FE0,0010\) holds \d+ bytes.*truncated"):
        load_pet_frames(s, Administration("Ga-68", "PSMA-11", INJ, 150e6), user={})


def test_pet_slice_cut_before_its_pixels_is_named(tmp_path):
    paths = _pet(tmp_path)
    data = paths[2].read_bytes()
    paths[2].write_bytes(data[: len(data) - 60])  # 3×4×5 int16 slice: 40 bytes of pixels, cut into the header
    with pytest.raises(DicomError, match=r"IM_0002\.dcm: PixelData \(7FE0,0010\)"):
        (s,) = scan_folder(tmp_path)
        load_pet_frames(s, Administration("Ga-68", "PSMA-11", INJ, 150e6), user={})


def test_compressed_pet_and_ct_are_decoded_as_before(tmp_path):
    """RLE Lossless is not native: PET through pydicom's decoder, CT through GDCM, the same values."""
    plain = _pet(tmp_path / "plain")
    for p in plain:
        ds = pydicom.dcmread(p)
        ds.compress(RLELossless)
        (tmp_path / "rle" / "PT").mkdir(parents=True, exist_ok=True)
        ds.save_as(tmp_path / "rle" / "PT" / p.name, enforce_file_format=True)
    adm = Administration("Ga-68", "PSMA-11", INJ, 150e6)
    (a,), (b,) = scan_folder(tmp_path / "plain"), scan_folder(tmp_path / "rle")
    assert native_layout(b.headers[0]) is None
    for fa, fb in zip(load_pet_frames(a, adm, user={}), load_pet_frames(b, adm, user={})):
        np.testing.assert_array_equal(sitk.GetArrayViewFromImage(fa.image), sitk.GetArrayViewFromImage(fb.image))
    hu = np.round(np.random.default_rng(3).uniform(-1000, 1500, (6, 8, 10)))
    for d in ct_series(hu, when=WHEN):
        d.compress(RLELossless)
        (tmp_path / "ct").mkdir(exist_ok=True)
        d.save_as(tmp_path / "ct" / f"{d.SOPInstanceUID}.dcm", enforce_file_format=True)
    (ct,) = scan_folder(tmp_path / "ct")
    np.testing.assert_array_equal(sitk.GetArrayFromImage(load_ct(ct)), hu.astype(np.float32))


def test_12_bit_signed_ct_is_sign_extended_as_pydicom_does(tmp_path):
    """Bits Stored < Bits Allocated is not read raw: −5 HU stored as 12-bit two's complement with the
    high bits zero (0x0FFB, as some scanners write) must come back as −5, not 4091."""
    hu = np.round(np.random.default_rng(5).uniform(-1000, 1000, (5, 6, 7)))
    datasets = ct_series(hu, when=WHEN)
    for d in datasets:
        values = np.frombuffer(d.PixelData, np.int16).astype(np.int32) + int(float(d.RescaleIntercept))
        d.RescaleIntercept = "0"
        d.BitsStored, d.HighBit = 12, 11
        d.PixelData = (values & 0x0FFF).astype(np.uint16).tobytes()
    paths = write_series(datasets, tmp_path / "CT")
    (s,) = scan_folder(tmp_path)
    assert native_layout(s.headers[0]) is None
    for p, h, o in zip(paths, s.headers, s.pixel_offsets):
        np.testing.assert_array_equal(read_pixels(h, source=str(p), offset=o), pydicom.dcmread(p).pixel_array)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(load_ct(s)), hu.astype(np.float32))


def test_prefetch_returns_results_and_raises_errors_where_taken():
    calls = []

    def load(x):
        calls.append(x)
        if x < 0:
            raise DicomError("bad slice", source=f"f{x}.dcm")
        return x * 2

    with Prefetch(load, enabled=True) as ahead:
        ahead.submit("a", 1)
        ahead.submit("b", -1)
        ahead.submit("a", 99)  # once per key
        assert ahead.take("a", 1) == 2
        with pytest.raises(DicomError, match=r"f-1\.dcm: bad slice"):
            ahead.take("b", -1)
        assert ahead.take("c", 3) == 6  # not submitted: computed in the caller
        ahead.submit("d", 4)
        assert ahead.take("d", 5) == 10  # asked with other arguments: computed again with them
    assert {-1, 1, 3, 5} <= set(calls) <= {-1, 1, 3, 4, 5}  # 4 only if it started before it was dropped
    with Prefetch(load, enabled=False) as inline:
        inline.submit("x", 5)
        assert inline.take("x", 5) == 10


def test_label_tissue_counts_equal_one_mask_per_label():
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 9, (23, 17, 11)).astype(np.uint16)
    hu = rng.uniform(-1100, 1600, labels.shape).astype(np.float32)
    ranges = {1: HU_RANGES["soft"], 3: HU_RANGES["bone"], 8: HU_RANGES["lung"]}
    size, off = _off_tissue_counts(labels, hu, ranges, slab_voxels=400)  # several slabs
    for lab, (lo, hi) in ranges.items():
        v = hu[labels == lab]
        assert size[lab] == v.size
        assert off[lab] == np.count_nonzero((v < lo) | (v > hi))
    assert size[2] == 0 and off[2] == 0  # not checked
    size_i, off_i = _off_tissue_counts(labels.astype(np.int32), hu, ranges)
    np.testing.assert_array_equal(size_i, size)
    np.testing.assert_array_equal(off_i, off)


def test_damaged_pixels_of_prefetched_ct_and_pet_are_named_in_the_order_they_were(small_dicom_patient, tmp_path):
    """The CTs and PET series load in background threads: their errors still come where the series is
    used, the timepoint's CT before the PET, each naming its file."""
    p = tmp_path / "P"
    shutil.copytree(small_dicom_patient, p)
    pt = sorted((p / "dicom" / "pet" / "PT_dynamic").glob("*.dcm"))[7]
    pt.write_bytes(pt.read_bytes()[:-11])
    with pytest.raises(DicomError, match=rf"{pt.name}: PixelData \(7FE0,0010\) holds \d+ bytes.*truncated"):
        load_patient(p)
    ct = sorted((p / "dicom" / "cycle1" / "tp1" / "CT").glob("*.dcm"))[3]
    ct.write_bytes(ct.read_bytes()[:-11])
    with pytest.raises(DicomError, match=rf"{ct.name}: PixelData \(7FE0,0010\) holds \d+ bytes.*truncated"):
        load_patient(p)
    messages = [x.message for x in inspect_patient(p, diagnose=True).blocking]
    at = [next(i for i, m in enumerate(messages) if f.name in m and "truncated" in m) for f in (ct, pt)]
    assert at[0] < at[1]
