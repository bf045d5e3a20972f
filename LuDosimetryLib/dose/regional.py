"""Regional dose statistics: per-region mean, median, extremes, D_x, volume, mass and DVH.

Definitions (every voxel of a region counts with its volume; voxels of one grid are equal):

- ``mean_dose_Gy`` (written to doses.csv as ``map_mean_dose_Gy``; the reported ``dose_Gy`` may be
  partial-volume corrected, :func:`corrected_doses`): with a density map, by default the
  mass-weighted mean Σ D_i m_i / Σ m_i (energy / mass, the MIRD mean absorbed dose; the mass
  convention of :mod:`.density_scaling`); without one, or with ``mass_weighted=False``, the
  volume-weighted mean Σ D_i / n. Both are kept (``mean_dose_volume_weighted_Gy``,
  ``mean_dose_mass_weighted_Gy``). The volume-weighted mean of a density-scaled map over-weights
  low-density voxels (D ∝ 1/ρ), e.g. air at a lesion's edge.
- ``median_dose_Gy``: the median of the voxel doses (mean of the two middle values for an even
  count), as :func:`numpy.median`.
- **D_x** (``d2_Gy``, ``d50_Gy``, ``d98_Gy``): the minimum dose to the hottest x % of the volume.
  With the voxel doses sorted in decreasing order d₍₁₎ ≥ d₍₂₎ ≥ … ≥ d₍ₙ₎, D_x = d₍ₖ₎ with
  k = ⌈x·n/100⌉ (at least 1): the smallest set of hottest voxels holding at least x % of the
  volume, and the lowest dose in it. Equivalently D_x = max{d : V(≥ d) ≥ x %}. For the
  doses 0, 1, …, 99 Gy: D2 = 98, D50 = 50 (the median is 49.5), D98 = 2.
- Cumulative DVH: for dose levels d (Gy), the fraction of the region's volume receiving ≥ d.
  Levels are shared by all regions of one call (0 to the highest regional maximum), so that the
  curves tabulate side by side (Slicer plot chart); fractions are exact counts, not interpolated.
- ``volume_mL`` = n · V_voxel; ``mass_g`` = Σ ρ_i V_voxel with a density map, else None.

Composite regions (label-table groups, e.g. ``kidney_left`` = cortex + pelvis) pool the voxels
of their leaves. :func:`region_dose_from_dose_rates` is the second route to regional dose: mean
dose rate per region and time point, fitted with a kinetic model, integrated to infinity.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..errors import ConsistencyError, InputError
from ..kinetics.models import KineticModel
from ..labels import LabelTable
from ..plotting import new_figure, save_png
from ..results import DOSES_COLUMNS
from ..timing import check_times_increasing
from ..units import BQ_PER_GBQ
from .grid import as_voxels, check_same_grid, voxel_volume_mL_of

__all__ = [
    "RegionDose", "RegionDoseRateIntegral", "region_dose_statistics", "dose_at_volume_percent",
    "cumulative_dvh", "dose_rows", "corrected_doses", "map_dose_method",
    "dose_rate_route_rows", "dvh_chart_columns", "dvh_rows", "plot_dvh_png",
    "region_dose_from_dose_rates", "DEFAULT_DVH_LEVELS",
]

#: Number of dose levels of the cumulative DVH when none are given.
DEFAULT_DVH_LEVELS = 201
#: Negative doses above −tol·max|D| are FFT round-off and are set to 0; below, an error.
_NEGATIVE_RTOL = 1e-5


@dataclass(frozen=True)
class RegionDose:
    """Dose statistics of one region (a leaf of the label table or a composite group).

    Attributes
    ----------
    region, kind : str
        Name as in the label table (or group name) and kind (a group takes its leaves' kind when
        they agree, else ``"other"``).
    leaves : tuple of str
        Leaf regions pooled (the region itself for a leaf).
    n_voxels : int
    volume_mL, mass_g : float
        Volume (mL) and mass (g; None without a density map).
    mean_dose_Gy : float
        The reported mean: mass-weighted when asked for and possible, else volume-weighted (Gy).
    mean_dose_volume_weighted_Gy, mean_dose_mass_weighted_Gy : float
        Both means (Gy; the mass-weighted one is None without density).
    median_dose_Gy, min_dose_Gy, max_dose_Gy, d2_Gy, d50_Gy, d98_Gy : float
        See the module docstring (Gy).
    dvh_dose_Gy, dvh_volume_fraction : numpy.ndarray
        Cumulative DVH: dose levels (Gy) and fraction of volume (0–1) with dose ≥ level.
    mean_weighting : {"volume", "mass"}
    method : str
        How the dose map was made (``"kernel"``, ``"led"``, …), for doses.csv.
    """

    region: str
    kind: str
    leaves: tuple[str, ...]
    n_voxels: int
    volume_mL: float
    mass_g: float | None
    mean_dose_Gy: float
    mean_dose_volume_weighted_Gy: float
    mean_dose_mass_weighted_Gy: float | None
    median_dose_Gy: float
    min_dose_Gy: float
    max_dose_Gy: float
    d2_Gy: float
    d50_Gy: float
    d98_Gy: float
    dvh_dose_Gy: np.ndarray = field(repr=False, compare=False)
    dvh_volume_fraction: np.ndarray = field(repr=False, compare=False)
    mean_weighting: str = "volume"
    method: str = ""


def _k_hottest(n: int, percent: float) -> int:
    """k = max(1, ⌈x·n/100⌉): the number of hottest voxels holding at least x % of n."""
    if not 0 < percent <= 100:
        raise InputError(f"must be in (0, 100], got {percent!r}", source="percent")
    # ceil with a guard against x·n/100 landing a hair above an integer in floating point
    return max(1, math.ceil(percent * n / 100.0 - 1e-9))


def dose_at_volume_percent(doses_Gy: np.ndarray, percent: float) -> float:
    """D_x: the minimum dose to the hottest ``percent`` % of the voxels (Gy).

    Parameters
    ----------
    doses_Gy : numpy.ndarray
        Voxel doses of one region (any shape; equal voxel volumes).
    percent : float
        x in (0, 100].

    Returns
    -------
    float
        d₍ₖ₎ of the decreasingly sorted doses with k = max(1, ⌈x·n/100⌉) (see module docstring).
    """
    d = np.sort(np.asarray(doses_Gy, dtype=np.float64).ravel())
    if d.size == 0:
        raise InputError("no voxels", source="doses_Gy")
    return float(d[d.size - _k_hottest(d.size, percent)])


def cumulative_dvh(doses_Gy: np.ndarray, levels_Gy: np.ndarray) -> np.ndarray:
    """Fraction of voxels with dose ≥ each level (exact counts; non-increasing in the level)."""
    return _dvh_sorted(np.sort(np.asarray(doses_Gy, dtype=np.float64).ravel()), levels_Gy)


def _dvh_sorted(s: np.ndarray, levels_Gy: np.ndarray) -> np.ndarray:
    n_below = np.searchsorted(s, np.asarray(levels_Gy, dtype=np.float64), side="left")
    return (s.size - n_below) / s.size


def _kind_of(kinds: Sequence[str]) -> str:
    return kinds[0] if len(set(kinds)) == 1 else "other"


def _checked_dose(dose: np.ndarray, labelled: np.ndarray, name: str, table: LabelTable,
                  label_of_voxel: np.ndarray) -> np.ndarray:
    """Dose values of the labelled voxels, NaN/negative checked (round-off negatives set to 0)."""
    vals = dose[labelled].astype(np.float64)
    nonfinite = ~np.isfinite(vals)
    if nonfinite.any():
        bad_labels = np.unique(label_of_voxel[nonfinite])
        names = [r.name for r in table if r.label in set(bad_labels.tolist())]
        raise InputError(f"{int(nonfinite.sum())} voxel(s) in region(s) {names} are NaN or infinite; "
                         "expected finite doses (Gy)", source=name)
    tol = _NEGATIVE_RTOL * (float(np.abs(vals).max()) if vals.size else 0.0)
    neg = vals < -tol
    if neg.any():
        bad_labels = np.unique(label_of_voxel[neg])
        names = [r.name for r in table if r.label in set(bad_labels.tolist())]
        raise InputError(f"{int(neg.sum())} voxel(s) in region(s) {names} have negative dose "
                         f"(min {vals.min():g} Gy); expected doses ≥ 0 Gy", source=name)
    return np.maximum(vals, 0.0)


def _region_index(labels: np.ndarray, table: LabelTable, include_groups: bool, on_empty: str,
                  name_filter: Sequence[str] | None):
    """Sorted labelled-voxel indices and, per reported region, the slices into them."""
    flat = labels.ravel()
    known = np.array([r.label for r in table], dtype=np.int64)
    labelled = np.flatnonzero(np.isin(flat, known))
    order = np.argsort(flat[labelled], kind="stable")
    idx = labelled[order]
    lab_sorted = flat[idx]
    spans = {}
    for r in table:
        lo, hi = np.searchsorted(lab_sorted, [r.label, r.label + 1])
        spans[r.name] = (int(lo), int(hi))
    regions = [(r.name, r.kind, (r.name,)) for r in table]
    if include_groups:
        regions += [(g, _kind_of([r.kind for r in leaves]), tuple(r.name for r in leaves))
                    for g, leaves in table.groups().items()]
    if name_filter is not None:
        wanted = set(name_filter)
        unknown = wanted - {r[0] for r in regions}
        if unknown:
            raise InputError(f"unknown region(s) {sorted(unknown)} (have: {', '.join(r[0] for r in regions)})",
                             source="regions")
        regions = [r for r in regions if r[0] in wanted]
    out = []
    for name, kind, leaves in regions:
        sl = [spans[leaf] for leaf in leaves if spans[leaf][1] > spans[leaf][0]]
        if not sl:
            if on_empty == "skip":
                continue
            labels_txt = ", ".join(str(table.by_name(leaf).label) for leaf in leaves)
            raise InputError(f"region {name!r} (label(s) {labels_txt}) has no voxels in the label map; "
                             "expected at least one (use on_empty='skip' to leave it out)", source="labels")
        out.append((name, kind, leaves, sl))
    return idx, lab_sorted, out


def _prepare(dose_Gy, labels, density_g_per_mL, voxel_volume_mL, dose_name="dose_Gy"):
    dose, grid = as_voxels(dose_Gy, dose_name)
    lab, g_lab = as_voxels(labels, "labels")
    check_same_grid(grid, g_lab, reference_name=dose_name, other_name="labels")
    if not np.issubdtype(lab.dtype, np.integer):
        if not np.all(np.mod(lab, 1) == 0):
            raise InputError("label map has non-integer values; expected integer labels", source="labels")
        lab = lab.astype(np.int64)
    v = voxel_volume_mL_of(grid, voxel_volume_mL, name=dose_name)
    rho = None
    if density_g_per_mL is not None:
        rho, g_rho = as_voxels(density_g_per_mL, "density_g_per_mL")  # as stored: float64 after each gather
        check_same_grid(grid, g_rho, reference_name=dose_name, other_name="density_g_per_mL")
    return dose, grid, lab, v, rho


def region_dose_statistics(dose_Gy: sitk.Image | np.ndarray, labels: sitk.Image | np.ndarray, table: LabelTable, *,
                           density_g_per_mL: sitk.Image | np.ndarray | None = None,
                           voxel_volume_mL: float | None = None, mass_weighted: bool | None = None,
                           include_groups: bool = True, regions: Sequence[str] | None = None,
                           dvh_levels_Gy: np.ndarray | None = None, on_empty: str = "error",
                           method: str = "",
                           progress: Callable[[float, str], None] | None = None) -> list[RegionDose]:
    """Dose statistics and cumulative DVH of every region of a label map.

    Parameters
    ----------
    dose_Gy : SimpleITK.Image or numpy.ndarray
        Absorbed dose (Gy) per voxel, e.g. from kernel convolution or local deposition.
    labels : SimpleITK.Image or numpy.ndarray
        Integer label map on the same grid (0 = background).
    table : LabelTable
        Names, kinds and groups of the labels.
    density_g_per_mL : SimpleITK.Image or numpy.ndarray, optional
        Mass density (g/mL) on the same grid: gives ``mass_g`` and the mass-weighted mean.
    voxel_volume_mL : float, optional
        Voxel volume (mL); required for arrays, checked against the spacing for images.
    mass_weighted : bool, optional
        Report the mass-weighted mean as ``mean_dose_Gy`` (True needs ``density_g_per_mL``);
        default: mass-weighted exactly when a density map is given.
    include_groups : bool
        Also report the composite regions of the table's groups.
    regions : sequence of str, optional
        Only these regions (leaf or group names).
    dvh_levels_Gy : numpy.ndarray, optional
        Dose levels of the DVH (Gy, increasing); default :data:`DEFAULT_DVH_LEVELS` levels from 0
        to the highest regional maximum.
    on_empty : {"error", "skip"}
        A region without voxels raises :class:`InputError`, or is left out.
    method : str
        Dose method recorded in each result (``"kernel"``, ``"led"``, ``"dose_rate_integral"``).
    progress : callable, optional
        ``progress(fraction, message)``.

    Returns
    -------
    list of RegionDose
        Leaves in table order, then groups.

    Raises
    ------
    ConsistencyError
        If labels or density lie on another grid than the dose.
    InputError
        On NaN or negative dose in a region, an empty region, NaN/negative density, or
        ``mass_weighted`` without density.
    """
    if on_empty not in ("error", "skip"):
        raise InputError(f"must be 'error' or 'skip', got {on_empty!r}", source="on_empty")
    if mass_weighted and density_g_per_mL is None:
        raise InputError("mass_weighted=True needs density_g_per_mL (the CT density on the dose grid)",
                         source="mass_weighted")
    if mass_weighted is None:
        mass_weighted = density_g_per_mL is not None
    dose, _grid, lab, v, rho = _prepare(dose_Gy, labels, density_g_per_mL, voxel_volume_mL)
    idx, lab_sorted, plan = _region_index(lab, table, include_groups, on_empty, regions)
    vals = _checked_dose(dose.ravel(), idx, "dose_Gy", table, lab_sorted)
    mass = None
    if rho is not None:
        rv = rho.ravel()[idx].astype(np.float64)
        bad = ~np.isfinite(rv) | (rv < 0)
        if bad.any():
            raise InputError(f"{int(bad.sum())} voxel(s) inside regions are NaN or negative; expected ≥ 0 g/mL",
                             source="density_g_per_mL")
        mass = rv * v
    pooled = []
    for name, kind, leaves, spans in plan:
        d = np.concatenate([vals[a:b] for a, b in spans])
        m = None if mass is None else np.concatenate([mass[a:b] for a, b in spans])
        pooled.append((name, kind, leaves, d, m))
    if dvh_levels_Gy is None:
        top = max((float(p[3].max()) for p in pooled), default=0.0)
        levels = np.linspace(0.0, top if top > 0 else 1.0, DEFAULT_DVH_LEVELS)
    else:
        levels = np.asarray(dvh_levels_Gy, dtype=np.float64)
        if levels.ndim != 1 or levels.size < 2 or np.any(np.diff(levels) <= 0):
            raise InputError("expected an increasing 1-D array of ≥ 2 dose levels (Gy)", source="dvh_levels_Gy")
    levels.setflags(write=False)
    out = []
    for i, (name, kind, leaves, d, m) in enumerate(pooled):
        mean_v = float(d.mean())
        mass_g = mean_m = None
        if m is not None:
            mass_g = float(m.sum())
            mean_m = float((d * m).sum() / mass_g) if mass_g > 0 else math.nan
        srt = np.sort(d)  # one sort per region: median, D_x and DVH read from it
        n = srt.size
        dvh = _dvh_sorted(srt, levels)
        dvh.setflags(write=False)
        median = float(srt[n // 2]) if n % 2 else float(0.5 * (srt[n // 2 - 1] + srt[n // 2]))
        out.append(RegionDose(
            region=name, kind=kind, leaves=leaves, n_voxels=int(n), volume_mL=n * v, mass_g=mass_g,
            mean_dose_Gy=mean_m if mass_weighted else mean_v, mean_dose_volume_weighted_Gy=mean_v,
            mean_dose_mass_weighted_Gy=mean_m, median_dose_Gy=median, min_dose_Gy=float(srt[0]),
            max_dose_Gy=float(srt[-1]), d2_Gy=float(srt[n - _k_hottest(n, 2)]),
            d50_Gy=float(srt[n - _k_hottest(n, 50)]), d98_Gy=float(srt[n - _k_hottest(n, 98)]),
            dvh_dose_Gy=levels, dvh_volume_fraction=dvh,
            mean_weighting="mass" if mass_weighted else "volume", method=method))
        if progress is not None:
            progress((i + 1) / len(pooled), f"dose statistics: {name}")
    return out


# --- route (b): dose-rate maps integrated per region ------------------------------------------
@dataclass(frozen=True)
class RegionDoseRateIntegral:
    """Regional dose from dose-rate maps per time point (route b).

    Attributes
    ----------
    region, kind : str
    times_h : tuple of float
        Time points (h p.i.).
    mean_dose_rate_Gy_per_h : tuple of float
        Mean dose rate of the region at each time point (Gy/h), volume- or mass-weighted.
    model : KineticModel
        The fitted curve of dose rate against time (its ``activity`` reads Gy/h here).
    dose_Gy : float
        ∫₀^∞ of the fitted dose rate (Gy).
    mean_weighting : {"volume", "mass"}
    volume_mL, mass_g : float
        Region volume (mL) and mass (g; None without density).
    """

    region: str
    kind: str
    times_h: tuple[float, ...]
    mean_dose_rate_Gy_per_h: tuple[float, ...]
    model: KineticModel = field(compare=False)
    dose_Gy: float
    mean_weighting: str = "volume"
    volume_mL: float = math.nan
    mass_g: float | None = None


def region_dose_from_dose_rates(dose_rate_maps_Gy_per_h: Sequence[sitk.Image | np.ndarray], times_h: Sequence[float],
                                labels: sitk.Image | np.ndarray, table: LabelTable, *,
                                fit: Callable[[np.ndarray, np.ndarray], KineticModel],
                                density_g_per_mL: sitk.Image | np.ndarray | None = None,
                                voxel_volume_mL: float | None = None, mass_weighted: bool | None = None,
                                include_groups: bool = True, regions: Sequence[str] | None = None,
                                on_empty: str = "error",
                                progress: Callable[[float, str], None] | None = None
                                ) -> list[RegionDoseRateIntegral]:
    """Regional dose by integrating the regional mean dose rate over time (route b).

    For each region the mean dose rate Ḋ(t_j) (Gy/h) of every dose-rate map (one per time point,
    e.g. the kernel convolution of the activity map at that time) is fitted with ``fit`` and the
    fitted curve integrated from 0 to ∞: D = ∫₀^∞ Ḋ(t) dt (Gy). The model's ``activity`` and
    ``integral`` are read in Gy/h and Gy here (the kinetic-model interface is unit-agnostic).

    Parameters
    ----------
    dose_rate_maps_Gy_per_h : sequence of SimpleITK.Image or numpy.ndarray
        Dose rate (Gy/h) at each time point, all on the grid of ``labels``.
    times_h : sequence of float
        Time of each map (h p.i., mid-acquisition), strictly increasing.
    labels, table : label map and its LabelTable.
    fit : callable
        ``fit(times_h, values) -> KineticModel`` (e.g. the fitter of the kinetics stage).
    density_g_per_mL, voxel_volume_mL, mass_weighted, include_groups, regions, on_empty
        As in :func:`region_dose_statistics`.

    Returns
    -------
    list of RegionDoseRateIntegral
    """
    maps = list(dose_rate_maps_Gy_per_h)
    t = np.asarray(times_h, dtype=np.float64)
    if t.ndim != 1 or t.size != len(maps) or t.size == 0:
        raise InputError(f"need one time per dose-rate map, got {t.size} time(s) for {len(maps)} map(s)",
                         source="times_h")
    check_times_increasing(t, source="times_h")
    if mass_weighted and density_g_per_mL is None:
        raise InputError("mass_weighted=True needs density_g_per_mL", source="mass_weighted")
    if mass_weighted is None:
        mass_weighted = density_g_per_mL is not None
    if not callable(fit):
        raise InputError("fit must be a callable fit(times_h, values) -> KineticModel", source="fit")
    _, grid0 = as_voxels(maps[0], "dose_rate_maps_Gy_per_h[0]")
    _, _, lab, v, rho = _prepare(maps[0], labels, density_g_per_mL, voxel_volume_mL,
                                 dose_name="dose_rate_maps_Gy_per_h[0]")
    idx, lab_sorted, plan = _region_index(lab, table, include_groups, on_empty, regions)
    w = np.ones(idx.size) if rho is None or not mass_weighted else rho.ravel()[idx].astype(np.float64) * v
    rates = np.empty((len(plan), t.size))
    for j, m in enumerate(maps):
        arr, g = as_voxels(m, f"dose_rate_maps_Gy_per_h[{j}]")
        check_same_grid(grid0, g, reference_name="dose_rate_maps_Gy_per_h[0]",
                        other_name=f"dose_rate_maps_Gy_per_h[{j}]")
        vals = _checked_dose(arr.ravel(), idx, f"dose_rate_maps_Gy_per_h[{j}]", table, lab_sorted)
        for r, (_name, _kind, _leaves, spans) in enumerate(plan):
            num = sum(float((vals[a:b] * w[a:b]).sum()) for a, b in spans)
            den = sum(float(w[a:b].sum()) for a, b in spans)
            rates[r, j] = num / den
    out = []
    for r, (name, kind, _leaves, spans) in enumerate(plan):
        n_vox = sum(b - a for a, b in spans)
        mass_g = None if rho is None else sum(float(rho.ravel()[idx[a:b]].astype(np.float64).sum())
                                              for a, b in spans) * v
        model = fit(t.copy(), rates[r].copy())
        if not isinstance(model, KineticModel):
            raise InputError(f"fit returned {type(model).__name__}, not a KineticModel", source="fit")
        dose = float(model.integral(0.0, math.inf))
        if not math.isfinite(dose):
            raise InputError(f"fitted dose-rate curve of region {name!r} has no finite integral", source="fit")
        out.append(RegionDoseRateIntegral(name, kind, tuple(t.tolist()), tuple(rates[r].tolist()), model, dose,
                                          "mass" if mass_weighted else "volume", n_vox * v, mass_g))
        if progress is not None:
            progress((r + 1) / len(plan), f"dose-rate integral: {name}")
    return out


# --- tables and plots -------------------------------------------------------------------------
def map_dose_method(method: str) -> str:
    """``dose_method`` of an uncorrected dose-map mean: ``kernel`` (convolution) or ``led``."""
    return {"convolution": "kernel", "": "kernel"}.get(method, method)


def corrected_doses(stats: Sequence[RegionDose], corrected_tia_Bq_h: Mapping[str, float],
                    map_tia_Bq_h: Mapping[str, float], *, correction: str) -> dict[str, tuple[float, str]]:
    """Partial-volume-corrected region doses: the dose-map mean × corrected TIA / TIA in the map.

    The region's mean dose per TIA held by the voxel map (its S-value from the map, cross-dose
    included) applied to the TIA fitted to the partial-volume-corrected TAC.

    Parameters
    ----------
    stats : sequence of RegionDose
    corrected_tia_Bq_h : mapping region → Bq·h
        TIA of the corrected, fitted TAC (fits.csv).
    map_tia_Bq_h : mapping region → Bq·h
        TIA the voxel map holds in the region, on the grid of the statistics.
    correction : str
        Name of the correction (``gtm``, ``recovery``): dose_method ``<map method>+<correction>-pvc``.

    Returns
    -------
    dict
        region → (dose_Gy, dose_method), for regions with both TIAs > 0.
    """
    out = {}
    for s in stats:
        fit, in_map = corrected_tia_Bq_h.get(s.region), map_tia_Bq_h.get(s.region, 0.0)
        if fit is not None and math.isfinite(fit) and fit > 0 and in_map > 0:
            out[s.region] = (s.mean_dose_Gy * fit / in_map, f"{map_dose_method(s.method)}+{correction}-pvc")
    return out


def dose_rows(stats: Sequence[RegionDose], *, cycle: int | None = None,
              injected_activity_Bq: float | None = None,
              reported: Mapping[str, tuple[float, str]] | None = None,
              rel_uncertainty: Mapping[str, float] | None = None,
              ci95_Gy: Mapping[str, tuple[float | None, float | None]] | None = None,
              bed_Gy: Mapping[str, float] | None = None, eqd2_Gy: Mapping[str, float] | None = None,
              flags: Mapping[str, str] | None = None) -> list[dict]:
    """Rows for ``doses.csv`` with the columns of :data:`LuDosimetryLib.results.DOSES_COLUMNS`.

    ``dose_Gy`` is the reported dose: ``reported[region]`` when given (e.g. from
    :func:`corrected_doses`), else the dose-map mean (``dose_method`` ``kernel`` or ``led``).
    ``map_mean_dose_Gy`` is always the dose-map mean; ``dose_per_activity_Gy_per_GBq`` is
    ``dose_Gy`` / activity.

    Parameters
    ----------
    stats : sequence of RegionDose
    cycle : int, optional
        Treatment cycle number.
    injected_activity_Bq : float, optional
        Net injected activity (Bq): fills ``dose_per_activity_Gy_per_GBq``.
    reported : mapping region → (dose_Gy, dose_method), optional
    rel_uncertainty : mapping region → float, optional
        Relative standard uncertainty (k = 1) of dose_Gy.
    ci95_Gy : mapping region → (low, high), optional
        95 % interval of dose_Gy (Gy); a high of None is unbounded: written empty, flag ``ci_unbounded``.
    bed_Gy, eqd2_Gy : mapping region → Gy, optional
        From dose_Gy (radiobiology).
    flags : mapping region → str, optional
        Words joined by ``;``.

    Returns
    -------
    list of dict
        One row per region; absent values are None (written empty).
    """
    per_gbq = _per_gbq_divisor(injected_activity_Bq)
    rows = []
    for s in stats:
        dose, method = (reported or {}).get(s.region, (s.mean_dose_Gy, map_dose_method(s.method)))
        row = dict.fromkeys(DOSES_COLUMNS)
        row.update(region=s.region, kind=s.kind, cycle=cycle, dose_Gy=dose, dose_method=method,
                   volume_mL=s.volume_mL, mass_g=s.mass_g, map_mean_dose_Gy=s.mean_dose_Gy,
                   median_dose_Gy=s.median_dose_Gy, min_dose_Gy=s.min_dose_Gy, max_dose_Gy=s.max_dose_Gy,
                   d2_Gy=s.d2_Gy, d50_Gy=s.d50_Gy, d98_Gy=s.d98_Gy)
        if per_gbq is not None:
            row["dose_per_activity_Gy_per_GBq"] = dose / per_gbq
        words = [w for w in ((flags or {}).get(s.region) or "").split(";") if w]
        for col, src in (("dose_rel_uncertainty", rel_uncertainty), ("bed_Gy", bed_Gy), ("eqd2_Gy", eqd2_Gy)):
            if src is not None and s.region in src:
                row[col] = src[s.region]
        if ci95_Gy is not None and s.region in ci95_Gy:
            low, high = ci95_Gy[s.region]
            row["dose_ci95_low_Gy"] = low
            if high is None or not math.isfinite(high):
                words.append("ci_unbounded")
            else:
                row["dose_ci95_high_Gy"] = high
        row["flags"] = ";".join(dict.fromkeys(words))
        rows.append(row)
    return rows


def _per_gbq_divisor(injected_activity_Bq: float | None) -> float | None:
    if injected_activity_Bq is None:
        return None
    if not (math.isfinite(injected_activity_Bq) and injected_activity_Bq > 0):
        raise InputError(f"must be finite and > 0 Bq, got {injected_activity_Bq!r}", source="injected_activity_Bq")
    return injected_activity_Bq / BQ_PER_GBQ


def dose_rate_route_rows(results: Sequence[RegionDoseRateIntegral], *, cycle: int | None = None,
                         injected_activity_Bq: float | None = None) -> list[dict]:
    """``doses.csv`` rows for route (b): dose only (no voxel statistics), dose_method ``dose_rate_integral``."""
    per_gbq = _per_gbq_divisor(injected_activity_Bq)
    rows = []
    for res in results:
        row = dict.fromkeys(DOSES_COLUMNS)
        row.update(region=res.region, kind=res.kind, cycle=cycle, dose_Gy=res.dose_Gy,
                   dose_method="dose_rate_integral", volume_mL=res.volume_mL, mass_g=res.mass_g, flags="")
        if per_gbq is not None:
            row["dose_per_activity_Gy_per_GBq"] = res.dose_Gy / per_gbq
        rows.append(row)
    return rows


def dvh_chart_columns(stats: Sequence[RegionDose]) -> dict[str, np.ndarray]:
    """DVH as table columns for a Slicer plot chart: ``dose_Gy`` and ``<region>_volume_percent``.

    All regions of one :func:`region_dose_statistics` call share their dose levels.
    """
    if not stats:
        return {}
    levels = stats[0].dvh_dose_Gy
    for s in stats[1:]:
        if s.dvh_dose_Gy.shape != levels.shape or not np.array_equal(s.dvh_dose_Gy, levels):
            raise ConsistencyError("regions have different DVH dose levels; compute them in one call",
                                   source="stats")
    cols = {"dose_Gy": np.asarray(levels, dtype=np.float64)}
    for s in stats:
        cols[f"{s.region}_volume_percent"] = 100.0 * np.asarray(s.dvh_volume_fraction)
    return cols


def dvh_rows(stats: Sequence[RegionDose]) -> list[dict]:
    """DVH in long form: one row per region and dose level (``region, dose_Gy, volume_percent``)."""
    return [{"region": s.region, "dose_Gy": float(d), "volume_percent": 100.0 * float(f)}
            for s in stats for d, f in zip(s.dvh_dose_Gy, s.dvh_volume_fraction)]


def plot_dvh_png(stats: Sequence[RegionDose], path: str | Path, *, title: str = "Cumulative dose-volume histograms",
                 max_regions: int = 20) -> Path:
    """Plot the cumulative DVH of each region to a PNG file (matplotlib Agg), atomically.

    Parameters
    ----------
    stats : sequence of RegionDose
    path : str or Path
        Output PNG.
    title : str
    max_regions : int
        Plot at most this many regions (highest mean dose first) to keep the figure readable.
    """
    if not stats:
        raise InputError("no regions to plot", source="stats")
    chosen = sorted(stats, key=lambda s: -s.mean_dose_Gy)[:max_regions]
    from matplotlib import colormaps

    fig, ax = new_figure(9.0, 4.8)
    colours = colormaps["tab20"].colors
    for i, s in enumerate(chosen):
        ax.step(s.dvh_dose_Gy, 100.0 * s.dvh_volume_fraction, where="post", label=s.region,
                color=colours[i % len(colours)], linestyle=("-", "--")[(i // len(colours)) % 2])
    ax.set_xlabel("Absorbed dose (Gy)")
    ax.set_ylabel("Volume receiving ≥ dose (%)")
    ax.set_ylim(0, 102)
    ax.set_xlim(left=0)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small", ncol=2 if len(chosen) > 10 else 1, loc="upper left", bbox_to_anchor=(1.01, 1.0),
              borderaxespad=0.0)
    return save_png(fig, path)
