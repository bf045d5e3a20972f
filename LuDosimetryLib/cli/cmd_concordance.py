"""``ludosimetry concordance TABLE.csv --out DIR``: agreement of predicted and measured doses."""

from __future__ import annotations

import argparse
from pathlib import Path

from .options import integer

HELP = ("agreement statistics and plots of predicted vs measured doses "
        "(columns: patient, region, predicted_Gy, measured_Gy)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("table", type=Path, help="CSV with patient, region, predicted_Gy, measured_Gy "
                        "[, kind, predicted_sd_Gy, measured_sd_Gy]")
    parser.add_argument("--out", type=Path, required=True, help="results folder to create")
    parser.add_argument("--bootstrap", type=integer(100), default=2000,
                        help="cluster-bootstrap resamples (default 2000)")
    parser.add_argument("--seed", type=integer(0, 2**32 - 1), default=0, help="seed of the resampling (default 0)")
    parser.add_argument("--force", action="store_true", help="replace an existing results folder")


def run(args: argparse.Namespace) -> int:
    from ..concordance.outputs import write_concordance_results
    from ..concordance.table import read_concordance_table
    from ..errors import InputError
    from ..report import Report
    from ..results import RunRecord, atomic_directory

    pairs = read_concordance_table(args.table)
    record = RunRecord("ludosimetry concordance", inputs={"table": str(args.table)},
                       parameters={"concordance": {"bootstrap": args.bootstrap, "seed": args.seed}})
    report = Report("Concordance of predicted and measured absorbed doses")
    with atomic_directory(args.out, overwrite=args.force, inputs=[args.table]) as tmp:
        try:
            write_concordance_results(pairs, tmp, report=report, n_bootstrap=args.bootstrap, seed=args.seed)
        except InputError as exc:  # name the file the group came from
            if exc.source != "concordance table":
                raise
            raise InputError(exc.reason, source=str(args.table)) from None
        report.write(tmp / "report.html")
        record.outputs = {"concordance.json": "all statistics", "concordance.csv": "one row per group"}
        record.write(tmp)
    print(f"concordance of {len(pairs)} pairs written to {args.out}")
    return 0
