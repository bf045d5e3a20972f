"""MRML nodes ↔ LuDosimetryLib types: volumes, transforms, tables, plot charts, attributes.

Every function here only converts and stores; the science is in LuDosimetryLib.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import slicer
import vtk
import vtk.util.numpy_support

from .geometry import (
    geometry_from_ijk_to_ras,
    ijk_to_ras_from_geometry,
    transform_to_parent_ras_from_fixed_to_moving_lps,
)
from .hierarchy import node_item

__all__ = ["ATTRIBUTE_PREFIX", "vtk_matrix", "numpy_matrix", "volume_to_sitk", "sitk_to_volume",
           "set_node_attributes", "get_node_attributes", "registration_to_transform_node", "rows_to_table",
           "table_to_rows", "table_column", "keep_full_precision", "full_precision_rows", "result_columns",
           "FULL_PRECISION_ROLE", "plot_chart", "mark_dose_volume", "set_voxel_value", "coded_entry",
           "VOXEL_UNITS",
           "VOXEL_QUANTITIES", "show_volume", "column_units", "columns_table"]

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


#: Voxel value units as UCUM coded entries (value, scheme, meaning), keyed by the library's unit names.
VOXEL_UNITS = {
    "Bq/mL": ("Bq/ml", "UCUM", "becquerel per millilitre"),
    "Bq h/mL": ("Bq.h/ml", "UCUM", "becquerel hour per millilitre"),
    "Bq h": ("Bq.h", "UCUM", "becquerel hour"),
    "Gy": ("Gy", "UCUM", "gray"),
    "Gy/h": ("Gy/h", "UCUM", "gray per hour"),
    "HU": ("[hnsf'U]", "UCUM", "Hounsfield unit"),
    "g/mL": ("g/ml", "UCUM", "gram per millilitre"),
}
#: Voxel value quantities (private coding scheme ``99LUDOSIM``: DICOM has no code for these).
VOXEL_QUANTITIES = {
    "activity_concentration": ("ActivityConcentration", "99LUDOSIM", "Activity concentration"),
    "time_integrated_activity": ("TIA", "99LUDOSIM", "Time-integrated activity"),
    "time_integrated_activity_concentration": ("TIAConcentration", "99LUDOSIM",
                                               "Time-integrated activity concentration"),
    "absorbed_dose": ("AbsorbedDose", "99LUDOSIM", "Absorbed dose"),
    "ct_number": ("CTNumber", "99LUDOSIM", "CT number"),
}


def coded_entry(value: str, scheme: str, meaning: str):
    """A ``slicer.vtkCodedEntry``."""
    entry = slicer.vtkCodedEntry()
    entry.SetValueSchemeMeaning(value, scheme, meaning)
    return entry


def set_voxel_value(node: slicer.vtkMRMLScalarVolumeNode, *, quantity: str, units: str) -> None:
    """Set a volume's voxel value quantity and units (coded entries, as Slicer's PET extension does),
    and the attributes ``LuDosimetry.Quantity``/``LuDosimetry.Units``."""
    node.SetVoxelValueQuantity(coded_entry(*VOXEL_QUANTITIES[quantity]))
    node.SetVoxelValueUnits(coded_entry(*VOXEL_UNITS[units]))
    set_node_attributes(node, {"Quantity": quantity, "Units": units})


def show_volume(node: slicer.vtkMRMLScalarVolumeNode, *, color_node_id: str, window: tuple[float, float]) -> None:
    """Colour table and a fixed window (lo, hi) for a volume's display node."""
    node.CreateDefaultDisplayNodes()
    display = node.GetScalarVolumeDisplayNode()
    display.SetAndObserveColorNodeID(color_node_id)
    display.SetAutoWindowLevel(0)
    display.SetWindowLevelMinMax(float(window[0]), float(window[1]))


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

    Column names are the unit-bearing machine names of the results files (``dose_Gy``);
    ``units`` and ``titles`` set each column's unit label and display title; without ``units``
    the unit labels come from the column names' suffixes (:func:`column_units`).
    """
    rows = list(rows)
    cols = list(columns) if columns else (list(rows[0]) if rows else [])
    if node is None:
        node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLTableNode", name)
    node.RemoveAllColumns()
    if units is None:
        units = column_units(cols)
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


#: Unit label of a column from its name's suffix (longest suffix first): ``dose_Gy`` → ``Gy``.
_SUFFIX_UNITS = (
    ("_Gy_per_GBq", "Gy/GBq"), ("_Bq_per_mL", "Bq/mL"), ("_MBq_h", "MBq·h"), ("_Bq_h", "Bq·h"), ("_GBq", "GBq"),
    ("_MBq", "MBq"), ("_Bq", "Bq"), ("_Gy", "Gy"), ("_mL", "mL"), ("_mm", "mm"), ("_g", "g"), ("_h", "h"),
    ("_percent", "%"),
)


def column_units(columns: Sequence[str]) -> dict[str, str]:
    """Unit labels of unit-bearing column names (columns without a unit suffix are left out)."""
    out = {}
    for col in columns:
        for suffix, unit in _SUFFIX_UNITS:
            if col.endswith(suffix):
                out[col] = unit
                break
    return out


def columns_table(columns: Mapping[str, Sequence[float]], *, name: str,
                  node: slicer.vtkMRMLTableNode | None = None) -> slicer.vtkMRMLTableNode:
    """A table node of numeric columns (name → values of equal length), units from the names."""
    if node is None:
        node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLTableNode", name)
    node.RemoveAllColumns()
    for col, values in columns.items():
        arr = vtk.vtkDoubleArray()
        arr.SetName(col)
        for v in np.asarray(values, dtype=float).ravel():
            arr.InsertNextValue(float(v))
        node.AddColumn(arr)
    for col, unit in column_units(list(columns)).items():
        node.SetColumnUnitLabel(col, unit)
    return node


def table_column(node: slicer.vtkMRMLTableNode, name: str) -> np.ndarray:
    """A column of a table node as a numpy array (a copy): numbers as float64, text as ``str``.

    Use this rather than ``slicer.util.arrayFromTableColumn``, which raises on text columns (it
    hands the column to ``vtk_to_numpy``, which refuses a ``vtkStringArray``).

    Raises
    ------
    InputError
        The table has no column ``name`` (the message names the table and its columns).
    """
    from LuDosimetryLib.errors import InputError

    column = node.GetTable().GetColumnByName(name)
    if column is None:
        table = node.GetTable()
        names = [table.GetColumnName(c) for c in range(table.GetNumberOfColumns())]
        raise InputError(f"has no column {name!r} (columns: {', '.join(names)})", source=node.GetName())
    if isinstance(column, vtk.vtkDataArray):
        return np.array(vtk.util.numpy_support.vtk_to_numpy(column), dtype=float)
    return np.array([str(column.GetValue(r)) for r in range(column.GetNumberOfValues())], dtype=str)


def table_to_rows(node: slicer.vtkMRMLTableNode) -> list[dict[str, Any]]:
    """Rows (dicts) from a table node; numeric columns as floats, text columns as str."""
    table = node.GetTable()
    names = [table.GetColumnName(c) for c in range(table.GetNumberOfColumns())]
    columns = {n: table_column(node, n).tolist() for n in names}
    return [{n: columns[n][r] for n in names} for r in range(node.GetNumberOfRows())]


def result_columns(rows: Sequence[Mapping[str, Any]], first: Sequence[str]) -> list[str]:
    """The columns of a results file: ``first``, then the rows' other keys in first-seen order
    (as :func:`LuDosimetryLib.results.write_csv` appends them)."""
    return [*first, *dict.fromkeys(k for r in rows for k in r if k not in first)]


#: Node reference role from a result table to the text node holding its rows at full precision.
FULL_PRECISION_ROLE = "LuDosimetry.FullPrecision"


def keep_full_precision(table: slicer.vtkMRMLTableNode, rows: Sequence[Mapping[str, Any]],
                        columns: Sequence[str]) -> slicer.vtkMRMLTextNode:
    """Keep a result table's rows at full precision in a text node (JSON) the table references.

    Slicer saves a table node as a TSV file written with 6 significant digits (vtkMRMLTableStorageNode
    uses vtkDelimitedTextWriter at the stream's default precision), so doses and TIAs read back from a
    saved scene are rounded. A text node keeps its text exactly; JSON writes each float as its
    shortest round-trip representation, so :func:`full_precision_rows` returns the numbers computed.
    The text node is placed beside the table in the subject hierarchy.
    """
    import json

    from LuDosimetryLib.results import to_jsonable

    name = f"{table.GetName()} (full precision)"
    text = table.GetNodeReference(FULL_PRECISION_ROLE) or slicer.mrmlScene.AddNewNodeByClass("vtkMRMLTextNode", name)
    cols = list(columns)
    text.SetText(json.dumps({"columns": cols, "rows": to_jsonable([{c: r.get(c) for c in cols} for r in rows])},
                            ensure_ascii=False))
    text.SetAttribute(ATTRIBUTE_PREFIX + "FullPrecisionOf", table.GetName())
    table.SetNodeReferenceID(FULL_PRECISION_ROLE, text.GetID())
    sh = slicer.mrmlScene.GetSubjectHierarchyNode()
    sh.SetItemParent(node_item(text), sh.GetItemParent(node_item(table)))
    return text


def full_precision_rows(table: slicer.vtkMRMLTableNode) -> list[dict[str, Any]]:
    """The rows of a result table at full precision (numbers as computed, missing values None).

    Reads the text node of :func:`keep_full_precision`; a table without one (made elsewhere)
    gives :func:`table_to_rows`.
    """
    import json

    text = table.GetNodeReference(FULL_PRECISION_ROLE)
    if text is None:
        return table_to_rows(table)
    return json.loads(text.GetText())["rows"]


def plot_chart(table: slicer.vtkMRMLTableNode, series: Sequence[Mapping[str, str]], *, name: str, title: str,
               x_title: str, y_title: str) -> slicer.vtkMRMLPlotChartNode:
    """A plot chart node with one series per mapping (``x``, ``y``, ``name``, ``style``: line|points,
    optionally ``table``: another table node for this series)."""
    chart = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLPlotChartNode", name)
    chart.SetTitle(title)
    chart.SetXAxisTitle(x_title)
    chart.SetYAxisTitle(y_title)
    for spec in series:
        s = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLPlotSeriesNode", spec.get("name", spec["y"]))
        s.SetAndObserveTableNodeID(spec.get("table", table).GetID())
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
    set_voxel_value(node, quantity="absorbed_dose", units="Gy")
    sh = slicer.mrmlScene.GetSubjectHierarchyNode()
    item = node_item(node)
    study = sh.GetItemParent(item)
    if study == sh.GetSceneItemID() or not sh.IsItemLevel(study, "Study"):
        study = sh.CreateStudyItem(sh.GetSceneItemID(), "LuDosimetry dose")
        sh.SetItemParent(item, study)
    sh.SetItemAttribute(study, "DicomRtImport.DoseUnitName", "Gy")
    sh.SetItemAttribute(study, "DicomRtImport.DoseUnitValue", "1.0")
