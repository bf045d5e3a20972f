"""Load one series' pixels into calibrated, timed images (CT in HU; SPECT and PET in Bq/mL at
acquisition time), recording the source of every value used."""

from __future__ import annotations

import itertools
import math
import struct
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from ..calibration.store import CalibrationStore
from ..errors import ConsistencyError, DicomError, InputError
from ..model import Administration, Camera
from ..timing import hours_between, mid_acquisition_time_h
from .decay import acquisition_time_factor, pet_frame_factor, read_decay_info
from .dicomtags import (
    PIXEL_DATA_TAG_LE,
    Sourced,
    first_item,
    get_datetime,
    get_float,
    get_str,
    read_header,
    read_header_located,
    tag_label,
)
from .discovery import SeriesInfo, acquisition_start
from .geometry import image_from_array, nm_grid, stack_grid
from .quant import (
    check_sensitivity,
    counts_to_Bq_per_mL,
    dead_time_factor,
    nm_acquisition_duration_s,
    pixel_units,
    voxel_volume_mL,
)

__all__ = ["LoadedEmission", "camera_from_header", "read_pixels", "native_layout", "series_headers", "load_ct",
           "load_spect_bed", "quantify_bed", "load_pet_frames"]


@dataclass(frozen=True, eq=False)
class LoadedEmission:
    """A SPECT bed or PET frame loaded to Bq/mL at its own mid-acquisition time.

    Attributes
    ----------
    image : SimpleITK.Image
    acquisition_start : datetime
    duration_s : float
    time_h : float
        Mid-acquisition time (h p.i.).
    units : str
        What the file stored (``counts`` or ``Bq/mL``).
    decay_state : str
        What the file's values were decay-corrected to (``NONE``, ``START``, ``ADMIN``).
    corrections : tuple of str
        Corrected Image values.
    camera : Camera or None
    calibration : str
        ``"9.1 cps/MBq (...)"`` or ``"not needed (Bq/mL)"``.
    provenance : dict
        Source of every value.
    """

    image: object
    acquisition_start: datetime
    duration_s: float
    time_h: float
    units: str
    decay_state: str
    corrections: tuple[str, ...] = ()
    camera: Camera | None = None
    calibration: str = ""
    provenance: dict = field(default_factory=dict)


#: Transfer syntaxes whose Pixel Data is stored as plain little-endian values.
_NATIVE_LITTLE_ENDIAN = frozenset({"1.2.840.10008.1.2", "1.2.840.10008.1.2.1"})


def _expected_bytes(ds, *, source: str) -> int:
    try:
        bits = int(ds.get("BitsAllocated", 16))
        return int(ds.Rows) * int(ds.Columns) * int(ds.get("NumberOfFrames", 1) or 1) * \
            int(ds.get("SamplesPerPixel", 1)) * bits // 8
    except (TypeError, ValueError, AttributeError) as exc:
        raise DicomError(f"cannot size the image ({exc})", source=source, tag=tag_label("PixelData")) from None


def native_layout(ds) -> tuple[np.dtype, tuple[int, ...]] | None:
    """Data type and shape of a header's pixels where they are plain values that need no decoding.

    That is: a native little-endian transfer syntax, one sample per pixel, 8, 16 or 32 bits
    allocated and all of them stored (no sign bit to extend, no high bits to mask), the integer
    type pydicom decodes them to. The shape is (rows, columns), or (frames, rows, columns) for
    more than one frame, as pydicom's ``pixel_array``. None for anything else.
    """
    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if ts not in _NATIVE_LITTLE_ENDIAN:
        return None
    try:
        bits = int(ds.BitsAllocated)
        stored = int(ds.get("BitsStored", bits))
        rep = int(ds.get("PixelRepresentation", 0))
        samples = int(ds.get("SamplesPerPixel", 1))
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        rows, cols = int(ds.Rows), int(ds.Columns)
    except (TypeError, ValueError, AttributeError):
        return None
    if bits not in (8, 16, 32) or stored != bits or rep not in (0, 1) or samples != 1 or frames < 1 or \
            rows < 1 or cols < 1:
        return None
    dtype = np.dtype(f"<{'i' if rep else 'u'}{bits // 8}")
    return dtype, ((frames, rows, cols) if frames > 1 else (rows, cols))


