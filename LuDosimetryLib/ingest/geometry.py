"""Image geometry from DICOM headers, in LPS: NM multi-frame and single-slice stacks (CT, PET).

NM reconstructed tomography stores one multi-frame object whose position and orientation are in
the Detector Information Sequence (0054,0022); frame ``k`` lies at
``ImagePositionPatient + k · SpacingBetweenSlices · n̂`` with ``n̂ = row × column`` direction
cosines. A negative spacing (some vendors) means the frames run along ``−n̂``: the stack is
reversed so the returned grid has positive spacing and a right-handed direction matrix. Oblique
orientations are kept in the direction matrix. Single-slice series (CT, PT) are sorted along
``n̂`` and refused when orientation, in-plane grid or slice spacing are inconsistent or slices
are missing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ConsistencyError, DicomError
from .dicomtags import first_item, get_floats, tag_label

__all__ = ["Grid", "direction_from_iop", "nm_grid", "stack_grid", "image_from_array", "grid_of", "ORIENTATION_TOL"]

#: Direction cosines that differ by more than this are different orientations.
ORIENTATION_TOL = 1e-4
#: Relative tolerance on slice spacing (fraction of the median spacing).
SPACING_RTOL = 0.01


@dataclass(frozen=True)
class Grid:
    """A 3D grid in LPS.

    Attributes
    ----------
    origin_mm : tuple of float
        Centre of voxel (0, 0, 0) in LPS (mm).
    spacing_mm : tuple of float
        (x, y, z) = (column, row, slice) spacing (mm), all > 0.
    direction : tuple of float
        Row-major 3×3: columns are the i, j, k axis directions in LPS.
    size : tuple of int
        (i, j, k) number of voxels.
    """

    origin_mm: tuple[float, float, float]
    spacing_mm: tuple[float, float, float]
    direction: tuple[float, ...]
    size: tuple[int, int, int]


def direction_from_iop(iop: tuple[float, ...], *, source: str, keyword: str = "ImageOrientationPatient"
                       ) -> np.ndarray:
    """3×3 direction matrix (columns: row direction, column direction, normal) from IOP.

    Raises
    ------
    DicomError
        If the two cosines are not unit length or not orthogonal (within 1e-3).
    """
    v = np.asarray(iop, dtype=float)
    if v.shape != (6,):
        raise DicomError(f"has {v.size} values; expected 6 direction cosines", source=source, tag=tag_label(keyword))
    r, c = v[:3], v[3:]
    if abs(np.linalg.norm(r) - 1) > 1e-3 or abs(np.linalg.norm(c) - 1) > 1e-3 or abs(r @ c) > 1e-3:
        raise DicomError(f"is {v.tolist()}: row and column cosines must be orthonormal", source=source,
                         tag=tag_label(keyword))
    r = r / np.linalg.norm(r)
    c = c - (r @ c) * r
    c = c / np.linalg.norm(c)
    return np.column_stack([r, c, np.cross(r, c)])


def _pixel_spacing(ds, *, source: str) -> tuple[float, float]:
    ps = get_floats(ds, "PixelSpacing", source=source, n=2)
    if ps is None:
        raise DicomError("is missing; need the in-plane voxel size (mm)", source=source, tag=tag_label("PixelSpacing"))
    if min(ps.value) <= 0:
        raise DicomError(f"is {list(ps.value)}; expected positive spacings (mm)", source=source,
                         tag=tag_label("PixelSpacing"))
    return ps.value  # (row spacing = along columns (y), column spacing = along rows (x))


def _size2d(ds, *, source: str) -> tuple[int, int]:
    out = []
    for kw in ("Rows", "Columns"):
        v = ds.get(kw, None)
        try:
            n = int(v)
        except (TypeError, ValueError):
            raise DicomError(f"is {v!r}; expected a positive integer", source=source, tag=tag_label(kw)) from None
        if n <= 0:
            raise DicomError(f"is {n}; expected a positive integer", source=source, tag=tag_label(kw))
        out.append(n)
    return out[0], out[1]


def nm_grid(ds, *, source: str, warn=None) -> tuple[Grid, bool, dict]:
    """Geometry of an NM multi-frame reconstructed volume.

    Parameters
    ----------
    ds : pydicom.Dataset
    source : str
        File name for messages.
    warn : callable, optional
        ``warn(message)`` for tolerated defects.

    Returns
    -------
    grid : Grid
    reversed : bool
        True when the frames run along ``−n̂`` (negative spacing): the pixel stack must be
        reversed along k to match ``grid``.
    provenance : dict
        Source of position, orientation and slice spacing.
    """
    prov = {}
    det = first_item(ds, "DetectorInformationSequence")
    ipp = get_floats(det, "ImagePositionPatient", source=source, n=3, where="DetectorInformationSequence/") \
        if det is not None else None
    iop = get_floats(det, "ImageOrientationPatient", source=source, n=6, where="DetectorInformationSequence/") \
        if det is not None else None
    if ipp is None:
        ipp = get_floats(ds, "ImagePositionPatient", source=source, n=3)
    if iop is None:
        iop = get_floats(ds, "ImageOrientationPatient", source=source, n=6)
    if ipp is None or iop is None:
        missing = "ImagePositionPatient (0020,0032)" if ipp is None else "ImageOrientationPatient (0020,0037)"
        raise DicomError(f"{missing} is missing from DetectorInformationSequence (0054,0022) and the data set; "
                         "cannot place the NM volume in patient space", source=source)
    prov["position"], prov["orientation"] = ipp.source, iop.source
    D = direction_from_iop(iop.value, source=source)
    rows, cols = _size2d(ds, source=source)
    try:
        nframes = int(ds.get("NumberOfFrames", 1) or 1)
    except (TypeError, ValueError):
        raise DicomError(f"is {ds.get('NumberOfFrames')!r}; expected a positive integer", source=source,
                         tag=tag_label("NumberOfFrames")) from None
    if nframes < 1:
        raise DicomError(f"is {nframes}; expected ≥ 1", source=source, tag=tag_label("NumberOfFrames"))
    ps = _pixel_spacing(ds, source=source)
    sp = get_floats(ds, "SpacingBetweenSlices", source=source, n=1)
    if sp is None:
        sp = get_floats(ds, "SliceThickness", source=source, n=1)
        if sp is None:
            raise DicomError("and SliceThickness (0018,0050) are both missing; need the slice spacing (mm)",
                             source=source, tag=tag_label("SpacingBetweenSlices"))
        if warn:
            warn(f"{source}: SpacingBetweenSlices (0018,0088) missing; slice spacing taken from SliceThickness "
                 f"(0018,0050) = {sp.value[0]} mm")
    dz = sp.value[0]
    if dz == 0:
        raise DicomError("is 0; expected a non-zero slice spacing (mm)", source=source,
                         tag=tag_label("SpacingBetweenSlices"))
    prov["slice_spacing"] = sp.source
    origin = np.asarray(ipp.value, dtype=float)
    rev = dz < 0
    if rev:
        origin = origin + (nframes - 1) * dz * D[:, 2]
    grid = Grid(tuple(origin.tolist()), (ps[1], ps[0], abs(dz)), tuple(D.ravel().tolist()), (cols, rows, nframes))
    return grid, rev, prov


def stack_grid(headers: list, *, series: str) -> tuple[Grid, list[int]]:
    """Geometry of a series of single-slice files, and the order of the files along the normal.

    Parameters
    ----------
    headers : list of (str, pydicom.Dataset)
        File name and header of each slice.
    series : str
        Name of the series for messages.

    Raises
    ------
    ConsistencyError
        Different orientations, in-plane sizes or spacings; duplicate positions; slices not on
        one line (gantry tilt); missing slices; uneven spacing.
    """
    if not headers:
        raise ConsistencyError("series has no slices", source=series)
    iops, ipps, sizes, pss = [], [], [], []
    for name, ds in headers:
        iop = get_floats(ds, "ImageOrientationPatient", source=name, n=6)
        ipp = get_floats(ds, "ImagePositionPatient", source=name, n=3)
        if iop is None or ipp is None:
            kw = "ImageOrientationPatient" if iop is None else "ImagePositionPatient"
            raise DicomError("is missing; cannot place the slice in patient space", source=name, tag=tag_label(kw))
        iops.append(np.asarray(iop.value))
        ipps.append(np.asarray(ipp.value))
        sizes.append(_size2d(ds, source=name))
        pss.append(np.asarray(_pixel_spacing(ds, source=name)))
    name0 = headers[0][0]
    for (name, _), iop, sz, ps in zip(headers, iops, sizes, pss):
        if np.max(np.abs(iop - iops[0])) > ORIENTATION_TOL:
            raise ConsistencyError(f"ImageOrientationPatient (0020,0037) is {iop.tolist()} in {name} but "
                                   f"{iops[0].tolist()} in {name0}; expected one orientation per series", source=series)
        if sz != sizes[0] or np.max(np.abs(ps - pss[0])) > 1e-4 * max(pss[0]):
            raise ConsistencyError(f"in-plane grid (Rows, Columns, PixelSpacing) is {sz}, {ps.tolist()} in {name} but "
                                   f"{sizes[0]}, {pss[0].tolist()} in {name0}", source=series)
    D = direction_from_iop(iops[0], source=name0)
    n = D[:, 2]
    d = np.array([p @ n for p in ipps])
    order = np.argsort(d, kind="stable")
    d_sorted = d[order]
    P = np.array(ipps)[order]
    inplane = P - np.outer(d_sorted, n)
    if len(P) > 1 and np.max(np.linalg.norm(inplane - inplane[0], axis=1)) > 0.01 * min(pss[0]) + 1e-3:
        raise ConsistencyError("slice positions are not on one line along the slice normal (gantry tilt or mixed "
                               "series); expected ImagePositionPatient (0020,0032) to differ only along the normal",
                               source=series)
    gaps = np.diff(d_sorted)
    if gaps.size:
        names = [headers[i][0] for i in order]
        dup = np.flatnonzero(gaps < 1e-3)
        if dup.size:
            i = dup[0]
            raise ConsistencyError(f"duplicate slice position {d_sorted[i]:.3f} mm in {names[i]} and {names[i + 1]}",
                                   source=series)
        g = float(np.median(gaps))
        bad = np.flatnonzero(np.abs(gaps - g) > SPACING_RTOL * g + 1e-3)
        if bad.size:
            i = bad[0]
            ratio = gaps[i] / g
            if abs(ratio - round(ratio)) < SPACING_RTOL * 5 and round(ratio) >= 2:
                raise ConsistencyError(f"{round(ratio) - 1} missing slice(s) between {names[i]} "
                                       f"({d_sorted[i]:.2f} mm) and {names[i + 1]} ({d_sorted[i + 1]:.2f} mm); "
                                       f"expected a slice every {g:.3f} mm", source=series)
            raise ConsistencyError(f"inconsistent slice spacing: {gaps[i]:.3f} mm between {names[i]} and "
                                   f"{names[i + 1]}, median {g:.3f} mm (tolerance {SPACING_RTOL:.0%})", source=series)
    else:
        g = 1.0
        for name, ds in headers:
            s = get_floats(ds, "SliceThickness", source=name, n=1)
            if s is not None and s.value[0] > 0:
                g = s.value[0]
    rows, cols = sizes[0]
    grid = Grid(tuple(P[0].tolist()), (pss[0][1], pss[0][0], g), tuple(D.ravel().tolist()), (cols, rows, len(P)))
    return grid, [int(i) for i in order]


def image_from_array(array_kji: np.ndarray, grid: Grid, *, dtype=np.float32):
    """A SimpleITK image from a [k, j, i] array on ``grid``."""
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(np.ascontiguousarray(array_kji, dtype=dtype))
    img.SetOrigin(grid.origin_mm)
    img.SetSpacing(grid.spacing_mm)
    img.SetDirection(grid.direction)
    return img


def grid_of(image) -> Grid:
    """The :class:`Grid` of a SimpleITK image."""
    return Grid(tuple(image.GetOrigin()), tuple(image.GetSpacing()), tuple(image.GetDirection()),
                tuple(image.GetSize()))
