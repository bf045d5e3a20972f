"""The module Logic wrappers of the response, follow-up and prediction-model features (Concordance and
Planning modules) on Slicer's real MRML (slicer-core), with real inputs: a synthetic dose-response
table, the example trial ledger, a synthetic cohort's feature table and the model-validation CSVs that
``ludosimetry cohort`` writes (loaded by Slicer's own table storage node).

slicer-core has no Qt: ``slicer.ScriptedLoadableModule``, ``slicer.parameterNodeWrapper`` and
``slicer.i18n`` (Qt-based in Slicer) are replaced by the few lines :func:`_qt_free_module_stand_ins`
writes, so the module file imports and its Logic class runs its real code on the real scene. The
parameter node is then a plain object with the declared fields and defaults; its Qt binding is checked
by ``test_slicer_modules.py`` (the .ui) and by the modules' self-tests inside Slicer.
"""

from __future__ import annotations

import ast
import csv
import importlib.util
import json
import sys
import types
import typing
import unittest
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]


def _qt_free_module_stand_ins() -> dict[str, types.ModuleType]:
    """Stand-ins of Slicer's Qt-based Python modules that a module file imports (tests only)."""
    import slicer

    slm = types.ModuleType("slicer.ScriptedLoadableModule")

    class ScriptedLoadableModuleLogic:
        """As Slicer's: one ``vtkMRMLScriptedModuleNode`` per module in the scene."""

        def __init__(self, parent=None) -> None:
            self.moduleName = type(self).__name__.removesuffix("Logic")

        def getParameterNode(self):
            node = slicer.mrmlScene.GetSingletonNode(self.moduleName, "vtkMRMLScriptedModuleNode")
            if node is None:
                node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScriptedModuleNode")
                node.SetSingletonTag(self.moduleName)
            return node

    slm.ScriptedLoadableModuleLogic = ScriptedLoadableModuleLogic
    slm.ScriptedLoadableModule = type("ScriptedLoadableModule", (), {"__init__": lambda self, parent: None})
    slm.ScriptedLoadableModuleWidget = type("ScriptedLoadableModuleWidget", (), {})
    slm.ScriptedLoadableModuleTest = unittest.TestCase
    pnw = types.ModuleType("slicer.parameterNodeWrapper")

    class Choice:
        def __init__(self, choices) -> None:
            self.choices = list(choices)

    def parameterNodeWrapper(cls):
        """Fields with their declared defaults (None where none) on a plain object; ``choices`` of each field."""
        hints = typing.get_type_hints(cls, include_extras=True)

        def init(self, node=None) -> None:
            self.parameterNode = node
            for name in hints:
                setattr(self, name, getattr(cls, name, None))

        cls.__init__ = init
        cls.choices = {n: m.choices for n, h in hints.items() for m in getattr(h, "__metadata__", ())
                       if isinstance(m, Choice)}
        return cls

    pnw.parameterNodeWrapper, pnw.Choice, pnw.WithinRange = parameterNodeWrapper, Choice, lambda lo, hi: None
    i18n = types.ModuleType("slicer.i18n")
    i18n.tr = lambda text: text
    return {"slicer.ScriptedLoadableModule": slm, "slicer.parameterNodeWrapper": pnw, "slicer.i18n": i18n}


@pytest.fixture()
def module(slicer, monkeypatch):
    """``module(name)``: the module file ``LuDosimetry/<name>/<name>.py`` imported on the real scene."""
    for key, mod in _qt_free_module_stand_ins().items():
        monkeypatch.setitem(sys.modules, key, mod)
        monkeypatch.setattr(slicer, key.split(".")[1], mod, raising=False)

    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, REPO / "LuDosimetry" / name / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        monkeypatch.setitem(sys.modules, name, mod)
        spec.loader.exec_module(mod)
        return mod

    return load


def _column(table, name):
    from LuDosimetrySlicerLib.nodes import table_column

    return table_column(table, name)


