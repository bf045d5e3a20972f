"""A small per-patient pipeline for the cohort tests: reads ``activity.txt``, writes doses.csv.

Importable by spawned worker processes and Dask workers (Testing/Python is on their path).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from LuDosimetryLib.errors import InputError
from LuDosimetryLib.results import RunRecord, write_csv


def run_patient(input_dir: Path, output_dir: Path, *, parameters: dict, progress=None) -> dict:
    text = (Path(input_dir) / "activity.txt").read_text()
    try:
        activity = float(text)
    except ValueError:
        raise InputError(f"{text!r} is not a number", source=str(Path(input_dir) / "activity.txt")) from None
    log = parameters.get("log")  # one line per start and per finish: who ran which patient
    if log:
        with open(log, "a") as fh:
            fh.write(f"start {Path(input_dir).name} {os.getpid()}\n")
    delay = float(parameters.get("delay_s", 0.0))
    if delay:
        time.sleep(delay)
    dose = activity * float(parameters.get("gy_per_unit", 1.0))
    write_csv(Path(output_dir) / "doses.csv", [{"region": "kidney_left", "dose_Gy": dose, "pid": os.getpid()}],
              ["region", "dose_Gy"])
    RunRecord("toy").write(output_dir)
    if log:
        with open(log, "a") as fh:
            fh.write(f"finish {Path(input_dir).name} {os.getpid()}\n")
    return {"dose_Gy": dose, "pid": os.getpid()}
