"""Shared DICOM modules (patient, study, series, equipment, frame of reference, SOP common),
geometry helpers and the atomic, version-independent file writer.

Works with pydicom 2.4 (shipped by Slicer 5.10) and pydicom 3.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian

from .. import __version__
from ..errors import ConsistencyError, InputError
from ..nuclides import get_nuclide
from ..results import atomic_output_path
from .codes import radionuclide_code
from .uids import UID_ROOT

__all__ = ["DicomPatient", "DicomStudy", "Radiopharmaceutical", "PetFrameTiming", "da", "tm", "dt", "ds_str",
           "new_dataset", "add_patient_study", "add_series", "add_equipment", "add_frame_of_reference",
           "add_nm_pet_patient_orientation", "add_image_plane", "add_pixel_module", "code_item", "sequence",
           "save_dataset", "check_folder", "image_array", "radiopharmaceutical_item", "check_radiopharmaceutical",
           "SliceGeometry", "slice_geometry", "MANUFACTURER"]

_PYDICOM_MAJOR = int(pydicom.__version__.split(".")[0])

#: Manufacturer written by the generic layout and for CT, PET and RT Dose.
MANUFACTURER = "LuDosimetry"


@dataclass(frozen=True)
class DicomPatient:
    """Patient module values.

    Attributes
    ----------
    patient_id : str
    patient_name : str
        DICOM PN (``Family^Given``).
    birth_date : str
        ``YYYYMMDD`` or ``""``.
    sex : str
        ``"M"``, ``"F"``, ``"O"`` or ``""``.
    weight_kg : float or None
        Patient weight (kg).
    height_m : float or None
        Patient height (m).
    """

    patient_id: str
    patient_name: str = "Synthetic^Patient"
    birth_date: str = ""
    sex: str = "M"
    weight_kg: float | None = None
    height_m: float | None = None


@dataclass(frozen=True)
class DicomStudy:
    """Study values shared by all series of one imaging session (one frame of reference).

    Attributes
    ----------
    study_uid : str
    study_datetime : datetime
    frame_of_reference_uid : str
        One per timepoint: each timepoint has its own CT and frame of reference.
    study_id, accession_number, description : str
    """

    study_uid: str
    study_datetime: datetime
    frame_of_reference_uid: str
    study_id: str = "1"
    accession_number: str = ""
    description: str = ""


def da(t: datetime) -> str:
    """DICOM DA ``YYYYMMDD``."""
    return t.strftime("%Y%m%d")


def tm(t: datetime) -> str:
    """DICOM TM ``HHMMSS.ffffff`` (microseconds kept so times round-trip exactly)."""
    return t.strftime("%H%M%S.%f")


def dt(t: datetime) -> str:
    """DICOM DT ``YYYYMMDDHHMMSS.ffffff`` with the UTC offset if ``t`` is timezone-aware."""
    s = t.strftime("%Y%m%d%H%M%S.%f")
    return s + t.strftime("%z") if t.tzinfo is not None else s


def ds_str(x: float) -> str:
    """A DICOM DS string (≤ 16 characters) holding ``x`` as exactly as 16 characters allow."""
    x = float(x) + 0.0  # no "-0"
    if not np.isfinite(x):
        raise InputError(f"cannot write non-finite value {x} as DICOM DS", source="DS")
    for p in range(16, 0, -1):
        s = f"{x:.{p}g}"
        if "e" in s:
            mant, exp = s.split("e")
            s = f"{mant}e{int(exp)}"
        if len(s) <= 16:
            return s
    raise InputError(f"cannot write {x} in 16 characters", source="DS")


def new_dataset(sop_class_uid: str, sop_instance_uid: str, *, when: datetime) -> Dataset:
    """A dataset with file meta information and the SOP Common module."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class_uid
    meta.MediaStorageSOPInstanceUID = sop_instance_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = UID_ROOT + "1"
    meta.ImplementationVersionName = f"LUDOSIM_{__version__}"[:16]
    ds = Dataset()
    ds.file_meta = meta
    if _PYDICOM_MAJOR < 3:  # pydicom 3 takes the encoding from the transfer syntax
        ds.is_little_endian = True
        ds.is_implicit_VR = False
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = sop_class_uid
    ds.SOPInstanceUID = sop_instance_uid
    ds.InstanceCreationDate = da(when)
    ds.InstanceCreationTime = tm(when)
    return ds


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


