"""Agreement statistics against published reference data and established implementations."""

import math

import numpy as np
import pytest
from scipy import stats

from LuDosimetryLib.cli import main
from LuDosimetryLib.concordance.agreement import bland_altman, deming, icc, lin_ccc, passing_bablok, pearson, spearman
from LuDosimetryLib.concordance.nested import nested_bland_altman
from LuDosimetryLib.concordance.table import read_concordance_table
from LuDosimetryLib.errors import InputError

# Bland & Altman, Lancet 1986: first readings of the Wright and mini peak-flow meters (physics.md §I).
WRIGHT = [494, 395, 516, 434, 476, 557, 413, 442, 650, 433, 417, 656, 267, 478, 178, 423, 427]
MINI = [512, 430, 520, 428, 500, 600, 364, 380, 658, 445, 432, 626, 260, 477, 259, 350, 451]
# Shrout & Fleiss 1979, Table 2: six targets × four judges.
SF = [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]]


def test_bland_altman_reproduces_the_1986_lancet_peak_flow_numbers():
    ba = bland_altman(WRIGHT, MINI, k_sd=2.0)
    assert round(ba.bias, 1) == -2.1
    assert round(ba.sd, 1) == 38.8
    # the paper computed its limits from the rounded bias and SD (−2.1 ∓ 2 × 38.8)
    assert ba.loa == pytest.approx((-79.7, 75.5), abs=0.1)
    assert round(round(ba.bias, 1) - 2 * round(ba.sd, 1), 1) == -79.7
    assert round(round(ba.bias, 1) + 2 * round(ba.sd, 1), 1) == 75.5


def test_icc_forms_reproduce_shrout_fleiss_1979():
    res = icc(SF)
    expected = {"ICC(1,1)": 0.17, "ICC(2,1)": 0.29, "ICC(3,1)": 0.71, "ICC(1,k)": 0.44, "ICC(2,k)": 0.62,
                "ICC(3,k)": 0.91}
    for form, value in expected.items():
        assert round(res[form].value, 2) == value, form
    assert res["ICC(2,1)"].mcgraw_wong == "ICC(A,1)"


def test_icc_values_and_intervals_equal_pingouin_on_random_data():
    import pandas as pd
    import pingouin as pg  # test-only reference implementation

    rng = np.random.default_rng(3)
    truth = rng.normal(10, 3, 25)
    data = np.column_stack([truth + rng.normal(0, 1, 25), 1.1 * truth + 0.5 + rng.normal(0, 1, 25)])
    long = pd.DataFrame({"target": np.repeat(np.arange(25), 2), "rater": np.tile([0, 1], 25), "score": data.ravel()})
    ref = pg.intraclass_corr(long, targets="target", raters="rater", ratings="score").set_index("Type")
    ours = icc(data)
    for form, key in [("ICC(1,1)", "ICC(1,1)"), ("ICC(2,1)", "ICC(A,1)"), ("ICC(3,1)", "ICC(C,1)"),
                      ("ICC(1,k)", "ICC(1,k)"), ("ICC(2,k)", "ICC(A,k)"), ("ICC(3,k)", "ICC(C,k)")]:
        assert ours[form].value == pytest.approx(ref.loc[key, "ICC"], abs=1e-10), form
        lo, hi = ref.loc[key, "CI95"]
        assert ours[form].ci95 == pytest.approx((lo, hi), abs=0.006), form  # pingouin rounds CIs to 2 decimals


def test_correlations_equal_scipy_with_fisher_intervals():
    rng = np.random.default_rng(1)
    x = rng.normal(size=40)
    y = 0.6 * x + rng.normal(size=40)
    p = pearson(x, y)
    ref = stats.pearsonr(x, y)
    assert p.r == pytest.approx(ref.statistic) and p.ci95 == pytest.approx(tuple(ref.confidence_interval()), rel=1e-9)
    assert spearman(x, y).r == pytest.approx(stats.spearmanr(x, y).statistic)


def test_lin_ccc_decomposes_and_its_interval_covers_the_population_value():
    rng = np.random.default_rng(7)
    cov = np.array([[1.0, 0.8], [0.8, 1.44]])
    mu = np.array([0.0, 0.3])
    true_ccc = 2 * cov[0, 1] / (cov[0, 0] + cov[1, 1] + (mu[0] - mu[1]) ** 2)
    hits = 0
    n_rep = 400
    for _ in range(n_rep):
        x, y = rng.multivariate_normal(mu, cov, 60).T
        c = lin_ccc(x, y)
        hits += c.ci95[0] <= true_ccc <= c.ci95[1]
    assert c.rho_c == pytest.approx(c.pearson_r * c.bias_correction)
    assert 0.92 <= hits / n_rep <= 0.98


def test_deming_limits_are_ols_and_orthogonal_regression_is_the_principal_axis():
    rng = np.random.default_rng(2)
    t = rng.uniform(1, 10, 50)
    x = t + rng.normal(0, 0.5, 50)
    y = 2 + 1.3 * t + rng.normal(0, 0.5, 50)
    ols = np.polyfit(x, y, 1)[0]
    assert deming(x, y, error_ratio=1e9).slope == pytest.approx(ols, rel=1e-6)
    inv = 1 / np.polyfit(y, x, 1)[0]
    assert deming(x, y, error_ratio=1e-9).slope == pytest.approx(inv, rel=1e-6)
    w, v = np.linalg.eigh(np.cov(x, y))
    axis = v[:, np.argmax(w)]
    orth = deming(x, y, error_ratio=1.0)
    assert orth.slope == pytest.approx(axis[1] / axis[0], rel=1e-9)
    assert orth.slope_ci95[0] < 1.3 < orth.slope_ci95[1]
    # the error ratio from reported uncertainties: equal SDs give orthogonal regression
    assert deming(x, y, sd_x=np.full(50, 0.5), sd_y=np.full(50, 0.5)).slope == pytest.approx(orth.slope)


