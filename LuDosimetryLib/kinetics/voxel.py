"""Voxel-wise time-integrated activity, vectorised over all voxels (no per-voxel Python loop).

Input: activity maps A_j (Bq per voxel, held at acquisition time, all on one grid) at times t_j
(h p.i.; one time per map, or a per-voxel time map per map where beds differ in time).
Voxels are processed in chunks of ``chunk_size`` (a loop over chunks, not voxels) to bound memory.

Methods
-------
``"hybrid"`` (default)
    Trapezoid from A(0) = 0 to the first point, then a mono-exponential fitted in closed form
    (weighted log-linear least squares, weights wⱼ = Aⱼ, the Poisson-like variance of ln A) to
    all points and integrated from the first point to ∞:
    TIA = A₁t₁/2 + Â₀ e^(−λt₁)/λ. Where the first points are zero (activity that appears only
    at a later timepoint k, e.g. at a field-of-view or body edge after motion), the trapezoid runs
    through the measured points up to t_k and the exponential is integrated from t_k: the fit is
    never extrapolated back over times where the voxel held no activity.
``"mono"``
    The same log-linear mono-exponential integrated from 0: TIA = Â₀/λ.
``"gauss_newton"``
    The weighted non-linear least-squares mono-exponential of :func:`.fitting.fit_tac`
    (``models=("mono",)`` with Poisson-like weights σ² ∝ A, first on the data and then on the
    fitted curve), solved by a vectorised Levenberg–Marquardt on all voxels at once, started from
    the log-linear solution; TIA = Â₀/λ. On a uniform region it equals the region fit.
``"trapezoid"``
    Trapezoid (A(0) = 0) through the points and a physical-decay tail A_n/λp.

Every effective rate is constrained to λ ≥ λp (the constrained least-squares solution: where the
free optimum has λ < λp, λ = λp and the amplitude is re-optimised).

Rules for voxels that cannot be fitted (documented, tested)
----------------------------------------------------------
* outside ``mask`` → 0;
* any non-finite value (NaN, inf) at any time → 0, counted as ``nonfinite``;
* negative values are noise in low-count voxels: set to 0 for the trapezoid parts and left out
  of the log-linear fit (``negative`` counts voxels with any);
* all values ≤ 0 → 0 (``zero``);
* values below 1e-6 of the voxel's largest value → 0 (resampling round-off, not activity);
* fewer than 2 positive points → trapezoid with a physical tail (``too_few_positive``);
* hybrid: a fitted curve whose value at its first point exceeds 3× the voxel's largest measured
  value (a fit the data do not support) → trapezoid with a physical tail (``unsupported_fit``);
* increasing or flatter than physical decay (free λ < λp) → λ = λp (``at_physical_limit``).

Output: float32 TIA (Bq·h per voxel).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import ConsistencyError, InputError
from ..nuclides import get_nuclide
from ..timing import check_times_increasing
from . import curves

__all__ = ["voxel_tia", "VoxelTiaReport", "VOXEL_METHODS"]

VOXEL_METHODS = ("hybrid", "mono", "gauss_newton", "trapezoid")
#: Values below this fraction of a voxel's largest value are taken as zero (resampling round-off).
_RELATIVE_FLOOR = 1e-6
#: Hybrid: a fitted curve starting above this multiple of the voxel's largest measured value falls
#: back to the trapezoid with a physical tail (``unsupported_fit``); the region fits use the same rule.
_MAX_START_FACTOR = curves.MAX_START_FACTOR


@dataclass(frozen=True)
class VoxelTiaReport:
    """Counts of voxels handled by each fallback rule (see module docstring)."""

    n_voxels: int
    nonfinite: int
    negative: int
    zero: int
    too_few_positive: int
    at_physical_limit: int
    unsupported_fit: int = 0


def _loglinear(t: np.ndarray, y: np.ndarray, lam_p: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted log-linear mono fit per column. t, y: (n, N). Returns (ln A0, λ, at_bound)."""
    pos = y > 0
    w = np.where(pos, y, 0.0)
    ly = np.log(np.where(pos, y, 1.0))
    sw = w.sum(0)
    sw_safe = np.where(sw > 0, sw, 1.0)
    tm = (w * t).sum(0) / sw_safe
    lm = (w * ly).sum(0) / sw_safe
    dt = t - tm
    stt = (w * dt * dt).sum(0)
    slope = np.where(stt > 0, (w * dt * (ly - lm)).sum(0) / np.where(stt > 0, stt, 1.0), 0.0)
    lam = -slope
    at_bound = lam < lam_p
    lam = np.clip(lam, lam_p, curves.RATE_MAX_PER_H)
    c = lm + lam * tm  # weighted mean of ln y + λ t: the optimum intercept for any fixed λ
    return c, lam, at_bound


