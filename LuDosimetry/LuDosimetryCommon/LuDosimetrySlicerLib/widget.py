"""The module widget shared by the LuDosimetry modules (Slicer only; not used by logic or tests).

Slicer's scripted-module template (``Utilities/Templates/Modules/Scripted/TemplateKey.py``) gives
every widget the same parameter-node plumbing: load the ``.ui``, bind it to the module's parameter
node (``connectGui``), follow scene close, enable Apply when the inputs are there. It lives here
once; a module's widget keeps only its own inputs and outputs.
"""

import sys

import slicer
import vtk
from slicer.i18n import tr as _
from slicer.ScriptedLoadableModule import ScriptedLoadableModuleWidget
from slicer.util import VTKObservationMixin

__all__ = ["LuDosimetryModuleWidget", "AlignedStageWidget", "firstSpect", "fillSpectAndLabels"]


class LuDosimetryModuleWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """Template plumbing of a LuDosimetry module widget.

    A subclass is named ``<Module>Widget`` in ``<Module>.py`` beside ``<Module>Logic`` (whose
    ``getParameterNode()`` returns the module's wrapped parameter node) and ``Resources/UI/<Module>.ui``
    (with ``applyButton`` and ``resultLabel``); it sets :attr:`applyToolTip` and overrides
    :meth:`onApplyButton`, and where it needs them :meth:`connectButtons`, :meth:`selectDefaultInputs`,
    :meth:`missingInputs` and :meth:`updateActionButtons`.
    """

    #: Tooltip of the Apply button when every input is there.
    applyToolTip = ""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None

    # --- what a module overrides ----------------------------------------------------------------
    def connectButtons(self) -> None:
        """Connect the module's buttons other than Apply."""

    def selectDefaultInputs(self, parameterNode) -> None:
        """Fill empty inputs of the parameter node from the scene."""

    def missingInputs(self, parameterNode) -> list:
        """What the user must still choose before Apply (translated phrases; empty: ready)."""
        return []

    def onApplyButton(self) -> None:
        """Run the module's logic and show its outputs."""
        raise NotImplementedError

    def updateActionButtons(self, parameterNode) -> None:
        """Enable the module's buttons other than Apply from the parameter node (called on every change)."""

    # --- the template's plumbing ----------------------------------------------------------------
    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath(f"UI/{self.moduleName}.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = getattr(sys.modules[type(self).__module__], f"{self.moduleName}Logic")()
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.connectButtons()
        self.initializeParameterNode()

    def cleanup(self) -> None:
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)

    def onSceneStartClose(self, caller, event) -> None:
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        self.selectDefaultInputs(self._parameterNode)

    def setParameterNode(self, inputParameterNode) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)
            self._checkCanApply()

    def _checkCanApply(self, caller=None, event=None) -> None:
        missing = self.missingInputs(self._parameterNode) if self._parameterNode else [_("a parameter node")]
        self.ui.applyButton.enabled = not missing
        self.ui.applyButton.toolTip = self.applyToolTip if not missing else _("Choose ") + _(" and ").join(missing)
        if self._parameterNode:
            self.updateActionButtons(self._parameterNode)


def firstSpect(aligned: bool):
    """The first SPECT volume loaded by LuDosimetry in the scene, aligned or original (None: none)."""
    for node in slicer.util.getNodesByClass("vtkMRMLScalarVolumeNode"):
        if node.GetAttribute("LuDosimetry.Modality") == "SPECT" and (
                (node.GetAttribute("LuDosimetry.Aligned") == "1") == aligned):
            return node
    return None


def fillSpectAndLabels(parameterNode, spectField: str, aligned: bool) -> None:
    """Fill a parameter node's empty SPECT field (:func:`firstSpect`) and ``labels`` (the first label map)."""
    if not getattr(parameterNode, spectField):
        setattr(parameterNode, spectField, firstSpect(aligned))
    if not parameterNode.labels:
        parameterNode.labels = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLLabelMapVolumeNode")


class AlignedStageWidget(LuDosimetryModuleWidget):
    """A stage working on the aligned SPECT volumes and the label map (parameters ``alignedSpect``, ``labels``)."""

    def selectDefaultInputs(self, parameterNode) -> None:
        fillSpectAndLabels(parameterNode, "alignedSpect", aligned=True)

    def missingInputs(self, parameterNode) -> list:
        missing = []
        spect = parameterNode.alignedSpect
        if not (spect and spect.GetAttribute("LuDosimetry.Aligned") == "1"):
            missing.append(_("an aligned SPECT (run LuDosimetry Alignment first)"))
        if not parameterNode.labels:
            missing.append(_("the label map"))
        return missing