def _read_native(ds, *, source: str, offset: int) -> np.ndarray | None:
    """Native pixels read straight from the Pixel Data element at ``offset``, or None (decode them with pydicom)."""
    layout = native_layout(ds)
    if layout is None:
        return None
    dtype, shape = layout
    expected = int(np.prod(shape)) * dtype.itemsize
    explicit = ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    try:
        with open(source, "rb") as fh:
            fh.seek(offset)
            head = fh.read(12 if explicit else 8)
            if len(head) < (12 if explicit else 8) or head[:4] != PIXEL_DATA_TAG_LE or \
                    (explicit and head[4:6] not in (b"OB", b"OW")):
                return None
            length = struct.unpack("<I", head[-4:])[0]
            if length == 0xFFFFFFFF:  # encapsulated: not native after all
                return None
            arr = np.empty(int(np.prod(shape)), dtype)
            got = fh.readinto(memoryview(arr).cast("B")[:min(length, expected)])
    except OSError as exc:
        raise DicomError(f"cannot be read ({type(exc).__name__}: {exc})", source=source,
                         tag=tag_label("PixelData")) from None
    if got < expected:
        raise DicomError(f"holds {got} bytes; expected {expected} (Rows × Columns × frames × bits): the file is "
                         "truncated", source=source, tag=tag_label("PixelData"))
    return arr.reshape(shape)


def read_pixels(ds, *, source: str, offset: int | None = None) -> np.ndarray:
    """The stored pixel values as an array; a truncated or undecodable Pixel Data is a DicomError.

    Parameters
    ----------
    ds : pydicom.Dataset
        The file's data set: with its Pixel Data, or the header alone when ``offset`` is given.
    source : str
        The file.
    offset : int, optional
        Byte offset of the Pixel Data element in ``source``
        (:func:`~LuDosimetryLib.ingest.dicomtags.read_header_located`). Pixels that need no
        decoding (:func:`native_layout`) are then read from there, with the same values as
        pydicom's ``pixel_array``; any other encoding is decoded by pydicom from the whole file.
    """
    if offset is not None:
        px = _read_native(ds, source=source, offset=offset)
        if px is not None:
            return px
        ds = read_header(source, pixels=True)
    if "PixelData" not in ds:
        raise DicomError("is missing (file truncated before the image?)", source=source, tag=tag_label("PixelData"))
    expected = _expected_bytes(ds, source=source)
    raw = ds.PixelData
    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if (ts is None or not ts.is_compressed) and raw is not None and len(raw) < expected:
        raise DicomError(f"holds {len(raw)} bytes; expected {expected} (Rows × Columns × frames × bits): the file is "
                         "truncated", source=source, tag=tag_label("PixelData"))
    try:
        return np.asarray(ds.pixel_array)
    except Exception as exc:
        raise DicomError(f"cannot be decoded ({type(exc).__name__}: {exc})", source=source,
                         tag=tag_label("PixelData")) from None


def series_headers(series: SeriesInfo) -> tuple[list[tuple[str, object]], list[int | None]]:
    """(file name, header) of every file of a series and the byte offsets of their Pixel Data.

    The headers read by :func:`~LuDosimetryLib.ingest.discovery.scan_folder` when it kept them,
    else read now (header only).
    """
    if series.headers and len(series.headers) == len(series.files):
        offsets = list(series.pixel_offsets) if len(series.pixel_offsets) == len(series.files) \
            else [None] * len(series.files)
        return [(str(f), ds) for f, ds in zip(series.files, series.headers)], offsets
    read = [read_header_located(f) for f in series.files]
    return [(str(f), ds) for f, (ds, _) in zip(series.files, read)], [o for _, o in read]


