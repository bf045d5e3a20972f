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
from .parameters import PredictionParameters
from .pet_kinetics import fit_two_tissue_irreversible, patlak
from .population import PopulationTable, load_population_table
from .predict import RegionPrediction, aggregate_groups, predict_regions, prediction_dose_rows, prediction_fit_rows
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
                  input_region: str | None = None, patlak_t_star_h: float = 20.0 / 60.0,
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
        of the Patlak analysis; it must lie in the dynamic FoV.
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
        if not dyn:
            raise InputError(f"input-function region {input_region!r} is not in the dynamic field of view "
                             f"({fov[input_region].dynamic_fraction:.0%} of its volume)", source="input_region")
        idif = biological_tacs({input_region: dyn}, a0)[0]
    bios = biological_tacs(tacs, a0)
    if progress:
        progress(0.5, "predicting 177Lu kinetics and doses")
    groups = {r.name: r.group for r in segmentation.table}
    preds = predict_regions(bios, params=p, population=pop, masses_g=masses_g, groups=groups, warn=warn)
    group_members = {g: [r.name for r in rs] for g, rs in segmentation.table.groups().items()
                     if any(r.kind in ("organ", "lesion") for r in rs)}
    preds = preds + aggregate_groups(preds, group_members)
    rows = []
    if idif is not None:
        for b in bios:
            dyn = np.array([s == "dynamic" for s in b.frame_source])
            if dyn.sum() < 3 or b.region == input_region:
                continue
            try:
                res = patlak(b.time_h[dyn], b.fraction_per_mL[dyn], idif.fraction_per_mL, t_star_h=patlak_t_star_h)
            except InputError as exc:
                warn(f"Patlak not computed: {exc.reason}", source=b.region)
                continue
            row = {"region": b.region, "input_region": input_region, "ki_per_min": res.ki_per_h / 60.0,
                   "intercept": res.intercept, "t_star_min": res.t_star_h * 60.0, "n_points": res.n_points,
                   "r_squared": res.r_squared}
            if dyn.sum() >= 5 and b.start_h is not None:
                fit = fit_two_tissue_irreversible(b.start_h[dyn], b.duration_h[dyn], b.fraction_per_mL[dyn],
                                                  idif.fraction_per_mL)
                row.update({"tc2_K1_per_min": fit.K1_per_h / 60.0, "tc2_k2_per_min": fit.k2_per_h / 60.0,
                            "tc2_k3_per_min": fit.k3_per_h / 60.0, "tc2_blood_fraction": fit.blood_fraction,
                            "tc2_ki_per_min": fit.ki_per_h / 60.0, "tc2_rel_rmse": fit.rel_rmse,
                            "tc2_converged": fit.converged})
            rows.append(row)
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
                             settings)


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
    dose_rows = prediction_dose_rows(result.predictions, therapy_activity_GBq=a, cycle=cycle,
                                     lesion_dose_model=result.params.lesion_dose_model)
    fit_rows = prediction_fit_rows(result.predictions, therapy_activity_GBq=a, cycle=cycle)
    tac_rows = [{"region": b.region, "kind": b.kind, "time_h": float(t), "frame_source": s,
                 "biological_fraction_per_mL": float(f), "volume_mL": b.volume_mL}
                for b in result.tacs for t, f, s in zip(b.time_h, b.fraction_per_mL, b.frame_source)]
    fov_rows = [{"region": f.region, "volume_mL": f.volume_mL, "dynamic_fov_fraction": f.dynamic_fraction,
                 "static_fov_fraction": f.static_fraction, "uses": f.uses} for f in result.fov.values()]
    record.parameters["prediction"] = {**result.params.to_dict(), "therapy_activity_GBq_used": a,
                                       "population_table": result.population.to_dict(), **result.settings}
    rep = report or Report("PET-based 177Lu dose prediction")
    sec = rep.section("prediction", "Prediction from the pre-therapy PET")
    sec.paragraph("Method: late 68Ga uptake fraction (decay-corrected with λ(68Ga), recovery-corrected) anchored to a "
                  "biological uptake–washout curve with population 177Lu washout half-lives, re-decayed with "
                  f"λ(177Lu); population table: {result.population.origin}. Parameters are in run.json.")
    sec.table([{"region": r["region"], "kind": r["kind"],
                "dose_per_activity_Gy_per_GBq": r["dose_per_activity_Gy_per_GBq"],
                "dose_Gy": r["dose_Gy"], "dose_method": r["dose_method"],
                "tia_per_activity_h": r["tia_per_activity_h"], "flags": r["flags"]}
               for r in dose_rows], caption="Predicted absorbed doses")
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
        write_csv(tmp / "doses.csv", dose_rows, DOSES_COLUMNS)
        write_csv(tmp / "fits.csv", fit_rows, FITS_COLUMNS)
        write_csv(tmp / "pet_tac.csv", tac_rows, ("region", "kind", "time_h", "frame_source",
                                                   "biological_fraction_per_mL", "volume_mL"))
        write_csv(tmp / "pet_fov.csv", fov_rows, ("region", "volume_mL", "dynamic_fov_fraction",
                                                   "static_fov_fraction", "uses"))
        outputs = {"doses.csv": "predicted doses (prediction_model pet_prediction)", "fits.csv": "predicted 177Lu TIA",
                   "pet_tac.csv": "biological 68Ga uptake per region and frame",
                   "pet_fov.csv": "field-of-view fractions and what each region used"}
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
        rep.write(tmp / "report.html")
        outputs["report.html"] = "report with the prediction section"
        record.outputs.update(outputs)
        record.write(tmp)
    return out


def _masses_from_reference_ct(patient, record):
    """Region masses from the reference CT (HU → density, LuDosimetryLib.density) when it shares the label grid."""
    tps = patient.cycles[0].timepoints if patient.cycles else ()
    ct = tps[0].ct if tps else None
    seg = patient.segmentation.image
    if ct is None or ct.GetSize() != seg.GetSize() or not np.allclose(ct.GetSpacing(), seg.GetSpacing()) \
            or not np.allclose(ct.GetOrigin(), seg.GetOrigin(), atol=1e-3):
        record.warn("no density image and no reference CT on the segmentation grid: region masses = volume × "
                    "1.04 g/mL (flag mass_from_volume)", stage="prediction", source="masses")
        return None
    from ..density import ct_to_density

    record.stages.setdefault("prediction", {})["masses"] = "reference CT → density (LuDosimetryLib.density)"
    return region_masses_g(patient.segmentation, ct_to_density(ct))


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
                    input_region: str | None = None, lesions: LesionSettings | None = None) -> PatientPrediction:
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
    masses = region_masses_g(patient.segmentation, density) if density is not None else \
        _masses_from_reference_ct(patient, record)
    if transform is None:
        transform = _pet_to_reference(patient, study, record)
    result = predict_study(study, patient.segmentation, transform=transform, params=params, masses_g=masses,
                           input_region=input_region, lesions=lesions, record=record)
    return replace(result, transform=transform)
