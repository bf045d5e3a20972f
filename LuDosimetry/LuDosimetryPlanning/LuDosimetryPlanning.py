"""LuDosimetryPlanning: next-cycle activity from renal dosimetry, and the cumulative dose ledger.

Input: the patient's ledger (JSON) and the prescription. Output: the ledger as a table node (one
row per cycle and organ, cumulative dose and BED, plus the planned cycle) and the proposal (every
number with its source). Every computation is in ``LuDosimetryLib.planning``.
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

from LuDosimetrySlicerLib.gui import progress_dialog, show_in_layout
from LuDosimetrySlicerLib.widget import LuDosimetryModuleWidget


class LuDosimetryPlanning(ScriptedLoadableModule):
    """Module metadata."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("LuDosimetry Planning")
        self.parent.categories = [_("Nuclear Medicine")]
        self.parent.dependencies = ["LuDosimetryCommon"]
        self.parent.contributors = ["LuDosimetry developers"]
        self.parent.helpText = _(
            "Personalised activity for the next 177Lu-PSMA cycle. Choose the patient's ledger (JSON: cycles "
            "given so far with their kidney and organ dosimetry) and the prescription (kidney dose per cycle,"
            " cumulative limits, or a risk constraint on the kidney BED). The reference safety limits (maximum "
            "activity per cycle, cumulative kidney dose and BED of the patient's risk stratum) apply by default. "
            "The module shows the proposed activity (GBq) with what limited it, flags a ledger already over a "
            "limit, and stores the cumulative ledger (dose, BED and their uncertainties per cycle and organ) as "
            "a table. Show follow-up lists the patient's adverse events (CTCAE term, grade, attribution, DLT) "
            "beside the kidney dose of the cycle they began in, the response assessments (PSA, PSMA-PET volume, "
            "RECIP 1.0) and a PSA chart, from the ledger's follow-up. The ledger file is never modified.")
        self.parent.acknowledgementText = _("Planning rules and sources: LuDosimetryLib.planning (docs/planning.md).")


@parameterNodeWrapper
class LuDosimetryPlanningParameterNode:
    """Inputs and settings (saved with the scene); doses in Gy, activities in GBq, 0 = not set."""

    ledgerPath: pathlib.Path
    mode: Annotated[str, Choice(["kidney_dose_per_cycle", "cumulative_kidney_dose", "cumulative_kidney_bed",
                                 "risk_constrained"])] = "kidney_dose_per_cycle"
    prescribedKidneyDoseGy: Annotated[float, WithinRange(0.0, 100.0)] = 0.0
    kidneyDoseLimitGy: Annotated[float, WithinRange(0.0, 200.0)] = 0.0
    kidneyBedLimitGy: Annotated[float, WithinRange(0.0, 200.0)] = 0.0
    epsilon: Annotated[float, WithinRange(0.0, 1.0)] = 0.0
    remainingCycles: Annotated[int, WithinRange(0, 9)] = 0  # 0: the cycles left in the protocol
    riskStratum: Annotated[str, Choice(["", "standard", "high"])] = ""  # "": the ledger's (else high)
    salvage: bool = False
    minActivityGBq: Annotated[float, WithinRange(0.0, 30.0)] = 0.0
    maxActivityGBq: Annotated[float, WithinRange(0.0, 30.0)] = 0.0
    stepGBq: Annotated[float, WithinRange(0.001, 5.0)] = 0.1
    alphaBetaGy: Annotated[float, WithinRange(0.0, 50.0)] = 0.0
    repairHalfTimeH: Annotated[float, WithinRange(0.0, 48.0)] = 0.0
    ledgerTable: Optional[slicer.vtkMRMLTableNode]
    toxicityTable: Optional[slicer.vtkMRMLTableNode]  # Show follow-up: adverse events beside the cycle doses
    followUpTable: Optional[slicer.vtkMRMLTableNode]  # Show follow-up: PSA (PCWG3 change) and PSMA PET (RECIP 1.0)


def ledgerChosen(parameters) -> bool:
    """Whether the parameter node names an existing ledger file."""
    return str(parameters.ledgerPath) not in ("", ".") and parameters.ledgerPath.is_file()


