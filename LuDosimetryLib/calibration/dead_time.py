"""Paralysable dead time: the model, its inversion, and τ from a decay series of one source.

A paralysable counting system records ``m = n·e^(−nτ)`` counts per second when ``n`` arrive
(Knoll, *Radiation Detection and Measurement*, 4th ed., ch. 4.VII). The true rate follows from the
observed one by the principal branch of the Lambert W function, ``n = −W₀(−mτ)/τ``, valid while
``mτ ≤ 1/e`` (the maximum of the observed rate, reached at ``n = 1/τ``); beyond it the observed
rate is ambiguous and the scan cannot be corrected. That inversion is ingest's
(:func:`LuDosimetryLib.ingest.quant.paralysable_true_rate_cps`), used here too.

τ is measured from a decay series: the same source scanned several times as it decays (the
decaying-source method, Knoll ch. 4.VII.C). The true rate decays physically, ``n(t) = n₀·e^(−λt)``
(λ from :mod:`LuDosimetryLib.nuclides`), so the observed rates fix both ``n₀`` and ``τ``.

Rates here are in the units of the calibration: reconstructed (photopeak) counts per second in
the field of view, so τ is the *effective* dead time of that window and geometry (see
docs/calibration.md for what this does and does not cover).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from scipy.optimize import least_squares

from ..errors import InputError
from ..nuclides import get_nuclide
from ..timing import hours_between

__all__ = ["paralysable_observed_rate", "live_fraction", "DeadTimeFit",
           "fit_dead_time", "MIN_LOSS_FOR_FIT"]

#: The highest count loss of a series must exceed this fraction for τ to be measurable.
MIN_LOSS_FOR_FIT = 0.02


def paralysable_observed_rate(true_cps: float | np.ndarray, tau_s: float) -> float | np.ndarray:
    """Observed count rate ``m = n·e^(−nτ)`` (cps) of a paralysable system.

    Parameters
    ----------
    true_cps : float or array
        True (incoming) count rate n (cps), ≥ 0.
    tau_s : float
        Dead time τ (s), ≥ 0.
    """
    n = np.asarray(true_cps, dtype=float)
    out = n * np.exp(-n * tau_s)
    return float(out) if np.ndim(true_cps) == 0 else out


def live_fraction(true_cps: float | np.ndarray, tau_s: float) -> float | np.ndarray:
    """Fraction of true counts recorded, ``e^(−nτ)`` (dimensionless)."""
    out = np.exp(-np.asarray(true_cps, dtype=float) * tau_s)
    return float(out) if np.ndim(true_cps) == 0 else out


@dataclass(frozen=True)
class DeadTimeFit:
    """τ fitted to a decay series.

    Attributes
    ----------
    dead_time_s : float
        Paralysable dead time τ (s).
    dead_time_rel_uncertainty : float
        Relative standard uncertainty of τ (from the fit covariance, scaled by the residuals).
    true_rate_at_first_cps : float
        Fitted true rate at the first scan's mid-time (cps).
    max_loss_fraction : float
        Largest count loss of the series, ``1 − e^(−nτ)``.
    times_h : tuple of float
        Mid-acquisition times relative to the first scan (h).
    observed_cps, fitted_cps : tuple of float
        Observed and fitted observed rates (cps).
    """

    dead_time_s: float
    dead_time_rel_uncertainty: float
    true_rate_at_first_cps: float
    max_loss_fraction: float
    times_h: tuple[float, ...]
    observed_cps: tuple[float, ...]
    fitted_cps: tuple[float, ...]


def fit_dead_time(mid_times: list[datetime] | np.ndarray, observed_cps: np.ndarray, *,
                  counts: np.ndarray | None = None, nuclide: str = "Lu-177") -> DeadTimeFit:
    """Fit τ of a paralysable system to observed rates of one decaying source.

    Model: ``m(t) = n₀e^(−λt)·exp(−n₀e^(−λt)·τ)`` with λ the physical decay constant of
    ``nuclide``; ``n₀`` and τ fitted by weighted least squares on ln m (weights from Poisson counts
    when ``counts`` are given).

    Parameters
    ----------
    mid_times : list of datetime or array of float
        Mid-acquisition time of each scan (datetimes, or hours from any common origin).
    observed_cps : array
        Observed count rate of each scan (cps): counts in the field of view / duration.
    counts : array, optional
        Counts of each scan, for Poisson weights (default: equal weights).
    nuclide : str

    Returns
    -------
    DeadTimeFit

    Raises
    ------
    InputError
        Fewer than 3 scans, non-positive rates, or a series whose highest rate loses less than
        :data:`MIN_LOSS_FOR_FIT` of its counts (τ is then not measurable from it: scan a hotter
        source).
    """
    if len(mid_times) and isinstance(mid_times[0], datetime):
        t = np.array([hours_between(mid_times[0], x) for x in mid_times])
    else:
        t = np.asarray(mid_times, dtype=float)
        t = t - t[0] if t.size else t
    m = np.asarray(observed_cps, dtype=float)
    if t.size < 3 or m.shape != t.shape:
        raise InputError(f"need ≥ 3 scans with one rate each, got {t.size} times and {m.size} rates",
                         source="decay series")
    if not np.all(np.isfinite(m) & (m > 0)):
        raise InputError(f"observed rates must be finite and > 0 cps, got {m.tolist()}", source="decay series")
    lam = get_nuclide(nuclide).decay_constant_per_h
    decay = np.exp(-lam * t)
    w = np.sqrt(np.asarray(counts, dtype=float)) if counts is not None else np.ones_like(m)

    def model(p):
        n = p[0] * decay
        return n * np.exp(-n * p[1])

    def resid(p):
        return (np.log(model(p)) - np.log(m)) * w

    i0 = int(np.argmin(m * decay ** -1))  # lowest decay-corrected rate ≈ least loss
    n0_guess = m[i0] / decay[i0] * 1.05
    best = None
    for tau0 in (0.0, 0.1 / (n0_guess or 1.0), 0.3 / (n0_guess or 1.0)):
        r = least_squares(resid, x0=[n0_guess, tau0], bounds=([0, 0], [np.inf, np.inf]), x_scale="jac")
        if best is None or r.cost < best.cost:
            best = r
    n0, tau = best.x
    loss = 1.0 - math.exp(-n0 * tau)
    if loss < MIN_LOSS_FOR_FIT:
        raise InputError(f"the hottest scan loses only {loss:.1%} of its counts (< {MIN_LOSS_FOR_FIT:.0%}): "
                         "τ is not measurable from this series; scan a hotter source", source="decay series")
    dof = max(t.size - 2, 1)
    s2 = 2 * best.cost / dof if counts is None else max(2 * best.cost / dof, 1.0)
    try:
        cov = np.linalg.inv(best.jac.T @ best.jac) * s2
        u_tau = math.sqrt(max(cov[1, 1], 0.0)) / tau
    except np.linalg.LinAlgError:
        u_tau = math.inf
    return DeadTimeFit(float(tau), float(u_tau), float(n0), float(loss), tuple(t.tolist()), tuple(m.tolist()),
                       tuple(model(best.x).tolist()))
