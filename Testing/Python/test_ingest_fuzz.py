"""Corrupted headers end in a named LuDosimetryError, an unchanged result, or a changed value
shown with its source; never another exception (property-based, bounded)."""

from __future__ import annotations

import shutil
import warnings
from datetime import datetime, timedelta

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ingest_builders import ct_series, nm_tomo, write_series
from pydicom.uid import generate_uid

from LuDosimetryLib.calibration.store import CalibrationEntry, CalibrationStore
from LuDosimetryLib.errors import LuDosimetryError
from LuDosimetryLib.ingest import load_patient
from LuDosimetryLib.model import Camera
from LuDosimetryLib.results import RunRecord

INJ = datetime(2026, 3, 2, 9, 0, 0)
CAM = Camera("TESTVENDOR", "Symbia Intevo", "MEGP", ((187.2, 228.8),), "OSEM 4i8s AC SC")

#: (path of sequence items, keyword) of header values ingest reads.
TARGETS = [
    ((), "Modality"), ((), "ImageType"), ((), "Rows"), ((), "Columns"), ((), "NumberOfFrames"),
    ((), "PixelSpacing"), ((), "SpacingBetweenSlices"), ((), "SliceThickness"), ((), "AcquisitionDate"),
    ((), "AcquisitionTime"), ((), "SeriesDate"), ((), "CorrectedImage"), ((), "RescaleSlope"), ((), "Manufacturer"),
    ((), "ManufacturerModelName"), ((), "SeriesDescription"), ((), "PatientID"), ((), "SeriesInstanceUID"),
    ((), "FrameOfReferenceUID"), ((), "Units"), ((), "DecayCorrection"),
    (("DetectorInformationSequence",), "ImagePositionPatient"),
    (("DetectorInformationSequence",), "ImageOrientationPatient"),
    (("DetectorInformationSequence",), "CollimatorGridName"),
    (("RotationInformationSequence",), "ActualFrameDuration"),
    (("RotationInformationSequence",), "NumberOfFramesInRotation"),
    (("RadiopharmaceuticalInformationSequence",), "RadiopharmaceuticalStartDateTime"),
    (("RadiopharmaceuticalInformationSequence",), "RadiopharmaceuticalStartTime"),
    (("RadiopharmaceuticalInformationSequence",), "RadionuclideTotalDose"),
    (("RadiopharmaceuticalInformationSequence",), "Radiopharmaceutical"),
    (("RadiopharmaceuticalInformationSequence", "RadionuclideCodeSequence"), "CodeMeaning"),
    (("EnergyWindowInformationSequence", "EnergyWindowRangeSequence"), "EnergyWindowLowerLimit"),
]
#: CT slice attributes (one slice of the paired CT is corrupted).
CT_TARGETS = [((), kw) for kw in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "Rows",
                                  "RescaleSlope", "RescaleIntercept", "PatientID", "SeriesInstanceUID",
                                  "FrameOfReferenceUID", "Modality", "StudyInstanceUID", "AcquisitionTime")]
_NUMERIC_VR = {"US", "UL", "SS", "SL", "FL", "FD", "IS", "DS"}


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzzbase")
    rng = np.random.default_rng(3)
    for_uid = generate_uid()
    start = INJ + timedelta(hours=24)
    ds = nm_tomo(rng.uniform(10, 100, (6, 5, 5)), origin=(-8.0, -8.0, 0.0), acq_start=start, injection=INJ,
                 for_uid=for_uid)
    write_series(ds, root / "dicom" / "NM")
    write_series(ct_series(np.zeros((6, 5, 5)), origin=(-8.0, -8.0, 0.0), when=start, for_uid=for_uid),
                 root / "dicom" / "CT")
    store, _ = CalibrationStore().add(CalibrationEntry(CAM.key(), 9.5, 0.02, 2e-6, date="2026-01-01"))
    store.save(root / "calibration.json")
    return root, _summary(load_patient(root))


def _summary(p) -> dict:
    out = {}
    for c in p.cycles:
        a = c.administration
        out["injection"] = (a.injection_datetime, round(a.injected_activity_Bq, 0), a.nuclide)
        for tp in c.timepoints:
            for i, b in enumerate(tp.beds):
                arr = sitk.GetArrayViewFromImage(b.image)
                out[f"bed{i}"] = (round(b.time_h, 9), float(np.float32(arr.sum())), b.image.GetSize(),
                                  tuple(np.round(b.image.GetOrigin(), 4)), tuple(np.round(b.image.GetSpacing(), 4)),
                                  tuple(np.round(b.image.GetDirection(), 4)))
            ct = tp.ct
            out[f"{tp.label}_ct"] = None if ct is None else (
                float(sitk.GetArrayViewFromImage(ct).sum()), ct.GetSize(), tuple(np.round(ct.GetOrigin(), 4)),
                tuple(np.round(ct.GetSpacing(), 4)), tuple(np.round(ct.GetDirection(), 4)))
    return out


def _sources(p, rec) -> str:
    parts = [w["message"] for w in rec.warnings]
    for c in p.cycles:
        parts += list(c.administration.provenance.values())
        for tp in c.timepoints:
            parts += [str(v) for v in tp.provenance.values()]
            for b in tp.beds:
                parts += [str(v) for v in b.provenance.values()]
    return " | ".join(parts)


values = st.one_of(st.just(None), st.just(""), st.text(st.characters(codec="ascii", categories=("L", "N", "P")),
                                                       max_size=10),
                   st.integers(-5, 70000), st.floats(-1e7, 1e7, allow_nan=False))


@settings(max_examples=50, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(target=st.one_of(st.sampled_from(TARGETS).map(lambda t: ("NM", t)),
                        st.sampled_from(CT_TARGETS).map(lambda t: ("CT", t))), value=values)
def test_corrupted_headers_end_in_named_error_or_sourced_change(base, tmp_path_factory, target, value):
    root, truth = base
    work = tmp_path_factory.mktemp("fuzz")
    shutil.copytree(root, work, dirs_exist_ok=True)
    which, target = target
    f = work / "dicom" / which / ("IM_0000.dcm" if which == "NM" else "IM_0002.dcm")
    ds = pydicom.dcmread(f)
    item = ds
    for seq in target[0]:
        item = item[seq].value[0]
    kw = target[1]
    elem = item[kw] if kw in item else None
    binary = elem is not None and elem.VR in ("US", "UL", "SS", "SL", "FL", "FD")
    if (value is None and elem is None) or (binary and isinstance(value, str)):
        return  # nothing to delete, or a value pydicom cannot encode: nothing to ingest
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            if value is None:
                del item[kw]
            elif elem is not None and elem.VR in _NUMERIC_VR and isinstance(value, str):
                item[kw].value = value  # invalid text in a numeric text element (IS, DS): written as is
            elif elem is not None and elem.VR in ("US", "UL", "SS", "SL", "IS"):
                item[kw].value = int(value)
            elif elem is not None and elem.VR == "DS":
                item[kw].value = f"{value:.8g}"[:16]
            else:
                setattr(item, kw, str(value))
            ds.save_as(f)
        except (ValueError, TypeError, OverflowError, OSError, struct_error()):
            return  # pydicom itself cannot write this value: nothing to ingest
    rec = RunRecord("fuzz")
    try:
        p = load_patient(work, record=rec)
    except LuDosimetryError as exc:
        assert str(exc)  # named error with a message
        return
    got = _summary(p)
    if got == truth:
        return
    sources = _sources(p, rec)
    assert kw in sources, f"{kw} = {value!r} changed the result without saying so:\n{got}\nvs\n{truth}\n{sources}"


def struct_error():
    import struct

    return struct.error
