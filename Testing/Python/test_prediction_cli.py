"""``ludosimetry predict``: registered, refuses to overwrite, names what it needs."""

import importlib.util

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
    (the PET has its own pose): doses within 5 % of the truth, doses.csv in the results schema, run.json
    with every parameter, report, voxel comparison files."""
    import json

    import SimpleITK as sitk

    from LuDosimetryLib.phantom import generate_patient, write_patient_folder
    from LuDosimetryLib.phantom.kinetics import LU_KINETICS
    from LuDosimetryLib.results import DOSES_COLUMNS, read_csv

    p = generate_patient("small", seed=0, pet_mismatch=0.0)
    folder = write_patient_folder(p, tmp_path / "patient", dicom=False)
    pop = tmp_path / "pop.csv"  # the synthetic world's population kinetics
    pop.write_text("key,effective_half_life_h,uptake_half_life_h,status,source\n" + "".join(
        f"{k.name},{1 / (1 / k.washout_half_life_h + 1 / 159.528)},{k.uptake_half_life_h},test,phantom\n"
        for k in LU_KINETICS) + "default_organ,40,1,test,t\ndefault_lesion,80,2,test,t\n")
    from prediction_helpers import true_dose_map

    sitk.WriteImage(true_dose_map(p), str(tmp_path / "dose_Gy.nii.gz"))
    out = tmp_path / "out"
    assert main(["predict", str(folder), "--out", str(out), "--pet-recovery", "gtm", "--pet-fwhm-mm", "5.5",
                 "--measured-dose", str(tmp_path / "dose_Gy.nii.gz"),
                 "--population-table", str(pop),
                 "--density", str(folder / "labels" / "density.nii.gz"), "--lesion-dose-model", "led"]) == 0
    rows = {r["region"]: r for r in read_csv(out / "doses.csv")}
    assert list(next(iter(rows.values())))[: len(DOSES_COLUMNS)] == list(DOSES_COLUMNS)
    truth = p.truth["cycles"][0]
    for name in ("liver", "kidney_left", "parotid_left", "lesion_node_1"):
        assert float(rows[name]["dose_Gy"]) == pytest.approx(truth["dose_Gy"][name], rel=0.05), name
    run = json.loads((out / "run.json").read_text())
    prm = run["parameters"]["prediction"]
    for key in ("ligand_uptake_ratio", "tumour_sink_factor", "peptide_amount_ug", "pet_to_therapy_interval_h",
                "pet_recovery", "spect_recovery", "population_table"):
        assert key in prm
    assert prm["pet_to_therapy_interval_h"] > 7 * 24 and prm["therapy_activity_GBq_used"] == pytest.approx(7.4)
    assert run["stages"]["prediction"]["pet_registration"]["bone_dice"] > 0.8
    assert "Prediction from the pre-therapy PET" in (out / "report.html").read_text()
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
