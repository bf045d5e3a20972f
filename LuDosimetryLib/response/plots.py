"""Dose–response plots (PNG): ROC, dose vs PSA change, Kaplan–Meier by dose group."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..plotting import new_figure, save_png

__all__ = ["plot_roc", "plot_dose_response", "plot_kaplan_meier"]


def plot_roc(roc: dict, path: str | Path, *, title: str = "ROC: whole-body tumour dose for PSA50") -> Path:
    """ROC curve with the AUC and its DeLong 95 % CI in the legend."""
    fig, ax = new_figure()
    ax.step(1 - np.asarray(roc["specificity"]), roc["sensitivity"], where="post",
            label=f"AUC {roc['auc']:.2f} (95 % CI {roc['auc_ci95'][0]:.2f}–{roc['auc_ci95'][1]:.2f})")
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    ax.set(xlabel="1 − specificity", ylabel="sensitivity", title=title, xlim=(0, 1), ylim=(0, 1.02))
    ax.legend(loc="lower right")
    return save_png(fig, path)


def plot_dose_response(rows: list[dict], path: str | Path, *, threshold_Gy: float | None = None) -> Path:
    """Whole-body tumour dose against best PSA change, responders (PSA50) marked."""
    fig, ax = new_figure()
    d = np.array([r["wholebody_tumour_dose_Gy"] for r in rows])
    c = np.array([r["psa_best_change_percent"] for r in rows])
    resp = np.array([r["psa50"] for r in rows], bool)
    ax.scatter(d[resp], c[resp], marker="o", label="PSA50 responder")
    ax.scatter(d[~resp], c[~resp], marker="x", label="non-responder")
    ax.axhline(-50, color="k", ls=":", lw=1)
    if threshold_Gy is not None:
        ax.axvline(threshold_Gy, color="C3", ls="--", lw=1, label=f"threshold {threshold_Gy:.3g} Gy")
    ax.set(xlabel="whole-body tumour dose (Gy)", ylabel="best PSA change (%)", title="Dose–response")
    ax.legend(loc="best")
    return save_png(fig, path)


def plot_kaplan_meier(curves: dict, path: str | Path, *, threshold_Gy: float,
                      ylabel: str = "PSA progression-free survival") -> Path:
    """Survival (PSA-PFS by default) per dose group (censoring ticks)."""
    fig, ax = new_figure()
    for name, km in curves.items():
        ax.step(km["times"], km["survival"], where="post", label=f"{name} dose (threshold {threshold_Gy:.3g} Gy)")
        cens = [t for t, n in zip(km["times"], km["censored"]) if n]
        ax.plot(cens, [np.interp(t, km["times"], km["survival"]) for t in cens], "|", color="k")
    ax.set(xlabel="time (months)", ylabel=ylabel, ylim=(0, 1.02), title="Kaplan–Meier")
    ax.legend(loc="best")
    return save_png(fig, path)
