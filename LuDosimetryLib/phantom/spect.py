"""Post-therapy SPECT simulation: activity → resolution → dead time → counts → Poisson noise.

Per bed (each bed its own start time and duration):

1. true activity (Bq) per voxel at the bed's mid-acquisition time on the fine simulation grid
   (the timepoint's CT grid), summed into SPECT voxels (exact partial volume of the fine grid);
2. the slices of the bed's axial field of view are cut out and blurred with an isotropic
   Gaussian (FWHM in mm) with *reflecting* boundaries, which conserves the total: a calibrated
   reconstruction holds exactly the activity inside its field of view (activity outside the
   field of view contributes nothing, neither counts nor dead time);
3. the camera's true count rate is n = S · A_FoV (S in cps/MBq, A_FoV in MBq) and its observed
   rate follows the paralysable model m = n e^(−n τ); the live fraction is m / n = e^(−n τ);
4. expected counts per voxel = blurred activity (MBq) · S · duration · live fraction, and the
   image is a Poisson draw of these (numpy Generator, seeded).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..calibration.dead_time import live_fraction
from ..units import BQ_PER_MBQ

__all__ = ["FWHM_TO_SIGMA", "block_sum", "blur", "live_fraction", "BedCounts",
           "simulate_bed_counts"]

FWHM_TO_SIGMA = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))


def block_sum(array_kji: np.ndarray, factor_xyz: tuple[int, int, int]) -> np.ndarray:
    """Sum non-overlapping blocks of ``factor_xyz`` voxels (fine grid → coarse grid)."""
    fx, fy, fz = factor_xyz
    k, j, i = array_kji.shape
    return array_kji.reshape(k // fz, fz, j // fy, fy, i // fx, fx).sum(axis=(1, 3, 5))


def blur(array_kji: np.ndarray, fwhm_mm: float, spacing_xyz_mm: tuple[float, float, float]) -> np.ndarray:
    """Isotropic Gaussian blur (FWHM in mm) with reflecting edges; the sum is conserved."""
    sigma = [fwhm_mm * FWHM_TO_SIGMA / s for s in (spacing_xyz_mm[2], spacing_xyz_mm[1], spacing_xyz_mm[0])]
    return ndimage.gaussian_filter(array_kji.astype(np.float64), sigma, mode="reflect", truncate=4.0)


@dataclass(frozen=True)
class BedCounts:
    """One simulated bed: the counts image and its count-rate bookkeeping."""

    counts_kji: np.ndarray
    activity_in_fov_Bq: float
    true_rate_cps: float
    observed_rate_cps: float
    live_fraction: float
    expected_counts: float


def simulate_bed_counts(activity_Bq_kji: np.ndarray, *, spacing_xyz_mm: tuple[float, float, float], fwhm_mm: float,
                        sensitivity_cps_per_MBq: float, dead_time_s: float, duration_s: float,
                        rng: np.random.Generator) -> BedCounts:
    """Counts image of one bed from the true activity (Bq) per SPECT voxel inside its field of view."""
    a_fov = float(activity_Bq_kji.sum())
    n = sensitivity_cps_per_MBq * a_fov / BQ_PER_MBQ
    lf = live_fraction(n, dead_time_s)
    expected = blur(activity_Bq_kji, fwhm_mm, spacing_xyz_mm) / BQ_PER_MBQ * sensitivity_cps_per_MBq * duration_s * lf
    np.clip(expected, 0.0, None, out=expected)
    counts = rng.poisson(expected).astype(np.float32)
    return BedCounts(counts, a_fov, n, n * lf, lf, float(expected.sum()))
