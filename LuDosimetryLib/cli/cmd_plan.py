"""``ludosimetry plan LEDGER --out DIR``: the next cycle's activity and the cumulative ledger.

Reads and validates the patient's ledger (JSON), proposes the next cycle's activity from renal
dosimetry (:func:`LuDosimetryLib.planning.plan_next_cycle`), prints every number with its
source, and writes ``plan.json``, ``ledger.csv`` (the ledger's CSV view with the planned cycle's rows,
``dosimetry_method = planned``), ``report.html``
(planning section) and ``run.json`` into DIR. The ledger itself is not modified: after the
cycle is given, its entry is appended with the dosimetry of that cycle.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import math
from dataclasses import replace
from pathlib import Path

from ..errors import InputError
from ..planning.cohort_table import read_cohort_table
from ..planning.ledger import LEDGER_CSV_COLUMNS, ORGANS, ledger_rows, read_ledger
from ..planning.limits import LIMIT_NAMES, RISK_STRATA
from ..planning.prescription import MODES, PlanSettings, plan_next_cycle
from ..report import Report
from ..results import RunRecord, atomic_directory, check_output_folder, to_jsonable, write_csv, write_json
from ..units import BQ_PER_GBQ

HELP = "next-cycle activity from renal dosimetry, and the cumulative dose ledger"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the arguments of ``ludosimetry plan``."""
    parser.add_argument("ledger", type=Path, help="the patient's ledger (JSON, see docs/planning.md)")
    parser.add_argument("--out", type=Path, required=True, help="results folder to write")
    parser.add_argument("--force", action="store_true", help="replace an existing results folder")
    parser.add_argument("--mode", choices=MODES, default="kidney_dose_per_cycle", help="how the target is set")
    parser.add_argument("--prescribed-kidney-dose-Gy", type=float, help="kidney absorbed dose per cycle (Gy)")
    parser.add_argument("--cohort-table", type=Path, help="phase-1 cohort table CSV (escalation group → dose)")
    parser.add_argument("--group", help="escalation group (default: the ledger's escalation_group)")
    parser.add_argument("--risk-stratum", choices=RISK_STRATA,
                        help="toxicity-risk stratum whose kidney limits apply (default: the ledger's, else high)")
    parser.add_argument("--kidney-dose-limit-Gy", type=float,
                        help="cumulative kidney absorbed-dose limit (Gy; default: the reference limit of the stratum)")
    parser.add_argument("--kidney-bed-limit-Gy", type=float,
                        help="cumulative kidney BED limit (Gy; default: the reference limit of the stratum)")
    parser.add_argument("--override-limit", action="append", default=[], choices=LIMIT_NAMES, metavar="NAME",
                        help="loosen (with a value above it) or drop (without a value) a reference limit: "
                             f"{', '.join(LIMIT_NAMES)} (repeatable)")
    parser.add_argument("--epsilon", type=float, help="accepted probability of exceeding the kidney BED limit")
    parser.add_argument("--remaining-cycles", type=int,
                        help="cycles (this one included) sharing the remaining cumulative budget "
                             "(default: those left in the protocol, 6 standard + 3 salvage)")
    parser.add_argument("--min-activity-GBq", type=float, default=0.0, help="minimum activity (GBq)")
    parser.add_argument("--max-activity-GBq", type=float,
                        help="maximum activity per cycle (GBq; default: the reference maximum)")
    parser.add_argument("--step-GBq", type=float, default=0.1, help="dispensable activity step (GBq; default 0.1)")
    parser.add_argument("--organ-limit", action="append", default=[], metavar="ORGAN=GY",
                        help="cumulative absorbed-dose limit of another organ at risk (Gy)")
    parser.add_argument("--organ-limit-action", choices=("reduce", "warn"), default="reduce")
    parser.add_argument("--d-source", default="last_measured",
                        help="'last_measured', 'mean_measured' or a cycle number")
    parser.add_argument("--population-prior", action="append", default=[], metavar="ORGAN=GY_PER_GBQ:REL_U",
                        help="population d for an organ when the patient has no dosimetry (user-supplied)")
    parser.add_argument("--salvage", action="store_true", help="the next cycle is a salvage cycle")
    parser.add_argument("--planned-date", help="planned administration date (YYYY-MM-DD)")
    parser.add_argument("--alpha-beta-Gy", type=float, help="kidney α/β (Gy), overrides the ledger/reference value")
    parser.add_argument("--repair-half-time-h", type=float, help="kidney T_rep (h), overrides the ledger/reference")
    parser.add_argument("--require-verified-radiobiology", action="store_true",
                        help="refuse unverified reference α/β and T_rep for a BED prescription")


