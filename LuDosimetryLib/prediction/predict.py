"""Predicted 177Lu TIA and absorbed dose per GBq per region from biological 68Ga uptake.

:func:`predict_regions` takes :class:`~.decay.BiologicalTac` per region (dynamic frames and/or the
static) and returns one :class:`RegionPrediction` each (docs/prediction.md for the method).
:func:`prediction_fit_rows` turns them into ``fits.csv`` rows; the doses.csv rows are
:func:`~.pipeline.reported_dose_rows` (through the dose engine, :mod:`.dose_engine`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from ..kernels import sphere_s_value
from ..kinetics.models import SumOfExponentials
from ..nuclides import get_nuclide, photon_attenuation
from ..units import BQ_PER_GBQ, BQ_PER_MBQ, KG_PER_G, S_PER_H
from .decay import BiologicalTac
from .models import kinetic_rates
from .parameters import PredictionParameters, lookup_factor
from .population import PopulationTable, load_population_table
from .recovery import sphere_recovery
from .uptake import fit_uptake_rate, lu177_curve

__all__ = ["RegionPrediction", "predict_regions", "prediction_fit_rows",
           "organ_s_value_Gy_per_Bq_h", "lesion_s_value_Gy_per_Bq_h", "aggregate_groups"]

#: ``prediction_model`` column of prediction/doses.csv (``dose_method`` is the S-value


@dataclass(frozen=True)
class RegionPrediction:
    """Predicted 177Lu kinetics and dose of one region, per GBq of 177Lu administered.

    Attributes
    ----------
    region, kind, group : str
    t_ref_h : float
        Time of the late 68Ga value (h p.i. of the PET).
    late_fraction_ga : float
        Biological 68Ga uptake at ``t_ref_h`` (fraction of injected activity), recovery-corrected.
    pet_recovery : float
    uptake_rate_per_h : float
        Biological β_u (h⁻¹); ``uptake_rate_source`` says where it came from.
    uptake_rate_source : str
        ``"pet_fit"`` or ``"population"``.
    washout_rate_per_h : float
        Biological β_w (h⁻¹) from the population table row ``population_key``.
    effective_half_life_h : float
        177Lu effective washout half-life of the table row (h).
    scale : float
        Ligand ratio × sink factor (organs) × cohort factor.
    uptake_fraction_lu : float
        U of the predicted 177Lu curve.
    curve_per_GBq : SumOfExponentials
        Predicted activity (Bq) for 1 GBq of 177Lu.
    tia_Bq_h_per_GBq : float
    volume_mL, mass_g : float
    s_value_Gy_per_Bq_h : float
    dose_Gy_per_GBq : float
    spect_recovery : float
    flags : tuple of str
    uptake_rate_fit_per_h : float
    model : str
    """

    region: str
    kind: str
    group: str
    t_ref_h: float
    late_fraction_ga: float
    pet_recovery: float
    uptake_rate_per_h: float
    uptake_rate_source: str
    washout_rate_per_h: float
    effective_half_life_h: float
    population_key: str
    scale: float
    uptake_fraction_lu: float
    curve_per_GBq: SumOfExponentials
    tia_Bq_h_per_GBq: float
    volume_mL: float
    mass_g: float
    s_value_Gy_per_Bq_h: float
    dose_Gy_per_GBq: float
    spect_recovery: float = 1.0
    flags: tuple[str, ...] = field(default=())
    #: Biological uptake rate fitted on the dynamic frames (h⁻¹), NaN without dynamic frames or a converged fit.
    uptake_rate_fit_per_h: float = float("nan")
    #: Prediction model of the rates (``population`` or ``kinetic``; ``calibrated`` scales the dose later).
    model: str = "population"


def organ_s_value_Gy_per_Bq_h(mass_g: float) -> float:
    """Self-dose S (Gy per Bq·h) by local deposition of the 177Lu electron energy (ICRP 107) in ``mass_g``."""
    e = get_nuclide("Lu-177").electron_energy_per_decay_J
    return e * S_PER_H / (mass_g * KG_PER_G)


def lesion_s_value_Gy_per_Bq_h(volume_mL: float, mass_g: float, *, model: str = "sphere") -> float:
    """Lesion self-dose S (Gy per Bq·h): uniform sphere of ``volume_mL`` (point kernels, photons included),
    its absorbed energy put into ``mass_g``; or local electron deposition (``model="led"``)."""
    if model == "led":
        return organ_s_value_Gy_per_Bq_h(mass_g)
    soft_mass_g = volume_mL * photon_attenuation("soft").density_g_per_mL
    return sphere_s_value(volume_mL) * soft_mass_g / mass_g


def _anchor(bio: BiologicalTac, idx: np.ndarray, washout: float, uptake: float) -> tuple[float, float]:
    """U per mL fitting the selected frames' mean exactly, and their mean time."""
    t = bio.time_h[idx]
    g = bio.fraction_per_mL[idx]
    shape = np.exp(-washout * t) - np.exp(-uptake * t)
    u = float(np.sum(g) / np.sum(shape))
    return u, float(np.mean(t))


