"""SPECT quantification: reconstructed counts to activity concentration (Bq/mL).

For a bed acquired for ``T`` seconds (frame duration × projections per detector, summed over
rotations) with a system sensitivity ``S`` (cps/MBq, from the calibration store, keyed on
:meth:`LuDosimetryLib.model.Camera.key`), a voxel holding ``C`` reconstructed counts contains

    A = C / T / S · f_DT   (MBq),   c = A · 10⁶ / V_voxel   (Bq/mL),

where ``f_DT = n / m`` is the paralysable dead-time correction. The count rate ``m`` it uses is
the **observed whole-field count rate of the bed, m = (Σ reconstructed counts) / T (cps)**, the
same quantity on which the calibration measures τ (the store's ``dead_time_s``); a rate measured
otherwise (e.g. from the projections) can be given as ``count_rate_cps`` in a sidecar. Solving
the paralysable model ``m = n·e^(−nτ)`` for the true rate:

    n = −W₀(−mτ) / τ,

with W₀ the principal branch of the Lambert W function (valid for ``mτ ≤ 1/e``, the peak of the
paralysable curve; beyond it the true rate cannot be recovered and the bed is refused).
Reference: Knoll, *Radiation Detection and Measurement*, 4th ed., §4.VII (paralysable model);
Corless et al., "On the Lambert W function", Adv. Comput. Math. 5 (1996) 329–359,
doi:10.1007/BF02124750.

Images already in Bq/mL (``Units`` (0054,1001) ``BQML`` or a Real World Value Mapping in Bq/ml)
are taken as they are; no calibration is applied to them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import DicomError, InputError
from ..units import BQ_PER_MBQ, ML_PER_MM3
from .dicomtags import Sourced, first_item, get_float, get_str, tag_label

__all__ = ["paralysable_true_rate_cps", "dead_time_factor", "counts_to_Bq_per_mL", "nm_acquisition_duration_s",
           "PixelUnits", "pixel_units", "TYPICAL_SENSITIVITY_CPS_PER_MBQ", "check_sensitivity", "voxel_volume_mL"]

#: Range of SPECT/CT system sensitivities for 177Lu (cps/MBq, 208 keV window, MEGP/MELP) seen in
#: practice; a factor outside it is flagged for a physicist's look (not refused).
TYPICAL_SENSITIVITY_CPS_PER_MBQ = (2.0, 40.0)


def paralysable_true_rate_cps(measured_cps: float | np.ndarray, tau_s: float) -> float | np.ndarray:
    """True count rate n (cps) of a paralysable detector that records ``measured_cps``.

    Solves ``m = n·exp(−n·τ)`` on the low-rate branch: ``n = −W₀(−m·τ)/τ``.

    Parameters
    ----------
    measured_cps : float or array
        Observed count rate m (cps), ≥ 0.
    tau_s : float
        Paralysable dead time τ (s), ≥ 0 (0: no correction).

    Raises
    ------
    InputError
        If ``m·τ > 1/e`` (beyond the peak of the paralysable response) or inputs are negative.
    """
    from scipy.special import lambertw

    m = np.asarray(measured_cps, dtype=float)
    if not (math.isfinite(tau_s) and tau_s >= 0):
        raise InputError(f"must be finite and ≥ 0 s, got {tau_s}", source="dead_time_s")
    if np.any(~np.isfinite(m)) or np.any(m < 0):
        raise InputError(f"count rate must be finite and ≥ 0 cps, got {m.tolist()}", source="count_rate_cps")
    if tau_s == 0:
        return float(m) if m.ndim == 0 else m.copy()
    x = m * tau_s
    if np.any(x > 1 / math.e):
        raise InputError(f"count rate {float(np.max(m)):.4g} cps × dead time {tau_s:.4g} s = {float(np.max(x)):.4g} "
                         f"exceeds 1/e: beyond the peak of the paralysable model, the true rate cannot be recovered",
                         source="count_rate_cps")
    n = -np.real(lambertw(-x, 0)) / tau_s
    return float(n) if n.ndim == 0 else n


def dead_time_factor(measured_cps: float, tau_s: float) -> float:
    """Dead-time correction factor n/m ≥ 1 (dimensionless); 1 for m = 0 or τ = 0."""
    if measured_cps == 0 or tau_s == 0:
        return 1.0
    return paralysable_true_rate_cps(measured_cps, tau_s) / measured_cps


def counts_to_Bq_per_mL(counts: np.ndarray, *, duration_s: float, sensitivity_cps_per_MBq: float,
                        voxel_volume_mL: float, dead_time_correction: float = 1.0) -> np.ndarray:
    """Activity concentration (Bq/mL, float32) from reconstructed counts per voxel.

    ``c = counts / duration_s / sensitivity_cps_per_MBq · dead_time_correction · 1e6 / voxel_volume_mL``.
    """
    for name, v in (("duration_s", duration_s), ("sensitivity_cps_per_MBq", sensitivity_cps_per_MBq),
                    ("voxel_volume_mL", voxel_volume_mL), ("dead_time_correction", dead_time_correction)):
        if not (math.isfinite(v) and v > 0):
            raise InputError(f"must be finite and > 0, got {v}", source=name)
    scale = dead_time_correction * BQ_PER_MBQ / (duration_s * sensitivity_cps_per_MBq * voxel_volume_mL)
    return (np.asarray(counts, dtype=np.float64) * scale).astype(np.float32)


def voxel_volume_mL(spacing_mm) -> float:
    """Volume of a voxel (mL) from its spacing (mm)."""
    return float(np.prod(spacing_mm)) * ML_PER_MM3


def nm_acquisition_duration_s(ds, *, source: str) -> Sourced:
    """Acquisition duration of an NM tomo bed (s).

    ``Σ over RotationInformationSequence items of ActualFrameDuration (ms) × NumberOfFramesInRotation
    / 1000``: the time each detector spends acquiring (projections per detector × time per
    projection), over every rotation.

    Raises
    ------
    DicomError
        If the sequence or either attribute is missing or not positive.
    """
    seq = ds.get("RotationInformationSequence", None)
    if not seq:
        raise DicomError("is missing; need ActualFrameDuration and NumberOfFramesInRotation for the acquisition "
                         "duration (or give duration_s in a sidecar)", source=source,
                         tag=tag_label("RotationInformationSequence"))
    total = 0.0
    for i, item in enumerate(seq):
        where = f"RotationInformationSequence[{i}]/"
        fd = get_float(item, "ActualFrameDuration", source=source, where=where)
        nf = get_float(item, "NumberOfFramesInRotation", source=source, where=where)
        for kw, v in (("ActualFrameDuration", fd), ("NumberOfFramesInRotation", nf)):
            if v is None or not v.value > 0:
                raise DicomError(f"in {where[:-1]} is {None if v is None else v.value}; expected > 0 (needed for the "
                                 "acquisition duration)", source=source, tag=tag_label(kw))
        total += fd.value * nf.value / 1000.0
    return Sourced(total, f"DICOM {tag_label('ActualFrameDuration')} × {tag_label('NumberOfFramesInRotation')} "
                          f"over {len(seq)} rotation(s) in {source}")


@dataclass(frozen=True)
class PixelUnits:
    """What stored pixel values mean.

    Attributes
    ----------
    quantity : {"counts", "Bq/mL"}
    slope, intercept : float
        ``value = slope · stored + intercept`` in ``quantity``.
    source : str
    """

    quantity: str
    slope: float
    intercept: float
    source: str


_BQML_CODES = {"bq/ml": 1.0, "bq/cm3": 1.0, "kbq/ml": 1e3, "mbq/ml": 1e6}
_COUNT_CODES = {"{counts}", "counts", "cnts", "{cnts}", "1"}


def pixel_units(ds, *, source: str, default_counts: bool) -> PixelUnits:
    """Units of the stored values: Real World Value Mapping first, then Units (0054,1001).

    Parameters
    ----------
    default_counts : bool
        For NM: no Units and no mapping means counts (recorded as such); for PT it is an error.

    Raises
    ------
    DicomError
        Units that are neither counts nor Bq/mL (e.g. SUV ``GML``), or none where required.
    """
    rwv = first_item(ds, "RealWorldValueMappingSequence")
    if rwv is not None:
        unit_item = first_item(rwv, "MeasurementUnitsCodeSequence")
        code = get_str(unit_item, "CodeValue", source=source) if unit_item is not None else None
        slope = get_float(rwv, "RealWorldValueSlope", source=source)
        icpt = get_float(rwv, "RealWorldValueIntercept", source=source)
        if code is not None and slope is not None:
            key = code.value.lower()
            where = f"RealWorldValueMappingSequence/MeasurementUnitsCodeSequence CodeValue {code.value!r} in {source}"
            if key in _BQML_CODES:
                f = _BQML_CODES[key]
                return PixelUnits("Bq/mL", slope.value * f, (icpt.value if icpt else 0.0) * f, f"DICOM {where}")
            if key in _COUNT_CODES:
                return PixelUnits("counts", slope.value, icpt.value if icpt else 0.0, f"DICOM {where}")
            raise DicomError(f"MeasurementUnitsCodeSequence CodeValue is {code.value!r}; expected Bq/ml or {{counts}}",
                             source=source, tag=tag_label("RealWorldValueMappingSequence"))
    rs = get_float(ds, "RescaleSlope", source=source)
    ri = get_float(ds, "RescaleIntercept", source=source)
    slope = rs.value if rs else 1.0
    icpt = ri.value if ri else 0.0
    units = get_str(ds, "Units", source=source)
    if rs is not None or ri is not None:
        rescale = f" × {tag_label('RescaleSlope')} {slope:g} + {tag_label('RescaleIntercept')} {icpt:g}"
    else:
        rescale = ""
    if units is None:
        if default_counts:
            return PixelUnits("counts", slope, icpt, f"assumed counts: NM without {tag_label('Units')} or Real World "
                                                      f"Value Mapping in {source}{rescale}")
        raise DicomError("is missing; expected BQML (or CNTS)", source=source, tag=tag_label("Units"))
    u = units.value.upper()
    if u == "BQML":
        return PixelUnits("Bq/mL", slope, icpt, units.source + rescale)
    if u in ("CNTS", "COUNTS"):
        return PixelUnits("counts", slope, icpt, units.source + rescale)
    raise DicomError(f"is {units.value!r}; expected BQML or CNTS (SUV and other derived units cannot be "
                     "converted back to activity)", source=source, tag=tag_label("Units"))


def check_sensitivity(sensitivity_cps_per_MBq: float, *, source: str, warn=None) -> None:
    """Warn (not refuse) when a calibration factor is far from typical values."""
    lo, hi = TYPICAL_SENSITIVITY_CPS_PER_MBQ
    if warn and not (lo <= sensitivity_cps_per_MBq <= hi):
        warn(f"calibration factor {sensitivity_cps_per_MBq:.4g} cps/MBq ({source}) is outside the typical range "
             f"{lo:g}–{hi:g} cps/MBq for 177Lu SPECT; check camera, window and units")
