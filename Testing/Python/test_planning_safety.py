"""Planning safety (issue 16 item 4) and ledger uncertainty with shared components (issue 15).

Each planning failure of issue 16 is reproduced first (the numbers the old defaults gave), then
the default behaviour is checked.
"""

import datetime as dt
import json
import math
from pathlib import Path

import numpy as np
import pytest

from LuDosimetryLib.cli import main
from LuDosimetryLib.errors import ConsistencyError, InputError
from LuDosimetryLib.planning import (
    OrganDosePerActivity,
    PlanSettings,
    append_cycle,
    new_ledger,
    plan_next_cycle,
    read_ledger,
    write_ledger,
)
from LuDosimetryLib.planning.ledger import cumulative_rel_uncertainty, ledger_from_dict, ledger_to_dict
from LuDosimetryLib.planning.limits import ledger_limit_flags, load_planning_limits
from LuDosimetryLib.planning.prescription import (
    exceedance_probability,
    lognormal_sigma,
    risk_constrained_activity_Bq,
)

GBQ = 1e9
EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "example_ledger.json"
ALL_OFF = frozenset({"max_activity", "kidney_dose", "kidney_bed"})


def day(n):
    return dt.date(2026, 1, 5) + dt.timedelta(days=42 * (n - 1))


def kidney(d, u=0.1, g=0.0625, shared=None):
    return {"kidney": OrganDosePerActivity(d / GBQ, u, g, "test", shared)}


def course(cycles, **kw):
    """cycles: (activity GBq, d Gy/GBq[, u, shared]) per cycle."""
    led = new_ledger("P001", **kw)
    for i, c in enumerate(cycles, start=1):
        a, d, *rest = c
        led = append_cycle(led, administration_date=day(i), administered_activity_Bq=a * GBQ,
                           dosimetry_method="full_protocol", dose_per_activity=kidney(d, *rest[:1], shared=(
                               rest[1] if len(rest) > 1 else None)))
    return led


def issue_example():
    """The example ledger as issue 16 used it: 8.3 GBq at 0.52 and 9.6 GBq at 0.50 Gy/GBq (9.116 Gy), no stratum."""
    led = new_ledger("EXAMPLE-001")
    for i, (a, d, u, g) in enumerate(((8.3, 0.52, 0.12, 0.061), (9.6, 0.50, 0.2, 0.0625)), start=1):
        led = append_cycle(led, administration_date=day(i), administered_activity_Bq=a * GBQ,
                           dosimetry_method="full_protocol", dose_per_activity=kidney(d, u, g))
    return led


# --- cumulative uncertainty: shared parts correlated across cycles ----------------------------------
def test_shared_calibration_10_percent_six_cycles_gives_at_least_10_percent():
    led = course([(7.0, 0.5, 0.10, 0.10)] * 6)
    assert led.cycles[-1].cumulative["kidney"].dose_rel_uncertainty == pytest.approx(0.10, rel=1e-12)
    # 15 % per cycle of which 10 % shared: shared stays 10 %, the independent 11.2 % averages down
    led = course([(7.0, 0.5, 0.15, 0.10)] * 6)
    u = led.cycles[-1].cumulative["kidney"].dose_rel_uncertainty
    assert u >= 0.10
    assert u == pytest.approx(math.hypot(0.10, math.sqrt(0.15**2 - 0.10**2) / math.sqrt(6)), rel=1e-12)


def test_independent_only_15_percent_per_cycle_averages_to_15_over_root_6():
    led = course([(7.0, 0.5, 0.15, 0.0)] * 6)
    assert led.cycles[-1].cumulative["kidney"].dose_rel_uncertainty == pytest.approx(0.15 / math.sqrt(6), rel=1e-12)
    # unequal cycles, by hand: √(Σ(xᵢuᵢ)²)/Σxᵢ
    u, s, _ = cumulative_rel_uncertainty([2.0, 4.0], [0.0, 0.0], [0.1, 0.2])
    assert (u, s) == (pytest.approx(math.sqrt(0.2**2 + 0.8**2) / 6.0), 0.0)


