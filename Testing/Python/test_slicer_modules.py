"""The LuDosimetry Slicer modules without Slicer: API use checked against Slicer 5.10, valid .ui files
bound to the parameter nodes, no science in the module files, and each stage's logic run through
Slicer's real MRML (slicer-core) from input nodes to output nodes."""

from __future__ import annotations

import ast
import csv
import json
import math
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
# The Slicer API checker lives in ../shared/slicer (the Makefile's SHARED); the environment variable
# SHARED overrides where that folder is.
_SHARED = [Path(os.environ["SHARED"])] if os.environ.get("SHARED") else [p / "shared" for p in REPO.parents]
_CANDIDATES = [s / "slicer" / "check_slicer_api.py" for s in _SHARED]
CHECKER = next((c for c in _CANDIDATES if c.exists()), _CANDIDATES[0])
MODULES = ("LuDosimetryAlignment", "LuDosimetryTAC", "LuDosimetryDose", "LuDosimetryConcordance", "LuDosimetryPlanning")
EDGE = REPO / "LuDosimetry" / "LuDosimetryCommon"
SAMPLES = EDGE / "Resources" / "SampleData"
# Qt Designer classes the .ui files may use (Qt, CTK and Slicer MRML widgets).
KNOWN_WIDGETS = {"QLabel", "QPushButton", "QLineEdit", "QSpinBox", "QDoubleSpinBox", "QCheckBox", "QComboBox",
                 "qMRMLWidget", "ctkCollapsibleButton", "qMRMLNodeComboBox", "ctkPathLineEdit"}
# Widgets the parameterNodeWrapper's GUI connectors bind to each field type (Slicer 5.10
# Base/Python/slicer/parameterNodeWrapper/guiConnectors.py: exact widget classes).
CONNECTABLE = {"float": {"QDoubleSpinBox"}, "int": {"QSpinBox"}, "bool": {"QCheckBox"},
               "str": {"QLineEdit", "QComboBox"}, "pathlib.Path": {"ctkPathLineEdit"}, "node": {"qMRMLNodeComboBox"}}
ALLOWED_IMPORTS = {"slicer", "qt", "ctk", "vtk", "logging", "typing", "pathlib", "LuDosimetrySlicerLib",
                   "LuDosimetryLib"}

def _column(table, name: str):
    """A table column through the helper the logic uses (text and numbers; Slicer's own
    ``slicer.util.arrayFromTableColumn`` raises on text columns)."""
    from LuDosimetrySlicerLib.nodes import table_column

    return table_column(table, name)



def _module_source(name: str) -> ast.Module:
    return ast.parse((REPO / "LuDosimetry" / name / f"{name}.py").read_text(encoding="utf-8"))


