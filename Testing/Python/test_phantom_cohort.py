"""The synthetic cohort: patients vary, the truth is consistent, and clinical.csv feeds the response stage."""

import json

import numpy as np
import pytest

from LuDosimetryLib.cli import main
from LuDosimetryLib.errors import InputError
from LuDosimetryLib.phantom import kinetics
from LuDosimetryLib.phantom.cohort import CohortSettings, vary_kinetics
from LuDosimetryLib.response.analysis import analyse_response
from LuDosimetryLib.response.table import read_response_table


def test_varied_kinetics_keep_the_activity_balance_and_differ_between_draws():
    rng = np.random.default_rng(0)
    a, b = vary_kinetics(rng, CohortSettings()), vary_kinetics(rng, CohortSettings())
    assert [k.name for k in a] == [k.name for k in kinetics.LU_KINETICS]
    assert any(x.uptake_fraction != y.uptake_fraction for x, y in zip(a, b))
    ka = {k.name: k for k in a}
    assert ka["kidney_cortex_left"].uptake_fraction / kinetics.LU_KINETICS[
        [k.name for k in kinetics.LU_KINETICS].index("kidney_cortex_left")].uptake_fraction == pytest.approx(
        ka["kidney_cortex_right"].uptake_fraction / {k.name: k for k in kinetics.LU_KINETICS}[
            "kidney_cortex_right"].uptake_fraction)  # organs of a group share their factor
    kinetics.region_curves(a, kinetics.LU_EXCRETION, "Lu-177", 7.4e9)  # remainder ≥ 0 (raises otherwise)
    with pytest.raises(InputError, match="n_patients"):
        CohortSettings(n_patients=0)


def test_cohort_folder_truth_and_clinical_table_are_consistent(tmp_path):
    out = tmp_path / "cohort"
    assert main(["phantom", "--cohort", "3", "--no-dicom", "--out", str(out)]) == 0
    truth = json.loads((out / "cohort_truth.json").read_text())
    assert sorted(truth["patients"]) == ["P001", "P002", "P003"]
    for pid, t in truth["patients"].items():
        p_truth = json.loads((out / pid / "truth.json").read_text())
        mass = {r["name"]: r["mass_g"] for r in p_truth["regions"] if r["kind"] == "lesion"}
        dose = p_truth["cycles"][0]["dose_Gy"]
        wb = sum(dose[n] * m for n, m in mass.items()) / sum(mass.values())
        assert t["wholebody_tumour_dose_Gy"] == pytest.approx(wb, rel=1e-12)
        assert p_truth["cycles"][0]["injection"]["activity_Bq"] == pytest.approx(t["injected_activity_Bq"])
    doses = {pid: t["wholebody_tumour_dose_Gy"] for pid, t in truth["patients"].items()}
    assert len(set(np.round(list(doses.values()), 6))) == 3  # patients differ
    # clinical.csv + the true lesion doses form a valid response table
    lines = (out / "clinical.csv").read_text().splitlines()
    header = lines[0].split(",")
    rows = [dict(zip(header, ln.split(","))) for ln in lines[1:]]
    table = tmp_path / "response.csv"
    with table.open("w") as fh:
        fh.write("dose_Gy," + lines[0] + "\n")
        for r, ln in zip(rows, lines[1:]):
            fh.write(f"{truth['patients'][r['patient']]['lesion_dose_Gy'][r['lesion']]!r},{ln}\n")
    patients = read_response_table(table)
    res = analyse_response(patients, n_bootstrap=50)
    assert res["n_patients"] == 3
    for p in patients:
        assert p.wholebody_tumour_dose_Gy == pytest.approx(doses[p.patient], rel=1e-9)
