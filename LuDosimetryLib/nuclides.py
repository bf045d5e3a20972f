"""Physical data of radionuclides: the one place the library reads half-lives and energies.

All numbers come from ``data/lu177.json`` (a copy of the project's reference file, ICRP-107 decay
data via the ``icrp107-database`` package, cross-checked with ``radioactivedecay``) and the voxel
S-value tables in ``data/voxel_s_values`` (Lanconelli et al. 2012, MIT-licensed distribution,
licence beside the tables). Every value keeps its source key; no other module types a physical
constant in.

Examples
--------
>>> lu = get_nuclide("177Lu")
>>> lu.name, round(lu.half_life_h, 3)
('Lu-177', 159.528)
>>> round(decay_factor(lu, lu.half_life_h), 6)
0.5
"""

from __future__ import annotations

import functools
import json
import math
import re
from dataclasses import dataclass, field
from importlib import resources

import numpy as np

from .errors import InputError
from .units import J_PER_KEV, S_PER_H

__all__ = [
    "Nuclide", "get_nuclide", "decay_factor", "normalise_nuclide_name", "available_nuclides",
    "VoxelSTable", "voxel_s_value_table", "available_voxel_s_value_tables", "load_reference_data",
    "PhotonAttenuation", "photon_attenuation", "load_photon_data", "xray_effective_energy_keV",
]

_DATASET = "lu177.json"


@functools.cache
def load_reference_data() -> dict:
    """Return the parsed reference data set (``data/lu177.json``), loaded once."""
    text = resources.files(__package__).joinpath("data").joinpath(_DATASET).read_text(encoding="utf-8")
    return json.loads(text)


@dataclass(frozen=True)
class Nuclide:
    """Decay data of one radionuclide.

    Attributes
    ----------
    name : str
        Normalised name, e.g. ``"Lu-177"``.
    half_life_h : float
        Physical half-life (h).
    electron_energy_per_decay_J : float or None
        Mean energy emitted as electrons (β, IC, Auger) per decay (J); None where not tabulated.
    photon_energy_per_decay_J : float or None
        Mean energy emitted as photons (γ and X) per decay (J); None where not tabulated.
    gamma_lines : tuple of (float, float)
        (energy keV, yield per decay) of the tabulated γ lines.
    positron_yield : float or None
        Positrons per decay, for PET nuclides.
    sources : dict
        Source key of each value (see ``load_reference_data()["sources"]``).
    """

    name: str
    half_life_h: float
    electron_energy_per_decay_J: float | None = None
    photon_energy_per_decay_J: float | None = None
    gamma_lines: tuple[tuple[float, float], ...] = ()
    positron_yield: float | None = None
    sources: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def decay_constant_per_h(self) -> float:
        """Physical decay constant λ = ln 2 / T½ (h⁻¹)."""
        return math.log(2.0) / self.half_life_h

    @property
    def half_life_s(self) -> float:
        """Physical half-life (s)."""
        return self.half_life_h * S_PER_H

    @property
    def mean_life_h(self) -> float:
        """Mean life 1/λ (h): the TIA (Bq·h) of 1 Bq decaying physically from t = 0 to ∞."""
        return 1.0 / self.decay_constant_per_h


_NAME_RE = re.compile(r"^\s*(?:(\d+)\s*[- ]?\s*([A-Za-z]{1,2})|([A-Za-z]{1,2})\s*[- ]?\s*(\d+))\s*(m?)\s*$")


def normalise_nuclide_name(name: str) -> str:
    """Normalise a nuclide spelling to ``"Sy-A"`` form.

    ``"177Lu"``, ``"Lu177"``, ``"lu-177"`` and ``"Lu 177"`` all become ``"Lu-177"``.

    Raises
    ------
    InputError
        If ``name`` is not a nuclide string.
    """
    m = _NAME_RE.match(str(name))
    if not m:
        raise InputError(f"{name!r} is not a valid nuclide string (expected e.g. 'Lu-177' or '177Lu')",
                         source="nuclide")
    mass = m.group(1) or m.group(4)
    symbol = (m.group(2) or m.group(3)).capitalize()
    return f"{symbol}-{mass}{m.group(5)}"


def available_nuclides() -> tuple[str, ...]:
    """Names of the nuclides in the reference data set."""
    return tuple(load_reference_data()["nuclides"])


