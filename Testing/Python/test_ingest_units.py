"""Ingest building blocks against independent numbers: dead time, quantification, geometry,
injection parsing, decay state, stitching."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import numpy as np
import pytest
import SimpleITK as sitk
from ingest_builders import nm_tomo, pt_series, radiopharm_item, write_series
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from LuDosimetryLib.errors import DicomError, InputError
from LuDosimetryLib.ingest.decay import DecayInfo, acquisition_time_factor, read_decay_info
from LuDosimetryLib.ingest.discovery import classify, scan_folder
from LuDosimetryLib.ingest.geometry import nm_grid
from LuDosimetryLib.ingest.injection import read_injection_header, resolve_administration
from LuDosimetryLib.ingest.quant import counts_to_Bq_per_mL, dead_time_factor, paralysable_true_rate_cps
from LuDosimetryLib.ingest.series import load_pet_frames
from LuDosimetryLib.ingest.stitch import stitch_beds
from LuDosimetryLib.model import Administration
from LuDosimetryLib.nuclides import get_nuclide
from LuDosimetryLib.timing import DecayState

INJ = datetime(2026, 3, 2, 9, 0, 0)


# --- dead time --------------------------------------------------------------------------------
@pytest.mark.parametrize("n_true", [0.0, 1e3, 5e4, 2e5, 4.9e5])
def test_paralysable_inversion_recovers_the_true_rate(n_true):
    tau = 2e-6  # s; n τ up to 0.98 < 1 (low-rate branch)
    m = n_true * math.exp(-n_true * tau)
    assert paralysable_true_rate_cps(m, tau) == pytest.approx(n_true, rel=1e-10, abs=1e-9)


def test_dead_time_factor_matches_first_order_expansion_at_low_rate():
    # n/m = e^{nτ} ≈ 1 + mτ + 1.5 (mτ)^2 for small mτ
    m, tau = 1000.0, 1e-6
    assert dead_time_factor(m, tau) == pytest.approx(1 + m * tau + 1.5 * (m * tau) ** 2, rel=1e-8)
    assert dead_time_factor(m, 0.0) == 1.0


def test_count_rate_beyond_the_paralysable_peak_is_refused():
    with pytest.raises(InputError, match=r"count_rate_cps: .* exceeds 1/e"):
        paralysable_true_rate_cps(2e5, 2e-6)  # mτ = 0.4 > 1/e


def test_counts_to_concentration_by_hand():
    # 1200 counts in 600 s at 10 cps/MBq → 0.2 MBq in 0.064 mL = 3.125e6 Bq/mL (× 1.1 dead time)
    out = counts_to_Bq_per_mL(np.array([1200.0]), duration_s=600.0, sensitivity_cps_per_MBq=10.0,
                              voxel_volume_mL=0.064, dead_time_correction=1.1)
    assert out.dtype == np.float32 and out[0] == pytest.approx(3.125e6 * 1.1, rel=1e-7)
    with pytest.raises(InputError, match="sensitivity_cps_per_MBq"):
        counts_to_Bq_per_mL(np.ones(1), duration_s=1, sensitivity_cps_per_MBq=0, voxel_volume_mL=1)


# --- geometry ---------------------------------------------------------------------------------
def test_oblique_nm_geometry_keeps_direction_and_right_handedness():
    c, s = math.cos(0.3), math.sin(0.3)
    iop = (c, s, 0.0, 0.0, 0.0, -1.0)  # oblique coronal-ish
    for neg in (False, True):
        ds = nm_tomo(np.ones((5, 4, 3)), origin=(10.0, 20.0, 30.0), spacing=(2.0, 3.0, 4.0), iop=iop,
                     acq_start=INJ + timedelta(hours=5), injection=INJ, negative_spacing=neg)
        grid, rev, _ = nm_grid(ds, source="x.dcm")
        D = np.asarray(grid.direction).reshape(3, 3)
        assert np.allclose(D[:, 0], iop[:3]) and np.allclose(D[:, 1], iop[3:])
        assert np.linalg.det(D) == pytest.approx(1.0)
        assert grid.origin_mm == pytest.approx((10.0, 20.0, 30.0))
        assert grid.spacing_mm == pytest.approx((2.0, 3.0, 4.0)) and grid.size == (3, 4, 5)
        assert rev is neg


def test_nm_without_position_is_refused():
    ds = nm_tomo(np.ones((2, 2, 2)), acq_start=INJ, injection=INJ)
    del ds.DetectorInformationSequence[0].ImagePositionPatient
    with pytest.raises(DicomError, match=r"ImagePositionPatient \(0020,0032\) is missing from DetectorInformation"):
        nm_grid(ds, source="x.dcm")


# --- injection --------------------------------------------------------------------------------
def _ds_with(item) -> Dataset:
    ds = Dataset()
    ds.RadiopharmaceuticalInformationSequence = Sequence([item])
    return ds


def test_start_time_only_crosses_midnight_to_the_previous_day():
    inj = datetime(2026, 3, 1, 23, 40, 0)
    acq = datetime(2026, 3, 2, 4, 30, 0)
    h = read_injection_header(_ds_with(radiopharm_item(injection=inj, time_only=True)), source="f.dcm",
                              modality="NM", acquisition_start=acq)
    assert h.datetime.value == inj and h.time_only
    assert "previous day" in h.datetime.source


def test_start_datetime_wins_and_activity_units_follow_modality():
    item = radiopharm_item(injection=INJ, dose=7400.0)
    h = read_injection_header(_ds_with(item), source="f.dcm", modality="NM", acquisition_start=INJ)
    assert h.datetime.value == INJ and not h.time_only
    assert h.activity_Bq.value == pytest.approx(7.4e9) and "MBq" in h.activity_Bq.source
    pet = read_injection_header(_ds_with(radiopharm_item(injection=INJ, dose=1.5e8)), source="p.dcm", modality="PT",
                                acquisition_start=INJ)
    assert pet.activity_Bq.value == pytest.approx(1.5e8)
    warned = []
    odd = read_injection_header(_ds_with(radiopharm_item(injection=INJ, dose=7.4e9)), source="f.dcm", modality="NM",
                                acquisition_start=INJ, warn=warned.append)
    assert odd.activity_Bq.value == pytest.approx(7.4e9) and "read as Bq" in warned[0]


def test_overrides_win_over_header_with_their_source():
    from LuDosimetryLib.ingest.overrides import normalise_overrides

    h = read_injection_header(_ds_with(radiopharm_item(injection=INJ, dose=7400.0)), source="f.dcm",
                              modality="NM", acquisition_start=INJ)
    ov = normalise_overrides({"injection_datetime": "2026-03-02T09:05:00"}, origin="command line")
    a = resolve_administration(h, source="f.dcm", overrides=ov)
    assert a.injection_datetime == datetime(2026, 3, 2, 9, 5)
    assert a.provenance["injection_datetime"] == "command line injection_datetime"
    assert "RadionuclideTotalDose (0018,1074)" in a.provenance["injected_activity_Bq"]
    assert a.ligand == "PSMA-617"


# --- decay ------------------------------------------------------------------------------------
def test_decy_without_decay_correction_is_refused_and_start_is_undone():
    ds = Dataset()
    ds.CorrectedImage = ["ATTN", "SCAT", "DECY"]
    with pytest.raises(DicomError, match=r"DecayCorrection \(0054,1102\) is missing but CorrectedImage"):
        read_decay_info(ds, source="f.dcm", modality="NM")
    ds.DecayCorrection = "START"
    info = read_decay_info(ds, source="f.dcm", modality="NM")
    lam = get_nuclide("Lu-177").decay_constant_per_h
    f = acquisition_time_factor(info, "Lu-177", mid_h=24.25, series_start_h=24.0)
    assert f == pytest.approx(math.exp(-lam * 0.25), rel=1e-12)
    f_admin = acquisition_time_factor(DecayInfo(DecayState.ADMIN, frozenset()), "Lu-177", mid_h=24.25,
                                      series_start_h=24.0)
    assert f_admin == pytest.approx(math.exp(-lam * 24.25), rel=1e-12)


@pytest.mark.parametrize("dc", ["START", "ADMIN", "NONE"])
def test_dynamic_pet_frames_come_back_to_mid_frame_activity(tmp_path, dc):
    ga = get_nuclide("Ga-68")
    inj = datetime(2026, 2, 1, 10, 0, 0)
    starts = [inj + timedelta(minutes=1), inj + timedelta(minutes=11), inj + timedelta(minutes=41)]
    durs = [600.0, 1800.0, 600.0]
    vols = [np.full((3, 4, 4), v) for v in (1000.0, 2000.0, 1500.0)]
    write_series(pt_series(vols, starts=starts, durations_s=durs, injection=inj, decay_correction=dc,
                           half_life_h=ga.half_life_h), tmp_path / "PT")
    (s,) = scan_folder(tmp_path)
    assert s.kind == "PET" and s.dynamic
    adm = Administration("Ga-68", "PSMA-11", inj, 150e6)
    frames = load_pet_frames(s, adm, user={})
    assert [f.duration_s for f in frames] == durs
    for f, v, st, d in zip(frames, vols, starts, durs):
        assert f.time_h == pytest.approx(((st - inj).total_seconds() + d / 2) / 3600, abs=1e-9)
        np.testing.assert_allclose(sitk.GetArrayFromImage(f.image), v, rtol=1e-4)


def test_quantitative_spect_stored_as_pt_is_classified_as_spect(tmp_path):
    ds = pt_series([np.ones((2, 2, 2))], starts=[INJ + timedelta(hours=4)], durations_s=[900.0], injection=INJ,
                   nuclide_meaning="^177^Lutetium", pharm="177Lu-PSMA-617", decay_correction="NONE")
    assert classify(ds[0]) == ("SPECT", False)


# --- stitching --------------------------------------------------------------------------------
def _bed(value, z0, n=10):
    img = sitk.GetImageFromArray(np.full((n, 3, 3), value, np.float32))
    img.SetSpacing((2.0, 2.0, 5.0))
    img.SetOrigin((0.0, 0.0, z0))
    return img


def test_stitching_weights_overlap_and_keeps_each_beds_time():
    # bed 1 z = 0..45 mm, bed 2 z = 25..70 mm: overlap 25..45 (5 slices)
    st = stitch_beds([_bed(100.0, 0.0), _bed(200.0, 25.0)], [5.0, 5.5])
    arr = sitk.GetArrayFromImage(st.image)[:, 1, 1]
    tm = sitk.GetArrayFromImage(st.time_map_h)[:, 1, 1]
    assert arr.shape == (15,)
    assert np.all(arr[:5] == 100.0) and np.all(arr[10:] == 200.0)
    assert np.all(np.diff(arr[4:11]) > 0)  # a monotone cross-fade through the overlap
    # the weighted time follows the same weights as the activity
    w2 = (arr - 100.0) / 100.0
    np.testing.assert_allclose(tm, 5.0 + 0.5 * w2, atol=1e-5)
    assert st.bed_extents_mm == ((-2.5, 47.5), (22.5, 72.5))
    same = stitch_beds([_bed(1.0, 0.0), _bed(1.0, 25.0)], [5.0, 5.0])
    assert same.time_map_h is None and np.allclose(sitk.GetArrayFromImage(same.image), 1.0)


def test_tolerant_dates_and_times_and_refused_garbage():
    from LuDosimetryLib.ingest.dicomtags import parse_da, parse_dt, parse_tm

    assert parse_da("2026.03.02", source="f", keyword="StudyDate") == datetime(2026, 3, 2).date()
    assert parse_tm("09:05:07", source="f", keyword="AcquisitionTime").isoformat() == "09:05:07"
    assert parse_tm("0905", source="f", keyword="AcquisitionTime").isoformat() == "09:05:00"
    assert parse_dt("20260302090507.25+0100", source="f", keyword="AcquisitionDateTime") == \
        datetime(2026, 3, 2, 9, 5, 7, 250000)
    with pytest.raises(DicomError, match=r"f: AcquisitionTime \(0008,0032\) is '25:00'; expected a time"):
        parse_tm("25:00", source="f", keyword="AcquisitionTime")


def test_quantitative_spect_stored_as_pt_loads_as_a_spect_timepoint(tmp_path):
    from LuDosimetryLib.ingest import load_patient

    start = INJ + timedelta(hours=24)
    conc = np.random.default_rng(4).uniform(0, 4e4, (6, 5, 5))
    write_series(pt_series([conc], starts=[start], durations_s=[1200.0], injection=INJ, dose_Bq=7.4e9,
                           nuclide_meaning="^177^Lutetium", pharm="177Lu-PSMA-617", decay_correction="NONE"),
                 tmp_path / "xspect")
    pat = load_patient(tmp_path)
    (tp,) = pat.cycles[0].timepoints
    assert tp.time_h * 3600 == pytest.approx(24 * 3600 + 600, abs=1e-6)
    assert pat.cycles[0].administration.injected_activity_Bq == pytest.approx(7.4e9)
    np.testing.assert_allclose(sitk.GetArrayFromImage(tp.spect), conc, rtol=1e-6, atol=conc.max() / 30000)
    assert "Units (0054,1001)" in tp.beds[0].provenance["units"]
