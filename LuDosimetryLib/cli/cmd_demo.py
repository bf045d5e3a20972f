"""``ludosimetry demo``: generate the sample patient once (cached), run the stages, write a results folder."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from . import progress_printer

HELP = ("generate (once) the demo-size synthetic patient under OUT/sample_patient, run every stage on it into "
        "OUT/results, then a small synthetic cohort (OUT/sample_cohort) into OUT/cohort; results are replaced "
        "at each run")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="demo_output", help="demo folder (default: demo_output)")
    parser.add_argument("--size", choices=("small", "demo"), default="demo", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample patient (default 0)")
    parser.add_argument("--force", action="store_true", help="regenerate the sample patient even if cached")
    parser.add_argument("--no-dicom", action="store_true", help="write the sample patient without DICOM")
    parser.add_argument("--cohort-patients", type=int, default=3,
                        help="patients in the synthetic cohort run at the end (0 to skip; default 3)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes for the cohort (default 2)")


def _cached(folder: Path, size: str, seed: int) -> bool:
    try:
        doc = json.loads((folder / "patient.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (doc.get("size") == size and doc.get("seed") == seed
            and all((folder / f).exists() for f in doc.get("written", [])))


def _truth_comparison(truth: dict):
    """A report hook writing truth_comparison.csv: the pipeline's TIA and mean dose beside the phantom's truth."""

    def hook(report, out: Path) -> None:
        from ..results import read_csv, read_doses_csv, reported_dose, write_csv

        cyc = truth["cycles"][0]
        fits = {r["region"]: r for r in read_csv(out / "fits.csv")}
        doses = {r["region"]: r for r in read_doses_csv(out / "doses.csv")}
        rows = []
        for region, tia_true in cyc["tia_Bq_h"].items():
            if region not in fits and region not in doses:
                continue
            tia = float(fits[region]["tia_Bq_h"]) if region in fits and fits[region]["tia_Bq_h"] else float("nan")
            d = reported_dose(doses[region]) if region in doses else None
            dose = float("nan") if d is None else d
            true_dose = cyc["dose_Gy"].get(region, float("nan"))
            rows.append({"region": region, "tia_MBq_h": tia / 1e6, "true_tia_MBq_h": tia_true / 1e6,
                         "tia_ratio": tia / tia_true if tia_true else float("nan"), "dose_Gy": dose,
                         "dose_method": doses.get(region, {}).get("dose_method", ""),
                         "true_led_dose_Gy": true_dose})
        write_csv(out / "truth_comparison.csv", rows, list(rows[0]) if rows else ["region"])
        # the patient report compares with truth.json itself, in its appendix

    return hook


def _run_cohort(out: Path, args: argparse.Namespace, show) -> Path:
    from ..cohort.runner import discover_patients, run_cohort
    from ..cohort.statistics import write_cohort_statistics
    from ..cohort.summary import write_cohort_summary
    from ..phantom.cohort import CohortSettings, write_synthetic_cohort

    cohort_dir = out / "sample_cohort"
    truth = cohort_dir / "cohort_truth.json"
    settings = CohortSettings(n_patients=args.cohort_patients, size="small", seed=args.seed, dicom=False)
    cached = truth.exists() and json.loads(truth.read_text(encoding="utf-8")).get("settings", {}).get(
        "n_patients") == args.cohort_patients
    if args.force or not cached:
        write_synthetic_cohort(cohort_dir, settings, force=True, progress=lambda f, m: show(0.7 + 0.1 * f, m))
    summary = run_cohort(discover_patients(cohort_dir), out / "cohort", workers=args.workers,
                         progress=lambda f, m: show(0.8 + 0.18 * f, f"cohort: {m}"))

    def _statistics(report, folder):
        done = write_cohort_statistics(cohort_dir, folder, summary.by_status("done") + summary.by_status("skipped"),
                                       report=report, n_bootstrap=300)
        report.section("cohort").paragraph("Cohort statistics: " + "; ".join(f"{k}: {v}" for k, v in done.items()))

    return write_cohort_summary(summary, out / "cohort", extra_sections=_statistics)


def run(args: argparse.Namespace) -> int:
    from ..phantom import generate_patient, write_patient_folder
    from ..pipeline import run_patient
    from ..results import atomic_directory

    out = Path(args.out)
    sample = out / "sample_patient"
    show = progress_printer("demo ")
    if args.force or not _cached(sample, args.size, args.seed):
        patient = generate_patient(args.size, seed=args.seed, kidney_motion=True,
                                   progress=lambda f, m: show(0.15 * f, f"phantom: {m}"))
        write_patient_folder(patient, sample, force=True, dicom=False if args.no_dicom else None,
                             progress=lambda f, m: show(0.15 + 0.1 * f, f"write: {m}"))
    else:
        show(0.25, f"using cached sample patient {sample}")
    truth = json.loads((sample / "truth.json").read_text(encoding="utf-8"))
    with atomic_directory(out / "results", overwrite=True) as tmp:
        run_patient(sample, tmp, progress=lambda f, m: show(0.25 + 0.45 * f, f"run: {m}"),
                    report_hook=_truth_comparison(truth))
    print(f"sample patient: {sample}")
    print(f"results:        {out / 'results'} (open report.html)")
    if args.cohort_patients:
        report = _run_cohort(out, args, show)
        print(f"cohort:         {report}")
    show(1.0, "demo done")
    return 0
