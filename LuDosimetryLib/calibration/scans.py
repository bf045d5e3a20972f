"""Reading a calibration scan folder: ``nm.nii.gz`` + ``nm.json`` (sidecar) and ``ct.nii.gz``.

The layout :func:`LuDosimetryLib.phantom.calibration_scans.write_scan` writes and
docs/conventions.md describes (NIfTI sidecar keys). Values read keep where they came from.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import SimpleITK as sitk

from ..errors import InputError
from ..model import Camera

__all__ = ["CalibrationScan", "read_calibration_scan", "camera_from_sidecar"]


@dataclass(frozen=True, eq=False)
class CalibrationScan:
    """One phantom scan: SPECT counts, CT, timing, camera and the assay from the sidecar."""

    folder: Path
    spect: sitk.Image
    ct: sitk.Image
    camera: Camera
    acquisition_start: datetime
    duration_s: float
    assay_activity_Bq: float | None
    assay_datetime: datetime | None
    nuclide: str
    sidecar: dict = field(default_factory=dict)


def camera_from_sidecar(sidecar: dict, *, source: str) -> Camera:
    """The :class:`Camera` of a sidecar's ``camera`` object."""
    cam = sidecar.get("camera")
    if not isinstance(cam, dict):
        raise InputError("the sidecar has no \"camera\" object (manufacturer, model, collimator, "
                         "energy_windows_keV, reconstruction): a calibration must know its system", source=source)
    try:
        windows = tuple((float(lo), float(hi)) for lo, hi in cam.get("energy_windows_keV", []))
    except (TypeError, ValueError):
        raise InputError(f"camera.energy_windows_keV must be [[lower, upper], ...] keV, got "
                         f"{cam.get('energy_windows_keV')!r}", source=source) from None
    missing = [k for k in ("collimator", "reconstruction") if not cam.get(k)]
    if missing or not windows:
        raise InputError(f"camera is missing {', '.join(missing + ([] if windows else ['energy_windows_keV']))}",
                         source=source)
    return Camera(str(cam.get("manufacturer", "")), str(cam.get("model", "")), str(cam["collimator"]), windows,
                  str(cam["reconstruction"]))


def _datetime(value, what: str, source: str) -> datetime | None:
    if value in (None, ""):
        return None
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        raise InputError(f"{what} is not an ISO datetime: {value!r}", source=source) from None


def read_calibration_scan(folder: str | Path, *, need_ct: bool = True) -> CalibrationScan:
    """Read ``folder/nm.nii.gz``, ``nm.json`` and (if ``need_ct``) ``ct.nii.gz``.

    Raises
    ------
    InputError
        Missing files or sidecar keys (acquisition_start, duration_s, camera), or units other
        than counts.
    """
    folder = Path(folder)
    nm, side, ctp = folder / "nm.nii.gz", folder / "nm.json", folder / "ct.nii.gz"
    for p in (nm, side) + ((ctp,) if need_ct else ()):
        if not p.is_file():
            raise InputError("missing (a calibration scan folder holds nm.nii.gz, nm.json and ct.nii.gz)",
                             source=str(p))
    try:
        sc = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read the sidecar: {exc}", source=str(side)) from None
    src = str(side)
    if sc.get("units") != "counts":
        raise InputError(f"units must be \"counts\" for a calibration scan (reconstructed counts), got "
                         f"{sc.get('units')!r}", source=src)
    start = _datetime(sc.get("acquisition_start"), "acquisition_start", src)
    if start is None:
        raise InputError("acquisition_start is missing", source=src)
    try:
        duration = float(sc["duration_s"])
    except (KeyError, TypeError, ValueError):
        raise InputError(f"duration_s must be a number of seconds, got {sc.get('duration_s')!r}", source=src) from None
    inj = sc.get("injection") or {}
    activity = inj.get("activity_Bq")
    return CalibrationScan(folder, sitk.ReadImage(str(nm), sitk.sitkFloat32),
                           sitk.ReadImage(str(ctp), sitk.sitkFloat32) if need_ct else sitk.Image(),
                           camera_from_sidecar(sc, source=src), start, duration,
                           None if activity is None else float(activity),
                           _datetime(inj.get("datetime"), "injection.datetime", src), str(inj.get("nuclide", "Lu-177")),
                           sc)
