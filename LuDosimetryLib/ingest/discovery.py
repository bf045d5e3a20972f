"""Find and classify the image series in a patient folder tree (headers only, no pixel data).

Series are grouped by Series Instance UID and classified:

``CT``        Modality CT.
``SPECT``     NM reconstructed tomography (Image Type value 3 contains ``RECON``), and
              quantitative SPECT stored as PT (a PT series whose radionuclide is not a positron
              emitter used for PET, e.g. 177Lu from Siemens xSPECT Quant).
``PET``       PT with a PET nuclide; ``dynamic`` when it holds more than one time frame.
``SEG``, ``RTSTRUCT``  segmentations.
``OTHER``     anything else (NM projections, screenshots, reports), listed but not used.

Each emission series is paired with its CT: same Frame of Reference UID, else same study, else
the CT nearest in time (within 2 h); among several candidates the nearest in time wins.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from ..errors import ConsistencyError, DicomError
from ..timing import hours_between
from .diagnosis import Diagnosis, attempt
from .dicomtags import Sourced, first_item, get_datetime, get_str, read_header_located, tag_label
from .injection import parse_nuclide_text

__all__ = ["SeriesInfo", "scan_folder", "classify", "pair_ct", "ct_candidates", "acquisition_start",
           "SKIPPED_SUFFIXES"]

#: Files with these suffixes are never read as DICOM.
SKIPPED_SUFFIXES = (".json", ".csv", ".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd", ".raw", ".txt", ".md",
                    ".html", ".png", ".jpg", ".jpeg", ".pdf", ".xml", ".py", ".zip", ".log", ".db", ".ini", ".lnk",
                    ".bak", ".tmp", ".sh", ".bat", ".exe", ".dll")
_PET_NUCLIDES = {"F-18", "Ga-68", "C-11", "N-13", "O-15", "Cu-64", "Zr-89", "Rb-82", "I-124"}
PAIR_MAX_H = 2.0


@dataclass(frozen=True)
class SeriesInfo:
    """One series found on disk.

    Attributes
    ----------
    series_uid, kind, modality : str
    files : tuple of Path
        Sorted file names.
    patient_id, study_uid, frame_of_reference_uid, description : str
    acquisition_start : datetime or None
        Earliest acquisition start over the series' files.
    dynamic : bool
        PET with more than one time frame.
    header : pydicom.Dataset
        Header of the first file (no pixel data).
    headers : tuple of pydicom.Dataset
        Header of every file (no pixel data), in the order of ``files``: read once by
        :func:`scan_folder`, so loading a series parses no header again. Empty when the series
        was not built by a scan (the loaders then read the headers).
    pixel_offsets : tuple of (int or None)
        Byte offset of each file's Pixel Data element
        (:func:`~LuDosimetryLib.ingest.dicomtags.read_header_located`), in the order of ``files``.
    """

    series_uid: str
    kind: str
    modality: str
    files: tuple[Path, ...]
    patient_id: str = ""
    study_uid: str = ""
    frame_of_reference_uid: str = ""
    description: str = ""
    acquisition_start: datetime | None = None
    dynamic: bool = False
    header: object = field(default=None, compare=False, repr=False)
    headers: tuple = field(default=(), compare=False, repr=False)
    pixel_offsets: tuple[int | None, ...] = field(default=(), compare=False, repr=False)

    @property
    def folder(self) -> Path:
        """The folder of the series' first file."""
        return self.files[0].parent

    @property
    def name(self) -> str:
        """A short name for messages: the first file (and the count)."""
        return str(self.files[0]) + (f" (+{len(self.files) - 1} files)" if len(self.files) > 1 else "")


def acquisition_start(ds, *, source: str) -> Sourced | None:
    """Acquisition start: Acquisition DateTime, else Acquisition Date/Time (date from Acquisition, Series, Study)."""
    return get_datetime(ds, source=source, dt_keyword="AcquisitionDateTime",
                        date_keywords=("AcquisitionDate", "SeriesDate", "StudyDate"), time_keyword="AcquisitionTime")


def _header_nuclide(ds) -> str | None:
    item = first_item(ds, "RadiopharmaceuticalInformationSequence")
    if item is None:
        return None
    code = first_item(item, "RadionuclideCodeSequence")
    for text in (code.get("CodeMeaning", "") if code is not None else "", item.get("Radiopharmaceutical", "")):
        if text:
            n = parse_nuclide_text(str(text))
            if n:
                return n
    return None


def classify(ds) -> tuple[str, bool]:
    """(kind, dynamic) of a series from one header; see the module docstring."""
    mod = str(ds.get("Modality", "")).upper()
    if mod == "CT":
        return "CT", False
    if mod in ("SEG", "RTSTRUCT"):
        return mod, False
    if mod == "NM":
        it = [str(x).upper() for x in (ds.get("ImageType", None) or [])]
        if any("RECON" in x for x in it[2:]):
            return "SPECT", False
        det = first_item(ds, "DetectorInformationSequence")
        if not it and det is not None and "ImageOrientationPatient" in det and "SpacingBetweenSlices" in ds:
            return "SPECT", False
        return "OTHER", False
    if mod == "PT":
        nuc = _header_nuclide(ds)
        if nuc is not None and nuc not in _PET_NUCLIDES:
            return "SPECT", False
        try:
            n_time = int(ds.get("NumberOfTimeSlices", 1) or 1)
        except (TypeError, ValueError):
            n_time = 1
        st = str(ds.get("SeriesType", "")).upper()
        return "PET", n_time > 1 or "DYNAMIC" in st
    return "OTHER", False


