"""Red-marrow dose (LuDosimetryLib.dose.red_marrow) against hand calculations."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import LuDosimetryLib
from LuDosimetryLib.dose.red_marrow import (
    blood_based_red_marrow_self_dose,
    electron_self_dose_Gy,
    image_based_red_marrow_self_dose,
    red_marrow_cross_dose,
    red_marrow_dose,
    red_marrow_row,
    reference_red_marrow_mass_g,
)
from LuDosimetryLib.errors import ConsistencyError, InputError
from LuDosimetryLib.kinetics.models import SumOfExponentials
from LuDosimetryLib.labels import LabelTable, Region
from LuDosimetryLib.results import DOSES_COLUMNS

_DATA = json.loads((Path(LuDosimetryLib.__file__).parent / "data" / "lu177.json").read_text())
E_E_KEV = _DATA["nuclides"]["Lu-177"]["mean_energy_per_decay_keV"]["electrons_total"]  # 147.923 keV
J_PER_KEV = 1.602176634e-16

TABLE = LabelTable((Region(1, "vertebra_l2", kind="other", group="lumbar_spine"),
                    Region(2, "vertebra_l3", kind="other", group="lumbar_spine"),
                    Region(3, "vertebra_l4", kind="other", group="lumbar_spine"),
                    Region(4, "liver")))


def phantom():
    lab = np.zeros((3, 4, 4), np.int16)
    lab[0, :2, :2] = 1
    lab[1, :2, :2] = 2
    lab[2, :2, :2] = 3
    lab[:, 2:, 2:] = 4
    tia = np.zeros(lab.shape)  # Bq·h per voxel
    tia[lab == 1] = 1.0e9
    tia[lab == 2] = 2.0e9
    tia[lab == 3] = 3.0e9
    tia[lab == 4] = 5.0e10
    return tia, lab


def test_electron_self_dose_by_hand():
    # 1 MBq·h in 1 g: 1e6 Bq·h * 3600 s/h * 147.923 keV * 1.602e-16 J/keV / 1e-3 kg
    expected = 1e6 * 3600 * E_E_KEV * J_PER_KEV / 1e-3
    assert electron_self_dose_Gy(1e6, 1.0) == pytest.approx(expected, rel=1e-9)
    assert expected == pytest.approx(8.532e-2, rel=1e-3)  # physics.md: 8.53196e-5 J per MBq·h in 1 g


def test_image_based_self_dose_by_hand():
    tia, lab = phantom()
    res = image_based_red_marrow_self_dose(tia, lab, TABLE, map_quantity="tia_Bq_h_per_voxel",
                                           l2_l4_fraction_of_red_marrow=0.1, red_marrow_mass_g=1170.0)
    tia_vert = 4 * (1e9 + 2e9 + 3e9)  # 4 voxels per vertebra
    tia_rm = tia_vert / 0.1
    assert res.tia_red_marrow_Bq_h == pytest.approx(tia_rm)
    assert res.self_dose_Gy == pytest.approx(tia_rm * 3600 * E_E_KEV * J_PER_KEV / 1.170, rel=1e-9)
    # the group name selects the same vertebrae; a concentration map with 0.5 mL voxels gives the same TIA
    res2 = image_based_red_marrow_self_dose(tia / 0.5, lab, TABLE, map_quantity="tia_Bq_h_per_mL",
                                            vertebra_regions=("lumbar_spine",), voxel_volume_mL=0.5,
                                            l2_l4_fraction_of_red_marrow=0.1, red_marrow_mass_g=1170.0)
    assert res2.self_dose_Gy == pytest.approx(res.self_dose_Gy, rel=1e-12)
    assert res2.parameters["vertebra_regions"] == ["vertebra_l2", "vertebra_l3", "vertebra_l4"]


def test_blood_based_self_dose_by_hand():
    a, b = 2.0e3, 0.05  # Bq/mL, h^-1: blood concentration 2 kBq/mL e^(-0.05 t)
    t = np.array([1.0, 4.0, 24.0, 48.0])
    c = a * np.exp(-b * t)

    def fit(times, values):  # exact mono-exponential through the first and last samples
        rate = np.log(values[0] / values[-1]) / (times[-1] - times[0])
        return SumOfExponentials((values[0] * np.exp(rate * times[0]),), (rate,))

    res = blood_based_red_marrow_self_dose(t, c, fit=fit, rmblr=1.0, red_marrow_mass_g=reference_red_marrow_mass_g("M"))
    tiac = a / b  # Bq·h/mL
    assert res.parameters["tiac_blood_Bq_h_per_mL"] == pytest.approx(tiac, rel=1e-9)
    assert res.tia_red_marrow_Bq_h == pytest.approx(tiac * 1170.0, rel=1e-9)
    # D = RMBLR * TIAC * E_e per gram (mass cancels)
    assert res.self_dose_Gy == pytest.approx(tiac * 3600 * E_E_KEV * J_PER_KEV / 1e-3, rel=1e-9)
    half = blood_based_red_marrow_self_dose(t, c, fit=fit, rmblr=0.5, red_marrow_mass_g=900.0)
    assert half.self_dose_Gy == pytest.approx(0.5 * res.self_dose_Gy, rel=1e-9)


def test_reference_masses_are_icrp89_values():
    assert reference_red_marrow_mass_g("male") == 1170.0
    assert reference_red_marrow_mass_g("F") == 900.0


def test_cross_dose_subtracts_local_electron_deposition():
    tia, lab = phantom()
    v = 0.2  # mL per voxel
    rho = np.full(lab.shape, 1.04)
    mass_vox = 1.04 * v
    led = tia * 3600 * E_E_KEV * J_PER_KEV / (mass_vox * 1e-3)  # local-deposition dose map
    cross = red_marrow_cross_dose(led, tia, lab, TABLE, map_quantity="tia_Bq_h_per_voxel", voxel_volume_mL=v,
                                  density_g_per_mL=rho)
    assert cross.cross_dose_Gy == pytest.approx(0.0, abs=1e-9 * cross.mean_dose_in_regions_Gy)
    plus = red_marrow_cross_dose(led + 0.5, tia, lab, TABLE, map_quantity="tia_Bq_h_per_voxel", voxel_volume_mL=v)
    assert plus.cross_dose_Gy == pytest.approx(0.5, rel=1e-9)
    total = red_marrow_dose(blood_based_red_marrow_self_dose(
        [1.0, 2.0], [1.0, 0.5], fit=lambda t, c: SumOfExponentials((2.0,), (np.log(2),)), rmblr=1.0,
        red_marrow_mass_g=1170.0), plus)
    assert total.total_dose_Gy == pytest.approx(total.self_dose.self_dose_Gy + 0.5)
    row = red_marrow_row(total, cycle=1, injected_activity_Bq=7.4e9)
    assert tuple(row)[:len(DOSES_COLUMNS)] == DOSES_COLUMNS
    assert row["region"] == "red_marrow" and row["dose_method"] == "red_marrow_blood"
    assert row["dose_Gy"] == pytest.approx(total.total_dose_Gy)
    # a dose map lower than local deposition: negative estimate is set to 0 and flagged
    low = red_marrow_cross_dose(0.5 * led, tia, lab, TABLE, map_quantity="tia_Bq_h_per_voxel", voxel_volume_mL=v)
    assert low.cross_dose_Gy == 0.0 and low.flags == "cross_dose_negative_set_to_zero"


# --- missing or bad inputs --------------------------------------------------------------------
def test_missing_marrow_inputs_are_named():
    tia, lab = phantom()
    with pytest.raises(InputError, match=r"l2_l4_fraction_of_red_marrow: is required"):
        image_based_red_marrow_self_dose(tia, lab, TABLE, map_quantity="tia_Bq_h_per_voxel", red_marrow_mass_g=1170)
    with pytest.raises(InputError, match=r"red_marrow_mass_g: is required.*1170 g"):
        image_based_red_marrow_self_dose(tia, lab, TABLE, map_quantity="tia_Bq_h_per_voxel",
                                         l2_l4_fraction_of_red_marrow=0.1)
    with pytest.raises(InputError, match=r"vertebra_regions: no region or group named 'vertebra_l5'"):
        image_based_red_marrow_self_dose(tia, lab, TABLE, map_quantity="tia_Bq_h_per_voxel",
                                         vertebra_regions=("vertebra_l5",), l2_l4_fraction_of_red_marrow=0.1,
                                         red_marrow_mass_g=1170)
    with pytest.raises(InputError, match=r"map_quantity: must be one of"):
        image_based_red_marrow_self_dose(tia, lab, TABLE, map_quantity="Bq", l2_l4_fraction_of_red_marrow=0.1,
                                         red_marrow_mass_g=1170)
    fit = lambda t, c: SumOfExponentials((1.0,), (0.1,))  # noqa: E731
    with pytest.raises(InputError, match=r"rmblr: is required"):
        blood_based_red_marrow_self_dose([1.0, 2.0], [1.0, 0.5], fit=fit, red_marrow_mass_g=1170)
    with pytest.raises(InputError, match=r"fit: is required"):
        blood_based_red_marrow_self_dose([1.0, 2.0], [1.0, 0.5], rmblr=1.0, red_marrow_mass_g=1170)
    with pytest.raises(InputError, match=r"need as many blood samples as times"):
        blood_based_red_marrow_self_dose([], [], fit=fit, rmblr=1.0, red_marrow_mass_g=1170)
    with pytest.raises(InputError, match=r"finite and ≥ 0 Bq/mL"):
        blood_based_red_marrow_self_dose([1.0, 2.0], [1.0, np.nan], fit=fit, rmblr=1.0, red_marrow_mass_g=1170)
    with pytest.raises(ConsistencyError, match="tia_map: is on another grid"):
        red_marrow_cross_dose(np.ones(lab.shape), np.ones((3, 4, 5)), lab, TABLE,
                              map_quantity="tia_Bq_h_per_voxel", voxel_volume_mL=1.0)
