"""Grids of the dose stage: images or arrays in, one checked voxel grid out.

Dose-stage functions accept a SimpleITK image (geometry in LPS) or a numpy array indexed
[k, j, i]. :func:`as_voxels` turns either into an array plus its :class:`Grid` (None for a bare
array); :func:`check_same_grid` refuses maps that do not lie on the same voxels, naming both
grids, so that a density or label map resampled elsewhere can never be paired voxel by voxel
with a dose map by mistake.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from ..errors import ConsistencyError, InputError
from ..units import ML_PER_MM3

__all__ = ["Grid", "as_voxels", "check_same_grid", "voxel_volume_mL_of", "image_like", "crop_to_labels"]

#: Relative tolerance on spacing, origin and direction when comparing grids (float32 headers).
_GRID_RTOL = 1e-5


@dataclass(frozen=True)
class Grid:
    """Geometry of a voxel grid: array shape [k, j, i] and ITK geometry (LPS, mm).

    ``spacing_mm``, ``origin_mm`` and ``direction`` are None for a bare numpy array.
    """

    shape: tuple[int, ...]
    spacing_mm: tuple[float, ...] | None = None
    origin_mm: tuple[float, ...] | None = None
    direction: tuple[float, ...] | None = None

    @property
    def voxel_volume_mL(self) -> float | None:
        """Volume of one voxel (mL), or None without spacing."""
        return None if self.spacing_mm is None else float(np.prod(self.spacing_mm)) * ML_PER_MM3

    def describe(self) -> str:
        """Short text for error messages."""
        if self.spacing_mm is None:
            return f"array of shape {self.shape}"
        fmt = ", ".join
        return (f"shape {self.shape} (k, j, i), spacing ({fmt(f'{s:g}' for s in self.spacing_mm)}) mm, "
                f"origin ({fmt(f'{o:g}' for o in self.origin_mm)}) mm")


def as_voxels(data: sitk.Image | np.ndarray, name: str, *, dtype=None) -> tuple[np.ndarray, Grid]:
    """Array view of an image or array and its grid.

    Parameters
    ----------
    data : SimpleITK.Image or numpy.ndarray
        3-D image (LPS) or array indexed [k, j, i].
    name : str
        Parameter name used in error messages.
    dtype : numpy dtype, optional
        Convert to this dtype (a copy only when needed).

    Returns
    -------
    (numpy.ndarray, Grid)
        The voxel values (never a view that the caller may write into the input) and the grid.
    """
    if isinstance(data, sitk.Image):
        if data.GetDimension() != 3 or data.GetNumberOfComponentsPerPixel() != 1:
            raise InputError(f"expected a 3-D scalar image, got dimension {data.GetDimension()} with "
                             f"{data.GetNumberOfComponentsPerPixel()} component(s)", source=name)
        arr = sitk.GetArrayViewFromImage(data)
        grid = Grid(tuple(arr.shape), tuple(data.GetSpacing()), tuple(data.GetOrigin()), tuple(data.GetDirection()))
    elif isinstance(data, np.ndarray):
        if data.ndim != 3:
            raise InputError(f"expected a 3-D array [k, j, i], got {data.ndim} dimension(s)", source=name)
        arr = data
        grid = Grid(tuple(arr.shape))
    else:
        raise InputError(f"expected a SimpleITK.Image or numpy.ndarray, got {type(data).__name__}", source=name)
    if dtype is not None and arr.dtype != dtype:
        arr = arr.astype(dtype)
    return arr, grid


def _close(a, b) -> bool:
    return all(math.isclose(x, y, rel_tol=_GRID_RTOL, abs_tol=_GRID_RTOL) for x, y in zip(a, b, strict=True))


def check_same_grid(reference: Grid, other: Grid, *, reference_name: str, other_name: str) -> None:
    """Raise :class:`ConsistencyError` unless ``other`` lies on the voxels of ``reference``.

    Shapes must match; where both carry geometry, spacing, origin and direction must too.
    """
    same = reference.shape == other.shape
    if same and reference.spacing_mm is not None and other.spacing_mm is not None:
        same = (_close(reference.spacing_mm, other.spacing_mm) and _close(reference.origin_mm, other.origin_mm)
                and _close(reference.direction, other.direction))
    if not same:
        raise ConsistencyError(f"is on another grid: {other.describe()}; expected the grid of {reference_name}: "
                               f"{reference.describe()} (resample it onto the dose grid first)", source=other_name)


def voxel_volume_mL_of(grid: Grid, voxel_volume_mL: float | None, *, name: str) -> float:
    """The voxel volume (mL): from the image spacing, or the given value for bare arrays.

    Where both exist they must agree (relative 1e-5).
    """
    from_grid = grid.voxel_volume_mL
    if voxel_volume_mL is None:
        if from_grid is None:
            raise InputError("voxel_volume_mL is required when the maps are numpy arrays "
                             "(a SimpleITK image carries its spacing)", source=name)
        return from_grid
    v = float(voxel_volume_mL)
    if not (math.isfinite(v) and v > 0):
        raise InputError(f"voxel_volume_mL must be finite and > 0 mL, got {voxel_volume_mL!r}", source=name)
    if from_grid is not None and not math.isclose(v, from_grid, rel_tol=_GRID_RTOL):
        raise ConsistencyError(f"voxel_volume_mL = {v:g} mL disagrees with the image spacing "
                               f"({from_grid:g} mL)", source=name)
    return v


def image_like(array: np.ndarray, reference: sitk.Image | np.ndarray) -> sitk.Image | np.ndarray:
    """Return ``array`` as the type of ``reference``: an image with its geometry, or the array."""
    if isinstance(reference, sitk.Image):
        img = sitk.GetImageFromArray(array)
        img.CopyInformation(reference)
        return img
    return array


def crop_to_labels(labels: sitk.Image, *images: sitk.Image) -> tuple[sitk.Image, ...]:
    """``labels`` and ``images`` (same grid) cut to the bounding box of the non-zero labels.

    The regional quantities read labelled voxels only: resampling a map onto this box instead of
    the whole label grid skips the air and unlabelled tissue around the regions (two thirds of a
    clinical analysis grid). The crops keep their voxels' positions (origin moved); a label map
    without labels is returned whole.
    """
    for i, img in enumerate(images):
        if img.GetSize() != labels.GetSize():
            raise ConsistencyError(f"image {i + 1} has size {img.GetSize()}, the label map {labels.GetSize()}; "
                                   "expected the same grid", source="crop_to_labels")
    on = sitk.GetArrayViewFromImage(labels) != 0
    spans = []
    for axis in range(3):  # array axes k, j, i
        hit = np.flatnonzero(on.any(axis=tuple(a for a in range(3) if a != axis)))
        if not hit.size:
            return (labels, *images)
        spans.append((int(hit[0]), int(hit[-1]) + 1))
    if all(lo == 0 and hi == n for (lo, hi), n in zip(spans, on.shape)):
        return (labels, *images)
    (k0, k1), (j0, j1), (i0, i1) = spans
    return tuple(img[i0:i1, j0:j1, k0:k1] for img in (labels, *images))
