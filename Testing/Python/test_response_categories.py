"""Response categories on worked examples: PSA per PCWG3 (Scher 2016), PSMA PET per RECIP 1.0 (Gafita 2022),
and the biomarker trial's combined outcome. Each example is worked by hand in its comment."""

import pytest

from LuDosimetryLib.errors import InputError
from LuDosimetryLib.response.categories import (
    combined_outcome,
    outcome_definition,
    pcwg3_best_response,
    pcwg3_psa_progression,
    pcwg3_psa_response,
    pcwg3_response_at,
    recip_category,
)


def test_confirmed_decline_is_a_response():
    # baseline 20; day 42: 8 (−60 %); day 84 (42 d ≥ 21 d later): 6, still ≤ 10 → confirmed at day 84
    ev = pcwg3_psa_response([42, 84], [8.0, 6.0], 20.0)
    assert ev.confirmed and ev.day == 42 and ev.confirmation_day == 84
    assert pcwg3_best_response([42, 84], [8.0, 6.0], 20.0).category == "response"


def test_unconfirmed_decline_is_not_a_response():
    # day 42: 9 (−55 %) but the next value ≥ 3 weeks later, day 84: 12 (−40 %), is not ≤ 10
    ev = pcwg3_psa_response([42, 84], [9.0, 12.0], 20.0)
    assert ev is not None and not ev.confirmed
    best = pcwg3_best_response([42, 84], [9.0, 12.0], 20.0)
    assert best.category == "stable" and best.change_percent == pytest.approx(-55.0)
    # a value only 2 weeks later does not confirm: day 42: 9, day 56: 8, nothing after → unconfirmed
    assert not pcwg3_psa_response([42, 56], [9.0, 8.0], 20.0).confirmed


def test_rise_below_2_ng_per_mL_is_not_progression():
    # baseline 4, nadir 1.0 (day 42); day 84: 2.5 is +150 % but only +1.5 ng/mL; day 126: 2.9 (+1.9)
    assert pcwg3_psa_progression([42, 84, 126], [1.0, 2.5, 2.9], 4.0) is None
    # day 168: 3.2 (+2.2 ng/mL, +220 %) is the first rise; day 210: 3.5 confirms it
    ev = pcwg3_psa_progression([42, 84, 126, 168, 210], [1.0, 2.5, 2.9, 3.2, 3.5], 4.0)
    assert ev.day == 168 and ev.confirmed and ev.reference_ng_per_mL == 1.0


def test_nadir_based_progression_below_baseline():
    # baseline 50 → 20 (day 42) → 10 (day 84, nadir); day 126: 13 is +30 % and +3 ng/mL above the nadir
    # although below baseline; day 168: 15 confirms → progression dated day 126
    days, psa = [42, 84, 126, 168], [20.0, 10.0, 13.0, 15.0]
    ev = pcwg3_psa_progression(days, psa, 50.0)
    assert ev.day == 126 and ev.confirmed and ev.confirmation_day == 168 and ev.reference_ng_per_mL == 10.0
    # best response within 12 months: the confirmed response (day 42, confirmed day 84) came first
    assert pcwg3_best_response(days, psa, 50.0).category == "response"
    # at the landmark after cycle 2 (week 12, ± 3 weeks): response (day 84 value, confirmed by day 42)
    assert pcwg3_response_at(days, psa, 50.0, day=84, window_days=21).category == "response"
    # at week 24: progression (began day 126, confirmed)
    at = pcwg3_response_at(days, psa, 50.0, day=168, window_days=21)
    assert at.category == "progression" and at.day == 126


def test_progression_without_decline_counts_from_week_12():
    # baseline 10, no decline: day 42: 13 (+30 %, +3) is an early rise (< week 12) and ignored;
    # day 84: 14 ≥ max(12.5, 12) → progression, confirmed by day 126: 15
    ev = pcwg3_psa_progression([42, 84, 126], [13.0, 14.0, 15.0], 10.0)
    assert ev.day == 84 and ev.confirmed
    # unconfirmed: day 84: 14, day 126: 11 (< 12.5) and day 168: 16 has no later value → unconfirmed
    ev = pcwg3_psa_progression([84, 126, 168], [14.0, 11.0, 16.0], 10.0)
    assert ev is not None and not ev.confirmed and ev.day == 84
    assert pcwg3_best_response([84, 126, 168], [14.0, 11.0, 16.0], 10.0).category == "stable"


