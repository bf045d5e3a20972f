"""``ludosimetry calibrate``: scans written by the phantom, measured, stored by system key, refused for another."""

import json
import shutil
from datetime import datetime, timedelta

import numpy as np
import pytest
import SimpleITK as sitk

from LuDosimetryLib.calibration.recovery import RecoveryCurve
from LuDosimetryLib.calibration.store import CalibrationStore
from LuDosimetryLib.cli import main
from LuDosimetryLib.phantom.calibration_scans import CalibrationScanSettings, write_calibration_scans

SETTINGS = CalibrationScanSettings(seed=5)


@pytest.fixture(scope="module")
def scans(tmp_path_factory):
    out = tmp_path_factory.mktemp("calscans")
    truth = write_calibration_scans(out, SETTINGS, dicom=False)
    return out, truth


def _calibrate(*args):
    return main(["calibrate", *map(str, args)])


def test_calibrate_stores_sensitivity_dead_time_and_recovery_keyed_on_the_camera(scans, tmp_path, capsys):
    out, truth = scans
    store = tmp_path / "calibration.json"
    decay = sorted((out / "decay").iterdir())
    assert _calibrate("sensitivity", out / "cylinder", "--store", store, "--fwhm-mm", 11,
                      "--decay-series", *decay) == 0
    e = CalibrationStore.load(store).lookup(truth["camera_key"])
    assert e.sensitivity_cps_per_MBq == pytest.approx(SETTINGS.sensitivity_cps_per_MBq, rel=0.02)
    assert e.dead_time_s == pytest.approx(SETTINGS.dead_time_s, rel=0.10)
    assert e.date == truth["scans"]["cylinder"]["acquisition_start"][:10]
    res = tmp_path / "res"
    assert _calibrate("recovery", out / "spheres", "--store", store, "--spheres", out / "spheres" / "spheres.json",
                      "--sphere-to-background", 8, "--fwhm-mm", 11, "--out", res) == 0
    e2 = CalibrationStore.load(store).lookup(truth["camera_key"])
    curve = RecoveryCurve.from_dict(e2.recovery)
    assert e2.sensitivity_cps_per_MBq == e.sensitivity_cps_per_MBq and e2.dead_time_s == e.dead_time_s
    assert 0.6 < curve.coefficient(20.0)[0] < 0.8
    for name in ("recovery.json", "recovery.csv", "recovery.png", "report.html", "run.json"):
        assert (res / name).is_file()
    # the 10-mm sphere is flagged unresolved in the table and in run.json
    assert "unresolved" in (res / "recovery.csv").read_text()
    assert any("unresolved" in w["message"] for w in json.loads((res / "run.json").read_text())["warnings"])
    # outputs are not overwritten without --force; the error names the folder
    capsys.readouterr()
    assert _calibrate("recovery", out / "spheres", "--store", store, "--spheres", out / "spheres" / "spheres.json",
                      "--sphere-to-background", 8, "--fwhm-mm", 11, "--out", res) == 2
    assert str(res) in capsys.readouterr().err
    # a re-calibration 10 % lower is stored with a drift warning
    a = truth["scans"]["cylinder"]["assay_activity_Bq"] / 1e6 * 1.1
    assert _calibrate("sensitivity", out / "cylinder", "--store", store, "--fwhm-mm", 11,
                      "--assay-activity-MBq", a, "--date", "2026-02-01") == 0
    err = capsys.readouterr().err
    assert "differs by -9." in err
    latest = CalibrationStore.load(store).lookup(truth["camera_key"])
    assert latest.dead_time_s == e.dead_time_s  # τ taken from the store
    assert latest.recovery is not None


def test_recovery_from_absolute_concentrations_agrees_with_the_ratio_method(scans, tmp_path):
    out, truth = scans
    store = tmp_path / "calibration.json"
    assert _calibrate("sensitivity", out / "cylinder", "--store", store, "--fwhm-mm", 11,
                      "--dead-time-s", SETTINGS.dead_time_s) == 0
    sph = truth["scans"]["spheres"]
    common = ("--store", store, "--spheres", out / "spheres" / "spheres.json", "--fwhm-mm", 11)
    assert _calibrate("recovery", out / "spheres", *common, "--sphere-to-background", 8) == 0
    by_ratio = RecoveryCurve.from_dict(CalibrationStore.load(store).lookup(truth["camera_key"]).recovery)
    assert _calibrate("recovery", out / "spheres", *common,
                      "--sphere-conc-kBq-per-mL", sph["sphere_conc_Bq_per_mL"] / 1e3,
                      "--background-conc-kBq-per-mL", sph["background_conc_Bq_per_mL"] / 1e3) == 0
    absolute = RecoveryCurve.from_dict(CalibrationStore.load(store).lookup(truth["camera_key"]).recovery)
    for v in (3.0, 8.0, 20.0):
        assert absolute.coefficient(v)[0] == pytest.approx(by_ratio.coefficient(v)[0], rel=0.03)


def test_calibrate_dead_time_adds_tau_to_the_systems_latest_entry(scans, tmp_path, capsys):
    out, truth = scans
    store = tmp_path / "calibration.json"
    decay = sorted((out / "decay").iterdir())
    # τ needs an entry of this system to add to
    assert _calibrate("dead-time", *decay, "--store", store) == 2
    assert "store is empty" in capsys.readouterr().err
    assert _calibrate("sensitivity", out / "cylinder", "--store", store, "--fwhm-mm", 11, "--dead-time-s", 0) == 0
    assert _calibrate("dead-time", *reversed(decay), "--store", store, "--out", tmp_path / "dt") == 0
    e = CalibrationStore.load(store).lookup(truth["camera_key"])
    assert e.dead_time_s == pytest.approx(SETTINGS.dead_time_s, rel=0.10)
    assert json.loads((tmp_path / "dt" / "dead_time.json").read_text())["max_loss_fraction"] > 0.2


