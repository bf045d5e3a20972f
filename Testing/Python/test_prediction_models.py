"""Prediction models (population, kinetic, calibrated) and their leave-one-patient-out validation.

The cohort here is the cheap path (region-level features and analytic measured doses drawn from the
synthetic cohort generator, LuDosimetryLib.phantom.cohort_kinetics); the imaging path is exercised
on the small phantom in test_prediction_cli.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from LuDosimetryLib.cohort.model_validation import lopo_concordance, lopo_predictions
from LuDosimetryLib.errors import InputError
from LuDosimetryLib.phantom import kinetics
from LuDosimetryLib.phantom.cohort_kinetics import (
    SyntheticFeatureSettings,
    WashoutTie,
    synthetic_feature_table,
    tie_washout,
)
from LuDosimetryLib.prediction.models import (
    calibration_key,
    fit_calibrated_model,
    kinetic_rates,
    read_calibrated_model,
)
from LuDosimetryLib.prediction.population import load_population_table


@pytest.fixture(scope="module")
def population():
    return load_population_table(None)


def _kidney_ccc(tie: bool, n: int = 20, seed: int = 0) -> dict[str, float]:
    rows = synthetic_feature_table(SyntheticFeatureSettings(n_patients=n, seed=seed, tie=WashoutTie(enabled=tie)))
    table = lopo_concordance(lopo_predictions(rows, models=("population", "calibrated")), n_bootstrap=20)
    return {r["model"]: r["ccc"] for r in table if r["group"] == "kidney_cortex"}


def test_calibrated_beats_population_for_kidneys_only_when_washout_is_tied_to_kinetics():
    # The validation itself under test: with the generator's tie the PET kinetics carry the washout and the
    # calibrated model, learnt on the other patients only, must predict kidneys better; without the tie there
    # is nothing to learn and it must not (a leak of the patient's own dose would make it win anyway).
    on = _kidney_ccc(True)
    off = _kidney_ccc(False)
    assert on["calibrated"] > on["population"] + 0.2
    assert off["calibrated"] <= off["population"]


def test_leave_one_patient_out_predictions_do_not_see_the_patients_own_doses(population):
    rows = synthetic_feature_table(SyntheticFeatureSettings(n_patients=6, seed=3))
    base = {(r["patient"], r["region"], r["model"]): r["predicted_Gy_per_GBq"] for r in lopo_predictions(rows)}
    changed = [{**r, "measured_dose_Gy_per_GBq": r["measured_dose_Gy_per_GBq"] * 10,
                "measured_effective_half_life_h": r["measured_effective_half_life_h"] * 2}
               if r["patient"] == "P001" else r for r in rows]
    after = {(r["patient"], r["region"], r["model"]): r["predicted_Gy_per_GBq"] for r in lopo_predictions(changed)}
    own = [k for k in base if k[0] == "P001"]
    others = [k for k in base if k[0] != "P001" and k[2] == "calibrated"]
    assert own and all(after[k] == pytest.approx(base[k], rel=1e-12) for k in own)
    ratios = [after[k] / base[k] for k in others]  # the others' calibration learnt P001's tenfold doses
    assert all(abs(r - 1) > 1e-6 for r in ratios) and np.median(ratios) > 1.2
    lesion_pop = [k for k in base if k[0] != "P001" and k[2] == "population" and k[1].startswith("lesion")]
    assert all(after[k] >= base[k] * (1 - 1e-12) for k in lesion_pop)  # its longer lesion half-lives: median


def test_calibrated_prediction_interval_matches_statsmodels_ols(tmp_path, population):
    sm = pytest.importorskip("statsmodels.api")
    rows = synthetic_feature_table(SyntheticFeatureSettings(n_patients=10, seed=1))
    model = fit_calibrated_model(rows, population, source="test")
    path = model.write(tmp_path / "model.json")
    again = read_calibrated_model(path)
    kid = [r for r in rows if calibration_key(r["region"], r["kind"]) == "kidney"]
    org = again.organs["kidney|dynamic"]
    assert org.features == ("log_population_dose", "log_uptake_rate_ratio") and org.n == len(kid)
    # independent fit of the same design with statsmodels
    from LuDosimetryLib.prediction.models import model_dose_per_GBq

    x = np.array([[math.log(model_dose_per_GBq(r, population, model="population")),
                   math.log(r["uptake_rate_fit_per_h"] / math.log(2))] for r in kid])  # kidney T_u,pop = 1 h
    y = np.log([r["measured_dose_Gy_per_GBq"] for r in kid])
    res = sm.OLS(y, sm.add_constant(x)).fit()
    new = {**kid[0], "uptake_rate_fit_per_h": kid[0]["uptake_rate_fit_per_h"] * 1.3}
    x0 = np.array([[1.0, math.log(model_dose_per_GBq(new, population, model="population")),
                    math.log(new["uptake_rate_fit_per_h"] / math.log(2))]])
    frame = res.get_prediction(x0).summary_frame(alpha=0.05)
    got = again.predict(new, population)
    assert np.allclose(org.coefficients, res.params, rtol=1e-9)
    assert got["dose_Gy_per_GBq"] == pytest.approx(math.exp(frame["mean"].iloc[0]), rel=1e-9)
    assert got["pi95_low_Gy_per_GBq"] == pytest.approx(math.exp(frame["obs_ci_lower"].iloc[0]), rel=1e-9)
    assert got["pi95_high_Gy_per_GBq"] == pytest.approx(math.exp(frame["obs_ci_upper"].iloc[0]), rel=1e-9)


def test_calibrated_model_file_with_another_version_is_refused(tmp_path, population):
    rows = synthetic_feature_table(SyntheticFeatureSettings(n_patients=5, seed=2))
    path = fit_calibrated_model(rows, population).write(tmp_path / "m.json")
    text = path.read_text().replace('"version": 1', '"version": 99')
    (tmp_path / "bad.json").write_text(text)
    with pytest.raises(InputError, match="version 99"):
        read_calibrated_model(tmp_path / "bad.json")


def test_kinetic_rates_scale_washout_with_the_fitted_uptake_rate(population):
    e = population.lookup("kidney_cortex_left")
    assert kinetic_rates(e, None)[2] == "population"
    bw, bu, src = kinetic_rates(e, e.biological_uptake_rate_per_h, exponent=0.6)
    assert (bw, bu, src) == pytest.approx((e.biological_washout_rate_per_h, e.biological_uptake_rate_per_h)) or \
        src == "pet_fit"
    bw2, bu2, _ = kinetic_rates(e, 2 * e.biological_uptake_rate_per_h, exponent=0.5)
    assert bu2 == pytest.approx(2 * e.biological_uptake_rate_per_h)
    assert bw2 == pytest.approx(e.biological_washout_rate_per_h * math.sqrt(2))


def test_washout_tie_on_follows_the_uptake_rate_and_off_keeps_uptake_at_reference():
    ref = {k.name: k for k in kinetics.LU_KINETICS}
    on = {k.name: k for k in tie_washout(kinetics.LU_KINETICS, np.random.default_rng(5), WashoutTie(exponent=0.6))}
    off = {k.name: k for k in tie_washout(kinetics.LU_KINETICS, np.random.default_rng(5), WashoutTie(enabled=False))}
    for name in ("kidney_cortex_left", "kidney_cortex_right", "lesion_node_1", "parotid_left"):
        lu = math.log(on[name].uptake_half_life_h / ref[name].uptake_half_life_h)
        lw = math.log(on[name].washout_half_life_h / ref[name].washout_half_life_h)
        assert lw == pytest.approx(0.6 * lu, rel=1e-12) and lu != 0
        assert off[name].uptake_half_life_h == ref[name].uptake_half_life_h
        assert off[name].washout_half_life_h != on[name].washout_half_life_h
    # both kidneys share their organ's draw
    assert on["kidney_cortex_left"].uptake_half_life_h / ref["kidney_cortex_left"].uptake_half_life_h == \
        pytest.approx(on["kidney_cortex_right"].uptake_half_life_h / ref["kidney_cortex_right"].uptake_half_life_h)


def test_cohort_statistics_validate_the_models_from_the_patients_results_folders(tmp_path):
    """The cohort run's path: per-patient prediction/pet_features.csv + measured doses.csv and fits.csv →
    statistics/prediction_features.csv, model_validation.csv, calibrated_model.json, cohort lesion half-lives."""
    import json

    from LuDosimetryLib.cohort.statistics import write_cohort_statistics
    from LuDosimetryLib.report import Report
    from LuDosimetryLib.results import read_csv, write_csv

    rows = synthetic_feature_table(SyntheticFeatureSettings(n_patients=5, seed=6))
    ids = sorted({r["patient"] for r in rows})
    for pid in ids:
        mine = [r for r in rows if r["patient"] == pid]
        folder = tmp_path / "results" / "patients" / pid
        (folder / "prediction").mkdir(parents=True)
        write_csv(folder / "prediction" / "pet_features.csv",
                  [{k: v for k, v in r.items() if not k.startswith(("measured", "true", "patient"))} for r in mine],
                  ["region"])
        (folder / "prediction" / "run.json").write_text(json.dumps(
            {"parameters": {"prediction": {"therapy_activity_GBq_used": 7.4}}}))
        write_csv(folder / "doses.csv", [{"region": r["region"], "kind": r["kind"],
                                          "dose_Gy": r["measured_dose_Gy_per_GBq"] * 7.4,
                                          "dose_per_activity_Gy_per_GBq": r["measured_dose_Gy_per_GBq"]}
                                         for r in mine], ["region"])
        write_csv(folder / "fits.csv", [{"region": r["region"],
                                         "effective_half_life_h": r["measured_effective_half_life_h"]}
                                        for r in mine], ["region"])
    done = write_cohort_statistics(tmp_path / "cohort", tmp_path / "results", ids, report=Report("t"))
    assert "leave-one-patient-out" in done["model_validation"]
    stats = tmp_path / "results" / "statistics"
    table = {(r["model"], r["group"]): float(r["ccc"]) for r in read_csv(stats / "model_validation.csv")}
    expected = {(r["model"], r["group"]): r["ccc"] for r in lopo_concordance(lopo_predictions(rows))}
    assert set(table) == set(expected)
    assert all(table[k] == pytest.approx(expected[k], rel=1e-9, abs=1e-12) for k in expected)
    model = read_calibrated_model(stats / "calibrated_model.json")
    assert model.training["n_patients"] == 5 and "kidney|dynamic" in model.organs
    pop = load_population_table(str(stats / "population_halflives_cohort.csv"))
    assert pop.lookup("lesion_bone_1", kind="lesion").status == "cohort"


def test_uptake_rate_standard_error_matches_the_spread_of_refits_under_noise():
    """The asymptotic SE of the fitted uptake rate (pet_features.csv) against Monte-Carlo refits: the sd of
    β_u over 100 noise realisations of the phantom's framing (Gaussian noise of 3 % of the curve's maximum,
    the least-squares model's assumption) agrees within 20 %."""
    from LuDosimetryLib.phantom.pet import frame_table
    from LuDosimetryLib.prediction.uptake import fit_uptake_rate

    specs = frame_table()
    t = np.array([(f.start_s + f.duration_s / 2) / 3600 for f in specs])
    bw, bu = 0.0116, 0.693
    g = 0.02 * (np.exp(-bw * t) - np.exp(-bu * t))
    rng = np.random.default_rng(11)
    fits = [fit_uptake_rate(t, g + 0.03 * g.max() * rng.standard_normal(t.size), washout_rate_per_h=bw)
            for _ in range(100)]
    rates = np.array([f.uptake_rate_per_h for f in fits if f.converged])
    se = np.median([f.uptake_rate_se_per_h for f in fits if f.converged])
    assert rates.size > 90 and np.mean(rates) == pytest.approx(bu, rel=0.03)
    assert se == pytest.approx(np.std(rates, ddof=1), rel=0.2)


