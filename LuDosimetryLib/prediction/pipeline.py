"""One patient: PET study + segmentation → predicted 177Lu doses, written as a results folder.

:func:`predict_study` runs region TACs (:mod:`.regions`), decay (:mod:`.decay`), the prediction
(:mod:`.predict`), and optional Patlak K_i against an image-derived input function from a region
given by name. :func:`write_prediction` writes ``doses.csv`` (DOSES_COLUMNS, method
``pet_prediction``), ``fits.csv`` (predicted TIA), ``pet_tac.csv``, ``pet_fov.csv``,
``pet_kinetics.csv`` (Patlak, when an input region was given), ``report.html`` (prediction
section) and ``run.json`` (every parameter, the population table, warnings).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..model import PetStudy, Segmentation
from ..results import DOSES_COLUMNS, FITS_COLUMNS, RunRecord, atomic_directory, write_csv
from ..timing import DecayState
from .decay import BiologicalTac
from .features import FEATURE_CSV_COLUMNS, default_input_region, region_feature_rows
from .parameters import PredictionParameters
from .population import PopulationTable, load_population_table
from .predict import RegionPrediction, aggregate_groups, predict_regions, prediction_fit_rows
from .regions import RegionSet, biological_tacs, region_pet_tacs, region_sets

__all__ = ["PatientPrediction", "predict_study", "write_prediction", "region_masses_g", "match_pet_lesions",
           "LesionSettings"]


@dataclass(frozen=True)
class LesionSettings:
    """PET lesion detection and matching (docs/prediction.md, Lesions).

    Attributes
    ----------
    method : {"liver", "suv"}
        Threshold: ``liver_factor`` × liver mean (PROMISE), or ``suv`` with ``body_mass_kg``.
    liver_region : str
    liver_factor, suv, body_mass_kg : float
    min_volume_mL : float
        Components below are dropped (default 0.1 mL).
    max_distance_mm : float
        Matching tolerance (centroid distance) on the reference grid (default 15 mm).
    exclude_regions : tuple of str
        Regions with physiological PSMA uptake excluded from the search (a region is excluded if
        its name or group starts with one of these).
    exclude_margin_mm : float
        The excluded regions are grown by this margin (spill-out of their activity; default 10 mm ≈ 2 PET FWHM).
    """

    method: str = "liver"
    liver_region: str = "liver"
    liver_factor: float = 1.0
    suv: float = 3.0
    body_mass_kg: float | None = None
    min_volume_mL: float = 0.1
    max_distance_mm: float = 15.0
    exclude_regions: tuple[str, ...] = ("kidney", "renal_pelvis", "urinary_bladder", "parotid", "submandibular",
                                        "lacrimal", "salivary", "liver", "spleen")
    exclude_margin_mm: float = 10.0


@dataclass(frozen=True)
class PatientPrediction:
    """Everything :func:`write_prediction` writes."""

    predictions: tuple[RegionPrediction, ...]
    fov: dict
    tacs: tuple[BiologicalTac, ...]
    params: PredictionParameters
    population: PopulationTable
    patlak_rows: tuple[dict, ...] = ()
    warnings: tuple[dict, ...] = field(default=())
    lesion_rows: tuple[dict, ...] = ()
    tumour_burden: dict | None = None
    settings: dict = field(default_factory=dict)
    #: The PET/CT → SPECT/CT reference transform used (SimpleITK, or None for identity).
    transform: Any = field(default=None, compare=False)
    #: Feature rows per region (pet_features.csv, :mod:`.features`).
    features: tuple[dict, ...] = ()
    #: Dose engine outputs (:class:`~.dose_engine.PredictedDoses`) once computed.
    doses: Any = field(default=None, compare=False)


def region_masses_g(segmentation: Segmentation, density=None) -> dict[str, float]:
    """Mass (g) of each leaf: Σ density × voxel volume (density image on the segmentation grid, g/mL)."""
    import SimpleITK as sitk

    if density is None:
        return {}
    lab = sitk.GetArrayViewFromImage(segmentation.image).astype(np.int64)
    dens = sitk.GetArrayViewFromImage(density)
    if dens.shape != lab.shape:
        raise InputError(f"density grid {dens.shape} differs from the segmentation grid {lab.shape}", source="density")
    sp = segmentation.image.GetSpacing()
    vox = sp[0] * sp[1] * sp[2] / 1000.0
    sums = np.bincount(lab.ravel(), weights=dens.ravel().astype(float))
    return {r.name: float(sums[r.label] * vox) for r in segmentation.table if r.label < sums.size}


def predict_study(study: PetStudy, segmentation: Segmentation, *, transform=None,
                  params: PredictionParameters | None = None, population: PopulationTable | None = None,
                  masses_g: dict | None = None, decay_state: DecayState | str = DecayState.ACQUISITION,
                  input_region: str | None = "auto", patlak_t_star_h: float = 20.0 / 60.0,
                  lesions: LesionSettings | None = None, record: RunRecord | None = None,
                  progress=None) -> PatientPrediction:
    """Predict the 177Lu doses per GBq of every organ and lesion of ``segmentation``.

    Parameters
    ----------
    study : PetStudy
        68Ga PET: dynamic frames (single bed) and/or the whole-body static, Bq/mL in ``decay_state``.
    segmentation : Segmentation
        On the SPECT/CT reference grid.
    transform : SimpleITK.Transform, optional
        PET points → reference points (identity if None).
    params : PredictionParameters
    population : PopulationTable, optional
    masses_g : dict, optional
        Leaf masses (g), e.g. :func:`region_masses_g` with a CT-derived density.
    decay_state : DecayState or str
        What the frames are decay-corrected to (ingest delivers NONE).
    input_region : str, optional
        Name of the blood-pool region (aorta, left ventricle) for the image-derived input function
        of the Patlak and two-tissue analyses; it must lie (at least partly) in the dynamic FoV.
        ``"auto"`` (default): the first of :data:`~.features.INPUT_REGION_CANDIDATES` in the label
        table; None: no input function.
    lesions : LesionSettings, optional
        Detect lesions on the static PET and match them with the segmentation's lesions.
    record : RunRecord, optional
        Warnings are recorded there (stage ``prediction``).
    """
    p = params or PredictionParameters()
    pop = population or load_population_table(p.population_table)
    warnings: list[dict] = []

    def warn(message: str, *, source: str = "") -> None:
        warnings.append({"stage": "prediction", "source": source, "message": message})
        if record is not None:
            record.warn(message, stage="prediction", source=source)

    if progress:
        progress(0.0, "region TACs on the PET grids")
    if (p.pet_to_therapy_interval_h is not None and p.pet_to_therapy_interval_h > p.max_interval_h):
        warn(f"PET acquired {p.pet_to_therapy_interval_h / 24:.0f} d before therapy (> {p.max_interval_h / 24:.0f} d): "
             "uptake may have changed", source="pet_to_therapy_interval_h")
    leaves = region_sets(segmentation, groups=False)
    extra: list[RegionSet] = []
    auto_input = input_region == "auto"
    if auto_input:
        input_region = default_input_region([r.name for r in segmentation.table]) if study.dynamic_frames else None
    if input_region is not None:
        r = segmentation.table.by_name(input_region)
        if r.kind not in ("organ", "lesion"):
            extra.append(RegionSet(r.name, r.kind, (r.label,), r.group))
    tacs, fov = region_pet_tacs(study, segmentation, transform=transform, params=p, decay_state=decay_state,
                                regions=leaves + tuple(extra), warn=warn)
    a0 = study.administration.injected_activity_Bq
    idif = None
    if input_region is not None:
        series = tacs.pop(input_region, None)
        dyn = [s for s in (series or []) if s.frame_source and s.frame_source[0] == "dynamic"]
        if not dyn and not auto_input:
            raise InputError(f"input-function region {input_region!r} is not in the dynamic field of view "
                             f"({fov[input_region].dynamic_fraction:.0%} of its volume)", source="input_region")
        if dyn:
            idif = biological_tacs({input_region: dyn}, a0)[0]
        else:
            warn(f"no image-derived input function: {input_region!r} is not in the dynamic field of view; no "
                 "Patlak or two-tissue features", source="input_region")
            input_region = None
    bios = biological_tacs(tacs, a0)
    if progress:
        progress(0.5, "predicting 177Lu kinetics and doses")
    groups = {r.name: r.group for r in segmentation.table}
    preds = predict_regions(bios, params=p, population=pop, masses_g=masses_g, groups=groups, warn=warn)
    group_members = {g: [r.name for r in rs] for g, rs in segmentation.table.groups().items()
                     if any(r.kind in ("organ", "lesion") for r in rs)}
    preds = preds + aggregate_groups(preds, group_members)
    features = region_feature_rows(bios, preds, fov, idif=idif, input_region=input_region,
                                   t_star_h=patlak_t_star_h, body_mass_kg=p.body_mass_kg, warn=warn)
    features += _group_feature_rows(features, preds, fov)
    rows = [{"region": f["region"], "input_region": input_region, "ki_per_min": f["patlak_ki_per_min"],
             "ki_se_per_min": f.get("patlak_ki_se_per_min"), "intercept": f.get("patlak_intercept"),
             "t_star_min": patlak_t_star_h * 60.0, "n_points": f.get("patlak_n_points"),
             "r_squared": f.get("patlak_r_squared"),
             **{k: f[k] for k in f if k.startswith("tc2_")}} for f in features if "patlak_ki_per_min" in f]
    lesion_rows: tuple[dict, ...] = ()
    if lesions is not None and study.static is not None:
        lesion_rows = tuple(match_pet_lesions(study, segmentation, transform=transform, settings=lesions, warn=warn))
    les = [r for r in preds if r.kind == "lesion" and not any(f.startswith("group_of_") for f in r.flags)]
    burden = None
    if les:
        from .lesions import tumour_burden

        burden = tumour_burden([r.volume_mL for r in les], [r.mass_g for r in les], [r.dose_Gy_per_GBq for r in les])
        burden = {**burden, "dose_unit": "Gy/GBq"}
    if progress:
        progress(1.0, "prediction done")
    from dataclasses import asdict

    settings = {"decay_state": str(DecayState(decay_state).value) if not isinstance(decay_state, str) else decay_state,
                "input_region": input_region, "patlak_t_star_h": patlak_t_star_h,
                "transform": "identity" if transform is None else type(transform).__name__,
                "lesions": None if lesions is None else asdict(lesions),
                "masses": "given" if masses_g else "volume × soft-tissue density (flag mass_from_volume)"}
    return PatientPrediction(preds, fov, tuple(bios), p, pop, tuple(rows), tuple(warnings), lesion_rows, burden,
                             settings, features=tuple(features))


def _group_feature_rows(features: list[dict], preds, fov) -> list[dict]:
    """Feature rows of composite groups (``kidney_left``): summed late uptake, volume and mass; the
    dynamic coverage and fitted uptake rate of the leaf with the largest late uptake."""
    by = {f["region"]: f for f in features}
    out = []
    for g in (r for r in preds if r.population_key == "leaves"):
        first = g.flags[0] if g.flags else ""
        leaves = [by[n] for n in first[len("group_of_"):].split("+") if n in by] if first.startswith("group_of_") \
            else []
        if not leaves:
            continue
        main = max(leaves, key=lambda f: f["late_fraction_ga"])
        f = fov.get(g.region)
        out.append({"region": g.region, "kind": g.kind, "group": g.region,
                    "dynamic_fov": getattr(f, "dynamic_coverage", "") or main["dynamic_fov"],
                    "dynamic_fov_fraction": getattr(f, "dynamic_fraction", main["dynamic_fov_fraction"]),
                    "static_fov_fraction": getattr(f, "static_fraction", main["static_fov_fraction"]),
                    "n_dynamic_frames": main["n_dynamic_frames"],
                    "late_fraction_ga": sum(x["late_fraction_ga"] for x in leaves), "t_ref_h": main["t_ref_h"],
                    "uptake_rate_fit_per_h": main["uptake_rate_fit_per_h"], "volume_mL": g.volume_mL,
                    "mass_g": g.mass_g, "input_region": main["input_region"],
                    "leaves": "+".join(x["region"] for x in leaves), "flags": ";".join(g.flags)})
    return out


def match_pet_lesions(study: PetStudy, segmentation: Segmentation, *, transform=None,
                      settings: LesionSettings | None = None, warn=None) -> list[dict]:
    """Detect lesions on the static PET, transfer them to the reference grid, match the segmentation's lesions.

    Returns one row per lesion: ``pet_id`` (detection id), ``spect_id`` (label value of the
    segmentation lesion), ``region`` (its name), ``distance_mm``, ``status`` (``matched``,
    ``pet_only``, ``spect_only``), ``pet_volume_mL``, ``region_volume_mL``.
    """
    import SimpleITK as sitk

    from .lesions import (
        detect_lesions,
        lesions_from_labels,
        liver_threshold_Bq_per_mL,
        match_lesions,
        suv_threshold_Bq_per_mL,
        transfer_labels,
    )
    from .regions import labels_on_grid

    s = settings or LesionSettings()
    img = study.static.image
    pet = sitk.GetArrayViewFromImage(img)
    lab = labels_on_grid(segmentation.image, img, transform)
    table = segmentation.table
    if s.method == "liver":
        liver = table.by_name(s.liver_region)
        thr = liver_threshold_Bq_per_mL(pet, lab == liver.label, factor=s.liver_factor)
    elif s.method == "suv":
        if not s.body_mass_kg:
            raise InputError("SUV threshold needs body_mass_kg", source="lesions.body_mass_kg")
        from ..nuclides import decay_factor

        thr = suv_threshold_Bq_per_mL(s.suv, injected_activity_Bq=study.administration.injected_activity_Bq,
                                      body_mass_kg=s.body_mass_kg,
                                      decay_factor=decay_factor(study.administration.nuclide, study.static.time_h))
    else:
        raise InputError(f"must be 'liver' or 'suv', got {s.method!r}", source="lesions.method")
    from scipy.ndimage import distance_transform_edt

    excluded = [r.label for r in table if r.kind != "lesion" and any(
        r.name.startswith(x) or (r.group and r.group.startswith(x)) for x in s.exclude_regions)]
    organs = np.isin(lab, excluded)
    near = distance_transform_edt(~organs, sampling=img.GetSpacing()[::-1]) <= s.exclude_margin_mm \
        if organs.any() else organs
    search = (lab > 0) & ~near
    pet_labels, _ = detect_lesions(pet, img.GetSpacing(), threshold_Bq_per_mL=thr, search_mask=search,
                                   min_volume_mL=s.min_volume_mL)
    pet_img = sitk.GetImageFromArray(pet_labels.astype(np.uint32))
    pet_img.CopyInformation(img)
    inverse = transform.GetInverse() if transform is not None else None
    moved = sitk.GetArrayFromImage(transfer_labels(pet_img, segmentation.image, inverse)).astype(np.int64)
    ref = sitk.GetArrayViewFromImage(segmentation.image).astype(np.int64)
    ref_les = np.where(np.isin(ref, [r.label for r in table.of_kind("lesion")]), ref, 0)
    geo = {"origin_mm": segmentation.image.GetOrigin(), "direction": segmentation.image.GetDirection()}
    sp = segmentation.image.GetSpacing()
    a = lesions_from_labels(moved, sp, modality="PET", **geo)
    b = lesions_from_labels(ref_les, sp, modality="SPECT/CT", **geo)
    m = match_lesions(a, b, max_distance_mm=s.max_distance_mm, labels_a=moved, labels_b=ref_les)
    vol_a = {x.lesion_id: x.volume_mL for x in a}
    vol_b = {x.lesion_id: x.volume_mL for x in b}
    rows = []
    for r in m.rows("pet", "spect"):
        sid = r["spect_id"]
        rows.append({**r, "region": table.by_label(sid).name if sid is not None else None,
                     "pet_volume_mL": vol_a.get(r["pet_id"]), "region_volume_mL": vol_b.get(sid),
                     "threshold_Bq_per_mL": thr})
    if warn is not None:
        for r in rows:
            if r["status"] != "matched":
                what = f"PET lesion {r['pet_id']}" if r["status"] == "pet_only" else f"lesion {r['region']}"
                warn(f"{what} seen in one modality only ({r['status']})", source="lesions")
    return rows


def write_prediction(result: PatientPrediction, out: str | Path, *, record: RunRecord, report=None,
                     therapy_activity_GBq: float | None = None, cycle: int = 1, overwrite: bool = False,
                     comparison=None) -> Path:
    """Write the prediction results folder (whole or not at all).

    ``comparison``: ``(predicted_dose_image, DoseComparison, measured_dose_image)`` from
    :func:`~.voxel.compare_with_measured`; adds ``predicted_dose_Gy.nii.gz``, the difference and
    gamma maps, ``gamma_pass_rates.csv`` and ``dvh_overlay.png``.
    """
    from ..report import Report

    a = therapy_activity_GBq if therapy_activity_GBq is not None else result.params.therapy_activity_GBq
    dose_rows = reported_dose_rows(result, therapy_activity_GBq=a, cycle=cycle)
    fit_rows = prediction_fit_rows(result.predictions, therapy_activity_GBq=a, cycle=cycle)
    tac_rows = [{"region": b.region, "kind": b.kind, "time_h": float(t), "frame_source": s,
                 "biological_fraction_per_mL": float(f), "volume_mL": b.volume_mL}
                for b in result.tacs for t, f, s in zip(b.time_h, b.fraction_per_mL, b.frame_source)]
    fov_rows = [{"region": f.region, "volume_mL": f.volume_mL, "dynamic_fov": f.dynamic_coverage,
                 "dynamic_fov_fraction": f.dynamic_fraction, "static_fov_fraction": f.static_fraction, "uses": f.uses}
                for f in result.fov.values()]
    record.parameters["prediction"] = {**result.params.to_dict(), "therapy_activity_GBq_used": a,
                                       "population_table": result.population.to_dict(), **result.settings}
    record.stages.setdefault("prediction", {}).update(
        {"prediction_model": result.params.model, "dose_method": result.doses.dose_method if result.doses else
         "s-value (no static PET for the dose engine)",
         "dynamic_fov": {c: [f.region for f in result.fov.values() if f.dynamic_coverage == c]
                         for c in ("covered", "partly", "not")}})
    rep = report or Report("PET-based 177Lu dose prediction")
    sec = rep.section("prediction", "Prediction from the pre-therapy PET")
    p = result.params
    sec.paragraph(f"Model: {p.model} (docs/prediction.md). Late 68Ga uptake fraction (decay-corrected with λ(68Ga), "
                  f"partial-volume corrected: {p.pet_recovery} at FWHM {p.pet_fwhm_mm} mm, {p.pet_fwhm_source}) "
                  "anchored to a biological uptake–washout curve, re-decayed with λ(177Lu); washout: "
                  + ("population table" if p.model == "population" else "population table scaled by the fitted "
                     f"uptake rate (γ = {p.retention_exponent})" if p.model == "kinetic" else
                     f"calibrated regression {p.calibrated_model}")
                  + f"; population table: {result.population.origin}. Dose: "
                  + (f"{result.doses.dose_method} (the measured route's dose engine)" if result.doses else
                     "S-values (no static PET for the dose engine)") + ". Parameters are in run.json.")
    cover = {c: [f.region for f in result.fov.values() if f.dynamic_coverage == c]
             for c in ("covered", "partly", "not")}
    sec.paragraph("Dynamic field of view — covered: " + (", ".join(cover["covered"]) or "none")
                  + "; partly (kinetics of the covered part): " + (", ".join(cover["partly"]) or "none")
                  + "; not (static only): " + (", ".join(cover["not"]) or "none") + ".")
    sec.table([{"region": r["region"], "kind": r["kind"], "dose_Gy": r["dose_Gy"],
                "dose_per_activity_Gy_per_GBq": r["dose_per_activity_Gy_per_GBq"], "dose_method": r["dose_method"],
                "dose_ci95_low_Gy": r["dose_ci95_low_Gy"], "dose_ci95_high_Gy": r["dose_ci95_high_Gy"],
                "tia_per_activity_h": r["tia_per_activity_h"], "flags": r["flags"]}
               for r in dose_rows], caption=f"Predicted absorbed doses ({p.model} model)")
    skipped = [f.region for f in result.fov.values() if f.uses == "none"]
    if skipped:
        sec.paragraph(f"Outside both PET fields of view (no prediction): {', '.join(skipped)}", css_class="warn")
    if result.tumour_burden:
        sec.table([result.tumour_burden], caption="Whole-body tumour burden (predicted, per GBq)")
    if result.lesion_rows:
        sec.table(result.lesion_rows, ["pet_id", "spect_id", "region", "distance_mm", "status"],
                  caption="Lesions: PET detection vs segmentation")
    if result.patlak_rows:
        sec.table(result.patlak_rows, caption="Patlak analysis (image-derived input function)")
    out = Path(out)
    with atomic_directory(out, overwrite=overwrite) as tmp:
        write_csv(tmp / "doses.csv", dose_rows, PREDICTION_DOSE_COLUMNS)
        write_csv(tmp / "fits.csv", fit_rows, FITS_COLUMNS)
        write_csv(tmp / "pet_tac.csv", tac_rows, ("region", "kind", "time_h", "frame_source",
                                                   "biological_fraction_per_mL", "volume_mL"))
        write_csv(tmp / "pet_fov.csv", fov_rows, ("region", "volume_mL", "dynamic_fov", "dynamic_fov_fraction",
                                                   "static_fov_fraction", "uses"))
        if result.features:
            write_csv(tmp / "pet_features.csv", result.features, FEATURE_CSV_COLUMNS)
            outputs_extra = {"pet_features.csv": "kinetic features per region (dynamic FoV, SUV, uptake rate, Patlak, "
                                                 "2TCi with standard errors), the cohort validation's input"}
        else:
            outputs_extra = {}
        outputs = {"doses.csv": f"predicted doses (prediction_model {result.params.model}, reported-dose convention)",
                   "fits.csv": "predicted 177Lu TIA",
                   "pet_tac.csv": "biological 68Ga uptake per region and frame",
                   "pet_fov.csv": "field-of-view fractions and what each region used", **outputs_extra}
        if result.lesion_rows:
            write_csv(tmp / "lesion_matching.csv", result.lesion_rows, list(result.lesion_rows[0]))
            outputs["lesion_matching.csv"] = "PET-detected lesions matched with the segmentation's lesions"
        if result.patlak_rows:
            write_csv(tmp / "pet_kinetics.csv", result.patlak_rows, list(result.patlak_rows[0]))
            outputs["pet_kinetics.csv"] = "Patlak Ki per region"
        if comparison is not None:
            import SimpleITK as sitk

            from ..results import atomic_output_path
            from .voxel import write_comparison

            predicted_img, cmp, measured_img = comparison
            with atomic_output_path(tmp / "predicted_dose_Gy.nii.gz") as f:
                sitk.WriteImage(predicted_img, str(f), useCompression=True)
            outputs["predicted_dose_Gy.nii.gz"] = "predicted dose (Gy) on the measured grid (kernel convolution)"
            outputs.update(write_comparison(cmp, tmp, measured_img))
            sec.table(list(cmp.pass_rate_rows), ["region", "criteria", "n_evaluated", "pass_rate"],
                      caption="Gamma pass rates, predicted vs measured dose map")
            if cmp.dvh:
                sec.figure("dvh_overlay.png", "DVH: measured (solid) vs predicted (dashed)")
        elif result.doses is not None and a is not None:
            import SimpleITK as sitk

            from ..results import atomic_output_path

            with atomic_output_path(tmp / "predicted_dose_Gy.nii.gz") as f:
                sitk.WriteImage(sitk.Cast(result.doses.dose * float(a), sitk.sitkFloat32), str(f), useCompression=True)
            outputs["predicted_dose_Gy.nii.gz"] = f"predicted dose map (Gy) for {a:g} GBq, the dose engine's"
        rep.write(tmp / "report.html")
        outputs["report.html"] = "report with the prediction section"
        record.outputs.update(outputs)
        record.write(tmp)
    return out


#: doses.csv columns of a prediction: the reported-dose convention, then the prediction's own.
PREDICTION_DOSE_COLUMNS = (*DOSES_COLUMNS, "prediction_model", "tia_per_activity_h", "dose_as_seen_by_spect_Gy_per_GBq")


def apply_dose_engine(result: PatientPrediction, study: PetStudy, segmentation: Segmentation, density, *,
                      grid=None, warn=None) -> PatientPrediction:
    """Doses of ``result`` through the measured route's dose engine (:mod:`.dose_engine`), the features
    completed (TIA, dose, dose per TIA per region) and, for the ``calibrated`` model, its predictions.

    Without a static PET the S-value doses of :mod:`.predict` stay (warned).
    """
    from .dose_engine import predicted_doses

    p = result.params
    if study.static is None:
        if warn is not None:
            warn("no static PET: predicted doses from S-values, not from the dose engine", source="dose")
        return result
    eng = predicted_doses(study, segmentation, result.predictions, density, grid=grid, transform=result.transform,
                          params=p, population=result.population)
    tia = {r.region: r.tia_Bq_h_per_GBq for r in result.predictions}
    feats = []
    for f in result.features:
        d, t = eng.dose_Gy_per_GBq.get(f["region"]), tia.get(f["region"])
        feats.append({**f, "tia_Bq_h_per_GBq": t, "dose_Gy_per_GBq": d, "prediction_model": p.model,
                      "dose_per_tia_Gy_per_Bq_h": d / t if d is not None and t else None})
    if p.model == "calibrated":
        from .models import read_calibrated_model

        model = read_calibrated_model(p.calibrated_model)
        missing = []
        by = {f["region"]: f for f in feats}
        for f in feats:  # leaves: the regression; groups: the sum of their leaves' TIAs below
            pred = model.predict(f, result.population) if f["dose_per_tia_Gy_per_Bq_h"] and not f.get("leaves") \
                else None
            if pred is None:
                if not f.get("leaves"):
                    missing.append(f["region"])
                continue
            f.update(calibrated_dose_Gy_per_GBq=pred["dose_Gy_per_GBq"],
                     calibrated_pi95_low_Gy_per_GBq=pred["pi95_low_Gy_per_GBq"],
                     calibrated_pi95_high_Gy_per_GBq=pred["pi95_high_Gy_per_GBq"], calibrated_log_sd=pred["log_sd"],
                     calibration_key=pred["calibration_key"])
        for g in (f for f in feats if f.get("leaves") and f["dose_per_tia_Gy_per_Bq_h"]):
            members = [by[n] for n in g["leaves"].split("+") if n in by]
            implied = [m["calibrated_dose_Gy_per_GBq"] / m["dose_per_tia_Gy_per_Bq_h"]
                       if "calibrated_dose_Gy_per_GBq" in m else (m["tia_Bq_h_per_GBq"] or 0.0) for m in members]
            cal = [m for m in members if "calibrated_dose_Gy_per_GBq" in m]
            if not cal:
                continue
            main = max(cal, key=lambda m: m["calibrated_dose_Gy_per_GBq"] / m["dose_per_tia_Gy_per_Bq_h"])
            d = sum(implied) * g["dose_per_tia_Gy_per_Bq_h"]
            k = d / main["calibrated_dose_Gy_per_GBq"]
            g.update(calibrated_dose_Gy_per_GBq=d,
                     calibrated_pi95_low_Gy_per_GBq=main["calibrated_pi95_low_Gy_per_GBq"] * k,
                     calibrated_pi95_high_Gy_per_GBq=main["calibrated_pi95_high_Gy_per_GBq"] * k,
                     calibrated_log_sd=main["calibrated_log_sd"], calibration_key=main["calibration_key"])
        if missing and warn is not None:
            warn(f"calibrated model has no fit for {', '.join(missing)}: their doses are the population model's "
                 "(flag not_calibrated)", source=str(p.calibrated_model))
    return replace(result, features=tuple(feats), doses=eng)


def reported_dose_rows(result: PatientPrediction, *, therapy_activity_GBq: float | None = None,
                       cycle: int = 1) -> list[dict]:
    """doses.csv rows of a prediction in the reported-dose convention (``dose_Gy``, ``dose_method``…).

    ``dose_Gy`` is from the dose engine (or the S-values without it), or the calibrated model's with
    its 95 % prediction interval as ``dose_ci95_*`` and the log-sd as ``dose_rel_uncertainty``;
    absolute values need ``therapy_activity_GBq`` (empty without it).
    """
    a = therapy_activity_GBq
    eng = result.doses
    stats = {s.region: s for s in eng.stats} if eng is not None else {}
    feats = {f["region"]: f for f in result.features}
    rows = []
    for r in result.predictions:
        flags = list(r.flags)
        per_gbq = eng.dose_Gy_per_GBq.get(r.region) if eng is not None else r.dose_Gy_per_GBq
        s_value_method = result.params.lesion_dose_model if r.kind == "lesion" else "led"
        method = eng.dose_method if eng is not None else s_value_method
        if per_gbq is None:  # a region the dose map does not hold: its S-value dose, flagged
            per_gbq, method = r.dose_Gy_per_GBq, s_value_method
            flags.append("not_in_dose_map")
        lo = hi = rel = None
        f = feats.get(r.region, {})
        if result.params.model == "calibrated":
            if "calibrated_dose_Gy_per_GBq" in f:
                per_gbq, method = f["calibrated_dose_Gy_per_GBq"], "calibrated_regression"
                lo, hi, rel = f["calibrated_pi95_low_Gy_per_GBq"], f["calibrated_pi95_high_Gy_per_GBq"], \
                    f["calibrated_log_sd"]
            else:
                flags.append("not_calibrated")
        st = stats.get(r.region)

        def absolute(x):
            return None if a is None or x is None else x * a

        rows.append({"region": r.region, "kind": r.kind, "cycle": cycle, "dose_Gy": absolute(per_gbq),
                     "dose_method": method, "dose_per_activity_Gy_per_GBq": per_gbq, "dose_rel_uncertainty": rel,
                     "dose_ci95_low_Gy": absolute(lo), "dose_ci95_high_Gy": absolute(hi), "volume_mL": r.volume_mL,
                     "mass_g": r.mass_g,
                     **({"map_mean_dose_Gy": absolute(st.mean_dose_Gy), "median_dose_Gy": absolute(st.median_dose_Gy),
                         "min_dose_Gy": absolute(st.min_dose_Gy), "max_dose_Gy": absolute(st.max_dose_Gy),
                         "d2_Gy": absolute(st.d2_Gy), "d50_Gy": absolute(st.d50_Gy), "d98_Gy": absolute(st.d98_Gy)}
                        if st is not None else {}),
                     "flags": ";".join(dict.fromkeys(flags)), "prediction_model": result.params.model,
                     "tia_per_activity_h": r.tia_Bq_h_per_GBq / 1e9,
                     "dose_as_seen_by_spect_Gy_per_GBq": per_gbq * r.spect_recovery})
    return rows


def _reference_density(patient, record):
    """Mass density (g/mL) of the reference CT when it lies on the segmentation grid, else None (warned).

    Computed once per prediction: the region masses and the dose engine both use it.
    """
    tps = patient.cycles[0].timepoints if patient.cycles else ()
    ct = tps[0].ct if tps else None
    seg = patient.segmentation.image
    if ct is None or ct.GetSize() != seg.GetSize() or not np.allclose(ct.GetSpacing(), seg.GetSpacing()) \
            or not np.allclose(ct.GetOrigin(), seg.GetOrigin(), atol=1e-3):
        record.warn("no density image and no reference CT on the segmentation grid: region masses = volume × "
                    "1.04 g/mL (flag mass_from_volume) and the dose engine at a uniform 1.04 g/mL",
                    stage="prediction", source="density")
        return None
    from ..density import ct_to_density

    record.stages.setdefault("prediction", {})["masses"] = "reference CT → density (LuDosimetryLib.density)"
    return ct_to_density(ct)


def _uniform_density(segmentation):
    """1.04 g/mL on the segmentation grid (soft tissue), for the dose engine without a density."""
    import SimpleITK as sitk

    seg = segmentation.image
    img = sitk.Image(seg.GetSize(), sitk.sitkFloat32) + 1.04
    img.CopyInformation(seg)
    return img


def _pet_to_reference(patient, study, record):
    """PET → reference transform by rigid CT-to-CT registration, else identity (warned)."""
    from ..alignment import REGISTRATION_VOXEL_MM, register_ct_to_ct, registration_image

    ref_ct = patient.cycles[0].timepoints[0].ct if patient.cycles and patient.cycles[0].timepoints else None
    if ref_ct is not None and study.ct is not None:
        # rigid (invertible): the alignment module returns reference → PET CT; regions need PET → reference
        result = register_ct_to_ct(registration_image(ref_ct, REGISTRATION_VOXEL_MM),
                                   registration_image(study.ct, REGISTRATION_VOXEL_MM), deformable=False)
        record.stages.setdefault("prediction", {})["pet_registration"] = dict(result.quality)
        return result.transform.GetInverse()
    record.warn("no PET/CT → SPECT/CT registration (no transform given, or a CT is missing): identity transform "
                "assumed", stage="prediction", source="transform")
    return None


def predict_patient(patient, *, params: PredictionParameters, record: RunRecord, transform=None, density=None,
                    input_region: str | None = "auto", lesions: LesionSettings | None = None) -> PatientPrediction:
    """Predict the 177Lu doses of an ingested patient from its first PET study.

    Region masses come from ``density`` (g/mL on the segmentation grid) or the reference CT; the
    PET/CT → SPECT/CT reference transform is ``transform`` or a rigid CT-to-CT registration
    (:func:`LuDosimetryLib.alignment.register_ct_to_ct`). The result carries the transform used.
    """
    if not patient.pet_studies:
        raise InputError("no PET study found", source=f"patient {patient.patient_id}")
    if patient.segmentation is None:
        raise InputError("no segmentation found; the prediction needs the regions",
                         source=f"patient {patient.patient_id}")
    study = patient.pet_studies[0]
    if density is None:
        density = _reference_density(patient, record)
    masses = region_masses_g(patient.segmentation, density) if density is not None else None
    if transform is None:
        transform = _pet_to_reference(patient, study, record)
    result = predict_study(study, patient.segmentation, transform=transform, params=params, masses_g=masses,
                           input_region=input_region, lesions=lesions, record=record)
    result = replace(result, transform=transform)
    tps = patient.cycles[0].timepoints if patient.cycles else ()
    grid = tps[0].spect if tps and tps[0].spect is not None else None

    def warn(message, *, source=""):
        record.warn(message, stage="prediction", source=source)

    return apply_dose_engine(result, study, patient.segmentation,
                             density if density is not None else _uniform_density(patient.segmentation),
                             grid=grid, warn=warn)
