"""Shared matplotlib plumbing for the PNG plots of the results folder (Agg backend, atomic save).

Stages draw their own axes; this module only creates figures and saves them whole.
"""

from __future__ import annotations

from pathlib import Path

from .results import atomic_output_path

__all__ = ["new_figure", "blank_figure", "save_png", "png_bytes"]


def blank_figure(width_in: float = 5.0, height_in: float = 4.0, *, dpi: int = 110, layout: str | None = "constrained"):
    """A figure without axes on the non-interactive Agg canvas (no display needed); sizes in inches."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), dpi=dpi, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def new_figure(width_in: float = 5.0, height_in: float = 4.0):
    """A (figure, axes) pair on the non-interactive Agg canvas (no display needed)."""
    fig = blank_figure(width_in, height_in)
    return fig, fig.add_subplot(1, 1, 1)


def png_bytes(fig) -> bytes:
    """``fig`` as PNG bytes (for figures embedded in a report)."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def save_png(fig, path: str | Path) -> Path:
    """Save ``fig`` as PNG at ``path`` atomically; return the path."""
    with atomic_output_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return Path(path)
