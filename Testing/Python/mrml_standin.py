"""A small stand-in for the MRML calls the LuDosimetry module logic makes, built on the vtk package.

Slicer cannot be installed on CI machines, so module logic runs here against these classes.
Every public method of a stand-in class named ``vtkMRML*`` must exist on that class (or an
ancestor) in Slicer's real API, and every ``util`` function must exist in ``slicer.util``: the
test ``test_slicer_standin.py`` checks this with ../shared/slicer/check_slicer_api.py's symbol
table, so the stand-in cannot drift into inventing an API. ``vtkCodedEntry`` is the one helper
class outside that table (the table lists MRML node classes only); it is kept minimal.

Use :func:`install` to put ``slicer`` (and ``slicer.util``) into ``sys.modules`` for a test.
"""

from __future__ import annotations

import itertools
import sys
import types

import numpy as np
import vtk
from vtk.util import numpy_support

__all__ = ["install", "uninstall", "STANDIN_CLASSES", "UTIL_FUNCTIONS"]


# --- helper outside the MRML table ------------------------------------------------------------
class vtkCodedEntry:
    """A coded concept (value, scheme, meaning), as Slicer's vtkCodedEntry."""

    def __init__(self) -> None:
        self._v = ("", "", "")

    def SetValueSchemeMeaning(self, value: str, scheme: str, meaning: str) -> None:
        self._v = (value, scheme, meaning)

    def GetCodeValue(self) -> str:
        return self._v[0]

    def GetCodingSchemeDesignator(self) -> str:
        return self._v[1]

    def GetCodeMeaning(self) -> str:
        return self._v[2]


# --- nodes --------------------------------------------------------------------------------------
class vtkMRMLNode:
    _ids = itertools.count(1)

    def __init__(self) -> None:
        self._id = f"{type(self).__name__}{next(self._ids)}"
        self._name = ""
        self._attributes: dict[str, str] = {}
        self._scene = None

    def GetID(self) -> str:
        return self._id

    def GetName(self) -> str:
        return self._name

    def SetName(self, name: str) -> None:
        self._name = name

    def GetClassName(self) -> str:
        return type(self).__name__

    def IsA(self, class_name: str) -> bool:
        return any(c.__name__ == class_name for c in type(self).__mro__)

    def SetAttribute(self, name: str, value: str) -> None:
        self._attributes[name] = str(value)

    def GetAttribute(self, name: str) -> str | None:
        return self._attributes.get(name)

    def GetAttributeNames(self) -> tuple[str, ...]:
        return tuple(self._attributes)

    def RemoveAttribute(self, name: str) -> None:
        self._attributes.pop(name, None)

    def GetScene(self):
        return self._scene

    def SetNodeReferenceID(self, role: str, node_id: str | None):
        self._refs = getattr(self, "_refs", {})
        self._refs[role] = node_id
        return self

    def GetNodeReferenceID(self, role: str) -> str | None:
        return getattr(self, "_refs", {}).get(role)

    def GetNodeReference(self, role: str):
        node_id = self.GetNodeReferenceID(role)
        return self._scene.GetNodeByID(node_id) if node_id and self._scene is not None else None

    def Modified(self) -> None:
        pass


class vtkMRMLDisplayNode(vtkMRMLNode):
    def __init__(self) -> None:
        super().__init__()
        self._color = ""

    def SetAndObserveColorNodeID(self, node_id: str) -> None:
        self._color = node_id

    def GetColorNodeID(self) -> str:
        return self._color


class vtkMRMLScalarVolumeDisplayNode(vtkMRMLDisplayNode):
    def __init__(self) -> None:
        super().__init__()
        self._auto = 1
        self._wl = (0.0, 1.0)

    def SetAutoWindowLevel(self, flag: int) -> None:
        self._auto = int(flag)

    def GetAutoWindowLevel(self) -> int:
        return self._auto

    def SetWindowLevelMinMax(self, lo: float, hi: float) -> None:
        self._wl = (float(lo), float(hi))

    def GetWindowLevelMin(self) -> float:
        return self._wl[0]

    def GetWindowLevelMax(self) -> float:
        return self._wl[1]


