"""Test-only DICOM builders for the ingest tests (pydicom; no pixel compression).

Minimal but standard-shaped objects: NM reconstructed tomography (one multi-frame file, geometry
in the Detector Information Sequence, optional negative slice spacing), CT and PT single-slice
series, RTSTRUCT and DICOM SEG. Used until/alongside LuDosimetryLib.dicomio.write.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

NM_STORAGE = "1.2.840.10008.5.1.4.1.1.20"
CT_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
PT_STORAGE = "1.2.840.10008.5.1.4.1.1.128"
RTSTRUCT_STORAGE = "1.2.840.10008.5.1.4.1.1.481.3"
SEG_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"
AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def _da(d: datetime) -> str:
    return d.strftime("%Y%m%d")


def _tm(d: datetime) -> str:
    return d.strftime("%H%M%S.%f")


def _base(sop_class: str, modality: str, *, patient_id: str, study_uid: str, series_uid: str, for_uid: str,
          when: datetime) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = sop_class
    ds.Modality = modality
    ds.PatientID = patient_id
    ds.PatientName = "Test^Patient"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.FrameOfReferenceUID = for_uid
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = _da(when)
    ds.StudyTime = ds.SeriesTime = ds.AcquisitionTime = _tm(when)
    ds.Manufacturer = "TESTVENDOR"
    return ds


def _pixels(ds: Dataset, stored: np.ndarray) -> None:
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1 if stored.dtype == np.int16 else 0
    ds.PixelData = np.ascontiguousarray(stored).tobytes()


def radiopharm_item(*, nuclide_meaning="^177^Lutetium", pharm="177Lu-PSMA-617", injection: datetime | None,
                    dose: float | None = 7400.0, time_only: bool = False) -> Dataset:
    it = Dataset()
    code = Dataset()
    code.CodeValue = "C-145A8"
    code.CodingSchemeDesignator = "SRT"
    code.CodeMeaning = nuclide_meaning
    it.RadionuclideCodeSequence = Sequence([code])
    it.Radiopharmaceutical = pharm
    if injection is not None:
        it.RadiopharmaceuticalStartTime = _tm(injection)
        if not time_only:
            it.RadiopharmaceuticalStartDateTime = _da(injection) + _tm(injection)
    if dose is not None:
        it.RadionuclideTotalDose = f"{dose:.6g}"
    return it


def nm_tomo(counts_kji: np.ndarray, *, origin=(0.0, 0.0, 0.0), spacing=(4.0, 4.0, 4.0), iop=AXIAL,
            acq_start: datetime, frame_duration_s=10.0, projections=60, injection: datetime | None,
            dose_MBq: float | None = 7400.0, patient_id="P1", study_uid=None, for_uid=None, series_uid=None,
            negative_spacing=False, corrected=("ATTN", "SCAT"), decay_correction=None, units=None,
            rwvm_bq_per_ml=False, collimator="MEGP", windows=((187.2, 228.8),), recon="OSEM 4i8s AC SC",
            model="Symbia Intevo", time_only=False, nuclide_meaning="^177^Lutetium") -> Dataset:
    """An NM RECON TOMO data set whose reconstructed values equal ``counts_kji`` on the grid given.

    Values are stored as uint16 with a RescaleSlope (Philips-like) so any non-negative float is
    represented to 1 part in 60000 of the maximum; ``stored_values`` gives the exact values.
    """
    for_uid = for_uid or generate_uid()
    ds = _base(NM_STORAGE, "NM", patient_id=patient_id, study_uid=study_uid or generate_uid(),
               series_uid=series_uid or generate_uid(), for_uid=for_uid, when=acq_start)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "RECON TOMO", "EMISSION"]
    ds.ManufacturerModelName = model
    ds.SeriesDescription = recon
    nk, nj, ni = counts_kji.shape
    ds.Rows, ds.Columns, ds.NumberOfFrames = nj, ni, nk
    ds.PixelSpacing = [f"{spacing[1]:g}", f"{spacing[0]:g}"]
    ds.SliceThickness = f"{spacing[2]:g}"
    D = np.column_stack([np.asarray(iop[:3]), np.asarray(iop[3:]), np.cross(iop[:3], iop[3:])])
    arr = np.asarray(counts_kji, dtype=np.float64)
    o = np.asarray(origin, dtype=float)
    if negative_spacing:
        ds.SpacingBetweenSlices = f"{-spacing[2]:g}"
        o = o + (nk - 1) * spacing[2] * D[:, 2]
        arr = arr[::-1]
    else:
        ds.SpacingBetweenSlices = f"{spacing[2]:g}"
    det = Dataset()
    det.ImagePositionPatient = [f"{x:.6f}" for x in o]
    det.ImageOrientationPatient = [f"{x:.6f}" for x in iop]
    det.CollimatorGridName = collimator
    ds.DetectorInformationSequence = Sequence([det])
    rot = Dataset()
    rot.ActualFrameDuration = round(frame_duration_s * 1000)
    rot.NumberOfFramesInRotation = projections
    ds.RotationInformationSequence = Sequence([rot])
    ew = []
    for lo, hi in windows:
        item, rng = Dataset(), Dataset()
        rng.EnergyWindowLowerLimit = f"{lo:g}"
        rng.EnergyWindowUpperLimit = f"{hi:g}"
        item.EnergyWindowRangeSequence = Sequence([rng])
        ew.append(item)
    ds.EnergyWindowInformationSequence = Sequence(ew)
    ds.RadiopharmaceuticalInformationSequence = Sequence([radiopharm_item(
        injection=injection, dose=dose_MBq, time_only=time_only, nuclide_meaning=nuclide_meaning)])
    if corrected is not None:
        ds.CorrectedImage = list(corrected)
    if decay_correction:
        ds.DecayCorrection = decay_correction
    if units:
        ds.Units = units
    vmax = float(arr.max()) if arr.size and arr.max() > 0 else 1.0
    slope = vmax / 60000.0
    stored = np.round(arr / slope).astype(np.uint16)
    if rwvm_bq_per_ml:
        rw = Dataset()
        rw.RealWorldValueSlope = slope
        rw.RealWorldValueIntercept = 0.0
        unit = Dataset()
        unit.CodeValue = "Bq/ml"
        unit.CodingSchemeDesignator = "UCUM"
        unit.CodeMeaning = "Becquerels/milliliter"
        rw.MeasurementUnitsCodeSequence = Sequence([unit])
        ds.RealWorldValueMappingSequence = Sequence([rw])
    else:
        ds.RescaleSlope = f"{slope:.10g}"
        ds.RescaleIntercept = "0"
    _pixels(ds, stored)
    return ds


def stored_values(ds: Dataset) -> np.ndarray:
    """The exact values an NM data set of :func:`nm_tomo` represents, in frame order."""
    px = np.frombuffer(ds.PixelData, dtype=np.uint16).reshape(int(ds.NumberOfFrames), ds.Rows, ds.Columns)
    if "RealWorldValueMappingSequence" in ds:
        slope = float(ds.RealWorldValueMappingSequence[0].RealWorldValueSlope)
    else:
        slope = float(ds.RescaleSlope)
    return px.astype(np.float64) * slope


def ct_series(hu_kji: np.ndarray, *, origin=(0.0, 0.0, 0.0), spacing=(4.0, 4.0, 4.0), iop=AXIAL,
              when: datetime, patient_id="P1", study_uid=None, for_uid=None, series_uid=None) -> list[Dataset]:
    """CT slices (int16 + RescaleIntercept −1024)."""
    study_uid = study_uid or generate_uid()
    series_uid = series_uid or generate_uid()
    for_uid = for_uid or generate_uid()
    D = np.column_stack([np.asarray(iop[:3]), np.asarray(iop[3:]), np.cross(iop[:3], iop[3:])])
    out = []
    for k in range(hu_kji.shape[0]):
        ds = _base(CT_STORAGE, "CT", patient_id=patient_id, study_uid=study_uid, series_uid=series_uid,
                   for_uid=for_uid, when=when)
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.Rows, ds.Columns = hu_kji.shape[1:]
        ds.PixelSpacing = [f"{spacing[1]:g}", f"{spacing[0]:g}"]
        ds.SliceThickness = f"{spacing[2]:g}"
        ds.ImageOrientationPatient = [f"{x:.6f}" for x in iop]
        ds.ImagePositionPatient = [f"{x:.6f}" for x in np.asarray(origin) + k * spacing[2] * D[:, 2]]
        ds.InstanceNumber = k + 1
        ds.RescaleSlope, ds.RescaleIntercept = "1", "-1024"
        _pixels(ds, np.round(hu_kji[k] + 1024).astype(np.int16))
        out.append(ds)
    return out


def pt_series(frames_kji: list[np.ndarray], *, starts: list[datetime], durations_s: list[float],
              origin=(0.0, 0.0, 0.0), spacing=(4.0, 4.0, 4.0), injection: datetime | None, dose_Bq=150e6,
              nuclide_meaning="^68^Gallium", pharm="68Ga-PSMA-11", decay_correction="START", patient_id="P1",
              study_uid=None, for_uid=None, series_uid=None, half_life_h=None, units="BQML") -> list[Dataset]:
    """PT slices (one file per slice per frame); values are Bq/mL at mid-frame, decay-corrected as declared."""
    study_uid = study_uid or generate_uid()
    series_uid = series_uid or generate_uid()
    for_uid = for_uid or generate_uid()
    lam = np.log(2) / half_life_h if half_life_h else 0.0
    series_start = starts[0]
    out = []
    n_k = frames_kji[0].shape[0]
    for f, (vol, st, dur) in enumerate(zip(frames_kji, starts, durations_s)):
        mid = st + timedelta(seconds=dur / 2)
        if decay_correction == "START":
            fac = np.exp(lam * (mid - series_start).total_seconds() / 3600)
        elif decay_correction == "ADMIN":
            fac = np.exp(lam * (mid - injection).total_seconds() / 3600)
        else:
            fac = 1.0
        for k in range(n_k):
            ds = _base(PT_STORAGE, "PT", patient_id=patient_id, study_uid=study_uid, series_uid=series_uid,
                       for_uid=for_uid, when=st)
            ds.SeriesDate, ds.SeriesTime = _da(series_start), _tm(series_start)
            ds.ImageType = ["ORIGINAL", "PRIMARY"]
            ds.SeriesType = ["DYNAMIC" if len(frames_kji) > 1 else "STATIC", "IMAGE"]
            ds.NumberOfTimeSlices = len(frames_kji)
            ds.NumberOfSlices = n_k
            ds.ImageIndex = f * n_k + k + 1
            ds.Units = units
            ds.DecayCorrection = decay_correction
            ds.CorrectedImage = ["DECY", "ATTN", "SCAT"] if decay_correction != "NONE" else ["ATTN", "SCAT"]
            ds.ActualFrameDuration = round(dur * 1000)
            ds.FrameReferenceTime = f"{(mid - series_start).total_seconds() * 1000:.3f}"
            ds.DecayFactor = f"{fac:.10g}"
            ds.Rows, ds.Columns = vol.shape[1:]
            ds.PixelSpacing = [f"{spacing[1]:g}", f"{spacing[0]:g}"]
            ds.SliceThickness = f"{spacing[2]:g}"
            ds.ImageOrientationPatient = [f"{x:.6f}" for x in AXIAL]
            ds.ImagePositionPatient = [f"{x:.6f}" for x in (origin[0], origin[1], origin[2] + k * spacing[2])]
            val = vol[k] * fac
            slope = max(float(val.max()), 1e-9) / 30000.0
            ds.RescaleSlope, ds.RescaleIntercept = f"{slope:.10g}", "0"
            ds.RadiopharmaceuticalInformationSequence = Sequence([radiopharm_item(
                nuclide_meaning=nuclide_meaning, pharm=pharm, injection=injection, dose=dose_Bq)])
            _pixels(ds, np.round(val / slope).astype(np.int16))
            out.append(ds)
    return out


def write_series(datasets, folder: Path, prefix="IM") -> list[Path]:
    """Write data sets as ``prefix_NNNN.dcm`` in ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, ds in enumerate(datasets if isinstance(datasets, list) else [datasets]):
        p = folder / f"{prefix}_{i:04d}.dcm"
        ds.save_as(p, enforce_file_format=True)
        paths.append(p)
    return paths


