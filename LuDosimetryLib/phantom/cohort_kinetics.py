"""Patient-specific 177Lu washout tied to the PET kinetics, for synthetic cohorts (docs/prediction.md).

The relation (known to the truth, not to the prediction), with the tie **on**:

- each organ (both sides together) and each lesion gets a patient-specific **uptake rate**:
  T_u = T_u,ref · exp(σ_u z), z ~ N(0, 1), the same for 68Ga and 177Lu (the dynamic PET sees it);
- its biological **washout half-life** follows it: T_w = T_w,ref · exp(γ σ_u z), i.e.
  T_w ∝ T_u^γ (uptake and release rates scale together, as K_1 and k_2 do with perfusion and
  exchange: a patient whose organ takes the ligand up slowly also releases it slowly).

With the tie **off**, the uptake half-life stays at its reference value and the washout factor is
exp(γ σ_u z') with an independent z': the washout has the same marginal distribution, but nothing
in the PET predicts it (a varying uptake rate alone would already inform a kinetic model through the
anchoring of the late uptake, so it is switched off with the tie). Both draws are always made, so
the other random quantities of a cohort are the same with the tie on or off.

:class:`WashoutTie` holds σ_u (``uptake_log_sd``) and γ (``exponent``). :func:`tie_washout` applies
it to one patient's kinetics. :func:`synthetic_feature_table` is the cheap path used to test the
leave-one-patient-out validation: region-level PET features and measured doses per GBq drawn from
the same generator (analytic curves, measurement noise of stated size) without imaging.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from ..errors import InputError
from . import kinetics
from .anatomy import REGIONS, nominal_volume_mL

__all__ = ["WashoutTie", "tie_washout", "SyntheticFeatureSettings", "synthetic_feature_table",
           "PHANTOM_DYNAMIC_FOV", "STATIC_TIME_H"]

#: Regions of the phantom inside its single-bed dynamic PET (kidneys' bed, 26 cm): covered or partly.
PHANTOM_DYNAMIC_FOV: dict[str, str] = {
    "kidney_cortex_left": "covered", "kidney_cortex_right": "covered", "spleen": "covered", "liver": "partly",
    "lesion_bone_2": "covered", "lesion_node_1": "covered"}

#: Mid time (h p.i.) of the phantom's static PET (65 min start, 12 min) used by the cheap path.
STATIC_TIME_H = 71.0 / 60.0


@dataclass(frozen=True)
class WashoutTie:
    """Tie of the 177Lu washout to the PET-visible uptake rate (module docstring).

    Attributes
    ----------
    enabled : bool
        True: uptake half-life factor exp(σ_u z) and washout factor exp(γ σ_u z); False: uptake at
        its reference, washout factor exp(γ σ_u z') with z' independent.
    uptake_log_sd : float
        σ_u, log-sd of the uptake half-life across patients (default 0.3).
    exponent : float
        γ (default 0.6): T_w ∝ T_u^γ.
    """

    enabled: bool = True
    uptake_log_sd: float = 0.3
    exponent: float = 0.6

    def __post_init__(self) -> None:
        for name in ("uptake_log_sd", "exponent"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise InputError(f"must be a finite number ≥ 0, got {v!r}", source=f"washout_tie.{name}")


def _key(name: str, kind: str, group: str) -> str:
    """Organs share one draw per organ (both sides), lesions one each."""
    if kind == "lesion":
        return name
    return re.sub(r"_(left|right)$", "", group or name)


def tie_washout(kin: Sequence[kinetics.RegionKinetics], rng: np.random.Generator, tie: WashoutTie
                ) -> tuple[kinetics.RegionKinetics, ...]:
    """One patient's kinetics with patient-specific uptake rates and (tied or independent) washout factors."""
    specs = {s.region.name: s.region for s in REGIONS}
    draws: dict[str, tuple[float, float]] = {}
    out = []
    for k in kin:
        r = specs[k.name]
        key = _key(k.name, r.kind, r.group)
        if key not in draws:
            z_u = float(rng.normal())
            z_other = float(rng.normal())
            draws[key] = (z_u, z_u if tie.enabled else z_other)
        z_u, z_w = draws[key]
        t_u = k.uptake_half_life_h * (math.exp(tie.uptake_log_sd * z_u) if tie.enabled else 1.0)
        t_w = k.washout_half_life_h * math.exp(tie.exponent * tie.uptake_log_sd * z_w)
        out.append(replace(k, uptake_half_life_h=t_u, washout_half_life_h=t_w))
    return tuple(out)


@dataclass(frozen=True)
class SyntheticFeatureSettings:
    """The cheap path's cohort: region-level PET features and measured doses (no imaging).

    Attributes
    ----------
    n_patients, seed : int
    tie : WashoutTie
    pet_log_sd : float
        Measurement noise (log-sd) of the late 68Ga uptake (GTM-corrected; ±5 % on the phantom).
    uptake_rate_log_sd : float
        Noise (log-sd) of the uptake rate fitted on the dynamic frames (0.10; phantom GTM fits ±14 %).
    spect_log_sd : float
        Noise (log-sd) of the measured SPECT dose (0.05).
    half_life_log_sd : float
        Noise (log-sd) of the measured effective half-life (SPECT fit; 0.08).
    mismatch_sd : float
        Patient-level normal deviation added to the default 68Ga/177Lu mismatch (as the cohort).
    organ_uptake_log_sd, organ_washout_log_sd, lesion_uptake_log_sd, lesion_washout_log_sd : float
        As :class:`~LuDosimetryLib.phantom.cohort.CohortSettings`.
    """

    n_patients: int = 12
    seed: int = 0
    tie: WashoutTie = field(default_factory=WashoutTie)
    pet_log_sd: float = 0.05
    uptake_rate_log_sd: float = 0.10
    spect_log_sd: float = 0.05
    half_life_log_sd: float = 0.08
    mismatch_sd: float = 0.10
    organ_uptake_log_sd: float = 0.20
    organ_washout_log_sd: float = 0.20
    lesion_uptake_log_sd: float = 0.50
    lesion_washout_log_sd: float = 0.25


#: Regions the cheap path reports (organs at risk and lesions; urine compartments left out).
_REPORTED = ("kidney_cortex_left", "kidney_cortex_right", "parotid_left", "parotid_right", "submandibular_left",
             "submandibular_right", "lacrimal_left", "lacrimal_right", "liver", "spleen", "lesion_bone_1",
             "lesion_bone_2", "lesion_bone_3", "lesion_node_1", "lesion_node_2", "lesion_node_3")


def synthetic_feature_table(settings: SyntheticFeatureSettings = SyntheticFeatureSettings()) -> list[dict]:
    """Per patient and region: PET features and the measured 177Lu dose per GBq (cheap path).

    Each patient: the reference kinetics with the cohort's log-normal factors
    (:func:`~LuDosimetryLib.phantom.cohort.vary_kinetics`), then :func:`tie_washout`; 68Ga uptake
    U_Ga = U_Lu (1 + m). Features: ``late_fraction_ga`` = g_Ga(t_static) × noise, ``t_ref_h``,
    ``uptake_rate_fit_per_h`` = β_u × noise for regions in :data:`PHANTOM_DYNAMIC_FOV` (empty
    otherwise), ``volume_mL`` and ``mass_g`` (phantom shapes and densities). Measured:
    ``measured_dose_Gy_per_GBq`` = electron local deposition of the true TIA per GBq × noise (the
    phantom's truth convention), ``measured_effective_half_life_h`` = true T_eff × noise.

    Returns rows with keys ``patient, region, kind, group, dynamic_fov, late_fraction_ga, t_ref_h,
    uptake_rate_fit_per_h, volume_mL, mass_g, dose_per_tia_Gy_per_Bq_h`` (electron local deposition, the
    truth's convention), ``activity_GBq`` (7.4), ``measured_dose_Gy_per_GBq, measured_effective_half_life_h,
    true_washout_half_life_h, true_uptake_half_life_h``.
    """
    from ..dose.led import electron_self_dose_Gy
    from ..nuclides import get_nuclide
    from .cohort import CohortSettings, vary_kinetics

    lam = get_nuclide("Lu-177").decay_constant_per_h
    s = settings
    cs = CohortSettings(n_patients=s.n_patients, seed=s.seed, organ_uptake_log_sd=s.organ_uptake_log_sd,
                        organ_washout_log_sd=s.organ_washout_log_sd, lesion_uptake_log_sd=s.lesion_uptake_log_sd,
                        lesion_washout_log_sd=s.lesion_washout_log_sd)
    specs = {r.region.name: r for r in REGIONS}
    rng = np.random.default_rng([s.seed, 0x18])
    rows = []
    for i in range(s.n_patients):
        pid = f"P{i + 1:03d}"
        kin = {k.name: k for k in tie_washout(vary_kinetics(rng, cs), rng, s.tie)}
        shift = float(rng.normal(0, s.mismatch_sd))
        mismatch = {k: max(v + shift, -0.9) for k, v in kinetics.expand_mismatch(None).items()}
        for name in _REPORTED:
            k, spec = kin[name], specs[name]
            t = STATIC_TIME_H
            g_ga = k.uptake_fraction * (1 + mismatch[name]) * (math.exp(-k.washout_rate_per_h * t)
                                                                 - math.exp(-k.uptake_rate_per_h * t))
            tia_per_GBq = 1e9 * k.uptake_fraction * (1 / (k.washout_rate_per_h + lam) - 1 / (k.uptake_rate_per_h + lam))
            volume = nominal_volume_mL(name)
            mass = volume * spec.density_g_per_mL
            fov = PHANTOM_DYNAMIC_FOV.get(name, "not")
            fit = k.uptake_rate_per_h * math.exp(rng.normal(0, s.uptake_rate_log_sd)) if fov != "not" else None
            t_eff = math.log(2) / (k.washout_rate_per_h + lam)
            rows.append({
                "patient": pid, "region": name, "kind": spec.region.kind, "group": spec.region.group,
                "dynamic_fov": fov, "late_fraction_ga": g_ga * math.exp(rng.normal(0, s.pet_log_sd)),
                "t_ref_h": t, "uptake_rate_fit_per_h": fit, "volume_mL": volume, "mass_g": mass,
                "dose_per_tia_Gy_per_Bq_h": electron_self_dose_Gy(1.0, mass), "activity_GBq": 7.4,
                "measured_dose_Gy_per_GBq": electron_self_dose_Gy(tia_per_GBq, mass)
                * math.exp(rng.normal(0, s.spect_log_sd)),
                "measured_effective_half_life_h": t_eff * math.exp(rng.normal(0, s.half_life_log_sd)),
                "true_washout_half_life_h": k.washout_half_life_h, "true_uptake_half_life_h": k.uptake_half_life_h})
    return rows
