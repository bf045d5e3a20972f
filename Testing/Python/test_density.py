"""CT-to-density calibration and mass-conserving averaging (LuDosimetryLib.density)."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from LuDosimetryLib.density import (
    DEFAULT_DENSITY_CALIBRATION,
    DensityCalibration,
    DensityCurve,
    average_onto_grid,
    ct_to_density,
    mass_g,
    read_density_calibration,
)
from LuDosimetryLib.errors import ConsistencyError, InputError

# Schneider, Bortfeld & Schlegel 2000 (Phys Med Biol 45:459) as tabulated in GATE's
# Schneider2000DensitiesTable.txt: (HU, g/cm³).
SCHNEIDER_2000 = [(-1000, 1.21e-3), (-98, 0.93), (-97, 0.930486), (14, 1.03), (23, 1.031), (100, 1.1199),
                  (101, 1.0762), (1600, 1.9642), (3000, 2.8)]


def _image(arr, spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0)):
    img = sitk.GetImageFromArray(np.asarray(arr, dtype=np.float32))
    img.SetSpacing(spacing)
    img.SetOrigin(origin)
    return img


def test_default_curve_reproduces_schneider_2000_nodes_and_interpolates_linearly():
    curve = DEFAULT_DENSITY_CALIBRATION.for_kvp(120)
    hu, rho = np.array(SCHNEIDER_2000).T
    np.testing.assert_allclose(curve(hu), rho, rtol=1e-12)
    # midway between -97 and 14 HU: mean of the node densities
    assert curve(-41.5) == pytest.approx((0.930486 + 1.03) / 2, rel=1e-12)
    # beyond the end nodes: held constant
    assert curve(-3000) == pytest.approx(1.21e-3)
    assert curve(5000) == pytest.approx(2.8)


def test_ct_to_density_maps_each_voxel_and_keeps_geometry():
    ct = _image([[[-1000, 14], [1600, 3000]]], spacing=(0.8, 0.8, 3.0), origin=(-10, 5, 2))
    rho = ct_to_density(ct)
    np.testing.assert_allclose(sitk.GetArrayFromImage(rho), [[[1.21e-3, 1.03], [1.9642, 2.8]]], rtol=1e-6)
    assert rho.GetSpacing() == ct.GetSpacing() and rho.GetOrigin() == ct.GetOrigin()
    assert rho.GetPixelID() == sitk.sitkFloat32


@pytest.mark.parametrize(("dtype", "offset"), [(np.float32, 0.0), (np.int16, 0.0), (np.float64, 0.0),
                                               (np.float32, 0.25)])
def test_ct_to_density_equals_the_curve_at_every_voxel(dtype, offset):
    """Whole CT numbers go through a table of the curve, others through the curve: the same values either way."""
    rng = np.random.default_rng(5)
    hu = rng.integers(-1100, 3200, size=(12, 512, 1024)).astype(dtype)  # converted in slabs of 8 slices
    hu += dtype(offset)
    hu[3, 4, 5] = -1100  # beyond the first node
    if not np.issubdtype(dtype, np.integer):
        hu[10, :5] += dtype(0.5)  # fractional CT numbers in the second slab only
    ct = sitk.GetImageFromArray(hu)
    expected = np.interp(hu.astype(float), *np.array(SCHNEIDER_2000).T).astype(np.float32)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(ct_to_density(ct)), expected)


def test_calibration_csv_gives_one_curve_per_kvp_and_picks_by_kvp(tmp_path):
    p = tmp_path / "density.csv"
    p.write_text("kvp,hu,density_g_per_mL\n120,-1000,0.001\n120,0,1.0\n120,1000,1.6\n"
                 "80,1000,1.8\n80,-1000,0.001\n80,0,1.0\n")
    cal = read_density_calibration(p)
    assert cal.for_kvp(120)(500) == pytest.approx(1.3)
    assert cal.for_kvp(80)(500) == pytest.approx(1.4)  # rows sorted by HU
    with pytest.raises(InputError, match=r"no density curve for 100 kVp"):
        cal.for_kvp(100)


def test_bad_density_curves_are_rejected():
    with pytest.raises(InputError, match="strictly increasing"):
        DensityCurve((0.0, 0.0, 100.0), (1.0, 1.0, 1.1))
    with pytest.raises(InputError, match="≥ 0 g/mL"):
        DensityCurve((0.0, 100.0), (1.0, -1.0))
    with pytest.raises(InputError, match="duplicate kVp"):
        curve = DensityCurve((0.0, 1.0), (1.0, 1.0), kvp=120)
        DensityCalibration((curve, curve))


def test_block_average_onto_aligned_coarse_grid_equals_numpy_block_mean():
    rng = np.random.default_rng(3)
    a = rng.uniform(0.0, 2.0, (30, 40, 50))
    fine = _image(a, spacing=(1.0, 1.2, 2.5), origin=(3.3, -7.1, 2.0))
    coarse = sitk.Image((25, 20, 15), sitk.sitkFloat32)
    coarse.SetSpacing((2.0, 2.4, 5.0))
    coarse.SetOrigin((3.8, -6.5, 3.25))  # voxel edges coincide with fine voxel edges
    out = sitk.GetArrayFromImage(average_onto_grid(fine, coarse))
    np.testing.assert_allclose(out, a.reshape(15, 2, 20, 2, 25, 2).mean(axis=(1, 3, 5)), rtol=1e-5)


def test_average_onto_unaligned_coarse_grid_conserves_mass():
    rng = np.random.default_rng(4)
    a = rng.uniform(0.0, 2.0, (30, 40, 50))
    fine = _image(a, spacing=(0.97, 1.2, 2.5), origin=(3.3, -7.1, 2.0))
    coarse = sitk.Image((12, 14, 19), sitk.sitkFloat32)
    coarse.SetSpacing((4.7, 4.7, 4.7))
    coarse.SetOrigin((0.0, -12.0, -3.0))  # covers the fine grid with an arbitrary offset
    expected = a.sum() * 0.97 * 1.2 * 2.5 * 1e-3  # g
    assert mass_g(average_onto_grid(fine, coarse)) == pytest.approx(expected, rel=1e-6)
    assert mass_g(fine) == pytest.approx(expected, rel=1e-6)


def test_average_onto_grid_counts_the_parts_beyond_the_fine_grid_as_outside():
    fine = _image(np.full((4, 4, 4), 2.0))  # voxel edges -0.5 … 3.5 mm on every axis
    coarse = sitk.Image((3, 3, 3), sitk.sitkFloat32)
    coarse.SetSpacing((2.0, 2.0, 2.0))
    coarse.SetOrigin((1.5, 0.5, 0.5))  # x edges 0.5, 2.5, 4.5, 6.5: shares 1, ½, 0; y and z: 1, 1, 0
    out = sitk.GetArrayFromImage(average_onto_grid(fine, coarse, outside=1.0))  # [z, y, x]
    share_x, share_yz = np.array([1.0, 0.5, 0.0]), np.array([1.0, 1.0, 0.0])
    share = share_yz[:, None, None] * share_yz[None, :, None] * share_x[None, None, :]
    np.testing.assert_allclose(out, 2.0 * share + 1.0 * (1.0 - share), rtol=1e-6)
    assert out[0, 0, 1] == pytest.approx(1.5) and out[0, 0, 2] == pytest.approx(1.0)


def test_average_onto_grid_with_other_direction_is_refused():
    fine = _image(np.ones((4, 4, 4)))
    coarse = sitk.Image((2, 2, 2), sitk.sitkFloat32)
    coarse.SetDirection((0, 1, 0, 1, 0, 0, 0, 0, 1))
    with pytest.raises(ConsistencyError, match="direction cosines"):
        average_onto_grid(fine, coarse)
