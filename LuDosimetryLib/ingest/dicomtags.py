"""Tolerant reading of DICOM headers: files, tags, dates and times, each value with its source.

Real exports often fail strict validation on attributes ingest does not need; these helpers
read what is needed and say exactly what is missing or malformed when a value cannot be used.
Every value returned by ``get_*`` is a :class:`Sourced` (value + where it came from).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from ..errors import DicomError

__all__ = ["Sourced", "tag_label", "read_header", "read_header_located", "PIXEL_DATA_TAG_LE", "get_value",
           "get_float", "get_floats", "get_str", "parse_da", "parse_tm", "parse_dt", "get_datetime", "first_item",
           "add_days"]


@dataclass(frozen=True)
class Sourced:
    """A value and where it came from (``"DICOM AcquisitionTime (0008,0032) in f.dcm"``,
    ``"sidecar x.json: injection.datetime"``, ``"command line --injection-datetime"``)."""

    value: Any
    source: str


@functools.cache
def tag_label(keyword: str) -> str:
    """``"Keyword (gggg,eeee)"`` for a DICOM keyword (the keyword alone if unknown)."""
    from pydicom.datadict import tag_for_keyword

    tag = tag_for_keyword(keyword)
    return f"{keyword} ({tag >> 16:04X},{tag & 0xFFFF:04X})" if tag is not None else keyword


#: The first bytes of a little-endian Pixel Data (7FE0,0010) element.
PIXEL_DATA_TAG_LE = b"\xe0\x7f\x10\x00"


def _dcmread(p: Path, *, pixels: bool):
    """pydicom's reading of one file, its errors as DicomError; with the byte offset of the Pixel Data element
    (None where the header is not followed by a little-endian Pixel Data (7FE0,0010))."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        with open(p, "rb") as fh:
            ds = pydicom.dcmread(fh, stop_before_pixels=not pixels)
            offset = None
            if not pixels:
                at = fh.tell()
                offset = at if fh.read(4) == PIXEL_DATA_TAG_LE else None
    except InvalidDicomError:
        raise DicomError("not a DICOM file (no 'DICM' preamble and File Meta Information); expected a DICOM "
                         "Part 10 file", source=str(p)) from None
    except (EOFError, OSError, ValueError, KeyError, IndexError, TypeError, OverflowError) as exc:
        raise DicomError(f"truncated or corrupt DICOM file ({type(exc).__name__}: {exc})", source=str(p)) from None
    except Exception as exc:  # pydicom raises assorted errors on garbage; all mean the same here
        raise DicomError(f"unreadable DICOM file ({type(exc).__name__}: {exc})", source=str(p)) from None
    if "SOPClassUID" not in ds and "Modality" not in ds:
        raise DicomError("not a DICOM image: neither SOPClassUID (0008,0016) nor Modality (0008,0060) present",
                         source=str(p))
    return ds, offset


def read_header(path: str | Path, *, pixels: bool = False):
    """Read a DICOM file (header only unless ``pixels``).

    Raises
    ------
    DicomError
        If the file is not DICOM (no preamble/meta and no recognisable data set) or is truncated.
    """
    return _dcmread(Path(path), pixels=pixels)[0]


def read_header_located(path: str | Path) -> tuple[Any, int | None]:
    """The header of a DICOM file (no pixel data) and the byte offset of its Pixel Data element.

    The offset lets the pixels be read later without parsing the header again
    (:func:`LuDosimetryLib.ingest.series.read_pixels`); it is None where the header is not followed
    by a little-endian Pixel Data (7FE0,0010) element (no image, big-endian, float pixel data).

    Raises
    ------
    DicomError
        As :func:`read_header`.
    """
    return _dcmread(Path(path), pixels=False)


def _raw(ds, keyword: str) -> Any:
    try:
        elem = ds.get(keyword, None) if ds is not None else None
    except Exception:  # a malformed value that pydicom cannot convert
        return _Malformed()
    if elem is None or elem == "" or (hasattr(elem, "__len__") and not isinstance(elem, str) and len(elem) == 0):
        return None
    return elem


class _Malformed:
    pass


def first_item(ds, keyword: str):
    """The first item of a sequence attribute, or None."""
    try:
        seq = ds.get(keyword, None)
    except Exception:
        return None
    if seq is None:
        return None
    try:
        return seq[0] if len(seq) else None
    except (TypeError, IndexError):
        return None


def get_value(ds, keyword: str, *, source: str, where: str = "") -> Sourced | None:
    """Raw value of ``keyword`` in ``ds`` (None if absent or empty)."""
    v = _raw(ds, keyword)
    if v is None:
        return None
    if isinstance(v, _Malformed):
        raise DicomError("has a value that cannot be decoded", source=source, tag=tag_label(keyword))
    return Sourced(v, f"DICOM {where}{tag_label(keyword)} in {source}")


