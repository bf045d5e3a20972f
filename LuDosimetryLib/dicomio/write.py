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

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from pydicom.dataset import Dataset
from pydicom.tag import Tag
from pydicom.uid import UID

from ..errors import InputError
from .modules import (
    DicomPatient,
    DicomStudy,
    PetFrameTiming,
    Radiopharmaceutical,
    add_equipment,
    add_frame_of_reference,
    add_image_plane,
    add_patient_study,
    add_pixel_module,
    add_series,
    check_folder,
    da,
    ds_str,
    image_array,
    new_dataset,
    save_dataset,
    sequence,
    slice_geometry,
    tm,
)
from .nm import NM_LAYOUTS, NM_VENDORS, write_nm_tomo
from .pet import frame_reference_offset_s, pet_decay_factor, write_pet_series
from .uids import new_uid

__all__ = ["DicomPatient", "DicomStudy", "Radiopharmaceutical", "PetFrameTiming", "new_uid",
           "write_ct_series", "write_nm_tomo", "write_pet_series", "write_rt_dose",
           "NM_VENDORS", "NM_LAYOUTS", "frame_reference_offset_s", "pet_decay_factor"]

CT_IMAGE_STORAGE = UID("1.2.840.10008.5.1.4.1.1.2")
RT_DOSE_STORAGE = UID("1.2.840.10008.5.1.4.1.1.481.2")
RT_PLAN_STORAGE = UID("1.2.840.10008.5.1.4.1.1.481.5")

#: CT stored value = HU − intercept, as most scanners write it.
CT_RESCALE_INTERCEPT = -1024.0

Progress = Callable[[float, str], None] | None


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
    folder = check_folder(folder)
    hu = np.rint(image_array(image, source="CT image"))
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
        without it ``dciodvfy`` reports that one error; pydicom and GDCM read the dose regardless.
    bits_allocated : {16, 32}
        16 (default) passes ``dciodvfy``; the Debian dicom3tools build aborts on 32-bit pixel
        data ("Assertion `bitsallocated <= bytesinword*8u' failed"), so 32 is not checked by it.

    Notes
    -----
    Stored unsigned; dose (Gy) = stored × DoseGridScaling, with DoseGridScaling = max / (2^bits − 1):
    quantisation ≤ max / 131070 (16 bit) or max / 8.6e9 (32 bit). GridFrameOffsetVector holds the
    offsets (mm) of each frame from ImagePositionPatient along the slice normal (first value 0).
    """
    if bits_allocated not in (16, 32):
        raise InputError(f"must be 16 or 32, got {bits_allocated}", source="bits_allocated")
    values = image_array(dose, source="dose image")
    if values.min() < 0:
        raise InputError(f"dose must be ≥ 0 Gy, min is {values.min():g}", source="dose image")
    geom = slice_geometry(dose, source="dose image")
    folder = check_folder(folder)
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

