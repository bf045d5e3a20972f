"""MRML nodes ↔ LuDosimetryLib types: volumes, transforms, tables, plot charts, attributes.

Every function here only converts and stores; the science is in LuDosimetryLib.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import slicer
import vtk

from .geometry import (
    geometry_from_ijk_to_ras,
    ijk_to_ras_from_geometry,
    transform_to_parent_ras_from_fixed_to_moving_lps,
)

__all__ = ["ATTRIBUTE_PREFIX", "vtk_matrix", "numpy_matrix", "volume_to_sitk", "sitk_to_volume",
           "set_node_attributes", "get_node_attributes", "registration_to_transform_node", "rows_to_table",
           "table_to_rows", "plot_chart", "mark_dose_volume"]

#: Prefix of the node attributes this extension writes (``LuDosimetry.TimeHoursPostInjection``).
ATTRIBUTE_PREFIX = "LuDosimetry."


def vtk_matrix(array) -> vtk.vtkMatrix4x4:
    """A vtkMatrix4x4 from a 4×4 array."""
    return slicer.util.vtkMatrixFromArray(np.asarray(array, float))


def numpy_matrix(matrix: vtk.vtkMatrix4x4) -> np.ndarray:
    """A 4×4 numpy array from a vtkMatrix4x4."""
    return slicer.util.arrayFromVTKMatrix(matrix)


def volume_to_sitk(node: slicer.vtkMRMLScalarVolumeNode):
    """A SimpleITK image (LPS, float32 for scalar volumes) from a volume node; the node is not changed.

    Label map volume nodes keep their integer type.
    """
    import SimpleITK as sitk

    arr = slicer.util.arrayFromVolume(node)  # [k, j, i]
    if not node.IsA("vtkMRMLLabelMapVolumeNode") and arr.dtype != np.float32:
        arr = arr.astype(np.float32)
    image = sitk.GetImageFromArray(np.array(arr, copy=True))
    m = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(m)
    origin, spacing, direction = geometry_from_ijk_to_ras(numpy_matrix(m))
    image.SetOrigin(origin)
    image.SetSpacing(spacing)
    image.SetDirection(direction)
    return image


def sitk_to_volume(image, *, name: str, node: slicer.vtkMRMLScalarVolumeNode | None = None,
                   label_map: bool = False) -> slicer.vtkMRMLScalarVolumeNode:
    """Store a SimpleITK image (LPS) in a new or given volume node (RAS geometry set)."""
    import SimpleITK as sitk

    if node is None:
        class_name = "vtkMRMLLabelMapVolumeNode" if label_map else "vtkMRMLScalarVolumeNode"
        node = slicer.mrmlScene.AddNewNodeByClass(class_name, name)
    slicer.util.updateVolumeFromArray(node, sitk.GetArrayFromImage(image))
    node.SetIJKToRASMatrix(vtk_matrix(ijk_to_ras_from_geometry(image.GetOrigin(), image.GetSpacing(),
                                                               image.GetDirection())))
    node.CreateDefaultDisplayNodes()
    return node


def set_node_attributes(node: slicer.vtkMRMLNode, attributes: Mapping[str, Any]) -> None:
    """Store metadata as string attributes ``LuDosimetry.<key>`` (saved with the scene)."""
    for key, value in attributes.items():
        node.SetAttribute(ATTRIBUTE_PREFIX + key, "" if value is None else str(value))


def get_node_attributes(node: slicer.vtkMRMLNode) -> dict[str, str]:
    """The ``LuDosimetry.*`` attributes of a node, prefix removed."""
    names = node.GetAttributeNames() or ()
    return {n[len(ATTRIBUTE_PREFIX):]: node.GetAttribute(n) for n in names if n.startswith(ATTRIBUTE_PREFIX)}


def registration_to_transform_node(fixed_to_moving_lps, *, name: str,
                                   node: slicer.vtkMRMLLinearTransformNode | None = None
                                   ) -> slicer.vtkMRMLLinearTransformNode:
    """A linear transform node that aligns the moving volume to the fixed one.

    ``fixed_to_moving_lps`` is the 4×4 LPS matrix of a SimpleITK registration transform (fixed
    point → moving point). The node stores its inverse in RAS as its to-parent transform, so a
    moving volume placed under it is displayed aligned (see :mod:`.geometry`).
    """
    if node is None:
        node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLLinearTransformNode", name)
    node.SetMatrixTransformToParent(vtk_matrix(transform_to_parent_ras_from_fixed_to_moving_lps(fixed_to_moving_lps)))
    return node


def rows_to_table(rows: Sequence[Mapping[str, Any]], *, name: str, columns: Sequence[str] | None = None,
                  units: Mapping[str, str] | None = None, titles: Mapping[str, str] | None = None,
                  node: slicer.vtkMRMLTableNode | None = None) -> slicer.vtkMRMLTableNode:
    """A table node from result rows: numeric columns as double arrays, others as strings.

    Column names are the unit-bearing machine names of the results files (``mean_dose_Gy``);
    ``units`` and ``titles`` set each column's unit label and display title.
    """
    rows = list(rows)
    cols = list(columns) if columns else (list(rows[0]) if rows else [])
    if node is None:
        node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLTableNode", name)
    node.RemoveAllColumns()
    for col in cols:
        values = [r.get(col) for r in rows]
        numeric = all(isinstance(v, int | float | np.number) and not isinstance(v, bool) for v in values
                      if v is not None)
        arr = vtk.vtkDoubleArray() if numeric else vtk.vtkStringArray()
        arr.SetName(col)
        for v in values:
            if numeric:
                arr.InsertNextValue(np.nan if v is None else float(v))
            else:
                arr.InsertNextValue("" if v is None else str(v))
        node.AddColumn(arr)
        if units and col in units:
            node.SetColumnUnitLabel(col, units[col])
        if titles and col in titles:
            node.SetColumnTitle(col, titles[col])
    return node


def table_to_rows(node: slicer.vtkMRMLTableNode) -> list[dict[str, Any]]:
    """Rows (dicts) from a table node; numeric columns as floats."""
    table = node.GetTable()
    names = [table.GetColumn(c).GetName() for c in range(table.GetNumberOfColumns())]
    out = []
    for r in range(node.GetNumberOfRows()):
        row = {}
        for c, n in enumerate(names):
            col = table.GetColumn(c)
            row[n] = col.GetValue(r) if isinstance(col, vtk.vtkStringArray) else float(col.GetValue(r))
        out.append(row)
    return out


def plot_chart(table: slicer.vtkMRMLTableNode, series: Sequence[Mapping[str, str]], *, name: str, title: str,
               x_title: str, y_title: str) -> slicer.vtkMRMLPlotChartNode:
    """A plot chart node with one series per mapping (``x``, ``y``, ``name``, ``style``: line|points)."""
    chart = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLPlotChartNode", name)
    chart.SetTitle(title)
    chart.SetXAxisTitle(x_title)
    chart.SetYAxisTitle(y_title)
    for spec in series:
        s = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLPlotSeriesNode", spec.get("name", spec["y"]))
        s.SetAndObserveTableNodeID(table.GetID())
        s.SetXColumnName(spec["x"])
        s.SetYColumnName(spec["y"])
        s.SetPlotType(slicer.vtkMRMLPlotSeriesNode.PlotTypeScatter)
        if spec.get("style") == "points":
            s.SetLineStyle(slicer.vtkMRMLPlotSeriesNode.LineStyleNone)
            s.SetMarkerStyle(slicer.vtkMRMLPlotSeriesNode.MarkerStyleCircle)
        else:
            s.SetMarkerStyle(slicer.vtkMRMLPlotSeriesNode.MarkerStyleNone)
        chart.AddAndObservePlotSeriesNodeID(s.GetID())
    return chart


def mark_dose_volume(node: slicer.vtkMRMLScalarVolumeNode) -> None:
    """Make a volume recognisable as an absorbed-dose volume in Gy by Slicer and SlicerRT.

    SlicerRT recognises a dose volume by the node attribute ``DicomRtImport.DoseVolume`` and reads
    the dose unit from the attributes ``DicomRtImport.DoseUnitName``/``DoseUnitValue`` of the
    parent *study* item in the subject hierarchy (SlicerRT DoseAccumulation documentation); the
    node is placed under a study item if it has none. Units are also set as the voxel value units
    (UCUM ``Gy``), as Slicer's PET DICOM extension does for its quantities.
    """
    node.SetAttribute("DicomRtImport.DoseVolume", "1")
    units = slicer.vtkCodedEntry()
    units.SetValueSchemeMeaning("Gy", "UCUM", "Gray")
    node.SetVoxelValueUnits(units)
    sh = slicer.mrmlScene.GetSubjectHierarchyNode()
    item = sh.GetItemByDataNode(node)
    study = sh.GetItemParent(item)
    if study == sh.GetSceneItemID() or not sh.IsItemLevel(study, "Study"):
        study = sh.CreateStudyItem(sh.GetSceneItemID(), "LuDosimetry dose")
        sh.SetItemParent(item, study)
    sh.SetItemAttribute(study, "DicomRtImport.DoseUnitName", "Gy")
    sh.SetItemAttribute(study, "DicomRtImport.DoseUnitValue", "1.0")
