"""Volumes of interest for phantom scans: the phantom from its CT, spheres, margins, field of view.

Shared by :mod:`.sensitivity` and :mod:`.recovery`. Masks are boolean numpy arrays indexed
[k, j, i] on the SPECT grid; positions are LPS millimetres.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from ..errors import InputError
from ..units import ML_PER_MM3

__all__ = ["voxel_centres_mm", "voxel_volume_mL", "phantom_mask_from_ct", "sphere_mask", "sphere_weights",
           "ball_structure", "distance_to_fov_edge_mm", "PHANTOM_HU_THRESHOLD"]

#: CT threshold (HU) between air and the phantom's water/plastic.
PHANTOM_HU_THRESHOLD = -500.0


def voxel_centres_mm(image: sitk.Image) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """LPS coordinates (x, y, z) of every voxel centre (mm), each shaped like the [k, j, i] array."""
    size = image.GetSize()
    idx = np.stack(np.meshgrid(np.arange(size[2]), np.arange(size[1]), np.arange(size[0]), indexing="ij"), axis=-1)
    d = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)
    sp = np.asarray(image.GetSpacing(), dtype=float)
    org = np.asarray(image.GetOrigin(), dtype=float)
    ijk = idx[..., ::-1].astype(float)  # (i, j, k)
    pts = org + (ijk * sp) @ d.T
    return pts[..., 0], pts[..., 1], pts[..., 2]


def voxel_volume_mL(image: sitk.Image) -> float:
    """Volume of one voxel (mL)."""
    return float(np.prod(image.GetSpacing())) * ML_PER_MM3


def phantom_mask_from_ct(ct: sitk.Image, reference: sitk.Image, *, threshold_HU: float = PHANTOM_HU_THRESHOLD,
                         source: str = "CT") -> np.ndarray:
    """The phantom (largest connected component above ``threshold_HU``) on ``reference``'s grid.

    The CT is resampled onto the SPECT grid (linear interpolation, air outside the CT) before
    thresholding, so the mask is what the SPECT voxels see.

    Raises
    ------
    InputError
        If nothing in the CT is above the threshold.
    """
    res = sitk.Resample(ct, reference, sitk.Transform(), sitk.sitkLinear, -1000.0, sitk.sitkFloat32)
    above = sitk.GetArrayViewFromImage(res) > threshold_HU
    lab, n = ndimage.label(above)
    if n == 0:
        raise InputError(f"no voxel above {threshold_HU:g} HU on the SPECT grid: no phantom found", source=source)
    sizes = np.bincount(lab.ravel())[1:]
    return lab == (1 + int(np.argmax(sizes)))


def sphere_mask(image: sitk.Image, centre_mm: tuple[float, float, float], radius_mm: float) -> np.ndarray:
    """Voxels whose centre lies within ``radius_mm`` of ``centre_mm`` (LPS)."""
    x, y, z = voxel_centres_mm(image)
    c = np.asarray(centre_mm, dtype=float)
    return (x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2 <= radius_mm ** 2


def sphere_weights(image: sitk.Image, centre_mm: tuple[float, float, float], radius_mm: float, *,
                   subsamples: int = 5) -> np.ndarray:
    """Fraction of each voxel inside a sphere (0–1), by ``subsamples``³ points per voxel.

    Only the voxels within one voxel diagonal of the surface are subsampled.
    """
    x, y, z = voxel_centres_mm(image)
    c = np.asarray(centre_mm, dtype=float)
    r2 = (x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2
    sp = np.asarray(image.GetSpacing(), dtype=float)
    half_diag = 0.5 * float(np.linalg.norm(sp))
    w = (r2 <= max(radius_mm - half_diag, 0.0) ** 2).astype(np.float64)
    edge = (r2 > max(radius_mm - half_diag, 0.0) ** 2) & (r2 < (radius_mm + half_diag) ** 2)
    if edge.any():
        d = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)
        ex, ey, ez = x[edge], y[edge], z[edge]
        offs = (np.arange(subsamples) + 0.5) / subsamples - 0.5
        acc = np.zeros(ex.shape)
        for oi in offs:
            for oj in offs:
                for ok in offs:
                    dv = d @ (np.array([oi, oj, ok]) * sp)
                    acc += ((ex + dv[0] - c[0]) ** 2 + (ey + dv[1] - c[1]) ** 2 + (ez + dv[2] - c[2]) ** 2
                            <= radius_mm ** 2)
        w[edge] = acc / subsamples ** 3
    return w


def ball_structure(radius_mm: float, spacing_mm: tuple[float, float, float]) -> np.ndarray:
    """A boolean ball of ``radius_mm`` on a grid of ``spacing_mm`` (x, y, z), indexed [k, j, i]."""
    sx, sy, sz = spacing_mm
    r = [max(int(np.floor(radius_mm / s)), 0) for s in (sz, sy, sx)]
    k, j, i = np.ogrid[-r[0]:r[0] + 1, -r[1]:r[1] + 1, -r[2]:r[2] + 1]
    return (k * sz) ** 2 + (j * sy) ** 2 + (i * sx) ** 2 <= radius_mm ** 2 + 1e-9


def distance_to_fov_edge_mm(mask: np.ndarray, spacing_mm: tuple[float, float, float]) -> dict[str, float]:
    """Distance (mm) from the mask to each face of the grid: ``{"inferior": …, "superior": …, …}``.

    Faces are named in LPS for an axial grid: k low/high = inferior/superior, j low/high =
    anterior/posterior, i low/high = right/left. Distance from the outermost mask voxel centre to
    the outermost voxel centre of the grid (0: the mask touches the edge).
    """
    sx, sy, sz = spacing_mm
    out = {}
    for axis, (low, high), s in ((0, ("inferior", "superior"), sz), (1, ("anterior", "posterior"), sy),
                                 (2, ("right", "left"), sx)):
        proj = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))
        n = mask.shape[axis]
        out[low] = float(proj[0] * s) if proj.size else float("inf")
        out[high] = float((n - 1 - proj[-1]) * s) if proj.size else float("inf")
    return out
