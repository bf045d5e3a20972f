"""Predicted voxel TIA map (consistent with the region prediction) and the dose-map comparison on one grid."""

import numpy as np
import pytest
import SimpleITK as sitk

from LuDosimetryLib.errors import InputError
from LuDosimetryLib.prediction.comparison import GammaCriteria
from LuDosimetryLib.prediction.voxel import compare_dose_maps, predicted_dose_map, write_comparison


def _gauss_image(spacing, size, origin, centre=(0.0, 0.0, 0.0), sigma=15.0, peak=20.0):
    img = sitk.Image([int(s) for s in size], sitk.sitkFloat32)
    img.SetSpacing(spacing)
    img.SetOrigin(origin)
    idx = np.stack(np.meshgrid(*(np.arange(n) for n in size[::-1]), indexing="ij"), axis=-1)[..., ::-1]
    xyz = np.asarray(origin) + idx * np.asarray(spacing)
    r2 = ((xyz - np.asarray(centre)) ** 2).sum(axis=-1)
    arr = (peak * np.exp(-r2 / (2 * sigma**2))).astype(np.float32)
    out = sitk.GetImageFromArray(arr)
    out.CopyInformation(img)
    return out


def test_same_dose_on_two_grids_agrees_after_resampling_and_files_are_written(tmp_path):
    measured = _gauss_image((4.0, 4.0, 4.0), (30, 30, 30), (-58.0, -58.0, -58.0))
    predicted = _gauss_image((2.0, 2.0, 2.0), (64, 64, 64), (-63.0, -63.0, -63.0))
    labels = sitk.Cast(measured > 10.0, sitk.sitkUInt8)
    res = compare_dose_maps(predicted, measured, labels, {1: "hot"})
    assert all(g.pass_rate == 1.0 for g in res.gamma)
    # linear interpolation of a smooth Gaussian: |difference| ≪ the 10 % criterion
    assert np.max(np.abs(res.difference_Gy)) < 0.02 * 20.0
    assert {r["region"] for r in res.pass_rate_rows} == {"hot"}
    files = write_comparison(res, tmp_path, measured)
    for name in ("dose_difference_Gy.nii.gz", "gamma_1.nii.gz", "gamma_2.nii.gz", "gamma_pass_rates.csv",
                 "dvh_overlay.png"):
        assert (tmp_path / name).is_file() and name in files


def test_scaled_prediction_fails_the_tight_criterion_only():
    # nearly flat dose (σ 400 mm): no spatial shift can make up a 15 % dose difference
    measured = _gauss_image((4.0, 4.0, 4.0), (20, 20, 20), (-38.0, -38.0, -38.0), sigma=400.0)
    predicted = sitk.Cast(measured * 1.15, sitk.sitkFloat32)
    labels = sitk.Cast(measured > 1.0, sitk.sitkUInt8)
    res = compare_dose_maps(predicted, measured, labels, {1: "r"},
                            criteria=(GammaCriteria(0.10, 5.0, "local", max_gamma=3.0), GammaCriteria(0.20, 10.0)))
    assert res.gamma[1].pass_rate == 1.0
    assert res.gamma[0].pass_rate < 0.5


def test_dose_map_of_a_uniform_large_tia_is_its_led_value():
    # deep inside a large uniform TIA, kernel dose → electron + absorbed photon energy per mass ≥ LED
    tia = sitk.Image([40, 40, 40], sitk.sitkFloat32) + 1e6  # Bq·h/mL
    tia.SetSpacing((4.0, 4.0, 4.0))
    dose = sitk.GetArrayFromImage(predicted_dose_map(tia, photons=False))
    e_e = 147.923 * 1.602176634e-16  # J per decay (physics.md)
    led = 1e6 * 3600 * e_e / (1.04e-3)  # Gy for 1 mL of soft tissue, 1.04 g
    assert dose[20, 20, 20] == pytest.approx(led, rel=0.02)


def test_labels_must_be_on_the_measured_grid():
    measured = _gauss_image((4.0, 4.0, 4.0), (10, 10, 10), (0.0, 0.0, 0.0))
    labels = sitk.Image([5, 5, 5], sitk.sitkUInt8)
    with pytest.raises(InputError, match="not on the measured dose grid"):
        compare_dose_maps(measured, measured, labels, {1: "r"})
