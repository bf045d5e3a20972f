"""Parametric time-activity models in a TIA-first parametrisation, and the trapezoid curve.

Each parametric model is a sum of exponentials whose first parameter is ``ln TIA`` (TIA in
Bq·h), so that the TIA is fitted directly and its profile likelihood needs no constraint. The
remaining parameters are effective rates (h⁻¹) or differences of rates, bounded so that every
effective rate is at least the physical decay constant λp (the constraint is in the fit, never
applied afterwards).

========================  ===  ===================================================================
model                     k    A(t)
========================  ===  ===================================================================
``mono``                  2    A0 e^(−λ t),  λ ≥ λp,  A0 = T λ
``uptake_washout``        3    A0 (e^(−λw t) − e^(−λu t)),  λw ≥ λp,  λu = λw + Δ,  A(0) = 0
``uptake_washout_fixed``  2    as above with λu fixed (given); used when 3 parameters are not identifiable
``tri``                   5    a1 e^(−λ1 t) + a2 e^(−λ2 t) − (a1 + a2) e^(−λu t),  λp ≤ λ1 < λ2 < λu
========================  ===  ===================================================================

For ``tri`` the TIA splits as T = T1 + T2 with T1 = φ T, T2 = (1 − φ) T, φ ∈ [0, 1] and
aᵢ = Tᵢ / (1/λᵢ − 1/λu), so both washout amplitudes are ≥ 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import InputError

#: A fitted curve whose value anywhere before the first measurement (its largest value on
#: [0, t₁]) exceeds this multiple of the largest measured activity is an implausible
#: back-extrapolation (a fast washout fitted to late points): region fits and voxel fits alike
#: fall back to the trapezoid.
MAX_START_FACTOR = 3.0

__all__ = ["MAX_START_FACTOR", "ParametricSpec", "SPECS", "terms", "activity", "TrapezoidCurve", "RATE_MAX_PER_H",
           "DELTA_MIN_PER_H"]

#: Largest effective rate allowed in a fit (h⁻¹): a half-life of about 2 minutes.
RATE_MAX_PER_H = 20.0
#: Smallest gap between an uptake and a washout rate (h⁻¹), keeping A0 finite.
DELTA_MIN_PER_H = 1e-4


@dataclass(frozen=True)
class ParametricSpec:
    """Name, parameter names and number of free parameters of a parametric model."""

    name: str
    param_names: tuple[str, ...]

    @property
    def n_params(self) -> int:
        return len(self.param_names)


SPECS = {
    "mono": ParametricSpec("mono", ("ln_tia", "rate_per_h")),
    "uptake_washout": ParametricSpec("uptake_washout", ("ln_tia", "washout_per_h", "uptake_minus_washout_per_h")),
    "uptake_washout_fixed": ParametricSpec("uptake_washout_fixed", ("ln_tia", "washout_per_h")),
    "tri": ParametricSpec("tri", ("ln_tia", "fraction_slow", "rate1_per_h", "rate2_minus_rate1_per_h",
                                  "uptake_minus_rate2_per_h")),
}


def terms(name: str, theta: np.ndarray, *, uptake_per_h: float = math.nan) -> tuple[np.ndarray, np.ndarray]:
    """Coefficients (Bq) and rates (h⁻¹) of the exponential terms of ``name`` at ``theta``.

    ``theta`` may carry extra trailing axes (vectorised over parameter sets).
    """
    th = np.asarray(theta, dtype=float)
    T = np.exp(th[0])
    if name == "mono":
        lam = th[1]
        return np.stack([T * lam]), np.stack([lam])
    if name in ("uptake_washout", "uptake_washout_fixed"):
        lw = th[1]
        lu = lw + th[2] if name == "uptake_washout" else np.full_like(lw, uptake_per_h)
        a0 = T / (1.0 / lw - 1.0 / lu)
        return np.stack([a0, -a0]), np.stack([lw, lu])
    if name == "tri":
        phi, l1 = th[1], th[2]
        l2 = l1 + th[3]
        lu = l2 + th[4]
        a1 = phi * T / (1.0 / l1 - 1.0 / lu)
        a2 = (1.0 - phi) * T / (1.0 / l2 - 1.0 / lu)
        return np.stack([a1, a2, -(a1 + a2)]), np.stack([l1, l2, lu])
    raise InputError(f"unknown model {name!r} (expected one of {', '.join(SPECS)})", source="models")


def activity(name: str, theta: np.ndarray, t_h: np.ndarray, *, uptake_per_h: float = math.nan) -> np.ndarray:
    """A(t) (Bq) of model ``name`` at parameters ``theta`` and times ``t_h`` (h)."""
    a, b = terms(name, theta, uptake_per_h=uptake_per_h)
    t = np.asarray(t_h, dtype=float)
    return np.einsum("k...,k...t->...t", a, np.exp(-b[..., None] * t))


def bounds(name: str, lam_p: float, *, uptake_per_h: float = math.nan) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper bounds of ``theta`` (every effective rate ≥ λp)."""
    big = RATE_MAX_PER_H
    if name == "mono":
        return np.array([-np.inf, lam_p]), np.array([np.inf, big])
    if name == "uptake_washout":
        return np.array([-np.inf, lam_p, DELTA_MIN_PER_H]), np.array([np.inf, big, big])
    if name == "uptake_washout_fixed":
        return np.array([-np.inf, lam_p]), np.array([np.inf, uptake_per_h - DELTA_MIN_PER_H])
    if name == "tri":
        return (np.array([-np.inf, 0.0, lam_p, DELTA_MIN_PER_H, DELTA_MIN_PER_H]),
                np.array([np.inf, 1.0, big, big, big]))
    raise InputError(f"unknown model {name!r}", source="models")


