"""The EANM uncertainty budget (kinetics.budget) and the physical bounds of TIA intervals (issue 15).

Propagation is checked against analytic partial derivatives (a Hill recovery curve), against Monte
Carlo sampling of the measurement model D = N / (Q · RC(V) · ρV) and of the trapezoid integral,
and the cycle accumulation against sampling with fully correlated shared errors.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from LuDosimetryLib.calibration.recovery import RecoveryCurve, gaussian_sphere_recovery
from LuDosimetryLib.errors import InputError
from LuDosimetryLib.kinetics import budget as bg
from LuDosimetryLib.kinetics.curves import TrapezoidCurve
from LuDosimetryLib.kinetics.fitting import fit_tac
from LuDosimetryLib.kinetics.uncertainty import (
    MAX_REPORTED_REL_UNCERTAINTY,
    bounded_interval,
    physical_tia_limit_Bq_h,
)
from LuDosimetryLib.nuclides import get_nuclide

LAM = get_nuclide("Lu-177").decay_constant_per_h
T = (4.0, 24.0, 96.0, 168.0)


def _fit(a0=1e8, teff=40.0):
    t = np.array(T)
    y = a0 * np.exp(-math.log(2) / teff * t) * (1 + np.array([0.01, -0.012, 0.008, -0.005]))
    return fit_tac(t, y, region="kidney_left", kind="organ", administered_activity_Bq=7.4e9)


# --- analytic partial derivatives --------------------------------------------------------------
def test_volume_and_recovery_sensitivities_match_the_analytic_derivatives_of_a_hill_curve():
    """RC(V) = a / (1 + (V50/V)^n): ∂ln RC/∂ln V = n x / (1 + x), x = (V50/V)^n; u(RC)/RC = u(a)/a
    when only a is uncertain. Dose ∝ 1/(RC(V)·V): ∂ln D/∂ln V = −β − 1; TIA: −β."""
    a, v50, n, u_a = 0.95, 20.0, 1.3, 0.03
    curve = RecoveryCurve("hill", {"a": a, "v50_mL": v50, "n": n},
                          covariance=((u_a**2, 0.0, 0.0), (0.0, 0.0, 0.0), (0.0, 0.0, 0.0)))
    v = 35.0
    x = (v50 / v) ** n
    beta = n * x / (1 + x)
    b = bg.region_budget(_fit(), volume_mL=v, calibration_rel=0.04, partial_volume="recovery", fwhm_mm=10.0,
                        decay_constant_per_h=LAM, recovery_curve=curve, segmentation_spacing_mm=(2.0, 2.0, 2.0))
    vol, rec, cal = b.component("volume"), b.component("recovery"), b.component("calibration")
    assert vol.tia_sensitivity == pytest.approx(-beta, rel=1e-5)
    assert vol.dose_sensitivity == pytest.approx(-beta - 1.0, rel=1e-5)
    r = (3 * v * 1000 / (4 * math.pi)) ** (1 / 3)
    assert vol.input_rel == pytest.approx(3 * 1.0 / r)  # ½ of a 2 mm voxel over the equal-volume sphere
    assert rec.input_rel == pytest.approx(u_a / a, rel=1e-5) and not rec.default
    assert cal.input_rel == 0.04 and not cal.default and cal.shared and rec.shared
    assert not vol.shared and not b.component("registration").shared and not b.component("counting_fit").shared
    # the covariance form of the guidance gives the same dose term: u²(Ã) + u²(m) − 2 cov(Ã, m)
    u_v = vol.input_rel
    cov = -beta * u_v * u_v
    via_cov = math.sqrt((beta * u_v) ** 2 + u_v**2 - 2 * cov)
    assert vol.dose_rel == pytest.approx(via_cov, rel=1e-5)
    assert bg.propagate([-beta, -1.0], [u_v, u_v], np.ones((2, 2))) == pytest.approx(via_cov, rel=1e-5)


def test_without_partial_volume_correction_there_is_no_recovery_term_and_only_the_mass_takes_the_volume():
    b = bg.region_budget(_fit(), volume_mL=150.0, calibration_rel=None, partial_volume="none", fwhm_mm=11.0,
                        decay_constant_per_h=LAM)
    assert b.component("recovery").input_rel == 0.0
    assert b.component("volume").tia_sensitivity == 0.0 and b.component("volume").dose_sensitivity == -1.0
    assert b.component("calibration").default and b.component("calibration").input_rel == bg.DEFAULT_CALIBRATION_REL


def test_model_based_recovery_uncertainty_is_the_fwhm_sensitivity_of_the_sphere_recovery():
    """Small spheres: RC ≈ c (R/σ)³, so |∂ln RC/∂ln FWHM| → 3; large ones → 0."""
    u_small, beta_small, _, default = bg.recovery_terms(0.002, method="gtm", fwhm_mm=11.0, fwhm_rel=0.1)
    u_large, beta_large, _, _ = bg.recovery_terms(30000.0, method="gtm", fwhm_mm=11.0, fwhm_rel=0.1)
    assert default
    assert u_small == pytest.approx(0.3, rel=0.05) and beta_small == pytest.approx(1.0, rel=0.05)
    assert u_large < 0.01 and beta_large < 0.02
    # independent finite difference of the recovery model at a mid volume
    v, f = 20.0, 11.0
    d = (math.log(gaussian_sphere_recovery(v, f * 1.01)[0]) - math.log(gaussian_sphere_recovery(v, f * 0.99)[0])) \
        / (math.log(1.01) - math.log(0.99))
    assert bg.recovery_terms(v, method="gtm", fwhm_mm=f, fwhm_rel=0.1)[0] == pytest.approx(abs(d) * 0.1, rel=1e-3)


# --- Monte Carlo ---------------------------------------------------------------------------------
def test_dose_and_tia_uncertainty_agree_with_monte_carlo_sampling_of_the_measurement_model():
    """Sample Q, the recovery model, V (entering RC(V) and the mass) and each point's registration error,
    recompute Ã and D = Ã/(ρV): the relative SDs agree with the propagated budget within 5 %."""
    rng = np.random.default_rng(1)
    fit = _fit()
    v0 = 200.0
    b = bg.region_budget(fit, volume_mL=v0, calibration_rel=0.03, partial_volume="gtm", fwhm_mm=11.0,
                        decay_constant_per_h=LAM, segmentation_spacing_mm=(0.8, 0.8, 0.8),
                        defaults=bg.BudgetDefaults(registration_mm=1.0))
    u = {c.name: c.input_rel for c in b.components}
    n = 200_000
    q = 1 + u["calibration"] * rng.standard_normal(n)
    rc_err = 1 + u["recovery"] * rng.standard_normal(n)
    v = v0 * (1 + u["volume"] * rng.standard_normal(n))
    rc = gaussian_sphere_recovery(v, 11.0) / gaussian_sphere_recovery(v0, 11.0)[0]
    t, y = np.array(fit.times_h), np.array(fit.activities_Bq)
    eps = u["registration"] * rng.standard_normal((n, t.size))
    eps[:, 0] = 0.0  # the reference timepoint is not registered
    base = TrapezoidCurve(tuple(t), tuple(y), LAM, "zero").integral()
    ys = y * (1 + eps)
    # trapezoid with physical tail, vectorised (the same rule as TrapezoidCurve)
    area = 0.5 * ys[:, 0] * t[0] + np.sum(0.5 * (ys[:, 1:] + ys[:, :-1]) * np.diff(t), axis=1) + ys[:, -1] / LAM
    assert area.mean() == pytest.approx(base, rel=1e-3)
    fit_err = 1 + u["counting_fit"] * rng.standard_normal(n)
    tia = (area / base) * fit_err / (q * rc * rc_err)
    dose = tia / (v / v0)
    assert float(np.std(tia)) == pytest.approx(b.tia_total_rel, rel=0.05)
    assert float(np.std(dose)) == pytest.approx(b.dose_total_rel, rel=0.05)
    reg_only = np.std(area / base)
    assert float(reg_only) == pytest.approx(b.component("registration").tia_rel, rel=0.03)
    assert b.dose_shared_rel == pytest.approx(math.hypot(u["calibration"], u["recovery"]))


def test_cumulative_uncertainty_treats_shared_components_as_fully_correlated_across_cycles():
    d = [4.0] * 6
    # shared calibration 10 % over six cycles: 10 % cumulative (not 10 %/√6)
    assert bg.cumulative_rel_uncertainty(d, [0.10] * 6, [0.0] * 6) >= 0.10 - 1e-12
    assert bg.cumulative_rel_uncertainty(d, [0.10] * 6, [0.0] * 6) == pytest.approx(0.10)
    # independent-only 15 % per cycle: 15 %/√6
    assert bg.cumulative_rel_uncertainty(d, [0.0] * 6, [0.15] * 6) == pytest.approx(0.15 / math.sqrt(6))
    # both: sampled with one shared error per patient and independent ones per cycle
    rng = np.random.default_rng(3)
    dd = np.array([3.0, 4.0, 5.0, 4.5, 3.5, 4.2])
    n = 400_000
    shared = 0.10 * rng.standard_normal((n, 1))
    ind = 0.15 * rng.standard_normal((n, dd.size))
    total = (dd * (1 + shared + ind)).sum(axis=1)
    mc = float(np.std(total) / dd.sum())
    assert bg.cumulative_rel_uncertainty(dd, [0.10] * 6, [0.15] * 6) == pytest.approx(mc, rel=0.01)
    # two named shared components, each fully correlated across cycles, independent of each other
    got = bg.cumulative_rel_uncertainty(d, {"calibration": [0.06] * 6, "recovery": [0.08] * 6}, [0.0] * 6)
    assert got == pytest.approx(0.10)


def test_cumulative_uncertainty_refuses_bad_input_by_name():
    with pytest.raises(InputError, match="independent_rel"):
        bg.cumulative_rel_uncertainty([1.0, 2.0], [0.1, 0.1], [0.1])
    with pytest.raises(InputError, match="doses"):
        bg.cumulative_rel_uncertainty([1.0, -2.0], [0.1, 0.1], [0.1, 0.1])
    with pytest.raises(InputError, match="shared"):
        bg.cumulative_rel_uncertainty([1.0, 2.0], [0.1, math.nan], [0.1, 0.1])


# --- bounded, physical intervals ----------------------------------------------------------------
# The demo's renal pelvis (small phantom, seed 0): fast urine transit, a late point from spill-in.
PELVIS_T = (5.690159025630987, 24.32722282409668, 96.46116756616097, 192.35916137695312)
PELVIS_Y = (3947449.0995316287, 631241.0826771554, 68485.09010886875, 26112.834652928497)


def test_renal_pelvis_tia_interval_is_unbounded_not_a_number_of_1e55():
    """Before issue 15 the profile search found an 'upper bound' of 1.3e55 Bq·h (rel. uncertainty 4e46)."""
    a_adm = 7.4e9
    limit = physical_tia_limit_Bq_h(a_adm, LAM)
    res = fit_tac(PELVIS_T, PELVIS_Y, region="renal_pelvis_left", administered_activity_Bq=a_adm)
    lo, hi = res.tia_ci95_Bq_h
    assert "ci_unbounded" in res.flags
    assert math.isnan(hi) and math.isnan(res.tia_rel_uncertainty)
    assert 0.0 <= lo <= res.tia_Bq_h < limit
    assert res.parameters["physical_limit_Bq_h"] == pytest.approx(limit)
    # the budget keeps it unbounded, for the TIA and the dose
    b = bg.region_budget(res, volume_mL=6.7, calibration_rel=0.05, partial_volume="gtm", fwhm_mm=11.0,
                        decay_constant_per_h=LAM, limit_Bq_h=limit)
    assert "ci_unbounded" in b.flags and math.isnan(b.tia_ci95_Bq_h[1]) and math.isnan(b.dose_factor_ci95[1])
    assert math.isnan(b.tia_total_rel) and math.isnan(b.dose_total_rel)
    fitted = bg.apply_budget(res, b)
    assert math.isnan(fitted.tia_rel_uncertainty) and "ci_unbounded" in fitted.flags


def test_profile_search_stops_at_the_physical_limit():
    """With a limit just above the TIA the profile cannot close below it: unbounded, never above the limit."""
    fit = _fit()
    tight = fit_tac(fit.times_h, fit.activities_Bq, administered_activity_Bq=fit.tia_Bq_h * LAM * 1.0005)
    assert "ci_unbounded" in tight.flags and math.isnan(tight.tia_ci95_Bq_h[1])
    assert fit.tia_ci95_Bq_h[1] < physical_tia_limit_Bq_h(7.4e9, LAM)


def test_bounded_interval_rules():
    lo, hi, rel, flags = bounded_interval(10.0, 5.0, math.inf, limit_Bq_h=1e3)
    assert math.isnan(hi) and math.isnan(rel) and flags == ("ci_unbounded",)
    lo, hi, rel, flags = bounded_interval(10.0, 5.0, 2e3, limit_Bq_h=1e3)
    assert hi == 1e3 and "ci_clipped_at_physical_limit" in flags
    assert rel > MAX_REPORTED_REL_UNCERTAINTY or math.isnan(rel)
    assert "rel_uncertainty_above_10" in flags and math.isnan(rel)
    lo, hi, rel, flags = bounded_interval(10.0, -1.0, 12.0)
    assert lo == 0.0 and rel == pytest.approx(12.0 / (2 * 1.959963984540054 * 10.0)) and flags == ()
    assert bounded_interval(2e3, 1e3, 3e3, limit_Bq_h=1e3)[3][0] == "tia_above_physical_limit"
    with pytest.raises(InputError, match="administered_activity_Bq"):
        physical_tia_limit_Bq_h(-1.0, LAM)


def test_dose_columns_follow_the_budget_and_leave_an_unbounded_upper_bound_empty():
    fit = _fit()
    bounded = bg.region_budget(fit, volume_mL=150.0, calibration_rel=0.05, partial_volume="gtm", fwhm_mm=11.0,
                               decay_constant_per_h=LAM)
    pelvis = fit_tac(PELVIS_T, PELVIS_Y, region="renal_pelvis_left", administered_activity_Bq=7.4e9)
    open_ = bg.region_budget(pelvis, volume_mL=6.7, calibration_rel=0.05, partial_volume="gtm", fwhm_mm=11.0,
                             decay_constant_per_h=LAM)
    rel, ci, flags = bg.dose_uncertainty_columns({"kidney_left": bounded, "renal_pelvis_left": open_},
                                                 {"kidney_left": 4.0, "renal_pelvis_left": 1.0})
    assert rel == {"kidney_left": pytest.approx(bounded.dose_total_rel)}
    lo, hi = ci["kidney_left"]
    assert lo < 4.0 < hi
    # the 95 % interval is about ±1.96 u in ln D for a near-symmetric fit interval
    assert math.log(hi / lo) / (2 * 1.959964) == pytest.approx(bounded.dose_total_rel, rel=0.1)
    assert ci["renal_pelvis_left"][1] is None and "ci_unbounded" in flags["renal_pelvis_left"]
    assert "kidney_left" not in flags
    rows = bg.budget_rows({"kidney_left": bounded})
    assert set(rows[0]) == set(bg.BUDGET_COLUMNS)
    assert rows[0]["dose_rel_uncertainty"] ** 2 == pytest.approx(
        sum(rows[0][f"{c}_dose_rel"] ** 2 for c in bg.COMPONENT_NAMES))


def test_named_defaults_can_be_replaced_and_unknown_keys_are_refused_by_name():
    from LuDosimetryLib.pipeline import settings_from_parameters

    with pytest.raises(InputError, match=r"unknown key.*bogus"):
        settings_from_parameters({"uncertainty_defaults": {"bogus": 1.0}})
    with pytest.raises(InputError, match="registration_mm"):
        bg.BudgetDefaults(registration_mm=-1.0)
    given = bg.BudgetDefaults.from_mapping({"registration_mm": 1.0, "calibration_rel": 0.03, "boundary_mm": 0.5})
    b = bg.region_budget(_fit(), volume_mL=150.0, calibration_rel=0.0, partial_volume="gtm", fwhm_mm=11.0,
                         decay_constant_per_h=LAM, defaults=given)
    assert not b.component("registration").default and not b.component("volume").default
    assert b.component("calibration").input_rel == 0.03 and not b.component("calibration").default
    assert b.component("recovery").default  # still the model with DEFAULT_FWHM_REL
    half = bg.region_budget(_fit(), volume_mL=150.0, calibration_rel=0.0, partial_volume="gtm", fwhm_mm=11.0,
                            decay_constant_per_h=LAM, defaults=bg.BudgetDefaults(registration_mm=2.0))
    assert b.component("registration").input_rel == pytest.approx(half.component("registration").input_rel / 2)


def test_pipeline_budget_has_no_recovery_term_when_recovery_corrected_nothing():
    """partial_volume='recovery' without the camera's curve corrects nothing (the TAC stage warns), so its
    budget is that of no correction: no recovery uncertainty, no recovery term in the volume sensitivity."""
    from datetime import datetime
    from types import SimpleNamespace

    import SimpleITK as sitk

    from LuDosimetryLib.model import Administration, Segmentation
    from LuDosimetryLib.pipeline import settings_from_parameters, uncertainty_budgets

    img = sitk.Image(4, 4, 4, sitk.sitkUInt8)
    img.SetSpacing((4.0, 4.0, 4.0))
    seg = Segmentation(img, None)
    admin = Administration("Lu-177", "PSMA-617", datetime(2026, 3, 2, 9, 0), 7.4e9)
    tacs = [SimpleNamespace(region="kidney_left", volume_mL=150.0)]
    budgets = {pv: uncertainty_budgets([_fit()], tacs, seg, admin, settings=settings_from_parameters(
        {"partial_volume": pv}))[1]["kidney_left"] for pv in ("recovery", "none", "gtm")}
    assert budgets["recovery"].component("recovery").input_rel == 0.0
    assert budgets["recovery"].dose_total_rel == pytest.approx(budgets["none"].dose_total_rel, rel=1e-12)
    assert budgets["gtm"].component("recovery").input_rel > 0  # a correction applied has its term
