"""Stitch SPECT beds exported as separate series onto one grid, each bed keeping its own time.

Beds share orientation and in-plane grid (otherwise each is resampled, linearly, onto the first
bed's in-plane grid). Along the axial (k) direction the stitched grid covers the union of the
beds. In an overlap each bed is weighted by its relative axial sensitivity: a linear ramp from
0 at the bed's axial edge to 1 at ``taper_mm`` inside it (default: the overlap length), the
usual model of the fall-off of a parallel-hole camera's sensitivity at the edge of its field of
view. The value of a voxel is ``Σ w_b c_b / Σ w_b`` and its time (``Timepoint.time_map_h``) is
``Σ w_b t_b / Σ w_b``: both stay at each bed's own acquisition time outside the overlaps.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import ConsistencyError
from .geometry import Grid, grid_of, image_from_array

__all__ = ["StitchedVolume", "axial_weights", "stitch_beds"]


@dataclass(frozen=True, eq=False)
class StitchedVolume:
    """The stitched image (Bq/mL), its time map (h p.i.; None if every bed has the same time) and
    each bed's axial field of view (mm along the slice normal, outer slice edges)."""

    image: object
    time_map_h: object | None
    bed_extents_mm: tuple[tuple[float, float], ...]


def axial_weights(z_mm: np.ndarray, lo_mm: float, hi_mm: float, taper_mm: float) -> np.ndarray:
    """Relative axial sensitivity of a bed covering [lo, hi] (mm) at positions ``z_mm``.

    Linear ramp 0 → 1 over ``taper_mm`` from each edge (a half voxel beyond the outermost
    slice centres), 0 outside; a bed always weighs > 0 on its own slices.
    """
    z = np.asarray(z_mm, dtype=float)
    inside = (z >= lo_mm - 1e-6) & (z <= hi_mm + 1e-6)
    if taper_mm <= 0:
        return inside.astype(float)
    d = np.minimum(z - lo_mm, hi_mm - z)
    w = np.clip((d + 0.5) / taper_mm, 0.0, 1.0)  # +0.5 mm keeps edge slices > 0
    return np.where(inside, np.maximum(w, 1e-6), 0.0)


def stitch_beds(images: Sequence, times_h: Sequence[float], *, taper_mm: float | None = None,
                progress: Callable[[float, str], None] | None = None) -> StitchedVolume:
    """Stitch bed images (Bq/mL) along their slice axis.

    Parameters
    ----------
    images : sequence of SimpleITK.Image
        One per bed, same direction; float32 Bq/mL at each bed's acquisition time.
    times_h : sequence of float
        Mid-acquisition time of each bed (h p.i.).
    taper_mm : float, optional
        Length of the sensitivity ramp (mm); default the overlap length of each pair of beds.
    progress : callable, optional

    Returns
    -------
    StitchedVolume

    Raises
    ------
    ConsistencyError
        Different orientations, or slice spacings that differ by more than 1 %.
    """
    import SimpleITK as sitk

    if len(images) != len(times_h) or not images:
        raise ConsistencyError(f"{len(images)} bed images but {len(times_h)} times", source="beds")
    ref = grid_of(images[0])
    D = np.asarray(ref.direction).reshape(3, 3)
    n = D[:, 2]
    for b, im in enumerate(images[1:], start=2):
        g = grid_of(im)
        if np.max(np.abs(np.asarray(g.direction) - ref.direction)) > 1e-4:
            raise ConsistencyError(f"bed {b} has direction {g.direction}, bed 1 {ref.direction}; beds must share "
                                   "their orientation", source="beds")
        if abs(g.spacing_mm[2] - ref.spacing_mm[2]) > 0.01 * ref.spacing_mm[2]:
            raise ConsistencyError(f"bed {b} slice spacing {g.spacing_mm[2]} mm ≠ bed 1 {ref.spacing_mm[2]} mm",
                                   source="beds")
    dz = ref.spacing_mm[2]
    o0 = np.asarray(ref.origin_mm)
    z0s = [float((np.asarray(im.GetOrigin()) - o0) @ n) for im in images]
    extents = [(z, z + (im.GetSize()[2] - 1) * dz) for z, im in zip(z0s, images)]
    zmin = min(e[0] for e in extents)
    zmax = max(e[1] for e in extents)
    nk = round((zmax - zmin) / dz) + 1
    origin = o0 + zmin * n
    out_grid = Grid(tuple(origin.tolist()), ref.spacing_mm, ref.direction, (ref.size[0], ref.size[1], nk))
    z = zmin + dz * np.arange(nk)
    # bed order along z for the default taper (overlap with neighbours)
    num = np.zeros((nk, ref.size[1], ref.size[0]), dtype=np.float64)
    wsum = np.zeros(nk, dtype=np.float64)
    tnum = np.zeros(nk, dtype=np.float64)
    template = image_from_array(np.zeros((nk, ref.size[1], ref.size[0]), np.float32), out_grid)
    for b, (im, t, (lo, hi)) in enumerate(zip(images, times_h, extents)):
        if taper_mm is None:
            ov = [min(hi, h2) - max(lo, l2) for j, (l2, h2) in enumerate(extents) if j != b]
            ov = [o for o in ov if o > 0]
            taper = max(ov) if ov else 0.0
        else:
            taper = float(taper_mm)
        w = axial_weights(z, lo, hi, taper)
        res = sitk.Resample(sitk.Cast(im, sitk.sitkFloat32), template, sitk.Transform(), sitk.sitkLinear, 0.0,
                            sitk.sitkFloat32)
        arr = sitk.GetArrayViewFromImage(res)
        num += w[:, None, None] * arr
        wsum += w
        tnum += w * t
        if progress:
            progress((b + 1) / len(images), f"stitched bed {b + 1}/{len(images)}")
    covered = wsum > 0
    img_arr = np.zeros_like(num, dtype=np.float32)
    img_arr[covered] = (num[covered] / wsum[covered, None, None]).astype(np.float32)
    image = image_from_array(img_arr, out_grid)
    tm = None
    if max(times_h) - min(times_h) > 1.0 / 3600.0:
        tz = np.where(covered, tnum / np.where(covered, wsum, 1.0), np.nan)
        # slices in a gap between beds take the time of the nearest covered slice
        if not covered.all():
            idx = np.flatnonzero(covered)
            nearest = idx[np.abs(np.arange(nk)[:, None] - idx[None, :]).argmin(axis=1)]
            tz = tz[nearest]
        tm_arr = np.broadcast_to(tz[:, None, None], num.shape).astype(np.float32)
        tm = image_from_array(tm_arr, out_grid)
    ext_mm = tuple((float(lo + o0 @ n - dz / 2), float(hi + o0 @ n + dz / 2)) for lo, hi in extents)
    return StitchedVolume(image, tm, ext_mm)