def test_validation_refuses_a_row_without_activity_and_takes_it_from_the_measured_doses(tmp_path):
    """No silent 7.4 GBq: the Gy pairs are per-GBq doses × the patient's own activity."""
    import json

    from LuDosimetryLib.cohort.model_validation import collect_feature_rows
    from LuDosimetryLib.errors import InputError
    from LuDosimetryLib.results import DOSES_COLUMNS, write_csv

    rows = synthetic_feature_table(SyntheticFeatureSettings(n_patients=4, seed=1))
    rows[0] = {**rows[0], "activity_GBq": None}
    with pytest.raises(InputError, match=rf"patient {rows[0]['patient']}: .*activity_GBq"):
        lopo_predictions(rows, models=("population",))
    folder = tmp_path / "patients" / "P1"
    (folder / "prediction").mkdir(parents=True)
    write_csv(folder / "prediction" / "pet_features.csv", [{"region": "liver", "dose_per_tia_Gy_per_Bq_h": 1e-9}],
              ["region", "dose_per_tia_Gy_per_Bq_h"])
    write_csv(folder / "doses.csv", [{"region": "liver", "kind": "organ", "cycle": 1, "dose_Gy": 3.3,
                                      "dose_per_activity_Gy_per_GBq": 0.5}], list(DOSES_COLUMNS))
    (folder / "prediction" / "run.json").write_text(json.dumps({"parameters": {}}))  # no activity recorded
    (row,) = collect_feature_rows(tmp_path, ["P1"])
    assert row["activity_GBq"] == pytest.approx(6.6)  # 3.3 Gy / 0.5 Gy/GBq
