"""``ludosimetry inspect PATIENT_DIR``: what ingest found, for a physicist to check at a glance."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import InputError
from ..ingest.plausibility import CHECKS
from ..results import RunRecord, to_jsonable
from ..units import MBq_to_Bq
from .options import number

HELP = "what ingest found: series, times, units, decay state, calibration, and where each value came from"

_COLUMNS = (("kind", "kind", "{}"), ("modality", "mod.", "{}"), ("cycle", "cyc", "{}"), ("timepoint", "tp", "{}"),
            ("time_h", "time p.i. h", "{:.3f}"),
            ("units", "units", "{}"), ("decay_state", "decay", "{}"), ("corrections", "corr.", "{}"),
            ("calibration", "calibration", "{}"), ("nuclide", "nuclide", "{}"),
            ("injected_activity_MBq", "inj. MBq", "{:.1f}"),
            ("total_activity_MBq", "FoV MBq", "{:.2f}"), ("series", "series", "{}"), ("note", "note", "{}"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the options of ``inspect``."""
    parser.add_argument("patient_dir", type=Path, help="patient folder (DICOM and/or NIfTI + sidecars)")
    parser.add_argument("--out", type=Path, help="write run.json (with the table and every source) into this folder")
    parser.add_argument("--force", action="store_true", help="overwrite an existing run.json in --out")
    parser.add_argument("--route", choices=("auto", "dicom", "nifti"), default="auto", help="which files to read")
    parser.add_argument("--calibration", type=Path, help="calibration store (default PATIENT_DIR/calibration.json)")
    parser.add_argument("--sensitivity", type=number("cps/MBq", minimum=0), metavar="CPS_PER_MBQ",
                        help="SPECT sensitivity (cps/MBq), overrides the calibration store")
    parser.add_argument("--dead-time-s", type=number("s", minimum=0, strict_minimum=False),
                        help="paralysable dead time τ (s), overrides the store")
    parser.add_argument("--injection-datetime", help="injection datetime (ISO, local time), overrides headers")
    parser.add_argument("--injected-activity-MBq", type=number("MBq", minimum=0),
                        help="net injected activity (MBq), overrides headers")
    parser.add_argument("--nuclide", default="Lu-177", help="expected therapy radionuclide (default Lu-177)")
    parser.add_argument("--sources", action="store_true", help="print the source of every value")
    parser.add_argument("--json", action="store_true",
                        help="print the series and every problem as one JSON document (for scripts)")
    parser.add_argument("--accept", action="append", default=[], choices=CHECKS, metavar="CHECK",
                        help=f"accept a failed plausibility check by name ({', '.join(CHECKS)}); repeatable")


def _overrides(args) -> dict:
    from ..ingest.dicomtags import Sourced

    out = {}
    for key, opt, conv in (("sensitivity_cps_per_MBq", "--sensitivity", float), ("dead_time_s", "--dead-time-s", float),
                           ("injection_datetime", "--injection-datetime", str),
                           ("injected_activity_Bq", "--injected-activity-MBq", MBq_to_Bq)):
        v = getattr(args, opt[2:].replace("-", "_"))
        if v is not None:
            out[key] = Sourced(conv(v), f"command line {opt} {v}")
    return out


def _fmt(value, pattern: str) -> str:
    if value is None or value == "":
        return "-"
    try:
        return pattern.format(value)
    except (ValueError, TypeError):
        return str(value)


def format_table(rows) -> str:
    """A fixed-width text table of the inspect rows."""
    cells = [[title for _, title, _ in _COLUMNS]]
    for r in rows:
        cells.append([_fmt(r.get(k), f) for k, _, f in _COLUMNS])
    widths = [max(len(c[i]) for c in cells) for i in range(len(_COLUMNS))]
    widths[8] = min(widths[8], 48)  # calibration
    lines = []
    for c in cells:
        lines.append("  ".join(x[:w].ljust(w) for x, w in zip(c, widths)).rstrip())
    return "\n".join(lines)


def run(args) -> int:
    """Inspect a patient folder; print the table; write run.json with --out."""
    from ..calibration.store import CalibrationStore
    from ..ingest import inspect_patient
    from ..results import atomic_directory, check_output_folder

    if args.out is not None:
        check_output_folder(args.out, overwrite=True, inputs=[args.patient_dir, args.calibration])
    if args.out is not None and (args.out / "run.json").exists() and not args.force:
        raise InputError("run.json exists (use --force to overwrite)", source=str(args.out / "run.json"))
    store = CalibrationStore.load(args.calibration, required=True) if args.calibration else None
    record = RunRecord(command="ludosimetry inspect")
    record.inputs["patient_dir"] = str(args.patient_dir)
    if not args.patient_dir.is_dir():
        raise InputError("patient folder does not exist or is not a folder", source=str(args.patient_dir))
    res = inspect_patient(args.patient_dir, calibration_store=store, overrides=_overrides(args),
                          expected_nuclide=args.nuclide, record=record, route=args.route, accept=args.accept,
                          diagnose=True)
    status = 2 if res.blocking else 0
    if args.out is not None and not res.blocking:  # a folder that cannot run gets no results folder
        record.outputs["run.json"] = ("ingest summary: one row per series with the source of each value, and every "
                                      "problem found (stages.ingest.problems)")
        if args.out.exists():
            record.write(args.out)
        else:
            with atomic_directory(args.out, inputs=[args.patient_dir, args.calibration]) as tmp:
                record.write(tmp)
    if args.json:
        print(json.dumps(to_jsonable(diagnosis_document(res)), indent=1, ensure_ascii=False))
        return status
    print(f"patient {res.patient.patient_id} ({res.route} route): {len(res.patient.cycles)} cycle(s), "
          f"{sum(len(c.timepoints) for c in res.patient.cycles)} timepoint(s), {len(res.patient.pet_studies)} PET "
          f"stud{'y' if len(res.patient.pet_studies) == 1 else 'ies'}")
    print(format_table(res.rows))
    if args.sources:
        for r in res.rows:
            print(f"\n{r['series']}:")
            for k, v in (r.get("sources") or {}).items():
                print(f"  {k}: {v}")
    print(format_problems(res.problems))
    return status


def format_problems(problems) -> str:
    """The problems, blocking ones first and marked, one per line, with a closing verdict."""
    if not problems:
        return "no problems found"
    ordered = sorted(problems, key=lambda p: not p.blocking)
    n_block = sum(p.blocking for p in problems)
    lines = [f"{len(problems)} problem(s), {n_block} blocking 'ludosimetry run':"]
    lines += [f"  [{'BLOCKING' if p.blocking else 'warning '}] {p.message}" for p in ordered]
    return "\n".join(lines)


def diagnosis_document(res) -> dict:
    """What ``inspect --json`` prints: the patient, every series and every problem."""
    p = res.patient
    return {"patient": p.patient_id, "route": res.route, "cycles": len(p.cycles),
            "timepoints": sum(len(c.timepoints) for c in p.cycles), "pet_studies": len(p.pet_studies),
            "series": list(res.rows), "problems": [x.to_dict() for x in res.problems],
            "blocking": len(res.blocking), "ready_to_run": not res.blocking}
