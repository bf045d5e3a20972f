"""Uncertainty budget of a region's time-integrated activity (TIA) and absorbed dose (EANM).

After Gear JI, Cox MG, Gustafsson J, et al. EANM practical guidance on uncertainty analysis for
molecular radiotherapy absorbed dose calculations. Eur J Nucl Med Mol Imaging 2018;45:2456-2474,
doi:10.1007/s00259-018-4136-7 (the "EANM guidance"), which applies the GUM law of propagation
(JCGM 100:2008) to D = Ã · S, Ã the TIA and S ∝ 1/m the S-value of the region's mass m.

Components (relative standard uncertainties, k = 1, of an input quantity x)
    ``calibration``  camera calibration factor Q (cps/MBq): A ∝ 1/Q. Shared (the same factor
                     scales every region and every cycle measured on that camera). Input: the
                     calibration store's ``sensitivity_rel_uncertainty`` when it states one (> 0),
                     else :data:`DEFAULT_CALIBRATION_REL`.
    ``recovery``     recovery (partial-volume) coefficient RC: A ∝ 1/RC. Shared (method: the same
                     curve or resolution model corrects every region and cycle). Input: the store's
                     recovery curve (parameter covariance and sphere scatter, when stated), else the
                     Gaussian-sphere model of the SPECT resolution with the FWHM known to
                     :data:`DEFAULT_FWHM_REL`: u(RC)/RC = |∂ln RC/∂ln FWHM| · u(FWHM)/FWHM.
                     Zero when no partial-volume correction is applied (the loss is then a bias,
                     reported by the dose method, not an uncertainty).
    ``volume``       region volume V (segmentation). Independent. Input: a boundary placed to
                     ±δ (default half the segmentation voxel, :data:`DEFAULT_BOUNDARY_VOXEL_FRACTION`)
                     over the surface of the sphere of the same volume: u(V)/V = 3δ/R, R = (3V/4π)^⅓.
    ``registration`` misregistration of a timepoint's SPECT against the reference segmentation.
                     Independent (between regions, timepoints and cycles). Input: a residual shift
                     δ_reg (default :data:`DEFAULT_REGISTRATION_MM`) moves the fraction 3δ_reg/(4R)
                     of a uniform sphere's activity out of its VOI (projected area πR² × δ over the
                     volume), an upper estimate per registered timepoint.
    ``counting_fit`` counting statistics and the curve fit, from the fit's 95 % interval
                     (:mod:`.uncertainty`: profile likelihood, bootstrap or posterior). Independent.

Sensitivities (∂ln Ã/∂ln x, ∂ln D/∂ln x)
    calibration (−1, −1); recovery (−1, −1); counting_fit (1, 1) on the fit's relative uncertainty;
    registration: errors independent between timepoints enter the TIA with the weights
    wᵢ = cᵢ yᵢ / Σ cⱼ yⱼ of the trapezoid with physical tail (cᵢ its coefficient of point i), so its
    sensitivity is √(Σ wᵢ²) over the registered timepoints (the reference timepoint has none);
    volume: as in the EANM guidance the volume enters the activity through RC(V) and the dose
    also through the mass m = ρV, both from the same V. With β = ∂ln RC/∂ln V (from the same
    recovery model; 0 without correction):

        ∂ln Ã/∂ln V = −β,    ∂ln D/∂ln V = −β − 1,

    which is the covariance term of the guidance: u²(D)/D² ⊃ u²(Ã)/Ã² + u²(m)/m² − 2 cov(Ã, m)/(Ã m)
    with cov(ln Ã, ln m) = −β u²(V)/V² (see :func:`propagate`).

Combination
    Components are independent of each other, so u² = Σ (sₖ uₖ)² separately for the shared and
    the independent ones; total² = shared² + independent². The 95 % interval combines the fit's own
    (asymmetric) interval with the other components in ln Ã (:func:`widen_interval`) and is bounded
    by the physical limit (:func:`.uncertainty.bounded_interval`): a fit without an upper bound
    gives a TIA and dose interval without one (``ci_unbounded``, upper bound NaN).

Across cycles (:func:`cumulative_rel_uncertainty`): shared components are fully correlated (their
absolute uncertainties add linearly), independent ones add in quadrature.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..calibration.recovery import sphere_radius_mm
from ..errors import InputError
from .uncertainty import MAX_REPORTED_REL_UNCERTAINTY, Z95, widen_interval

__all__ = ["BudgetComponent", "RegionBudget", "BudgetDefaults", "propagate", "widen_interval",
           "volume_rel_uncertainty", "registration_rel_per_timepoint",
           "point_weights", "recovery_terms", "region_budget", "apply_budget", "cumulative_rel_uncertainty",
           "budget_rows", "BUDGET_COLUMNS", "dose_uncertainty_columns",
           "DEFAULT_CALIBRATION_REL", "DEFAULT_FWHM_REL", "DEFAULT_REGISTRATION_MM",
           "DEFAULT_BOUNDARY_VOXEL_FRACTION", "SHARED_COMPONENTS", "COMPONENT_NAMES"]

COMPONENT_NAMES = ("calibration", "recovery", "volume", "registration", "counting_fit")
#: Components fully correlated between regions and between cycles.
SHARED_COMPONENTS = ("calibration", "recovery")

#: Relative standard uncertainty of the calibration factor when the store states none: 5 %.
#: Assumption (status: unverified default), of the order of the activity-meter accuracy
#: tolerance (±5 %) plus the calibration scan's own counting; replace by the store's value.
DEFAULT_CALIBRATION_REL = 0.05
#: Relative standard uncertainty of the effective SPECT resolution (FWHM) used by the recovery
#: model when no fitted recovery curve with covariance is available: 10 % (assumption, unverified;
#: the reconstructed FWHM varies with depth, iterations and count level).
DEFAULT_FWHM_REL = 0.10
#: Residual misregistration (mm, k = 1) of a timepoint against the reference after rigid and
#: organ-local registration: 2 mm (assumption, unverified).
DEFAULT_REGISTRATION_MM = 2.0
#: Segmentation boundary uncertainty as a fraction of the segmentation voxel size: ½ voxel
#: (assumption: a digital boundary is placed to within half a voxel).
DEFAULT_BOUNDARY_VOXEL_FRACTION = 0.5


@dataclass(frozen=True)
class BudgetComponent:
    """One component of a region's budget.

    Attributes
    ----------
    name : str
        One of :data:`COMPONENT_NAMES`.
    input_rel : float
        Relative standard uncertainty (k = 1, dimensionless) of the input quantity; NaN when it
        has no finite value (an unbounded fit).
    tia_sensitivity, dose_sensitivity : float
        ∂ln Ã/∂ln x and ∂ln D/∂ln x (dimensionless).
    shared : bool
        Fully correlated between regions and cycles (calibration, method).
    source : str
        Where ``input_rel`` came from.
    default : bool
        True when ``input_rel`` is a named default, not a measurement.
    """

    name: str
    input_rel: float
    tia_sensitivity: float
    dose_sensitivity: float
    shared: bool
    source: str
    default: bool = False

    @property
    def tia_rel(self) -> float:
        """Contribution to the relative standard uncertainty of the TIA (dimensionless)."""
        return abs(self.tia_sensitivity) * self.input_rel

    @property
    def dose_rel(self) -> float:
        """Contribution to the relative standard uncertainty of the dose (dimensionless)."""
        return abs(self.dose_sensitivity) * self.input_rel

    def to_dict(self) -> dict:
        """For run.json."""
        return {"input_rel": _reportable(self.input_rel), "tia_sensitivity": self.tia_sensitivity,
                "dose_sensitivity": self.dose_sensitivity, "tia_rel": _reportable(self.tia_rel),
                "dose_rel": _reportable(self.dose_rel),
                "shared": self.shared, "default": self.default, "source": self.source}


def _quad(values: Sequence[float]) -> float:
    return math.sqrt(sum(v * v for v in values))


@dataclass(frozen=True)
class RegionBudget:
    """A region's budget and its propagated TIA and dose intervals.

    Attributes
    ----------
    region : str
    components : tuple of BudgetComponent
    tia_Bq_h : float
    tia_ci95_Bq_h : (float, float)
        Combined 95 % interval (Bq·h); upper bound NaN when unbounded.
    dose_factor_ci95 : (float, float)
        Combined 95 % interval of the dose as factors of the reported dose (dimensionless);
        upper NaN when unbounded.
    flags : tuple of str
        ``ci_unbounded``, ``ci_clipped_at_physical_limit``, ``rel_uncertainty_above_10``.
    """

    region: str
    components: tuple[BudgetComponent, ...]
    tia_Bq_h: float
    tia_ci95_Bq_h: tuple[float, float]
    dose_factor_ci95: tuple[float, float]
    flags: tuple[str, ...] = ()

    def _part(self, attr: str, shared: bool | None) -> float:
        return _quad([getattr(c, attr) for c in self.components if shared is None or c.shared == shared])

    @property
    def tia_shared_rel(self) -> float:
        """Shared (calibration, method) part of the TIA's relative standard uncertainty."""
        return _reportable(self._part("tia_rel", True))

    @property
    def tia_independent_rel(self) -> float:
        """Independent (volume, registration, counting/fit) part of the TIA's relative uncertainty."""
        return _reportable(self._part("tia_rel", False))

    @property
    def tia_total_rel(self) -> float:
        """Relative standard uncertainty of the TIA (k = 1); NaN when unbounded or above 10."""
        return _reportable(self._part("tia_rel", None))

    @property
    def dose_shared_rel(self) -> float:
        """Shared part of the dose's relative standard uncertainty."""
        return _reportable(self._part("dose_rel", True))

    @property
    def dose_independent_rel(self) -> float:
        """Independent part of the dose's relative standard uncertainty."""
        return _reportable(self._part("dose_rel", False))

    @property
    def dose_total_rel(self) -> float:
        """Relative standard uncertainty of the dose (k = 1); NaN when unbounded or above 10."""
        return _reportable(self._part("dose_rel", None))

    def component(self, name: str) -> BudgetComponent:
        """The component called ``name``."""
        for c in self.components:
            if c.name == name:
                return c
        raise InputError(f"no component {name!r}; have {[c.name for c in self.components]}", source=self.region)

    def dose_interval(self, dose_Gy: float) -> tuple[float, float]:
        """95 % interval (Gy) of a reported dose; upper bound NaN when unbounded."""
        lo, hi = self.dose_factor_ci95
        return dose_Gy * lo, dose_Gy * hi

    def to_dict(self) -> dict:
        """For run.json: totals, shared/independent parts and each component."""
        return {"tia_rel": self.tia_total_rel, "tia_shared_rel": self.tia_shared_rel,
                "tia_independent_rel": self.tia_independent_rel, "dose_rel": self.dose_total_rel,
                "dose_shared_rel": self.dose_shared_rel, "dose_independent_rel": self.dose_independent_rel,
                "tia_ci95_Bq_h": list(self.tia_ci95_Bq_h), "dose_factor_ci95": list(self.dose_factor_ci95),
                "flags": ";".join(self.flags),
                "defaults": [c.name for c in self.components if c.default],
                "components": {c.name: c.to_dict() for c in self.components}}