def _series(slicer, chart) -> list:
    return [slicer.mrmlScene.GetNodeByID(chart.GetNthPlotSeriesNodeID(k))
            for k in range(chart.GetNumberOfPlotSeriesNodes())]


# --- choices offered by the modules are the library's -------------------------------------------------
def _choices(module_name: str, field: str) -> list[str]:
    tree = ast.parse((REPO / "LuDosimetry" / module_name / f"{module_name}.py").read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", None) == field:
            call = next(n for n in ast.walk(node.annotation) if isinstance(n, ast.Call) and n.func.id == "Choice")
            return ast.literal_eval(call.args[0])
    raise AssertionError(f"{module_name} has no field {field}")


def test_concordance_offers_every_outcome_definition_and_prediction_model():
    from LuDosimetryLib.prediction.models import MODELS
    from LuDosimetryLib.response.categories import OUTCOME_DEFINITIONS

    assert _choices("LuDosimetryConcordance", "outcome") == list(OUTCOME_DEFINITIONS)
    assert _choices("LuDosimetryConcordance", "predictionModel") == list(MODELS)


# --- Concordance: response ---------------------------------------------------------------------------
def _response_rows(n: int = 24, seed: int = 7) -> list[dict]:
    """One lesion per patient: PSA fall and PSMA-PET volume change driven by dose (volume factors 0.5,
    1.0, 1.5 + new lesions: RECIP partial response, stable, progression), survival with events."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        dose = float(rng.lognormal(np.log(25), 0.5))
        factor = 0.5 if dose > 30 else (1.0 if dose > 18 else 1.5)
        os_t = float(rng.exponential(30 * np.exp(0.02 * dose)))
        rows.append({"patient": f"p{i:02d}", "lesion": "l1", "dose_Gy": dose, "mass_g": 10.0,
                     "psa_baseline_ng_per_mL": 30.0,
                     "psa_best_ng_per_mL": 30 * float(np.exp(-dose / 25 + rng.normal(0, 0.4))),
                     "ttv_baseline_mL": 100.0, "ttv_followup_mL": 100.0 * factor, "new_lesions": int(factor > 1),
                     "os_months": min(os_t, 36.0), "os_event": int(os_t < 36)})
    return rows


def test_concordance_logic_analyses_response_by_the_chosen_outcome_and_dose_groups(module, slicer):
    from LuDosimetrySlicerLib.nodes import rows_to_table, table_to_rows

    mod = module("LuDosimetryConcordance")
    logic = mod.LuDosimetryConcordanceLogic()
    p = logic.getParameterNode()
    assert (p.outcome, p.doseGroups) == ("psa50", "youden")
    rows = _response_rows()
    table = rows_to_table(rows, name="response table")
    out = logic.processResponse(table, outcome="recip_response", doseGroups=" 25 ", n_bootstrap=100, seed=1)
    stats = {r["quantity"]: r for r in table_to_rows(out.statistics)}
    # RECIP 1.0 by hand: a 50 % volume fall without new lesions is a partial response, the rest is not
    partial = sum(r["ttv_followup_mL"] <= 0.7 * r["ttv_baseline_mL"] and not r["new_lesions"] for r in rows)
    assert 0 < partial < len(rows)
    assert stats["positive (recip_response)"]["value"] == partial
    assert stats["evaluable patients (recip_response)"]["value"] == len(rows)
    assert stats["Youden threshold"]["unit"] == "Gy" and stats["Firth logistic slope"]["unit"] == "1/Gy"
    assert out.statistics.GetAttribute("LuDosimetry.Outcome") == "recip_response"
    # ROC: the curve and the chance line; KM: split at the 25 Gy asked for, one series per dose group
    assert [s.GetYColumnName() for s in _series(slicer, out.roc_chart)] == ["sensitivity", "chance"]
    assert out.analysis["os"]["threshold_Gy"] == 25.0
    low = sum(r["dose_Gy"] < 25 for r in rows)
    assert sorted(out.km_tables["os"]) == ["high", "low"] and 0 < low < len(rows)
    km = out.km_tables["os"]["low"]
    assert km.GetColumnUnitLabel("time_months") == "months"
    assert _column(km, "survival")[0] == 1.0 and np.all(np.diff(_column(km, "survival")) <= 0)
    assert [s.GetXColumnName() for s in _series(slicer, out.km_charts["os"])] == ["time_months"] * 2
    with pytest.raises(ValueError, match="response table is missing"):
        logic.processResponse(None)


def test_concordance_logic_refuses_an_unknown_outcome_by_name(module, slicer):
    from LuDosimetryLib.errors import InputError
    from LuDosimetrySlicerLib.nodes import rows_to_table

    logic = module("LuDosimetryConcordance").LuDosimetryConcordanceLogic()
    with pytest.raises(InputError, match="unknown outcome 'psa30'"):
        logic.processResponse(rows_to_table(_response_rows(), name="r"), outcome="psa30", n_bootstrap=100)


# --- Concordance: prediction models -------------------------------------------------------------------
@pytest.fixture(scope="module")
def feature_rows():
    from LuDosimetryLib.phantom.cohort_kinetics import SyntheticFeatureSettings, synthetic_feature_table

    return synthetic_feature_table(SyntheticFeatureSettings(n_patients=6, seed=4))


def test_concordance_logic_compares_models_from_a_feature_table(module, slicer, feature_rows):
    from LuDosimetryLib.cohort.model_validation import lopo_concordance, lopo_predictions
    from LuDosimetrySlicerLib.nodes import rows_to_table, table_to_rows

    mod = module("LuDosimetryConcordance")
    logic = mod.LuDosimetryConcordanceLogic()
    p = logic.getParameterNode()
    p.featureTable = rows_to_table(feature_rows, name="prediction_features")
    p.predictionModel = "kinetic"
    out = logic.processModelComparison(p)
    assert p.comparisonTable is out.comparison and p.validationTable is not None and p.predictionsTable is not None
    preds = lopo_predictions(feature_rows)
    expected = {(r["model"], r["group"]): r for r in lopo_concordance(preds)}
    rows = table_to_rows(out.comparison)
    assert {r["group"] for r in rows} == {g for _, g in expected} and out.models == ("population", "kinetic",
                                                                                       "calibrated")
    for r in rows:
        for m in out.models:
            assert r[f"ccc_{m}"] == pytest.approx(expected[m, r["group"]]["ccc"], rel=1e-9, abs=1e-12)
            assert r[f"ba_bias_{m}_Gy"] == pytest.approx(expected[m, r["group"]]["ba_bias_Gy"], rel=1e-9, abs=1e-12)
    assert out.comparison.GetColumnUnitLabel("ba_bias_kinetic_Gy") == "Gy"
    series = _series(slicer, out.ccc_chart)
    assert [s.GetYColumnName() for s in series] == [f"ccc_{m}" for m in out.models]
    assert all(s.GetLabelColumnName() == "group" for s in series)
    kin = [r for r in preds if r["model"] == "kinetic"]
    np.testing.assert_allclose(_column(out.pairs, "predicted_Gy"),
                               [r["predicted_Gy_per_GBq"] * r["activity_GBq"] for r in kin], rtol=1e-12)
    assert out.pairs.GetColumnUnitLabel("measured_Gy") == "Gy"
    assert [s.GetName() for s in _series(slicer, out.scatter_chart)] == ["kinetic (LOPO)", "identity"]


def _load_csv_as_table(slicer, path: Path):
    """A CSV loaded as Slicer loads it (its table storage node)."""
    node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLTableNode", path.stem)
    storage = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLTableStorageNode")
    storage.SetFileName(str(path))
    assert storage.ReadData(node)
    return node


def test_concordance_logic_shows_the_cohorts_model_validation_csvs(module, slicer, tmp_path, feature_rows):
    from LuDosimetryLib.cohort.model_validation import write_model_validation
    from LuDosimetryLib.errors import InputError
    from LuDosimetrySlicerLib.nodes import rows_to_table, table_to_rows

    files = write_model_validation(feature_rows, tmp_path)  # what `ludosimetry cohort` writes in statistics/
    with files["model_validation.csv"].open(newline="") as fh:
        csv_rows = list(csv.DictReader(fh))
    with files["model_validation_predictions.csv"].open(newline="") as fh:
        pred_rows = [r for r in csv.DictReader(fh) if r["model"] == "calibrated"]
    mod = module("LuDosimetryConcordance")
    logic = mod.LuDosimetryConcordanceLogic()
    p = logic.getParameterNode()
    assert p.predictionModel == "calibrated"
    p.validationTable = _load_csv_as_table(slicer, files["model_validation.csv"])
    p.predictionsTable = _load_csv_as_table(slicer, files["model_validation_predictions.csv"])
    out = logic.processModelComparison(p)
    rows = {r["group"]: r for r in table_to_rows(out.comparison)}
    for r in csv_rows:
        assert rows[r["group"]][f"ccc_{r['model']}"] == pytest.approx(float(r["ccc"]), rel=1e-6)
    assert out.comparison.GetAttribute("LuDosimetry.Scheme") == "leave-one-patient-out"
    np.testing.assert_allclose(_column(out.pairs, "measured_Gy"),
                               [float(r["measured_Gy_per_GBq"]) * float(r["activity_GBq"]) for r in pred_rows],
                               rtol=1e-6)
    identity = slicer.mrmlScene.GetNodeByID(_series(slicer, out.scatter_chart)[1].GetTableNodeID())
    assert _column(identity, "identity_Gy")[-1] == pytest.approx(
        max(max(_column(out.pairs, "measured_Gy")), max(_column(out.pairs, "predicted_Gy"))))
    # the feature table is not a validation table: the message names the node
    bad = rows_to_table(feature_rows, name="features by mistake")
    with pytest.raises(InputError, match=r"features by mistake.*missing column\(s\) \['model'"):
        logic.loadModelValidation(bad)
    with pytest.raises(InputError, match="no predictions of the 'population' model"):
        logic.loadModelValidation(p.validationTable, out.pairs, model="population")
    with pytest.raises(ValueError, match=r"model_validation\.csv"):
        logic.loadModelValidation(None)


# --- Planning: follow-up ------------------------------------------------------------------------------
def test_planning_logic_shows_the_ledgers_toxicities_and_psa(module, slicer):
    from LuDosimetryLib.trial.cohort import trial_patient_from_ledger
    from LuDosimetrySlicerLib.nodes import table_to_rows
    from LuDosimetrySlicerLib.samples import example_trial_ledger_path

    path = example_trial_ledger_path()
    assert path.read_bytes() == (REPO / "docs" / "examples" / "example_trial_ledger.json").read_bytes()
    before = path.read_bytes()
    mod = module("LuDosimetryPlanning")
    logic = mod.LuDosimetryPlanningLogic()
    p = logic.getParameterNode()
    p.ledgerPath = path
    out = logic.loadFollowUp(p)
    assert p.toxicityTable is out.toxicities and p.followUpTable is out.response
    pt = trial_patient_from_ledger(json.loads(before))
    aes = pt.follow_up.adverse_events()
    tox = table_to_rows(out.toxicities)
    assert aes and [(r["term"], r["grade"]) for r in tox] == [(a.term, a.grade) for a in aes]
    for r in tox:  # the kidney dose of the cycle the event began in, from the ledger
        assert r["cycle_kidney_dose_Gy"] == pytest.approx(pt.cycles[int(r["cycle"]) - 1].dose_Gy["kidney"])
    assert out.toxicities.GetColumnUnitLabel("cumulative_kidney_dose_Gy") == "Gy"
    assert out.response.GetColumnUnitLabel("psa_ng_per_mL") == "ng/mL"
    (series,) = _series(slicer, out.psa_chart)
    psa_table = slicer.mrmlScene.GetNodeByID(series.GetTableNodeID())
    np.testing.assert_allclose(_column(psa_table, "psa_ng_per_mL"), [v for _, v in pt.follow_up.lab_series(
        "psa_ng_per_mL")])
    assert psa_table.GetColumnUnitLabel("psa_ng_per_mL") == "ng/mL" and path.read_bytes() == before
    p.ledgerPath = Path("")
    with pytest.raises(ValueError, match="ledger file is missing"):
        logic.loadFollowUp(p)


# --- the views the buttons fill -----------------------------------------------------------------------
def test_show_in_layout_puts_each_table_and_chart_in_its_own_view(slicer):
    """On Slicer's layout logic (MRMLLogic): the layout is registered, its views created, each filled."""
    from LuDosimetrySlicerLib.gui import show_in_layout
    from LuDosimetrySlicerLib.nodes import columns_table, plot_chart

    # what the application does before its layout logic creates slice views (qSlicerCoreApplication)
    slicer.vtkMRMLSliceNode.AddDefaultSliceOrientationPresets(slicer.mrmlScene)
    layout_logic = slicer.vtkMRMLLayoutLogic()
    layout_logic.SetMRMLScene(slicer.mrmlScene)
    layout_node = layout_logic.GetLayoutNode()
    tables = [columns_table({"x_Gy": [0.0, 1.0], "y_Gy": [0.0, 2.0]}, name=f"t{k}") for k in range(3)]
    chart = plot_chart(tables[0], [{"x": "x_Gy", "y": "y_Gy"}], name="c", title="c", x_title="x", y_title="y")
    layout_id = show_in_layout(tables, [chart], layout_node=layout_node)
    assert layout_node.GetViewArrangement() == layout_id and layout_node.IsLayoutDescription(layout_id)
    for k, t in enumerate(tables, start=1):
        view = slicer.mrmlScene.GetSingletonNode(f"LuDosimetryTable{k}", "vtkMRMLTableViewNode")
        assert view.GetTableNodeID() == t.GetID()
    plot_view = slicer.mrmlScene.GetSingletonNode("LuDosimetryPlot1", "vtkMRMLPlotViewNode")
    assert plot_view.GetPlotChartNodeID() == chart.GetID()
    assert slicer.mrmlScene.GetSingletonNode("LuDosimetryTable4", "vtkMRMLTableViewNode") is None
    assert show_in_layout(tables[:1], [chart], layout_node=layout_node) != layout_id  # another arrangement


def test_concordance_logic_analyses_the_example_response_table_by_the_combined_outcome(module, slicer):
    from LuDosimetrySlicerLib.nodes import table_to_rows
    from LuDosimetrySlicerLib.samples import SAMPLE_DIR, sample_response_table

    with (SAMPLE_DIR / "example_response.csv").open(newline="") as fh:
        raw = list(csv.DictReader(fh))
    logic = module("LuDosimetryConcordance").LuDosimetryConcordanceLogic()
    out = logic.processResponse(sample_response_table(), outcome="combined", doseGroups="median", n_bootstrap=100)
    # combined outcome without PSA series: progression only by RECIP 1.0 (≥ 20 % TTV increase with new lesions)
    progressing = sum(float(r["ttv_followup_mL"]) >= 1.2 * float(r["ttv_baseline_mL"]) and r["new_lesions"] == "1"
                      for r in raw)
    stats = {r["quantity"]: r["value"] for r in table_to_rows(out.statistics)}
    assert 0 < progressing < len(raw) and stats["positive (combined)"] == len(raw) - progressing
    assert out.analysis["pfs"]["threshold_Gy"] == pytest.approx(np.median([float(r["dose_Gy"]) for r in raw]))
    assert sorted(out.km_charts) == ["os", "pfs"]
