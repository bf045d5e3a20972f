"""Slicer edge of the response analysis and of a patient's follow-up (MRML stand-in `slicer` fixture):
the nodes hold the library's numbers."""

import json

import numpy as np
import pytest


def _response_rows(n=24, seed=4):
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        dose = float(rng.lognormal(np.log(25), 0.5))
        psa_best = 30 * float(np.exp(-dose / 25 + rng.normal(0, 0.4)))
        os_t = float(rng.exponential(30 * np.exp(0.02 * dose)))
        rows.append({"patient": f"p{i}", "lesion": "l1", "dose_Gy": dose, "mass_g": 10.0,
                     "psa_baseline_ng_per_mL": 30.0, "psa_best_ng_per_mL": psa_best,
                     "pfs_months": min(os_t / 2, 24.0), "pfs_event": int(os_t / 2 < 24),
                     "os_months": min(os_t, 36.0), "os_event": int(os_t < 36)})
    return rows


def test_response_logic_charts_roc_and_kaplan_meier_from_the_library(slicer, tmp_path):
    from LuDosimetryLib.response.analysis import analyse_response
    from LuDosimetryLib.response.table import read_response_table
    from LuDosimetryLib.results import write_csv
    from LuDosimetrySlicerLib import nodes, response_logic

    rows = _response_rows()
    table = nodes.rows_to_table(rows, name="response input")
    out = response_logic.run_response(table, n_bootstrap=100)
    csv_path = tmp_path / "t.csv"
    write_csv(csv_path, rows, list(rows[0]))
    ref = analyse_response(read_response_table(csv_path), n_bootstrap=100)
    assert out.analysis["roc_psa50"]["auc"] == pytest.approx(ref["roc_psa50"]["auc"], abs=1e-12)
    sens = nodes.table_column(out.roc_table, "sensitivity")
    np.testing.assert_allclose(sens, ref["roc_psa50"]["sensitivity"])
    assert out.roc_chart.GetNumberOfPlotSeriesNodes() == 2
    stats = {r["quantity"]: r for r in nodes.table_to_rows(out.statistics)}
    assert stats["AUC"]["value"] == pytest.approx(ref["roc_psa50"]["auc"])
    assert stats["os Cox log hazard ratio"]["value"] == pytest.approx(ref["os"]["cox"]["coefficients"][0])
    # the KM step table of the low-dose group ends at the library's last survival value
    km = ref["os"]["kaplan_meier"]["low"]
    surv = nodes.table_column(out.km_tables["os"]["low"], "survival")
    assert surv[-1] == pytest.approx(km["survival"][-1]) and surv[0] == 1.0
    assert out.km_charts["os"].GetNumberOfPlotSeriesNodes() == len(ref["os"]["kaplan_meier"])
    sh = slicer.mrmlScene.GetSubjectHierarchyNode()
    folder = sh.GetItemParent(sh.GetItemByDataNode(out.statistics))
    assert sh.GetItemName(folder) == "LuDosimetry response" and sh.GetItemName(sh.GetItemParent(folder)) == "Cohort"


def test_km_step_columns_draw_a_staircase(slicer):
    from LuDosimetrySlicerLib.response_logic import km_step_columns

    cols = km_step_columns({"times": [0.0, 2.0, 5.0], "survival": [1.0, 0.5, 0.25]})
    assert cols == {"time_months": [0.0, 2.0, 2.0, 5.0, 5.0], "survival": [1.0, 1.0, 0.5, 0.5, 0.25]}


def test_follow_up_logic_shows_toxicities_beside_the_cycle_dose(slicer, tmp_path):
    from LuDosimetryLib.phantom.followup import PHASE1_WORKED_EXAMPLE, synthetic_trial_ledgers
    from LuDosimetryLib.trial.cohort import trial_patient_from_ledger
    from LuDosimetrySlicerLib import nodes, response_logic

    ledgers, _ = synthetic_trial_ledgers(PHASE1_WORKED_EXAMPLE, seed=3)
    doc = next(d for d in ledgers if any(v.get("adverse_events") for v in d["follow_up"]))
    path = tmp_path / "ledger.json"
    path.write_text(json.dumps(doc))
    before = path.read_bytes()
    out = response_logic.load_patient_follow_up(path)
    pt = trial_patient_from_ledger(doc)
    aes = pt.follow_up.adverse_events()
    rows = nodes.table_to_rows(out.toxicities)
    assert [r["term"] for r in rows] == [a.term for a in aes]
    assert [r["grade"] for r in rows] == [a.grade for a in aes]
    for r in rows:
        assert r["cycle_kidney_dose_Gy"] == pytest.approx(pt.cycles[int(r["cycle"]) - 1].dose_Gy["kidney"])
    psa = [v for _, v in pt.follow_up.lab_series("psa_ng_per_mL")]
    series = slicer.mrmlScene.GetNodeByID(out.psa_chart.GetNthPlotSeriesNodeID(0))
    psa_table = slicer.mrmlScene.GetNodeByID(series.GetTableNodeID())
    np.testing.assert_allclose(nodes.table_column(psa_table, "psa_ng_per_mL"), psa)
    resp = nodes.table_to_rows(out.response)
    assert any(r["recip"] for r in resp) and out.toxicities.GetColumnUnitLabel("cycle_kidney_dose_Gy") == "Gy"
    assert path.read_bytes() == before
