"""Shared matplotlib plumbing for the PNG plots of the results folder (Agg backend, atomic save).

Stages draw their own axes; this module only creates figures and saves them whole.
"""

from __future__ import annotations

from pathlib import Path

from .results import atomic_output_path

__all__ = ["new_figure", "save_png"]


def new_figure(width_in: float = 5.0, height_in: float = 4.0):
    """A (figure, axes) pair on the non-interactive Agg canvas (no display needed)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot(1, 1, 1)


def save_png(fig, path: str | Path) -> Path:
    """Save ``fig`` as PNG at ``path`` atomically; return the path."""
    with atomic_output_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return Path(path)
