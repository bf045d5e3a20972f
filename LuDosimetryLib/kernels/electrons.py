"""Electron dose point kernel of 177Lu fitted to the published voxel S-values.

The electrons' radial energy distribution (energy deposited per unit radius around a point
source, the scaled dose point kernel times 4πr²ρ) is taken as a gamma distribution in r,

    F_e(r) = E_e · r^(k−1) e^(−r/s) / (Γ(k) s^k),   truncated at ``R_CUT_MM`` and renormalised,

and its three parameters (E_e, k, s) are fitted jointly to the voxel S-value tables of all
published voxel sizes (Lanconelli et al., Phys. Med. Biol. 57 (2012) 517, doi:10.1088/0031-9155/57/2/517),
minimising relative residuals of the tables minus the photon part (computed independently, see
:mod:`.photons`), each table entry integrated over source and target voxels
(:mod:`.geometry`). The fitted E_e is the electron energy the tables hold; clinical kernels
rescale it to the ICRP-107 electron energy per decay (docs/kernels.md).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares
from scipy.special import gammainc

from ..nuclides import available_voxel_s_value_tables, photon_attenuation, voxel_s_value_table
from ..units import GY_PER_MGY, S_PER_H
from .geometry import octant_offsets, pair_radial_weights

__all__ = ["ElectronModel", "R_CUT_MM", "electron_bins", "electron_bin_fractions", "fit_electron_model",
           "table_gy_per_decay", "electron_offsets_reach"]

#: Radius (mm) beyond which the electron distribution is cut (177Lu β CSDA range ≈ 2 mm).
R_CUT_MM = 5.0
_N_BINS = 250
#: Gy per decay of 1 mGy/(MBq·s): 1e-3 Gy / 1e6 decays.
_GY_PER_DECAY_PER_MGY_PER_MBQ_S = GY_PER_MGY / 1.0e6
_KG_PER_MM3_PER_G_PER_ML = 1.0e-6


@dataclass(frozen=True)
class ElectronModel:
    """Fitted electron radial distribution.

    Attributes
    ----------
    energy_J : float
        Electron energy per decay the fitted tables hold (J).
    shape : float
        Gamma shape k (dimensionless).
    scale_mm : float
        Gamma scale s (mm).
    tissue : str
    fitted_sizes_mm : tuple of float
        Voxel sizes of the tables used.
    max_relative_residual : float
        Largest |model/table − 1| over the fitted tables' entries.
    """

    energy_J: float
    shape: float
    scale_mm: float
    tissue: str
    fitted_sizes_mm: tuple[float, ...]
    max_relative_residual: float


@functools.cache
def electron_bins() -> tuple[np.ndarray, np.ndarray]:
    """Edges (N+1,) and centres (N,) of the electron radial bins (mm)."""
    edges = np.linspace(0.0, R_CUT_MM, _N_BINS + 1)
    return edges, 0.5 * (edges[1:] + edges[:-1])


def electron_bin_fractions(shape: float, scale_mm: float) -> np.ndarray:
    """Fraction of the (truncated, renormalised) electron energy deposited in each radial bin."""
    edges, _ = electron_bins()
    cdf = gammainc(shape, edges / scale_mm)
    return np.diff(cdf) / cdf[-1]


def electron_offsets_reach(h_mm) -> tuple[int, int, int]:
    """Largest voxel offset per axis that electrons reach (gap (n−1)·h < R_CUT_MM)."""
    return tuple(int(np.floor(R_CUT_MM / float(h))) + 1 for h in h_mm)


def table_gy_per_decay(size_mm: float, tissue: str) -> np.ndarray:
    """A published table (6, 6, 6) converted to Gy per decay."""
    return voxel_s_value_table(size_mm, tissue=tissue).s_values_mGy_per_MBq_s * _GY_PER_DECAY_PER_MGY_PER_MBQ_S


@functools.cache
def _table_geometry(size_mm: float, tissue: str):
    """Per table: electron offsets, their G matrix, and the photon part of every entry (Gy/decay)."""
    from .voxel import photon_octant  # local import: voxel imports this module

    h = np.full(3, size_mm)
    n_e = tuple(min(5, n) for n in electron_offsets_reach(h))
    offs = octant_offsets(n_e)
    _, centres = electron_bins()
    G = pair_radial_weights(h, offs, centres)
    photon = photon_octant(h, (5, 5, 5), tissue=tissue, nuclide="Lu-177")
    return offs, G, photon


def _conversions(tissue: str) -> float:
    """1/(ρ in kg/mm³)."""
    return 1.0 / (photon_attenuation(tissue).density_g_per_mL * _KG_PER_MM3_PER_G_PER_ML)


@functools.cache
def fit_electron_model(tissue: str = "soft", exclude_mm: tuple[float, ...] = ()) -> ElectronModel:
    """Fit the electron distribution to the published tables of ``tissue`` (cached).

    Parameters
    ----------
    tissue : {"soft", "bone"}
    exclude_mm : tuple of float
        Voxel sizes (mm) to leave out (leave-one-size-out validation).

    Returns
    -------
    ElectronModel
    """
    sizes = tuple(s for s in available_voxel_s_value_tables("Lu-177", tissue)
                  if not any(abs(s - e) < 1e-6 for e in exclude_mm))
    inv_rho = _conversions(tissue)
    data = []
    for s in sizes:
        offs, G, photon = _table_geometry(s, tissue)
        table = table_gy_per_decay(s, tissue)
        data.append((offs, G, photon, table))

    def residuals(theta):
        E, k, sc = np.exp(theta)
        frac = electron_bin_fractions(k, sc)
        res = []
        for offs, G, photon, table in data:
            model = photon.copy()
            model[offs[:, 0], offs[:, 1], offs[:, 2]] += E * inv_rho * (G @ frac)
            res.append((model / table - 1.0).ravel())
        return np.concatenate(res)

    theta0 = np.log([2.2e-14, 1.0, 0.3])
    sol = least_squares(residuals, theta0, method="lm", x_scale=1.0)
    E, k, sc = np.exp(sol.x)
    return ElectronModel(float(E), float(k), float(sc), tissue, sizes, float(np.max(np.abs(sol.fun))))


def gy_per_decay_to_gy_per_bq_h(values: np.ndarray) -> np.ndarray:
    """Gy per decay → Gy per Bq·h (3600 decays per Bq·h)."""
    return values * S_PER_H
