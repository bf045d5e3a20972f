"""Geometry conversions between Slicer (RAS) and ITK/DICOM/LuDosimetryLib (LPS), numpy only.

- A point (x, y, z) in LPS is (−x, −y, z) in RAS: ``RAS = F · LPS`` with ``F = diag(−1, −1, 1)``.
- A SimpleITK image maps index (i, j, k) to LPS by ``origin + direction · diag(spacing) · ijk``;
  Slicer's IJKToRAS matrix is ``F`` applied to that affine.
- ``slicer.util.arrayFromVolume`` and ``sitk.GetArrayFromImage`` both index arrays ``[k, j, i]``.
- A SimpleITK registration transform T maps points of the *fixed* (reference) space to the
  *moving* space (it is what resampling uses). A Slicer transform node stores the transform
  *to parent*; a moving node placed under it is shown aligned to the fixed one when the node's
  to-parent transform maps moving → fixed, i.e. ``T⁻¹`` (converted to RAS). Slicer resamples with
  the inverse of to-parent, which is ``T`` again.
"""

from __future__ import annotations

import numpy as np

__all__ = ["LPS_TO_RAS", "ijk_to_ras_from_geometry", "geometry_from_ijk_to_ras", "lps_matrix_to_ras",
           "transform_to_parent_ras_from_fixed_to_moving_lps", "affine_from_sitk_transform"]

#: Flips x and y: LPS ↔ RAS for points (its own inverse).
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def ijk_to_ras_from_geometry(origin_lps, spacing, direction_lps) -> np.ndarray:
    """4×4 IJKToRAS matrix of a volume node from a SimpleITK image's LPS geometry.

    Parameters
    ----------
    origin_lps : sequence of 3 float
        Physical position of voxel (0, 0, 0) in LPS (mm).
    spacing : sequence of 3 float
        Voxel size along i, j, k (mm).
    direction_lps : sequence of 9 float
        Direction cosines, row-major (SimpleITK's ``GetDirection()``).
    """
    m = np.eye(4)
    m[:3, :3] = np.asarray(direction_lps, float).reshape(3, 3) @ np.diag(np.asarray(spacing, float))
    m[:3, 3] = np.asarray(origin_lps, float)
    return LPS_TO_RAS @ m


def geometry_from_ijk_to_ras(ijk_to_ras) -> tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]:
    """(origin_lps, spacing, direction_lps row-major) from a 4×4 IJKToRAS matrix."""
    m = LPS_TO_RAS @ np.asarray(ijk_to_ras, float)
    cols = m[:3, :3]
    spacing = np.linalg.norm(cols, axis=0)
    if np.any(spacing <= 0):
        raise ValueError(f"IJKToRAS matrix has a zero-length axis: spacing {spacing.tolist()}")
    direction = cols / spacing
    return tuple(m[:3, 3].tolist()), tuple(spacing.tolist()), tuple(direction.ravel().tolist())


def lps_matrix_to_ras(m_lps) -> np.ndarray:
    """Express a 4×4 point transform given in LPS coordinates in RAS: ``F · M · F``."""
    return LPS_TO_RAS @ np.asarray(m_lps, float) @ LPS_TO_RAS


def affine_from_sitk_transform(transform) -> np.ndarray:
    """4×4 homogeneous matrix (LPS) of a linear SimpleITK transform (Euler, Affine, Versor…).

    Uses the transform itself on the unit points, so centre and offset conventions of the
    different transform classes need no special cases.
    """
    origin = np.asarray(transform.TransformPoint((0.0, 0.0, 0.0)), float)
    m = np.eye(4)
    for axis in range(3):
        e = [0.0, 0.0, 0.0]
        e[axis] = 1.0
        m[:3, axis] = np.asarray(transform.TransformPoint(tuple(e)), float) - origin
    m[:3, 3] = origin
    return m


def transform_to_parent_ras_from_fixed_to_moving_lps(fixed_to_moving_lps) -> np.ndarray:
    """The matrix a Slicer transform node needs (to-parent, RAS) from a registration result.

    ``fixed_to_moving_lps`` is the 4×4 LPS matrix of the SimpleITK transform a registration
    returns (fixed point → moving point). The node placed over the *moving* volume must map
    moving → fixed, in RAS: ``F · T⁻¹ · F``.
    """
    return lps_matrix_to_ras(np.linalg.inv(np.asarray(fixed_to_moving_lps, float)))