def get_str(ds, keyword: str, *, source: str, where: str = "") -> Sourced | None:
    """String value (stripped; multi-valued joined by ``\\``), or None."""
    s = get_value(ds, keyword, source=source, where=where)
    if s is None:
        return None
    v = s.value
    text = "\\".join(str(x) for x in v) if isinstance(v, list | tuple) or type(v).__name__ == "MultiValue" \
        else str(v)
    text = text.strip().strip("\x00").strip()
    return Sourced(text, s.source) if text else None


def get_floats(ds, keyword: str, *, source: str, n: int | None = None, where: str = "") -> Sourced | None:
    """Numeric value(s) as a tuple of floats; ``n`` checks the multiplicity."""
    s = get_value(ds, keyword, source=source, where=where)
    if s is None:
        return None
    v = s.value
    seq = list(v) if isinstance(v, list | tuple) or type(v).__name__ == "MultiValue" else [v]
    try:
        out = tuple(float(x) for x in seq)
    except (TypeError, ValueError):
        raise DicomError(f"is {v!r}; expected {'a number' if n in (None, 1) else f'{n} numbers'}",
                         source=source, tag=tag_label(keyword)) from None
    if n is not None and len(out) != n:
        raise DicomError(f"has {len(out)} value(s) {list(out)}; expected {n}", source=source, tag=tag_label(keyword))
    if not all(x == x and abs(x) != float("inf") for x in out):
        raise DicomError(f"is not finite: {list(out)}", source=source, tag=tag_label(keyword))
    return Sourced(out, s.source)


def get_float(ds, keyword: str, *, source: str, where: str = "") -> Sourced | None:
    """A single numeric value as float, or None (the first of several, as pydicom's tolerant readers do)."""
    s = get_floats(ds, keyword, source=source, where=where)
    if s is None:
        return None
    return Sourced(s.value[0], s.source)


_DA = re.compile(r"^\s*(\d{4})[.\-]?(\d{2})[.\-]?(\d{2})\s*$")
_TM = re.compile(r"^\s*(\d{2}):?(?:(\d{2}):?(?:(\d{2})(?:\.(\d{1,6}))?)?)?\s*$")
_DT = re.compile(r"^\s*(\d{8})(\d{2}(?:\d{2}(?:\d{2}(?:\.\d{1,6})?)?)?)?\s*([+\-]\d{4})?\s*$")


def parse_da(text: str, *, source: str, keyword: str) -> date:
    """DICOM DA (``YYYYMMDD``; the old ``YYYY.MM.DD`` is accepted)."""
    m = _DA.match(str(text))
    try:
        if not m:
            raise ValueError
        return date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError:
        raise DicomError(f"is {text!r}; expected a date YYYYMMDD", source=source, tag=tag_label(keyword)) from None


def parse_tm(text: str, *, source: str, keyword: str) -> time:
    """DICOM TM (``HHMMSS.FFFFFF``, parts optional; ``HH:MM:SS`` accepted)."""
    m = _TM.match(str(text))
    try:
        if not m:
            raise ValueError
        frac = (m.group(4) or "").ljust(6, "0")
        return time(int(m.group(1)), int(m.group(2) or 0), int(m.group(3) or 0), int(frac or 0))
    except ValueError:
        raise DicomError(f"is {text!r}; expected a time HHMMSS[.FFFFFF]", source=source,
                         tag=tag_label(keyword)) from None


def parse_dt(text: str, *, source: str, keyword: str) -> datetime:
    """DICOM DT; a UTC offset is dropped (local wall time is kept, as every other DICOM time is local)."""
    m = _DT.match(str(text))
    if not m:
        raise DicomError(f"is {text!r}; expected a datetime YYYYMMDDHHMMSS[.FFFFFF][&ZZXX]", source=source,
                         tag=tag_label(keyword))
    d = parse_da(m.group(1), source=source, keyword=keyword)
    t = parse_tm(m.group(2), source=source, keyword=keyword) if m.group(2) else time(0)
    return datetime.combine(d, t)


def get_datetime(ds, *, source: str, dt_keyword: str | None, date_keywords: tuple[str, ...],
                 time_keyword: str, where: str = "") -> Sourced | None:
    """A datetime from a DT attribute, else from a TM attribute with the first DA attribute present."""
    if dt_keyword:
        s = get_str(ds, dt_keyword, source=source, where=where)
        if s is not None:
            return Sourced(parse_dt(s.value, source=source, keyword=dt_keyword), s.source)
    t = get_str(ds, time_keyword, source=source, where=where)
    if t is None:
        return None
    tm = parse_tm(t.value, source=source, keyword=time_keyword)
    for kw in date_keywords:
        d = get_str(ds, kw, source=source, where=where)
        if d is not None:
            return Sourced(datetime.combine(parse_da(d.value, source=source, keyword=kw), tm),
                           f"{t.source} with {tag_label(kw)}")
    return None


def add_days(dt: datetime, days: int) -> datetime:
    """``dt`` shifted by whole days."""
    return dt + timedelta(days=days)