def _reportable(rel: float) -> float:
    return rel if math.isfinite(rel) and rel <= MAX_REPORTED_REL_UNCERTAINTY else math.nan


def propagate(sensitivities: Sequence[float], rel_uncertainties: Sequence[float],
              correlation: np.ndarray | None = None) -> float:
    """GUM law of propagation in relative terms: u_y/y = √(sᵀ C s), Cᵢⱼ = rᵢⱼ uᵢ uⱼ.

    Parameters
    ----------
    sensitivities : sequence of float
        ∂ln y/∂ln xᵢ (dimensionless).
    rel_uncertainties : sequence of float
        u(xᵢ)/xᵢ (k = 1).
    correlation : ndarray, optional
        Correlation matrix rᵢⱼ of the inputs (default: identity, uncorrelated).

    Returns
    -------
    float
        Relative standard uncertainty of y.
    """
    s = np.asarray(sensitivities, float)
    u = np.asarray(rel_uncertainties, float)
    if s.shape != u.shape:
        raise InputError(f"{s.size} sensitivities but {u.size} uncertainties", source="propagate")
    r = np.eye(s.size) if correlation is None else np.asarray(correlation, float)
    if r.shape != (s.size, s.size):
        raise InputError(f"correlation must be {s.size}×{s.size}, got {r.shape}", source="propagate")
    c = r * np.outer(u, u)
    return float(math.sqrt(max(float(s @ c @ s), 0.0)))