class vtkMRMLTransformableNode(vtkMRMLNode):
    def __init__(self) -> None:
        super().__init__()
        self._transform_id = None

    def SetAndObserveTransformNodeID(self, node_id: str | None) -> None:
        self._transform_id = node_id

    def GetTransformNodeID(self) -> str | None:
        return self._transform_id

    def GetParentTransformNode(self):
        return self._scene.GetNodeByID(self._transform_id) if self._transform_id and self._scene else None


class vtkMRMLDisplayableNode(vtkMRMLTransformableNode):
    _display_class = vtkMRMLDisplayNode

    def __init__(self) -> None:
        super().__init__()
        self._display = None

    def CreateDefaultDisplayNodes(self) -> None:
        if self._display is None:
            self._display = self._display_class()
            if self._scene is not None:
                self._scene.AddNode(self._display)

    def GetDisplayNode(self):
        return self._display


class vtkMRMLVolumeNode(vtkMRMLDisplayableNode):
    def __init__(self) -> None:
        super().__init__()
        self._image = None
        self._ijk_to_ras = vtk.vtkMatrix4x4()

    def SetAndObserveImageData(self, image: vtk.vtkImageData) -> None:
        self._image = image

    def GetImageData(self) -> vtk.vtkImageData | None:
        return self._image

    def SetIJKToRASMatrix(self, matrix: vtk.vtkMatrix4x4) -> None:
        self._ijk_to_ras.DeepCopy(matrix)

    def GetIJKToRASMatrix(self, matrix: vtk.vtkMatrix4x4) -> None:
        matrix.DeepCopy(self._ijk_to_ras)

    def GetSpacing(self) -> tuple[float, float, float]:
        m = np.array([[self._ijk_to_ras.GetElement(r, c) for c in range(3)] for r in range(3)])
        return tuple(np.linalg.norm(m, axis=0).tolist())

    def GetOrigin(self) -> tuple[float, float, float]:
        return tuple(self._ijk_to_ras.GetElement(r, 3) for r in range(3))


class vtkMRMLScalarVolumeNode(vtkMRMLVolumeNode):
    _display_class = vtkMRMLScalarVolumeDisplayNode

    def __init__(self) -> None:
        super().__init__()
        self._quantity = None
        self._units = None

    def SetVoxelValueQuantity(self, entry: vtkCodedEntry) -> None:
        self._quantity = entry

    def GetVoxelValueQuantity(self) -> vtkCodedEntry | None:
        return self._quantity

    def SetVoxelValueUnits(self, entry: vtkCodedEntry) -> None:
        self._units = entry

    def GetVoxelValueUnits(self) -> vtkCodedEntry | None:
        return self._units

    def GetScalarVolumeDisplayNode(self):
        return self._display


class vtkMRMLLabelMapVolumeNode(vtkMRMLScalarVolumeNode):
    pass


class vtkMRMLTransformNode(vtkMRMLDisplayableNode):
    def __init__(self) -> None:
        super().__init__()
        self._to_parent = vtk.vtkMatrix4x4()

    def SetMatrixTransformToParent(self, matrix: vtk.vtkMatrix4x4) -> None:
        self._to_parent.DeepCopy(matrix)

    def GetMatrixTransformToParent(self, matrix: vtk.vtkMatrix4x4) -> None:
        matrix.DeepCopy(self._to_parent)

    def GetMatrixTransformToWorld(self, matrix: vtk.vtkMatrix4x4) -> None:
        out = vtk.vtkMatrix4x4()
        out.DeepCopy(self._to_parent)
        parent = self.GetParentTransformNode()
        if parent is not None:
            pm = vtk.vtkMatrix4x4()
            parent.GetMatrixTransformToWorld(pm)
            vtk.vtkMatrix4x4.Multiply4x4(pm, out, out)
        matrix.DeepCopy(out)


class vtkMRMLLinearTransformNode(vtkMRMLTransformNode):
    pass


