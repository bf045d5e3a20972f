"""Reading a calibration scan: NIfTI + sidecar, or DICOM (NM reconstructed tomo + CT).

NIfTI route: ``nm.nii.gz`` + ``nm.json`` (sidecar keys of docs/conventions.md) and ``ct.nii.gz``,
the layout :func:`LuDosimetryLib.phantom.calibration_scans.write_scan` writes. DICOM route: a
folder holding exactly one NM series (counts) and its CT, read with ingest's header readers
(:mod:`LuDosimetryLib.ingest`: grid, pixel units and scaling, acquisition start and duration,
camera key, RadiopharmaceuticalInformationSequence for the assay), so a calibration scan is
read exactly as a patient scan is.
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


def _read_dicom_scan(folder: Path, *, need_ct: bool) -> CalibrationScan:
    from ..ingest.dicomtags import read_header
    from ..ingest.discovery import acquisition_start, pair_ct, scan_folder
    from ..ingest.geometry import image_from_array, nm_grid
    from ..ingest.injection import read_injection_header
    from ..ingest.quant import nm_acquisition_duration_s, pixel_units
    from ..ingest.series import camera_from_header, load_ct, read_pixels

    found = scan_folder(folder)
    nms = [s for s in found if s.modality == "NM"]
    if len(nms) != 1:
        raise InputError(f"expected one NM series in a calibration scan folder, found {len(nms)}", source=str(folder))
    nm = nms[0]
    src = str(nm.files[0])
    ds = read_header(nm.files[0], pixels=True)
    grid, reverse, _ = nm_grid(ds, source=src)
    px = read_pixels(ds, source=src).astype(float)
    px = px[None] if px.ndim == 2 else px
    px = px[::-1] if reverse else px
    units = pixel_units(ds, source=src, default_counts=True)
    if units.quantity != "counts":
        raise InputError(f"the NM series holds {units.quantity}, not counts: a calibration needs reconstructed counts",
                         source=src)
    start = acquisition_start(ds, source=src)
    if start is None:
        raise InputError("AcquisitionDate/Time missing: need the acquisition start", source=src)
    duration = nm_acquisition_duration_s(ds, source=src)
    if duration is None:
        raise InputError("acquisition duration missing (ActualFrameDuration × NumberOfFramesInRotation)", source=src)
    camera, _ = camera_from_header(ds, source=src)
    inj = read_injection_header(ds, source=src, modality="NM", acquisition_start=start.value)
    ct_img = sitk.Image()
    if need_ct:
        ct = pair_ct(nm, [s for s in found if s.modality == "CT"])
        if ct is None:
            raise InputError("no CT of the same frame of reference beside the NM series", source=str(folder))
        ct_img = load_ct(ct)
    assay_time = None if inj.datetime is None or inj.time_only else inj.datetime.value
    return CalibrationScan(folder, image_from_array(px * units.slope + units.intercept, grid), ct_img, camera,
                           start.value, float(duration.value),
                           None if inj.activity_Bq is None else float(inj.activity_Bq.value), assay_time,
                           inj.nuclide.value if inj.nuclide is not None else "Lu-177",
                           {"source": "DICOM", "file": src})


def read_calibration_scan(folder: str | Path, *, need_ct: bool = True) -> CalibrationScan:
    """Read a calibration scan folder: NIfTI + sidecar when ``nm.nii.gz`` is there, else DICOM.

    NIfTI: ``folder/nm.nii.gz``, ``nm.json`` and (if ``need_ct``) ``ct.nii.gz``. DICOM: one NM
    series (counts) and its CT anywhere under ``folder``. The assay is the
    RadiopharmaceuticalInformationSequence's (or the sidecar's ``injection``) activity and
    datetime; a start *time* without a date is not taken as an assay time.

    Raises
    ------
    InputError
        Missing files or sidecar keys (acquisition_start, duration_s, camera), or units other
        than counts.
    """
    folder = Path(folder)
    nm, side, ctp = folder / "nm.nii.gz", folder / "nm.json", folder / "ct.nii.gz"
    if not nm.exists() and folder.is_dir() and any(folder.rglob("*.dcm")):
        return _read_dicom_scan(folder, need_ct=need_ct)
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
