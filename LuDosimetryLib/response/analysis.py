"""Tumour dose after cycle 1 against PSA and PSMA-PET response.

Per patient: the mass-weighted whole-body tumour dose against PSA50 (logistic regression, ROC
with DeLong CI, Youden threshold with bootstrap optimism correction) and against the best PSA
percent change (Spearman); PSA progression-free survival by dose group (Kaplan–Meier, log-rank).
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
from .survival import kaplan_meier, logrank_test
from .table import PatientRecord

__all__ = ["analyse_response", "patient_rows", "lesion_rows", "dose_groups", "cluster_spearman"]


def patient_rows(patients: Sequence[PatientRecord]) -> list[dict]:
    """One row per patient with derived response variables (units in names)."""
    return [{"patient": p.patient, "n_lesions": len(p.lesions), "tumour_mass_g": p.tumour_mass_g,
             "wholebody_tumour_dose_Gy": p.wholebody_tumour_dose_Gy,
             "psa_best_change_percent": p.psa_best_change_percent,
             "psa50": int(p.psa50), "wholebody_suv_change_percent": p.wholebody_change_percent("suv"),
             "wholebody_volume_change_percent": p.wholebody_change_percent("volume"),
             "pfs_months": p.pfs_months, "pfs_event": p.pfs_event} for p in patients]


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


def analyse_response(patients: Sequence[PatientRecord], *, group_rule: str | float = "youden",
                     n_bootstrap: int = 1000, seed: int = 0) -> dict:
    """All dose–response statistics (a JSON-able dict)."""
    dose = np.array([p.wholebody_tumour_dose_Gy for p in patients])
    psa50 = np.array([int(p.psa50) for p in patients])
    change = np.array([p.psa_best_change_percent for p in patients])
    out: dict = {"n_patients": len(patients), "n_responders_psa50": int(psa50.sum()),
                 "spearman_dose_vs_psa_change": asdict(spearman(dose, change))}
    out["warnings"] = []
    if 0 < psa50.sum() < psa50.size:
        try:
            fit = logistic_regression(dose, psa50)
            out["logistic_psa50"] = asdict(fit)
            if not fit.converged:
                out["warnings"].append("logistic regression did not converge (near-perfect separation?)")
        except InputError as exc:  # e.g. perfect separation in a small cohort: no finite MLE
            out["warnings"].append(f"no logistic regression: {exc}")
        roc = roc_curve_auc(dose, psa50)
        out["roc_psa50"] = asdict(roc)
        out["youden_psa50"] = asdict(youden_threshold(dose, psa50, n_bootstrap=n_bootstrap, seed=seed))
    else:
        out["warnings"].append("all patients have the same PSA50 outcome: no logistic regression or ROC")
    les = lesion_rows(patients)
    for key in ("suv_change_percent", "volume_change_percent"):
        rows = [r for r in les if r[key] is not None]
        if len(rows) >= 3:
            out[f"lesion_dose_vs_{key}"] = cluster_spearman([r["dose_Gy"] for r in rows], [r[key] for r in rows],
                                                            [r["patient"] for r in rows], n_bootstrap=n_bootstrap,
                                                            seed=seed)
    surv = [p for p in patients if p.pfs_months is not None]
    if len(surv) >= 3:
        rule = group_rule
        if rule == "youden":
            rule = out["youden_psa50"]["threshold"] if "youden_psa50" in out else "median"
        groups, thr = dose_groups(np.array([p.wholebody_tumour_dose_Gy for p in surv]), rule)
        t = np.array([p.pfs_months for p in surv])
        e = np.array([p.pfs_event for p in surv])
        out["pfs"] = {"threshold_Gy": thr, "rule": str(group_rule),
                      "kaplan_meier": {g: asdict(kaplan_meier(t[groups == g], e[groups == g]))
                                       for g in ("low", "high") if np.any(groups == g)}}
        if np.unique(groups).size == 2:
            out["pfs"]["logrank"] = asdict(logrank_test(t, e, groups))
    return out