def check_folder(folder: Path | str) -> Path:
    """Create ``folder`` if missing; raise if it is a file."""
    p = Path(folder)
    if p.exists() and not p.is_dir():
        raise InputError("output folder is a file", source=str(p))
    p.mkdir(parents=True, exist_ok=True)
    return p


def image_array(image: sitk.Image, *, source: str) -> np.ndarray:
    """Voxel values [k, j, i] as float64; raise on vector images and non-finite values."""
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError("expected a scalar image", source=source)
    arr = sitk.GetArrayViewFromImage(image).astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise InputError("image holds NaN or infinite values", source=source)
    return arr


def check_radiopharmaceutical(rp: Radiopharmaceutical, acquisition_start: datetime) -> None:
    """Raise unless the activity is finite and > 0 and the acquisition starts at or after injection."""
    get_nuclide(rp.nuclide)
    if not (math.isfinite(rp.total_dose_Bq) and rp.total_dose_Bq > 0):
        raise InputError(f"must be a finite activity > 0 Bq, got {rp.total_dose_Bq}",
                         source="radiopharmaceutical.total_dose_Bq")
    if (acquisition_start.tzinfo is None) != (rp.injection_datetime.tzinfo is None):
        raise InputError("injection and acquisition datetimes must both be naive or both timezone-aware",
                         source="radiopharmaceutical.injection_datetime")
    if acquisition_start < rp.injection_datetime:
        raise ConsistencyError(f"acquisition starts at {acquisition_start.isoformat()}, before the injection at "
                               f"{rp.injection_datetime.isoformat()}", source="radiopharmaceutical.injection_datetime")


def radiopharmaceutical_item(rp: Radiopharmaceutical, *, dose_value: float, start_datetime: bool,
                              start_time: bool = True) -> Dataset:
    """One item of Radiopharmaceutical Information Sequence (0054,0016).

    ``dose_value`` is RadionuclideTotalDose in the unit of the IOD: MBq for NM (PS3.3 C.8.4.10.1.7),
    Bq for PET (C.8.9.2). The half-life (s) and positron fraction come from :mod:`LuDosimetryLib.nuclides`.
    """
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


def add_patient_study(ds: Dataset, patient: DicomPatient, study: DicomStudy) -> None:
    """Patient, General Study and Patient Study modules."""
    ds.PatientName = patient.patient_name
    ds.PatientID = patient.patient_id
    ds.PatientBirthDate = patient.birth_date
    ds.PatientSex = patient.sex
    if patient.weight_kg is not None:
        ds.PatientWeight = ds_str(patient.weight_kg)
    if patient.height_m is not None:
        ds.PatientSize = ds_str(patient.height_m)
    ds.StudyInstanceUID = study.study_uid
    ds.StudyDate = da(study.study_datetime)
    ds.StudyTime = tm(study.study_datetime)
    ds.ReferringPhysicianName = ""
    ds.StudyID = study.study_id
    ds.AccessionNumber = study.accession_number
    if study.description:
        ds.StudyDescription = study.description


def add_series(ds: Dataset, *, modality: str, series_uid: str, series_number: int, description: str,
               series_datetime: datetime | None) -> None:
    """General Series module (PatientPosition HFS: supine, head first)."""
    ds.Modality = modality
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = int(series_number)
    if description:
        ds.SeriesDescription = description
    if series_datetime is not None:
        ds.SeriesDate = da(series_datetime)
        ds.SeriesTime = tm(series_datetime)
    ds.BodyPartExamined = "WHOLEBODY"  # unpaired: Laterality (0020,0060) is then absent
    if modality not in ("NM", "PT"):  # NM/PET: PatientOrientationCodeSequence instead
        ds.PatientPosition = "HFS"


def add_equipment(ds: Dataset, *, manufacturer: str = MANUFACTURER, model: str = "",
                  software: str | None = None) -> None:
    """General Equipment module."""
    ds.Manufacturer = manufacturer
    if model:
        ds.ManufacturerModelName = model
    ds.InstitutionName = "LuDosimetry synthetic data"
    ds.StationName = "LUDOSIM"
    ds.SoftwareVersions = software or f"LuDosimetryLib {__version__}"


def add_frame_of_reference(ds: Dataset, study: DicomStudy) -> None:
    """Frame of Reference module (PositionReferenceIndicator empty: no anatomical landmark)."""
    ds.FrameOfReferenceUID = study.frame_of_reference_uid
    ds.PositionReferenceIndicator = ""