# --- static checks ------------------------------------------------------------------------------
def test_slicer_api_checker_reports_zero_unknown_for_5_10():
    res = subprocess.run([sys.executable, str(CHECKER), "--target", "v5.10.0", str(REPO / "LuDosimetry")],
                         capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    assert ", 0 unknown" in res.stdout
    checked = int(res.stdout.split("slicer-api: ")[1].split(" uses")[0])
    assert checked > 200  # the five modules and the edge code were all read


def test_every_module_is_built_by_cmake_with_tests():
    top = (REPO / "CMakeLists.txt").read_text()
    assert top.index("add_subdirectory(LuDosimetry/LuDosimetryCommon)") < top.index("## NEXT_MODULE")
    for name in MODULES:
        assert f"add_subdirectory(LuDosimetry/{name})" in top.split("## NEXT_MODULE")[0]
        cm = (REPO / "LuDosimetry" / name / "CMakeLists.txt").read_text()
        assert f"set(MODULE_NAME {name})" in cm and "WITH_GENERIC_TESTS" in cm and "slicer_add_python_unittest" in cm
        assert (REPO / "LuDosimetry" / name / "Resources" / "Icons" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    # the hidden Common module installs every edge file and sample resource
    common = (EDGE / "CMakeLists.txt").read_text()
    for path in sorted((EDGE / "LuDosimetrySlicerLib").glob("*.py")):
        assert f"LuDosimetrySlicerLib/{path.name}" in common, path.name
    for path in sorted((EDGE / "Resources").rglob("*.*")):
        assert str(path.relative_to(EDGE)) in common, path


def _parameter_fields(tree: ast.Module) -> dict[str, ast.AnnAssign]:
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and any(getattr(d, "id", None) == "parameterNodeWrapper"
                                                  for d in node.decorator_list):
            return {s.target.id: s for s in node.body if isinstance(s, ast.AnnAssign)}
    raise AssertionError("no @parameterNodeWrapper class")


@pytest.mark.parametrize("name", MODULES)
def test_ui_is_valid_designer_xml_bound_to_the_parameter_node(name):
    root = ET.parse(REPO / "LuDosimetry" / name / "Resources" / "UI" / f"{name}.ui").getroot()
    assert root.tag == "ui" and root.get("version") == "4.0" and root.findtext("class") == name
    top = root.find("widget")
    assert top.get("class") == "qMRMLWidget" and top.get("name") == name
    widgets = {w.get("name"): w.get("class") for w in root.iter("widget")}
    assert len(widgets) == len(list(root.iter("widget"))), "widget names must be unique"
    assert set(widgets.values()) <= KNOWN_WIDGETS
    declared = {c.findtext("class") for c in root.iter("customwidget")}
    assert {c for c in widgets.values() if not c.startswith("Q")} <= declared
    tree = _module_source(name)
    used = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Attribute)
            and n.value.attr == "ui" and isinstance(n.value.value, ast.Name) and n.value.value.id == "self"}
    assert used and used <= set(widgets), f"self.ui names missing in the .ui: {used - set(widgets)}"
    fields = _parameter_fields(tree)
    bound = {}
    for w in root.iter("widget"):
        for p in w.findall("property"):
            if p.get("name") == "SlicerParameterName":
                assert p.get("stdset") == "0"
                bound[p.findtext("string")] = w.get("class")
    assert bound and set(bound) <= set(fields), f"unknown parameters {set(bound) - set(fields)}"
    for pname, wclass in bound.items():
        text = ast.unparse(fields[pname].annotation)
        base = "node" if "vtkMRML" in text else text.removeprefix("Annotated[").split(",")[0].rstrip("]")
        assert wclass in CONNECTABLE[base], f"{pname}: {text} cannot be bound to a {wclass}"
        if wclass == "QComboBox":
            assert "Choice(" in text, f"{pname}: a QComboBox needs a Choice annotation"
    for w in root.iter("widget"):  # every input has a tooltip; every node selector a node type
        if w.get("class") not in ("QLabel", "qMRMLWidget", "ctkCollapsibleButton"):
            assert any(p.get("name") == "toolTip" for p in w.findall("property")), w.get("name")
        if w.get("class") == "qMRMLNodeComboBox":
            node_types = [s.text for p in w.findall("property") if p.get("name") == "nodeTypes"
                          for s in p.iter("string")]
            assert node_types and all(t.startswith("vtkMRML") for t in node_types)
    # node fields are Optional (the wrapper reads them with typing.get_type_hints)
    for fname, f in fields.items():
        text = ast.unparse(f.annotation)
        if "vtkMRML" in text:
            assert text.startswith("Optional["), f"{fname}: {text}"


def test_widgets_share_one_base_and_keep_only_their_inputs_and_outputs():
    """The template's parameter-node plumbing is in LuDosimetrySlicerLib/widget.py once; every module's
    widget derives from it, defines none of the plumbing again, and its .ui has the names the base uses."""
    base = ast.parse((EDGE / "LuDosimetrySlicerLib" / "widget.py").read_text(encoding="utf-8"))
    classes = {c.name: c for c in base.body if isinstance(c, ast.ClassDef)}
    plumbing = {f.name for f in classes["LuDosimetryModuleWidget"].body if isinstance(f, ast.FunctionDef)}
    assert {"setup", "setParameterNode", "initializeParameterNode", "exit", "onSceneStartClose"} <= plumbing
    base_ui = {n.attr for n in ast.walk(base) if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Attribute)
               and n.value.attr == "ui"}
    assert base_ui == {"applyButton"}
    for name in MODULES:
        tree = _module_source(name)
        widget = next(c for c in tree.body if isinstance(c, ast.ClassDef) and c.name == f"{name}Widget")
        assert ast.unparse(widget.bases[0]) in classes, f"{name}Widget does not use the shared base"
        methods = {f.name for f in widget.body if isinstance(f, ast.FunctionDef)}
        assert not methods & (plumbing - {"connectButtons", "selectDefaultInputs", "missingInputs", "onApplyButton"})
        assert len(ast.unparse(widget).splitlines()) < 60, f"{name}Widget is not thin"
        root = ET.parse(REPO / "LuDosimetry" / name / "Resources" / "UI" / f"{name}.ui").getroot()
        assert base_ui | {"resultLabel"} <= {w.get("name") for w in root.iter("widget")}


