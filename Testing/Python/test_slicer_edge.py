"""The Slicer edge: the MRML stand-in is true to Slicer's API, and conversions at the module edge
are right where errors hide (RAS↔LPS, KJI vs IJK, oblique geometry, transform direction)."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
from pathlib import Path

import mrml_standin
import numpy as np
import pytest
import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[2]
# The Slicer API checker lives in ../shared/slicer (the Makefile's SHARED); the environment variable
# SHARED overrides where that folder is.
_SHARED = [Path(os.environ["SHARED"])] if os.environ.get("SHARED") else [p / "shared" for p in REPO.parents]
_CANDIDATES = [s / "slicer" / "check_slicer_api.py" for s in _SHARED]
CHECKER = next((c for c in _CANDIDATES if c.exists()), _CANDIDATES[0])
EDGE = REPO / "LuDosimetry" / "LuDosimetryCommon"


def _symbols():
    spec = importlib.util.spec_from_file_location("check_slicer_api", CHECKER)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.Symbols(str(CHECKER.with_name("api_symbols.json")), "v5.10.0", [])


def test_every_standin_method_exists_in_slicer_api():
    syms = _symbols()
    checked = 0
    for cls_name, cls in {**mrml_standin.STANDIN_CLASSES, "vtkMRMLScene": mrml_standin.vtkMRMLScene}.items():
        assert syms.closure(cls_name) is not None, f"{cls_name} is not a Slicer class"
        for name, _member in inspect.getmembers(cls):
            if name.startswith("_"):
                continue
            assert syms.has_member(cls_name, name, loose=False), f"{cls_name}.{name} does not exist in Slicer"
            assert not syms.member_missing_in_target(cls_name, name), f"{cls_name}.{name} missing in 5.10"
            checked += 1
    util = syms.module_names("slicer.util")
    for name in mrml_standin.UTIL_FUNCTIONS:
        assert name in util, f"slicer.util.{name} does not exist"
        checked += 1
    assert checked > 80


def test_volume_round_trip_keeps_lps_geometry_and_kji_order(slicer):
    from LuDosimetrySlicerLib import nodes

    arr = np.arange(4 * 3 * 2, dtype=np.float32).reshape(4, 3, 2)  # [k, j, i]: 2 columns, 3 rows, 4 slices
    img = sitk.GetImageFromArray(arr)
    img.SetOrigin((10.0, -20.0, 30.0))
    img.SetSpacing((1.5, 2.0, 3.0))
    node = nodes.sitk_to_volume(img, name="v")
    # the voxel at index (i, j, k) = (1, 2, 3) has value arr[3, 2, 1] and sits at LPS origin + (1.5, 4, 9)
    assert slicer.util.arrayFromVolume(node)[3, 2, 1] == arr[3, 2, 1] == 23
    m = slicer.util.arrayFromVTKMatrix(_ijk_to_ras(node))
    ras = m @ np.array([1, 2, 3, 1.0])
    np.testing.assert_allclose(ras[:3], [-(10.0 + 1.5), -(-20.0 + 4.0), 30.0 + 9.0])  # RAS = (−L, −P, S)
    back = nodes.volume_to_sitk(node)
    assert back.GetOrigin() == pytest.approx(img.GetOrigin())
    assert back.GetSpacing() == pytest.approx(img.GetSpacing())
    assert back.GetDirection() == pytest.approx(img.GetDirection())
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), arr)


def _ijk_to_ras(node):
    import vtk

    m = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(m)
    return m


def test_oblique_volume_ijk_to_ras_matches_itk_physical_points(slicer):
    from LuDosimetrySlicerLib import nodes

    img = sitk.Image(5, 6, 7, sitk.sitkFloat32)
    rot = sitk.VersorTransform((0.3, -0.2, 1.0), 0.4).GetMatrix()  # a rotation: oblique direction cosines
    img.SetDirection(rot)
    img.SetOrigin((3.0, 4.0, -5.0))
    img.SetSpacing((1.0, 2.0, 2.5))
    node = nodes.sitk_to_volume(img, name="oblique")
    m = slicer.util.arrayFromVTKMatrix(_ijk_to_ras(node))
    for ijk in [(0, 0, 0), (4, 0, 0), (1, 5, 6), (4, 5, 6)]:
        lps = np.array(img.TransformIndexToPhysicalPoint(ijk))
        ras = (m @ np.array([*ijk, 1.0]))[:3]
        np.testing.assert_allclose(ras, lps * [-1, -1, 1], atol=1e-9)
    back = nodes.volume_to_sitk(node)
    np.testing.assert_allclose(back.GetDirection(), rot, atol=1e-12)


def test_transform_node_maps_moving_points_onto_fixed_as_slicer_expects(slicer):
    """A known rotation: SimpleITK's registration transform maps fixed → moving points; the
    transform node (to parent) must map the moving volume's points back onto the fixed ones."""
    from LuDosimetrySlicerLib import nodes
    from LuDosimetrySlicerLib.geometry import affine_from_sitk_transform

    t = sitk.Euler3DTransform((10.0, 0.0, 0.0), 0.0, 0.0, np.deg2rad(3.0), (5.0, -2.0, 1.0))
    p_fixed_lps = np.array([40.0, 10.0, 0.0])
    p_moving_lps = np.array(t.TransformPoint(tuple(p_fixed_lps)))
    node = nodes.registration_to_transform_node(affine_from_sitk_transform(t), name="tp2 to tp1")
    to_parent = slicer.util.arrayFromTransformMatrix(node)
    p_moving_ras = p_moving_lps * [-1, -1, 1]
    mapped = (to_parent @ np.array([*p_moving_ras, 1.0]))[:3]
    np.testing.assert_allclose(mapped, p_fixed_lps * [-1, -1, 1], atol=1e-9)
    # resampling uses the inverse of to-parent: it maps fixed (RAS) points to where to sample the moving volume
    inv = np.linalg.inv(to_parent)
    np.testing.assert_allclose((inv @ np.array([*(p_fixed_lps * [-1, -1, 1]), 1.0]))[:3], p_moving_ras, atol=1e-9)


