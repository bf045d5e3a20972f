"""Decay state of an image from its header, and the factor that brings it to acquisition time.

NM: Corrected Image (0028,0051) lists the corrections applied (``DECY`` decay, ``ATTN``
attenuation, ``SCAT`` scatter, ``DTIM`` dead time); Decay Correction (0054,1102) says to what
(``START``: acquisition start, ``ADMIN``: administration, ``NONE``). PET: Decay Correction is
the rule; Decay Factor (0054,1321) and Frame Reference Time (0054,1300) give the factor applied
and the time the values represent. Every image is brought to activity at its own
mid-acquisition time (:mod:`LuDosimetryLib.timing`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import DicomError
from ..timing import DecayState, decay_correction_factor, frame_average_decay_factor
from ..units import S_PER_H
from .dicomtags import Sourced, get_float, get_str, tag_label

__all__ = ["DecayInfo", "read_decay_info", "acquisition_time_factor", "pet_frame_factor"]


@dataclass(frozen=True)
class DecayInfo:
    """What the header says about corrections.

    Attributes
    ----------
    state : DecayState
    corrections : frozenset of str
        Corrected Image values (``DECY``, ``ATTN``, ``SCAT``, ``DTIM``, ...).
    decay_factor : float or None
        Decay Factor (0054,1321) where given (PET).
    frame_reference_ms : float or None
        Frame Reference Time (0054,1300) (ms after the series reference time).
    source : str
    """

    state: DecayState
    corrections: frozenset[str]
    decay_factor: float | None = None
    frame_reference_ms: float | None = None
    source: str = ""


def read_decay_info(ds, *, source: str, modality: str, override: Sourced | None = None) -> DecayInfo:
    """Read Corrected Image and Decay Correction, tolerating what is unambiguous.

    Parameters
    ----------
    ds : pydicom.Dataset
    source : str
    modality : {"NM", "PT"}
    override : Sourced, optional
        A decay state given by the user (sidecar or command line); it wins over the header.

    Raises
    ------
    DicomError
        ``DECY`` without a Decay Correction saying to what; Decay Correction ``NONE`` with ``DECY``;
        an unknown Decay Correction value.
    """
    ci = get_str(ds, "CorrectedImage", source=source)
    corr = frozenset(x.strip().upper() for x in ci.value.split("\\")) if ci else frozenset()
    dc = get_str(ds, "DecayCorrection", source=source)
    df = get_float(ds, "DecayFactor", source=source)
    frt = get_float(ds, "FrameReferenceTime", source=source)
    if override is not None:
        try:
            st = DecayState(str(override.value).upper())
        except ValueError:
            raise DicomError(f"override is {override.value!r} ({override.source}); expected NONE, START or ADMIN",
                             source=source, tag=tag_label("DecayCorrection")) from None
        return DecayInfo(st, corr, None, None, override.source)
    if dc is not None:
        try:
            st = DecayState(dc.value.upper())
        except ValueError:
            raise DicomError(f"is {dc.value!r}; expected NONE, START or ADMIN", source=source,
                             tag=tag_label("DecayCorrection")) from None
        if st is DecayState.ACQUISITION and "DECY" in corr:
            raise DicomError(f"is NONE but CorrectedImage (0028,0051) lists DECY ({ci.value}); cannot tell whether "
                             "the values are decay-corrected", source=source, tag=tag_label("DecayCorrection"))
        dfv = df.value if df is not None and df.value > 0 else None
        return DecayInfo(st, corr, dfv, frt.value if frt else None, dc.source)
    if "DECY" in corr:
        raise DicomError(f"is missing but CorrectedImage (0028,0051) lists DECY ({ci.value}); need START or ADMIN "
                         "to undo the decay correction (or give decay_correction in a sidecar)", source=source,
                         tag=tag_label("DecayCorrection"))
    if modality == "PT":
        raise DicomError("is missing; PET images must state NONE, START or ADMIN", source=source,
                         tag=tag_label("DecayCorrection"))
    src = (f"{ci.source}: no DECY" if ci else f"assumed NONE: neither {tag_label('CorrectedImage')} nor "
           f"{tag_label('DecayCorrection')} in {source}")
    return DecayInfo(DecayState.ACQUISITION, corr, None, None, src)


def acquisition_time_factor(info: DecayInfo, nuclide: str, *, mid_h: float, series_start_h: float,
                            reference_h: float | None = None) -> float:
    """Factor that turns stored (possibly decay-corrected) values into activity at ``mid_h``.

    Parameters
    ----------
    info : DecayInfo
    nuclide : str
    mid_h : float
        The image's (frame's) mid-acquisition time (h p.i.).
    series_start_h : float
        The START reference (series / acquisition start), h p.i.
    reference_h : float, optional
        The time the values represent before decay correction (Frame Reference Time), h p.i.
        With a Decay Factor the stored values are ``A(reference) × DecayFactor``.

    Returns
    -------
    float
        Multiply stored values by this (dimensionless).
    """
    if info.state is DecayState.ACQUISITION:
        return 1.0
    if info.decay_factor is not None and reference_h is not None:
        return decay_correction_factor(nuclide, reference_h, mid_h) / info.decay_factor
    ref = 0.0 if info.state is DecayState.ADMIN else series_start_h
    f = decay_correction_factor(nuclide, ref, mid_h)
    if not math.isfinite(f) or f <= 0:
        raise DicomError(f"decay factor {f} from {info.source} is not usable", source=info.source)
    return f


def pet_frame_factor(info: DecayInfo, nuclide: str, *, start_h: float, duration_s: float, series_start_h: float,
                     reference_h: float | None = None) -> float:
    """Factor that turns stored PET frame values into activity at mid-frame (dimensionless).

    A PET frame holds the **mean** concentration over the frame (the detector integrates), which
    equals the activity at the frame's effective time ``t_mean = t_start + τ`` with
    ``e^(−λτ) = (1 − e^(−λT)) / (λT)`` (:func:`LuDosimetryLib.timing.frame_average_decay_factor`),
    or at Frame Reference Time where the header gives it. The library holds frames at their
    mid-acquisition time (``time_h``), so

    - not decay-corrected: ``value · e^(−λ (t_mid − t_mean))``;
    - START/ADMIN with Decay Factor: ``value / DecayFactor · e^(−λ (t_mid − t_FRT))``;
    - START/ADMIN without it: ``value · e^(−λ (t_mid − t_ref))``.

    For 68Ga a 10-min frame's mean is 4.4e-4 above its mid-frame activity; for 177Lu < 1e-6.
    """
    mid_h = start_h + duration_s / 2 / S_PER_H
    if info.state is DecayState.ACQUISITION:
        if reference_h is not None:
            return decay_correction_factor(nuclide, reference_h, mid_h)
        T_h = duration_s / S_PER_H
        return decay_correction_factor(nuclide, start_h, mid_h) / frame_average_decay_factor(nuclide, T_h)
    return acquisition_time_factor(info, nuclide, mid_h=mid_h, series_start_h=series_start_h,
                                   reference_h=reference_h)