def predict_regions(tacs: Sequence[BiologicalTac], *, params: PredictionParameters | None = None,
                    population: PopulationTable | None = None, masses_g: Mapping[str, float] | None = None,
                    volumes_mL: Mapping[str, float] | None = None, groups: Mapping[str, str] | None = None,
                    warn=None) -> tuple[RegionPrediction, ...]:
    """Predict each region's 177Lu curve, TIA and dose per GBq.

    Parameters
    ----------
    tacs : sequence of BiologicalTac
        From :func:`~.decay.to_biological`; ``frame_source`` marks dynamic and static frames.
    params : PredictionParameters
    population : PopulationTable, optional
        Default: ``params.population_table`` or the shipped table.
    masses_g, volumes_mL : mapping, optional
        True region masses (g) and volumes (mL) (e.g. from the CT-based segmentation); default:
        the TAC's volume and soft-tissue density (flag ``mass_from_volume``).
    groups : mapping, optional
        Region → group name (for table and factor look-ups).
    warn : callable, optional
        ``warn(message, source=...)`` for run.json (e.g. ``RunRecord.warn``).

    Raises
    ------
    InputError
        A region with neither a static nor a late dynamic frame.
    """
    p = params or PredictionParameters()
    pop = population or load_population_table(p.population_table)
    masses_g = masses_g or {}
    volumes_mL = volumes_mL or {}
    groups = groups or {}
    rho_soft = photon_attenuation("soft").density_g_per_mL
    out = []
    for bio in tacs:
        flags = list(bio.flags)
        group = groups.get(bio.region, "")
        entry = pop.lookup(bio.region, kind=bio.kind, group=group)
        bw = entry.biological_washout_rate_per_h
        src = np.asarray(bio.frame_source)
        dyn = np.flatnonzero(src == "dynamic")
        stat = np.flatnonzero(src == "static")
        # uptake rate: fitted on the dynamic frames whenever there are some (a kinetic feature); used by
        # the kinetic model (and the population model with fit_uptake_rate)
        bu, bu_source = entry.biological_uptake_rate_per_h, "population"
        bu_fit = float("nan")
        if dyn.size >= 3:
            fit = fit_uptake_rate(bio.time_h[dyn], bio.fraction_per_mL[dyn], washout_rate_per_h=bw,
                                  min_time_h=p.min_fit_time_h)
            if fit.converged:
                bu_fit = fit.uptake_rate_per_h
            if p.fit_uptake_rate or p.model == "kinetic":
                if fit.converged:
                    bu, bu_source = fit.uptake_rate_per_h, "pet_fit"
                else:
                    flags.append("uptake_rate_fit_failed_population_used")
        elif dyn.size == 0:
            flags.append("static_only")
        if p.model == "kinetic":
            bw, bu, bu_source = kinetic_rates(entry, bu_fit if bu_source == "pet_fit" else None,
                                              exponent=p.retention_exponent)
            if bu_source == "population":
                flags.append("kinetic_population_rates")
        if bio.kind == "lesion" and entry.key == "default_lesion":
            flags.append("lesion_washout_default")
        if bu <= bw:
            bu = bw + entry.biological_uptake_rate_per_h
            flags.append("uptake_rate_raised_above_washout")
        # late value
        late = np.flatnonzero((src == "dynamic") & (bio.time_h >= p.late_dynamic_start_h))
        if p.uptake_reference == "static" and stat.size:
            idx = stat
        elif late.size:
            idx = late
            if p.uptake_reference == "static":
                flags.append("no_static_late_dynamic_used")
        elif stat.size:
            idx = stat
        else:
            raise InputError(f"no static frame and no dynamic frame after {p.late_dynamic_start_h} h p.i.; "
                             "cannot anchor the late uptake", source=f"PET region {bio.region}")
        u_per_mL, t_ref = _anchor(bio, idx, bw, bu)
        volume = float(volumes_mL.get(bio.region, bio.volume_mL))
        if not (math.isfinite(volume) and volume > 0):
            raise InputError(f"region volume must be > 0 mL, got {volume}", source=f"PET region {bio.region}")
        if p.pet_recovery == "gtm":
            rc = 1.0  # the TAC values are already GTM-corrected (regions.region_pet_tacs)
        elif p.pet_recovery == "sphere":
            rc = sphere_recovery(volume, p.pet_fwhm_mm)
        else:
            rc = lookup_factor(p.pet_recovery, bio.region, group=group, kind=bio.kind)
        u_ga = u_per_mL * volume / rc
        late_fraction = float(np.mean(bio.fraction_per_mL[idx])) * volume / rc
        scale = lookup_factor(p.ligand_uptake_ratio, bio.region, group=group, kind=bio.kind)
        if bio.kind != "lesion":
            scale *= p.tumour_sink_factor
        scale *= lookup_factor(p.scale_factors, bio.region, group=group, kind=bio.kind)
        u_lu = u_ga * scale
        curve = lu177_curve(u_lu, washout_rate_per_h=bw, uptake_rate_per_h=bu, injected_activity_Bq=BQ_PER_GBQ)
        tia = curve.integral()
        if bio.region in masses_g:
            mass = float(masses_g[bio.region])
        else:
            mass = volume * rho_soft
            flags.append("mass_from_volume")
        if bio.kind == "lesion":
            s = lesion_s_value_Gy_per_Bq_h(volume, mass, model=p.lesion_dose_model)
        else:
            s = organ_s_value_Gy_per_Bq_h(mass)
        if u_lu < 0:
            flags.append("negative_uptake")
        out.append(RegionPrediction(
            region=bio.region, kind=bio.kind, group=group, t_ref_h=t_ref, late_fraction_ga=late_fraction,
            pet_recovery=rc, uptake_rate_per_h=bu, uptake_rate_source=bu_source, washout_rate_per_h=bw,
            effective_half_life_h=math.log(2) / (bw + get_nuclide("Lu-177").decay_constant_per_h),
            population_key=entry.key, scale=scale,
            uptake_fraction_lu=u_lu, curve_per_GBq=curve, tia_Bq_h_per_GBq=tia, volume_mL=volume, mass_g=mass,
            s_value_Gy_per_Bq_h=s, dose_Gy_per_GBq=tia * s,
            spect_recovery=lookup_factor(p.spect_recovery, bio.region, group=group, kind=bio.kind),
            flags=tuple(dict.fromkeys(flags)), uptake_rate_fit_per_h=bu_fit,
            model="kinetic" if p.model == "kinetic" else "population"))
    static_only = [r.region for r in out if "static_only" in r.flags]
    default_lesions = [r.region for r in out if "lesion_washout_default" in r.flags]
    if warn is not None and default_lesions:
        warn(f"lesion washout of {', '.join(default_lesions)} from the table's default_lesion row "
             f"({pop.lookup('lesion', kind='lesion').effective_half_life_h:g} h), not a cited value for the lesion "
             "type: give a table with lesion_bone/lesion_node/lesion_visceral rows, e.g. the cohort's "
             "(statistics/population_halflives_cohort.csv of `ludosimetry cohort`)", source="population_table")
    if warn is not None and static_only:
        warn(f"no dynamic frames for {len(static_only)} region(s): uptake rate from the population table, late value "
             f"from the static (flag static_only): {', '.join(static_only)}", source="prediction")
    return tuple(out)


