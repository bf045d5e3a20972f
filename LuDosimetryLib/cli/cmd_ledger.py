"""``ludosimetry ledger``: create, extend and check a patient's dose ledger (docs/planning.md).

- ``ledger new PATIENT_ID --out LEDGER.json [--risk-stratum --phase --escalation-group]``: an
  empty ledger (``"cycles": []``) for a new patient;
- ``ledger add RESULTS_DIR --ledger LEDGER.json --out NEW.json``: append the cycle of a results
  folder of ``ludosimetry run`` (``doses.csv`` + ``run.json``: kidney d and its uncertainty, organs
  at risk, lesions, administration) so no number is copied by hand. The input ledger is never
  modified, unless ``--in-place`` is given: then the new ledger replaces it atomically and the
  previous version is kept beside it (``NAME.before-cycleN.json``). Refused: another patient's
  results, a cycle already present or not the next one, old doses.csv column names;
- ``ledger check LEDGER.json``: validate and summarise; exit status 1 when the ledger is over a
  reference limit (maximum activity, cumulative kidney dose or BED of the patient's stratum).
"""

from __future__ import annotations

import argparse
import datetime as _dt
from pathlib import Path

from ..errors import InputError
from ..output_folder import check_output_path
from ..planning.ledger import DOSIMETRY_METHODS, PHASES, Ledger, new_ledger, read_ledger, write_ledger
from ..planning.ledger_import import add_results_cycle, cycle_from_results
from ..planning.limits import RISK_STRATA, ledger_limit_flags
from ..results import atomic_write_bytes
from ..units import BQ_PER_GBQ