def camera_from_header(ds, *, source: str, override: Sourced | None = None) -> tuple[Camera, str]:
    """The :class:`Camera` of an NM series (calibration key parts) and where they came from.

    Manufacturer (0008,0070), Manufacturer Model Name (0008,1090), Collimator/Grid Name
    (0018,1180) (in the Detector Information Sequence, or top level), energy windows from the
    Energy Window Range Sequences, reconstruction from Reconstruction Method (0054,1103) if
    present, else Series Description. A sidecar ``camera`` object replaces any field it gives.
    """
    det = first_item(ds, "DetectorInformationSequence")
    coll = (get_str(det, "CollimatorGridName", source=source) if det is not None else None) or \
        get_str(ds, "CollimatorGridName", source=source)
    windows = []
    for item in ds.get("EnergyWindowInformationSequence", []) or []:
        for rng in item.get("EnergyWindowRangeSequence", []) or []:
            lo = get_float(rng, "EnergyWindowLowerLimit", source=source)
            hi = get_float(rng, "EnergyWindowUpperLimit", source=source)
            if lo is not None and hi is not None:
                windows.append((lo.value, hi.value))
    recon = get_str(ds, "ReconstructionMethod", source=source) or get_str(ds, "SeriesDescription", source=source)
    man = get_str(ds, "Manufacturer", source=source)
    model = get_str(ds, "ManufacturerModelName", source=source)
    fields = {"manufacturer": man.value if man else "", "model": model.value if model else "",
              "collimator": coll.value if coll else "", "energy_windows_keV": tuple(windows),
              "reconstruction": recon.value if recon else ""}
    src = f"DICOM Manufacturer, ManufacturerModelName, CollimatorGridName, EnergyWindowRangeSequence, " \
          f"{'ReconstructionMethod' if recon and 'Reconstruction' in recon.source else 'SeriesDescription'} in {source}"
    dead = None
    if override is not None:
        ov = dict(override.value)
        if "energy_windows_keV" in ov:
            ov["energy_windows_keV"] = tuple(tuple(float(x) for x in w) for w in ov["energy_windows_keV"])
        dead = ov.pop("dead_time_s", None)
        unknown = set(ov) - set(fields)
        if unknown:
            raise InputError(f"camera has unknown field(s) {sorted(unknown)}; expected {sorted(fields)}",
                             source=override.source)
        fields.update(ov)
        src = f"{override.source} over {src}"
    return Camera(**fields, dead_time_s=dead), src


def _frame_duration_s(ds, *, source: str) -> Sourced | None:
    fd = get_float(ds, "ActualFrameDuration", source=source)
    if fd is None or fd.value <= 0:
        return None
    return Sourced(fd.value / 1000.0, fd.source)