def test_landmark_without_value_in_window_is_not_evaluable():
    assert pcwg3_response_at([42, 200], [8.0, 6.0], 20.0, day=84, window_days=21).category == "not_evaluable"
    with pytest.raises(InputError, match="> 0"):
        pcwg3_psa_response([0, 42], [5.0, 4.0], 20.0)


@pytest.mark.parametrize(("before", "after", "new", "expected"), [
    (100.0, 0.0, False, "complete_response"),    # no PSMA-positive disease left
    (100.0, 65.0, False, "partial_response"),    # −35 %, no new lesion
    (100.0, 70.0, False, "partial_response"),    # exactly −30 %
    (100.0, 71.0, False, "stable"),              # −29 %
    (100.0, 65.0, True, "stable"),               # −35 % but a new lesion: not PR
    (100.0, 125.0, True, "progression"),         # +25 % with new lesions
    (100.0, 120.0, True, "progression"),         # exactly +20 %
    (100.0, 115.0, True, "stable"),              # new lesions, +15 %
    (100.0, 160.0, False, "stable"),             # +60 % without new lesions
])
def test_recip_categories(before, after, new, expected):
    assert recip_category(before, after, new) == expected


def test_recip_refuses_no_baseline_disease_and_negative_volume():
    with pytest.raises(InputError, match="volume_baseline_mL"):
        recip_category(0.0, 10.0, True)
    with pytest.raises(InputError, match="volume_followup_mL"):
        recip_category(10.0, -1.0, False)


def test_combined_outcome_of_the_biomarker_trial():
    assert combined_outcome("stable", "progression") == "non_response"
    assert combined_outcome("progression", "partial_response") == "non_response"
    assert combined_outcome("stable", "stable") == "response_or_stable"
    assert combined_outcome("response", None) == "response_or_stable"
    assert combined_outcome(None, None) == "not_evaluable"
    with pytest.raises(InputError, match="outcome"):
        outcome_definition("psa30")


def _outcome_table(tmp_path):
    """12 patients; the 6 with the highest dose respond (PSA −60 %, TTV −40 %), the others progress
    by PSA (+50 % from week 12, confirmed) or by PSMA PET (+30 % with new lesions): the dose separates
    the combined outcome completely."""
    header = ("patient,lesion,dose_Gy,mass_g,psa_baseline_ng_per_mL,psa_best_ng_per_mL,ttv_baseline_mL,"
              "ttv_followup_mL,new_lesions,rpfs_months,rpfs_event,os_months,os_event\n")
    rows, series = [header], ["patient,day,psa_ng_per_mL\n"]
    for i in range(12):
        dose = 10.0 + 4 * i
        good = i >= 6
        by_pet = i % 2 == 0 and not good
        ttv1, new = (60.0, 0) if good else ((130.0, 1) if by_pet else (95.0, 0))
        psa = [(42, 8.0), (84, 7.0), (126, 6.0)] if good else (
            [(42, 19.0), (84, 19.0), (126, 21.0)] if by_pet else [(42, 22.0), (84, 30.0), (126, 32.0)])
        rows.append(f"p{i},l1,{dose},10,20,{min(v for _, v in psa)},100,{ttv1},{new},{3 + i},{int(i < 10)},"
                    f"{10 + 2 * ((7 * i) % 12)},{int(i % 3 != 0)}\n")
        series += [f"p{i},{d},{v}\n" for d, v in psa]
    table, psa_file = tmp_path / "t.csv", tmp_path / "psa.csv"
    table.write_text("".join(rows))
    psa_file.write_text("".join(series))
    return table, psa_file


