"""Red-marrow absorbed dose: self-dose (image- or blood-based) plus cross-dose.

Following the EANM bone-marrow dosimetry guideline (Hindorf et al., Eur J Nucl Med Mol Imaging
37 (2010) 1238-1250, doi:10.1007/s00259-010-1422-4), the red-marrow dose is the self-dose from
activity in the marrow plus the cross-dose from activity elsewhere (remainder of the body,
organs, bone and bone lesions)::

    D_RM = D_RM←RM + D_RM←cross

**Self-dose S-value.** Electrons only, deposited locally (absorbed fraction 1):
S_RM←RM = Δ_e / m_RM with Δ_e the mean electron energy per decay of the nuclide (β, IC and Auger
electrons; :attr:`LuDosimetryLib.nuclides.Nuclide.electron_energy_per_decay_J`, 147.9 keV for
177Lu). So D_self = Ã_RM · Δ_e / m_RM, with Ã_RM the number of decays (TIA in Bq·h × 3600 s/h).
Photons are not part of the self-dose: the photon dose to the marrow, from the marrow's own
activity as from everything else, belongs to the cross-dose term.

**Image-based self-dose.** The TIA in the lumbar vertebrae (default regions ``vertebra_l2``,
``vertebra_l3``, ``vertebra_l4``; any leaf or group names may be given) is taken as the TIA of the
red marrow they hold, and scaled to the whole red marrow by the fraction f of the red-marrow mass
in those vertebrae: Ã_RM = Ã_L2–L4 / f. f is a required input (no verified default: see
``data/red_marrow.json``).

**Blood-based self-dose.** The blood activity concentration samples (Bq/mL, at the sampling
times, not decay-corrected, like the images) are fitted (``fit``) and integrated: Ã_bl (Bq·h/mL).
The marrow TIA concentration is RMBLR · Ã_bl (red-marrow-to-blood activity concentration ratio,
taken per g of marrow; 1 is the value commonly used for 177Lu PSMA and SSTR ligands, EANM 2022,
doi:10.1007/s00259-022-05727-7), so Ã_RM = RMBLR · Ã_bl · m_RM and
D_self = RMBLR · Ã_bl · Δ_e (the marrow mass cancels in the self-dose; it still sets Ã_RM).

**Cross-dose (documented approximation).** The kernel-convolved dose map already holds the dose
to the marrow regions from every source in the field of view, including photons from the whole
body and electrons from adjacent bone lesions. The cross-dose is its mass-weighted mean over the
marrow regions minus the local electron self-deposition of the activity imaged in those regions
(Σ Ã_i Δ_e / Σ m_i), which the self-dose term accounts for instead. Activity outside the field
of view is not included; a negative estimate (electron escape from a small hot region in the
kernel) is set to 0 and flagged.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources

import numpy as np
import SimpleITK as sitk

from ..errors import InputError
from ..kinetics.models import KineticModel
from ..labels import LabelTable
from ..nuclides import Nuclide, get_nuclide
from ..results import DOSES_COLUMNS
from ..timing import check_times_increasing
from .density_scaling import reference_density_g_per_mL
from .grid import as_voxels, check_same_grid, voxel_volume_mL_of
from .led import electron_self_dose_Gy

__all__ = [
    "RedMarrowSelfDose", "RedMarrowCrossDose", "RedMarrowDose", "reference_red_marrow_mass_g",
    "red_marrow_reference_data", "electron_self_dose_Gy", "image_based_red_marrow_self_dose",
    "blood_based_red_marrow_self_dose", "red_marrow_cross_dose", "red_marrow_dose", "red_marrow_row",
    "DEFAULT_VERTEBRA_REGIONS", "MAP_QUANTITIES", "image_based_self_dose_from_tia", "cross_dose_from_region_means",
    "read_blood_samples", "BLOOD_SAMPLES_FILE",
]

#: Label names of the vertebrae of the image-based method (as in the synthetic phantom).
DEFAULT_VERTEBRA_REGIONS = ("vertebra_l2", "vertebra_l3", "vertebra_l4")
#: What a TIA map holds: TIA per voxel (Bq·h) or TIA concentration (Bq·h/mL).
MAP_QUANTITIES = ("tia_Bq_h_per_voxel", "tia_Bq_h_per_mL")


@functools.cache
def red_marrow_reference_data() -> dict:
    """The parsed ``data/red_marrow.json`` (values with sources and status)."""
    pkg = __package__.rsplit(".", 1)[0]
    text = resources.files(pkg).joinpath("data").joinpath("red_marrow.json").read_text(encoding="utf-8")
    return json.loads(text)


def reference_red_marrow_mass_g(sex: str) -> float:
    """Red (active) marrow mass of the adult reference person (g): ICRP 89, male 1170 g, female 900 g.

    Status in ``data/red_marrow.json`` (commonly cited; ICRP table text not retrieved here).
    """
    entry = red_marrow_reference_data()["red_marrow_mass_g"]
    key = str(sex).strip().lower()
    key = {"m": "male", "f": "female"}.get(key, key)
    if key not in ("male", "female"):
        raise InputError(f"expected 'male' or 'female' (or 'M'/'F'), got {sex!r}", source="sex")
    return float(entry[key])


def _nuclide(nuclide: str | Nuclide) -> Nuclide:
    nuc = get_nuclide(nuclide) if isinstance(nuclide, str) else nuclide
    if nuc.electron_energy_per_decay_J is None:
        raise InputError(f"{nuc.name} has no tabulated electron energy per decay; cannot compute the "
                         "local electron self-dose", source="nuclide")
    return nuc


@dataclass(frozen=True)
class RedMarrowSelfDose:
    """Red-marrow self-dose (electrons, local deposition).

    Attributes
    ----------
    method : {"image_based", "blood_based"}
    tia_red_marrow_Bq_h : float
        TIA in the whole red marrow (Bq·h).
    red_marrow_mass_g : float
    self_dose_Gy : float
    parameters : dict
        Inputs used (fraction, RMBLR, regions, nuclide, blood TIA concentration, ...).
    """

    method: str
    tia_red_marrow_Bq_h: float
    red_marrow_mass_g: float
    self_dose_Gy: float
    parameters: dict = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class RedMarrowCrossDose:
    """Cross-dose to the red marrow from the convolved dose map (see module docstring).

    Attributes
    ----------
    regions : tuple of str
        Leaf regions averaged over.
    mean_dose_in_regions_Gy : float
        Mass-weighted mean of the dose map over the regions (Gy).
    local_electron_dose_Gy : float
        Σ Ã_i Δ_e / Σ m_i over the regions (Gy).
    cross_dose_Gy : float
        The difference, set to 0 if negative (Gy).
    flags : str
    """

    regions: tuple[str, ...]
    mean_dose_in_regions_Gy: float
    local_electron_dose_Gy: float
    cross_dose_Gy: float
    flags: str = ""


@dataclass(frozen=True)
class RedMarrowDose:
    """Total red-marrow dose: self + cross (Gy)."""

    self_dose: RedMarrowSelfDose
    cross_dose_Gy: float
    total_dose_Gy: float
    cross: RedMarrowCrossDose | None = None


def _leaves(table: LabelTable, names: Sequence[str], param: str) -> tuple:
    groups = table.groups()
    out = []
    for n in names:
        if n in groups:
            out.extend(groups[n])
            continue
        try:
            out.append(table.by_name(n))
        except InputError:
            known = [r.name for r in table] + list(groups)
            raise InputError(f"no region or group named {n!r} in the label table (have: {', '.join(known)})",
                             source=param) from None
    return tuple(dict.fromkeys(out))


def _region_values(data, labels, leaves, name):
    arr, grid = as_voxels(data, name)
    lab, g_lab = as_voxels(labels, "labels")
    check_same_grid(g_lab, grid, reference_name="labels", other_name=name)
    mask = np.isin(lab, [r.label for r in leaves])
    if not mask.any():
        raise InputError(f"region(s) {[r.name for r in leaves]} have no voxels in the label map", source="labels")
    vals = arr[mask].astype(np.float64)
    if not np.all(np.isfinite(vals)) or np.any(vals < 0):
        raise InputError(f"values inside region(s) {[r.name for r in leaves]} must be finite and ≥ 0 "
                         f"(min {np.nanmin(vals):g})", source=name)
    return vals, mask, grid


def _region_tia_Bq_h(tia_map, labels, leaves, map_quantity, voxel_volume_mL):
    if map_quantity not in MAP_QUANTITIES:
        raise InputError(f"must be one of {MAP_QUANTITIES}, got {map_quantity!r}", source="map_quantity")
    vals, mask, grid = _region_values(tia_map, labels, leaves, "tia_map")
    if map_quantity == "tia_Bq_h_per_mL":
        v = voxel_volume_mL_of(grid, voxel_volume_mL, name="tia_map")
        return vals * v, mask, grid
    return vals, mask, grid


def _required_positive(value, name: str, hint: str) -> float:
    if value is None:
        raise InputError(f"is required: {hint}", source=name)
    v = float(value)
    if not (math.isfinite(v) and v > 0):
        raise InputError(f"must be finite and > 0, got {value!r}", source=name)
    return v


_MASS_HINT = ("the patient's total red-marrow mass in g (reference adult: "
              "reference_red_marrow_mass_g('male') = 1170 g, 'female' = 900 g, ICRP 89)")


def image_based_red_marrow_self_dose(tia_map: sitk.Image | np.ndarray, labels: sitk.Image | np.ndarray,
                                     table: LabelTable, *, map_quantity: str,
                                     vertebra_regions: Sequence[str] = DEFAULT_VERTEBRA_REGIONS,
                                     l2_l4_fraction_of_red_marrow: float | None = None,
                                     red_marrow_mass_g: float | None = None, voxel_volume_mL: float | None = None,
                                     nuclide: str | Nuclide = "Lu-177") -> RedMarrowSelfDose:
    """Image-based red-marrow self-dose from the TIA in lumbar vertebrae (Hindorf et al. 2010).

    Parameters
    ----------
    tia_map : SimpleITK.Image or numpy.ndarray
        Voxel TIA map, see ``map_quantity``.
    labels, table
        Label map on the grid of ``tia_map`` and its table.
    map_quantity : {"tia_Bq_h_per_voxel", "tia_Bq_h_per_mL"}
        What ``tia_map`` holds.
    vertebra_regions : sequence of str
        Leaf or group names of the vertebrae (e.g. ``("lumbar_spine",)``).
    l2_l4_fraction_of_red_marrow : float
        Fraction (0, 1] of the total red-marrow mass inside those vertebrae. Required.
    red_marrow_mass_g : float
        Total red-marrow mass (g). Required (see :func:`reference_red_marrow_mass_g`).
    voxel_volume_mL : float, optional
        For arrays holding concentrations.
    nuclide : str or Nuclide

    Returns
    -------
    RedMarrowSelfDose
        Ã_RM = Ã_vertebrae / f and D = Ã_RM · Δ_e / m_RM.
    """
    cited = red_marrow_reference_data()["l2_l4_fraction_of_red_marrow"]["commonly_cited"]
    f = _required_positive(l2_l4_fraction_of_red_marrow, "l2_l4_fraction_of_red_marrow",
                           "the fraction of the total red-marrow mass inside the vertebrae "
                           f"{list(vertebra_regions)} (commonly cited for L2-L4: {cited}, unverified; "
                           "see data/red_marrow.json)")
    if f > 1:
        raise InputError(f"must be in (0, 1], got {f!r}", source="l2_l4_fraction_of_red_marrow")
    m = _required_positive(red_marrow_mass_g, "red_marrow_mass_g", _MASS_HINT)
    leaves = _leaves(table, vertebra_regions, "vertebra_regions")
    tia_voxels, _, _ = _region_tia_Bq_h(tia_map, labels, leaves, map_quantity, voxel_volume_mL)
    return image_based_self_dose_from_tia(float(tia_voxels.sum()), [r.name for r in leaves],
                                          l2_l4_fraction_of_red_marrow=f, red_marrow_mass_g=m, nuclide=nuclide)


def image_based_self_dose_from_tia(tia_vertebrae_Bq_h: float, vertebra_regions: Sequence[str], *,
                                   l2_l4_fraction_of_red_marrow: float, red_marrow_mass_g: float,
                                   nuclide: str | Nuclide = "Lu-177") -> RedMarrowSelfDose:
    """Image-based self-dose from the TIA in the vertebrae (Bq·h): Ã_RM = Ã / f, D = Ã_RM · Δ_e / m_RM.

    The quantity-level form of :func:`image_based_red_marrow_self_dose`, for a TIA measured
    otherwise (e.g. the fitted, partial-volume-corrected TIA of the vertebra regions).
    """
    f = _required_positive(l2_l4_fraction_of_red_marrow, "l2_l4_fraction_of_red_marrow", "fraction (0, 1]")
    if f > 1:
        raise InputError(f"must be in (0, 1], got {f!r}", source="l2_l4_fraction_of_red_marrow")
    m = _required_positive(red_marrow_mass_g, "red_marrow_mass_g", _MASS_HINT)
    tia_vert = float(tia_vertebrae_Bq_h)
    if not (math.isfinite(tia_vert) and tia_vert >= 0):
        raise InputError(f"must be finite and ≥ 0 Bq·h, got {tia_vertebrae_Bq_h!r}", source="tia_vertebrae_Bq_h")
    tia_rm = tia_vert / f
    nuc = _nuclide(nuclide)
    return RedMarrowSelfDose("image_based", tia_rm, m, electron_self_dose_Gy(tia_rm, m, nuclide=nuc),
                             {"vertebra_regions": list(vertebra_regions), "tia_vertebrae_Bq_h": tia_vert,
                              "l2_l4_fraction_of_red_marrow": f, "nuclide": nuc.name,
                              "electron_energy_per_decay_J": nuc.electron_energy_per_decay_J})


def blood_based_red_marrow_self_dose(times_h: Sequence[float], blood_conc_Bq_per_mL: Sequence[float], *,
                                     fit: Callable[[np.ndarray, np.ndarray], KineticModel] | None = None,
                                     rmblr: float | None = None, red_marrow_mass_g: float | None = None,
                                     nuclide: str | Nuclide = "Lu-177") -> RedMarrowSelfDose:
    """Blood-based red-marrow self-dose (Hindorf et al. 2010; EANM 2022 for 177Lu ligands).

    Parameters
    ----------
    times_h : sequence of float
        Blood sampling times (h p.i.).
    blood_conc_Bq_per_mL : sequence of float
        Whole-blood activity concentration at those times (Bq/mL, not decay-corrected).
    fit : callable
        ``fit(times_h, values) -> KineticModel``; its integral gives Ã_bl (Bq·h/mL). Required.
    rmblr : float
        Red-marrow-to-blood activity concentration ratio (1 commonly used for 177Lu PSMA). Required.
    red_marrow_mass_g : float
        Total red-marrow mass (g). Required (sets Ã_RM; cancels in the self-dose).
    nuclide : str or Nuclide

    Returns
    -------
    RedMarrowSelfDose
        Ã_RM = RMBLR · Ã_bl · m_RM, D = Ã_RM · Δ_e / m_RM.
    """
    if fit is None or not callable(fit):
        raise InputError("is required: a callable fit(times_h, values) -> KineticModel for the blood curve",
                         source="fit")
    r = _required_positive(rmblr, "rmblr", "the red-marrow-to-blood activity concentration ratio "
                           "(1 is commonly used for 177Lu small-molecule PSMA ligands, EANM 2022; see "
                           "data/red_marrow.json)")
    m = _required_positive(red_marrow_mass_g, "red_marrow_mass_g", _MASS_HINT)
    t = np.asarray(times_h, dtype=np.float64)
    c = np.asarray(blood_conc_Bq_per_mL, dtype=np.float64)
    if t.ndim != 1 or t.size == 0 or t.shape != c.shape:
        raise InputError(f"need as many blood samples as times (≥ 1), got {c.size} value(s) for {t.size} time(s)",
                         source="blood_conc_Bq_per_mL")
    check_times_increasing(t, source="times_h")
    if not (np.all(np.isfinite(c)) and np.all(c >= 0)):
        raise InputError(f"concentrations must be finite and ≥ 0 Bq/mL, got {c.tolist()}",
                         source="blood_conc_Bq_per_mL")
    model = fit(t.copy(), c.copy())
    if not isinstance(model, KineticModel):
        raise InputError(f"fit returned {type(model).__name__}, not a KineticModel", source="fit")
    tiac_blood = float(model.integral(0.0, math.inf))
    if not (math.isfinite(tiac_blood) and tiac_blood >= 0):
        raise InputError(f"fitted blood curve has integral {tiac_blood!r} Bq·h/mL; expected finite ≥ 0", source="fit")
    tia_rm = r * tiac_blood * m
    nuc = _nuclide(nuclide)
    return RedMarrowSelfDose("blood_based", tia_rm, m, electron_self_dose_Gy(tia_rm, m, nuclide=nuc),
                             {"rmblr": r, "tiac_blood_Bq_h_per_mL": tiac_blood, "n_samples": int(t.size),
                              "nuclide": nuc.name, "electron_energy_per_decay_J": nuc.electron_energy_per_decay_J})


def red_marrow_cross_dose(dose_Gy: sitk.Image | np.ndarray, tia_map: sitk.Image | np.ndarray,
                          labels: sitk.Image | np.ndarray, table: LabelTable, *, map_quantity: str,
                          marrow_regions: Sequence[str] = DEFAULT_VERTEBRA_REGIONS,
                          density_g_per_mL: sitk.Image | np.ndarray | None = None,
                          voxel_volume_mL: float | None = None,
                          nuclide: str | Nuclide = "Lu-177") -> RedMarrowCrossDose:
    """Cross-dose to the red marrow from the kernel dose map (documented approximation, module docstring).

    Parameters
    ----------
    dose_Gy : SimpleITK.Image or numpy.ndarray
        Kernel-convolved (density-scaled) dose map (Gy) of the whole field of view.
    tia_map : SimpleITK.Image or numpy.ndarray
        The TIA map the dose map was computed from, same grid (see ``map_quantity``).
    labels, table
        Label map on the same grid and its table.
    map_quantity : {"tia_Bq_h_per_voxel", "tia_Bq_h_per_mL"}
    marrow_regions : sequence of str
        Leaf or group names of the marrow-bearing regions averaged over.
    density_g_per_mL : optional
        Density (g/mL) on the same grid for the voxel masses; soft tissue (1.04 g/mL) if absent.
    voxel_volume_mL : float, optional
    nuclide : str or Nuclide

    Returns
    -------
    RedMarrowCrossDose
    """
    leaves = _leaves(table, marrow_regions, "marrow_regions")
    d_vals, mask, grid = _region_values(dose_Gy, labels, leaves, "dose_Gy")
    tia_vals, _, g_tia = _region_tia_Bq_h(tia_map, labels, leaves, map_quantity, voxel_volume_mL)
    check_same_grid(grid, g_tia, reference_name="dose_Gy", other_name="tia_map")
    v = voxel_volume_mL_of(grid, voxel_volume_mL, name="dose_Gy")
    if density_g_per_mL is None:
        m = np.full(d_vals.shape, reference_density_g_per_mL("soft") * v)
    else:
        rho, g_rho = as_voxels(density_g_per_mL, "density_g_per_mL", dtype=np.float64)
        check_same_grid(grid, g_rho, reference_name="dose_Gy", other_name="density_g_per_mL")
        m = rho[mask] * v
        if not (np.all(np.isfinite(m)) and np.all(m > 0)):
            raise InputError("density inside the marrow regions must be finite and > 0 g/mL",
                             source="density_g_per_mL")
    mass = float(m.sum())
    return cross_dose_from_region_means(float((d_vals * m).sum() / mass), float(tia_vals.sum()), mass,
                                        tuple(r.name for r in leaves), nuclide=nuclide)


def cross_dose_from_region_means(mean_dose_Gy: float, tia_in_map_Bq_h: float, mass_g: float,
                                 regions: Sequence[str], *, nuclide: str | Nuclide = "Lu-177") -> RedMarrowCrossDose:
    """Cross-dose = mass-weighted mean map dose over the marrow regions − local electron deposition
    of the TIA the map holds there (Σ Ã_i Δ_e / Σ m_i); negative estimates are set to 0 and flagged."""
    local = electron_self_dose_Gy(float(tia_in_map_Bq_h), float(mass_g), nuclide=nuclide)
    cross = float(mean_dose_Gy) - local
    flags = ""
    if cross < 0:
        flags = "cross_dose_negative_set_to_zero"  # electron escape in the kernel from a small hot region
        cross = 0.0
    return RedMarrowCrossDose(tuple(regions), float(mean_dose_Gy), local, cross, flags)


def red_marrow_dose(self_dose: RedMarrowSelfDose, cross: RedMarrowCrossDose | float | None = None) -> RedMarrowDose:
    """Total red-marrow dose D = D_self + D_cross (Gy).

    ``cross`` is a :class:`RedMarrowCrossDose`, a cross-dose in Gy from another method, or None
    (self-dose only; the result says so through ``cross_dose_Gy = 0`` and ``cross = None``).
    """
    if isinstance(cross, RedMarrowCrossDose):
        c = cross.cross_dose_Gy
        obj = cross
    elif cross is None:
        c, obj = 0.0, None
    else:
        c = float(cross)
        if not (math.isfinite(c) and c >= 0):
            raise InputError(f"must be finite and ≥ 0 Gy, got {cross!r}", source="cross")
        obj = None
    return RedMarrowDose(self_dose, c, self_dose.self_dose_Gy + c, obj)


def red_marrow_row(result: RedMarrowDose, *, cycle: int | None = None,
                   injected_activity_Bq: float | None = None) -> dict:
    """A ``doses.csv`` row (columns of :data:`DOSES_COLUMNS`) for the red marrow."""
    from ..units import BQ_PER_GBQ

    row = dict.fromkeys(DOSES_COLUMNS)
    flags = [] if result.cross is None else ([result.cross.flags] if result.cross.flags else [])
    if result.cross is None and result.cross_dose_Gy == 0:
        flags.append("self_dose_only")
    method = {"blood_based": "red_marrow_blood", "image_based": "red_marrow_l2l4"}.get(
        result.self_dose.method, f"red_marrow_{result.self_dose.method}")
    row.update(region="red_marrow", kind="organ", cycle=cycle, dose_Gy=result.total_dose_Gy, dose_method=method,
               mass_g=result.self_dose.red_marrow_mass_g, flags=";".join(flags),
               self_dose_Gy=result.self_dose.self_dose_Gy, cross_dose_Gy=result.cross_dose_Gy)
    if injected_activity_Bq is not None:
        row["dose_per_activity_Gy_per_GBq"] = result.total_dose_Gy / (injected_activity_Bq / BQ_PER_GBQ)
    return row


#: Blood samples of a patient folder (docs/dose.md): ``time_h`` (h p.i. of the cycle's injection,
#: mid-sample), ``activity_concentration_Bq_per_mL`` (whole blood, at sampling time, NOT decay
#: corrected, like the images), optional ``cycle`` (default 1).
BLOOD_SAMPLES_FILE = "blood_samples.csv"


def read_blood_samples(path, *, cycle: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Times (h p.i.) and whole-blood concentrations (Bq/mL) of one cycle from ``blood_samples.csv``.

    Raises
    ------
    InputError
        Missing columns, non-numeric or negative values, times not increasing, fewer than 2 samples
        for the cycle (file and line named).
    """
    import csv
    from pathlib import Path

    p = Path(path)
    try:
        with p.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            header = list(reader.fieldnames or ())
            rows = list(reader)
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", source=str(p)) from None
    need = ("time_h", "activity_concentration_Bq_per_mL")
    missing = [c for c in need if c not in header]
    if missing:
        raise InputError(f"missing column(s) {missing}; expected time_h, activity_concentration_Bq_per_mL "
                         "[, cycle]", source=str(p))
    t, c = [], []
    for i, row in enumerate(rows, start=2):
        try:
            cyc = int(row.get("cycle") or 1)
            ti, ci = float(row["time_h"]), float(row["activity_concentration_Bq_per_mL"])
        except ValueError:
            raise InputError(f"line {i}: expected numbers, got {dict(row)}", source=str(p)) from None
        if cyc != cycle:
            continue
        if not (math.isfinite(ti) and ti > 0 and math.isfinite(ci) and ci >= 0):
            raise InputError(f"line {i}: time_h must be > 0 h and the concentration ≥ 0 Bq/mL, got {ti}, {ci}",
                             source=str(p))
        t.append(ti)
        c.append(ci)
    if len(t) < 2:
        raise InputError(f"{len(t)} blood sample(s) for cycle {cycle}; the blood-based method needs ≥ 2",
                         source=str(p))
    order = np.argsort(t)
    t_arr, c_arr = np.asarray(t)[order], np.asarray(c)[order]
    check_times_increasing(t_arr, source=str(p))
    return t_arr, c_arr
