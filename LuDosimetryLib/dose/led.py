"""Local energy deposition (LED): every decay deposits its energy in its own voxel.

D = TIA × E / m, with E the electron energy per decay (ICRP-107; plus the photon energy if
``photons=True``, an upper bound since photons mostly escape) and m = ρ·V the voxel mass in the
kernels' tissue (soft tissue 1.04 g/mL unless given), so LED and kernel doses use one mass
convention. LED is the large-region limit of kernel convolution without photons; it ignores
electron escape (voxels ≲ 3 mm) and photon cross-dose.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import InputError
from ..nuclides import Nuclide, get_nuclide, photon_attenuation
from ..units import KG_PER_G, ML_PER_MM3, S_PER_H
from .convolution import check_tia

__all__ = ["led_dose", "led_factor_Gy_per_Bq_h", "electron_self_dose_Gy"]


def led_factor_Gy_per_Bq_h(voxel_size_mm, *, nuclide: str = "Lu-177", tissue: str = "soft",
                           photons: bool = False, density_g_per_mL: float | None = None) -> float:
    """Dose (Gy) per Bq·h of TIA deposited locally in one voxel of ``voxel_size_mm`` (x, y, z)."""
    sp = tuple(float(v) for v in voxel_size_mm)
    if len(sp) != 3 or not all(np.isfinite(v) and v > 0 for v in sp):
        raise InputError(f"expected three positive voxel edges in mm, got {voxel_size_mm!r}", source="voxel_size_mm")
    nuc = get_nuclide(nuclide)
    if nuc.electron_energy_per_decay_J is None:
        raise InputError(f"no electron energy per decay tabulated for {nuc.name}", source="nuclide")
    energy = nuc.electron_energy_per_decay_J + ((nuc.photon_energy_per_decay_J or 0.0) if photons else 0.0)
    rho = photon_attenuation(tissue).density_g_per_mL if density_g_per_mL is None else float(density_g_per_mL)
    if not (np.isfinite(rho) and rho > 0):
        raise InputError(f"density must be positive, got {density_g_per_mL!r} g/mL", source="density_g_per_mL")
    mass_kg = sp[0] * sp[1] * sp[2] * ML_PER_MM3 * rho * KG_PER_G
    return energy * S_PER_H / mass_kg


def led_dose(tia_Bq_h_per_voxel: np.ndarray, voxel_size_mm, *, nuclide: str = "Lu-177", tissue: str = "soft",
             photons: bool = False, density_g_per_mL: float | None = None) -> np.ndarray:
    """Absorbed dose (Gy, float32) by local energy deposition.

    Parameters
    ----------
    tia_Bq_h_per_voxel : array
        TIA per voxel (Bq·h), [k, j, i].
    voxel_size_mm : tuple of 3 float
        (x, y, z) spacing (mm).
    nuclide : str
    tissue : {"soft", "bone"}
        Sets the default density (ICRU soft tissue 1.04 g/mL, cortical bone 1.92 g/mL).
    photons : bool
        Also deposit the photon energy locally (default False: electrons only).
    density_g_per_mL : float, optional
        Override the voxel density.
    """
    tia = np.asarray(tia_Bq_h_per_voxel)
    check_tia(tia)
    f = led_factor_Gy_per_Bq_h(voxel_size_mm, nuclide=nuclide, tissue=tissue, photons=photons,
                               density_g_per_mL=density_g_per_mL)
    return tia.astype(np.float32) * np.float32(f)


def electron_self_dose_Gy(tia_Bq_h: float, mass_g: float, *, nuclide: str | Nuclide = "Lu-177") -> float:
    """Local electron self-dose of a region, D = Ã · Δ_e / m (Gy): the large-volume limit.

    Parameters
    ----------
    tia_Bq_h : float
        Time-integrated activity (Bq·h) in the target.
    mass_g : float
        Target mass (g).
    nuclide : str or Nuclide
        Gives Δ_e, the mean electron (β, IC, Auger) energy per decay (J); photons are left out.
    """
    if not (math.isfinite(mass_g) and mass_g > 0):
        raise InputError(f"must be finite and > 0 g, got {mass_g!r}", source="mass_g")
    nuc = get_nuclide(nuclide) if isinstance(nuclide, str) else nuclide
    if nuc.electron_energy_per_decay_J is None:
        raise InputError(f"no electron energy per decay tabulated for {nuc.name}", source="nuclide")
    return float(tia_Bq_h) * S_PER_H * nuc.electron_energy_per_decay_J / (mass_g * KG_PER_G)
