"""LuDosimetryDose: voxel TIA, absorbed-dose map, regional dose statistics and DVH.

Input: the aligned SPECT volumes of a patient's cycle (any one selects all) and the label map.
Output: the dose volume (Gy; dose colour table and window; SlicerRT dose attributes), the TIA map,
the statistics table and the DVH chart. The computation is in ``LuDosimetryLib.kinetics.voxel``,
``LuDosimetryLib.kernels`` and ``LuDosimetryLib.dose``.
"""

import logging
from typing import Annotated, Optional

import qt
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


class LuDosimetryDose(ScriptedLoadableModule):
    """Module metadata."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("LuDosimetry Dose")
        self.parent.categories = [_("Nuclear Medicine")]
        self.parent.dependencies = ["LuDosimetryCommon"]
        self.parent.contributors = ["LuDosimetry developers"]
        self.parent.helpText = _(
            "Absorbed dose of one therapy cycle. Choose an aligned SPECT (made by LuDosimetry Alignment: all "
            "aligned timepoints of that patient and cycle are used) and the label map. The module integrates "
            "each voxel's activity over time (TIA), converts it to absorbed dose by convolution with a 177Lu "
            "dose voxel kernel for the SPECT voxel size (or by local energy deposition), and reports dose "
            "statistics (mean, median, D2, D98 … in Gy) and cumulative DVHs per region. The dose volume is "
            "marked so that SlicerRT's DVH, isodose and dose comparison modules use it directly.")
        self.parent.acknowledgementText = _("Dose: LuDosimetryLib.kernels and .dose (docs/dose.md).")


@parameterNodeWrapper
class LuDosimetryDoseParameterNode:
    """Inputs and settings (saved with the scene)."""

    alignedSpect: Optional[slicer.vtkMRMLScalarVolumeNode]
    labels: Optional[slicer.vtkMRMLLabelMapVolumeNode]
    method: Annotated[str, Choice(["convolution", "led"])] = "convolution"
    windowMaxGy: Annotated[float, WithinRange(0.0, 1000.0)] = 0.0
    doseVolume: Optional[slicer.vtkMRMLScalarVolumeNode]
    statisticsTable: Optional[slicer.vtkMRMLTableNode]


class LuDosimetryDoseWidget(AlignedStageWidget):
    """GUI: aligned SPECT, label map, method, Apply (plumbing: LuDosimetrySlicerLib.widget)."""

    applyToolTip = _("Compute the absorbed-dose map and statistics")

    def onApplyButton(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Dose calculation failed."), waitCursor=True):
            p = self._parameterNode
            with progress_dialog(_("Absorbed dose")) as progress:
                outputs = self.logic.process(p.alignedSpect, p.labels, method=p.method, windowMaxGy=p.windowMaxGy,
                                             progress=progress)
            p.doseVolume, p.statisticsTable = outputs.dose_volume, outputs.statistics
            self.ui.resultLabel.text = _("Dose window 0 – {hi:.3g} Gy; {n} regions.").format(
                hi=outputs.window_Gy[1], n=outputs.statistics.GetNumberOfRows())
            slicer.util.setSliceViewerLayers(foreground=outputs.dose_volume, foregroundOpacity=0.5)
            slicer.modules.plots.logic().ShowChartInLayout(outputs.dvh_chart)
            self._lastOutputs = outputs

    def connectButtons(self) -> None:
        self._lastOutputs = None
        self.ui.saveReportButton.connect("clicked(bool)", self.onSaveReportButton)

    def onSaveReportButton(self) -> None:
        """Write the library's patient report of the dose results into a folder the user picks."""
        from LuDosimetrySlicerLib.tac_logic import reference_ct_node

        with slicer.util.tryWithErrorDisplay(_("Saving the report failed."), waitCursor=True):
            p = self._parameterNode
            folder = qt.QFileDialog.getExistingDirectory(slicer.util.mainWindow(), _("Folder for the report"))
            if not folder:
                return
            dvh = self._lastOutputs.dvh_table if self._lastOutputs is not None else None
            html = self.logic.saveReport(p.doseVolume, p.statisticsTable, p.labels, reference_ct_node(p.alignedSpect),
                                         folder, dvhTable=dvh)
            self.ui.resultLabel.text = _("Report: {path}").format(path=str(html))
            qt.QDesktopServices.openUrl(qt.QUrl.fromLocalFile(str(html)))


class LuDosimetryDoseLogic(ScriptedLoadableModuleLogic):
    """Runs the stage without GUI; the work is in LuDosimetrySlicerLib and LuDosimetryLib."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)

    def getParameterNode(self):
        return LuDosimetryDoseParameterNode(super().getParameterNode())

    def process(self, alignedSpect, labels, method="convolution", windowMaxGy=0.0, progress=None):
        """Dose and TIA volumes, statistics table and DVH chart (returns ``DoseOutputs``)."""
        from LuDosimetrySlicerLib.dose_logic import run_dose

        if alignedSpect is None or labels is None:
            raise ValueError("Aligned SPECT or label map is missing")
        logging.info("LuDosimetryDose: %s, %s, %s", alignedSpect.GetName(), labels.GetName(), method)
        return run_dose(alignedSpect, labels, method=method, window_max_Gy=windowMaxGy, progress=progress)

    def saveReport(self, doseVolume, statisticsTable, labels, referenceCt, folder, dvhTable=None, tacTable=None,
                   fitTable=None, pdf=False):
        """Save report: the scene's results as a results folder and the library's patient report (report.html)."""
        from LuDosimetrySlicerLib.report_logic import save_report

        return save_report(doseVolume, statisticsTable, labels, referenceCt, folder, dvh_table=dvhTable,
                           tac_table=tacTable, fit_table=fitTable, pdf=pdf)


class LuDosimetryDoseTest(ScriptedLoadableModuleTest):
    """Runs the whole module logic inside Slicer on the sample data."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_dose_on_sample_patient()

    def test_dose_on_sample_patient(self):
        from LuDosimetrySlicerLib.alignment_logic import run_alignment
        from LuDosimetrySlicerLib.samples import load_sample_patient

        self.delayDisplay("Synthetic patient: alignment, then dose")
        patient = load_sample_patient()
        aligned = run_alignment(patient.spect[0], labels=patient.labels)
        outputs = LuDosimetryDoseLogic().process(next(iter(aligned.aligned.values())), patient.labels)
        dose = outputs.dose_volume
        self.assertEqual(dose.GetAttribute("DicomRtImport.DoseVolume"), "1")
        self.assertEqual(dose.GetVoxelValueUnits().GetCodeValue(), "Gy")
        self.assertEqual(outputs.statistics.GetColumnUnitLabel("dose_Gy"), "Gy")
        self.assertGreater(outputs.dvh_chart.GetNumberOfPlotSeriesNodes(), 0)
        self.delayDisplay("Test passed")
