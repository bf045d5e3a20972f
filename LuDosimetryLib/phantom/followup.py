"""Synthetic clinical follow-up driven by absorbed doses, with known parameters (a ground truth to recover).

Given a patient's per-cycle organ doses and whole-body tumour dose D (Gy, cycle 1), the model
(:class:`FollowUpModel`, every parameter documented there) draws:

- **survival**: exponential times with hazards h = r·exp(β·D) per month, independently for PSA
  progression (r_psa, β_psa), radiographic progression (r_rad, β_rad) and death (r_os, β_os);
  administrative censoring at a uniform follow-up of 12–60 months. β is the log hazard ratio per
  Gy of tumour dose that a Cox model should recover. Progressions after death are not observed.
- **PSA** every 6 weeks: ln(PSA(t)/PSA₀) falls linearly to ln(nadir ratio) = −k_psa·D + N(0, σ)
  by week 8, then stays, and after the PSA progression time doubles every ``psa_doubling_weeks``.
  The recorded PSA progression date is PCWG3's on that series.
- **PSMA PET** (baseline 1 week before cycle 1, then every 12 weeks): total tumour volume
  TTV₀·exp(−D/D_vol + N(0, 0.3)) before the radiographic progression, ×1.5 per scan and new
  lesions after it; the recorded radiographic progression date is the drawn time.
- **toxicity**: per cycle, a DLT-grade (3) event with probability logistic(a_dlt + b_dlt·D_kidney,cycle)
  within the DLT window (first cycle only) unless the number of DLTs is imposed; a renal AE whose
  grade rises with the cumulative kidney dose (logit P(grade ≥ 1) = a_renal + b_renal·ΣD_kidney),
  dry mouth with the parotid dose, anaemia/thrombocytopenia with the red-marrow dose;
  delayed renal AEs (chronic kidney disease) after 12 months with the cumulative kidney dose.
- **PROM** (FACT-P): baseline N(110, 12); +12 points by week 12 in PSA responders, −5 otherwise.

:func:`synthetic_trial_ledgers` builds complete ledgers (version 2, patient block, follow-up,
outcomes) without any image: the cheap path for hundreds of patients; the cohort writer of
:mod:`.cohort` calls :func:`follow_up_for_patient` with each imaged patient's true doses.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..planning.ledger import LesionDose, OrganDosePerActivity, append_cycle, ledger_to_dict, new_ledger
from ..response.categories import pcwg3_psa_progression
from ..trial.followup import AdverseEvent, FollowUpVisit, Outcomes, PsmaPet, follow_up_to_dict, outcomes_to_dict
from ..units import BQ_PER_GBQ

__all__ = ["FollowUpModel", "follow_up_for_patient", "synthetic_trial_ledgers", "PHASE1_WORKED_EXAMPLE",
           "EscalationGroupDesign", "cohort_patient_ledger", "ledger_organ_doses", "write_trial_cohort"]

DAYS_PER_MONTH = 365.25 / 12
CYCLE_INTERVAL_DAYS = 42


@dataclass(frozen=True)
class FollowUpModel:
    """Parameters of the dose-driven follow-up model (module docstring); rates per month, β per Gy."""

    psa_baseline_median_ng_per_mL: float = 40.0
    psa_baseline_log_sd: float = 0.6
    psa_k_per_Gy: float = 0.035
    psa_log_sd: float = 0.5
    psa_doubling_weeks: float = 8.0
    psa_pfs_rate_per_month: float = 0.25
    psa_pfs_log_hr_per_Gy: float = -0.03
    rpfs_rate_per_month: float = 0.15
    rpfs_log_hr_per_Gy: float = -0.025
    os_rate_per_month: float = 0.06
    os_log_hr_per_Gy: float = -0.02
    follow_up_min_months: float = 12.0
    follow_up_max_months: float = 60.0
    ttv_baseline_median_mL: float = 150.0
    ttv_dose_scale_Gy: float = 30.0
    dlt_intercept: float = -7.0
    dlt_per_Gy: float = 0.6
    renal_intercept: float = -4.0
    renal_per_Gy: float = 0.12
    salivary_intercept: float = -1.5
    salivary_per_Gy: float = 0.15
    marrow_intercept: float = -3.0
    marrow_per_Gy: float = 1.5
    prom_responder_change: float = 12.0
    prom_nonresponder_change: float = -5.0


def _logistic(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _grade(rng: np.random.Generator, p_any: float) -> int:
    """0 (none) or a grade 1–3; higher grades likelier when p_any is high."""
    if rng.uniform() >= p_any:
        return 0
    return int(min(3, 1 + rng.binomial(2, p_any)))


def follow_up_for_patient(rng: np.random.Generator, *, start: _dt.date, tumour_dose_Gy: float,
                          cycle_doses: Sequence[dict], model: FollowUpModel = FollowUpModel(),
                          force_dlt: bool | None = None, dlt_window_days: float = 84.0
                          ) -> tuple[list[FollowUpVisit], Outcomes, dict]:
    """Draw one patient's follow-up visits, outcomes and the generating truth.

    Parameters
    ----------
    start : datetime.date
        Cycle 1 administration date.
    tumour_dose_Gy : float
        Whole-body tumour absorbed dose after cycle 1 (Gy), the biomarker.
    cycle_doses : sequence of dict
        Per administered cycle, organ → absorbed dose (Gy) (``kidney``, ``parotid``, ``red_marrow``).
    force_dlt : bool, optional
        Impose a DLT (True) or none (False) in the DLT window instead of drawing it.

    Returns
    -------
    visits, outcomes, truth
        truth: the drawn times (months) and model values.
    """
    m = model
    d = float(tumour_dose_Gy)
    t_psa = rng.exponential(1 / (m.psa_pfs_rate_per_month * math.exp(m.psa_pfs_log_hr_per_Gy * d)))
    t_rad = rng.exponential(1 / (m.rpfs_rate_per_month * math.exp(m.rpfs_log_hr_per_Gy * d)))
    t_os = rng.exponential(1 / (m.os_rate_per_month * math.exp(m.os_log_hr_per_Gy * d)))
    t_fu = rng.uniform(m.follow_up_min_months, m.follow_up_max_months)
    end_m = min(t_os, t_fu)
    end_day = max(1, round(end_m * DAYS_PER_MONTH))
    psa0 = float(math.exp(rng.normal(math.log(m.psa_baseline_median_ng_per_mL), m.psa_baseline_log_sd)))
    ln_nadir = -m.psa_k_per_Gy * d + rng.normal(0, m.psa_log_sd)
    ttv0 = float(math.exp(rng.normal(math.log(m.ttv_baseline_median_mL), 0.7)))
    ttv_ratio = math.exp(-d / m.ttv_dose_scale_Gy + rng.normal(0, 0.3))
    fact0 = float(rng.normal(110, 12))
    psa_day = t_psa * DAYS_PER_MONTH

    def psa(day: float) -> float:
        base = psa0 * math.exp(ln_nadir * min(day / 56.0, 1.0))
        if day > psa_day:
            at = psa0 * math.exp(ln_nadir * min(psa_day / 56.0, 1.0))
            return max(base, at * 2 ** ((day - psa_day) / (7 * m.psa_doubling_weeks)))
        return base

    # PSA progression as PCWG3 sees it on the 6-weekly series
    days = list(range(42, end_day + 1, 42))
    values = [round(psa(x), 3) for x in days]
    prog = pcwg3_psa_progression(days, values, psa0) if days else None
    psa_prog_day = prog.day if prog is not None and prog.confirmed else None
    responder = ln_nadir <= math.log(0.5)
    visits: dict[int, dict] = {0: {"labs": {"psa_ng_per_mL": round(psa0, 3), "creatinine_umol_per_L": 80.0,
                                            "egfr_mL_per_min_per_1_73m2": float(round(rng.normal(85, 10)))},
                                   "prom": {"FACT-P": round(fact0, 1)}, "aes": [], "visit": "baseline"}}
    visits[-7] = {"pet": PsmaPet(round(ttv0, 2), False), "aes": [], "visit": "baseline PSMA PET"}
    for x, v in zip(days, values):
        e = visits.setdefault(x, {"aes": []})
        e.setdefault("labs", {})["psa_ng_per_mL"] = v
        if x <= 365:
            change = (m.prom_responder_change if responder else m.prom_nonresponder_change) * min(x / 84, 1)
            e["prom"] = {"FACT-P": round(fact0 + change + rng.normal(0, 3), 1)}
    rad_day = t_rad * DAYS_PER_MONTH
    ttv = ttv0 * ttv_ratio
    for x in range(84, end_day + 1, 84):
        new = x > rad_day
        if new:
            ttv *= 1.5
        visits.setdefault(x, {"aes": []})["pet"] = PsmaPet(round(ttv, 2), new)
    # toxicity
    cum_kidney = 0.0
    dlt = False
    for i, c in enumerate(cycle_doses):
        cday = i * CYCLE_INTERVAL_DAYS
        if cday > end_day:
            break
        kid = float(c.get("kidney", 0.0))
        cum_kidney += kid
        aes = []
        if i == 0:
            p_dlt = _logistic(m.dlt_intercept + m.dlt_per_Gy * kid)
            dlt = bool(rng.uniform() < p_dlt) if force_dlt is None else force_dlt
            if dlt:
                onset = min(int(rng.integers(14, int(dlt_window_days) - 7)), end_day)  # before death/censoring
                aes.append(("Platelet count decreased" if rng.uniform() < 0.5 else "Acute kidney injury", 3,
                            onset, True))
        g = _grade(rng, _logistic(m.renal_intercept + m.renal_per_Gy * cum_kidney))
        if g:
            aes.append(("Creatinine increased", min(g, 2), int(rng.integers(7, 35)), False))
        g = _grade(rng, _logistic(m.salivary_intercept + m.salivary_per_Gy * float(c.get("parotid", 0.0))))
        if g:
            aes.append(("Dry mouth", min(g, 2), int(rng.integers(3, 30)), False))
        g = _grade(rng, _logistic(m.marrow_intercept + m.marrow_per_Gy * float(c.get("red_marrow", 0.0))))
        if g:
            aes.append(("Anemia", min(g, 2), int(rng.integers(14, 40)), False))
        for term, grade, offset, is_dlt in aes:
            onset = cday + offset
            if onset > end_day:
                continue
            report_day = min(x for x in [*days, end_day] if x >= onset)
            visits.setdefault(report_day, {"aes": []})["aes"].append(
                AdverseEvent(term, grade, "probable" if is_dlt or term != "Anemia" else "possible",
                             start + _dt.timedelta(days=onset), is_dlt))
    # delayed renal toxicity (chronic kidney disease) after 12 months
    p_ckd = _logistic(m.renal_intercept - 1.0 + m.renal_per_Gy * cum_kidney)
    if rng.uniform() < p_ckd:
        onset = int(rng.uniform(366, 5 * 365))
        if onset <= end_day:
            report_day = min(x for x in [*days, end_day] if x >= onset)
            visits.setdefault(report_day, {"aes": []})["aes"].append(
                AdverseEvent("Chronic kidney disease", 2 if rng.uniform() < 0.7 else 3, "possible",
                             start + _dt.timedelta(days=onset)))
    out = []
    for x in sorted(visits):
        v = visits[x]
        out.append(FollowUpVisit(start + _dt.timedelta(days=x), v.get("visit", ""), v.get("labs", {}),
                                 tuple(v["aes"]), v.get("prom", {}), v.get("pet")))
    last = start + _dt.timedelta(days=end_day)
    if out[-1].date > last:
        raise InputError("internal: a visit after the last follow-up", source="synthetic follow-up")
    died = t_os <= t_fu
    rad_date = start + _dt.timedelta(days=round(rad_day)) if rad_day <= end_day else None
    psa_date = start + _dt.timedelta(days=psa_prog_day) if psa_prog_day is not None else None
    outcomes = Outcomes(last, psa_date, rad_date, last if died else None,
                        salvage_eligible=bool(responder and psa_date is not None))
    truth = {"tumour_dose_Gy": d, "psa_pfs_time_months": t_psa, "rpfs_time_months": t_rad, "os_time_months": t_os,
             "follow_up_months": t_fu, "psa_nadir_ratio": math.exp(ln_nadir), "ttv_ratio": ttv_ratio,
             "dlt": dlt, "cumulative_kidney_dose_Gy": cum_kidney}
    return out, outcomes, truth


@dataclass(frozen=True)
class EscalationGroupDesign:
    """One escalation group of a synthetic phase-1 cohort.

    Attributes
    ----------
    name : str
    n_patients : int
    kidney_dose_per_cycle_Gy : float
        Prescribed kidney absorbed dose per cycle.
    n_dlt : int or None
        Impose this number of DLTs in the group (None: drawn from the DLT model).
    """

    name: str
    n_patients: int
    kidney_dose_per_cycle_Gy: float
    n_dlt: int | None = None


#: 3+3 worked example: G1 0/3 → escalate; G2 1/3 → expand to 6; G3 2/6 → stop.
PHASE1_WORKED_EXAMPLE = (EscalationGroupDesign("G1", 3, 4.0, 0), EscalationGroupDesign("G2", 3, 5.0, 1),
                         EscalationGroupDesign("G3", 6, 6.0, 2))


def synthetic_trial_ledgers(groups: Sequence[EscalationGroupDesign], *, seed: int = 0, phase: int = 1,
                            n_cycles: int = 4, model: FollowUpModel = FollowUpModel(),
                            start: _dt.date = _dt.date(2026, 1, 5)) -> tuple[list[dict], dict]:
    """Ledger documents (version 2) with follow-up for a synthetic cohort, and the generating truth.

    Doses without images (the cheap path): kidney d ~ log-normal(median 0.5 Gy/GBq, σ 0.25),
    activity per cycle = prescribed kidney dose / d (the personalised-activity rule); tumour
    d ~ log-normal(median 4 Gy/GBq, σ 0.5), red marrow d = 0.03 Gy/GBq, parotid d ~ log-normal(0.5, 0.3).
    Patients enter two weeks apart; risk stratum alternates ``standard``/``high`` within a group.
    """
    rng = np.random.default_rng([seed, 0x7A1])
    ledgers, truth = [], {"model": asdict(model), "patients": {}}
    k = 0
    for g in groups:
        if g.n_dlt is not None and not 0 <= g.n_dlt <= g.n_patients:
            raise InputError(f"n_dlt {g.n_dlt} outside 0…{g.n_patients}", source=f"group {g.name}")
        forced = set(rng.choice(g.n_patients, g.n_dlt, replace=False).tolist()) if g.n_dlt is not None else None
        for j in range(g.n_patients):
            k += 1
            pid = f"T{k:03d}"
            d_kid = float(rng.lognormal(math.log(0.5), 0.25))
            d_tum = float(rng.lognormal(math.log(4.0), 0.5))
            d_par = float(rng.lognormal(math.log(0.5), 0.3))
            activity_gbq = g.kidney_dose_per_cycle_Gy / d_kid
            per = {"kidney": d_kid, "parotid": d_par, "red_marrow": 0.03}
            day0 = start + _dt.timedelta(days=14 * k)
            cycle_doses = [{o: activity_gbq * x for o, x in per.items()} for _ in range(n_cycles)]
            visits, outcomes, t = follow_up_for_patient(
                rng, start=day0, tumour_dose_Gy=activity_gbq * d_tum, cycle_doses=cycle_doses, model=model,
                force_dlt=None if forced is None else j in forced)
            followed_days = (outcomes.last_follow_up_date - day0).days
            n_given = sum(1 for i in range(n_cycles) if i * CYCLE_INTERVAL_DAYS <= followed_days)
            led = new_ledger(pid, escalation_group=g.name, risk_stratum="standard" if j % 2 == 0 else "high",
                             phase=phase)
            for i in range(max(n_given, 1)):
                a_bq = activity_gbq * BQ_PER_GBQ
                tumour = LesionDose(d_tum / BQ_PER_GBQ, a_bq * d_tum / BQ_PER_GBQ, 0.2, 100.0, "synthetic", "synthetic")
                led = append_cycle(led, administration_date=day0 + _dt.timedelta(days=i * CYCLE_INTERVAL_DAYS),
                                   administered_activity_Bq=a_bq, dosimetry_method="full_protocol",
                                   dose_per_activity={o: OrganDosePerActivity(x / BQ_PER_GBQ, 0.15, None, "synthetic")
                                                      for o, x in per.items()},
                                   lesions={"tumour_burden": tumour})
            doc = ledger_to_dict(led)
            doc["follow_up"] = follow_up_to_dict(visits)
            doc["outcomes"] = outcomes_to_dict(outcomes)
            ledgers.append(doc)
            truth["patients"][pid] = {**t, "escalation_group": g.name, "activity_per_cycle_GBq": activity_gbq}
    return ledgers, truth


#: ledger organ → phantom regions whose mass-weighted mean dose it is
_LEDGER_ORGANS = {"kidney": ("kidney_cortex_left", "renal_pelvis_left", "kidney_cortex_right", "renal_pelvis_right"),
                  "parotid": ("parotid_left", "parotid_right"),
                  "submandibular": ("submandibular_left", "submandibular_right"),
                  "lacrimal": ("lacrimal_left", "lacrimal_right"), "red_marrow": ("red_marrow",)}


def ledger_organ_doses(truth: dict) -> dict[str, float]:
    """Cycle-1 true absorbed dose (Gy) of each ledger organ: mass-weighted over its phantom regions (truth.json)."""
    mass = {r["name"]: r["mass_g"] for r in truth["regions"]}
    dose = truth["cycles"][0]["dose_Gy"]
    out = {}
    for organ, names in _LEDGER_ORGANS.items():
        names = [n for n in names if n in dose and mass.get(n)]
        if names:
            out[organ] = sum(dose[n] * mass[n] for n in names) / sum(mass[n] for n in names)
    return out


def cohort_patient_ledger(patient_id: str, truth: dict, tumour_dose_Gy: float, activity_Bq: float, *,
                          seed: Sequence[int], n_cycles: int = 4, model: FollowUpModel = FollowUpModel(),
                          start: _dt.date = _dt.date(2026, 1, 5)) -> tuple[dict, dict]:
    """Ledger (version 2) with follow-up for an imaged synthetic patient, from its true cycle-1 doses.

    Every cycle repeats cycle 1's activity and dose per activity (the truth has one cycle); the
    follow-up is drawn by :func:`follow_up_for_patient` from the true whole-body tumour dose, with
    its own random stream (``seed``) so the imaging draws of the cohort are unchanged.
    """
    rng = np.random.default_rng([*seed, 0xF011])
    organ = ledger_organ_doses(truth)
    mass = {r["name"]: r["mass_g"] for r in truth["regions"]}
    lesion_dose = {r["name"]: float(truth["cycles"][0]["dose_Gy"][r["name"]]) for r in truth["regions"]
                   if r.get("kind") == "lesion" and r["name"] in truth["cycles"][0]["dose_Gy"]}
    per_bq = {o: d / activity_Bq for o, d in organ.items()}
    cycle_doses = [dict(organ) for _ in range(n_cycles)]
    visits, outcomes, t = follow_up_for_patient(rng, start=start, tumour_dose_Gy=tumour_dose_Gy,
                                                cycle_doses=cycle_doses, model=model)
    followed = (outcomes.last_follow_up_date - start).days
    led = new_ledger(patient_id, phase=2)
    for i in range(max(1, sum(1 for k in range(n_cycles) if k * CYCLE_INTERVAL_DAYS <= followed))):
        led = append_cycle(led, administration_date=start + _dt.timedelta(days=i * CYCLE_INTERVAL_DAYS),
                           administered_activity_Bq=activity_Bq,
                           dosimetry_method="full_protocol" if i == 0 else "none",
                           dose_per_activity=None if i else {o: OrganDosePerActivity(x, 0.1, None, "phantom truth")
                                                             for o, x in per_bq.items()},
                           # lesions: true cycle-1 doses; volume = mass at unit density (as clinical.csv)
                           lesions=None if i else {n: LesionDose(d / activity_Bq, d, 0.1, mass[n], "truth",
                                                                 "phantom truth") for n, d in lesion_dose.items()})
    doc = ledger_to_dict(led)
    doc.update(follow_up=follow_up_to_dict(visits), outcomes=outcomes_to_dict(outcomes))
    return doc, {**t, "model": asdict(model)}


def write_trial_cohort(out_dir, design: str = "phase1", *, n_patients: int = 200, seed: int = 0,
                       force: bool = False) -> Path:
    """Write a ledger-only synthetic trial cohort (no images), whole or not at all.

    ``phase1``: the 3+3 worked example :data:`PHASE1_WORKED_EXAMPLE`; ``biomarker``: one group of
    ``n_patients`` at 5 Gy kidney dose per cycle (phase 2). Files: ``P….json`` ledgers and
    ``trial_truth.json`` (model parameters and each patient's drawn times).
    """
    from ..results import atomic_directory, write_json

    if design == "phase1":
        groups, phase = PHASE1_WORKED_EXAMPLE, 1
    elif design == "biomarker":
        if n_patients < 1:
            raise InputError(f"must be ≥ 1, got {n_patients}", source="n_patients")
        groups, phase = (EscalationGroupDesign("B", n_patients, 5.0),), 2
    else:
        raise InputError(f"unknown synthetic trial design {design!r}; choose phase1 or biomarker", source="design")
    ledgers, truth = synthetic_trial_ledgers(groups, seed=seed, phase=phase)
    truth["design"] = design
    with atomic_directory(out_dir, overwrite=force) as tmp:
        for d in ledgers:
            write_json(tmp / f"{d['patient_id']}.json", d)
        write_json(tmp / "trial_truth.json", truth)
    return Path(out_dir)
