"""Region TACs from the PET images: labels brought onto the PET grids, fields of view checked.

The segmentation lives on the SPECT/CT reference grid. Each PET grid (the single-bed dynamic
frames, the whole-body static) gets the label map by nearest-neighbour resampling through the
transform that maps PET points to reference points (SimpleITK resampling convention; the inverse
of the SPECT/CT → PET/CT registration; identity when the PET and the reference share the patient
frame). A region's share of its volume inside a grid is its field-of-view fraction. The dynamic
acquisition (one bed, ~26 cm) states per region ``covered`` (≥ ``FULL_COVERAGE_FRACTION``, 95 %),
``partly`` (≥ ``min_dynamic_fov_fraction``, 5 %: the mean over its voxels inside the bed gives its
kinetics, flag ``dynamic_fov_partial``) or ``not``; the static is used above
``min_static_fov_fraction`` (:class:`~.parameters.PredictionParameters`). Regions in neither are
skipped (flag ``outside_pet_fov``, a warning), regions in the static only are predicted from the
static (flag ``outside_dynamic_fov`` or ``no_dynamic_frames``). (Before, a region needed 95 % of its
volume in the bed: the liver at 85 %, L5 at 75 % and the red marrow at 12 % fell back to the static
with the 13 regions that lie wholly outside the bed, 16–17 of 33 regions in all.) Composite groups (``kidney_left``
= cortex + pelvis) get their own TAC over the union of their leaves.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..model import PetStudy, Segmentation
from ..partial_volume import GTM_SUBDIVISION, gtm_correct, gtm_matrix, labels_on_grid
from ..partial_volume import subdivided_grid as _subdivided
from ..timing import DecayState
from ..units import ML_PER_MM3
from .decay import BiologicalTac, PetTac, to_biological
from .parameters import FULL_COVERAGE_FRACTION, PredictionParameters

__all__ = ["RegionFov", "RegionSet", "region_sets", "labels_on_grid", "region_pet_tacs", "biological_tacs",
           "gtm_matrix", "gtm_correct"]


@dataclass(frozen=True)
class RegionSet:
    """A reported region: a leaf or a group of leaves (label values)."""

    name: str
    kind: str
    labels: tuple[int, ...]
    group: str = ""


@dataclass(frozen=True)
class RegionFov:
    """Where a region is: volume (mL) on the reference grid, fractions inside the PET grids, decision."""

    region: str
    volume_mL: float
    dynamic_fraction: float
    static_fraction: float
    uses: str  # "dynamic+static", "dynamic", "static", "none"
    dynamic_coverage: str = ""  # "covered", "partly", "not"


def region_sets(segmentation: Segmentation, *, kinds: Sequence[str] = ("organ", "lesion"),
                groups: bool = True) -> tuple[RegionSet, ...]:
    """Leaves of the given kinds, then their groups (``kidney_left`` …)."""
    out = [RegionSet(r.name, r.kind, (r.label,), r.group) for r in segmentation.table if r.kind in kinds]
    if groups:
        for g, leaves in segmentation.table.groups().items():
            if any(r.kind in kinds for r in leaves):
                out.append(RegionSet(g, leaves[0].kind, tuple(r.label for r in leaves), g))
    return tuple(out)




def _voxel_mL(image) -> float:
    sp = image.GetSpacing()
    return float(sp[0] * sp[1] * sp[2]) * ML_PER_MM3


def _label_sums(lab: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    return np.bincount(lab.ravel(), weights=values.ravel().astype(np.float64), minlength=n)[:n]


def region_pet_tacs(study: PetStudy, segmentation: Segmentation, *, transform=None,
                    params: PredictionParameters | None = None, decay_state: DecayState | str = DecayState.ACQUISITION,
                    regions: Sequence[RegionSet] | None = None,
                    warn: Callable[..., None] | None = None) -> tuple[dict[str, list[PetTac]], dict[str, RegionFov]]:
    """Mean PET concentration per region and frame, with field-of-view decisions.

    Parameters
    ----------
    study : PetStudy
        Frames in ``decay_state`` (ingest delivers NONE, at acquisition time). For START the
        reference is each series' start (the first dynamic frame's start; the static's start).
    segmentation : Segmentation
        Label map + table on the reference grid.
    transform : SimpleITK.Transform, optional
        Maps PET points to reference points.
    regions : sequence of RegionSet, optional
        Default :func:`region_sets` (organs and lesions, with groups).
    warn : callable, optional
        ``warn(message, source=...)``.

    Returns
    -------
    tacs : dict
        Region → list of :class:`PetTac` (dynamic and/or static); regions outside both FoVs absent.
    fov : dict
        Region → :class:`RegionFov` (all regions).

    Raises
    ------
    InputError
        A study with neither dynamic frames nor a static.
    """
    import SimpleITK as sitk

    p = params or PredictionParameters()
    if not study.dynamic_frames and study.static is None:
        raise InputError("PET study has neither dynamic frames nor a static frame", source="PET study")
    regs = tuple(regions) if regions is not None else region_sets(segmentation)
    ref = sitk.GetArrayViewFromImage(segmentation.image).astype(np.int64)
    n = int(ref.max()) + 1
    ref_voxels = np.bincount(ref.ravel(), minlength=n)[:n]
    ref_counts = ref_voxels * _voxel_mL(segmentation.image)
    nuclide = study.administration.nuclide

    inverse = None
    if transform is not None:
        try:
            inverse = transform.GetInverse()
        except RuntimeError:
            raise InputError("the PET → reference transform is not invertible; the field-of-view check needs its "
                             "inverse", source="transform") from None

    def grid_stats(frames):
        lab = labels_on_grid(segmentation.image, frames[0].image, transform)
        counts = np.bincount(lab.ravel(), minlength=n)[:n]
        if p.pet_recovery == "gtm":
            # subdivided grid (8× the PET voxels: 84 M on the clinical static) kept as resampled (uint32),
            # not copied to int64: only compared with label values
            fine = labels_on_grid(segmentation.image, _subdivided(frames[0].image, GTM_SUBDIVISION), transform,
                                  dtype=np.uint32)
            ids, true = gtm_correct(lab, [sitk.GetArrayViewFromImage(f.image) for f in frames],
                                    frames[0].image.GetSpacing(), float(p.pet_fwhm_mm), fine_labels=fine,
                                    factor=GTM_SUBDIVISION)
            full = np.zeros((len(frames), n))
            full[:, ids[ids < n]] = true[:, ids < n]
            sums = full * counts  # corrected mean × voxels: the sums below divide by the counts again
        else:
            sums = [_label_sums(lab, sitk.GetArrayViewFromImage(f.image), n) for f in frames]
        # volume of each region inside this grid, on the reference grid: reference voxels whose
        # centre maps inside the PET grid (exact to a reference voxel, unlike counts of resampled labels)
        ones = sitk.Image(frames[0].image.GetSize(), sitk.sitkUInt8) + 1
        ones.CopyInformation(frames[0].image)
        tx = inverse if inverse is not None else sitk.Transform(3, sitk.sitkIdentity)
        inside = sitk.GetArrayFromImage(sitk.Resample(ones, segmentation.image, tx, sitk.sitkNearestNeighbor, 0))
        # counted over the smaller side (a whole-body static covers ~all of a 34 M-voxel clinical grid)
        mask = inside > 0
        if 2 * int(np.count_nonzero(mask)) > mask.size:
            n_in = ref_voxels - np.bincount(ref[~mask], minlength=n)[:n]
        else:
            n_in = np.bincount(ref[mask], minlength=n)[:n]
        vol_in = n_in * _voxel_mL(segmentation.image)
        return vol_in, counts, np.array(sums)

    dyn = grid_stats(study.dynamic_frames) if study.dynamic_frames else None
    stat = grid_stats([study.static]) if study.static is not None else None
    if dyn is None and warn is not None:
        warn("no dynamic frames: static-only prediction (uptake rates from the population table; "
             "flag no_dynamic_frames)", source="PET study")
    tacs: dict[str, list[PetTac]] = {}
    fov: dict[str, RegionFov] = {}
    for rs in regs:
        ids = [i for i in rs.labels if i < n]
        vol = float(ref_counts[ids].sum()) if ids else 0.0
        if vol <= 0:
            raise InputError(f"region {rs.name} has no voxels in the segmentation", source="segmentation")
        fd = float(dyn[0][ids].sum() / vol) if dyn is not None else 0.0
        fs = float(stat[0][ids].sum() / vol) if stat is not None else 0.0
        # a sliver inside a grid that holds no PET voxel of the region (nearest neighbour) has no mean there
        use_dyn = dyn is not None and fd >= p.min_dynamic_fov_fraction and dyn[1][ids].sum() > 0
        use_stat = stat is not None and fs >= p.min_static_fov_fraction and stat[1][ids].sum() > 0
        flags = []
        if not use_dyn:
            flags.append("no_dynamic_frames" if dyn is None else "outside_dynamic_fov")
        elif fd < FULL_COVERAGE_FRACTION:
            flags.append("dynamic_fov_partial")
        coverage = "not" if not use_dyn else ("covered" if fd >= FULL_COVERAGE_FRACTION else "partly")
        series = []
        if use_dyn:
            cnt = dyn[1][ids].sum()
            conc = dyn[2][:, ids].sum(axis=1) / cnt
            starts = np.array([f.start_h for f in study.dynamic_frames])
            series.append(PetTac(rs.name, rs.kind, starts, [f.duration_h for f in study.dynamic_frames], conc,
                                 decay_state, series_start_h=float(starts[0]), frame_source=("dynamic",) * len(starts),
                                 nuclide=nuclide, frame_values=p.frame_values, volume_mL=vol, flags=tuple(flags)))
        if use_stat:
            cnt = stat[1][ids].sum()
            conc = stat[2][:, ids].sum(axis=1) / cnt
            series.append(PetTac(rs.name, rs.kind, [study.static.start_h], [study.static.duration_h], conc,
                                 decay_state, series_start_h=float(study.static.start_h), frame_source=("static",),
                                 nuclide=nuclide, frame_values=p.frame_values, volume_mL=vol, flags=tuple(flags)))
        uses = "+".join(s for s, u in (("dynamic", use_dyn), ("static", use_stat)) if u) or "none"
        fov[rs.name] = RegionFov(rs.name, vol, fd, fs, uses, coverage)
        if not series:
            if warn is not None:
                warn(f"outside both PET fields of view (dynamic {fd:.0%}, static {fs:.0%} of its volume): skipped, "
                     "no prediction (flag outside_pet_fov)", source=rs.name)
            continue
        tacs[rs.name] = series
    return tacs, fov


def biological_tacs(tacs: dict[str, list[PetTac]], injected_activity_Bq: float) -> list[BiologicalTac]:
    """Each region's series made biological (:func:`~.decay.to_biological`) and joined in time order."""
    out = []
    for series in tacs.values():
        bios = [to_biological(s, injected_activity_Bq) for s in series]
        t = np.concatenate([b.time_h for b in bios])
        order = np.argsort(t, kind="stable")
        f = np.concatenate([b.fraction_per_mL for b in bios])[order]
        src = tuple(np.array(sum((b.frame_source for b in bios), ()))[order].tolist())
        starts = np.concatenate([b.start_h for b in bios])[order]
        durs = np.concatenate([b.duration_h for b in bios])[order]
        out.append(BiologicalTac(bios[0].region, bios[0].kind, t[order], f, src, bios[0].volume_mL, bios[0].flags,
                                 starts, durs))
    return out
