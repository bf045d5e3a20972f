"""Time–activity curves (TACs) per region and timepoint, from aligned SPECT and a label map.

Working grid (decision)
    By default (``grid="labels"``) the TACs are computed on the **label-map grid** (the
    reference CT grid, usually finer than SPECT): each timepoint's concentration (Bq/mL, already
    in the reference frame, see :mod:`LuDosimetryLib.alignment`) is resampled onto it by
    **linear interpolation of concentration**, and a region's activity is Σ c_i · V_voxel over
    its label voxels. The label boundary keeps its CT resolution; the SPECT total is kept to
    within the interpolation error (tested). ``grid="spect"`` instead resamples the labels onto
    the SPECT grid by nearest neighbour: region volumes then change by up to a SPECT voxel layer,
    so activities of small regions change too. ``docs/tac.md`` gives the measured errors.

Time
    A region's ``time_h`` is the activity-weighted mean of its voxels' mid-acquisition times
    (``Timepoint.time_map_h``, nearest neighbour onto the working grid), ``Σ a_i t_i / Σ a_i``
    with negative activities counted as 0; the volume-weighted mean where the region holds no
    activity; ``Timepoint.time_h`` where there is no time map.

Decay state
    Activities and ``percent_injected_activity`` are **at acquisition time** (not decay-corrected,
    the library convention). ``percent_injected_activity_decay_corrected`` (extra column) is the
    same activity decay-corrected to the injection time with the administration's nuclide.

Flags (``;``-joined in ``tac.csv``)
    ``below_resolution``: the region's equivalent-sphere diameter (6V/π)^(1/3) is below
    ``resolution_factor`` × SPECT FWHM (default 3, i.e. fewer than 27 resolution volumes
    π/6·FWHM³; for a uniform sphere under a Gaussian PSF the recovery of the mean is 0.67 at
    3 FWHM and 0.52 at 2 FWHM):
    lacrimal and submandibular glands, small lesions (at FWHM 11 mm: below 18.8 mL);
    ``rc_below_0.5``: the recovery coefficient is < 0.5 (correction amplifies noise and model
    error); ``outside_spect_fov``: part of the region lies outside the SPECT field of view;
    ``empty``: no voxels (only with ``on_empty="flag"``); ``no_density``: no mass computed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from .errors import ConsistencyError, InputError
from .model import Administration, Segmentation, Timepoint
from .nuclides import get_nuclide
from .results import TAC_COLUMNS
from .timing import check_times_increasing
from .units import ML_PER_MM3

__all__ = ["TacRow", "extract_tacs", "tac_rows", "TAC_EXTRA_COLUMNS", "DEFAULT_SPECT_FWHM_MM", "RecoveryFunction"]

#: Columns added to :data:`LuDosimetryLib.results.TAC_COLUMNS` by this module.
TAC_EXTRA_COLUMNS = ("percent_injected_activity_decay_corrected", "recovery_rel_uncertainty")
#: Default reconstructed SPECT FWHM (mm) for the resolution flag: a typical value for 177Lu with a
#: medium-energy collimator and OSEM with resolution modelling. Pass the camera's measured value.
DEFAULT_SPECT_FWHM_MM = 12.0
#: volume (mL) → (recovery coefficient, its relative standard uncertainty).
RecoveryFunction = Callable[[float], tuple[float, float]]

Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class TacRow:
    """One region at one timepoint.

    Attributes
    ----------
    region, kind : str
        Region (or group) name and kind, as in the label table.
    cycle : int
    timepoint : str
    time_h : float
        Activity-weighted mid-acquisition time of the region's voxels (h p.i.).
    volume_mL, mass_g : float
        Region volume (mL) and CT mass (g; NaN without a density map).
    mean_conc_Bq_per_mL, max_conc_Bq_per_mL : float
        Mean and maximum concentration over the region (Bq/mL), at acquisition time.
    activity_Bq : float
        Σ concentration × voxel volume (Bq), at acquisition time, not recovery-corrected.
    percent_injected_activity : float
        ``100 · activity_Bq / injected activity`` at acquisition time (not decay-corrected).
    percent_injected_activity_decay_corrected : float
        The same, activity decay-corrected to injection.
    recovery_coefficient, recovery_rel_uncertainty : float
        From the recovery hook (1 and 0 without one).
    activity_corrected_Bq : float
        ``activity_Bq / recovery_coefficient`` (Bq).
    flags : tuple of str
    """

    region: str
    kind: str
    cycle: int
    timepoint: str
    time_h: float
    volume_mL: float
    mass_g: float
    mean_conc_Bq_per_mL: float
    max_conc_Bq_per_mL: float
    activity_Bq: float
    percent_injected_activity: float
    percent_injected_activity_decay_corrected: float
    recovery_coefficient: float
    recovery_rel_uncertainty: float
    activity_corrected_Bq: float
    flags: tuple[str, ...] = ()

    def as_dict(self) -> dict:
        """The row with the columns of ``TAC_COLUMNS`` + ``TAC_EXTRA_COLUMNS`` (flags ``;``-joined)."""
        d = {c: getattr(self, c) for c in (*TAC_COLUMNS, *TAC_EXTRA_COLUMNS)}
        d["flags"] = ";".join(self.flags)
        return d


def tac_rows(rows: Sequence[TacRow]) -> list[dict]:
    """TAC rows as dicts for :func:`LuDosimetryLib.results.write_csv` (``TAC_COLUMNS`` first)."""
    return [r.as_dict() for r in rows]


# --- helpers ----------------------------------------------------------------------------------
def _same_grid(a: sitk.Image, b: sitk.Image) -> bool:
    return (a.GetSize() == b.GetSize() and np.allclose(a.GetOrigin(), b.GetOrigin(), atol=1e-4)
            and np.allclose(a.GetSpacing(), b.GetSpacing(), rtol=1e-6)
            and np.allclose(a.GetDirection(), b.GetDirection(), atol=1e-6))


def _grid_text(img: sitk.Image) -> str:
    return (f"size {img.GetSize()}, spacing {tuple(round(s, 3) for s in img.GetSpacing())} mm, "
            f"origin {tuple(round(o, 2) for o in img.GetOrigin())} mm")


def _on(img: sitk.Image, grid: sitk.Image, interp: int, default: float = 0.0, dtype=np.float64) -> np.ndarray:
    """``img`` sampled on ``grid`` (same frame, identity transform) as an array [k, j, i] of ``dtype``."""
    if _same_grid(img, grid):
        return sitk.GetArrayFromImage(img).astype(dtype, copy=False)
    src = img if interp == sitk.sitkNearestNeighbor else sitk.Cast(img, sitk.sitkFloat64)
    out = sitk.GetArrayFromImage(sitk.Resample(src, grid, sitk.Transform(), interp, default))
    return out.astype(dtype, copy=False)


def _boxes(lab: np.ndarray) -> list:
    """Bounding slices of each label value (``ndimage.find_objects``), so that per-region work
    touches only the region's box (memory stays ~ the label map for clinical CT grids)."""
    return ndimage.find_objects(lab)


