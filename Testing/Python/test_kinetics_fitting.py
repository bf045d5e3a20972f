"""Kinetic fits: analytic TIA recovery, identifiability rule, constraints, tail flag, coverage, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

from LuDosimetryLib.errors import ConsistencyError, InputError
from LuDosimetryLib.kinetics.fitting import fit_rows, fit_tac
from LuDosimetryLib.kinetics.models import KineticModel, SumOfExponentials, mono_exponential, uptake_washout
from LuDosimetryLib.kinetics.uncertainty import ScaleUncertainty, combine_scale_uncertainty
from LuDosimetryLib.nuclides import get_nuclide
from LuDosimetryLib.results import FITS_COLUMNS

LN2 = math.log(2.0)
LAM_P = LN2 / 159.528  # ICRP-107 Lu-177 half-life (physics.md), typed here as the independent reference
PROTOCOL_H = np.array([5.0, 24.0, 96.0, 192.0])


def _tri(a1, b1, a2, b2, bu):
    return SumOfExponentials((a1, a2, -(a1 + a2)), (b1, b2, bu))


TRUE_CURVES = {
    "mono": (mono_exponential(2e8, LN2 / 40.0), 5),
    "uptake_washout": (uptake_washout(1.5e8, LN2 / 45.0, LN2 / 2.0), 7),
    "tri": (_tri(1e8, LN2 / 60.0, 8e7, LN2 / 8.0, LN2 / 1.0), 11),
}


@pytest.mark.parametrize("model", ["mono", "uptake_washout", "tri"])
def test_fit_recovers_analytic_tia_on_dense_noiseless_data(model):
    curve, n = TRUE_CURVES[model]
    t = np.geomspace(0.5, 400.0, n)
    res = fit_tac(t, curve.activity(t), models=(model,), interval="none")
    truth = sum(a / b for a, b in curve.exponential_terms())
    assert res.model_name == model
    assert abs(res.tia_Bq_h / truth - 1) < 1e-3


def test_fixed_uptake_model_recovers_tia_when_uptake_rate_is_right():
    curve = uptake_washout(1e8, LN2 / 30.0, LN2 / 1.5)
    t = np.geomspace(1.0, 300.0, 5)
    res = fit_tac(t, curve.activity(t), models=("uptake_washout_fixed",), uptake_half_life_h=1.5, interval="none")
    assert abs(res.tia_Bq_h / (1e8 * (30.0 / LN2 - 1.5 / LN2)) - 1) < 1e-3
    assert "uptake_rate_fixed" in res.flags


def test_trapezoid_recovers_physical_decay_curve_with_dense_sampling():
    a0 = 1e7
    t = np.concatenate([[0.01], np.linspace(0.5, 900.0, 1200)])
    res = fit_tac(t, a0 * np.exp(-LAM_P * t), models=("trapezoid",))
    assert abs(res.tia_Bq_h / (a0 / LAM_P) - 1) < 1e-3
    assert res.model.exponential_terms() is None


def test_trapezoid_rules_match_hand_calculation():
    t, y = np.array([2.0, 10.0, 30.0]), np.array([4.0, 8.0, 2.0])
    inner = 0.5 * (4 + 8) * 8 + 0.5 * (8 + 2) * 20
    zero = fit_tac(t, y, models=("trapezoid",))
    assert zero.tia_Bq_h == pytest.approx(0.5 * 4 * 2 + inner + 2 / LAM_P, rel=1e-12)
    const = fit_tac(t, y, models=("trapezoid",), first_segment="constant")
    assert const.tia_Bq_h == pytest.approx(4 * 2 + inner + 2 / LAM_P, rel=1e-12)
    clear = fit_tac(t, y, models=("trapezoid",), tail="clearance")
    lam = math.log(8 / 2) / 20
    assert clear.tia_Bq_h == pytest.approx(0.5 * 4 * 2 + inner + 2 / lam, rel=1e-12)
    assert clear.tail_fraction == pytest.approx((2 / lam) / clear.tia_Bq_h, rel=1e-12)


@pytest.mark.parametrize(("n", "expected"), [
    (4, ["mono", "uptake_washout_fixed"]),
    (5, ["mono", "uptake_washout"]),
    (7, ["mono", "uptake_washout", "tri"]),
])
def test_auto_offers_only_models_with_k_at_most_n_minus_2(n, expected):
    curve = uptake_washout(1e8, LN2 / 40.0, LN2 / 3.0)
    t = np.geomspace(2.0, 250.0, n)
    res = fit_tac(t, curve.activity(t) * (1 + 0.01 * np.cos(np.arange(n))), interval="none")
    assert res.parameters["models_considered"] == expected
    assert res.n_params <= n - 2


def test_auto_with_three_points_fits_mono_and_flags_few_points():
    t = np.array([24.0, 96.0, 192.0])
    res = fit_tac(t, 1e6 * np.exp(-LN2 / 50 * t), interval="none")
    assert res.model_name == "mono" and "few_points" in res.flags


def test_effective_rate_is_constrained_to_physical_decay_not_clipped():
    t = np.array([5.0, 24.0, 96.0, 192.0])
    y = np.array([1.0e6, 1.1e6, 1.2e6, 1.25e6])  # rising: free fit would give λ < λp
    sig = 0.05 * y
    res = fit_tac(t, y, models=("mono",), sigma_Bq=sig)
    (a, b), = res.model.exponential_terms()
    assert b == pytest.approx(LAM_P, rel=1e-6)
    assert "rate_at_physical_limit" in res.flags
    g = np.exp(-LAM_P * t)
    w = 1 / sig**2
    a_constrained = np.sum(w * y * g) / np.sum(w * g * g)  # WLS amplitude at the bound
    assert a == pytest.approx(a_constrained, rel=1e-5)
    assert res.tia_Bq_h == pytest.approx(a_constrained / LAM_P, rel=1e-5)


def test_effective_rate_uses_the_nuclide_given():
    t = np.array([1.0, 2.0, 3.0, 4.0])
    lam = get_nuclide("Ga-68").decay_constant_per_h
    # clears more slowly than 68Ga decays: the effective rate stops at the physical rate of the nuclide given
    res = fit_tac(t, 1e5 * np.exp(-0.8 * lam * t), models=("mono",), nuclide="Ga-68", interval="none")
    assert res.model.exponential_terms()[0][1] == pytest.approx(get_nuclide("Ga-68").decay_constant_per_h, rel=1e-6)


def test_tail_fraction_reported_and_flagged_above_20_percent():
    lam = LN2 / 100.0
    t = np.array([1.0, 4.0, 8.0, 16.0])
    res = fit_tac(t, 1e6 * np.exp(-lam * t), models=("mono",), interval="none")
    assert res.tail_fraction == pytest.approx(math.exp(-lam * 16.0), rel=1e-6)
    assert "tail_fraction_above_20pct" in res.flags
    t2 = np.array([5.0, 24.0, 96.0, 192.0])
    res2 = fit_tac(t2, 1e6 * np.exp(-LN2 / 20 * t2), models=("mono",), interval="none")
    assert res2.tail_fraction == pytest.approx(math.exp(-LN2 / 20 * 192), rel=1e-5)
    assert "tail_fraction_above_20pct" not in res2.flags


@pytest.mark.slow
def test_profile_t_intervals_cover_truth_at_nominal_rate_over_1000_replicates():
    """Poisson-like noise (σ ∝ √A), σ unknown to the fit: profile-t with 2 degrees of freedom."""
    truth = mono_exponential(1e8, LN2 / 40.0)
    f = truth.activity(PROTOCOL_H)
    sig = 0.08 * np.sqrt(f * f[0])
    rng = np.random.default_rng(3)
    hits = 0
    n_rep = 1000
    for _ in range(n_rep):
        y = np.maximum(f + sig * rng.standard_normal(4), 0.0)
        lo, hi = fit_tac(PROTOCOL_H, y, models=("mono",)).tia_ci95_Bq_h
        hits += lo <= truth.integral() <= hi
    assert 0.932 <= hits / n_rep <= 0.968


def test_known_sigma_gives_narrower_chi2_profile_than_unknown_scale():
    truth = mono_exponential(1e8, LN2 / 40.0)
    y = truth.activity(PROTOCOL_H) * np.array([1.03, 0.97, 1.02, 0.99])
    known = fit_tac(PROTOCOL_H, y, models=("mono",), sigma_Bq=0.05 * y)
    assert known.ci_method == "profile-chi2"
    lo, hi = known.tia_ci95_Bq_h
    assert lo < known.tia_Bq_h < hi
    unknown = fit_tac(PROTOCOL_H, y, models=("mono",))
    assert unknown.ci_method == "profile-t"


def test_bootstrap_interval_brackets_the_estimate():
    truth = mono_exponential(1e8, LN2 / 40.0)
    y = truth.activity(PROTOCOL_H) * np.array([1.03, 0.97, 1.02, 0.99])
    res = fit_tac(PROTOCOL_H, y, models=("mono",), sigma_Bq=0.05 * y, interval="bootstrap", n_boot=60)
    lo, hi = res.tia_ci95_Bq_h
    assert res.ci_method == "bootstrap" and lo < res.tia_Bq_h < hi


def test_correlated_scale_uncertainty_scales_tia_and_adds_in_quadrature():
    y = mono_exponential(1e8, LN2 / 40.0).activity(PROTOCOL_H) * np.array([1.03, 0.97, 1.02, 0.99])
    a = fit_tac(PROTOCOL_H, y, models=("mono",), sigma_Bq=0.05 * y)
    b = fit_tac(PROTOCOL_H, 1.1 * y, models=("mono",), sigma_Bq=0.05 * 1.1 * y)
    assert b.tia_Bq_h == pytest.approx(1.1 * a.tia_Bq_h, rel=1e-6)
    assert b.tia_rel_uncertainty == pytest.approx(a.tia_rel_uncertainty, rel=1e-4)
    lo, hi, _rel = combine_scale_uncertainty(100.0, 100.0, 100.0, ScaleUncertainty(calibration_rel=0.1))
    assert lo == pytest.approx(100 * math.exp(-1.959964 * 0.1), rel=1e-6)
    assert hi == pytest.approx(100 * math.exp(1.959964 * 0.1), rel=1e-6)
    c = fit_tac(PROTOCOL_H, y, models=("mono",), sigma_Bq=0.05 * y,
                scale=ScaleUncertainty(calibration_rel=0.05, recovery_rel=0.03, volume_rel=0.04))
    assert c.tia_rel_uncertainty > a.tia_rel_uncertainty
    assert c.tia_rel_uncertainty**2 == pytest.approx(a.tia_rel_uncertainty**2 + 0.05**2 + 0.03**2 + 0.04**2, rel=0.15)


def test_fit_rows_have_the_fits_csv_columns():
    res = fit_tac(PROTOCOL_H, 1e6 * np.exp(-LN2 / 30 * PROTOCOL_H), region="kidney_left", kind="organ", cycle=1)
    row = fit_rows([res])[0]
    assert list(row)[: len(FITS_COLUMNS)] == list(FITS_COLUMNS)
    assert row["tia_MBq_h"] == pytest.approx(res.tia_Bq_h / 1e6)
    assert row["region"] == "kidney_left"


# --- bad input ----------------------------------------------------------------------------------
def test_too_few_points_for_a_model_is_an_error_naming_the_model():
    with pytest.raises(InputError, match="too few points for model 'uptake_washout'"):
        fit_tac([5.0, 24.0], [1.0, 2.0], models=("uptake_washout",))


def test_model_choice_requires_k_at_most_n_minus_2():
    with pytest.raises(InputError, match=r"k ≤ n − 2"):
        fit_tac(PROTOCOL_H, [1.0, 2.0, 1.5, 1.0], models=("mono", "uptake_washout"))


def test_non_monotonic_times_raise_consistency_error():
    with pytest.raises(ConsistencyError, match="strictly increasing"):
        fit_tac([5.0, 96.0, 24.0, 192.0], [1.0, 2.0, 3.0, 4.0])


def test_negative_activity_raises_naming_time():
    with pytest.raises(InputError, match=r"negative activity .* time_h=\[24.0\]"):
        fit_tac(PROTOCOL_H, [1.0, -2.0, 3.0, 4.0], region="liver")


def test_nan_activity_raises():
    with pytest.raises(InputError, match="NaN"):
        fit_tac(PROTOCOL_H, [1.0, float("nan"), 3.0, 4.0])


def test_empty_region_raises():
    with pytest.raises(InputError, match="no timepoints"):
        fit_tac([], [], region="lesion_3")


def test_all_zero_activity_raises():
    with pytest.raises(InputError, match="all activities are zero"):
        fit_tac(PROTOCOL_H, [0.0, 0.0, 0.0, 0.0])


def test_length_mismatch_and_bad_sigma_raise():
    with pytest.raises(InputError, match="4 times but 3 activities"):
        fit_tac(PROTOCOL_H, [1.0, 2.0, 3.0])
    with pytest.raises(InputError, match="sigma_Bq"):
        fit_tac(PROTOCOL_H, [1.0, 2.0, 3.0, 4.0], sigma_Bq=[1.0, 0.0, 1.0, 1.0])


def test_unknown_model_and_trapezoid_in_a_choice_raise():
    with pytest.raises(InputError, match="unknown model 'gamma'"):
        fit_tac(PROTOCOL_H, [4.0, 3.0, 2.0, 1.0], models=("gamma",))
    with pytest.raises(InputError, match="trapezoid"):
        fit_tac(PROTOCOL_H, [4.0, 3.0, 2.0, 1.0], models=("mono", "trapezoid"))


def test_exact_fit_without_sigma_has_no_interval_and_says_so():
    res = fit_tac([24.0, 96.0], [2.0, 1.0], models=("mono",))
    assert all(math.isnan(x) for x in res.tia_ci95_Bq_h)
    assert "no_degrees_of_freedom" in res.flags


def test_trapezoid_without_sigma_has_no_interval_and_says_so():
    res = fit_tac(PROTOCOL_H, [4.0, 3.0, 2.0, 1.0], models=("trapezoid",))
    assert math.isnan(res.tia_rel_uncertainty) and "no_noise_estimate" in res.flags


def test_scatter_beyond_stated_sigma_is_flagged():
    y = mono_exponential(1e8, LN2 / 40.0).activity(PROTOCOL_H) * np.array([1.3, 0.7, 1.3, 0.8])
    res = fit_tac(PROTOCOL_H, y, models=("mono",), sigma_Bq=0.01 * y)
    assert "chi2_exceeds_sigma" in res.flags
    ok = fit_tac(PROTOCOL_H, y, models=("mono",), sigma_Bq=0.3 * y)
    assert "chi2_exceeds_sigma" not in ok.flags


@pytest.mark.parametrize("models", [("mono",), ("uptake_washout_fixed",), ("trapezoid",), ("auto",)])
def test_result_model_follows_the_interface_and_integrates_to_the_tia(models):
    y = uptake_washout(1e8, LN2 / 40.0, LN2 / 2.0).activity(PROTOCOL_H)
    res = fit_tac(PROTOCOL_H, y, models=models, interval="none")
    assert isinstance(res.model, KineticModel)
    assert res.model.integral() == pytest.approx(res.tia_Bq_h, rel=1e-9)
    t_last = PROTOCOL_H[-1]
    assert res.model.integral(t_last) / res.tia_Bq_h == pytest.approx(res.tail_fraction, rel=1e-9)


def test_fit_exploding_before_the_first_scan_falls_back_to_the_trapezoid():
    """A transit region seen once, then (after GTM) empty: a mono-exponential through the late points
    back-extrapolates to ~1e21 Bq at injection. No candidate whose curve exceeds 3 × the largest
    measurement before the first scan is kept; with none left the trapezoid integrates what was
    measured, flagged. Expected TIA by hand: trapezoids from A(0) = 0 plus the physical tail."""
    t = np.array([5.737897748597705, 24.674911825710556, 96.90230081489531, 192.49632218944652])
    y = np.array([3943577.9869846418, 0.0, 0.0, 2988.1154998575726])
    lam_p = math.log(2) / (get_nuclide("Lu-177").half_life_s / 3600)
    expected = (0.5 * t[0] * y[0] + 0.5 * (t[1] - t[0]) * y[0] + 0.5 * (t[3] - t[2]) * y[3] + y[3] / lam_p)
    r = fit_tac(t, y, region="renal_pelvis_right", administered_activity_Bq=7.4e9)
    assert "implausible_extrapolation" in r.flags
    assert r.tia_Bq_h == pytest.approx(expected, rel=1e-9)
    assert r.tia_Bq_h < 3 * y.max() * t[-1]  # bounded by what was seen, nowhere near 1e21


def test_fit_keeps_a_plausible_candidate_when_another_explodes():
    t = np.array([5.0, 24.0, 96.0, 192.0])
    truth = uptake_washout(4e8, math.log(2) / 30.0, math.log(2) / 1.0)
    y = np.array([truth.activity(x) for x in t])
    r = fit_tac(t, y, region="kidney")
    assert "implausible_extrapolation" not in r.flags
    assert r.model.activity(0.0) <= 3 * y.max()
