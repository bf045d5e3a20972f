"""LuDosimetryConcordance: PET-predicted vs SPECT-measured absorbed doses, per patient and over a cohort.

Input: a table node (a CSV loaded as a table) with the columns ``patient, region, predicted_Gy,
measured_Gy`` [, ``kind, predicted_sd_Gy, measured_sd_Gy``]. Output: the statistics table, and
per region group (and for a chosen patient) a pairs table, a scatter chart and a Bland–Altman
chart. Prediction models: the cohort's leave-one-patient-out comparison (CCC per organ group and
model; the chosen model's predictions against the measured doses). Response: the dose–response
analysis of a response table (statistics, ROC, Kaplan–Meier by dose group). Every computation is in
``LuDosimetryLib``; this module converts and stores through ``LuDosimetrySlicerLib``.
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

from LuDosimetrySlicerLib.gui import progress_dialog, show_in_layout
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
            "and Bland–Altman plots for the cohort and for one patient. Differences are predicted − measured. "
            "Prediction models: choose the cohort's prediction_features.csv (or its model_validation.csv and "
            "model_validation_predictions.csv) and a model; Compare models shows each model's leave-one-patient-out "
            "CCC per organ group and the chosen model's predictions against the measured doses. Response: choose a "
            "dose–response table, the outcome definition and the survival dose groups; Analyse response shows the "
            "statistics, the ROC curve and Kaplan–Meier curves by dose group.")
        self.parent.acknowledgementText = _("Statistics: LuDosimetryLib.concordance (see docs/statistics.md).")


@parameterNodeWrapper
class LuDosimetryConcordanceParameterNode:
    """Inputs and settings (saved with the scene).

    doseTable: dose pairs (patient, region, predicted_Gy, measured_Gy).
    patient: also chart this patient's pairs (empty: cohort only).
    bootstrap, seed: cluster-bootstrap resamples of the nested Bland–Altman and their seed.
    statisticsTable: the last result (output).
    featureTable: the cohort's PET features and measured doses (statistics/prediction_features.csv of
        ``ludosimetry cohort``): Compare models validates the prediction models leave-one-patient-out here.
    predictionModel: the model whose leave-one-patient-out predictions are charted.
    validationTable, predictionsTable: the models' LOPO statistics and predictions (``ludosimetry cohort``'s
        statistics/model_validation.csv and model_validation_predictions.csv, or set by Compare models).
    comparisonTable: the last model comparison (output: CCC and bias per organ group and model).
    responseTable: dose–response table (one row per lesion, docs/response.md).
    outcome: binary outcome definition of the response analysis; doseGroups: survival dose groups
        (``youden``, ``median`` or a dose in Gy). The response analysis uses ``bootstrap`` and ``seed`` too.
    responseStatisticsTable: the last response analysis (output).
    """

    doseTable: Optional[slicer.vtkMRMLTableNode]
    patient: str = ""
    bootstrap: Annotated[int, WithinRange(0, 100000)] = 2000
    seed: Annotated[int, WithinRange(0, 2147483647)] = 0
    statisticsTable: Optional[slicer.vtkMRMLTableNode]
    featureTable: Optional[slicer.vtkMRMLTableNode]
    predictionModel: Annotated[str, Choice(["population", "kinetic", "calibrated"])] = "calibrated"
    validationTable: Optional[slicer.vtkMRMLTableNode]
    predictionsTable: Optional[slicer.vtkMRMLTableNode]
    comparisonTable: Optional[slicer.vtkMRMLTableNode]
    responseTable: Optional[slicer.vtkMRMLTableNode]
    outcome: Annotated[str, Choice(["psa50", "pcwg3_response", "pcwg3_no_progression", "recip_response",
                                    "recip_no_progression", "combined"])] = "psa50"
    doseGroups: str = "youden"
    responseStatisticsTable: Optional[slicer.vtkMRMLTableNode]


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

    def connectButtons(self) -> None:
        self.ui.compareModelsButton.connect("clicked(bool)", self.onCompareModelsButton)
        self.ui.responseButton.connect("clicked(bool)", self.onResponseButton)

    def updateActionButtons(self, p) -> None:
        self.ui.compareModelsButton.enabled = bool(p.featureTable or p.validationTable)
        self.ui.responseButton.enabled = bool(p.responseTable)

    def onCompareModelsButton(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Model comparison failed."), waitCursor=True):
            with progress_dialog(_("Prediction models")) as progress:
                out = self.logic.processModelComparison(self._parameterNode, progress=progress)
            self.ui.resultLabel.text = _("Models {m} compared leave-one-patient-out.").format(m=", ".join(out.models))
            show_in_layout([out.comparison], [c for c in (out.ccc_chart, out.scatter_chart) if c])

    def onResponseButton(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Response analysis failed."), waitCursor=True):
            p = self._parameterNode
            with progress_dialog(_("Response")) as progress:
                out = self.logic.processResponse(p.responseTable, outcome=p.outcome, doseGroups=p.doseGroups,
                                                 n_bootstrap=p.bootstrap, seed=p.seed, progress=progress)
            p.responseStatisticsTable = out.statistics
            self.ui.resultLabel.text = "\n".join([_("Response ({o}): {n} evaluable patients.").format(
                o=p.outcome, n=out.analysis["n_evaluable"]), *out.analysis.get("warnings", [])])
            show_in_layout([out.statistics], [c for c in (out.roc_chart, *out.km_charts.values()) if c])


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

    def loadModelValidation(self, validationTable, predictionsTable=None, model="calibrated"):
        """The models' LOPO comparison table and charts from validation (and predictions) tables
        (returns ``ModelComparisonOutputs``)."""
        from LuDosimetrySlicerLib.model_validation_logic import load_model_validation

        if validationTable is None:
            raise ValueError("Input model validation table (model_validation.csv) is missing")
        return load_model_validation(validationTable, predictionsTable, model=model)

    def processModelComparison(self, parameters, progress=None):
        """With a feature table, validate the models on it (``compareModels``, setting ``validationTable`` and
        ``predictionsTable``); then compare them (``loadModelValidation``, setting ``comparisonTable``)."""
        if parameters.featureTable:
            lopo = self.compareModels(parameters.featureTable, model=parameters.predictionModel, progress=progress)
            parameters.validationTable, parameters.predictionsTable = lopo.validation, lopo.predictions
        out = self.loadModelValidation(parameters.validationTable, parameters.predictionsTable,
                                       model=parameters.predictionModel)
        parameters.comparisonTable = out.comparison
        return out

    def processResponse(self, responseTable, outcome="psa50", doseGroups="youden", n_bootstrap=1000, seed=0,
                        progress=None):
        """Dose–response analysis: statistics, ROC and Kaplan–Meier tables and charts (returns ``ResponseOutputs``)."""
        from LuDosimetrySlicerLib.response_logic import run_response

        if responseTable is None:
            raise ValueError("Input response table is missing")
        logging.info("LuDosimetryConcordance response: %s (%s)", responseTable.GetName(), outcome)
        return run_response(responseTable, outcome=outcome, group_rule=doseGroups.strip() or "youden",
                            n_bootstrap=n_bootstrap, seed=seed, progress=progress)


class LuDosimetryConcordanceTest(ScriptedLoadableModuleTest):
    """Runs the module logic inside Slicer on the sample cohort table."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_concordance_on_sample_cohort()
        self.test_model_comparison_on_synthetic_features()
        self.test_response_on_example_table()

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

    def test_model_comparison_on_synthetic_features(self):
        from LuDosimetrySlicerLib.nodes import rows_to_table
        from LuDosimetrySlicerLib.samples import synthetic_feature_rows

        self.delayDisplay("Prediction models compared leave-one-patient-out")
        logic = LuDosimetryConcordanceLogic()
        p = logic.getParameterNode()
        p.featureTable = rows_to_table(synthetic_feature_rows(), name="prediction_features")
        p.predictionModel = "kinetic"
        out = logic.processModelComparison(p)
        self.assertEqual(out.models, ("population", "kinetic", "calibrated"))
        self.assertIs(p.comparisonTable, out.comparison)
        self.assertEqual(out.ccc_chart.GetNumberOfPlotSeriesNodes(), 3)
        self.assertEqual(out.pairs.GetColumnUnitLabel("predicted_Gy"), "Gy")
        self.delayDisplay("Test passed")

    def test_response_on_example_table(self):
        from LuDosimetrySlicerLib.samples import sample_response_table

        self.delayDisplay("Response analysis on the example dose–response table")
        out = LuDosimetryConcordanceLogic().processResponse(sample_response_table(), outcome="combined",
                                                            n_bootstrap=100)
        self.assertEqual(out.analysis["n_evaluable"], 20)
        self.assertEqual(out.roc_chart.GetNumberOfPlotSeriesNodes(), 2)
        self.assertEqual(sorted(out.km_charts), ["os", "pfs"])
        self.delayDisplay("Test passed")
