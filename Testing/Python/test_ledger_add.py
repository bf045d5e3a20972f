"""``ludosimetry ledger add``: a cycle from a results folder into the ledger, numbers checked by hand."""

import csv
import datetime as dt
import json
import math
from pathlib import Path

import pytest

from LuDosimetryLib.cli import main
from LuDosimetryLib.errors import ConsistencyError, InputError
from LuDosimetryLib.planning import read_ledger
from LuDosimetryLib.planning.ledger_import import add_results_cycle, cycle_from_results

GBQ = 1e9
EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "example_ledger.json"
#: doses.csv columns of the reported-dose convention (docs/conventions.md, issue 15)
COLUMNS = ("region", "kind", "cycle", "dose_Gy", "dose_method", "dose_per_activity_Gy_per_GBq", "dose_rel_uncertainty",
           "dose_ci95_low_Gy", "dose_ci95_high_Gy", "volume_mL", "mass_g", "map_mean_dose_Gy", "median_dose_Gy",
           "min_dose_Gy", "max_dose_Gy", "d2_Gy", "d50_Gy", "d98_Gy", "bed_Gy", "eqd2_Gy", "flags")
A_GBQ = 7.4
# region: kind, mass g, d Gy/GBq, relative uncertainty, G (kidneys: for bed_Gy)
REGIONS = {
    "kidney_left": ("organ", 180.0, 0.50, 0.12, 0.06), "kidney_right": ("organ", 160.0, 0.40, 0.16, 0.08),
    "parotid_left": ("organ", 25.0, 0.60, 0.2, None), "parotid_right": ("organ", 25.0, 0.50, 0.2, None),
    "submandibular_left": ("organ", 8.0, 0.5, 0.25, None), "submandibular_right": ("organ", 8.0, 0.5, 0.25, None),
    "lacrimal_left": ("organ", 0.7, 2.0, 0.3, None), "lacrimal_right": ("organ", 0.7, 1.6, 0.3, None),
    "red_marrow": ("organ", 690.0, 0.03, 0.25, None), "liver": ("organ", 1600.0, 0.1, 0.15, None),
    "spleen": ("organ", 160.0, 0.08, 0.15, None), "lesion_bone_1": ("lesion", 31.0, 3.1, 0.2, None),
    "lesion_node_3": ("lesion", 0.45, 1.2, 0.35, None), "remainder": ("other", 39000.0, 0.02, 0.3, None),
}


def results_folder(tmp_path, *, patient="EXAMPLE-001", cycle=3, old_columns=False, empty_u=False, split=None,
                   run_extra=None, name="R"):
    folder = tmp_path / name
    folder.mkdir()
    rows = []
    for region, (kind, mass, d, u, g) in REGIONS.items():
        dose = A_GBQ * d
        row = {"region": region, "kind": kind, "cycle": cycle, "dose_Gy": dose, "dose_method": "kernel+gtm-pvc",
               "dose_per_activity_Gy_per_GBq": d, "dose_rel_uncertainty": "" if empty_u else u,
               "volume_mL": mass / 1.05, "mass_g": mass, "map_mean_dose_Gy": 0.8 * dose,
               "bed_Gy": "" if g is None else dose * (1 + g * dose / 2.6), "flags": ""}
        if split:
            row["dose_rel_uncertainty_shared"] = split
        rows.append(row)
    cols = list(COLUMNS) + (["dose_rel_uncertainty_shared"] if split else [])
    if old_columns:
        cols = [("mean_dose_Gy" if c == "map_mean_dose_Gy" else "method" if c == "dose_method" else c) for c in cols]
        rows = [{("mean_dose_Gy" if k == "map_mean_dose_Gy" else "method" if k == "dose_method" else k): v
                 for k, v in r.items()} for r in rows]
    with (folder / "doses.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, cols, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    ingest = {"patient_id": patient, "cycle": cycle, "injected_activity_Bq": A_GBQ * GBQ,
              "injection_datetime": "2026-03-30T09:45:00", **(run_extra or {})}
    (folder / "run.json").write_text(json.dumps({"command": "ludosimetry run", "stages": {"ingest": ingest},
                                                 "parameters": {"pipeline": {"alpha_beta_Gy": None}}}))
    return folder


