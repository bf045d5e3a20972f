"""LuDosimetryTAC: time-activity curves of every region, curve fits and time-integrated activities.

Input: the aligned SPECT volumes of a patient's cycle (any one of them selects all), the label
map, optionally the calibration store. Output: TAC and fit tables (units per column), a plot chart
with measured points and fitted curves, and the calibration entry used. Extraction and fitting are
in ``LuDosimetryLib.tac`` and ``LuDosimetryLib.kinetics``.
"""

import logging
import pathlib
from typing import Annotated, Optional

import slicer
from slicer.i18n import tr as _
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
)

from LuDosimetrySlicerLib.gui import progress_dialog
from LuDosimetrySlicerLib.widget import AlignedStageWidget


class LuDosimetryTAC(ScriptedLoadableModule):
    """Module metadata."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("LuDosimetry TAC")
        self.parent.categories = [_("Nuclear Medicine")]
        self.parent.dependencies = ["LuDosimetryCommon"]
        self.parent.contributors = ["LuDosimetry developers"]
        self.parent.helpText = _(
            "Time-activity curves and time-integrated activity (TIA) per region. Choose an aligned SPECT "
            "(made by LuDosimetry Alignment: all aligned timepoints of that patient and cycle are used) and "
            "the label map. The calibration the SPECT was quantified with at loading is shown and recorded "
            "with the results; optionally choose the calibration store (calibration.json) to see its entry "
            "for the SPECT camera too (a difference is flagged). The module tabulates activity, concentration"
            " and percent injected activity per region and timepoint, fits each curve (model chosen by AICc, "
            "or the one you set), and integrates it to infinity with physical decay after the last point.")
        self.parent.acknowledgementText = _("Curve fitting: LuDosimetryLib.kinetics (docs/kinetics.md).")


@parameterNodeWrapper
class LuDosimetryTACParameterNode:
    """Inputs and settings (saved with the scene)."""

    alignedSpect: Optional[slicer.vtkMRMLScalarVolumeNode]
    labels: Optional[slicer.vtkMRMLLabelMapVolumeNode]
    calibrationStore: pathlib.Path
    model: Annotated[str, Choice(["auto", "mono", "uptake_washout", "uptake_washout_fixed", "tri",
                                  "trapezoid"])] = "auto"
    spectFwhmMm: Annotated[float, WithinRange(1.0, 40.0)] = 11.0
    partialVolume: Annotated[str, Choice(["gtm", "recovery", "none"])] = "gtm"
    tacTable: Optional[slicer.vtkMRMLTableNode]
    fitTable: Optional[slicer.vtkMRMLTableNode]


class LuDosimetryTACWidget(AlignedStageWidget):
    """GUI: aligned SPECT, label map, settings, Apply (plumbing: LuDosimetrySlicerLib.widget)."""

    applyToolTip = _("Extract TACs and fit them")

    def onApplyButton(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("TAC extraction or fitting failed."), waitCursor=True):
            p = self._parameterNode
            store = p.calibrationStore if str(p.calibrationStore) not in ("", ".") else None
            with progress_dialog(_("Time-activity curves")) as progress:
                outputs = self.logic.process(p.alignedSpect, p.labels, calibrationStore=store, model=p.model,
                                             spectFwhmMm=p.spectFwhmMm, partialVolume=p.partialVolume,
                                             progress=progress)
            p.tacTable, p.fitTable = outputs.tac_table, outputs.fit_table
            lines = [_("{n} regions fitted.").format(n=len(outputs.fits)),
                     _("Calibration: {c}").format(c=outputs.calibration_text or _("none recorded"))]
            lines += [_("Warning: {w}").format(w=w) for w in outputs.warnings]
            self.ui.resultLabel.text = "\n".join(lines)
            slicer.modules.plots.logic().ShowChartInLayout(outputs.chart)


class LuDosimetryTACLogic(ScriptedLoadableModuleLogic):
    """Runs the stage without GUI; the work is in LuDosimetrySlicerLib and LuDosimetryLib."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)

    def getParameterNode(self):
        return LuDosimetryTACParameterNode(super().getParameterNode())

    def process(self, alignedSpect, labels, calibrationStore=None, model="auto", spectFwhmMm=11.0,
                partialVolume="gtm", progress=None):
        """TAC and fit tables and the TAC chart (returns ``TacOutputs``)."""
        from LuDosimetrySlicerLib.tac_logic import run_tac

        if alignedSpect is None or labels is None:
            raise ValueError("Aligned SPECT or label map is missing")
        logging.info("LuDosimetryTAC: %s, %s", alignedSpect.GetName(), labels.GetName())
        return run_tac(alignedSpect, labels, calibration_store=calibrationStore, model=model,
                       spect_fwhm_mm=spectFwhmMm, partial_volume=partialVolume, progress=progress)


class LuDosimetryTACTest(ScriptedLoadableModuleTest):
    """Runs the whole module logic inside Slicer on the sample data."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_tac_on_sample_patient()

    def test_tac_on_sample_patient(self):
        from LuDosimetrySlicerLib.alignment_logic import run_alignment
        from LuDosimetrySlicerLib.samples import load_sample_patient

        self.delayDisplay("Synthetic patient: alignment, then TACs")
        patient = load_sample_patient()
        aligned = run_alignment(patient.spect[0], labels=patient.labels)
        outputs = LuDosimetryTACLogic().process(next(iter(aligned.aligned.values())), patient.labels)
        self.assertGreater(outputs.tac_table.GetNumberOfRows(), 0)
        self.assertEqual(outputs.tac_table.GetColumnUnitLabel("time_h"), "h")
        self.assertEqual(outputs.fit_table.GetColumnUnitLabel("tia_Bq_h"), "Bq·h")
        self.assertGreater(outputs.chart.GetNumberOfPlotSeriesNodes(), 1)
        self.delayDisplay("Test passed")
