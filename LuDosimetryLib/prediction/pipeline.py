"""One patient: PET study + segmentation → predicted 177Lu doses, written as a results folder.

:func:`predict_study` runs region TACs (:mod:`.regions`), decay (:mod:`.decay`), the prediction
(:mod:`.predict`), and optional Patlak K_i against an image-derived input function from a region
given by name. :func:`write_prediction` writes ``doses.csv`` (DOSES_COLUMNS, method
``pet_prediction``), ``fits.csv`` (predicted TIA), ``pet_tac.csv``, ``pet_fov.csv``,
``pet_kinetics.csv`` (Patlak, when an input region was given), ``report.html`` (prediction
section) and ``run.json`` (every parameter, the population table, warnings).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..model import PetStudy, Segmentation
from ..results import DOSES_COLUMNS, FITS_COLUMNS, RunRecord, atomic_directory, write_csv
from ..timing import DecayState
from .decay import BiologicalTac
from .parameters import PredictionParameters
from .pet_kinetics import patlak
from .population import PopulationTable, load_population_table
from .predict import RegionPrediction, aggregate_groups, predict_regions, prediction_dose_rows, prediction_fit_rows
from .regions import RegionSet, biological_tacs, region_pet_tacs, region_sets

__all__ = ["PatientPrediction", "predict_study", "write_prediction", "region_masses_g"]


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
                  record: RunRecord | None = None, progress=None) -> PatientPrediction:
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
            rows.append({"region": b.region, "input_region": input_region, "ki_per_min": res.ki_per_h / 60.0,
                         "intercept": res.intercept, "t_star_min": res.t_star_h * 60.0, "n_points": res.n_points,
                         "r_squared": res.r_squared})
    if progress:
        progress(1.0, "prediction done")
    return PatientPrediction(preds, fov, tuple(bios), p, pop, tuple(rows), tuple(warnings))


def write_prediction(result: PatientPrediction, out: str | Path, *, record: RunRecord, report=None,
                     therapy_activity_GBq: float | None = None, cycle: int = 1, overwrite: bool = False) -> Path:
    """Write the prediction results folder (whole or not at all)."""
    from ..report import Report

    a = therapy_activity_GBq if therapy_activity_GBq is not None else result.params.therapy_activity_GBq
    dose_rows = prediction_dose_rows(result.predictions, therapy_activity_GBq=a, cycle=cycle)
    fit_rows = prediction_fit_rows(result.predictions, therapy_activity_GBq=a, cycle=cycle)
    tac_rows = [{"region": b.region, "kind": b.kind, "time_h": float(t), "frame_source": s,
                 "biological_fraction_per_mL": float(f), "volume_mL": b.volume_mL}
                for b in result.tacs for t, f, s in zip(b.time_h, b.fraction_per_mL, b.frame_source)]
    fov_rows = [{"region": f.region, "volume_mL": f.volume_mL, "dynamic_fov_fraction": f.dynamic_fraction,
                 "static_fov_fraction": f.static_fraction, "uses": f.uses} for f in result.fov.values()]
    record.parameters["prediction"] = {**result.params.to_dict(), "therapy_activity_GBq_used": a,
                                       "population_table": result.population.to_dict()}
    rep = report or Report("PET-based 177Lu dose prediction")
    sec = rep.section("prediction", "Prediction from the pre-therapy PET")
    sec.paragraph("Method: late 68Ga uptake fraction (decay-corrected with λ(68Ga), recovery-corrected) anchored to a "
                  "biological uptake–washout curve with population 177Lu washout half-lives, re-decayed with "
                  f"λ(177Lu); population table: {result.population.origin}. Parameters are in run.json.")
    sec.table([{"region": r["region"], "kind": r["kind"],
                "dose_per_activity_Gy_per_GBq": r["dose_per_activity_Gy_per_GBq"],
                "mean_dose_Gy": r["mean_dose_Gy"], "tia_per_activity_h": r["tia_per_activity_h"], "flags": r["flags"]}
               for r in dose_rows], caption="Predicted absorbed doses")
    skipped = [f.region for f in result.fov.values() if f.uses == "none"]
    if skipped:
        sec.paragraph(f"Outside both PET fields of view (no prediction): {', '.join(skipped)}", css_class="warn")
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
        outputs = {"doses.csv": "predicted doses (method pet_prediction)", "fits.csv": "predicted 177Lu TIA",
                   "pet_tac.csv": "biological 68Ga uptake per region and frame",
                   "pet_fov.csv": "field-of-view fractions and what each region used"}
        if result.patlak_rows:
            write_csv(tmp / "pet_kinetics.csv", result.patlak_rows, list(result.patlak_rows[0]))
            outputs["pet_kinetics.csv"] = "Patlak Ki per region"
        rep.write(tmp / "report.html")
        outputs["report.html"] = "report with the prediction section"
        record.outputs.update(outputs)
        record.write(tmp)
    return out
