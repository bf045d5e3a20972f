"""Cox proportional-hazards regression (Efron ties) with the Schoenfeld-residual check of proportionality.

h(t | x) = h₀(t)·exp(βᵀx); β by Newton–Raphson on Efron's partial likelihood; Wald standard
errors from the inverse observed information. Proportionality of each covariate is tested with
the scaled Schoenfeld residuals against the rank of the event times (Grambsch & Therneau): with
d events, rₖ* = d·sₖ·Var(β̂), gₖ the time rank, T = (Σ (gₖ − ḡ) rₖ*)² / (d·SE²·Σ (gₖ − ḡ)²) ~ χ²(1).

References
----------
- Cox DR. Regression models and life-tables. J R Stat Soc B 1972;34:187–220.
- Efron B. The efficiency of Cox's likelihood function for censored data. J Am Stat Assoc
  1977;72:557–565. doi:10.1080/01621459.1977.10480613
- Grambsch PM, Therneau TM. Proportional hazards tests and diagnostics based on weighted
  residuals. Biometrika 1994;81:515–526. doi:10.1093/biomet/81.3.515
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from ..errors import InputError
from .survival import _survival_data

__all__ = ["CoxFit", "cox_regression", "schoenfeld_residuals"]


@dataclass(frozen=True)
class CoxFit:
    """Fitted Cox model.

    Attributes
    ----------
    names : tuple of str
        Covariate names (e.g. ``("tumour_dose_Gy",)``).
    coefficients, standard_errors, p_values : tuple
        log hazard ratios (per unit of each covariate: per Gy for a dose), Wald SE and p.
    hazard_ratios : tuple
    coefficient_ci95 : tuple of (low, high)
        Wald 95 % intervals of the log hazard ratios.
    log_likelihood : float
        Efron log partial likelihood at β̂.
    n, n_events : int
    ph_test_statistic, ph_test_p_value : tuple
        Schoenfeld-residual test of proportional hazards (rank time transform) per covariate.
    converged : bool
    """

    names: tuple[str, ...]
    coefficients: tuple[float, ...]
    standard_errors: tuple[float, ...]
    p_values: tuple[float, ...]
    hazard_ratios: tuple[float, ...]
    coefficient_ci95: tuple[tuple[float, float], ...]
    log_likelihood: float
    n: int
    n_events: int
    ph_test_statistic: tuple[float, ...]
    ph_test_p_value: tuple[float, ...]
    converged: bool


def _efron(x: np.ndarray, t: np.ndarray, e: np.ndarray, beta: np.ndarray, *, residuals: bool = False):
    """Efron log partial likelihood, gradient, Hessian (and Schoenfeld residuals of events in time order)."""
    eta = x @ beta
    eta = eta - eta.max()  # the partial likelihood is invariant to a shift
    r = np.exp(eta)
    p = x.shape[1]
    ll, grad, hess = 0.0, np.zeros(p), np.zeros((p, p))
    res, res_t = [], []
    for u in np.unique(t[e]):
        risk = t >= u
        dead = (t == u) & e
        m = int(dead.sum())
        s0, s1 = r[risk].sum(), r[risk] @ x[risk]
        s2 = (x[risk] * r[risk][:, None]).T @ x[risk]
        d0, d1 = r[dead].sum(), r[dead] @ x[dead]
        d2 = (x[dead] * r[dead][:, None]).T @ x[dead]
        ll += float(eta[dead].sum())
        grad += x[dead].sum(axis=0)
        mean_sum = np.zeros(p)
        for k in range(m):
            f = k / m
            den = s0 - f * d0
            num = s1 - f * d1
            ll -= math.log(den)
            grad -= num / den
            hess -= (s2 - f * d2) / den - np.outer(num, num) / den**2
            mean_sum += num / den
        if residuals:
            for i in np.flatnonzero(dead):
                res.append(x[i] - mean_sum / m)
                res_t.append(u)
    if residuals:
        return np.array(res).reshape(-1, p), np.array(res_t)
    return ll, grad, hess


def schoenfeld_residuals(time, event, covariates, coefficients) -> tuple[np.ndarray, np.ndarray]:
    """Schoenfeld residuals (Efron tie handling) of the events, in time order, and their times."""
    t, e = _survival_data(time, event)
    x = np.asarray(covariates, float).reshape(t.size, -1)
    return _efron(x, t, e, np.asarray(coefficients, float), residuals=True)


def cox_regression(time, event, covariates, *, names: Sequence[str] | None = None, max_iter: int = 100,
                   tol: float = 1e-10) -> CoxFit:
    """Cox proportional-hazards fit of survival ``time`` (any unit, e.g. months), ``event`` (1/0).

    Parameters
    ----------
    covariates : array (n,) or (n, p)
        E.g. tumour absorbed dose (Gy); coefficients are per unit.
    names : sequence of str, optional

    Raises
    ------
    InputError
        No events, a constant covariate, or no finite estimate (a covariate orders the events perfectly).
    """
    t, e = _survival_data(time, event)
    x = np.asarray(covariates, float)
    x = x[:, None] if x.ndim == 1 else x
    if x.ndim != 2 or x.shape[0] != t.size:
        raise InputError(f"need one covariate row per patient ({t.size}), got shape {x.shape}", source="covariates")
    if not np.all(np.isfinite(x)):
        raise InputError("non-finite covariate value", source="covariates")
    p = x.shape[1]
    names = tuple(names) if names is not None else tuple(f"x{i}" for i in range(p))
    if e.sum() == 0:
        raise InputError("no events: a Cox model needs at least one", source="event")
    if np.any(np.ptp(x, axis=0) == 0):
        raise InputError("a covariate is constant", source="covariates")
    # centre and scale for the iterations (results transformed back)
    mu, sd = x.mean(axis=0), x.std(axis=0)
    z = (x - mu) / sd
    beta = np.zeros(p)
    ll, grad, hess = _efron(z, t, e, beta)
    converged = False
    for _ in range(max_iter):
        try:
            step = np.linalg.solve(-hess, grad)
        except np.linalg.LinAlgError:
            raise InputError("Cox fit has no information on the covariate (too few patients at risk at "
                             "the event times)", source="covariates") from None
        for _ in range(30):
            trial = beta + step
            lt, gt, ht = _efron(z, t, e, trial)
            if lt >= ll - 1e-12:
                break
            step /= 2
        beta, ll, grad, hess = trial, lt, gt, ht
        if np.max(np.abs(step)) < tol:
            converged = True
            break
    if not converged or np.any(np.abs(beta) > 50):
        raise InputError("Cox fit has no finite estimate (the covariate orders the events perfectly)",
                         source="covariates")
    coef = beta / sd
    cov = np.linalg.inv(-hess) / np.outer(sd, sd)
    se = np.sqrt(np.diag(cov))
    zc = stats.norm.ppf(0.975)
    pv = 2 * stats.norm.sf(np.abs(coef / se))
    # Schoenfeld check (rank transform of event times)
    res, _ = _efron(x, t, e, coef, residuals=True)
    d = res.shape[0]
    scaled = d * res @ cov
    g = np.arange(1, d + 1, dtype=float)
    g -= g.mean()
    tstat = (g @ scaled) ** 2 / (d * se**2 * np.sum(g**2)) if d > 1 else np.full(p, np.nan)
    return CoxFit(names, tuple(coef.tolist()), tuple(se.tolist()), tuple(pv.tolist()),
                  tuple(np.exp(coef).tolist()), tuple((float(c - zc * s), float(c + zc * s)) for c, s in zip(coef, se)),
                  float(_efron(x, t, e, coef)[0]), int(t.size), int(e.sum()), tuple(np.atleast_1d(tstat).tolist()),
                  tuple(stats.chi2.sf(np.atleast_1d(tstat), 1).tolist()), converged)
