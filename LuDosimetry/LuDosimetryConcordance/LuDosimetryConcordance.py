"""LuDosimetryConcordance: PET-predicted vs SPECT-measured absorbed doses, per patient and over a cohort.

Input: a table node (a CSV loaded as a table) with the columns ``patient, region, predicted_Gy,
measured_Gy`` [, ``kind, predicted_sd_Gy, measured_sd_Gy``]. Output: the statistics table, and
per region group (and for a chosen patient) a pairs table, a scatter chart and a Bland–Altman
chart. Every computation is in ``LuDosimetryLib.concordance``; this module converts and stores.
"""

import logging
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
from LuDosimetrySlicerLib.widget import LuDosimetryModuleWidget


class LuDosimetryConcordance(ScriptedLoadableModule):
    """Module metadata."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("LuDosimetry Concordance")
        self.parent.categories = [_("Nuclear Medicine")]
        self.parent.dependencies = ["LuDosimetryCommon"]
        self.parent.contributors = ["LuDosimetry developers"]
        self.parent.helpText = _(
            "Agreement of predicted (e.g. 68Ga-PSMA PET) and measured (177Lu SPECT/CT) absorbed doses. "
            "Load a CSV table with the columns patient, region, predicted_Gy, measured_Gy (optional: kind, "
            "predicted_sd_Gy, measured_sd_Gy), at least 3 patients. The module computes, per region group "
            "(organ pooled over sides, or lesions): correlation, Lin's CCC, ICC, Bland–Altman (nested for "
            "lesions within patients), Deming and Passing–Bablok regression; and charts predicted vs measured "
            "and Bland–Altman plots for the cohort and for one patient. Differences are predicted − measured.")
        self.parent.acknowledgementText = _("Statistics: LuDosimetryLib.concordance (see docs/statistics.md).")


@parameterNodeWrapper
class LuDosimetryConcordanceParameterNode:
    """Inputs and settings (saved with the scene).

    doseTable: dose pairs (patient, region, predicted_Gy, measured_Gy).
    patient: also chart this patient's pairs (empty: cohort only).
    bootstrap, seed: cluster-bootstrap resamples of the nested Bland–Altman and their seed.
    statisticsTable: the last result (output).
    featureTable: the cohort's PET features and measured doses (statistics/prediction_features.csv of
        ``ludosimetry cohort``): the prediction models are compared leave-one-patient-out.
    predictionModel: the model whose leave-one-patient-out predictions are charted.
    validationTable: the last model comparison (output).
    """

    doseTable: Optional[slicer.vtkMRMLTableNode]
    patient: str = ""
    bootstrap: Annotated[int, WithinRange(0, 100000)] = 2000
    seed: Annotated[int, WithinRange(0, 2147483647)] = 0
    statisticsTable: Optional[slicer.vtkMRMLTableNode]
    featureTable: Optional[slicer.vtkMRMLTableNode]
    predictionModel: Annotated[str, Choice(["population", "kinetic", "calibrated"])] = "calibrated"
    validationTable: Optional[slicer.vtkMRMLTableNode]


class LuDosimetryConcordanceWidget(LuDosimetryModuleWidget):
    """GUI: the dose table, settings, Apply (plumbing: LuDosimetryModuleWidget)."""

    applyToolTip = _("Compute agreement statistics and charts")

    def selectDefaultInputs(self, parameterNode) -> None:
        if not parameterNode.doseTable:
            parameterNode.doseTable = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLTableNode")

    def missingInputs(self, parameterNode) -> list:
        return [] if parameterNode.doseTable else [_("a dose table (patient, region, predicted_Gy, measured_Gy)")]

    def onApplyButton(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Concordance failed."), waitCursor=True):
            p = self._parameterNode
            with progress_dialog(_("Concordance")) as progress:
                outputs = self.logic.process(p.doseTable, patient=p.patient.strip(), n_bootstrap=p.bootstrap,
                                             seed=p.seed, progress=progress)
            p.statisticsTable = outputs.statistics
            self.ui.resultLabel.text = _("{n} pairs from {m} patients; {g} region groups.").format(
                n=outputs.n_pairs, m=outputs.n_patients, g=len(outputs.scatter))
            first = next(iter(outputs.scatter.values()), None)
            if first is not None:
                slicer.modules.plots.logic().ShowChartInLayout(first)
            if p.featureTable:  # the cross-validated model comparison (selectors: see docs/slicer.md, to wire)
                validation = self.logic.compareModels(p.featureTable, model=p.predictionModel)
                p.validationTable = validation.validation


class LuDosimetryConcordanceLogic(ScriptedLoadableModuleLogic):
    """Runs the concordance stage without GUI (see LuDosimetrySlicerLib.concordance_logic)."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)

    def getParameterNode(self):
        return LuDosimetryConcordanceParameterNode(super().getParameterNode())

    def process(self, doseTable, patient="", n_bootstrap=2000, seed=0, progress=None):
        """Statistics table, pairs tables and charts (returns ``ConcordanceOutputs``)."""
        from LuDosimetrySlicerLib.concordance_logic import run_concordance

        if doseTable is None:
            raise ValueError("Input dose table is missing")
        logging.info("LuDosimetryConcordance: %s", doseTable.GetName())
        return run_concordance(doseTable, patient=patient, n_bootstrap=n_bootstrap, seed=seed, progress=progress)


    def compareModels(self, featureTable, model="calibrated", progress=None):
        """Leave-one-patient-out comparison of the prediction models (returns ``ModelValidationOutputs``)."""
        from LuDosimetrySlicerLib.concordance_logic import run_model_validation

        if featureTable is None:
            raise ValueError("Input feature table is missing")
        return run_model_validation(featureTable, model=model, progress=progress)


class LuDosimetryConcordanceTest(ScriptedLoadableModuleTest):
    """Runs the module logic inside Slicer on the sample cohort table."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_concordance_on_sample_cohort()

    def test_concordance_on_sample_cohort(self):
        from LuDosimetrySlicerLib.samples import sample_concordance_table

        self.delayDisplay("Concordance on the sample cohort table")
        table = sample_concordance_table()
        outputs = LuDosimetryConcordanceLogic().process(table, patient="P001", n_bootstrap=200)
        stats = outputs.statistics
        self.assertGreater(stats.GetNumberOfRows(), 0)
        self.assertEqual(stats.GetColumnUnitLabel("ba_bias_Gy"), "Gy")
        self.assertIn("kidney", outputs.scatter)
        self.assertIn("patient P001", outputs.bland_altman)
        self.assertEqual(outputs.scatter["kidney"].GetNumberOfPlotSeriesNodes(), 1)
        self.delayDisplay("Test passed")
