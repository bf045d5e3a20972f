"""Logistic regression with Firth's penalised likelihood: finite estimates under separation and small n.

The log-likelihood is penalised by ½·log|I(β)| (Jeffreys prior), which removes the O(1/n) bias
of the maximum-likelihood estimate and keeps it finite when a dose separates responders from
non-responders (where ordinary ML diverges). The estimate solves the modified score equations

    U*(β) = Xᵀ (y − p + h ⊙ (½ − p)) = 0,

h the diagonal of the hat matrix W^½ X (XᵀWX)⁻¹ XᵀW^½. Confidence intervals and the p-value of
the slope come from the penalised profile likelihood (as in R's logistf), not from Wald's
approximation, which is poor exactly where Firth's method is needed.

References
----------
- Firth D. Bias reduction of maximum likelihood estimates. Biometrika 1993;80:27–38.
  doi:10.1093/biomet/80.1.27
- Heinze G, Schemper M. A solution to the problem of separation in logistic regression.
  Stat Med 2002;21:2409–2419. doi:10.1002/sim.1047 (for one binary covariate the estimate is the
  log odds ratio of the 2×2 table with ½ added to each cell)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats

from ..errors import InputError
from .biomarker import _binary, _scores

__all__ = ["FirthFit", "firth_logistic_regression", "penalised_log_likelihood", "penalised_score",
           "separation"]


@dataclass(frozen=True)
class FirthFit:
    """P(y = 1) = 1 / (1 + exp(−(β0 + β1·x1 + …))) by Firth's penalised likelihood.

    Attributes
    ----------
    coefficients : tuple
        (β0, β1, …); βj per unit of predictor j (per Gy for a dose).
    standard_errors : tuple
        Wald, from (XᵀWX)⁻¹ at the estimate.
    ci95 : tuple of (low, high)
        Penalised profile-likelihood 95 % interval of each coefficient (intercept first).
    p_values : tuple
        Penalised likelihood-ratio test of each coefficient = 0 (χ², 1 df).
    slope_ci95, slope_p_value : tuple, float
        Those of β1 (the dose, in the univariable model).
    odds_ratio, odds_ratio_ci95 : float, tuple
        exp(β1) and exp of its profile interval.
    penalised_log_likelihood : float
    iterations : int
    separated : bool
        Whether ordinary ML has no finite estimate for β1 alone (complete or quasi-complete separation).
    """

    coefficients: tuple[float, ...]
    standard_errors: tuple[float, ...]
    ci95: tuple[tuple[float, float], ...]
    p_values: tuple[float, ...]
    slope_ci95: tuple[float, float]
    slope_p_value: float
    odds_ratio: float
    odds_ratio_ci95: tuple[float, float]
    penalised_log_likelihood: float
    iterations: int
    separated: bool
    method: str = "firth"

    def probability(self, x) -> np.ndarray:
        """Predicted probability at predictor values ``x`` ((n,) or (n, p))."""
        xx = np.asarray(x, float)
        xx = xx[:, None] if xx.ndim == 1 else xx
        b = np.asarray(self.coefficients)
        return 1.0 / (1.0 + np.exp(-(b[0] + xx @ b[1:])))


def _pieces(design: np.ndarray, y: np.ndarray, beta: np.ndarray):
    eta = design @ beta
    p = 1.0 / (1.0 + np.exp(-eta))
    w = p * (1.0 - p)
    info = design.T @ (design * w[:, None])
    return eta, p, w, info


def penalised_log_likelihood(design: np.ndarray, y: np.ndarray, beta: np.ndarray) -> float:
    """l(β) + ½·log det I(β) (natural log)."""
    eta, _p, _w, info = _pieces(design, y, beta)
    ll = float(np.sum(y * eta - np.logaddexp(0.0, eta)))
    sign, logdet = np.linalg.slogdet(info)
    return ll + 0.5 * logdet if sign > 0 and np.isfinite(logdet) else -math.inf


def penalised_score(design: np.ndarray, y: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """Firth's modified score U*(β) = Xᵀ(y − p + h(½ − p))."""
    _, p, w, info = _pieces(design, y, beta)
    cov = np.linalg.inv(info)
    h = w * np.einsum("ij,jk,ik->i", design, cov, design)
    return design.T @ (y - p + h * (0.5 - p))


