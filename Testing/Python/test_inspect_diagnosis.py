"""Issue 16 item 8: ``ludosimetry inspect`` is a diagnosis: every series and every problem of the
folder in one run (blocking ones marked), exit 2 when ``run`` would stop, the same as JSON."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pydicom
import pytest

from LuDosimetryLib.cli import main
from LuDosimetryLib.errors import LuDosimetryError
from LuDosimetryLib.ingest import inspect_patient, load_patient


def _folder(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for name in ("calibration.json", "patient.json"):
        shutil.copy(src / name, dst / name)
    for part in ("dicom/cycle1", "labels"):
        shutil.copytree(src / part, dst / part)
    return dst


def _nm(p: Path, bed: int) -> Path:
    return p / "dicom" / "cycle1" / "tp2" / f"NM_bed{bed}" / "NM.dcm"


@pytest.fixture()
def damaged(small_dicom_patient, tmp_path) -> Path:
    """Three problems in three files: a 99mTc bed without injection time (as a Siemens Symbia MAA
    export), a truncated CT slice, and no labels.csv."""
    p = _folder(small_dicom_patient, tmp_path / "P")
    f = _nm(p, 2)
    ds = pydicom.dcmread(f)
    item = ds.RadiopharmaceuticalInformationSequence[0]
    item.RadionuclideCodeSequence[0].CodeMeaning = "^99m^Technetium"
    item.RadionuclideCodeSequence[0].CodeValue = "44588005"
    item.Radiopharmaceutical = "Tc-99m MAA"
    del item.RadiopharmaceuticalStartDateTime
    del item.RadiopharmaceuticalStartTime
    ds.save_as(f)
    ct = sorted((p / "dicom" / "cycle1" / "tp1" / "CT").glob("*.dcm"))[5]
    ct.write_bytes(ct.read_bytes()[:300])
    (p / "labels" / "labels.csv").unlink()
    return p


def test_run_stops_at_the_first_problem(damaged):
    with pytest.raises(LuDosimetryError):
        load_patient(damaged)


def test_inspect_reports_every_problem_in_different_files(damaged):
    res = inspect_patient(damaged, diagnose=True)
    text = "\n".join(p.message for p in res.blocking)
    assert "Technetium" in text or "Tc-99m" in text  # the nuclide ...
    assert "RadiopharmaceuticalStartDateTime" in text or "injection" in text  # ... and the missing injection time
    assert "NM_bed2" in text
    assert "CT_0005.dcm" in text  # the truncated slice
    assert "labels.csv" in text  # the missing label table
    assert len(res.blocking) >= 4
    # every series is listed, also the ones that could not be used
    series = {r["series"] for r in res.rows}
    assert any("tp2/NM_bed2" in s for s in series) and any("tp1/NM_bed1" in s for s in series)


def test_inspect_cli_lists_problems_exits_2_and_prints_json(damaged, capsys):
    assert main(["inspect", str(damaged)]) == 2
    out = capsys.readouterr().out
    assert "[BLOCKING]" in out and "labels.csv" in out and "CT_0005.dcm" in out and "NM_bed2" in out
    assert main(["inspect", str(damaged), "--json"]) == 2
    doc = json.loads(capsys.readouterr().out)
    assert doc["ready_to_run"] is False and doc["blocking"] == len([p for p in doc["problems"] if p["blocking"]])
    assert any("labels.csv" in p["message"] for p in doc["problems"])
    assert {"series", "units", "nuclide", "time_h"} <= set(doc["series"][0])


def test_inspect_of_a_good_folder_exits_0(small_dicom_patient, tmp_path, capsys):
    p = _folder(small_dicom_patient, tmp_path / "P")
    assert main(["inspect", str(p), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["ready_to_run"] and doc["timepoints"] == 2 and not [x for x in doc["problems"] if x["blocking"]]
    assert {r["nuclide"] for r in doc["series"] if r["kind"] == "SPECT"} == {"Lu-177"}
