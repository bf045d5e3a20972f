"""Voxel-level comparison of a predicted and a measured dose map on one grid.

- :func:`dose_difference`: predicted − measured (Gy) and the relative difference map.
- :func:`dvh`: cumulative dose–volume histogram of a region (for overlays).
- :func:`gamma_index`: the gamma index (Low et al. 1998) with stated criteria, vectorised.
- :func:`gamma_pass_rates`: pass rate per region of a label map.

Gamma. For each reference voxel r (measured dose, above the low-dose threshold),
Γ(r) = min over r' of √(|r' − r|²/DTA² + (E(r') − R(r))²/ΔD²), with ΔD = δ·max(R) (global) or
δ·R(r) (local). The evaluated map E is searched over every offset on a sub-voxel grid (step =
voxel / ``subvoxel`` per axis) within the search radius (default DTA × ``max_gamma``); E at a
sub-voxel offset is interpolated **linearly** between voxel centres (``scipy.ndimage.shift``,
``order=1``, edge values repeated). One whole-array shift per offset, no per-voxel loop. Γ above
``max_gamma`` is reported as ``max_gamma`` (the search cannot see farther). A voxel passes if Γ ≤ 1.

References
----------
Low DA, Harms WB, Mutic S, Purdy JA. A technique for the quantitative evaluation of dose
distributions. Med Phys 1998;25:656–661. doi:10.1118/1.598248
Wendling M et al. A fast algorithm for gamma evaluation in 3D. Med Phys 2007;34:1647–1654.
doi:10.1118/1.2721657
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ..errors import ConsistencyError, InputError

__all__ = ["GammaCriteria", "GammaResult", "gamma_index", "gamma_pass_rates", "gamma_by_region", "dose_difference",
           "dvh",
           "SPECT_CRITERIA", "SPECT_REGION_CRITERIA", "plot_dvh_overlay"]


@dataclass(frozen=True)
class GammaCriteria:
    """Gamma criteria.

    Attributes
    ----------
    dose_fraction : float
        δ: dose-difference criterion as a fraction (0.10 = 10 %).
    dta_mm : float
        Distance to agreement (mm).
    normalisation : {"global", "local", "region"}
        ΔD = δ·max(reference), δ·reference(r), or δ·max(reference in the region) with each region
        evaluated on its own (:func:`gamma_by_region`; organs next to hot lesions are then judged
        against their own dose level, and the threshold is relative to the region maximum).
    low_dose_threshold : float
        Reference voxels below this fraction of the reference maximum are not evaluated.
    max_gamma : float
        Search radius = ``dta_mm × max_gamma``; larger Γ is reported as ``max_gamma``.
    subvoxel : int
        Offsets are searched on a grid of voxel/``subvoxel`` per axis.
    """

    dose_fraction: float = 0.10
    dta_mm: float = 5.0
    normalisation: str = "global"
    low_dose_threshold: float = 0.10
    max_gamma: float = 2.0
    subvoxel: int = 2

    def __post_init__(self) -> None:
        if not (0 < self.dose_fraction < 1):
            raise InputError(f"must be in (0, 1), got {self.dose_fraction}", source="dose_fraction")
        if not (self.dta_mm > 0):
            raise InputError(f"must be > 0 mm, got {self.dta_mm}", source="dta_mm")
        if self.normalisation not in ("global", "local", "region"):
            raise InputError(f"must be 'global', 'local' or 'region', got {self.normalisation!r}",
                             source="normalisation")
        if not (0 <= self.low_dose_threshold < 1):
            raise InputError(f"must be in [0, 1), got {self.low_dose_threshold}", source="low_dose_threshold")
        if not (self.max_gamma >= 1) or int(self.subvoxel) < 1:
            raise InputError("max_gamma must be ≥ 1 and subvoxel ≥ 1", source="GammaCriteria")

    @property
    def label(self) -> str:
        return (f"{self.dose_fraction * 100:g}%/{self.dta_mm:g}mm {self.normalisation}, "
                f"threshold {self.low_dose_threshold * 100:g}%")


#: Criteria suited to SPECT resolution (~10 mm FWHM): 10 %/5 mm and 20 %/10 mm, global, 10 % threshold.
SPECT_CRITERIA = (GammaCriteria(0.10, 5.0), GammaCriteria(0.20, 10.0))
#: The same, each region normalised to its own maximum (organs beside hot lesions are evaluated).
SPECT_REGION_CRITERIA = (GammaCriteria(0.10, 5.0, "region"), GammaCriteria(0.20, 10.0, "region"))


@dataclass(frozen=True)
class GammaResult:
    """Gamma map and pass rate.

    Attributes
    ----------
    gamma : numpy.ndarray
        Γ per voxel (float32); NaN where not evaluated (below the threshold).
    evaluated : numpy.ndarray
        Boolean mask of evaluated voxels.
    pass_rate : float
        Fraction of evaluated voxels with Γ ≤ 1.
    criteria : GammaCriteria
    n_offsets : int
        Offsets searched (the search stops once no farther offset can lower any Γ).
    """

    gamma: np.ndarray
    evaluated: np.ndarray
    pass_rate: float
    criteria: GammaCriteria
    n_offsets: int


def _check_pair(reference, evaluated, spacing_mm):
    ref = np.asarray(reference, dtype=np.float32)
    ev = np.asarray(evaluated, dtype=np.float32)
    if ref.shape != ev.shape or ref.ndim != 3:
        raise ConsistencyError(f"dose maps must be 3-D on one grid, got shapes {ref.shape} and {ev.shape}; "
                               "resample the predicted map to the measured grid first", source="dose maps")
    sp = tuple(float(s) for s in spacing_mm)
    if len(sp) != 3 or not all(math.isfinite(s) and s > 0 for s in sp):
        raise InputError(f"expected three positive voxel edges (x, y, z) in mm, got {spacing_mm!r}",
                         source="spacing_mm")
    if not (np.all(np.isfinite(ref)) and np.all(np.isfinite(ev))):
        raise InputError("dose maps contain NaN or infinite values", source="dose maps")
    return ref, ev, sp


def dose_difference(predicted, measured, *, min_dose_Gy: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Dose difference (Gy) predicted − measured, and the relative difference (NaN where measured ≤ ``min_dose_Gy``)."""
    p = np.asarray(predicted, dtype=np.float32)
    m = np.asarray(measured, dtype=np.float32)
    if p.shape != m.shape:
        raise ConsistencyError(f"dose maps differ in shape: {p.shape} vs {m.shape}", source="dose maps")
    diff = p - m
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(m > min_dose_Gy, diff / m, np.nan).astype(np.float32)
    return diff, rel


