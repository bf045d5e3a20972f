"""CT series pixels through SimpleITK/GDCM (issue 20): the same HU as pydicom, errors still named."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from ingest_builders import ct_series, write_series

from LuDosimetryLib.errors import DicomError
from LuDosimetryLib.ingest.discovery import scan_folder
from LuDosimetryLib.ingest.series import load_ct

WHEN = datetime(2026, 3, 3, 10, 0)


def _hu(shape=(12, 20, 16), seed=0):
    rng = np.random.default_rng(seed)
    return np.round(rng.uniform(-1000, 1500, shape)).astype(np.float64)


def _load(folder):
    (series,) = [s for s in scan_folder(folder) if s.modality == "CT"]
    return load_ct(series)


def test_gdcm_ct_equals_the_written_hu_in_slice_order(tmp_path):
    hu = _hu()
    ds = ct_series(hu, spacing=(0.977, 0.8, 2.0), origin=(-10.0, 5.0, 100.0), when=WHEN)
    # files named in reverse slice order: the order must come from the positions, not the names
    write_series(ds[::-1], tmp_path / "CT")
    img = _load(tmp_path)
    assert img.GetPixelID() == sitk.sitkFloat32
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(img), hu.astype(np.float32))
    assert img.GetSpacing() == pytest.approx((0.977, 0.8, 2.0))
    assert img.GetOrigin() == pytest.approx((-10.0, 5.0, 100.0))


def test_per_slice_rescale_is_applied_slice_by_slice(tmp_path):
    hu = _hu(seed=1)
    ds = ct_series(hu, when=WHEN)
    # slice 0 stored with slope 1, the others with slope 0.5 (stored values doubled): GDCM must not
    # take the first slice's pixel type and rescale for all
    for k, d in enumerate(ds[1:], start=1):
        stored = np.round((hu[k] + 1024) * 2).astype(np.int32)
        d.RescaleSlope = "0.5"
        d.BitsAllocated, d.BitsStored, d.HighBit, d.PixelRepresentation = 32, 32, 31, 1
        d.PixelData = stored.astype(np.int32).tobytes()
    write_series(ds, tmp_path / "CT")
    img = _load(tmp_path)
    np.testing.assert_allclose(sitk.GetArrayViewFromImage(img), hu, atol=1e-3)


def test_truncated_ct_slice_is_named(tmp_path):
    paths = write_series(ct_series(_hu(seed=2), when=WHEN), tmp_path / "CT")
    data = paths[5].read_bytes()
    paths[5].write_bytes(data[: len(data) - 300])
    with pytest.raises(DicomError, match=r"IM_0005\.dcm: PixelData \(7FE0,0010\) holds \d+ bytes.*truncated"):
        _load(tmp_path)
    assert pydicom.dcmread(paths[0]).Modality == "CT"  # the other files are untouched


def test_a_ct_slice_without_rescale_intercept_among_slices_with_it_is_refused(tmp_path):
    """Read with intercept 0, such a slice would be ~1024 HU off (density, dose scaling) without a word."""
    from LuDosimetryLib.errors import ConsistencyError

    ds = ct_series(_hu(seed=3), when=WHEN)
    del ds[4].RescaleIntercept
    write_series(ds, tmp_path / "CT")
    with pytest.raises(ConsistencyError, match=r"RescaleIntercept \(0028,1052\) is missing in 1 of 12 slices"):
        _load(tmp_path)
