"""Trial endpoints: follow-up schema validation, escalation rules, `ludosimetry trial` on a synthetic
phase-1 cohort (the 3+3 worked example), and recovery of the generating Cox log-hazard ratio."""

import copy
import datetime as dt
import json

import numpy as np
import pytest

from LuDosimetryLib.cli import main
from LuDosimetryLib.errors import InputError
from LuDosimetryLib.phantom.followup import (
    PHASE1_WORKED_EXAMPLE,
    EscalationGroupDesign,
    FollowUpModel,
    synthetic_trial_ledgers,
)
from LuDosimetryLib.response.cox import cox_regression
from LuDosimetryLib.trial.cohort import trial_patient_from_ledger
from LuDosimetryLib.trial.endpoints import survival_times
from LuDosimetryLib.trial.escalation import boin, boin_boundaries, escalation_decision, three_plus_three
from LuDosimetryLib.trial.followup import follow_up_from_ledger

EXAMPLE = {
    "follow_up": [
        {"date": "2026-01-05", "visit": "baseline", "labs": {"psa_ng_per_mL": 40.0, "egfr_mL_per_min_per_1_73m2": 80},
         "prom": {"FACT-P": 100}},
        {"date": "2026-02-16", "labs": {"psa_ng_per_mL": 15.0},
         "adverse_events": [{"term": "Dry mouth", "grade": 1, "attribution": "probable", "onset_date": "2026-01-20"}],
         "response": {"psma_pet": {"total_tumour_volume_mL": 60.0, "new_lesions": False}}},
    ],
    "outcomes": {"version": 1, "psa_progression_date": None, "radiographic_progression_date": "2026-09-01",
                 "death_date": None, "last_follow_up_date": "2027-01-10", "salvage_eligible": False},
}


def _with(path, value):
    doc = copy.deepcopy(EXAMPLE)
    *head, last = path
    node = doc
    for k in head:
        node = node[k]
    node[last] = value
    return doc


def test_follow_up_example_parses():
    fu = follow_up_from_ledger(EXAMPLE)
    assert [v.date for v in fu.visits] == [dt.date(2026, 1, 5), dt.date(2026, 2, 16)]
    assert fu.lab_series("psa_ng_per_mL")[1] == (dt.date(2026, 2, 16), 15.0)
    assert fu.adverse_events()[0].term == "Dry mouth" and fu.adverse_events()[0].related
    assert fu.outcomes.radiographic_progression_date == dt.date(2026, 9, 1)


@pytest.mark.parametrize(("path", "value", "where"), [
    (("follow_up", 1, "adverse_events", 0, "grade"), 6, r"follow_up\[1\]\.adverse_events\[0\]\.grade"),
    (("follow_up", 1, "adverse_events", 0, "attribution"), "maybe", r"adverse_events\[0\]\.attribution"),
    (("follow_up", 1, "adverse_events", 0, "onset_date"), "2026-03-01", r"onset_date"),
    (("follow_up", 0, "labs", "psa"), 3.0, r"follow_up\[0\]\.labs"),
    (("follow_up", 0, "date"), "2026-13-01", r"follow_up\[0\]\.date"),
    (("outcomes", "death_date"), "2026-06-01", r"outcomes\.radiographic_progression_date"),
    (("outcomes", "version"), 7, r"outcomes\.version"),
    (("outcomes", "last_follow_up_date"), "2026-02-01", r"outcomes\.\w+_date.*after the last follow-up"),
])
def test_follow_up_errors_name_entry_and_field(path, value, where):
    with pytest.raises(InputError, match=where):
        follow_up_from_ledger(_with(path, value))


def test_a_dlt_must_be_treatment_related():
    doc = _with(("follow_up", 1, "adverse_events", 0), {"term": "Anemia", "grade": 3, "attribution": "unrelated",
                                                         "onset_date": "2026-02-01", "dlt": True})
    with pytest.raises(InputError, match=r"adverse_events\[0\]\.dlt"):
        follow_up_from_ledger(doc)


@pytest.mark.parametrize(("n", "d", "decision"), [
    (3, 0, "escalate"), (3, 1, "expand to 6"), (3, 2, "stop"), (6, 1, "escalate"), (6, 2, "stop"),
    (2, 0, "enrol"), (5, 1, "expand to 6"), (4, 3, "stop")])
def test_three_plus_three(n, d, decision):
    assert three_plus_three(n, d) == decision == escalation_decision("3+3", n, d)


def test_boin_boundaries_and_decisions():
    # Liu & Yuan 2015, Table 1: target 0.30 → λe = 0.236, λd = 0.358
    le, ld = boin_boundaries(0.30)
    assert (le, ld) == pytest.approx((0.236, 0.358), abs=1e-3)
    assert boin(6, 1) == "escalate" and boin(6, 2) == "stay" and boin(6, 3) == "de-escalate"
    assert boin(3, 3) == "eliminate"  # P(p > 0.3 | 3/3, Beta(1,1)) = 1 − 0.3⁴ > 0.95
    with pytest.raises(InputError, match="rule"):
        escalation_decision("2+2", 3, 0)


