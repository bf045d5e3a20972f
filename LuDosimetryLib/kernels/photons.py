"""Photon point kernel of a nuclide in a tissue, from attenuation data and buildup factors.

For each photon line (energy E, emitted energy per decay y·E) the energy absorbed per unit radius
around a point source in an infinite homogeneous medium is

    F(r) = y·E · c · μ_en · B(μr) · exp(−μr),   c = μ / (μ_en · ∫₀^∞ B(x) e^{−x} dx)

with μ and μ_en the linear attenuation and energy-absorption coefficients of the tissue
(mucoeff 1.0.0 elemental data, Boone & Chavez, Med. Phys. 23 (1996) 1997, doi:10.1118/1.597899,
mixture rule over ICRU-44 compositions) and B the geometric-progression buildup factor of water
(ANSI/ANS-6.4.3-1991; Harima et al., Nucl. Sci. Eng. 94 (1986) 24, doi:10.13182/NSE86-A17113).
The point dose is D(r) = F(r) / (4πr²ρ). The GP coefficients are exposure (air-response) buildup
factors; used with tissue μ_en they absorb 0.93–1.05 of the emitted energy in an infinite medium,
so each line carries the factor c (reported by :func:`photon_lines`) that makes the absorbed
energy exactly the emitted one. Lines: the γ lines of :mod:`LuDosimetryLib.nuclides`, plus the
X-ray energy per decay (photons total − γ lines) emitted at the daughter's Kα1 energy.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from scipy.integrate import quad

from ..nuclides import get_nuclide, photon_attenuation, xray_effective_energy_keV
from ..units import J_PER_KEV

__all__ = ["PhotonLine", "photon_lines", "gp_buildup", "PhotonRadial", "photon_radial"]

_CM_PER_MM = 0.1


@dataclass(frozen=True)
class PhotonLine:
    """One photon line in a tissue.

    Attributes
    ----------
    energy_keV : float
    energy_per_decay_J : float
        Emitted energy per decay in this line (J).
    mu_per_mm, mu_en_per_mm : float
        Linear attenuation and energy-absorption coefficients (mm⁻¹).
    gp : tuple of float
        GP buildup coefficients (b, c, a, X, d).
    conservation_factor : float
        c = μ/(μ_en ∫B e^{-x}dx), applied so that an infinite medium absorbs all emitted energy.
    """

    energy_keV: float
    energy_per_decay_J: float
    mu_per_mm: float
    mu_en_per_mm: float
    gp: tuple[float, float, float, float, float]
    conservation_factor: float


def gp_buildup(x: np.ndarray, gp) -> np.ndarray:
    """Geometric-progression buildup factor B(x) at depth ``x`` (mean free paths), ANSI/ANS-6.4.3."""
    b, c, a, X, d = (float(v) for v in gp)
    x = np.asarray(x, dtype=float)
    xs = np.maximum(x, 1e-12)
    t2 = math.tanh(-2.0)
    K = c * xs**a + d * (np.tanh(xs / X - 2.0) - t2) / (1.0 - t2)
    near_one = np.abs(K - 1.0) < 1e-6
    Ks = np.where(near_one, 2.0, K)
    geo = np.where(near_one, xs, (Ks**xs - 1.0) / (Ks - 1.0))
    return 1.0 + (b - 1.0) * geo


def _buildup_integral(gp) -> float:
    """∫₀^∞ B(x) e^{−x} dx (the integrand is negligible beyond 80 mean free paths)."""
    return quad(lambda x: float(gp_buildup(x, gp)) * math.exp(-x), 0.0, 80.0, limit=400)[0]


@functools.cache
def photon_lines(nuclide: str = "Lu-177", tissue: str = "soft") -> tuple[PhotonLine, ...]:
    """Photon lines of ``nuclide`` with their coefficients in ``tissue`` (see module docstring)."""
    nuc = get_nuclide(nuclide)
    att = photon_attenuation(tissue)
    lines = [(e, y * e * J_PER_KEV) for e, y in nuc.gamma_lines]
    if nuc.photon_energy_per_decay_J:
        x_ray = nuc.photon_energy_per_decay_J - sum(ej for _, ej in lines)
        if x_ray > 0:
            lines.append((xray_effective_energy_keV(nuc.name), x_ray))
    out = []
    for e, ej in lines:
        mu_m, mu_en_m = att.coefficients(e)
        mu = float(mu_m) * att.density_g_per_mL * _CM_PER_MM
        mu_en = float(mu_en_m) * att.density_g_per_mL * _CM_PER_MM
        gp = tuple(float(v) for v in att.gp_coefficients(e))
        c = (mu / mu_en) / _buildup_integral(gp)
        out.append(PhotonLine(float(e), float(ej), mu, mu_en, gp, c))
    return tuple(out)


@dataclass(frozen=True)
class PhotonRadial:
    """Radial energy distribution F(r) of the photons on a fine grid (one nuclide, one tissue).

    Attributes
    ----------
    r_mm : numpy.ndarray
        Radii (mm), uniform from 0.
    F_J_per_mm : numpy.ndarray
        Energy absorbed per unit radius per decay, F(r) (J/mm).
    cumulative_J : numpy.ndarray
        ∫₀^r F dr' (J), trapezoidal.
    total_J : float
        Emitted photon energy per decay (J) = ∫₀^∞ F dr.
    density_g_per_mL : float
    """

    r_mm: np.ndarray
    F_J_per_mm: np.ndarray
    cumulative_J: np.ndarray
    total_J: float
    density_g_per_mL: float

    def F(self, r_mm: np.ndarray) -> np.ndarray:
        """F(r) (J/mm), linearly interpolated."""
        return np.interp(r_mm, self.r_mm, self.F_J_per_mm)

    def energy_within(self, r_mm: np.ndarray) -> np.ndarray:
        """∫₀^r F dr' (J)."""
        return np.interp(r_mm, self.r_mm, self.cumulative_J)


def radial_energy(r_mm: np.ndarray, lines: tuple[PhotonLine, ...]) -> np.ndarray:
    """F(r) = Σ y·E·c·μ_en·B(μr)·e^{−μr} (J/mm) at radii ``r_mm`` (exact, no grid)."""
    r = np.asarray(r_mm, dtype=float)
    total = np.zeros_like(r)
    for ln in lines:
        x = ln.mu_per_mm * r
        total += ln.energy_per_decay_J * ln.conservation_factor * ln.mu_en_per_mm * gp_buildup(x, ln.gp) * np.exp(-x)
    return total


@functools.cache
def photon_radial(nuclide: str = "Lu-177", tissue: str = "soft", r_max_mm: float = 1200.0,
                  step_mm: float = 0.05) -> PhotonRadial:
    """Tabulate F(r) of the photons of ``nuclide`` in ``tissue`` on [0, r_max_mm] (cached)."""
    lines = photon_lines(nuclide, tissue)
    r = np.arange(0.0, r_max_mm + step_mm / 2, step_mm)
    F = radial_energy(r, lines)
    cum = np.concatenate([[0.0], np.cumsum(0.5 * (F[1:] + F[:-1]) * np.diff(r))])
    for a in (r, F, cum):
        a.setflags(write=False)
    return PhotonRadial(r, F, cum, float(sum(ln.energy_per_decay_J for ln in lines)),
                        photon_attenuation(tissue).density_g_per_mL)