def test_version_1_ledger_is_read_as_fully_shared_and_written_as_version_2(tmp_path):
    doc = ledger_to_dict(course([(7.0, 0.5, 0.12, 0.0), (7.4, 0.45, 0.2, 0.0)], escalation_group="G1"))
    v1 = {"format": doc["format"], "version": 1, "patient_id": doc["patient_id"], "escalation_group": "G1",
          "radiobiology": {}, "prediction": {}, "cycles": doc["cycles"]}
    for c in v1["cycles"]:
        for o in c["organs"].values():
            o.pop("dose_rel_uncertainty_shared")
            o.pop("dose_rel_uncertainty_independent")
        for u in c["cumulative"].values():  # version 1 stored the independent-cycle uncertainty
            u.pop("dose_rel_uncertainty_shared")
            u.pop("bed_rel_uncertainty_shared")
    led = ledger_from_dict(v1)
    x = [3.5, 7.4 * 0.45]
    assert led.cycles[1].cumulative["kidney"].dose_rel_uncertainty == pytest.approx(
        (x[0] * 0.12 + x[1] * 0.2) / sum(x), rel=1e-12)  # linear: fully correlated
    assert led.escalation_group == "G1" and "version-1 ledger" in led.read_warnings[0]
    again = json.loads(write_ledger(tmp_path / "l.json", led).read_text())
    assert again["version"] == 2 and again["patient"]["escalation_group"] == "G1"


def test_risk_constraint_with_fully_shared_uncertainty_matches_the_analytic_root():
    # G → 0 and one shared factor S on past and next: P(S (B + A d) > L) = ε ⇒ A = (L e^{−σ z} − B) / d
    d, B, L, u, eps = 0.5 / GBQ, 10.0, 23.0, 0.15, 0.05
    a = risk_constrained_activity_Bq(d_Gy_per_Bq=d, d_rel_uncertainty=u, g_factor=0.0, alpha_beta_Gy=2.6,
                                     past_bed_Gy=B, past_bed_rel_uncertainty=u, bed_limit_Gy=L, epsilon=eps,
                                     d_shared_rel_uncertainty=None, past_bed_shared_rel_uncertainty=None)
    sigma = lognormal_sigma(u)
    assert a == pytest.approx((L * math.exp(-sigma * 1.6448536269514722) - B) / d, rel=1e-6)


@pytest.mark.parametrize(("u_d", "s_d", "u_p", "s_p"), [(0.2, 0.1, 0.15, 0.1), (0.12, 0.12, 0.12, 0.12)])
def test_risk_constraint_with_shared_parts_has_exceedance_epsilon_by_monte_carlo(u_d, s_d, u_p, s_p):
    kw = dict(d_Gy_per_Bq=0.5 / GBQ, d_rel_uncertainty=u_d, g_factor=0.0654, alpha_beta_Gy=2.6, past_bed_Gy=15.0,
              past_bed_rel_uncertainty=u_p, bed_limit_Gy=40.0, d_shared_rel_uncertainty=s_d,
              past_bed_shared_rel_uncertainty=s_p)
    a = risk_constrained_activity_Bq(**kw, epsilon=0.05)
    rng = np.random.default_rng(7)
    n = 400_000
    zs, zd, zp = rng.standard_normal((3, n))
    sig = {k: lognormal_sigma(v) for k, v in (("d", u_d), ("p", u_p))}
    fs = {"d": (s_d / u_d) ** 2, "p": (s_p / u_p) ** 2}
    ln_d = sig["d"] * (math.sqrt(fs["d"]) * zs + math.sqrt(1 - fs["d"]) * zd)
    ln_p = sig["p"] * (math.sqrt(fs["p"]) * zs + math.sqrt(1 - fs["p"]) * zp)
    dose = a * 0.5 / GBQ * np.exp(ln_d)
    total = 15.0 * np.exp(ln_p) + dose * (1 + 0.0654 * dose / 2.6)
    p_mc = np.mean(total > 40.0)
    assert abs(p_mc - 0.05) < 4 * math.sqrt(0.05 * 0.95 / n)
    assert exceedance_probability(a, **kw) == pytest.approx(0.05, abs=1e-6)
    # the same totals taken as independent would allow more activity (correlation widens the tail)
    indep = risk_constrained_activity_Bq(**{**kw, "d_shared_rel_uncertainty": 0.0,
                                            "past_bed_shared_rel_uncertainty": 0.0}, epsilon=0.05)
    assert indep > a


