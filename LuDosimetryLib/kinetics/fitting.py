"""Fit a time-activity curve (TAC) and integrate it: TIA with an honest 95 % interval.

Models (see :mod:`.curves`): ``mono`` (k = 2), ``uptake_washout`` (k = 3, A(0) = 0),
``uptake_washout_fixed`` (k = 2, uptake rate fixed), ``tri`` (k = 5, A(0) = 0) and
``trapezoid`` (no fitted parameters; first segment and tail by stated rules).

Weights
    With ``sigma_Bq`` given, the σᵢ are taken as known standard uncertainties of the points (Bq)
    and χ² has scale 1. Without it the error model is Poisson-like: σᵢ ∝ √A(tᵢ) (relative error
    ∝ 1/√A, counts being proportional to activity), evaluated on the data for a first fit and on
    that fit's curve for the final one (so a low point is not over-weighted); the scale of σ is
    estimated from the residuals with n − k degrees of freedom.

Effective rates
    Every effective rate is bounded below by the physical decay constant λp of ``nuclide`` inside
    the optimiser (``scipy.optimize.least_squares``, trust-region reflective); nothing is clipped
    afterwards. A fit that ends on the bound is flagged ``rate_at_physical_limit``.

Identifiability rule (n points, k parameters)
    * Choice between models by AICc is made only among models with k ≤ n − 2, so that
      AICc = n ln(S/n) + 2k + 2k(k+1)/(n−k−1) (σ scale unknown) or χ² + 2k + 2k(k+1)/(n−k−1)
      (σ known) is finite and there is at least one residual degree of freedom per model.
    * ``"auto"`` offers ``mono`` and ``uptake_washout`` / ``tri`` when they satisfy the rule; when
      ``uptake_washout`` does not (n < 5) it offers ``uptake_washout_fixed`` instead, with the
      uptake rate fixed at ln 2 / ``uptake_half_life_h`` (default 1 h, or the prior table's value).
    * With n = 3 (no choice possible) ``"auto"`` fits a population-prior MAP mono-exponential when
      a ``prior`` is given (:mod:`.priors`), else a plain ``mono`` (flag ``few_points``); with
      n ≤ 2 a prior MAP fit or a ``trapezoid`` with physical tail.
    * A single model named explicitly needs n ≥ k; with n = k there is no residual and, with σ
      unknown, no interval (NaN, flag ``no_degrees_of_freedom``).

Trapezoid
    From 0 to the first point ``first_segment="zero"`` (linear from A(0) = 0, area A₁t₁/2, the
    default) or ``"constant"`` (A₁ over [0, t₁]); after the last point a tail A_n e^(−λ(t−t_n))
    with λ = λp (``tail="physical"``, default, the upper bound of the tail) or λ = max(λp, two-point
    log-linear rate of the last two points) (``tail="clearance"``).

Tail
    The fraction of the TIA after the last point is reported; above 20 % the fit is flagged
    ``tail_fraction_above_20pct`` (the TIA then rests on extrapolation).

Uncertainty: see :mod:`.uncertainty` (profile likelihood by default; bootstrap on request and for
a trapezoid with a clearance tail; correlated scale factors through ``scale``). With σ given, a
χ² above its 99th percentile (n − k dof) is flagged ``chi2_exceeds_sigma``: the points scatter
more than σ allows and the interval, which trusts σ, is too narrow.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from scipy import stats

from ..errors import InputError
from ..nuclides import get_nuclide
from ..timing import check_times_increasing
from ..units import Bq_to_MBq
from . import curves, lsq
from .models import KineticModel, SumOfExponentials
from .uncertainty import (
    ScaleUncertainty,
    bootstrap_interval,
    bounded_interval,
    combine_scale_uncertainty,
    physical_tia_limit_Bq_h,
    profile_interval,
    profile_threshold,
    relative_uncertainty_from_interval,
)

__all__ = ["FitResult", "fit_tac", "fit_rows", "MODEL_NAMES", "TAIL_FLAG_FRACTION", "validate_tac",
           "DEFAULT_UPTAKE_HALF_LIFE_H", "apply_physical_bounds"]

MODEL_NAMES = ("mono", "uptake_washout", "uptake_washout_fixed", "tri", "trapezoid")
#: Tail fraction above which a fit is flagged.
TAIL_FLAG_FRACTION = 0.20
#: Uptake half-life (h) used by ``uptake_washout_fixed`` when neither the caller nor a prior gives one.
DEFAULT_UPTAKE_HALF_LIFE_H = 1.0
_LN2 = math.log(2.0)


@dataclass(frozen=True)
class FitResult:
    """One region's fit and TIA.

    Attributes
    ----------
    region, kind : str
    model_name : str
        ``mono``, ``uptake_washout``, ``uptake_washout_fixed``, ``tri``, ``trapezoid``,
        ``map_mono`` (prior MAP) or an ``stp_*`` method.
    model : KineticModel
        The fitted curve (Bq vs h p.i.).
    tia_Bq_h : float
    tia_ci95_Bq_h : (float, float)
        95 % interval (Bq·h); NaN where none can be formed (see flags).
    tia_rel_uncertainty : float
        (high − low) / (2·1.96·TIA), dimensionless.
    tail_fraction : float
        ∫ after the last point / TIA.
    effective_half_life_h : float
        ln 2 / slowest effective rate (h).
    aicc : float
        NaN when not defined (k > n − 2, trapezoid).
    n_points, n_params : int
    parameters : dict
        Exponential terms (``a1_Bq``, ``b1_per_h``, …) and settings (weights, interval method).
    flags : tuple of str
    ci_method : str
        ``profile-t``, ``profile-chi2``, ``bootstrap``, ``linear``, ``posterior`` or ``none``.
    times_h, activities_Bq, sigma_Bq : tuple of float
        The data (σ as used, Bq; scaled estimate when σ was not given).
    """

    region: str
    model_name: str
    model: KineticModel
    tia_Bq_h: float
    tia_ci95_Bq_h: tuple[float, float]
    tia_rel_uncertainty: float
    tail_fraction: float
    effective_half_life_h: float
    aicc: float
    n_points: int
    n_params: int
    parameters: dict = field(compare=False)
    flags: tuple[str, ...] = ()
    kind: str = ""
    cycle: int | None = None
    ci_method: str = "none"
    times_h: tuple[float, ...] = ()
    activities_Bq: tuple[float, ...] = ()
    sigma_Bq: tuple[float, ...] = ()


def validate_tac(times_h: Sequence[float], activities_Bq: Sequence[float],
                 sigma_Bq: Sequence[float] | None = None, *, region: str = "") -> tuple[np.ndarray, ...]:
    """Check a TAC and return (t, y, σ or None) as float arrays.

    Raises
    ------
    InputError
        Empty input, unequal lengths, NaN/inf or negative activities, all-zero activities,
        σ not finite and > 0.
    ConsistencyError
        Times not strictly increasing or negative.
    """
    src = f"TAC {region}" if region else "TAC"
    t = np.asarray(times_h, dtype=float).ravel()
    y = np.asarray(activities_Bq, dtype=float).ravel()
    if t.size == 0 or y.size == 0:
        raise InputError("no timepoints (empty region or empty TAC); need ≥ 1 time and activity", source=src)
    if t.size != y.size:
        raise InputError(f"{t.size} times but {y.size} activities", source=src)
    check_times_increasing(t, source=f"{src} time_h")
    bad = np.flatnonzero(~np.isfinite(y))
    if bad.size:
        raise InputError(f"activity is NaN or infinite at time_h={t[bad].tolist()}; expected finite Bq", source=src)
    neg = np.flatnonzero(y < 0)
    if neg.size:
        raise InputError(f"negative activity {y[neg].tolist()} Bq at time_h={t[neg].tolist()}; a region's "
                         "activity must be ≥ 0 (check background subtraction)", source=src)
    if not np.any(y > 0):
        raise InputError("all activities are zero; no uptake to integrate", source=src)
    s = None
    if sigma_Bq is not None:
        s = np.asarray(sigma_Bq, dtype=float).ravel()
        if s.size != y.size or not np.all(np.isfinite(s)) or np.any(s <= 0):
            raise InputError(f"sigma_Bq must hold {y.size} finite values > 0, got {s.tolist()}", source=src)
    return t, y, s


def _aicc(n: int, k: int, s: float, sigma_known: bool) -> float:
    if n - k - 1 <= 0:
        return math.nan
    core = s if sigma_known else n * math.log(max(s, 1e-300) / n)
    return core + 2 * k + 2 * k * (k + 1) / (n - k - 1)


def _poisson_sigma(values: np.ndarray, y: np.ndarray) -> np.ndarray:
    floor = 1e-3 * float(np.max(y))
    return np.sqrt(np.maximum(values, floor))


@dataclass(frozen=True)
class _Candidate:
    name: str
    problem: lsq.Problem
    theta: np.ndarray
    s: float
    aicc: float


def _fit_candidate(name: str, t, y, sigma, lam_p, uptake, sigma_known) -> _Candidate:
    if sigma_known:
        p = lsq.Problem(name, t, y, sigma, lam_p, uptake)
        th, s = lsq.fit(p)
    else:
        p = lsq.Problem(name, t, y, _poisson_sigma(y, y), lam_p, uptake)
        th, _ = lsq.fit(p)
        p = replace(p, sigma=_poisson_sigma(p.model(th), y))
        th, s = lsq.fit(p)
    k = curves.SPECS[name].n_params
    return _Candidate(name, p, th, s, _aicc(t.size, k, s, sigma_known))


def _auto_models(n: int) -> tuple[str, ...]:
    out = [m for m in ("mono", "uptake_washout", "tri") if curves.SPECS[m].n_params <= n - 2]
    if "uptake_washout" not in out and curves.SPECS["uptake_washout_fixed"].n_params <= n - 2:
        out.append("uptake_washout_fixed")
    return tuple(out)


def _terms_dict(a: np.ndarray, b: np.ndarray) -> dict:
    d = {}
    for i, (ai, bi) in enumerate(zip(a, b), start=1):
        d[f"a{i}_Bq"] = float(ai)
        d[f"b{i}_per_h"] = float(bi)
    return d


def fit_tac(times_h: Sequence[float], activities_Bq: Sequence[float], *, nuclide: str = "Lu-177",
            models: Sequence[str] = ("auto",), sigma_Bq: Sequence[float] | None = None, region: str = "",
            kind: str = "", cycle: int | None = None, uptake_half_life_h: float | None = None,
            first_segment: str = "zero", tail: str = "physical", interval: str = "profile",
            n_boot: int = 400, seed: int = 0, scale: ScaleUncertainty | None = None,
            prior=None, administered_activity_Bq: float | None = None) -> FitResult:
    """Fit a TAC and return its TIA with a 95 % interval.

    Parameters
    ----------
    times_h : sequence of float
        Mid-acquisition times (h p.i.), strictly increasing.
    activities_Bq : sequence of float
        Activity at each time (Bq, at acquisition time: not decay-corrected), ≥ 0.
    nuclide : str
        Sets the physical decay constant bounding every effective rate.
    models : sequence of str
        ``("auto",)`` (see the identifiability rule in the module docstring), one model name,
        several parametric models to choose between by AICc (each must have k ≤ n − 2), or
        ``("map",)``: the population-prior MAP fit (needs ``prior``; robust with 1–4 points).
    sigma_Bq : sequence of float, optional
        Known standard uncertainties of the activities (Bq). Without them, Poisson-like weights
        with the scale estimated from the residuals.
    region, kind, cycle
        Labels carried into the result.
    uptake_half_life_h : float, optional
        Uptake half-life (h) for ``uptake_washout_fixed``; default from ``prior`` or 1 h.
    first_segment : {"zero", "constant"}
        Trapezoid rule from 0 to the first point.
    tail : {"physical", "clearance"}
        Trapezoid tail after the last point.
    interval : {"profile", "bootstrap", "none"}
        Interval method for fitted models (see :mod:`.uncertainty`); ``"none"`` skips it (fast).
    n_boot, seed : int
        Parametric bootstrap size and seed.
    scale : ScaleUncertainty, optional
        Correlated calibration/recovery/volume uncertainties added to the interval.
    prior : priors.HalfLifePrior, optional
        Population prior for ``("map",)`` and for ``auto`` with n ≤ 3.
    administered_activity_Bq : float, optional
        Net administered activity (Bq): sets the physical limit A_adm/λp of the TIA and its
        interval (:func:`.uncertainty.bounded_interval`). Without it the interval is only made
        reportable (unbounded → NaN, relative uncertainty > 10 → NaN), not bounded.

    Returns
    -------
    FitResult

    Raises
    ------
    InputError
        Bad TAC (see :func:`validate_tac`), unknown model, or too few points for a model.
    """
    t, y, sig = validate_tac(times_h, activities_Bq, sigma_Bq, region=region)
    lam_p = get_nuclide(nuclide).decay_constant_per_h
    limit = physical_tia_limit_Bq_h(administered_activity_Bq, lam_p)
    res = _fit_tac(t, y, sig, lam_p, limit, nuclide=nuclide, models=models, region=region, kind=kind, cycle=cycle,
                   uptake_half_life_h=uptake_half_life_h, first_segment=first_segment, tail=tail,
                   interval=interval, n_boot=n_boot, seed=seed, scale=scale, prior=prior)
    return apply_physical_bounds(res, limit)


def apply_physical_bounds(res: FitResult, limit_Bq_h: float = math.inf) -> FitResult:
    """The result with its interval made physical and reportable (:func:`.uncertainty.bounded_interval`).

    Parameters
    ----------
    res : FitResult
    limit_Bq_h : float
        Physical limit of the TIA (Bq·h), ``inf`` when unknown.
    """
    low, high, rel, new = bounded_interval(res.tia_Bq_h, *res.tia_ci95_Bq_h, limit_Bq_h=limit_Bq_h)
    flags = tuple(dict.fromkeys((*res.flags, *new)))
    params = res.parameters if not math.isfinite(limit_Bq_h) else {**res.parameters,
                                                                    "physical_limit_Bq_h": limit_Bq_h}
    return replace(res, tia_ci95_Bq_h=(low, high), tia_rel_uncertainty=rel, flags=flags, parameters=params)


def _fit_tac(t, y, sig, lam_p, limit, *, nuclide, models, region, kind, cycle, uptake_half_life_h, first_segment,
             tail, interval, n_boot, seed, scale, prior) -> FitResult:
    n = t.size
    src = f"TAC {region}" if region else "TAC"
    if first_segment not in ("zero", "constant"):
        raise InputError(f"first_segment must be 'zero' or 'constant', got {first_segment!r}", source="first_segment")
    if tail not in ("physical", "clearance"):
        raise InputError(f"tail must be 'physical' or 'clearance', got {tail!r}", source="tail")
    if interval not in ("profile", "bootstrap", "none"):
        raise InputError(f"interval must be 'profile', 'bootstrap' or 'none', got {interval!r}", source="interval")
    names = tuple(models)
    if not names:
        raise InputError("no model given", source="models")
    if names == ("map",):
        if prior is None:
            raise InputError("model 'map' needs a prior (priors.prior_for or priors.HalfLifePrior)", source="prior")
        from .priors import fit_map

        return fit_map(t, y, prior, nuclide=nuclide, sigma_Bq=sig, region=region, kind=kind, cycle=cycle,
                       scale=scale)
    for m in names:
        if m != "auto" and m not in MODEL_NAMES:
            raise InputError(f"unknown model {m!r} (expected 'auto' or one of {', '.join(MODEL_NAMES)})",
                             source="models")
    flags: list[str] = []
    if uptake_half_life_h is None:
        uptake_half_life_h = getattr(prior, "uptake_half_life_h", None) or DEFAULT_UPTAKE_HALF_LIFE_H
    if not (math.isfinite(uptake_half_life_h) and uptake_half_life_h > 0):
        raise InputError(f"must be > 0 h, got {uptake_half_life_h}", source="uptake_half_life_h")
    uptake = _LN2 / uptake_half_life_h

    if names == ("auto",):
        cand = _auto_models(n)
        if not cand:
            if prior is not None:
                from .priors import fit_map

                return fit_map(t, y, prior, nuclide=nuclide, sigma_Bq=sig, region=region, kind=kind,
                               cycle=cycle, scale=scale)
            if n == 3:
                cand, flags = ("mono",), ["few_points"]
            else:
                names = ("trapezoid",)
                flags.append("few_points")
        names = cand if names == ("auto",) else names
    if "auto" in names:
        raise InputError("'auto' cannot be combined with named models", source="models")
    if "trapezoid" in names:
        if len(names) > 1:
            raise InputError("'trapezoid' has no likelihood and cannot be chosen by AICc; request it alone",
                             source="models")
        return _with_scale(_trapezoid(t, y, sig, lam_p, first_segment, tail, n_boot, seed, region, kind, cycle,
                                      flags), scale)
    for m in names:
        k = curves.SPECS[m].n_params
        if len(names) > 1 and k > n - 2:
            raise InputError(f"model {m!r} has {k} parameters; choosing between models by AICc needs "
                             f"k ≤ n − 2 = {n - 2} (n = {n} points)", source=src)
        if k > n:
            raise InputError(f"too few points for model {m!r}: {n} points, {k} parameters "
                             f"(need ≥ {k}; ≥ {k + 2} to compare models)", source=src)

    sigma_known = sig is not None
    fits = [_fit_candidate(m, t, y, sig, lam_p, uptake, sigma_known) for m in names]
    plausible = [c for c in fits if _early_peak_Bq(c, t[0]) <= curves.MAX_START_FACTOR * float(np.max(y))]
    if not plausible:  # every model explodes before the first scan: integrate what was measured instead
        return _with_scale(_trapezoid(t, y, sig, lam_p, first_segment, tail, n_boot, seed, region, kind, cycle,
                                      [*flags, "implausible_extrapolation"]), scale)
    fits = plausible
    if len(fits) > 1:
        best = min(fits, key=lambda c: c.aicc)
    else:
        best = fits[0]
    return _with_scale(_finish(best, n, sigma_known, lam_p, interval, n_boot, seed, region, kind, cycle,
                               flags, [c.name for c in fits], limit), scale)


def _early_peak_Bq(c: _Candidate, t1_h: float) -> float:
    """The candidate's largest activity between injection and the first scan (Bq)."""
    a, b = curves.terms(c.name, c.theta, uptake_per_h=c.problem.uptake_per_h)
    tt = np.linspace(0.0, float(t1_h), 33)
    return float(np.max(np.exp(-np.outer(tt, np.asarray(b, float))) @ np.asarray(a, float)))