def prediction_fit_rows(predictions: Sequence[RegionPrediction], *, therapy_activity_GBq: float | None = None,
                        cycle: int = 1) -> list[dict]:
    """fits.csv-style rows of the predicted TIA (model ``pet_prediction_uptake_washout``).

    ``tia_Bq_h`` is for ``therapy_activity_GBq`` (or 1 GBq without it: column ``activity_GBq`` says which).
    """
    a = 1.0 if therapy_activity_GBq is None else float(therapy_activity_GBq)
    rows = []
    for r in predictions:
        tia = r.tia_Bq_h_per_GBq * a
        rows.append({"region": r.region, "kind": r.kind, "cycle": cycle, "model": "pet_prediction_uptake_washout",
                     "n_points": None, "n_params": 2 if r.uptake_rate_source == "pet_fit" else 1, "tia_Bq_h": tia,
                     "tia_MBq_h": tia / BQ_PER_MBQ, "effective_half_life_h": r.effective_half_life_h,
                     "parameters": {"uptake_fraction": r.uptake_fraction_lu,
                                    "uptake_rate_bio_per_h": r.uptake_rate_per_h,
                                    "uptake_rate_source": r.uptake_rate_source,
                                    "washout_rate_bio_per_h": r.washout_rate_per_h, "population_key": r.population_key,
                                    "t_ref_h": r.t_ref_h, "late_fraction_ga": r.late_fraction_ga,
                                    "pet_recovery": r.pet_recovery, "scale": r.scale},
                     "flags": ";".join(r.flags), "activity_GBq": a})
    return rows


