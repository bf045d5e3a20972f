"""PNG per region: measured points with error bars and the fitted curve (matplotlib, Agg).

:func:`plot_fits` draws every region on one figure, replacing its data between regions: the axes,
ticks and labels are made once instead of once per region (35 regions of a clinical patient took
9.6 s as separate figures; issue 20). The layout is fixed (margins wide enough for the tick labels
of any activity in MBq) instead of ``tight_layout``, which drew each figure twice.
"""

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

#: Points of the drawn curve from 0 to 1.5 × the last time.
_CURVE_POINTS = 400


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name) or "region"


class _FitFigure:
    """One 6 × 4 in figure (100 dpi) whose curve, points, title, flags and legend are replaced per fit."""

    def __init__(self) -> None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        self.fig = Figure(figsize=(6, 4), dpi=100)
        FigureCanvasAgg(self.fig)
        # fixed margins: y tick labels of up to 7 characters (e.g. 0.00025, 12500) and the axis labels fit
        self.fig.subplots_adjust(left=0.13, right=0.97, bottom=0.12, top=0.92)
        ax = self.ax = self.fig.add_subplot(1, 1, 1)
        (self.fitted,) = ax.plot([], [], "-", color="C0")
        (self.tail,) = ax.plot([], [], "--", color="C0")
        self.points = None
        self.flags = ax.text(0.98, 0.95, "", transform=ax.transAxes, ha="right", va="top", fontsize=7)
        ax.set_xlabel("time p.i. (h)")
        ax.set_ylabel("activity (MBq)")

    def draw(self, result: FitResult, title: str | None = None) -> None:
        """Replace the figure's content by ``result`` (see :func:`plot_fit`)."""
        ax = self.ax
        t = np.asarray(result.times_h, float)
        y = np.asarray(result.activities_Bq, float)
        t_end = 1.5 * float(t.max()) if t.size else 200.0
        tc = np.linspace(0.0, t_end, _CURVE_POINTS)
        yc = np.asarray(result.model.activity(tc), float)
        t_last = float(t.max()) if t.size else t_end
        inside = tc <= t_last
        self.fitted.set_data(tc[inside], Bq_to_MBq(yc[inside]))
        self.fitted.set_label(f"{result.model_name}")
        self.tail.set_data(tc[~inside], Bq_to_MBq(yc[~inside]))
        self.tail.set_label(f"tail ({100 * result.tail_fraction:.0f} % of TIA)")
        if self.points is not None:
            self.points.remove()
        err = Bq_to_MBq(np.asarray(result.sigma_Bq, float)) if len(result.sigma_Bq) == t.size else None
        self.points = ax.errorbar(t, Bq_to_MBq(y), yerr=err, fmt="o", color="C1", capsize=3, label="measured")
        lo, hi = result.tia_ci95_Bq_h
        if math.isfinite(lo) and math.isfinite(hi):
            ci = f" [{Bq_to_MBq(lo):.4g}, {Bq_to_MBq(hi):.4g}]"
        elif math.isfinite(lo) and "ci_unbounded" in result.flags:
            ci = f" [{Bq_to_MBq(lo):.4g}, unbounded]"
        else:
            ci = ""
        ax.set_title(title or f"{result.region}: TIA {Bq_to_MBq(result.tia_Bq_h):.4g} MBq·h{ci}", fontsize=9)
        self.flags.set_text(", ".join(result.flags))
        # the y range of this fit's curve and points (error bars' caps included), from 0
        ax.set_autoscaley_on(True)
        ax.relim()
        ax.autoscale_view(scalex=False)
        ax.set_xlim(0, t_end)
        ax.set_ylim(bottom=0)
        ax.legend(loc="center right", fontsize=8)

    def save(self, path: str | Path) -> Path:
        """Write the figure as PNG at ``path`` atomically; return the path."""
        with atomic_output_path(path) as tmp:
            self.fig.savefig(tmp, format="png")
        return Path(path)


def plot_fit(result: FitResult, path: str | Path, *, title: str | None = None) -> Path:
    """Write one PNG: points (MBq, error bars = 1 σ where known) and the curve to 1.5× the last time
    (dashed after the last point: the extrapolated tail).

    Returns the path written (atomically).
    """
    fig = _FitFigure()
    fig.draw(result, title)
    return fig.save(path)


def plot_fits(results: Sequence[FitResult], folder: str | Path) -> list[Path]:
    """One ``fit_<region>.png`` per result in ``folder`` (one figure redrawn for each)."""
    fig = _FitFigure() if results else None
    out = []
    for r in results:
        fig.draw(r)
        out.append(fig.save(Path(folder) / f"fit_{_safe(r.region)}.png"))
    return out
