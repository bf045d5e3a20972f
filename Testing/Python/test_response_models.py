"""Firth logistic regression, Cox regression, Kaplan–Meier median CI and Clopper–Pearson intervals
against published closed forms and the reference packages (statsmodels, lifelines)."""

import math

import numpy as np
import pytest

from LuDosimetryLib.errors import InputError
from LuDosimetryLib.response.biomarker import logistic_regression
from LuDosimetryLib.response.cox import cox_regression
from LuDosimetryLib.response.firth import firth_logistic_regression, penalised_score
from LuDosimetryLib.response.survival import kaplan_meier, median_ci95
from LuDosimetryLib.trial.endpoints import clopper_pearson


def test_firth_equals_the_half_corrected_2x2_log_odds_ratio_under_separation():
    # Heinze & Schemper 2002: with one binary covariate Firth's slope is the log odds ratio with ½
    # added to each cell. Exposed: 12 responders, 0 non-responders (quasi-complete separation);
    # unexposed: 3 responders, 7 non-responders → log((12.5·7.5)/(0.5·3.5))
    x = np.array([0] * 10 + [1] * 12)
    y = np.array([1] * 3 + [0] * 7 + [1] * 12)
    try:  # ordinary ML: no finite estimate (singular information or a diverging slope)
        ml = logistic_regression(x, y)
        ml_diverges = not ml.converged or abs(ml.coefficients[1]) > 15
    except InputError:
        ml_diverges = True
    assert ml_diverges
    f = firth_logistic_regression(x, y)
    assert f.separated
    assert f.coefficients[1] == pytest.approx(math.log(12.5 * 7.5 / (0.5 * 3.5)), abs=1e-8)
    assert f.coefficients[0] == pytest.approx(math.log(3.5 / 7.5), abs=1e-8)
    assert f.slope_ci95[0] < f.coefficients[1] < f.slope_ci95[1] and math.isfinite(f.slope_ci95[1])


#: logistf's ``sex2`` data (Heinze & Schemper 2002: urinary tract infection case–control study, 239 women),
#: as counts of identical rows "case,age,oc,vic,vicl,vis,dia"
SEX2 = {"0,0,0,0,0,1,0": 1, "0,0,0,1,0,0,0": 2, "0,0,0,1,0,1,0": 1, "0,0,0,1,1,0,0": 8, "0,0,0,1,1,1,0": 18,
        "0,0,1,0,0,0,0": 42, "0,0,1,0,0,1,0": 1, "0,0,1,1,0,0,0": 1, "0,0,1,1,1,0,0": 5, "0,0,1,1,1,1,0": 6,
        "0,1,0,1,1,0,0": 2, "0,1,0,1,1,1,0": 4, "0,1,1,0,0,0,0": 14, "0,1,1,0,0,1,0": 1, "0,1,1,1,0,0,0": 1,
        "0,1,1,1,1,1,0": 2, "1,0,0,0,0,1,0": 1, "1,0,0,1,0,0,0": 14, "1,0,0,1,0,1,0": 3, "1,0,0,1,1,0,0": 10,
        "1,0,0,1,1,1,0": 12, "1,0,0,1,1,1,1": 1, "1,0,1,0,0,0,0": 44, "1,0,1,0,0,0,1": 3, "1,0,1,1,0,0,0": 15,
        "1,0,1,1,0,0,1": 1, "1,0,1,1,0,1,0": 2, "1,0,1,1,1,0,0": 7, "1,0,1,1,1,1,0": 3, "1,1,0,1,0,0,0": 2,
        "1,1,0,1,0,1,0": 1, "1,1,0,1,0,1,1": 1, "1,1,0,1,1,0,0": 1, "1,1,0,1,1,1,1": 1, "1,1,1,0,0,0,0": 5,
        "1,1,1,1,0,0,0": 3}


def test_firth_equals_logistf_on_the_sex2_data():
    # R logistf(case ~ age + oc + vic + vicl + vis + dia, data = sex2): coefficients (intercept first),
    # profile penalised-likelihood 95 % intervals and penalised log-likelihood, as published with the
    # data (logistf documentation; firthlogist's test reproduces them)
    rows = np.array([[int(v) for v in k.split(",")] for k, n in SEX2.items() for _ in range(n)])
    assert rows.shape == (239, 7) and rows[:, 0].sum() == 130
    f = firth_logistic_regression(rows[:, 1:], rows[:, 0])
    coef = [0.12025405, -1.10598131, -0.06881673, 2.26887464, -2.11140817, -0.78831694, 3.09601166]
    ci = [(-0.8185591, 1.07315122), (-1.9737884, -0.30742514), (-0.9414363, 0.78920202), (1.2730216, 3.43543273),
          (-3.2608611, -1.11773495), (-1.6080879, 0.01518468), (0.7745682, 8.03029352)]
    np.testing.assert_allclose(f.coefficients, coef, rtol=1e-6)
    np.testing.assert_allclose(f.ci95, ci, rtol=1e-6)
    assert f.penalised_log_likelihood == pytest.approx(-132.5394, abs=5e-5)


