"""Partial-volume correction by the geometric transfer matrix (GTM) of labelled regions.

G[i, j] is the share of region j's true concentration that an image of resolution ``fwhm_mm``
(isotropic Gaussian PSF) shows as the mean of region i; solving G·T = observed means gives the
corrected mean concentration T of every region (Rousset OG, Ma Y, Evans AC. Correction for
partial volume effects in PET: principle and validation. J Nucl Med 1998;39:904–911). All
activity-bearing tissue should be labelled; unlabelled voxels (label 0) form a region of their
own. Used for the PET (:mod:`LuDosimetryLib.prediction`) and the SPECT TACs
(:mod:`LuDosimetryLib.pipeline`, ``partial_volume="gtm"``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["GTM_SUBDIVISION", "gtm_matrix", "gtm_correct", "labels_on_grid", "subdivided_grid"]

#: Subdivision of each PET voxel (per axis) for the occupied fractions of the GTM.
GTM_SUBDIVISION = 2


def _label_index(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(label values present, ascending; each voxel's index among them, shaped as ``labels``; voxels per value).

    What ``np.unique(labels, return_inverse=True, return_counts=True)`` gives, in linear time for the
    small non-negative integer labels of a label map (a count table instead of a sort: the sort of a
    clinical PET grid's labels cost seconds); other values fall back on ``np.unique``.
    """
    flat = labels.ravel()
    if flat.size and np.issubdtype(labels.dtype, np.integer):
        lo, hi = int(flat.min()), int(flat.max())
        if lo >= 0 and hi < max(flat.size, 1 << 16):  # a count table no longer than the image
            table = np.bincount(flat.astype(np.intp, copy=False), minlength=hi + 1)
            ids = np.flatnonzero(table)
            lut = np.zeros(table.size, np.intp)
            lut[ids] = np.arange(ids.size)
            return ids.astype(labels.dtype), lut[labels], table[ids].astype(float)
    ids, inv, counts = np.unique(labels, return_inverse=True, return_counts=True)
    return ids, inv.reshape(labels.shape), counts.astype(float)


def gtm_matrix(labels: np.ndarray, spacing_mm, fwhm_mm: float, *, fine_labels: np.ndarray | None = None,
               factor: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Geometric transfer matrix of the label values present (0 = unlabelled included).

    G[i, j] = mean over the voxels labelled i of (Gaussian PSF ⊛ fraction of each voxel occupied by
    region j): the share of region j's concentration that the PET shows in region i (Rousset OG,
    Ma Y, Evans AC. J Nucl Med 1998;39:904–911). Occupied fractions come from ``fine_labels`` (the
    labels on the PET grid subdivided ``factor`` times per axis, block-averaged) or, without it,
    from ``labels`` (whole voxels). PSF: isotropic Gaussian of ``fwhm_mm``, reflecting edges.
    Returns (label values, G).
    """
    ids, inv, counts = _label_index(labels)
    return ids, _transfer_matrix(labels, ids, inv, counts, spacing_mm, fwhm_mm, fine_labels=fine_labels, factor=factor)


def _transfer_matrix(labels: np.ndarray, ids: np.ndarray, inv: np.ndarray, counts: np.ndarray, spacing_mm,
                     fwhm_mm: float, *, fine_labels: np.ndarray | None, factor: int) -> np.ndarray:
    """G of :func:`gtm_matrix` from the label index of :func:`_label_index`."""
    from scipy.ndimage import find_objects, gaussian_filter

    sigma = [fwhm_mm / np.sqrt(8 * np.log(2)) / s for s in tuple(spacing_mm)[::-1]]
    margin = [int(np.ceil(4 * s)) + 1 for s in sigma]
    g = np.zeros((ids.size, ids.size))
    f = int(factor)
    # each region is blurred inside its bounding box grown by 4σ (+1 voxel for fractions beyond its
    # nearest-neighbour voxels): the PSF is negligible beyond, and the box is far smaller than the grid
    for j, (value, box) in enumerate(zip(ids, find_objects(inv + 1))):
        sl = tuple(slice(max(b.start - m, 0), min(b.stop + m, n)) for b, m, n in zip(box, margin, labels.shape))
        if fine_labels is not None:
            sub = fine_labels[tuple(slice(s.start * f, s.stop * f) for s in sl)] == value
            k, jj, i = (s.stop - s.start for s in sl)
            frac = sub.reshape(k, f, jj, f, i, f).mean(axis=(1, 3, 5), dtype=np.float32)
        else:
            frac = (labels[sl] == value).astype(np.float32)
        b = gaussian_filter(frac, sigma, mode="reflect")
        g[:, j] = np.bincount(inv[sl].ravel(), weights=b.ravel().astype(float), minlength=ids.size) / counts
    return g


def gtm_correct(labels: np.ndarray, frames: Sequence[np.ndarray], spacing_mm, fwhm_mm: float, *,
                fine_labels: np.ndarray | None = None, factor: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Partial-volume corrected mean concentration of every label value, per frame (GTM).

    Returns (label values, array [frame, label]) solving G·T = observed means (least squares).
    """
    ids, inv, counts = _label_index(labels)
    g = _transfer_matrix(labels, ids, inv, counts, spacing_mm, fwhm_mm, fine_labels=fine_labels, factor=factor)
    flat = inv.ravel()
    obs = np.array([np.bincount(flat, weights=np.asarray(f, dtype=float).ravel(), minlength=ids.size) / counts
                    for f in frames])
    true = np.linalg.lstsq(g, obs.T, rcond=None)[0].T
    return ids, true


def labels_on_grid(labels, grid, transform=None, *, dtype=np.int64) -> np.ndarray:
    """Label map resampled (nearest neighbour) onto ``grid``; array [k, j, i] of ``dtype``.

    ``dtype=np.uint32`` keeps the resampled labels' own type (half the memory of int64 for the
    subdivided grids of :func:`gtm_matrix`'s ``fine_labels``). One copy out of the resampled image,
    of ``dtype`` directly.
    """
    import SimpleITK as sitk

    tx = transform if transform is not None else sitk.Transform(3, sitk.sitkIdentity)
    out = sitk.Resample(labels, grid, tx, sitk.sitkNearestNeighbor, 0, sitk.sitkUInt32)
    return sitk.GetArrayViewFromImage(out).astype(dtype)


def subdivided_grid(image, factor: int):
    """An empty grid covering ``image``'s voxels, each split ``factor`` times per axis."""
    import SimpleITK as sitk

    sp = np.asarray(image.GetSpacing())
    d = np.asarray(image.GetDirection()).reshape(3, 3)
    origin = np.asarray(image.GetOrigin()) + d @ (-sp / 2 + sp / (2 * factor))
    out = sitk.Image([int(n) * factor for n in image.GetSize()], sitk.sitkUInt8)
    out.SetSpacing(tuple(sp / factor))
    out.SetDirection(image.GetDirection())
    out.SetOrigin(tuple(origin))
    return out
