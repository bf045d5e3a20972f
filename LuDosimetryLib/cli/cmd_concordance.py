"""``ludosimetry concordance TABLE.csv --out DIR``: agreement of predicted and measured doses."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = ("agreement statistics and plots of predicted vs measured doses "
        "(columns: patient, region, predicted_Gy, measured_Gy)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("table", type=Path, help="CSV with patient, region, predicted_Gy, measured_Gy "
                        "[, kind, predicted_sd_Gy, measured_sd_Gy]")
    parser.add_argument("--out", type=Path, required=True, help="results folder to create")
    parser.add_argument("--bootstrap", type=int, default=2000, help="cluster-bootstrap resamples (default 2000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the resampling (default 0)")
    parser.add_argument("--force", action="store_true", help="replace an existing results folder")


def run(args: argparse.Namespace) -> int:
    from ..concordance.analysis import CONCORDANCE_COLUMNS, concordance_by_group, concordance_rows
    from ..concordance.plots import plot_bland_altman, plot_scatter
    from ..concordance.table import read_concordance_table
    from ..report import Report
    from ..results import RunRecord, atomic_directory, write_csv, write_json

    pairs = read_concordance_table(args.table)
    results = concordance_by_group(pairs, n_bootstrap=args.bootstrap, seed=args.seed)
    rows = concordance_rows(results)
    record = RunRecord("ludosimetry concordance", inputs={"table": str(args.table)},
                       parameters={"concordance": {"bootstrap": args.bootstrap, "seed": args.seed}})
    report = Report("Concordance of predicted and measured absorbed doses")
    sec = report.section("concordance", "Concordance")
    sec.paragraph(f"{len(pairs)} dose pairs from {len({p.patient for p in pairs})} patients. Differences are "
                  "predicted − measured; lesions nested in patients are analysed with a mixed model and a cluster "
                  "bootstrap (columns nested_*).")
    sec.table(rows, ["group", "scope", "n", "n_patients", "ccc", "icc_A1", "ba_bias_Gy", "ba_loa_low_Gy",
                     "ba_loa_high_Gy", "nested_bias_Gy", "nested_loa_low_Gy", "nested_loa_high_Gy", "deming_slope",
                     "passing_bablok_slope"])
    with atomic_directory(args.out, overwrite=args.force) as tmp:
        write_json(tmp / "concordance.json", [{"group": g.group, "scope": g.scope, "n": g.n,
                                                "n_patients": g.n_patients, **g.results} for g in results])
        write_csv(tmp / "concordance.csv", rows, CONCORDANCE_COLUMNS)
        for g in results:
            if g.scope != "cohort":
                continue
            members = [p for p in pairs if p.group == g.group]
            ba = g.results["bland_altman"]["difference"]
            plot_scatter(members, tmp / f"scatter_{g.group}.png", title=f"{g.group}: predicted vs measured")
            plot_bland_altman(members, tmp / f"bland_altman_{g.group}.png", bias=ba["bias"], loa=tuple(ba["loa"]),
                              title=f"{g.group}: Bland–Altman")
            sec.figure(f"scatter_{g.group}.png", f"{g.group}: predicted vs measured")
            sec.figure(f"bland_altman_{g.group}.png", f"{g.group}: Bland–Altman")
        report.write(tmp / "report.html")
        record.outputs = {"concordance.json": "all statistics", "concordance.csv": "one row per group"}
        record.write(tmp)
    print(f"concordance of {len(pairs)} pairs written to {args.out}")
    return 0