class LuDosimetryPlanningWidget(LuDosimetryModuleWidget):
    """GUI: the ledger, the prescription, Apply (plumbing: LuDosimetryModuleWidget)."""

    applyToolTip = _("Propose the next cycle's activity")

    def missingInputs(self, p) -> list:
        if not ledgerChosen(p):
            return [_("the patient's ledger file (JSON)")]
        if p.mode == "kidney_dose_per_cycle" and p.prescribedKidneyDoseGy <= 0:
            return [_("a kidney dose per cycle (Gy)")]
        if p.mode == "cumulative_kidney_dose" and p.kidneyDoseLimitGy <= 0:
            return [_("a cumulative kidney dose limit (Gy)")]
        if p.mode in ("cumulative_kidney_bed", "risk_constrained") and p.kidneyBedLimitGy <= 0:
            return [_("a cumulative kidney BED limit (Gy)")]
        if p.mode == "risk_constrained" and p.epsilon <= 0:
            return [_("an accepted exceedance probability")]
        return []

    def onApplyButton(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Planning failed."), waitCursor=True):
            with progress_dialog(_("Planning")) as progress:
                outputs = self.logic.process(self._parameterNode, progress=progress)
            self._parameterNode.ledgerTable = outputs.ledger
            self.ui.resultLabel.text = "\n".join(outputs.lines)
            slicer.app.layoutManager().setLayout(slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpTableView)
            slicer.app.applicationLogic().GetSelectionNode().SetActiveTableID(outputs.ledger.GetID())
            slicer.app.applicationLogic().PropagateTableSelection()

    def connectButtons(self) -> None:
        self.ui.followUpButton.connect("clicked(bool)", self.onFollowUpButton)

    def updateActionButtons(self, p) -> None:
        self.ui.followUpButton.enabled = ledgerChosen(p)

    def onFollowUpButton(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Loading the follow-up failed."), waitCursor=True):
            out = self.logic.loadFollowUp(self._parameterNode)
            self.ui.resultLabel.text = _("{p}: {n} adverse events, {m} response assessments.").format(
                p=out.patient_id, n=out.toxicities.GetNumberOfRows(), m=out.response.GetNumberOfRows())
            tables = [t for t in (self._parameterNode.ledgerTable, out.toxicities, out.response) if t]
            show_in_layout(tables, [out.psa_chart] if out.psa_chart else [])


class LuDosimetryPlanningLogic(ScriptedLoadableModuleLogic):
    """Runs the stage without GUI; the work is in LuDosimetrySlicerLib and LuDosimetryLib."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)

    def getParameterNode(self):
        return LuDosimetryPlanningParameterNode(super().getParameterNode())

    def process(self, parameters, progress=None):
        """Ledger and proposal tables from a parameter node (returns ``PlanningOutputs``)."""
        from LuDosimetrySlicerLib.planning_logic import plan_settings, run_planning

        settings = plan_settings(mode=parameters.mode, prescribed_kidney_dose_Gy=parameters.prescribedKidneyDoseGy,
                                 kidney_dose_limit_Gy=parameters.kidneyDoseLimitGy,
                                 kidney_bed_limit_Gy=parameters.kidneyBedLimitGy, epsilon=parameters.epsilon,
                                 remaining_cycles=parameters.remainingCycles,
                                 min_activity_GBq=parameters.minActivityGBq,
                                 max_activity_GBq=parameters.maxActivityGBq, step_GBq=parameters.stepGBq,
                                 salvage=parameters.salvage, risk_stratum=parameters.riskStratum)
        logging.info("LuDosimetryPlanning: %s", parameters.ledgerPath)
        return run_planning(parameters.ledgerPath, settings, alpha_beta_Gy=parameters.alphaBetaGy,
                            repair_half_time_h=parameters.repairHalfTimeH, progress=progress)

    def loadFollowUp(self, parameters):
        """The ledger's follow-up: toxicities and response tables, PSA chart (returns ``FollowUpOutputs``);
        sets ``toxicityTable`` and ``followUpTable``."""
        from LuDosimetrySlicerLib.response_logic import load_patient_follow_up

        if not ledgerChosen(parameters):
            raise ValueError(f"Input ledger file is missing: {parameters.ledgerPath}")
        logging.info("LuDosimetryPlanning follow-up: %s", parameters.ledgerPath)
        out = load_patient_follow_up(parameters.ledgerPath)
        parameters.toxicityTable, parameters.followUpTable = out.toxicities, out.response
        return out


class LuDosimetryPlanningTest(ScriptedLoadableModuleTest):
    """Runs the whole module logic inside Slicer on the sample data."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_planning_on_example_ledger()
        self.test_follow_up_of_example_trial_ledger()

    def test_planning_on_example_ledger(self):
        from LuDosimetrySlicerLib.samples import example_ledger_path

        self.delayDisplay("Planning on the example ledger")
        logic = LuDosimetryPlanningLogic()
        p = logic.getParameterNode()
        p.ledgerPath = example_ledger_path()
        p.prescribedKidneyDoseGy = 5.0
        p.maxActivityGBq = 9.0
        outputs = logic.process(p)
        self.assertFalse(outputs.proposal.refused)
        self.assertGreater(outputs.activity_GBq, 0.0)
        self.assertLessEqual(outputs.activity_GBq, 9.0)
        self.assertEqual(outputs.ledger.GetAttribute("LuDosimetry.LedgerOverLimit"), "0")
        self.assertEqual(outputs.ledger.GetColumnUnitLabel("cumulative_dose_Gy"), "Gy")
        self.delayDisplay("Test passed")

    def test_follow_up_of_example_trial_ledger(self):
        from LuDosimetrySlicerLib.samples import example_trial_ledger_path

        self.delayDisplay("Follow-up of the example trial ledger")
        logic = LuDosimetryPlanningLogic()
        p = logic.getParameterNode()
        p.ledgerPath = example_trial_ledger_path()
        out = logic.loadFollowUp(p)
        self.assertIs(p.toxicityTable, out.toxicities)
        self.assertGreater(out.toxicities.GetNumberOfRows(), 0)
        self.assertEqual(out.toxicities.GetColumnUnitLabel("cycle_kidney_dose_Gy"), "Gy")
        self.assertEqual(out.psa_chart.GetNumberOfPlotSeriesNodes(), 1)
        self.delayDisplay("Test passed")
