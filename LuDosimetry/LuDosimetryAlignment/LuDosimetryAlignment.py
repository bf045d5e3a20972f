"""LuDosimetryAlignment: every timepoint's CT registered to a reference timepoint's CT; SPECT resampled.

Input: the reference timepoint's SPECT (loaded by LuDosimetry: its attributes name the patient,
cycle and CT) and optionally the label map (kidney refinement). Output per timepoint: a linear
transform node (timepoint → reference) holding the original SPECT and CT, and an aligned SPECT on
the reference grid with time p.i. and units. Registration and resampling are in
``LuDosimetryLib.alignment``.
"""

import logging
import pathlib
from typing import Annotated, Optional

import slicer
from slicer.i18n import tr as _
from slicer.parameterNodeWrapper import WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
)

from LuDosimetrySlicerLib.gui import progress_dialog
from LuDosimetrySlicerLib.widget import LuDosimetryModuleWidget, fillSpectAndLabels


class LuDosimetryAlignment(ScriptedLoadableModule):
    """Module metadata."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("LuDosimetry Alignment")
        self.parent.categories = [_("Nuclear Medicine")]
        self.parent.dependencies = ["LuDosimetryCommon"]
        self.parent.contributors = ["LuDosimetry developers"]
        self.parent.helpText = _(
            "Aligns the SPECT/CT timepoints of one therapy cycle. Choose the SPECT of the reference timepoint"
            " (usually the first); every other timepoint of the same patient and cycle is registered CT-to-CT"
            " to the reference CT (rigid, mutual information), with an optional organ-local refinement of the"
            " kidneys, and its SPECT is resampled onto the reference SPECT grid (activity concentration in "
            "Bq/mL at acquisition time). Each timepoint gets a transform node (shown under the timepoint in "
            "Data) and an aligned SPECT volume carrying its time post injection, units and injected activity.")
        self.parent.acknowledgementText = _("Registration: LuDosimetryLib.alignment (SimpleITK).")


@parameterNodeWrapper
class LuDosimetryAlignmentParameterNode:
    """Inputs and settings (saved with the scene)."""

    patientFolder: pathlib.Path
    loadCalibrationStore: pathlib.Path
    cycle: Annotated[int, WithinRange(1, 9)] = 1
    referenceSpect: Optional[slicer.vtkMRMLScalarVolumeNode]
    labels: Optional[slicer.vtkMRMLLabelMapVolumeNode]
    refineKidneys: bool = True


class LuDosimetryAlignmentWidget(LuDosimetryModuleWidget):
    """GUI: load a patient folder, choose the reference timepoint, Apply (plumbing: LuDosimetryModuleWidget)."""

    applyToolTip = _("Register every timepoint to the reference")

    def connectButtons(self) -> None:
        self.ui.loadButton.connect("clicked(bool)", self.onLoadButton)

    def selectDefaultInputs(self, parameterNode) -> None:
        fillSpectAndLabels(parameterNode, "referenceSpect", aligned=False)

    def missingInputs(self, parameterNode) -> list:
        missing = []
        if not parameterNode.referenceSpect:
            missing.append(_("the reference timepoint's SPECT"))
        elif parameterNode.referenceSpect.GetAttribute("LuDosimetry.PatientID") is None:
            missing.append(_("a SPECT loaded by LuDosimetry (with patient and timepoint attributes)"))
        if parameterNode.refineKidneys and not parameterNode.labels:
            missing.append(_("a label map (for the kidney refinement; or untick it)"))
        return missing

    def onLoadButton(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Loading the patient failed."), waitCursor=True):
            p = self._parameterNode
            if str(p.patientFolder) in ("", ".") or not p.patientFolder.is_dir():
                raise ValueError(_("Choose a patient folder first."))
            store = p.loadCalibrationStore if str(p.loadCalibrationStore) not in ("", ".") else None
            with progress_dialog(_("Loading patient")) as progress:
                nodes = self.logic.loadPatient(p.patientFolder, cycle=p.cycle, calibrationStore=store,
                                               progress=progress)
            p.referenceSpect, p.labels = nodes.spect[0], nodes.labels
            self.ui.resultLabel.text = _("Loaded {pid}, cycle {c}: {n} timepoints.").format(
                pid=nodes.patient_id, c=nodes.cycle, n=len(nodes.spect))
            slicer.util.setSliceViewerLayers(background=nodes.ct[0], foreground=nodes.spect[0], foregroundOpacity=0.5,
                                             label=nodes.labels, fit=True)

    def onApplyButton(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Alignment failed."), waitCursor=True):
            p = self._parameterNode
            with progress_dialog(_("Alignment")) as progress:
                outputs = self.logic.process(p.referenceSpect, labels=p.labels, refineKidneys=p.refineKidneys,
                                             progress=progress)
            lines = [_("Reference: {ref}").format(ref=outputs.reference)]
            for label, quality in outputs.quality.items():
                if "ncc_body" in quality:
                    lines.append(_("{tp}: NCC {ncc:.3f}, bone Dice {dice:.3f}").format(
                        tp=label, ncc=quality["ncc_body"], dice=quality.get("bone_dice", float("nan"))))
            self.ui.resultLabel.text = "\n".join(lines)
            last = list(outputs.aligned.values())[-1]
            slicer.util.setSliceViewerLayers(background=last, fit=True)


class LuDosimetryAlignmentLogic(ScriptedLoadableModuleLogic):
    """Runs the stage without GUI; the work is in LuDosimetrySlicerLib and LuDosimetryLib."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)

    def getParameterNode(self):
        return LuDosimetryAlignmentParameterNode(super().getParameterNode())

    def loadPatient(self, patientFolder, cycle=1, calibrationStore=None, progress=None):
        """Ingest a patient folder and load one cycle's SPECT, CT and label map (returns ``PatientNodes``)."""
        from LuDosimetrySlicerLib.samples import load_patient_folder

        logging.info("LuDosimetryAlignment: loading %s", patientFolder)
        return load_patient_folder(patientFolder, cycle=cycle, calibration_store=calibrationStore, progress=progress)

    def process(self, referenceSpect, labels=None, refineKidneys=True, progress=None):
        """Transforms and aligned SPECT volumes per timepoint (returns ``AlignmentOutputs``)."""
        from LuDosimetrySlicerLib.alignment_logic import run_alignment

        if referenceSpect is None:
            raise ValueError("Reference SPECT volume is missing")
        logging.info("LuDosimetryAlignment: reference %s", referenceSpect.GetName())
        return run_alignment(referenceSpect, labels=labels, refine_kidneys=refineKidneys, progress=progress)


class LuDosimetryAlignmentTest(ScriptedLoadableModuleTest):
    """Runs the whole module logic inside Slicer on the sample data."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_alignment_on_sample_patient()

    def test_alignment_on_sample_patient(self):
        from LuDosimetrySlicerLib.samples import load_sample_patient

        self.delayDisplay("Loading the synthetic patient (generated locally)")
        patient = load_sample_patient()
        outputs = LuDosimetryAlignmentLogic().process(patient.spect[0], labels=patient.labels)
        self.assertEqual(len(outputs.aligned), len(patient.spect))
        for label, node in outputs.aligned.items():
            self.assertEqual(node.GetAttribute("LuDosimetry.Aligned"), "1")
            self.assertEqual(node.GetAttribute("LuDosimetry.Units"), "Bq/mL")
            self.assertIsNotNone(node.GetAttribute("LuDosimetry.TimeHoursPostInjection"))
            self.assertTrue(outputs.transforms[label].IsA("vtkMRMLLinearTransformNode"))
        self.delayDisplay("Test passed")