# --- issue 16 item 4: implausible prescriptions ---------------------------------------------------
def test_cycle_3_of_6_with_defaults_no_longer_gets_27_7_or_40_2_GBq():
    led = issue_example()
    assert led.cycles[-1].cumulative["kidney"].dose_Gy == pytest.approx(9.116)
    # reproduced: the old defaults (remaining cycles 1, no maximum activity) gave 27.7 and 40.2 GBq
    old = dict(remaining_cycles=1, override_limits=ALL_OFF)  # no maximum, no default limit, n = 1
    assert plan_next_cycle(led, PlanSettings(mode="cumulative_kidney_dose", kidney_dose_limit_Gy=23.0,
                                             **old)).activity_Bq == pytest.approx(27.7 * GBQ)
    assert plan_next_cycle(led, PlanSettings(mode="cumulative_kidney_bed", kidney_bed_limit_Gy=40.0,
                                             **old)).activity_Bq == pytest.approx(40.2 * GBQ)
    # now: 4 cycles left in the protocol share the budget, the maximum activity applies
    p = plan_next_cycle(led, PlanSettings(mode="cumulative_kidney_dose"))
    assert p.activity_Bq == pytest.approx(6.9 * GBQ)  # (23 − 9.116) / (4 × 0.5) = 6.94
    assert any(v.name == "cycles sharing the remaining budget" and v.value == 4 for v in p.values)
    p = plan_next_cycle(led, PlanSettings(mode="cumulative_kidney_bed", risk_stratum="standard"))
    assert p.activity_Bq == pytest.approx(9.3 * GBQ) and "maximum activity" in p.reason
    # no stratum in the ledger: the high-risk BED limit 28 Gy, said so
    p = plan_next_cycle(led, PlanSettings(mode="cumulative_kidney_bed"))
    assert p.risk_stratum == "high" and p.activity_Bq < 9.3 * GBQ
    assert any("no risk stratum" in w for w in p.warnings)
    assert any(v.name == "cumulative kidney BED limit" and v.value == 28.0 for v in p.values)


def test_ledger_at_415_Gy_gets_no_further_cycle_and_is_flagged():
    led = course([(9.0, 83.0 / 9.0)] * 5)  # 83 Gy per cycle
    assert led.cycles[-1].cumulative["kidney"].dose_Gy == pytest.approx(415.0)
    flags = ledger_limit_flags(led)
    assert {f.name for f in flags} >= {"kidney_dose", "kidney_bed"}
    assert any("415 Gy" in f.message and "23 Gy" in f.message for f in flags)
    p = plan_next_cycle(led, PlanSettings(prescribed_kidney_dose_Gy=4.0))
    assert p.refused and p.activity_Bq == 0.0 and p.limit_flags == flags
    assert "allows no further activity" in p.reason and "cumulative 415 Gy" in p.reason
    with pytest.raises(InputError, match=r"remaining kidney dose budget is -392 Gy \(limit 23 Gy"):
        plan_next_cycle(led, PlanSettings(mode="cumulative_kidney_dose"))