def _pairs(items: list[str], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        organ, sep, value = item.partition("=")
        if not sep or organ not in ORGANS:
            raise InputError(f"expected ORGAN=VALUE with ORGAN one of {', '.join(ORGANS)}, got {item!r}", source=what)
        out[organ] = value
    return out


def _float(text: str, what: str, unit: str = "", *, positive: bool = True) -> float:
    try:
        v = float(text)
    except ValueError:
        raise InputError(f"must be a number, got {text!r}", source=what) from None
    check_number(v, what, unit, minimum=0.0, strict=positive)
    return v


def check_number(value: float | None, option: str, unit: str, *, minimum: float | None = None, strict: bool = False,
                 maximum: float | None = None, strict_max: bool = False) -> None:
    """Refuse a non-finite or out-of-range option value, echoing it in the user's unit.

    Raises
    ------
    InputError
        ``"--min-activity-GBq: must be ≥ 0 GBq, got -5 GBq"``.
    """
    if value is None:
        return
    u = f" {unit}" if unit else ""
    rng = []
    if minimum is not None:
        rng.append(f"{'>' if strict else '≥'} {minimum:g}{u}")
    if maximum is not None:
        rng.append(f"{'<' if strict_max else '≤'} {maximum:g}{u}")
    need = f"must be a finite number {' and '.join(rng)}".rstrip()
    bad = not math.isfinite(value)
    if minimum is not None:
        bad |= value <= minimum if strict else value < minimum
    if maximum is not None:
        bad |= value >= maximum if strict_max else value > maximum
    if bad:
        raise InputError(f"{need}, got {value:g}{u}", source=option)


def validate_args(args: argparse.Namespace) -> None:
    """Every numeric option of ``plan`` in range (messages in the option's own unit)."""
    for opt, unit in (("prescribed_kidney_dose_Gy", "Gy"), ("kidney_dose_limit_Gy", "Gy"),
                      ("kidney_bed_limit_Gy", "Gy"), ("max_activity_GBq", "GBq"), ("step_GBq", "GBq"),
                      ("alpha_beta_Gy", "Gy"), ("repair_half_time_h", "h")):
        check_number(getattr(args, opt), "--" + opt.replace("_", "-"), unit,
                     minimum=0.0, strict=True)
    check_number(args.min_activity_GBq, "--min-activity-GBq", "GBq", minimum=0.0)
    check_number(args.epsilon, "--epsilon", "", minimum=0.0, strict=True, maximum=0.5, strict_max=True)
    if args.remaining_cycles is not None and args.remaining_cycles < 1:
        raise InputError(f"must be an integer ≥ 1, got {args.remaining_cycles}", source="--remaining-cycles")


def settings_from_args(args: argparse.Namespace, ledger) -> tuple[PlanSettings, dict]:
    """PlanSettings and the ledger's radiobiology overrides from the command line (validated)."""
    validate_args(args)
    src = {}
    prescribed = args.prescribed_kidney_dose_Gy
    dose_limit, bed_limit = args.kidney_dose_limit_Gy, args.kidney_bed_limit_Gy
    for name, v in (("prescribed_kidney_dose_Gy", prescribed), ("kidney_dose_limit_Gy", dose_limit),
                    ("kidney_bed_limit_Gy", bed_limit), ("epsilon", args.epsilon),
                    ("remaining_cycles", args.remaining_cycles), ("risk_stratum", args.risk_stratum)):
        if v is not None:
            src[name] = "command line"
    if args.cohort_table is not None:
        groups = read_cohort_table(args.cohort_table)
        group = args.group or ledger.escalation_group
        if not group:
            raise InputError("a cohort table needs the patient's escalation group (ledger escalation_group or --group)",
                             source="--group")
        if group not in groups:
            raise InputError(f"group {group!r} is not in the cohort table (have {', '.join(groups)})", source="--group")
        g = groups[group]
        if prescribed is None:
            prescribed, src["prescribed_kidney_dose_Gy"] = g.prescribed_kidney_dose_per_cycle_Gy, g.source
        if dose_limit is None and g.kidney_dose_limit_Gy is not None:
            dose_limit, src["kidney_dose_limit_Gy"] = g.kidney_dose_limit_Gy, g.source
        if bed_limit is None and g.kidney_bed_limit_Gy is not None:
            bed_limit, src["kidney_bed_limit_Gy"] = g.kidney_bed_limit_Gy, g.source
    limits = {k: _float(v, f"--organ-limit {k}", "Gy") for k, v in _pairs(args.organ_limit, "--organ-limit").items()}
    prior = {}
    for organ, v in _pairs(args.population_prior, "--population-prior").items():
        d, sep, u = v.partition(":")
        prior[organ] = (_float(d, f"--population-prior {organ}", "Gy/GBq") / BQ_PER_GBQ,
                        _float(u, f"--population-prior {organ} (relative uncertainty)", positive=False) if sep else 0.0)
    src.update(max_activity_Bq="command line", activity_step_Bq="command line (--step-GBq)",
               organ_dose_limits_Gy="command line", min_activity_Bq="command line")
    planned = None
    if args.planned_date is not None:
        try:
            planned = _dt.date.fromisoformat(args.planned_date)
        except ValueError:
            raise InputError(f"must be a date YYYY-MM-DD, got {args.planned_date!r}", source="--planned-date") from None
    d_source = int(args.d_source) if str(args.d_source).isdigit() else args.d_source
    settings = PlanSettings(
        mode=args.mode, prescribed_kidney_dose_Gy=prescribed, kidney_dose_limit_Gy=dose_limit,
        kidney_bed_limit_Gy=bed_limit, epsilon=args.epsilon, remaining_cycles=args.remaining_cycles,
        min_activity_Bq=args.min_activity_GBq * BQ_PER_GBQ,
        max_activity_Bq=None if args.max_activity_GBq is None else args.max_activity_GBq * BQ_PER_GBQ,
        activity_step_Bq=args.step_GBq * BQ_PER_GBQ, organ_dose_limits_Gy=limits,
        organ_limit_action=args.organ_limit_action, d_source=d_source, population_prior=prior,
        salvage=args.salvage, planned_date=planned,
        require_verified_radiobiology=args.require_verified_radiobiology, sources=src,
        risk_stratum=args.risk_stratum, override_limits=frozenset(args.override_limit))
    radio = {}
    if args.alpha_beta_Gy is not None:
        radio["alpha_beta_Gy"] = args.alpha_beta_Gy
    if args.repair_half_time_h is not None:
        radio["repair_half_time_h"] = args.repair_half_time_h
    return settings, radio


def proposal_lines(proposal) -> list[str]:
    """The proposal as printable lines, each number with its source; ledger limit flags first."""
    head = (f"patient {proposal.patient_id}: cycle {proposal.cycle} ({proposal.kind}), mode {proposal.mode}: "
            + (f"REFUSED ({proposal.reason})" if proposal.refused
               else f"{proposal.activity_Bq / BQ_PER_GBQ:.2f} GBq ({proposal.reason})"))
    lines = [head]
    lines.extend(f"  LEDGER OVER LIMIT: {f.message}" for f in proposal.limit_flags)
    for v in proposal.values:
        val = "none" if v.value is None else f"{v.value:.4g}" if isinstance(v.value, float) else str(v.value)
        unit = "" if v.unit in ("1", "") or v.value is None else f" {v.unit}"
        lines.append(f"  {v.name} = {val}{unit}   [{v.source}]")
    for c in proposal.constraints:
        lines.append(f"  constraint {c['name']}: ≤ {c['max_activity_Bq'] / BQ_PER_GBQ:.4g} GBq   [{c['source']}]")
    for organ, e in proposal.expected.items():
        extra = "".join(f", {k} = {e[k]:.4g}" for k in ("bed_Gy", "cumulative_bed_Gy", "p_exceed_bed_limit") if k in e)
        lines.append(f"  expected {organ}: dose {e['dose_Gy']:.4g} Gy (u = {e['dose_rel_uncertainty']:.2g}), "
                     f"cumulative {e['cumulative_dose_Gy']:.4g} Gy{extra}   [d: {e['d_source']}]")
    lines.extend(f"  WARNING: {w}" for w in proposal.warnings if not w.startswith("LEDGER OVER LIMIT"))
    return lines


def planned_rows(ledger, proposal) -> list[dict]:
    """CSV rows of the proposed (not yet administered) cycle, one per organ."""
    if proposal.refused:
        return []
    return [{"patient_id": ledger.patient_id, "cycle": proposal.cycle, "kind": proposal.kind,
             "administered_activity_GBq": proposal.activity_Bq / BQ_PER_GBQ, "dosimetry_method": "planned",
             "region_kind": "organ", "organ": organ, "dose_per_activity_Gy_per_GBq": e["d_Gy_per_GBq"],
             "dose_Gy": e["dose_Gy"], "dose_rel_uncertainty": e["dose_rel_uncertainty"], "bed_Gy": e.get("bed_Gy"),
             "cumulative_dose_Gy": e["cumulative_dose_Gy"], "cumulative_bed_Gy": e.get("cumulative_bed_Gy"),
             "source": f"proposal, not administered (d: {e['d_source']})"} for organ, e in proposal.expected.items()]


def run(args: argparse.Namespace) -> int:
    """Plan the next cycle and write the results folder."""
    inputs = [args.ledger, *([args.cohort_table] if args.cohort_table is not None else [])]
    check_output_folder(args.out, overwrite=args.force, inputs=inputs)  # before any work (shared with every command)
    ledger = read_ledger(args.ledger)
    settings, radio = settings_from_args(args, ledger)
    if radio:
        merged = {k: dict(v) for k, v in ledger.radiobiology.items()}
        merged.setdefault("kidney", {}).update(radio)
        ledger = replace(ledger, radiobiology=merged)
    proposal = plan_next_cycle(ledger, settings)
    record = RunRecord(command="ludosimetry plan")
    record.inputs["ledger"] = {"path": str(args.ledger), "sha256": hashlib.sha256(args.ledger.read_bytes()).hexdigest()}
    if args.cohort_table is not None:
        record.inputs["cohort_table"] = {"path": str(args.cohort_table),
                                         "sha256": hashlib.sha256(args.cohort_table.read_bytes()).hexdigest()}
    record.parameters["planning"] = to_jsonable(settings)
    for w in proposal.warnings:
        record.warn(w, stage="planning", source=args.ledger.name)
    report = Report(f"LuDosimetry plan: patient {ledger.patient_id}")
    sec = report.section("planning", "Planning: next cycle and ledger")
    for f in proposal.limit_flags:
        sec.paragraph(f"LEDGER OVER LIMIT: {f.message}", css_class="warn")
    sec.paragraph(proposal_lines(proposal)[0])
    sec.table([{"quantity": v.name, "value": v.value, "unit": v.unit, "source": v.source} for v in proposal.values],
              ["quantity", "value", "unit", "source"], caption="Every number of the proposal and its source")
    sec.table([{"constraint": c["name"], "max_activity_GBq": c["max_activity_Bq"] / BQ_PER_GBQ, "source": c["source"]}
               for c in proposal.constraints], ["constraint", "max_activity_GBq", "source"], caption="Constraints")
    sec.table([{"organ": k, **v} for k, v in proposal.expected.items()], caption="Expected doses of the proposal")
    sec.table(ledger_rows(ledger), caption="Ledger (cycles given so far)")
    for w in proposal.warnings:
        if not w.startswith("LEDGER OVER LIMIT"):
            sec.paragraph(f"Warning: {w}", css_class="warn")
    try:
        with atomic_directory(args.out, overwrite=args.force, inputs=[args.ledger, args.cohort_table]) as tmp:
            write_json(tmp / "plan.json", {"proposal": proposal, "activity_GBq": proposal.activity_Bq / BQ_PER_GBQ,
                                           "ledger_over_limit": bool(proposal.limit_flags), "settings": settings})
            write_csv(tmp / "ledger.csv", ledger_rows(ledger) + planned_rows(ledger, proposal), LEDGER_CSV_COLUMNS,
                      extra_columns=False)
            report.write(tmp / "report.html")
            record.outputs.update({"plan.json": "the proposal with sources",
                                   "ledger.csv": "ledger CSV view + the planned cycle",
                                   "report.html": "planning section"})
            record.write(tmp)
    except OSError as exc:
        raise InputError(f"cannot write the results folder: {exc.strerror or exc}", source=str(args.out)) from None
    print("\n".join(proposal_lines(proposal)))
    return 0