@dataclass(frozen=True)
class TrapezoidCurve:
    """Piecewise-linear A(t) through the measured points, with an exponential tail.

    Rule from 0 to the first point: ``"zero"`` (linear from A(0) = 0, area A₁t₁/2) or
    ``"constant"`` (A = A₁ on [0, t₁], area A₁t₁). After the last point
    A(t) = A_n e^(−λ_tail (t − t_n)).

    Implements :class:`~LuDosimetryLib.kinetics.models.KineticModel` (Bq, h, Bq·h).
    """

    times_h: tuple[float, ...]
    activities_Bq: tuple[float, ...]
    tail_rate_per_h: float
    first_segment: str = "zero"

    def _nodes(self) -> tuple[np.ndarray, np.ndarray]:
        t = np.asarray(self.times_h, dtype=float)
        a = np.asarray(self.activities_Bq, dtype=float)
        if t[0] > 0:
            a0 = 0.0 if self.first_segment == "zero" else a[0]
            t, a = np.concatenate([[0.0], t]), np.concatenate([[a0], a])
        return t, a

    def activity(self, t_h: np.ndarray | float) -> np.ndarray | float:
        """Activity (Bq) at ``t_h`` (h p.i.); 0 before injection."""
        tn, an = self._nodes()
        t = np.asarray(t_h, dtype=float)
        lin = np.interp(t, tn, an)
        tail = an[-1] * np.exp(-self.tail_rate_per_h * np.clip(t - tn[-1], 0.0, None))
        val = np.where(t < 0, 0.0, np.where(t > tn[-1], tail, lin))
        return float(val) if np.ndim(t_h) == 0 else val

    def integral(self, t0_h: float = 0.0, t1_h: float = math.inf) -> float:
        """∫ A dt from ``t0_h`` to ``t1_h`` (Bq·h): exact for the piecewise-linear part and the tail."""
        tn, an = self._nodes()
        t0, t1 = max(float(t0_h), 0.0), float(t1_h)
        if t1 <= t0:
            return 0.0
        lo, hi = min(t0, tn[-1]), min(t1, tn[-1])
        total = 0.0
        if hi > lo:
            grid = np.concatenate([[lo], tn[(tn > lo) & (tn < hi)], [hi]])
            vals = np.interp(grid, tn, an)
            total += float(np.sum(0.5 * (vals[1:] + vals[:-1]) * np.diff(grid)))
        if t1 > tn[-1]:
            s0, s1 = max(t0, tn[-1]) - tn[-1], t1 - tn[-1]
            lam = self.tail_rate_per_h
            upper = 0.0 if math.isinf(s1) else math.exp(-lam * s1)
            total += an[-1] * (math.exp(-lam * s0) - upper) / lam
        return total

    def exponential_terms(self) -> None:
        """None: a trapezoid is not a sum of exponentials."""
        return None