class vtkMRMLTableNode(vtkMRMLNode):
    def __init__(self) -> None:
        super().__init__()
        self._table = vtk.vtkTable()
        self._props: dict[tuple[str, str], str] = {}

    def GetTable(self) -> vtk.vtkTable:
        return self._table

    def AddColumn(self, array):
        self._table.AddColumn(array)
        return array

    def RemoveAllColumns(self) -> None:
        while self._table.GetNumberOfColumns():
            self._table.RemoveColumn(0)

    def GetNumberOfRows(self) -> int:
        return self._table.GetNumberOfRows()

    def GetNumberOfColumns(self) -> int:
        return self._table.GetNumberOfColumns()

    def GetColumnName(self, index: int) -> str:
        return self._table.GetColumn(index).GetName()

    def GetCellText(self, row: int, col: int) -> str:
        arr = self._table.GetColumn(col)
        v = arr.GetValue(row)
        return v if isinstance(v, str) else f"{v:g}"

    def SetColumnUnitLabel(self, column: str, label: str) -> None:
        self._props[(column, "unitLabel")] = label

    def GetColumnUnitLabel(self, column: str) -> str:
        return self._props.get((column, "unitLabel"), "")

    def SetColumnTitle(self, column: str, title: str) -> None:
        self._props[(column, "title")] = title

    def GetColumnTitle(self, column: str) -> str:
        return self._props.get((column, "title"), column)

    def SetColumnDescription(self, column: str, text: str) -> None:
        self._props[(column, "description")] = text

    def GetColumnDescription(self, column: str) -> str:
        return self._props.get((column, "description"), "")


class vtkMRMLPlotSeriesNode(vtkMRMLNode):
    PlotTypeLine, PlotTypeBar, PlotTypeScatter, PlotTypeScatterBar = range(4)
    LineStyleNone, LineStyleSolid, LineStyleDash = range(3)
    MarkerStyleNone, MarkerStyleCross, MarkerStylePlus, MarkerStyleSquare, MarkerStyleCircle = range(5)

    def __init__(self) -> None:
        super().__init__()
        self._table_id = self._x = self._y = ""
        self._type = self.PlotTypeLine
        self._line = self.LineStyleSolid
        self._marker = self.MarkerStyleNone

    def SetAndObserveTableNodeID(self, node_id: str) -> None:
        self._table_id = node_id

    def GetTableNodeID(self) -> str:
        return self._table_id

    def SetXColumnName(self, name: str) -> None:
        self._x = name

    def GetXColumnName(self) -> str:
        return self._x

    def SetYColumnName(self, name: str) -> None:
        self._y = name

    def GetYColumnName(self) -> str:
        return self._y

    def SetPlotType(self, t: int) -> None:
        self._type = t

    def GetPlotType(self) -> int:
        return self._type

    def SetLineStyle(self, s: int) -> None:
        self._line = s

    def GetLineStyle(self) -> int:
        return self._line

    def SetMarkerStyle(self, s: int) -> None:
        self._marker = s

    def GetMarkerStyle(self) -> int:
        return self._marker


class vtkMRMLPlotChartNode(vtkMRMLNode):
    def __init__(self) -> None:
        super().__init__()
        self._series: list[str] = []
        self._titles = {"title": "", "x": "", "y": ""}

    def SetTitle(self, t: str) -> None:
        self._titles["title"] = t

    def GetTitle(self) -> str:
        return self._titles["title"]

    def SetXAxisTitle(self, t: str) -> None:
        self._titles["x"] = t

    def GetXAxisTitle(self) -> str:
        return self._titles["x"]

    def SetYAxisTitle(self, t: str) -> None:
        self._titles["y"] = t

    def GetYAxisTitle(self) -> str:
        return self._titles["y"]

    def AddAndObservePlotSeriesNodeID(self, node_id: str) -> None:
        self._series.append(node_id)

    def GetNumberOfPlotSeriesNodes(self) -> int:
        return len(self._series)

    def GetNthPlotSeriesNodeID(self, n: int) -> str:
        return self._series[n]


