"""The personalised-activity trial's endpoints from a cohort of :class:`~.cohort.TrialPatient`.

- **DLTs** within a window (default 12 weeks from cycle 1) per escalation group and risk stratum,
  with the decision of a named escalation rule (:mod:`.escalation`). A patient is DLT-evaluable
  when followed through the window or with a DLT in it.
- **Response after two cycles** (week 12 ± 4 weeks): PCWG3, RECIP 1.0 and the biomarker trial's
  combined category (progression by PSA or PSMA PET = ``non_response``) per patient.
- **ORR** (RECIP 1.0 complete or partial response) and **PSA50** (confirmed PCWG3 PSA response):
  best response within 12 months, with exact Clopper–Pearson 95 % intervals (Clopper CJ, Pearson
  ES. Biometrika 1934;26:404–413).
- **Adverse events** (CTCAE v5.0): patients by worst grade per term (all, and treatment-related).
- **Delayed adverse events of interest**: onset after ``delayed_after_months`` (default 12) and
  up to 60 months from cycle 1, terms of :data:`DELAYED_TERMS_OF_INTEREST` (a parameter).
- **PROM response**: an improvement from baseline by at least the instrument's minimal important
  difference at any visit within 12 months (:data:`PROM_RULES`).
- **PSA-PFS, rPFS, PFS, OS** (months from cycle 1, to 60 months): Kaplan–Meier per escalation
  group with median and 95 % CI. PFS events: PSA or radiographic progression or death.
- **Dose per cycle vs toxicity**: organ doses of each cycle beside the worst grade of the AEs
  beginning between this cycle and the next.

Baseline values (PSA, PSMA-PET total tumour volume, PROM) are the last on or before cycle 1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict

import numpy as np
from scipy import stats

from ..response.categories import (
    combined_outcome,
    pcwg3_best_response,
    pcwg3_psa_progression,
    pcwg3_response_at,
    recip_category,
)
from ..response.survival import kaplan_meier, median_ci95
from .cohort import TrialPatient
from .escalation import escalation_decision

__all__ = ["clopper_pearson", "dlt_rows", "response_rows", "rate_rows", "salvage_rows", "adverse_event_rows",
           "delayed_ae_rows", "prom_rows", "dose_toxicity_models", "biomarker_rows", "survival_times", "survival_rows",
           "dose_toxicity_rows", "PROM_RULES",
           "DELAYED_TERMS_OF_INTEREST", "TOXICITY_GROUPS", "DAYS_PER_MONTH"]

DAYS_PER_MONTH = 365.25 / 12
#: instrument → (direction: +1 higher is better, −1 lower is better; minimal important difference)
PROM_RULES: dict[str, tuple[int, float]] = {
    "FACT-P": (+1, 10.0),             # Cella D et al. Value Health 2009;12:124–129 (MID 6–10)
    "BPI-SF worst pain": (-1, 2.0),   # PCWG3 pain response: ≥ 2-point decrease (Scher 2016)
    "EQ-5D VAS": (+1, 7.0),           # Pickard AS et al. Health Qual Life Outcomes 2007;5:70
}
#: CTCAE v5.0 terms grouped by the organ at risk whose dose they follow
TOXICITY_GROUPS: dict[str, tuple[str, ...]] = {
    "renal": ("Acute kidney injury", "Chronic kidney disease", "Creatinine increased", "Proteinuria"),
    "haematological": ("Anemia", "Platelet count decreased", "Neutrophil count decreased",
                       "White blood cell decreased", "Lymphocyte count decreased", "Myelodysplastic syndrome"),
    "salivary": ("Dry mouth", "Salivary duct inflammation", "Dry eye"),
}
DELAYED_TERMS_OF_INTEREST = TOXICITY_GROUPS["renal"] + ("Myelodysplastic syndrome", "Leukemia secondary to oncology "
                                                          "chemotherapy", "Dry mouth")


def clopper_pearson(k: int, n: int) -> tuple[float, float]:
    """Exact 95 % interval of a proportion k/n (nan, nan for n = 0)."""
    if n == 0:
        return math.nan, math.nan
    lo = 0.0 if k == 0 else float(stats.beta.ppf(0.025, k, n - k + 1))
    hi = 1.0 if k == n else float(stats.beta.ppf(0.975, k + 1, n - k))
    return lo, hi


def _natural(s: str):
    import re
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


def _has_dlt(p: TrialPatient, window_days: float) -> bool:
    return any(a.dlt and 0 <= p.day(a.onset_date) <= window_days for a in p.follow_up.adverse_events())


def _evaluable(p: TrialPatient, window_days: float) -> bool:
    o = p.follow_up.outcomes
    followed = o is not None and (p.day(o.last_follow_up_date) >= window_days or o.death_date is not None)
    return followed or _has_dlt(p, window_days)


def _phase2(p: TrialPatient) -> bool:
    return p.phase.strip().lower().replace("phase", "").strip() in ("2", "ii")


def dlt_rows(patients: Sequence[TrialPatient], *, rule: str = "3+3", window_weeks: float = 12.0) -> list[dict]:
    """One row per escalation group × risk stratum (and per group over all strata, stratum ``all``).

    Groups whose patients are all phase 2 get no escalation decision (``not applicable (phase 2)``).
    """
    window = 7.0 * window_weeks
    groups = sorted({p.escalation_group for p in patients if p.escalation_group}, key=_natural)
    rows = []
    for g in groups:
        members = [p for p in patients if p.escalation_group == g]
        strata = sorted({p.risk_stratum for p in members})
        for s in ([*strata, "all"] if len(strata) > 1 else ["all"]):
            sel = [p for p in members if s == "all" or p.risk_stratum == s]
            ev = [p for p in sel if _evaluable(p, window)]
            d = sum(_has_dlt(p, window) for p in ev)
            rows.append({"escalation_group": g, "risk_stratum": s, "n_patients": len(sel), "n_dlt_evaluable": len(ev),
                         "n_dlt": d, "dlt_rate": d / len(ev) if ev else math.nan,
                         "median_kidney_dose_per_cycle_Gy": float(np.median([c.dose_Gy["kidney"] for p in sel
                                                                             for c in p.cycles
                                                                             if "kidney" in c.dose_Gy] or [math.nan])),
                         "decision": ("not applicable (phase 2)" if all(_phase2(p) for p in sel)
                                      else escalation_decision(rule, len(ev), d)), "rule": rule,
                         "patients_with_dlt": ";".join(p.patient_id for p in ev if _has_dlt(p, window))})
    return rows


def _baseline(p: TrialPatient, series: list) -> tuple | None:
    before = [(d, v) for d, v in series if d <= p.start_date]
    return before[-1] if before else None


def response_rows(patients: Sequence[TrialPatient], *, horizon_months: float = 12.0, landmark_weeks: float = 12.0,
                  window_weeks: float = 4.0) -> list[dict]:
    """Per patient: PCWG3 best PSA response and RECIP 1.0 best response within the horizon, and the
    PCWG3, RECIP and combined (biomarker-trial) categories at the landmark (after cycle 2: week 12)
    ± the window."""
    horizon = horizon_months * DAYS_PER_MONTH
    landmark, window = 7.0 * landmark_weeks, 7.0 * window_weeks
    rows = []
    for p in patients:
        row = {"patient": p.patient_id, "escalation_group": p.escalation_group, "risk_stratum": p.risk_stratum,
               "psa_baseline_ng_per_mL": None, "psa_best_response": "not_evaluable", "psa_best_change_percent": None,
               "psa50": None, "recip_best_response": "not_evaluable", "orr": None,
               f"psa_pcwg3_week_{landmark_weeks:g}": "not_evaluable", f"recip_week_{landmark_weeks:g}": "not_evaluable",
               f"combined_week_{landmark_weeks:g}": "not_evaluable"}
        psa_at, recip_at = None, None
        psa = p.follow_up.lab_series("psa_ng_per_mL")
        base = _baseline(p, psa)
        if base is not None and base[1] > 0:
            after = [(p.day(d), v) for d, v in psa if d > p.start_date]
            if after:
                days, vals = zip(*after)
                best = pcwg3_best_response(days, vals, base[1], until_day=horizon)
                row.update(psa_baseline_ng_per_mL=base[1], psa_best_response=best.category,
                           psa_best_change_percent=best.change_percent)
                if best.category != "not_evaluable":
                    row["psa50"] = int(best.category == "response")
                psa_at = pcwg3_response_at(days, vals, base[1], day=landmark, window_days=window).category
                row[f"psa_pcwg3_week_{landmark_weeks:g}"] = psa_at
        pets = p.follow_up.psma_pet_series()
        bpet = _baseline(p, pets)
        if bpet is not None and bpet[1].total_tumour_volume_mL > 0:
            cats = [pet.recip or recip_category(bpet[1].total_tumour_volume_mL, pet.total_tumour_volume_mL,
                                                pet.new_lesions)
                    for d, pet in pets if p.start_date < d and p.day(d) <= horizon]
            if cats:
                first_pd = cats.index("progression") if "progression" in cats else len(cats)
                before = cats[:first_pd]
                order = ("complete_response", "partial_response", "stable")
                best = next((c for c in order if c in before), "progression")
                row.update(recip_best_response=best, orr=int(best in order[:2]))
            near = [(abs(p.day(d) - landmark), d, pet) for d, pet in pets
                    if d > p.start_date and abs(p.day(d) - landmark) <= window]
            if near:
                _, _, pet = min(near, key=lambda x: x[0])
                recip_at = pet.recip or recip_category(bpet[1].total_tumour_volume_mL, pet.total_tumour_volume_mL,
                                                       pet.new_lesions)
                row[f"recip_week_{landmark_weeks:g}"] = recip_at
        row[f"combined_week_{landmark_weeks:g}"] = combined_outcome(psa_at, recip_at)
        rows.append(row)
    return rows


def rate_rows(resp: Sequence[dict]) -> list[dict]:
    """ORR and PSA50 per escalation group and overall, with Clopper–Pearson 95 % intervals."""
    out = []
    groups = sorted({r["escalation_group"] for r in resp}, key=_natural)
    for g in [*groups, "all"] if len(groups) > 1 else ["all"]:
        sel = [r for r in resp if g == "all" or r["escalation_group"] == g]
        for name, key in (("ORR (RECIP 1.0 CR+PR)", "orr"), ("PSA50 (PCWG3 confirmed)", "psa50")):
            ev = [r[key] for r in sel if r[key] is not None]
            k, n = int(sum(ev)), len(ev)
            lo, hi = clopper_pearson(k, n)
            out.append({"endpoint": name, "escalation_group": g, "n_responders": k, "n_evaluable": n,
                        "rate_percent": 100 * k / n if n else math.nan, "ci95_low_percent": 100 * lo,
                        "ci95_high_percent": 100 * hi})
    return out


def salvage_rows(patients: Sequence[TrialPatient], times: Sequence[dict]) -> list[dict]:
    """Salvage eligibility (responder, then re-progression) per group and overall, Clopper–Pearson 95 %."""
    out = []
    groups = sorted({p.escalation_group for p in patients}, key=_natural)
    for g in [*groups, "all"] if len(groups) > 1 else ["all"]:
        flags = [t["salvage_eligible"] for p, t in zip(patients, times)
                 if t and (g == "all" or p.escalation_group == g)]
        if not flags:
            continue
        k, n = int(sum(flags)), len(flags)
        lo, hi = clopper_pearson(k, n)
        out.append({"endpoint": "salvage eligible (responder, then re-progression)", "escalation_group": g,
                    "n_responders": k, "n_evaluable": n, "rate_percent": 100 * k / n, "ci95_low_percent": 100 * lo,
                    "ci95_high_percent": 100 * hi})
    return out


def adverse_event_rows(patients: Sequence[TrialPatient], *, related_only: bool = False) -> list[dict]:
    """Patients by worst grade per CTCAE term (each patient once per term)."""
    worst: dict[str, dict[str, int]] = {}
    for p in patients:
        for a in p.follow_up.adverse_events():
            if related_only and not a.related:
                continue
            per = worst.setdefault(a.term, {})
            per[p.patient_id] = max(per.get(p.patient_id, 0), a.grade)
    n = len(patients)
    rows = []
    for term in sorted(worst, key=lambda t: (-len(worst[t]), t)):
        grades = list(worst[term].values())
        row = {"term": term, "attribution": "related" if related_only else "all"}
        for g in range(1, 6):
            row[f"n_patients_grade_{g}"] = sum(x == g for x in grades)
        high = sum(x >= 3 for x in grades)
        row.update(n_patients_any_grade=len(grades), percent_any_grade=100 * len(grades) / n,
                   n_patients_grade_3_or_higher=high, percent_grade_3_or_higher=100 * high / n)
        rows.append(row)
    return rows


def delayed_ae_rows(patients: Sequence[TrialPatient], *, after_months: float = 12.0, until_months: float = 60.0,
                    terms: Sequence[str] = DELAYED_TERMS_OF_INTEREST) -> list[dict]:
    """Delayed adverse events of interest: one row per event (onset in (after, until] months)."""
    wanted = {t.lower() for t in terms}
    rows = []
    for p in patients:
        for a in p.follow_up.adverse_events():
            m = p.day(a.onset_date) / DAYS_PER_MONTH
            if a.term.lower() in wanted and after_months < m <= until_months:
                rows.append({"patient": p.patient_id, "escalation_group": p.escalation_group, "term": a.term,
                             "grade": a.grade, "attribution": a.attribution, "onset_date": a.onset_date.isoformat(),
                             "onset_months": m, "cumulative_kidney_dose_Gy": p.cumulative_dose_Gy("kidney")})
    return rows


def prom_rows(patients: Sequence[TrialPatient], *, horizon_months: float = 12.0) -> tuple[list[dict], list[str]]:
    """PROM response rates per instrument (Clopper–Pearson 95 %) and the instruments without a rule."""
    horizon = horizon_months * DAYS_PER_MONTH
    per: dict[str, list[int]] = {}
    unknown: set[str] = set()
    for p in patients:
        instruments = {k for v in p.follow_up.visits for k in v.prom}
        for inst in instruments:
            if inst not in PROM_RULES:
                unknown.add(inst)
                continue
            direction, mid = PROM_RULES[inst]
            series = [(v.date, v.prom[inst]) for v in p.follow_up.visits if inst in v.prom]
            base = _baseline(p, series)
            later = [s for d, s in series if d > p.start_date and p.day(d) <= horizon]
            if base is None or not later:
                continue
            per.setdefault(inst, []).append(int(any(direction * (s - base[1]) >= mid for s in later)))
    rows = []
    for inst, flags in sorted(per.items()):
        lo, hi = clopper_pearson(sum(flags), len(flags))
        direction, mid = PROM_RULES[inst]
        rows.append({"instrument": inst, "response_definition": f"{'increase' if direction > 0 else 'decrease'} ≥ "
                     f"{mid:g} points from baseline within {horizon_months:g} months",
                     "n_responders": sum(flags), "n_evaluable": len(flags),
                     "rate_percent": 100 * sum(flags) / len(flags), "ci95_low_percent": 100 * lo,
                     "ci95_high_percent": 100 * hi})
    return rows, sorted(unknown)


def survival_times(p: TrialPatient, *, max_months: float = 60.0) -> dict:
    """Months from cycle 1 and event flags: PSA-PFS, rPFS, PFS, OS (None without an outcomes block).

    PSA progression: the recorded date, else the first confirmed PCWG3 progression of the PSA
    series (``psa_progression_source`` says which).
    """
    o = p.follow_up.outcomes
    if o is None:
        return {}
    psa_date, src = o.psa_progression_date, "recorded"
    if psa_date is None:
        psa = p.follow_up.lab_series("psa_ng_per_mL")
        base = _baseline(p, psa)
        after = [(p.day(d), v) for d, v in psa if d > p.start_date]
        if base is not None and base[1] > 0 and after:
            ev = pcwg3_psa_progression(*zip(*after), base[1])
            if ev is not None and ev.confirmed:
                psa_date, src = p.start_date + _days(ev.day), "pcwg3_series"
    censor = p.day(o.last_follow_up_date)
    death = None if o.death_date is None else p.day(o.death_date)
    psa_t = None if psa_date is None else p.day(psa_date)
    rad = None if o.radiographic_progression_date is None else p.day(o.radiographic_progression_date)

    def endpoint(*events) -> tuple[float, int]:
        ev = [e for e in events if e is not None]
        t, e = (min(ev), 1) if ev else (censor, 0)
        t /= DAYS_PER_MONTH
        return (max_months, 0) if t > max_months else (t, e)

    out = {}
    for name, ev in (("psa_pfs", (psa_t, death)), ("rpfs", (rad, death)), ("pfs", (psa_t, rad, death)),
                     ("os", (death,))):
        out[f"{name}_months"], out[f"{name}_event"] = endpoint(*ev)
    out["psa_progression_source"] = src if psa_date is not None else ""
    out["salvage_eligible"] = int(o.salvage_eligible)
    return out


def _days(d: float):
    import datetime as _dt
    return _dt.timedelta(days=d)


def survival_rows(patients: Sequence[TrialPatient], times: Sequence[dict]) -> tuple[list[dict], dict]:
    """Kaplan–Meier per escalation group and overall for each endpoint: summary rows and the curves."""
    rows, curves = [], {}
    groups = sorted({p.escalation_group for p in patients}, key=_natural)
    for name in ("pfs", "rpfs", "psa_pfs", "os"):
        curves[name] = {}
        for g in [*groups, "all"] if len(groups) > 1 else ["all"]:
            sel = [t for p, t in zip(patients, times) if t and (g == "all" or p.escalation_group == g)]
            if not sel:
                continue
            km = kaplan_meier([t[f"{name}_months"] for t in sel], [t[f"{name}_event"] for t in sel])
            lo, hi = median_ci95(km)
            curves[name][g] = asdict(km)
            rows.append({"endpoint": name, "escalation_group": g, "n_patients": len(sel),
                         "n_events": int(sum(t[f"{name}_event"] for t in sel)), "median_months": km.median,
                         "median_ci95_low_months": lo, "median_ci95_high_months": hi,
                         "survival_12_months": km.at(12.0), "survival_24_months": km.at(24.0)})
    return rows, curves


def dose_toxicity_rows(patients: Sequence[TrialPatient]) -> list[dict]:
    """Per patient and cycle: organ doses (Gy) beside the worst grade of AEs beginning in the cycle's interval."""
    rows = []
    groups = {g: {t.lower() for t in terms} for g, terms in TOXICITY_GROUPS.items()}
    for p in patients:
        aes = p.follow_up.adverse_events()
        cum = 0.0
        for i, c in enumerate(p.cycles):
            end = p.cycles[i + 1].administration_date if i + 1 < len(p.cycles) else None
            inside = [a for a in aes if a.onset_date >= c.administration_date and (end is None or a.onset_date < end)]
            cum += c.dose_Gy.get("kidney", 0.0)
            row = {"patient": p.patient_id, "escalation_group": p.escalation_group, "risk_stratum": p.risk_stratum,
                   "cycle": c.cycle, "kind": c.kind, "administration_date": c.administration_date.isoformat(),
                   "administered_activity_GBq": c.administered_activity_GBq,
                   "kidney_dose_Gy": c.dose_Gy.get("kidney"), "cumulative_kidney_dose_Gy": cum,
                   "red_marrow_dose_Gy": c.dose_Gy.get("red_marrow"), "parotid_dose_Gy": c.dose_Gy.get("parotid"),
                   "worst_grade_any": max((a.grade for a in inside), default=0)}
            for g, terms in groups.items():
                row[f"worst_grade_{g}"] = max((a.grade for a in inside if a.term.lower() in terms), default=0)
            row["dlt"] = int(any(a.dlt for a in inside))
            rows.append(row)
    return rows