def volume_rel_uncertainty(volume_mL: float, boundary_mm: float) -> float:
    """u(V)/V = 3δ/R: the boundary of the equal-volume sphere placed to ±δ (mm)."""
    _check_positive(volume_mL, "volume_mL")
    return 3.0 * boundary_mm / float(sphere_radius_mm(volume_mL))


def registration_rel_per_timepoint(volume_mL: float, shift_mm: float) -> float:
    """Fraction 3δ/(4R) of a uniform sphere's activity shifted out of its VOI by a shift δ (mm)."""
    _check_positive(volume_mL, "volume_mL")
    return 0.75 * shift_mm / float(sphere_radius_mm(volume_mL))


def point_weights(times_h: Sequence[float], activities_Bq: Sequence[float], decay_constant_per_h: float) -> np.ndarray:
    """wᵢ = cᵢ yᵢ / Σ cⱼ yⱼ: each point's share of the trapezoid-with-physical-tail TIA.

    cᵢ are the trapezoid coefficients (zero at t = 0, linear between points, tail yₙ/λp), so
    ∂ln Ã/∂ln yᵢ = wᵢ for a TIA linear in the points.
    """
    from .curves import TrapezoidCurve

    t = np.asarray(times_h, float)
    y = np.asarray(activities_Bq, float)
    if t.size == 0 or t.size != y.size:
        raise InputError(f"{t.size} times and {y.size} activities", source="point_weights")
    c = np.array([TrapezoidCurve(tuple(t.tolist()), tuple(e.tolist()), decay_constant_per_h, "zero").integral()
                  for e in np.eye(t.size)])
    cy = c * np.maximum(y, 0.0)
    total = float(cy.sum())
    return cy / total if total > 0 else np.full(t.size, 1.0 / t.size)


