"""LuDosimetryLib.planning: hand-computed prescriptions, the risk constraint by Monte Carlo, the ledger."""

import datetime as dt
import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import optimize

from LuDosimetryLib.cli import main
from LuDosimetryLib.errors import ConsistencyError, InputError
from LuDosimetryLib.planning import (
    OrganDosePerActivity,
    PlanSettings,
    activity_for_bed_Bq,
    append_cycle,
    exceedance_probability,
    new_ledger,
    plan_next_cycle,
    read_cohort_table,
    read_ledger,
    risk_constrained_activity_Bq,
    write_ledger,
    write_ledger_csv,
)
from LuDosimetryLib.results import read_csv

GBQ = 1e9
COHORT_CSV = str(Path(__file__).resolve().parents[2] / "docs" / "examples" / "phase1_cohort_table.csv")
LN2 = math.log(2.0)
G40 = 2.8 / (2.8 + 40.0)  # G of a 40-h effective half-life with T_rep 2.8 h (physics.md)
NO_MAX = frozenset({"max_activity"})  # algebra tests: no maximum activity per cycle (named override)


def kd(d_gy_per_gbq, u=0.1, g=G40, source="test"):
    return OrganDosePerActivity(d_gy_per_gbq / GBQ, u, g, source)


def day(n):
    return dt.date(2026, 1, 5) + dt.timedelta(days=42 * (n - 1))


def course(ds, activities_gbq, *, method="full_protocol", **kw):
    led = new_ledger("P001", **kw)
    for i, (d, a) in enumerate(zip(ds, activities_gbq), start=1):
        led = append_cycle(led, administration_date=day(i), administered_activity_Bq=a * GBQ,
                           dosimetry_method=method, dose_per_activity={"kidney": kd(d)})
    return led


def test_cycle1_from_pet_prediction_hand_computed():
    led = new_ledger("P001", prediction={"kidney": kd(0.60, 0.25, source="68Ga-PSMA-11 PET")})
    p = plan_next_cycle(led, PlanSettings(prescribed_kidney_dose_Gy=4.0))
    # A = 4 Gy / 0.60 Gy/GBq = 6.667 GBq, rounded down to 0.1 GBq: 6.6 GBq
    assert p.cycle == 1 and not p.refused
    assert p.activity_Bq == pytest.approx(6.6 * GBQ, rel=1e-12)
    assert p.expected["kidney"]["dose_Gy"] == pytest.approx(3.96, rel=1e-12)
    assert any("PET prediction" in v.source for v in p.values if v.name == "kidney d")


def test_cycle2_from_cycle1_dosimetry_hand_computed():
    led = new_ledger("P001", prediction={"kidney": kd(0.60, 0.25)})
    led = append_cycle(led, administration_date=day(1), administered_activity_Bq=6.6 * GBQ,
                       dosimetry_method="full_protocol", dose_per_activity={"kidney": kd(0.50)})
    assert led.cycles[0].organs["kidney"].dose_Gy == pytest.approx(3.3, rel=1e-12)
    p = plan_next_cycle(led, PlanSettings(prescribed_kidney_dose_Gy=4.0))
    assert p.activity_Bq == pytest.approx(8.0 * GBQ, rel=1e-12)  # 4 / 0.5
    assert p.expected["kidney"]["cumulative_dose_Gy"] == pytest.approx(7.3, rel=1e-12)
    # a maximum activity caps it, and says so
    p = plan_next_cycle(led, PlanSettings(prescribed_kidney_dose_Gy=4.0, max_activity_Bq=7.4 * GBQ))
    assert p.activity_Bq == pytest.approx(7.4 * GBQ) and "maximum activity" in p.reason


def test_bed_quadratic_matches_numerical_root():
    d, g, ab, bed = 0.5 / GBQ, G40, 2.6, 10.0
    a = activity_for_bed_Bq(bed, d, g, ab)
    root = optimize.brentq(lambda x: x * d + g * (x * d) ** 2 / ab - bed, 1.0, 1e12, xtol=1e-3, rtol=1e-14)
    assert a == pytest.approx(root, rel=1e-10)
    # the form (α/β)/(2Gd)(√(1+4G·BED/(α/β)) − 1)
    assert a == pytest.approx(ab / (2 * g * d) * (math.sqrt(1 + 4 * g * bed / ab) - 1), rel=1e-12)
    assert activity_for_bed_Bq(bed, d, 0.0, ab) == pytest.approx(bed / d)


