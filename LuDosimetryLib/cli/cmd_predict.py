"""``ludosimetry predict PATIENT_DIR --out DIR``: 177Lu doses predicted from the pre-therapy 68Ga PET."""

from __future__ import annotations

import argparse
from pathlib import Path

from .options import number

HELP = "predict 177Lu absorbed doses from the pre-therapy dynamic 68Ga-PSMA PET (results folder)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("patient", type=Path, help="patient folder (as ingest reads it)")
    parser.add_argument("--out", type=Path, required=True, help="results folder to create")
    parser.add_argument("--force", action="store_true", help="replace an existing results folder")
    parser.add_argument("--population-table", type=Path, default=None,
                        help="CSV of population 177Lu half-lives (default: the shipped table)")
    parser.add_argument("--ligand-uptake-ratio", type=number(minimum=0), default=1.0,
                        help="177Lu-ligand / 68Ga-PSMA-11 uptake ratio (default 1)")
    parser.add_argument("--tumour-sink-factor", type=number(minimum=0), default=1.0,
                        help="factor on organ uptake (default 1)")
    parser.add_argument("--peptide-amount-ug", type=number("µg", minimum=0), default=None,
                        help="therapy peptide amount (µg), recorded")
    parser.add_argument("--model", choices=("population", "kinetic", "calibrated"), default="population",
                        help="prediction model (docs/prediction.md): population washout, kinetic (washout scaled "
                             "by the fitted uptake rate) or calibrated (needs --calibrated-model)")
    parser.add_argument("--calibrated-model", type=Path, default=None,
                        help="calibrated model JSON (statistics/calibrated_model.json of `ludosimetry cohort`)")
    parser.add_argument("--retention-exponent", type=number(minimum=0), default=0.6,
                        help="kinetic model: washout rate ∝ (fitted/population uptake rate)^γ (default 0.6)")
    parser.add_argument("--pet-recovery", default="gtm",
                        help="PET partial-volume correction: 'gtm' (default), 'sphere' or a recovery coefficient")
    parser.add_argument("--pet-fwhm-mm", type=number("mm", minimum=0), default=None,
                        help="PET resolution FWHM in millimetres (default: the PET sidecar's resolution_fwhm_mm, "
                             "else 5.5 mm, recorded in run.json)")
    parser.add_argument("--spect-recovery", type=number(minimum=0, maximum=1), default=1.0,
                        help="SPECT recovery coefficient (default 1)")
    parser.add_argument("--uptake-reference", choices=("static", "last_dynamic"), default="static")
    parser.add_argument("--fit-uptake-rate", action="store_true", help="fit the uptake rate on the dynamic frames")
    parser.add_argument("--lesion-dose-model", choices=("sphere", "led"), default="sphere")
    parser.add_argument("--input-region", default="auto",
                        help="blood-pool region for the image-derived input function (default: aorta, "
                             "left_ventricle, blood_pool or remainder, the first in the label table; 'none': no "
                             "Patlak / two-tissue features)")
    parser.add_argument("--transform", type=Path, default=None,
                        help="ITK transform file mapping PET/CT points to SPECT/CT reference points (default: "
                             "rigid CT-to-CT registration when LuDosimetryLib.alignment is available, else identity)")
    parser.add_argument("--density", type=Path, default=None,
                        help="mass density image (g/mL) on the segmentation grid, for region masses")
    parser.add_argument("--lesions", action="store_true",
                        help="detect lesions on the static PET and match them with the segmentation's lesions")
    parser.add_argument("--lesion-threshold", choices=("liver", "suv"), default="liver",
                        help="lesion detection threshold: liver-based (PROMISE) or SUV (needs --body-mass-kg)")
    parser.add_argument("--liver-factor", type=number(minimum=0), default=1.0,
                        help="lesion threshold = this × liver mean uptake (default 1, PROMISE)")
    parser.add_argument("--suv", type=number(minimum=0), default=3.0, help="SUV threshold (default 3)")
    parser.add_argument("--body-mass-kg", type=number("kg", minimum=0), default=None,
                        help="patient body mass in kg (SUV in pet_features.csv, SUV lesion threshold)")
    parser.add_argument("--measured-dose", type=Path, default=None,
                        help="measured dose map (Gy, e.g. dose_Gy.nii.gz of `ludosimetry run`) in the SPECT/CT frame: "
                             "voxel comparison (difference, DVH, gamma 10%%/5 mm and 20%%/10 mm)")
    parser.add_argument("--therapy-activity-gbq", type=number("GBq", minimum=0), default=None,
                        help="177Lu activity in GBq for absolute doses (default: cycle 1's, if loaded)")


