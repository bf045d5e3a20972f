"""PNG per region: measured points with error bars and the fitted curve (matplotlib, Agg)."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..results import atomic_output_path
from ..units import Bq_to_MBq
from .fitting import FitResult

__all__ = ["plot_fit", "plot_fits"]


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name) or "region"


def plot_fit(result: FitResult, path: str | Path, *, title: str | None = None) -> Path:
    """Write one PNG: points (MBq, error bars = 1 σ where known) and the curve to 1.5× the last time
    (dashed after the last point: the extrapolated tail).

    Returns the path written (atomically).
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    t = np.asarray(result.times_h, float)
    y = np.asarray(result.activities_Bq, float)
    t_end = 1.5 * float(t.max()) if t.size else 200.0
    tc = np.linspace(0.0, t_end, 400)
    yc = np.asarray(result.model.activity(tc), float)
    fig = Figure(figsize=(6, 4), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    t_last = float(t.max()) if t.size else t_end
    inside = tc <= t_last
    ax.plot(tc[inside], Bq_to_MBq(yc[inside]), "-", color="C0", label=f"{result.model_name}")
    ax.plot(tc[~inside], Bq_to_MBq(yc[~inside]), "--", color="C0",
            label=f"tail ({100 * result.tail_fraction:.0f} % of TIA)")
    err = Bq_to_MBq(np.asarray(result.sigma_Bq, float)) if len(result.sigma_Bq) == t.size else None
    ax.errorbar(t, Bq_to_MBq(y), yerr=err, fmt="o", color="C1", capsize=3, label="measured")
    lo, hi = result.tia_ci95_Bq_h
    if math.isfinite(lo) and math.isfinite(hi):
        ci = f" [{Bq_to_MBq(lo):.4g}, {Bq_to_MBq(hi):.4g}]"
    elif math.isfinite(lo) and "ci_unbounded" in result.flags:
        ci = f" [{Bq_to_MBq(lo):.4g}, unbounded]"
    else:
        ci = ""
    ax.set_title(title or f"{result.region}: TIA {Bq_to_MBq(result.tia_Bq_h):.4g} MBq·h{ci}", fontsize=9)
    ax.set_xlabel("time p.i. (h)")
    ax.set_ylabel("activity (MBq)")
    ax.set_xlim(0, t_end)
    ax.set_ylim(bottom=0)
    if result.flags:
        ax.text(0.98, 0.95, ", ".join(result.flags), transform=ax.transAxes, ha="right", va="top", fontsize=7)
    ax.legend(loc="center right", fontsize=8)
    fig.tight_layout()
    with atomic_output_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return Path(path)


def plot_fits(results: Sequence[FitResult], folder: str | Path) -> list[Path]:
    """One ``fit_<region>.png`` per result in ``folder``."""
    return [plot_fit(r, Path(folder) / f"fit_{_safe(r.region)}.png") for r in results]
