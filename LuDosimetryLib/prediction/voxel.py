"""Predicted voxel TIA and dose maps, and the voxel-level comparison with a measured dose map.

Predicted TIA map. Each voxel of the late static PET, made biological (the same single decay path
as the regions, :func:`~.decay.to_biological`), is multiplied by its region's ratio
TIA_r / g_r(t_ref) (predicted 177Lu TIA per unit of late 68Ga uptake, recovery coefficient and
scale factors included); voxels outside every predicted region use the ``default_organ`` row of
the population table with the population uptake rate. The concentration map (Bq·h/mL) is
resampled (linear) onto the dose grid, then multiplied by the voxel volume and convolved with the
177Lu kernel (:func:`LuDosimetryLib.dose.convolution.convolve_dose`). Voxel-level partial-volume
effects of the PET are not corrected (only region means are).

Comparison (:func:`compare_dose_maps`): the predicted map is resampled onto the measured grid;
dose difference, relative difference, DVH per region, and the gamma index for each criterion
(default :data:`~.comparison.SPECT_CRITERIA`) with its pass rate per region.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..model import PetStudy, Segmentation
from ..timing import DecayState
from ..units import BQ_PER_GBQ
from .comparison import (
    SPECT_CRITERIA,
    SPECT_REGION_CRITERIA,
    GammaCriteria,
    GammaResult,
    dose_difference,
    dvh,
    gamma_by_region,
    gamma_index,
    gamma_pass_rates,
)
from .decay import PetTac, to_biological
from .parameters import PredictionParameters, lookup_factor
from .population import PopulationTable, load_population_table
from .predict import RegionPrediction
from .regions import labels_on_grid
from .uptake import anchor_uptake_fraction, lu177_curve

__all__ = ["predicted_tia_map", "predicted_dose_map", "DoseComparison", "compare_dose_maps", "write_comparison",
           "compare_with_measured"]


def predicted_tia_map(study: PetStudy, segmentation: Segmentation, predictions: Sequence[RegionPrediction], grid, *,
                      transform=None, grid_transform=None, params: PredictionParameters | None = None,
                      population: PopulationTable | None = None,
                      decay_state: DecayState | str = DecayState.ACQUISITION,
                      therapy_activity_Bq: float = BQ_PER_GBQ):
    """Predicted 177Lu TIA concentration (Bq·h/mL, float32 SimpleITK image) on ``grid``.

    Parameters
    ----------
    study : PetStudy
        Needs the static frame.
    segmentation : Segmentation
    predictions : sequence of RegionPrediction
        Leaves (groups are ignored here).
    grid : SimpleITK.Image
        Output grid (e.g. the measured dose grid).
    transform : SimpleITK.Transform, optional
        PET points → segmentation points.
    grid_transform : SimpleITK.Transform, optional
        ``grid`` points → PET points (identity if None).
    therapy_activity_Bq : float
        177Lu activity (Bq); default 1 GBq.
    """
    import SimpleITK as sitk

    if study.static is None:
        raise InputError("the predicted TIA map needs the static PET frame", source="PET study")
    p = params or PredictionParameters()
    pop = population or load_population_table(p.population_table)
    st = study.static
    unit = PetTac("voxel", "organ", [st.start_h], [st.duration_h], [1.0], decay_state, series_start_h=st.start_h,
                  frame_source=("static",), nuclide=study.administration.nuclide, frame_values=p.frame_values)
    bio = to_biological(unit, study.administration.injected_activity_Bq)
    factor_bio = float(bio.fraction_per_mL[0])
    t_ref = float(bio.time_h[0])
    lab = labels_on_grid(segmentation.image, st.image, transform)
    n = int(max(lab.max(), max((r.label for r in segmentation.table), default=0))) + 1
    # default kinetics for voxels outside the predicted regions
    entry = pop.lookup("unlabelled", kind="organ")
    bw, bu = entry.biological_washout_rate_per_h, entry.biological_uptake_rate_per_h
    u = anchor_uptake_fraction(1.0, t_ref, washout_rate_per_h=bw, uptake_rate_per_h=bu)
    default_ratio = lu177_curve(u, washout_rate_per_h=bw, uptake_rate_per_h=bu,
                                injected_activity_Bq=therapy_activity_Bq).integral()
    default_ratio *= lookup_factor(p.ligand_uptake_ratio, "unlabelled") * p.tumour_sink_factor
    lut = np.full(n, default_ratio, dtype=np.float64)
    by_name = {r.name: r.label for r in segmentation.table}
    for pr in predictions:
        if pr.region in by_name and pr.late_fraction_ga > 0:
            lut[by_name[pr.region]] = pr.tia_Bq_h_per_GBq * therapy_activity_Bq / BQ_PER_GBQ / pr.late_fraction_ga
    pet = sitk.GetArrayViewFromImage(st.image).astype(np.float64)
    tia = np.clip(pet * factor_bio * lut[lab], 0.0, None).astype(np.float32)
    img = sitk.GetImageFromArray(tia)
    img.CopyInformation(st.image)
    tx = grid_transform if grid_transform is not None else sitk.Transform(3, sitk.sitkIdentity)
    return sitk.Resample(img, grid, tx, sitk.sitkLinear, 0.0, sitk.sitkFloat32)


def predicted_dose_map(tia_Bq_h_per_mL, *, photons: bool = True):
    """Dose map (Gy, SimpleITK float32) from a TIA concentration map on the dose grid (kernel convolution)."""
    import SimpleITK as sitk

    from ..dose.convolution import convolve_dose, tia_per_voxel
    from ..kernels import dose_kernel

    sp = tia_Bq_h_per_mL.GetSpacing()
    tia = tia_per_voxel(sitk.GetArrayViewFromImage(tia_Bq_h_per_mL), sp)
    dose = convolve_dose(tia, dose_kernel(tuple(sp), photons=photons))
    out = sitk.GetImageFromArray(np.asarray(dose, dtype=np.float32))
    out.CopyInformation(tia_Bq_h_per_mL)
    return out


@dataclass(frozen=True)
class DoseComparison:
    """Voxel comparison of a predicted and a measured dose map on the measured grid."""

    difference_Gy: np.ndarray
    relative_difference: np.ndarray
    gamma: tuple[GammaResult, ...]
    pass_rate_rows: tuple[dict, ...]
    dvh: dict
    spacing_mm: tuple[float, float, float]


def compare_dose_maps(predicted, measured, labels, names: Mapping[int, str], *,
                      criteria: Sequence[GammaCriteria] = SPECT_CRITERIA + SPECT_REGION_CRITERIA,
                      transform=None) -> DoseComparison:
    """Compare dose maps (SimpleITK, Gy): predicted resampled (linear) onto the measured grid.

    Parameters
    ----------
    predicted, measured : SimpleITK.Image
    labels : SimpleITK.Image
        Region label map on the measured grid.
    names : mapping
        Label value → region name (regions reported).
    criteria : sequence of GammaCriteria
    transform : SimpleITK.Transform, optional
        Measured-grid points → predicted-grid points.
    """
    import SimpleITK as sitk

    tx = transform if transform is not None else sitk.Transform(3, sitk.sitkIdentity)
    pred = sitk.Resample(predicted, measured, tx, sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    p = sitk.GetArrayFromImage(pred)
    m = sitk.GetArrayFromImage(sitk.Cast(measured, sitk.sitkFloat32))
    lab = sitk.GetArrayFromImage(labels)
    if lab.shape != m.shape:
        raise InputError(f"label map {lab.shape} is not on the measured dose grid {m.shape}", source="labels")
    sp = tuple(float(s) for s in measured.GetSpacing())
    diff, rel = dose_difference(p, m)
    results = tuple(gamma_index(m, p, sp, c) for c in criteria if c.normalisation != "region")
    rows = tuple(row for res in results for row in gamma_pass_rates(res, lab, names))
    rows += tuple(row for c in criteria if c.normalisation == "region"
                  for row in gamma_by_region(m, p, sp, lab, names, c))
    curves = {}
    for value, name in names.items():
        mask = lab == value
        if not mask.any():
            continue
        top = float(max(p[mask].max(), m[mask].max())) * 1.05 or 1.0
        bins = np.linspace(0.0, top, 200)
        lp, fp = dvh(p, mask, bins_Gy=bins)
        lm, fm = dvh(m, mask, bins_Gy=bins)
        curves[name] = (lp, fp, lm, fm)
    return DoseComparison(diff, rel, results, rows, curves, sp)


def write_comparison(result: DoseComparison, folder: str | Path, measured) -> dict[str, str]:
    """Write dose_difference_Gy.nii.gz, gamma_<i>.nii.gz, gamma_pass_rates.csv, dvh_overlay.png into ``folder``."""
    import SimpleITK as sitk

    from ..results import atomic_output_path, write_csv
    from .comparison import plot_dvh_overlay

    folder = Path(folder)
    out = {}

    def save(arr, name):
        img = sitk.GetImageFromArray(np.asarray(arr, dtype=np.float32))
        img.CopyInformation(measured)
        with atomic_output_path(folder / name) as tmp:
            sitk.WriteImage(img, str(tmp), useCompression=True)

    save(result.difference_Gy, "dose_difference_Gy.nii.gz")
    out["dose_difference_Gy.nii.gz"] = "predicted − measured dose (Gy) on the measured grid"
    for i, g in enumerate(result.gamma, start=1):
        save(g.gamma, f"gamma_{i}.nii.gz")
        out[f"gamma_{i}.nii.gz"] = f"gamma index, {g.criteria.label} (NaN: not evaluated)"
    write_csv(folder / "gamma_pass_rates.csv", result.pass_rate_rows,
              ("region", "criteria", "n_evaluated", "pass_rate"))
    out["gamma_pass_rates.csv"] = "gamma pass rate per region and criterion"
    if result.dvh:
        plot_dvh_overlay(result.dvh, folder / "dvh_overlay.png")
        out["dvh_overlay.png"] = "DVH predicted (dashed) vs measured (solid)"
    return out


def compare_with_measured(study: PetStudy, segmentation: Segmentation, predictions: Sequence[RegionPrediction],
                          measured_dose, *, transform=None, params: PredictionParameters | None = None,
                          population: PopulationTable | None = None, therapy_activity_GBq: float = 1.0,
                          criteria: Sequence[GammaCriteria] = SPECT_CRITERIA + SPECT_REGION_CRITERIA,
                          kinds: Sequence[str] = ("organ", "lesion")):
    """Predicted dose map on the measured dose grid, and its comparison with the measured map.

    Parameters
    ----------
    measured_dose : SimpleITK.Image
        Measured dose (Gy) in the reference (SPECT/CT) frame, e.g. ``dose_Gy.nii.gz`` of ``ludosimetry run``.
    transform : SimpleITK.Transform, optional
        PET points → reference points (its inverse brings the PET onto the measured grid).
    therapy_activity_GBq : float
        The 177Lu activity of the measured cycle (GBq).

    Returns
    -------
    (SimpleITK.Image, DoseComparison)
        The predicted dose map (Gy) on the measured grid and the comparison.
    """
    import SimpleITK as sitk

    grid_tx = transform.GetInverse() if transform is not None else None
    leaves = [r for r in predictions if not any(f.startswith("group_of_") for f in r.flags)]
    tia = predicted_tia_map(study, segmentation, leaves, measured_dose, transform=transform, grid_transform=grid_tx,
                            params=params, population=population,
                            therapy_activity_Bq=therapy_activity_GBq * BQ_PER_GBQ)
    predicted = predicted_dose_map(tia)
    labels = sitk.Resample(segmentation.image, measured_dose, sitk.Transform(3, sitk.sitkIdentity),
                           sitk.sitkNearestNeighbor, 0, sitk.sitkUInt32)
    names = {r.label: r.name for r in segmentation.table if r.kind in kinds}
    return predicted, compare_dose_maps(predicted, measured_dose, labels, names, criteria=criteria)
