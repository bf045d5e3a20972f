"""Decay handling of the prediction: 68Ga values → biological uptake, once; 177Lu decay added, once.

Two types keep the two corrections apart so neither can be applied twice:

- :class:`PetTac`: a region's PET values as stored (Bq/mL), with the decay state they are in
  (:class:`~LuDosimetryLib.timing.DecayState`: NONE = at acquisition time, the library's
  convention; START; ADMIN). A decay state that is not known is an error.
- :class:`BiologicalTac`: the same region as a *biological* uptake: concentration decay-corrected
  to the injection with λ(68Ga), divided by the injected activity (fraction of injected activity
  per mL). Produced only by :func:`to_biological`, which refuses a :class:`BiologicalTac`.

The predicted 177Lu curve is built from biological rates and gets λ(177Lu) added exactly once
(:func:`LuDosimetryLib.prediction.uptake.lu177_curve`).

Frame values. The library holds a frame at its mid-frame time (docs/conventions.md). A value that
is the *frame average* of a decaying activity (as scanners reconstruct it) equals the activity at
the frame reference time t_FRT = t_start − ln(f)/λ, f = (1 − e^(−λT))/(λT), slightly before
mid-frame; ``frame_values="frame_average"`` uses t_FRT, ``"mid_frame"`` (default) uses the
mid-frame time. For a 10-min 68Ga frame the two differ by ≈ (λT)²/24 ≈ 4e-4 (docs/dicom_layouts.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from ..nuclides import get_nuclide
from ..timing import DecayState, frame_average_decay_factor, to_acquisition_time

__all__ = ["PetTac", "BiologicalTac", "to_biological", "parse_decay_state", "FRAME_VALUE_MODES",
           "frame_reference_times_h"]

FRAME_VALUE_MODES = ("mid_frame", "frame_average")


def parse_decay_state(state, *, source: str = "decay_state") -> DecayState:
    """A :class:`DecayState` from a DecayState or its DICOM spelling; error if unknown or missing.

    Raises
    ------
    InputError
        ``None``, empty or anything but NONE/START/ADMIN: the PET's decay correction cannot be
        determined, so neither the 68Ga correction nor its absence can be trusted.
    """
    if isinstance(state, DecayState):
        return state
    text = "" if state is None else str(state).strip().upper()
    try:
        return DecayState(text)
    except ValueError:
        raise InputError(f"the PET's decay correction cannot be determined (got {state!r}); expected NONE "
                         "(values at acquisition time), START (decay-corrected to the series start) or ADMIN "
                         "(to the injection); give it in the sidecar/DecayCorrection (0054,1102) or as decay_state",
                         source=source) from None


@dataclass(frozen=True)
class PetTac:
    """Mean PET concentration of one region per frame, as stored.

    Attributes
    ----------
    region, kind : str
    start_h, duration_h : numpy.ndarray
        Frame starts (h p.i. of the PET tracer) and durations (h).
    conc_Bq_per_mL : numpy.ndarray
        Mean concentration (Bq/mL) per frame, in ``decay_state``.
    decay_state : DecayState
    series_start_h : float or None
        Series start (h p.i.), needed for START.
    frame_source : tuple of str
        ``"dynamic"`` or ``"static"`` per frame.
    nuclide : str
        The PET nuclide (``"Ga-68"``).
    frame_values : {"mid_frame", "frame_average"}
    volume_mL : float
        Region volume used for the mean (mL).
    flags : tuple of str
    """

    region: str
    kind: str
    start_h: np.ndarray
    duration_h: np.ndarray
    conc_Bq_per_mL: np.ndarray
    decay_state: DecayState
    series_start_h: float | None = None
    frame_source: tuple[str, ...] = ()
    nuclide: str = "Ga-68"
    frame_values: str = "mid_frame"
    volume_mL: float = float("nan")
    flags: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        object.__setattr__(self, "decay_state", parse_decay_state(self.decay_state, source=f"PET region {self.region}"))
        arrs = [np.atleast_1d(np.asarray(a, dtype=float)) for a in (self.start_h, self.duration_h, self.conc_Bq_per_mL)]
        if len({a.shape for a in arrs}) != 1:
            raise InputError(f"start_h, duration_h and conc_Bq_per_mL differ in length: {[a.size for a in arrs]}",
                             source=f"PET region {self.region}")
        for name, a in zip(("start_h", "duration_h", "conc_Bq_per_mL"), arrs):
            if not np.all(np.isfinite(a)):
                raise InputError(f"{name} holds non-finite values", source=f"PET region {self.region}")
        if np.any(arrs[1] < 0) or np.any(arrs[0] < 0):
            raise InputError("frame starts and durations must be ≥ 0 h", source=f"PET region {self.region}")
        for name, a in zip(("start_h", "duration_h", "conc_Bq_per_mL"), arrs):
            a.setflags(write=False)
            object.__setattr__(self, name, a)
        if self.frame_values not in FRAME_VALUE_MODES:
            raise InputError(f"frame_values must be one of {FRAME_VALUE_MODES}, got {self.frame_values!r}",
                             source="frame_values")
        if not self.frame_source:
            object.__setattr__(self, "frame_source", ("dynamic",) * arrs[0].size)
        if self.decay_state is DecayState.START and self.series_start_h is None:
            raise InputError("decay state START needs the series start time (h p.i.)",
                             source=f"PET region {self.region}")

    @property
    def mid_time_h(self) -> np.ndarray:
        return self.start_h + self.duration_h / 2


@dataclass(frozen=True)
class BiologicalTac:
    """A region's biological uptake: concentration decay-corrected to injection / injected activity.

    Attributes
    ----------
    region, kind : str
    time_h : numpy.ndarray
        Time each value belongs to (h p.i.): mid-frame, or the frame reference time.
    fraction_per_mL : numpy.ndarray
        Fraction of the injected activity per mL (mL⁻¹), decay-corrected to injection.
    frame_source : tuple of str
    volume_mL : float
    flags : tuple of str
    start_h, duration_h : numpy.ndarray or None
        Frame starts (h p.i.) and durations (h), for models that average over frames.
    """

    region: str
    kind: str
    time_h: np.ndarray
    fraction_per_mL: np.ndarray
    frame_source: tuple[str, ...]
    volume_mL: float
    flags: tuple[str, ...] = ()
    start_h: np.ndarray | None = None
    duration_h: np.ndarray | None = None


def frame_reference_times_h(start_h, duration_h, nuclide: str, frame_values: str) -> np.ndarray:
    """Time (h p.i.) at which each frame's value is the instantaneous activity.

    ``mid_frame``: start + T/2. ``frame_average``: t_FRT = start − ln(f)/λ with
    f = (1 − e^(−λT))/(λT) (:func:`~LuDosimetryLib.timing.frame_average_decay_factor`).
    """
    s = np.asarray(start_h, dtype=float)
    d = np.asarray(duration_h, dtype=float)
    if frame_values == "mid_frame":
        return s + d / 2
    lam = get_nuclide(nuclide).decay_constant_per_h
    f = np.array([frame_average_decay_factor(nuclide, float(x)) for x in np.ravel(d)]).reshape(d.shape)
    return s - np.log(f) / lam


def to_biological(tac: PetTac, injected_activity_Bq: float) -> BiologicalTac:
    """Biological uptake of a region: values brought to acquisition time, then × e^(λ t) / A0.

    One path for every decay state: :func:`~LuDosimetryLib.timing.to_acquisition_time` undoes
    whatever the values were corrected to (NONE: nothing; START: to the series start; ADMIN: to
    injection), then the 68Ga decay from injection to the frame time is corrected once. For ADMIN
    the two factors cancel exactly.

    Parameters
    ----------
    tac : PetTac
    injected_activity_Bq : float
        Net injected activity of the PET tracer at injection (Bq).

    Raises
    ------
    InputError
        If ``tac`` is already biological, or the activity is not positive.
    """
    if isinstance(tac, BiologicalTac):
        raise InputError("already decay-corrected to injection (biological); correcting it again would apply "
                         "the 68Ga decay twice", source=f"PET region {tac.region}")
    if not (math.isfinite(injected_activity_Bq) and injected_activity_Bq > 0):
        raise InputError(f"must be a positive activity in Bq, got {injected_activity_Bq}",
                         source="injected_activity_Bq")
    nuc = get_nuclide(tac.nuclide)
    t_ref = frame_reference_times_h(tac.start_h, tac.duration_h, nuc.name, tac.frame_values)
    at_acq = np.array([to_acquisition_time(float(v), tac.decay_state, nuc, time_h=float(t),
                                           series_start_h=tac.series_start_h)
                       for v, t in zip(tac.conc_Bq_per_mL, t_ref)])
    bio = at_acq * np.exp(nuc.decay_constant_per_h * t_ref) / injected_activity_Bq
    return BiologicalTac(tac.region, tac.kind, t_ref, bio, tac.frame_source, tac.volume_mL, tac.flags,
                         tac.start_h, tac.duration_h)
