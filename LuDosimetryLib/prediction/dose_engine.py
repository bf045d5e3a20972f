"""Predicted doses through the measured route's dose engine (same function, same conventions).

The predicted region TIAs (partial-volume corrected by the PET GTM) are spread over the voxels as
the static PET shows them (:func:`~.voxel.predicted_tia_map`), on the measured dose grid (the
reference SPECT grid when the patient has one). The dose map and its regional statistics come from
:func:`LuDosimetryLib.pipeline.dose_from_tia` — the function ``ludosimetry run`` uses for the SPECT
TIA map — and the reported dose of each region from
:func:`LuDosimetryLib.dose.regional.corrected_doses` (map mean dose × corrected TIA / map TIA), the
one implementation of the doses.csv convention that the measured route uses too
(:func:`LuDosimetryLib.pipeline.reported_region_doses`). A concordance bias can therefore come
only from the imaging and the kinetics, not from the dose calculation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..model import PetStudy, Segmentation
from ..units import BQ_PER_GBQ
from .parameters import PredictionParameters
from .population import PopulationTable
from .predict import RegionPrediction

__all__ = ["PredictedDoses", "predicted_doses", "dose_method_name"]


@dataclass(frozen=True, eq=False)
class PredictedDoses:
    """Dose engine outputs for 1 GBq of 177Lu.

    Attributes
    ----------
    tia : SimpleITK.Image
        Predicted TIA (Bq·h per voxel, per GBq) on the dose grid.
    dose : SimpleITK.Image
        Dose map (Gy per GBq).
    stats : tuple of RegionDose
        Regional statistics of the dose map (per GBq).
    dose_Gy_per_GBq : dict
        Reported dose per region (partial-volume convention).
    map_tia_Bq_h_per_GBq : dict
        TIA the map holds in each region.
    dose_method : str
        ``kernel+gtm-pvc`` etc. (COMMON convention).
    """

    tia: Any
    dose: Any
    stats: tuple
    dose_Gy_per_GBq: dict
    map_tia_Bq_h_per_GBq: dict
    dose_method: str


def _correction(pet_recovery) -> str | None:
    """Name of the PET partial-volume correction for ``dose_method`` (None: not corrected)."""
    if pet_recovery == "gtm":
        return "gtm"
    if isinstance(pet_recovery, int | float) and pet_recovery == 1:
        return None
    return "recovery"  # sphere RC or given recovery coefficients


def dose_method_name(dose_method: str, pet_recovery) -> str:
    """doses.csv ``dose_method`` of a prediction (``kernel+gtm-pvc`` …; :data:`LuDosimetryLib.results.DOSE_METHODS`)."""
    from ..dose.regional import map_dose_method

    corr = _correction(pet_recovery)
    base = map_dose_method(dose_method)
    return base if corr is None else f"{base}+{corr}-pvc"


def predicted_doses(study: PetStudy, segmentation: Segmentation, predictions: Sequence[RegionPrediction], density,
                    *, grid=None, transform=None, params: PredictionParameters | None = None,
                    population: PopulationTable | None = None, settings=None) -> PredictedDoses:
    """Dose map and reported region doses per GBq of the predicted TIA (module docstring).

    Parameters
    ----------
    study : PetStudy
        Needs the static frame (voxel distribution within each region).
    segmentation : Segmentation
        Reference grid labels.
    predictions : sequence of RegionPrediction
        Leaves and groups (their TIA per GBq is the corrected TIA).
    density : SimpleITK.Image
        Mass density (g/mL) on the segmentation grid (as ``ludosimetry run``: the reference CT's).
    grid : SimpleITK.Image, optional
        Dose grid in the reference frame (default: the segmentation grid).
    transform : SimpleITK.Transform, optional
        PET points → reference points (identity if None).
    settings : PipelineSettings, optional
        Dose settings of the measured route (default: the pipeline's defaults).
    """
    import SimpleITK as sitk

    from .. import pipeline
    from ..dose import regional
    from ..dose.convolution import tia_per_voxel
    from .voxel import predicted_tia_map

    p = params or PredictionParameters()
    st = settings or pipeline.PipelineSettings()
    grid = grid if grid is not None else segmentation.image
    inverse = transform.GetInverse() if transform is not None else None
    conc = predicted_tia_map(study, segmentation, [r for r in predictions if r.population_key != "leaves"], grid,
                             transform=transform, grid_transform=inverse, params=p, population=population,
                             therapy_activity_Bq=BQ_PER_GBQ)
    tia = sitk.GetImageFromArray(tia_per_voxel(sitk.GetArrayViewFromImage(conc), conc.GetSpacing()))
    tia.CopyInformation(conc)
    dose, stats = pipeline.dose_from_tia(tia, segmentation, density, nuclide="Lu-177", settings=st)
    map_tia = pipeline.region_tia_from_map(tia, segmentation)
    corrected = {r.region: r.tia_Bq_h_per_GBq for r in predictions if np.isfinite(r.tia_Bq_h_per_GBq)}
    corr = _correction(p.pet_recovery)
    if corr is None:  # no PET partial-volume correction: the dose-map mean, as the measured route without one
        doses = {s.region: s.mean_dose_Gy for s in stats if s.region in corrected}
    else:
        doses = {k: v[0] for k, v in regional.corrected_doses(stats, corrected, map_tia, correction=corr).items()}
    return PredictedDoses(tia, dose, tuple(stats), doses, map_tia, dose_method_name(st.dose_method, p.pet_recovery))
