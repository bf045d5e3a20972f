"""The shared conventions: time, decay state, kinetic models, labels, results files."""

import json
import math
import re
from datetime import datetime, timedelta

import numpy as np
import pytest
from scipy import integrate

from LuDosimetryLib.errors import ConsistencyError, InputError
from LuDosimetryLib.kinetics.models import KineticModel, SumOfExponentials, mono_exponential, uptake_washout
from LuDosimetryLib.labels import LabelTable, Region
from LuDosimetryLib.model import Administration, net_injected_activity_Bq
from LuDosimetryLib.nuclides import get_nuclide
from LuDosimetryLib.report import Report
from LuDosimetryLib.results import RunRecord, atomic_directory, read_csv, write_csv
from LuDosimetryLib.timing import (
    DecayState,
    check_times_increasing,
    frame_average_decay_factor,
    mid_acquisition_time_h,
    to_acquisition_time,
)

INJ = datetime(2026, 3, 2, 23, 30)


def test_mid_acquisition_time_crosses_midnight():
    start = datetime(2026, 3, 3, 0, 10)  # next day
    assert mid_acquisition_time_h(start, 1200, INJ) == pytest.approx(40 / 60 + 10 / 60)


def test_decay_states_round_trip_to_acquisition_time():
    lu = get_nuclide("Lu-177")
    t = 96.0
    a_acq = 1000.0
    a_admin = a_acq * math.exp(lu.decay_constant_per_h * t)
    assert to_acquisition_time(a_admin, DecayState.ADMIN, lu, time_h=t) == pytest.approx(a_acq)
    a_start = a_acq * math.exp(lu.decay_constant_per_h * 0.1)
    assert to_acquisition_time(a_start, "START", lu, time_h=t, series_start_h=t - 0.1) == pytest.approx(a_acq)
    arr = np.array([a_acq], dtype=np.float32)
    out = to_acquisition_time(arr, "NONE", lu, time_h=t)
    assert out is not arr and out.dtype == np.float32


def test_frame_average_decay_factor_matches_numerical_mean():
    ga = get_nuclide("Ga-68")
    mean, _ = integrate.quad(lambda t: math.exp(-ga.decay_constant_per_h * t), 0, 0.5)
    assert frame_average_decay_factor(ga, 0.5) == pytest.approx(mean / 0.5, rel=1e-10)


def test_times_must_increase():
    check_times_increasing([5, 24, 96, 192])
    with pytest.raises(ConsistencyError, match="strictly increasing"):
        check_times_increasing([5, 24, 24, 96])
    with pytest.raises(InputError, match="≥ 0 h"):
        check_times_increasing([-1, 24])


def test_net_injected_activity_subtracts_decayed_residual():
    lu = get_nuclide("Lu-177")
    assay_t = INJ - timedelta(hours=2)
    res_t = INJ + timedelta(hours=1)
    a = net_injected_activity_Bq("Lu-177", assay_activity_Bq=7.5e9, assay_datetime=assay_t, injection_datetime=INJ,
                                 residual_activity_Bq=0.1e9, residual_datetime=res_t)
    expected = 7.5e9 * math.exp(-lu.decay_constant_per_h * 2) - 0.1e9 * math.exp(lu.decay_constant_per_h * 1)
    assert a == pytest.approx(expected, rel=1e-12)
    with pytest.raises(InputError, match="residual_activity_Bq"):
        net_injected_activity_Bq("Lu-177", assay_activity_Bq=1e9, assay_datetime=INJ, injection_datetime=INJ,
                                 residual_activity_Bq=2e9, residual_datetime=INJ)


def test_administration_normalises_nuclide_and_rejects_nan_activity():
    adm = Administration("177Lu", "PSMA-617", INJ, 7.4e9)
    assert adm.nuclide == "Lu-177"
    with pytest.raises(InputError, match="injected_activity_Bq"):
        Administration("Lu-177", "PSMA-617", INJ, float("nan"))


def test_sum_of_exponentials_integral_is_analytic():
    m = uptake_washout(1e8, math.log(2) / 40, math.log(2) / 1.5)
    assert isinstance(m, KineticModel)
    num, _ = integrate.quad(m.activity, 0, 5000, limit=500)
    assert m.integral() == pytest.approx(num, rel=1e-8)
    part, _ = integrate.quad(m.activity, 5, 100)
    assert m.integral(5, 100) == pytest.approx(part, rel=1e-10)
    assert m.activity(0.0) == 0.0 and m.activity(-1.0) == 0.0
    mono = mono_exponential(2.0, 0.5)
    assert mono.integral() == pytest.approx(4.0)
    np.testing.assert_allclose(mono.activity(np.array([0.0, 2.0])), [2.0, 2 * math.exp(-1)])
    with pytest.raises(InputError):
        SumOfExponentials((1.0,), (0.0,))