def _is_skipped(p: Path) -> bool:
    name = p.name.lower()
    return name.startswith(".") or name.endswith(SKIPPED_SUFFIXES) or name in ("dicomdir", "readme")


def scan_folder(folder: str | Path, *, progress: Callable[[float, str], None] | None = None,
                diagnosis: Diagnosis | None = None) -> tuple[SeriesInfo, ...]:
    """Read every DICOM header under ``folder`` and return the series found, in acquisition order.

    With a :class:`~LuDosimetryLib.ingest.diagnosis.Diagnosis`, a file that cannot be read is
    recorded there and left out, and files of several patients are recorded, instead of raising.

    Raises
    ------
    DicomError
        A file that is not DICOM or is truncated (files with the suffixes in
        :data:`SKIPPED_SUFFIXES` are not read); a header without Series Instance UID.
    ConsistencyError
        Files of more than one patient.
    """
    root = Path(folder)
    files = sorted(p for p in root.rglob("*") if p.is_file() and not _is_skipped(p)
                   and not any(part.startswith(".") for part in p.relative_to(root).parts))
    groups: dict[str, list[tuple[Path, object, int | None]]] = {}
    for i, f in enumerate(files):
        with attempt(diagnosis):
            ds, offset = read_header_located(f)
            uid = get_str(ds, "SeriesInstanceUID", source=str(f))
            if uid is None:
                raise DicomError("is missing; cannot group the file into a series", source=str(f),
                                 tag=tag_label("SeriesInstanceUID"))
            groups.setdefault(uid.value, []).append((f, ds, offset))
        if progress and (i % 50 == 0 or i == len(files) - 1):
            progress((i + 1) / max(len(files), 1), f"read {i + 1}/{len(files)} headers")
    out = []
    patients: dict[str, Path] = {}
    for uid, items in groups.items():
        f0, ds0, _ = items[0]
        pid = str(ds0.get("PatientID", "") or "")
        for f, ds, _ in items:
            p = str(ds.get("PatientID", "") or "")
            patients.setdefault(p, f)
        kind, dynamic = classify(ds0)
        starts = [s.value for f, ds, _ in items if (s := acquisition_start(ds, source=str(f))) is not None]
        desc = get_str(ds0, "SeriesDescription", source=str(f0))
        out.append(SeriesInfo(uid, kind, str(ds0.get("Modality", "")), tuple(f for f, _, _ in items), pid,
                              str(ds0.get("StudyInstanceUID", "") or ""),
                              str(ds0.get("FrameOfReferenceUID", "") or ""), desc.value if desc else "",
                              min(starts) if starts else None, dynamic, ds0, tuple(ds for _, ds, _ in items),
                              tuple(o for _, _, o in items)))
    if len(patients) > 1:
        (p1, f1), (p2, f2) = list(patients.items())[:2]
        with attempt(diagnosis):
            raise ConsistencyError(f"PatientID (0010,0020) {p1!r} in {f1} but {p2!r} in {f2}; expected one patient "
                                   "per folder", source=str(root))
    out.sort(key=lambda s: (s.acquisition_start or datetime.max, s.series_uid))
    return tuple(out)


def ct_candidates(series: SeriesInfo, cts: Sequence[SeriesInfo]) -> tuple[str, list[SeriesInfo]]:
    """The CT series that may belong to an emission series, at the first level that matches.

    Returns the level (``"FrameOfReferenceUID"``, ``"study"``, ``"time"`` or ``""``) and the
    candidates, best first: most slices, then nearest in time.
    """

    def dt(c: SeriesInfo) -> float:
        if c.acquisition_start is None or series.acquisition_start is None:
            return float("inf")
        return abs(hours_between(c.acquisition_start, series.acquisition_start))

    for level, match in (
            ("FrameOfReferenceUID",
             lambda c: c.frame_of_reference_uid and c.frame_of_reference_uid == series.frame_of_reference_uid),
            ("study", lambda c: c.study_uid and c.study_uid == series.study_uid),
            ("time", lambda c: dt(c) <= PAIR_MAX_H)):
        cands = [c for c in cts if match(c)]
        if cands:
            return level, sorted(cands, key=lambda c: (-len(c.files), dt(c)))
    return "", []


def pair_ct(series: SeriesInfo, cts: Sequence[SeriesInfo]) -> SeriesInfo | None:
    """The CT of an emission series (Frame of Reference, then study, then nearest time within 2 h)."""
    _, cands = ct_candidates(series, cts)
    return cands[0] if cands else None
