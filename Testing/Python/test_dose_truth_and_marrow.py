"""Like-for-like phantom dose truth, the truth comparison's causes and red marrow in the chain."""

from __future__ import annotations

import math

import numpy as np
import pytest
import SimpleITK as sitk

from LuDosimetryLib.dose.marrow_chain import chain_red_marrow
from LuDosimetryLib.dose.regional import region_dose_statistics
from LuDosimetryLib.errors import InputError
from LuDosimetryLib.kinetics.fitting import fit_tac
from LuDosimetryLib.labels import LabelTable, Region
from LuDosimetryLib.nuclides import get_nuclide
from LuDosimetryLib.phantom.comparison import outlier_cause, truth_comparison_rows
from LuDosimetryLib.phantom.dose_truth import kernel_truth_doses
from LuDosimetryLib.results import DOSES_COLUMNS, write_csv
from LuDosimetryLib.units import KG_PER_G, S_PER_H

E_E = get_nuclide("Lu-177").electron_energy_per_decay_J
LAMBDA = math.log(2) / get_nuclide("Lu-177").half_life_h


def _grid(arr, spacing=(3.0, 3.0, 3.0)):
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing(spacing)
    return img


def test_kernel_truth_of_a_large_cube_is_local_electron_deposition_and_conserves_energy():
    """Electrons only: a 60 mm cube (electron range ≈ 2 mm) gets ≈ Ã Δ_e / m inside, and the energy
    deposited in all regions together equals Ã Δ_e (analytic, independent of the kernel)."""
    lab = np.zeros((40, 40, 40), np.uint8)
    lab[10:30, 10:30, 10:30] = 1
    lab[5:35, 5:35, 5:35][lab[5:35, 5:35, 5:35] == 0] = 2  # shell around it
    labels = _grid(lab)
    density = _grid(np.where(lab > 0, 1.04, 1.04).astype(np.float32))
    table = LabelTable((Region(1, "cube"), Region(2, "shell")))
    tia = 1.0e9
    dose = kernel_truth_doses(labels, density, table, {"cube": tia}, photons=False)
    mass_cube = 20 ** 3 * 0.027 * 1.04
    led = tia * S_PER_H * E_E / (mass_cube * KG_PER_G)
    assert dose["cube"] == pytest.approx(led, rel=0.03)  # edge voxels lose a little to the shell
    mass_shell = (30 ** 3 - 20 ** 3) * 0.027 * 1.04
    energy = (dose["cube"] * mass_cube + dose["shell"] * mass_shell) * KG_PER_G
    assert energy == pytest.approx(tia * S_PER_H * E_E, rel=1e-3)
    with_photons = kernel_truth_doses(labels, density, table, {"cube": tia})
    assert led < with_photons["cube"] < led * 1.237  # + part of the 35.1 keV photons (ICRP-107)


def test_outlier_causes_name_imaging_or_method_and_rows_use_the_like_for_like_truth():
    assert outlier_cause("liver", dose_ratio=1.1, tia_ratio=1.0, volume_mL=1500, dose_method="kernel+gtm-pvc",
                         spect_fwhm_mm=11) == ""
    assert outlier_cause("lesion_x", dose_ratio=0.7, tia_ratio=0.7, volume_mL=0.4, dose_method="kernel+gtm-pvc",
                         spect_fwhm_mm=11).startswith("imaging: resolution")
    assert outlier_cause("bladder", dose_ratio=1.3, tia_ratio=1.4, volume_mL=150, dose_method="kernel+gtm-pvc",
                         spect_fwhm_mm=11).startswith("imaging: fit")
    assert outlier_cause("cortical_bone", dose_ratio=4.8, tia_ratio=math.nan, volume_mL=500, dose_method="kernel",
                         spect_fwhm_mm=11, cross_fraction=1.0, true_tia_Bq_h=0.0).startswith("imaging: resolution")
    assert outlier_cause("cortical_bone", dose_ratio=0.12, tia_ratio=math.nan, volume_mL=500,
                         dose_method="kernel+gtm-pvc", spect_fwhm_mm=11, true_tia_Bq_h=0.0).startswith("method:")
    assert outlier_cause("lung_left", dose_ratio=0.67, tia_ratio=1.04, volume_mL=1700, dose_method="kernel+gtm-pvc",
                         spect_fwhm_mm=11, cross_fraction=0.55).startswith("method: kernel+gtm-pvc scales")
    truth = {"cycles": [{"tia_Bq_h": {"liver": 2e12, "red_marrow_total": 1e10},
                         "dose_Gy": {"liver": 9.0, "red_marrow_total": 0.2},
                         "dose_kernel_Gy": {"liver": 10.0, "red_marrow_total": 0.3}}],
             "resolution": {"spect_fwhm_mm": 11}}
    fits = [{"region": "liver", "tia_Bq_h": "2.2e12"}]
    doses = [{"region": "liver", "kind": "organ", "dose_Gy": "11.0", "dose_method": "kernel+gtm-pvc",
              "volume_mL": "1500"},
             {"region": "red_marrow", "kind": "organ", "dose_Gy": "0.33", "dose_method": "red_marrow_l2l4"}]
    liver, marrow = truth_comparison_rows(truth, fits, doses)
    assert liver["dose_ratio"] == pytest.approx(1.1) and liver["true_led_dose_Gy"] == 9.0
    assert liver["dose_difference_Gy"] == pytest.approx(1.0) and liver["tia_ratio"] == pytest.approx(1.1)
    assert marrow["true_dose_Gy"] == 0.3 and marrow["dose_ratio"] == pytest.approx(1.1) and marrow["cause"] == ""