def load_ct(series: SeriesInfo):
    """The CT of a series in HU (float32, LPS).

    Geometry and slice order come from the headers (:func:`stack_grid`; those kept by the scan,
    see :func:`series_headers`). Pixels stored as plain little-endian values (:func:`native_layout`,
    nearly every CT export) are read straight from each file's Pixel Data; other encodings
    (compressed transfer syntaxes) are read by SimpleITK/GDCM, the series-reader floor of
    bench/bench_run.py, and where GDCM cannot read a file (truncated, odd encoding) every slice
    is read with pydicom, whose checks name the file and tag. Each slice is rescaled by its own
    RescaleSlope (0028,1053) and RescaleIntercept (0028,1052) as GDCM does: ``stored · slope +
    intercept`` in double precision, rounded to float32.
    """
    import SimpleITK as sitk

    headers, offsets = series_headers(series)
    grid, order = stack_grid(headers, series=series.name)
    _quantitation_tags_consistent(headers, order)  # a slice without RescaleIntercept would be read ~1024 HU off
    files = [headers[i][0] for i in order]
    layouts = {native_layout(headers[i][1]) if offsets[i] is not None else None for i in order}
    if None not in layouts:
        rescales = {_rescale_of(ds, source=name) for name, ds in headers}
        (dtype, shape), (slope, icpt) = next(iter(layouts)), next(iter(rescales))
        if len(layouts) == 1 and len(rescales) == 1 and slope == 1.0 and shape == (grid.size[1], grid.size[0]):
            # one stored type and one rescale (nearly every CT): the stored values in one volume, shifted by
            # the intercept to float32 in SimpleITK's threads ((stored + intercept) · 1 in double, as GDCM)
            stored = np.empty((len(files), *shape), dtype)

            def read_stored(ks) -> None:
                for k in ks:
                    name, ds = headers[order[k]]
                    stored[k] = read_pixels(ds, source=name, offset=offsets[order[k]])

            _in_threads(read_stored, len(order))
            img = sitk.GetImageFromArray(stored)
            del stored
            img = sitk.ShiftScale(img, icpt, 1.0, sitk.sitkFloat32)
            img.SetOrigin(grid.origin_mm)
            img.SetSpacing(grid.spacing_mm)
            img.SetDirection(grid.direction)
            return img
        arr = np.empty((len(files), grid.size[1], grid.size[0]), np.float32)

        def read(ks) -> None:
            for k in ks:
                name, ds = headers[order[k]]
                _rescale_into(arr[k], read_pixels(ds, source=name, offset=offsets[order[k]]), ds, source=name)

        _in_threads(read, len(order))
        return image_from_array(arr, grid)
    img = _gdcm_slices(files, (grid.size[1], grid.size[0]))
    if img is not None:  # GDCM's pixels on the geometry checked above (no copy)
        img.SetOrigin(grid.origin_mm)
        img.SetSpacing(grid.spacing_mm)
        img.SetDirection(grid.direction)
        return img
    arr = np.empty((len(files), grid.size[1], grid.size[0]), np.float32)
    for k, name in enumerate(files):
        ds = read_header(name, pixels=True)
        _rescale_into(arr[k], read_pixels(ds, source=name), ds, source=name)
    return image_from_array(arr, grid)


def _in_threads(work: Callable[[range], None], n: int) -> None:
    """``work(range)`` over consecutive parts of ``range(n)`` on SimpleITK's number of threads.

    File reads and numpy's conversions release the GIL. The parts are waited for in order, so
    the error raised is the one of the first failing item, as in a plain loop.
    """
    import SimpleITK as sitk

    threads = max(1, min(sitk.ProcessObject.GetGlobalDefaultNumberOfThreads(), 8))
    if threads == 1 or n < 2:
        work(range(n))
        return
    bounds = np.linspace(0, n, min(n, 4 * threads) + 1).astype(int)
    with ThreadPoolExecutor(threads) as pool:
        for _ in pool.map(work, [range(a, b) for a, b in itertools.pairwise(bounds)]):
            pass


#: Integers up to this magnitude are exact in float32.
_FLOAT32_EXACT = 2 ** 24


def _rescale_of(ds, *, source: str) -> tuple[float, float]:
    """(RescaleSlope, RescaleIntercept) of a CT slice; 1 and 0 where absent."""
    rs = get_float(ds, "RescaleSlope", source=source)
    ri = get_float(ds, "RescaleIntercept", source=source)
    return (rs.value if rs else 1.0), (ri.value if ri else 0.0)


def _rescale_into(out: np.ndarray, stored: np.ndarray, ds, *, source: str) -> None:
    """``out[...] = float32(stored · RescaleSlope + RescaleIntercept)`` computed in double precision.

    Where slope and intercept are integers and every result is an integer below 2**24 the sum is
    exact in float32 and computed there (the same numbers, without the double-precision copy).
    """
    if stored.shape != out.shape:
        raise DicomError(f"decodes to shape {stored.shape}; expected (Rows, Columns) = {out.shape}", source=source,
                         tag=tag_label("PixelData"))
    slope, icpt = _rescale_of(ds, source=source)
    bound = float(max(abs(int(np.iinfo(stored.dtype).min)), int(np.iinfo(stored.dtype).max))) \
        if stored.dtype.kind in "iu" else math.inf
    if slope == int(slope) and icpt == int(icpt) and bound * abs(slope) + abs(icpt) < _FLOAT32_EXACT:
        out[...] = stored
        if slope != 1.0:
            out *= np.float32(slope)
        if icpt != 0.0:
            out += np.float32(icpt)
    else:
        out[...] = stored.astype(np.float64) * slope + icpt


