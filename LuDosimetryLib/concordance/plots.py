"""Concordance plots: scatter with the identity line and Bland–Altman plots (PNG), and their data
as rows for Slicer plot charts."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..plotting import new_figure, save_png
from .table import DosePair

__all__ = ["scatter_rows", "bland_altman_rows", "plot_scatter", "plot_bland_altman"]


def scatter_rows(pairs: Sequence[DosePair]) -> list[dict]:
    """Rows (patient, region, predicted_Gy, measured_Gy) for a scatter chart."""
    return [{"patient": p.patient, "region": p.region, "predicted_Gy": p.predicted_Gy, "measured_Gy": p.measured_Gy}
            for p in pairs]


def bland_altman_rows(pairs: Sequence[DosePair]) -> list[dict]:
    """Rows (patient, region, mean_Gy, difference_Gy) for a Bland–Altman chart (difference = predicted − measured)."""
    return [{"patient": p.patient, "region": p.region, "mean_Gy": (p.predicted_Gy + p.measured_Gy) / 2,
             "difference_Gy": p.predicted_Gy - p.measured_Gy} for p in pairs]


def plot_scatter(pairs: Sequence[DosePair], path: str | Path, *, title: str) -> Path:
    """Predicted vs measured dose with the identity line."""
    x = np.array([p.measured_Gy for p in pairs])
    y = np.array([p.predicted_Gy for p in pairs])
    fig, ax = new_figure()
    ax.scatter(x, y, s=18, alpha=0.8)
    hi = float(max(x.max(), y.max())) * 1.05 if x.size else 1.0
    ax.plot([0, hi], [0, hi], "k--", lw=1, label="identity")
    ax.set(xlabel="measured dose (Gy)", ylabel="predicted dose (Gy)", title=title, xlim=(0, hi), ylim=(0, hi))
    ax.legend(loc="upper left")
    return save_png(fig, path)


def plot_bland_altman(pairs: Sequence[DosePair], path: str | Path, *, bias: float, loa: tuple[float, float],
                      title: str) -> Path:
    """Difference (predicted − measured) against the pair mean, with bias and limits of agreement."""
    rows = bland_altman_rows(pairs)
    m = np.array([r["mean_Gy"] for r in rows])
    d = np.array([r["difference_Gy"] for r in rows])
    fig, ax = new_figure()
    ax.scatter(m, d, s=18, alpha=0.8)
    ax.axhline(bias, color="C1", label=f"bias {bias:.3g} Gy")
    for v in loa:
        ax.axhline(v, color="C1", ls="--")
    ax.axhline(0, color="k", lw=0.5)
    ax.set(xlabel="mean of predicted and measured (Gy)", ylabel="predicted − measured (Gy)", title=title)
    ax.legend(loc="best")
    return save_png(fig, path)
