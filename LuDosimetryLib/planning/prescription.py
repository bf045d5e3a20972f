"""The next cycle's activity from renal dosimetry, with every number's source.

Notation: A activity (Bq); d kidney absorbed dose per activity (Gy/Bq); D = A·d; G the
Lea–Catcheside factor of the kidney dose-rate curve (dimensionless). Scaling the activity scales
the dose rate Ḋ(t) by the same factor, and G = (2/D²)∫∫… is invariant under that scaling, so G
measured at one activity holds at any activity with the same kinetics: G is the per-unit-activity
form, and the BED of a cycle given A is

    BED(A) = A·d + (G·d²/(α/β))·A²            (quadratic in A)

Modes (the *target* activity before constraints):

- ``kidney_dose_per_cycle``: A = D_prescribed / d.
- ``cumulative_kidney_dose``: A = (D_limit − D_cumulative) / (n·d), n the planned remaining
  cycles (the remaining budget shared equally).
- ``cumulative_kidney_bed``: with B = (BED_limit − BED_cumulative)/n the positive root of
  G d²/(α/β)·A² + d·A − B = 0:
  A = (α/β)/(2·G·d) · (√(1 + 4·G·B/(α/β)) − 1) = 2B / (d·(1 + √(1 + 4·G·B/(α/β)))) (the second,
  rationalised form is used: it is stable as G → 0, where A → B/d).
- ``risk_constrained``: the largest A with P(BED_cumulative,after > BED_limit) ≤ ε
  (:func:`risk_constrained_activity_Bq`).

Constraints, the activity being the minimum of the target and all constraints: cumulative
kidney dose limit and cumulative kidney BED limit (by default the reference limits of the
patient's risk stratum, :mod:`.limits`), the risk constraint (ε with the BED limit), cumulative
absorbed-dose limits of other organs (``reduce`` the activity or only ``warn``), the maximum
activity per cycle (by default the reference maximum); then rounded **down** to the dispensable
step. Below the minimum activity, or with a kidney budget already spent, the cycle is refused
(activity 0) with the limiting number named. A reference limit is loosened or dropped only by
naming it in ``PlanSettings.override_limits``; a prescribed kidney dose per cycle above the
cumulative kidney limit itself is refused as implausible. The remaining cycles default to those
left in the protocol (6 standard + 3 salvage), and the ledger's own limit flags
(:func:`~.limits.ledger_limit_flags`) are carried in the proposal.

d comes from the most relevant cycle (:func:`select_dose_per_activity`): the last cycle with
measured dosimetry; with none, the PET prediction; with none, a population prior given by the
user (no sourced default exists). A cycle whose dosimetry is missing is warned about and the
fallback stated.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from scipy import integrate, optimize
from scipy.stats import norm

from ..errors import InputError
from ..units import BQ_PER_GBQ
from .ledger import (
    MAX_SALVAGE_CYCLES,
    MAX_STANDARD_CYCLES,
    MEASURED_METHODS,
    ORGANS,
    Ledger,
    cumulative_rel_uncertainty,
    organ_tissue_parameters,
)
from .limits import (
    LIMIT_NAMES,
    LimitFlag,
    PlanningLimits,
    canonical_stratum,
    ledger_limit_flags,
    ledger_risk_stratum,
    load_planning_limits,
)

__all__ = [
    "MODES", "DoseSelection", "select_dose_per_activity", "activity_for_bed_Bq", "bed_for_activity_Gy",
    "risk_constrained_activity_Bq", "exceedance_probability", "lognormal_sigma", "PlanSettings", "SourcedValue",
    "PlanProposal", "plan_next_cycle",
]

MODES = ("kidney_dose_per_cycle", "cumulative_kidney_dose", "cumulative_kidney_bed", "risk_constrained")


def lognormal_sigma(rel_uncertainty: float) -> float:
    """σ of ln X for a log-normal X with relative standard uncertainty u: √(ln(1 + u²))."""
    return math.sqrt(math.log1p(float(rel_uncertainty) ** 2))


# --- d selection ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class DoseSelection:
    """The d chosen for an organ, its uncertainty, G, source and warnings."""

    organ: str
    dose_per_activity_Gy_per_Bq: float
    rel_uncertainty: float
    g_factor: float | None
    source: str
    warnings: tuple[str, ...] = ()
    shared_rel_uncertainty: float | None = None


def select_dose_per_activity(ledger: Ledger, organ: str, *, d_source: str | int = "last_measured",
                             population_prior: Mapping[str, tuple[float, float]] | None = None) -> DoseSelection:
    """The most relevant d (Gy/Bq) of an organ for the next cycle.

    Parameters
    ----------
    ledger : Ledger
    organ : str
    d_source : {"last_measured", "mean_measured"} or int
        ``last_measured``: the latest cycle with measured dosimetry (full, reduced or single-scan
        protocol). ``mean_measured``: the mean d over all measured cycles, its relative uncertainty
        by :func:`~.ledger.cumulative_rel_uncertainty` (shared parts correlated), G the mean of the
        cycles' G. An int: that
        cycle's d (measured or PET-predicted).
        Fallback when no cycle is measured: the PET prediction (of cycle 1, or pre-therapy),
        then ``population_prior``; a warning states it.
    population_prior : dict of organ to (d Gy/Bq, relative uncertainty), optional
        User-supplied population value (no sourced default exists).

    Raises
    ------
    InputError
        No dosimetry at all for this organ (no measured cycle, no prediction, no prior).
    """
    warnings: list[str] = []
    measured = [c for c in ledger.cycles if c.dosimetry_method in MEASURED_METHODS and organ in c.organs]
    if isinstance(d_source, int) or (isinstance(d_source, str) and d_source.isdigit()):
        k = int(d_source)
        hits = [c for c in ledger.cycles if c.cycle == k]
        if not hits or organ not in hits[0].organs or hits[0].dosimetry_method == "none":
            raise InputError(f"cycle {k} has no {organ} dosimetry in the ledger", source="d_source")
        o = hits[0].organs[organ]
        return DoseSelection(organ, o.dose_per_activity_Gy_per_Bq, o.dose_per_activity_rel_uncertainty, o.g_factor,
                             f"cycle {k} ({hits[0].dosimetry_method}), chosen by d_source",
                             shared_rel_uncertainty=o.dose_rel_uncertainty_shared)
    if d_source not in ("last_measured", "mean_measured"):
        raise InputError(f"must be 'last_measured', 'mean_measured' or a cycle number, got {d_source!r}",
                         source="d_source")
    if measured:
        last = ledger.cycles[-1]
        if last.dosimetry_method not in MEASURED_METHODS:
            warnings.append(f"cycle {last.cycle} has no measured dosimetry (method {last.dosimetry_method!r}); "
                            f"{organ} d falls back to the last measured cycle {measured[-1].cycle}")
        if d_source == "last_measured":
            c = measured[-1]
            o = c.organs[organ]
            return DoseSelection(organ, o.dose_per_activity_Gy_per_Bq, o.dose_per_activity_rel_uncertainty,
                                 o.g_factor, f"cycle {c.cycle} measured ({c.dosimetry_method})", tuple(warnings),
                                 o.dose_rel_uncertainty_shared)
        os_ = [c.organs[organ] for c in measured]
        ds = [o.dose_per_activity_Gy_per_Bq for o in os_]
        gs = [o.g_factor for o in os_ if o.g_factor is not None]
        u, s_u, _ = cumulative_rel_uncertainty(ds, [o.shared for o in os_],
                                               [o.dose_rel_uncertainty_independent for o in os_])
        return DoseSelection(organ, sum(ds) / len(ds), u, sum(gs) / len(gs) if gs else None,
                             f"mean of measured cycles {', '.join(str(c.cycle) for c in measured)}", tuple(warnings),
                             s_u)
    predicted = [c for c in ledger.cycles if c.dosimetry_method == "pet_prediction" and organ in c.organs]
    if predicted:
        c = predicted[-1]
        o = c.organs[organ]
        if ledger.cycles and ledger.cycles[-1] is not c:
            warnings.append(f"no measured {organ} dosimetry in any cycle; d is the PET prediction used for cycle "
                            f"{c.cycle}")
        return DoseSelection(organ, o.dose_per_activity_Gy_per_Bq, o.dose_per_activity_rel_uncertainty, o.g_factor,
                             f"PET prediction (cycle {c.cycle})", tuple(warnings), o.dose_rel_uncertainty_shared)
    if organ in ledger.prediction:
        o = ledger.prediction[organ]
        if ledger.cycles:
            warnings.append(f"no measured {organ} dosimetry in cycles 1–{len(ledger.cycles)}; d is the "
                            "pre-therapy PET prediction")
        return DoseSelection(organ, o.dose_per_activity_Gy_per_Bq, o.rel_uncertainty, o.g_factor,
                             f"pre-therapy PET prediction ({o.source or 'ledger prediction'})", tuple(warnings),
                             o.shared_rel_uncertainty)
    if population_prior and organ in population_prior:
        d, u = population_prior[organ]
        warnings.append(f"no dosimetry of {organ} for patient {ledger.patient_id}; d is the user-supplied "
                        "population prior")
        return DoseSelection(organ, float(d), float(u), None, "population prior (user input)", tuple(warnings))
    raise InputError(f"no dosimetry at all for patient {ledger.patient_id}: no measured cycle, no PET prediction and "
                     f"no population prior for {organ} d (give population_prior / --population-prior-Gy-per-GBq)",
                     source=f"{organ} dose per activity")


# --- BED algebra ---------------------------------------------------------------------------------
def bed_for_activity_Gy(activity_Bq: float, d_Gy_per_Bq: float, g_factor: float, alpha_beta_Gy: float) -> float:
    """BED(A) = A·d + G·(A·d)²/(α/β) (Gy)."""
    dose = activity_Bq * d_Gy_per_Bq
    return dose + g_factor * dose * dose / alpha_beta_Gy


def activity_for_bed_Bq(bed_Gy: float, d_Gy_per_Bq: float, g_factor: float, alpha_beta_Gy: float) -> float:
    """The activity whose cycle BED is ``bed_Gy``: the positive root of BED(A) (Bq).

    A = (α/β)/(2Gd)·(√(1 + 4G·BED/(α/β)) − 1), evaluated as 2·BED/(d(1 + √(1 + 4G·BED/(α/β)))).

    Raises
    ------
    InputError
        Negative BED, d ≤ 0, G outside [0, 1], α/β ≤ 0.
    """
    if not (math.isfinite(bed_Gy) and bed_Gy >= 0):
        raise InputError(f"BED to deliver must be ≥ 0 Gy, got {bed_Gy:.4g} Gy", source="remaining BED")
    if not (d_Gy_per_Bq > 0):
        raise InputError(f"must be > 0, got {d_Gy_per_Bq}", source="dose per activity")
    if not (0 <= g_factor <= 1):
        raise InputError(f"must be in [0, 1], got {g_factor}", source="g_factor")
    if not (alpha_beta_Gy > 0):
        raise InputError(f"must be > 0 Gy, got {alpha_beta_Gy}", source="alpha_beta_Gy")
    root = math.sqrt(1.0 + 4.0 * g_factor * bed_Gy / alpha_beta_Gy)
    return 2.0 * bed_Gy / (d_Gy_per_Bq * (1.0 + root))


def _dose_for_bed(bed: float, g: float, ab: float) -> float:
    """f⁻¹: the dose D with D + G D²/(α/β) = bed (Gy), bed ≥ 0."""
    return 2.0 * bed / (1.0 + math.sqrt(1.0 + 4.0 * g * bed / ab))


def _split_sigma(rel_uncertainty: float, shared_rel_uncertainty: float | None) -> tuple[float, float]:
    """(σ_shared, σ_independent) of ln X: σ = √(ln(1 + u²)) split in the variance ratio s² : (u² − s²)."""
    sigma = lognormal_sigma(rel_uncertainty)
    if rel_uncertainty <= 0:
        return 0.0, 0.0
    s = rel_uncertainty if shared_rel_uncertainty is None else min(float(shared_rel_uncertainty), rel_uncertainty)
    frac = (s / rel_uncertainty) ** 2
    return sigma * math.sqrt(frac), sigma * math.sqrt(1.0 - frac)


def exceedance_probability(activity_Bq: float, *, d_Gy_per_Bq: float, d_rel_uncertainty: float, g_factor: float,
                           alpha_beta_Gy: float, past_bed_Gy: float, past_bed_rel_uncertainty: float,
                           bed_limit_Gy: float, d_shared_rel_uncertainty: float | None = 0.0,
                           past_bed_shared_rel_uncertainty: float | None = 0.0) -> float:
    """P(BED_past + BED(A) > limit) under the planning uncertainty model.

    Model: d and BED_past log-normal with medians the recorded values and σ = √(ln(1 + u²)),
    each σ split by variance into a shared part (the relative uncertainty shared by all cycles:
    calibration, method) and an independent part. The shared parts come from **one** standard
    normal (fully correlated: the same calibration error in the past cycles and in the next), so
    (ln BED_past, ln d) is bivariate normal with covariance c = σ_p,s σ_d,s. G and α/β fixed.
    With z the standard normal of BED_past, z_L = ln(limit/BED_past)/σ_p, and given z the
    conditional ln d ~ N(ln d + (c/σ_p) z, σ_c²), σ_c² = σ_d² − c²/σ_p²::

        P = Φ(−z_L) + ∫_{−∞}^{z_L} φ(z) · Φ(((c/σ_p) z − ln(f⁻¹(limit − BED_past e^{σ_p z}) / (A d))) / σ_c) dz

    with f⁻¹ the dose whose cycle BED is its argument, by scipy.integrate.quad (σ_c = 0, all
    shared: the integrand is a step and P = Φ(−z₀) at its root z₀, by brentq).
    ``*_shared_rel_uncertainty = 0`` (the default) is the independent model; None means all of
    the uncertainty is shared.
    """
    sd_s, sd_i = _split_sigma(d_rel_uncertainty, d_shared_rel_uncertainty)
    sp_s, sp_i = _split_sigma(past_bed_rel_uncertainty, past_bed_shared_rel_uncertainty)
    sd, sp = math.hypot(sd_s, sd_i), math.hypot(sp_s, sp_i)
    L, B, g, ab = bed_limit_Gy, past_bed_Gy, g_factor, alpha_beta_Gy
    dose_med = activity_Bq * d_Gy_per_Bq
    if dose_med <= 0:
        return float(B > L) if sp == 0 or B <= 0 else float(norm.sf(math.log(L / B) / sp))
    if sp == 0 or B <= 0:
        rem = L - max(B, 0.0)
        if rem <= 0:
            return 1.0
        x = math.log(_dose_for_bed(rem, g, ab) / dose_med)
        return float(x < 0) if sd == 0 else float(norm.sf(x / sd))
    slope = sd_s * sp_s / sp
    sc = math.sqrt(max(sd * sd - slope * slope, 0.0))
    z_l = math.log(L / B) / sp

    def y(z: float) -> float:  # the cycle exceeds the remaining budget when the conditional ln d shift > y
        return math.log(_dose_for_bed(L - B * math.exp(sp * z), g, ab) / dose_med) - slope * z

    lo, hi = -12.0, min(z_l, 12.0) - 1e-12
    if hi <= lo:
        return float(norm.sf(z_l))
    # z0: where the conditional median cycle just fills the remaining budget (y decreases with z)
    z0 = None if y(lo) <= 0 or y(hi) > 0 else optimize.brentq(y, lo, hi, xtol=1e-12)
    if sc < 1e-12 * max(sd, 1e-300):
        return 1.0 if y(lo) <= 0 else float(norm.sf(z_l if z0 is None else z0))
    val, _ = integrate.quad(lambda z: norm.pdf(z) * norm.sf(y(z) / sc), lo, hi, points=None if z0 is None else (z0,),
                            limit=200, epsabs=1e-12, epsrel=1e-9)
    return float(norm.sf(z_l) + val)


def risk_constrained_activity_Bq(*, d_Gy_per_Bq: float, d_rel_uncertainty: float, g_factor: float,
                                 alpha_beta_Gy: float, past_bed_Gy: float, past_bed_rel_uncertainty: float,
                                 bed_limit_Gy: float, epsilon: float, d_shared_rel_uncertainty: float | None = 0.0,
                                 past_bed_shared_rel_uncertainty: float | None = 0.0) -> float:
    """The largest activity with P(cumulative kidney BED > limit) ≤ ε (Bq); 0 if none.

    Uncertainty model as in :func:`exceedance_probability` (shared parts fully correlated
    between the past cycles and the next). With no past uncertainty the root
    is analytic: A = f⁻¹(limit − BED_past) / (d · e^(σ_d z₁₋ε)), z₁₋ε = Φ⁻¹(1 − ε) (with no d
    uncertainty either: the deterministic BED root). Otherwise P(A) increases with A and the root
    of P(A) = ε is found by scipy.optimize.brentq on ln A. Returns 0 when the past alone exceeds
    the limit with probability ≥ ε.

    Raises
    ------
    InputError
        ε outside (0, 0.5), limit ≤ 0, negative uncertainties.
    """
    if not (0 < epsilon < 0.5):
        raise InputError(f"must be in (0, 0.5), got {epsilon}", source="epsilon")
    if not (bed_limit_Gy > 0):
        raise InputError(f"must be > 0 Gy, got {bed_limit_Gy}", source="kidney_bed_limit_Gy")
    if d_rel_uncertainty < 0 or past_bed_rel_uncertainty < 0:
        raise InputError("relative uncertainties must be ≥ 0", source="rel_uncertainty")
    sd_s, sd = _split_sigma(d_rel_uncertainty, d_shared_rel_uncertainty)
    sp_s, sp = _split_sigma(past_bed_rel_uncertainty, past_bed_shared_rel_uncertainty)
    L, B = bed_limit_Gy, past_bed_Gy
    if (sp == 0 and sp_s == 0) or B <= 0:  # no uncertain past: only d's total σ matters
        if B >= L:
            return 0.0
        dose_allowed = _dose_for_bed(L - max(B, 0.0), g_factor, alpha_beta_Gy)
        return dose_allowed / (d_Gy_per_Bq * math.exp(math.hypot(sd, sd_s) * norm.isf(epsilon)))
    if B > 0 and norm.sf(math.log(L / B) / math.hypot(sp, sp_s)) >= epsilon:
        return 0.0
    kw = dict(d_Gy_per_Bq=d_Gy_per_Bq, d_rel_uncertainty=d_rel_uncertainty, g_factor=g_factor,
              alpha_beta_Gy=alpha_beta_Gy, past_bed_Gy=B, past_bed_rel_uncertainty=past_bed_rel_uncertainty,
              bed_limit_Gy=L, d_shared_rel_uncertainty=d_shared_rel_uncertainty,
              past_bed_shared_rel_uncertainty=past_bed_shared_rel_uncertainty)
    hi = _dose_for_bed(L, g_factor, alpha_beta_Gy) / d_Gy_per_Bq  # median cycle alone at the limit: P(hi) ≥ 1/2 > ε
    lo = hi * 1e-9
    f = lambda ln_a: exceedance_probability(math.exp(ln_a), **kw) - epsilon  # noqa: E731
    if f(math.log(lo)) >= 0:
        return 0.0
    return math.exp(optimize.brentq(f, math.log(lo), math.log(hi), xtol=1e-10, rtol=1e-10))


# --- the plan ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PlanSettings:
    """What the prescriber chose (activities in Bq, doses in Gy, d in Gy/Bq).

    The safety limits (cumulative kidney dose and BED of the patient's risk stratum, maximum
    activity per cycle: ``data/planning_limits.json``) apply by default. A value given here
    replaces its reference limit when it is stricter; a looser value, or ``None`` meaning "no
    limit", needs the limit's name in ``override_limits``.

    Attributes
    ----------
    mode : str
        One of :data:`MODES`.
    prescribed_kidney_dose_Gy : float, optional
        Kidney absorbed dose per cycle (mode ``kidney_dose_per_cycle``); refused when above the
        cumulative kidney absorbed-dose limit itself.
    kidney_dose_limit_Gy, kidney_bed_limit_Gy : float, optional
        Cumulative kidney limits (constraints, and targets of the cumulative modes). None: the
        reference limit of the risk stratum (or no limit when overridden).
    epsilon : float, optional
        Accepted probability of exceeding the BED limit (risk constraint / mode).
    remaining_cycles : int, optional
        Cycles (this one included) the remaining cumulative budget is shared over. None: the
        cycles left in the protocol (6 standard, then 3 salvage) for this cycle's kind.
    min_activity_Bq, activity_step_Bq : float
    max_activity_Bq : float, optional
        None: the reference maximum activity per cycle (or none when overridden).
    organ_dose_limits_Gy : dict
        Cumulative absorbed-dose limits of other organs (parotid, submandibular, lacrimal,
        red_marrow, liver, spleen).
    organ_limit_action : {"reduce", "warn"}
    d_source : str or int
        See :func:`select_dose_per_activity`.
    population_prior : dict of organ to (d Gy/Bq, relative uncertainty)
    salvage : bool
        The next cycle is a salvage cycle.
    planned_date : datetime.date, optional
        For the gap since the last cycle.
    require_verified_radiobiology : bool
        Refuse kidney α/β and T_rep whose status is neither verified nor user-given (the
        reference values are unverified: with this set, a BED prescription needs user values).
    sources : dict
        Source of each setting (``"command line"``, ``"cohort table group G2"``, …).
    risk_stratum : {"standard", "high"}, optional
        Overrides the ledger's stratum; None: the ledger's, else the default (high).
    override_limits : frozenset of str
        Names in :data:`~.limits.LIMIT_NAMES` whose reference limit the user loosens or drops.
    limits : PlanningLimits, optional
        Reference limits; None: :func:`~.limits.load_planning_limits`.
    """

    mode: str = "kidney_dose_per_cycle"
    prescribed_kidney_dose_Gy: float | None = None
    kidney_dose_limit_Gy: float | None = None
    kidney_bed_limit_Gy: float | None = None
    epsilon: float | None = None
    remaining_cycles: int | None = None
    min_activity_Bq: float = 0.0
    max_activity_Bq: float | None = None
    activity_step_Bq: float = 0.1 * BQ_PER_GBQ
    organ_dose_limits_Gy: Mapping[str, float] = field(default_factory=dict)
    organ_limit_action: str = "reduce"
    d_source: str | int = "last_measured"
    population_prior: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    salvage: bool = False
    planned_date: _dt.date | None = None
    require_verified_radiobiology: bool = False
    sources: Mapping[str, str] = field(default_factory=dict)
    risk_stratum: str | None = None
    override_limits: frozenset[str] = frozenset()
    limits: PlanningLimits | None = None


@dataclass(frozen=True)
class SourcedValue:
    """A number of the proposal and where it came from."""

    name: str
    value: Any
    unit: str
    source: str


@dataclass(frozen=True)
class PlanProposal:
    """The proposal for the next cycle.

    Attributes
    ----------
    patient_id : str
    cycle, kind : int, str
    mode : str
    activity_Bq : float
        Proposed activity (Bq), rounded down to the step; 0 when refused.
    refused : bool
    reason : str
        What set the activity (the limiting target or constraint), or why it was refused.
    values : tuple of SourcedValue
    constraints : tuple of dict
        ``{"name", "max_activity_Bq", "source"}`` of each constraint evaluated.
    expected : dict
        Per organ: expected dose, cumulative dose and (kidney) BED after the cycle.
    warnings : tuple of str
    limit_flags : tuple of LimitFlag
        Reference limits the ledger is already over (:func:`~.limits.ledger_limit_flags`).
    risk_stratum : str
        The stratum whose limits were applied.
    """

    patient_id: str
    cycle: int
    kind: str
    mode: str
    activity_Bq: float
    refused: bool
    reason: str
    values: tuple[SourcedValue, ...] = ()
    constraints: tuple[dict, ...] = ()
    expected: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    limit_flags: tuple[LimitFlag, ...] = ()
    risk_stratum: str = ""


def _setting_src(settings: PlanSettings, name: str) -> str:
    return settings.sources.get(name, "plan settings")


@dataclass(frozen=True)
class _Limit:
    value: float | None  # None: no limit (overridden)
    source: str


def _effective_limit(name: str, user: float | None, ref: float, ref_cite: str, unit: str, scale: float,
                     s: PlanSettings, user_src: str, warnings: list[str]) -> _Limit:
    """The limit applied: the reference unless the user tightens it, or loosens/drops it by override."""
    shown = (lambda v: f"{v / scale:g} {unit}")  # noqa: E731
    overridden = name in s.override_limits
    if user is None:
        if overridden:
            warnings.append(f"the reference {name} limit {shown(ref)} ({ref_cite}) is turned off by override")
            return _Limit(None, f"none (reference {shown(ref)} overridden)")
        return _Limit(ref, ref_cite)
    if user > ref * (1 + 1e-12):
        if not overridden:
            raise InputError(f"{shown(user)} is above the reference limit {shown(ref)} ({ref_cite}); a looser limit "
                             f"needs an explicit override (--override-limit {name})", source=f"{name} limit")
        warnings.append(f"{name} limit {shown(user)} ({user_src}) is above the reference {shown(ref)} ({ref_cite}); "
                        "used by override")
    return _Limit(user, user_src)


def plan_next_cycle(ledger: Ledger, settings: PlanSettings) -> PlanProposal:
    """Propose the next cycle's activity (see the module docstring for the rules).

    Raises
    ------
    InputError
        Unknown mode; a mode's parameter missing; no dosimetry at all; a negative remaining
        budget in a cumulative mode; α/β or G missing for a BED prescription; a seventh standard
        or fourth salvage cycle; a limit looser than the reference without its override; a
        prescribed kidney dose per cycle above the cumulative kidney limit.
    """
    s = settings
    if s.mode not in MODES:
        raise InputError(f"must be one of {', '.join(MODES)}, got {s.mode!r}", source="mode")
    if s.organ_limit_action not in ("reduce", "warn"):
        raise InputError(f"must be 'reduce' or 'warn', got {s.organ_limit_action!r}", source="organ_limit_action")
    unknown = set(s.override_limits) - set(LIMIT_NAMES)
    if unknown:
        raise InputError(f"unknown limit name(s) {', '.join(sorted(unknown))} (expected {', '.join(LIMIT_NAMES)})",
                         source="override_limits")
    if s.remaining_cycles is not None and not (isinstance(s.remaining_cycles, int) and s.remaining_cycles >= 1):
        raise InputError(f"must be an integer ≥ 1, got {s.remaining_cycles!r}", source="remaining_cycles")
    if s.max_activity_Bq is not None and not (s.max_activity_Bq > 0):
        raise InputError(f"must be > 0 GBq, got {s.max_activity_Bq / BQ_PER_GBQ:g} GBq", source="max_activity")
    if not (math.isfinite(s.activity_step_Bq) and s.activity_step_Bq > 0 and math.isfinite(s.min_activity_Bq)
            and s.min_activity_Bq >= 0):
        raise InputError(f"need step > 0 and min ≥ 0, got step {s.activity_step_Bq / BQ_PER_GBQ:g} GBq, min "
                         f"{s.min_activity_Bq / BQ_PER_GBQ:g} GBq", source="activity bounds")
    for name in ("prescribed_kidney_dose_Gy", "kidney_dose_limit_Gy", "kidney_bed_limit_Gy"):
        v = getattr(s, name)
        if v is not None and not (math.isfinite(v) and v > 0):
            raise InputError(f"must be finite and > 0 Gy, got {v:g} Gy", source=name)
    limits = s.limits or load_planning_limits()
    warnings: list[str] = list(ledger.read_warnings)
    values: list[SourcedValue] = []
    if s.risk_stratum is not None:
        stratum, stratum_src = canonical_stratum(s.risk_stratum), _setting_src(s, "risk_stratum")
    else:
        stratum, stratum_src = ledger_risk_stratum(ledger, limits)
        if not ledger.risk_stratum:
            warnings.append(f"the ledger has no risk stratum: the {stratum}-risk limits apply")
    values.append(SourcedValue("risk stratum", stratum, "", stratum_src))
    flags = ledger_limit_flags(ledger, limits=limits, risk_stratum=stratum)
    warnings.extend(f"LEDGER OVER LIMIT: {f.message}" for f in flags)
    ref_d, ref_b = limits.kidney_dose_limit_Gy[stratum], limits.kidney_bed_limit_Gy[stratum]
    ref_a = limits.max_activity_per_cycle
    dose_lim = _effective_limit("kidney_dose", s.kidney_dose_limit_Gy, ref_d.value, ref_d.cite(), "Gy", 1.0, s,
                                _setting_src(s, "kidney_dose_limit_Gy"), warnings)
    bed_lim = _effective_limit("kidney_bed", s.kidney_bed_limit_Gy, ref_b.value, ref_b.cite(), "Gy", 1.0, s,
                               _setting_src(s, "kidney_bed_limit_Gy"), warnings)
    user_max = None if s.max_activity_Bq is None else float(s.max_activity_Bq)
    max_lim = _effective_limit("max_activity", user_max, ref_a.value, ref_a.cite(), "GBq", BQ_PER_GBQ, s,
                               _setting_src(s, "max_activity_Bq"), warnings)
    if max_lim.value is not None and s.min_activity_Bq > max_lim.value:
        raise InputError(f"minimum activity {s.min_activity_Bq / BQ_PER_GBQ:g} GBq is above the maximum "
                         f"{max_lim.value / BQ_PER_GBQ:g} GBq ({max_lim.source})", source="min_activity")
    n_std = sum(c.kind == "standard" for c in ledger.cycles)
    n_salv = sum(c.kind == "salvage" for c in ledger.cycles)
    kind = "salvage" if s.salvage else "standard"
    over = "" if not flags else f" (and the ledger is over a limit: {'; '.join(f.message for f in flags)})"
    if kind == "standard" and (n_std >= MAX_STANDARD_CYCLES or n_salv):
        raise InputError(f"{n_std} standard cycles{' and a salvage cycle' if n_salv else ''} already given; a further "
                         f"cycle must be a salvage cycle (up to {MAX_SALVAGE_CYCLES}){over}", source="salvage")
    if kind == "salvage" and n_salv >= MAX_SALVAGE_CYCLES:
        raise InputError(f"{n_salv} salvage cycles already given (maximum {MAX_SALVAGE_CYCLES}){over}",
                         source="salvage")
    left = MAX_STANDARD_CYCLES - n_std if kind == "standard" else MAX_SALVAGE_CYCLES - n_salv
    if s.remaining_cycles is None:
        n, n_src = left, (f"protocol: {MAX_STANDARD_CYCLES} standard + {MAX_SALVAGE_CYCLES} salvage cycles, "
                          f"{n_std if kind == 'standard' else n_salv} {kind} given")
    elif s.remaining_cycles > left:
        raise InputError(f"{s.remaining_cycles} cycles planned but only {left} {kind} cycle(s) remain in the protocol "
                         f"({MAX_STANDARD_CYCLES} standard + {MAX_SALVAGE_CYCLES} salvage; this one included)",
                         source="remaining_cycles")
    else:
        n, n_src = s.remaining_cycles, _setting_src(s, "remaining_cycles")
    cycle = len(ledger.cycles) + 1
    if s.planned_date is not None and ledger.cycles and s.planned_date <= ledger.cycles[-1].administration_date:
        raise InputError(f"planned date {s.planned_date} is not after cycle {cycle - 1} "
                         f"({ledger.cycles[-1].administration_date})", source="planned_date")
    cum = ledger.cycles[-1].cumulative if ledger.cycles else {}

    sel = select_dose_per_activity(ledger, "kidney", d_source=s.d_source, population_prior=s.population_prior)
    warnings.extend(sel.warnings)
    d, u_d = sel.dose_per_activity_Gy_per_Bq, sel.rel_uncertainty
    values.append(SourcedValue("kidney d", d * BQ_PER_GBQ, "Gy/GBq", sel.source))
    values.append(SourcedValue("kidney d relative uncertainty", u_d, "1", sel.source))
    values.append(SourcedValue("  of which shared with the other cycles", u_d if sel.shared_rel_uncertainty is None
                               else sel.shared_rel_uncertainty, "1",
                               "ledger split" if sel.shared_rel_uncertainty is not None
                               else "not split: all taken as shared (conservative)"))
    kcum = cum.get("kidney")
    d_cum = kcum.dose_Gy if kcum else 0.0
    values.append(SourcedValue("kidney cumulative dose so far", d_cum, "Gy",
                               f"ledger cumulative after cycle {cycle - 1}" if kcum else "no cycle given yet"))
    if kind == "salvage" and ledger.cycles:
        last = ledger.cycles[-1].administration_date
        if s.planned_date is not None:
            values.append(SourcedValue("gap since last cycle", (s.planned_date - last).days, "d",
                                       f"planned date {s.planned_date} − cycle {cycle - 1} date {last}"))
        warnings.append(f"cycle {cycle} is salvage cycle {n_salv + 1} of {MAX_SALVAGE_CYCLES}: cumulative doses "
                        f"include all {cycle - 1} earlier cycles")

    values.append(SourcedValue("cycles sharing the remaining budget", n, "", n_src))
    for label, lim, unit, scale in (("cumulative kidney absorbed-dose limit", dose_lim, "Gy", 1.0),
                                    ("cumulative kidney BED limit", bed_lim, "Gy", 1.0),
                                    ("maximum activity per cycle", max_lim, "GBq", BQ_PER_GBQ)):
        values.append(SourcedValue(label, None if lim.value is None else lim.value / scale, unit, lim.source))
    if s.prescribed_kidney_dose_Gy is not None and s.mode == "kidney_dose_per_cycle" and dose_lim.value is not None \
            and s.prescribed_kidney_dose_Gy > dose_lim.value:
        at_max = "" if max_lim.value is None else (
            f"; at the maximum activity per cycle {max_lim.value / BQ_PER_GBQ:g} GBq the kidney would receive "
            f"{max_lim.value * d:.3g} Gy")
        raise InputError(f"prescribed kidney dose per cycle {s.prescribed_kidney_dose_Gy:g} Gy is above the maximum: "
                         f"the cumulative kidney absorbed-dose limit is {dose_lim.value:g} Gy for the whole course "
                         f"({dose_lim.source}), {max(dose_lim.value - d_cum, 0.0):.4g} Gy of it left after cycle "
                         f"{cycle - 1}{at_max}: refused", source="prescribed_kidney_dose_Gy")
    # BED is needed by the BED modes and by a BED limit or ε the user gave; the default BED limit is
    # checked whenever G is known (else a warning says it cannot be)
    needs_bed = (s.mode in ("cumulative_kidney_bed", "risk_constrained") or s.kidney_bed_limit_Gy is not None
                 or s.epsilon is not None)
    params = g = b_cum = u_bcum = None
    if needs_bed:
        try:
            params = organ_tissue_parameters(ledger, "kidney")
        except InputError as exc:
            raise InputError(f"a BED prescription needs kidney α/β and T_rep: {exc}", source="alpha_beta_Gy") from None
        if s.require_verified_radiobiology:
            for name in ("alpha_beta_Gy", "repair_half_time_h"):
                if params.status[name] not in ("verified", "user"):
                    raise InputError(f"kidney {name} is missing for a BED prescription: the reference value "
                                     f"{getattr(params, name):g} is '{params.status[name]}' and verified values were "
                                     f"required; give it in the ledger's radiobiology block or on the command line",
                                     source=name)
        warnings.extend(params.warnings)
        values.append(SourcedValue("kidney α/β", params.alpha_beta_Gy, "Gy",
                                   f"{params.sources['alpha_beta_Gy']} [{params.status['alpha_beta_Gy']}]"))
        values.append(SourcedValue("kidney T_rep", params.repair_half_time_h, "h",
                                   f"{params.sources['repair_half_time_h']} [{params.status['repair_half_time_h']}]"))
        g, g_src = sel.g_factor, sel.source
        if g is None:
            with_g = [c for c in ledger.cycles if c.organs.get("kidney") and c.organs["kidney"].g_factor is not None]
            if with_g:
                k = with_g[-1].cycle
                g, g_src = with_g[-1].organs["kidney"].g_factor, f"cycle {k} (fallback: latest G known)"
                warnings.append(f"kidney G missing for the chosen d ({sel.source}); using G of cycle {k}")
            elif "kidney" in ledger.prediction and ledger.prediction["kidney"].g_factor is not None:
                g, g_src = ledger.prediction["kidney"].g_factor, "pre-therapy PET prediction (fallback)"
                warnings.append("kidney G missing for the chosen d; using the PET prediction's G")
            else:
                raise InputError("a BED prescription needs the kidney Lea–Catcheside G of the chosen cycle (ledger "
                                 "organs.kidney.g_factor); none is recorded", source="kidney.g_factor")
        values.append(SourcedValue("kidney G", g, "1", g_src))
        if kcum is not None and kcum.bed_Gy is None:
            raise InputError(f"cumulative kidney BED is missing after cycle {cycle - 1} (cycles without G); a BED "
                             "prescription needs it", source="cumulative.kidney.bed_Gy")
        b_cum = kcum.bed_Gy if kcum else 0.0
        u_bcum = (kcum.bed_rel_uncertainty or 0.0) if kcum else 0.0
        values.append(SourcedValue("kidney cumulative BED so far", b_cum, "Gy",
                                   f"ledger cumulative after cycle {cycle - 1}" if kcum else "no cycle given yet"))
        values.append(SourcedValue("kidney cumulative BED relative uncertainty", u_bcum, "1",
                                   "shared parts correlated across cycles (ledger)"))

    elif sel.g_factor is not None and (kcum is None or kcum.bed_Gy is not None):
        # not prescribing by BED, but report the kidney BED the proposal implies
        params, g = organ_tissue_parameters(ledger, "kidney"), sel.g_factor
        b_cum = kcum.bed_Gy if kcum else 0.0
        u_bcum = (kcum.bed_rel_uncertainty or 0.0) if kcum else 0.0
        warnings.extend(params.warnings)
        values.append(SourcedValue("kidney α/β (for the reported BED)", params.alpha_beta_Gy, "Gy",
                                   f"{params.sources['alpha_beta_Gy']} [{params.status['alpha_beta_Gy']}]"))
        values.append(SourcedValue("kidney G (for the reported BED)", g, "1", sel.source))
    risk_kw: dict[str, Any] = {}
    u_d_s = u_d if sel.shared_rel_uncertainty is None else sel.shared_rel_uncertainty
    u_bcum_s = 0.0
    if params is not None:
        u_bcum_s = (u_bcum if kcum is None or kcum.bed_rel_uncertainty_shared is None
                    else kcum.bed_rel_uncertainty_shared)
        risk_kw = dict(d_Gy_per_Bq=d, d_rel_uncertainty=u_d, g_factor=g, alpha_beta_Gy=params.alpha_beta_Gy,
                       past_bed_Gy=b_cum, past_bed_rel_uncertainty=u_bcum, d_shared_rel_uncertainty=u_d_s,
                       past_bed_shared_rel_uncertainty=u_bcum_s)

    # target
    if s.mode == "kidney_dose_per_cycle":
        if s.prescribed_kidney_dose_Gy is None:
            raise InputError("mode kidney_dose_per_cycle needs a prescribed kidney dose per cycle (or a cohort table "
                             "group)", source="prescribed_kidney_dose_Gy")
        values.append(SourcedValue("prescribed kidney dose per cycle", s.prescribed_kidney_dose_Gy, "Gy",
                                   _setting_src(s, "prescribed_kidney_dose_Gy")))
        target = s.prescribed_kidney_dose_Gy / d
        target_src = f"A = D_prescribed / d = {s.prescribed_kidney_dose_Gy:g} Gy / {d * BQ_PER_GBQ:.4g} Gy/GBq"
    elif s.mode == "cumulative_kidney_dose":
        if dose_lim.value is None:
            raise InputError("mode cumulative_kidney_dose needs the cumulative kidney dose limit",
                             source="kidney_dose_limit_Gy")
        rem = dose_lim.value - d_cum
        if rem <= 0:
            raise InputError(f"the remaining kidney dose budget is {rem:.4g} Gy (limit {dose_lim.value:g} Gy "
                             f"[{dose_lim.source}], cumulative {d_cum:.4g} Gy): no activity can be prescribed",
                             source="kidney_dose_limit_Gy")
        values.append(SourcedValue("remaining kidney dose budget", rem, "Gy",
                                   f"limit ({dose_lim.source}) − cumulative"))
        target = rem / (n * d)
        target_src = f"A = (D_limit − D_cum) / (n·d), n = {n}"
    elif s.mode == "cumulative_kidney_bed":
        if bed_lim.value is None:
            raise InputError("mode cumulative_kidney_bed needs the cumulative kidney BED limit",
                             source="kidney_bed_limit_Gy")
        rem = bed_lim.value - b_cum
        if rem <= 0:
            raise InputError(f"the remaining kidney BED budget is {rem:.4g} Gy (limit {bed_lim.value:g} Gy "
                             f"[{bed_lim.source}], cumulative {b_cum:.4g} Gy): no activity can be prescribed",
                             source="kidney_bed_limit_Gy")
        values.append(SourcedValue("remaining kidney BED budget", rem, "Gy",
                                   f"limit ({bed_lim.source}) − cumulative"))
        target = activity_for_bed_Bq(rem / n, d, g, params.alpha_beta_Gy)
        target_src = f"BED quadratic root for (BED_limit − BED_cum)/n, n = {n}"
    else:  # risk_constrained
        if bed_lim.value is None or s.epsilon is None:
            raise InputError("mode risk_constrained needs the cumulative kidney BED limit and ε",
                             source="kidney_bed_limit_Gy" if bed_lim.value is None else "epsilon")
        if b_cum >= bed_lim.value:
            raise InputError(f"the remaining kidney BED budget is {bed_lim.value - b_cum:.4g} Gy (limit "
                             f"{bed_lim.value:g} Gy [{bed_lim.source}]): no activity can be prescribed",
                             source="kidney_bed_limit_Gy")
        target = math.inf
        target_src = "risk constraint only"

    constraints: list[dict] = []

    def add(name: str, a_max: float, src: str) -> None:
        constraints.append({"name": name, "max_activity_Bq": max(a_max, 0.0), "source": src})

    if dose_lim.value is not None and s.mode != "cumulative_kidney_dose":
        add("cumulative kidney dose limit", (dose_lim.value - d_cum) / d,
            f"(limit {dose_lim.value:g} Gy [{dose_lim.source}] − cumulative {d_cum:.4g} Gy) / d")
    if bed_lim.value is not None and s.mode != "cumulative_kidney_bed" and params is None:
        warnings.append(f"the cumulative kidney BED limit {bed_lim.value:g} Gy cannot be checked: no kidney G or "
                        "cumulative BED in the ledger")
    elif bed_lim.value is not None and s.mode != "cumulative_kidney_bed":
        rem = bed_lim.value - b_cum
        add("cumulative kidney BED limit", activity_for_bed_Bq(rem, d, g, params.alpha_beta_Gy) if rem > 0 else 0.0,
            f"BED quadratic root for limit {bed_lim.value:g} Gy [{bed_lim.source}] − cumulative {b_cum:.4g} Gy")
    if s.epsilon is not None:
        if bed_lim.value is None:
            raise InputError("ε given without the cumulative kidney BED limit it refers to",
                             source="kidney_bed_limit_Gy")
        a_risk = risk_constrained_activity_Bq(**risk_kw, bed_limit_Gy=bed_lim.value, epsilon=s.epsilon)
        add(f"P(cumulative kidney BED > {bed_lim.value:g} Gy) ≤ {s.epsilon:g}", a_risk,
            f"log-normal d (u = {u_d:.3g}, shared {u_d_s:.3g}) and past BED (u = {u_bcum:.3g}, shared "
            f"{u_bcum_s:.3g}), shared parts fully correlated; root of the exceedance probability")
    organ_sel: dict[str, DoseSelection] = {}
    for organ in ORGANS[1:]:
        try:
            organ_sel[organ] = select_dose_per_activity(ledger, organ, d_source=s.d_source,
                                                        population_prior=s.population_prior)
        except InputError:
            continue
    for organ, limit in s.organ_dose_limits_Gy.items():
        if organ not in ORGANS[1:]:
            raise InputError(f"unknown organ {organ!r} (expected one of {', '.join(ORGANS[1:])})",
                             source="organ_dose_limits_Gy")
        if organ not in organ_sel:
            warnings.append(f"{organ} limit {limit:g} Gy cannot be checked: no {organ} dosimetry in the ledger")
            continue
        o = organ_sel[organ]
        o_cum = cum[organ].dose_Gy if organ in cum else 0.0
        a_max = (limit - o_cum) / o.dose_per_activity_Gy_per_Bq
        src = (f"(limit {limit:g} Gy [{_setting_src(s, 'organ_dose_limits_Gy')}] − cumulative {o_cum:.4g} Gy) / "
               f"d {o.dose_per_activity_Gy_per_Bq * BQ_PER_GBQ:.4g} Gy/GBq ({o.source})")
        if s.organ_limit_action == "reduce":
            add(f"cumulative {organ} dose limit", a_max, src)
        elif a_max < min([target, *(c["max_activity_Bq"] for c in constraints)]):
            warnings.append(f"the proposed activity would cross the {organ} cumulative limit {limit:g} Gy (allows "
                            f"{max(a_max, 0) / BQ_PER_GBQ:.3f} GBq); not reduced (organ_limit_action = warn)")
    if max_lim.value is not None:
        add("maximum activity", max_lim.value, max_lim.source)

    activity, reason = target, f"target: {target_src}"
    for c in constraints:
        if c["max_activity_Bq"] < activity:
            activity, reason = c["max_activity_Bq"], f"limited by {c['name']}: {c['source']}"
            if math.isfinite(target):
                warnings.append(f"the target activity {target / BQ_PER_GBQ:.3f} GBq would cross the {c['name']} "
                                f"({c['source']}); reduced to {activity / BQ_PER_GBQ:.3f} GBq")
    if not math.isfinite(activity):
        raise InputError("no finite activity: give a target or a constraint", source="mode")
    values.append(SourcedValue("target activity", target / BQ_PER_GBQ, "GBq", target_src))
    values.append(SourcedValue("activity before rounding", activity / BQ_PER_GBQ, "GBq", reason))
    step = s.activity_step_Bq
    rounded = math.floor(activity / step + 1e-9) * step
    values.append(SourcedValue("dispensing step", step / BQ_PER_GBQ, "GBq", _setting_src(s, "activity_step_Bq")))
    refused = rounded < s.min_activity_Bq or rounded <= 0
    exhausted = [c for c in constraints if c["max_activity_Bq"] <= 0]
    if refused and exhausted:
        reason = f"refused: the {exhausted[0]['name']} allows no further activity ({exhausted[0]['source']})"
        warnings.append(f"cycle {cycle} refused: {reason}")
        rounded = 0.0
    elif refused:
        reason = (f"refused: the allowed activity {activity / BQ_PER_GBQ:.3f} GBq ({reason}) is below the minimum "
                  f"activity {s.min_activity_Bq / BQ_PER_GBQ:.3f} GBq")
        warnings.append(f"cycle {cycle} refused: {reason}")
        rounded = 0.0
    values.append(SourcedValue("proposed activity", rounded / BQ_PER_GBQ, "GBq",
                               "rounded down to the dispensing step" if not refused else reason))

    expected: dict[str, dict[str, Any]] = {}
    sels = {"kidney": sel, **organ_sel}
    for organ, o in sels.items():
        dose = rounded * o.dose_per_activity_Gy_per_Bq
        c_prev = cum[organ].dose_Gy if organ in cum else 0.0
        row: dict[str, Any] = {"d_Gy_per_GBq": o.dose_per_activity_Gy_per_Bq * BQ_PER_GBQ, "d_source": o.source,
                               "dose_Gy": dose, "dose_rel_uncertainty": o.rel_uncertainty,
                               "cumulative_dose_Gy": c_prev + dose}
        if organ == "kidney" and params is not None:
            bed = bed_for_activity_Gy(rounded, d, g, params.alpha_beta_Gy)
            row.update(bed_Gy=bed, cumulative_bed_Gy=b_cum + bed)
            if bed_lim.value is not None:
                row["p_exceed_bed_limit"] = exceedance_probability(rounded, **risk_kw, bed_limit_Gy=bed_lim.value)
        lim = s.organ_dose_limits_Gy.get(organ)
        if lim is not None and row["cumulative_dose_Gy"] > lim * (1 + 1e-9):
            warnings.append(f"{organ}: cumulative dose after cycle {cycle} would be "
                            f"{row['cumulative_dose_Gy']:.3f} Gy, above its limit {lim:g} Gy")
        expected[organ] = row
    return PlanProposal(ledger.patient_id, cycle, kind, s.mode, rounded, refused, reason, tuple(values),
                        tuple(constraints), expected, tuple(dict.fromkeys(warnings)), flags, stratum)