def _label_sums(lab: np.ndarray, boxes: list, values, weights: np.ndarray | None = None) -> dict[int, float]:
    """Σ 1 (voxel count) or Σ weights over the voxels of each label value."""
    out = {}
    for v in values:
        sl = boxes[v - 1] if v - 1 < len(boxes) else None
        if sl is None:
            out[v] = 0.0
            continue
        m = lab[sl] == v
        out[v] = float(m.sum()) if weights is None else float(weights[sl][m].sum(dtype=np.float64))
    return out


def _check_segmentation(seg: Segmentation) -> np.ndarray:
    if not isinstance(seg, Segmentation):
        raise InputError(f"expected a Segmentation (label map + table), got {type(seg).__name__}",
                         source="segmentation")
    img = seg.image
    if img.GetDimension() != 3 or img.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(f"label map must be a scalar 3D image, got dimension {img.GetDimension()} with "
                         f"{img.GetNumberOfComponentsPerPixel()} components", source="segmentation")
    arr = sitk.GetArrayFromImage(img)
    if not np.issubdtype(arr.dtype, np.integer):
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise InputError(f"label map must hold integer labels, got pixel type {img.GetPixelIDTypeAsString()} "
                             "with non-integer values", source="segmentation")
        arr = arr.astype(np.int32)
    known = {r.label for r in seg.table}
    present = set(np.unique(arr).tolist()) - {0}
    unknown = sorted(present - known)
    if unknown:
        raise ConsistencyError(f"label map holds label value(s) {unknown} that the label table does not define "
                               f"(table labels: {sorted(known)})", source="segmentation")
    return arr


