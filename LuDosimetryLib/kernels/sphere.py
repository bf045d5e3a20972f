"""Self S-value of a uniform sphere from the point kernels (no sphere tables).

For activity uniform in a sphere of radius R, the fraction of the energy emitted at distance r
that lands inside the sphere, averaged over emission points and directions, is

    p(r) = 1 − 3r/(4R) + r³/(16R³)  for r ≤ 2R, else 0

(the chord-distribution reduction of the sphere's self-dose integral; Berger, MIRD Pamphlet 7
(1971); Loevinger, Budinger & Watson, MIRD Primer (1988)). The mean dose per decay is then
Σ_parts ∫ F(r) p(r) dr / (ρ V) with the electron and photon radial energy distributions F of the
voxel kernels (:mod:`.electrons`, :mod:`.photons`), integrated on a fine radial grid.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import InputError
from ..nuclides import get_nuclide, normalise_nuclide_name, photon_attenuation
from ..units import KG_PER_G, S_PER_H
from .electrons import electron_bin_fractions, electron_bins, fit_electron_model
from .photons import photon_radial

__all__ = ["sphere_s_value", "sphere_reduction"]


def sphere_reduction(r_mm: np.ndarray, radius_mm: float) -> np.ndarray:
    """p(r): mean fraction of energy emitted at distance r landing inside a uniform sphere."""
    x = np.asarray(r_mm, dtype=float) / radius_mm
    return np.where(x <= 2.0, 1.0 - 0.75 * x + x**3 / 16.0, 0.0)


def sphere_s_value(volume_mL: float, *, nuclide: str = "Lu-177", tissue: str = "soft",
                   photons: bool = True) -> float:
    """Mean absorbed dose in a uniform sphere per unit TIA in it (Gy per Bq·h).

    Parameters
    ----------
    volume_mL : float
        Sphere volume (mL); its mass is volume × the tissue density.
    nuclide : str
    tissue : {"soft", "bone"}
    photons : bool
        Include photon self-absorption (default).

    Returns
    -------
    float
        S (Gy/(Bq·h)). For masses ≥ 100 g it approaches the electron local-deposition limit
        Δ_e/m (slightly above with photons); for masses ≪ 1 g it falls below (electron escape).
    """
    v = float(volume_mL)
    if not (math.isfinite(v) and v > 0):
        raise InputError(f"sphere volume must be a positive number of mL, got {volume_mL!r}", source="volume_mL")
    nuc = get_nuclide(normalise_nuclide_name(nuclide))
    model = fit_electron_model(tissue)
    R = (3.0 * v * 1000.0 / (4.0 * np.pi)) ** (1.0 / 3.0)  # mm
    _, centres = electron_bins()
    absorbed = nuc.electron_energy_per_decay_J * float(electron_bin_fractions(model.shape, model.scale_mm)
                                                       @ sphere_reduction(centres, R))
    if photons:
        pr = photon_radial(nuc.name, tissue)
        edges = np.linspace(0.0, 2.0 * R, 4001)
        mid = 0.5 * (edges[1:] + edges[:-1])
        absorbed += float(np.diff(pr.energy_within(edges)) @ sphere_reduction(mid, R))
    mass_kg = v * photon_attenuation(tissue).density_g_per_mL * KG_PER_G
    return absorbed / mass_kg * S_PER_H
