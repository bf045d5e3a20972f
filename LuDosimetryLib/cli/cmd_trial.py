"""``ludosimetry trial COHORT --out DIR``: a trial's endpoints from patients' ledgers."""

from __future__ import annotations

import argparse
from pathlib import Path

from .options import number

HELP = "trial endpoints from ledgers: DLTs and escalation, ORR/PSA50, AEs, PROMs, PFS/OS (docs/trial.md)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..trial.escalation import ESCALATION_RULES

    parser.add_argument("cohort", type=Path, help="folder of ledger JSON files, or a manifest (one ledger path per "
                        "line, or a CSV with a 'ledger' column)")
    parser.add_argument("--out", type=Path, required=True, help="results folder to create")
    parser.add_argument("--rule", default="3+3", choices=sorted(ESCALATION_RULES),
                        help="dose-escalation rule (default 3+3)")
    parser.add_argument("--dlt-window-weeks", type=number("weeks", minimum=0), default=12.0,
                        help="DLT window from cycle 1 (default 12)")
    parser.add_argument("--horizon-months", type=number("months", minimum=0), default=12.0,
                        help="best response (ORR, PSA50) and PROM response within this time (default 12)")
    parser.add_argument("--delayed-after-months", type=number("months", minimum=0, strict_minimum=False), default=12.0,
                        help="adverse events beginning after this are 'delayed' (up to 60 months; default 12)")
    parser.add_argument("--force", action="store_true", help="replace an existing results folder")


def run(args: argparse.Namespace) -> int:
    from ..errors import InputError
    from ..report import Report
    from ..results import RunRecord, atomic_directory
    from ..trial.cohort import read_trial_cohort
    from ..trial.outputs import write_trial_results

    for name in ("dlt_window_weeks", "horizon_months", "delayed_after_months"):
        if not getattr(args, name) > 0:
            raise InputError(f"must be > 0, got {getattr(args, name)}", source=f"--{name.replace('_', '-')}")
    patients = read_trial_cohort(args.cohort)
    params = {"rule": args.rule, "dlt_window_weeks": args.dlt_window_weeks, "horizon_months": args.horizon_months,
              "delayed_after_months": args.delayed_after_months}
    record = RunRecord("ludosimetry trial", inputs={"cohort": str(args.cohort),
                                                    "ledgers": [p.source for p in patients]},
                       parameters={"trial": params})
    report = Report("Trial endpoints")
    with atomic_directory(args.out, overwrite=args.force, inputs=[args.cohort]) as tmp:
        res = write_trial_results(patients, tmp, report=report, **params)
        for w in res["warnings"]:
            record.warn(w, stage="trial")
        report.write(tmp / "report.html")
        record.write(tmp)
    decisions = "; ".join(f"{r['escalation_group']}: {r['n_dlt']}/{r['n_dlt_evaluable']} → {r['decision']}"
                          for r in res["dlt"] if r["risk_stratum"] == "all")
    tail = f" ({decisions})" if decisions else ""
    print(f"trial endpoints of {len(patients)} patients written to {args.out}{tail}")
    return 0
