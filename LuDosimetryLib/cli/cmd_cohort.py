"""``ludosimetry cohort COHORT_DIR_OR_MANIFEST --out DIR``: many patients, locally or on Dask."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .options import integer

HELP = "run every patient of a cohort (local process pool, or a Dask cluster with --scheduler), resumable"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("cohort", type=Path, help="cohort folder (one subfolder per patient) or manifest CSV/JSON")
    parser.add_argument("--out", type=Path, required=True, help="cohort results folder (reused: finished, unchanged "
                        "patients are skipped)")
    parser.add_argument("--workers", type=integer(1), default=None, help="local worker processes (default: CPU count)")
    parser.add_argument("--scheduler", default=None, help="Dask scheduler address, e.g. tcp://127.0.0.1:8786")
    parser.add_argument("--parameters", type=Path, default=None, help="JSON file of pipeline parameters")
    parser.add_argument("--pipeline", default=None, help="per-patient function as module:function "
                        "(default LuDosimetryLib.pipeline:run_patient)")
    parser.add_argument("--pdf", action="store_true",
                        help="also print the cohort report to report.pdf (A4) through a headless Chromium")


def run(args: argparse.Namespace) -> int:
    from ..cohort.runner import DEFAULT_PIPELINE, discover_patients, run_cohort
    from ..cohort.summary import write_cohort_summary
    from ..errors import InputError
    from ..results import check_output_path
    from . import progress_printer

    check_output_path(args.out, [args.cohort, args.parameters])
    patients = discover_patients(args.cohort)
    params = {}
    if args.parameters:
        try:
            params = json.loads(args.parameters.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(f"cannot read parameters: {exc}", source=str(args.parameters)) from None
    summary = run_cohort(patients, args.out, parameters=params, workers=args.workers, scheduler=args.scheduler,
                         pipeline=args.pipeline or DEFAULT_PIPELINE, progress=progress_printer("cohort "))
    from ..cohort.statistics import write_cohort_statistics

    def _statistics(report, out):
        done = write_cohort_statistics(args.cohort, out, summary.by_status("done") + summary.by_status("skipped"),
                                       report=report)
        report.section("cohort").paragraph("Cohort statistics: " + "; ".join(f"{k}: {v}" for k, v in done.items()))

    report = write_cohort_summary(summary, args.out, extra_sections=_statistics)
    print(f"{len(summary.by_status('done'))} done, {len(summary.by_status('skipped'))} skipped, "
          f"{len(summary.by_status('failed'))} failed; report: {report}")
    for o in summary.outcomes:
        if o.status == "failed":
            print(f"  {o.patient_id}: {o.error.splitlines()[0]}")
    status = 0 if not summary.by_status("failed") else 3
    if args.pdf:
        from ..report.browser import pdf_beside

        status = pdf_beside(report, footer=f"cohort {Path(args.out).name}", command="cohort") or status
    return status