HELP = "create a patient's ledger, append a cycle from a results folder, or check a ledger"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register ``ledger new``, ``ledger add`` and ``ledger check``."""
    sub = parser.add_subparsers(dest="ledger_action", metavar="ACTION", required=True)
    p = sub.add_parser("new", help="an empty ledger for a new patient")
    p.add_argument("patient_id", help="the patient id (as in the DICOM PatientID / run.json)")
    p.add_argument("--out", type=Path, required=True, help="ledger file to write (JSON)")
    p.add_argument("--risk-stratum", choices=RISK_STRATA, help="toxicity-risk stratum (selects the kidney limits)")
    p.add_argument("--phase", type=int, choices=PHASES, help="trial phase (1 or 2)")
    p.add_argument("--escalation-group", help="phase-1 escalation group")
    p.add_argument("--force", action="store_true", help="replace an existing file")
    p = sub.add_parser("add", help="append the cycle of a results folder to a ledger")
    p.add_argument("results", type=Path, help="results folder of `ludosimetry run` (doses.csv, run.json)")
    p.add_argument("--ledger", type=Path, required=True, help="the patient's ledger (JSON; not modified)")
    out = p.add_mutually_exclusive_group(required=True)
    out.add_argument("--out", type=Path, help="new ledger file to write (JSON)")
    out.add_argument("--in-place", action="store_true",
                     help="replace --ledger atomically, keeping the previous version as NAME.before-cycleN.json")
    p.add_argument("--force", action="store_true", help="replace an existing --out file")
    p.add_argument("--kind", choices=("standard", "salvage"), help="cycle kind (default: standard up to cycle 6)")
    p.add_argument("--dosimetry-method", default="full_protocol",
                   choices=[m for m in DOSIMETRY_METHODS if m not in ("none", "pet_prediction")],
                   help="how the results were measured (default full_protocol)")
    p.add_argument("--assume-rel-uncertainty", type=float, metavar="U",
                   help="relative uncertainty (k = 1) where doses.csv has none (recorded as an assumption)")
    p.add_argument("--administration-date", help="YYYY-MM-DD, when run.json has no injection date")
    p.add_argument("--note", default="", help="free text stored with the cycle")
    p = sub.add_parser("check", help="validate a ledger and show its cycles and limit flags")
    p.add_argument("ledger", type=Path, help="the patient's ledger (JSON)")


def summary_lines(led: Ledger) -> list[str]:
    """One line per cycle (activity, kidney dose and cumulative with uncertainties), then the limit flags."""
    lines = [f"patient {led.patient_id}: {len(led.cycles)} cycle(s), risk stratum {led.risk_stratum or 'not set'}, "
             f"phase {led.phase or 'not set'}, escalation group {led.escalation_group or 'not set'}"]
    for c in led.cycles:
        k, cum = c.organs["kidney"], c.cumulative["kidney"]
        bed = "" if cum.bed_Gy is None else f", BED {cum.bed_Gy:.3g} Gy (u = {cum.bed_rel_uncertainty:.2g})"
        lines.append(f"  cycle {c.cycle} ({c.kind}) {c.administration_date}: "
                     f"{c.administered_activity_Bq / BQ_PER_GBQ:.3g} GBq, kidney "
                     f"{k.dose_per_activity_Gy_per_Bq * BQ_PER_GBQ:.3g} Gy/GBq (u = "
                     f"{k.dose_rel_uncertainty:.2g}, shared {k.shared:.2g}) → {k.dose_Gy:.3g} Gy; cumulative "
                     f"{cum.dose_Gy:.3g} Gy (u = {cum.dose_rel_uncertainty:.2g}){bed}; {len(c.lesions)} lesion(s)")
    lines.extend(f"  NOTE: {w}" for w in led.read_warnings)
    lines.extend(f"  LEDGER OVER LIMIT: {f.message}" for f in ledger_limit_flags(led))
    return lines


def _check_new_file(out: Path, force: bool, inputs: list[Path]) -> None:
    try:
        check_output_path(out, inputs)  # the one input guard of every command
    except InputError as exc:
        raise InputError(f"{exc.reason}; use --in-place to replace the ledger", source=exc.source) from None
    if out.exists() and not force:
        raise InputError("exists (use --force to replace it)", source=str(out))
    if out.is_dir():
        raise InputError("is a folder; give the ledger file name", source=str(out))


def _write(path: Path, led: Ledger) -> None:
    try:
        write_ledger(path, led)
    except OSError as exc:
        raise InputError(f"cannot write the ledger: {exc.strerror or exc}", source=str(path)) from None


def _read_checked(path: Path) -> Ledger:
    """The ledger, with its follow-up and outcomes validated as ``ludosimetry trial`` reads them.

    The reader carries them through unmodified (unknown keys included); the ledger commands refuse
    what the trial module would refuse, so a bad entry is found when it is checked or extended.
    """
    from ..trial.followup import follow_up_from_ledger

    led = read_ledger(path)
    follow_up_from_ledger({"follow_up": list(led.follow_up), "outcomes": led.outcomes}, source=str(path),
                          start_date=min((c.administration_date for c in led.cycles), default=None))
    return led


def run(args: argparse.Namespace) -> int:
    """Dispatch ``ledger new|add|check``."""
    if args.ledger_action == "new":
        _check_new_file(args.out, args.force, [])
        led = new_ledger(args.patient_id, escalation_group=args.escalation_group, risk_stratum=args.risk_stratum,
                         phase=args.phase)
        _write(args.out, led)
        print(f"new ledger of patient {led.patient_id} written to {args.out}")
        return 0
    if args.ledger_action == "check":
        led = _read_checked(args.ledger)
        print("\n".join(summary_lines(led)))
        return 1 if ledger_limit_flags(led) else 0
    # add
    if args.assume_rel_uncertainty is not None and not (0 <= args.assume_rel_uncertainty < 10):
        raise InputError(f"must be a relative uncertainty in [0, 10), got {args.assume_rel_uncertainty:g}",
                         source="--assume-rel-uncertainty")
    date = None
    if args.administration_date:
        try:
            date = _dt.date.fromisoformat(args.administration_date)
        except ValueError:
            raise InputError(f"must be a date YYYY-MM-DD, got {args.administration_date!r}",
                             source="--administration-date") from None
    led = _read_checked(args.ledger)
    if not args.in_place:
        _check_new_file(args.out, args.force, [args.ledger, args.results])
    results = cycle_from_results(args.results, assumed_rel_uncertainty=args.assume_rel_uncertainty,
                                 administration_date=date)
    new = add_results_cycle(led, results, kind=args.kind, dosimetry_method=args.dosimetry_method, note=args.note)
    if args.in_place:
        n = len(new.cycles)
        keep = args.ledger.with_name(f"{args.ledger.stem}.before-cycle{n}{args.ledger.suffix}")
        if keep.exists():
            keep = keep.with_name(f"{keep.stem}.{_dt.datetime.now():%Y%m%dT%H%M%S}{args.ledger.suffix}")
        try:
            atomic_write_bytes(keep, args.ledger.read_bytes())
        except OSError as exc:
            raise InputError(f"cannot keep the previous version: {exc.strerror or exc}", source=str(keep)) from None
        _write(args.ledger, new)
        print(f"cycle {n} appended to {args.ledger} (previous version kept as {keep.name})")
    else:
        _write(args.out, new)
        print(f"cycle {len(new.cycles)} appended; new ledger written to {args.out} ({args.ledger} unchanged)")
    for w in results.warnings:
        print(f"  WARNING: {w}")
    print("\n".join(summary_lines(new)))
    return 0