def test_cycle_from_results_combines_sides_mass_weighted_by_hand(tmp_path):
    res = cycle_from_results(results_folder(tmp_path))
    assert (res.patient_id, res.cycle, str(res.administration_date)) == ("EXAMPLE-001", 3, "2026-03-30")
    assert res.administered_activity_Bq == pytest.approx(A_GBQ * GBQ)
    k = res.dose_per_activity["kidney"]
    assert k.dose_per_activity_Gy_per_Bq * GBQ == pytest.approx((180 * 0.5 + 160 * 0.4) / 340, rel=1e-12)
    # no split in doses.csv: all shared, so the sides add linearly (weights m·D)
    w = [180 * 0.5, 160 * 0.4]
    assert k.rel_uncertainty == pytest.approx((w[0] * 0.12 + w[1] * 0.16) / sum(w), rel=1e-12)
    assert k.shared_rel_uncertainty == pytest.approx(k.rel_uncertainty) and "all taken as shared" in k.source
    # G keeps the mass-weighted mean BED: Σ m G D² / (M D̄²)
    dl, dr = A_GBQ * 0.5, A_GBQ * 0.4
    dbar = (180 * dl + 160 * dr) / 340
    assert k.g_factor == pytest.approx((180 * 0.06 * dl**2 + 160 * 0.08 * dr**2) / (340 * dbar**2), rel=1e-9)
    assert res.dose_per_activity["lacrimal"].dose_per_activity_Gy_per_Bq * GBQ == pytest.approx(1.8)
    assert set(res.dose_per_activity) == {"kidney", "parotid", "submandibular", "lacrimal", "red_marrow", "liver",
                                          "spleen"}
    assert set(res.lesions) == {"lesion_bone_1", "lesion_node_3"}
    assert res.lesions["lesion_bone_1"].dose_Gy == pytest.approx(A_GBQ * 3.1)
    assert len(res.provenance["doses_csv_sha256"]) == 64


def test_split_uncertainty_adds_independent_sides_in_quadrature(tmp_path):
    k = cycle_from_results(results_folder(tmp_path, split=0.1)).dose_per_activity["kidney"]
    w = [180 * 0.5, 160 * 0.4]
    i = [math.sqrt(0.12**2 - 0.01), math.sqrt(0.16**2 - 0.01)]
    indep = math.sqrt((w[0] * i[0]) ** 2 + (w[1] * i[1]) ** 2) / sum(w)
    assert k.shared_rel_uncertainty == pytest.approx(0.1, rel=1e-12)
    assert k.rel_uncertainty == pytest.approx(math.hypot(0.1, indep), rel=1e-12)


def test_ledger_add_writes_a_new_ledger_and_leaves_the_input(tmp_path, capsys):
    src = tmp_path / "ledger.json"
    src.write_bytes(EXAMPLE.read_bytes())
    before = src.read_bytes()
    rc = main(["ledger", "add", str(results_folder(tmp_path)), "--ledger", str(src), "--out", str(tmp_path / "n.json")])
    assert rc == 0 and src.read_bytes() == before
    assert "cycle 3 appended" in capsys.readouterr().out
    new = read_ledger(tmp_path / "n.json")
    old = read_ledger(src)
    assert len(new.cycles) == 3 and new.follow_up == old.follow_up and new.outcomes == old.outcomes
    c3 = new.cycles[2]
    assert c3.organs["kidney"].dose_Gy == pytest.approx(A_GBQ * (180 * 0.5 + 160 * 0.4) / 340, rel=1e-9)
    assert c3.cumulative["kidney"].dose_Gy == pytest.approx(old.cycles[1].cumulative["kidney"].dose_Gy
                                                            + c3.organs["kidney"].dose_Gy, rel=1e-9)
    assert set(c3.lesions) == {"lesion_bone_1", "lesion_node_3"} and c3.provenance["results_folder"]
    # and in place: atomic, the previous version kept beside it
    src2 = tmp_path / "in_place.json"
    src2.write_bytes(before)
    assert main(["ledger", "add", str(results_folder(tmp_path, name="R2")), "--ledger", str(src2), "--in-place"]) == 0
    assert (tmp_path / "in_place.before-cycle3.json").read_bytes() == before
    assert len(read_ledger(src2).cycles) == 3


