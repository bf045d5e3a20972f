"""LuDosimetryLib.radiobiology against independent integrals and the physics.md table."""

import itertools
import math

import numpy as np
import pytest
from scipy import integrate

from LuDosimetryLib.errors import InputError
from LuDosimetryLib.kinetics.models import SumOfExponentials, mono_exponential, uptake_washout
from LuDosimetryLib.nuclides import get_nuclide
from LuDosimetryLib.radiobiology import (
    add_report_section,
    bed_from_model,
    bed_from_terms,
    bed_Gy,
    eqd2_Gy,
    eubed_Gy,
    g_factor_exponential,
    g_factor_mono_exponential,
    g_factor_numerical,
    g_factor_sampled,
    tissue_parameters,
    total_bed,
)

LN2 = math.log(2.0)


def _lea_catcheside_quad(rate, mu, t_split=(0.0, 20.0, 200.0, 3000.0)):
    """(2/D²)∫₀^∞ R(t)∫₀^t R(w)e^(−μ(t−w)) dw dt by nested scipy quad (independent of the code)."""
    def inner(t):
        return integrate.quad(lambda w: rate(w) * math.exp(-mu * (t - w)), 0.0, t, limit=200,
                              epsabs=0, epsrel=1e-11)[0]
    double = sum(integrate.quad(lambda t: rate(t) * inner(t), lo, hi, limit=200, epsabs=0, epsrel=1e-10)[0]
                 for lo, hi in itertools.pairwise(t_split))
    dose = sum(integrate.quad(rate, lo, hi, limit=200, epsabs=0, epsrel=1e-12)[0]
               for lo, hi in itertools.pairwise(t_split))
    return 2.0 * double / dose**2, dose


@pytest.mark.parametrize(("a", "b"), [
    ((1.0, -1.0), (math.log(2) / 40.0, 0.8)),                   # uptake (λu = 0.8 h⁻¹) and washout (T_eff 40 h)
    ((0.6, 0.4, -1.0), (math.log(2) / 10.0, math.log(2) / 90.0, 1.5)),  # bi-exponential washout with uptake
    ((0.3,), (math.log(2) / 50.0,)),
])
def test_closed_form_g_matches_numerical_lea_catcheside_integral_with_uptake(a, b):
    t_rep = 2.8
    mu = LN2 / t_rep
    a_arr, b_arr = np.array(a), np.array(b)

    def rate(t):
        return float(np.sum(a_arr * np.exp(-b_arr * t)))

    g_ref, d_ref = _lea_catcheside_quad(rate, mu)
    assert np.sum(a_arr / b_arr) == pytest.approx(d_ref, rel=1e-6)
    assert g_factor_exponential(a, b, t_rep) == pytest.approx(g_ref, rel=1e-3)
    # the vectorised numerical route (for models that are not sums of exponentials) agrees too
    g_num = g_factor_numerical(lambda t: np.sum(a_arr[:, None] * np.exp(-np.outer(b_arr, t)), axis=0), t_rep,
                               t_end_h=3000.0, tail_rate_per_h=min(b))
    assert g_num == pytest.approx(g_ref, rel=1e-3)


def test_numerical_g_is_vectorised_over_voxels():
    t = np.linspace(0, 1, 4001) ** 2 * 2000.0
    rates = np.array([LN2 / 20.0, LN2 / 40.0, LN2 / 80.0])
    r = np.exp(-np.outer(rates, t)) * np.array([[1.0], [2.0], [0.5]])
    g = g_factor_sampled(t, r, 2.8, tail_rate_per_h=None)
    # tail beyond 2000 h is negligible for these; compare with G = λ/(λ+μ)
    expected = rates / (rates + LN2 / 2.8)
    np.testing.assert_allclose(g, expected, rtol=1e-3)


def test_mono_exponential_special_case_is_lambda_over_lambda_plus_mu():
    lam, mu = LN2 / 40.0, LN2 / 2.8
    assert g_factor_exponential([5.0], [lam], 2.8) == pytest.approx(lam / (lam + mu), rel=1e-12)
    assert g_factor_mono_exponential(40.0, 2.8) == pytest.approx(lam / (lam + mu), rel=1e-12)