def test_rows_become_a_table_with_units_and_back(slicer):
    from LuDosimetrySlicerLib import nodes

    rows = [{"region": "kidney_left", "dose_Gy": 3.5}, {"region": "liver", "dose_Gy": None}]
    table = nodes.rows_to_table(rows, name="doses", units={"dose_Gy": "Gy"}, titles={"dose_Gy": "Dose"})
    assert table.GetNumberOfRows() == 2 and table.GetColumnUnitLabel("dose_Gy") == "Gy"
    back = nodes.table_to_rows(table)
    assert back[0] == {"region": "kidney_left", "dose_Gy": 3.5} and np.isnan(back[1]["dose_Gy"])
    chart = nodes.plot_chart(table, [{"x": "region", "y": "dose_Gy", "style": "points"}], name="c",
                             title="Dose", x_title="region", y_title="Gy")
    series = slicer.mrmlScene.GetNodeByID(chart.GetNthPlotSeriesNodeID(0))
    assert series.GetTableNodeID() == table.GetID() and series.GetYColumnName() == "dose_Gy"


def test_dose_volume_carries_slicerrt_attributes_and_units(slicer):
    from LuDosimetrySlicerLib import nodes

    node = nodes.sitk_to_volume(sitk.Image(2, 2, 2, sitk.sitkFloat32), name="dose")
    nodes.set_node_attributes(node, {"TimeHoursPostInjection": 24.0, "Nuclide": "Lu-177"})
    nodes.mark_dose_volume(node)
    assert node.GetAttribute("DicomRtImport.DoseVolume") == "1"
    assert node.GetVoxelValueUnits().GetCodeValue() == "Gy"
    sh = slicer.mrmlScene.GetSubjectHierarchyNode()
    study = sh.GetItemParent(sh.GetItemByDataNode(node))
    assert sh.GetItemAttribute(study, "DicomRtImport.DoseUnitName") == "Gy"
    assert nodes.get_node_attributes(node) == {"TimeHoursPostInjection": "24.0", "Nuclide": "Lu-177",
                                               "Quantity": "absorbed_dose", "Units": "Gy"}
    assert node.GetVoxelValueQuantity().GetCodeMeaning() == "Absorbed dose"