def _gdcm_slices(files: list[str], shape_ji: tuple[int, int]):
    """Rescaled pixels (float32 SimpleITK image) of single-frame files in this order, or None if GDCM fails."""
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    reader.SetOutputPixelType(sitk.sitkFloat32)
    try:
        img = reader.Execute()
    except RuntimeError:
        return None
    if img.GetDimension() != 3 or img.GetNumberOfComponentsPerPixel() != 1 or \
            tuple(img.GetSize()) != (shape_ji[1], shape_ji[0], len(files)):
        return None
    return img


def _quantitation_tags_consistent(headers, order) -> None:
    """Refuse a series whose slices do not all carry the same quantitation tags.

    A slice without RescaleSlope (0028,1053) among slices with it would be read with slope 1,
    silently wrong by the slope (a PET with the tag removed from 100 of 172 slices gave 520 MBq
    in the field of view for 180 MBq injected).
    """
    if len(order) < 2:
        return
    for keyword in ("RescaleSlope", "RescaleIntercept", "RealWorldValueMappingSequence", "Units"):
        has = [keyword in headers[i][1] for i in order]
        if any(has) and not all(has):
            missing = [headers[i][0] for i, h in zip(order, has) if not h]
            raise ConsistencyError(f"{tag_label(keyword)} is missing in {len(missing)} of {len(order)} slices "
                                   f"(e.g. {missing[0]}) but present in the others: the values of those slices "
                                   "cannot be quantified; re-export the series from the scanner",
                                   source=headers[order[0]][0])


def _stack_values(headers, order, *, units_default_counts: bool, offsets=None):
    """Stored values × each slice's own slope + intercept (float64, [k, j, i]) and the units.

    ``offsets`` maps a file name to the byte offset of its Pixel Data when ``headers`` hold no
    pixels (:func:`series_headers`).
    """
    _quantitation_tags_consistent(headers, order)
    out, units = None, None
    for k, i in enumerate(order):
        name, ds = headers[i]
        u = pixel_units(ds, source=name, default_counts=units_default_counts)
        if units is not None and u.quantity != units.quantity:
            raise ConsistencyError(f"units change within the series: {u.quantity} in {name} ({u.source}) but "
                                   f"{units.quantity} ({units.source})", source=name)
        units = units or u
        px = read_pixels(ds, source=name, offset=None if offsets is None else offsets.get(name))
        if out is None:
            out = np.empty((len(order), *px.shape), np.float64)
        elif px.shape != out.shape[1:]:
            raise DicomError(f"decodes to shape {px.shape}; expected {out.shape[1:]} as the other slices", source=name,
                             tag=tag_label("PixelData"))
        np.multiply(px, u.slope, out=out[k], dtype=np.float64)
        out[k] += u.intercept
    return out, units


def _nm_split_error(series: SeriesInfo) -> ConsistencyError:
    """Name what a user must fix when one NM series uid is found in several files."""
    sops = {str(read_header(f).get("SOPInstanceUID", "") or "") for f in series.files}
    folders = sorted({str(f.parent) for f in series.files})
    files = ", ".join(str(f) for f in series.files[:4]) + (" ..." if len(series.files) > 4 else "")
    if len(sops) == 1:
        return ConsistencyError(f"the same NM image (SOPInstanceUID {next(iter(sops)) or 'absent'}) is stored "
                                f"{len(series.files)} times: {files}. A timepoint or bed folder was duplicated; "
                                "remove the copies", source=f"SeriesInstanceUID {series.series_uid}")
    return ConsistencyError(f"{len(series.files)} different NM images share one SeriesInstanceUID (0020,000E) in "
                            f"{', '.join(folders)}: {files}. A duplicated timepoint folder whose images were "
                            "re-stamped, or a reconstruction split into single frames; expected one multi-frame "
                            "file per series: remove the copy or re-export the series",
                            source=f"SeriesInstanceUID {series.series_uid}")


