"""Dose as a response biomarker: logistic regression, ROC with DeLong CI, Youden threshold.

References
----------
- DeLong ER, DeLong DM, Clarke-Pearson DL. Comparing the areas under two or more correlated
  receiver operating characteristic curves: a nonparametric approach. Biometrics 1988;44:837–845.
  doi:10.2307/2531595 (fast midrank algorithm: Sun X, Xu W. IEEE Signal Process Lett
  2014;21:1389–1393, doi:10.1109/LSP.2014.2337313)
- Youden WJ. Index for rating diagnostic tests. Cancer 1950;3:32–35.
- Harrell FE, Lee KL, Mark DB. Multivariable prognostic models. Stat Med 1996;15:361–387
  (bootstrap optimism correction). doi:10.1002/(SICI)1097-0258(19960229)15:4<361::AID-SIM168>3.0.CO;2-4
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from ..errors import InputError

__all__ = ["LogisticFit", "logistic_regression", "ROC", "roc_curve_auc", "delong_auc_variance",
           "YoudenThreshold", "youden_threshold"]


def _binary(y, name: str = "outcome") -> np.ndarray:
    v = np.asarray(y, dtype=float).ravel()
    if not np.all(np.isin(v, (0.0, 1.0))):
        raise InputError("outcome must be 0 or 1 for every patient", source=name)
    if v.min() == v.max():
        raise InputError("outcome has only one class (need responders and non-responders)", source=name)
    return v


def _scores(x, n: int, name: str = "dose") -> np.ndarray:
    s = np.asarray(x, dtype=float).ravel()
    if s.size != n:
        raise InputError(f"need one value per patient: {s.size} values for {n} outcomes", source=name)
    if not np.all(np.isfinite(s)):
        raise InputError("non-finite value", source=name)
    return s


@dataclass(frozen=True)
class LogisticFit:
    """P(response) = 1 / (1 + exp(−(β0 + β1·x))) by maximum likelihood (Newton–Raphson).

    Attributes
    ----------
    coefficients : tuple
        (β0, β1); β1 per unit of the predictor (per Gy for a dose).
    standard_errors : tuple
        From the inverse observed information.
    p_values : tuple
        Wald tests.
    odds_ratio, odds_ratio_ci95 : float, tuple
        exp(β1) and its Wald 95 % interval.
    log_likelihood : float
    converged : bool
    """

    coefficients: tuple[float, float]
    standard_errors: tuple[float, float]
    p_values: tuple[float, float]
    odds_ratio: float
    odds_ratio_ci95: tuple[float, float]
    log_likelihood: float
    converged: bool

    def probability(self, x) -> np.ndarray:
        """Predicted response probability at predictor values ``x``."""
        b0, b1 = self.coefficients
        return 1.0 / (1.0 + np.exp(-(b0 + b1 * np.asarray(x, float))))


def logistic_regression(x, y, *, max_iter: int = 100, tol: float = 1e-10) -> LogisticFit:
    """Univariable logistic regression of a binary outcome ``y`` on ``x`` (e.g. dose in Gy)."""
    yy = _binary(y)
    xx = _scores(x, yy.size, "predictor")
    design = np.column_stack([np.ones_like(xx), xx])
    beta = np.zeros(2)
    converged = False
    for _ in range(max_iter):
        eta = design @ beta
        p = 1 / (1 + np.exp(-eta))
        w = p * (1 - p)
        grad = design.T @ (yy - p)
        info = design.T @ (design * w[:, None])
        try:
            step = np.linalg.solve(info, grad)
        except np.linalg.LinAlgError:
            raise InputError("logistic fit is singular (perfect separation or constant predictor)",
                             source="predictor") from None
        beta = beta + step
        if np.max(np.abs(step)) < tol:
            converged = True
            break
    p = 1 / (1 + np.exp(-(design @ beta)))
    info = design.T @ (design * (p * (1 - p))[:, None])
    cov = np.linalg.inv(info)
    se = np.sqrt(np.diag(cov))
    z = beta / se
    pv = 2 * stats.norm.sf(np.abs(z))
    eps = 1e-300
    ll = float(np.sum(yy * np.log(p + eps) + (1 - yy) * np.log(1 - p + eps)))
    zc = stats.norm.ppf(0.975)
    return LogisticFit((float(beta[0]), float(beta[1])), (float(se[0]), float(se[1])), (float(pv[0]), float(pv[1])),
                       math.exp(beta[1]), (math.exp(beta[1] - zc * se[1]), math.exp(beta[1] + zc * se[1])), ll,
                       converged)


def _midrank(x: np.ndarray) -> np.ndarray:
    return stats.rankdata(x, method="average")


def delong_auc_variance(scores, y) -> tuple[float, float]:
    """(AUC, variance of AUC) by DeLong's method (fast midrank form, Sun & Xu 2014).

    Larger scores predict ``y = 1``; ties count one half.
    """
    yy = _binary(y)
    s = _scores(scores, yy.size, "scores")
    pos, neg = s[yy == 1], s[yy == 0]
    m, n = pos.size, neg.size
    tz = _midrank(np.concatenate([pos, neg]))
    tx = _midrank(pos)
    ty = _midrank(neg)
    auc = (tz[:m].sum() - m * (m + 1) / 2) / (m * n)
    v01 = (tz[:m] - tx) / n          # structural components of the positives
    v10 = 1.0 - (tz[m:] - ty) / m    # structural components of the negatives
    s01 = np.var(v01, ddof=1) if m > 1 else 0.0
    s10 = np.var(v10, ddof=1) if n > 1 else 0.0
    return float(auc), float(s01 / m + s10 / n)


@dataclass(frozen=True)
class ROC:
    """ROC curve, AUC and its DeLong 95 % CI (normal on the AUC scale, clipped to [0, 1])."""

    thresholds: tuple[float, ...]
    sensitivity: tuple[float, ...]
    specificity: tuple[float, ...]
    auc: float
    auc_se: float
    auc_ci95: tuple[float, float]


def roc_curve_auc(scores, y) -> ROC:
    """ROC of a continuous predictor (e.g. tumour dose, Gy) against a binary response.

    Thresholds: a patient is called positive when ``score ≥ threshold``.
    """
    yy = _binary(y)
    s = _scores(scores, yy.size, "scores")
    thr = np.concatenate([[np.inf], np.unique(s)[::-1]])
    pos = yy == 1
    sens = np.array([np.mean(s[pos] >= t) for t in thr])
    spec = np.array([np.mean(s[~pos] < t) for t in thr])
    auc, var = delong_auc_variance(s, yy)
    se = math.sqrt(var)
    z = stats.norm.ppf(0.975)
    return ROC(tuple(thr.tolist()), tuple(sens.tolist()), tuple(spec.tolist()), auc, se,
               (max(0.0, auc - z * se), min(1.0, auc + z * se)))


@dataclass(frozen=True)
class YoudenThreshold:
    """Youden-optimal threshold with its bootstrap-optimism-corrected index.

    Attributes
    ----------
    threshold : float
        Score at which J = sensitivity + specificity − 1 is largest (positive when ≥ threshold).
    youden_apparent : float
        J on the data that chose the threshold (optimistic).
    optimism : float
        Mean over bootstrap resamples of J(resample threshold on resample) − J(resample threshold
        on the original data).
    youden_corrected : float
        apparent − optimism.
    threshold_ci95 : tuple
        Percentile interval of the bootstrap thresholds.
    """

    threshold: float
    sensitivity: float
    specificity: float
    youden_apparent: float
    optimism: float
    youden_corrected: float
    threshold_ci95: tuple[float, float]
    n_bootstrap: int


def _best_threshold(s: np.ndarray, y: np.ndarray) -> tuple[float, float, float, float]:
    thr = np.unique(s)
    pos = y == 1
    calls = s[None, :] >= thr[:, None]
    sens = (calls & pos).sum(axis=1) / max(pos.sum(), 1)
    spec = (~calls & ~pos).sum(axis=1) / max((~pos).sum(), 1)
    j = sens + spec - 1
    k = int(np.argmax(j))
    return float(thr[k]), float(sens[k]), float(spec[k]), float(j[k])


def _youden_at(s: np.ndarray, y: np.ndarray, t: float) -> float:
    pos = y == 1
    return float(np.mean(s[pos] >= t) + np.mean(s[~pos] < t) - 1)


def youden_threshold(scores, y, *, n_bootstrap: int = 1000, seed: int = 0) -> YoudenThreshold:
    """Youden threshold of a predictor, with bootstrap optimism correction (Harrell 1996)."""
    yy = _binary(y)
    s = _scores(scores, yy.size, "scores")
    t, se, sp, j = _best_threshold(s, yy)
    rng = np.random.default_rng(seed)
    opt, thrs = [], []
    for _ in range(n_bootstrap):
        idx = rng.integers(0, s.size, s.size)
        yb = yy[idx]
        if yb.min() == yb.max():
            continue
        tb, _, _, jb = _best_threshold(s[idx], yb)
        opt.append(jb - _youden_at(s, yy, tb))
        thrs.append(tb)
    optimism = float(np.mean(opt)) if opt else float("nan")
    lo, hi = (np.percentile(thrs, [2.5, 97.5]) if thrs else (np.nan, np.nan))
    return YoudenThreshold(t, se, sp, j, optimism, j - optimism, (float(lo), float(hi)), len(opt))
