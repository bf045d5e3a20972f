"""Sample data: the synthetic patient (generated locally by ``LuDosimetryLib.phantom``, no download),
an example concordance cohort table and an example ledger.

:func:`register_sample_data` adds the synthetic patient to Slicer's Sample Data module; the
category title is registered only where ``registerCustomSampleDataCategory`` exists (Slicer 5.12+).
"""

from __future__ import annotations

import csv
import os
import tempfile
from pathlib import Path

import slicer

from .nodes import rows_to_table, set_node_attributes

__all__ = ["SAMPLE_DIR", "SAMPLE_CATEGORY", "SAMPLE_NAME", "sample_concordance_table", "example_ledger_path",
           "generate_sample_patient_folder", "load_patient_folder", "load_sample_patient", "register_sample_data"]

#: Files shipped with LuDosimetryCommon (``Resources/SampleData``).
SAMPLE_DIR = Path(__file__).resolve().parents[1] / "Resources" / "SampleData"
SAMPLE_CATEGORY = "LuDosimetry"
SAMPLE_NAME = "LuDosimetrySyntheticPatient"


def sample_concordance_table(path: str | Path | None = None):
    """A table node of a concordance CSV (default: the example cohort, example numbers only)."""
    p = Path(path) if path else SAMPLE_DIR / "example_concordance.csv"
    with p.open(newline="", encoding="utf-8-sig") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        for k in ("predicted_Gy", "measured_Gy", "predicted_sd_Gy", "measured_sd_Gy"):
            if r.get(k):
                r[k] = float(r[k])
    return rows_to_table(rows, name=p.stem)


def example_ledger_path() -> Path:
    """The example ledger (JSON, example numbers only)."""
    return SAMPLE_DIR / "example_ledger.json"


def _cache_dir() -> Path:
    base = os.environ.get("LUDOSIMETRY_CACHE") or (slicer.app.cachePath if hasattr(slicer, "app") else "")
    return Path(base or tempfile.gettempdir()) / "LuDosimetry"


def generate_sample_patient_folder(size: str = "small", *, seed: int = 0, folder: str | Path | None = None,
                                   progress=None) -> tuple[Path, object]:
    """Generate the synthetic patient and write its folder once (reused when present).

    Returns the folder and the generated ``SyntheticPatient`` (None when the folder existed).
    """
    from LuDosimetryLib.phantom import generate_patient, write_patient_folder

    out = Path(folder) if folder else _cache_dir() / f"synthetic_{size}_seed{seed}"
    if out.is_dir() and any(out.iterdir()):
        return out, None
    patient = generate_patient(size, seed=seed, progress=progress)
    write_patient_folder(patient, out, dicom=False, progress=progress)
    return out, patient


def load_patient_folder(folder: str | Path, *, cycle: int = 1, calibration_store=None, progress=None):
    """Ingest a patient folder with the library and put one cycle into the scene (``PatientNodes``).

    ``calibration_store`` is a ``CalibrationStore`` or the path of a ``calibration.json``; without
    it, ``calibration.json`` in the patient folder is used when present (as ``ludosimetry run`` does).
    """
    from LuDosimetryLib.calibration.store import CalibrationStore
    from LuDosimetryLib.ingest import load_patient

    from .patient_nodes import push_patient

    if calibration_store is None and (Path(folder) / "calibration.json").is_file():
        calibration_store = Path(folder) / "calibration.json"
    if isinstance(calibration_store, str | Path):
        calibration_store = CalibrationStore.load(calibration_store, required=True)  # a named store must exist
    patient = load_patient(folder, calibration_store=calibration_store, progress=progress)
    nodes = push_patient(patient, cycle=cycle, progress=progress)
    for node in (*nodes.spect, *nodes.ct, nodes.labels):  # blood samples and other files the stages look for
        if node is not None:
            set_node_attributes(node, {"PatientFolder": str(Path(folder).resolve())})
    return nodes


def load_sample_patient(size: str = "small", *, seed: int = 0, progress=None):
    """Generate (once), ingest and load the synthetic patient; returns its ``PatientNodes``.

    The generated folder holds its camera's ``calibration.json``, which ingest uses.
    """
    folder, _ = generate_sample_patient_folder(size, seed=seed, progress=progress)
    return load_patient_folder(folder, progress=progress)


def _download_synthetic_patient(source=None):
    nodes = load_sample_patient()
    return [n for n in (*nodes.spect, *nodes.ct, nodes.labels) if n is not None]


def register_sample_data() -> None:
    """Register the synthetic patient in the Sample Data module (called at start-up completion)."""
    import SampleData

    icon = Path(__file__).resolve().parents[1] / "Resources" / "Icons" / "LuDosimetrySyntheticPatient.png"
    register_category = getattr(SampleData.SampleDataLogic, "registerCustomSampleDataCategory", None)  # 5.12+ only
    if register_category is not None:
        register_category(SAMPLE_CATEGORY, "LuDosimetry (177Lu dosimetry)")
    SampleData.SampleDataLogic.registerCustomSampleDataSource(
        category=SAMPLE_CATEGORY, sampleName=SAMPLE_NAME, uris=[], fileNames=[], nodeNames=[],
        thumbnailFileName=str(icon), customDownloader=_download_synthetic_patient)