def test_firth_solves_the_penalised_score_equations_on_separated_dose_data():
    dose = np.array([8.0, 11, 13, 15, 17, 19, 24, 26, 29, 33, 38, 41])
    resp = (dose > 20).astype(int)  # complete separation: ML has no finite estimate
    f = firth_logistic_regression(dose, resp)
    design = np.column_stack([np.ones_like(dose), dose])
    assert np.max(np.abs(penalised_score(design, resp.astype(float), np.array(f.coefficients)))) < 1e-9
    assert f.separated and f.coefficients[1] > 0 and f.slope_p_value < 0.05
    assert math.isfinite(f.coefficients[1]) and f.odds_ratio_ci95[0] > 1


def test_firth_approaches_ml_without_separation():
    import statsmodels.api as sm

    rng = np.random.default_rng(3)
    dose = rng.lognormal(np.log(20), 0.5, 400)
    resp = (rng.uniform(size=400) < 1 / (1 + np.exp(-(dose - 20) / 6))).astype(int)
    f = firth_logistic_regression(dose, resp)
    ml = sm.Logit(resp, sm.add_constant(dose)).fit(disp=0)
    # the bias correction is O(1/n): about 1 % of the slope at n = 400, a fraction of its SE
    assert abs(f.coefficients[1] - ml.params[1]) < 0.03 * abs(ml.params[1])
    assert abs(f.coefficients[1] - ml.params[1]) < 0.2 * ml.bse[1]
    assert abs(f.coefficients[1]) < abs(ml.params[1])  # Firth shrinks towards 0


def _survival_data(seed=1, n=120, ties=False):
    rng = np.random.default_rng(seed)
    dose = rng.lognormal(np.log(20), 0.5, n)
    t = rng.exponential(1 / (0.1 * np.exp(-0.03 * (dose - 20))))
    c = rng.uniform(5, 30, n)
    time, event = np.minimum(t, c), (t <= c).astype(int)
    return (np.round(time) + 1 if ties else time), event, dose, rng.normal(size=n)


@pytest.mark.parametrize("ties", [False, True])
def test_cox_equals_lifelines(ties):
    import pandas as pd
    from lifelines import CoxPHFitter
    from lifelines.statistics import proportional_hazard_test

    time, event, dose, z = _survival_data(ties=ties)
    ours = cox_regression(time, event, np.column_stack([dose, z]), names=["dose", "z"])
    df = pd.DataFrame({"T": time, "E": event, "dose": dose, "z": z})
    ref = CoxPHFitter().fit(df, "T", "E", fit_options={"precision": 1e-14, "r_precision": 1e-14, "max_steps": 500})
    np.testing.assert_allclose(ours.coefficients, ref.params_.values, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(ours.standard_errors, ref.standard_errors_.values, rtol=1e-6)
    assert ours.log_likelihood == pytest.approx(ref.log_likelihood_, rel=1e-9)
    ph = proportional_hazard_test(ref, df, time_transform="rank")
    if not ties:  # with ties lifelines ranks tied events by row order; we rank them in the same way only untied
        np.testing.assert_allclose(ours.ph_test_statistic, ph.test_statistic.values, rtol=1e-6)
        np.testing.assert_allclose(ours.ph_test_p_value, np.asarray(ph.p_value), rtol=1e-6)


def test_cox_refuses_no_events_and_constant_covariate():
    with pytest.raises(InputError, match="no events"):
        cox_regression([1, 2, 3], [0, 0, 0], [1.0, 2.0, 3.0])
    with pytest.raises(InputError, match="constant"):
        cox_regression([1, 2, 3], [1, 0, 1], [2.0, 2.0, 2.0])


def test_km_median_ci_equals_lifelines():
    from lifelines import KaplanMeierFitter
    from lifelines.utils import median_survival_times

    time, event, _, _ = _survival_data(seed=5, n=60, ties=True)
    km = kaplan_meier(time, event)
    ref = KaplanMeierFitter().fit(time, event)
    ci = median_survival_times(ref.confidence_interval_)
    assert km.median == pytest.approx(ref.median_survival_time_)
    assert median_ci95(km) == pytest.approx((float(ci.iloc[0, 0]), float(ci.iloc[0, 1])))


@pytest.mark.parametrize(("k", "n"), [(0, 3), (1, 3), (3, 3), (7, 12), (0, 0)])
def test_clopper_pearson_equals_statsmodels(k, n):
    from statsmodels.stats.proportion import proportion_confint

    lo, hi = clopper_pearson(k, n)
    if n == 0:
        assert math.isnan(lo) and math.isnan(hi)
        return
    ref = proportion_confint(k, n, alpha=0.05, method="beta")
    assert (lo, hi) == pytest.approx((float(ref[0]), float(ref[1])), abs=1e-12)