def _finish(c: _Candidate, n, sigma_known, lam_p, interval, n_boot, seed, region, kind, cycle, flags,
            considered, limit=math.inf) -> FitResult:
    p, th = c.problem, c.theta
    k = curves.SPECS[c.name].n_params
    a, b = curves.terms(c.name, th, uptake_per_h=p.uptake_per_h)
    model = SumOfExponentials(tuple(a), tuple(b))
    tia = float(math.exp(th[0]))
    flags = list(flags)
    dof = n - k
    scale_hat = 1.0 if sigma_known else (math.sqrt(c.s / dof) if dof > 0 else math.nan)
    if c.name == "uptake_washout_fixed":
        flags.append("uptake_rate_fixed")
    if sigma_known and dof > 0 and c.s > stats.chi2.ppf(0.99, dof):
        # Scatter larger than the stated σ allow: the interval (which trusts σ) is too narrow.
        flags.append("chi2_exceeds_sigma")
    lo_b, _ = p.bounds()
    rate_idx = {"mono": [1], "uptake_washout": [1], "uptake_washout_fixed": [1], "tri": [2]}[c.name]
    if any(th[i] <= lo_b[i] * (1 + 1e-6) for i in rate_idx):
        flags.append("rate_at_physical_limit")
    low = high = math.nan
    method = "none"
    if not sigma_known and dof <= 0:
        flags.append("no_degrees_of_freedom")
    elif interval == "none":
        pass
    elif interval == "profile":
        thr = profile_threshold(n, k, c.s, sigma_known=sigma_known)
        low, high, _ = profile_interval(p, th, c.s, thr, limit_Bq_h=limit)
        method = "profile-chi2" if sigma_known else "profile-t"
        # an open upper side is flagged ci_unbounded by apply_physical_bounds; an open lower side
        # is the physical bound TIA ≥ 0
        if low == 0.0:
            flags.append("ci_lower_bound_zero")
    else:
        f_hat = p.model(th)
        sd = p.sigma * (1.0 if sigma_known else scale_hat)

        def simulate(rng):
            return f_hat + sd * rng.standard_normal(f_hat.size)

        def estimate(yb):
            th_b, _ = lsq.fit(replace(p, y=yb))
            return math.exp(th_b[0])

        low, high, _ = bootstrap_interval(simulate, estimate, n_boot=n_boot, seed=seed)
        method = "bootstrap"
    tail_frac = model.integral(float(p.t[-1])) / tia
    if tail_frac > TAIL_FLAG_FRACTION:
        flags.append("tail_fraction_above_20pct")
    params = {**_terms_dict(a, b), **{nm: float(v) for nm, v in zip(curves.SPECS[c.name].param_names, th)},
              "weights": "sigma_Bq given" if sigma_known else "poisson-like sqrt(A), scale estimated",
              "residual_scale": scale_hat, "models_considered": considered}
    if c.name == "uptake_washout_fixed":
        params["fixed_uptake_per_h"] = p.uptake_per_h
    return FitResult(region=region, model_name=c.name, model=model, tia_Bq_h=tia, tia_ci95_Bq_h=(low, high),
                     tia_rel_uncertainty=relative_uncertainty_from_interval(tia, low, high),
                     tail_fraction=float(tail_frac), effective_half_life_h=_LN2 / float(np.min(b)),
                     aicc=c.aicc, n_points=n, n_params=k, parameters=params, flags=tuple(flags), kind=kind,
                     cycle=cycle, ci_method=method, times_h=tuple(p.t.tolist()), activities_Bq=tuple(p.y.tolist()),
                     sigma_Bq=tuple((p.sigma * (scale_hat if math.isfinite(scale_hat) else 1.0)).tolist()))


