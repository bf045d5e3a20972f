"""``ludosimetry predict``: registered, refuses to overwrite, names what it needs."""

import importlib.util
import json

import numpy as np
import pytest

from LuDosimetryLib.cli import COMMANDS, main


def test_predict_is_a_command():
    assert "predict" in COMMANDS


def test_existing_output_is_not_overwritten_without_force(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    assert main(["predict", str(tmp_path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert str(out) in err and "--force" in err
    assert (out / "keep.txt").read_text() == "x"


def test_an_unreadable_patient_is_one_line_naming_what_is_missing(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["predict", str(empty), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    if importlib.util.find_spec("LuDosimetryLib.ingest") is None:
        assert "needs LuDosimetryLib.ingest" in err
    else:  # ingest present: it names the folder it could not read
        assert str(empty) in err
    assert not (tmp_path / "o").exists()


def test_predict_on_the_synthetic_patient_folder(tmp_path):
    """Through ingest (NIfTI route) and the rigid PET/CT → SPECT/CT registration of the alignment module
    (the PET has its own pose): doses through the measured route's dose engine within 8 % of the kernel
    dose of the true TIA (the engine scales the soft-tissue kernel dose to the CT density), doses.csv in
    the reported-dose convention, run.json with every parameter and the model, report with the dynamic
    coverage, pet_features.csv, voxel comparison files."""
    import json

    import SimpleITK as sitk

    from LuDosimetryLib.phantom import generate_patient, write_patient_folder
    from LuDosimetryLib.phantom.kinetics import LU_KINETICS
    from LuDosimetryLib.prediction.pipeline import PREDICTION_DOSE_COLUMNS
    from LuDosimetryLib.results import read_csv

    p = generate_patient("small", seed=0, pet_mismatch=0.0)
    folder = write_patient_folder(p, tmp_path / "patient", dicom=False)
    pop = tmp_path / "pop.csv"  # the synthetic world's population kinetics
    pop.write_text("key,effective_half_life_h,uptake_half_life_h,status,source\n" + "".join(
        f"{k.name},{1 / (1 / k.washout_half_life_h + 1 / 159.528)},{k.uptake_half_life_h},test,phantom\n"
        for k in LU_KINETICS) + "default_organ,40,1,test,t\ndefault_lesion,80,2,test,t\n")
    from prediction_helpers import true_dose_map, true_tia_map

    from LuDosimetryLib.dose.convolution import tia_per_voxel
    from LuDosimetryLib.model import Segmentation
    from LuDosimetryLib.pipeline import region_tia_from_map

    true_map = true_dose_map(p)
    sitk.WriteImage(true_map, str(tmp_path / "dose_Gy.nii.gz"))
    on_labels = sitk.GetArrayFromImage(sitk.Resample(true_map, p.labels, sitk.Transform(), sitk.sitkLinear, 0.0))
    lab = sitk.GetArrayFromImage(p.labels)
    leaves = {g: [r.label for r in rs] for g, rs in p.label_table.groups().items()}
    conc = true_tia_map(p)
    tia_vox = sitk.GetImageFromArray(tia_per_voxel(sitk.GetArrayFromImage(conc), conc.GetSpacing()))
    tia_vox.CopyInformation(conc)
    map_tia = region_tia_from_map(tia_vox, Segmentation(p.labels, p.label_table))
    true_tia = p.truth["cycles"][0]["tia_Bq_h"]
    out = tmp_path / "out"
    assert main(["predict", str(folder), "--out", str(out), "--pet-recovery", "gtm", "--pet-fwhm-mm", "5.5",
                 "--measured-dose", str(tmp_path / "dose_Gy.nii.gz"),
                 "--population-table", str(pop),
                 "--density", str(folder / "labels" / "density.nii.gz"), "--lesion-dose-model", "led"]) == 0
    rows = {r["region"]: r for r in read_csv(out / "doses.csv")}
    assert list(next(iter(rows.values()))) == list(PREDICTION_DOSE_COLUMNS)
    for name in ("liver", "kidney_left", "parotid_left", "lesion_node_1"):
        labels = leaves.get(name) or [p.label_table.by_name(name).label]
        # the doses.csv convention applied to the truth: true kernel map mean × true TIA / the map's TIA there
        tia = true_tia.get(name) or sum(true_tia[r.name] for r in p.label_table if r.label in labels)
        true_kernel = float(on_labels[np.isin(lab, labels)].mean()) * tia / map_tia[name]
        assert rows[name]["dose_method"] == "kernel+gtm-pvc"
        assert float(rows[name]["dose_Gy"]) == pytest.approx(true_kernel, rel=0.08), name
    run = json.loads((out / "run.json").read_text())
    prm = run["parameters"]["prediction"]
    for key in ("ligand_uptake_ratio", "tumour_sink_factor", "peptide_amount_ug", "pet_to_therapy_interval_h",
                "pet_recovery", "spect_recovery", "population_table"):
        assert key in prm
    assert prm["pet_to_therapy_interval_h"] > 7 * 24 and prm["therapy_activity_GBq_used"] == pytest.approx(7.4)
    assert run["stages"]["prediction"]["pet_registration"]["bone_dice"] > 0.8
    html = (out / "report.html").read_text()
    assert "Prediction from the pre-therapy PET" in html and "Dynamic field of view" in html
    assert prm["model"] == "population" and run["stages"]["prediction"]["prediction_model"] == "population"
    cover = run["stages"]["prediction"]["dynamic_fov"]
    assert "kidney_cortex_left" in cover["covered"] and "liver" in cover["partly"] and "parotid_left" in cover["not"]
    feats = {r["region"]: r for r in read_csv(out / "pet_features.csv")}
    assert feats["kidney_cortex_left"]["patlak_ki_per_min"] and feats["liver"]["uptake_rate_fit_per_h"]
    assert feats["parotid_left"]["dynamic_fov"] == "not" and not feats["parotid_left"]["uptake_rate_fit_per_h"]
    gamma = {(r["region"], r["criteria"]): float(r["pass_rate"]) for r in read_csv(out / "gamma_pass_rates.csv")
             if r["pass_rate"]}
    assert gamma[("liver", "20%/10mm region, threshold 10% (region)")] > 0.95
    for name in ("predicted_dose_Gy.nii.gz", "dose_difference_Gy.nii.gz", "dvh_overlay.png"):
        assert (out / name).is_file()
    assert main(["predict", str(folder), "--out", str(out)]) == 2  # no overwrite without --force


def test_a_population_table_from_the_patient_folder_is_refused(tmp_path, capsys):
    patient = tmp_path / "patient"
    patient.mkdir()
    table = patient / "my_halflives.csv"
    table.write_text("key,effective_half_life_h,uptake_half_life_h\nkidney,40,1\n")
    assert main(["predict", str(patient), "--out", str(tmp_path / "o"), "--population-table", str(table)]) == 2
    assert "circular" in capsys.readouterr().err


def test_an_unreadable_transform_file_is_refused_before_reading_the_patient(tmp_path, capsys):
    bad = tmp_path / "pet_to_ref.tfm"
    bad.write_text("not a transform")
    assert main(["predict", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o"), "--transform", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "cannot read the transform" in err and str(bad) in err


def test_kinetic_and_calibrated_models_on_the_sample_patient(tmp_path):
    """Issue 18 on the small sample patient (seed 0, the default 68Ga/177Lu mismatch the models do not know):
    the calibrated model, fitted on a synthetic cohort that excludes the patient (cheap path, seed 7, 20
    patients), and the kinetic model with that cohort's lesion half-lives, against the like-for-like truth
    (dose_kernel_Gy: the true TIA through the same kernel physics). Measured: calibrated 0.97–1.22 for
    kidneys, salivary glands and lesions ≥ 1 mL (kidney_left 1.22: its fitted uptake rate is 16 % low);
    kinetic 0.77–1.20 except lesion_node_2 1.30 (its +25 % mismatch), so the kinetic model is held to
    0.75–1.33 only."""
    from LuDosimetryLib.phantom import generate_patient, write_patient_folder
    from LuDosimetryLib.phantom.cohort_kinetics import SyntheticFeatureSettings, synthetic_feature_table
    from LuDosimetryLib.prediction.models import cohort_lesion_table, fit_calibrated_model
    from LuDosimetryLib.prediction.population import load_population_table, write_population_table
    from LuDosimetryLib.results import read_csv

    p = generate_patient("small", seed=0)
    folder = write_patient_folder(p, tmp_path / "patient", dicom=False)
    cohort = synthetic_feature_table(SyntheticFeatureSettings(n_patients=20, seed=7))
    base = load_population_table(None)
    fit_calibrated_model(cohort, base, source="synthetic cohort, seed 7").write(tmp_path / "model.json")
    write_population_table(cohort_lesion_table(base, cohort), tmp_path / "pop.csv")
    truth = p.truth["cycles"][0]["dose_kernel_Gy"]
    regions = ("kidney_left", "kidney_right", "parotid_left", "parotid_right", "submandibular_left",
               "submandibular_right", "lesion_bone_1", "lesion_bone_2", "lesion_bone_3", "lesion_node_1",
               "lesion_node_2")
    ratios = {}
    for model, extra in (("calibrated", ["--calibrated-model", str(tmp_path / "model.json")]),
                         ("kinetic", ["--population-table", str(tmp_path / "pop.csv")])):
        out = tmp_path / model
        assert main(["predict", str(folder), "--out", str(out), "--model", model, *extra]) == 0
        rows = {r["region"]: r for r in read_csv(out / "doses.csv")}
        ratios[model] = {n: float(rows[n]["dose_Gy"]) / truth[n] for n in regions}
        assert all(rows[n]["prediction_model"] == model for n in regions)
    cal = {r["region"]: r for r in read_csv(tmp_path / "calibrated" / "doses.csv")}
    for n in regions:
        assert 0.8 <= ratios["calibrated"][n] <= 1.25, (n, ratios)
        assert 0.75 < ratios["kinetic"][n] < 1.33, (n, ratios)
        # the calibrated dose carries its 95 % prediction interval, which holds the truth
        assert float(cal[n]["dose_ci95_low_Gy"]) < truth[n] < float(cal[n]["dose_ci95_high_Gy"]), n
    assert cal["kidney_left"]["dose_method"] == "calibrated_regression"


def test_pet_resolution_comes_from_the_nifti_pet_sidecar_for_run_and_predict_alike(tmp_path):
    """One reader (prediction.parameters.pet_fwhm_from_sidecars) for `predict` and the prediction of `run`."""
    from LuDosimetryLib.prediction.parameters import PredictionParameters, pet_fwhm_from_sidecars

    pet = tmp_path / "nifti" / "pet"
    pet.mkdir(parents=True)
    assert pet_fwhm_from_sidecars(tmp_path) == (None, "")
    (pet / "a_dynamic.json").write_text(json.dumps({"resolution_fwhm_mm": True}))  # not a number: skipped
    (pet / "b_static.json").write_text(json.dumps({"resolution_fwhm_mm": 6.2}))
    fwhm, source = pet_fwhm_from_sidecars(tmp_path)
    assert (fwhm, source) == (6.2, "sidecar b_static.json")
    p = PredictionParameters(pet_fwhm_mm=fwhm, pet_fwhm_source=source)
    assert (p.pet_fwhm_mm, p.pet_fwhm_source) == (6.2, "sidecar b_static.json")
    assert PredictionParameters(pet_fwhm_mm=None, pet_fwhm_source="").pet_fwhm_source == "default"