def rtstruct(rois: dict[str, list[np.ndarray]], *, patient_id="P1", for_uid: str, when: datetime) -> Dataset:
    """An RTSTRUCT with closed planar contours (each an (n, 3) LPS array in mm) per ROI name."""
    ds = _base(RTSTRUCT_STORAGE, "RTSTRUCT", patient_id=patient_id, study_uid=generate_uid(),
               series_uid=generate_uid(), for_uid=for_uid, when=when)
    ref = Dataset()
    ref.FrameOfReferenceUID = for_uid
    ds.ReferencedFrameOfReferenceSequence = Sequence([ref])
    ss, rc = [], []
    for n, (name, contours) in enumerate(rois.items(), start=1):
        s = Dataset()
        s.ROINumber = n
        s.ROIName = name
        s.ReferencedFrameOfReferenceUID = for_uid
        ss.append(s)
        c = Dataset()
        c.ReferencedROINumber = n
        seq = []
        for pts in contours:
            ci = Dataset()
            ci.ContourGeometricType = "CLOSED_PLANAR"
            ci.NumberOfContourPoints = len(pts)
            ci.ContourData = [f"{x:.4f}" for x in np.asarray(pts).ravel()]
            seq.append(ci)
        c.ContourSequence = Sequence(seq)
        rc.append(c)
    ds.StructureSetROISequence = Sequence(ss)
    ds.ROIContourSequence = Sequence(rc)
    return ds