def recovery_terms(volume_mL: float, *, method: str, fwhm_mm: float, curve=None,
                   fwhm_rel: float = DEFAULT_FWHM_REL) -> tuple[float, float, str, bool]:
    """Recovery uncertainty and volume sensitivity of a region.

    Parameters
    ----------
    volume_mL : float
        Region volume (mL).
    method : {"gtm", "recovery", "none"}
        The partial-volume correction applied.
    fwhm_mm : float
        SPECT resolution (mm) of the Gaussian-sphere model when no curve is given.
    curve : calibration.recovery.RecoveryCurve, optional
        The camera's recovery curve; its stated uncertainty is used when > 0.
    fwhm_rel : float
        Relative standard uncertainty of the FWHM for the model-based value.

    Returns
    -------
    (u_rc, beta, source, default)
        u(RC)/RC; β = ∂ln RC/∂ln V; where u came from; whether it is a default.
    """
    from ..calibration.recovery import gaussian_sphere_recovery

    if method == "none":
        return 0.0, 0.0, "no partial-volume correction", False
    if method not in ("gtm", "recovery"):
        raise InputError(f"must be 'gtm', 'recovery' or 'none', got {method!r}", source="partial_volume")
    _check_positive(volume_mL, "volume_mL")
    h = 1e-3
    if curve is not None:
        _, u = curve.coefficient(volume_mL)
        rc_hi, _ = curve.coefficient(volume_mL * (1 + h))
        rc_lo, _ = curve.coefficient(volume_mL * (1 - h))
        beta = (math.log(rc_hi) - math.log(rc_lo)) / (math.log1p(h) - math.log1p(-h)) if rc_lo > 0 else math.nan
        if math.isfinite(u) and u > 0:
            return u, beta, "calibration store recovery curve (fit covariance and sphere scatter)", False
        fwhm_mm = float(curve.parameters.get("fwhm_mm", fwhm_mm)) if curve.model == "gaussian_sphere" else fwhm_mm
    else:
        v = np.array([volume_mL * (1 - h), volume_mL * (1 + h)])
        r = gaussian_sphere_recovery(v, fwhm_mm)
        beta = float((math.log(r[1]) - math.log(r[0])) / (math.log1p(h) - math.log1p(-h)))
    f = np.array([fwhm_mm * (1 - h), fwhm_mm * (1 + h)])
    rf = np.array([float(gaussian_sphere_recovery(volume_mL, fi)[0]) for fi in f])
    d = abs((math.log(rf[1]) - math.log(rf[0])) / (math.log1p(h) - math.log1p(-h)))
    return (d * fwhm_rel, beta,
            f"default: Gaussian-sphere recovery at FWHM {fwhm_mm:.3g} mm known to {fwhm_rel:.0%} (DEFAULT_FWHM_REL)",
            True)


