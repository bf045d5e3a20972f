"""Uncertainty of the time-integrated activity, following the EANM guidance.

Reference: Gear JI, Cox MG, Gustafsson J, et al. EANM practical guidance on uncertainty analysis
for molecular radiotherapy absorbed dose calculations. EJNMMI 2018;45:2456-2474,
doi:10.1007/s00259-018-4136-7.

Two kinds of uncertainty are kept apart:

1. **Correlated scale factors** — camera calibration, recovery coefficient and volume (through
   the recovery correction) multiply the activity of *every* timepoint by the same unknown
   factor, so they scale the TIA by that factor: their relative standard uncertainties add in
   quadrature to the TIA's (:func:`combine_scale_uncertainty`).
2. **Count noise and fit uncertainty**, independent between timepoints, handled in the fit:

   - **Profile likelihood** (default for every fitted model): the 95 % interval of the TIA is
     the set of T for which the profiled S(T) = min over the other parameters of
     Σ((y − A)/σ)² stays within a threshold of its minimum. With σ known (``sigma_Bq`` given)
     the threshold is χ²₁(0.95) = 3.84; with the scale of σ estimated from the residuals
     (n − k degrees of freedom) it is s²·t²_{n−k}(0.975), the profile-t interval of Bates & Watts
     (Nonlinear Regression Analysis, Wiley 1988, ch. 6). Unlike a covariance (Wald) interval it
     follows the curvature of the model, and the t-quantile widens it for 1–2 degrees of freedom,
     where covariance intervals with normal quantiles are far too narrow.
   - **Parametric bootstrap** (percentile, ``interval="bootstrap"``, and always for a
     trapezoid with a tail fitted on its last two points): points are redrawn as
     A(tᵢ) + σᵢ·ε, refitted, and the 2.5–97.5 percentiles of the TIA taken.
   - **Linear propagation** for a trapezoid with a physical-decay tail (TIA is a weighted sum of
     the points): var = Σ cᵢ² σᵢ².
   - With no degrees of freedom and σ unknown no interval exists: NaN and a flag.

Physical bounds (:func:`bounded_interval`, applied to every TIA interval the fits return)
    A region cannot hold more than the administered activity, and no effective rate is below
    the physical decay constant λp, so TIA ≤ A_adm / λp (:func:`physical_tia_limit_Bq_h`: all the
    activity in the region, never washing out). The profile search stops there: a profile that
    has not risen by the threshold at the limit has **no** upper bound the data support, and the
    interval is reported unbounded (upper bound NaN, written empty, flag ``ci_unbounded``), never
    as a number. A bound from another method (bootstrap, posterior, added scale factors) above
    the limit is set to the limit (flag ``ci_clipped_at_physical_limit``: the TIA cannot lie
    above it, so the coverage does not drop). A relative standard uncertainty above
    :data:`MAX_REPORTED_REL_UNCERTAINTY` (10, i.e. 1000 %) is no information and is reported as
    NaN with flag ``rel_uncertainty_above_10``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import stats

from ..errors import InputError
from . import lsq

__all__ = ["profile_interval", "bootstrap_interval", "ScaleUncertainty", "combine_scale_uncertainty",
           "relative_uncertainty_from_interval", "Z95", "physical_tia_limit_Bq_h", "bounded_interval",
           "MAX_REPORTED_REL_UNCERTAINTY", "widen_interval"]

#: Two-sided 95 % normal quantile.
Z95 = float(stats.norm.ppf(0.975))
#: Relative standard uncertainties above this (dimensionless; 10 = 1000 %) are reported as NaN + flag.
MAX_REPORTED_REL_UNCERTAINTY = 10.0


def physical_tia_limit_Bq_h(administered_activity_Bq: float | None, decay_constant_per_h: float) -> float:
    """Largest physically possible TIA of any region (Bq·h): A_adm / λp.

    All the administered activity in the region from injection on, removed by physical decay
    only. ``inf`` when the administered activity is not known (None).

    Parameters
    ----------
    administered_activity_Bq : float or None
        Net administered activity (Bq).
    decay_constant_per_h : float
        Physical decay constant λp (h⁻¹).
    """
    if administered_activity_Bq is None:
        return math.inf
    a = float(administered_activity_Bq)
    if not (math.isfinite(a) and a > 0):
        raise InputError(f"must be a finite activity > 0 Bq, got {administered_activity_Bq!r}",
                         source="administered_activity_Bq")
    if not (decay_constant_per_h > 0):
        raise InputError(f"must be > 0 h⁻¹, got {decay_constant_per_h!r}", source="decay_constant_per_h")
    return a / decay_constant_per_h


def bounded_interval(tia: float, low: float, high: float, *,
                     limit_Bq_h: float = math.inf) -> tuple[float, float, float, tuple[str, ...]]:
    """Make a TIA interval physical and reportable (module docstring, Physical bounds).

    Parameters
    ----------
    tia : float
        Estimate (Bq·h).
    low, high : float
        95 % interval (Bq·h); ``high = inf`` means unbounded, NaN no interval at all.
    limit_Bq_h : float
        Physical limit (:func:`physical_tia_limit_Bq_h`), Bq·h.

    Returns
    -------
    (low, high, rel, flags)
        ``high`` NaN when unbounded; ``rel`` the relative standard uncertainty
        (:func:`relative_uncertainty_from_interval`), NaN when unbounded or above
        :data:`MAX_REPORTED_REL_UNCERTAINTY`; flags from ``ci_unbounded``,
        ``ci_clipped_at_physical_limit``, ``rel_uncertainty_above_10``, ``tia_above_physical_limit``.
    """
    flags: list[str] = []
    if math.isfinite(tia) and tia > limit_Bq_h:
        flags.append("tia_above_physical_limit")
    if math.isfinite(low):
        low = max(low, 0.0)
    if high == math.inf:
        high = math.nan
        flags.append("ci_unbounded")
    elif math.isfinite(high) and high > limit_Bq_h:
        high = limit_Bq_h
        flags.append("ci_clipped_at_physical_limit")
    rel = relative_uncertainty_from_interval(tia, low, high)
    if math.isfinite(rel) and rel > MAX_REPORTED_REL_UNCERTAINTY:
        rel = math.nan
        flags.append("rel_uncertainty_above_10")
    return low, high, rel, tuple(flags)


def profile_threshold(n: int, k: int, s_min: float, *, sigma_known: bool, level: float = 0.95) -> float:
    """ΔS defining the profile interval (see module docstring); NaN when it cannot be formed."""
    if sigma_known:
        return float(stats.chi2.ppf(level, 1))
    dof = n - k
    if dof <= 0:
        return math.nan
    s2 = s_min / dof
    return s2 * float(stats.t.ppf(0.5 + level / 2, dof)) ** 2


def profile_interval(p: lsq.Problem, theta_hat: np.ndarray, s_min: float, threshold: float, *,
                     step: float = 0.05, max_expand: int = 14,
                     limit_Bq_h: float = math.inf) -> tuple[float, float, bool]:
    """Profile-likelihood interval of the TIA (Bq·h).

    Parameters
    ----------
    p : lsq.Problem
    theta_hat : ndarray
        Best fit (θ[0] = ln TIA).
    s_min : float
        S(θ̂).
    threshold : float
        ΔS (from :func:`profile_threshold`).
    step : float
        First step in ln TIA when bracketing.
    limit_Bq_h : float
        Physical limit of the TIA (Bq·h, :func:`physical_tia_limit_Bq_h`): the upward search
        stops there.

    Returns
    -------
    (low, high, bounded) : float, float, bool
        ``high`` is inf (and ``bounded`` False) when S has not risen by ``threshold`` at the
        physical limit (or after ``max_expand`` doublings of the step).
    """
    from scipy.optimize import brentq

    lt0 = float(theta_hat[0])
    rest0 = np.asarray(theta_hat[1:], dtype=float)
    cache: dict[str, np.ndarray] = {}

    def g(lt: float) -> float:
        rest, s = lsq.fit_fixed_tia(p, lt, cache.get("last", rest0))
        cache["last"] = rest
        return s - s_min - threshold

    ln_max = math.log(limit_Bq_h) if math.isfinite(limit_Bq_h) else math.inf
    out = []
    bounded = True
    for sign in (-1.0, 1.0):
        cache["last"] = rest0
        if sign > 0 and lt0 >= ln_max:
            out.append(math.inf)
            bounded = False
            continue
        h = step
        a, b = lt0, min(lt0 + sign * h, ln_max)
        gb = g(b)
        n = 0
        while gb < 0 and n < max_expand and b < ln_max:
            a, h = b, 2 * h
            b = min(lt0 + sign * h, ln_max)
            gb = g(b)
            n += 1
        if gb < 0:
            out.append(0.0 if sign < 0 else math.inf)
            bounded = False
            continue
        cache["last"] = rest0
        # g(a) ≥ 0 happens only when the threshold is at rounding level (noise-free data).
        root = a if g(a) >= 0 else brentq(g, min(a, b), max(a, b), xtol=1e-5)
        out.append(math.exp(root))
    return out[0], out[1], bounded


def bootstrap_interval(simulate: Callable[[np.random.Generator], np.ndarray],
                       estimate: Callable[[np.ndarray], float], *, n_boot: int = 400,
                       seed: int = 0, level: float = 0.95) -> tuple[float, float, np.ndarray]:
    """Parametric bootstrap, percentile interval.

    Parameters
    ----------
    simulate : callable
        rng → one simulated data vector (Bq).
    estimate : callable
        data vector → TIA (Bq·h); may return NaN for a failed refit (those are dropped).
    n_boot : int
    seed : int

    Returns
    -------
    (low, high, samples)
    """
    rng = np.random.default_rng(seed)
    samples = np.array([estimate(simulate(rng)) for _ in range(n_boot)], dtype=float)
    good = samples[np.isfinite(samples)]
    if good.size < max(20, n_boot // 2):
        return math.nan, math.nan, samples
    q = (1 - level) / 2
    return float(np.quantile(good, q)), float(np.quantile(good, 1 - q)), samples


def relative_uncertainty_from_interval(tia: float, low: float, high: float) -> float:
    """(high − low) / (2 · 1.96 · TIA): a standard relative uncertainty equivalent of a 95 % interval."""
    if not (math.isfinite(low) and math.isfinite(high)) or tia <= 0:
        return math.nan
    return (high - low) / (2.0 * Z95 * tia)


@dataclass(frozen=True)
class ScaleUncertainty:
    """Relative standard uncertainties (dimensionless) that scale all timepoints alike (EANM).

    Attributes
    ----------
    calibration_rel : float
        Camera calibration factor (cps/MBq).
    recovery_rel : float
        Recovery (partial-volume) coefficient.
    volume_rel : float
        Effect of the volume (segmentation) uncertainty on the region's activity.
    """

    calibration_rel: float = 0.0
    recovery_rel: float = 0.0
    volume_rel: float = 0.0

    def __post_init__(self) -> None:
        for name in ("calibration_rel", "recovery_rel", "volume_rel"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise InputError(f"must be a finite relative uncertainty ≥ 0, got {v}", source=name)

    @property
    def total_rel(self) -> float:
        """Quadrature sum of the components."""
        return math.sqrt(self.calibration_rel**2 + self.recovery_rel**2 + self.volume_rel**2)


def combine_scale_uncertainty(tia: float, low: float, high: float,
                              scale: ScaleUncertainty) -> tuple[float, float, float]:
    """Add correlated scale uncertainties to a fit interval (:func:`widen_interval`).

    Returns (low, high, relative standard uncertainty).
    """
    if not math.isfinite(tia) or tia <= 0:
        return math.nan, math.nan, math.nan
    if not math.isfinite(low) and not math.isfinite(high):
        return math.nan, math.nan, math.nan
    new_lo, new_hi = widen_interval(tia, low, high, scale.total_rel)
    return new_lo, new_hi, relative_uncertainty_from_interval(tia, new_lo, new_hi)


def widen_interval(value: float, low: float, high: float, other_rel: float) -> tuple[float, float]:
    """Add other relative uncertainties to an asymmetric 95 % interval, in ln(value).

    Each side's half-width ln(value/low), ln(high/value) and 1.96·``other_rel`` add in quadrature
    (the other components taken as log-normal factors). An unbounded side (low ≤ 0, high inf or
    NaN) stays unbounded (0 or inf).

    Returns
    -------
    (low, high)
    """
    if not (math.isfinite(value) and value > 0):
        return math.nan, math.nan
    w = Z95 * other_rel
    d_lo = math.log(value / low) if math.isfinite(low) and low > 0 else math.inf
    d_hi = math.log(high / value) if math.isfinite(high) and high > 0 else math.inf
    lo = value * math.exp(-math.hypot(d_lo, w)) if math.isfinite(d_lo) else 0.0
    hi = value * math.exp(math.hypot(d_hi, w)) if math.isfinite(d_hi) else math.inf
    return lo, hi
