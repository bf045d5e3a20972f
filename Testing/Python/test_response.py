"""Dose–response statistics against established implementations (statsmodels, scikit-learn,
lifelines as test-only references) and against definitions computed independently."""

import numpy as np
import pytest

from LuDosimetryLib.cli import main
from LuDosimetryLib.errors import InputError
from LuDosimetryLib.response.biomarker import delong_auc_variance, logistic_regression, roc_curve_auc, youden_threshold
from LuDosimetryLib.response.survival import kaplan_meier, logrank_test
from LuDosimetryLib.response.table import read_response_table


def _dose_response(seed=0, n=60):
    rng = np.random.default_rng(seed)
    dose = rng.lognormal(np.log(20), 0.5, n)
    p = 1 / (1 + np.exp(-(dose - 20) / 5))
    return dose, (rng.uniform(size=n) < p).astype(int)


def test_logistic_regression_equals_statsmodels():
    import statsmodels.api as sm

    dose, resp = _dose_response()
    ours = logistic_regression(dose, resp)
    ref = sm.Logit(resp, sm.add_constant(dose)).fit(disp=0)
    assert ours.coefficients == pytest.approx(tuple(ref.params), rel=1e-7)
    assert ours.standard_errors == pytest.approx(tuple(ref.bse), rel=1e-6)
    assert ours.log_likelihood == pytest.approx(ref.llf, rel=1e-9)
    assert ours.converged


def _delong_bruteforce(scores, y):
    """DeLong's structural components straight from the definition (double loop)."""
    pos, neg = scores[y == 1], scores[y == 0]
    psi = np.array([[1.0 if p > q else 0.5 if p == q else 0.0 for q in neg] for p in pos])
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    return psi.mean(), v10.var(ddof=1) / pos.size + v01.var(ddof=1) / neg.size


def test_auc_equals_sklearn_and_delong_variance_equals_its_definition():
    from sklearn.metrics import roc_auc_score

    dose, resp = _dose_response(seed=2)
    dose = np.round(dose)  # ties, counted one half
    auc, var = delong_auc_variance(dose, resp)
    assert auc == pytest.approx(roc_auc_score(resp, dose), rel=1e-12)
    ref_auc, ref_var = _delong_bruteforce(dose, resp)
    assert auc == pytest.approx(ref_auc) and var == pytest.approx(ref_var, rel=1e-12)
    roc = roc_curve_auc(dose, resp)
    assert roc.auc_ci95[0] < roc.auc < roc.auc_ci95[1]
    assert roc.sensitivity[0] == 0.0 and roc.sensitivity[-1] == 1.0


def test_youden_threshold_separates_separable_data_and_optimism_is_nonnegative():
    dose = np.array([5, 8, 9, 12, 14, 21, 25, 30, 31, 40], float)
    resp = (dose > 15).astype(int)
    y = youden_threshold(dose, resp, n_bootstrap=300, seed=1)
    assert y.threshold == 21 and y.youden_apparent == 1.0 and y.sensitivity == 1.0 and y.specificity == 1.0
    noisy_dose, noisy_resp = _dose_response(seed=4, n=40)
    yn = youden_threshold(noisy_dose, noisy_resp, n_bootstrap=300, seed=1)
    assert yn.optimism > 0 and yn.youden_corrected < yn.youden_apparent


def test_kaplan_meier_and_logrank_equal_lifelines():
    from lifelines import KaplanMeierFitter
    from lifelines.statistics import logrank_test as ll_logrank

    rng = np.random.default_rng(8)
    t_low, t_high = rng.exponential(6, 30).round(1), rng.exponential(12, 30).round(1)
    c_low, c_high = rng.uniform(0, 20, 30).round(1), rng.uniform(0, 20, 30).round(1)
    time = np.concatenate([np.minimum(t_low, c_low), np.minimum(t_high, c_high)])
    event = np.concatenate([t_low <= c_low, t_high <= c_high]).astype(int)
    group = np.repeat(["low", "high"], 30)
    km = kaplan_meier(time, event)
    ref = KaplanMeierFitter().fit(time, event)
    for t in np.unique(time):
        assert km.at(t) == pytest.approx(float(ref.survival_function_at_times(t).iloc[0]), abs=1e-12)
    ci = ref.confidence_interval_survival_function_
    idx = np.searchsorted(np.asarray(km.times), ci.index.values[1:])
    np.testing.assert_allclose(np.asarray(km.ci95_low)[idx], ci.iloc[1:, 0], atol=1e-6)
    lr = logrank_test(time, event, group)
    ref_lr = ll_logrank(time[group == "low"], time[group == "high"], event[group == "low"], event[group == "high"])
    assert lr.statistic == pytest.approx(ref_lr.test_statistic, rel=1e-9)
    assert lr.p_value == pytest.approx(ref_lr.p_value, rel=1e-7)


