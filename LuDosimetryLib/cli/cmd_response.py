"""``ludosimetry response TABLE.csv --out DIR``: tumour dose against PSA and PSMA-PET response."""

from __future__ import annotations

import argparse
from pathlib import Path

from .options import integer

HELP = "dose–response statistics and plots (one row per lesion; see docs/statistics.md for the columns)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("table", type=Path, help="CSV: patient, lesion, dose_Gy, mass_g, psa_baseline_ng_per_mL, "
                        "psa_best_ng_per_mL [, suv_*, volume_*_mL, pfs_months, pfs_event]")
    parser.add_argument("--out", type=Path, required=True, help="results folder to create")
    parser.add_argument("--dose-groups", default="youden",
                        help="survival dose groups: 'youden' (PSA50 threshold), 'median', or a dose in Gy")
    parser.add_argument("--bootstrap", type=integer(100), default=1000, help="bootstrap resamples (default 1000)")
    parser.add_argument("--seed", type=integer(0, 2**32 - 1), default=0)
    parser.add_argument("--force", action="store_true", help="replace an existing results folder")


def run(args: argparse.Namespace) -> int:
    from ..report import Report
    from ..response.outputs import write_response_results
    from ..response.table import read_response_table
    from ..results import RunRecord, atomic_directory

    patients = read_response_table(args.table)
    record = RunRecord("ludosimetry response", inputs={"table": str(args.table)},
                       parameters={"response": {"dose_groups": args.dose_groups, "bootstrap": args.bootstrap,
                                                "seed": args.seed}})
    report = Report("Tumour dose and response")
    with atomic_directory(args.out, overwrite=args.force, inputs=[args.table]) as tmp:
        res = write_response_results(patients, tmp, report=report, group_rule=args.dose_groups,
                                     n_bootstrap=args.bootstrap, seed=args.seed)
        for w in res.get("warnings", []):
            record.warn(w, stage="response")
        report.write(tmp / "report.html")
        record.write(tmp)
    print(f"dose–response of {len(patients)} patients written to {args.out}")
    return 0