@pytest.mark.parametrize(("dose", "t_eff", "g", "bed"), [
    (23.0, 40.0, 0.065421, 36.311), (23.0, 60.0, 0.044586, 32.072), (10.0, 40.0, 0.065421, 12.516)])
def test_physics_md_bed_table_is_reproduced(dose, t_eff, g, bed):
    kidney = tissue_parameters("kidney")
    assert kidney.alpha_beta_Gy == 2.6 and kidney.repair_half_time_h == 2.8
    lam = LN2 / t_eff
    res = bed_from_terms([dose * lam], [lam], kidney)
    assert res.dose_Gy == pytest.approx(dose, rel=1e-12)
    assert res.g_factor == pytest.approx(g, abs=5e-7)
    assert res.bed_Gy == pytest.approx(bed, abs=5e-4)


def test_kidney_parameters_carry_unverified_status_into_results():
    res = bed_from_terms([1.0], [0.02], tissue_parameters("kidney"))
    assert res.parameter_status == {"alpha_beta_Gy": "unverified", "repair_half_time_h": "unverified"}
    assert len(res.warnings) == 2 and all("unverified" in w for w in res.warnings)
    user = tissue_parameters("kidney", alpha_beta_Gy=2.5, repair_half_time_h=2.8)
    assert user.warnings == () and user.status["alpha_beta_Gy"] == "user"


def test_eqd2_identities():
    ab = 2.6
    # BED of 2-Gy fractions: n·2·(1 + 2/ab); its EQD2 is n·2
    assert eqd2_Gy(10 * 2.0 * (1 + 2.0 / ab), ab) == pytest.approx(20.0, rel=1e-12)
    # EQD2 → BED as α/β → ∞; EQD2 = BED/(1+2/ab)
    assert eqd2_Gy(30.0, 1e9) == pytest.approx(30.0, rel=1e-8)
    b = bed_Gy(np.array([0.0, 5.0, 20.0]), 0.05, ab)
    np.testing.assert_allclose(eqd2_Gy(b, ab) * (1 + 2 / ab), b, rtol=1e-12)
    assert bed_Gy(0.0, 0.3, ab) == 0.0


def test_bed_from_model_agrees_for_analytic_and_non_exponential_models():
    kidney = tissue_parameters("kidney")
    model = uptake_washout(1e8, LN2 / 45.0, 0.9)
    s = 2e-9  # Gy/(Bq·h)
    exact = bed_from_model(model, s, kidney)

    class Tabulated:  # same curve, but not declared as exponentials: numerical route
        def activity(self, t):
            return model.activity(t)

        def integral(self, t0_h=0.0, t1_h=math.inf):
            return model.integral(t0_h, t1_h)

        def exponential_terms(self):
            return None

    numeric = bed_from_model(Tabulated(), s, kidney, t_end_h=3000.0)
    assert numeric.g_factor == pytest.approx(exact.g_factor, rel=1e-3)
    assert numeric.bed_Gy == pytest.approx(exact.bed_Gy, rel=1e-4)
    assert exact.dose_Gy == pytest.approx(s * model.integral(), rel=1e-12)


def test_per_voxel_g_and_bed_are_vectorised():
    lam = np.array([[LN2 / 30.0], [LN2 / 50.0], [LN2 / 70.0]])
    g = g_factor_exponential(lam * 2.0, lam, 2.8)
    np.testing.assert_allclose(g, (lam / (lam + LN2 / 2.8))[:, 0], rtol=1e-12)
    d = np.array([1.0, 2.0, 3.0])
    np.testing.assert_allclose(bed_Gy(d, g, 2.6), d * (1 + g * d / 2.6), rtol=1e-12)


