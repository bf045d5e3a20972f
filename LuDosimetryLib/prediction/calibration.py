"""Leave-one-patient-out (LOPO) calibration of a prediction scale factor on a cohort.

A factor fitted on the same patients it is applied to makes the prediction look better than it
is. Each patient's factor is estimated from **the other patients only**: the geometric mean of
measured/predicted over their regions (the log-ratio mean, robust to the orders of magnitude
doses span), so a patient's own measured doses never influence its own factor.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError

__all__ = ["lopo_scale_factors", "apply_lopo"]


def lopo_scale_factors(predicted, measured, patients) -> dict[str, float]:
    """Per-patient scale factor k_p = exp(mean over other patients' regions of ln(measured/predicted)).

    Parameters
    ----------
    predicted, measured : array_like
        Paired doses (Gy or Gy/GBq, > 0), one per region and patient (one region group at a time).
    patients : array_like of str
        Patient of each pair.

    Returns
    -------
    dict
        Patient → factor to multiply that patient's predictions by.

    Raises
    ------
    InputError
        Unequal lengths, non-positive values, fewer than 2 patients.
    """
    x = np.asarray(predicted, dtype=float).ravel()
    y = np.asarray(measured, dtype=float).ravel()
    pid = np.asarray(patients).astype(str).ravel()
    if not (x.size == y.size == pid.size):
        raise InputError(f"predicted, measured and patients differ in length: {x.size}, {y.size}, {pid.size}",
                         source="lopo_scale_factors")
    if np.any(~np.isfinite(x) | ~np.isfinite(y)) or np.any(x <= 0) or np.any(y <= 0):
        raise InputError("doses must be finite and > 0 for a log-ratio factor", source="lopo_scale_factors")
    names = list(dict.fromkeys(pid.tolist()))
    if len(names) < 2:
        raise InputError(f"need at least 2 patients for leave-one-patient-out, got {len(names)}",
                         source="lopo_scale_factors")
    lr = np.log(y / x)
    return {p: float(np.exp(lr[pid != p].mean())) for p in names}


def apply_lopo(predicted, measured, patients) -> np.ndarray:
    """Predictions multiplied by their patient's LOPO factor (same order as the input)."""
    f = lopo_scale_factors(predicted, measured, patients)
    pid = np.asarray(patients).astype(str).ravel()
    return np.asarray(predicted, dtype=float).ravel() * np.array([f[p] for p in pid])
