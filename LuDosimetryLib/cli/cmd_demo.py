"""``ludosimetry demo``: generate the sample patient once (cached), run the stages, write a results folder."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from . import progress_printer

HELP = ("generate (once) the demo-size synthetic patient under OUT/sample_patient and write "
        "OUT/results (run.json, report.html); the results folder is replaced at each run")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="demo_output", help="demo folder (default: demo_output)")
    parser.add_argument("--size", choices=("small", "demo"), default="demo", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample patient (default 0)")
    parser.add_argument("--force", action="store_true", help="regenerate the sample patient even if cached")
    parser.add_argument("--no-dicom", action="store_true", help="write the sample patient without DICOM")


def _cached(folder: Path, size: str, seed: int) -> bool:
    try:
        doc = json.loads((folder / "patient.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (doc.get("size") == size and doc.get("seed") == seed
            and all((folder / f).exists() for f in doc.get("written", [])))


def _summary_rows(truth: dict) -> list[dict]:
    cyc = truth["cycles"][0]
    rows = []
    for reg in truth["regions"]:
        name = reg["name"]
        rows.append({"region": name, "kind": reg["kind"], "volume_mL": reg["volume_mL"], "mass_g": reg["mass_g"],
                     "tia_MBq_h": cyc["tia_Bq_h"].get(name, 0.0) / 1e6, "mean_dose_Gy": cyc["dose_Gy"].get(name, 0.0),
                     "dose_per_activity_Gy_per_GBq": cyc["dose_per_activity_Gy_per_GBq"].get(name, 0.0)})
    for group in sorted({r["group"] for r in truth["regions"] if r["group"]} | {"red_marrow_total"}):
        rows.append({"region": group, "kind": "group", "tia_MBq_h": cyc["tia_Bq_h"][group] / 1e6,
                     "mean_dose_Gy": cyc["dose_Gy"][group],
                     "dose_per_activity_Gy_per_GBq": cyc["dose_per_activity_Gy_per_GBq"][group]})
    return rows


def run(args: argparse.Namespace) -> int:
    from ..phantom import generate_patient, write_patient_folder
    from ..report import Report
    from ..results import RunRecord, atomic_directory

    out = Path(args.out)
    sample = out / "sample_patient"
    show = progress_printer("demo ")
    record = RunRecord(command="ludosimetry demo")
    if args.force or not _cached(sample, args.size, args.seed):
        patient = generate_patient(args.size, seed=args.seed, progress=lambda f, m: show(0.6 * f, f"phantom: {m}"))
        write_patient_folder(patient, sample, force=True, dicom=False if args.no_dicom else None,
                             progress=lambda f, m: show(0.6 + 0.3 * f, f"write: {m}"))
    else:
        show(0.9, f"using cached sample patient {sample}")
    truth = json.loads((sample / "truth.json").read_text(encoding="utf-8"))
    record.inputs["patient"] = str(sample)
    record.parameters["phantom"] = {"size": args.size, "seed": args.seed, **truth.get("settings", {})}
    report = Report("LuDosimetry demo: synthetic 177Lu-PSMA-617 patient")
    sec = report.section("summary", "Sample patient (ground truth)")
    cyc = truth["cycles"][0]
    inj = cyc["injection"]
    times = ", ".join(f"{tp['time_h']:.1f}" for tp in cyc["timepoints"])
    sec.paragraph(f"Patient {truth['patient_id']} (size {truth['size']}, seed {truth['seed']}): "
                  f"{inj['activity_Bq'] / 1e9:.2f} GBq {inj['nuclide']} {inj['ligand']} injected "
                  f"{inj['datetime']}; SPECT/CT at {times} h "
                  "p.i. (three beds each). Doses are the true electron local-deposition doses (approximate).")
    sec.table(_summary_rows(truth), caption="True TIA and absorbed dose per region, cycle 1")
    beds = [{"timepoint": tp["label"], "bed": b["bed"], "acquisition_start": b["acquisition_start"],
             "time_h": b["time_h"], "activity_in_fov_MBq": b["activity_in_fov_Bq"] / 1e6,
             "live_fraction": b["live_fraction"], "total_counts": b["total_counts"]}
            for tp in cyc["timepoints"] for b in tp["beds"]]
    sec.table(beds, caption="SPECT beds")
    with atomic_directory(out / "results", overwrite=True) as tmp:
        report.write(tmp / "report.html")
        record.outputs["report.html"] = "summary of the sample patient's ground truth"
        record.write(tmp)
    show(1.0, f"results in {out / 'results'}")
    print(out / "results")
    return 0
