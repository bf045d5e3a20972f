"""Dose stage with the CT-to-density conversion: CT grid vs dose grid, one mass convention."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from LuDosimetryLib.density import average_onto_grid, ct_to_density, mass_g
from LuDosimetryLib.dose.density_scaling import scale_dose_to_density
from LuDosimetryLib.dose.regional import region_dose_statistics
from LuDosimetryLib.errors import ConsistencyError
from LuDosimetryLib.labels import LabelTable, Region


def ct_and_dose_grid():
    hu = np.full((40, 48, 48), 40, np.int16)  # soft tissue
    hu[10:30, 12:36, 12:24] = 900  # dense bone block
    ct = sitk.GetImageFromArray(hu)
    ct.SetSpacing((1.2, 1.2, 1.5))
    grid = sitk.Image(12, 12, 12, sitk.sitkFloat32)  # a 4.8 mm dose grid inside the CT
    grid.SetSpacing((4.8, 4.8, 4.8))
    grid.SetOrigin((0.0 + 1.8, 1.8, 2.55))
    return ct, grid


def test_density_must_be_averaged_onto_the_dose_grid_and_masses_agree():
    ct, grid = ct_and_dose_grid()
    rho_ct = ct_to_density(ct, kvp=120)
    dose = sitk.Image(grid)
    dose = sitk.Add(dose, 10.0)  # 10 Gy soft-tissue dose everywhere
    with pytest.raises(ConsistencyError, match="density_g_per_mL: is on another grid"):
        scale_dose_to_density(dose, rho_ct)
    rho = average_onto_grid(rho_ct, grid)
    d = scale_dose_to_density(dose, rho)
    lab_arr = np.ones(sitk.GetArrayViewFromImage(grid).shape, np.uint8)
    lab = sitk.GetImageFromArray(lab_arr)
    lab.CopyInformation(grid)
    (s,) = region_dose_statistics(d, lab, LabelTable((Region(1, "block"),)), density_g_per_mL=rho, mass_weighted=True)
    assert s.mass_g == pytest.approx(mass_g(rho), rel=1e-6)
    # energy kept: mean dose x CT mass = 10 Gy x soft-tissue mass of the same volume
    assert s.mean_dose_Gy * s.mass_g == pytest.approx(10.0 * 1.04 * s.volume_mL, rel=1e-5)
