"""Segmentations onto the reference CT grid: RTSTRUCT filling, DICOM SEG placement, label maps."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pytest
import SimpleITK as sitk
from ingest_builders import dicom_seg, rtstruct, write_series

from LuDosimetryLib.errors import ConsistencyError, InputError
from LuDosimetryLib.ingest.segmentation import load_segmentation, rasterise_rtstruct, read_label_map
from LuDosimetryLib.labels import LabelTable, Region

WHEN = datetime(2026, 3, 2, 14, 0)
FOR = "1.2.3.4.5"


def _reference():
    img = sitk.Image(20, 20, 10, sitk.sitkFloat32)
    img.SetSpacing((2.0, 2.0, 2.0))
    img.SetOrigin((0.0, 0.0, 0.0))
    return img


def _square(x0, x1, z):
    return np.array([[x0, x0, z], [x1, x0, z], [x1, x1, z], [x0, x1, z]], dtype=float)


def test_rtstruct_contours_fill_voxel_centres_inside_with_holes(tmp_path):
    # outer square 3..13 mm: centres 4,6,8,10,12 → 5 × 5; hole 5..9 mm: centres 6, 8 → 2 × 2
    ds = rtstruct({"Kidney_L": [_square(3, 13, 4.0), _square(5, 9, 4.0)], "Lesion 1": [_square(23, 27, 6.0)]},
                  for_uid=FOR, when=WHEN)
    p = write_series(ds, tmp_path)[0]
    seg = load_segmentation(p, _reference(), reference_for_uid=FOR)
    arr = sitk.GetArrayFromImage(seg.image)
    assert int((arr == 1).sum()) == 25 - 4 and int((arr[2] == 1).sum()) == 21 and arr[2, 3, 3] == 0
    assert int((arr == 2).sum()) == 2 * 2 and np.all(arr[3][12:14, 12:14] == 2)
    assert [r.name for r in seg.table] == ["kidney_left", "lesion_1"]
    assert seg.table.by_label(1).side == "left" and seg.table.by_label(2).kind == "lesion"


def test_rtstruct_contour_outside_the_image_is_refused(tmp_path):
    ds = rtstruct({"liver": [_square(30, 60, 4.0)]}, for_uid=FOR, when=WHEN)
    p = write_series(ds, tmp_path)[0]
    with pytest.raises(ConsistencyError, match=r"IM_0000\.dcm: ROI 'liver' contour 0 has point .* outside the "
                                               r"reference image"):
        load_segmentation(p, _reference(), reference_for_uid=FOR)
    with pytest.raises(ConsistencyError, match=r"FrameOfReferenceUID .* reference CT has FrameOfReferenceUID 9\.9"):
        rasterise_rtstruct(ds, _reference(), reference_for_uid="9.9")


def test_dicom_seg_frames_land_on_the_reference_grid(tmp_path):
    m = np.zeros((10, 20, 20), bool)
    m[3:6, 4:9, 2:7] = True
    ds = dicom_seg({"spleen": m}, origin=(0.0, 0.0, 0.0), spacing=(2.0, 2.0, 2.0), for_uid=FOR, when=WHEN)
    p = write_series(ds, tmp_path)[0]
    seg = load_segmentation(p, _reference(), reference_for_uid=FOR)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(seg.image) == 1, m)
    assert seg.table.by_label(1).name == "spleen"


def test_label_maps_nifti_with_table_and_seg_nrrd_names(tmp_path):
    arr = np.zeros((10, 20, 20), np.uint8)
    arr[2:4, 2:4, 2:4] = 1
    arr[5:7, 5:7, 5:7] = 2
    img = sitk.GetImageFromArray(arr)
    img.CopyInformation(_reference())
    sitk.WriteImage(img, str(tmp_path / "labels.nii.gz"))
    table = LabelTable((Region(1, "kidney_cortex_left", "left"), Region(2, "lesion_1", "none", "lesion")))
    (tmp_path / "labels.csv").write_text(table.to_csv_text())
    seg = read_label_map(tmp_path / "labels.nii.gz", reference=_reference())
    assert seg.table == table and int((sitk.GetArrayFromImage(seg.image) == 2).sum()) == 8
    # a label not in the table is refused
    arr[0, 0, 0] = 7
    img2 = sitk.GetImageFromArray(arr)
    sitk.WriteImage(img2, str(tmp_path / "labels.nii.gz"))
    with pytest.raises(InputError, match=r"labels\.nii\.gz: label value\(s\) \[7\] are not in the label table"):
        read_label_map(tmp_path / "labels.nii.gz")
    # Slicer .seg.nrrd: names from the header
    seg_img = sitk.GetImageFromArray(np.where(arr == 7, 0, arr).astype(np.uint8))
    seg_img.CopyInformation(_reference())
    for k, v in {"Segment0_Name": "Liver", "Segment0_LabelValue": "1", "Segment0_Layer": "0",
                 "Segment1_Name": "Kidney right", "Segment1_LabelValue": "2", "Segment1_Layer": "0"}.items():
        seg_img.SetMetaData(k, v)
    sitk.WriteImage(seg_img, str(tmp_path / "s.seg.nrrd"))
    s = read_label_map(tmp_path / "s.seg.nrrd")
    assert [r.name for r in s.table] == ["liver", "kidney_right"]
    assert int((sitk.GetArrayFromImage(s.image) == 2).sum()) == 8
