"""Pre-therapy 68Ga-PSMA-11 PET simulation: framing, concentration at mid-frame, resolution, noise.

68Ga kinetics are linked to the 177Lu kinetics region by region (:func:`kinetics.pet_kinetics`):
same biological uptake and washout rates, uptake fraction U_Ga = U_Lu (1 + m_r) with a known,
controllable mismatch m_r; physical decay of 68Ga. A frame's image is the true activity
concentration (Bq/mL) at its **mid-frame** time (the library's convention; the frame-average
activity of each region is in the truth as well), on the PET grid (fine-grid partial volume),
blurred with a Gaussian of FWHM ``fwhm_mm`` (reflecting edges), optionally with Poisson noise
from ``counts_per_Bq_s`` (detected counts per decay, default 0.01 ≈ 1 % system sensitivity).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .spect import blur

__all__ = ["DEFAULT_DYNAMIC_FRAMING", "frame_table", "PetFrameSpec", "concentration_image"]

#: Dynamic framing (number of frames, duration s), 0–60 min: 6×10 s, 4×30 s, 7×60 s, 4×300 s, 3×600 s.
DEFAULT_DYNAMIC_FRAMING: tuple[tuple[int, float], ...] = ((6, 10.0), (4, 30.0), (7, 60.0), (4, 300.0), (3, 600.0))


@dataclass(frozen=True)
class PetFrameSpec:
    """One frame: start (s after the series start) and duration (s)."""

    start_s: float
    duration_s: float


def frame_table(framing: tuple[tuple[int, float], ...] = DEFAULT_DYNAMIC_FRAMING) -> tuple[PetFrameSpec, ...]:
    """Contiguous frames from a framing ((count, duration_s), ...)."""
    out, t = [], 0.0
    for count, dur in framing:
        for _ in range(int(count)):
            out.append(PetFrameSpec(t, float(dur)))
            t += float(dur)
    return tuple(out)


def concentration_image(activity_Bq_kji: np.ndarray, *, voxel_mL: float, spacing_xyz_mm: tuple[float, float, float],
                        fwhm_mm: float, duration_s: float, noise: bool, counts_per_Bq_s: float,
                        rng: np.random.Generator | None) -> np.ndarray:
    """PET image (Bq/mL, float32) from the activity (Bq) per PET voxel."""
    conc = blur(activity_Bq_kji, fwhm_mm, spacing_xyz_mm) / voxel_mL
    if noise:
        scale = voxel_mL * duration_s * counts_per_Bq_s
        conc = rng.poisson(np.clip(conc, 0, None) * scale) / scale
    return conc.astype(np.float32)
