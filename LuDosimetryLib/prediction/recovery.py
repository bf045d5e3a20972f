"""Recovery coefficient of a uniform sphere imaged with a Gaussian point-spread function.

The mean measured concentration in a uniform sphere of radius R, blurred by an isotropic
Gaussian PSF (σ = FWHM / √(8 ln 2)), divided by the true concentration, is

    RC = ∫₀^{2R} p(r) f(r) dr,

where f is the density of the distance between a point and its blurred image (Maxwell:
f(r) = √(2/π) r² e^(−r²/2σ²) / σ³) and p(r) = 1 − 3r/(4R) + r³/(16R³) is the probability that
a point at distance r from a uniform point of the sphere lies in the sphere (the chord-distribution
reduction of :func:`LuDosimetryLib.kernels.sphere.sphere_reduction`, the same geometry as the
sphere S-value). It ignores spill-in from neighbours and the voxel grid.

Reference: Hoffman EJ, Huang SC, Phelps ME. Quantitation in positron emission computed
tomography: 1. Effect of object size. J Comput Assist Tomogr 1979;3:299–308.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import InputError
from ..kernels.sphere import sphere_reduction

__all__ = ["sphere_recovery"]


def sphere_recovery(volume_mL: float, fwhm_mm: float) -> float:
    """Mean recovery coefficient (dimensionless, 0–1) of a sphere of ``volume_mL`` for a Gaussian PSF of ``fwhm_mm``."""
    v, w = float(volume_mL), float(fwhm_mm)
    if not (math.isfinite(v) and v > 0):
        raise InputError(f"must be > 0 mL, got {volume_mL!r}", source="volume_mL")
    if not (math.isfinite(w) and w >= 0):
        raise InputError(f"must be ≥ 0 mm, got {fwhm_mm!r}", source="fwhm_mm")
    if w == 0:
        return 1.0
    radius = (3.0 * v * 1000.0 / (4.0 * math.pi)) ** (1.0 / 3.0)
    sigma = w / math.sqrt(8.0 * math.log(2.0))
    r = np.linspace(0.0, min(2.0 * radius, 10.0 * sigma), 20001)
    f = math.sqrt(2.0 / math.pi) * r**2 * np.exp(-(r**2) / (2 * sigma**2)) / sigma**3
    return float(np.trapezoid(sphere_reduction(r, radius) * f, r))
