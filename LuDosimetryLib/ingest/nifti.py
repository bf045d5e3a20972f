"""The NIfTI (or NRRD) + JSON sidecar route.

Each image ``name.nii.gz`` (or ``.nii``, ``.nrrd``) may have a sidecar ``name.json`` with the
keys of docs/conventions.md (``modality``, ``units``, ``decay_correction``, ``acquisition_start``,
``duration_s``, ``frames``, ``injection``, ``camera``, ``cycle``, ``timepoint``, ``bed``). An image
without a sidecar whose name starts with ``ct`` is a CT (HU). SimpleITK reads NIfTI into LPS.
The values go through the same quantification as DICOM (:func:`.series.quantify_bed`), so both
routes give the same numbers from the same data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..model import Administration, Camera
from ..timing import DecayState, hours_between, mid_acquisition_time_h
from .decay import DecayInfo, pet_frame_factor
from .dicomtags import Sourced
from .geometry import Grid, grid_of, image_from_array
from .overrides import load_sidecar

__all__ = ["NiftiSeries", "scan_nifti", "read_image", "nifti_decay_info", "nifti_camera", "load_nifti_pet_frames"]

_IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha")


@dataclass(frozen=True)
class NiftiSeries:
    """One image file of the NIfTI route with its sidecar values (flat, each with its source)."""

    path: Path
    modality: str
    sidecar: dict
    cycle: int | None
    timepoint: str | None
    bed: int | None

    @property
    def name(self) -> str:
        """The file name for messages."""
        return str(self.path)


def _stem(p: Path) -> str:
    name = p.name
    for suf in _IMAGE_SUFFIXES:
        if name.endswith(suf):
            return name[: -len(suf)]
    return p.stem


def scan_nifti(folder: str | Path, *, skip: tuple[str, ...] = ("labels",)) -> tuple[NiftiSeries, ...]:
    """Image files under ``folder`` (sorted), each with its sidecar; label maps under ``skip`` folders excluded."""
    root = Path(folder)
    out = []
    for p in sorted(root.rglob("*")):
        if not p.is_file() or not p.name.endswith(_IMAGE_SUFFIXES) or p.name.endswith(".seg.nrrd"):
            continue
        if any(part in skip for part in p.relative_to(root).parts[:-1]):
            continue
        side = p.with_name(_stem(p) + ".json")
        sc = load_sidecar(side) if side.is_file() else {}
        mod = sc.get("modality")
        if mod is None:
            if _stem(p).lower().startswith("ct"):
                modality = "CT"
            else:
                raise InputError(f"no sidecar {side.name} (with 'modality') beside the image; expected CT images to "
                                 "be named ct*.nii.gz and others to have a sidecar", source=str(p))
        else:
            modality = str(mod.value).upper()
            if modality not in ("CT", "NM", "PT"):
                raise InputError(f"modality {mod.value!r}; expected CT, NM or PT", source=mod.source)
        parts = p.relative_to(root).parts
        cyc = sc["cycle"].value if "cycle" in sc else next(
            (int(m.group(1)) for s in parts if (m := re.fullmatch(r"cycle(\d+)", s))), None)
        tp = sc["timepoint"].value if "timepoint" in sc else next(
            (s for s in parts[:-1] if re.fullmatch(r"tp\d+", s)), None)
        bed = sc["bed"].value if "bed" in sc else None
        out.append(NiftiSeries(p, modality, sc, cyc, None if tp is None else str(tp), bed))
    return tuple(out)


def read_image(path: str | Path):
    """Read an image with SimpleITK (LPS); an unreadable file is an InputError naming it."""
    import SimpleITK as sitk

    try:
        return sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise InputError(f"cannot read image: {str(exc).strip().splitlines()[-1]}", source=str(path)) from None


def nifti_decay_info(sidecar: dict, *, source: str) -> DecayInfo:
    """Decay state from the sidecar's ``decay_correction`` (NONE when absent, recorded as assumed)."""
    dc = sidecar.get("decay_correction")
    if dc is None:
        return DecayInfo(DecayState.ACQUISITION, frozenset(), None, None,
                         f"assumed NONE: no decay_correction in the sidecar of {source}")
    try:
        return DecayInfo(DecayState(str(dc.value).upper()), frozenset(), None, None, dc.source)
    except ValueError:
        raise InputError(f"decay_correction {dc.value!r}; expected NONE, START or ADMIN", source=dc.source) from None