class vtkMRMLSubjectHierarchyNode(vtkMRMLNode):
    def __init__(self) -> None:
        super().__init__()
        self._items = {1: {"name": "Scene", "parent": 0, "level": "Scene", "node": None, "attrs": {}}}
        self._next = itertools.count(2)

    def GetSceneItemID(self) -> int:
        return 1

    def GetInvalidItemID(self) -> int:
        return 0

    def _create(self, parent: int, name: str, level: str, node=None) -> int:
        i = next(self._next)
        self._items[i] = {"name": name, "parent": parent, "level": level, "node": node, "attrs": {}}
        return i

    def CreateSubjectItem(self, parent: int, name: str) -> int:
        return self._create(parent, name, "Patient")

    def CreateStudyItem(self, parent: int, name: str) -> int:
        return self._create(parent, name, "Study")

    def CreateFolderItem(self, parent: int, name: str) -> int:
        return self._create(parent, name, "Folder")

    def GetItemByDataNode(self, node) -> int:
        for i, it in self._items.items():
            if it["node"] is node:
                return i
        return self._create(1, node.GetName(), "", node) if node is not None else 0

    def GetItemDataNode(self, item: int):
        return self._items[item]["node"]

    def GetItemParent(self, item: int) -> int:
        return self._items[item]["parent"]

    def SetItemParent(self, item: int, parent: int) -> None:
        self._items[item]["parent"] = parent

    def GetItemName(self, item: int) -> str:
        return self._items[item]["name"]

    def IsItemLevel(self, item: int, level: str) -> bool:
        return item in self._items and self._items[item]["level"] == level

    def SetItemAttribute(self, item: int, name: str, value: str) -> None:
        self._items[item]["attrs"][name] = str(value)

    def GetItemAttribute(self, item: int, name: str) -> str:
        return self._items[item]["attrs"].get(name, "")

    def GetItemChildren(self, item: int, ids: vtk.vtkIdList) -> None:
        ids.Reset()
        for i, it in self._items.items():
            if it["parent"] == item and i != item:
                ids.InsertNextId(i)

    def GetItemChildWithName(self, parent: int, name: str) -> int:
        for i, it in self._items.items():
            if it["parent"] == parent and it["name"] == name:
                return i
        return 0


class vtkMRMLScene:
    """The scene: owns nodes by ID (a stand-in for vtkMRMLScene)."""

    def __init__(self) -> None:
        self._nodes: dict[str, vtkMRMLNode] = {}
        self._sh = vtkMRMLSubjectHierarchyNode()
        self.AddNode(self._sh)

    def AddNode(self, node: vtkMRMLNode) -> vtkMRMLNode:
        node._scene = self
        self._nodes[node.GetID()] = node
        return node

    def AddNewNodeByClass(self, class_name: str, name: str = ""):
        node = STANDIN_CLASSES[class_name]()
        node.SetName(name or class_name.replace("vtkMRML", "").replace("Node", ""))
        return self.AddNode(node)

    def GetNodeByID(self, node_id: str):
        return self._nodes.get(node_id)

    def GetFirstNodeByName(self, name: str):
        return next((n for n in self._nodes.values() if n.GetName() == name), None)

    def GetNodesByClass(self, class_name: str) -> vtk.vtkCollection:
        c = vtk.vtkCollection()
        for n in self._nodes.values():
            if n.IsA(class_name):
                c.AddItem(_VtkBox(n))
        return c

    def GetNumberOfNodes(self) -> int:
        return len(self._nodes)

    def RemoveNode(self, node: vtkMRMLNode) -> None:
        self._nodes.pop(node.GetID(), None)

    def GetSubjectHierarchyNode(self) -> vtkMRMLSubjectHierarchyNode:
        return self._sh

    def Clear(self, remove_singletons: int = 0) -> None:
        self.__init__()


class _VtkBox(vtk.vtkObject):
    """Lets a Python stand-in node sit in a vtkCollection."""

    def __init__(self, node) -> None:
        super().__init__()
        self.node = node


STANDIN_CLASSES = {c.__name__: c for c in (
    vtkMRMLScalarVolumeNode, vtkMRMLLabelMapVolumeNode, vtkMRMLScalarVolumeDisplayNode, vtkMRMLLinearTransformNode,
    vtkMRMLTableNode, vtkMRMLPlotSeriesNode, vtkMRMLPlotChartNode, vtkMRMLSubjectHierarchyNode)}