def _regions(seg: Segmentation) -> list[tuple[str, str, tuple[int, ...]]]:
    """(name, kind, labels) of every leaf and every group (groups after their leaves)."""
    out = [(r.name, r.kind, (r.label,)) for r in seg.table]
    for g, leaves in seg.table.groups().items():
        kinds = {r.kind for r in leaves}
        out.append((g, kinds.pop() if len(kinds) == 1 else "organ", tuple(r.label for r in leaves)))
    return out


# --- region weights on the working grid ------------------------------------------------------
@dataclass(frozen=True, eq=False)
class _Weights:
    """Each leaf label's voxels on the working grid: flat indices and weights (volume fractions)."""

    grid: sitk.Image
    voxel_mL: float
    leaves: dict  # label -> (flat indices int64, weights float64)
    fine_volume_mL: dict  # label -> segmented volume on the label grid (mL)


def _fractional_weights(labels_arr: np.ndarray, seg_img: sitk.Image, spect: sitk.Image, values) -> _Weights:
    """Fraction of each SPECT voxel covered by each label (exact overlap, per label bounding box)."""
    from .density import average_onto_grid

    if not np.allclose(seg_img.GetDirection(), spect.GetDirection(), atol=1e-6):
        raise ConsistencyError("grid='fractional' needs the label map and the SPECT to share direction cosines "
                               f"(got {seg_img.GetDirection()} and {spect.GetDirection()}); use grid='labels'",
                               source="segmentation")
    v_fine = float(np.prod(seg_img.GetSpacing())) * ML_PER_MM3
    size = np.array(spect.GetSize())
    leaves, fine_vol = {}, {}
    objects = ndimage.find_objects(labels_arr)
    for v in values:
        sl = objects[v - 1] if v - 1 < len(objects) else None
        if sl is None:
            leaves[v] = (np.zeros(0, np.int64), np.zeros(0))
            fine_vol[v] = 0.0
            continue
        sub = (labels_arr[sl] == v).astype(np.float32)
        fine_vol[v] = float(sub.sum()) * v_fine
        start = [int(s.start) for s in sl][::-1]  # i, j, k
        stop = [int(s.stop) - 1 for s in sl][::-1]
        mimg = sitk.GetImageFromArray(sub)
        mimg.SetSpacing(seg_img.GetSpacing())
        mimg.SetDirection(seg_img.GetDirection())
        mimg.SetOrigin(seg_img.TransformIndexToPhysicalPoint(start))
        corners = [spect.TransformPhysicalPointToContinuousIndex(
            seg_img.TransformContinuousIndexToPhysicalPoint([a + sgn * 0.5 for a in idx]))
            for idx, sgn in ((start, -1), (stop, 1))]
        lo = np.clip(np.floor(np.minimum(*corners) + 0.5).astype(int), 0, size - 1)
        hi = np.clip(np.ceil(np.maximum(*corners) - 0.5).astype(int), 0, size - 1)
        if np.any(np.minimum(*corners) > size - 0.5) or np.any(np.maximum(*corners) < -0.5):
            leaves[v] = (np.zeros(0, np.int64), np.zeros(0))
            continue
        cg = sitk.Image([int(x) for x in hi - lo + 1], sitk.sitkFloat32)
        cg.SetSpacing(spect.GetSpacing())
        cg.SetDirection(spect.GetDirection())
        cg.SetOrigin(spect.TransformIndexToPhysicalPoint([int(x) for x in lo]))
        frac = sitk.GetArrayFromImage(average_onto_grid(mimg, cg)).astype(np.float64)
        kk, jj, ii = np.nonzero(frac > 0)
        flat = np.ravel_multi_index((kk + lo[2], jj + lo[1], ii + lo[0]), tuple(size[::-1]))
        leaves[v] = (flat.astype(np.int64), frac[kk, jj, ii])
    return _Weights(spect, float(np.prod(spect.GetSpacing())) * ML_PER_MM3, leaves, fine_vol)