def _gauss_newton(t: np.ndarray, y: np.ndarray, c: np.ndarray, lam: np.ndarray, lam_p: float,
                  iterations: int = 15) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vectorised LM for y ≈ exp(c − λ t), σ² ∝ max(A, 1e-3·max y): data weights, then fit weights."""
    floor = 1e-3 * np.max(y, axis=0)
    var = np.maximum(y, floor)
    for stage in range(2):
        w = 1.0 / var
        mu = np.full(c.shape, 1e-3)

        def cost(c_, l_, w=w):
            f = np.exp(c_ - l_ * t)
            return (w * (y - f) ** 2).sum(0)

        s = cost(c, lam)
        for _ in range(iterations):
            f = np.exp(c - lam * t)
            r = y - f
            jc, jl = f, -t * f  # ∂f/∂c, ∂f/∂λ
            a11, a12, a22 = (w * jc * jc).sum(0), (w * jc * jl).sum(0), (w * jl * jl).sum(0)
            g1, g2 = (w * jc * r).sum(0), (w * jl * r).sum(0)
            a11d, a22d = a11 * (1 + mu), a22 * (1 + mu)
            det = a11d * a22d - a12 * a12
            det = np.where(np.abs(det) > 0, det, 1.0)
            dc = (a22d * g1 - a12 * g2) / det
            dl = (a11d * g2 - a12 * g1) / det
            c_new = c + dc
            l_new = np.clip(lam + dl, lam_p, curves.RATE_MAX_PER_H)
            s_new = cost(c_new, l_new)
            ok = s_new <= s
            c, lam, s = np.where(ok, c_new, c), np.where(ok, l_new, lam), np.where(ok, s_new, s)
            mu = np.where(ok, mu * 0.3, mu * 10.0)
        # Constrained optimum where λ sits on the bound: amplitude re-optimised at λ = λp.
        at = lam <= lam_p * (1 + 1e-9)
        g = np.exp(-lam_p * t)
        a0 = (w * y * g).sum(0) / np.maximum((w * g * g).sum(0), 1e-300)
        c = np.where(at & (a0 > 0), np.log(np.where(a0 > 0, a0, 1.0)), c)
        if stage == 0:
            var = np.maximum(np.exp(c - lam * t), floor)
    return c, lam, lam <= lam_p * (1 + 1e-9)


def _trapezoid_part(t: np.ndarray, y: np.ndarray, upto: int) -> np.ndarray:
    """∫ from 0 (A(0) = 0) to t[upto] of the piecewise-linear curve through the points."""
    total = 0.5 * y[0] * t[0]
    for j in range(upto):  # over timepoints (≤ a handful), not voxels
        total = total + 0.5 * (y[j] + y[j + 1]) * (t[j + 1] - t[j])
    return total


def voxel_tia(activity_maps: Sequence[np.ndarray], times_h: Sequence[float] | None = None, *,
              nuclide: str = "Lu-177", time_maps_h: Sequence[np.ndarray] | None = None,
              mask: np.ndarray | None = None, method: str = "hybrid", chunk_size: int = 1 << 20,
              return_report: bool = False,
              progress: Callable[[float, str], None] | None = None) -> np.ndarray | tuple[np.ndarray, VoxelTiaReport]:
    """Voxel-wise TIA (Bq·h per voxel), float32.

    Parameters
    ----------
    activity_maps : sequence of ndarray
        Activity per voxel (Bq) at each timepoint, same shape, at acquisition time.
    times_h : sequence of float, optional
        Time (h p.i.) of each map; strictly increasing. Required unless ``time_maps_h`` is given.
    nuclide : str
        Physical decay constant λp bounding every effective rate.
    time_maps_h : sequence of ndarray, optional
        Per-voxel times (h p.i.) of each map (beds acquired at different times); must increase
        from map to map in every voxel.
    mask : ndarray of bool, optional
        Voxels to compute; others are 0.
    method : {"hybrid", "mono", "gauss_newton", "trapezoid"}
    chunk_size : int
        Voxels per chunk.
    return_report : bool
        Also return a :class:`VoxelTiaReport`.
    progress : callable, optional

    Returns
    -------
    ndarray (float32), or (ndarray, VoxelTiaReport)

    Raises
    ------
    InputError
        No maps, unknown method, shapes differ, missing times.
    ConsistencyError
        Times not strictly increasing, or number of times ≠ number of maps.
    """
    if method not in VOXEL_METHODS:
        raise InputError(f"unknown method {method!r} (expected one of {', '.join(VOXEL_METHODS)})", source="method")
    maps = [np.asarray(m) for m in activity_maps]
    if not maps:
        raise InputError("no activity maps given; need ≥ 1", source="activity_maps")
    shape = maps[0].shape
    if any(m.shape != shape for m in maps):
        raise InputError(f"activity maps differ in shape: {[m.shape for m in maps]}", source="activity_maps")
    n = len(maps)
    if time_maps_h is not None:
        tmaps = [np.asarray(m, dtype=float) for m in time_maps_h]
        if len(tmaps) != n or any(m.shape != shape for m in tmaps):
            raise ConsistencyError(f"need {n} time maps of shape {shape}, got "
                                   f"{[m.shape for m in tmaps]}", source="time_maps_h")
    elif times_h is None:
        raise InputError("give times_h (one per map) or time_maps_h", source="times_h")
    else:
        tv = np.asarray(times_h, dtype=float).ravel()
        if tv.size != n:
            raise ConsistencyError(f"{tv.size} times for {n} maps", source="times_h")
        check_times_increasing(tv, source="times_h")
        tmaps = None
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != shape:
            raise InputError(f"mask shape {mask.shape} differs from the maps' {shape}", source="mask")
    lam_p = get_nuclide(nuclide).decay_constant_per_h
    size = int(np.prod(shape))
    out = np.zeros(size, dtype=np.float32)
    idx_all = np.flatnonzero(mask.ravel()) if mask is not None else None
    total = size if idx_all is None else idx_all.size
    counts = dict(nonfinite=0, negative=0, zero=0, too_few_positive=0, at_physical_limit=0, unsupported_fit=0)
    flat = [m.reshape(-1) for m in maps]
    tflat = None if tmaps is None else [m.reshape(-1) for m in tmaps]
    for start in range(0, total, chunk_size):
        sel = slice(start, min(start + chunk_size, total)) if idx_all is None else idx_all[start:start + chunk_size]
        y = np.stack([f[sel] for f in flat]).astype(np.float64)
        if tflat is None:
            t = np.broadcast_to(tv[:, None], y.shape)
        else:
            t = np.stack([f[sel] for f in tflat])
            bad_t = ~np.all(np.isfinite(t), axis=0) | np.any(np.diff(t, axis=0) <= 0, axis=0) | np.any(t < 0, axis=0)
            if bad_t.any():
                raise ConsistencyError(f"time maps must be finite, ≥ 0 and strictly increasing in every voxel; "
                                       f"{int(bad_t.sum())} voxels are not", source="time_maps_h")
        tia = _chunk(t, y, lam_p, method, counts)
        out[sel] = tia
        if progress is not None:
            progress(min(1.0, (start + chunk_size) / max(total, 1)), "voxel TIA")
    result = out.reshape(shape)
    if return_report:
        return result, VoxelTiaReport(n_voxels=total, **counts)
    return result


def _chunk(t: np.ndarray, y: np.ndarray, lam_p: float, method: str, counts: dict) -> np.ndarray:
    n = y.shape[0]
    finite = np.all(np.isfinite(y), axis=0)
    counts["nonfinite"] += int((~finite).sum())
    y = np.where(finite, y, 0.0)
    neg = np.any(y < 0, axis=0)
    counts["negative"] += int(neg.sum())
    y = np.maximum(y, 0.0)
    # values below 1e-6 of the voxel's maximum are resampling round-off (e.g. 1e-26 Bq beside 44 Bq
    # after interpolation): zero, so they neither count as points nor steer the log-linear fit
    y = np.where(y < _RELATIVE_FLOOR * y.max(axis=0), 0.0, y)
    npos = (y > 0).sum(0)
    zero = npos == 0
    counts["zero"] += int((zero & finite).sum())
    few = (npos < 2) & ~zero
    counts["too_few_positive"] += int((few & finite).sum())
    trap_phys = _trapezoid_part(t, y, n - 1) + y[-1] / lam_p
    if method == "trapezoid" or n < 2:
        tia = trap_phys
    else:
        c, lam, at = _loglinear(t, y, lam_p)
        if method == "gauss_newton":
            c, lam, at = _gauss_newton(t, y, c, lam, lam_p)
        counts["at_physical_limit"] += int((at & ~few & ~zero & finite).sum())
        if method == "hybrid":
            # trapezoid up to the first positive point, then the fitted exponential from there: a voxel
            # whose activity appears late (zeros first) is not back-extrapolated to the early times
            first = np.argmax(y > 0, axis=0)
            tia = _trapezoid_part(t, y, 0) + np.exp(c - lam * t[0]) / lam
            start_value = np.exp(c - lam * t[0])
            for k in range(1, n):  # over timepoints (a handful), not voxels
                at_k = first == k
                if np.any(at_k):
                    late = _trapezoid_part(t, y, k) + np.exp(c - lam * t[k]) / lam
                    tia = np.where(at_k, late, tia)
                    start_value = np.where(at_k, np.exp(c - lam * t[k]), start_value)
            # a fit that starts far above every measured value is not supported by the data
            wild = start_value > _MAX_START_FACTOR * y.max(axis=0)
            counts["unsupported_fit"] += int((wild & ~few & ~zero).sum())
            tia = np.where(wild, trap_phys, tia)
        else:
            tia = np.exp(c) / lam
        tia = np.where(few, trap_phys, tia)
    tia = np.where(zero | ~finite, 0.0, tia)
    return tia.astype(np.float32)
