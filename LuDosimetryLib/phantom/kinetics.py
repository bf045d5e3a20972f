"""True kinetics of the synthetic patient: one analytic curve per region, plus urinary excretion.

Every region r gets a *biological* uptake–washout fraction of the injected activity

    g_r(t) = U_r (e^(−β_w,r t) − e^(−β_u,r t)),   β = ln 2 / T_bio,

and its activity is A_r(t) = A0 g_r(t) e^(−λ t) (λ physical), i.e. a
:class:`~LuDosimetryLib.kinetics.models.SumOfExponentials` with effective rates β + λ ≥ λ.
Urinary excretion is its own compartment: the biological fraction voided by time t is
X(t) = Σ_i E_i (1 − e^(−k_i t)); the excreted activity (still decaying, outside the body) is
A0 X(t) e^(−λ t). The remainder of the body closes the balance,

    A_remainder(t) = A0 e^(−λ t) [1 − X(t) − Σ_r g_r(t)],

so whole-body retention (all regions + remainder) + excreted = A0 e^(−λ t) exactly, and the
whole-body retention does not depend on the organ sum. Activity within a region is uniform.

The parameters below are *chosen* (not fitted) so that the resulting absorbed doses per GBq lie
inside published ranges; docs/phantom.md lists the sources and the doses that result.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np

from ..errors import InputError
from ..kinetics.models import SumOfExponentials
from ..nuclides import Nuclide, get_nuclide
from .anatomy import REGIONS, nominal_volume_mL

__all__ = ["RegionKinetics", "ExcretionModel", "LU_KINETICS", "LU_EXCRETION", "DEFAULT_PET_MISMATCH",
           "MARROW_REGIONS", "cycle_kinetics", "pet_kinetics", "region_curves", "excreted_curve",
           "whole_body_curve", "led_dose_Gy", "expand_mismatch"]

_LN2 = math.log(2.0)


@dataclass(frozen=True)
class RegionKinetics:
    """Biological uptake–washout of one region.

    Attributes
    ----------
    name : str
        Region name (label table).
    uptake_fraction : float
        U: fraction of the injected activity the region would hold without any washout or decay.
    uptake_half_life_h, washout_half_life_h : float
        Biological half-lives (h) of uptake and washout; ``math.inf`` washout = no biological
        washout (effective rate = physical).
    source : str
        Where the order of magnitude comes from (see docs/phantom.md).
    """

    name: str
    uptake_fraction: float
    uptake_half_life_h: float
    washout_half_life_h: float
    source: str = ""

    @property
    def uptake_rate_per_h(self) -> float:
        return _LN2 / self.uptake_half_life_h

    @property
    def washout_rate_per_h(self) -> float:
        return 0.0 if math.isinf(self.washout_half_life_h) else _LN2 / self.washout_half_life_h

    def biological_fraction(self, t_h: np.ndarray | float) -> np.ndarray:
        t = np.asarray(t_h, dtype=float)
        return self.uptake_fraction * (np.exp(-self.washout_rate_per_h * t) - np.exp(-self.uptake_rate_per_h * t))


@dataclass(frozen=True)
class ExcretionModel:
    """Cumulative biological fraction voided in urine: X(t) = Σ E_i (1 − e^(−ln2 t / T_i))."""

    fractions: tuple[float, ...]
    half_lives_h: tuple[float, ...]
    source: str = ""

    def fraction(self, t_h: np.ndarray | float) -> np.ndarray:
        t = np.asarray(t_h, dtype=float)
        return sum(e * -np.expm1(-_LN2 / th * t) for e, th in zip(self.fractions, self.half_lives_h))


_SRC_KID = "kidneys 0.4-0.9 Gy/GBq: Kabasakal 2017, Hohberg 2016, Delker 2016, Violet 2019"
_SRC_SAL = "salivary glands 0.5-1.9 Gy/GBq: Hohberg 2016, Kabasakal 2017, Delker 2016, Violet 2019"
_SRC_LAC = "lacrimal glands 0.4-3 Gy/GBq: Hohberg 2016 (2.82), Violet 2019"
_SRC_LIV = "liver/spleen ~0.1-0.2 Gy/GBq: Delker 2016, Violet 2019"
_SRC_RM = "red marrow 0.02-0.05 Gy/GBq: Kabasakal 2017 (0.030), Kratochwil 2016"
_SRC_LES = "lesions a few Gy/GBq (bone and nodal): Delker 2016, Violet 2019"
_SRC_URI = "fast renal elimination, ~50 % excreted at 24 h: Kabasakal 2017 (56.5 ± 8.8 % at 24 h)"

#: Regions whose uptake is given per mL of spongiosa (uniform marrow concentration).
MARROW_REGIONS = ("red_marrow", "vertebra_l1", "vertebra_l2", "vertebra_l3", "vertebra_l4", "vertebra_l5")
_MARROW_UPTAKE_PER_ML = 1.1e-5


def _marrow(name: str) -> RegionKinetics:
    return RegionKinetics(name, _MARROW_UPTAKE_PER_ML * nominal_volume_mL(name), 0.1, 30.0, _SRC_RM)


#: 177Lu-PSMA-617 kinetics per region (cycle 1). Regions not listed (remainder, cortical bone)
#: carry no specific uptake: cortical bone follows nothing (0), the remainder closes the balance.
LU_KINETICS: tuple[RegionKinetics, ...] = (
    RegionKinetics("lung_left", 0.006, 0.1, 20.0, "blood-pool-like, low"),
    RegionKinetics("lung_right", 0.006, 0.1, 20.0, "blood-pool-like, low"),
    *(_marrow(n) for n in MARROW_REGIONS),
    RegionKinetics("liver", 0.038, 0.5, 60.0, _SRC_LIV),
    RegionKinetics("spleen", 0.006, 1.0, 50.0, _SRC_LIV),
    RegionKinetics("kidney_cortex_left", 0.0195, 1.0, 60.0, _SRC_KID),
    RegionKinetics("renal_pelvis_left", 0.004, 0.25, 2.0, "urine transit: holds urine early"),
    RegionKinetics("kidney_cortex_right", 0.0190, 1.0, 60.0, _SRC_KID),
    RegionKinetics("renal_pelvis_right", 0.004, 0.25, 2.0, "urine transit: holds urine early"),
    RegionKinetics("urinary_bladder", 0.08, 1.0, 3.0, "bladder content, voiding ~3 h"),
    RegionKinetics("parotid_left", 0.0042, 1.5, 45.0, _SRC_SAL),
    RegionKinetics("parotid_right", 0.0042, 1.5, 45.0, _SRC_SAL),
    RegionKinetics("submandibular_left", 0.0012, 1.5, 45.0, _SRC_SAL),
    RegionKinetics("submandibular_right", 0.0012, 1.5, 45.0, _SRC_SAL),
    RegionKinetics("lacrimal_left", 0.00022, 1.5, 40.0, _SRC_LAC),
    RegionKinetics("lacrimal_right", 0.00022, 1.5, 40.0, _SRC_LAC),
    RegionKinetics("lesion_bone_1", 0.016, 3.0, 200.0, _SRC_LES),
    RegionKinetics("lesion_bone_2", 0.0045, 3.0, 200.0, _SRC_LES),
    RegionKinetics("lesion_bone_3", 0.0007, 3.0, 200.0, _SRC_LES),
    RegionKinetics("lesion_node_1", 0.017, 2.0, 150.0, _SRC_LES),
    RegionKinetics("lesion_node_2", 0.0047, 2.0, 150.0, _SRC_LES),
    RegionKinetics("lesion_node_3", 0.0002, 2.0, 150.0, _SRC_LES),
)

#: Urinary excretion of 177Lu-PSMA-617 (biological): ~50 % voided by 24 h, 75 % in all.
LU_EXCRETION = ExcretionModel((0.50, 0.25), (8.0, 60.0), _SRC_URI)

#: Lesion uptake in later cycles relative to cycle 1 (a partial response), per cycle index ≥ 2.
LESION_UPTAKE_LATER_CYCLES = 0.8

#: Default 68Ga-PSMA-11 vs 177Lu-PSMA-617 mismatch m_r (U_Ga = U_Lu (1 + m_r)); leaves or groups.
DEFAULT_PET_MISMATCH: dict[str, float] = {
    "kidney_left": 0.20, "kidney_right": 0.15, "salivary_glands": -0.25, "lacrimal_glands": -0.10,
    "liver": 0.30, "spleen": 0.40, "lesion_bone_1": 0.10, "lesion_bone_2": -0.15, "lesion_bone_3": 0.20,
    "lesion_node_1": -0.10, "lesion_node_2": 0.25, "lesion_node_3": 0.0,
}


def cycle_kinetics(cycle: int = 1, *, base: tuple[RegionKinetics, ...] = LU_KINETICS) -> tuple[RegionKinetics, ...]:
    """Region kinetics of a therapy cycle (lesion uptake × 0.8 from cycle 2 on).

    ``base`` is the patient's cycle-1 kinetics (default: the reference patient's, :data:`LU_KINETICS`;
    a synthetic cohort varies it per patient).
    """
    if cycle <= 1:
        return base
    kinds = {s.region.name: s.region.kind for s in REGIONS}
    return tuple(replace(k, uptake_fraction=k.uptake_fraction * LESION_UPTAKE_LATER_CYCLES)
                 if kinds[k.name] == "lesion" else k for k in base)


def expand_mismatch(mismatch: Mapping[str, float] | float | None) -> dict[str, float]:
    """Per-leaf mismatch m_r from None (default), a number (all regions) or a mapping of leaves/groups.

    Raises
    ------
    InputError
        For an unknown region or group name, or m ≤ −1 (a negative 68Ga uptake).
    """
    leaves = [k.name for k in LU_KINETICS]
    if mismatch is None:
        mismatch = DEFAULT_PET_MISMATCH
    if isinstance(mismatch, int | float):
        out = dict.fromkeys(leaves, float(mismatch))
    else:
        groups: dict[str, list[str]] = {}
        for s in REGIONS:
            if s.region.group:
                groups.setdefault(s.region.group, []).append(s.region.name)
        out = dict.fromkeys(leaves, 0.0)
        for key, value in mismatch.items():
            names = groups.get(key, [key])
            for n in names:
                if n not in out:
                    raise InputError(f"unknown region or group {key!r} (regions: {', '.join(leaves)}; "
                                     f"groups: {', '.join(groups)})", source="pet_mismatch")
                out[n] = float(value)
    bad = {k: v for k, v in out.items() if not (math.isfinite(v) and v > -1.0)}
    if bad:
        raise InputError(f"mismatch must be finite and > -1 (U_Ga = U_Lu (1 + m)), got {bad}", source="pet_mismatch")
    return out


def pet_kinetics(mismatch: Mapping[str, float] | float | None = None, *,
                 base: tuple[RegionKinetics, ...] = LU_KINETICS) -> tuple[RegionKinetics, ...]:
    """68Ga-PSMA-11 region kinetics: same biological rates as 177Lu, U_Ga = U_Lu (1 + m_r)."""
    m = expand_mismatch(mismatch)
    return tuple(replace(k, uptake_fraction=k.uptake_fraction * (1.0 + m[k.name])) for k in base)


def _merge(terms: list[tuple[float, float]]) -> SumOfExponentials:
    acc: dict[float, float] = {}
    for a, b in terms:
        key = round(b, 15)
        acc[key] = acc.get(key, 0.0) + a
    items = sorted((b, a) for b, a in acc.items() if a != 0.0)
    return SumOfExponentials(tuple(a for _, a in items), tuple(b for b, _ in items))


def _region_curve(k: RegionKinetics, a0: float, lam: float) -> SumOfExponentials:
    return _merge([(a0 * k.uptake_fraction, k.washout_rate_per_h + lam),
                   (-a0 * k.uptake_fraction, k.uptake_rate_per_h + lam)])


def excreted_curve(excretion: ExcretionModel, nuclide: Nuclide | str, injected_Bq: float) -> SumOfExponentials:
    """Cumulative excreted activity A0 X(t) e^(−λt) (Bq), still decaying outside the body."""
    nuc = get_nuclide(nuclide) if isinstance(nuclide, str) else nuclide
    lam = nuc.decay_constant_per_h
    terms = [(injected_Bq * sum(excretion.fractions), lam)]
    terms += [(-injected_Bq * e, _LN2 / th + lam) for e, th in zip(excretion.fractions, excretion.half_lives_h)]
    return _merge(terms)


def whole_body_curve(excretion: ExcretionModel, nuclide: Nuclide | str, injected_Bq: float) -> SumOfExponentials:
    """Whole-body retention A0 e^(−λt) (1 − X(t)) (Bq)."""
    nuc = get_nuclide(nuclide) if isinstance(nuclide, str) else nuclide
    lam = nuc.decay_constant_per_h
    terms = [(injected_Bq * (1.0 - sum(excretion.fractions)), lam)]
    terms += [(injected_Bq * e, _LN2 / th + lam) for e, th in zip(excretion.fractions, excretion.half_lives_h)]
    return _merge(terms)


def region_curves(kinetics: tuple[RegionKinetics, ...], excretion: ExcretionModel, nuclide: Nuclide | str,
                  injected_Bq: float) -> dict[str, SumOfExponentials]:
    """Activity curve (Bq vs h p.i.) of every region with uptake, and of ``"remainder"``.

    Raises
    ------
    InputError
        If the remainder would become negative at some time (uptakes too large for the balance).
    """
    nuc = get_nuclide(nuclide) if isinstance(nuclide, str) else nuclide
    lam = nuc.decay_constant_per_h
    curves = {k.name: _region_curve(k, injected_Bq, lam) for k in kinetics}
    terms = list(whole_body_curve(excretion, nuc, injected_Bq).exponential_terms())
    for c in curves.values():
        terms += [(-a, b) for a, b in c.exponential_terms()]
    remainder = _merge(terms)
    t = np.concatenate([np.linspace(0, 2, 201), np.geomspace(2, 1e4, 400)])
    bio = 1.0 - excretion.fraction(t) - sum(k.biological_fraction(t) for k in kinetics)
    if np.min(bio) < -1e-12:
        raise InputError(f"the remainder of the body would hold a negative activity (minimum fraction "
                         f"{np.min(bio):.4f} at {t[np.argmin(bio)]:.2f} h): region uptakes too large",
                         source="kinetics")
    curves["remainder"] = remainder
    return curves


def led_dose_Gy(tia_Bq_h: float, mass_g: float, nuclide: Nuclide | str = "Lu-177") -> float:
    """Absorbed dose (Gy) by electron local deposition (approximate large-volume limit).

    The library's one implementation, :func:`LuDosimetryLib.dose.led.electron_self_dose_Gy`.
    """
    from ..dose.led import electron_self_dose_Gy

    return electron_self_dose_Gy(tia_Bq_h, mass_g, nuclide=nuclide)