def _trapezoid_tia(t, y, lam_p, first_segment, tail) -> tuple[float, float, curves.TrapezoidCurve]:
    lam = lam_p
    if tail == "clearance" and t.size >= 2 and y[-1] > 0 and y[-2] > 0:
        lam = max(lam_p, math.log(y[-2] / y[-1]) / (t[-1] - t[-2]))
    curve = curves.TrapezoidCurve(tuple(t.tolist()), tuple(y.tolist()), lam, first_segment)
    return curve.integral(), lam, curve


def _trapezoid(t, y, sig, lam_p, first_segment, tail, n_boot, seed, region, kind, cycle, flags) -> FitResult:
    flags = list(flags)
    tia, lam, curve = _trapezoid_tia(t, y, lam_p, first_segment, tail)
    if tia <= 0:
        raise InputError("trapezoid TIA is zero", source=f"TAC {region}")
    low = high = math.nan
    method = "none"
    if sig is None:
        flags.append("no_noise_estimate")
    elif tail == "physical":
        # TIA = Σ cᵢ yᵢ: trapezoid weights plus the tail 1/λp on the last point.
        c = np.array([_trapezoid_tia(t, np.eye(t.size)[i], lam_p, first_segment, "physical")[0]
                      for i in range(t.size)])
        sd = float(np.sqrt(np.sum((c * sig) ** 2)))
        from .uncertainty import Z95

        low, high, method = max(tia - Z95 * sd, 0.0), tia + Z95 * sd, "linear"
    else:
        def simulate(rng):
            return np.maximum(y + sig * rng.standard_normal(y.size), 0.0)

        low, high, _ = bootstrap_interval(simulate, lambda yb: _trapezoid_tia(t, yb, lam_p, first_segment, tail)[0],
                                          n_boot=n_boot, seed=seed)
        method = "bootstrap"
    tail_frac = curve.integral(float(t[-1])) / tia
    if tail_frac > TAIL_FLAG_FRACTION:
        flags.append("tail_fraction_above_20pct")
    params = {"first_segment": first_segment, "tail": tail, "tail_rate_per_h": lam}
    return FitResult(region=region, model_name="trapezoid", model=curve, tia_Bq_h=tia, tia_ci95_Bq_h=(low, high),
                     tia_rel_uncertainty=relative_uncertainty_from_interval(tia, low, high),
                     tail_fraction=float(tail_frac), effective_half_life_h=_LN2 / lam, aicc=math.nan,
                     n_points=t.size, n_params=0, parameters=params, flags=tuple(flags), kind=kind, cycle=cycle,
                     ci_method=method, times_h=tuple(t.tolist()), activities_Bq=tuple(y.tolist()),
                     sigma_Bq=() if sig is None else tuple(sig.tolist()))


