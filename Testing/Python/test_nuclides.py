"""LuDosimetryLib.nuclides against the published ICRP-107 values in ../shared/reference."""

import math

import numpy as np
import pytest

from LuDosimetryLib.errors import InputError
from LuDosimetryLib.nuclides import (
    available_voxel_s_value_tables,
    decay_factor,
    get_nuclide,
    normalise_nuclide_name,
    voxel_s_value_table,
)
from LuDosimetryLib.units import J_PER_KEV, MGY_PER_MBQ_S_TO_GY_PER_BQ_H


@pytest.mark.parametrize("spelling", ["Lu-177", "177Lu", "Lu177", "lu-177", "Lu 177", "177-Lu"])
def test_spellings_normalise_to_one_name(spelling):
    assert normalise_nuclide_name(spelling) == "Lu-177"


def test_lu177_half_life_and_energies_match_icrp107():
    lu = get_nuclide("Lu-177")
    assert lu.half_life_h == pytest.approx(6.647 * 24, rel=1e-4)
    assert lu.decay_constant_per_h == pytest.approx(4.34499e-3, rel=1e-5)
    assert lu.electron_energy_per_decay_J / J_PER_KEV == pytest.approx(133.270 + 13.522 + 1.132, abs=2e-3)
    assert lu.photon_energy_per_decay_J / J_PER_KEV == pytest.approx(31.558 + 3.540, abs=1e-3)
    # 8.53196e-5 J per MBq·h of electrons (physics.md, derived)
    assert lu.electron_energy_per_decay_J * 1e6 * 3600 == pytest.approx(8.53196e-5, rel=1e-5)


def test_ga68_and_f18_half_lives():
    assert get_nuclide("68Ga").half_life_h == pytest.approx(67.71 / 60, rel=1e-4)
    assert get_nuclide("F-18").half_life_h == pytest.approx(109.77 / 60, rel=1e-4)
    assert get_nuclide("Ga-68").positron_yield == pytest.approx(0.88911)


def test_decay_factor_is_one_half_after_one_half_life_scalar_and_array():
    lu = get_nuclide("Lu-177")
    assert decay_factor(lu, lu.half_life_h) == pytest.approx(0.5, rel=1e-12)
    arr = decay_factor("Lu-177", np.array([0.0, lu.half_life_h, 2 * lu.half_life_h]))
    np.testing.assert_allclose(arr, [1.0, 0.5, 0.25], rtol=1e-12)


def test_unknown_nuclide_names_the_dataset():
    with pytest.raises(InputError, match=r"I-131 is not in the reference data set lu177.json"):
        get_nuclide("I-131")
    with pytest.raises(InputError, match="not a valid nuclide string"):
        get_nuclide("lutetium")


def test_unit_conversion_mgy_per_mbq_s():
    assert MGY_PER_MBQ_S_TO_GY_PER_BQ_H == pytest.approx(3.6e-6, rel=1e-12)


def test_all_nine_published_voxel_tables_load():
    sizes = available_voxel_s_value_tables("Lu-177", "soft")
    assert sizes == (2.21, 2.4, 3.0, 3.9, 4.8, 5.0, 6.0, 6.8, 9.28)
    assert available_voxel_s_value_tables("Lu-177", "bone") == sizes
    t = voxel_s_value_table(4.8)
    assert t.s_values_mGy_per_MBq_s.shape == (6, 6, 6)
    assert t.s_values_mGy_per_MBq_s[0, 0, 0] == pytest.approx(0.178)
    # symmetric under permutation of the axes (cubic voxels)
    s = t.s_values_mGy_per_MBq_s
    np.testing.assert_allclose(s, s.transpose(1, 0, 2), rtol=0.02)


def test_voxel_table_self_dose_is_below_local_deposition_limit():
    # S(0,0,0) < electron energy / voxel mass: some electron energy escapes the voxel.
    lu = get_nuclide("Lu-177")
    for size in available_voxel_s_value_tables():
        mass_kg = (size / 10) ** 3 * 1.04e-3
        led_mGy_per_MBq_s = lu.electron_energy_per_decay_J * 1e6 / mass_kg * 1e3
        s0 = voxel_s_value_table(size).s_values_mGy_per_MBq_s[0, 0, 0]
        assert 0.5 * led_mGy_per_MBq_s < s0 < led_mGy_per_MBq_s, size
    assert math.isfinite(s0)


def test_missing_voxel_table_lists_available_sizes():
    with pytest.raises(InputError, match=r"no published soft table for 4.1 mm \(available: 2.21"):
        voxel_s_value_table(4.1)
