"""``ludosimetry run PATIENT_DIR --out DIR``: the post-therapy chain for one patient."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..ingest.plausibility import CHECKS
from .options import integer, number

HELP = "the post-therapy chain for one patient: ingest, alignment, TACs, fits, TIA map, dose, report"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("patient", type=Path, help="patient folder (DICOM and/or NIfTI with sidecars, labels/)")
    parser.add_argument("--out", type=Path, required=True, help="results folder to create")
    parser.add_argument("--force", action="store_true", help="replace an existing results folder")
    parser.add_argument("--parameters", type=Path, default=None,
                        help="JSON file of pipeline settings (LuDosimetryLib.pipeline.PipelineSettings fields)")
    parser.add_argument("--cycle", type=integer(1, 9), default=None, help="therapy cycle to compute (default 1)")
    parser.add_argument("--no-align", action="store_true", help="do not register the timepoints (not recommended)")
    parser.add_argument("--dose-method", choices=("convolution", "led"), default=None,
                        help="kernel convolution (default) or local energy deposition")
    parser.add_argument("--no-photons", action="store_true", help="leave the photon part out of the dose")
    parser.add_argument("--kernel-energy", choices=("icrp107", "table"), default=None,
                        help="electron energy of the dose kernel: ICRP-107 (default) or the published S-value "
                             "tables' own (for comparisons with software using those tables; docs/kernels.md)")
    parser.add_argument("--sensitivity", type=number("cps/MBq", minimum=0), default=None, metavar="CPS_PER_MBQ",
                        help="camera sensitivity (cps/MBq), overriding the calibration store")
    parser.add_argument("--calibration", type=Path, default=None, help="calibration store (JSON)")
    parser.add_argument("--pdf", action="store_true",
                        help="also print report.html to report.pdf (A4) through a headless Chromium")
    parser.add_argument("--accept", action="append", default=[], choices=CHECKS, metavar="CHECK",
                        help="accept a failed plausibility check by name, as a warning in run.json instead of an "
                             f"error ({', '.join(CHECKS)}); repeatable")


def run(args: argparse.Namespace) -> int:
    from ..errors import InputError
    from ..pipeline import run_patient
    from ..results import atomic_directory
    from . import progress_printer

    params: dict = {}
    if args.parameters:
        try:
            params = json.loads(args.parameters.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(f"cannot read parameters: {exc}", source=str(args.parameters)) from None
    for key, value in (("cycle", args.cycle), ("dose_method", args.dose_method), ("kernel_energy", args.kernel_energy),
                       ("sensitivity_cps_per_MBq", args.sensitivity),
                       ("calibration", str(args.calibration) if args.calibration else None)):
        if value is not None:
            params[key] = value
    if args.accept:
        params["accept_checks"] = sorted({*params.get("accept_checks", ()), *args.accept})
    if args.no_align:
        params["align"] = False
    if args.no_photons:
        params["photons"] = False
    if not args.patient.is_dir():
        raise InputError("is not a folder", source=str(args.patient))
    if args.calibration is not None and not args.calibration.is_file():
        raise InputError("calibration store not found (leave --calibration out to use the patient folder's "
                         "calibration.json)", source=f"--calibration {args.calibration}")
    with atomic_directory(args.out, overwrite=args.force,
                          inputs=[args.patient, args.parameters, args.calibration]) as tmp:
        summary = run_patient(args.patient, tmp, parameters=params, progress=progress_printer("run "))
    print(f"patient {summary['patient']}, cycle {summary['cycle']}: {summary['regions']} regions; results in "
          f"{args.out} (report.html)")
    if args.pdf:
        from ..report.browser import pdf_beside

        return pdf_beside(args.out / "report.html", footer=f"{summary['patient']} · cycle {summary['cycle']}",
                          command="run")
    return 0