def dvh(dose, mask, *, bins_Gy: np.ndarray | None = None, n_bins: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative DVH of the voxels in ``mask``: (dose levels Gy, volume fraction receiving ≥ level)."""
    d = np.asarray(dose, dtype=float)[np.asarray(mask, dtype=bool)]
    if d.size == 0:
        raise InputError("empty region", source="mask")
    if bins_Gy is None:
        bins_Gy = np.linspace(0.0, float(d.max()) * 1.05 or 1.0, n_bins)
    levels = np.asarray(bins_Gy, dtype=float)
    ds = np.sort(d)
    frac = 1.0 - np.searchsorted(ds, levels, side="left") / d.size
    return levels, frac


def _offsets(spacing_mm, radius_mm, subvoxel):
    axes = []
    for s in spacing_mm[::-1]:  # (z, y, x) order of the array
        step = s / subvoxel
        n = math.floor(radius_mm / step + 1e-9)
        axes.append(np.arange(-n, n + 1) * step)
    zz, yy, xx = np.meshgrid(*axes, indexing="ij")
    off = np.stack([zz.ravel(), yy.ravel(), xx.ravel()], axis=1)
    d2 = (off**2).sum(axis=1)
    keep = d2 <= radius_mm**2 + 1e-9
    off, d2 = off[keep], d2[keep]
    order = np.argsort(d2, kind="stable")
    return off[order], d2[order]


def gamma_index(reference, evaluated, spacing_mm, criteria: GammaCriteria | None = None, *,
                reference_max_Gy: float | None = None, evaluate=None) -> GammaResult:
    """Gamma index of ``evaluated`` (e.g. predicted) against ``reference`` (e.g. measured) on one grid.

    Parameters
    ----------
    reference, evaluated : array, shape (nz, ny, nx)
        Dose maps (Gy) on one grid, [k, j, i].
    spacing_mm : tuple of 3 float
        (x, y, z) voxel edges (mm), SimpleITK order.
    criteria : GammaCriteria
        Default 10 %/5 mm global, 10 % threshold.
    reference_max_Gy : float, optional
        The dose that "global" (and "region") normalisation and the threshold refer to; default
        the maximum of ``reference``.
    evaluate : array of bool, optional
        Evaluate only these voxels (besides the threshold), e.g. one region.

    Returns
    -------
    GammaResult
    """
    from scipy.ndimage import shift as nd_shift

    c = criteria or GammaCriteria()
    ref, ev, sp = _check_pair(reference, evaluated, spacing_mm)
    rmax = float(ref.max()) if reference_max_Gy is None else float(reference_max_Gy)
    if rmax <= 0:
        raise InputError("reference dose map is zero everywhere", source="reference")
    mask = ref >= c.low_dose_threshold * rmax
    if evaluate is not None:
        mask &= np.asarray(evaluate, dtype=bool)
    radius = c.dta_mm * c.max_gamma
    full_shape, full_mask = ref.shape, mask
    # only evaluated voxels matter: work on their bounding box grown by the search radius + 1 voxel
    # (linear interpolation), which sees exactly the values the whole grid would
    idx = np.argwhere(mask)
    if idx.size:
        grow = [math.ceil(radius / s) + 1 for s in sp[::-1]]
        box = tuple(slice(max(int(lo) - g, 0), min(int(hi) + g + 1, n))
                    for lo, hi, g, n in zip(idx.min(axis=0), idx.max(axis=0), grow, ref.shape))
        ref, ev, mask = ref[box], ev[box], mask[box]
    else:
        box = tuple(slice(0, n) for n in ref.shape)
    if c.normalisation in ("global", "region"):
        dd = np.float32(c.dose_fraction * rmax)
    else:
        dd = np.where(mask, c.dose_fraction * ref, 1.0).astype(np.float32)
    offsets, d2 = _offsets(sp, radius, int(c.subvoxel))
    cap2 = np.float32(c.max_gamma**2)
    best = np.full(ref.shape, cap2, dtype=np.float32)
    spacing_zyx = np.array(sp[::-1])
    worst = cap2
    used = 0
    for o, dist2 in zip(offsets, d2):
        dist_term = np.float32(dist2 / c.dta_mm**2)
        # offsets come in increasing distance: once the distance term alone exceeds every
        # evaluated voxel's current Γ², no farther offset can lower any of them
        if dist_term >= worst:
            break
        used += 1
        vox = o / spacing_zyx
        if np.allclose(vox, np.round(vox)):
            shifted = nd_shift(ev, -np.round(vox), order=0, mode="nearest")
        else:
            shifted = nd_shift(ev, -vox, order=1, mode="nearest")
        g2 = dist_term + ((shifted - ref) / dd) ** 2
        np.minimum(best, g2, out=best)
        if used % 16 == 0 and mask.any():
            worst = min(cap2, float(best[mask].max()))
    gamma = np.full(full_shape, np.nan, dtype=np.float32)
    gamma[box] = np.where(mask, np.sqrt(best), np.nan)
    n = int(full_mask.sum())
    rate = float(np.count_nonzero(gamma[full_mask] <= 1.0) / n) if n else float("nan")
    return GammaResult(gamma, full_mask, rate, c, used)


def gamma_by_region(reference, evaluated, spacing_mm, labels, names: Mapping[int, str],
                    criteria: GammaCriteria) -> list[dict]:
    """Gamma pass rate of each region, normalised to the region's own maximum reference dose.

    Each region is evaluated on its bounding box grown by the search radius (the evaluated map
    is searched outside the region too). Only pass rates are returned, so the search stops at
    Γ = 1 (radius = DTA; the pass rate does not depend on ``max_gamma``).
    Rows ``{region, criteria, n_evaluated, pass_rate}``.
    """
    from dataclasses import replace

    from scipy.ndimage import find_objects

    criteria = replace(criteria, max_gamma=1.0)
    ref, ev, sp = _check_pair(reference, evaluated, spacing_mm)
    lab = np.asarray(labels)
    if lab.shape != ref.shape:
        raise ConsistencyError(f"label map shape {lab.shape} differs from the dose grid {ref.shape}", source="labels")
    radius = criteria.dta_mm * criteria.max_gamma
    margin = [math.ceil(radius / s) + 1 for s in sp[::-1]]
    rows = []
    for value, name in names.items():
        sel = lab == value
        boxes = find_objects(sel.astype(np.int8))
        if not boxes or boxes[0] is None:
            rows.append({"region": name, "criteria": criteria.label + " (region)", "n_evaluated": 0, "pass_rate": None})
            continue
        box = tuple(slice(max(b.start - m, 0), min(b.stop + m, n)) for b, m, n in zip(boxes[0], margin, ref.shape))
        rmax = float(ref[sel].max())
        if rmax <= 0:
            rows.append({"region": name, "criteria": criteria.label + " (region)", "n_evaluated": 0, "pass_rate": None})
            continue
        res = gamma_index(ref[box], ev[box], sp, criteria, reference_max_Gy=rmax, evaluate=sel[box])
        n = int(res.evaluated.sum())
        rows.append({"region": name, "criteria": criteria.label + " (region)", "n_evaluated": n,
                     "pass_rate": res.pass_rate if n else None})
    return rows


def gamma_pass_rates(result: GammaResult, labels, names: Mapping[int, str]) -> list[dict]:
    """Pass rate per region: rows ``{region, criteria, n_evaluated, pass_rate}`` (label 0 ignored)."""
    lab = np.asarray(labels)
    if lab.shape != result.gamma.shape:
        raise ConsistencyError(f"label map shape {lab.shape} differs from the dose grid {result.gamma.shape}",
                               source="labels")
    rows = []
    for value, name in names.items():
        sel = (lab == value) & result.evaluated
        n = int(sel.sum())
        rows.append({"region": name, "criteria": result.criteria.label, "n_evaluated": n,
                     "pass_rate": float(np.count_nonzero(result.gamma[sel] <= 1.0) / n) if n else None})
    return rows


def plot_dvh_overlay(curves: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]], path, *,
                     title: str = "DVH: predicted (dashed) vs measured (solid)", max_regions: int = 8):
    """PNG of DVH overlays: region → (levels_pred, frac_pred, levels_meas, frac_meas).

    At most ``max_regions`` regions are drawn, those with the highest measured median dose.
    """
    from ..plotting import new_figure, save_png

    def median(item):
        _, (_, _, lm, fm) = item
        return float(np.interp(0.5, fm[::-1], lm[::-1]))

    chosen = sorted(curves.items(), key=median, reverse=True)[:max_regions]
    fig, ax = new_figure(7.0, 4.5)
    for i, (name, (lp, fp, lm, fm)) in enumerate(chosen):
        colour = f"C{i % 10}"
        ax.plot(lm, fm * 100, color=colour, label=f"{name} measured")
        ax.plot(lp, fp * 100, color=colour, linestyle="--", label=f"{name} predicted")
    ax.set_xlabel("absorbed dose (Gy)")
    ax.set_ylabel("volume (%)")
    ax.set_title(title)
    ax.legend(fontsize="x-small")
    return save_png(fig, path)