def dose_toxicity_models(patients: Sequence[TrialPatient], *,
                         window_weeks: float = 12.0) -> tuple[list[dict], list[str]]:
    """Firth logistic regressions of toxicity on organ dose (finite with few or separated events).

    - DLT in the window against the kidney dose of cycle 1 (Gy);
    - worst renal AE grade ≥ 2 against the cumulative kidney dose (Gy);
    - worst haematological AE grade ≥ 2 against the cumulative red-marrow dose (Gy);
    - worst salivary AE grade ≥ 2 against the cumulative parotid dose (Gy).

    Returns rows (intercept, slope per Gy with profile 95 % CI, LR p) and warnings for models
    that cannot be fitted (one class only, constant dose).
    """
    from ..errors import InputError
    from ..response.firth import firth_logistic_regression

    window = 7.0 * window_weeks
    groups = {g: {t.lower() for t in terms} for g, terms in TOXICITY_GROUPS.items()}

    def worst(p: TrialPatient, group: str) -> int:
        return max((a.grade for a in p.follow_up.adverse_events() if a.term.lower() in groups[group]), default=0)

    specs = [("DLT within window", "kidney dose of cycle 1", "kidney_cycle1_dose_Gy",
              lambda p: p.cycles[0].dose_Gy.get("kidney"), lambda p: int(_has_dlt(p, window)))]
    for group, organ in (("renal", "kidney"), ("haematological", "red_marrow"), ("salivary", "parotid")):
        specs.append((f"{group} AE grade ≥ 2", f"cumulative {organ} dose", f"cumulative_{organ}_dose_Gy",
                      lambda p, o=organ: p.cumulative_dose_Gy(o) if any(o in c.dose_Gy for c in p.cycles) else None,
                      lambda p, g=group: int(worst(p, g) >= 2)))
    rows, warnings = [], []
    for outcome, predictor, column, dose_of, event_of in specs:
        pairs = [(dose_of(p), event_of(p)) for p in patients if dose_of(p) is not None]
        if len(pairs) < 3:
            continue
        x, y = zip(*pairs)
        try:
            f = firth_logistic_regression(x, y)
        except InputError as exc:
            warnings.append(f"{outcome} vs {predictor}: no model ({exc.reason})")
            continue
        rows.append({"outcome": outcome, "predictor": predictor, "predictor_column": column, "n_patients": len(y),
                     "n_events": int(sum(y)), "intercept": f.coefficients[0], "slope_per_Gy": f.coefficients[1],
                     "slope_ci95_low_per_Gy": f.slope_ci95[0], "slope_ci95_high_per_Gy": f.slope_ci95[1],
                     "p_value": f.slope_p_value, "separated": int(f.separated), "method": "Firth penalised logistic"})
    return rows, warnings


