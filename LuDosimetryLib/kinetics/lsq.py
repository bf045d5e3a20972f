"""Weighted least squares of the parametric models in :mod:`.curves` (bounded, multi-start).

The objective is S(θ) = Σᵢ ((yᵢ − A(tᵢ; θ)) / σᵢ)², minimised with ``scipy.optimize.least_squares``
(trust-region reflective, bounds from :func:`.curves.bounds`, so every effective rate stays ≥ λp
during the fit); one-rate models by variable projection (A is linear in the TIA), a global
search over the rate within its bounds. Two-parameter models (``mono``, ``uptake_washout_fixed``) with ``ln TIA`` held
fixed have one free rate; that case is solved by a vectorised grid search over ln λ refined with
bounded Brent minimisation (fast enough for profile likelihood over thousands of replicates).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize

from . import curves

__all__ = ["Problem", "fit", "fit_fixed_tia", "objective"]


@dataclass(frozen=True)
class Problem:
    """One weighted fit: model name, times (h), activities (Bq), σ (Bq), λp (h⁻¹), fixed uptake (h⁻¹)."""

    name: str
    t: np.ndarray
    y: np.ndarray
    sigma: np.ndarray
    lam_p: float
    uptake_per_h: float = math.nan

    def model(self, theta: np.ndarray) -> np.ndarray:
        return curves.activity(self.name, theta, self.t, uptake_per_h=self.uptake_per_h)

    def residuals(self, theta: np.ndarray) -> np.ndarray:
        return (self.y - self.model(theta)) / self.sigma

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return curves.bounds(self.name, self.lam_p, uptake_per_h=self.uptake_per_h)


def objective(p: Problem, theta: np.ndarray) -> float:
    """S(θ) = Σ ((y − A)/σ)² (dimensionless)."""
    r = p.residuals(theta)
    return float(r @ r)


def _best_ln_tia(p: Problem, rest: np.ndarray) -> float:
    """ln T minimising S for fixed rates (A is linear in T)."""
    g = curves.activity(p.name, np.concatenate([[0.0], rest]), p.t, uptake_per_h=p.uptake_per_h)
    w = 1.0 / p.sigma**2
    num, den = float(np.sum(w * p.y * g)), float(np.sum(w * g * g))
    return math.log(num / den) if num > 0 and den > 0 else math.log(max(float(np.max(p.y)), 1e-30) * 10.0)


def _tail_rate(p: Problem) -> float:
    """Log-linear rate of the last two positive points, at least 1.05·λp."""
    pos = p.y > 0
    t, y = p.t[pos], p.y[pos]
    lam = (math.log(y[-2] / y[-1]) / (t[-1] - t[-2])) if t.size >= 2 else 0.0
    _lo, hi = curves.bounds(p.name, p.lam_p, uptake_per_h=p.uptake_per_h)
    return float(np.clip(lam, p.lam_p * 1.05, min(hi[1] * 0.9, curves.RATE_MAX_PER_H / 2)))


def _starts(p: Problem) -> list[np.ndarray]:
    lt = _tail_rate(p)
    if p.name in ("mono", "uptake_washout_fixed"):
        rests = [np.array([r]) for r in (lt, p.lam_p * 1.05, 2.0 * lt)]
    elif p.name == "uptake_washout":
        rests = [np.array([lt, d]) for d in (0.05, 0.3, 2.0)]
    else:  # tri
        rests = [np.array([max(p.lam_p * 1.05, 0.7 * lt), d2, d3]) for d2 in (0.03, 0.3) for d3 in (1.0,)]
        rests = [np.concatenate([[f], r]) for r in rests for f in (0.5, 0.9)]
    lo, hi = p.bounds()
    out = []
    for r in rests:
        r = np.clip(r, lo[1:] + 1e-12, hi[1:] - 1e-12)
        out.append(np.concatenate([[_best_ln_tia(p, r)], r]))
    return out


def fit(p: Problem) -> tuple[np.ndarray, float]:
    """Weighted least-squares fit; returns (θ̂, S(θ̂)).

    One-rate models: variable projection (TIA solved linearly for each rate; the rate found by a
    grid over ln λ refined with bounded Brent: a global search). Others: multi-start trust-region
    reflective, best S kept.
    """
    lo, hi = p.bounds()
    if lo.size == 2:
        return _fit_projected(p, float(lo[1]), float(hi[1]))
    best, best_s = None, math.inf
    for x0 in _starts(p):
        res = optimize.least_squares(p.residuals, x0, bounds=(lo, hi), method="trf", x_scale="jac",
                                     xtol=1e-10, ftol=1e-10, gtol=1e-10, max_nfev=600)
        s = float(res.fun @ res.fun)
        if s < best_s:
            best, best_s = res.x, s
    return np.asarray(best), best_s


def fit_fixed_tia(p: Problem, ln_tia: float, rest0: np.ndarray) -> tuple[np.ndarray, float]:
    """min over the other parameters of S with ln TIA fixed; returns (rest, S)."""
    lo, hi = p.bounds()
    if rest0.size == 1:
        return _fit_one_rate(p, ln_tia, float(lo[1]), float(hi[1]))

    def res(rest: np.ndarray) -> np.ndarray:
        return p.residuals(np.concatenate([[ln_tia], rest]))

    x0 = np.clip(rest0, lo[1:], hi[1:])
    r = optimize.least_squares(res, x0, bounds=(lo[1:], hi[1:]), method="trf", x_scale="jac",
                               xtol=1e-10, ftol=1e-10, max_nfev=500)
    return r.x, float(r.fun @ r.fun)


def _fit_one_rate(p: Problem, ln_tia: float, lo: float, hi: float) -> tuple[np.ndarray, float]:
    grid = np.exp(np.linspace(math.log(lo), math.log(hi), 64))
    theta = np.vstack([np.full_like(grid, ln_tia), grid])
    f = curves.activity(p.name, theta, p.t, uptake_per_h=p.uptake_per_h)
    s = np.sum(((p.y - f) / p.sigma) ** 2, axis=-1)
    i = int(np.argmin(s))
    a, b = math.log(grid[max(i - 1, 0)]), math.log(grid[min(i + 1, grid.size - 1)])

    def obj(u: float) -> float:
        return objective(p, np.array([ln_tia, math.exp(u)]))

    r = optimize.minimize_scalar(obj, bounds=(a, b), method="bounded", options={"xatol": 1e-7})
    if r.fun <= s[i]:
        return np.array([math.exp(r.x)]), float(r.fun)
    return np.array([grid[i]]), float(s[i])


def _projected_s(p: Problem, rates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """S and ln T at each rate, with T at its linear optimum (variable projection)."""
    theta = np.vstack([np.zeros_like(rates), rates])
    g = curves.activity(p.name, theta, p.t, uptake_per_h=p.uptake_per_h)
    w = 1.0 / p.sigma**2
    num, den = (w * p.y * g).sum(-1), (w * g * g).sum(-1)
    tt = np.where((num > 0) & (den > 0), num / np.where(den > 0, den, 1.0), np.nan)
    s = np.where(np.isfinite(tt), float((w * p.y * p.y).sum()) - num * np.nan_to_num(tt), np.inf)
    return s, np.log(tt)


def _fit_projected(p: Problem, lo: float, hi: float) -> tuple[np.ndarray, float]:
    grid = np.exp(np.linspace(math.log(lo), math.log(hi), 200))
    s, _ = _projected_s(p, grid)
    i = int(np.argmin(s))
    a, b = math.log(grid[max(i - 1, 0)]), math.log(grid[min(i + 1, grid.size - 1)])
    r = optimize.minimize_scalar(lambda u: float(_projected_s(p, np.array([math.exp(u)]))[0][0]),
                                 bounds=(a, b), method="bounded", options={"xatol": 1e-10})
    rate = math.exp(r.x) if r.fun <= s[i] else float(grid[i])
    if _projected_s(p, np.array([lo]))[0][0] <= _projected_s(p, np.array([rate]))[0][0]:
        rate = lo  # the bound itself is the constrained optimum
    _, lt = _projected_s(p, np.array([rate]))
    theta = np.array([float(lt[0]), rate])
    return theta, objective(p, theta)