def test_response_command_with_the_combined_outcome_and_survival(tmp_path):
    import json

    from LuDosimetryLib.cli import main

    table, psa = _outcome_table(tmp_path)
    out = tmp_path / "out"
    assert main(["response", str(table), "--out", str(out), "--outcome", "combined", "--psa-series", str(psa),
                 "--bootstrap", "100"]) == 0
    res = json.loads((out / "response.json").read_text())
    assert res["outcome"] == "combined" and res["n_evaluable"] == 12 and res["n_responders_combined"] == 6
    firth = res["logistic_firth_combined"]
    assert firth["separated"] and 0 < firth["coefficients"][1] < 10  # finite where ordinary ML separates
    assert "logistic_combined" not in res and any("separates" in w for w in res["warnings"])
    assert res["roc_combined"]["auc"] == 1.0
    assert {"rpfs", "os"} <= set(res) and "cox" in res["os"]
    assert "combined" in (out / "report.html").read_text()
    assert (out / "survival_cox.csv").read_text().startswith("endpoint,n_patients,n_events,log_hazard_ratio_per_Gy")
    rows = {r["patient"]: r for r in
            __import__("csv").DictReader((out / "response.csv").open())}
    assert rows["p0"]["recip"] == "progression" and rows["p1"]["psa_pcwg3"] == "progression"
    assert rows["p7"]["psa_pcwg3"] == "response" and rows["p7"]["recip"] == "partial_response"
    assert main(["response", str(table), "--out", str(tmp_path / "o2"), "--outcome", "psa30"]) == 2


def _scan(folder, date, voxels, names):
    """A label map (2 mm voxels: 0.008 mL each) with ``voxels[i]`` voxels of label i + 1 and its label table."""
    import numpy as np
    import SimpleITK as sitk

    arr = np.zeros(40 * 40 * 40, np.uint8)
    start = 0
    for i, n in enumerate(voxels):
        arr[start:start + n] = i + 1
        start += n
    img = sitk.GetImageFromArray(arr.reshape(40, 40, 40))
    img.SetSpacing((2.0, 2.0, 2.0))
    d = folder / "psma_pet" / date
    d.mkdir(parents=True)
    sitk.WriteImage(img, str(d / "lesions.nii.gz"))
    (d / "labels.csv").write_text("label,name,side,kind,group\n" + "".join(
        f"{i + 1},{n},none,lesion,\n" for i, n in enumerate(names)))


def test_recip_from_psma_pet_segmentations_in_the_patient_folder(tmp_path):
    import csv
    import json

    from LuDosimetryLib.cli import main
    from LuDosimetryLib.response.psma_volume import read_psma_scans

    table, _ = _outcome_table(tmp_path)
    rows = table.read_text().splitlines()
    keep = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]  # drop the TTV/new-lesion columns: the folder gives them
    cut = [",".join(c for j, c in enumerate(r.split(",")) if j not in (6, 7, 8)) for r in rows]
    table.write_text("\n".join(cut) + "\n")
    pts = tmp_path / "patients"
    for i in keep:
        # baseline 1500 voxels (12 mL); p0: −60 % with a new lesion (stable); others: −60 %, no new lesion (PR)
        _scan(pts / f"p{i}", "2026-01-02", [1000, 500], ["lesion_a", "lesion_b"])
        if i == 0:
            _scan(pts / f"p{i}", "2026-03-27", [400, 0, 200], ["lesion_a", "lesion_b", "lesion_new"])
        else:
            _scan(pts / f"p{i}", "2026-03-27", [400, 200], ["lesion_a", "lesion_b"])
    scans = read_psma_scans(pts / "p0")
    assert scans[0].total_tumour_volume_mL == pytest.approx(1500 * 0.008)
    assert scans[1].total_tumour_volume_mL == pytest.approx(600 * 0.008)
    out = tmp_path / "out"
    assert main(["response", str(table), "--out", str(out), "--outcome", "recip_response", "--patients-dir", str(pts),
                 "--bootstrap", "100"]) == 0
    got = {r["patient"]: r["recip"] for r in csv.DictReader((out / "response.csv").open())}
    assert got["p0"] == "stable" and got["p5"] == "partial_response"
    assert json.loads((out / "response.json").read_text())["n_responders_recip_response"] == 11
