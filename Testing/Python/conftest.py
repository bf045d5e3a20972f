"""Shared pytest fixtures of the LuDosimetryLib suite."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")

#: The hidden Slicer module whose package LuDosimetrySlicerLib holds the modules' edge code.
EDGE = Path(__file__).resolve().parents[2] / "LuDosimetry" / "LuDosimetryCommon"


@pytest.fixture()
def slicer(tmp_path):
    """Slicer's real MRML (slicer-core): a fresh ``vtkMRMLScene`` as ``slicer.mrmlScene`` with what the
    application wires to every scene (``slicer_app``), LuDosimetrySlicerLib importable; the test
    fails on any VTK/MRML warning or error printed while it ran."""
    import slicer_app

    messages = slicer_app.VtkMessages()
    mod = slicer_app.install(tmp_path / "slicer-cache")
    sys.path.insert(0, str(EDGE))
    for name in [n for n in sys.modules if n.startswith("LuDosimetrySlicerLib")]:
        del sys.modules[name]
    try:
        yield mod
    finally:
        sys.path.remove(str(EDGE))
        slicer_app.uninstall()
        messages.close()
    if messages.messages:
        pytest.fail("VTK/MRML printed:\n" + "\n".join(messages.messages), pytrace=False)


@pytest.fixture(scope="session")
def small_dicom_patient(tmp_path_factory) -> Path:
    """The small sample patient (2 timepoints, PET, DICOM and NIfTI), written once; copy before changing it."""
    from LuDosimetryLib.phantom import generate_patient, write_patient_folder

    patient = generate_patient("small", seed=4, timepoints_h=(5.0, 24.0))
    return write_patient_folder(patient, tmp_path_factory.mktemp("small_dicom") / "patient", dicom=True)