def nifti_camera(sidecar: dict, *, source: str) -> tuple[Camera | None, str | None]:
    """The camera from the sidecar's ``camera`` object."""
    cam = sidecar.get("camera")
    if cam is None:
        return None, None
    c = dict(cam.value)
    try:
        windows = tuple(tuple(float(x) for x in w) for w in c.get("energy_windows_keV", ()))
        return Camera(str(c.get("manufacturer", "")), str(c.get("model", "")), str(c.get("collimator", "")), windows,
                      str(c.get("reconstruction", "")), c.get("dead_time_s")), cam.source
    except (TypeError, ValueError):
        raise InputError(f"camera {cam.value!r} is malformed; expected manufacturer, model, collimator, "
                         "energy_windows_keV [[lo, hi], ...], reconstruction", source=cam.source) from None


def sidecar_units(sidecar: dict, *, source: str) -> Sourced:
    """``counts`` or ``Bq/mL`` from the sidecar; anything else (or nothing) is refused."""
    u = sidecar.get("units")
    if u is None:
        raise InputError("no 'units' in the sidecar; expected counts or Bq/mL", source=source)
    q = {"counts": "counts", "bq/ml": "Bq/mL", "bqml": "Bq/mL"}.get(str(u.value).lower())
    if q is None:
        raise InputError(f"units {u.value!r}; expected counts or Bq/mL", source=u.source)
    return Sourced(q, u.source)


def load_nifti_pet_frames(series: NiftiSeries, administration: Administration, *, user: dict):
    """PET frames of a NIfTI (3D static or 4D dynamic with ``frames``) in Bq/mL at mid-frame.

    Returns a list of (image, start datetime, duration_s, time_h, provenance).
    """
    import SimpleITK as sitk

    img = read_image(series.path)
    sc = {**series.sidecar, **user}
    src = series.name
    units = sidecar_units(sc, source=src)
    if units.value != "Bq/mL":
        raise InputError(f"PET units {units.value!r}; expected Bq/mL", source=units.source)
    start = sc.get("acquisition_start")
    if start is None:
        raise InputError("no 'acquisition_start' in the sidecar; need the frame times", source=src)
    arr = sitk.GetArrayFromImage(img).astype(np.float64)
    if img.GetDimension() == 4:
        frames = sc.get("frames")
        if frames is None or len(frames.value) != arr.shape[0]:
            raise InputError(f"4D PET has {arr.shape[0]} frames but the sidecar lists "
                             f"{0 if frames is None else len(frames.value)} in 'frames'", source=src)
        d4 = np.asarray(img.GetDirection()).reshape(4, 4)
        grid = Grid(tuple(img.GetOrigin()[:3]), tuple(img.GetSpacing()[:3]), tuple(d4[:3, :3].ravel().tolist()),
                    tuple(img.GetSize()[:3]))
        timing = [(float(f["start_s"]), float(f["duration_s"])) for f in frames.value]
        vols = list(arr)
    else:
        dur = sc.get("duration_s")
        if dur is None:
            raise InputError("no 'duration_s' in the sidecar", source=src)
        grid = grid_of(img)
        timing = [(0.0, float(dur.value))]
        vols = [arr]
    info = nifti_decay_info(sc, source=src)
    inj = administration.injection_datetime
    series_start_h = hours_between(inj, start.value)
    out = []
    for (s_s, d_s), vol in zip(timing, vols):
        fstart = start.value + timedelta(seconds=s_s)
        mid_h = mid_acquisition_time_h(fstart, d_s, inj)
        if hours_between(inj, fstart) < 0:
            raise InputError(f"frame at {fstart.isoformat()} starts before the injection {inj.isoformat()}",
                             source=src)
        df = pet_frame_factor(info, administration.nuclide, start_h=hours_between(inj, fstart), duration_s=d_s,
                              series_start_h=series_start_h)
        prov = {"units": units.source, "acquisition_start": start.source, "decay_state": info.source,
                "decay_factor": f"{df:.8f} ({info.state.value}, frame mean → mid-frame)"}
        out.append((image_from_array((vol * df).astype(np.float32), grid), fstart, d_s, mid_h, prov))
    return out