def aggregate_groups(predictions: Sequence[RegionPrediction],
                     groups: Mapping[str, Sequence[str]]) -> tuple[RegionPrediction, ...]:
    """Composite regions (``kidney_left`` = cortex + pelvis): TIA and curve summed over the leaves,
    mass and volume summed, dose = ΣTIA × S(group mass) (local electron deposition; lesion groups too).

    Groups with a leaf without a prediction are left out (the leaf's flags say why).
    """
    by_name = {p.region: p for p in predictions}
    out = []
    for g, leaves in groups.items():
        members = [by_name.get(n) for n in leaves]
        if not members or any(m is None for m in members):
            continue
        tia = sum(m.tia_Bq_h_per_GBq for m in members)
        mass = sum(m.mass_g for m in members)
        volume = sum(m.volume_mL for m in members)
        terms = [t for m in members for t in m.curve_per_GBq.exponential_terms()]
        curve = SumOfExponentials(tuple(a for a, _ in terms), tuple(b for _, b in terms))
        s = organ_s_value_Gy_per_Bq_h(mass)
        flags = tuple(dict.fromkeys(["group_of_" + "+".join(leaves)] + [f for m in members for f in m.flags]))
        first = members[0]
        out.append(RegionPrediction(
            region=g, kind=first.kind, group=g, t_ref_h=first.t_ref_h,
            late_fraction_ga=sum(m.late_fraction_ga for m in members), pet_recovery=float("nan"),
            uptake_rate_per_h=float("nan"), uptake_rate_source="leaves", washout_rate_per_h=float("nan"),
            effective_half_life_h=float("nan"), population_key="leaves", scale=float("nan"),
            uptake_fraction_lu=sum(m.uptake_fraction_lu for m in members), curve_per_GBq=curve,
            tia_Bq_h_per_GBq=tia, volume_mL=volume, mass_g=mass, s_value_Gy_per_Bq_h=s, dose_Gy_per_GBq=tia * s,
            spect_recovery=first.spect_recovery, flags=flags))
    return tuple(out)
