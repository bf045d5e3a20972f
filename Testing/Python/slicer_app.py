"""What Slicer's application layer does for every scene, on slicer-core's real classes (tests only).

slicer-core (Kitware's wheel) gives ``import slicer`` Slicer's own MRMLCore, MRMLLogic, module
logics and ``slicer/util.py``, but no Qt application: no ``slicer.app`` and no ``slicer.mrmlScene``.
:func:`install` makes a fresh ``vtkMRMLScene`` and wires to it only what the application does for
every scene, each a few lines naming the Slicer source it mirrors; :class:`Application` answers the
calls of ``slicer.app`` that ``slicer.util.saveScene``, ``slicer.util.exit`` and the application logic
need, the scene writer on Slicer's own. :class:`VtkMessages` captures VTK's output window so that a test fails on any
VTK/MRML warning or error (a logged "Invalid item ID" cannot hide).
"""

from __future__ import annotations

import types
from pathlib import Path

import slicer
import vtk

__all__ = ["SLICER_CORE_MODULE", "Application", "VtkMessages", "install", "new_scene", "uninstall"]

#: The extension module every real MRML class of slicer-core comes from.
SLICER_CORE_MODULE = "slicer_core.MRMLCore"


class VtkMessages:
    """VTK's output window replaced by a string window whose warnings and errors are recorded."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self._window = vtk.vtkStringOutputWindow()
        for event in ("ErrorEvent", "WarningEvent"):
            self._window.AddObserver(event, self._record)
        self._previous = vtk.vtkOutputWindow.GetInstance()
        vtk.vtkOutputWindow.SetInstance(self._window)

    @vtk.calldata_type(vtk.VTK_STRING)
    def _record(self, caller, event: str, text: str) -> None:
        self.messages.append(f"{event.removesuffix('Event')}: {text.strip()}")

    def close(self) -> None:
        """Give VTK its previous output window back."""
        vtk.vtkOutputWindow.SetInstance(self._previous)


class _CoreIOManager:
    """``qSlicerCoreIOManager.saveNodes`` for the scene file type only."""

    def __init__(self, app: Application) -> None:
        self._app = app

    def saveNodes(self, fileType: str, properties: dict, userMessages=None) -> bool:
        """Save the scene as Slicer's scene writer does (Modules/Loadable/Data/qSlicerSceneWriter.cxx):
        ``.mrb`` by ``vtkMRMLScene::WriteToMRB`` (the bundle directory written by
        ``SaveSceneToSlicerDataBundleDirectory``, then zipped by vtkArchive), ``.mrml`` by
        ``Commit``, anything else as a data-bundle directory by the application logic."""
        if fileType != "SceneFile":
            raise NotImplementedError(f"the test application saves scenes only, not {fileType!r}")
        scene = self._app.applicationLogic().GetMRMLScene()
        path = Path(properties["fileName"]).absolute()
        scene.SetURL(str(path))
        scene.SetRootDirectory(str(path.parent))
        if path.suffix == ".mrml":
            return bool(scene.Commit())
        if path.suffix == ".mrb":
            if not scene.WriteToMRB(str(path), None, userMessages):
                return False
            scene.SetStorableNodesModifiedSinceRead()
            return True
        return bool(self._app.applicationLogic().SaveSceneToSlicerDataBundleDirectory(str(path), None))


class Application:
    """The calls of ``slicer.app`` (qSlicerCoreApplication) that the code under test reaches."""

    def __init__(self, logic, cache: Path) -> None:
        self._logic = logic
        self._io = _CoreIOManager(self)
        #: ``qSlicerCoreApplication::cachePath``: the remote cache directory of the data IO manager.
        self.cachePath = str(cache)
        self._options = types.SimpleNamespace(runPythonAndExit=True)
        #: The status given to :meth:`exit` (None: not called).
        self.exitStatus = None

    def applicationLogic(self):
        """The ``vtkSlicerApplicationLogic`` of the scene."""
        return self._logic

    def coreIOManager(self) -> _CoreIOManager:
        """The IO manager (scene writer only)."""
        return self._io

    def commandOptions(self):
        """The command-line options ``slicer.util.exit`` sets (``runPythonAndExit``)."""
        return self._options

    def exit(self, status: int = 0) -> None:
        """``qSlicerCoreApplication::exit``: the application leaves its event loop with ``status``
        (recorded here as :attr:`exitStatus`; there is no event loop)."""
        self.exitStatus = int(status)


def new_scene(cache: Path):
    """A fresh real scene with what the application wires to every scene; returns (scene, application logic).

    Keep the application logic as long as the scene is used: it holds the IO, colour and hierarchy logics.
    """
    scene = slicer.vtkMRMLScene()
    assert type(scene).__module__ == SLICER_CORE_MODULE, f"not slicer-core's scene: {type(scene).__module__}"
    cache.mkdir(parents=True, exist_ok=True)
    logic = slicer.vtkSlicerApplicationLogic()
    # Base/QTCore/qSlicerCoreApplication.cxx, qSlicerCoreApplicationPrivate::init(): the temporary path.
    logic.SetTemporaryPath(str(cache))
    # Base/QTCore/qSlicerCoreApplication.cxx, initDataIO(): remote IO logic with the cache directory and
    # the data IO manager logic (ReadFromMRB and WriteToMRB unpack and pack there).
    remote = slicer.vtkMRMLRemoteIOLogic()
    remote.GetCacheManager().SetRemoteCacheDirectory(str(cache))
    data_io = slicer.vtkDataIOManagerLogic()
    data_io.SetMRMLApplicationLogic(logic)
    data_io.SetAndObserveDataIOManager(remote.GetDataIOManager())
    # qSlicerCoreApplication::setMRMLScene(): default save directory, the command-line module node class,
    # the default crosshair, then the application logic and the data IO (vtkSlicerApplicationLogic.cxx,
    # SetMRMLSceneDataIO).
    scene.SetRootDirectory(str(cache))
    scene.RegisterNodeClass(slicer.vtkMRMLCommandLineModuleNode())
    crosshair = slicer.vtkMRMLCrosshairNode()
    crosshair.SetCrosshairName("default")
    scene.AddNode(crosshair)
    logic.SetMRMLScene(scene)
    logic.SetMRMLSceneDataIO(scene, remote, data_io)
    # The core modules' logics the application creates for every scene (qSlicerAbstractCoreModule
    # setMRMLScene). Colours: Slicer's vtkSlicerColorLogic (Modules/Loadable/Colors/Logic) adds the
    # default colour nodes of its base, Libs/MRML/Logic/vtkMRMLColorLogic.cxx, plus tables read from
    # Slicer's share/ColorFiles, which slicer-core does not ship: the base adds the built-in ones only.
    # Subject hierarchy: vtkSlicerSubjectHierarchyModuleLogic.cxx (the hierarchy node).
    colors = slicer.vtkMRMLColorLogic()
    colors.SetMRMLApplicationLogic(logic)
    colors.SetMRMLScene(scene)
    hierarchy = slicer.vtkSlicerSubjectHierarchyModuleLogic()
    hierarchy.SetMRMLApplicationLogic(logic)
    hierarchy.SetMRMLScene(scene)
    # keep the logics alive as long as the scene is used
    logic._ludosimetry_keep = (remote, data_io, colors, hierarchy)
    return scene, logic


def install(cache: Path):
    """Set ``slicer.mrmlScene`` (a fresh real scene) and ``slicer.app``; returns the ``slicer`` module."""
    scene, logic = new_scene(cache)
    slicer.mrmlScene = scene
    slicer.app = Application(logic, cache)
    return slicer


def uninstall() -> None:
    """Remove ``slicer.mrmlScene`` and ``slicer.app`` (the scene is cleared first)."""
    scene = getattr(slicer, "mrmlScene", None)
    if scene is not None:
        scene.Clear(1)
    for name in ("mrmlScene", "app"):
        if hasattr(slicer, name):
            delattr(slicer, name)