def run(args: argparse.Namespace) -> int:
    from ..errors import DependencyError, InputError
    from ..prediction.parameters import PredictionParameters, pet_fwhm_from_sidecars
    from ..prediction.pipeline import LesionSettings, predict_patient, write_prediction
    from ..results import RunRecord, check_output_path
    from ..timing import hours_between
    from ..units import BQ_PER_GBQ

    out = Path(args.out)
    check_output_path(out, [args.patient, args.population_table, args.transform, args.density, args.measured_dose])
    if out.exists() and any(out.iterdir()) and not args.force:
        raise InputError("output folder exists and is not empty (use --force to replace it)", source=str(out))
    if args.population_table is not None:
        table = args.population_table.resolve()
        if table.is_relative_to(args.patient.resolve()):
            raise InputError("the population table lies inside the patient folder: a washout taken from this "
                             "patient's own measured cycle would make the comparison with that cycle circular; "
                             "use a table from other patients", source=str(args.population_table))
    try:
        from ..ingest import load_patient
    except ImportError as exc:
        raise DependencyError("ludosimetry predict needs LuDosimetryLib.ingest (load_patient) to read a patient "
                              "folder; use LuDosimetryLib.prediction.pipeline.predict_study on a PetStudy") from exc
    rec_arg = args.pet_recovery if args.pet_recovery in ("sphere", "gtm") else _number(args.pet_recovery)
    if args.model == "calibrated" and args.calibrated_model is None:
        raise InputError("the calibrated model needs --calibrated-model FILE (statistics/calibrated_model.json of "
                         "`ludosimetry cohort`)", source="--model")
    if args.calibrated_model is not None and not args.calibrated_model.is_file():
        raise InputError("calibrated model file not found", source=str(args.calibrated_model))
    record = RunRecord("ludosimetry predict", inputs={"patient": str(args.patient)})
    user_transform = _read_transform(args.transform) if args.transform is not None else None
    patient = load_patient(args.patient, record=record)
    if not patient.pet_studies:
        raise InputError("no PET study found", source=str(args.patient))
    if patient.segmentation is None:
        raise InputError("no segmentation found; the prediction needs the regions", source=str(args.patient))
    study = patient.pet_studies[0]
    interval = None
    activity = args.therapy_activity_gbq
    if patient.cycles:
        adm = patient.cycles[0].administration
        interval = hours_between(study.administration.injection_datetime, adm.injection_datetime)
        if activity is None:
            activity = adm.injected_activity_Bq / BQ_PER_GBQ
    fwhm, fwhm_source = (args.pet_fwhm_mm, "given") if args.pet_fwhm_mm is not None \
        else pet_fwhm_from_sidecars(args.patient)
    params = PredictionParameters(
        pet_ligand=study.administration.ligand,
        therapy_ligand=patient.cycles[0].administration.ligand if patient.cycles else "PSMA-617",
        ligand_uptake_ratio=args.ligand_uptake_ratio, tumour_sink_factor=args.tumour_sink_factor,
        peptide_amount_ug=args.peptide_amount_ug, pet_to_therapy_interval_h=interval, pet_recovery=rec_arg,
        pet_fwhm_mm=fwhm, pet_fwhm_source=fwhm_source, spect_recovery=args.spect_recovery,
        model=args.model, calibrated_model=None if args.calibrated_model is None else str(args.calibrated_model),
        retention_exponent=args.retention_exponent, body_mass_kg=args.body_mass_kg,
        population_table=None if args.population_table is None else str(args.population_table),
        uptake_reference=args.uptake_reference, fit_uptake_rate=args.fit_uptake_rate,
        lesion_dose_model=args.lesion_dose_model, therapy_activity_GBq=activity)
    density = None
    if args.density is not None:
        import SimpleITK as sitk

        try:
            density = sitk.ReadImage(str(args.density), sitk.sitkFloat32)
        except RuntimeError as exc:
            raise InputError(f"cannot read the density image: {exc}", source=str(args.density)) from None
        record.inputs["density"] = str(args.density)
    if user_transform is not None:
        record.inputs["transform"] = str(args.transform)
    lesions = LesionSettings(method=args.lesion_threshold, liver_factor=args.liver_factor, suv=args.suv,
                             body_mass_kg=args.body_mass_kg) if args.lesions else None
    input_region = None if args.input_region.lower() == "none" else args.input_region
    result = predict_patient(patient, params=params, transform=user_transform, density=density,
                             input_region=input_region, lesions=lesions, record=record)
    transform = result.transform
    comparison = None
    if args.measured_dose is not None:
        import SimpleITK as sitk

        from ..prediction.voxel import compare_with_measured

        try:
            measured = sitk.ReadImage(str(args.measured_dose), sitk.sitkFloat32)
        except RuntimeError as exc:
            raise InputError(f"cannot read the measured dose map: {exc}", source=str(args.measured_dose)) from None
        if activity is None:
            raise InputError("the voxel comparison needs the 177Lu activity (--therapy-activity-gbq or cycle 1)",
                             source="--measured-dose")
        record.inputs["measured_dose"] = str(args.measured_dose)
        predicted, cmp = compare_with_measured(study, patient.segmentation, result.predictions, measured,
                                               transform=transform, params=params, population=result.population,
                                               therapy_activity_GBq=activity)
        comparison = (predicted, cmp, measured)
    write_prediction(result, out, record=record, therapy_activity_GBq=activity, overwrite=args.force,
                     comparison=comparison)
    print(f"predicted doses ({args.model} model) of {len(result.predictions)} regions written to {out}")
    return 0


def _read_transform(path):
    import SimpleITK as sitk

    from ..errors import InputError

    if not Path(path).is_file():  # before ITK, whose HDF5 reader prints a page of diagnostics
        raise InputError("transform file not found (an ITK transform file .tfm/.h5/.txt mapping PET/CT points to "
                         "SPECT/CT reference points is expected)", source=f"--transform {path}")
    try:
        return sitk.ReadTransform(str(path))
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unreadable"
        raise InputError(f"cannot read the transform (an ITK transform file mapping PET/CT points to SPECT/CT "
                         f"reference points is expected): {first}", source=str(path)) from None


def _number(text: str) -> float:
    from ..errors import InputError

    try:
        return float(text)
    except ValueError:
        raise InputError(f"expected a number, 'sphere' or 'gtm', got {text!r}", source="--pet-recovery") from None
