"""The prediction model: late 68Ga uptake fraction + population 177Lu washout → 177Lu curve.

Biological fraction of the injected activity in a region (same form for both tracers):

    g(t) = U (e^(−β_w t) − e^(−β_u t)),

with β_w the biological washout rate (population table: β_w = ln2/T_eff − λ(177Lu)) and β_u the
biological uptake rate (fitted on the decay-corrected dynamic frames with β_w fixed, or the
table's default). U is anchored at the late 68Ga value g_Ga(t_ref):

    U_Lu = s · g_Ga(t_ref) / (e^(−β_w t_ref) − e^(−β_u t_ref)),

s = ligand ratio × (organs: tumour-sink factor) × cohort scale factor. The predicted 177Lu activity
per injected activity A0 is A(t) = A0 U_Lu (e^(−(β_w+λ)t) − e^(−(β_u+λ)t)), λ = λ(177Lu), added once
here; TIA = A0 U_Lu (1/(β_w+λ) − 1/(β_u+λ)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..kinetics.models import SumOfExponentials
from ..nuclides import get_nuclide

__all__ = ["UptakeRateFit", "fit_uptake_rate", "anchor_uptake_fraction", "lu177_curve"]


@dataclass(frozen=True)
class UptakeRateFit:
    """Biological uptake rate fitted on decay-corrected dynamic frames.

    Attributes
    ----------
    uptake_rate_per_h : float
        β_u (h⁻¹).
    uptake_fraction : float
        U of the fit (fraction of injected activity), for information (the prediction anchors U
        at the late value).
    n_points : int
    rel_rmse : float
        RMS residual / mean value.
    converged : bool
        False when the fit failed or hit a bound; the caller then uses the population default.
    uptake_rate_se_per_h : float
        Asymptotic standard error of β_u (h⁻¹): s² (JᵀJ)⁻¹ at the optimum, s² = RSS / (n − 2); NaN
        for n ≤ 2 or a singular JᵀJ.
    """

    uptake_rate_per_h: float
    uptake_fraction: float
    n_points: int
    rel_rmse: float
    converged: bool
    uptake_rate_se_per_h: float = float("nan")


def fit_uptake_rate(time_h, fraction, *, washout_rate_per_h: float, min_time_h: float = 0.1,
                    max_rate_per_h: float = 60.0) -> UptakeRateFit:
    """Fit U and β_u of g(t) = U (e^(−β_w t) − e^(−β_u t)) with β_w fixed.

    Parameters
    ----------
    time_h : array_like
        Frame times (h p.i.).
    fraction : array_like
        Biological uptake (fraction of the injected activity, or per mL: U then per mL).
    washout_rate_per_h : float
        β_w (h⁻¹), fixed.
    min_time_h : float
        Frames before this time are left out (blood-pool phase).
    max_rate_per_h : float
        Upper bound of β_u; reaching a bound marks the fit as not converged.
    """
    from scipy.optimize import least_squares

    t = np.asarray(time_h, dtype=float)
    y = np.asarray(fraction, dtype=float)
    keep = t >= min_time_h
    t, y = t[keep], y[keep]
    bw = float(washout_rate_per_h)
    if t.size < 3 or not np.any(y > 0):
        return UptakeRateFit(float("nan"), float("nan"), int(t.size), float("nan"), False)
    scale = float(np.max(np.abs(y)))
    yn = y / scale

    def shape(bu):
        return np.exp(-bw * t) - np.exp(-bu * t)

    def resid(p):
        return p[0] * shape(p[1]) - yn

    lo_rate = bw + 1e-3
    best = None
    for start in (0.3, 1.0, 3.0, 10.0):
        s = shape(max(start, lo_rate * 1.01))
        u0 = float(np.dot(s, yn) / np.dot(s, s)) if np.dot(s, s) > 0 else 1.0
        try:
            res = least_squares(resid, x0=[max(u0, 1e-6), max(start, lo_rate * 1.01)],
                                bounds=([0.0, lo_rate], [np.inf, max_rate_per_h]), method="trf")
        except (ValueError, np.linalg.LinAlgError):
            continue
        if best is None or res.cost < best.cost:
            best = res
    if best is None:
        return UptakeRateFit(float("nan"), float("nan"), int(t.size), float("nan"), False)
    u, bu = best.x
    rmse = float(np.sqrt(np.mean(best.fun**2)) / max(np.mean(np.abs(yn)), 1e-300))
    at_bound = bu <= lo_rate * 1.001 or bu >= max_rate_per_h * 0.999
    se = float("nan")
    if t.size > 2:
        jtj = best.jac.T @ best.jac
        if np.linalg.cond(jtj) < 1e12:
            se = float(np.sqrt(max(np.linalg.inv(jtj)[1, 1] * 2 * best.cost / (t.size - 2), 0.0)))
    return UptakeRateFit(float(bu), float(u * scale), int(t.size), rmse, bool(best.success and not at_bound), se)


def anchor_uptake_fraction(late_fraction: float, t_ref_h: float, *, washout_rate_per_h: float,
                           uptake_rate_per_h: float) -> float:
    """U such that U (e^(−β_w t) − e^(−β_u t)) = ``late_fraction`` at ``t_ref_h`` (same units as the fraction)."""
    shape = math.exp(-washout_rate_per_h * t_ref_h) - math.exp(-uptake_rate_per_h * t_ref_h)
    if not (uptake_rate_per_h > washout_rate_per_h and shape > 0):
        raise InputError(f"uptake rate {uptake_rate_per_h} h⁻¹ must exceed washout rate {washout_rate_per_h} h⁻¹ "
                         f"and t_ref {t_ref_h} h must be > 0", source="anchor_uptake_fraction")
    return float(late_fraction) / shape


def lu177_curve(uptake_fraction: float, *, washout_rate_per_h: float, uptake_rate_per_h: float,
                injected_activity_Bq: float) -> SumOfExponentials:
    """Predicted 177Lu activity A(t) (Bq): biological uptake–washout with λ(177Lu) added once.

    Parameters
    ----------
    uptake_fraction : float
        U (fraction of the injected 177Lu activity).
    washout_rate_per_h, uptake_rate_per_h : float
        Biological β_w ≥ 0 and β_u > β_w (h⁻¹).
    injected_activity_Bq : float
        177Lu activity (Bq), e.g. 1e9 for per-GBq values.
    """
    lam = get_nuclide("Lu-177").decay_constant_per_h
    a = injected_activity_Bq * uptake_fraction
    return SumOfExponentials((a, -a), (washout_rate_per_h + lam, uptake_rate_per_h + lam))
