"""``ludosimetry demo``: generate the sample patient once (cached), run the stages, write a results folder."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from . import progress_printer
from .options import integer

HELP = ("generate (once) the demo-size synthetic patient under OUT/sample_patient, run every stage on it into "
        "OUT/results, then a small synthetic cohort (OUT/sample_cohort) into OUT/cohort; results are replaced "
        "at each run")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="demo_output", help="demo folder (default: demo_output)")
    parser.add_argument("--size", choices=("small", "demo"), default="demo", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=integer(0, 2**32 - 1), default=0, help="seed of the sample patient (default 0)")
    parser.add_argument("--force", action="store_true", help="regenerate the sample patient even if cached")
    parser.add_argument("--no-dicom", action="store_true", help="write the sample patient without DICOM")
    parser.add_argument("--cohort-patients", type=integer(0), default=3,
                        help="patients in the synthetic cohort run at the end (0 to skip; default 3)")
    parser.add_argument("--workers", type=integer(1), default=2, help="worker processes for the cohort (default 2)")


def _cached(folder: Path, size: str, seed: int) -> bool:
    try:
        doc = json.loads((folder / "patient.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    try:  # a sample patient from before the like-for-like truth (truth.json dose_kernel_Gy) is regenerated
        truth = json.loads((folder / "truth.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (doc.get("size") == size and doc.get("seed") == seed and "dose_kernel_Gy" in truth["cycles"][0]
            and all((folder / f).exists() for f in doc.get("written", [])))


def _truth_comparison(truth: dict):
    """A report hook writing truth_comparison.csv: the pipeline's TIA and mean dose beside the phantom's truth."""

    def hook(report, out: Path) -> None:
        from ..phantom.comparison import COMPARISON_COLUMNS, DOSE_TOLERANCE, truth_comparison_rows
        from ..results import read_csv, read_doses_csv, write_csv

        rows = truth_comparison_rows(truth, read_csv(out / "fits.csv"), read_doses_csv(out / "doses.csv"))
        write_csv(out / "truth_comparison.csv", rows, COMPARISON_COLUMNS)
        sec = report.section("summary")
        sec.paragraph("Comparison with the phantom's ground truth. true_dose_Gy: like-for-like truth, the true TIA "
                      "through the pipeline's own kernel physics (photons, density scaling) on the phantom's fine "
                      "grid, so dose_ratio measures imaging only (resolution, noise, registration, fit); "
                      "true_led_dose_Gy: electron local deposition of the true TIA. TIA: fitted after partial-volume "
                      f"correction. Rows outside ±{DOSE_TOLERANCE:.0%} name their cause (docs/dose.md).")
        sec.table(rows, ["region", "volume_mL", "tia_ratio", "dose_Gy", "dose_method", "true_dose_Gy", "dose_ratio",
                         "true_led_dose_Gy", "cause"], caption="Pipeline vs ground truth, cycle 1")

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