@functools.cache
def get_nuclide(name: str) -> Nuclide:
    """Return the decay data of a nuclide.

    Parameters
    ----------
    name : str
        Any common spelling: ``"Lu-177"``, ``"177Lu"``, ``"Lu177"``, ``"Ga-68"``, ``"F-18"``.

    Raises
    ------
    InputError
        If the nuclide is not in the reference data set (the message names the data set).
    """
    key = normalise_nuclide_name(name)
    data = load_reference_data()["nuclides"]
    if key not in data:
        raise InputError(f"{key} is not in the reference data set {_DATASET} "
                         f"(available: {', '.join(data)})", source="nuclide")
    entry = data[key]
    hl = entry["half_life"]
    sources = {"half_life": hl["source"]}
    e_el = e_ph = None
    if "mean_energy_per_decay_keV" in entry:
        energies = entry["mean_energy_per_decay_keV"]
        e_el = energies["electrons_total"] * J_PER_KEV
        e_ph = energies["photons_total"] * J_PER_KEV
        sources["energies"] = energies["source"]
    gammas = tuple((float(e), float(y)) for e, y in entry.get("gamma_lines_keV_yield", []))
    if gammas:
        sources["gamma_lines"] = entry.get("gamma_lines_source", "")
    pos = entry.get("positron_yield", {}).get("value")
    return Nuclide(name=key, half_life_h=float(hl["value_h"]), electron_energy_per_decay_J=e_el,
                   photon_energy_per_decay_J=e_ph, gamma_lines=gammas,
                   positron_yield=None if pos is None else float(pos), sources=sources)


def decay_factor(nuclide: Nuclide | str, elapsed_h: float | np.ndarray) -> float | np.ndarray:
    """Fraction of activity left after ``elapsed_h`` hours: exp(−λ·Δt) (dimensionless).

    Negative ``elapsed_h`` gives factors above 1 (decay back in time).
    """
    nuc = get_nuclide(nuclide) if isinstance(nuclide, str) else nuclide
    return np.exp(-nuc.decay_constant_per_h * np.asarray(elapsed_h, dtype=float)) if np.ndim(elapsed_h) \
        else math.exp(-nuc.decay_constant_per_h * float(elapsed_h))


@dataclass(frozen=True)
class VoxelSTable:
    """One published voxel S-value table (one octant).

    Attributes
    ----------
    nuclide : str
    voxel_size_mm : float
        Edge of the cubic voxel (mm).
    tissue : str
        ``"soft"`` or ``"bone"``.
    s_values_mGy_per_MBq_s : numpy.ndarray
        Array of shape (6, 6, 6), indexed [i, j, k] by voxel offset, in mGy/(MBq·s).
    source : str
    """

    nuclide: str
    voxel_size_mm: float
    tissue: str
    s_values_mGy_per_MBq_s: np.ndarray = field(compare=False)
    source: str = ("Lanconelli et al., Phys. Med. Biol. 57 (2012) 517-533, via "
                   "MGHPhysicsResearch/MIRDCalculation@b6449c6 (MIT)")


def _s_table_dir():
    return resources.files(__package__).joinpath("data").joinpath("voxel_s_values")


def available_voxel_s_value_tables(nuclide: str = "Lu-177", tissue: str = "soft") -> tuple[float, ...]:
    """Voxel sizes (mm) for which a published table exists, ascending."""
    prefix = normalise_nuclide_name(nuclide).replace("-", "")
    sizes = []
    for entry in _s_table_dir().iterdir():
        m = re.match(rf"^{prefix}_([0-9.]+)mm_{tissue}\.txt$", entry.name)
        if m:
            sizes.append(float(m.group(1)))
    return tuple(sorted(sizes))


@functools.cache
def voxel_s_value_table(voxel_size_mm: float, *, nuclide: str = "Lu-177", tissue: str = "soft") -> VoxelSTable:
    """Load a published voxel S-value table.

    Parameters
    ----------
    voxel_size_mm : float
        One of :func:`available_voxel_s_value_tables` (mm).
    nuclide : str
    tissue : {"soft", "bone"}

    Returns
    -------
    VoxelSTable
        S-values in mGy/(MBq·s), shape (6, 6, 6).
    """
    if tissue not in ("soft", "bone"):
        raise InputError(f"tissue must be 'soft' or 'bone', got {tissue!r}", source="tissue")
    sizes = available_voxel_s_value_tables(nuclide, tissue)
    match = [s for s in sizes if abs(s - voxel_size_mm) < 1e-6]
    if not match:
        raise InputError(f"no published {tissue} table for {voxel_size_mm} mm "
                         f"(available: {', '.join(f'{s:g}' for s in sizes)} mm)", source="voxel_size_mm")
    prefix = normalise_nuclide_name(nuclide).replace("-", "")
    name = f"{prefix}_{match[0]:g}mm_{tissue}.txt"
    text = _s_table_dir().joinpath(name).read_text(encoding="utf-8")
    s = np.full((6, 6, 6), np.nan)
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 4 and all(p.isdigit() for p in parts[:3]):
            i, j, k = (int(p) for p in parts[:3])
            s[i, j, k] = float(parts[3])
    if np.isnan(s).any():
        raise InputError("table is incomplete (expected i, j, k = 0..5)", source=name)
    s.setflags(write=False)
    return VoxelSTable(normalise_nuclide_name(nuclide), match[0], tissue, s)


