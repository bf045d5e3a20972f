"""Dose voxel kernels of 177Lu for any voxel size, cubic or not (see docs/kernels.md).

A kernel is the sum of an electron part (a dose point kernel fitted jointly to the published voxel
S-values, Lanconelli et al. 2012, doi:10.1088/0031-9155/57/2/517, renormalised to the ICRP-107
electron energy per decay) and, optionally, a photon part (point kernel from attenuation,
energy-absorption and buildup data, :mod:`.photons`), both integrated over source and target
voxels (:mod:`.geometry`).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from ..nuclides import available_voxel_s_value_tables, get_nuclide, normalise_nuclide_name, photon_attenuation
from .electrons import (
    ElectronModel,
    electron_bin_fractions,
    electron_bins,
    electron_offsets_reach,
    fit_electron_model,
    gy_per_decay_to_gy_per_bq_h,
)
from .geometry import octant_offsets, pair_radial_weights, triangle_cubature
from .photons import photon_radial

__all__ = ["Kernel", "dose_kernel", "kernel_from_model", "photon_octant", "VOXEL_SIZE_RANGE_MM",
           "DEFAULT_RADIUS_MM", "TISSUES", "ELECTRON_ENERGIES"]

#: Voxel edges (mm) the method is valid for, per axis (tables: 2.21–9.28 mm; leave-one-out tested).
VOXEL_SIZE_RANGE_MM = (2.0, 10.0)
#: Default kernel radius (mm) with photons; without photons the kernel ends where electrons do.
DEFAULT_RADIUS_MM = 150.0
TISSUES = ("soft", "bone")
#: Electron energy per decay of a kernel: ``icrp107`` (default: the ICRP-107 decay data, 147.9 keV
#: for 177Lu) or ``table`` (the energy the published S-value tables hold, as fitted: for comparisons
#: with software that uses those tables). docs/kernels.md.
ELECTRON_ENERGIES = ("icrp107", "table")
_MAX_RADIUS_MM = 600.0
_NEAR = 1  # offsets with every |index| ≤ _NEAR use the radial (singularity-safe) integration
_MID = 3  # offsets with every |index| ≤ _MID (and not near) use a high-order cubature
_N_PHOTON_BINS = 150
_KG_PER_MM3_PER_G_PER_ML = 1.0e-6

METHOD_ELECTRONS = ("electron DPK (gamma distribution in r) fitted jointly to the Lanconelli 2012 voxel S-values and "
                    "renormalised to the ICRP-107 electron energy, integrated over source and target voxels; "
                    "no photons")
METHOD = ("electron DPK (gamma distribution in r) fitted jointly to the Lanconelli 2012 voxel S-values and "
          "renormalised to the ICRP-107 electron energy; photon point kernel (mucoeff mu, mu_en; ANSI/ANS-6.4.3 "
          "GP buildup of water, energy-conserving); both integrated over source and target voxels")
SOURCE = ("Lanconelli et al., Phys. Med. Biol. 57 (2012) 517-533 (voxel S-values); ICRP-107 decay data; "
          "Boone & Chavez, Med. Phys. 23 (1996) 1997 (mucoeff); ANSI/ANS-6.4.3-1991")


@dataclass(frozen=True)
class Kernel:
    """A dose voxel kernel.

    Attributes
    ----------
    values_Gy_per_Bq_h : numpy.ndarray
        float32, odd shape, centred, indexed [k, j, i] (z, y, x) like the images: mean absorbed
        dose (Gy) in the voxel at offset (k, j, i) − centre per Bq·h of TIA in the centre voxel,
        in ``tissue`` (read-only).
    voxel_size_mm : tuple of float
        (x, y, z) voxel edges (mm), as SimpleITK spacing.
    nuclide, tissue : str
    includes_photons : bool
    method, source : str
    density_g_per_mL : float
        Density of ``tissue`` the kernel is computed for (mass of a voxel = ρ·V).
    radius_mm : float
        Offsets farther than this are zero.
    """

    values_Gy_per_Bq_h: np.ndarray = field(compare=False, repr=False)
    voxel_size_mm: tuple[float, float, float]
    nuclide: str
    tissue: str
    includes_photons: bool
    method: str
    source: str
    density_g_per_mL: float = 1.04
    radius_mm: float = 0.0
    electron_energy: str = "icrp107"

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.values_Gy_per_Bq_h.shape

    @property
    def key(self) -> tuple:
        """Hashable identity of the kernel (for caches of its spectrum)."""
        return (self.voxel_size_mm, self.nuclide, self.tissue, self.includes_photons, self.radius_mm,
                self.values_Gy_per_Bq_h.shape, self.method, self.electron_energy)


def _check_voxel_size(voxel_size_mm) -> tuple[float, float, float]:
    try:
        h = tuple(float(v) for v in voxel_size_mm)
    except (TypeError, ValueError):
        raise InputError(f"expected three voxel edges in mm, got {voxel_size_mm!r}", source="voxel_size_mm") from None
    lo, hi = VOXEL_SIZE_RANGE_MM
    if len(h) != 3 or not all(math.isfinite(v) and lo <= v <= hi for v in h):
        raise InputError(f"voxel size {voxel_size_mm!r} mm is outside the kernel method's validity: each edge must "
                         f"be between {lo:g} and {hi:g} mm (published tables span 2.21-9.28 mm)",
                         source="voxel_size_mm")
    return h


def photon_octant(h_mm, n: tuple[int, int, int], *, tissue: str, nuclide: str,
                  radius_mm: float | None = None) -> np.ndarray:
    """Photon part of a kernel, one octant (shape n+1), Gy per decay.

    ``h_mm`` and ``n`` are in array order of the caller (any fixed axis order).
    """
    h = np.asarray(h_mm, dtype=float)
    pr = photon_radial(normalise_nuclide_name(nuclide), tissue)
    inv_rho = 1.0 / (pr.density_g_per_mL * _KG_PER_MM3_PER_G_PER_ML)
    out = np.zeros(tuple(m + 1 for m in n))
    offs = octant_offsets(n)
    near = np.all(offs <= _NEAR, axis=1)
    # near offsets: radial integration, exact energy per bin
    n_near = tuple(min(_NEAR, m) for m in n)
    r_max = float(np.linalg.norm((np.array(n_near) + 1.0) * h))
    edges = np.linspace(0.0, r_max, _N_PHOTON_BINS + 1)
    centres = 0.5 * (edges[1:] + edges[:-1])
    energy = np.diff(pr.energy_within(edges))
    no = offs[near]
    out[no[:, 0], no[:, 1], no[:, 2]] = inv_rho * (pair_radial_weights(h, no, centres) @ energy)
    # farther offsets: cubature of the point kernel F(r)/(4πr²ρ), high order close to the source
    mid = np.all(offs <= _MID, axis=1) & ~near
    for sel, order in ((mid, 8), (~near & ~mid, 0)):
        fo = offs[sel]
        if not len(fo):
            continue
        nodes, weights = triangle_cubature(h, order)
        vals = np.empty(len(fo))
        step = max(1, 131072 // len(weights))
        for s in range(0, len(fo), step):
            p = fo[s:s + step, None, :] * h[None, None, :] + nodes[None, :, :]
            r = np.sqrt(np.einsum("mqa,mqa->mq", p, p))
            vals[s:s + step] = (pr.F(r) / (4.0 * np.pi * r**2)) @ weights * inv_rho
        out[fo[:, 0], fo[:, 1], fo[:, 2]] = vals
    if radius_mm is not None:
        out[_octant_distance(h, n) > radius_mm] = 0.0
    return out


def _octant_distance(h: np.ndarray, n) -> np.ndarray:
    g = np.meshgrid(*(np.arange(m + 1) * hh for m, hh in zip(n, h)), indexing="ij")
    return np.sqrt(g[0] ** 2 + g[1] ** 2 + g[2] ** 2)


def electron_octant(h_mm, model: ElectronModel, energy_J: float, n: tuple[int, int, int]) -> np.ndarray:
    """Electron part of a kernel, one octant (shape n+1), Gy per decay, for energy ``energy_J`` per decay."""
    h = np.asarray(h_mm, dtype=float)
    inv_rho = 1.0 / (photon_attenuation(model.tissue).density_g_per_mL * _KG_PER_MM3_PER_G_PER_ML)
    n_e = tuple(min(a, b) for a, b in zip(electron_offsets_reach(h), n))
    offs = octant_offsets(n_e)
    _, centres = electron_bins()
    frac = electron_bin_fractions(model.shape, model.scale_mm)
    out = np.zeros(tuple(m + 1 for m in n))
    out[offs[:, 0], offs[:, 1], offs[:, 2]] = energy_J * inv_rho * (pair_radial_weights(h, offs, centres) @ frac)
    return out


def _mirror(octant: np.ndarray) -> np.ndarray:
    """Full kernel (2n+1 per axis) from one octant, symmetric in the sign of each offset."""
    full = octant
    for ax in range(3):
        flipped = np.flip(np.delete(full, 0, axis=ax), axis=ax)
        full = np.concatenate([flipped, full], axis=ax)
    return full


def kernel_from_model(voxel_size_mm, model: ElectronModel, *, nuclide: str = "Lu-177", photons: bool = True,
                      radius_mm: float | None = None, electron_energy_J: float | None = None) -> Kernel:
    """Kernel for ``voxel_size_mm`` (x, y, z) from a fitted electron model (no validation, no cache).

    ``electron_energy_J`` defaults to the ICRP-107 electron energy per decay; pass
    ``model.energy_J`` to reproduce the tables' own energy content (validation).
    """
    h_xyz = np.asarray(voxel_size_mm, dtype=float)
    h = h_xyz[::-1]  # array order [k, j, i] = (z, y, x)
    nuc = get_nuclide(nuclide)
    e_el = nuc.electron_energy_per_decay_J if electron_energy_J is None else electron_energy_J
    if photons:
        radius = DEFAULT_RADIUS_MM if radius_mm is None else float(radius_mm)
        n = tuple(int(np.floor(radius / hh + 1e-9)) for hh in h)
    else:
        n = electron_offsets_reach(h)
        radius = float(np.linalg.norm(np.array(n) * h)) if radius_mm is None else float(radius_mm)
        n = tuple(min(a, int(np.floor(radius / hh + 1e-9))) for a, hh in zip(n, h))
    octant = electron_octant(h, model, e_el, n)
    if photons:
        octant += photon_octant(h, n, tissue=model.tissue, nuclide=nuc.name, radius_mm=radius)
    octant[_octant_distance(h, n) > radius + 1e-9] = 0.0
    values = gy_per_decay_to_gy_per_bq_h(_mirror(octant)).astype(np.float32)
    values.setflags(write=False)
    table_energy = electron_energy_J is not None and electron_energy_J == model.energy_J
    method = METHOD if photons else METHOD_ELECTRONS
    if electron_energy_J is not None:
        method = method.replace("renormalised to the ICRP-107 electron energy",
                                "keeping the tables' own electron energy" if table_energy
                                else f"renormalised to {electron_energy_J:.6g} J per decay")
    return Kernel(values, tuple(float(v) for v in h_xyz), nuc.name, model.tissue, bool(photons), method, SOURCE,
                  photon_attenuation(model.tissue).density_g_per_mL, radius,
                  "table" if table_energy else "icrp107" if electron_energy_J is None else "custom")


@functools.lru_cache(maxsize=32)
def _cached_kernel(h, nuclide, tissue, photons, radius_mm, electron_energy="icrp107"):
    model = fit_electron_model(tissue)
    return kernel_from_model(h, model, nuclide=nuclide, photons=photons, radius_mm=radius_mm,
                             electron_energy_J=model.energy_J if electron_energy == "table" else None)


def dose_kernel(voxel_size_mm: tuple[float, float, float], *, nuclide: str = "Lu-177", tissue: str = "soft",
                photons: bool = True, radius_mm: float | None = None, electron_energy: str = "icrp107") -> Kernel:
    """Dose voxel kernel for any voxel size, cubic or not (cached).

    Parameters
    ----------
    voxel_size_mm : tuple of 3 float
        Voxel edges (x, y, z) in mm, as SimpleITK spacing; each within ``VOXEL_SIZE_RANGE_MM``.
    nuclide : str
        Only nuclides with published voxel S-value tables (Lu-177).
    tissue : {"soft", "bone"}
        Medium of the whole kernel (ICRU soft tissue 1.04 g/mL or cortical bone 1.92 g/mL).
    photons : bool
        Include the photon part (default). Without it the kernel holds the electrons only.
    radius_mm : float, optional
        Offsets farther than this are zero. Default ``DEFAULT_RADIUS_MM`` with photons, the
        electrons' reach without.
    electron_energy : {"icrp107", "table"}
        Electron energy per decay of the kernel: ICRP-107 (default) or the energy the published
        tables hold (:data:`ELECTRON_ENERGIES`, docs/kernels.md).

    Returns
    -------
    Kernel
        ``values_Gy_per_Bq_h``: Gy per Bq·h of TIA in the source voxel, float32, centred, [k, j, i].

    Raises
    ------
    InputError
        Voxel size outside the method's validity, unknown tissue, nuclide without tables, bad radius.

    References
    ----------
    Lanconelli N. et al., Phys. Med. Biol. 57 (2012) 517–533, doi:10.1088/0031-9155/57/2/517.
    """
    h = tuple(round(v, 6) for v in _check_voxel_size(voxel_size_mm))
    if tissue not in TISSUES:
        raise InputError(f"tissue must be one of {', '.join(TISSUES)}, got {tissue!r}", source="tissue")
    name = normalise_nuclide_name(nuclide)
    if not available_voxel_s_value_tables(name, tissue):
        raise InputError(f"no published voxel S-value tables for {name}; kernels exist for Lu-177 only",
                         source="nuclide")
    if radius_mm is not None:
        r = float(radius_mm)
        if not (math.isfinite(r) and max(h) <= r <= _MAX_RADIUS_MM):
            raise InputError(f"radius {radius_mm!r} mm must be between the largest voxel edge ({max(h):g} mm) and "
                             f"{_MAX_RADIUS_MM:g} mm", source="radius_mm")
        radius_mm = round(r, 6)
    if electron_energy not in ELECTRON_ENERGIES:
        raise InputError(f"must be one of {', '.join(ELECTRON_ENERGIES)}, got {electron_energy!r}",
                         source="electron_energy")
    return _cached_kernel(h, name, tissue, bool(photons), radius_mm, electron_energy)
