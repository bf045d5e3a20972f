"""PSA progression-free survival by dose group: Kaplan–Meier and the log-rank test.

Censoring is respected: a patient censored at t leaves the risk set after t without an event.
At tied times events are counted before censorings (the usual convention).

References
----------
- Kaplan EL, Meier P. Nonparametric estimation from incomplete observations. J Am Stat Assoc
  1958;53:457–481. doi:10.1080/01621459.1958.10501452 (Greenwood variance, log(−log) CI)
- Mantel N. Evaluation of survival data and two new rank order statistics arising in its
  consideration. Cancer Chemother Rep 1966;50:163–170 (log-rank test).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from ..errors import InputError

__all__ = ["KaplanMeier", "kaplan_meier", "LogRank", "logrank_test", "median_ci95"]


def _survival_data(time, event, name: str = "time") -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(time, dtype=float).ravel()
    e = np.asarray(event, dtype=float).ravel()
    if t.size != e.size or t.size == 0:
        raise InputError(f"need one event flag per time, got {t.size} times and {e.size} flags", source=name)
    if not np.all(np.isfinite(t)) or np.any(t < 0):
        raise InputError("times must be finite and ≥ 0", source=name)
    if not np.all(np.isin(e, (0.0, 1.0))):
        raise InputError("event flags must be 1 (progression) or 0 (censored)", source="event")
    return t, e.astype(bool)


@dataclass(frozen=True)
class KaplanMeier:
    """A Kaplan–Meier curve: S(t) just after each distinct event/censoring time.

    Attributes
    ----------
    times : tuple
        Distinct times (same unit as the input, e.g. months), with 0 first.
    survival : tuple
        S(t) after each time.
    ci95_low, ci95_high : tuple
        Greenwood-variance log(−log) interval.
    at_risk, events, censored : tuple of int
    median : float
        Smallest t with S(t) ≤ 0.5 (inf if not reached).
    """

    times: tuple[float, ...]
    survival: tuple[float, ...]
    ci95_low: tuple[float, ...]
    ci95_high: tuple[float, ...]
    at_risk: tuple[int, ...]
    events: tuple[int, ...]
    censored: tuple[int, ...]
    median: float

    def at(self, t: float) -> float:
        """S(t) (right-continuous step function)."""
        idx = np.searchsorted(np.asarray(self.times), t, side="right") - 1
        return float(self.survival[max(idx, 0)])


def kaplan_meier(time, event) -> KaplanMeier:
    """Kaplan–Meier estimate of the survival function."""
    t, e = _survival_data(time, event)
    uniq = np.unique(t)
    n_risk, d, c = [], [], []
    for u in uniq:
        n_risk.append(int(np.sum(t >= u)))
        d.append(int(np.sum((t == u) & e)))
        c.append(int(np.sum((t == u) & ~e)))
    n_arr, d_arr = np.array(n_risk, float), np.array(d, float)
    s = np.cumprod(1 - d_arr / n_arr)
    with np.errstate(divide="ignore", invalid="ignore"):
        gw = np.cumsum(np.where(n_arr > d_arr, d_arr / (n_arr * (n_arr - d_arr)), 0.0))
        z = stats.norm.ppf(0.975)
        log_s = np.log(s)
        se = np.sqrt(gw) / np.abs(log_s)
        lo = np.where((s > 0) & (s < 1), np.exp(-np.exp(np.log(-log_s) + z * se)), s)
        hi = np.where((s > 0) & (s < 1), np.exp(-np.exp(np.log(-log_s) - z * se)), s)
    below = np.flatnonzero(s <= 0.5)
    median = float(uniq[below[0]]) if below.size else math.inf
    return KaplanMeier((0.0, *uniq.tolist()), (1.0, *s.tolist()), (1.0, *lo.tolist()), (1.0, *hi.tolist()),
                       (int(t.size), *n_risk), (0, *d), (0, *c), median)


def median_ci95(km: KaplanMeier) -> tuple[float, float]:
    """95 % interval of the median survival: the first times at which the lower and the upper
    pointwise log(−log) bounds fall to 0.5 or below (inf when a bound never does; Brookmeyer R,
    Crowley J. Biometrics 1982;38:29–41, in the form lifelines reports)."""
    t = np.asarray(km.times)

    def first(curve) -> float:
        below = np.flatnonzero(np.asarray(curve) <= 0.5)
        return float(t[below[0]]) if below.size else math.inf

    return first(km.ci95_low), first(km.ci95_high)


@dataclass(frozen=True)
class LogRank:
    """Log-rank test of equal survival across groups."""

    statistic: float
    df: int
    p_value: float
    observed: dict
    expected: dict


def logrank_test(time, event, group) -> LogRank:
    """Log-rank (Mantel–Cox) test across two or more groups (χ², groups − 1 degrees of freedom)."""
    t, e = _survival_data(time, event)
    g = np.asarray(group).ravel()
    if g.size != t.size:
        raise InputError(f"need one group per patient: {g.size} for {t.size}", source="group")
    labels = np.unique(g)
    if labels.size < 2:
        raise InputError("need at least two groups", source="group")
    k = labels.size
    obs = np.zeros(k)
    exp = np.zeros(k)
    var = np.zeros((k, k))
    for u in np.unique(t[e]):
        at_risk = t >= u
        n = at_risk.sum()
        d = np.sum((t == u) & e)
        n_g = np.array([np.sum(at_risk & (g == lab)) for lab in labels])
        d_g = np.array([np.sum((t == u) & e & (g == lab)) for lab in labels])
        obs += d_g
        exp += d * n_g / n
        if n > 1:
            f = d * (n - d) / (n**2 * (n - 1))
            var += f * (np.diag(n_g * n) - np.outer(n_g, n_g))
    diff = (obs - exp)[:-1]
    v = var[:-1, :-1]
    try:
        stat = float(diff @ np.linalg.solve(v, diff))
    except np.linalg.LinAlgError:
        raise InputError("log-rank variance is zero: a group has no one at risk at any event time",
                         source="group") from None
    return LogRank(stat, k - 1, float(stats.chi2.sf(stat, k - 1)), dict(zip(labels.tolist(), obs.tolist())),
                   dict(zip(labels.tolist(), exp.tolist())))