def dicom_seg(masks: dict[str, np.ndarray], *, origin, spacing, patient_id="P1", for_uid: str,
              when: datetime) -> Dataset:
    """A BINARY DICOM SEG: one frame per (segment, slice that holds voxels), axial, on the given grid."""
    from pydicom.pixels import pack_bits

    ds = _base(SEG_STORAGE, "SEG", patient_id=patient_id, study_uid=generate_uid(), series_uid=generate_uid(),
               for_uid=for_uid, when=when)
    ds.SegmentationType = "BINARY"
    segs, frames, pfg = [], [], []
    for n, (name, m) in enumerate(masks.items(), start=1):
        s = Dataset()
        s.SegmentNumber = n
        s.SegmentLabel = name
        s.SegmentAlgorithmType = "MANUAL"
        segs.append(s)
        for k in range(m.shape[0]):
            if not m[k].any():
                continue
            frames.append(m[k].astype(np.uint8))
            fg, pos, sid = Dataset(), Dataset(), Dataset()
            pos.ImagePositionPatient = [f"{origin[0]:.6f}", f"{origin[1]:.6f}", f"{origin[2] + k * spacing[2]:.6f}"]
            fg.PlanePositionSequence = Sequence([pos])
            sid.ReferencedSegmentNumber = n
            fg.SegmentIdentificationSequence = Sequence([sid])
            pfg.append(fg)
    ds.SegmentSequence = Sequence(segs)
    ds.PerFrameFunctionalGroupsSequence = Sequence(pfg)
    sh, po, pm = Dataset(), Dataset(), Dataset()
    po.ImageOrientationPatient = [f"{x:.6f}" for x in AXIAL]
    pm.PixelSpacing = [f"{spacing[1]:g}", f"{spacing[0]:g}"]
    pm.SliceThickness = f"{spacing[2]:g}"
    sh.PlaneOrientationSequence = Sequence([po])
    sh.PixelMeasuresSequence = Sequence([pm])
    ds.SharedFunctionalGroupsSequence = Sequence([sh])
    arr = np.stack(frames)
    ds.NumberOfFrames = arr.shape[0]
    ds.Rows, ds.Columns = arr.shape[1:]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 1
    ds.HighBit = 0
    ds.PixelRepresentation = 0
    ds.PixelData = pack_bits(arr.ravel())
    return ds