def _indicator_weights(lab: np.ndarray, grid_img: sitk.Image, values, fine_vol, boxes: list | None = None) -> _Weights:
    boxes = _boxes(lab) if boxes is None else boxes
    leaves = {}
    for v in values:
        sl = boxes[v - 1] if v - 1 < len(boxes) else None
        if sl is None:
            leaves[v] = (np.zeros(0, np.int64), np.zeros(0))
            continue
        kk, jj, ii = np.nonzero(lab[sl] == v)
        idx = np.ravel_multi_index((kk + sl[0].start, jj + sl[1].start, ii + sl[2].start), lab.shape)
        leaves[v] = (idx.astype(np.int64), np.ones(idx.size))
    return _Weights(grid_img, float(np.prod(grid_img.GetSpacing())) * ML_PER_MM3, leaves, fine_vol)


def _weights_for(mode: str, labels_arr, seg_img: sitk.Image, spect: sitk.Image, values, boxes: list) -> _Weights:
    """Region weights on the working grid of ``mode``; ``boxes``: :func:`_boxes` of ``labels_arr``."""
    v_fine = float(np.prod(seg_img.GetSpacing())) * ML_PER_MM3
    counts = _label_sums(labels_arr, boxes, values)
    fine_vol = {v: counts[v] * v_fine for v in values}
    if mode == "fractional":
        return _fractional_weights(labels_arr, seg_img, spect, values)
    if mode == "labels":
        return _indicator_weights(labels_arr, seg_img, values, fine_vol, boxes)
    lab = _on(seg_img, spect, sitk.sitkNearestNeighbor, dtype=labels_arr.dtype)
    w = _indicator_weights(lab, spect, values, fine_vol)
    lost = [v for v in values if fine_vol[v] > 0 and w.leaves[v][0].size == 0]
    if lost:  # no SPECT voxel centre inside a (tiny) region: use its volume fractions instead
        frac = _fractional_weights(labels_arr, seg_img, spect, lost)
        w.leaves.update({v: frac.leaves[v] for v in lost})
    return w


