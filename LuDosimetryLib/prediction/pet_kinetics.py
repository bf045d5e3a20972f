"""PET tracer kinetics: Patlak graphical analysis and the irreversible two-tissue compartment model.

Both take an input function C_p(t) — image-derived from a blood-pool region given by name (aorta,
left ventricle) — and a tissue curve C_t(t), both **decay-corrected** to injection (biological,
:mod:`.decay`) in the same units (Bq/mL or fraction of injected activity per mL).

Patlak: for t ≥ t* (the start of the linear phase, stated in the result),
C_t(t)/C_p(t) = K_i ∫₀ᵗ C_p dτ / C_p(t) + V, with K_i the net influx rate (mL/min/mL given in
h⁻¹ here) and V the intercept (distribution volume + blood fraction).

Irreversible two-tissue model (2TCi, k4 = 0; forward model and :func:`fit_two_tissue_irreversible`):
dC1/dt = K1 C_p − (k2 + k3) C1, dC2/dt = k3 C1, C_t = (1 − v_B)(C1 + C2) + v_B C_p,
K_i = K1 k3 / (k2 + k3).

References
----------
Patlak CS, Blasberg RG, Fenstermacher JD. Graphical evaluation of blood-to-brain transfer constants
from multiple-time uptake data. J Cereb Blood Flow Metab 1983;3:1–7. doi:10.1038/jcbfm.1983.1
Sokoloff L et al. J Neurochem 1977;28:897–916 (the two-tissue model). Feng D, Huang SC, Wang X.
Models for computer simulation studies of input functions for tracer kinetic modeling with PET.
Int J Biomed Comput 1993;32:95–110 (the analytic input function used in the tests).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError

__all__ = ["PatlakResult", "patlak", "two_tissue_irreversible", "cumulative_integral", "TwoTissueFit",
           "fit_two_tissue_irreversible"]


@dataclass(frozen=True)
class PatlakResult:
    """Patlak fit.

    Attributes
    ----------
    ki_per_h : float
        Net influx rate K_i (h⁻¹; mL per h per mL of tissue).
    intercept : float
        V (dimensionless).
    t_star_h : float
        Start of the linear phase used (h p.i.).
    n_points : int
    r_squared : float
    """

    ki_per_h: float
    intercept: float
    t_star_h: float
    n_points: int
    r_squared: float

    @property
    def ki_standard_error_per_h(self) -> float:
        """Standard error of the slope (h⁻¹) from r² and n: |K_i| √(1 − r²) / (r √(n − 2))."""
        if self.n_points <= 2 or not (0 < self.r_squared <= 1):
            return float("nan")
        return abs(self.ki_per_h) * float(np.sqrt((1 - self.r_squared) / self.r_squared / (self.n_points - 2)))


def cumulative_integral(t_h, c) -> np.ndarray:
    """∫₀ᵗ c dτ at each sample, trapezoidal, with c(0) = 0 at t = 0 (units of c × h)."""
    t = np.concatenate([[0.0], np.asarray(t_h, dtype=float)])
    y = np.concatenate([[0.0], np.asarray(c, dtype=float)])
    return np.cumsum(np.diff(t) * (y[1:] + y[:-1]) / 2)


def patlak(t_h, tissue, plasma, *, t_star_h: float = 20.0 / 60.0, plasma_integral=None) -> PatlakResult:
    """Patlak K_i and intercept from frames with mid time ≥ ``t_star_h``.

    Parameters
    ----------
    t_h : array_like
        Frame mid times (h p.i.), increasing.
    tissue, plasma : array_like
        Decay-corrected tissue and input-function values at ``t_h``.
    t_star_h : float
        Start of the linear phase (h; default 20 min).
    plasma_integral : array_like, optional
        ∫₀ᵗ C_p at ``t_h`` if known more accurately than from the frames (e.g. a finely sampled
        input function); default the trapezoid over the frames from (0, 0).

    Raises
    ------
    InputError
        Fewer than 3 frames after t*, or a non-positive input function there.
    """
    t = np.asarray(t_h, dtype=float)
    ct = np.asarray(tissue, dtype=float)
    cp = np.asarray(plasma, dtype=float)
    if not (t.shape == ct.shape == cp.shape):
        raise InputError(f"t_h, tissue and plasma differ in length: {t.size}, {ct.size}, {cp.size}", source="patlak")
    icp = cumulative_integral(t, cp) if plasma_integral is None else np.asarray(plasma_integral, dtype=float)
    sel = t >= t_star_h
    if sel.sum() < 3:
        raise InputError(f"need ≥ 3 frames after t* = {t_star_h * 60:.1f} min, got {int(sel.sum())}",
                         source="patlak")
    if np.any(cp[sel] <= 0):
        raise InputError("input function must be > 0 after t*", source="patlak")
    x = icp[sel] / cp[sel]
    y = ct[sel] / cp[sel]
    slope, intercept = np.polyfit(x, y, 1)
    pred = slope * x + intercept
    ss = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - float(np.sum((y - pred) ** 2)) / ss if ss > 0 else float("nan")
    return PatlakResult(float(slope), float(intercept), float(t_star_h), int(sel.sum()), r2)


def two_tissue_irreversible(t_h, plasma, *, K1_per_h: float, k2_per_h: float, k3_per_h: float,
                            blood_fraction: float = 0.0) -> np.ndarray:
    """Tissue curve of the 2TCi model on a fine, uniform time grid (exact for piecewise-constant C_p steps).

    The convolution of C_p with the impulse response K1 (k2 e^(−(k2+k3)t) + k3) / (k2 + k3), as a
    rectangle sum on the grid (C_t[n] = Σ_{m≤n} C_p[m] IRF[n−m] Δt), is evaluated in linear time: the
    exponential part by the recursion E[n] = e^(−(k2+k3)Δt) E[n−1] + C_p[n]
    (``scipy.signal.lfilter``), the constant part by a cumulative sum (the same sum as the direct
    convolution, which took O(n²) per evaluation and most of a 2TCi fit's time).

    Parameters
    ----------
    t_h : array_like
        Uniform time grid from 0 (h).
    plasma : array_like
        C_p on that grid.
    K1_per_h, k2_per_h, k3_per_h : float
        Rate constants (h⁻¹).
    blood_fraction : float
        v_B.
    """
    t = np.asarray(t_h, dtype=float)
    cp = np.asarray(plasma, dtype=float)
    if t.size < 2 or not np.allclose(np.diff(t), t[1] - t[0]):
        raise InputError("t_h must be a uniform grid from 0", source="two_tissue_irreversible")
    return _two_tissue_curve(cp, np.cumsum(cp), t[1] - t[0], K1_per_h, k2_per_h, k3_per_h, blood_fraction)


def _two_tissue_curve(cp: np.ndarray, cp_cumsum: np.ndarray, dt: float, K1: float, k2: float, k3: float,
                      vb: float) -> np.ndarray:
    """:func:`two_tissue_irreversible` without the checks (the fit's inner loop; ``cp_cumsum`` = cumsum of C_p)."""
    from scipy.signal import lfilter

    kk = k2 + k3
    exp_part = lfilter([1.0], [1.0, -np.exp(-kk * dt)], cp)  # Σ_{m≤n} C_p[m] e^(−kk (n−m) Δt)
    return (1.0 - vb) * (K1 * (k2 * exp_part + k3 * cp_cumsum) / kk * dt) + vb * cp


@dataclass(frozen=True)
class TwoTissueFit:
    """Irreversible two-tissue model fitted to frames.

    Attributes
    ----------
    K1_per_h, k2_per_h, k3_per_h : float
        Rate constants (h⁻¹).
    blood_fraction : float
        v_B.
    ki_per_h : float
        (1 − v_B) K1 k3 / (k2 + k3): net influx per mL of voxel (h⁻¹), comparable with Patlak's slope.
    rel_rmse : float
        RMS residual / mean tissue value.
    converged : bool
    n_frames : int
    standard_errors : tuple of float
        Asymptotic standard errors of (K1, k2, k3, v_B) (h⁻¹, h⁻¹, h⁻¹, 1): s² (JᵀJ)⁻¹ of the weighted
        residuals at the optimum, s² = RSS / (n − 4); NaN when n ≤ 4 or JᵀJ is singular.
    """

    K1_per_h: float
    k2_per_h: float
    k3_per_h: float
    blood_fraction: float
    ki_per_h: float
    rel_rmse: float
    converged: bool
    n_frames: int
    standard_errors: tuple[float, float, float, float] = (float("nan"),) * 4


def fit_two_tissue_irreversible(start_h, duration_h, tissue, plasma, *, step_h: float = 2.0 / 3600.0,
                                max_rate_per_h: float = 120.0) -> TwoTissueFit:
    """Fit K1, k2, k3, v_B of the 2TCi model to frame averages, with an image-derived input function.

    The input function is the frame values of the blood-pool region joined linearly through
    (0, 0) and the frame mid times (constant after the last frame), on a uniform grid of
    ``step_h``; the model tissue curve is averaged over each frame. Least squares
    (``scipy.optimize.least_squares``, bounds K1, k2, k3 ∈ [0, ``max_rate_per_h``], v_B ∈ [0, 1]),
    several starts, residuals weighted by √(frame duration).

    Parameters
    ----------
    start_h, duration_h : array_like
        Frame starts (h p.i.) and durations (h).
    tissue, plasma : array_like
        Decay-corrected frame values of the region and of the input function (same units).
    """
    from scipy.optimize import least_squares

    s = np.asarray(start_h, dtype=float)
    d = np.asarray(duration_h, dtype=float)
    ct = np.asarray(tissue, dtype=float)
    cp = np.asarray(plasma, dtype=float)
    if not (s.shape == d.shape == ct.shape == cp.shape) or s.size < 5:
        raise InputError(f"need ≥ 5 frames with start, duration, tissue and plasma of one length, got "
                         f"{s.size}, {d.size}, {ct.size}, {cp.size}", source="fit_two_tissue_irreversible")
    end = float((s + d).max())
    t = np.arange(0.0, end + step_h, step_h)
    mid = s + d / 2
    cp_fine = np.interp(t, np.concatenate([[0.0], mid]), np.concatenate([[0.0], cp]))
    edges = [(np.searchsorted(t, a), max(np.searchsorted(t, a + b), np.searchsorted(t, a) + 1)) for a, b in zip(s, d)]
    average = np.zeros((s.size, t.size))  # frame averages of the fine curve as one matrix product
    for i, (a, b) in enumerate(edges):
        average[i, a:b] = 1.0 / (b - a)
    cp_cumsum = np.cumsum(cp_fine)
    w = np.sqrt(d / d.sum())
    scale = float(np.max(np.abs(ct))) or 1.0

    def model(p):
        return average @ _two_tissue_curve(cp_fine, cp_cumsum, step_h, p[0], p[1], p[2], p[3])

    def resid(p):
        return w * (model(p) - ct) / scale

    best = None
    for start in ((3.0, 6.0, 1.0, 0.05), (10.0, 20.0, 5.0, 0.1), (1.0, 1.0, 0.3, 0.02)):
        try:
            res = least_squares(resid, x0=start, bounds=([0, 0, 0, 0], [max_rate_per_h] * 3 + [1.0]))
        except (ValueError, np.linalg.LinAlgError):
            continue
        if best is None or res.cost < best.cost:
            best = res
    if best is None:
        nan = float("nan")
        return TwoTissueFit(nan, nan, nan, nan, nan, nan, False, int(s.size))
    K1, k2, k3, vb = (float(x) for x in best.x)
    ki = (1.0 - vb) * K1 * k3 / (k2 + k3) if (k2 + k3) > 0 else float("nan")
    r = model(best.x) - ct
    rmse = float(np.sqrt(np.mean(r**2)) / max(np.mean(np.abs(ct)), 1e-300))
    at_bound = any(x >= max_rate_per_h * 0.999 for x in (K1, k2, k3))
    se = (float("nan"),) * 4
    dof = s.size - 4
    if dof > 0:
        jtj = best.jac.T @ best.jac
        if np.linalg.cond(jtj) < 1e12:
            cov = np.linalg.inv(jtj) * float(2 * best.cost) / dof
            se = tuple(float(np.sqrt(max(v, 0.0))) for v in np.diag(cov))
    return TwoTissueFit(K1, k2, k3, vb, ki, rmse, bool(best.success and not at_bound), int(s.size), se)
