"""Ingest of a patient folder (DICOM built in the test with pydicom): numbers, times, provenance,
the NIfTI route, the inspect command, and every bad input of issue 3."""

from __future__ import annotations

import itertools
import json
import shutil
from datetime import datetime, timedelta

import numpy as np
import pytest
import SimpleITK as sitk
from ingest_builders import ct_series, nm_tomo, stored_values, write_series
from pydicom.uid import generate_uid

from LuDosimetryLib.calibration.store import CalibrationEntry, CalibrationStore
from LuDosimetryLib.cli import main
from LuDosimetryLib.errors import ConsistencyError, DicomError, InputError
from LuDosimetryLib.ingest import load_patient
from LuDosimetryLib.model import Camera
from LuDosimetryLib.results import RunRecord

INJ = datetime(2026, 3, 2, 9, 0, 0)
CAM = Camera("TESTVENDOR", "Symbia Intevo", "MEGP", ((187.2, 228.8),), "OSEM 4i8s AC SC")
SENS = 9.5  # cps/MBq
TAU = 2.0e-6  # s
FRAME_S, PROJ = 10.0, 60
SP = (4.0, 4.0, 4.0)
SHAPE = (12, 10, 10)  # k, j, i per bed


def _true_rate_fixed_point(m: float, tau: float) -> float:
    """n from m = n·exp(−nτ) by fixed-point iteration n ← m·exp(nτ) (independent of Lambert W)."""
    n = m
    for _ in range(200):
        n = m * np.exp(n * tau)
    return n


def write_label_table(root) -> None:
    """A label map (one kidney on the soft tissue of tp1's CT) and its labels.csv, so that run could start."""
    arr = np.zeros((20, 10, 10), np.uint8)
    arr[4:8, 3:6, 3:6] = 1
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing(SP)
    img.SetOrigin((-18.0, -18.0, 0.0))
    (root / "labels").mkdir(exist_ok=True)
    sitk.WriteImage(img, str(root / "labels" / "labels.nii.gz"))
    (root / "labels" / "labels.csv").write_text("label,name,side,kind,group\n"
                                                "1,kidney_cortex_left,left,organ,kidney_left\n")


def make_patient(root, *, bed_starts=None, tp2_start=INJ + timedelta(hours=25), tp2_time_only=True, **nm_kw):
    """tp1: two overlapping beds + CT; tp2: one bed + CT (injection time without date)."""
    rng = np.random.default_rng(7)
    study, for1, for2 = generate_uid(), generate_uid(), generate_uid()
    bed_starts = bed_starts or [INJ + timedelta(hours=5), INJ + timedelta(hours=5, minutes=25)]
    z0s = [0.0, 32.0]  # 12 slices of 4 mm: beds overlap on 4 slices (16 mm)
    truth = {}
    for b, (start, z0) in enumerate(zip(bed_starts, z0s), start=1):
        counts = rng.uniform(50, 400, SHAPE)
        ds = nm_tomo(counts, origin=(-18.0, -18.0, z0), spacing=SP, acq_start=start, frame_duration_s=FRAME_S,
                     projections=PROJ, injection=INJ, study_uid=study, for_uid=for1, **nm_kw)
        write_series(ds, root / "dicom" / "cycle1" / "tp1" / f"NM_bed{b}")
        truth[f"tp1_bed{b}"] = (stored_values(ds), start)
    hu = np.zeros((20, 10, 10))
    write_series(ct_series(hu, origin=(-18.0, -18.0, 0.0), spacing=SP, when=bed_starts[0], study_uid=study,
                           for_uid=for1), root / "dicom" / "cycle1" / "tp1" / "CT")
    if tp2_start is not None:
        counts = rng.uniform(20, 200, SHAPE)
        ds = nm_tomo(counts, origin=(-18.0, -18.0, 0.0), spacing=SP, acq_start=tp2_start, frame_duration_s=FRAME_S,
                     projections=PROJ, injection=INJ, for_uid=for2, time_only=tp2_time_only,
                     **{k: v for k, v in nm_kw.items() if k != "dose_MBq"})
        write_series(ds, root / "dicom" / "cycle1" / "tp2" / "NM_bed1")
        truth["tp2_bed1"] = (stored_values(ds), tp2_start)
        write_series(ct_series(hu[:12], origin=(-18.0, -18.0, 0.0), spacing=SP, when=tp2_start, for_uid=for2),
                     root / "dicom" / "cycle1" / "tp2" / "CT")
    store, _ = CalibrationStore().add(CalibrationEntry(CAM.key(), SENS, 0.02, TAU, date="2026-01-01",
                                                       source="test"))
    store.save(root / "calibration.json")
    return truth


