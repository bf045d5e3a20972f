"""DICOM writers: CT, NM reconstructed tomo (SPECT), PET and RT Dose, as real cameras write them.

The API is frozen (``/work/notes/DICOM_API.md``): the phantom, the ingest tests and the dose export
use it. Every file is written atomically (temporary name, then rename). What a reader must do to get
the true values back, per modality and per vendor layout, is in ``docs/dicom_layouts.md``.

Conventions
-----------
- Geometry comes from the SimpleITK image (LPS); oblique direction cosines are written as they are.
- ``DA``/``TM``/``DT`` values keep microseconds, so every time round-trips to the second and below.
- Works with pydicom 2.4 (Slicer 5.10) and pydicom 3.

References
----------
DICOM PS3.3 (2024): A.5 NM Image IOD, A.21 PET Image IOD, A.18 RT Dose IOD, C.8.4 (NM), C.8.9 (PET),
C.7.6.16.2.11 (Real World Value Mapping). PS3.16 CID 18 and CID 4020 (radionuclide codes).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from pydicom.dataset import Dataset
from pydicom.tag import Tag
from pydicom.uid import UID

from ..errors import InputError
from ..model import Camera
from ..nuclides import get_nuclide
from ..timing import DecayState, frame_average_decay_factor
from ..units import S_PER_H
from .codes import radionuclide_code
from .modules import (
    DicomPatient,
    DicomStudy,
    add_equipment,
    add_frame_of_reference,
    add_image_plane,
    add_nm_pet_patient_orientation,
    add_patient_study,
    add_pixel_module,
    add_series,
    code_item,
    da,
    ds_str,
    dt,
    new_dataset,
    save_dataset,
    sequence,
    slice_geometry,
    tm,
)
from .uids import new_uid

__all__ = ["DicomPatient", "DicomStudy", "Radiopharmaceutical", "PetFrameTiming", "new_uid",
           "write_ct_series", "write_nm_tomo", "write_pet_series", "write_rt_dose",
           "NM_VENDORS", "frame_reference_offset_s", "pet_decay_factor"]

CT_IMAGE_STORAGE = UID("1.2.840.10008.5.1.4.1.1.2")
NM_IMAGE_STORAGE = UID("1.2.840.10008.5.1.4.1.1.20")
PET_IMAGE_STORAGE = UID("1.2.840.10008.5.1.4.1.1.128")
RT_DOSE_STORAGE = UID("1.2.840.10008.5.1.4.1.1.481.2")
RT_PLAN_STORAGE = UID("1.2.840.10008.5.1.4.1.1.481.5")

#: CT stored value = HU − intercept, as most scanners write it.
CT_RESCALE_INTERCEPT = -1024.0

Progress = Callable[[float, str], None] | None


@dataclass(frozen=True)
class Radiopharmaceutical:
    """The administration written into Radiopharmaceutical Information Sequence.

    Attributes
    ----------
    nuclide : str
        Any common spelling (``"Lu-177"``, ``"68Ga"``); normalised by :mod:`LuDosimetryLib.nuclides`.
    radiopharmaceutical : str
        E.g. ``"177Lu-PSMA-617"``.
    injection_datetime : datetime
    total_dose_Bq : float
        Net injected activity at the injection time (Bq).
    """

    nuclide: str
    radiopharmaceutical: str
    injection_datetime: datetime
    total_dose_Bq: float


@dataclass(frozen=True)
class PetFrameTiming:
    """Start and duration (s) of one PET frame."""

    start: datetime
    duration_s: float


def _check_folder(folder: Path | str) -> Path:
    p = Path(folder)
    if p.exists() and not p.is_dir():
        raise InputError("output folder is a file", source=str(p))
    p.mkdir(parents=True, exist_ok=True)
    return p


def _array(image: sitk.Image, *, source: str) -> np.ndarray:
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError("expected a scalar image", source=source)
    arr = sitk.GetArrayViewFromImage(image).astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise InputError("image holds NaN or infinite values", source=source)
    return arr


# --------------------------------------------------------------------------------------------- CT

def write_ct_series(image: sitk.Image, folder: Path, *, patient: DicomPatient, study: DicomStudy,
                    series_datetime: datetime, series_number: int = 1, description: str = "CT",
                    kvp: float = 120.0, series_uid: str | None = None, uid_seed: str | None = None,
                    progress: Progress = None) -> list[Path]:
    """Write a CT volume as CT Image Storage, one file per slice.

    Parameters
    ----------
    image : SimpleITK.Image
        3D CT in HU (LPS); values are rounded to integer HU.
    folder : Path
        Created if missing; files are named ``CT_{k:04d}.dcm`` (k = slice index of ``image``).
    patient, study : DicomPatient, DicomStudy
    series_datetime : datetime
        Series, acquisition and content date/time.
    series_number : int
    description : str
        SeriesDescription.
    kvp : float
        Peak tube voltage (kV).
    series_uid : str, optional
        Default: a new UID (seeded by ``uid_seed`` when given).
    uid_seed : str, optional
        Seed text for deterministic SOP Instance UIDs (reproducible phantoms).
    progress : callable, optional

    Returns
    -------
    list of Path
        One file per slice, in slice order.

    Notes
    -----
    Stored values are int16 with RescaleSlope 1 and RescaleIntercept −1024 (HU = stored − 1024).
    """
    folder = _check_folder(folder)
    hu = np.rint(_array(image, source="CT image"))
    stored = hu - CT_RESCALE_INTERCEPT
    if stored.min() < -32768 or stored.max() > 32767:
        raise InputError(f"HU range [{hu.min():g}, {hu.max():g}] does not fit int16 with intercept "
                         f"{CT_RESCALE_INTERCEPT:g}", source="CT image")
    geom = slice_geometry(image, source="CT image")
    series_uid = series_uid or new_uid(None if uid_seed is None else f"{uid_seed}/series")
    paths = []
    nz = stored.shape[0]
    for k in range(nz):
        sop_uid = new_uid(None if uid_seed is None else f"{uid_seed}/sop/{k}")
        ds = new_dataset(CT_IMAGE_STORAGE, sop_uid, when=series_datetime)
        add_patient_study(ds, patient, study)
        add_series(ds, modality="CT", series_uid=series_uid, series_number=series_number,
                   description=description, series_datetime=series_datetime)
        add_frame_of_reference(ds, study)
        add_equipment(ds, model="Synthetic CT")
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.InstanceNumber = k + 1
        ds.AcquisitionNumber = 1
        ds.PatientOrientation = ""
        ds.AcquisitionDate = da(series_datetime)
        ds.AcquisitionTime = tm(series_datetime)
        ds.ContentDate = da(series_datetime)
        ds.ContentTime = tm(series_datetime)
        add_image_plane(ds, geom, k, thickness_mm=abs(geom.slice_spacing))
        ds.SpacingBetweenSlices = ds_str(abs(geom.slice_spacing))
        add_pixel_module(ds, stored[k], signed=True)
        ds.RescaleIntercept = ds_str(CT_RESCALE_INTERCEPT)
        ds.RescaleSlope = "1"
        ds.RescaleType = "HU"
        ds.KVP = ds_str(kvp)
        ds.WindowCenter = "40"
        ds.WindowWidth = "400"
        paths.append(save_dataset(ds, folder / f"CT_{k:04d}.dcm"))
        if progress is not None:
            progress((k + 1) / nz, f"CT slice {k + 1}/{nz}")
    return paths


# --------------------------------------------------------------------------------------------- NM

#: NM vendor layouts, described in docs/dicom_layouts.md.
NM_VENDORS = ("generic", "siemens", "ge", "philips")

_NM_MANUFACTURER = {"siemens": "SIEMENS NM", "ge": "GE MEDICAL SYSTEMS", "philips": "Philips Medical Systems"}
_UCUM = {"CNTS": ("{counts}", "UCUM", "Counts"), "BQML": ("Bq/ml", "UCUM", "Becquerels/milliliter")}


@dataclass(frozen=True)
class _Scaling:
    stored: np.ndarray     # uint16 values as written
    slope: float           # true = stored · slope + intercept
    intercept: float
    scaled: bool           # False: stored values are the true values


def _nm_scaling(values: np.ndarray, units: str) -> _Scaling:
    if values.min() < 0:
        raise InputError(f"NM values must be ≥ 0 (unsigned pixels), min is {values.min():g}", source="NM image")
    vmax = float(values.max())
    integer = bool(np.all(values == np.rint(values)))
    if units == "CNTS" and integer and vmax <= 65535:
        return _Scaling(values.astype(np.uint16), 1.0, 0.0, False)
    slope = float(ds_str(vmax / 65535.0)) if vmax > 0 else 1.0
    stored = np.clip(np.rint(values / slope), 0, 65535).astype(np.uint16)
    return _Scaling(stored, slope, 0.0, True)


def _rwvm_item(scaling: _Scaling, units: str, *, label: str) -> Dataset:
    item = Dataset()
    item.RealWorldValueFirstValueMapped = 0
    item.RealWorldValueLastValueMapped = 65535
    item.RealWorldValueIntercept = scaling.intercept
    item.RealWorldValueSlope = scaling.slope
    item.LUTExplanation = {"CNTS": "Counts", "BQML": "Bq/ml"}[units]
    item.LUTLabel = label
    item.MeasurementUnitsCodeSequence = sequence(code_item(*_UCUM[units]))
    return item


def _radiopharmaceutical_item(rp: Radiopharmaceutical, *, dose_value: float, start_datetime: bool,
                              start_time: bool = True) -> Dataset:
    nuc = get_nuclide(rp.nuclide)
    item = Dataset()
    item.Radiopharmaceutical = rp.radiopharmaceutical
    if start_time:
        item.RadiopharmaceuticalStartTime = tm(rp.injection_datetime)
    if start_datetime:
        item.RadiopharmaceuticalStartDateTime = dt(rp.injection_datetime)
    item.RadionuclideTotalDose = ds_str(dose_value)
    item.RadionuclideHalfLife = ds_str(nuc.half_life_s)
    if nuc.positron_yield is not None:
        item.RadionuclidePositronFraction = ds_str(nuc.positron_yield)
    item.RadionuclideCodeSequence = sequence(code_item(*radionuclide_code(nuc.name)))
    item.RadiopharmaceuticalRoute = "Intravenous"
    return item


def write_nm_tomo(image: sitk.Image, folder: Path, *, patient: DicomPatient, study: DicomStudy,
                  acquisition_start: datetime, frame_duration_s: float, projections_per_detector: int,
                  camera: Camera, radiopharmaceutical: Radiopharmaceutical, units: str = "CNTS",
                  corrected_image: tuple[str, ...] = ("ATTN", "SCAT"), series_number: int = 2,
                  description: str = "SPECT", vendor: str = "generic", negative_spacing: bool = False,
                  series_uid: str | None = None, uid_seed: str | None = None, number_of_detectors: int = 2,
                  file_name: str = "NM.dcm") -> Path:
    """Write a reconstructed SPECT volume as one multi-frame NM Image Storage file (RECON TOMO).

    Parameters
    ----------
    image : SimpleITK.Image
        3D reconstruction (LPS), counts (``units="CNTS"``) or Bq/mL (``"BQML"``), values ≥ 0.
    folder : Path
        Created if missing; the file is ``folder / file_name``.
    acquisition_start : datetime
        Start of the acquisition (AcquisitionDate/Time, SeriesDate/Time).
    frame_duration_s : float
        Duration of one projection (s), written as ActualFrameDuration (ms) in the Rotation
        Information Sequence. Acquisition duration = frame_duration_s × projections_per_detector.
    projections_per_detector : int
        NumberOfFramesInRotation (projections per detector head).
    camera : Camera
        Manufacturer, model, collimator, photopeak windows and reconstruction.
    radiopharmaceutical : Radiopharmaceutical
    units : {"CNTS", "BQML"}
    corrected_image : tuple of str
        CorrectedImage values (e.g. ``("ATTN", "SCAT")``, plus ``"DECY"``, ``"DTIM"`` if applied).
    vendor : {"generic", "siemens", "ge", "philips"}
        File layout (docs/dicom_layouts.md).
    negative_spacing : bool
        Write frames in reverse slice order with a negative SpacingBetweenSlices; the geometry in
        LPS is the same.
    series_uid, uid_seed : str, optional
    number_of_detectors : int
        Detector heads (1 or 2); each covers 360°/heads... of a 360° orbit.
    file_name : str

    Returns
    -------
    Path

    Notes
    -----
    Integer counts ≤ 65535 are stored as they are. Otherwise (Bq/mL, non-integer or larger counts)
    values are stored as uint16 = round(value / slope) and the true value is
    ``stored × RealWorldValueSlope + RealWorldValueIntercept`` from the Real World Value Mapping
    Sequence (0040,9096) (Philips layout: RescaleSlope/RescaleIntercept instead). The quantisation
    error is at most slope / 2 = max / 131070.
    """
    if vendor not in NM_VENDORS:
        raise InputError(f"unknown vendor layout {vendor!r} (expected one of {', '.join(NM_VENDORS)})",
                         source="vendor")
    if units not in _UCUM:
        raise InputError(f"units must be 'CNTS' or 'BQML', got {units!r}", source="units")
    if not (math.isfinite(frame_duration_s) and frame_duration_s > 0):
        raise InputError(f"must be a finite duration > 0 s, got {frame_duration_s}", source="frame_duration_s")
    if int(projections_per_detector) < 1:
        raise InputError(f"must be ≥ 1, got {projections_per_detector}", source="projections_per_detector")
    if number_of_detectors not in (1, 2):
        raise InputError(f"must be 1 or 2, got {number_of_detectors}", source="number_of_detectors")
    if not camera.energy_windows_keV:
        raise InputError("camera has no energy windows; NM files need Energy Window Information",
                         source="camera.energy_windows_keV")
    folder = _check_folder(folder)
    values = _array(image, source="NM image")
    geom = slice_geometry(image, source="NM image")
    nz = values.shape[0]
    order = np.arange(nz)[::-1] if negative_spacing else np.arange(nz)
    frames = values[order]
    positions = geom.positions[order]
    spacing = geom.slice_spacing * (-1.0 if negative_spacing else 1.0)
    scaling = _nm_scaling(frames, units)

    series_uid = series_uid or new_uid(None if uid_seed is None else f"{uid_seed}/series")
    sop_uid = new_uid(None if uid_seed is None else f"{uid_seed}/sop")
    ds = new_dataset(NM_IMAGE_STORAGE, sop_uid, when=acquisition_start)
    add_patient_study(ds, patient, study)
    recon_in_description = vendor in ("siemens", "ge")
    series_description = f"{description} {camera.reconstruction}".strip() if recon_in_description else description
    add_series(ds, modality="NM", series_uid=series_uid, series_number=series_number,
               description=series_description, series_datetime=acquisition_start)
    add_frame_of_reference(ds, study)
    add_equipment(ds, manufacturer=_NM_MANUFACTURER.get(vendor, camera.manufacturer or "LuDosimetry"),
                  model=camera.model)
    if vendor == "generic" and camera.manufacturer:
        ds.Manufacturer = camera.manufacturer
    # NM/PET Patient Orientation (type 2 sequences)
    add_nm_pet_patient_orientation(ds)
    # General Image, NM Image
    ds.ImageType = ["ORIGINAL", "PRIMARY", "RECON TOMO", "EMISSION"]
    ds.InstanceNumber = 1
    ds.PatientOrientation = ""
    ds.AcquisitionDate = da(acquisition_start)
    ds.AcquisitionTime = tm(acquisition_start)
    ds.ContentDate = da(acquisition_start)
    ds.ContentTime = tm(acquisition_start)
    ds.ImageID = description[:16]
    ds.CountsAccumulated = round(float(values.sum())) if units == "CNTS" else ""
    ds.CorrectedImage = list(corrected_image)
    ds.AcquisitionContextSequence = sequence()
    # Image Pixel, NM Image Pixel, Multi-frame, NM Multi-frame
    add_pixel_module(ds, scaling.stored, signed=False)
    ds.PixelSpacing = [ds_str(v) for v in geom.pixel_spacing]
    ds.NumberOfFrames = nz
    ds.FrameIncrementPointer = [Tag(0x0054, 0x0080)]  # SliceVector
    ds.SliceVector = list(range(1, nz + 1))
    ds.NumberOfSlices = nz
    # NM Isotope: Energy Window and Radiopharmaceutical Information
    windows = []
    for n, (lo, hi) in enumerate(camera.energy_windows_keV, start=1):
        rng = Dataset()
        rng.EnergyWindowLowerLimit = ds_str(lo)
        rng.EnergyWindowUpperLimit = ds_str(hi)
        win = Dataset()
        win.EnergyWindowRangeSequence = sequence(rng)
        win.EnergyWindowName = f"EM{n}" if vendor != "siemens" else f"EM{n} {0.5 * (lo + hi):.0f}keV"
        windows.append(win)
    ds.EnergyWindowInformationSequence = sequence(*windows)
    ds.NumberOfEnergyWindows = len(windows)
    # NM Isotope module gives RadionuclideTotalDose in MBq (PS3.3 C.8.4.10).
    ds.RadiopharmaceuticalInformationSequence = sequence(_radiopharmaceutical_item(
        radiopharmaceutical, dose_value=radiopharmaceutical.total_dose_Bq / 1e6,
        start_datetime=vendor != "ge"))
    # NM Detector: geometry of the reconstructed volume
    det = Dataset()
    det.CollimatorGridName = camera.collimator
    det.CollimatorType = "PARA"
    det.ImagePositionPatient = [ds_str(v) for v in positions[0]]
    det.ImageOrientationPatient = geom.orientation
    det.FieldOfViewShape = "RECTANGLE"
    ds.DetectorInformationSequence = sequence(det)
    ds.NumberOfDetectors = 1
    # NM TOMO Acquisition: the acquisition orbit
    rot = Dataset()
    rot.StartAngle = "0"
    scan_arc = 360.0 / number_of_detectors
    rot.ScanArc = ds_str(scan_arc)
    rot.AngularStep = ds_str(scan_arc / int(projections_per_detector))
    rot.RotationDirection = "CW"
    rot.ActualFrameDuration = round(frame_duration_s * 1000.0)
    rot.NumberOfFramesInRotation = int(projections_per_detector)
    ds.RotationInformationSequence = sequence(rot)
    ds.NumberOfRotations = 1
    ds.TypeOfDetectorMotion = "STEP AND SHOOT"
    # NM Reconstruction
    ds.SpacingBetweenSlices = ds_str(spacing)
    ds.SliceThickness = ds_str(abs(spacing))
    if vendor in ("generic", "philips") and camera.reconstruction:
        ds.ReconstructionMethod = camera.reconstruction[:64]
    ds.Units = units
    if scaling.scaled:
        if vendor == "philips":
            ds.RescaleIntercept = ds_str(scaling.intercept)
            ds.RescaleSlope = ds_str(scaling.slope)
        else:
            label = "BQML" if units == "BQML" else "CNTS"
            ds.RealWorldValueMappingSequence = sequence(_rwvm_item(scaling, units, label=label))
    return save_dataset(ds, folder / file_name)


# -------------------------------------------------------------------------------------------- PET

def frame_reference_offset_s(nuclide: str, duration_s: float) -> float:
    """Time (s) after a frame's start at which the activity equals the frame average.

    For physical decay with constant λ over a frame of duration T:
    ``t_ref = −ln((1 − e^(−λT)) / (λT)) / λ`` (→ T/2 as λT → 0; slightly less than T/2).
    """
    nuc = get_nuclide(nuclide)
    f = frame_average_decay_factor(nuc, duration_s / S_PER_H)
    return -math.log(f) / nuc.decay_constant_per_h * S_PER_H


def pet_decay_factor(nuclide: str, *, reference: datetime, at: datetime) -> float:
    """Factor exp(λ (at − reference)) that decay-corrects activity at ``at`` to ``reference``."""
    nuc = get_nuclide(nuclide)
    return math.exp(nuc.decay_constant_per_h * (at - reference) / timedelta(hours=1))


def write_pet_series(frames: Sequence[sitk.Image], folder: Path, *, patient: DicomPatient, study: DicomStudy,
                     radiopharmaceutical: Radiopharmaceutical, timings: Sequence[PetFrameTiming],
                     decay_correction: str = "START", series_number: int = 3, description: str = "PET",
                     series_uid: str | None = None, uid_seed: str | None = None,
                     corrected_image: tuple[str, ...] = ("NORM", "DTIM", "ATTN", "SCAT", "RAN"),
                     progress: Progress = None) -> list[Path]:
    """Write PET frames as PET Image Storage, one file per slice per frame, Units BQML.

    Parameters
    ----------
    frames : sequence of SimpleITK.Image
        One 3D image per frame, all on one grid, in Bq/mL **not decay-corrected**: the mean
        activity concentration over the frame, which is the activity at the frame's reference time
        (:func:`frame_reference_offset_s`; within (λT)²/24 of the mid-frame activity).
    timings : sequence of PetFrameTiming
        Start and duration of each frame, increasing, not overlapping.
    decay_correction : {"START", "ADMIN", "NONE"}
        Reference time of the values written: series start (first frame's start), the
        administration, or none.
    corrected_image : tuple of str
        CorrectedImage values; ``"DECY"`` is added when ``decay_correction`` is not NONE.

    Returns
    -------
    list of Path
        Files in frame-major, slice-minor order (``PT_f{frame:03d}_s{slice:04d}.dcm``).

    Notes
    -----
    SeriesDate/Time = start of the first frame (the series reference time). For each frame,
    FrameReferenceTime (ms after the series reference time) is the time at which the activity
    equals the frame average, and DecayFactor = exp(λ·(t_FRT − t_ref)) with t_ref the series start
    (START) or the administration (ADMIN); pixel values = frame values × DecayFactor. The true
    value = stored × RescaleSlope (RescaleIntercept is 0). A reader recovers the frame values by
    value / DecayFactor, or by :func:`LuDosimetryLib.timing.to_acquisition_time` with
    ``time_h`` = FrameReferenceTime in h p.i.
    """
    state = DecayState(decay_correction) if decay_correction in ("START", "ADMIN", "NONE") else None
    if state is None:
        raise InputError(f"must be 'START', 'ADMIN' or 'NONE', got {decay_correction!r}",
                         source="decay_correction")
    if len(frames) == 0 or len(frames) != len(timings):
        raise InputError(f"need one timing per frame, got {len(frames)} frames and {len(timings)} timings",
                         source="timings")
    for n, t in enumerate(timings):
        if not (math.isfinite(t.duration_s) and t.duration_s > 0):
            raise InputError(f"frame {n}: duration must be > 0 s, got {t.duration_s}", source="timings")
        if n and t.start < timings[n - 1].start + timedelta(seconds=timings[n - 1].duration_s):
            raise InputError(f"frame {n} starts at {t.start.isoformat()}, before frame {n - 1} ends",
                             source="timings")
    geom = slice_geometry(frames[0], source="PET frame 0")
    size0 = frames[0].GetSize()
    for n, f in enumerate(frames):
        if f.GetSize() != size0 or not np.allclose(f.GetOrigin(), frames[0].GetOrigin()) \
                or not np.allclose(f.GetSpacing(), frames[0].GetSpacing()) \
                or not np.allclose(f.GetDirection(), frames[0].GetDirection()):
            raise InputError(f"frame {n} is not on the grid of frame 0", source="frames")
    folder = _check_folder(folder)
    nuclide = get_nuclide(radiopharmaceutical.nuclide).name
    series_start = timings[0].start
    reference = {DecayState.START: series_start, DecayState.ADMIN: radiopharmaceutical.injection_datetime,
                 DecayState.ACQUISITION: None}[state]
    dynamic = len(frames) > 1
    series_uid = series_uid or new_uid(None if uid_seed is None else f"{uid_seed}/series")
    corrected = tuple(c for c in corrected_image if c != "DECY") + (("DECY",) if reference else ())
    nz = size0[2]
    paths = []
    for n, (img, timing) in enumerate(zip(frames, timings)):
        values = _array(img, source=f"PET frame {n}")
        t_frt = timing.start + timedelta(seconds=frame_reference_offset_s(nuclide, timing.duration_s))
        factor = 1.0 if reference is None else pet_decay_factor(nuclide, reference=reference, at=t_frt)
        corrected_values = values * factor
        frt_ms = (t_frt - series_start) / timedelta(milliseconds=1)
        for k in range(nz):
            sl = corrected_values[k]
            vmax = float(np.abs(sl).max())
            slope = float(ds_str(vmax / 32767.0)) if vmax > 0 else 1.0
            stored = np.clip(np.rint(sl / slope), -32768, 32767)
            sop_uid = new_uid(None if uid_seed is None else f"{uid_seed}/sop/{n}/{k}")
            ds = new_dataset(PET_IMAGE_STORAGE, sop_uid, when=series_start)
            add_patient_study(ds, patient, study)
            add_series(ds, modality="PT", series_uid=series_uid, series_number=series_number,
                       description=description, series_datetime=series_start)
            add_frame_of_reference(ds, study)
            add_equipment(ds, model="Synthetic PET")
            # PET Series
            ds.Units = "BQML"
            ds.CountsSource = "EMISSION"
            ds.SeriesType = ["DYNAMIC" if dynamic else "STATIC", "IMAGE"]
            ds.NumberOfSlices = nz
            if dynamic:
                ds.NumberOfTimeSlices = len(frames)
            ds.CorrectedImage = list(corrected)
            ds.DecayCorrection = state.value
            ds.RandomsCorrectionMethod = "DLYD"
            ds.AttenuationCorrectionMethod = "measured, CT-based"
            ds.ReconstructionMethod = "OSEM"
            ds.AcquisitionStartCondition = "MANU"
            ds.CollimatorType = "NONE"
            # PET Isotope (RadionuclideTotalDose in Bq: PS3.3 C.8.9.2)
            ds.RadiopharmaceuticalInformationSequence = sequence(_radiopharmaceutical_item(
                radiopharmaceutical, dose_value=radiopharmaceutical.total_dose_Bq, start_datetime=True))
            add_nm_pet_patient_orientation(ds)
            # General Image, Image Plane, Image Pixel, PET Image
            ds.ImageType = ["ORIGINAL", "PRIMARY"]
            ds.InstanceNumber = n * nz + k + 1
            ds.PatientOrientation = ""
            ds.AcquisitionDate = da(timing.start)
            ds.AcquisitionTime = tm(timing.start)
            ds.ContentDate = da(series_start)
            ds.ContentTime = tm(series_start)
            add_image_plane(ds, geom, k, thickness_mm=abs(geom.slice_spacing))
            add_pixel_module(ds, stored, signed=True)
            ds.RescaleIntercept = "0"
            ds.RescaleSlope = ds_str(slope)
            ds.FrameReferenceTime = ds_str(frt_ms)
            ds.ActualFrameDuration = round(timing.duration_s * 1000.0)
            ds.ImageIndex = n * nz + k + 1
            if reference is not None:
                ds.DecayFactor = ds_str(factor)
            ds.LossyImageCompression = "00"
            ds.AcquisitionContextSequence = sequence()
            paths.append(save_dataset(ds, folder / f"PT_f{n:03d}_s{k:04d}.dcm"))
        if progress is not None:
            progress((n + 1) / len(frames), f"PET frame {n + 1}/{len(frames)}")
    return paths


# ---------------------------------------------------------------------------------------- RT Dose

def write_rt_dose(dose: sitk.Image, folder: Path, *, patient: DicomPatient, study: DicomStudy,
                  series_number: int = 50, description: str = "LuDosimetry dose",
                  dose_summation_type: str = "PLAN", series_uid: str | None = None,
                  uid_seed: str | None = None, content_datetime: datetime | None = None,
                  referenced_rt_plan_uid: str | None = None, bits_allocated: int = 16,
                  file_name: str = "RTDOSE.dcm") -> Path:
    """Write an absorbed-dose map (Gy) as one RT Dose Storage file on the study's frame of reference.

    Parameters
    ----------
    dose : SimpleITK.Image
        3D absorbed dose (Gy), ≥ 0, LPS.
    dose_summation_type : str
        DoseSummationType (3004,000A).
    content_datetime : datetime, optional
        Content date/time (default: the study datetime).
    referenced_rt_plan_uid : str, optional
        SOP Instance UID of an RT Plan (RT Plan Storage) the dose belongs to, written as
        ReferencedRTPlanSequence. PS3.3 C.8.8.3 requires it (Type 1C) for every DoseSummationType
        except where a treatment record is referenced; molecular radiotherapy has no RT Plan, so
        without it ``dciodvfy`` reports that one error and readers (3D Slicer, SlicerRT,
        pydicom, GDCM) read the dose regardless.
    bits_allocated : {16, 32}
        16 (default) passes ``dciodvfy``; dicom3tools (2024 Debian build) aborts on 32-bit pixel
        data ("Assertion `bitsallocated <= bytesinword*8u' failed"), so 32 is not checked by it.

    Notes
    -----
    Stored unsigned; dose (Gy) = stored × DoseGridScaling, with DoseGridScaling = max / (2^bits − 1):
    quantisation ≤ max / 131070 (16 bit) or max / 8.6e9 (32 bit). GridFrameOffsetVector holds the offsets (mm)
    of each frame from ImagePositionPatient along the slice normal.
    """
    values = _array(dose, source="dose image")
    if values.min() < 0:
        raise InputError(f"dose must be ≥ 0 Gy, min is {values.min():g}", source="dose image")
    geom = slice_geometry(dose, source="dose image")
    folder = _check_folder(folder)
    when = content_datetime or study.study_datetime
    series_uid = series_uid or new_uid(None if uid_seed is None else f"{uid_seed}/series")
    sop_uid = new_uid(None if uid_seed is None else f"{uid_seed}/sop")
    ds = new_dataset(RT_DOSE_STORAGE, sop_uid, when=when)
    add_patient_study(ds, patient, study)
    add_series(ds, modality="RTDOSE", series_uid=series_uid, series_number=series_number,
               description=description, series_datetime=None)
    ds.OperatorsName = ""
    del ds.PatientPosition, ds.BodyPartExamined  # RT Series module, not General Series
    add_frame_of_reference(ds, study)
    add_equipment(ds)
    ds.InstanceNumber = 1
    ds.ContentDate = da(when)
    ds.ContentTime = tm(when)
    ds.PixelSpacing = [ds_str(v) for v in geom.pixel_spacing]
    ds.ImageOrientationPatient = geom.orientation
    ds.ImagePositionPatient = [ds_str(v) for v in geom.positions[0]]
    ds.SliceThickness = ds_str(abs(geom.slice_spacing))
    if bits_allocated not in (16, 32):
        raise InputError(f"must be 16 or 32, got {bits_allocated}", source="bits_allocated")
    top = 2.0 ** bits_allocated - 1.0
    vmax = float(values.max())
    # DoseGridScaling rounded up to a DS string so that max / scaling stays ≤ top
    scaling = float(ds_str(vmax / top * (1.0 + 1e-12))) if vmax > 0 else 1.0
    stored = np.clip(np.rint(values / scaling), 0, top).astype("<u4" if bits_allocated == 32 else "<u2")
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = int(stored.shape[1]), int(stored.shape[2])
    ds.BitsAllocated = bits_allocated
    ds.BitsStored = bits_allocated
    ds.HighBit = bits_allocated - 1
    ds.PixelRepresentation = 0
    ds.NumberOfFrames = int(stored.shape[0])
    ds.FrameIncrementPointer = [Tag(0x3004, 0x000C)]
    ds.GridFrameOffsetVector = [ds_str(k * geom.slice_spacing) for k in range(stored.shape[0])]
    ds.DoseUnits = "GY"
    ds.DoseType = "PHYSICAL"
    ds.DoseSummationType = dose_summation_type
    ds.DoseGridScaling = ds_str(scaling)
    if referenced_rt_plan_uid:
        ref = Dataset()
        ref.ReferencedSOPClassUID = RT_PLAN_STORAGE
        ref.ReferencedSOPInstanceUID = referenced_rt_plan_uid
        ds.ReferencedRTPlanSequence = sequence(ref)
    ds.PixelData = np.ascontiguousarray(stored).tobytes()
    return save_dataset(ds, folder / file_name)

