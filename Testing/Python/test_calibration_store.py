"""The calibration store refuses a calibration of another system and flags drift."""

import pytest

from LuDosimetryLib.calibration.store import CalibrationEntry, CalibrationStore
from LuDosimetryLib.errors import InputError
from LuDosimetryLib.model import Camera

CAM = Camera("SIEMENS", "Symbia Intevo", "MEGP", ((187.5, 229.2),), "OSEM 4i8s AC SC RR")


def test_lookup_by_key_and_date_round_trips_through_file(tmp_path):
    e1 = CalibrationEntry(CAM.key(), 9.0, 0.02, 0.5e-6, date="2026-01-10", source="cylinder")
    store, warn = CalibrationStore().add(e1)
    assert warn == []
    e2 = CalibrationEntry(CAM.key(), 9.9, 0.02, date="2026-06-01", source="cylinder")
    store, warn = store.add(e2)
    assert len(warn) == 1 and "+10.0%" in warn[0]
    store.save(tmp_path / "calibration.json")
    again = CalibrationStore.load(tmp_path / "calibration.json")
    assert again.lookup(CAM.key()).sensitivity_cps_per_MBq == 9.9
    assert again.lookup(CAM.key(), on_date="2026-03-01").sensitivity_cps_per_MBq == 9.0


def test_calibration_of_another_collimator_is_refused_naming_the_field():
    store, _ = CalibrationStore().add(CalibrationEntry(CAM.key(), 9.0))
    other = Camera("SIEMENS", "Symbia Intevo", "LEHR", ((187.5, 229.2),), "OSEM 4i8s AC SC RR")
    with pytest.raises(InputError, match=r"collimator 'LEHR' ≠ 'MEGP'"):
        store.lookup(other.key())
    with pytest.raises(InputError, match="store is empty"):
        CalibrationStore().lookup(CAM.key())


def test_bad_entries_are_refused(tmp_path):
    with pytest.raises(InputError, match="sensitivity_cps_per_MBq"):
        CalibrationEntry(CAM.key(), float("nan"))
    (tmp_path / "c.json").write_text('{"format": "something else"}')
    with pytest.raises(InputError, match="not a calibration store"):
        CalibrationStore.load(tmp_path / "c.json")


def test_implausible_sensitivity_or_large_drift_is_refused_unless_forced():
    # issue 16 item 3: an assay time a year late stored 4.1e-16 cps/MBq
    with pytest.raises(InputError, match=r"4\.1e-16 cps/MBq is outside the plausible range.*--accept-drift"):
        CalibrationStore().add(CalibrationEntry(CAM.key(), 4.1e-16))
    store, warn = CalibrationStore().add(CalibrationEntry(CAM.key(), 4.1e-16), force=True)
    assert len(store.entries) == 1 and "forced" in warn[0]
    store, _ = CalibrationStore().add(CalibrationEntry(CAM.key(), 9.0, date="2026-01-10"))
    with pytest.raises(InputError, match=r"-55\.6%.*beyond the bound of ±50%"):
        store.add(CalibrationEntry(CAM.key(), 4.0, date="2026-02-10"))
    forced, warn = store.add(CalibrationEntry(CAM.key(), 4.0, date="2026-02-10"), force=True)
    assert forced.lookup(CAM.key()).sensitivity_cps_per_MBq == 4.0 and "-55.6%" in warn[0]


def test_a_named_store_that_does_not_exist_is_an_error(tmp_path):
    # issue 16 item 3: --calibration /nonexistent.json silently used the patient's calibration.json
    assert CalibrationStore.load(tmp_path / "none.json").entries == ()  # the calibrate command creates it
    with pytest.raises(InputError, match="calibration store not found"):
        CalibrationStore.load(tmp_path / "none.json", required=True)