def biomarker_rows(patients: Sequence[TrialPatient], times: Sequence[dict], resp: Sequence[dict], *,
                   landmark_weeks: float = 12.0) -> tuple[list[dict], list[str]]:
    """Whole-body tumour dose of cycle 1 (from the ledgers' lesions) against outcome and survival.

    Rows: Cox proportional hazards (log hazard ratio per Gy, Wald 95 % CI, Schoenfeld p) for
    PSA-PFS, rPFS, PFS and OS; Firth logistic regression of the combined outcome after two cycles
    (1 = responder or stable, 0 = progression by PSA or PSMA PET) with the ROC AUC (DeLong CI).
    Patients without lesion doses are left out (a warning says how many).
    """
    from ..errors import InputError
    from ..response.biomarker import roc_curve_auc
    from ..response.cox import cox_regression
    from ..response.firth import firth_logistic_regression

    keep = [(p, t, r) for p, t, r in zip(patients, times, resp) if p.wholebody_tumour_dose_Gy is not None]
    warnings = []
    if len(keep) < len(patients) and keep:
        warnings.append(f"{len(patients) - len(keep)} patient(s) without lesion doses in cycle 1: left out of the "
                        "tumour-dose biomarker analysis")
    if len(keep) < 3:
        return [], warnings
    rows = []
    for name in ("psa_pfs", "rpfs", "pfs", "os"):
        sel = [(p.wholebody_tumour_dose_Gy, t[f"{name}_months"], t[f"{name}_event"]) for p, t, _ in keep if t]
        if len(sel) < 3:
            continue
        d, tt, e = zip(*sel)
        try:
            c = cox_regression(tt, e, d, names=["wholebody_tumour_dose_Gy"])
        except InputError as exc:
            warnings.append(f"{name}: no Cox model ({exc.reason})")
            continue
        rows.append({"analysis": f"Cox {name}", "n_patients": c.n, "n_events": c.n_events,
                     "estimate_per_Gy": c.coefficients[0], "ci95_low_per_Gy": c.coefficient_ci95[0][0],
                     "ci95_high_per_Gy": c.coefficient_ci95[0][1], "p_value": c.p_values[0],
                     "schoenfeld_p_value": c.ph_test_p_value[0], "auc": None,
                     "note": "log hazard ratio per Gy of whole-body tumour dose"})
    key = f"combined_week_{landmark_weeks:g}"
    sel = [(p.wholebody_tumour_dose_Gy, int(r[key] == "response_or_stable")) for p, _, r in keep
           if r.get(key) in ("response_or_stable", "non_response")]
    if len(sel) >= 3 and 0 < sum(y for _, y in sel) < len(sel):
        d, y = zip(*sel)
        f = firth_logistic_regression(d, y)
        roc = roc_curve_auc(d, y)
        auc_ci = f"{roc.auc_ci95[0]:.3f}–{roc.auc_ci95[1]:.3f}"
        rows.append({"analysis": f"Firth logistic combined outcome week {landmark_weeks:g}", "n_patients": len(y),
                     "n_events": int(sum(y)), "estimate_per_Gy": f.coefficients[1], "ci95_low_per_Gy": f.slope_ci95[0],
                     "ci95_high_per_Gy": f.slope_ci95[1], "p_value": f.slope_p_value, "schoenfeld_p_value": None,
                     "auc": roc.auc, "note": "log odds ratio per Gy of responder-or-stable vs progression (PSA or "
                                             f"PSMA PET); AUC DeLong 95 % CI {auc_ci}"})
    return rows, warnings
