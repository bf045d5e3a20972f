"""``ludosimetry report RESULTS_DIR``: write the patient (or cohort) report of a results folder again."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = ("write report.html of a results folder of `run` (or of `cohort`) from its files; --pdf also prints it to "
        "A4 report.pdf, --screenshot saves its first screen as PNG (both through a headless Chromium)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", type=Path, help="results folder of `ludosimetry run` or `ludosimetry cohort`")
    parser.add_argument("--out", type=Path, default=None, help="HTML file to write (default RESULTS/report.html)")
    parser.add_argument("--ledger", type=Path, default=None,
                        help="the patient's dose ledger (JSON) for cumulative doses (default ledger.json beside the "
                             "results or in the patient folder, when present)")
    parser.add_argument("--log-scale", action="store_true", help="show the TACs on a log axis first")
    parser.add_argument("--pdf", action="store_true", help="also write report.pdf (A4) beside the HTML")
    parser.add_argument("--screenshot", type=Path, default=None, metavar="PNG",
                        help="also save the first screen (1400 × 900 px) of the report as PNG")


def run(args: argparse.Namespace) -> int:
    from ..errors import InputError

    folder = args.results
    if not folder.is_dir():
        raise InputError("is not a folder", source=str(folder))
    if (folder / "cohort.csv").is_file():
        from ..report.cohort import write_cohort_report

        html = write_cohort_report(folder, out=args.out)
        footer = f"cohort {folder.name}"
    else:
        import json

        from ..report.patient import write_patient_report

        html = write_patient_report(folder, ledger=args.ledger, out=args.out, log_scale=args.log_scale)
        ingest = json.loads((folder / "run.json").read_text(encoding="utf-8")).get("stages", {}).get("ingest", {})
        footer = f"{ingest.get('patient_id', folder.name)} · cycle {ingest.get('cycle', 1)}"
    print(f"report: {html}")
    status = 0
    if args.pdf:
        from ..report.browser import pdf_beside

        status = pdf_beside(html, footer=footer, command="report")
    if args.screenshot:
        from ..report.browser import html_screenshot

        print(f"screenshot: {html_screenshot(html, args.screenshot)}")
    return status
