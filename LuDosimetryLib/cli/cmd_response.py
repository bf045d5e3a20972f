"""``ludosimetry response TABLE.csv --out DIR``: tumour dose against PSA and PSMA-PET response."""

from __future__ import annotations

import argparse
from pathlib import Path

from .options import integer, number

HELP = "dose–response statistics and plots (one row per lesion; see docs/statistics.md for the columns)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("table", type=Path, help="CSV: patient, lesion, dose_Gy, mass_g, psa_baseline_ng_per_mL, "
                        "psa_best_ng_per_mL [, suv_*, volume_*_mL, pfs_months, pfs_event]")
    parser.add_argument("--out", type=Path, required=True, help="results folder to create")
    parser.add_argument("--outcome", default="psa50",
                        help="binary outcome by name: psa50 (default), pcwg3_response, pcwg3_no_progression, "
                             "recip_response, recip_no_progression, combined (biomarker trial: no progression by "
                             "PSA nor PSMA PET vs progression); the report states which")
    parser.add_argument("--psa-series", type=Path, default=None,
                        help="CSV patient, day, psa_ng_per_mL (days after baseline): PCWG3 category at the landmark")
    parser.add_argument("--patients-dir", type=Path, default=None,
                        help="folder of patient folders: PSMA-PET lesion segmentations in <patient>/psma_pet/<date>/ "
                             "give the total tumour volumes and new lesions for RECIP 1.0 (docs/response.md)")
    parser.add_argument("--landmark-weeks", type=number("weeks", minimum=0), default=12.0,
                        help="PCWG3 assessment time for --psa-series (default 12 weeks: after cycle 2)")
    parser.add_argument("--window-weeks", type=number("weeks", minimum=0, strict_minimum=False), default=3.0,
                        help="± window around the landmark (default 3)")
    parser.add_argument("--dose-groups", default="youden",
                        help="survival dose groups: 'youden' (PSA50 threshold), 'median', or a dose in Gy")
    parser.add_argument("--bootstrap", type=integer(100), default=1000, help="bootstrap resamples (default 1000)")
    parser.add_argument("--seed", type=integer(0, 2**32 - 1), default=0)
    parser.add_argument("--force", action="store_true", help="replace an existing results folder")


def run(args: argparse.Namespace) -> int:
    from ..report import Report
    from ..response.categories import outcome_definition
    from ..response.outputs import write_response_results
    from ..response.table import apply_psa_series, apply_psma_segmentations, read_psa_series, read_response_table
    from ..results import RunRecord, atomic_directory

    outcome_definition(args.outcome)
    patients = read_response_table(args.table)
    notes = []
    if args.psa_series is not None:
        patients, notes = apply_psa_series(patients, read_psa_series(args.psa_series),
                                           landmark_day=7 * args.landmark_weeks, window_days=7 * args.window_weeks)
    if args.patients_dir is not None:
        patients, more = apply_psma_segmentations(patients, args.patients_dir, landmark_day=7 * args.landmark_weeks,
                                                  window_days=7 * args.window_weeks)
        notes += more
    record = RunRecord("ludosimetry response", inputs={"table": str(args.table),
                                                       "psa_series": str(args.psa_series or "")},
                       parameters={"response": {"outcome": args.outcome, "dose_groups": args.dose_groups,
                                                "bootstrap": args.bootstrap, "seed": args.seed,
                                                "landmark_weeks": args.landmark_weeks,
                                                "window_weeks": args.window_weeks}})
    for w in notes:
        record.warn(w, stage="response")
    report = Report("Tumour dose and response")
    with atomic_directory(args.out, overwrite=args.force, inputs=[args.table]) as tmp:
        res = write_response_results(patients, tmp, report=report, outcome=args.outcome, group_rule=args.dose_groups,
                                     n_bootstrap=args.bootstrap, seed=args.seed)
        for w in res.get("warnings", []):
            record.warn(w, stage="response")
        report.write(tmp / "report.html")
        record.write(tmp)
    print(f"dose–response of {len(patients)} patients (outcome {args.outcome}) written to {args.out}")
    return 0
