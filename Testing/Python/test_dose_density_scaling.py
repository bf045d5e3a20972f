"""Density scaling D_i = D_soft · ρ_soft / ρ_i and the mass convention (LuDosimetryLib.dose.density_scaling)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

import LuDosimetryLib
from LuDosimetryLib.dose.density_scaling import reference_density_g_per_mL, scale_dose_to_density
from LuDosimetryLib.dose.regional import region_dose_statistics
from LuDosimetryLib.errors import ConsistencyError, InputError
from LuDosimetryLib.kernels import dose_kernel
from LuDosimetryLib.labels import LabelTable, Region

TABLES = Path(LuDosimetryLib.__file__).parent / "data" / "voxel_s_values"


def test_reference_density_is_the_kernel_tables_soft_tissue():
    # independent read of the tables' own statement (README: "soft tissue ICRU 1.04 g/cm3")
    assert "1.04 g/cm3" in (TABLES / "README.md").read_text(encoding="utf-8")
    assert reference_density_g_per_mL("soft") == 1.04
    assert reference_density_g_per_mL("soft") == dose_kernel((4.8, 4.8, 4.8)).density_g_per_mL


def test_scaling_keeps_energy_and_divides_by_own_mass():
    rng = np.random.default_rng(7)
    d_soft = rng.uniform(0.5, 20.0, (4, 5, 6))
    rho = rng.uniform(0.3, 1.9, (4, 5, 6))
    d = scale_dose_to_density(d_soft, rho)
    assert d.dtype == np.float32
    # independent: energy per voxel E = D_soft * m_soft = D_soft * 1.04 g/mL * V; D_i = E / (rho_i * V)
    v = 0.1
    energy = d_soft * 1.04 * v
    np.testing.assert_allclose(d, energy / (rho * v), rtol=1e-6)
    # water-equivalent voxels (1.04) are unchanged, bone-like ones get less, lung-like ones more
    assert scale_dose_to_density(np.array([[[3.0]]]), np.array([[[1.04]]]))[0, 0, 0] == pytest.approx(3.0)


def test_mass_weighted_mean_of_scaled_dose_is_energy_over_ct_mass():
    # a region half soft tissue (1.04) and half bone (1.92) receiving 10 Gy soft-tissue dose
    d_soft = np.full((1, 2, 2), 10.0)
    rho = np.array([[[1.04, 1.04], [1.92, 1.92]]])
    d = scale_dose_to_density(d_soft, rho)
    lab = np.ones((1, 2, 2), np.int8)
    (s,) = region_dose_statistics(d, lab, LabelTable((Region(1, "lesion_1", kind="lesion"),)),
                                  density_g_per_mL=rho, voxel_volume_mL=1.0, mass_weighted=True)
    energy_Gy_g = 10.0 * 1.04 * 4  # Gy·g deposited (D_soft x soft mass of the 4 voxels)
    assert s.mass_g == pytest.approx(2 * 1.04 + 2 * 1.92)
    assert s.mean_dose_Gy == pytest.approx(energy_Gy_g / s.mass_g, rel=1e-6)


def test_bone_kernel_applies_inside_mask_only():
    d_soft = np.full((1, 1, 3), 6.0)
    d_bone = np.full((1, 1, 3), 4.0)
    rho = np.array([[[1.0, 1.5, 1.92]]])
    mask = np.array([[[0, 1, 1]]])
    d = scale_dose_to_density(d_soft, rho, bone_dose_Gy=d_bone, bone_mask=mask)
    rho_bone = reference_density_g_per_mL("bone")
    np.testing.assert_allclose(d[0, 0], [6.0 * 1.04 / 1.0, 4.0 * rho_bone / 1.5, 4.0 * rho_bone / 1.92], rtol=1e-6)


def test_images_keep_geometry_and_air_is_floored():
    d_soft = sitk.GetImageFromArray(np.full((2, 2, 2), 1.0, np.float32))
    d_soft.SetSpacing((4.8, 4.8, 4.8))
    d_soft.SetOrigin((1.0, 2.0, 3.0))
    rho = sitk.GetImageFromArray(np.array([[[1.04, 0.0], [1.04, 1.04]], [[1.04, 1.04], [1.04, 1.04]]]))
    rho.CopyInformation(d_soft)
    d = scale_dose_to_density(d_soft, rho)
    assert isinstance(d, sitk.Image) and d.GetOrigin() == (1.0, 2.0, 3.0)
    assert sitk.GetArrayViewFromImage(d)[0, 0, 1] == pytest.approx(1.04 / 0.05)  # floored density


def test_density_on_another_grid_is_refused():
    d_soft = sitk.GetImageFromArray(np.ones((2, 3, 4), np.float32))
    d_soft.SetSpacing((4.8, 4.8, 4.8))
    rho = sitk.GetImageFromArray(np.ones((2, 3, 4), np.float32))
    rho.SetSpacing((2.4, 2.4, 2.4))  # CT not yet averaged onto the SPECT grid
    with pytest.raises(ConsistencyError, match=r"density_g_per_mL: is on another grid: .*spacing \(2.4, 2.4, 2.4\)"
                                               r".*expected the grid of dose_soft_Gy.*spacing \(4.8, 4.8, 4.8\)"):
        scale_dose_to_density(d_soft, rho)
    with pytest.raises(ConsistencyError, match="shape"):
        scale_dose_to_density(np.ones((2, 3, 4)), np.ones((2, 3, 5)))


def test_bad_density_values_are_refused():
    with pytest.raises(InputError, match="NaN, infinite or negative"):
        scale_dose_to_density(np.ones((1, 1, 2)), np.array([[[1.0, np.nan]]]))
    with pytest.raises(InputError, match="bone_dose_Gy and bone_mask go together"):
        scale_dose_to_density(np.ones((1, 1, 2)), np.ones((1, 1, 2)), bone_dose_Gy=np.ones((1, 1, 2)))