def _other_system_copy(src, dst, **camera):
    shutil.copytree(src, dst)
    side = json.loads((dst / "nm.json").read_text())
    side["camera"].update(camera)
    (dst / "nm.json").write_text(json.dumps(side))
    return dst


@pytest.mark.parametrize(("field", "value", "named"), [
    ("collimator", "LEHR", "collimator 'LEHR' ≠ 'MEGP'"),
    ("reconstruction", "OSEM 8i16s", "reconstruction 'OSEM 8i16s'"),
    ("energy_windows_keV", [[102, 124]], "energy windows '102-124' ≠ '187.5-229.2'"),
])
def test_a_calibration_of_another_system_is_refused_naming_the_field(scans, tmp_path, capsys, field, value, named):
    out, _ = scans
    store = tmp_path / "calibration.json"
    assert _calibrate("sensitivity", out / "cylinder", "--store", store, "--fwhm-mm", 11) == 0
    other = _other_system_copy(out / "spheres", tmp_path / "other", **{field: value})
    capsys.readouterr()
    assert _calibrate("recovery", other, "--store", store, "--spheres", out / "spheres" / "spheres.json",
                      "--sphere-to-background", 8, "--fwhm-mm", 11) == 2
    assert named in capsys.readouterr().err


def test_missing_assay_time_is_refused_with_a_clear_message(scans, tmp_path, capsys):
    out, _ = scans
    scan = tmp_path / "cyl"
    shutil.copytree(out / "cylinder", scan)
    side = json.loads((scan / "nm.json").read_text())
    side["injection"]["datetime"] = None
    (scan / "nm.json").write_text(json.dumps(side))
    assert _calibrate("sensitivity", scan, "--store", tmp_path / "c.json", "--fwhm-mm", 11) == 2
    err = capsys.readouterr().err
    assert "assay_datetime: missing" in err and "--assay-time" in err
    assert not (tmp_path / "c.json").exists()


def test_dicom_calibration_scan_calibrates_and_is_read_back_by_ingest_with_the_stored_sensitivity(tmp_path):
    from LuDosimetryLib.calibration.store import CalibrationStore
    from LuDosimetryLib.ingest import load_patient
    from LuDosimetryLib.phantom.calibration_scans import cylinder_scan, write_scan

    st = CalibrationScanSettings(slices=40, matrix=48, seed=1)
    scan = cylinder_scan(st, length_mm=120.0, radius_mm=80.0)
    folder = write_scan(scan, tmp_path / "cyl", dicom=True, settings=st)
    assert len(list((folder / "dicom" / "CT").glob("*.dcm"))) == 40
    # calibrate reads the DICOM scan (ingest's header readers) as it reads the NIfTI one
    from_nifti = tmp_path / "nifti.json"
    assert _calibrate("sensitivity", folder, "--store", from_nifti, "--fwhm-mm", 11,
                      "--dead-time-s", st.dead_time_s) == 0
    store = tmp_path / "calibration.json"
    assert _calibrate("sensitivity", folder / "dicom", "--store", store, "--fwhm-mm", 11,
                      "--dead-time-s", st.dead_time_s) == 0
    s_dicom = CalibrationStore.load(store).entries[0]
    s_nifti = CalibrationStore.load(from_nifti).entries[0]
    assert s_dicom.camera_key == s_nifti.camera_key
    assert s_dicom.sensitivity_cps_per_MBq == pytest.approx(s_nifti.sensitivity_cps_per_MBq, rel=1e-4)
    assert s_dicom.sensitivity_cps_per_MBq == pytest.approx(st.sensitivity_cps_per_MBq, rel=0.02)
    # ingest: DICOM NM counts → Bq/mL with this store (dead time corrected with the stored τ)
    patient = load_patient(folder / "dicom", calibration_store=CalibrationStore.load(store))
    tp = patient.cycles[0].timepoints[0]
    total_Bq = float(np.asarray(sitk.GetArrayViewFromImage(tp.spect), dtype=float).sum()
                     * np.prod(tp.spect.GetSpacing()) / 1000.0)
    assert total_Bq == pytest.approx(scan.truth["mean_activity_during_acquisition_Bq"], rel=0.02)


def test_a_sensitivity_scan_with_the_assay_a_year_late_is_refused_not_stored(scans, tmp_path, capsys):
    # issue 16 item 3: stored 4.1e-16 cps/MBq, exit 0
    out, truth = scans
    store = tmp_path / "calibration.json"
    assay = datetime.fromisoformat(truth["scans"]["cylinder"]["assay_datetime"]) + timedelta(days=365)
    args = ["sensitivity", out / "cylinder", "--store", store, "--fwhm-mm", 11, "--assay-time", assay.isoformat()]
    assert _calibrate(*args) == 2
    err = capsys.readouterr().err
    assert "outside the plausible range" in err and "--accept-drift" in err and "Traceback" not in err
    assert not store.exists()
    assert _calibrate(*args, "--accept-drift") == 0
    assert "forced" in capsys.readouterr().err
    assert CalibrationStore.load(store).lookup(truth["camera_key"]).sensitivity_cps_per_MBq < 1e-10