def test_passing_bablok_is_exact_on_a_line_and_covers_a_known_slope():
    x = np.arange(1.0, 21.0)
    pb = passing_bablok(x, 2 + 1.5 * x)
    assert pb.slope == pytest.approx(1.5) and pb.intercept == pytest.approx(2.0)
    rng = np.random.default_rng(4)
    t = rng.uniform(1, 20, 60)
    pb = passing_bablok(t + rng.normal(0, 0.4, 60), 1.5 * t + rng.normal(0, 0.6, 60))
    assert pb.slope_ci95[0] < 1.5 < pb.slope_ci95[1]
    assert pb.slope_ci95[1] - pb.slope_ci95[0] < 0.2


def _nested_cohort(rng, n_pat=20, n_les=5, bias=0.5, sd_u=1.0, sd_e=0.5):
    pts = np.repeat(np.arange(n_pat), n_les)
    true = rng.uniform(5, 40, pts.size)
    u = rng.normal(0, sd_u, n_pat)[pts]
    pred = true + bias + u + rng.normal(0, sd_e, pts.size)
    return pred, true, pts


def test_nested_bland_altman_recovers_bias_and_limits_and_is_wider_than_naive():
    rng = np.random.default_rng(11)
    pred, meas, pts = _nested_cohort(rng)
    res = nested_bland_altman(pred, meas, pts, n_bootstrap=400, seed=1)
    true_sd = math.hypot(1.0, 0.5)
    assert res.bias_ci95[0] < 0.5 < res.bias_ci95[1]
    assert res.bias_ci95_bootstrap[0] < 0.5 < res.bias_ci95_bootstrap[1]
    (lo_lo, lo_hi), (hi_lo, hi_hi) = res.loa_ci95_bootstrap
    assert lo_lo < 0.5 - 1.96 * true_sd < lo_hi and hi_lo < 0.5 + 1.96 * true_sd < hi_hi
    naive = res.naive.bias_ci95
    assert (res.bias_ci95[1] - res.bias_ci95[0]) > 1.5 * (naive[1] - naive[0])


def test_cluster_aware_bias_interval_covers_while_naive_does_not():
    rng = np.random.default_rng(5)
    n_rep, hits_mixed, hits_naive = 300, 0, 0
    for _ in range(n_rep):
        pred, meas, pts = _nested_cohort(rng, n_pat=12, n_les=4)
        res = nested_bland_altman(pred, meas, pts, n_bootstrap=2, seed=0)
        hits_mixed += res.bias_ci95[0] <= 0.5 <= res.bias_ci95[1]
        hits_naive += res.naive.bias_ci95[0] <= 0.5 <= res.naive.bias_ci95[1]
    assert 0.91 <= hits_mixed / n_rep <= 0.99
    assert hits_naive / n_rep < 0.80


def _write(path, text):
    path.write_text(text)
    return path


def test_table_errors_name_row_and_column(tmp_path):
    hdr = "patient,region,predicted_Gy,measured_Gy\n"
    two = _write(tmp_path / "two.csv", hdr + "p1,kidney_left,3,3.2\np2,kidney_left,3,3.1\n")
    with pytest.raises(InputError, match="need at least 3 patients"):
        read_concordance_table(two)
    one_mod = _write(tmp_path / "one.csv", hdr + "p1,kidney_left,3,3.2\np2,lesion_1,,4.0\np3,liver,1,1\n")
    with pytest.raises(InputError, match=r"row 3, column 'predicted_Gy'.*lesion_1.*measured dose only"):
        read_concordance_table(one_mod)
    text = _write(tmp_path / "text.csv", hdr + "p1,kidney_left,3,3.2\np2,liver,abc,1\np3,liver,1,1\n")
    with pytest.raises(InputError, match=r"row 3, column 'predicted_Gy': 'abc' is not a number"):
        read_concordance_table(text)
    cols = _write(tmp_path / "cols.csv", "patient,region,predicted_Gy\np1,a,1\n")
    with pytest.raises(InputError, match=r"missing column\(s\) \['measured_Gy'\]"):
        read_concordance_table(cols)


def test_concordance_command_writes_results_and_refuses_to_overwrite(tmp_path, capsys):
    rng = np.random.default_rng(0)
    lines = ["patient,region,predicted_Gy,measured_Gy"]
    for p in range(8):
        for side in ("left", "right"):
            m = rng.uniform(2, 5)
            lines.append(f"p{p},kidney_{side},{m * 1.1 + rng.normal(0, 0.2):.4f},{m:.4f}")
        for les in range(3):
            m = rng.uniform(10, 80)
            lines.append(f"p{p},lesion_{les},{m * 0.8 + rng.normal(0, 4):.4f},{m:.4f}")
    table = _write(tmp_path / "doses.csv", "\n".join(lines) + "\n")
    out = tmp_path / "res"
    assert main(["concordance", str(table), "--out", str(out), "--bootstrap", "200"]) == 0
    for f in ("concordance.json", "concordance.csv", "report.html", "run.json", "scatter_kidney.png",
              "bland_altman_lesion.png"):
        assert (out / f).is_file(), f
    rows = (out / "concordance.csv").read_text().splitlines()
    assert rows[0].startswith("group,scope,n,n_patients") and any(r.startswith("kidney,cohort,16,8") for r in rows)
    assert main(["concordance", str(table), "--out", str(out)]) == 2
    assert "--force" in capsys.readouterr().err
