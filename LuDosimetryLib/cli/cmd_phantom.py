"""``ludosimetry phantom``: write a synthetic patient folder (NIfTI, labels, ground truth; DICOM when available)."""

from __future__ import annotations

import argparse

from . import progress_printer
from .options import integer

HELP = "write a synthetic 177Lu-PSMA patient folder (images, labels, ground truth JSON)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size", choices=("small", "small2x", "demo", "clinical"), default="small",
                        help="small: coarse grids for tests (seconds); small2x: small with a CT of half the spacing; "
                             "demo: 4.8 mm SPECT, 2.4 mm CT; clinical: 4.42 mm SPECT, CT 512x512 at 0.977 mm with 2 mm "
                             "slices, PET 200x200 at 4 mm (a minute of CPU, 1.4 GB with DICOM; docs/phantom.md)")
    parser.add_argument("--seed", type=integer(0, 2**32 - 1), default=0, help="random seed (pose, schedule, noise)")
    parser.add_argument("--cycles", type=integer(1, 9), default=1, help="number of therapy cycles (default 1)")
    parser.add_argument("--kidney-motion", action="store_true",
                        help="move the kidneys 5-10 mm relative to the spine at each timepoint")
    parser.add_argument("--no-pet", action="store_true", help="leave out the pre-therapy 68Ga PET")
    parser.add_argument("--no-dicom", action="store_true", help="write NIfTI, labels and truth only (no DICOM)")
    parser.add_argument("--cohort", type=integer(0), default=0, metavar="N",
                        help="write a synthetic cohort of N patients (inter-patient variability, clinical.csv with "
                             "a dose-driven response model, cohort_truth.json) instead of one patient")
    parser.add_argument("--trial", choices=("phase1", "biomarker"), default=None,
                        help="write a ledger-only synthetic trial cohort with dose-driven follow-up (no images): "
                             "phase1 = the 3+3 worked example (3 escalation groups), biomarker = --cohort N "
                             "patients (default 200); input of 'ludosimetry trial'")
    parser.add_argument("--out", required=True, help="patient (or cohort) folder to create")
    parser.add_argument("--force", action="store_true", help="replace an existing folder")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..errors import InputError
    from ..phantom import generate_patient, write_patient_folder

    out = Path(args.out)
    if out.exists() and any(out.iterdir()) and not args.force:
        raise InputError("output folder exists and is not empty (use --force to replace it)", source=str(out))
    show = progress_printer("phantom ")
    if args.trial:
        from ..phantom.followup import write_trial_cohort

        print(write_trial_cohort(out, args.trial, n_patients=args.cohort or 200, seed=args.seed, force=args.force))
        return 0
    if args.cohort:
        from ..phantom.cohort import CohortSettings, write_synthetic_cohort

        settings = CohortSettings(n_patients=args.cohort, size=args.size, seed=args.seed,
                                  kidney_motion=True, dicom=not args.no_dicom)
        print(write_synthetic_cohort(out, settings, force=args.force, progress=show))
        return 0
    patient = generate_patient(args.size, seed=args.seed, cycles=args.cycles, kidney_motion=args.kidney_motion,
                               with_pet=not args.no_pet, progress=lambda f, m: show(0.8 * f, m))
    write_patient_folder(patient, out, force=args.force, dicom=False if args.no_dicom else None,
                         progress=lambda f, m: show(0.8 + 0.2 * f, m))
    print(out)
    return 0
