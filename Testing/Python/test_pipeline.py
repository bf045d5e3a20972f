"""The post-therapy chain on the synthetic sample patient, against its ground truth."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from LuDosimetryLib.cli import main
from LuDosimetryLib.density import average_onto_grid, ct_to_density
from LuDosimetryLib.errors import InputError
from LuDosimetryLib.ingest.patient import load_patient
from LuDosimetryLib.phantom import generate_patient, write_patient_folder
from LuDosimetryLib.pipeline import dose_from_tia, settings_from_parameters
from LuDosimetryLib.results import read_csv


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    """The small sample patient (kidney motion, no PET) through ``ludosimetry run``."""
    root = tmp_path_factory.mktemp("pipeline")
    patient = generate_patient("small", seed=5, kidney_motion=True, with_pet=False)
    folder = write_patient_folder(patient, root / "patient", dicom=False)
    assert main(["run", str(folder), "--out", str(root / "results")]) == 0
    return folder, root / "results", patient


def test_run_writes_the_results_folder_of_the_conventions(sample_run):
    _, out, _ = sample_run
    for f in ("tac.csv", "fits.csv", "doses.csv", "tia_Bq_h.nii.gz", "dose_Gy.nii.gz", "dvh.png", "report.html",
              "run.json", "plots/fit_kidney_left.png"):
        assert (out / f).is_file(), f
    run = json.loads((out / "run.json").read_text())
    assert run["command"] == "ludosimetry run" and run["parameters"]["pipeline"]["dose_method"] == "convolution"
    assert run["stages"]["tac"]["partial_volume"] == "gtm"
    assert len(run["stages"]["alignment"]) == 4  # a quality record per timepoint
    # the voxel TIA map holds the body's TIA: the sum of the true TIA of every region, within 15 %
    truth = json.loads((out.parent / "patient" / "truth.json").read_text())
    true_total = sum(truth["cycles"][0]["tia_Bq_h"][r["name"]] for r in truth["regions"])
    total = float(sitk.GetArrayFromImage(sitk.ReadImage(str(out / "tia_Bq_h.nii.gz"))).sum(dtype=np.float64))
    assert total == pytest.approx(true_total, rel=0.15)
    # and the dose map stays physical: no voxel above 10 times the largest true region dose
    dose = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "dose_Gy.nii.gz")))
    assert float(dose.max()) < 10 * max(truth["cycles"][0]["dose_Gy"].values())


def test_organ_dose_ratio_equals_tia_ratio_against_the_true_tia_map(sample_run):
    """Dose is linear in TIA: for organs over 100 mL the ratio pipeline/true of the mean dose equals the
    ratio of their TIA (both maps through the same dose stage) within 1 %."""
    folder, out, patient = sample_run
    tia_map = sitk.ReadImage(str(out / "tia_Bq_h.nii.gz"), sitk.sitkFloat32)
    loaded = load_patient(folder)
    seg = loaded.segmentation
    density = ct_to_density(loaded.cycles[0].timepoints[0].ct)
    truth = patient.truth["cycles"][0]["tia_Bq_h"]
    regions = {r["name"]: r for r in patient.truth["regions"]}
    # the true TIA map: each region's true TIA spread uniformly over its voxels, averaged onto the SPECT grid
    lab = sitk.GetArrayFromImage(seg.image)
    conc = np.zeros(lab.shape, np.float64)
    for r in seg.table:
        conc[lab == r.label] = truth[r.name] / regions[r.name]["volume_mL"]
    conc_img = sitk.GetImageFromArray(conc.astype(np.float32))
    conc_img.CopyInformation(seg.image)
    true_map = average_onto_grid(conc_img, tia_map)
    v_mL = float(np.prod(tia_map.GetSpacing())) / 1000.0
    true_tia = sitk.GetImageFromArray(sitk.GetArrayFromImage(true_map) * np.float32(v_mL))
    true_tia.CopyInformation(tia_map)
    assert sitk.GetArrayViewFromImage(true_tia).sum() == pytest.approx(sum(truth[r.name] for r in seg.table), rel=1e-3)
    settings = settings_from_parameters({})
    _, stats_pipe = dose_from_tia(tia_map, seg, density, settings=settings)
    _, stats_true = dose_from_tia(true_tia, seg, density, settings=settings)
    pipe = {s.region: s for s in stats_pipe}
    true = {s.region: s for s in stats_true}

    def region_tia(img, name):  # TIA inside the region, both maps resampled the same way onto the label grid
        on_labels = sitk.Resample(img, seg.image, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
        arr = sitk.GetArrayViewFromImage(on_labels)
        labels = [r.label for r in seg.table if r.name == name or r.group == name]
        return float(arr[np.isin(lab, labels)].sum())

    checked = 0
    # The uptake organs over 100 mL. Left out, as docs/dose.md records: the urinary bladder (149 mL), whose
    # filling kinetics and spill-in make its pipeline TIA 40 % high with a steep gradient across its wall (dose
    # and TIA ratios then differ by 4 %), and the lungs, whose dose is mostly cross-dose from their neighbours.
    for name in ("liver", "spleen", "kidney_left", "kidney_right"):
        if regions.get(name, {"volume_mL": 200})["volume_mL"] < 100:
            continue
        dose_ratio = pipe[name].mean_dose_Gy / true[name].mean_dose_Gy
        tia_ratio = region_tia(tia_map, name) / region_tia(true_tia, name)
        assert dose_ratio == pytest.approx(tia_ratio, rel=0.01), name
        checked += 1
    assert checked == 4


def test_fits_recover_the_true_tia_after_partial_volume_correction(sample_run, tmp_path):
    folder, out, patient = sample_run
    truth = patient.truth["cycles"][0]["tia_Bq_h"]
    fits = {r["region"]: float(r["tia_Bq_h"]) for r in read_csv(out / "fits.csv")}
    for organ in ("liver", "spleen", "kidney_left", "kidney_right", "parotid_left", "parotid_right"):
        assert fits[organ] == pytest.approx(truth[organ], rel=0.05), organ  # GTM (default)
    for lesion in ("lesion_node_1", "lesion_bone_1"):
        assert fits[lesion] == pytest.approx(truth[lesion], rel=0.08), lesion
    # the camera's recovery curve (calibration store) corrects the kidneys too, but not spill-in
    assert main(["run", str(folder), "--out", str(tmp_path / "rc"), "--parameters",
                 str(_write_json(tmp_path / "p.json", {"partial_volume": "recovery"}))]) == 0
    run = json.loads((tmp_path / "rc" / "run.json").read_text())
    assert "recovery_curve" in run["stages"]["tac"]  # the phantom's store carries its camera's curve
    rc = {r["region"]: float(r["tia_Bq_h"]) for r in read_csv(tmp_path / "rc" / "fits.csv")}
    for organ in ("kidney_left", "kidney_right"):
        assert rc[organ] == pytest.approx(truth[organ], rel=0.05), organ


def _write_json(path, doc):
    path.write_text(json.dumps(doc))
    return path


def test_bad_settings_are_refused_by_name(tmp_path):
    with pytest.raises(InputError, match=r"unknown parameter\(s\) \['dose_mthod'\]"):
        settings_from_parameters({"dose_mthod": "led"})
    with pytest.raises(InputError, match="dose_method"):
        settings_from_parameters({"dose_method": "monte-carlo"})
    for key, bad in (("kernel_energy", "mcnp"), ("red_marrow", "biopsy"), ("spect_interpolation", "sinc")):
        with pytest.raises(InputError, match=key):
            settings_from_parameters({key: bad})
    assert settings_from_parameters({"kernel_energy": "table"}).kernel_energy == "table"
    assert main(["run", str(tmp_path / "missing"), "--out", str(tmp_path / "o"), "--kernel-energy", "table"]) == 2
    assert main(["run", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2



def test_dicom_patient_gets_an_rt_dose_on_its_ct_frame_of_reference(tmp_path):
    import pydicom

    patient = generate_patient("small", seed=2, timepoints_h=(5.0, 24.0, 96.0), with_pet=False)
    # paths with spaces (issue 16 item 6: the CT path was split on spaces and rtdose/ silently left out)
    folder = write_patient_folder(patient, tmp_path / "my patient")  # DICOM and NIfTI
    out = tmp_path / "dose results"
    assert main(["run", str(folder), "--out", str(out), "--no-align"]) == 0
    (rt,) = (out / "rtdose").glob("*.dcm")
    ds = pydicom.dcmread(rt)
    ct_first = sorted((folder / "dicom" / "cycle1" / "tp1" / "CT").glob("*.dcm"))[0]
    ct = pydicom.dcmread(ct_first, stop_before_pixels=True)
    assert ds.FrameOfReferenceUID == ct.FrameOfReferenceUID and ds.StudyInstanceUID == ct.StudyInstanceUID
    assert ds.DoseUnits == "GY" and ds.PatientID == ct.PatientID
    dose_nifti = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "dose_Gy.nii.gz")))
    dose_rt = ds.pixel_array.astype(np.float64) * float(ds.DoseGridScaling)
    assert dose_rt.shape == dose_nifti.shape
    np.testing.assert_allclose(dose_rt, dose_nifti, atol=float(ds.DoseGridScaling))  # 16-bit quantisation


def test_partial_volume_corrected_organ_doses_lie_between_electron_deposition_and_all_energy(sample_run):
    """For organs well above the electron range the absorbed dose lies between the electron local
    deposition of the true TIA (photons all escape) and that plus all photon energy (photons all
    absorbed: at most 35.1/147.9 = +23.7 %, ICRP-107); a few % of margin for the fit below."""
    _, out, patient = sample_run
    led = patient.truth["cycles"][0]["dose_Gy"]
    rows = {r["region"]: r for r in read_csv(out / "doses.csv")}
    for organ in ("liver", "spleen", "kidney_left", "kidney_right"):
        assert rows[organ]["dose_method"] == "kernel+gtm-pvc"
        ratio = float(rows[organ]["dose_Gy"]) / led[organ]
        assert 0.97 <= ratio <= 1.237 + 0.03, (organ, ratio)
        assert float(rows[organ]["map_mean_dose_Gy"]) < float(rows[organ]["dose_Gy"])
    assert float(rows["kidney_left"]["bed_Gy"]) > float(rows["kidney_left"]["dose_Gy"])


def test_like_for_like_truth_comparison_organs_at_risk_and_red_marrow(sample_run):
    """Against the true TIA through the same kernel physics (truth.json dose_kernel_Gy), the reported
    dose of every organ at risk lies within ±20 % (or its row names the cause), and the reported
    red marrow (image-based L2–L4 by default) is 0.02–0.05 Gy/GBq and within ±25 % of its truth."""
    from LuDosimetryLib.phantom.comparison import truth_comparison_rows
    from LuDosimetryLib.results import read_doses_csv

    _, out, patient = sample_run
    rows = {r["region"]: r for r in truth_comparison_rows(patient.truth, read_csv(out / "fits.csv"),
                                                           read_doses_csv(out / "doses.csv"))}
    for organ in ("kidney_left", "kidney_right", "parotid_left", "parotid_right", "submandibular_left",
                  "submandibular_right", "lacrimal_left", "lacrimal_right", "liver", "spleen"):
        r = rows[organ]
        assert 0.8 <= r["dose_ratio"] <= 1.2 or r["cause"], (organ, r["dose_ratio"])
        assert 0.85 <= r["dose_ratio"] <= 1.15, (organ, r["dose_ratio"])  # what this phantom reaches
    marrow = rows["red_marrow"]
    assert marrow["dose_method"] == "red_marrow_l2l4"
    assert 0.02 <= marrow["dose_Gy"] / 7.4 <= 0.05
    assert 0.75 <= marrow["dose_ratio"] <= 1.25, marrow["dose_ratio"]
    run = json.loads((out / "run.json").read_text())
    assert run["stages"]["red_marrow"]["reported"] == "red_marrow_l2l4"
    assert run["stages"]["dose"]["kernel_energy"] == "icrp107" and "ICRP-107" in (out / "report.html").read_text()
    messages = [(w["stage"], w["source"], w["message"]) for w in run["warnings"]]
    assert len(messages) == len(set(messages))


def _walk_json(node, key=""):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _walk_json(v, k)
    elif isinstance(node, list):
        for v in node:
            yield from _walk_json(v, key)
    else:
        yield key, node


def test_no_result_file_holds_a_relative_uncertainty_above_10_or_a_tia_bound_above_the_physical_limit(sample_run):
    """Issue 15: scan tac.csv, fits.csv, doses.csv, run.json and report.html of the run. Before, the renal
    pelvis showed a relative uncertainty of 4e46 and an 'upper bound' of 1.3e55 Bq·h."""
    import math
    import re

    from LuDosimetryLib.nuclides import get_nuclide

    _, out, _ = sample_run
    run = json.loads((out / "run.json").read_text())
    limit = run["stages"]["ingest"]["injected_activity_Bq"] / get_nuclide("Lu-177").decay_constant_per_h
    for name in ("tac.csv", "fits.csv", "doses.csv"):
        for row in read_csv(out / name):
            for col, cell in row.items():
                if "rel_uncertainty" in col and cell:
                    assert 0 <= float(cell) <= 10, (name, row["region"], col, cell)
                if col.startswith("tia_") and col.endswith("_Bq_h") and cell:
                    assert float(cell) <= limit, (name, row["region"], col, cell)
                if col == "flags":
                    assert "[" not in cell and "'" not in cell, (name, row["region"], cell)
    fits = {r["region"]: r for r in read_csv(out / "fits.csv")}
    for region, r in fits.items():
        if "ci_unbounded" in r["flags"].split(";"):
            assert r["tia_ci95_high_Bq_h"] == "" and r["tia_rel_uncertainty"] == "", region
    scanned = 0
    for key, value in _walk_json(run):
        if isinstance(value, float) and (key.endswith("_rel") or "rel_uncertainty" in key):
            scanned += 1
            assert value <= 10 or key in ("input_rel",), (key, value)
        if isinstance(value, float) and key.startswith("tia_") and key.endswith("Bq_h"):
            assert value <= limit, (key, value)
    assert scanned > 100
    html = re.sub(r"data:[^\"')\s]+", "", (out / "report.html").read_text())  # embedded images are not numbers
    numbers = [float(x) for x in re.findall(r"(?<![\w.#-])\d+(?:\.\d+)?(?:e[+-]?\d+)?(?![\w.])", html)]
    assert numbers and max(numbers) <= limit
    assert not any(math.isinf(x) for x in numbers)
    # the renal pelvis, unbounded, is reported as such
    assert "ci_unbounded" in fits["renal_pelvis_left"]["flags"]


def test_kidney_uncertainty_holds_every_component_of_the_eanm_budget(sample_run):
    """fits.csv, doses.csv and run.json carry calibration, recovery, volume, registration and fit terms."""
    _, out, _ = sample_run
    run = json.loads((out / "run.json").read_text())
    kid = run["stages"]["uncertainty"]["regions"]["kidney_left"]
    comps = kid["components"]
    assert set(comps) == {"calibration", "recovery", "volume", "registration", "counting_fit"}
    assert all(comps[c]["tia_rel"] > 0 for c in comps)
    assert comps["calibration"]["shared"] and comps["recovery"]["shared"]
    assert not any(comps[c]["shared"] for c in ("volume", "registration", "counting_fit"))
    assert "calibration" in kid["defaults"]  # the synthetic store states no sensitivity uncertainty
    fit = {r["region"]: r for r in read_csv(out / "fits.csv")}["kidney_left"]
    assert float(fit["tia_rel_uncertainty"]) == pytest.approx(kid["tia_rel"])
    assert float(fit["tia_rel_uncertainty"]) > float(fit["tia_fit_rel_uncertainty"])
    assert kid["tia_rel"] ** 2 == pytest.approx(kid["tia_shared_rel"] ** 2 + kid["tia_independent_rel"] ** 2)
    dose = {r["region"]: r for r in read_csv(out / "doses.csv")}["kidney_left"]
    assert float(dose["dose_rel_uncertainty"]) == pytest.approx(kid["dose_rel"])
    # the ledger's inputs: shared (calibration, recovery) and independent parts of the same total
    assert float(dose["dose_rel_uncertainty_shared"]) ** 2 + float(dose["dose_rel_uncertainty_independent"]) ** 2 \
        == pytest.approx(float(dose["dose_rel_uncertainty"]) ** 2)
    assert float(dose["dose_ci95_low_Gy"]) < float(dose["dose_ci95_high_Gy"])


def test_unaligned_run_uses_the_same_resampling_and_shows_the_motion(sample_run, tmp_path):
    """align=False: the same SPECT interpolation (B-spline, no negative activity) with identities, warned by
    name; with kidney motion the unaligned kidney TIA is further from the truth than the aligned one."""
    folder, out, patient = sample_run
    assert main(["run", str(folder), "--out", str(tmp_path / "na"), "--parameters",
                 str(_write_json(tmp_path / "p.json", {"align": False}))]) == 0
    run = json.loads((tmp_path / "na" / "run.json").read_text())
    assert any("timepoints not aligned" in w["message"] for w in run["warnings"])
    assert "alignment" not in run["stages"]
    truth = patient.truth["cycles"][0]["tia_Bq_h"]
    tia = {d: {r["region"]: float(r["tia_Bq_h"]) for r in read_csv(d / "fits.csv")} for d in (out, tmp_path / "na")}
    err = {d: abs(t["kidney_left"] / truth["kidney_left"] - 1) for d, t in tia.items()}
    assert err[tmp_path / "na"] > err[out]