def _with_scale(res: FitResult, scale: ScaleUncertainty | None) -> FitResult:
    if scale is None or scale.total_rel == 0:
        return res
    low, high, rel = combine_scale_uncertainty(res.tia_Bq_h, *res.tia_ci95_Bq_h, scale)
    params = {**res.parameters, "scale_uncertainty_rel": scale.total_rel}
    return replace(res, tia_ci95_Bq_h=(low, high), tia_rel_uncertainty=rel, parameters=params)


def fit_rows(results: Sequence[FitResult]) -> list[dict]:
    """Rows for fits.csv (columns of :data:`LuDosimetryLib.results.FITS_COLUMNS`, then ``ci_method`` and
    ``tia_fit_rel_uncertainty``, the counting/fit part alone when an uncertainty budget replaced the
    interval, :func:`.budget.apply_budget`)."""
    rows = []
    for r in results:
        rows.append({"region": r.region, "kind": r.kind, "cycle": r.cycle, "model": r.model_name,
                     "n_points": r.n_points, "n_params": r.n_params, "tia_Bq_h": r.tia_Bq_h,
                     "tia_MBq_h": Bq_to_MBq(r.tia_Bq_h), "tia_rel_uncertainty": r.tia_rel_uncertainty,
                     "tia_ci95_low_Bq_h": r.tia_ci95_Bq_h[0], "tia_ci95_high_Bq_h": r.tia_ci95_Bq_h[1],
                     "tail_fraction": r.tail_fraction, "effective_half_life_h": r.effective_half_life_h,
                     "aicc": r.aicc, "parameters": r.parameters, "flags": ";".join(r.flags), "ci_method": r.ci_method,
                     "tia_fit_rel_uncertainty": r.parameters.get("fit_rel_uncertainty", r.tia_rel_uncertainty)})
    return rows