@dataclass(frozen=True)
class BudgetDefaults:
    """The named defaults of a budget (each replaceable; written to run.json).

    Attributes
    ----------
    calibration_rel : float
        Used when the calibration store states no sensitivity uncertainty.
    fwhm_rel : float
        Relative uncertainty of the FWHM of the recovery model.
    registration_mm : float
        Residual misregistration per registered timepoint (mm).
    boundary_mm : float or None
        Segmentation boundary uncertainty (mm); None: ½ the segmentation voxel (mean spacing).
    """

    calibration_rel: float = DEFAULT_CALIBRATION_REL
    fwhm_rel: float = DEFAULT_FWHM_REL
    registration_mm: float = DEFAULT_REGISTRATION_MM
    boundary_mm: float | None = None

    def __post_init__(self) -> None:
        for name in ("calibration_rel", "fwhm_rel", "registration_mm"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise InputError(f"must be finite and ≥ 0, got {v!r}", source=name)
        if self.boundary_mm is not None and not (math.isfinite(self.boundary_mm) and self.boundary_mm >= 0):
            raise InputError(f"must be finite and ≥ 0 mm, got {self.boundary_mm!r}", source="boundary_mm")

    @classmethod
    def from_mapping(cls, values: Mapping[str, float] | None) -> BudgetDefaults:
        """From a parameters mapping (JSON); unknown keys are refused by name."""
        from dataclasses import fields

        known = [f.name for f in fields(cls)]
        unknown = sorted(set(values or {}) - set(known))
        if unknown:
            raise InputError(f"unknown key(s) {unknown}; known: {known}", source="uncertainty_defaults")
        return cls(**dict(values or {}))


def region_budget(fit, *, volume_mL: float, calibration_rel: float | None, partial_volume: str,
                  fwhm_mm: float, decay_constant_per_h: float, recovery_curve=None,
                  segmentation_spacing_mm: Sequence[float] = (1.0, 1.0, 1.0),
                  registered: Sequence[bool] | None = None, defaults: BudgetDefaults = BudgetDefaults(),
                  limit_Bq_h: float = math.inf) -> RegionBudget:
    """The budget of one fitted region and its combined TIA and dose intervals.

    Parameters
    ----------
    fit : FitResult
        The region's fit (:func:`.fitting.fit_tac`): TIA, 95 % interval, times and activities.
    volume_mL : float
        Region volume (mL).
    calibration_rel : float or None
        The calibration store's relative sensitivity uncertainty; None or 0: the default.
    partial_volume : {"gtm", "recovery", "none"}
    fwhm_mm : float
        SPECT resolution (mm).
    decay_constant_per_h : float
        λp (h⁻¹).
    recovery_curve : RecoveryCurve, optional
    segmentation_spacing_mm : sequence of float
        Voxel size of the segmentation (mm), for the default boundary uncertainty.
    registered : sequence of bool, optional
        Per timepoint, whether it was registered to the reference (default: all but the first).
    defaults : BudgetDefaults
    limit_Bq_h : float
        Physical limit of the TIA (Bq·h).

    Returns
    -------
    RegionBudget
    """
    from .uncertainty import bounded_interval

    tia = float(fit.tia_Bq_h)
    if calibration_rel is not None and calibration_rel > 0:
        cal = BudgetComponent("calibration", float(calibration_rel), -1.0, -1.0, True,
                              "calibration store sensitivity_rel_uncertainty")
    else:
        is_def = defaults.calibration_rel == DEFAULT_CALIBRATION_REL
        cal = BudgetComponent("calibration", defaults.calibration_rel, -1.0, -1.0, True,
                              ("default DEFAULT_CALIBRATION_REL" if is_def else "calibration_rel given")
                              + " (the store states no uncertainty)", is_def)
    u_rc, beta, rc_src, rc_default = recovery_terms(volume_mL, method=partial_volume, fwhm_mm=fwhm_mm,
                                                    curve=recovery_curve, fwhm_rel=defaults.fwhm_rel)
    rec = BudgetComponent("recovery", u_rc, -1.0, -1.0, True, rc_src,
                          rc_default and defaults.fwhm_rel == DEFAULT_FWHM_REL)
    if defaults.boundary_mm is None:
        delta = DEFAULT_BOUNDARY_VOXEL_FRACTION * float(np.mean(segmentation_spacing_mm))
        v_src, v_default = f"default: boundary ±{delta:.3g} mm (½ segmentation voxel)", True
    else:
        delta, v_src, v_default = defaults.boundary_mm, f"boundary ±{defaults.boundary_mm:.3g} mm (given)", False
    vol = BudgetComponent("volume", volume_rel_uncertainty(volume_mL, delta), -beta, -beta - 1.0, False,
                          v_src + f"; ∂lnRC/∂lnV = {beta:.3g}", v_default)
    n = len(fit.times_h)
    reg_def = defaults.registration_mm == DEFAULT_REGISTRATION_MM
    reg_mask = np.array([i > 0 for i in range(n)] if registered is None else list(registered), bool)
    if reg_mask.size != n:
        raise InputError(f"{reg_mask.size} registration flags for {n} timepoints", source=fit.region)
    w = point_weights(fit.times_h, fit.activities_Bq, decay_constant_per_h) if n else np.zeros(0)
    s_reg = float(np.sqrt(np.sum(w[reg_mask] ** 2))) if n else 0.0
    reg = BudgetComponent("registration", registration_rel_per_timepoint(volume_mL, defaults.registration_mm),
                          s_reg, s_reg, False,
                          f"residual shift {defaults.registration_mm:.3g} mm per registered timepoint "
                          f"({'default DEFAULT_REGISTRATION_MM' if reg_def else 'given'})", reg_def)
    low, high = fit.tia_ci95_Bq_h
    u_fit = fit.tia_rel_uncertainty
    bounded = math.isfinite(high)
    if not math.isfinite(u_fit) and bounded and math.isfinite(low):
        u_fit = (high - low) / (2 * Z95 * tia)
    fitc = BudgetComponent("counting_fit", u_fit if bounded else math.nan, 1.0, 1.0, False,
                           f"fit {fit.model_name} 95 % interval ({fit.ci_method})")
    comps = (cal, rec, vol, reg, fitc)
    flags: list[str] = []
    other_tia = _quad([c.tia_rel for c in comps[:-1]])
    other_dose = _quad([c.dose_rel for c in comps[:-1]])
    if bounded and math.isfinite(low):
        t_lo, t_hi = widen_interval(tia, low, high, other_tia)
        d_lo, d_hi = widen_interval(1.0, low / tia, high / tia, other_dose)
    elif math.isfinite(low):  # unbounded above: the lower bound still widens, the upper stays open
        t_lo, t_hi = widen_interval(tia, low, math.inf, other_tia)
        d_lo, d_hi = widen_interval(1.0, low / tia, math.inf, other_dose)
    else:
        t_lo = t_hi = d_lo = d_hi = math.nan
    t_lo, t_hi, _, f = bounded_interval(tia, t_lo, t_hi, limit_Bq_h=limit_Bq_h)
    flags += f
    if math.isfinite(d_hi) and math.isfinite(limit_Bq_h) and tia > 0 and d_hi > limit_Bq_h / tia:
        d_hi = limit_Bq_h / tia
    elif d_hi == math.inf:
        d_hi = math.nan
    budget = RegionBudget(fit.region, comps, tia, (t_lo, t_hi), (d_lo, d_hi), ())
    for rel in (budget._part("tia_rel", None), budget._part("dose_rel", None)):
        if math.isfinite(rel) and rel > MAX_REPORTED_REL_UNCERTAINTY and "rel_uncertainty_above_10" not in flags:
            flags.append("rel_uncertainty_above_10")
    if not bounded and "ci_unbounded" not in flags:
        flags.append("ci_unbounded")
    return RegionBudget(fit.region, comps, tia, (t_lo, t_hi), (d_lo, d_hi), tuple(flags))


def cumulative_rel_uncertainty(doses_Gy: Sequence[float],
                               shared_rel: Sequence[float] | Mapping[str, Sequence[float]],
                               independent_rel: Sequence[float]) -> float:
    """Relative standard uncertainty of a dose summed over cycles (k = 1).

    Shared components (calibration, method) are the same unknown error in every cycle: fully
    correlated, their absolute uncertainties add linearly. Independent ones (counting/fit,
    volume, registration) add in quadrature:

        u²(ΣD) = Σₖ (Σ_c D_c u_{k,c})² + Σ_c (D_c u_{ind,c})²

    over shared components k (each fully correlated across cycles, uncorrelated with the others).
    Six cycles with a shared 10 % give 10 % cumulative; independent-only 15 % per cycle of equal
    doses gives 15 %/√6.

    Parameters
    ----------
    doses_Gy : sequence of float
        Dose of each cycle (Gy, or Gy/GBq × GBq; any common unit).
    shared_rel : sequence of float, or mapping name → sequence of float
        Per cycle, the shared relative standard uncertainty: one combined value per cycle (all
        shared components treated as one fully correlated group), or per named component (each
        name fully correlated across cycles, names independent of each other).
    independent_rel : sequence of float
        Per cycle, the independent relative standard uncertainty.

    Returns
    -------
    float
        u(ΣD)/ΣD.

    Raises
    ------
    InputError
        Lengths differ, a dose is negative or not finite, the total is zero, or an uncertainty
        is negative or not finite.
    """
    d = np.asarray(doses_Gy, float)
    n = d.size
    groups = ({str(k): np.asarray(v, float) for k, v in shared_rel.items()} if isinstance(shared_rel, Mapping)
              else {"shared": np.asarray(shared_rel, float)})
    ind = np.asarray(independent_rel, float)
    if n == 0:
        raise InputError("no cycles", source="doses_Gy")
    if not np.all(np.isfinite(d)) or np.any(d < 0):
        raise InputError(f"doses must be finite and ≥ 0, got {d.tolist()}", source="doses_Gy")
    for name, arr in {**groups, "independent_rel": ind}.items():
        if arr.shape != (n,):
            raise InputError(f"{arr.size} values for {n} cycles", source=name)
        if not np.all(np.isfinite(arr)) or np.any(arr < 0):
            raise InputError(f"relative uncertainties must be finite and ≥ 0, got {arr.tolist()}", source=name)
    total = float(d.sum())
    if total <= 0:
        raise InputError("the summed dose is zero", source="doses_Gy")
    var = sum(float(np.sum(d * u)) ** 2 for u in groups.values()) + float(np.sum((d * ind) ** 2))
    return math.sqrt(var) / total


def _check_positive(v: float, name: str) -> None:
    if not (math.isfinite(v) and v > 0):
        raise InputError(f"must be finite and > 0, got {v!r}", source=name)


def apply_budget(fit, budget: RegionBudget):
    """The fit with its interval, relative uncertainty and flags replaced by the budget's totals.

    The fit-only values stay in ``parameters`` (``fit_rel_uncertainty``, ``fit_ci95_Bq_h``) with
    the shared and independent parts (``tia_shared_rel_uncertainty``,
    ``tia_independent_rel_uncertainty``).
    """
    from dataclasses import replace

    params = {**fit.parameters, "fit_rel_uncertainty": fit.tia_rel_uncertainty,
              "fit_ci95_Bq_h": list(fit.tia_ci95_Bq_h), "tia_shared_rel_uncertainty": budget.tia_shared_rel,
              "tia_independent_rel_uncertainty": budget.tia_independent_rel}
    flags = tuple(dict.fromkeys((*fit.flags, *budget.flags)))
    return replace(fit, tia_ci95_Bq_h=budget.tia_ci95_Bq_h, tia_rel_uncertainty=budget.tia_total_rel, flags=flags,
                   parameters=params)


#: Columns of :func:`budget_rows` (relative standard uncertainties, k = 1).
BUDGET_COLUMNS = ("region", "tia_rel_uncertainty", "dose_rel_uncertainty", "dose_shared_rel",
                  "dose_independent_rel", *(f"{c}_dose_rel" for c in COMPONENT_NAMES), "defaults", "flags")


def budget_rows(budgets: Mapping[str, RegionBudget]) -> list[dict]:
    """One row per region (:data:`BUDGET_COLUMNS`): totals, shared/independent parts, each component's
    contribution to the dose's relative uncertainty, the components that are defaults."""
    rows = []
    for region, b in budgets.items():
        row = {"region": region, "tia_rel_uncertainty": b.tia_total_rel, "dose_rel_uncertainty": b.dose_total_rel,
               "dose_shared_rel": b.dose_shared_rel, "dose_independent_rel": b.dose_independent_rel,
               "defaults": ";".join(c.name for c in b.components if c.default), "flags": ";".join(b.flags)}
        for c in b.components:
            row[f"{c.name}_dose_rel"] = _reportable(c.dose_rel)
        rows.append(row)
    return rows


def dose_uncertainty_columns(budgets: Mapping[str, RegionBudget], doses_Gy: Mapping[str, float]
                             ) -> tuple[dict[str, float], dict[str, tuple[float | None, float | None]], dict[str, str]]:
    """doses.csv's ``dose_rel_uncertainty``, ``dose_ci95_low_Gy``/``high_Gy`` and flags from the budgets.

    Parameters
    ----------
    budgets : mapping region → RegionBudget
    doses_Gy : mapping region → reported dose (Gy)

    Returns
    -------
    (rel, ci95, flags)
        ``rel`` only where reportable; ``ci95`` (low, high) with None for an empty bound
        (unbounded above); ``flags`` the budget's flags joined by ``;``.
    """
    rel, ci, flags = {}, {}, {}
    for region, b in budgets.items():
        d = doses_Gy.get(region)
        if d is None or not math.isfinite(d):
            continue
        if math.isfinite(b.dose_total_rel):
            rel[region] = b.dose_total_rel
        lo, hi = b.dose_interval(d)
        ci[region] = (lo if math.isfinite(lo) else None, hi if math.isfinite(hi) else None)
        if b.flags:
            flags[region] = ";".join(b.flags)
    return rel, ci, flags