def test_kaplan_meier_respects_censoring_by_hand():
    # times 1(event) 2(censored) 3(event) 4(event): S = 3/4, then ×(1 − 1/2) at 3, then 0
    km = kaplan_meier([1, 2, 3, 4], [1, 0, 1, 1])
    assert km.at(1) == 0.75 and km.at(2.5) == 0.75 and km.at(3) == pytest.approx(0.375) and km.at(4) == 0.0
    assert km.median == 3.0


HEADER = ("patient,lesion,dose_Gy,mass_g,psa_baseline_ng_per_mL,psa_best_ng_per_mL,suv_baseline,suv_followup,"
          "volume_baseline_mL,volume_followup_mL,pfs_months,pfs_event\n")


def test_wholebody_dose_is_mass_weighted_and_psa50_is_derived(tmp_path):
    f = tmp_path / "r.csv"
    f.write_text(HEADER + "p1,a,10,1,100,40,10,5,2,1,12,1\np1,b,40,3,100,40,8,8,4,4,12,1\n"
                 "p2,a,5,2,50,60,6,7,3,3,4,1\np3,a,30,1,20,5,9,3,1,0.5,20,0\n")
    pts = {p.patient: p for p in read_response_table(f)}
    assert pts["p1"].wholebody_tumour_dose_Gy == pytest.approx((10 * 1 + 40 * 3) / 4)
    assert pts["p1"].psa_best_change_percent == pytest.approx(-60) and pts["p1"].psa50
    assert not pts["p2"].psa50
    assert pts["p1"].wholebody_change_percent("volume") == pytest.approx(100 * (5 - 6) / 6)


def test_response_table_errors_name_row_and_column(tmp_path):
    f = tmp_path / "r.csv"
    f.write_text(HEADER + "p1,a,10,1,100,,10,5,2,1,12,1\np2,a,5,2,50,60,6,7,3,3,4,1\np3,a,30,1,20,5,9,3,1,1,2,0\n")
    with pytest.raises(InputError, match=r"row 2, column 'psa_best_ng_per_mL': value is missing"):
        read_response_table(f)
    f.write_text(HEADER + "p1,a,ten,1,100,40,10,5,2,1,12,1\n")
    with pytest.raises(InputError, match=r"row 2, column 'dose_Gy': 'ten' is not a number"):
        read_response_table(f)
    f.write_text(HEADER + "p1,a,10,1,100,40,10,5,2,1,12,1\np1,b,10,1,90,40,10,5,2,1,12,1\n")
    with pytest.raises(InputError, match=r"row 3, column 'psa_baseline_ng_per_mL': 90.0 differs"):
        read_response_table(f)
    f.write_text(HEADER + "p1,a,10,1,100,40,10,5,2,1,12,1\np2,a,10,1,100,40,10,5,2,1,12,1\n")
    with pytest.raises(InputError, match="need at least 3 patients"):
        read_response_table(f)


def test_response_command_writes_statistics_and_plots(tmp_path):
    rng = np.random.default_rng(5)
    lines = [HEADER.strip()]
    for p in range(30):
        wb = rng.lognormal(np.log(20), 0.5)
        psa_best = 100 * np.exp(-(wb - 10) / 15 + rng.normal(0, 0.3))
        pfs = rng.exponential(5 + wb / 2)
        for les in range(3):
            d = wb * rng.uniform(0.7, 1.3)
            lines.append(f"p{p},l{les},{d:.3f},{rng.uniform(1, 20):.2f},100,{psa_best:.2f},10,"
                         f"{10 * np.exp(-d / 40):.3f},5,{5 * np.exp(-d / 50):.3f},{min(pfs, 24):.2f},{int(pfs < 24)}")
    table = tmp_path / "resp.csv"
    table.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    assert main(["response", str(table), "--out", str(out), "--bootstrap", "200"]) == 0
    for f in ("response.json", "response.csv", "lesions.csv", "roc.png", "dose_response.png", "kaplan_meier.png",
              "report.html", "run.json"):
        assert (out / f).is_file(), f
    import json

    res = json.loads((out / "response.json").read_text())
    assert res["n_patients"] == 30 and 0.5 < res["roc_psa50"]["auc"] <= 1.0
    assert res["lesion_dose_vs_suv_change_percent"]["rho"] < -0.5  # higher dose, larger SUV decline
