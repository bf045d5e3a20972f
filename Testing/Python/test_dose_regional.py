"""Regional dose statistics (LuDosimetryLib.dose.regional): analytic dose maps, hand numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import SimpleITK as sitk

from LuDosimetryLib.dose.regional import (
    cumulative_dvh,
    dose_at_volume_percent,
    dose_rows,
    dvh_chart_columns,
    dvh_rows,
    plot_dvh_png,
    region_dose_statistics,
)
from LuDosimetryLib.errors import ConsistencyError, InputError
from LuDosimetryLib.labels import LabelTable, Region
from LuDosimetryLib.results import DOSES_COLUMNS

TABLE = LabelTable((Region(1, "ramp", kind="organ"), Region(2, "kidney_cortex_left", "left", "organ", "kidney_left"),
                    Region(3, "renal_pelvis_left", "left", "organ", "kidney_left")))


def ramp_map():
    """Doses 0, 1, ..., 99 Gy in region 1 (a 10 x 10 slab); region 2: 5 Gy (8 voxels); region 3: 9 Gy (2)."""
    dose = np.zeros((3, 10, 10), np.float32)
    lab = np.zeros((3, 10, 10), np.int16)
    dose[0] = np.arange(100, dtype=np.float32).reshape(10, 10)
    lab[0] = 1
    lab[1, 0, :8] = 2
    dose[1, 0, :8] = 5.0
    lab[1, 1, :2] = 3
    dose[1, 1, :2] = 9.0
    return dose, lab


def test_dx_of_linear_ramp_matches_hand_values():
    d = np.arange(100.0)
    # hottest 2 % = {99, 98} -> 98; hottest 50 % = {99..50} -> 50; hottest 98 % = {99..2} -> 2
    assert dose_at_volume_percent(d, 2) == 98.0
    assert dose_at_volume_percent(d, 50) == 50.0
    assert dose_at_volume_percent(d, 98) == 2.0
    assert dose_at_volume_percent(d, 100) == 0.0
    # 1 % of 100 voxels is exactly one voxel; 1.5 % needs two
    assert dose_at_volume_percent(d, 1) == 99.0
    assert dose_at_volume_percent(d, 1.5) == 98.0


def test_dx_of_fine_ramp_approaches_continuous_percentile():
    n = 100_000
    d = (np.arange(n) + 0.5) / n * 40.0  # uniform on (0, 40) Gy
    for x in (2, 50, 98):
        assert dose_at_volume_percent(d, x) == pytest.approx(40.0 * (1 - x / 100), abs=40.0 / n * 1.01)


def test_region_statistics_of_ramp_by_hand():
    dose, lab = ramp_map()
    stats = {s.region: s for s in region_dose_statistics(dose, lab, TABLE, voxel_volume_mL=0.1, method="test")}
    r = stats["ramp"]
    assert r.n_voxels == 100
    assert r.volume_mL == pytest.approx(10.0)
    assert r.mass_g is None and r.mean_dose_mass_weighted_Gy is None
    assert r.mean_dose_Gy == pytest.approx(49.5)
    assert r.median_dose_Gy == pytest.approx(49.5)
    assert (r.min_dose_Gy, r.max_dose_Gy) == (0.0, 99.0)
    assert (r.d2_Gy, r.d50_Gy, r.d98_Gy) == (98.0, 50.0, 2.0)
    assert r.method == "test"
    # composite group pools its leaves: 8 voxels at 5 Gy and 2 at 9 Gy
    g = stats["kidney_left"]
    assert g.leaves == ("kidney_cortex_left", "renal_pelvis_left")
    assert g.n_voxels == 10 and g.volume_mL == pytest.approx(1.0)
    assert g.mean_dose_Gy == pytest.approx((8 * 5 + 2 * 9) / 10)
    assert g.d2_Gy == 9.0 and g.d98_Gy == 5.0 and g.d50_Gy == 5.0  # hottest 20 % are the two 9 Gy voxels
    assert g.kind == "organ"


def test_dvh_is_monotone_and_equals_analytic_fraction():
    dose, lab = ramp_map()
    levels = np.array([0.0, 0.5, 10.0, 49.5, 50.0, 98.0, 99.0, 99.5, 150.0])
    r = region_dose_statistics(dose, lab, TABLE, voxel_volume_mL=0.1, dvh_levels_Gy=levels, regions=["ramp"])[0]
    # doses 0..99: fraction >= d is (100 - ceil(d)) / 100, clipped to [0, 1]
    expected = np.clip((100 - np.ceil(levels)) / 100.0, 0, 1)
    np.testing.assert_allclose(r.dvh_volume_fraction, expected)
    assert np.all(np.diff(r.dvh_volume_fraction) <= 0)
    # default levels: shared across regions, from 0 to the highest maximum, monotone
    stats = region_dose_statistics(dose, lab, TABLE, voxel_volume_mL=0.1)
    cols = dvh_chart_columns(stats)
    assert cols["dose_Gy"][0] == 0.0 and cols["dose_Gy"][-1] == pytest.approx(99.0)
    for s in stats:
        assert s.dvh_volume_fraction[0] == 1.0
        assert np.all(np.diff(s.dvh_volume_fraction) <= 0)
    assert set(cols) == {"dose_Gy"} | {f"{s.region}_volume_percent" for s in stats}
    assert len(dvh_rows(stats)) == len(stats) * len(cols["dose_Gy"])
    np.testing.assert_allclose(cumulative_dvh(np.array([1.0, 2.0, 3.0, 4.0]), [0, 2, 2.5, 4, 5]),
                               [1, 0.75, 0.5, 0.25, 0])


def test_mass_weighted_mean_of_two_density_region_by_hand():
    # 3 voxels at 1.0 g/mL receiving 2 Gy and 1 voxel at 2.0 g/mL receiving 8 Gy, 0.5 mL voxels
    dose = np.array([[[2.0, 2.0, 2.0, 8.0]]])
    rho = np.array([[[1.0, 1.0, 1.0, 2.0]]])
    lab = np.ones_like(dose, dtype=np.int32)
    table = LabelTable((Region(1, "lesion_1", kind="lesion"),))
    (vol,) = region_dose_statistics(dose, lab, table, voxel_volume_mL=0.5, density_g_per_mL=rho, mass_weighted=False)
    (mw,) = region_dose_statistics(dose, lab, table, voxel_volume_mL=0.5, density_g_per_mL=rho)  # default: mass
    assert vol.mean_dose_Gy == pytest.approx((2 + 2 + 2 + 8) / 4)  # 3.5 Gy
    assert vol.mass_g == pytest.approx(0.5 * (1 + 1 + 1 + 2))  # 2.5 g
    # energy / mass: (3 * 2 Gy * 0.5 g + 8 Gy * 1.0 g) / 2.5 g = 11 / 2.5 = 4.4 Gy
    assert mw.mean_dose_Gy == pytest.approx(4.4)
    assert vol.mean_dose_mass_weighted_Gy == pytest.approx(4.4)
    assert mw.mean_dose_volume_weighted_Gy == pytest.approx(3.5)
    assert mw.mean_weighting == "mass"


def test_sitk_images_give_volume_from_spacing():
    dose, lab = ramp_map()
    img = sitk.GetImageFromArray(dose)
    img.SetSpacing((2.0, 2.0, 2.5))  # 10 mm3 = 0.01 mL per voxel
    limg = sitk.GetImageFromArray(lab)
    limg.CopyInformation(img)
    r = region_dose_statistics(img, limg, TABLE, regions=["ramp"])[0]
    assert r.volume_mL == pytest.approx(100 * 0.01)
    with pytest.raises(ConsistencyError, match="voxel_volume_mL"):
        region_dose_statistics(img, limg, TABLE, voxel_volume_mL=0.02)


def test_dose_rows_have_doses_columns_and_dose_per_activity():
    dose, lab = ramp_map()
    stats = region_dose_statistics(dose, lab, TABLE, voxel_volume_mL=0.1, method="kernel")
    rows = dose_rows(stats, cycle=1, injected_activity_Bq=7.4e9, bed_Gy={"ramp": 60.0})
    assert all(tuple(r) == DOSES_COLUMNS for r in rows)
    ramp = rows[0]
    assert ramp["region"] == "ramp" and ramp["cycle"] == 1 and ramp["dose_method"] == "kernel"
    assert ramp["dose_Gy"] == ramp["map_mean_dose_Gy"] == pytest.approx(49.5)
    assert ramp["dose_per_activity_Gy_per_GBq"] == pytest.approx(49.5 / 7.4)
    assert ramp["bed_Gy"] == 60.0 and rows[1]["bed_Gy"] is None


def test_dvh_png_is_written(tmp_path):
    dose, lab = ramp_map()
    stats = region_dose_statistics(dose, lab, TABLE, voxel_volume_mL=0.1)
    p = plot_dvh_png(stats, tmp_path / "dvh.png")
    assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [f.name for f in tmp_path.iterdir()] == ["dvh.png"]


# --- bad input --------------------------------------------------------------------------------
def test_negative_dose_is_refused_naming_region():
    dose, lab = ramp_map()
    dose[1, 0, 3] = -1.0
    with pytest.raises(InputError, match=r"kidney_cortex_left.*negative dose"):
        region_dose_statistics(dose, lab, TABLE, voxel_volume_mL=0.1)


def test_fft_roundoff_negatives_are_set_to_zero():
    dose, lab = ramp_map()
    dose[0, 0, 0] = -1e-6  # |x| < 1e-5 * max(99 Gy)
    r = region_dose_statistics(dose, lab, TABLE, voxel_volume_mL=0.1, regions=["ramp"])[0]
    assert r.min_dose_Gy == 0.0


def test_nan_dose_is_refused():
    dose, lab = ramp_map()
    dose[0, 4, 4] = np.nan
    with pytest.raises(InputError, match=r"\[.ramp.\] are NaN"):
        region_dose_statistics(dose, lab, TABLE, voxel_volume_mL=0.1)


def test_empty_region_is_refused_or_skipped():
    dose, lab = ramp_map()
    lab[lab == 3] = 0
    with pytest.raises(InputError, match=r"'renal_pelvis_left' \(label\(s\) 3\) has no voxels"):
        region_dose_statistics(dose, lab, TABLE, voxel_volume_mL=0.1)
    names = [s.region for s in region_dose_statistics(dose, lab, TABLE, voxel_volume_mL=0.1, on_empty="skip")]
    assert names == ["ramp", "kidney_cortex_left", "kidney_left"]


def test_labels_or_density_on_another_grid_are_refused():
    dose, lab = ramp_map()
    with pytest.raises(ConsistencyError, match=r"labels: is on another grid: array of shape \(3, 10, 9\)"):
        region_dose_statistics(dose, lab[:, :, :9], TABLE, voxel_volume_mL=0.1)
    img = sitk.GetImageFromArray(dose)
    rho = sitk.GetImageFromArray(np.ones_like(dose))
    rho.SetOrigin((0.0, 0.0, 4.0))
    limg = sitk.GetImageFromArray(lab)
    with pytest.raises(ConsistencyError, match=r"density_g_per_mL: is on another grid.*origin \(0, 0, 4\)"):
        region_dose_statistics(img, limg, TABLE, density_g_per_mL=rho)


def test_mass_weighted_without_density_is_refused():
    dose, lab = ramp_map()
    with pytest.raises(InputError, match="needs density_g_per_mL"):
        region_dose_statistics(dose, lab, TABLE, voxel_volume_mL=0.1, mass_weighted=True)
    with pytest.raises(InputError, match="voxel_volume_mL is required"):
        region_dose_statistics(dose, lab, TABLE)
    assert math.isfinite(dose_at_volume_percent([1.0], 50))


def test_crop_to_labels_keeps_every_labelled_voxel_at_its_position():
    from LuDosimetryLib.dose.grid import crop_to_labels

    lab = np.zeros((9, 11, 13), np.uint16)
    lab[2:5, 3, 4:10] = 1
    lab[6, 8, 2] = 3
    labels = sitk.GetImageFromArray(lab)
    labels.SetSpacing((2.0, 3.0, 4.0))
    labels.SetOrigin((-5.0, 7.0, 1.5))
    values = sitk.GetImageFromArray(np.arange(lab.size, dtype=np.float32).reshape(lab.shape))
    values.CopyInformation(labels)
    crop_lab, crop_val = crop_to_labels(labels, values)
    assert crop_lab.GetSize() == (8, 6, 5)  # i 2..9, j 3..8, k 2..6
    assert crop_lab.GetOrigin() == labels.TransformIndexToPhysicalPoint((2, 3, 2))
    assert crop_val.GetOrigin() == crop_lab.GetOrigin() and crop_val.GetSpacing() == labels.GetSpacing()
    kept = sitk.GetArrayFromImage(crop_lab)
    assert np.array_equal(np.sort(kept[kept > 0]), np.sort(lab[lab > 0]))
    for idx in [(4, 3, 2), (9, 3, 4), (2, 8, 6)]:  # (i, j, k) of labelled voxels
        point = labels.TransformIndexToPhysicalPoint(idx)
        assert crop_val[crop_lab.TransformPhysicalPointToIndex(point)] == values[idx]
    empty = sitk.Image(labels.GetSize(), sitk.sitkUInt16)
    assert crop_to_labels(empty)[0].GetSize() == empty.GetSize()
    with pytest.raises(ConsistencyError, match="same grid"):
        crop_to_labels(labels, sitk.Image((3, 3, 3), sitk.sitkFloat32))