def code_item(value: str, scheme: str, meaning: str) -> Dataset:
    """One item of a code sequence."""
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def add_nm_pet_patient_orientation(ds: Dataset) -> None:
    """NM/PET Patient Orientation module: recumbent, supine, head first (PS3.16 CID 19, 20, 21)."""
    orientation = code_item("102538003", "SCT", "recumbent")
    orientation.PatientOrientationModifierCodeSequence = sequence(code_item("40199007", "SCT", "supine"))
    ds.PatientOrientationCodeSequence = sequence(orientation)
    ds.PatientGantryRelationshipCodeSequence = sequence(code_item("102540008", "SCT", "headfirst"))


def sequence(*items: Dataset) -> DicomSequence:
    """A DICOM sequence of the given items."""
    return DicomSequence(list(items))


def save_dataset(ds: Dataset, path: Path) -> Path:
    """Write ``ds`` as a DICOM Part 10 file atomically (temporary name, then rename)."""
    with atomic_output_path(path) as tmp:
        if _PYDICOM_MAJOR >= 3:
            ds.save_as(tmp, enforce_file_format=True)
        else:
            ds.save_as(tmp, write_like_original=False)
    return Path(path)


@dataclass(frozen=True)
class SliceGeometry:
    """Geometry of an image seen as a stack of DICOM slices.

    Attributes
    ----------
    row_cosines, col_cosines : numpy.ndarray
        Directions (LPS) of increasing column index i and row index j (ImageOrientationPatient).
    normal : numpy.ndarray
        row × col, the normal of the slices.
    positions : numpy.ndarray
        (nz, 3) LPS position (mm) of the first voxel of each slice k (ImagePositionPatient).
    pixel_spacing : tuple of float
        (row spacing = spacing along j, column spacing = spacing along i) (mm), as PixelSpacing.
    slice_spacing : float
        Signed distance (mm) from slice k to slice k+1 along ``normal``.
    """

    row_cosines: np.ndarray
    col_cosines: np.ndarray
    normal: np.ndarray
    positions: np.ndarray
    pixel_spacing: tuple[float, float]
    slice_spacing: float

    @property
    def orientation(self) -> list[str]:
        """ImageOrientationPatient values."""
        return [ds_str(v) for v in (*self.row_cosines, *self.col_cosines)]


def slice_geometry(image: sitk.Image, *, source: str = "image") -> SliceGeometry:
    """Slice geometry of a 3D SimpleITK image (LPS); oblique direction cosines are kept."""
    if image.GetDimension() != 3:
        raise InputError(f"expected a 3D image, got {image.GetDimension()}D", source=source)
    d = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)
    sp = np.asarray(image.GetSpacing(), dtype=float)
    if np.any(sp <= 0) or not np.all(np.isfinite(sp)):
        raise InputError(f"spacing must be finite and > 0 mm, got {tuple(sp)}", source=source)
    if not np.allclose(d.T @ d, np.eye(3), atol=1e-6):
        raise InputError(f"direction cosines must be orthonormal, got {tuple(d.ravel())}", source=source)
    row, col, kdir = d[:, 0], d[:, 1], d[:, 2]
    normal = np.cross(row, col)
    sign = float(np.sign(normal @ kdir))
    nz = image.GetSize()[2]
    origin = np.asarray(image.GetOrigin(), dtype=float)
    positions = origin[None, :] + np.arange(nz)[:, None] * sp[2] * kdir[None, :]
    return SliceGeometry(row, col, normal, positions, (float(sp[1]), float(sp[0])), sign * float(sp[2]))


def add_image_plane(ds: Dataset, geom: SliceGeometry, k: int, *, thickness_mm: float) -> None:
    """Image Plane module of slice ``k`` (and SliceLocation along the normal)."""
    ds.PixelSpacing = [ds_str(v) for v in geom.pixel_spacing]
    ds.ImageOrientationPatient = geom.orientation
    ds.ImagePositionPatient = [ds_str(v) for v in geom.positions[k]]
    ds.SliceThickness = ds_str(thickness_mm)
    ds.SliceLocation = ds_str(float(geom.positions[k] @ geom.normal))


def add_pixel_module(ds: Dataset, pixels: np.ndarray, *, signed: bool) -> None:
    """Image Pixel module for one monochrome 16-bit frame or a stack of frames ([f,] rows, cols)."""
    arr = np.ascontiguousarray(pixels.astype("<i2" if signed else "<u2"))
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = int(arr.shape[-2]), int(arr.shape[-1])
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1 if signed else 0
    ds.PixelData = arr.tobytes()
