"""The grid the chain measures regions on: the label map, no finer than half a SPECT voxel.

A clinical CT is 0.98 mm in-plane with 1.25–3 mm slices, and a label map drawn on it (or read
onto it) holds 100–240 million voxels. The regional quantities of the chain (TAC sums, masses,
dose statistics) come from a SPECT of 4–5 mm voxels: a label grid finer than half a SPECT voxel
per axis adds memory and time but no information. :func:`analysis_grid` block-reduces such a
label map and the reference density by integer factors per axis (the largest that keep the
voxel ≤ half the SPECT voxel), once, before the chain:

* labels: each analysis voxel takes the label held by most of the fine voxels of its block
  (majority; a tie goes to the label met first in the block's i, j, k order), so no region is
  shifted by the half fine voxel that nearest-neighbour picking at the block centre would take;
  a region's volume changes by its boundary blocks only (measured on the clinical phantom in
  docs/performance.md);
* density: the block mean of the full-resolution density (``sitk.BinShrink``), so the mass
  in each block is kept exactly.

Label maps already at or above half the SPECT voxel (the small and demo phantoms) are returned
unchanged: their results do not move.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["analysis_factors", "analysis_grid", "block_majority"]


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
    labels = sitk.GetImageFromArray(block_majority(sitk.GetArrayViewFromImage(segmentation.image), factors))
    labels.CopyInformation(coarse_density)
    return Segmentation(labels, segmentation.table), coarse_density, factors


def block_majority(labels_kji: np.ndarray, factors_xyz: tuple[int, int, int]) -> np.ndarray:
    """The most frequent label of each block of ``factors_xyz`` voxels (ties: first in block order).

    Trailing voxels that do not fill a block are dropped, as ``sitk.BinShrink`` drops them.
    """
    fx, fy, fz = factors_xyz
    k, j, i = (n // f for n, f in zip(labels_kji.shape, (fz, fy, fx)))
    blocks = labels_kji[:k * fz, :j * fy, :i * fx].reshape(k, fz, j, fy, i, fx).transpose(0, 2, 4, 1, 3, 5)
    blocks = blocks.reshape(k, j, i, fz * fy * fx)
    m = blocks.shape[-1]
    # votes[b]: how many voxels of the block hold the label of voxel b; each pair compared once
    votes = [np.ones((k, j, i), np.int16) for _ in range(m)]
    for b in range(m):
        for c in range(b + 1, m):
            same = blocks[..., b] == blocks[..., c]
            votes[b] += same
            votes[c] += same
    best = blocks[..., 0].copy()
    best_n = votes[0]
    for b in range(1, m):
        better = votes[b] > best_n  # strictly more: a tie keeps the voxel met first
        best[better] = blocks[..., b][better]
        best_n = np.maximum(best_n, votes[b])
    return best