def test_eubed_of_uniform_distribution_is_the_bed_and_lies_below_mean_otherwise():
    assert eubed_Gy(np.full((4, 4, 4), 30.0), 0.1) == pytest.approx(30.0, rel=1e-12)
    # two equal halves at 10 and 50 Gy: −ln((e^(−1)+e^(−5))/2)/0.1 (hand computed)
    expected = -math.log(0.5 * (math.exp(-1.0) + math.exp(-5.0))) / 0.1
    assert eubed_Gy(np.array([10.0, 50.0]), 0.1) == pytest.approx(expected, rel=1e-12)
    assert eubed_Gy(np.array([10.0, 50.0, 99.0]), 0.1, mask=np.array([True, True, False])) == \
        pytest.approx(expected, rel=1e-12)


def test_cycles_add_bed():
    kidney = tissue_parameters("kidney")
    lam = LN2 / 40.0
    c1 = bed_from_terms([4.0 * lam], [lam], kidney)
    c2 = bed_from_terms([6.0 * lam], [lam], kidney)
    tot = total_bed([c1, c2])
    assert tot.bed_Gy == pytest.approx(c1.bed_Gy + c2.bed_Gy)
    assert tot.dose_Gy == pytest.approx(10.0)
    # two cycles give less BED than one cycle of the summed dose (the quadratic term)
    assert tot.bed_Gy < bed_from_terms([10.0 * lam], [lam], kidney).bed_Gy


def test_salivary_bed_without_parameters_names_the_missing_parameter():
    with pytest.raises(InputError, match=r"alpha_beta_Gy: is required for a parotid BED.*no sourced value"):
        tissue_parameters("parotid")
    with pytest.raises(InputError, match=r"repair_half_time_h: is required for a submandibular BED"):
        tissue_parameters("submandibular", alpha_beta_Gy=3.0)
    p = tissue_parameters("parotid", alpha_beta_Gy=3.0, repair_half_time_h=1.5)
    assert p.status == {"alpha_beta_Gy": "user", "repair_half_time_h": "user"}


def test_bad_input_negative_dose_and_non_positive_rates_are_refused():
    with pytest.raises(InputError, match=r"dose_Gy: absorbed dose must be finite and ≥ 0 Gy, got minimum -1"):
        bed_Gy(np.array([2.0, -1.0]), 0.05, 2.6)
    with pytest.raises(InputError, match=r"rates_per_h: rates must be finite and > 0"):
        g_factor_exponential([1.0], [0.0], 2.8)
    with pytest.raises(InputError, match=r"rates_per_h: rates must be finite and > 0"):
        g_factor_exponential([1.0, 1.0], [0.1, -0.2], 2.8)
    with pytest.raises(InputError, match=r"repair_half_time_h: must be finite and > 0 h"):
        g_factor_exponential([1.0], [0.1], 0.0)
    with pytest.raises(InputError, match=r"alpha_beta_Gy: must be finite and > 0 Gy"):
        bed_Gy(1.0, 0.1, -2.0)
    with pytest.raises(InputError):
        SumOfExponentials((1.0,), (0.0,))


def test_physical_decay_is_the_slowest_rate_used_in_tails():
    lu = get_nuclide("Lu-177")
    # a curve that decays physically only: G = λ/(λ+μ) with λ = 177Lu decay constant
    g = g_factor_sampled(np.array([0.0, 1.0]), np.array([1.0, math.exp(-lu.decay_constant_per_h)]), 2.8)
    lam, mu = lu.decay_constant_per_h, LN2 / 2.8
    assert g == pytest.approx(lam / (lam + mu), rel=1e-4)
    assert mono_exponential(1.0, lam).integral() == pytest.approx(1 / lam)


def test_report_section_shows_bed_and_unverified_status():
    from LuDosimetryLib.report import Report
    from LuDosimetryLib.results import RunRecord

    lam = LN2 / 40.0
    res = {"kidney_left": bed_from_terms([23.0 * lam], [lam], tissue_parameters("kidney"))}
    report, record = Report("t"), RunRecord("test")
    add_report_section(report, res, record=record)
    page = report.render()
    assert "36.31" in page and "unverified" in page
    assert len(record.warnings) == 2 and record.warnings[0]["stage"] == "radiobiology"
