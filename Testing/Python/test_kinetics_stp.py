"""Single-time-point methods against their analytic identities (physics.md, section F)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from LuDosimetryLib.errors import InputError
from LuDosimetryLib.kinetics.models import mono_exponential
from LuDosimetryLib.kinetics.priors import HalfLifePrior
from LuDosimetryLib.kinetics.stp import hanscheid_tia, madsen_tia, single_time_point, stp_regions

LN2 = math.log(2.0)


@pytest.mark.parametrize("teff", [20.0, 40.0, 70.0])
@pytest.mark.parametrize("factor", [1.0, 2.0])
def test_hanscheid_is_exact_at_teff_and_twice_teff(teff, factor):
    m = mono_exponential(3e8, LN2 / teff)
    t = factor * teff
    assert hanscheid_tia(m.activity(t), t) == pytest.approx(m.integral(), rel=1e-12)


@pytest.mark.parametrize(("ratio_t_teff", "published"), [
    (0.5, 0.707), (0.75, 0.892), (1.25, 1.051), (1.5, 1.061), (2.5, 0.884), (3.0, 0.750)])
def test_hanscheid_ratio_matches_physics_table(ratio_t_teff, published):
    teff = 40.0
    m = mono_exponential(1.0, LN2 / teff)
    t = ratio_t_teff * teff
    assert hanscheid_tia(m.activity(t), t) / m.integral() == pytest.approx(published, abs=5e-4)


def test_hanscheid_overestimates_by_at_most_6_2_percent_between_teff_and_twice_teff():
    teff = 35.0
    m = mono_exponential(1.0, LN2 / teff)
    t = np.linspace(teff, 2 * teff, 2001)
    ratio = np.array([hanscheid_tia(m.activity(x), x) for x in t]) / m.integral()
    assert ratio.min() >= 1.0 - 1e-12
    assert ratio.max() <= 1.062  # physics.md: at most +6.2 %
    assert ratio.max() == pytest.approx(2 / (math.e * LN2), rel=1e-6)  # analytic maximum at x = 1
    assert t[np.argmax(ratio)] / teff == pytest.approx(1 / LN2, abs=2e-3)


@pytest.mark.parametrize("t", [5.0, 24.0, 96.0, 192.0])
def test_madsen_is_exact_when_teff_is_right(t):
    m = mono_exponential(5e7, LN2 / 42.0)
    assert madsen_tia(m.activity(t), t, 42.0) == pytest.approx(m.integral(), rel=1e-12)


def test_madsen_error_follows_analytic_factor_when_teff_is_wrong():
    lam_true, lam_used, t = LN2 / 40.0, LN2 / 50.0, 48.0
    m = mono_exponential(1.0, lam_true)
    expected = math.exp((lam_used - lam_true) * t) * lam_true / lam_used
    assert madsen_tia(m.activity(t), t, 50.0) / m.integral() == pytest.approx(expected, rel=1e-12)


def test_prior_stp_equals_madsen_at_prior_median_and_gives_an_interval():
    prior = HalfLifePrior("kidney", 35.5, 0.3)
    m = mono_exponential(1e8, LN2 / 35.5)
    res = single_time_point(48.0, m.activity(48.0), method="prior", prior=prior, region="kidney_left")
    assert res.tia_Bq_h == pytest.approx(m.integral(), rel=1e-6)
    lo, hi = res.tia_ci95_Bq_h
    assert lo < res.tia_Bq_h < hi and res.ci_method == "posterior"
    wide = single_time_point(48.0, m.activity(48.0), method="prior", prior=HalfLifePrior("kidney", 35.5, 0.6))
    assert wide.tia_rel_uncertainty > res.tia_rel_uncertainty


def test_stp_result_model_integrates_to_the_stp_tia():
    res = single_time_point(24.0, 2e7, method="hanscheid")
    assert res.model.integral() == pytest.approx(res.tia_Bq_h, rel=1e-12)
    assert res.model.activity(24.0) == pytest.approx(2e7, rel=1e-12)
    late = single_time_point(200.0, 2e7, method="hanscheid")  # t beyond T½,phys: T_eff = t/2 branch
    assert late.model.integral() == pytest.approx(late.tia_Bq_h, rel=1e-12)


def test_stp_method_is_selectable_per_region():
    meas = {"kidney_left": (48.0, 1e7), "lesion_1": (96.0, 2e6)}
    out = stp_regions(meas, {"kidney_left": "hanscheid", "lesion_1": "madsen"}, kinds={"lesion_1": "lesion"})
    by = {r.region: r for r in out}
    assert by["kidney_left"].model_name == "stp_hanscheid"
    assert by["kidney_left"].tia_Bq_h == pytest.approx(1e7 * 2 * 48 / LN2)
    assert by["lesion_1"].model_name == "stp_madsen"


def test_stp_bad_input_raises():
    with pytest.raises(InputError, match="unknown STP method"):
        single_time_point(24.0, 1.0, method="guess")
    with pytest.raises(InputError, match="after injection"):
        single_time_point(0.0, 1.0, method="hanscheid")
    with pytest.raises(InputError, match="negative activity"):
        single_time_point(24.0, -1.0, method="hanscheid")
    with pytest.raises(InputError, match="effective_half_life_h"):
        madsen_tia(1.0, 24.0, 0.0)
    with pytest.raises(InputError, match="exceeds the physical half-life"):
        single_time_point(24.0, 1.0, method="madsen", effective_half_life_h=500.0)