def test_ledger_at_26_6_Gy_after_six_cycles_is_flagged_everywhere(tmp_path, capsys):
    led = course([(8.8667, 0.5)] * 6, risk_stratum="standard")
    assert led.cycles[-1].cumulative["kidney"].dose_Gy == pytest.approx(26.6, rel=1e-4)
    flags = ledger_limit_flags(led)
    assert [f.name for f in flags] == ["kidney_dose"] and "26.6 Gy after cycle 6" in flags[0].message
    with pytest.raises(InputError, match=r"over a limit: cumulative kidney absorbed dose 26\.6 Gy"):
        plan_next_cycle(led, PlanSettings(prescribed_kidney_dose_Gy=4.0))
    p = plan_next_cycle(led, PlanSettings(prescribed_kidney_dose_Gy=4.0, salvage=True))
    assert p.refused and p.limit_flags == flags
    path = write_ledger(tmp_path / "l.json", led)
    assert main(["ledger", "check", str(path)]) == 1
    assert "LEDGER OVER LIMIT: cumulative kidney absorbed dose 26.6 Gy" in capsys.readouterr().out
    assert main(["plan", str(path), "--out", str(tmp_path / "plan"), "--salvage",
                 "--prescribed-kidney-dose-Gy", "4"]) == 0
    out = capsys.readouterr().out
    assert "REFUSED" in out and "LEDGER OVER LIMIT: cumulative kidney absorbed dose 26.6 Gy" in out
    assert "LEDGER OVER LIMIT" in (tmp_path / "plan" / "report.html").read_text()
    assert json.loads((tmp_path / "plan" / "plan.json").read_text())["ledger_over_limit"] is True


def test_prescribed_500_Gy_on_the_example_ledger_is_refused_naming_the_maximum(tmp_path, capsys):
    rc = main(["plan", str(EXAMPLE), "--out", str(tmp_path / "p"), "--prescribed-kidney-dose-Gy", "500"])
    err = capsys.readouterr().err
    assert rc == 2 and not (tmp_path / "p").exists()
    assert "500 Gy is above the maximum" in err and "limit is 23 Gy" in err and "9.3 GBq" in err
    assert len(err.strip().splitlines()) == 1


def test_reference_limits_are_loosened_only_by_named_override():
    led = issue_example()
    with pytest.raises(InputError, match=r"kidney_dose limit: 30 Gy is above the reference limit 23 Gy.*"
                                         r"--override-limit kidney_dose"):
        plan_next_cycle(led, PlanSettings(prescribed_kidney_dose_Gy=4.0, kidney_dose_limit_Gy=30.0))
    p = plan_next_cycle(led, PlanSettings(prescribed_kidney_dose_Gy=4.0, kidney_dose_limit_Gy=30.0,
                                          override_limits=frozenset({"kidney_dose"})))
    assert any("above the reference 23 Gy" in w for w in p.warnings)
    p = plan_next_cycle(led, PlanSettings(prescribed_kidney_dose_Gy=4.0, kidney_dose_limit_Gy=20.0))
    assert any(c["name"] == "cumulative kidney dose limit" and "limit 20 Gy" in c["source"] for c in p.constraints)
    p = plan_next_cycle(led, PlanSettings(prescribed_kidney_dose_Gy=6.0, override_limits=ALL_OFF))
    assert p.activity_Bq == pytest.approx(12.0 * GBQ) and not p.constraints
    assert sum("turned off by override" in w for w in p.warnings) == 3
    with pytest.raises(InputError, match="unknown limit name"):
        plan_next_cycle(led, PlanSettings(prescribed_kidney_dose_Gy=4.0, override_limits=frozenset({"kidneys"})))
    with pytest.raises(InputError, match="only 4 standard cycle"):
        plan_next_cycle(led, PlanSettings(prescribed_kidney_dose_Gy=4.0, remaining_cycles=5))


def test_reference_limits_carry_source_and_status_and_agree_with_the_reference_data():
    from LuDosimetryLib.nuclides import load_reference_data

    lim = load_planning_limits()
    ref = load_reference_data()["radiobiology"]["kidney"]
    assert lim.kidney_dose_limit_Gy["standard"].value == ref["absorbed_dose_limit_Gy"]["value"] == 23
    assert lim.kidney_bed_limit_Gy["high"].value == ref["BED_limit_with_risk_factors_Gy"]["value"] == 28
    assert lim.kidney_bed_limit_Gy["standard"].value == ref["BED_limit_without_risk_factors_Gy"]["value"] == 40
    assert "35:1847" in lim.kidney_bed_limit_Gy["high"].source
    assert lim.max_activity_per_cycle.value == pytest.approx(9.3 * GBQ)
    assert {x.status for x in (lim.max_activity_per_cycle, lim.kidney_dose_limit_Gy["high"])} == {"unverified"}
    assert (lim.standard_cycles.value, lim.salvage_cycles.value) == (6, 3)


