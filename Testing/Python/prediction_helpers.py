"""Helpers shared by the prediction tests (not a test module)."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk


def true_tia_map(p):
    """The phantom's true cycle-1 TIA (Bq·h/mL), uniform per region, on the 6-mm grid of :func:`true_dose_map`."""
    lab = sitk.GetArrayFromImage(p.labels).astype(np.int64)
    sp = p.labels.GetSpacing()
    vox_mL = sp[0] * sp[1] * sp[2] / 1000
    counts = np.bincount(lab.ravel())
    lut = np.zeros(counts.size)
    for r in p.label_table:
        tia = p.truth["cycles"][0]["tia_Bq_h"].get(r.name, 0.0)
        if counts[r.label]:
            lut[r.label] = tia / (counts[r.label] * vox_mL)
    k, j, i = lab.shape
    conc = lut[lab].reshape(k, j // 2, 2, i // 2, 2).mean(axis=(2, 4)).astype(np.float32)
    tia_img = sitk.GetImageFromArray(conc)
    tia_img.SetSpacing((sp[0] * 2, sp[1] * 2, sp[2]))
    tia_img.SetOrigin(tuple(np.array(p.labels.GetOrigin()) + np.array([sp[0] / 2, sp[1] / 2, 0.0])))
    return tia_img


def true_dose_map(p):
    """Kernel dose of a phantom's true cycle-1 TIA, uniform in each region of the label grid, on 6-mm voxels.

    The label grid of the ``small`` phantom is 3×3×6 mm; each 6-mm voxel is exactly 2×2×1 label voxels,
    so the block mean of the region-uniform TIA concentration is the exact voxel mean.
    """
    from LuDosimetryLib.prediction.voxel import predicted_dose_map

    return predicted_dose_map(true_tia_map(p))