def _expected_conc(counts: np.ndarray) -> np.ndarray:
    T = FRAME_S * PROJ
    m = counts.sum() / T
    f = _true_rate_fixed_point(m, TAU) / m
    return counts / T / SENS * f * 1e6 / (SP[0] * SP[1] * SP[2] / 1000.0)


def test_dicom_patient_loads_to_hand_computed_concentrations_and_times(tmp_path):
    truth = make_patient(tmp_path)
    rec = RunRecord("test")
    steps = []
    pat = load_patient(tmp_path, record=rec, progress=lambda f, m: steps.append(f))
    assert steps[-1] == 1.0 and all(b >= a for a, b in itertools.pairwise(steps))
    assert len(pat.cycles) == 1
    cyc = pat.cycles[0]
    assert cyc.administration.injection_datetime == INJ
    assert cyc.administration.injected_activity_Bq == pytest.approx(7400e6)
    assert "RadiopharmaceuticalStartDateTime (0018,1078)" in cyc.administration.provenance["injection_datetime"]
    assert [tp.label for tp in cyc.timepoints] == ["tp1", "tp2"]
    tp1, tp2 = cyc.timepoints
    assert len(tp1.beds) == 2 and len(tp2.beds) == 1
    for bed, key in zip(tp1.beds, ("tp1_bed1", "tp1_bed2")):
        counts, start = truth[key]
        # time p.i. to the second: start + half of 60 × 10 s
        assert bed.time_h * 3600 == pytest.approx((start - INJ).total_seconds() + 300.0, abs=1e-6)
        got = sitk.GetArrayFromImage(bed.image)
        exp = _expected_conc(counts)
        np.testing.assert_allclose(got, exp, rtol=2e-6)
        # one voxel by hand: 1 voxel, T = 600 s, S = 9.5 cps/MBq, V = 0.064 mL
        c = counts[3, 4, 5]
        m = counts.sum() / 600.0
        n = _true_rate_fixed_point(m, TAU)
        assert got[3, 4, 5] == pytest.approx(c / 600.0 / 9.5 * (n / m) * 1e6 / 0.064, rel=2e-6)
        assert "paralysable" in bed.provenance["dead_time"]
    # tp2: header has only RadiopharmaceuticalStartTime; its date comes from the cycle
    assert tp2.time_h * 3600 == pytest.approx(25 * 3600 + 300.0, abs=1e-6)
    # stitched: 20 slices; outside the overlap each bed's own value and time
    st = sitk.GetArrayFromImage(tp1.spect)
    assert st.shape == (20, 10, 10)
    np.testing.assert_allclose(st[:8], sitk.GetArrayFromImage(tp1.beds[0].image)[:8], rtol=1e-6)
    np.testing.assert_allclose(st[12:], sitk.GetArrayFromImage(tp1.beds[1].image)[4:], rtol=1e-6)
    tm = sitk.GetArrayFromImage(tp1.time_map_h)
    assert tm[0, 0, 0] == pytest.approx(tp1.beds[0].time_h, abs=1e-5)
    assert tm[-1, 0, 0] == pytest.approx(tp1.beds[1].time_h, abs=1e-5)
    assert tp1.beds[0].time_h < tm[10, 0, 0] < tp1.beds[1].time_h
    assert tp1.ct is not None and tp1.ct.GetSize() == (10, 10, 20)
    assert "paired by FrameOfReferenceUID" in tp1.provenance["ct"]
    assert np.allclose(sitk.GetArrayViewFromImage(tp1.ct), 0.0)
    assert rec.stages["ingest"]["series"]


