"""The Slicer edge on Slicer's real MRML (slicer-core): the fixture's scene is real, and conversions at the module edge
are right where errors hide (RAS↔LPS, KJI vs IJK, oblique geometry, transform direction)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[2]
EDGE = REPO / "LuDosimetry" / "LuDosimetryCommon"


def test_the_fixture_scene_is_slicer_cores_real_scene_with_slicers_own_util(slicer):
    import importlib.metadata

    import slicer_app

    scene = slicer.mrmlScene
    assert type(scene).__module__ == slicer_app.SLICER_CORE_MODULE and scene.IsA("vtkMRMLScene")
    assert importlib.metadata.version("slicer-core").startswith("5.12.")
    # slicer.util is Slicer's own Base/Python/slicer/util.py, installed by slicer-core
    files = {str(f) for f in importlib.metadata.files("slicer-core")}
    assert "slicer/util.py" in files and Path(slicer.util.__file__).as_posix().endswith("site-packages/slicer/util.py")
    # what the application adds to every scene: the hierarchy node, the default colour tables, a crosshair
    assert scene.GetSubjectHierarchyNode() is not None
    assert scene.GetNodeByID("vtkMRMLColorTableNodeGrey") is not None
    assert scene.GetFirstNodeByClass("vtkMRMLCrosshairNode") is not None


def test_vtk_warnings_are_caught_by_the_fixture_window(tmp_path):
    """The output-window capture the fixture fails on records MRML's warnings with their text."""
    import slicer_app

    messages = slicer_app.VtkMessages()
    try:
        scene, _ = slicer_app.new_scene(tmp_path / "cache")
        sh = scene.GetSubjectHierarchyNode()
        sh.SetItemParent(0, sh.GetSceneItemID())  # what a missing item used to log silently
    finally:
        messages.close()
    assert len(messages.messages) == 1 and "SetItemParent: Invalid item ID given" in messages.messages[0]
    assert messages.messages[0].startswith("Warning:")


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
    assert table.GetColumnTitle("dose_Gy") == "Dose" and table.GetColumnTitle("region") == ""  # unset: empty
    # one helper reads text and numeric columns; Slicer's own arrayFromTableColumn refuses text columns
    regions, doses = nodes.table_column(table, "region"), nodes.table_column(table, "dose_Gy")
    assert regions.tolist() == ["kidney_left", "liver"] and regions.dtype.kind == "U"
    assert doses.dtype == np.float64 and doses[0] == 3.5 and np.isnan(doses[1])
    with pytest.raises(AssertionError, match="Unsupported array type"):
        slicer.util.arrayFromTableColumn(table, "region")
    np.testing.assert_array_equal(slicer.util.arrayFromTableColumn(table, "dose_Gy"), doses)
    from LuDosimetryLib.errors import InputError

    with pytest.raises(InputError, match=r"doses.*no column 'mean_dose_Gy' \(columns: region, dose_Gy\)"):
        nodes.table_column(table, "mean_dose_Gy")
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