def test_label_table_round_trip_and_errors():
    t = LabelTable((Region(1, "kidney_cortex_left", "left", "organ", "kidney_left"),
                    Region(2, "renal_pelvis_left", "left", "organ", "kidney_left"),
                    Region(3, "lesion_1", "none", "lesion")))
    again = LabelTable.from_csv_text(t.to_csv_text())
    assert again == t
    assert [r.name for r in t.groups()["kidney_left"]] == ["kidney_cortex_left", "renal_pelvis_left"]
    with pytest.raises(InputError, match="duplicate label"):
        LabelTable((Region(1, "a"), Region(1, "b")))
    with pytest.raises(InputError, match="row 3, column 'label'"):
        LabelTable.from_csv_text("label,name\n1,a\nx,b\n")
    with pytest.raises(InputError, match="kind must be one of"):
        Region(4, "x", "none", "tumour")


def test_results_files_are_written_whole(tmp_path):
    p = write_csv(tmp_path / "doses.csv", [{"region": "liver", "dose_Gy": 1.25, "extra": float("nan")}],
                  ["region", "dose_Gy"])
    rows = read_csv(p)
    assert rows == [{"region": "liver", "dose_Gy": "1.25", "extra": ""}]
    assert [f.name for f in tmp_path.iterdir()] == ["doses.csv"]  # no temporary left behind

    out = tmp_path / "res"
    with pytest.raises(RuntimeError), atomic_directory(out) as tmp:
        (tmp / "tac.csv").write_text("partial")
        raise RuntimeError("stage failed")
    assert not out.exists() and list(tmp_path.iterdir()) == [p]
    with atomic_directory(out) as tmp:
        rec = RunRecord("ludosimetry test")
        rec.warn("no scatter correction", stage="ingest", source="tp1")
        rec.write(tmp)
        Report("Patient X").section("dose", "Absorbed dose").paragraph("a < b").table(
            [{"region": "liver", "dose_Gy": 1.0}]).figure("dvh.png", "DVH")
        Report("x").write(tmp / "report.html")
    doc = json.loads((out / "run.json").read_text())
    assert doc["warnings"][0]["message"] == "no scatter correction" and "numpy" in doc["versions"]
    with pytest.raises(InputError, match="--force"), atomic_directory(out):
        pass


def test_report_escapes_text_and_orders_sections():
    r = Report("<b>P</b>")
    r.section("dose", "Dose").paragraph("<script>")
    r.section("ingest", "Ingest")
    page = r.render()
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert page.index('id="ingest"') < page.index('id="dose"')


def test_doses_csv_reader_refuses_the_old_column_names_and_names_the_new_ones(tmp_path):
    from LuDosimetryLib.results import DOSES_COLUMNS, read_doses_csv, reported_dose

    new = write_csv(tmp_path / "doses.csv", [{"region": "kidney_left", "dose_Gy": 4.5, "dose_method": "kernel+gtm-pvc"},
                                             {"region": "liver", "dose_Gy": None}], DOSES_COLUMNS)
    rows = read_doses_csv(new)
    assert reported_dose(rows[0]) == 4.5 and reported_dose(rows[1]) is None
    for old, named in (("mean_dose_Gy", "map_mean_dose_Gy"), ("mean_dose_pv_corrected_Gy", "kernel+gtm-pvc"),
                       ("mean_dose_rel_uncertainty", "dose_rel_uncertainty"), ("method", "dose_method")):
        p = write_csv(tmp_path / f"{old}.csv", [{"region": "kidney_left", "dose_Gy": 1.0, old: 1.0}], ["region"])
        with pytest.raises(InputError, match=f"old doses.csv columns .{old}..*{re.escape(named)}"):
            read_doses_csv(p)
    with pytest.raises(InputError, match=r"no column.*dose_Gy"):
        read_doses_csv(write_csv(tmp_path / "bare.csv", [{"region": "x", "map_mean_dose_Gy": 1.0}], ["region"]))
    with pytest.raises(InputError, match="not a finite dose"):
        reported_dose({"region": "x", "dose_Gy": "nan"})


def test_each_distinct_warning_is_recorded_and_printed_once(caplog):
    import logging

    from LuDosimetryLib.results import OnceFilter

    rec = RunRecord("ludosimetry test")
    with caplog.at_level(logging.WARNING, logger="LuDosimetryLib.results"):
        for _ in range(3):
            rec.warn("kidney alpha_beta_Gy = 2.6 Gy is 'unverified'", stage="radiobiology", source="kidney")
        rec.warn("kidney alpha_beta_Gy = 2.6 Gy is 'unverified'", stage="radiobiology", source="parotid")
    assert [w["source"] for w in rec.warnings] == ["kidney", "parotid"]
    assert len(caplog.records) == 2
    once = OnceFilter()
    msgs = [logging.LogRecord("x", logging.WARNING, "f", 1, m, None, None) for m in ("a", "a", "b")]
    assert [once.filter(m) for m in msgs] == [True, False, True]
    assert once.filter(logging.LogRecord("x", logging.INFO, "f", 1, "a", None, None))