# --- the ledger file: version 2 -------------------------------------------------------------------
def test_ledger_without_cycles_is_an_error_not_a_new_patient(tmp_path):
    doc = json.loads(EXAMPLE.read_text())
    doc.pop("cycles")
    (tmp_path / "l.json").write_text(json.dumps(doc))
    with pytest.raises(InputError, match=r"l\.json: cycles: field 'cycles' is missing.*as a new patient"):
        read_ledger(tmp_path / "l.json")
    assert main(["plan", str(tmp_path / "l.json"), "--out", str(tmp_path / "p"),
                 "--prescribed-kidney-dose-Gy", "4"]) == 2


def test_follow_up_and_outcomes_pass_through_unmodified(tmp_path):
    doc = json.loads(EXAMPLE.read_text())
    doc["follow_up"][0]["unknown_key_for_the_trial_module"] = {"nested": [1, 2.5, None, "x"]}
    doc["outcomes"]["death_date"] = "2027-05-01"
    (tmp_path / "in.json").write_text(json.dumps(doc))
    led = read_ledger(tmp_path / "in.json")
    out = json.loads(write_ledger(tmp_path / "out.json", led).read_text())
    assert out["follow_up"] == doc["follow_up"] and out["outcomes"] == doc["outcomes"]
    assert out["patient"] == {"risk_stratum": "standard", "phase": "1", "escalation_group": "G2"}
    assert out["cycles"] == doc["cycles"]  # the example is written by the library: a fixed point


@pytest.mark.parametrize(("edit", "message"), [
    (lambda d: d["patient"].__setitem__("risk_stratum", "medium"), r"patient\.risk_stratum: must be one of"),
    (lambda d: d["patient"].__setitem__("phase", 3), r"patient\.phase: must be \"1\" or \"2\", got 3"),
    (lambda d: d.__setitem__("follow_up", {"a": 1}), r"follow_up: must be a list"),
    (lambda d: d["cycles"][1]["cumulative"]["kidney"].__setitem__("dose_rel_uncertainty", 0.05),
     r"cumulative\.kidney\.dose_rel_uncertainty: .*shared \(correlated\) and independent parts give 0\.13"),
    (lambda d: d["cycles"][0]["organs"]["kidney"].__setitem__("dose_rel_uncertainty_independent", 0.3),
     r"organs\.kidney\.dose_rel_uncertainty: √\(shared² \+ independent²\)"),
    (lambda d: d["cycles"][0]["organs"].__setitem__("kidney", [1, 2]), r"organs\.kidney: must be an object"),
    (lambda d: d.__setitem__("radiobiology", {"kidney": {"alpha_beta_Gy": "x"}}),
     r"radiobiology\.kidney\.alpha_beta_Gy: must be a number > 0, got 'x'"),
])
def test_bad_version_2_fields_are_named(tmp_path, edit, message):
    doc = json.loads(EXAMPLE.read_text())
    edit(doc)
    (tmp_path / "l.json").write_text(json.dumps(doc))
    with pytest.raises(InputError, match=message):
        read_ledger(tmp_path / "l.json")


def test_trial_ledgers_and_planning_ledgers_read_each_other(tmp_path):
    from LuDosimetryLib.trial.cohort import trial_patient_from_ledger

    doc = json.loads(EXAMPLE.with_name("example_trial_ledger.json").read_text())  # written by the trial module
    doc["patient"]["risk_stratum"] = "low"  # the name synthetic trial cohorts may use for standard risk
    trial = tmp_path / "trial_ledger.json"
    trial.write_text(json.dumps(doc))
    led = read_ledger(trial)
    assert led.risk_stratum == "low" and led.phase == 1
    p = plan_next_cycle(led, PlanSettings(prescribed_kidney_dose_Gy=3.0, salvage=len(led.cycles) >= 6))
    assert p.risk_stratum == "standard"
    assert any("'low' = standard risk" in v.source for v in p.values if v.name == "risk stratum")
    pt = trial_patient_from_ledger(json.loads(EXAMPLE.read_text()), source="example_ledger.json")
    assert (pt.phase, pt.risk_stratum, pt.escalation_group, len(pt.cycles)) == ("1", "standard", "G2", 2)