# --- slicer.util --------------------------------------------------------------------------------
def arrayFromVolume(node):
    img = node.GetImageData()
    dims = img.GetDimensions()
    arr = numpy_support.vtk_to_numpy(img.GetPointData().GetScalars())
    return arr.reshape(dims[2], dims[1], dims[0])


def updateVolumeFromArray(node, narray) -> None:
    narray = np.ascontiguousarray(narray)
    img = vtk.vtkImageData()
    img.SetDimensions(narray.shape[2], narray.shape[1], narray.shape[0])
    scalars = numpy_support.numpy_to_vtk(narray.ravel(), deep=True)
    img.GetPointData().SetScalars(scalars)
    node.SetAndObserveImageData(img)


def vtkMatrixFromArray(narray) -> vtk.vtkMatrix4x4:
    m = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            m.SetElement(r, c, float(narray[r][c]))
    return m


def arrayFromVTKMatrix(vmatrix) -> np.ndarray:
    return np.array([[vmatrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def arrayFromTransformMatrix(node, toWorld: bool = False) -> np.ndarray:
    m = vtk.vtkMatrix4x4()
    (node.GetMatrixTransformToWorld if toWorld else node.GetMatrixTransformToParent)(m)
    return arrayFromVTKMatrix(m)


def updateTransformMatrixFromArray(node, narray, toWorld: bool = False) -> None:
    node.SetMatrixTransformToParent(vtkMatrixFromArray(narray))


def arrayFromTableColumn(tableNode, columnName: str) -> np.ndarray:
    col = tableNode.GetTable().GetColumnByName(columnName)
    return numpy_support.vtk_to_numpy(col) if not isinstance(col, vtk.vtkStringArray) else \
        np.array([col.GetValue(i) for i in range(col.GetNumberOfValues())])


def getNodesByClass(className: str, scene=None) -> list:
    scene = scene or sys.modules["slicer"].mrmlScene
    return [n for n in scene._nodes.values() if n.IsA(className)]


def saveScene(filename: str, properties: dict | None = None) -> bool:
    """Test double of ``slicer.util.saveScene``: a zip holding ``scene.json`` (every node's class, name,
    attributes); not an MRML bundle. Returns True as Slicer does on success."""
    import json
    import zipfile

    scene = sys.modules["slicer"].mrmlScene
    doc = [{"id": n.GetID(), "class": n.GetClassName(), "name": n.GetName(),
            "attributes": {a: n.GetAttribute(a) for a in n.GetAttributeNames()}} for n in scene._nodes.values()]
    with zipfile.ZipFile(filename, "w") as z:
        z.writestr("scene.json", json.dumps(doc))
    return True


UTIL_FUNCTIONS = {f.__name__: f for f in (getNodesByClass, saveScene, arrayFromVolume, updateVolumeFromArray,
                                           vtkMatrixFromArray, arrayFromVTKMatrix, arrayFromTransformMatrix,
                                           updateTransformMatrixFromArray, arrayFromTableColumn)}


def install() -> types.ModuleType:
    """Put stand-in ``slicer`` and ``slicer.util`` modules into ``sys.modules``; return ``slicer``."""
    slicer = types.ModuleType("slicer")
    util = types.ModuleType("slicer.util")
    for name, f in UTIL_FUNCTIONS.items():
        setattr(util, name, f)
    slicer.util = util
    for name, cls in STANDIN_CLASSES.items():
        setattr(slicer, name, cls)
    slicer.vtkCodedEntry = vtkCodedEntry
    slicer.vtkMRMLScene = vtkMRMLScene
    slicer.mrmlScene = vtkMRMLScene()
    sys.modules["slicer"] = slicer
    sys.modules["slicer.util"] = util
    return slicer


def uninstall() -> None:
    """Remove the stand-in modules from ``sys.modules``."""
    for name in [n for n in sys.modules if n == "slicer" or n.startswith("slicer.")]:
        del sys.modules[name]