def test_cumulative_bed_mode_shares_the_remaining_budget():
    led = course([0.5, 0.5], [8.0, 8.0])  # 4 Gy per cycle, BED each = 4(1 + G·4/2.6)
    bed_cycle = 4.0 * (1 + G40 * 4.0 / 2.6)
    assert led.cycles[-1].cumulative["kidney"].bed_Gy == pytest.approx(2 * bed_cycle, rel=1e-12)
    p = plan_next_cycle(led, PlanSettings(mode="cumulative_kidney_bed", kidney_bed_limit_Gy=28.0,
                                          remaining_cycles=2, activity_step_Bq=1.0, override_limits=NO_MAX))
    per_cycle = (28.0 - 2 * bed_cycle) / 2
    d = 0.5 / GBQ
    root = optimize.brentq(lambda x: x * d + G40 * (x * d) ** 2 / 2.6 - per_cycle, 1.0, 1e12, rtol=1e-14)
    assert p.activity_Bq == pytest.approx(math.floor(root), abs=1.0)
    assert p.expected["kidney"]["bed_Gy"] == pytest.approx(per_cycle, rel=1e-6)
    assert any("unverified" in w for w in p.warnings)


def test_limit_reached_mid_course_reduces_then_refuses():
    led = course([0.5] * 3, [12.0] * 3)  # 6 Gy per cycle: 18 Gy after 3 cycles
    s = PlanSettings(prescribed_kidney_dose_Gy=6.0, kidney_dose_limit_Gy=23.0, min_activity_Bq=1.0 * GBQ,
                     override_limits=NO_MAX)
    p = plan_next_cycle(led, s)
    assert p.activity_Bq == pytest.approx(10.0 * GBQ)  # (23 − 18)/0.5
    assert "cumulative kidney dose limit" in p.reason and not p.refused
    assert any("would cross the cumulative kidney dose limit" in w for w in p.warnings)
    led = append_cycle(led, administration_date=day(4), administered_activity_Bq=10.0 * GBQ,
                       dosimetry_method="full_protocol", dose_per_activity={"kidney": kd(0.5)})
    p = plan_next_cycle(led, s)
    assert p.refused and p.activity_Bq == 0.0
    assert "cumulative kidney dose limit allows no further activity" in p.reason and "cumulative 23 Gy" in p.reason


def test_salvage_cycle_after_a_gap():
    led = course([0.5] * 6, [7.0] * 6)
    with pytest.raises(InputError, match="6 standard cycles already given; a further cycle must be a salvage"):
        plan_next_cycle(led, PlanSettings(prescribed_kidney_dose_Gy=4.0))
    planned = day(6) + dt.timedelta(days=400)
    p = plan_next_cycle(led, PlanSettings(prescribed_kidney_dose_Gy=4.0, salvage=True, kidney_dose_limit_Gy=60.0,
                                          planned_date=planned, override_limits=frozenset({"kidney_dose"})))
    assert (p.cycle, p.kind) == (7, "salvage")
    assert p.activity_Bq == pytest.approx(8.0 * GBQ)
    assert p.expected["kidney"]["cumulative_dose_Gy"] == pytest.approx(6 * 3.5 + 4.0)
    assert [v.value for v in p.values if v.name == "gap since last cycle"] == [400]
    for k in range(3):
        led = append_cycle(led, administration_date=planned + dt.timedelta(days=42 * k), kind="salvage",
                           administered_activity_Bq=4.0 * GBQ, dosimetry_method="reduced_protocol",
                           dose_per_activity={"kidney": kd(0.5)})
    with pytest.raises(InputError, match="3 salvage cycles already given"):
        plan_next_cycle(led, PlanSettings(prescribed_kidney_dose_Gy=4.0, salvage=True))