# --- photon interaction data (the photon part of the dose kernels) -------------------------------

_PHOTON_DATASET = "photon_attenuation.json"


@functools.cache
def load_photon_data() -> dict:
    """Return the parsed photon interaction data set (``data/photon_attenuation.json``), loaded once.

    μ/ρ and μ_en/ρ of water, soft tissue and cortical bone (mucoeff 1.0.0 elemental data, Boone &
    Chavez 1996, mixture rule over ICRU-44 compositions), the ANSI/ANS-6.4.3-1991 GP buildup
    coefficients of water and the effective X-ray energy of 177Lu; regenerated by
    ``tools/make_photon_data.py``. Sources are under the ``"sources"`` key.
    """
    text = resources.files(__package__).joinpath("data").joinpath(_PHOTON_DATASET).read_text(encoding="utf-8")
    return json.loads(text)


@dataclass(frozen=True)
class PhotonAttenuation:
    """Photon interaction data of one tissue.

    Attributes
    ----------
    tissue : str
        ``"water"``, ``"soft"`` or ``"bone"``.
    density_g_per_mL : float
        Mass density (g/mL) of the tissue (as used for the voxel S-value tables).
    energies_keV : numpy.ndarray
        Energy grid (keV).
    mu_over_rho_cm2_per_g, mu_en_over_rho_cm2_per_g : numpy.ndarray
        Mass attenuation and mass energy-absorption coefficients (cm²/g) on ``energies_keV``.
    buildup_energies_keV : numpy.ndarray
        Energies (keV) of the GP buildup coefficients (water, ANSI/ANS-6.4.3-1991).
    buildup_gp : numpy.ndarray
        Shape (n, 5): GP coefficients b, c, a, X, d at ``buildup_energies_keV``.
    sources : dict
    """

    tissue: str
    density_g_per_mL: float
    energies_keV: np.ndarray = field(compare=False)
    mu_over_rho_cm2_per_g: np.ndarray = field(compare=False)
    mu_en_over_rho_cm2_per_g: np.ndarray = field(compare=False)
    buildup_energies_keV: np.ndarray = field(compare=False)
    buildup_gp: np.ndarray = field(compare=False)
    sources: dict = field(default_factory=dict, compare=False, hash=False)

    def coefficients(self, energy_keV: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(μ/ρ, μ_en/ρ) in cm²/g at ``energy_keV``, log-log interpolated."""
        le = np.log(np.asarray(energy_keV, dtype=float))
        lx = np.log(self.energies_keV)
        mu = np.exp(np.interp(le, lx, np.log(self.mu_over_rho_cm2_per_g)))
        mu_en = np.exp(np.interp(le, lx, np.log(self.mu_en_over_rho_cm2_per_g)))
        return mu, mu_en

    def gp_coefficients(self, energy_keV: float) -> np.ndarray:
        """GP buildup coefficients (b, c, a, X, d) at ``energy_keV``, interpolated linearly in log E.

        Energies outside the tabulated range take the nearest tabulated coefficients.
        """
        le = math.log(float(energy_keV))
        lx = np.log(self.buildup_energies_keV)
        return np.array([np.interp(le, lx, self.buildup_gp[:, c]) for c in range(5)])


@functools.cache
def photon_attenuation(tissue: str = "soft") -> PhotonAttenuation:
    """Photon interaction data of ``tissue`` (``"water"``, ``"soft"`` or ``"bone"``).

    Raises
    ------
    InputError
        If the tissue is not in the data set.
    """
    data = load_photon_data()
    if tissue not in data["tissues"]:
        raise InputError(f"no photon data for tissue {tissue!r} (available: {', '.join(data['tissues'])})",
                         source="tissue")
    t = data["tissues"][tissue]
    gp = data["buildup_gp_water"]
    arrays = [np.asarray(v, dtype=float) for v in (data["energies_keV"], t["mu_over_rho_cm2_per_g"],
                                                   t["mu_en_over_rho_cm2_per_g"], gp["energies_keV"],
                                                   gp["b_c_a_X_d"])]
    for a in arrays:
        a.setflags(write=False)
    return PhotonAttenuation(tissue, float(t["density_g_per_mL"]), *arrays, sources=data["sources"])


def xray_effective_energy_keV(nuclide: str = "Lu-177") -> float:
    """Energy (keV) at which the photon kernel emits a nuclide's X-ray energy (the daughter's Kα1 line).

    The X-ray energy per decay itself is ``photon_energy_per_decay_J`` minus the γ lines.
    """
    key = normalise_nuclide_name(nuclide)
    table = load_photon_data()["xray_effective_energy_keV"]
    if key not in table:
        raise InputError(f"no X-ray effective energy for {key} in {_PHOTON_DATASET}", source="nuclide")
    return float(table[key])
