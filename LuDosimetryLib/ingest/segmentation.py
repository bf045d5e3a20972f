"""Segmentations: label maps (NIfTI, NRRD, Slicer .seg.nrrd), DICOM SEG and RTSTRUCT.

Every route ends in a :class:`LuDosimetryLib.model.Segmentation` (integer label map in LPS on the
reference CT grid, and its :class:`~LuDosimetryLib.labels.LabelTable`). Label maps on another
grid are resampled onto the reference by nearest neighbour. RTSTRUCT closed planar contours are
filled slice by slice on the reference CT grid (even-odd rule, so holes drawn as inner contours
stay empty; voxel centres inside a polygon are in). DICOM SEG frames are placed by their Plane
Position onto the reference grid.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..errors import ConsistencyError, DicomError, InputError
from ..labels import LabelTable, Region
from ..model import Segmentation
from .dicomtags import first_item, get_floats, get_str, read_header, tag_label

__all__ = ["region_from_name", "read_label_map", "read_seg_nrrd_table", "rasterise_rtstruct", "read_dicom_seg",
           "load_segmentation"]


def region_from_name(label: int, name: str) -> Region:
    """A :class:`Region` from a free-text structure name (snake case; side and kind guessed from it)."""
    text = re.sub(r"[^0-9a-zA-Z]+", "_", name.strip()).strip("_").lower() or f"label_{label}"
    side = "none"
    for s, pats in (("left", ("_left", "_l", "left_", "l_")), ("right", ("_right", "_r", "right_", "r_"))):
        if text.endswith(pats[0]) or text.endswith(pats[1]) or text.startswith(pats[2]):
            side = s
            break
    if side != "none" and not text.endswith(f"_{side}"):
        text = re.sub(r"(_l|_r|_left|_right)$", "", re.sub(r"^(left|right)_", "", text)) + f"_{side}"
    kind = "lesion" if re.search(r"lesion|tumou?r|gtv|met", text) else "organ"
    return Region(int(label), text, side, kind)


def _resample_to(image, reference):
    import SimpleITK as sitk

    same = (image.GetSize() == reference.GetSize()
            and np.allclose(image.GetOrigin(), reference.GetOrigin(), atol=1e-3)
            and np.allclose(image.GetSpacing(), reference.GetSpacing(), rtol=1e-5)
            and np.allclose(image.GetDirection(), reference.GetDirection(), atol=1e-5))
    if same:
        out = sitk.Cast(image, sitk.sitkUInt16)
        out.CopyInformation(reference)
        return out
    return sitk.Resample(sitk.Cast(image, sitk.sitkUInt16), reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0,
                         sitk.sitkUInt16)


def read_seg_nrrd_table(path: str | Path) -> tuple[LabelTable, dict[int, int]]:
    """Label table of a Slicer ``.seg.nrrd`` from its ``SegmentN_*`` header fields.

    Returns the table and a map (layer, label value) → table label (single layer: layer 0).
    """
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()
    meta = {k: reader.GetMetaData(k) for k in reader.GetMetaDataKeys()}
    regions = []
    i = 0
    while f"Segment{i}_Name" in meta:
        value = int(meta.get(f"Segment{i}_LabelValue", i + 1))
        layer = int(meta.get(f"Segment{i}_Layer", 0))
        regions.append((layer, value, meta[f"Segment{i}_Name"]))
        i += 1
    if not regions:
        raise InputError("no Segment0_Name in the header; not a Slicer segmentation file", source=str(path))
    table = LabelTable(tuple(region_from_name(k + 1, name) for k, (_, _, name) in enumerate(regions)))
    mapping = {(layer, value): k + 1 for k, (layer, value, _) in enumerate(regions)}
    return table, mapping


def read_label_map(path: str | Path, *, table: LabelTable | None = None, reference=None) -> Segmentation:
    """Read a label map (NIfTI, NRRD, Slicer .seg.nrrd) and its table.

    Parameters
    ----------
    path : path
    table : LabelTable, optional
        Default: ``labels.csv`` beside the file, or the segment names of a .seg.nrrd.
    reference : SimpleITK.Image, optional
        Grid to resample onto (nearest neighbour).

    Raises
    ------
    InputError
        Unreadable file; no label table (``labels.csv`` beside the file, unless a .seg.nrrd names its
        segments); label values not in the table.
    """
    import SimpleITK as sitk

    p = Path(path)
    try:
        img = sitk.ReadImage(str(p))
    except RuntimeError as exc:
        raise InputError(f"cannot read label map: {str(exc).strip().splitlines()[-1]}", source=str(p)) from None
    if p.name.endswith(".seg.nrrd") and table is None:
        table, mapping = read_seg_nrrd_table(p)
        arr = sitk.GetArrayFromImage(img)
        if img.GetNumberOfComponentsPerPixel() == 1:
            arr = arr[..., None]
        out = np.zeros(arr.shape[:3], dtype=np.uint16)
        for (layer, value), lab in mapping.items():
            hit = arr[..., layer] == value
            if np.any(out[hit] != 0):
                raise ConsistencyError(f"segment {table.by_label(lab).name} overlaps another segment; a label map "
                                       "holds one label per voxel", source=str(p))
            out[hit] = lab
        lab_img = sitk.GetImageFromArray(out)
        lab_img.CopyInformation(img if img.GetNumberOfComponentsPerPixel() == 1 else
                                sitk.VectorIndexSelectionCast(img, 0))
        img = lab_img
    if table is None:
        for cand in (p.parent / "labels.csv", p.with_name(p.name.split(".")[0] + ".csv")):
            if cand.is_file():
                table = LabelTable.read(cand)
                break
    if img.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(f"label map has {img.GetNumberOfComponentsPerPixel()} components; expected 1", source=str(p))
    arr = sitk.GetArrayViewFromImage(img)
    if np.issubdtype(arr.dtype, np.floating) and np.any(arr != np.round(arr)):
        raise InputError("label map holds non-integer values; expected integer labels", source=str(p))
    present = {int(v) for v in np.unique(arr) if v != 0}
    if table is None:
        raise InputError(f"no label table: {p.parent / 'labels.csv'} not found; write it with the columns "
                         "label,name,side,kind,group (one row per label value, e.g. "
                         "'13,kidney_cortex_left,left,organ,kidney_left'): the dose chain finds the kidneys and "
                         "every reported region by these names", source=str(p))
    missing = sorted(present - {r.label for r in table})
    if missing:
        raise InputError(f"label value(s) {missing} are not in the label table (have "
                         f"{[r.label for r in table]})", source=str(p))
    if reference is not None:
        img = _resample_to(img, reference)
    else:
        import SimpleITK as sitk2

        img = sitk2.Cast(img, sitk2.sitkUInt16)
    return Segmentation(img, table)


def _ref_check(ds, reference_for_uid: str | None, *, source: str, keyword_path: str) -> None:
    if reference_for_uid is None:
        return
    uids = set()
    for item in ds.get("ReferencedFrameOfReferenceSequence", []) or []:
        u = item.get("FrameOfReferenceUID", None)
        if u:
            uids.add(str(u))
    u = ds.get("FrameOfReferenceUID", None)
    if u:
        uids.add(str(u))
    if uids and reference_for_uid not in uids:
        raise ConsistencyError(f"{keyword_path} is {sorted(uids)}; the reference CT has FrameOfReferenceUID "
                               f"{reference_for_uid}", source=source)


def rasterise_rtstruct(path_or_ds, reference, *, reference_for_uid: str | None = None,
                       tolerance_voxels: float = 0.5, source: str | None = None) -> Segmentation:
    """Fill the closed planar contours of an RTSTRUCT on the reference CT grid.

    Parameters
    ----------
    path_or_ds : path or pydicom.Dataset
    reference : SimpleITK.Image
        The CT grid (LPS).
    reference_for_uid : str, optional
        The CT's Frame of Reference UID; a structure set on another frame is refused.
    tolerance_voxels : float
        How far (voxels) a contour point may lie outside the image or off a slice plane.

    Raises
    ------
    DicomError
        Not an RTSTRUCT; contour data malformed.
    ConsistencyError
        Contours outside the image or between slices; another frame of reference.
    """
    import SimpleITK as sitk
    from matplotlib.path import Path as MplPath

    ds = read_header(path_or_ds, pixels=True) if isinstance(path_or_ds, str | Path) else path_or_ds
    source = source or (str(path_or_ds) if isinstance(path_or_ds, str | Path)
                        else str(ds.get("SOPInstanceUID", "RTSTRUCT")))
    if str(ds.get("Modality", "")) != "RTSTRUCT":
        raise DicomError(f"is {ds.get('Modality', None)!r}; expected RTSTRUCT", source=source,
                         tag=tag_label("Modality"))
    _ref_check(ds, reference_for_uid, source=source,
               keyword_path="ReferencedFrameOfReferenceSequence/FrameOfReferenceUID (3006,0010)")
    names = {}
    for item in ds.get("StructureSetROISequence", []) or []:
        names[int(item.ROINumber)] = str(item.get("ROIName", f"roi_{item.ROINumber}"))
    size = reference.GetSize()
    out = np.zeros(size[::-1], dtype=np.uint16)
    regions = []
    jj, ii = np.mgrid[0:size[1], 0:size[0]]
    centres = np.column_stack([ii.ravel(), jj.ravel()]).astype(float)
    origin = np.asarray(reference.GetOrigin())
    D = np.asarray(reference.GetDirection()).reshape(3, 3)
    sp = np.asarray(reference.GetSpacing())
    inv = np.linalg.inv(D * sp[None, :])
    for label, roi in enumerate(ds.get("ROIContourSequence", []) or [], start=1):
        number = int(roi.get("ReferencedROINumber", label))
        name = names.get(number, f"roi_{number}")
        region = region_from_name(label, name)
        regions.append(region)
        per_slice: dict[int, np.ndarray] = {}
        for c_i, contour in enumerate(roi.get("ContourSequence", []) or []):
            geom = str(contour.get("ContourGeometricType", "CLOSED_PLANAR"))
            if geom == "POINT":
                continue
            pts = get_floats(contour, "ContourData", source=source,
                             where=f"ROIContourSequence[{label - 1}]/ContourSequence[{c_i}]/")
            if pts is None or len(pts.value) % 3 or len(pts.value) < 9:
                raise DicomError(f"of ROI {name!r} contour {c_i} has {0 if pts is None else len(pts.value)} values; "
                                 "expected ≥ 3 (x, y, z) triplets", source=source, tag=tag_label("ContourData"))
            xyz = np.asarray(pts.value).reshape(-1, 3)
            idx = (xyz - origin) @ inv.T
            lo, hi = -0.5 - tolerance_voxels, np.asarray(size) - 0.5 + tolerance_voxels
            if np.any(idx < lo) or np.any(idx > hi):
                bad = xyz[np.any((idx < lo) | (idx > hi), axis=1)][0]
                raise ConsistencyError(f"ROI {name!r} contour {c_i} has point {bad.round(2).tolist()} mm (LPS) outside "
                                       f"the reference image (size {list(size)}, origin "
                                       f"{np.round(origin, 2).tolist()} mm)", source=source)
            k = idx[:, 2]
            kr = round(float(np.mean(k)))
            if np.max(np.abs(k - kr)) > tolerance_voxels:
                raise ConsistencyError(f"ROI {name!r} contour {c_i} is not on a slice of the reference grid (k from "
                                       f"{k.min():.2f} to {k.max():.2f})", source=source)
            inside = MplPath(idx[:, :2]).contains_points(centres).reshape(size[1], size[0])
            per_slice[kr] = per_slice.get(kr, np.zeros_like(inside)) ^ inside
        for k, mask in per_slice.items():
            out[k][mask] = label
    if not regions:
        raise DicomError("has no ROI contours", source=source, tag=tag_label("ROIContourSequence"))
    img = sitk.GetImageFromArray(out)
    img.CopyInformation(reference)
    return Segmentation(img, LabelTable(tuple(regions)))


def read_dicom_seg(path_or_ds, reference, *, reference_for_uid: str | None = None,
                   source: str | None = None) -> Segmentation:
    """Place the frames of a DICOM SEG (binary or fractional > 0.5) onto the reference grid.

    Frames must be parallel to the reference slices and on its in-plane grid (the usual case of
    a SEG made on that CT); anything else is refused with the offset found.
    """
    import SimpleITK as sitk

    ds = read_header(path_or_ds, pixels=True) if isinstance(path_or_ds, str | Path) else path_or_ds
    source = source or (str(path_or_ds) if isinstance(path_or_ds, str | Path) else str(ds.get("SOPInstanceUID", "SEG")))
    if str(ds.get("Modality", "")) != "SEG":
        raise DicomError(f"is {ds.get('Modality', None)!r}; expected SEG", source=source, tag=tag_label("Modality"))
    _ref_check(ds, reference_for_uid, source=source, keyword_path="FrameOfReferenceUID (0020,0052)")
    regions = []
    for item in ds.get("SegmentSequence", []) or []:
        num = int(item.SegmentNumber)
        regions.append(region_from_name(num, str(item.get("SegmentLabel", f"segment_{num}"))))
    try:
        frames = np.asarray(ds.pixel_array)
    except Exception as exc:
        raise DicomError(f"cannot be decoded ({type(exc).__name__}: {exc})", source=source,
                         tag=tag_label("PixelData")) from None
    if frames.ndim == 2:
        frames = frames[None]
    frac = str(ds.get("SegmentationType", "BINARY")).upper() == "FRACTIONAL"
    if frac:
        frames = frames > (float(ds.get("MaximumFractionalValue", 255)) / 2)
    size = reference.GetSize()
    out = np.zeros(size[::-1], dtype=np.uint16)
    origin = np.asarray(reference.GetOrigin())
    D = np.asarray(reference.GetDirection()).reshape(3, 3)
    sp = np.asarray(reference.GetSpacing())
    inv = np.linalg.inv(D * sp[None, :])
    shared = first_item(ds, "SharedFunctionalGroupsSequence")
    orient = first_item(shared, "PlaneOrientationSequence") if shared is not None else None
    if orient is not None:
        iop = get_floats(orient, "ImageOrientationPatient", source=source, n=6)
        if iop is not None and np.max(np.abs(np.asarray(iop.value) - D[:, :2].T.ravel())) > 1e-3:
            raise ConsistencyError(f"SEG orientation {list(iop.value)} differs from the reference CT "
                                   f"{D[:, :2].T.ravel().round(4).tolist()}; resample the SEG first", source=source)
    pfg = ds.get("PerFrameFunctionalGroupsSequence", []) or []
    if len(pfg) != frames.shape[0]:
        raise DicomError(f"has {len(pfg)} items for {frames.shape[0]} frames", source=source,
                         tag=tag_label("PerFrameFunctionalGroupsSequence"))
    for f_i, (fg, frame) in enumerate(zip(pfg, frames)):
        pos = first_item(fg, "PlanePositionSequence")
        ipp = get_floats(pos, "ImagePositionPatient", source=source, n=3) if pos is not None else None
        seg_id = first_item(fg, "SegmentIdentificationSequence")
        if ipp is None or seg_id is None:
            raise DicomError(f"frame {f_i} lacks PlanePositionSequence/ImagePositionPatient or "
                             "SegmentIdentificationSequence", source=source,
                             tag=tag_label("PerFrameFunctionalGroupsSequence"))
        idx = (np.asarray(ipp.value) - origin) @ inv.T
        r = np.round(idx)
        if np.max(np.abs(idx - r)) > 0.05:
            raise ConsistencyError(f"frame {f_i} at {list(ipp.value)} mm is not on the reference grid (index "
                                   f"{idx.round(3).tolist()})", source=source)
        i0, j0, k0 = (int(x) for x in r)
        h, w = frame.shape
        if not (0 <= k0 < size[2] and i0 >= 0 and j0 >= 0 and i0 + w <= size[0] and j0 + h <= size[1]):
            raise ConsistencyError(f"frame {f_i} at index {[i0, j0, k0]} (size {w}×{h}) lies outside the reference "
                                   f"image {list(size)}", source=source)
        label = int(seg_id.ReferencedSegmentNumber)
        out[k0, j0:j0 + h, i0:i0 + w][np.asarray(frame) > 0] = label
    img = sitk.GetImageFromArray(out)
    img.CopyInformation(reference)
    return Segmentation(img, LabelTable(tuple(regions)))


def load_segmentation(path: str | Path, reference, *, reference_for_uid: str | None = None,
                      table: LabelTable | None = None) -> Segmentation:
    """Any supported segmentation file onto the reference grid (format from the file)."""
    p = Path(path)
    if p.name.endswith((".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")):
        return read_label_map(p, table=table, reference=reference)
    ds = read_header(p, pixels=True)
    mod = str(ds.get("Modality", ""))
    if mod == "RTSTRUCT":
        return rasterise_rtstruct(ds, reference, reference_for_uid=reference_for_uid, source=str(p))
    if mod == "SEG":
        return read_dicom_seg(ds, reference, reference_for_uid=reference_for_uid, source=str(p))
    name = get_str(ds, "Modality", source=str(p))
    raise DicomError(f"is {None if name is None else name.value!r}; expected RTSTRUCT or SEG", source=str(p),
                     tag=tag_label("Modality"))