@pytest.fixture(scope="module")
def phase1_cohort(tmp_path_factory):
    folder = tmp_path_factory.mktemp("phase1")
    ledgers, truth = synthetic_trial_ledgers(PHASE1_WORKED_EXAMPLE, seed=3)
    # a DLT-flagged event after the 12-week window must not count (G1 stays 0/3)
    g1 = next(d for d in ledgers if d["patient"]["escalation_group"] == "G1")
    start = dt.date.fromisoformat(g1["cycles"][0]["administration_date"])
    late = start + dt.timedelta(days=100)
    visit = next(v for v in g1["follow_up"] if dt.date.fromisoformat(v["date"]) >= late)
    visit.setdefault("adverse_events", []).append({"term": "Platelet count decreased", "grade": 3,
                                                   "attribution": "probable", "onset_date": late.isoformat(),
                                                   "dlt": True})
    for d in ledgers:
        (folder / f"{d['patient_id']}.json").write_text(json.dumps(d), encoding="utf-8")
    (folder / "notes.json").write_text('{"not": "a ledger"}', encoding="utf-8")
    return folder, truth


def test_trial_cli_gives_the_3_plus_3_worked_example(phase1_cohort, tmp_path, capsys):
    folder, _ = phase1_cohort
    out = tmp_path / "trial"
    assert main(["trial", str(folder), "--out", str(out)]) == 0
    rows = {r["escalation_group"]: r for r in json.loads((out / "trial.json").read_text())["dlt"]
            if r["risk_stratum"] == "all"}
    assert {g: (r["n_dlt"], r["n_dlt_evaluable"], r["decision"]) for g, r in rows.items()} == {
        "G1": (0, 3, "escalate"), "G2": (1, 3, "expand to 6"), "G3": (2, 6, "stop")}
    for f in ("dlt.csv", "response_rates.csv", "adverse_events.csv", "delayed_adverse_events.csv", "prom.csv",
              "survival.csv", "survival_summary.csv", "dose_toxicity.csv", "dose_toxicity_models.csv",
              "biomarker.csv", "report.html", "run.json", "km_os.png"):
        assert (out / f).is_file(), f
    header = (out / "survival_summary.csv").read_text().splitlines()[0]
    assert "median_months" in header and "median_ci95_low_months" in header
    rates = json.loads((out / "trial.json").read_text())["response_rates"]
    psa50 = next(r for r in rates if r["endpoint"].startswith("PSA50") and r["escalation_group"] == "all")
    from statsmodels.stats.proportion import proportion_confint

    lo, hi = proportion_confint(psa50["n_responders"], psa50["n_evaluable"], method="beta")
    assert (psa50["ci95_low_percent"], psa50["ci95_high_percent"]) == pytest.approx((100 * lo, 100 * hi))
    assert "3+3" in (out / "report.html").read_text()
    # results-folder contract: no overwrite without --force; a bad rule is one line, exit 2
    capsys.readouterr()
    assert main(["trial", str(folder), "--out", str(out)]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["trial", str(folder), "--out", str(out), "--force", "--rule", "boin"]) == 0
    assert main(["trial", str(tmp_path / "missing"), "--out", str(tmp_path / "x")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_trial_cli_names_the_bad_ledger(phase1_cohort, tmp_path, capsys):
    folder, _ = phase1_cohort
    bad = tmp_path / "bad"
    bad.mkdir()
    doc = json.loads(next(folder.glob("T001.json")).read_text())
    doc["follow_up"][1].setdefault("adverse_events", []).append(
        {"term": "Anemia", "grade": 0, "attribution": "possible", "onset_date": doc["follow_up"][1]["date"]})
    (bad / "T001.json").write_text(json.dumps(doc))
    assert main(["trial", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "T001.json" in err and "grade" in err and len(err.strip().splitlines()) == 1


def test_cox_recovers_the_generating_log_hazard_ratio_of_tumour_dose():
    # Cheap path: tumour doses drawn from the synthetic cohort's dose model and written into the ledgers'
    # cycle-1 lesions, no imaging chain; `ludosimetry trial`'s biomarker analysis reads them back.
    from LuDosimetryLib.trial.endpoints import biomarker_rows, response_rows

    model = FollowUpModel()
    ledgers, truth = synthetic_trial_ledgers([EscalationGroupDesign("B", 400, 5.0)], seed=11, phase=2,
                                             n_cycles=2, model=model)
    patients = [trial_patient_from_ledger(d, source=d["patient_id"]) for d in ledgers]
    dose = np.array([p.wholebody_tumour_dose_Gy for p in patients])
    np.testing.assert_allclose(dose, [truth["patients"][p.patient_id]["tumour_dose_Gy"] for p in patients],
                               rtol=1e-12)
    times = [survival_times(p) for p in patients]
    rows, warnings = biomarker_rows(patients, times, response_rows(patients))
    assert not warnings
    by = {r["analysis"]: r for r in rows}
    os_fit = by["Cox os"]
    assert os_fit["ci95_low_per_Gy"] < model.os_log_hr_per_Gy < os_fit["ci95_high_per_Gy"], os_fit
    for name in ("Cox os", "Cox rpfs", "Cox psa_pfs"):
        assert by[name]["schoenfeld_p_value"] > 0.01  # the generating model has proportional hazards
    # the same numbers as a direct Cox fit on the survival times
    t = np.array([x["os_months"] for x in times])
    e = np.array([x["os_event"] for x in times])
    assert cox_regression(t, e, dose).coefficients[0] == pytest.approx(os_fit["estimate_per_Gy"], rel=1e-12)
    # higher tumour dose, more responders-or-stable after two cycles (PSA nadir and TTV fall with dose)
    firth = next(r for r in rows if r["analysis"].startswith("Firth"))
    assert firth["ci95_low_per_Gy"] > 0 and firth["auc"] > 0.6


def test_imaged_cohort_patient_ledger_uses_the_true_doses():
    from LuDosimetryLib.phantom.followup import cohort_patient_ledger

    masses = {"kidney_cortex_left": 120.0, "renal_pelvis_left": 30.0, "kidney_cortex_right": 120.0,
              "renal_pelvis_right": 30.0, "red_marrow": 1000.0, "parotid_left": 25.0, "parotid_right": 25.0,
              "lesion_bone_1": 10.0, "lesion_node_1": 5.0}
    truth = {"regions": [{"name": k, "mass_g": m, "kind": "lesion" if k.startswith("lesion") else "organ"}
                         for k, m in masses.items()],
             "cycles": [{"dose_Gy": {"kidney_cortex_left": 4.0, "renal_pelvis_left": 2.0, "kidney_cortex_right": 3.0,
                                     "renal_pelvis_right": 1.0, "red_marrow": 0.2, "parotid_left": 3.0,
                                     "parotid_right": 5.0, "lesion_bone_1": 30.0, "lesion_node_1": 60.0}}]}
    doc, t = cohort_patient_ledger("P001", truth, 30.0, 7.4e9, seed=(0, 0))
    p = trial_patient_from_ledger(doc, source="P001")
    # mass-weighted kidney dose: (120·4 + 30·2 + 120·3 + 30·1) / 300 = 3.1 Gy
    assert p.cycles[0].dose_Gy["kidney"] == pytest.approx(3.1) and p.cycles[0].dose_Gy["parotid"] == pytest.approx(4.0)
    assert p.cycles[0].administered_activity_GBq == pytest.approx(7.4) and t["tumour_dose_Gy"] == 30.0
    assert p.wholebody_tumour_dose_Gy == pytest.approx((10 * 30 + 5 * 60) / 15)  # mass (= volume) weighted
    assert p.follow_up.outcomes is not None and p.follow_up.visits[0].psma_pet is not None


def test_three_plus_three_is_not_applied_beyond_six():
    assert three_plus_three(12, 0) == "outside 3+3 (n > 6)"


def test_documented_example_ledger_parses_and_gives_its_stated_categories():
    from pathlib import Path

    from LuDosimetryLib.trial.endpoints import response_rows

    path = Path(__file__).resolve().parents[2] / "docs" / "examples" / "example_trial_ledger.json"
    p = trial_patient_from_ledger(json.loads(path.read_text(encoding="utf-8")), source=str(path))
    row = response_rows([p])[0]
    # docs/trial.md: PSA 46 → 19.5 (day 42, −57.6 %) confirmed by 11.2 (day 84); TTV 182 → 88 mL (−52 %)
    assert row["psa_best_response"] == "response"
    assert row["psa_best_change_percent"] == pytest.approx(-57.6087, abs=1e-3)
    assert row["recip_best_response"] == "partial_response"
    # after cycle 2 (week 12 ± 4): PSA 11.2 (−76 %, confirmed by day 42) and TTV −52 % → responder
    assert (row["psa_pcwg3_week_12"], row["recip_week_12"], row["combined_week_12"]) == (
        "response", "partial_response", "response_or_stable")
    s = survival_times(p)
    assert s["pfs_event"] == 1 and s["os_event"] == 0 and s["psa_progression_source"] == "recorded"


def test_firth_recovers_the_generating_dlt_dose_slope():
    # DLT model of the synthetic cohort: logit P = −7 + 0.6·(kidney dose of cycle 1, Gy); 5 × 100 patients
    from LuDosimetryLib.trial.endpoints import dose_toxicity_models

    model = FollowUpModel()
    groups = [EscalationGroupDesign(f"G{d}", 100, float(d)) for d in (6, 8, 10, 12, 14)]
    ledgers, _ = synthetic_trial_ledgers(groups, seed=5, n_cycles=1, model=model)
    rows, _ = dose_toxicity_models([trial_patient_from_ledger(d, source=d["patient_id"]) for d in ledgers])
    dlt = next(r for r in rows if r["outcome"] == "DLT within window")
    assert dlt["slope_ci95_low_per_Gy"] < model.dlt_per_Gy < dlt["slope_ci95_high_per_Gy"]