# --- main -------------------------------------------------------------------------------------
def extract_tacs(timepoints: Sequence[Timepoint], segmentation: Segmentation, administration: Administration, *,
                 density: sitk.Image | None = None, recovery: RecoveryFunction | None = None,
                 spect_fwhm_mm: float = DEFAULT_SPECT_FWHM_MM, resolution_factor: float = 3.0,
                 cycle: int = 1, grid: str = "spect", on_empty: str = "error",
                 progress: Progress | None = None) -> list[TacRow]:
    """TACs of every region (leaves and groups) at every timepoint.

    Parameters
    ----------
    timepoints : sequence of Timepoint
        In time order, **already aligned**: SPECT (Bq/mL at acquisition time) and time maps in
        the reference frame (:func:`LuDosimetryLib.alignment.align_timepoint_images`), any grid.
    segmentation : Segmentation
        Label map on the reference CT grid and its table; groups (``kidney_left`` = cortex +
        pelvis) are reported beside their leaves (``kidney_cortex_left`` = without pelvis).
    administration : Administration
        For percent of injected activity and decay correction.
    density : SimpleITK.Image, optional
        Mass density (g/mL) in the reference frame (:func:`LuDosimetryLib.density.ct_to_density`
        of the reference CT), summed over the region's label voxels (resampled linearly onto the
        label grid if on another grid); without it ``mass_g`` is NaN and rows carry ``no_density``.
    recovery : callable, optional
        ``volume_mL → (coefficient, relative uncertainty)`` from the calibration stage.
    spect_fwhm_mm : float
        Reconstructed SPECT resolution (mm) for the ``below_resolution`` flag.
    resolution_factor : float
        Flag regions whose equivalent-sphere diameter is below this many FWHM.
    cycle : int
        Cycle index written in the rows.
    grid : {"fractional", "spect", "labels"}
        Working grid and region weights (module docstring).
    on_empty : {"error", "flag"}
        A table region without voxels raises :class:`InputError`, or gives rows flagged ``empty``
        (volume 0, other values NaN).
    progress : callable(fraction, message), optional

    Returns
    -------
    list of TacRow
        Timepoint-major: all regions (leaves in table order, then groups) of the first timepoint,
        then the next.
    """
    if grid not in ("fractional", "labels", "spect"):
        raise InputError(f"must be 'fractional', 'labels' or 'spect', got {grid!r}", source="grid")
    if on_empty not in ("error", "flag"):
        raise InputError(f"must be 'error' or 'flag', got {on_empty!r}", source="on_empty")
    if not timepoints:
        raise InputError("no timepoints given", source="timepoints")
    if not isinstance(administration, Administration):
        raise InputError(f"expected an Administration, got {type(administration).__name__}", source="administration")
    if not (spect_fwhm_mm > 0 and math.isfinite(spect_fwhm_mm)):
        raise InputError(f"must be a finite FWHM > 0 mm, got {spect_fwhm_mm}", source="spect_fwhm_mm")
    check_times_increasing([tp.time_h for tp in timepoints], source="timepoints time_h")
    labels_arr = _check_segmentation(segmentation)
    regions = _regions(segmentation)
    values = sorted({v for _, _, ls in regions for v in ls})
    report = progress or (lambda f, m: None)
    lam = get_nuclide(administration.nuclide).decay_constant_per_h
    ia = administration.injected_activity_Bq
    mass = None
    boxes = _boxes(labels_arr)
    if density is not None:
        rho = _on(density, segmentation.image, sitk.sitkLinear, dtype=np.float32)
        v_fine = float(np.prod(segmentation.image.GetSpacing())) * ML_PER_MM3
        mass = {v: m * v_fine for v, m in _label_sums(labels_arr, boxes, values, rho).items()}
        del rho

    rows: list[TacRow] = []
    cache: _Weights | None = None
    fov: dict[int, float] = {}
    fov_grid: sitk.Image | None = None
    for n, tp in enumerate(timepoints):
        report(n / len(timepoints), f"TACs at {tp.label}")
        spect = tp.spect
        if not isinstance(spect, sitk.Image) or spect.GetDimension() != 3:
            raise InputError("SPECT must be a 3D SimpleITK image in Bq/mL", source=f"timepoint {tp.label}")
        if tp.time_map_h is not None and not _same_grid(tp.time_map_h, spect):
            raise ConsistencyError(f"time map ({_grid_text(tp.time_map_h)}) is not on the SPECT grid "
                                   f"({_grid_text(spect)})", source=f"timepoint {tp.label}")
        if grid == "labels":
            conc = _on(spect, segmentation.image, sitk.sitkLinear, dtype=np.float32).ravel()
            tmap = (_on(tp.time_map_h, segmentation.image, sitk.sitkNearestNeighbor, default=float(tp.time_h)).ravel()
                    if tp.time_map_h is not None else None)
        else:
            conc = sitk.GetArrayFromImage(spect).astype(np.float64).ravel()
            tmap = (sitk.GetArrayFromImage(tp.time_map_h).astype(np.float64).ravel()
                    if tp.time_map_h is not None else None)
        if not np.all(np.isfinite(conc)):
            raise InputError("SPECT holds NaN or infinite concentrations", source=f"timepoint {tp.label}")
        work_grid = segmentation.image if grid == "labels" else spect
        if cache is None or not _same_grid(cache.grid, work_grid):
            cache = _weights_for(grid, labels_arr, segmentation.image, spect, values, boxes)
        if fov_grid is None or not _same_grid(fov_grid, spect):  # aligned timepoints share one SPECT grid
            fov, fov_grid = _fov_fraction(grid, cache, labels_arr, segmentation.image, spect, boxes), spect
        if not any(fov.get(v, 0.0) > 0 for v in values if cache.fine_volume_mL[v] > 0):
            raise ConsistencyError(f"the label map ({_grid_text(segmentation.image)}) does not overlap the SPECT "
                                   f"field of view ({_grid_text(spect)}): a segmentation on another frame?",
                                   source=f"timepoint {tp.label}")
        rows.extend(_rows_for(tp, regions, cache, conc, tmap, fov, mass, ia=ia, lam=lam, cycle=cycle,
                              recovery=recovery, fwhm=spect_fwhm_mm, factor=resolution_factor, on_empty=on_empty,
                              grid=grid))
    report(1.0, "TACs done")
    return rows