@pytest.mark.parametrize(("kw", "message"), [
    (dict(patient="OTHER-002"), "results folder is of patient 'OTHER-002' but the ledger is of 'EXAMPLE-001'"),
    (dict(cycle=2), r"cycle 2 is already in the ledger \(cycles 1–2 given"),
    (dict(cycle=5), "results folder is for cycle 5 but the ledger's next cycle is 3"),
    (dict(old_columns=True), r"old doses.csv columns 'method' \(now dose_method\), 'mean_dose_Gy' \(now dose_Gy"),
    (dict(empty_u=True), r"region kidney_left: dose_rel_uncertainty is empty.*--assume-rel-uncertainty"),
])
def test_ledger_add_refuses_what_does_not_belong(tmp_path, capsys, kw, message):
    src = tmp_path / "ledger.json"
    src.write_bytes(EXAMPLE.read_bytes())
    with pytest.raises(InputError, match=message):
        add_results_cycle(read_ledger(src), cycle_from_results(results_folder(tmp_path, **kw)))
    rc = main(["ledger", "add", str(tmp_path / "R"), "--ledger", str(src), "--out", str(tmp_path / "n.json")])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and not (tmp_path / "n.json").exists()


def test_ledger_add_output_rules_and_assumed_uncertainty(tmp_path, capsys):
    src = tmp_path / "ledger.json"
    src.write_bytes(EXAMPLE.read_bytes())
    res = results_folder(tmp_path, empty_u=True)
    assert main(["ledger", "add", str(res), "--ledger", str(src), "--out", str(src)]) == 2
    assert "use --in-place" in capsys.readouterr().err
    assert main(["ledger", "add", str(res), "--ledger", str(src), "--out", str(res / "x.json")]) == 2
    (tmp_path / "n.json").write_text("{}")
    assert main(["ledger", "add", str(res), "--ledger", str(src), "--out", str(tmp_path / "n.json")]) == 2
    assert "exists" in capsys.readouterr().err
    assert main(["ledger", "add", str(res), "--ledger", str(src), "--out", str(tmp_path / "n.json"), "--force",
                 "--assume-rel-uncertainty", "0.2"]) == 0
    k = read_ledger(tmp_path / "n.json").cycles[2].organs["kidney"]
    assert k.dose_rel_uncertainty == pytest.approx(0.2) and "0.2 assumed" in k.source
    with pytest.raises(ConsistencyError, match=r"run\.json says the injection was on 2026-03-30"):
        cycle_from_results(res, assumed_rel_uncertainty=0.2, administration_date=dt.date(2026, 3, 31))


def test_ledger_new_and_check(tmp_path, capsys):
    out = tmp_path / "p.json"
    assert main(["ledger", "new", "P-9", "--out", str(out), "--risk-stratum", "high", "--phase", "2"]) == 0
    led = read_ledger(out)
    assert (led.patient_id, led.risk_stratum, led.phase, led.cycles) == ("P-9", "high", 2, ())
    assert main(["ledger", "new", "P-9", "--out", str(out)]) == 2
    capsys.readouterr()
    assert main(["ledger", "check", str(EXAMPLE)]) == 0
    assert "cycle 2 (standard) 2026-02-16: 9.2 GBq" in capsys.readouterr().out


@pytest.mark.parametrize("edit, source", [
    (lambda d: d["follow_up"].append({"date": "2026-06-01", "adverse_events": [{"term": "", "grade": 9}]}),
     "follow_up"),
    (lambda d: d.setdefault("outcomes", {"last_follow_up_date": "2027-01-01"}).update(
        psa_progression_date="2020-01-01"), "outcomes.psa_progression_date"),
])
def test_ledger_check_and_add_validate_the_follow_up_they_carry(tmp_path, capsys, edit, source):
    """Bad follow-up (an ungradeable adverse event, a progression before cycle 1) is refused by `ledger check`
    and `ledger add`, and by `ludosimetry trial`'s reader, not only when the trial endpoints are computed."""
    from LuDosimetryLib.trial.cohort import trial_patient_from_ledger

    doc = json.loads(EXAMPLE.read_text())
    doc.setdefault("follow_up", [])
    edit(doc)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    with pytest.raises(InputError) as exc:
        trial_patient_from_ledger(doc, source="bad.json")
    assert source in str(exc.value)
    capsys.readouterr()
    assert main(["ledger", "check", str(bad)]) == 2
    assert source in capsys.readouterr().err
    assert main(["ledger", "add", str(results_folder(tmp_path)), "--ledger", str(bad), "--out",
                 str(tmp_path / "n.json")]) == 2
    assert not (tmp_path / "n.json").exists()
