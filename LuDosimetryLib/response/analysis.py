"""Tumour dose after cycle 1 against PSA and PSMA-PET response.

Per patient: the mass-weighted whole-body tumour dose against a binary outcome chosen by name
(:data:`~.categories.OUTCOME_DEFINITIONS`: ``psa50`` by default, ``combined`` for the biomarker
trial's progression-by-PSA-or-PSMA against responder/stable): Firth-penalised logistic regression
(finite under separation; ordinary ML beside it where it exists), ROC with DeLong CI, Youden
threshold with bootstrap optimism correction; and against the best PSA percent change (Spearman).
Survival (PSA-PFS ``pfs``, radiographic PFS ``rpfs``, overall survival ``os``, whichever the table
has): Kaplan–Meier by dose group with the log-rank test, and a Cox model with the tumour dose
continuous (log hazard ratio per Gy, Schoenfeld-residual check of proportional hazards).
Per lesion: dose against the change in PSMA-PET SUV and volume (Spearman; lesions are nested in
patients, so the interval comes from a cluster bootstrap over patients).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict

import numpy as np
from scipy import stats

from ..concordance.agreement import spearman
from ..errors import InputError
from .biomarker import logistic_regression, roc_curve_auc, youden_threshold
from .categories import outcome_definition
from .cox import cox_regression
from .firth import firth_logistic_regression, separation
from .survival import kaplan_meier, logrank_test, median_ci95
from .table import PatientRecord

__all__ = ["analyse_response", "patient_rows", "lesion_rows", "dose_groups", "cluster_spearman"]


def patient_rows(patients: Sequence[PatientRecord]) -> list[dict]:
    """One row per patient with derived response variables (units in names)."""
    return [{"patient": p.patient, "n_lesions": len(p.lesions), "tumour_mass_g": p.tumour_mass_g,
             "wholebody_tumour_dose_Gy": p.wholebody_tumour_dose_Gy,
             "psa_best_change_percent": p.psa_best_change_percent,
             "psa50": int(p.psa50), "wholebody_suv_change_percent": p.wholebody_change_percent("suv"),
             "wholebody_volume_change_percent": p.wholebody_change_percent("volume"),
             "psa_pcwg3": p.psa_pcwg3, "recip": p.recip,
             "pfs_months": p.pfs_months, "pfs_event": p.pfs_event, "rpfs_months": p.rpfs_months,
             "rpfs_event": p.rpfs_event, "os_months": p.os_months, "os_event": p.os_event} for p in patients]


def lesion_rows(patients: Sequence[PatientRecord]) -> list[dict]:
    """One row per lesion: dose and PSMA-PET changes."""
    return [{"patient": le.patient, "lesion": le.lesion, "dose_Gy": le.dose_Gy, "mass_g": le.mass_g,
             "suv_change_percent": le.suv_change_percent, "volume_change_percent": le.volume_change_percent}
            for p in patients for le in p.lesions]


def cluster_spearman(x, y, cluster, *, n_bootstrap: int = 2000, seed: int = 0) -> dict:
    """Spearman ρ of lesion-level data with a cluster-bootstrap (by patient) percentile 95 % CI."""
    x, y, g = np.asarray(x, float), np.asarray(y, float), np.asarray(cluster)
    rho = float(stats.spearmanr(x, y).statistic)
    labels = np.unique(g)
    members = [np.flatnonzero(g == lab) for lab in labels]
    rng = np.random.default_rng(seed)
    boot = []
    for _ in range(n_bootstrap):
        idx = np.concatenate([members[k] for k in rng.integers(0, labels.size, labels.size)])
        if np.ptp(x[idx]) > 0 and np.ptp(y[idx]) > 0:
            boot.append(stats.spearmanr(x[idx], y[idx]).statistic)
    lo, hi = np.percentile(boot, [2.5, 97.5]) if boot else (np.nan, np.nan)
    return {"rho": rho, "ci95_cluster_bootstrap": (float(lo), float(hi)), "n": int(x.size),
            "n_patients": int(labels.size)}


def dose_groups(doses: np.ndarray, rule: str | float) -> tuple[np.ndarray, float]:
    """Split patients into ``low``/``high`` dose at a threshold: ``"median"`` or a number (Gy)."""
    if rule == "median":
        thr = float(np.median(doses))
    else:
        try:
            thr = float(rule)
        except (TypeError, ValueError):
            raise InputError(f"dose-group rule must be 'median', 'youden' or a dose in Gy, got {rule!r}",
                             source="dose_groups") from None
    return np.where(doses >= thr, "high", "low"), thr


SURVIVAL_ENDPOINTS = {"pfs": "PSA progression-free survival", "rpfs": "radiographic progression-free survival",
                      "os": "overall survival"}


def analyse_response(patients: Sequence[PatientRecord], *, outcome: str = "psa50", group_rule: str | float = "youden",
                     n_bootstrap: int = 1000, seed: int = 0) -> dict:
    """All dose–response statistics (a JSON-able dict); ``outcome`` names the binary outcome definition."""
    definition = outcome_definition(outcome)
    dose_all = np.array([p.wholebody_tumour_dose_Gy for p in patients])
    ys = [p.outcome(outcome) for p in patients]
    keep = np.array([y is not None for y in ys])
    dose = dose_all[keep]
    y = np.array([v for v in ys if v is not None], int)
    change = np.array([p.psa_best_change_percent for p in patients])
    out: dict = {"n_patients": len(patients), "outcome": outcome, "outcome_definition": definition,
                 "n_evaluable": int(keep.sum()), f"n_responders_{outcome}": int(y.sum()),
                 "spearman_dose_vs_psa_change": asdict(spearman(dose_all, change))}
    out["warnings"] = []
    if not keep.all():
        out["warnings"].append(f"{int((~keep).sum())} patient(s) not evaluable for outcome {outcome!r} "
                               "(missing PSA category or PSMA-PET volumes / new-lesion flag): left out")
    if y.size >= 2 and 0 < y.sum() < y.size:
        out[f"logistic_firth_{outcome}"] = asdict(firth_logistic_regression(dose, y))
        if separation(dose, y):
            out["warnings"].append(f"tumour dose separates the {outcome} classes: ordinary maximum likelihood has no "
                                   "finite estimate; Firth's penalised logistic regression reported")
        else:
            try:
                fit = logistic_regression(dose, y)
                if fit.converged:
                    out[f"logistic_{outcome}"] = asdict(fit)
            except InputError:
                pass
        roc = roc_curve_auc(dose, y)
        out[f"roc_{outcome}"] = asdict(roc)
        out[f"youden_{outcome}"] = asdict(youden_threshold(dose, y, n_bootstrap=n_bootstrap, seed=seed))
    else:
        out["warnings"].append(f"all evaluable patients have the same {outcome} outcome: no logistic regression or ROC")
    les = lesion_rows(patients)
    for key in ("suv_change_percent", "volume_change_percent"):
        rows = [r for r in les if r[key] is not None]
        if len(rows) >= 3:
            out[f"lesion_dose_vs_{key}"] = cluster_spearman([r["dose_Gy"] for r in rows], [r[key] for r in rows],
                                                            [r["patient"] for r in rows], n_bootstrap=n_bootstrap,
                                                            seed=seed)
    for name, title in SURVIVAL_ENDPOINTS.items():
        surv = [p for p in patients if getattr(p, f"{name}_months") is not None]
        if len(surv) < 3:
            continue
        rule = group_rule
        if rule == "youden":
            rule = out[f"youden_{outcome}"]["threshold"] if f"youden_{outcome}" in out else "median"
        d = np.array([p.wholebody_tumour_dose_Gy for p in surv])
        groups, thr = dose_groups(d, rule)
        t = np.array([getattr(p, f"{name}_months") for p in surv])
        e = np.array([getattr(p, f"{name}_event") for p in surv])
        res = {"endpoint": title, "threshold_Gy": thr, "rule": str(group_rule), "kaplan_meier": {}, "median_ci95": {}}
        for g in ("low", "high"):
            if np.any(groups == g):
                km = kaplan_meier(t[groups == g], e[groups == g])
                res["kaplan_meier"][g] = asdict(km)
                res["median_ci95"][g] = median_ci95(km)
        if np.unique(groups).size == 2 and e.sum() > 0:
            try:
                res["logrank"] = asdict(logrank_test(t, e, groups))
            except InputError as exc:
                out["warnings"].append(f"{name}: no log-rank test: {exc}")
        try:
            res["cox"] = asdict(cox_regression(t, e, d, names=["wholebody_tumour_dose_Gy"]))
            if res["cox"]["ph_test_p_value"][0] < 0.05:
                out["warnings"].append(f"{name}: Schoenfeld residuals reject proportional hazards for tumour dose "
                                       f"(p = {res['cox']['ph_test_p_value'][0]:.3g}); read the hazard ratio with care")
        except InputError as exc:
            out["warnings"].append(f"{name}: no Cox model: {exc}")
        out[name] = res
    return out