def _mc_exceedance(a, d, u_d, g, ab, past, u_p, limit, n=400_000, seed=7):
    rng = np.random.default_rng(seed)
    sd, sp = math.sqrt(math.log1p(u_d**2)), math.sqrt(math.log1p(u_p**2))
    dose = a * d * np.exp(sd * rng.standard_normal(n))
    total = past * np.exp(sp * rng.standard_normal(n)) + dose + g * dose**2 / ab
    return float(np.mean(total > limit)), n


@pytest.mark.parametrize(("u_p", "eps"), [(0.0, 0.05), (0.15, 0.05), (0.2, 0.1)])
def test_risk_constrained_activity_has_exceedance_epsilon_by_monte_carlo(u_p, eps):
    d, u_d, g, ab, past, limit = 0.5 / GBQ, 0.2, G40, 2.6, 20.0, 40.0
    a = risk_constrained_activity_Bq(d_Gy_per_Bq=d, d_rel_uncertainty=u_d, g_factor=g, alpha_beta_Gy=ab,
                                     past_bed_Gy=past, past_bed_rel_uncertainty=u_p, bed_limit_Gy=limit, epsilon=eps)
    assert a > 0
    p_mc, n = _mc_exceedance(a, d, u_d, g, ab, past, u_p, limit)
    assert abs(p_mc - eps) < 4 * math.sqrt(eps * (1 - eps) / n)
    # and it is below the deterministic BED root
    assert a < activity_for_bed_Bq(limit - past, d, g, ab)


def test_risk_mode_in_the_plan_and_refusal_when_past_alone_exceeds():
    led = course([0.5, 0.5], [8.0, 8.0])
    p = plan_next_cycle(led, PlanSettings(mode="risk_constrained", kidney_bed_limit_Gy=28.0, epsilon=0.05,
                                          override_limits=NO_MAX))
    assert p.expected["kidney"]["p_exceed_bed_limit"] <= 0.05 + 1e-9
    assert "P(cumulative kidney BED > 28 Gy) ≤ 0.05" in p.reason
    led = course([0.5] * 3, [12.0] * 3)  # BED 3 × 6(1 + 6G/2.6) = 20.72 Gy, u ≈ 0.067: P(> 21.5 Gy) ≈ 0.29
    p = plan_next_cycle(led, PlanSettings(mode="risk_constrained", kidney_bed_limit_Gy=21.5, epsilon=0.05))
    assert p.refused and p.activity_Bq == 0.0
    assert exceedance_probability(0.0, d_Gy_per_Bq=0.5 / GBQ, d_rel_uncertainty=0.1, g_factor=G40, alpha_beta_Gy=2.6,
                                  past_bed_Gy=led.cycles[-1].cumulative["kidney"].bed_Gy,
                                  past_bed_rel_uncertainty=led.cycles[-1].cumulative["kidney"].bed_rel_uncertainty,
                                  bed_limit_Gy=21.5) > 0.05


def test_organ_limits_reduce_or_warn():
    led = new_ledger("P001")
    led = append_cycle(led, administration_date=day(1), administered_activity_Bq=7.0 * GBQ,
                       dosimetry_method="full_protocol",
                       dose_per_activity={"kidney": kd(0.5), "parotid": kd(1.0, g=None),
                                          "red_marrow": kd(0.03, g=None)})
    # parotid: 7 Gy so far; limit 10 Gy allows (10 − 7)/1.0 = 3 GBq
    s = PlanSettings(prescribed_kidney_dose_Gy=4.0, organ_dose_limits_Gy={"parotid": 10.0, "red_marrow": 2.0})
    p = plan_next_cycle(led, s)
    assert p.activity_Bq == pytest.approx(3.0 * GBQ) and "parotid" in p.reason
    p = plan_next_cycle(led, PlanSettings(prescribed_kidney_dose_Gy=4.0, organ_dose_limits_Gy={"parotid": 10.0},
                                          organ_limit_action="warn"))
    assert p.activity_Bq == pytest.approx(8.0 * GBQ)
    assert any("parotid" in w and "not reduced" in w for w in p.warnings)


