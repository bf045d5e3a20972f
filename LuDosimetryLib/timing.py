"""Time and decay state: the conventions every stage shares.

Time
    Every time inside the library is in hours post injection (``time_h``) of the administration
    of the cycle the image belongs to. The time of a SPECT bed, a PET bed or a PET frame is its
    **mid-acquisition** time: ``acquisition start + duration / 2 − injection``. For 177Lu
    (T½ = 159.5 h) the activity at mid-acquisition equals the mean activity over a 30-min bed to
    better than 1e-6 (relative), so the two need not be told apart. For short-lived PET nuclides
    over long frames they differ; :func:`frame_average_decay_factor` gives the exact factor.

Decay state
    Images are held **at acquisition time**: the value of a voxel is the activity concentration
    (Bq/mL) present at that bed's (or frame's) own mid-acquisition time, *not* decay-corrected to
    injection or to the series start. Ingest brings every image to this state from whatever the
    file says (:class:`DecayState`); the kinetics fit the physical + biological curve, and the
    physical decay is therefore inside every fitted effective rate.
"""

from __future__ import annotations

import enum
import math
from datetime import datetime, timedelta

import numpy as np

from .errors import ConsistencyError, InputError
from .nuclides import Nuclide, get_nuclide
from .units import S_PER_H

__all__ = ["DecayState", "hours_between", "mid_acquisition_time_h", "decay_correction_factor",
           "to_acquisition_time", "frame_average_decay_factor", "check_times_increasing"]


class DecayState(enum.StrEnum):
    """Reference time to which image values are decay-corrected.

    Values follow DICOM Decay Correction (0054,1102) where one exists.
    """

    #: Not decay-corrected: values are activity at the image's own mid-acquisition time
    #: (DICOM ``NONE``; SPECT without ``DECY`` in Corrected Image). The library's internal state.
    ACQUISITION = "NONE"
    #: Decay-corrected to the acquisition (series) start time (DICOM ``START``).
    START = "START"
    #: Decay-corrected to the administration (injection) time (DICOM ``ADMIN``).
    ADMIN = "ADMIN"


def hours_between(start: datetime, end: datetime) -> float:
    """Signed time from ``start`` to ``end`` in hours.

    Both must be naive or both timezone-aware; crossing midnight or a date change is handled by
    the datetimes themselves.
    """
    if (start.tzinfo is None) != (end.tzinfo is None):
        raise InputError("cannot compare a timezone-aware with a naive datetime "
                         f"({start.isoformat()} vs {end.isoformat()})", source="datetime")
    return (end - start) / timedelta(hours=1)


def mid_acquisition_time_h(acquisition_start: datetime, duration_s: float, injection: datetime) -> float:
    """Mid-acquisition time in hours post injection.

    Parameters
    ----------
    acquisition_start : datetime
        Start of the bed or frame.
    duration_s : float
        Acquisition duration (s), ≥ 0.
    injection : datetime
        Injection (administration) datetime.

    Returns
    -------
    float
        ``(acquisition_start − injection) + duration_s / 2`` in h.
    """
    if not math.isfinite(duration_s) or duration_s < 0:
        raise InputError(f"acquisition duration must be a finite number ≥ 0 s, got {duration_s}",
                         source="duration_s")
    return hours_between(injection, acquisition_start) + duration_s / 2.0 / S_PER_H


def decay_correction_factor(nuclide: Nuclide | str, from_h: float, to_h: float) -> float:
    """Factor that turns activity at time ``from_h`` into activity at time ``to_h`` (physical decay).

    ``A(to) = A(from) · exp(−λ (to − from))``. Times in h (any common origin).
    """
    nuc = get_nuclide(nuclide) if isinstance(nuclide, str) else nuclide
    return math.exp(-nuc.decay_constant_per_h * (to_h - from_h))


def frame_average_decay_factor(nuclide: Nuclide | str, duration_h: float) -> float:
    """Mean activity over a frame divided by the activity at its start (dimensionless).

    ``(1 − e^(−λT)) / (λT)`` for a frame of duration ``T`` (h); 1 for ``T = 0``.
    """
    nuc = get_nuclide(nuclide) if isinstance(nuclide, str) else nuclide
    x = nuc.decay_constant_per_h * duration_h
    return 1.0 if x == 0 else -math.expm1(-x) / x


def to_acquisition_time(values: np.ndarray | float, state: DecayState | str, nuclide: Nuclide | str, *,
                        time_h: float, series_start_h: float | None = None) -> np.ndarray | float:
    """Bring decay-corrected values back to activity at the image's own acquisition time.

    Parameters
    ----------
    values : array_like or float
        Activity or concentration (Bq or Bq/mL) in decay state ``state``.
    state : DecayState or str
        What the values are corrected to (``"NONE"``, ``"START"``, ``"ADMIN"``).
    nuclide : Nuclide or str
        The nuclide whose physical decay applies.
    time_h : float
        The image's mid-acquisition time (h p.i.).
    series_start_h : float, optional
        Series (acquisition) start (h p.i.); required for ``START``.

    Returns
    -------
    array or float
        Values at ``time_h``, same type as ``values`` (a new array; the input is not modified).
    """
    st = DecayState(state)
    if st is DecayState.ACQUISITION:
        ref = time_h
    elif st is DecayState.ADMIN:
        ref = 0.0
    else:
        if series_start_h is None:
            raise InputError("decay state START needs the series start time", source="series_start_h")
        ref = series_start_h
    factor = decay_correction_factor(nuclide, ref, time_h)
    if np.ndim(values):
        return np.asarray(values) * np.asarray(factor, dtype=np.asarray(values).dtype)
    return float(values) * factor


def check_times_increasing(times_h: list[float] | np.ndarray, *, source: str = "time_h") -> None:
    """Raise unless times are finite, ≥ 0 h p.i. and strictly increasing."""
    t = np.asarray(times_h, dtype=float)
    if t.size and (not np.all(np.isfinite(t)) or np.any(t < 0)):
        raise InputError(f"times must be finite and ≥ 0 h post injection, got {t.tolist()}", source=source)
    if t.size > 1 and np.any(np.diff(t) <= 0):
        raise ConsistencyError(f"times must be strictly increasing (no duplicates), got {t.tolist()}",
                               source=source)