def load_spect_bed(series: SeriesInfo, administration: Administration, *, user: dict,
                   calibration_store: CalibrationStore | None, warn=None) -> LoadedEmission:
    """One SPECT bed (NM multi-frame or a PT stack) in Bq/mL at its own mid-acquisition time.

    Parameters
    ----------
    series : SeriesInfo
    administration : Administration
        The cycle's administration (time zero and nuclide).
    user : dict of str → Sourced
        Command-line values over sidecar values (see :mod:`.overrides`).
    calibration_store : CalibrationStore or None
    warn : callable, optional

    Raises
    ------
    DicomError, InputError, ConsistencyError
        Missing timing tags; unknown units; no calibration for the camera key; a bed before the
        injection.
    """
    prov: dict[str, str] = {}
    if series.modality == "NM":
        if len(series.files) != 1:
            raise _nm_split_error(series)
        src = str(series.files[0])
        headers, offsets = series_headers(series)
        ds, offset = headers[0][1], offsets[0]
        grid, rev, gprov = nm_grid(ds, source=src, warn=warn)
        px = read_pixels(ds, source=src, offset=offset).astype(np.float64)
        if px.ndim == 2:
            px = px[None]
        if px.shape != (grid.size[2], grid.size[1], grid.size[0]):
            raise DicomError(f"decodes to shape {px.shape}; expected (frames, rows, columns) = "
                             f"{(grid.size[2], grid.size[1], grid.size[0])}", source=src, tag=tag_label("PixelData"))
        if rev:
            px = px[::-1]
        u = pixel_units(ds, source=src, default_counts=True)
        values = px * u.slope + u.intercept
        prov.update(gprov)
    else:
        headers, offsets = series_headers(series)
        grid, order = stack_grid(headers, series=series.name)
        values, u = _stack_values(headers, order, units_default_counts=False,
                                  offsets={name: o for (name, _), o in zip(headers, offsets)})
        src = headers[order[0]][0]
        ds = headers[order[0]][1]
    start = user.get("acquisition_start") or acquisition_start(ds, source=src)
    if start is None:
        raise DicomError("and AcquisitionDateTime (0008,002A) are missing; need the acquisition start to compute "
                         "time_h (or give acquisition_start in a sidecar)", source=src,
                         tag=tag_label("AcquisitionTime"))
    dur = user.get("duration_s")
    if dur is None:
        dur = nm_acquisition_duration_s(ds, source=src) if series.modality == "NM" else \
            _frame_duration_s(ds, source=src)
    if dur is None:
        raise DicomError("is missing; need the acquisition duration (s)", source=src,
                         tag=tag_label("ActualFrameDuration"))
    info = read_decay_info(ds, source=src, modality=series.modality, override=user.get("decay_correction"))
    camera = cam_src = None
    if series.modality == "NM" or u.quantity == "counts" or user.get("units") is not None:
        camera, cam_src = camera_from_header(ds, source=src, override=user.get("camera"))
    return quantify_bed(values, grid, units=Sourced(u.quantity, u.source), start=start, duration=dur, decay=info,
                        camera=camera, camera_source=cam_src, administration=administration, user=user,
                        calibration_store=calibration_store, source=src, warn=warn, provenance=prov,
                        check_corrections=series.modality == "NM")


