"""Like-for-like dose truth of the synthetic patient: the TRUE activity through the pipeline's physics.

The phantom's electron-local-deposition truth (``dose_Gy`` of truth.json) is a different physics
from the pipeline's kernel convolution with photons: comparing the two mixes imaging error with
method difference (lungs and bone get photon and electron cross-dose the LED truth lacks). This
truth takes the true TIA distribution (each region's TIA spread uniformly over its voxels, as the
phantom simulates its activity) on the phantom's fine grid (the reference CT grid, 2× finer than
the SPECT in-plane), convolves it with the same dose voxel kernel as ``ludosimetry run``
(:func:`LuDosimetryLib.kernels.dose_kernel`, photons included, the same electron energy), scales it
to the true density (:func:`LuDosimetryLib.dose.density_scaling.scale_dose_to_density`) and takes the
mass-weighted mean per region (:func:`LuDosimetryLib.dose.regional.region_dose_statistics`). What
separates the pipeline's ``dose_Gy`` from it is imaging only: resolution (partial volume), noise,
registration, the fit, and the CT-derived density.

Red marrow: the phantom's red marrow is the spongiosa of every marrow-bearing region
(:data:`LuDosimetryLib.phantom.kinetics.MARROW_REGIONS`: ``red_marrow`` = thoracic/cervical spine,
sacrum and iliac bones, plus the lumbar vertebrae L1–L5), all with the same uptake per mL. Its
truth ``red_marrow_total`` is the mass-weighted mean dose over all of them (self-dose and cross-dose
through the same physics), and its LED truth Σ TIA · Δ_e / Σ mass.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import SimpleITK as sitk

from ..labels import LabelTable
from .kinetics import MARROW_REGIONS

__all__ = ["kernel_truth_doses", "true_tia_map", "RED_MARROW_TRUTH", "KERNEL_TRUTH_METHOD"]

#: Name of the red-marrow entry of the truth (all marrow-bearing regions together).
RED_MARROW_TRUTH = "red_marrow_total"
KERNEL_TRUTH_METHOD = ("true TIA (uniform per region, phantom fine grid) convolved with the pipeline's dose voxel "
                       "kernel (photons included), scaled to the true density, mass-weighted mean per region")


def true_tia_map(labels: sitk.Image, table: LabelTable, tia_Bq_h: Mapping[str, float]) -> np.ndarray:
    """TIA per voxel (Bq·h, float32, [k, j, i]) with each region's TIA spread uniformly over its voxels."""
    lab = sitk.GetArrayViewFromImage(labels).astype(np.int64)
    n = np.bincount(lab.ravel(), minlength=max(r.label for r in table) + 1)
    lut = np.zeros(n.size, dtype=np.float64)
    for r in table:
        if n[r.label] > 0:
            lut[r.label] = float(tia_Bq_h.get(r.name, 0.0)) / n[r.label]
    return lut[lab].astype(np.float32)


def kernel_truth_doses(labels: sitk.Image, density_g_per_mL: sitk.Image, table: LabelTable,
                       tia_Bq_h: Mapping[str, float], *, nuclide: str = "Lu-177", photons: bool = True,
                       electron_energy: str = "icrp107") -> dict[str, float]:
    """Mass-weighted mean dose (Gy) per region, group and ``red_marrow_total`` of the true TIA (module docstring).

    Parameters
    ----------
    labels : SimpleITK.Image
        True label map on the phantom's fine grid.
    density_g_per_mL : SimpleITK.Image
        True density on the same grid.
    table : LabelTable
    tia_Bq_h : mapping region → Bq·h
        True TIA of each leaf region.
    nuclide, photons, electron_energy
        As :func:`LuDosimetryLib.kernels.dose_kernel` (the pipeline's choices).
    """
    from ..dose.convolution import convolve_dose
    from ..dose.density_scaling import scale_dose_to_density
    from ..dose.regional import region_dose_statistics
    from ..kernels import dose_kernel

    spacing = tuple(float(v) for v in labels.GetSpacing())
    kernel = dose_kernel(spacing, nuclide=nuclide, photons=photons, electron_energy=electron_energy)
    soft = sitk.GetImageFromArray(convolve_dose(true_tia_map(labels, table, tia_Bq_h), kernel))
    soft.CopyInformation(labels)
    dose = scale_dose_to_density(soft, density_g_per_mL)
    stats = region_dose_statistics(dose, labels, table, density_g_per_mL=density_g_per_mL, on_empty="skip")
    out = {s.region: s.mean_dose_Gy for s in stats}
    marrow = [s for s in stats if s.region in MARROW_REGIONS]
    mass = sum(s.mass_g for s in marrow)
    if mass > 0:
        out[RED_MARROW_TRUTH] = sum(s.mean_dose_Gy * s.mass_g for s in marrow) / mass
    return out
