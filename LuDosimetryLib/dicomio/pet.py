"""PET Image Storage writer: one file per slice per frame, Units BQML, decay correction made explicit.

Frame values come in not decay-corrected (the frame-average concentration, Bq/mL); the writer applies
the declared Decay Correction and writes DecayFactor and FrameReferenceTime consistently with it.

References
----------
DICOM PS3.3 A.21 (PET Image IOD), C.8.9.1 (PET Series: Units, Decay Correction, Series reference
time), C.8.9.2 (PET Isotope: RadionuclideTotalDose in Bq), C.8.9.4 (PET Image: Frame Reference Time,
Decay Factor). Frame reference time for a decaying source: the time at which the instantaneous
activity equals the frame-average activity.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from pydicom.uid import UID

from ..errors import ConsistencyError, InputError
from ..nuclides import get_nuclide
from ..timing import DecayState, frame_average_decay_factor
from ..units import S_PER_H
from .modules import (
    DicomPatient,
    DicomStudy,
    PetFrameTiming,
    Radiopharmaceutical,
    add_equipment,
    add_frame_of_reference,
    add_image_plane,
    add_nm_pet_patient_orientation,
    add_patient_study,
    add_pixel_module,
    add_series,
    check_folder,
    check_radiopharmaceutical,
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

__all__ = ["PET_IMAGE_STORAGE", "frame_reference_offset_s", "pet_decay_factor", "write_pet_series"]

PET_IMAGE_STORAGE = UID("1.2.840.10008.5.1.4.1.1.128")

Progress = Callable[[float, str], None] | None


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
            raise ConsistencyError(
                f"frame {n} is not on the grid of frame 0 (size {f.GetSize()} vs {size0}, origin "
                f"{f.GetOrigin()} vs {frames[0].GetOrigin()}, spacing {f.GetSpacing()} vs {frames[0].GetSpacing()})",
                source="frames")
    check_radiopharmaceutical(radiopharmaceutical, timings[0].start)
    folder = check_folder(folder)
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
        values = image_array(img, source=f"PET frame {n}")
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
            ds.RadiopharmaceuticalInformationSequence = sequence(radiopharmaceutical_item(
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
