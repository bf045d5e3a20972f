"""``ludosimetry response TABLE.csv --out DIR``: tumour dose against PSA and PSMA-PET response."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "dose–response statistics and plots (one row per lesion; see docs/statistics.md for the columns)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("table", type=Path, help="CSV: patient, lesion, dose_Gy, mass_g, psa_baseline_ng_per_mL, "
                        "psa_best_ng_per_mL [, suv_*, volume_*_mL, pfs_months, pfs_event]")
    parser.add_argument("--out", type=Path, required=True, help="results folder to create")
    parser.add_argument("--dose-groups", default="youden",
                        help="survival dose groups: 'youden' (PSA50 threshold), 'median', or a dose in Gy")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples (default 1000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--force", action="store_true", help="replace an existing results folder")


def run(args: argparse.Namespace) -> int:
    from ..report import Report
    from ..response.analysis import analyse_response, lesion_rows, patient_rows
    from ..response.plots import plot_dose_response, plot_kaplan_meier, plot_roc
    from ..response.table import read_response_table
    from ..results import RunRecord, atomic_directory, write_csv, write_json

    patients = read_response_table(args.table)
    res = analyse_response(patients, group_rule=args.dose_groups, n_bootstrap=args.bootstrap, seed=args.seed)
    prows = patient_rows(patients)
    record = RunRecord("ludosimetry response", inputs={"table": str(args.table)},
                       parameters={"response": {"dose_groups": args.dose_groups, "bootstrap": args.bootstrap,
                                                "seed": args.seed}})
    for w in res.get("warnings", []):
        record.warn(w, stage="response")
    report = Report("Tumour dose and response")
    sec = report.section("response", "Dose–response")
    sec.paragraph(f"{len(patients)} patients, {res['n_responders_psa50']} PSA50 responders.")
    sec.table(prows, ["patient", "n_lesions", "wholebody_tumour_dose_Gy", "psa_best_change_percent", "psa50"])
    with atomic_directory(args.out, overwrite=args.force) as tmp:
        write_json(tmp / "response.json", res)
        write_csv(tmp / "response.csv", prows, list(prows[0]))
        les = lesion_rows(patients)
        write_csv(tmp / "lesions.csv", les, list(les[0]))
        thr = res.get("youden_psa50", {}).get("threshold")
        plot_dose_response(prows, tmp / "dose_response.png", threshold_Gy=thr)
        sec.figure("dose_response.png", "Whole-body tumour dose vs best PSA change")
        if "roc_psa50" in res:
            plot_roc(res["roc_psa50"], tmp / "roc.png")
            sec.figure("roc.png", "ROC for PSA50")
        if "pfs" in res:
            plot_kaplan_meier(res["pfs"]["kaplan_meier"], tmp / "kaplan_meier.png",
                              threshold_Gy=res["pfs"]["threshold_Gy"])
            sec.figure("kaplan_meier.png", "PSA-PFS by dose group")
        report.write(tmp / "report.html")
        record.write(tmp)
    print(f"dose–response of {len(patients)} patients written to {args.out}")
    return 0
