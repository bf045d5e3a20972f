"""Shared pytest fixtures of the LuDosimetryLib suite."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import mrml_standin
import pytest

os.environ.setdefault("MPLBACKEND", "Agg")

#: The hidden Slicer module whose package LuDosimetrySlicerLib holds the modules' edge code.
EDGE = Path(__file__).resolve().parents[2] / "LuDosimetry" / "LuDosimetryCommon"


@pytest.fixture()
def slicer():
    """The MRML stand-in installed as ``slicer``, with LuDosimetrySlicerLib importable (fresh each test)."""
    mod = mrml_standin.install()
    sys.path.insert(0, str(EDGE))
    for name in [n for n in sys.modules if n.startswith("LuDosimetrySlicerLib")]:
        del sys.modules[name]
    yield mod
    sys.path.remove(str(EDGE))
    mrml_standin.uninstall()


@pytest.fixture(scope="session")
def small_dicom_patient(tmp_path_factory) -> Path:
    """The small sample patient (2 timepoints, PET, DICOM and NIfTI), written once; copy before changing it."""
    from LuDosimetryLib.phantom import generate_patient, write_patient_folder

    patient = generate_patient("small", seed=4, timepoints_h=(5.0, 24.0))
    return write_patient_folder(patient, tmp_path_factory.mktemp("small_dicom") / "patient", dicom=True)
