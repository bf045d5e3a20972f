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
    assert main(["run", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2



def test_dicom_patient_gets_an_rt_dose_on_its_ct_frame_of_reference(tmp_path):
    import pydicom

    patient = generate_patient("small", seed=2, timepoints_h=(5.0, 24.0, 96.0), with_pet=False)
    folder = write_patient_folder(patient, tmp_path / "patient")  # DICOM and NIfTI
    assert main(["run", str(folder), "--out", str(tmp_path / "out"), "--no-align"]) == 0
    (rt,) = (tmp_path / "out" / "rtdose").glob("*.dcm")
    ds = pydicom.dcmread(rt)
    ct_first = sorted((folder / "dicom" / "cycle1" / "tp1" / "CT").glob("*.dcm"))[0]
    ct = pydicom.dcmread(ct_first, stop_before_pixels=True)
    assert ds.FrameOfReferenceUID == ct.FrameOfReferenceUID and ds.StudyInstanceUID == ct.StudyInstanceUID
    assert ds.DoseUnits == "GY" and ds.PatientID == ct.PatientID
    dose_nifti = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "out" / "dose_Gy.nii.gz")))
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
