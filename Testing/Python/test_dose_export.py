"""Dose export (LuDosimetryLib.dose.export): NIfTI round trip, doses.csv, DVH, report section."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from LuDosimetryLib.dose.export import write_dose_nifti, write_dose_results
from LuDosimetryLib.dose.regional import region_dose_statistics
from LuDosimetryLib.errors import InputError
from LuDosimetryLib.labels import LabelTable, Region
from LuDosimetryLib.report import Report
from LuDosimetryLib.results import DOSES_COLUMNS, read_csv

TABLE = LabelTable((Region(1, "kidney_left", "left"), Region(2, "lesion_1", kind="lesion")))


def dose_image():
    rng = np.random.default_rng(11)
    arr = rng.uniform(0, 30, (5, 6, 7)).astype(np.float32)
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((4.8, 4.8, 3.9))
    img.SetOrigin((-120.5, 33.0, -700.25))
    img.SetDirection((0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0))  # rotated in-plane
    lab = np.zeros(arr.shape, np.uint8)
    lab[:2] = 1
    lab[3:, :2, :2] = 2
    limg = sitk.GetImageFromArray(lab)
    limg.CopyInformation(img)
    return img, arr, limg


def test_nifti_round_trip_keeps_values_and_geometry(tmp_path):
    img, arr, _ = dose_image()
    p = write_dose_nifti(img, tmp_path / "dose_Gy.nii.gz")
    back = sitk.ReadImage(str(p))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), arr)
    assert back.GetPixelID() == sitk.sitkFloat32
    np.testing.assert_allclose(back.GetSpacing(), img.GetSpacing(), rtol=1e-6)
    np.testing.assert_allclose(back.GetOrigin(), img.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(back.GetDirection(), img.GetDirection(), atol=1e-6)
    # independent reader: nibabel's affine is RAS; voxel (i, j, k) = (1, 2, 3) maps to the ITK point with x, y negated
    nimg = nib.load(str(p))
    ras = nimg.affine @ np.array([1, 2, 3, 1.0])
    lps = img.TransformIndexToPhysicalPoint((1, 2, 3))
    np.testing.assert_allclose(ras[:3], [-lps[0], -lps[1], lps[2]], atol=1e-3)
    assert np.asarray(nimg.dataobj)[1, 2, 3] == arr[3, 2, 1]
    assert sorted(f.name for f in tmp_path.iterdir()) == ["dose_Gy.nii.gz"]  # no temporary left


def test_results_folder_files_and_report_section(tmp_path):
    img, arr, limg = dose_image()
    stats = region_dose_statistics(img, limg, TABLE, method="kernel")
    report = Report("patient 001")
    extra = [{"region": "red_marrow", "kind": "organ", "dose_method": "red_marrow_blood", "dose_Gy": 0.4}]
    corrected = float(arr[3:, :2, :2].mean()) * 1.25  # lesion_1: a partial-volume-corrected reported dose
    files = write_dose_results(tmp_path, dose_Gy=img, stats=stats, report=report, cycle=1,
                               injected_activity_Bq=7.4e9, extra_rows=extra, notes=["Kernel convolution."],
                               reported={"lesion_1": (corrected, "kernel+gtm-pvc")}, rel_uncertainty={"lesion_1": 0.1},
                               ci95_Gy={"lesion_1": (0.8 * corrected, None)})
    assert set(files) == {"dose_Gy.nii.gz", "doses.csv", "dvh.png", "dvh.csv"}
    rows = read_csv(tmp_path / "doses.csv")
    assert tuple(rows[0])[:len(DOSES_COLUMNS)] == DOSES_COLUMNS
    assert [r["region"] for r in rows] == ["kidney_left", "lesion_1", "red_marrow"]
    assert float(rows[0]["dose_Gy"]) == pytest.approx(float(arr[:2].mean()), rel=1e-6)
    assert rows[0]["map_mean_dose_Gy"] == rows[0]["dose_Gy"] and rows[0]["dose_method"] == "kernel"
    assert float(rows[0]["dose_per_activity_Gy_per_GBq"]) == pytest.approx(float(arr[:2].mean()) / 7.4, rel=1e-6)
    # the reported dose drives the per-GBq value; the map mean keeps its own column
    les = rows[1]
    assert les["dose_method"] == "kernel+gtm-pvc" and float(les["dose_Gy"]) == pytest.approx(corrected, rel=1e-12)
    assert float(les["map_mean_dose_Gy"]) == pytest.approx(float(arr[3:, :2, :2].mean()), rel=1e-6)
    assert float(les["dose_per_activity_Gy_per_GBq"]) == pytest.approx(corrected / 7.4, rel=1e-12)
    assert les["dose_rel_uncertainty"] == "0.1" and les["dose_ci95_high_Gy"] == "" and les["flags"] == "ci_unbounded"
    assert rows[2]["dose_method"] == "red_marrow_blood"
    dvh = read_csv(tmp_path / "dvh.csv")
    assert {r["region"] for r in dvh} == {"kidney_left", "lesion_1"}
    page = report.render()
    assert '<section id="dose">' in page and 'src="dvh.png"' in page and "red_marrow" in page


def test_bad_dose_maps_are_refused(tmp_path):
    _img, arr, _ = dose_image()
    with pytest.raises(InputError, match="bare array has no position"):
        write_dose_nifti(arr, tmp_path / "d.nii.gz")
    bad = sitk.GetImageFromArray(np.where(arr > 29, -2.0, arr).astype(np.float32))
    with pytest.raises(InputError, match="negative dose"):
        write_dose_nifti(bad, tmp_path / "d.nii.gz")
    nan = sitk.GetImageFromArray(np.where(arr > 29, np.nan, arr).astype(np.float32))
    with pytest.raises(InputError, match="NaN"):
        write_dose_nifti(nan, tmp_path / "d.nii.gz")
    assert not any(tmp_path.iterdir())
