"""Regional dose with the project's kernels, convolution and LED (integration of the dose stage)."""

from __future__ import annotations

import numpy as np
import pytest

from LuDosimetryLib.dose.convolution import convolve_dose
from LuDosimetryLib.dose.led import led_dose
from LuDosimetryLib.dose.red_marrow import electron_self_dose_Gy, red_marrow_cross_dose
from LuDosimetryLib.dose.regional import region_dose_from_dose_rates, region_dose_statistics
from LuDosimetryLib.kernels import dose_kernel
from LuDosimetryLib.kinetics.models import SumOfExponentials
from LuDosimetryLib.labels import LabelTable, Region

SPACING = (4.8, 4.8, 4.8)
V_ML = 4.8**3 / 1000.0
TABLE = LabelTable((Region(1, "kidney_left", "left"), Region(2, "vertebra_l3", kind="other"),
                    Region(3, "lesion_bone_1", kind="lesion")))


def phantom():
    lab = np.zeros((24, 24, 24), np.int16)
    lab[4:12, 4:12, 4:12] = 1
    lab[14:18, 14:18, 14:18] = 2
    lab[14:18, 14:18, 19:21] = 3  # hot lesion beside the vertebra
    rng = np.random.default_rng(2)
    pattern = np.where(lab == 1, rng.uniform(0.5, 1.5, lab.shape), 0.0)
    pattern[lab == 3] = 20.0
    return lab, pattern


def test_led_dose_statistics_equal_electron_energy_over_mass():
    lab, pattern = phantom()
    tia = pattern * 1e9  # Bq·h per voxel
    dose = led_dose(tia, SPACING)
    (kid,) = region_dose_statistics(dose, lab, TABLE, voxel_volume_mL=V_ML, regions=["kidney_left"])
    mass = kid.n_voxels * V_ML * 1.04
    assert kid.mean_dose_Gy == pytest.approx(electron_self_dose_Gy(float(tia[lab == 1].sum()), mass), rel=1e-5)


def test_tia_route_and_dose_rate_route_agree_for_exact_kinetics():
    lab, pattern = phantom()
    kernel = dose_kernel(SPACING, photons=True)
    a, b = 3e8, (0.02, 0.3)
    times = np.array([4.0, 24.0, 96.0, 168.0])
    # activity per voxel A(t) = pattern * a * (e^(-b0 t) - 0.5 e^(-b1 t)); TIA = pattern * a * (1/b0 - 0.5/b1)
    amp = np.exp(-b[0] * times) - 0.5 * np.exp(-b[1] * times)
    rate_maps = [convolve_dose(pattern * a * s, kernel) for s in amp]  # Gy/h: kernel is Gy per Bq·h
    dose_a = convolve_dose(pattern * a * (1 / b[0] - 0.5 / b[1]), kernel)
    stats = {s.region: s for s in region_dose_statistics(dose_a, lab, TABLE, voxel_volume_mL=V_ML)}

    def fit(t, v):  # exact for these rates
        coef, *_ = np.linalg.lstsq(np.exp(-np.outer(t, b)), v, rcond=None)
        return SumOfExponentials(tuple(coef), b)

    for r in region_dose_from_dose_rates(rate_maps, times, lab, TABLE, fit=fit, voxel_volume_mL=V_ML):
        assert r.dose_Gy == pytest.approx(stats[r.region].mean_dose_Gy, rel=1e-4)


def test_cross_dose_to_vertebra_from_neighbouring_lesion():
    lab, pattern = phantom()
    tia = np.where(lab == 3, pattern, 0.0) * 1e9
    dose = convolve_dose(tia, dose_kernel(SPACING, photons=True))
    cross = red_marrow_cross_dose(dose, tia, lab, TABLE, map_quantity="tia_Bq_h_per_voxel",
                                  marrow_regions=("vertebra_l3",), voxel_volume_mL=V_ML)
    assert cross.local_electron_dose_Gy == 0.0  # no activity in the vertebra
    assert cross.cross_dose_Gy == pytest.approx(float(dose[lab == 2].mean()), rel=1e-6)
    assert cross.cross_dose_Gy > 0


def test_dose_rate_route_and_blood_marrow_with_the_kinetics_fitter():
    from LuDosimetryLib.dose.red_marrow import blood_based_red_marrow_self_dose
    from LuDosimetryLib.kinetics.fitting import fit_tac

    def fit(t, v):
        return fit_tac(t, v).model

    lab, _ = phantom()
    times = np.array([4.0, 24.0, 96.0, 168.0])
    rate0, lam = 0.05, 0.01  # Gy/h, h^-1 (effective, above the physical 0.00434 h^-1)
    maps = [np.where(lab == 1, rate0 * np.exp(-lam * t), 0.0) for t in times]
    (kid,) = region_dose_from_dose_rates(maps, times, lab, TABLE, fit=fit, voxel_volume_mL=V_ML,
                                         regions=["kidney_left"])
    assert kid.dose_Gy == pytest.approx(rate0 / lam, rel=1e-4)
    t_blood = np.array([1.0, 4.0, 24.0, 48.0])
    rm = blood_based_red_marrow_self_dose(t_blood, 2e3 * np.exp(-0.05 * t_blood), fit=fit, rmblr=1.0,
                                          red_marrow_mass_g=1170.0)
    assert rm.parameters["tiac_blood_Bq_h_per_mL"] == pytest.approx(2e3 / 0.05, rel=1e-4)


def test_phantom_led_doses_with_ct_mass_match_ground_truth():
    """Synthetic patient: region TIA spread uniformly, LED, density scaling, mass-weighted means = truth."""
    import SimpleITK as sitk

    from LuDosimetryLib.dose.density_scaling import scale_dose_to_density
    from LuDosimetryLib.phantom.generate import generate_patient

    p = generate_patient("small", seed=3)
    lab = sitk.GetArrayFromImage(p.labels)
    rho = sitk.GetArrayFromImage(p.density)
    truth = p.truth["cycles"][0]
    tia_map = np.zeros(lab.shape)
    for r in p.label_table:
        inside = lab == r.label
        if inside.any():
            tia_map[inside] = truth["tia_Bq_h"][r.name] / inside.sum()
    dose = scale_dose_to_density(led_dose(tia_map, p.labels.GetSpacing()), rho)
    img = sitk.GetImageFromArray(dose)
    img.CopyInformation(p.labels)
    stats = region_dose_statistics(img, p.labels, p.label_table, density_g_per_mL=p.density, mass_weighted=True,
                                   on_empty="skip")
    truth_mass = {r["name"]: r["mass_g"] for r in p.truth["regions"]}
    checked = 0
    for s in stats:
        if s.region in truth_mass:
            assert s.mass_g == pytest.approx(truth_mass[s.region], rel=1e-5)
        if truth["dose_Gy"].get(s.region, 0.0) > 0:
            assert s.mean_dose_Gy == pytest.approx(truth["dose_Gy"][s.region], rel=1e-5), s.region
            checked += 1
    assert checked >= 20