def test_negative_spacing_and_bq_per_ml_nm_read_like_the_plain_layout(tmp_path):
    make_patient(tmp_path / "a", tp2_start=None)
    make_patient(tmp_path / "b", tp2_start=None, negative_spacing=True)
    pa, pb = load_patient(tmp_path / "a"), load_patient(tmp_path / "b")
    for ba, bb in zip(pa.cycles[0].timepoints[0].beds, pb.cycles[0].timepoints[0].beds):
        assert bb.image.GetOrigin() == pytest.approx(ba.image.GetOrigin())
        assert bb.image.GetDirection() == pytest.approx(ba.image.GetDirection())
        np.testing.assert_allclose(sitk.GetArrayFromImage(bb.image), sitk.GetArrayFromImage(ba.image), rtol=1e-6)


def test_images_already_in_bq_per_ml_are_taken_as_they_are(tmp_path):
    truth = make_patient(tmp_path, tp2_start=None, rwvm_bq_per_ml=True)
    pat = load_patient(tmp_path, calibration_store=CalibrationStore())  # no calibration needed
    bed = pat.cycles[0].timepoints[0].beds[0]
    np.testing.assert_allclose(sitk.GetArrayFromImage(bed.image), truth["tp1_bed1"][0], rtol=1e-6)
    assert "RealWorldValueMappingSequence" in bed.provenance["units"]


def _write_nifti_copy(root, truth):
    """The same data as NIfTI + sidecars (conventions.md keys)."""
    for key, (counts, start) in truth.items():
        tp, bed = key.split("_")
        img = sitk.GetImageFromArray(counts.astype(np.float32))
        img.SetSpacing(SP)
        z0 = 32.0 if bed == "bed2" else 0.0
        img.SetOrigin((-18.0, -18.0, z0))
        d = root / "nifti" / "cycle1" / tp
        d.mkdir(parents=True, exist_ok=True)
        sitk.WriteImage(img, str(d / f"nm_{bed}.nii.gz"))
        (d / f"nm_{bed}.json").write_text(json.dumps({
            "modality": "NM", "units": "counts", "decay_correction": "NONE", "acquisition_start": start.isoformat(),
            "duration_s": FRAME_S * PROJ, "injection": {"datetime": INJ.isoformat(), "activity_Bq": 7400e6,
                                                        "nuclide": "Lu-177", "ligand": "PSMA-617"},
            "camera": {"manufacturer": CAM.manufacturer, "model": CAM.model, "collimator": CAM.collimator,
                       "energy_windows_keV": [list(w) for w in CAM.energy_windows_keV],
                       "reconstruction": CAM.reconstruction}, "cycle": 1, "timepoint": tp}))


def test_nifti_route_gives_the_same_numbers_as_the_dicom_route(tmp_path):
    truth = make_patient(tmp_path)
    _write_nifti_copy(tmp_path, truth)
    pd = load_patient(tmp_path, route="dicom")
    pn = load_patient(tmp_path, route="nifti")
    for td, tn in zip(pd.cycles[0].timepoints, pn.cycles[0].timepoints):
        assert tn.time_h == pytest.approx(td.time_h, abs=1e-9)
        for bd, bn in zip(td.beds, tn.beds):
            assert bn.time_h == pytest.approx(bd.time_h, abs=1e-9)
            np.testing.assert_allclose(sitk.GetArrayFromImage(bn.image), sitk.GetArrayFromImage(bd.image), rtol=1e-6)
        np.testing.assert_allclose(sitk.GetArrayFromImage(tn.spect), sitk.GetArrayFromImage(td.spect), rtol=1e-6)