def test_hand_edited_shared_part_above_total_is_a_consistency_error():
    doc = json.loads(EXAMPLE.read_text())
    doc["cycles"][0]["organs"]["kidney"].update(dose_rel_uncertainty_shared=0.5,
                                                dose_rel_uncertainty_independent=None)
    with pytest.raises(ConsistencyError, match=r"shared part 0\.5 is larger than the total"):
        ledger_from_dict(doc)


# --- plan: every numeric option validated in the user's units, no traceback ---------------------------
@pytest.mark.parametrize(("option", "value", "message"), [
    ("--min-activity-GBq", "-5", "--min-activity-GBq: must be a finite number ≥ 0 GBq, got -5 GBq"),
    ("--max-activity-GBq", "nan", "--max-activity-GBq: must be a finite number > 0 GBq, got nan GBq"),
    ("--step-GBq", "0", "--step-GBq: must be a finite number > 0 GBq, got 0 GBq"),
    ("--epsilon", "0.7", "--epsilon: must be a finite number > 0 and < 0.5, got 0.7"),
    ("--kidney-dose-limit-Gy", "-23", "--kidney-dose-limit-Gy: must be a finite number > 0 Gy, got -23 Gy"),
    ("--alpha-beta-Gy", "0", "--alpha-beta-Gy: must be a finite number > 0 Gy, got 0 Gy"),
    ("--repair-half-time-h", "inf", "--repair-half-time-h: must be a finite number > 0 h, got inf h"),
    ("--remaining-cycles", "0", "--remaining-cycles: must be an integer ≥ 1, got 0"),
    ("--remaining-cycles", "7", "remaining_cycles: 7 cycles planned but only 4 standard cycle(s) remain"),
    ("--organ-limit", "parotid=-3", "--organ-limit parotid: must be a finite number > 0 Gy, got -3 Gy"),
    ("--population-prior", "kidney=abc", "--population-prior kidney: must be a number, got 'abc'"),
    ("--planned-date", "2026-13-01", "--planned-date: must be a date YYYY-MM-DD, got '2026-13-01'"),
    ("--planned-date", "2026-02-01", "planned_date: planned date 2026-02-01 is not after cycle 2 (2026-02-16)"),
])
def test_every_numeric_plan_option_is_validated_in_the_users_units(tmp_path, capsys, option, value, message):
    rc = main(["plan", str(EXAMPLE), "--out", str(tmp_path / "p"), "--prescribed-kidney-dose-Gy", "4",
               option, value])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and "Traceback" not in err
    assert not (tmp_path / "p").exists()


def test_unwritable_or_input_overlapping_out_is_one_line(tmp_path, capsys):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    assert main(["plan", str(EXAMPLE), "--out", str(blocker / "sub"), "--prescribed-kidney-dose-Gy", "4"]) == 2
    err = capsys.readouterr().err
    assert "--out" in err and str(blocker) in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    ledger = tmp_path / "d" / "P001" / "ledger.json"
    ledger.parent.mkdir(parents=True)
    ledger.write_bytes(EXAMPLE.read_bytes())
    (tmp_path / "d" / "P002").mkdir()
    (tmp_path / "d" / "P002" / "ledger.json").write_bytes(EXAMPLE.read_bytes())
    assert main(["plan", str(ledger), "--out", str(tmp_path / "d"), "--force",
                 "--prescribed-kidney-dose-Gy", "4"]) == 2
    assert "contains the input" in capsys.readouterr().err  # the shared output check
    assert (tmp_path / "d" / "P002" / "ledger.json").is_file() and ledger.is_file()
