"""Batch processing inside Slicer: patient folders → Alignment, TAC and Dose logic → scene + report.

Run by ``LuDosimetry/Scripts/batch.py``::

    Slicer --no-main-window --python-script LuDosimetry/Scripts/batch.py -- \\
        --patients /data/P001 /data/P002 --out /results [--calibration-store calibration.json]

For each patient the scene is cleared, the folder is ingested (``LuDosimetryLib.ingest``), the
modules' logic runs (the same functions the module widgets call), and ``<out>/<patient>/`` gets
``<patient>.mrb`` (the scene with every node, and the run's settings and nodes in the parameter node
``LuDosimetry batch``), ``tac.csv``, ``fits.csv``,
``doses.csv``, ``report.html`` and ``run.json``, written as a whole or not at all. A failing
patient is reported and skipped; the exit status is 1 when any patient failed.
"""

from __future__ import annotations

import argparse
import logging
import traceback
from pathlib import Path

import slicer

__all__ = ["parse_args", "process_patient", "main", "parameter_node", "BATCH_MODULE_NAME"]

#: ``ModuleName`` attribute of the batch's parameter node (as Slicer's scripted modules mark theirs).
BATCH_MODULE_NAME = "LuDosimetryBatch"


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Arguments of the batch script (a leading ``--`` is ignored)."""
    if argv and argv[0] == "--":
        argv = argv[1:]
    p = argparse.ArgumentParser(prog="batch.py", description="LuDosimetry batch processing inside Slicer")
    p.add_argument("--patients", nargs="+", required=True, type=Path, help="patient folders")
    p.add_argument("--out", required=True, type=Path, help="results folder (one sub-folder per patient)")
    p.add_argument("--cycle", type=int, default=1, help="therapy cycle to process (default 1)")
    p.add_argument("--calibration-store", type=Path, help="calibration.json (used by ingest and recorded by TAC)")
    p.add_argument("--method", choices=("convolution", "led"), default="convolution",
                   help="dose method (default convolution)")
    p.add_argument("--no-refine-kidneys", action="store_true", help="no organ-local kidney refinement")
    p.add_argument("--force", action="store_true", help="replace existing patient results folders")
    return p.parse_args(argv)


def parameter_node(settings: dict, references: dict):
    """A ``vtkMRMLScriptedModuleNode`` holding a run's settings (parameters, as text) and its input and
    output nodes (node references, role = key), saved with the scene."""
    node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScriptedModuleNode", "LuDosimetry batch")
    node.SetAttribute("ModuleName", BATCH_MODULE_NAME)
    for key, value in settings.items():
        node.SetParameter(key, str(value))
    for role, ref in references.items():
        node.SetNodeReferenceID(role, ref.GetID())
    return node


def process_patient(folder: Path, out: Path, args: argparse.Namespace) -> Path:
    """Run one patient through the stages and write its results folder; returns the folder."""
    from LuDosimetryLib.dose.export import write_doses_csv
    from LuDosimetryLib.report import Report
    from LuDosimetryLib.results import FITS_COLUMNS, TAC_COLUMNS, RunRecord, atomic_directory, write_csv

    from .alignment_logic import run_alignment
    from .dose_logic import run_dose
    from .nodes import full_precision_rows
    from .samples import load_patient_folder
    from .tac_logic import run_tac

    def progress(f: float, m: str) -> None:
        logging.info("%s: %3.0f %% %s", folder.name, 100 * f, m)

    slicer.mrmlScene.Clear(0)
    nodes = load_patient_folder(folder, cycle=args.cycle, calibration_store=args.calibration_store, progress=progress)
    aligned = run_alignment(nodes.spect[0], labels=nodes.labels, refine_kidneys=not args.no_refine_kidneys,
                            progress=progress)
    first = next(iter(aligned.aligned.values()))
    tac = run_tac(first, nodes.labels, calibration_store=args.calibration_store, progress=progress)
    dose = run_dose(first, nodes.labels, method=args.method, fits=tac.fits, budgets=tac.budgets, patient_dir=folder,
                    progress=progress)
    parameter_node({"patientFolder": folder, "cycle": args.cycle, "method": args.method,
                    "refineKidneys": not args.no_refine_kidneys, "calibrationStore": args.calibration_store or ""},
                   {"referenceSpect": nodes.spect[0], "labels": nodes.labels, "alignedSpect": first,
                    "tacTable": tac.tac_table, "fitTable": tac.fit_table, "tiaVolume": dose.tia_volume,
                    "doseVolume": dose.dose_volume, "statisticsTable": dose.statistics})
    record = RunRecord("Slicer batch (LuDosimetry/Scripts/batch.py)", inputs={"patient_folder": str(folder)},
                       parameters={"cycle": args.cycle, "method": args.method,
                                   "refine_kidneys": not args.no_refine_kidneys,
                                   "calibration_store": str(args.calibration_store or "")})
    record.stages["alignment"] = {k: dict(v) for k, v in aligned.quality.items()}
    record.stages["tac"] = {"calibration": tac.calibration_text or "none given"}
    report = Report(f"LuDosimetry: patient {nodes.patient_id}, cycle {args.cycle}")
    fits, doses = full_precision_rows(tac.fit_table), full_precision_rows(dose.statistics)
    report.section("tac", "Time-integrated activity").table(fits, ["region", "model", "tia_MBq_h",
                                                                    "tia_rel_uncertainty", "effective_half_life_h"])
    report.section("dose", "Absorbed dose").table(doses, ["region", "dose_Gy", "dose_method", "map_mean_dose_Gy",
                                                                "median_dose_Gy", "volume_mL"])
    dest = out / nodes.patient_id
    with atomic_directory(dest, overwrite=args.force) as tmp:
        write_csv(tmp / "tac.csv", full_precision_rows(tac.tac_table), TAC_COLUMNS)
        write_csv(tmp / "fits.csv", fits, FITS_COLUMNS)
        write_doses_csv(doses, tmp / "doses.csv")
        report.write(tmp / "report.html")
        if not slicer.util.saveScene(str(tmp / f"{nodes.patient_id}.mrb")):
            raise OSError(f"Slicer could not save the scene to {tmp / (nodes.patient_id + '.mrb')}")
        record.outputs.update({f"{nodes.patient_id}.mrb": "Slicer scene", "tac.csv": "TACs", "fits.csv": "fits",
                               "doses.csv": "dose statistics", "report.html": "report"})
        record.write(tmp)
    return dest


def main(argv: list[str]) -> int:
    """Process every patient folder; 0 when all succeeded, 1 otherwise."""
    args = parse_args(argv)
    failed = []
    for folder in args.patients:
        try:
            dest = process_patient(folder, args.out, args)
            print(f"{folder}: results in {dest}")
        except Exception as exc:  # one patient's failure must not stop the others
            failed.append(folder)
            print(f"{folder}: FAILED: {exc}")
            logging.error("%s", traceback.format_exc())
    print(f"{len(args.patients) - len(failed)} of {len(args.patients)} patients processed")
    return 1 if failed else 0