def quantify_bed(values: np.ndarray, grid, *, units: Sourced, start: Sourced, duration: Sourced, decay,
                 camera: Camera | None, camera_source: str | None, administration: Administration, user: dict,
                 calibration_store: CalibrationStore | None, source: str, warn=None, provenance: dict | None = None,
                 check_corrections: bool = True) -> LoadedEmission:
    """Stored values of a SPECT bed ([k, j, i], counts or Bq/mL) to Bq/mL at mid-acquisition.

    Shared by the DICOM and the NIfTI routes: calibration (cps/MBq) and dead time for counts,
    then the decay state brought to the bed's own mid-acquisition time.
    """
    prov = dict(provenance or {})
    src = source
    units_over = user.get("units")
    quantity = units.value
    prov["units"] = units.source
    if units_over is not None:
        q = {"counts": "counts", "bq/ml": "Bq/mL", "bqml": "Bq/mL", "cnts": "counts"}.get(str(units_over.value).lower())
        if q is None:
            raise InputError(f"units {units_over.value!r}; expected counts or Bq/mL", source=units_over.source)
        quantity, prov["units"] = q, units_over.source
    prov["acquisition_start"] = start.source
    prov["duration_s"] = duration.source
    inj = administration.injection_datetime
    if hours_between(inj, start.value) < 0:
        raise ConsistencyError(f"acquisition starts {start.value.isoformat()} ({start.source}), before the injection "
                               f"{inj.isoformat()} ({administration.provenance.get('injection_datetime', '')}); "
                               "expected every timepoint after its cycle's injection", source=src)
    time_h = mid_acquisition_time_h(start.value, duration.value, inj)
    info = decay
    prov["decay_state"] = info.source
    missing = [c for c in ("ATTN", "SCAT") if c not in info.corrections]
    if check_corrections and missing and warn:
        warn(f"{src}: CorrectedImage (0028,0051) lacks {' and '.join(missing)} "
             f"({'/'.join(sorted(info.corrections)) or 'empty'}); the SPECT is not attenuation/scatter corrected "
             "and its activity will be biased")
    calib = "not needed (Bq/mL)"
    if quantity == "counts":
        if camera is None:
            raise InputError("counts need the camera (manufacturer, model, collimator, windows, reconstruction) to "
                             "find a calibration", source=src)
        prov["camera"] = camera_source or ""
        sens = user.get("sensitivity_cps_per_MBq")
        entry = None
        if sens is None:
            if calibration_store is None:
                raise InputError(f"counts need a calibration and no calibration store was given (camera "
                                 f"{camera.key()}); give --sensitivity or a calibration.json", source=src)
            try:
                entry = calibration_store.lookup(camera.key(), on_date=start.value.date().isoformat())
            except InputError as exc:
                raise InputError(f"counts with no calibration: {exc}", source=src) from None
            sens = Sourced(entry.sensitivity_cps_per_MBq, f"calibration store entry {entry.camera_key} "
                                                          f"({entry.date or 'undated'}, {entry.source or 'no source'})")
        prov["sensitivity_cps_per_MBq"] = sens.source
        check_sensitivity(sens.value, source=sens.source, warn=warn)
        tau = user.get("dead_time_s")
        if tau is None and entry is not None and entry.dead_time_s is not None:
            tau = Sourced(entry.dead_time_s, f"calibration store entry {entry.camera_key}")
        if tau is None and camera.dead_time_s is not None:
            tau = Sourced(camera.dead_time_s, camera_source or "camera")
        if "DTIM" in info.corrections:
            f_dt, prov["dead_time"] = 1.0, f"already corrected (DTIM in CorrectedImage (0028,0051) in {src})"
        elif tau is None or tau.value == 0:
            f_dt, prov["dead_time"] = 1.0, "no dead time known: not corrected"
        else:
            rate = user.get("count_rate_cps") or Sourced(float(values.sum()) / duration.value,
                                                         "Σ reconstructed counts / acquisition duration")
            try:
                f_dt = dead_time_factor(rate.value, tau.value)
            except InputError as exc:
                raise InputError(f"dead-time correction ({rate.source}, τ from {tau.source}): {exc}",
                                 source=src) from None
            prov["dead_time"] = (f"paralysable τ = {tau.value:g} s ({tau.source}), m = {rate.value:.6g} cps "
                                 f"({rate.source}): factor {f_dt:.6f}")
        conc = counts_to_Bq_per_mL(values, duration_s=duration.value, sensitivity_cps_per_MBq=sens.value,
                                   voxel_volume_mL=voxel_volume_mL(grid.spacing_mm), dead_time_correction=f_dt)
        calib = f"{sens.value:.6g} cps/MBq ({sens.source}); dead time factor {f_dt:.6f}"
    elif quantity != "Bq/mL":
        raise InputError(f"units {quantity!r}; expected counts or Bq/mL", source=src)
    else:
        conc = values
    start_h = hours_between(inj, start.value)
    df = acquisition_time_factor(info, administration.nuclide, mid_h=time_h, series_start_h=start_h)
    prov["decay_factor"] = f"{df:.8f} ({info.state.value} → mid-acquisition)"
    arr = (np.asarray(conc, dtype=np.float64) * df).astype(np.float32)
    image = image_from_array(arr, grid)
    return LoadedEmission(image, start.value, float(duration.value), time_h, quantity, info.state.value,
                          tuple(sorted(info.corrections)), camera, calib, prov)