def _fit(design: np.ndarray, y: np.ndarray, beta0: np.ndarray, free: np.ndarray, *, max_iter: int = 200,
         tol: float = 1e-10, max_step: float = 5.0) -> tuple[np.ndarray, int]:
    """Newton on the penalised score for the ``free`` coefficients (others fixed), with step halving."""
    beta = beta0.copy()
    lpen = penalised_log_likelihood(design, y, beta)
    for it in range(1, max_iter + 1):
        _, _p, _w, info = _pieces(design, y, beta)
        try:
            score = penalised_score(design, y, beta)[free]
            step = np.zeros_like(beta)
            step[free] = np.linalg.solve(info[np.ix_(free, free)], score)
        except np.linalg.LinAlgError:  # fitted probabilities at 0/1 (far out on a profile): stop here
            return beta, it
        big = np.max(np.abs(step))
        if big > max_step:
            step *= max_step / big
        for _ in range(30):
            trial = beta + step
            lt = penalised_log_likelihood(design, y, trial)
            if lt >= lpen - 1e-12:
                break
            step /= 2
        beta, lpen = trial, lt
        if np.max(np.abs(step)) < tol and np.max(np.abs(score)) < 1e-6:
            return beta, it
    return beta, max_iter


def separation(x, y) -> bool:
    """True when a threshold on ``x`` separates the classes (completely or quasi-completely).

    Then the ordinary maximum-likelihood slope is infinite (Albert & Anderson, Biometrika 1984).
    """
    xx, yy = np.asarray(x, float), np.asarray(y, float)
    lo1, hi1 = xx[yy == 1].min(), xx[yy == 1].max()
    lo0, hi0 = xx[yy == 0].min(), xx[yy == 0].max()
    return bool(lo1 >= hi0 or lo0 >= hi1)


def firth_logistic_regression(x, y, *, max_iter: int = 200, tol: float = 1e-10) -> FirthFit:
    """Firth logistic regression of a binary outcome ``y`` on ``x`` ((n,) e.g. dose in Gy, or (n, p)).

    Raises
    ------
    InputError
        Outcome not 0/1 or one class only; a predictor not finite or constant.
    """
    yy = _binary(y)
    xx = np.asarray(x, float)
    xx = xx[:, None] if xx.ndim == 1 else xx
    if xx.ndim != 2 or xx.shape[0] != yy.size:
        raise InputError(f"need one predictor row per patient: shape {xx.shape} for {yy.size} outcomes",
                         source="predictor")
    for j in range(xx.shape[1]):
        _scores(xx[:, j], yy.size, "predictor")
    if np.any(np.ptp(xx, axis=0) == 0):
        raise InputError("a predictor is constant: no slope can be estimated", source="predictor")
    design = np.column_stack([np.ones(yy.size), xx])
    k = design.shape[1]
    beta, it = _fit(design, yy, np.zeros(k), np.ones(k, bool), max_iter=max_iter, tol=tol)
    lmax = penalised_log_likelihood(design, yy, beta)
    _, _, _, info = _pieces(design, yy, beta)
    se = np.sqrt(np.diag(np.linalg.inv(info)))
    crit = stats.chi2.ppf(0.95, 1) / 2

    def profile(j: int, b: float) -> float:
        free = np.ones(k, bool)
        free[j] = False
        start = beta.copy()
        start[j] = b
        bp, _ = _fit(design, yy, start, free, max_iter=max_iter, tol=tol)
        return penalised_log_likelihood(design, yy, bp)

    def bound(j: int, direction: float) -> float:
        def gap(b: float) -> float:
            return lmax - profile(j, b) - crit

        width = max(4 * se[j], 1e-8)
        for _ in range(40):
            edge = beta[j] + direction * width
            if gap(edge) > 0:
                return float(optimize.brentq(gap, beta[j], edge, xtol=1e-10 * max(1.0, abs(edge))))
            width *= 2
        return direction * math.inf

    ci = tuple((bound(j, -1.0), bound(j, 1.0)) for j in range(k))
    pv = tuple(float(stats.chi2.sf(max(0.0, 2 * (lmax - profile(j, 0.0))), 1)) for j in range(k))
    lo, hi = ci[1]
    return FirthFit(tuple(beta.tolist()), tuple(se.tolist()), ci, pv, (lo, hi), pv[1], math.exp(beta[1]),
                    (math.exp(lo), math.exp(hi)), float(lmax), it, separation(xx[:, 0], yy))