def test_missing_dosimetry_uses_last_measured_d_with_a_warning():
    led = course([0.5], [7.0])
    led = append_cycle(led, administration_date=day(2), administered_activity_Bq=6.0 * GBQ, dosimetry_method="none")
    k = led.cycles[1].organs["kidney"]
    assert k.dose_Gy == pytest.approx(3.0) and "fallback" in k.source
    p = plan_next_cycle(led, PlanSettings(prescribed_kidney_dose_Gy=4.0))
    assert p.activity_Bq == pytest.approx(8.0 * GBQ)
    assert any("cycle 2 has no measured dosimetry" in w and "last measured cycle 1" in w for w in p.warnings)


def test_ledger_round_trips_and_csv_view(tmp_path):
    led = course([0.5, 0.45], [7.0, 7.4])
    path = write_ledger(tmp_path / "ledger.json", led)
    again = read_ledger(path)
    assert again.cycles[1].cumulative["kidney"].dose_Gy == pytest.approx(3.5 + 7.4 * 0.45)
    # cumulative uncertainty: no split given, so all of it is shared (fully correlated): 10 %
    assert again.cycles[1].cumulative["kidney"].dose_rel_uncertainty == pytest.approx(0.1, rel=1e-12)
    rows = read_csv(write_ledger_csv(tmp_path / "ledger.csv", again))
    assert len(rows) == 2 and rows[1]["organ"] == "kidney" and float(rows[1]["administered_activity_GBq"]) == 7.4


def _edit(tmp_path, fn):
    led = course([0.5, 0.45, 0.5], [7.0, 7.4, 7.0])
    doc = json.loads(write_ledger(tmp_path / "l.json", led).read_text())
    fn(doc)
    (tmp_path / "l.json").write_text(json.dumps(doc))
    return tmp_path / "l.json"


@pytest.mark.parametrize(("edit", "message"), [
    (lambda d: d["cycles"][1]["cumulative"]["kidney"].__setitem__("dose_Gy", 9.0),
     r"cycles\[1\] \(cycle 2\)\.cumulative\.kidney\.dose_Gy: dose_Gy is 9 Gy but the sum over cycles 1–2 is 6\.83"),
    (lambda d: d["cycles"].reverse(), r"cycles\[0\] \(cycle 3\)\.cycle: cycle is 3 but entry 1"),
    (lambda d: d["cycles"][2].__setitem__("administered_activity_GBq", 8.0),
     r"cycles\[2\] \(cycle 3\)\.organs\.kidney\.dose_Gy: .*activity and dose do not match"),
    (lambda d: d["cycles"][1]["organs"]["kidney"].__setitem__("bed_Gy", 1.0),
     r"organs\.kidney\.bed_Gy: bed_Gy is 1 Gy"),
    (lambda d: d["cycles"][2].__setitem__("administration_date", "2026-01-01"),
     r"cycles\[2\] \(cycle 3\)\.administration_date: .*not after"),
    (lambda d: d["cycles"][0]["organs"]["kidney"].pop("dose_Gy"), r"cycles\[0\]\.organs\.kidney\.dose_Gy: field"),
])
def test_hand_edited_inconsistent_ledger_is_refused_naming_entry_and_field(tmp_path, edit, message):
    path = _edit(tmp_path, edit)
    with pytest.raises(InputError, match=message):
        read_ledger(path)


def test_inconsistency_is_a_consistency_error(tmp_path):
    path = _edit(tmp_path, lambda d: d["cycles"][1]["cumulative"]["kidney"].__setitem__("dose_Gy", 9.0))
    with pytest.raises(ConsistencyError):
        read_ledger(path)


