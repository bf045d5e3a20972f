"""The grid the chain measures regions on: the label map, no finer than half a SPECT voxel.

A clinical CT is 0.98 mm in-plane with 1.25–3 mm slices, and a label map drawn on it (or read
onto it) holds 100–240 million voxels. The regional quantities of the chain (TAC sums, masses,
dose statistics) come from a SPECT of 4–5 mm voxels: a label grid finer than half a SPECT voxel
per axis adds memory and time but no information. :func:`analysis_grid` block-reduces such a
label map and the reference density by integer factors per axis (the largest that keep the
voxel ≤ half the SPECT voxel), once, before the chain:

* labels: each analysis voxel takes the label at its centre (nearest neighbour, the rule of
  every label resampling in the chain); a region's volume changes by its partial boundary
  voxels only (measured on the clinical phantom in docs/performance.md);
* density: the block mean of the full-resolution density (``sitk.BinShrink``), so the mass
  in each block is kept exactly.

Label maps already at or above half the SPECT voxel (the small and demo phantoms) are returned
unchanged: their results do not move.
"""

from __future__ import annotations

import math

__all__ = ["analysis_factors", "analysis_grid"]


def analysis_factors(label_spacing_mm, spect_spacing_mm) -> tuple[int, int, int]:
    """Integer block factors per axis (x, y, z) keeping the voxel ≤ half the SPECT voxel (≥ 1)."""
    return tuple(max(1, math.floor(0.5 * float(s) / float(f) + 1e-9)) for f, s in zip(label_spacing_mm,
                                                                                          spect_spacing_mm))


def analysis_grid(segmentation, density, spect):
    """The segmentation and density (g/mL) block-reduced for ``spect``'s voxel size.

    Parameters
    ----------
    segmentation : Segmentation
        Label map (any grid) and table.
    density : SimpleITK.Image
        Mass density (g/mL, float32) on the label map's grid.
    spect : SimpleITK.Image
        The reference SPECT (its spacing sets the factors).

    Returns
    -------
    (Segmentation, SimpleITK.Image, tuple of int)
        Label map and density on the analysis grid, and the factors used (all 1: the inputs
        themselves, unchanged).
    """
    import SimpleITK as sitk

    from .model import Segmentation

    factors = analysis_factors(segmentation.image.GetSpacing(), spect.GetSpacing())
    if factors == (1, 1, 1):
        return segmentation, density, factors
    if density.GetSize() != segmentation.image.GetSize():
        density = sitk.Resample(density, segmentation.image, sitk.Transform(), sitk.sitkLinear, 0.0,
                                sitk.sitkFloat32)
    coarse_density = sitk.BinShrink(sitk.Cast(density, sitk.sitkFloat32), list(factors))
    labels = sitk.Resample(segmentation.image, coarse_density, sitk.Transform(), sitk.sitkNearestNeighbor, 0,
                           segmentation.image.GetPixelID())
    return Segmentation(labels, segmentation.table), coarse_density, factors
