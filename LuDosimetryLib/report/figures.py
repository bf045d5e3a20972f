"""Figures of the clinical reports, as PNG bytes (matplotlib, Agg): dose over CT, TACs, DVHs, cohort plots.

Dose images follow the radiological convention: axial slices seen from the feet (patient's right
on the viewer's left, anterior up), coronal slices seen from the front (superior up). The dose is
drawn over the grey CT from 5 % of the colour scale up, with the regions' outlines, and every
image has a colour bar in Gy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..plotting import blank_figure, png_bytes
from .regions import display_name

__all__ = ["DisplayVolumes", "display_volumes", "dose_slices_png", "tac_panel_png", "dvh_panel_png",
           "concordance_png", "forest_png"]

_DOSE_CMAP = "inferno"
_ORGAN_COLOUR = "#35d0ff"
_LESION_COLOUR = "#7dff5a"
#: Dose below this fraction of the colour scale's top is not drawn (the CT shows through).
_THRESHOLD = 0.20
#: Finest display voxel (mm): finer CTs are resampled to this for the images.
_DISPLAY_MM = 2.0


@dataclass(frozen=True)
class DisplayVolumes:
    """CT (HU), dose (Gy) and region masks on one axis-aligned display grid, arrays [z, y, x]."""

    ct: np.ndarray
    dose: np.ndarray
    masks: dict[str, np.ndarray]
    kinds: dict[str, str]
    spacing_mm: tuple[float, float, float]  # x, y, z
    origin_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)  # LPS centre of voxel [0, 0, 0]


def display_volumes(ct, dose, labels, table, regions: Sequence[str]) -> DisplayVolumes:
    """Resample the CT (linear), dose (linear) and label map (nearest) onto one display grid.

    The grid has the CT's extent on the LPS axes, voxels no finer than 2 mm. ``regions`` are
    region or group names of ``table`` (a group's mask is the union of its leaves).
    """
    import SimpleITK as sitk

    size = np.asarray(ct.GetSize(), float)
    sp = np.asarray(ct.GetSpacing(), float)
    new_sp = np.maximum(sp, _DISPLAY_MM)
    corners = [ct.TransformContinuousIndexToPhysicalPoint([c[0], c[1], c[2]])
               for c in np.array(np.meshgrid(*[(-0.5, s - 0.5) for s in size])).reshape(3, -1).T]
    lo = np.min(corners, axis=0)
    hi = np.max(corners, axis=0)
    new_size = np.maximum(np.ceil((hi - lo) / new_sp).astype(int), 1)
    ref = sitk.Image([int(x) for x in new_size], sitk.sitkFloat32)
    ref.SetSpacing(tuple(float(x) for x in new_sp))
    ref.SetOrigin(tuple(float(x) for x in lo + new_sp / 2))
    ct_a = sitk.GetArrayFromImage(sitk.Resample(ct, ref, sitk.Transform(), sitk.sitkLinear, -1000.0,
                                                sitk.sitkFloat32))
    # crop to the body (CT above −500 HU) with a 10 mm margin: no empty air around the patient; the
    # dose and labels are resampled onto the cropped grid only (a third of the voxels on a clinical CT)
    body = ct_a > -500.0
    rows = [np.flatnonzero(body.any(axis=tuple(a for a in range(3) if a != axis))) for axis in range(3)]
    if all(r.size for r in rows):
        margin = np.ceil(10.0 / new_sp[::-1]).astype(int)
        lo_i = np.maximum(np.array([r[0] for r in rows]) - margin, 0)
        hi_i = np.minimum(np.array([r[-1] for r in rows]) + margin + 1, ct_a.shape)
        ct_a = ct_a[tuple(slice(a, b) for a, b in zip(lo_i, hi_i))]
    else:
        lo_i = np.zeros(3, int)
    origin = lo + new_sp / 2 + lo_i[::-1] * new_sp
    sub = sitk.Image([int(n) for n in ct_a.shape[::-1]], sitk.sitkFloat32)
    sub.SetSpacing(tuple(float(x) for x in new_sp))
    sub.SetOrigin(tuple(float(x) for x in origin))
    dose_a = sitk.GetArrayFromImage(sitk.Resample(dose, sub, sitk.Transform(), sitk.sitkLinear, 0.0,
                                                  sitk.sitkFloat32))
    lab_a = sitk.GetArrayFromImage(sitk.Resample(labels, sub, sitk.Transform(), sitk.sitkNearestNeighbor, 0,
                                                 labels.GetPixelID()))
    masks, kinds = {}, {}
    groups = table.groups()
    for name in regions:
        leaves = groups.get(name) or tuple(r for r in table if r.name == name)
        if not leaves:
            continue
        masks[name] = lab_a == leaves[0].label if len(leaves) == 1 else np.isin(lab_a, [r.label for r in leaves])
        kinds[name] = leaves[0].kind
    return DisplayVolumes(ct_a, np.clip(dose_a, 0.0, None), masks, kinds, tuple(float(x) for x in new_sp),
                          tuple(float(x) for x in origin))


def _centroid(mask: np.ndarray) -> tuple[int, int, int]:
    idx = np.argwhere(mask)
    return tuple(round(float(x)) for x in idx.mean(axis=0))  # type: ignore[return-value]


def _draw(ax, ct2d, dose2d, masks2d: Mapping[str, np.ndarray], kinds, extent, vmax, *, origin, title,
          labels_at: Mapping[str, tuple[float, float]] | None = None):
    ax.imshow(np.clip(ct2d, -350, 450), cmap="gray", vmin=-350, vmax=450, extent=extent, origin=origin,
              interpolation="bilinear")
    shown = np.ma.masked_less(dose2d, _THRESHOLD * vmax)
    im = ax.imshow(shown, cmap=_DOSE_CMAP, vmin=0.0, vmax=vmax, alpha=0.65, extent=extent, origin=origin,
                   interpolation="bilinear")
    for name, m in masks2d.items():
        if m.any():
            colour = _LESION_COLOUR if kinds.get(name) == "lesion" else _ORGAN_COLOUR
            ax.contour(m.astype(float), levels=[0.5], colors=colour, linewidths=0.7, extent=extent, origin=origin)
    from matplotlib import patheffects

    for name, (x, y) in (labels_at or {}).items():
        ax.annotate(display_name(name).replace("Lesion ", ""), (x, y), xytext=(9, 9), textcoords="offset points",
                    color="white", fontsize=6.5, ha="left", va="bottom", fontweight="bold",
                    path_effects=[patheffects.withStroke(linewidth=1.8, foreground="black")])
    ax.set_title(title, fontsize=8.5)
    ax.set_xticks([])
    ax.set_yticks([])
    return im


def _slice_labels(masks2d, extent, origin) -> dict[str, tuple[float, float]]:
    out = {}
    x0, x1, y0, y1 = extent
    for name, m in masks2d.items():
        if m.sum() < 3:
            continue
        r, c = np.argwhere(m).mean(axis=0)
        ny, nx = m.shape
        x = x0 + (c + 0.5) / nx * (x1 - x0)
        y = (y1 - (r + 0.5) / ny * (y1 - y0)) if origin == "upper" else (y0 + (r + 0.5) / ny * (y1 - y0))
        out[name] = (x, y)
    return out


def dose_slices_png(vol: DisplayVolumes, *, centre_region: str, views: Sequence[str] = ("axial", "coronal", "mip"),
                    title: str = "", width_in: float = 10.0, label_regions: Sequence[str] = ()) -> bytes:
    """Axial, coronal and/or coronal-MIP images of the dose over the CT through ``centre_region``'s centroid.

    Parameters
    ----------
    vol : DisplayVolumes
    centre_region : str
        Region (a key of ``vol.masks``) whose centroid sets the axial level and coronal plane.
    views : sequence of {"axial", "coronal", "mip"}
        ``mip``: maximum-intensity projection of the dose front to back, over the mean CT.
    label_regions : sequence of str
        Regions whose short names are written on the images (lesions).

    Returns
    -------
    bytes
        PNG. Each panel has its colour bar, from 0 to the 99.9th percentile of its dose (Gy).
    """
    sx, sy, sz = vol.spacing_mm
    nz, ny, nx = vol.ct.shape
    k, j, _ = _centroid(vol.masks[centre_region])
    ax_ext = (0, nx * sx, 0, ny * sy)
    co_ext = (0, nx * sx, 0, nz * sz)
    panels = []
    for v in views:
        if v == "axial":
            panels.append(("axial", vol.ct[k], vol.dose[k], {n: m[k] for n, m in vol.masks.items()}, ax_ext, "upper",
                           f"Axial, z = {vol.origin_mm[2] + k * sz:.0f} mm (LPS)"))
        elif v == "coronal":
            panels.append(("coronal", vol.ct[:, j, :], vol.dose[:, j, :], {n: m[:, j, :] for n, m in vol.masks.items()},
                           co_ext, "lower", f"Coronal, y = {vol.origin_mm[1] + j * sy:.0f} mm (LPS)"))
        elif v == "mip":
            panels.append(("mip", vol.ct.mean(axis=1), vol.dose.max(axis=1),
                           {n: m.any(axis=1) for n, m in vol.masks.items()}, co_ext, "lower",
                           "Dose MIP (anterior view)"))
    # width ratios follow each panel's physical width/height so that all share one height
    ratios = [(e[1] - e[0]) / (e[3] - e[2]) for *_, e, _o, _t in panels]
    height_in = min(width_in / (sum(ratios) + 0.09 * len(panels)) * 0.97, 6.5)
    fig = blank_figure(width_in, height_in + 0.3, dpi=120)
    widths = [x for r in ratios for x in (r, 0.045)]
    gs = fig.add_gridspec(1, 2 * len(panels), width_ratios=widths)
    for i, (_kind, ct2d, d2d, m2d, ext, origin, ptitle) in enumerate(panels):
        ax = fig.add_subplot(gs[0, 2 * i])
        positive = d2d[d2d > 0]
        vmax = float(np.percentile(positive, 99.9)) if positive.size else 1.0
        labels_at = _slice_labels({n: m for n, m in m2d.items() if n in label_regions}, ext, origin)
        im = _draw(ax, ct2d, d2d, m2d, vol.kinds, ext, vmax, origin=origin, title=ptitle, labels_at=labels_at)
        ax.set_aspect("equal")
        cb = fig.colorbar(im, cax=fig.add_subplot(gs[0, 2 * i + 1]))
        cb.set_label("Absorbed dose (Gy)", fontsize=7)
        cb.ax.tick_params(labelsize=6.5)
    if title:
        fig.suptitle(title, fontsize=9.5)
    return png_bytes(fig)


def _curve(fit: Mapping[str, str], t: np.ndarray) -> np.ndarray | None:
    import json

    try:
        p = json.loads(fit.get("parameters") or "{}")
    except ValueError:
        return None
    terms = [(p[f"a{i}_Bq"], p[f"b{i}_per_h"]) for i in range(1, 6) if f"a{i}_Bq" in p and f"b{i}_per_h" in p]
    if not terms:
        return None
    return sum(a * np.exp(-b * t) for a, b in terms)


def _tac_points(tac: Sequence[Mapping[str, str]], region: str) -> tuple[np.ndarray, np.ndarray]:
    rows = [r for r in tac if r.get("region") == region and r.get("time_h")]
    col = "activity_corrected_Bq" if rows and rows[0].get("activity_corrected_Bq") else "activity_Bq"
    t = np.array([float(r["time_h"]) for r in rows])
    a = np.array([float(r[col]) if r.get(col) else math.nan for r in rows])
    order = np.argsort(t)
    return t[order], a[order]


def tac_panel_png(tac: Sequence[Mapping[str, str]], fits: Mapping[str, Mapping[str, str]],
                  axes_regions: Sequence[tuple[str, Sequence[str]]], *, log_scale: bool = False,
                  width_in: float = 10.0) -> bytes:
    """One figure of TACs: one axis per group (bilateral organs on one axis, lesions on one axis).

    Measured points (partial-volume-corrected activity where tac.csv has it, MBq) and the fitted
    sum of exponentials (solid to the last point, dashed beyond: the extrapolated tail).
    """
    from matplotlib.ticker import MaxNLocator

    n = len(axes_regions)
    ncol = 6 if n > 12 else 3 if n > 4 else max(n, 1)
    nrow = math.ceil(n / ncol)
    compact = ncol > 3
    row_in = 1.45 if compact else 2.35
    fig = blank_figure(width_in, row_in * nrow + 0.35, dpi=110, layout=None)
    fig.subplots_adjust(left=0.06 if not compact else 0.04, right=0.99, bottom=0.5 / (row_in * nrow + 0.35),
                        top=1 - 0.3 / (row_in * nrow + 0.35), wspace=0.3, hspace=0.55 if not compact else 0.7)
    t_max = max((float(r["time_h"]) for r in tac if r.get("time_h")), default=200.0)
    tc = np.linspace(0.0, 1.3 * t_max, 300)
    for i, (title, regions) in enumerate(axes_regions):
        ax = fig.add_subplot(nrow, ncol, i + 1)
        for j, region in enumerate(regions):
            colour = f"C{j % 10}"
            t, a = _tac_points(tac, region)
            style = "--" if region.endswith("_right") else "-"
            ax.plot(t, a / 1e6, "o", color=colour, ms=3.5, label=display_name(region))
            fit = fits.get(region)
            y = _curve(fit, tc) if fit else None
            if y is not None:
                last = float(t.max()) if t.size else t_max
                ax.plot(tc[tc <= last], y[tc <= last] / 1e6, style, color=colour, lw=1.1)
                ax.plot(tc[tc >= last], y[tc >= last] / 1e6, ":", color=colour, lw=1.0)
            elif t.size:
                ax.plot(t, a / 1e6, style, color=colour, lw=0.8)
        ax.set_title(title, fontsize=7.5 if compact else 8.5)
        if i // ncol == nrow - 1 or compact is False:
            ax.set_xlabel("time p.i. (h)", fontsize=7)
        if i % ncol == 0:
            ax.set_ylabel("activity (MBq)", fontsize=7)
        ax.tick_params(labelsize=6 if compact else 7)
        ax.xaxis.set_major_locator(MaxNLocator(4))
        if log_scale:
            ax.set_yscale("log")
        else:
            ax.set_ylim(bottom=0)
            ax.yaxis.set_major_locator(MaxNLocator(4))
        ax.set_xlim(0, 1.3 * t_max)
        ax.grid(True, alpha=0.25)
        if not compact:
            ax.legend(fontsize=6.3, loc="upper right", ncol=1 if len(regions) <= 4 else 2, frameon=False)
    return png_bytes(fig)


def dvh_panel_png(dvh: Mapping[str, tuple[Sequence[float], Sequence[float]]],
                  axes_regions: Sequence[tuple[str, Sequence[str]]], *, width_in: float = 10.0) -> bytes:
    """Cumulative DVHs, one axis per group (organs at risk, lesions): volume (%) receiving ≥ dose (Gy)."""
    n = max(len(axes_regions), 1)
    fig = blank_figure(width_in, 2.9, dpi=110)
    for i, (title, regions) in enumerate(axes_regions):
        ax = fig.add_subplot(1, n, i + 1)
        for j, region in enumerate(regions):
            if region not in dvh:
                continue
            d, v = dvh[region]
            ax.step(d, v, where="post", color=f"C{j % 10}", lw=1.1,
                    ls="--" if region.endswith("_right") else "-", label=display_name(region))
        ax.set_title(title, fontsize=8.5)
        ax.set_xlabel("absorbed dose (Gy)", fontsize=7.5)
        ax.set_ylabel("volume ≥ dose (%)", fontsize=7.5)
        ax.set_ylim(0, 102)
        # up to the dose that 0.5 % of a region's volume exceeds: a hot voxel does not squeeze the plot
        tops = [next((d for d, v in zip(*dvh[r]) if v < 0.5), dvh[r][0][-1] if dvh[r][0] else 0.0)
                for r in regions if r in dvh]
        ax.set_xlim(0, 1.05 * max(tops) if tops and max(tops) > 0 else None)
        ax.tick_params(labelsize=7)
        ax.grid(True, alpha=0.25)
        ax.legend(fontsize=6.3, frameon=False, ncol=2 if len(regions) > 6 else 1)
    return png_bytes(fig)


def concordance_png(groups: Mapping[str, Sequence[tuple[float, float]]], *,
                    limits: Mapping[str, tuple[float, float, float]] | None = None, width_in: float = 10.0) -> bytes:
    """Per group (organ): scatter of predicted vs measured with the identity line, and Bland–Altman.

    ``groups`` maps a title to (predicted_Gy, measured_Gy) pairs. Bland–Altman on the log ratio:
    ratio predicted/measured (as :mod:`LuDosimetryLib.concordance`) against the pair mean, with the
    geometric-mean bias and its 95 % limits of agreement (exp(mean ± 1.96 sd of the log ratio)), as
    the doses span decades.
    ``limits`` (group → geometric-mean ratio, lower and upper limit) gives those lines as computed
    by :mod:`LuDosimetryLib.concordance`; otherwise they are computed here.
    """
    from matplotlib.ticker import FormatStrFormatter

    n = max(len(groups), 1)
    per_row = 2 if n > 1 else 1
    nrow = math.ceil(n / per_row)
    fig = blank_figure(width_in, 2.15 * nrow + 0.3, dpi=110)
    for i, (title, pairs) in enumerate(groups.items()):
        p = np.array([x for x, _ in pairs], float)
        m = np.array([y for _, y in pairs], float)
        ax = fig.add_subplot(nrow, 2 * per_row, 2 * i + 1)
        ax.plot(p, m, "o", ms=4, color="C0")
        hi = float(np.nanmax(np.r_[p, m])) * 1.1 if p.size else 1.0
        ax.plot([0, hi], [0, hi], "-", color="0.4", lw=0.8, label="identity")
        ax.set_xlim(0, hi)
        ax.set_ylim(0, hi)
        ax.set_xlabel("predicted (Gy)", fontsize=7.5)
        ax.set_ylabel("measured (Gy)", fontsize=7.5)
        ax.set_title(f"{title}: measured vs predicted (n = {p.size})", fontsize=7.5)
        ax.tick_params(labelsize=7)
        ax.grid(True, alpha=0.25)
        ax.legend(fontsize=6.5, frameon=False)
        ax2 = fig.add_subplot(nrow, 2 * per_row, 2 * i + 2)
        ok = (p > 0) & (m > 0)
        r = np.log(p[ok] / m[ok])
        mean = (p[ok] + m[ok]) / 2
        ax2.plot(mean, np.exp(r), "o", ms=4, color="C1")
        given = (limits or {}).get(title)
        if given is not None and all(math.isfinite(x) and x > 0 for x in given):
            lines = tuple((math.log(v), ls, nm) for v, ls, nm in zip(given, ("-", "--", "--"),
                                                                      ("bias", "lower LoA", "upper LoA")))
        elif r.size >= 2:
            b, s = float(r.mean()), float(r.std(ddof=1))
            lines = ((b, "-", "bias"), (b - 1.96 * s, "--", "lower LoA"), (b + 1.96 * s, "--", "upper LoA"))
        else:
            lines = ()
        if lines:
            for val, ls, name in lines:
                lab = f"{name} {math.exp(val):.2f}"
                ax2.axhline(math.exp(val), color="0.3", ls=ls, lw=0.8, label=lab)
        ax2.axhline(1.0, color="0.7", lw=0.6)
        ax2.set_yscale("log")
        ax2.yaxis.set_major_formatter(FormatStrFormatter("%.2g"))
        ax2.yaxis.set_minor_formatter(FormatStrFormatter("%.1f"))
        ax2.tick_params(axis="y", which="minor", labelsize=6)
        ax2.set_xlabel("mean of predicted and measured (Gy)", fontsize=7.5)
        ax2.set_ylabel("predicted / measured", fontsize=7.5)
        ax2.set_title(f"{title}: Bland–Altman (ratio)", fontsize=7.5)
        ax2.tick_params(labelsize=7)
        ax2.grid(True, alpha=0.25)
        ax2.legend(fontsize=6.3, frameon=False)
    return png_bytes(fig)


def forest_png(rows: Sequence[tuple[str, float, float, float]], *, title: str, xlabel: str,
               width_in: float = 7.5) -> bytes:
    """Forest plot: one row per (label, estimate, low, high) on a log axis, with the line of no difference at 1."""
    n = max(len(rows), 1)
    fig = blank_figure(width_in, 0.28 * n + 1.0, dpi=110)
    ax = fig.add_subplot(1, 1, 1)
    y = np.arange(n)[::-1]
    for yi, (_label, est, lo, hi) in zip(y, rows):
        if math.isfinite(lo) and math.isfinite(hi):
            ax.plot([lo, hi], [yi, yi], "-", color="C0", lw=1.2)
        ax.plot([est], [yi], "s", color="C0", ms=4.5)
    ax.axvline(1.0, color="0.4", lw=0.8)
    ax.set_yticks(y)
    ax.set_yticklabels([r[0] for r in rows], fontsize=7)
    from matplotlib.ticker import FormatStrFormatter

    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FormatStrFormatter("%.2g"))
    ax.xaxis.set_minor_formatter(FormatStrFormatter("%.1f"))
    ax.tick_params(axis="x", which="minor", labelsize=6)
    ax.set_xlabel(xlabel, fontsize=7.5)
    ax.set_title(title, fontsize=8.5)
    ax.tick_params(axis="x", labelsize=7)
    ax.grid(True, axis="x", alpha=0.25)
    return png_bytes(fig)