def _fov_fraction(mode: str, w: _Weights, labels_arr, seg_img, spect, boxes: list) -> dict[int, float]:
    """Fraction of each leaf's segmented volume inside the SPECT field of view (``boxes``: of ``labels_arr``)."""
    if mode == "fractional":
        return {v: (float(f.sum()) * w.voxel_mL / w.fine_volume_mL[v] if w.fine_volume_mL[v] else 0.0)
                for v, (_, f) in w.leaves.items()}
    ones = sitk.Image(spect.GetSize(), sitk.sitkUInt8) + 1
    ones.CopyInformation(spect)
    inside = _on(ones, seg_img, sitk.sitkNearestNeighbor, dtype=np.uint8)
    counts = _label_sums(labels_arr, boxes, w.leaves)
    counts_in = _label_sums(labels_arr, boxes, w.leaves, inside)
    return {v: (counts_in[v] / counts[v] if counts[v] else 0.0) for v in w.leaves}


def _rows_for(tp: Timepoint, regions, w: _Weights, conc, tmap, fov, mass, *, ia, lam, cycle, recovery, fwhm, factor,
              on_empty, grid) -> list[TacRow]:
    out = []
    for name, kind, ls in regions:
        idx = np.concatenate([w.leaves[v][0] for v in ls])
        wt = np.concatenate([w.leaves[v][1] for v in ls])
        seg_volume = sum(w.fine_volume_mL[v] for v in ls)
        if seg_volume == 0:
            if on_empty == "error":
                raise InputError(f"region {name!r} (label(s) {list(ls)}) has no voxels in the label map; remove it "
                                 "from the label table or pass on_empty='flag'", source="segmentation")
            nan = math.nan
            out.append(TacRow(name, kind, cycle, tp.label, nan, 0.0, nan, nan, nan, nan, nan, nan, nan, nan, nan,
                              ("empty",)))
            continue
        flags: list[str] = []
        c = conc[idx]
        a = float((wt * c).sum()) * w.voxel_mL
        volume = seg_volume
        summed_mL = float(wt.sum()) * w.voxel_mL
        in_fov = sum(fov[v] * w.fine_volume_mL[v] for v in ls) / seg_volume
        if in_fov < 0.999:
            flags.append("outside_spect_fov")
        if tmap is None:
            t = float(tp.time_h)
        else:
            tt = tmap[idx]
            aw = wt * np.clip(c, 0, None)
            t = float((aw * tt).sum() / aw.sum()) if aw.sum() > 0 else float((wt * tt).sum() / wt.sum())
        core = wt >= 0.5 if np.any(wt >= 0.5) else wt == wt.max()
        mx = float(c[core].max()) if c.size else math.nan
        m = sum(mass[v] for v in ls) if mass is not None else math.nan
        if mass is None:
            flags.append("no_density")
        d_eq = (6.0 * volume / ML_PER_MM3 / math.pi) ** (1.0 / 3.0)
        if d_eq < factor * fwhm:
            flags.append("below_resolution")
        rc, rc_u = 1.0, 0.0
        if recovery is not None:
            rc, rc_u = (float(x) for x in recovery(volume))
            if not (rc > 0 and math.isfinite(rc) and rc_u >= 0 and math.isfinite(rc_u)):
                raise InputError(f"recovery hook returned ({rc}, {rc_u}) for {volume:.3g} mL; expected a coefficient "
                                 "> 0 and a relative uncertainty ≥ 0", source=f"recovery, region {name}")
            if rc < 0.5:
                flags.append("rc_below_0.5")
        pct = 100.0 * a / ia
        mean_conc = a / summed_mL if summed_mL > 0 else math.nan
        out.append(TacRow(name, kind, cycle, tp.label, t, volume, m, mean_conc, mx, a, pct,
                          pct * math.exp(lam * t), rc, rc_u, a / rc, tuple(flags)))
    return out
