"""NM Image Storage writer: reconstructed SPECT (RECON TOMO), one multi-frame file, vendor layouts.

The layouts (``NM_LAYOUTS``) reproduce the differences between vendors' exports that a reader has
to handle; docs/dicom_layouts.md says, for each, where every value is and how to get true values.

References
----------
DICOM PS3.3 A.5 (NM Image IOD), C.8.4.8 (NM Multi-frame), C.8.4.9 (NM Image), C.8.4.10 (NM Isotope:
RadionuclideTotalDose in MBq), C.8.4.11 (NM Detector), C.8.4.12 (NM TOMO Acquisition), C.8.4.14 (NM
Reconstruction), C.7.6.16.2.11 (Real World Value Mapping).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from pydicom.dataset import Dataset
from pydicom.tag import Tag
from pydicom.uid import UID

from ..errors import InputError
from ..model import Camera
from .modules import (
    DicomPatient,
    DicomStudy,
    Radiopharmaceutical,
    add_equipment,
    add_frame_of_reference,
    add_nm_pet_patient_orientation,
    add_patient_study,
    add_pixel_module,
    add_series,
    check_folder,
    check_radiopharmaceutical,
    code_item,
    da,
    ds_str,
    image_array,
    new_dataset,
    radiopharmaceutical_item,
    save_dataset,
    sequence,
    slice_geometry,
    tm,
)
from .uids import new_uid

__all__ = ["NM_IMAGE_STORAGE", "NmLayout", "NM_LAYOUTS", "NM_VENDORS", "write_nm_tomo"]

NM_IMAGE_STORAGE = UID("1.2.840.10008.5.1.4.1.1.20")

_UCUM = {"CNTS": ("{counts}", "UCUM", "Counts"), "BQML": ("Bq/ml", "UCUM", "Becquerels/milliliter")}


@dataclass(frozen=True)
class NmLayout:
    """Where a vendor's NM export puts what a reader needs.

    Attributes
    ----------
    name : str
    manufacturer : str
        Manufacturer written when ``Camera.manufacturer`` is empty.
    reconstruction_tag : {"ReconstructionMethod", "SeriesDescription"}
        Where the reconstruction name (``Camera.reconstruction``) is written.
    scaling_tags : {"RWVM", "Rescale"}
        How scaled (non-integer, > 65535 or Bq/mL) values are declared: Real World Value Mapping
        Sequence (0040,9096) or RescaleSlope/RescaleIntercept (0028,1053)/(0028,1052).
    start_datetime : bool
        Whether RadiopharmaceuticalStartDateTime (0018,1078) is written (RadiopharmaceuticalStartTime
        (0018,1072) always is).
    rwvm_always_for_bqml : bool
        Bq/mL values always carry an RWVM item with UCUM ``Bq/ml`` (xSPECT Quant style).
    """

    name: str
    manufacturer: str
    reconstruction_tag: str
    scaling_tags: str
    start_datetime: bool
    rwvm_always_for_bqml: bool = False


NM_LAYOUTS: dict[str, NmLayout] = {
    "generic": NmLayout("generic", "LuDosimetry", "ReconstructionMethod", "RWVM", True),
    "siemens": NmLayout("siemens", "SIEMENS NM", "SeriesDescription", "RWVM", True, rwvm_always_for_bqml=True),
    "ge": NmLayout("ge", "GE MEDICAL SYSTEMS", "SeriesDescription", "Rescale", False),
    "philips": NmLayout("philips", "Philips Medical Systems", "ReconstructionMethod", "Rescale", True),
}

#: NM vendor layouts, described in docs/dicom_layouts.md.
NM_VENDORS = tuple(NM_LAYOUTS)


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
    # slope rounded up to its DS string so that vmax / slope ≤ 65535
    slope = float(ds_str(vmax / 65535.0 * (1.0 + 1e-12))) if vmax > 0 else 1.0
    stored = np.clip(np.rint(values / slope), 0, 65535).astype(np.uint16)
    return _Scaling(stored, slope, 0.0, True)


def _rwvm_item(scaling: _Scaling, units: str) -> Dataset:
    item = Dataset()
    item.RealWorldValueFirstValueMapped = 0
    item.RealWorldValueLastValueMapped = 65535
    item.RealWorldValueIntercept = scaling.intercept
    item.RealWorldValueSlope = scaling.slope
    item.LUTExplanation = {"CNTS": "Counts", "BQML": "Bq/ml"}[units]
    item.LUTLabel = units
    item.MeasurementUnitsCodeSequence = sequence(code_item(*_UCUM[units]))
    return item


def _validate(units, vendor, frame_duration_s, projections_per_detector, number_of_detectors, camera):
    if vendor not in NM_LAYOUTS:
        raise InputError(f"unknown vendor layout {vendor!r} (expected one of {', '.join(NM_LAYOUTS)})",
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
        Created if missing; the file is ``folder / file_name`` (written atomically).
    patient, study : DicomPatient, DicomStudy
    acquisition_start : datetime
        Start of the acquisition: AcquisitionDate/Time, SeriesDate/Time, ContentDate/Time.
    frame_duration_s : float
        Duration of one projection (s), written as ActualFrameDuration (ms) in the Rotation
        Information Sequence. Acquisition duration = frame_duration_s × projections_per_detector.
    projections_per_detector : int
        NumberOfFramesInRotation (projections per detector head).
    camera : Camera
        Manufacturer, ManufacturerModelName, CollimatorGridName (in the Detector Information
        Sequence), photopeak windows (Energy Window Information Sequence) and reconstruction name
        (ReconstructionMethod or SeriesDescription, per layout).
    radiopharmaceutical : Radiopharmaceutical
        RadionuclideTotalDose is written in MBq, as the NM Isotope module defines it.
    units : {"CNTS", "BQML"}
        Also written as Units (0054,1001) (a PET Series attribute that NM exports carry).
    corrected_image : tuple of str
        CorrectedImage values (``"ATTN"``, ``"SCAT"``, and ``"DECY"``, ``"DTIM"`` where applied). They
        declare what was done to the values given; the writer does not change the values.
    series_number : int
    description : str
        SeriesDescription in the generic and philips layouts, ProtocolName in all.
    vendor : {"generic", "siemens", "ge", "philips"}
        File layout (:data:`NM_LAYOUTS`, docs/dicom_layouts.md).
    negative_spacing : bool
        Write frames in reverse slice order with a negative SpacingBetweenSlices and
        ImagePositionPatient at the last slice; the geometry in LPS is unchanged.
    series_uid : str, optional
    uid_seed : str, optional
        Seed text for deterministic UIDs.
    number_of_detectors : {1, 2}
        Heads of the orbit: ScanArc = 360° / heads.
    file_name : str

    Returns
    -------
    Path

    Notes
    -----
    Integer counts ≤ 65535 are stored as they are (no scaling attributes). Otherwise values are
    stored as uint16 = round(value / slope), slope = max / 65535, and the true value is
    ``stored × slope + intercept``, with slope and intercept in the Real World Value Mapping
    Sequence (RealWorldValueSlope/Intercept) or in RescaleSlope/RescaleIntercept, per layout.
    Quantisation error ≤ slope / 2 = max / 131070.
    """
    _validate(units, vendor, frame_duration_s, projections_per_detector, number_of_detectors, camera)
    check_radiopharmaceutical(radiopharmaceutical, acquisition_start)
    layout = NM_LAYOUTS[vendor]
    folder = check_folder(folder)
    values = image_array(image, source="NM image")
    geom = slice_geometry(image, source="NM image")
    nz = values.shape[0]
    order = np.arange(nz)[::-1] if negative_spacing else np.arange(nz)
    frames = values[order]
    first_position = geom.positions[order[0]]
    spacing = geom.slice_spacing * (-1.0 if negative_spacing else 1.0)
    scaling = _nm_scaling(frames, units)

    series_uid = series_uid or new_uid(None if uid_seed is None else f"{uid_seed}/series")
    sop_uid = new_uid(None if uid_seed is None else f"{uid_seed}/sop")
    ds = new_dataset(NM_IMAGE_STORAGE, sop_uid, when=acquisition_start)
    add_patient_study(ds, patient, study)
    recon_in_description = layout.reconstruction_tag == "SeriesDescription"
    add_series(ds, modality="NM", series_uid=series_uid, series_number=series_number,
               description=(camera.reconstruction if recon_in_description else description)[:64],
               series_datetime=acquisition_start)
    ds.ProtocolName = description[:64]
    add_frame_of_reference(ds, study)
    add_equipment(ds, manufacturer=camera.manufacturer or layout.manufacturer, model=camera.model)
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
    # NM Isotope: energy windows and radiopharmaceutical
    windows = []
    for n, (lo, hi) in enumerate(camera.energy_windows_keV, start=1):
        rng = Dataset()
        rng.EnergyWindowLowerLimit = ds_str(lo)
        rng.EnergyWindowUpperLimit = ds_str(hi)
        win = Dataset()
        win.EnergyWindowRangeSequence = sequence(rng)
        win.EnergyWindowName = f"EM{n}"
        windows.append(win)
    ds.EnergyWindowInformationSequence = sequence(*windows)
    ds.NumberOfEnergyWindows = len(windows)
    ds.RadiopharmaceuticalInformationSequence = sequence(radiopharmaceutical_item(
        radiopharmaceutical, dose_value=radiopharmaceutical.total_dose_Bq / 1e6,
        start_datetime=layout.start_datetime))
    # NM Detector: geometry of the reconstructed volume
    det = Dataset()
    det.CollimatorGridName = camera.collimator
    det.CollimatorType = "PARA"
    det.ImagePositionPatient = [ds_str(v) for v in first_position]
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
    if not recon_in_description and camera.reconstruction:
        ds.ReconstructionMethod = camera.reconstruction[:64]
    ds.Units = units
    rwvm = (scaling.scaled and layout.scaling_tags == "RWVM") or (units == "BQML" and layout.rwvm_always_for_bqml)
    if rwvm:
        ds.RealWorldValueMappingSequence = sequence(_rwvm_item(scaling, units))
    elif scaling.scaled:
        ds.RescaleIntercept = ds_str(scaling.intercept)
        ds.RescaleSlope = ds_str(scaling.slope)
    return save_dataset(ds, folder / file_name)