def load_pet_frames(series: SeriesInfo, administration: Administration, *, user: dict, warn=None
                    ) -> list[LoadedEmission]:
    """PET frames (static: one) in Bq/mL at each frame's mid-acquisition time, in time order.

    Slices are grouped into frames by (Acquisition Date/Time, Frame Reference Time); each frame's
    start is its Acquisition Date/Time and its duration Actual Frame Duration (0018,1242).
    """
    headers, offsets = series_headers(series)
    located = {name: o for (name, _), o in zip(headers, offsets)}
    frames: dict[tuple, list] = {}
    for name, ds in headers:
        st = acquisition_start(ds, source=name)
        if st is None:
            raise DicomError("is missing; need each frame's start", source=name, tag=tag_label("AcquisitionTime"))
        frt = get_float(ds, "FrameReferenceTime", source=name)
        frames.setdefault((st.value, frt.value if frt else None), []).append((name, ds))
    inj = administration.injection_datetime
    out = []
    for (start, frt_ms), hs in sorted(frames.items(), key=lambda kv: kv[0][0]):
        name0, ds0 = hs[0]
        grid, order = stack_grid(hs, series=f"{series.name} frame at {start.isoformat()}")
        values, u = _stack_values(hs, order, units_default_counts=False, offsets=located)
        if u.quantity != "Bq/mL":
            raise DicomError(f"is {u.quantity}; PET must be in Bq/mL (BQML)", source=name0, tag=tag_label("Units"))
        dur = user.get("duration_s") or _frame_duration_s(ds0, source=name0)
        if dur is None:
            raise DicomError("is missing; need the frame duration", source=name0, tag=tag_label("ActualFrameDuration"))
        mid_h = mid_acquisition_time_h(start, dur.value, inj)
        if hours_between(inj, start) < 0:
            raise ConsistencyError(f"frame starts {start.isoformat()}, before the injection {inj.isoformat()}",
                                   source=name0)
        info = read_decay_info(ds0, source=name0, modality="PT", override=user.get("decay_correction"))
        ser = get_datetime(ds0, source=name0, dt_keyword=None, date_keywords=("SeriesDate", "AcquisitionDate"),
                           time_keyword="SeriesTime")
        series_start_h = hours_between(inj, ser.value) if ser else hours_between(inj, start)
        # Frame Reference Time is an offset from the series reference time (Series Date/Time),
        # whatever the decay-correction reference is
        reference_h = None if frt_ms is None else series_start_h + frt_ms / 3.6e6
        df = pet_frame_factor(info, administration.nuclide, start_h=hours_between(inj, start), duration_s=dur.value,
                              series_start_h=series_start_h, reference_h=reference_h)
        arr = (values * df).astype(np.float32)
        prov = {"units": u.source, "decay_state": info.source, "duration_s": dur.source,
                "acquisition_start": f"DICOM AcquisitionDate/Time in {name0}",
                "decay_factor": f"{df:.8f} ({info.state.value}, frame mean → mid-frame)"}
        out.append(LoadedEmission(image_from_array(arr, grid), start, float(dur.value), mid_h, "Bq/mL",
                                  info.state.value, tuple(sorted(info.corrections)), None, "not needed (Bq/mL)",
                                  prov))
    return out