@pytest.mark.parametrize("name", MODULES)
def test_module_files_import_no_science_and_compute_nothing(name):
    tree = _module_source(name)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots = {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            roots = {(node.module or "").split(".")[0]}
        else:
            continue
        assert roots <= ALLOWED_IMPORTS, f"{name} imports {roots - ALLOWED_IMPORTS}"
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("LuDosimetryLib"):
            raise AssertionError(f"{name} calls the library directly; go through LuDosimetrySlicerLib")
    computing = ast.Mult | ast.Div | ast.Pow | ast.Sub | ast.FloorDiv
    arithmetic = [ast.unparse(n) for n in ast.walk(tree) if isinstance(n, ast.BinOp) and isinstance(n.op, computing)]
    assert not arithmetic, f"{name} computes: {arithmetic}"
    classes = {c.name for c in tree.body if isinstance(c, ast.ClassDef)}
    assert {name, f"{name}ParameterNode", f"{name}Widget", f"{name}Logic", f"{name}Test"} <= classes
    mod_init = next(c for c in tree.body if isinstance(c, ast.ClassDef) and c.name == name)
    text = ast.unparse(mod_init)
    assert "'Nuclear Medicine'" in text and "['LuDosimetryCommon']" in text and "helpText" in text


# --- logic on the real MRML classes ---------------------------------------------------------------
def _rows(path: Path) -> list[dict]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_concordance_logic_stores_statistics_pairs_and_charts(slicer):
    from LuDosimetrySlicerLib import concordance_logic, samples

    table = samples.sample_concordance_table()
    out = concordance_logic.run_concordance(table, patient="P002", n_bootstrap=100)
    raw = _rows(SAMPLES / "example_concordance.csv")
    groups = {r["region"].replace("_left", "").replace("_right", "") if r["kind"] == "organ" else "lesion" for r in raw}
    patients_with_3_lesions = {p for p in {r["patient"] for r in raw}
                               if sum(r["patient"] == p and r["kind"] == "lesion" for r in raw) >= 3}
    stats = out.statistics
    assert stats.GetNumberOfRows() == len(groups) + len(patients_with_3_lesions)
    assert stats.GetColumnUnitLabel("ba_bias_Gy") == "Gy" and stats.GetColumnUnitLabel("ba_bias_percent") == "%"
    assert set(out.scatter) == groups | {"patient P002"}
    assert out.pairs["patient P002"].GetNumberOfRows() == sum(r["patient"] == "P002" for r in raw)
    assert out.bland_altman["patient P002"].GetNumberOfPlotSeriesNodes() == 1
    # the kidney Bland–Altman chart: its points are the kidney pairs, its bias line the mean difference
    kid = [r for r in raw if r["region"].startswith("kidney")]
    pairs = out.pairs["kidney"]
    assert pairs.GetNumberOfRows() == len(kid)
    diff = _column(pairs, "difference_Gy")
    expected = [float(r["predicted_Gy"]) - float(r["measured_Gy"]) for r in kid]
    np.testing.assert_allclose(sorted(diff), sorted(expected), rtol=1e-12)
    chart = out.bland_altman["kidney"]
    assert chart.GetNumberOfPlotSeriesNodes() == 4  # points, bias, two limits
    bias_series = slicer.mrmlScene.GetNodeByID(chart.GetNthPlotSeriesNodeID(1))
    lines = slicer.mrmlScene.GetNodeByID(bias_series.GetTableNodeID())
    assert _column(lines, bias_series.GetYColumnName())[0] == pytest.approx(np.mean(expected))
    # organised under the cohort and the patient
    sh = slicer.mrmlScene.GetSubjectHierarchyNode()
    folder = sh.GetItemParent(sh.GetItemByDataNode(stats))
    assert sh.GetItemName(folder) == "LuDosimetry concordance"
    assert sh.GetItemName(sh.GetItemParent(folder)) == "Cohort"
    patient_folder = sh.GetItemParent(sh.GetItemByDataNode(out.scatter["patient P002"]))
    assert sh.GetItemName(sh.GetItemParent(patient_folder)) == "P002"


def test_concordance_logic_refuses_a_table_without_required_columns(slicer):
    from LuDosimetryLib.errors import InputError
    from LuDosimetrySlicerLib import concordance_logic, nodes

    table = nodes.rows_to_table([{"patient": "a", "region": "liver", "predicted_Gy": 1.0}], name="bad")
    with pytest.raises(InputError, match=r"bad.*missing column\(s\) \['measured_Gy'\]"):
        concordance_logic.run_concordance(table)
    table = nodes.rows_to_table([{"patient": "a", "region": "liver", "predicted_Gy": 1.0, "measured_Gy": 1.1}],
                                name="one")
    with pytest.raises(InputError, match="need at least 3 patients"):
        concordance_logic.run_concordance(table)


def test_planning_logic_proposes_activity_and_stores_the_cumulative_ledger(slicer):
    from LuDosimetrySlicerLib import planning_logic, samples

    led = json.loads(samples.example_ledger_path().read_text())
    settings = planning_logic.plan_settings(prescribed_kidney_dose_Gy=5.0, max_activity_GBq=30.0, step_GBq=0.1,
                                            override_limits=("max_activity",))
    out = planning_logic.run_planning(samples.example_ledger_path(), settings)
    d_last = led["cycles"][-1]["organs"]["kidney"]["dose_per_activity_Gy_per_GBq"]
    assert not out.proposal.refused
    # 5 Gy at the last measured kidney d, rounded down to the 0.1 GBq step
    assert out.activity_GBq == pytest.approx(math.floor(5.0 / d_last / 0.1 + 1e-9) * 0.1, abs=1e-9)
    ledger = out.ledger
    n_given = sum(len(c["organs"]) + len(c.get("lesions", {})) for c in led["cycles"])
    planned = _column(ledger, "dosimetry_method")
    assert ledger.GetNumberOfRows() == n_given + sum(planned == "planned") and sum(planned == "planned") >= 1
    assert ledger.GetColumnUnitLabel("cumulative_dose_Gy") == "Gy"
    assert ledger.GetColumnUnitLabel("administered_activity_GBq") == "GBq"
    kidney_cum = [float(v) for v, o, m in zip(_column(ledger, "cumulative_dose_Gy"),
                                              _column(ledger, "organ"), planned)
                  if o == "kidney" and m != "planned"]
    by_hand = np.cumsum([c["administered_activity_GBq"] * c["organs"]["kidney"]["dose_per_activity_Gy_per_GBq"]
                         for c in led["cycles"]])
    np.testing.assert_allclose(kidney_cum, by_hand, rtol=1e-3)
    # the ledger's numbers as computed, kept beside the table (a saved table keeps 6 significant digits)
    from LuDosimetrySlicerLib.nodes import full_precision_rows

    kept = [r["cumulative_dose_Gy"] for r in full_precision_rows(ledger)
            if r["organ"] == "kidney" and r["dosimetry_method"] != "planned"]
    np.testing.assert_allclose(kept, by_hand, rtol=1e-12)
    attrs = {n: ledger.GetAttribute(n) for n in ledger.GetAttributeNames()}
    assert float(attrs["LuDosimetry.NextCycleActivityGBq"]) == pytest.approx(out.activity_GBq)
    assert attrs["LuDosimetry.NextCycle"] == str(len(led["cycles"]) + 1)
    assert attrs["LuDosimetry.PatientID"] == led["patient_id"]
    assert attrs["LuDosimetry.LedgerOverLimit"] == "0" and attrs["LuDosimetry.RiskStratum"] == "standard"
    sh = slicer.mrmlScene.GetSubjectHierarchyNode()
    folder = sh.GetItemParent(sh.GetItemByDataNode(ledger))
    assert sh.GetItemName(sh.GetItemParent(folder)) == led["patient_id"]


def test_planning_logic_flags_a_ledger_over_the_kidney_limit(slicer, tmp_path):
    import datetime as dt

    from LuDosimetryLib.planning import OrganDosePerActivity, append_cycle, new_ledger, write_ledger
    from LuDosimetrySlicerLib import planning_logic

    led = new_ledger("P-OVER", risk_stratum="high")
    for k in (1, 2):  # 9 Gy per cycle with G = 0.2: BED 2 × 9(1 + 0.2·9/2.6) = 30.5 Gy > 28 Gy (high risk)
        led = append_cycle(led, administration_date=dt.date(2026, 1, 5) + dt.timedelta(days=42 * k),
                           administered_activity_Bq=9.0e9, dosimetry_method="full_protocol",
                           dose_per_activity={"kidney": OrganDosePerActivity(1.0e-9, 0.1, 0.2, "test")})
    out = planning_logic.run_planning(write_ledger(tmp_path / "over.json", led),
                                      planning_logic.plan_settings(prescribed_kidney_dose_Gy=4.0))
    attrs = {n: out.ledger.GetAttribute(n) for n in out.ledger.GetAttributeNames()}
    assert attrs["LuDosimetry.LedgerOverLimit"] == "1" and "cumulative kidney BED" in attrs["LuDosimetry.LimitFlags"]
    assert out.proposal.refused and "BED limit allows no further activity" in out.proposal.reason
    assert [f.name for f in out.limit_flags] == ["kidney_bed"]
    assert any(line.startswith("  LEDGER OVER LIMIT: cumulative kidney BED 30.") for line in out.lines)


def test_planning_logic_reports_a_missing_prescription(slicer):
    from LuDosimetryLib.errors import InputError
    from LuDosimetrySlicerLib import planning_logic, samples

    with pytest.raises(InputError, match="prescribed_kidney_dose_Gy"):
        planning_logic.run_planning(samples.example_ledger_path(), planning_logic.plan_settings())


@pytest.mark.parametrize("has_category_api", [False, True], ids=["5.10", "5.12"])
def test_sample_patient_is_registered_without_download_on_both_versions(slicer, monkeypatch, has_category_api):
    import types

    calls = []

    class SampleDataLogic:  # the two static methods of SampleData.SampleDataLogic that registration uses
        @staticmethod
        def registerCustomSampleDataSource(**kwargs):
            calls.append(("source", kwargs))

    if has_category_api:
        SampleDataLogic.registerCustomSampleDataCategory = staticmethod(lambda c, t: calls.append(("category", c)))
    monkeypatch.setitem(sys.modules, "SampleData", types.SimpleNamespace(SampleDataLogic=SampleDataLogic))
    from LuDosimetrySlicerLib import samples

    samples.register_sample_data()
    kinds = [k for k, _ in calls]
    assert kinds == (["category", "source"] if has_category_api else ["source"])
    source = calls[-1][1]
    assert source["category"] == "LuDosimetry" and source["sampleName"] == "LuDosimetrySyntheticPatient"
    assert source["uris"] == [] and callable(source["customDownloader"])  # generated locally: nothing to download
    assert Path(source["thumbnailFileName"]).read_bytes()[:4] == b"\x89PNG"


def test_no_package_is_installed_at_start_up():
    """Module files and the Common module import nothing optional at load time and never call pip."""
    for path in sorted((REPO / "LuDosimetry").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        top_imports = {a.name.split(".")[0] for n in tree.body if isinstance(n, ast.Import) for a in n.names}
        top_imports |= {(n.module or "").split(".")[0] for n in tree.body if isinstance(n, ast.ImportFrom)}
        assert not top_imports & {"pandas", "dask", "distributed", "matplotlib"}, path
        calls = [ast.unparse(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)]
        pip = [c for c in calls if "pip_install" in c or "pip_ensure" in c]
        assert path.name == "gui.py" or not pip, f"{path}: {pip}"
    gui = (EDGE / "LuDosimetrySlicerLib" / "gui.py").read_text()
    assert "confirmOkCancelDisplay" in gui.split("slicer.util.pip_install(requirement)")[0]  # asks first


def test_concordance_logic_compares_the_prediction_models_leave_one_patient_out(slicer):
    from LuDosimetryLib.cohort.model_validation import lopo_concordance, lopo_predictions
    from LuDosimetryLib.phantom.cohort_kinetics import SyntheticFeatureSettings, synthetic_feature_table
    from LuDosimetrySlicerLib import concordance_logic, nodes

    rows = synthetic_feature_table(SyntheticFeatureSettings(n_patients=6, seed=4))
    table = nodes.rows_to_table(rows, name="prediction_features")
    out = concordance_logic.run_model_validation(table, model="kinetic")
    got = {(r["model"], r["group"]): r["ccc"] for r in nodes.table_to_rows(out.validation)}
    expected = {(r["model"], r["group"]): r["ccc"] for r in lopo_concordance(lopo_predictions(rows))}
    assert set(got) == set(expected) and {m for m, _ in got} == {"population", "kinetic", "calibrated"}
    for k, v in expected.items():
        assert got[k] == pytest.approx(v, rel=1e-9, abs=1e-12)
    assert out.n_patients == 6 and out.chart.GetNumberOfPlotSeriesNodes() == 1
    assert out.predictions.GetNumberOfRows() == sum(1 for r in lopo_predictions(rows) if r["model"] == "kinetic")