def test_bad_input_no_dosimetry_negative_budget_missing_alpha_beta():
    with pytest.raises(InputError, match="no dosimetry at all for patient P001"):
        plan_next_cycle(new_ledger("P001"), PlanSettings(prescribed_kidney_dose_Gy=4.0))
    led = course([0.5] * 3, [16.0] * 3)  # 24 Gy
    with pytest.raises(InputError, match=r"kidney_dose_limit_Gy: the remaining kidney dose budget is -1 Gy"):
        plan_next_cycle(led, PlanSettings(mode="cumulative_kidney_dose", kidney_dose_limit_Gy=23.0))
    with pytest.raises(InputError, match=r"kidney_bed_limit_Gy: the remaining kidney BED budget is -"):
        plan_next_cycle(led, PlanSettings(mode="cumulative_kidney_bed", kidney_bed_limit_Gy=28.0))
    with pytest.raises(InputError, match=r"alpha_beta_Gy: kidney alpha_beta_Gy is missing for a BED prescription"):
        plan_next_cycle(course([0.5], [7.0]), PlanSettings(mode="cumulative_kidney_bed", kidney_bed_limit_Gy=28.0,
                                                           require_verified_radiobiology=True))
    user = course([0.5], [7.0], radiobiology={"kidney": {"alpha_beta_Gy": 2.5, "repair_half_time_h": 2.8}})
    p = plan_next_cycle(user, PlanSettings(mode="cumulative_kidney_bed", kidney_bed_limit_Gy=28.0,
                                           require_verified_radiobiology=True))
    assert p.activity_Bq > 0 and not any("unverified" in w for w in p.warnings)


def test_population_prior_is_the_stated_fallback():
    p = plan_next_cycle(new_ledger("P001"), PlanSettings(prescribed_kidney_dose_Gy=4.0, override_limits=NO_MAX,
                                                         population_prior={"kidney": (0.4 / GBQ, 0.3)}))
    assert p.activity_Bq == pytest.approx(10.0 * GBQ)
    assert any("population prior" in w for w in p.warnings)


def test_example_cohort_table_and_cli_plan(tmp_path, capsys):
    groups = read_cohort_table(COHORT_CSV)
    assert groups["G2"].prescribed_kidney_dose_per_cycle_Gy == 5.0
    led = course([0.5], [7.0], escalation_group="G2")
    ledger_path = write_ledger(tmp_path / "P001_ledger.json", led)
    out = tmp_path / "plan"
    assert main(["plan", str(ledger_path), "--out", str(out), "--cohort-table", COHORT_CSV,
                 "--max-activity-GBq", "12"]) == 2  # above the reference maximum 9.3 GBq, no override
    assert "above the reference limit 9.3 GBq" in capsys.readouterr().err
    rc = main(["plan", str(ledger_path), "--out", str(out), "--cohort-table", COHORT_CSV,
               "--max-activity-GBq", "12", "--override-limit", "max_activity"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "10.00 GBq" in printed and "cohort table phase1_cohort_table.csv group G2" in printed
    plan = json.loads((out / "plan.json").read_text())
    assert plan["activity_GBq"] == pytest.approx(10.0)  # 5 Gy / 0.5 Gy/GBq
    rows = read_csv(out / "ledger.csv")
    assert [r["dosimetry_method"] for r in rows] == ["full_protocol", "planned"]
    assert "Planning" in (out / "report.html").read_text()
    assert main(["plan", str(ledger_path), "--out", str(out), "--prescribed-kidney-dose-Gy", "4"]) == 2
    assert "exists" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text(ledger_path.read_text().replace('"cycle": 1', '"cycle": 2'))
    assert main(["plan", str(bad), "--out", str(tmp_path / "x"), "--prescribed-kidney-dose-Gy", "4"]) == 2
    assert "cycle is 2 but entry 1" in capsys.readouterr().err


def test_documented_example_ledger_is_valid():
    led = read_ledger(Path(COHORT_CSV).with_name("example_ledger.json"))
    assert led.escalation_group == "G2" and len(led.cycles) == 2
    assert led.cycles[1].cumulative["kidney"].dose_Gy == pytest.approx(8.3 * 0.52 + 9.2 * 0.50)
    assert (led.risk_stratum, led.phase) == ("standard", 1) and led.follow_up and led.outcomes


def test_cohort_table_bad_input_names_line_and_column(tmp_path):
    bad = tmp_path / "c.csv"
    bad.write_text("group,prescribed_kidney_dose_per_cycle_Gy\nG1,4\nG2,-5\n")
    with pytest.raises(InputError, match=r"c.csv line 3 prescribed_kidney_dose_per_cycle_Gy: must be finite and > 0"):
        read_cohort_table(bad)
    bad.write_text("group,dose\nG1,4\n")
    with pytest.raises(InputError, match="missing column"):
        read_cohort_table(bad)
