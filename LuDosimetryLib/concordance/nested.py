"""Agreement when observations are nested: several lesions per patient.

Lesions of one patient share a patient effect (the same PET-to-therapy interval, tumour sink,
calibration), so treating them as independent pairs makes intervals too narrow. Two methods:

``mixed``
    Bland–Altman for multiple observations per individual where the true value varies (Bland &
    Altman 2007, section 5): the differences follow a one-way random-effects model
    d_ij = μ + u_i + e_ij. Variance components by the method of moments (unbalanced ANOVA):
    σ²_e = MSW, σ²_u = (MSB − MSW)/n₀ with n₀ = (N − Σ m_i²/N)/(n − 1), σ²_u ≥ 0. Limits of
    agreement μ ± 1.96 √(σ²_u + σ²_e). The bias μ is the mean of patient means weighted by
    1/(σ²_u + σ²_e/m_i), with its standard error √(1/Σw), t-quantile with n − 1 degrees of
    freedom.
``cluster_bootstrap``
    Patients are resampled with replacement (all their lesions together); bias and limits are
    recomputed on each resample; percentile 95 % intervals (Field & Welsh 2007).

The default (:func:`nested_bland_altman`) reports the mixed-model estimates with the
cluster-bootstrap intervals of the limits, and the naive (independent-pairs) analysis beside
them for comparison.

References
----------
- Bland JM, Altman DG. Agreement between methods of measurement with multiple observations per
  individual. J Biopharm Stat 2007;17:571–582. doi:10.1080/10543400701329422
- Field CA, Welsh AH. Bootstrapping clustered data. J R Stat Soc B 2007;69:369–390.
  doi:10.1111/j.1467-9868.2007.00593.x
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from ..errors import InputError
from .agreement import BlandAltman, _differences, bland_altman, paired_arrays

__all__ = ["NestedBlandAltman", "nested_bland_altman", "variance_components"]


@dataclass(frozen=True)
class NestedBlandAltman:
    """Bland–Altman analysis of lesions nested in patients.

    Attributes
    ----------
    scale : str
    n_patients, n_observations : int
    bias : float
        Mixed-model estimate of the mean difference μ.
    bias_ci95 : tuple
        Mixed-model t interval.
    sd_between, sd_within, sd_total : float
        √σ²_u, √σ²_e and √(σ²_u + σ²_e).
    loa : tuple
        μ ± k·sd_total.
    bias_ci95_bootstrap, loa_ci95_bootstrap : tuple
        Cluster-bootstrap percentile intervals.
    naive : BlandAltman
        The same data analysed as independent pairs (too narrow when patients differ).
    n_bootstrap : int
    """

    scale: str
    n_patients: int
    n_observations: int
    bias: float
    bias_ci95: tuple[float, float]
    sd_between: float
    sd_within: float
    sd_total: float
    loa: tuple[float, float]
    bias_ci95_bootstrap: tuple[float, float]
    loa_ci95_bootstrap: tuple[tuple[float, float], tuple[float, float]]
    naive: BlandAltman
    n_bootstrap: int


def variance_components(d: np.ndarray, groups: np.ndarray) -> tuple[float, float, float, float]:
    """(μ, SE(μ), σ²_between, σ²_within) of a one-way random-effects model by moments."""
    labels, inv, counts = np.unique(groups, return_inverse=True, return_counts=True)
    n, big_n = labels.size, d.size
    means = np.bincount(inv, weights=d) / counts
    ss_within = float(np.sum((d - means[inv]) ** 2))
    grand = d.mean()
    ss_between = float(np.sum(counts * (means - grand) ** 2))
    msw = ss_within / (big_n - n) if big_n > n else 0.0
    msb = ss_between / (n - 1)
    n0 = (big_n - np.sum(counts**2) / big_n) / (n - 1)
    s2u = max((msb - msw) / n0, 0.0) if n0 > 0 else msb
    s2e = msw
    w = 1.0 / (s2u + s2e / counts) if (s2u + s2e) > 0 else np.ones(n)
    mu = float(np.sum(w * means) / np.sum(w))
    se = float(math.sqrt(1.0 / np.sum(w)))
    return mu, se, s2u, s2e


def nested_bland_altman(x, y, patient, *, scale: str = "difference", k_sd: float = 1.959963984540054,
                        n_bootstrap: int = 2000, seed: int = 0) -> NestedBlandAltman:
    """Bland–Altman for lesions nested in patients (mixed model + cluster bootstrap).

    Parameters
    ----------
    x, y : array_like
        Paired doses (Gy), one pair per lesion.
    patient : array_like
        Patient identifier of each pair.
    scale : {"difference", "percent", "log_ratio"}
    n_bootstrap : int
        Cluster-bootstrap resamples.
    seed : int
        Seed of the resampling (results are reproducible).
    """
    a, b = paired_arrays(x, y, positive=(scale == "log_ratio"))
    g = np.asarray(patient)
    if g.shape != a.shape:
        raise InputError(f"need one patient per pair: {g.size} patients for {a.size} pairs", source="patient")
    labels, inv = np.unique(g, return_inverse=True)
    if labels.size < 3:
        raise InputError(f"need at least 3 patients, got {labels.size}", source="patient")
    d, _ = _differences(a, b, scale)
    mu, se, s2u, s2e = variance_components(d, inv)
    sd_total = math.sqrt(s2u + s2e)
    t = stats.t.ppf(0.975, labels.size - 1)
    rng = np.random.default_rng(seed)
    members = [np.flatnonzero(inv == i) for i in range(labels.size)]
    boot = np.empty((n_bootstrap, 3))
    for r in range(n_bootstrap):
        pick = rng.integers(0, labels.size, labels.size)
        idx = np.concatenate([members[p] for p in pick])
        grp = np.repeat(np.arange(labels.size), [members[p].size for p in pick])
        if np.unique(pick).size < 2:
            boot[r] = np.nan
            continue
        m_, _, u_, e_ = variance_components(d[idx], grp)
        s_ = math.sqrt(u_ + e_)
        boot[r] = (m_, m_ - k_sd * s_, m_ + k_sd * s_)
    lo, hi = np.nanpercentile(boot, [2.5, 97.5], axis=0)
    return NestedBlandAltman(scale, int(labels.size), int(a.size), mu, (mu - t * se, mu + t * se), math.sqrt(s2u),
                             math.sqrt(s2e), sd_total, (mu - k_sd * sd_total, mu + k_sd * sd_total),
                             (float(lo[0]), float(hi[0])), ((float(lo[1]), float(hi[1])), (float(lo[2]), float(hi[2]))),
                             bland_altman(a, b, scale=scale, k_sd=k_sd), n_bootstrap)