@pytest.fixture(scope="module")
def marrow_inputs():
    """Three 'vertebrae' of known mass and a map dose; fits of exact mono-exponential TACs."""
    lab = np.zeros((12, 12, 12), np.uint8)
    lab[2:5, 2:10, 2:10], lab[5:8, 2:10, 2:10], lab[8:11, 2:10, 2:10] = 2, 3, 4
    lab[0, :, :] = 1
    table = LabelTable(tuple(Region(i, n) for i, n in ((1, "liver"), (2, "vertebra_l2"), (3, "vertebra_l3"),
                                                         (4, "vertebra_l4"))))
    dose = np.full(lab.shape, 0.2, np.float32)
    dose[lab == 1] = 5.0
    stats = region_dose_statistics(_grid(dose, (4, 4, 4)), _grid(lab, (4, 4, 4)), table,
                                   density_g_per_mL=_grid(np.full(lab.shape, 1.1, np.float32), (4, 4, 4)))
    times = np.array([5.0, 24.0, 96.0, 168.0])
    fits = [fit_tac(times, 1e6 * np.exp(-LAMBDA * times), region=r, kind="organ", cycle=1)
            for r in ("vertebra_l2", "vertebra_l3", "vertebra_l4")]
    map_tia = {"vertebra_l2": 0.9e6 / LAMBDA, "vertebra_l3": 0.9e6 / LAMBDA, "vertebra_l4": 0.9e6 / LAMBDA}
    return stats, fits, map_tia


def test_image_based_red_marrow_is_self_from_the_fitted_tia_plus_cross_from_the_map(tmp_path, marrow_inputs):
    stats, fits, map_tia = marrow_inputs
    warnings = []
    row, info = chain_red_marrow(stats, fits, map_tia, patient_dir=tmp_path, cycle=1, injected_activity_Bq=7.4e9,
                                 warn=warnings.append)
    m = sum(s.mass_g for s in stats if s.region.startswith("vertebra"))
    self_dose = 3 * 1e6 / LAMBDA * S_PER_H * E_E / (m * KG_PER_G)  # Ã Δ_e / m of the vertebrae
    cross = 0.2 - 3 * 0.9e6 / LAMBDA * S_PER_H * E_E / (m * KG_PER_G)
    assert row["dose_method"] == "red_marrow_l2l4" and row["region"] == "red_marrow"
    assert row["self_dose_Gy"] == pytest.approx(self_dose, rel=1e-3)
    assert row["cross_dose_Gy"] == pytest.approx(max(cross, 0.0), rel=1e-3, abs=1e-9)
    assert row["dose_Gy"] == pytest.approx(row["self_dose_Gy"] + row["cross_dose_Gy"])
    assert row["dose_per_activity_Gy_per_GBq"] == pytest.approx(row["dose_Gy"] / 7.4)
    assert info["reported"] == "red_marrow_l2l4" and info["red_marrow_l2l4"]["vertebrae_mass_g"] == pytest.approx(m)
    assert tuple(row)[:len(DOSES_COLUMNS)] == DOSES_COLUMNS and not warnings


def test_a_vertebra_without_map_tia_is_refused_not_counted_as_zero(tmp_path, marrow_inputs):
    stats, fits, map_tia = marrow_inputs
    partial = {k: v for k, v in map_tia.items() if k != "vertebra_l3"}
    with pytest.raises(InputError, match=r"map_tia_Bq_h: no map TIA for \['vertebra_l3'\]"):
        chain_red_marrow(stats, fits, partial, patient_dir=tmp_path, cycle=1, injected_activity_Bq=7.4e9)


def test_blood_samples_give_the_blood_based_reported_dose(tmp_path, marrow_inputs):
    stats, fits, map_tia = marrow_inputs
    c0 = 2000.0  # Bq/mL at t = 0, decaying physically: Ã_bl = c0 / λ
    times = [1.0, 4.0, 24.0, 96.0]
    write_csv(tmp_path / "blood_samples.csv", [{"time_h": t, "activity_concentration_Bq_per_mL": c0 *
                                                math.exp(-LAMBDA * t)} for t in times],
              ["time_h", "activity_concentration_Bq_per_mL"])
    warnings = []
    row, info = chain_red_marrow(
        stats, fits, map_tia, patient_dir=tmp_path, cycle=1, injected_activity_Bq=7.4e9, warn=warnings.append,
        fit_blood=lambda t, c: fit_tac(t, c, models=("mono",), region="blood").model)
    self_dose = c0 / LAMBDA * S_PER_H * E_E / KG_PER_G  # RMBLR 1 · Ã_bl per mL (1 g) of marrow · Δ_e
    assert row["dose_method"] == "red_marrow_blood"
    assert row["self_dose_Gy"] == pytest.approx(self_dose, rel=1e-3)
    assert "red_marrow_l2l4" in info and any("RMBLR" in w for w in warnings)
    write_csv(tmp_path / "blood_samples.csv", [{"time_h": 1.0, "activity_concentration_Bq_per_mL": -3}],
              ["time_h", "activity_concentration_Bq_per_mL"])
    with pytest.raises(InputError, match=r"blood_samples\.csv"):
        chain_red_marrow(stats, fits, map_tia, patient_dir=tmp_path, cycle=1, injected_activity_Bq=7.4e9,
                         fit_blood=lambda t, c: None)