def test_inspect_command_prints_table_and_writes_run_json_once(tmp_path, capsys):
    make_patient(tmp_path / "p")
    out = tmp_path / "out"
    assert main(["inspect", str(tmp_path / "p"), "--out", str(out)]) == 2  # no segmentation: run would stop
    text = capsys.readouterr().out
    assert "[BLOCKING]" in text and "no segmentation found" in text and not out.exists()
    write_label_table(tmp_path / "p")
    assert main(["inspect", str(tmp_path / "p"), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "SPECT" in text and "cps/MBq" in text and "7400.0" in text
    doc = json.loads((out / "run.json").read_text())
    rows = doc["stages"]["ingest"]["series"]
    spect = [r for r in rows if r["kind"] == "SPECT"]
    assert len(spect) == 3 and all(r["sources"]["administration.injection_datetime"] for r in spect)
    assert spect[0]["time_h"] == pytest.approx(5 + 300 / 3600)
    assert main(["inspect", str(tmp_path / "p"), "--out", str(out)]) == 2  # no --force
    assert "run.json exists" in capsys.readouterr().err


def test_command_line_values_override_headers_with_their_source(tmp_path, capsys):
    make_patient(tmp_path / "p", tp2_start=None, dose_MBq=None)
    out = tmp_path / "o"
    write_label_table(tmp_path / "p")
    assert main(["inspect", str(tmp_path / "p"), "--injected-activity-MBq", "7000", "--sensitivity", "10",
                 "--out", str(out)]) == 0
    rows = json.loads((out / "run.json").read_text())["stages"]["ingest"]["series"]
    r = next(r for r in rows if r["kind"] == "SPECT")
    assert r["injected_activity_MBq"] == pytest.approx(7000)
    assert "command line --injected-activity-MBq" in r["sources"]["administration.injected_activity_Bq"]
    assert "command line --sensitivity" in r["sources"]["sensitivity_cps_per_MBq"]


def test_sidecar_supplies_net_activity_as_assay_minus_residual(tmp_path):
    make_patient(tmp_path, tp2_start=None, dose_MBq=None)
    (tmp_path / "dicom" / "ludosimetry.json").write_text(json.dumps({"injection": {
        "assay_activity_Bq": 7.5e9, "assay_datetime": "2026-03-02T08:00:00",
        "residual_activity_Bq": 1.0e8, "residual_datetime": "2026-03-02T10:00:00"}}))
    pat = load_patient(tmp_path)
    from LuDosimetryLib.nuclides import get_nuclide

    lam = get_nuclide("Lu-177").decay_constant_per_h
    exp = 7.5e9 * np.exp(-lam * 1.0) - 1.0e8 * np.exp(lam * 1.0)
    adm = pat.cycles[0].administration
    assert adm.injected_activity_Bq == pytest.approx(exp, rel=1e-12)
    assert "assay" in adm.provenance["injected_activity_Bq"] and "ludosimetry.json" in \
        adm.provenance["injected_activity_Bq"]


# --- bad input --------------------------------------------------------------------------------
def _nm_file(root, tp="tp1", bed=1):
    return root / "dicom" / "cycle1" / tp / f"NM_bed{bed}" / "IM_0000.dcm"


def test_missing_injection_time_is_refused_naming_file_and_tag(tmp_path):
    make_patient(tmp_path, tp2_start=None)
    import pydicom

    for b in (1, 2):
        f = _nm_file(tmp_path, bed=b)
        ds = pydicom.dcmread(f)
        item = ds.RadiopharmaceuticalInformationSequence[0]
        del item.RadiopharmaceuticalStartDateTime
        del item.RadiopharmaceuticalStartTime
        ds.save_as(f)
    with pytest.raises(DicomError, match=r"IM_0000\.dcm: RadiopharmaceuticalStartDateTime \(0018,1078\).*missing"):
        load_patient(tmp_path)


def test_missing_injected_activity_is_refused(tmp_path):
    make_patient(tmp_path, tp2_start=None, dose_MBq=None)
    with pytest.raises(DicomError, match=r"IM_0000\.dcm: RadionuclideTotalDose \(0018,1074\) is missing"):
        load_patient(tmp_path)


def test_unknown_units_are_refused(tmp_path):
    make_patient(tmp_path, tp2_start=None, units="GML")
    with pytest.raises(DicomError, match=r"IM_0000\.dcm: Units \(0054,1001\) is 'GML'; expected BQML or CNTS"):
        load_patient(tmp_path)


def test_counts_without_calibration_for_that_collimator_are_refused(tmp_path):
    make_patient(tmp_path, tp2_start=None, collimator="LEHR")
    with pytest.raises(InputError, match=r"IM_0000\.dcm: counts with no calibration.*collimator 'LEHR' ≠ 'MEGP'"):
        load_patient(tmp_path)


def test_timepoint_before_injection_is_refused(tmp_path):
    make_patient(tmp_path, tp2_start=None, bed_starts=[INJ - timedelta(hours=1), INJ + timedelta(hours=5)])
    with pytest.raises(ConsistencyError, match=r"IM_0000\.dcm: acquisition starts 2026-03-02T08:00:00.*before the "
                                               r"injection"):
        load_patient(tmp_path)


def test_duplicated_timepoint_is_refused(tmp_path):
    make_patient(tmp_path, tp2_start=INJ + timedelta(hours=5), tp2_time_only=False)
    with pytest.raises(ConsistencyError, match=r"cover the same field of view.*duplicated timepoint or bed"):
        load_patient(tmp_path)


def _ct_files(root):
    return sorted((root / "dicom" / "cycle1" / "tp1" / "CT").glob("*.dcm"))


@pytest.mark.parametrize(("edit", "pattern"), [
    ("spacing", r"inconsistent slice spacing: 5\.000 mm"),
    ("orientation", r"ImageOrientationPatient \(0020,0037\) is .* expected one orientation per series"),
    ("missing", r"1 missing slice\(s\) between .*IM_0004\.dcm .* and .*IM_0006\.dcm"),
])
def test_inconsistent_ct_geometry_is_refused(tmp_path, edit, pattern):
    import pydicom

    make_patient(tmp_path, tp2_start=None)
    files = _ct_files(tmp_path)
    if edit == "missing":
        files[5].unlink()
    else:
        ds = pydicom.dcmread(files[5])
        if edit == "spacing":
            ds.ImagePositionPatient[2] = float(ds.ImagePositionPatient[2]) + 1.0
        else:
            ds.ImageOrientationPatient = [1, 0, 0, 0, 0.9, 0.43588989]
        ds.save_as(files[5])
    with pytest.raises(ConsistencyError, match=pattern):
        load_patient(tmp_path)


def test_mixed_patients_are_refused(tmp_path):
    import pydicom

    make_patient(tmp_path, tp2_start=None)
    f = _nm_file(tmp_path, bed=2)
    ds = pydicom.dcmread(f)
    ds.PatientID = "OTHER"
    ds.save_as(f)
    with pytest.raises(ConsistencyError, match=r"PatientID \(0010,0020\) .*'OTHER'.*expected one patient"):
        load_patient(tmp_path)


def test_non_dicom_and_truncated_files_are_refused(tmp_path):
    make_patient(tmp_path / "a", tp2_start=None)
    bad = tmp_path / "a" / "dicom" / "cycle1" / "tp1" / "CT" / "junk.dcm"
    bad.write_bytes(b"this is not DICOM" * 20)
    with pytest.raises(DicomError, match=r"junk\.dcm: not a DICOM file"):
        load_patient(tmp_path / "a")
    make_patient(tmp_path / "b", tp2_start=None)
    f = _nm_file(tmp_path / "b")
    data = f.read_bytes()
    f.write_bytes(data[: len(data) - 500])
    with pytest.raises(DicomError, match=r"IM_0000\.dcm: PixelData \(7FE0,0010\) holds \d+ bytes; expected \d+ .*"
                                         r"truncated"):
        load_patient(tmp_path / "b")


def test_unexpected_radionuclide_is_refused(tmp_path):
    make_patient(tmp_path, tp2_start=None, nuclide_meaning="^99m^Technetium")
    with pytest.raises(DicomError, match=r"RadionuclideCodeSequence \(0054,0300\) is Tc-99m.*expected Lu-177"):
        load_patient(tmp_path)


# --- warnings ---------------------------------------------------------------------------------
def test_physicist_warnings_are_recorded(tmp_path):
    make_patient(tmp_path, tp2_start=INJ + timedelta(days=25), tp2_time_only=False, corrected=("ATTN",))
    # a later timepoint (25 d > 3 half-lives), no scatter correction, an atypical calibration factor
    rec = RunRecord("t")
    pat = load_patient(tmp_path, overrides={"sensitivity_cps_per_MBq": 400.0}, record=rec)
    msgs = " | ".join(w["message"] for w in rec.warnings)
    assert "lacks SCAT" in msgs
    assert "much later than the others" in msgs
    assert "outside the typical range" in msgs
    assert len(pat.warnings) == len(rec.warnings)


def test_failed_inspect_writes_nothing(tmp_path, capsys):
    make_patient(tmp_path / "p", tp2_start=None, units="GML")
    assert main(["inspect", str(tmp_path / "p"), "--out", str(tmp_path / "out")]) == 2
    assert "[BLOCKING]" in (text := capsys.readouterr().out) and "Units (0054,1001)" in text
    assert not (tmp_path / "out").exists()
    shutil.rmtree(tmp_path / "p")


def test_second_cycle_gets_its_own_administration_and_times(tmp_path):
    make_patient(tmp_path, tp2_start=None)
    inj2 = INJ + timedelta(days=42, minutes=15)
    rng = np.random.default_rng(2)
    for label, start, time_only in (("tp1", inj2 + timedelta(hours=4), False),
                                    ("tp2", inj2 + timedelta(hours=47), True)):
        ds = nm_tomo(rng.uniform(10, 50, SHAPE), spacing=SP, acq_start=start, frame_duration_s=FRAME_S,
                     projections=PROJ, injection=inj2, dose_MBq=7000.0, time_only=time_only)
        write_series(ds, tmp_path / "dicom" / "cycle2" / label / "NM_bed1")
    pat = load_patient(tmp_path)
    assert [c.index for c in pat.cycles] == [1, 2]
    c2 = pat.cycles[1]
    assert c2.administration.injection_datetime == inj2
    assert c2.administration.injected_activity_Bq == pytest.approx(7.0e9)
    assert [round(tp.time_h * 3600) for tp in c2.timepoints] == [4 * 3600 + 300, 47 * 3600 + 300]
    assert len(pat.cycles[0].timepoints) == 1


def test_nifti_sidecar_without_units_or_timing_is_refused(tmp_path):
    truth = make_patient(tmp_path, tp2_start=None)
    _write_nifti_copy(tmp_path, truth)
    side = tmp_path / "nifti" / "cycle1" / "tp1" / "nm_bed1.json"
    doc = json.loads(side.read_text())
    del doc["units"]
    side.write_text(json.dumps(doc))
    with pytest.raises(InputError, match=r"nm_bed1\.nii\.gz: no 'units' in the sidecar; expected counts or Bq/mL"):
        load_patient(tmp_path, route="nifti")
    doc["units"] = "counts"
    del doc["acquisition_start"]
    side.write_text(json.dumps(doc))
    with pytest.raises(InputError, match=r"nm_bed1\.nii\.gz: no 'acquisition_start' in the sidecar"):
        load_patient(tmp_path, route="nifti")
    doc["acquisition_start"] = "yesterday"
    side.write_text(json.dumps(doc))
    with pytest.raises(InputError, match=r"nm_bed1\.json: acquisition_start: 'yesterday' is not an ISO datetime"):
        load_patient(tmp_path, route="nifti")
