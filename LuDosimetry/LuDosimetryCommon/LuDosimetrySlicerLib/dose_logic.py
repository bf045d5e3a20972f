"""Dose stage in the scene: aligned SPECT volumes → voxel TIA → absorbed-dose map → regional dose
statistics and DVH (LuDosimetryLib.kinetics.voxel, .kernels, .dose compute).

Outputs (``DoseOutputs``), under the patient's study ``cycle<N> dose``:

- ``tia_volume``: TIA per voxel (Bq·h) on the reference SPECT grid;
- ``dose_volume``: absorbed dose (Gy, float32) on the reference SPECT grid, the soft-tissue kernel
  dose scaled to the CT density averaged onto that grid; marked for SlicerRT
  (:func:`.nodes.mark_dose_volume`), voxel value quantity/units set, inferno colour table with a
  fixed window from 0 Gy;
- ``statistics``: one row per region (``DOSES_COLUMNS``: mean, median, D2, D98 … in Gy, volume
  mL, mass g), units set, taken on the label grid (the soft-tissue dose resampled linearly onto
  it and scaled by the CT density there);
- ``dvh_table`` and ``dvh_chart``: cumulative DVH per region (``dose_Gy``, ``<region>_volume_percent``).

Every node carries ``PatientID``, ``Cycle``, ``Nuclide``, ``InjectedActivityBq``, ``Method``.
The steps and their order are those of :func:`LuDosimetryLib.pipeline.run_patient`, so the module,
the command line and the batch script give the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import hierarchy
from .alignment_logic import aligned_spect_nodes
from .nodes import (
    columns_table,
    get_node_attributes,
    keep_full_precision,
    mark_dose_volume,
    plot_chart,
    result_columns,
    rows_to_table,
    set_node_attributes,
    set_voxel_value,
    show_volume,
    sitk_to_volume,
    volume_to_sitk,
)
from .patient_nodes import administration_from_node, segmentation_from_node, timepoint_from_nodes
from .tac_logic import reference_ct_node

__all__ = ["DoseOutputs", "run_dose", "DOSE_METHODS", "DOSE_COLOR_NODE_ID"]

DOSE_METHODS = ("convolution", "led")
#: Built-in Slicer colour table of dose maps.
DOSE_COLOR_NODE_ID = "vtkMRMLColorTableNodeFileInferno.txt"
#: Upper end of the default colour window: this percentile of the dose map (display only).
WINDOW_PERCENTILE = 99.5


@dataclass
class DoseOutputs:
    """Nodes of :func:`run_dose`."""

    tia_volume: object
    dose_volume: object
    statistics: object
    dvh_table: object
    dvh_chart: object
    window_Gy: tuple
    warnings: list = field(default_factory=list)


def run_dose(aligned_spect, labels, *, method: str = "convolution", photons: bool = True,
             window_max_Gy: float = 0.0, fits=(), budgets=None, partial_volume: str = "gtm", patient_dir=None,
             progress=None) -> DoseOutputs:
    """Absorbed dose of the aligned timepoints of ``aligned_spect``'s patient and cycle.

    Parameters
    ----------
    aligned_spect : vtkMRMLScalarVolumeNode
        Any aligned SPECT of the patient's cycle (Alignment stage).
    labels : vtkMRMLLabelMapVolumeNode
        Label map with ``LuDosimetry.LabelTable`` (on the reference CT grid).
    method : {"convolution", "led"}
        Dose voxel kernel convolution (FFT), or local energy deposition.
    photons : bool
        Include the photon part of the kernel (or of the locally deposited energy).
    window_max_Gy : float
        Upper end of the colour window (Gy); 0: the 99.5th percentile of the map.
    fits : sequence of FitResult
        The TAC stage's fits (``TacOutputs.fits``): with them the table's ``dose_Gy`` is the
        partial-volume-corrected dose of ``ludosimetry run`` (:func:`LuDosimetryLib.pipeline.reported_region_doses`);
        without, the dose-map mean (``dose_method`` ``kernel`` or ``led``).
    budgets : mapping region → RegionBudget, optional
        The TAC stage's EANM budgets (``TacOutputs.budgets``): the dose's uncertainty, interval and
        shared/independent parts as ``ludosimetry run`` reports them; BED and EQD2 follow from the
        reported dose with the fits.
    partial_volume : {"gtm", "recovery", "none"}
        The correction the fits were made with (TAC stage).
    patient_dir : path, optional
        The patient folder (default: the SPECT's attribute ``LuDosimetry.PatientFolder``, set when
        LuDosimetry loaded it). With ``fits``, the ``red_marrow`` row is the red-marrow chain of
        ``ludosimetry run`` (:func:`LuDosimetryLib.pipeline.red_marrow_row_for_run`): blood-based when the
        folder has ``blood_samples.csv``, else image-based (L2–L4); without a folder, image-based.
    """
    import SimpleITK as sitk

    from LuDosimetryLib.density import ct_to_density
    from LuDosimetryLib.dose.export import dose_table_rows
    from LuDosimetryLib.dose.regional import dvh_chart_columns
    from LuDosimetryLib.errors import InputError
    from LuDosimetryLib.kinetics.budget import dose_uncertainty_columns
    from LuDosimetryLib.pipeline import (
        PipelineSettings,
        bed_rows,
        dose_maps,
        red_marrow_row_for_run,
        region_tia_from_map,
        reported_region_doses,
    )
    from LuDosimetryLib.results import DOSES_COLUMNS, RunRecord

    if method not in DOSE_METHODS:
        raise InputError(f"must be one of {', '.join(DOSE_METHODS)}, got {method!r}", source="method")
    report = progress or (lambda f, m: None)
    spects = aligned_spect_nodes(aligned_spect)
    attrs = get_node_attributes(aligned_spect)
    patient_id, cycle = attrs.get("PatientID", "patient"), int(attrs.get("Cycle") or 1)
    admin = administration_from_node(spects[0])
    ct = reference_ct_node(aligned_spect)
    if ct is None:
        raise InputError("the reference timepoint's CT is not in the scene (LuDosimetry.Modality = CT, Timepoint = "
                         f"{attrs.get('ReferenceTimepoint')}): the dose is scaled by the CT density",
                         source=aligned_spect.GetName())
    report(0.02, "reading volumes")
    timepoints = [timepoint_from_nodes(n) for n in spects]
    seg = segmentation_from_node(labels)
    density_ct = ct_to_density(volume_to_sitk(ct))

    def sub(lo: float, hi: float):
        return lambda f, m: report(lo + (hi - lo) * f, m)

    # the library's own stage function, as LuDosimetryLib.pipeline.run_patient calls it
    settings = PipelineSettings(cycle=cycle, dose_method=method, photons=photons, partial_volume=partial_volume)
    maps = dose_maps(timepoints, seg, admin, density_ct, settings=settings, progress=sub(0.05, 0.9))
    dose_img, stats = maps.dose, list(maps.stats)
    reported, rel, ci95 = reported_region_doses(stats, list(fits), region_tia_from_map(maps.tia, seg), settings) \
        if fits else ({}, {}, {})
    warnings: list[str] = []
    extra, region_values, flags = [], {}, None
    if fits:  # BED, EQD2, the budget's uncertainty and the red-marrow row, as ludosimetry run reports them
        dose_of = {s.region: reported.get(s.region, (s.mean_dose_Gy, ""))[0] for s in stats}
        beds = bed_rows(list(fits), dose_of, settings, warn=lambda m, r: warnings.append(f"{r}: {m}"))
        region_values = {"bed_Gy": {r: v["bed_Gy"] for r, v in beds.items()},
                         "eqd2_Gy": {r: v["eqd2_Gy"] for r, v in beds.items()}}
        if budgets is not None:
            rel, ci95, flags = dose_uncertainty_columns(budgets, dose_of)
            region_values.update({"dose_rel_uncertainty_shared": {r: b.dose_shared_rel for r, b in budgets.items()},
                                  "dose_rel_uncertainty_independent":
                                      {r: b.dose_independent_rel for r, b in budgets.items()}})
        folder_path = patient_dir or get_node_attributes(spects[0]).get("PatientFolder") or None
        record = RunRecord("LuDosimetry Dose")
        marrow, _ = red_marrow_row_for_run(stats, list(fits), region_tia_from_map(maps.tia, seg), folder_path, admin,
                                           settings, record)
        warnings += [f"{w['stage']}: {w['message']}" for w in record.warnings]
        extra = [marrow] if marrow is not None else []
    rows = dose_table_rows(stats, cycle=cycle, injected_activity_Bq=admin.injected_activity_Bq, reported=reported,
                           rel_uncertainty=rel, ci95_Gy=ci95, flags=flags, region_values=region_values,
                           extra_rows=extra)
    columns = result_columns(rows, DOSES_COLUMNS)
    dose = sitk.GetArrayViewFromImage(dose_img)
    common = {"PatientID": patient_id, "Cycle": cycle, "Nuclide": admin.nuclide,
              "InjectedActivityBq": repr(admin.injected_activity_Bq),
              "InjectionDateTime": admin.injection_datetime.isoformat(),
              "Method": method, "Timepoints": ",".join(f"{tp.label}@{tp.time_h:.2f}h" for tp in timepoints)}
    study = hierarchy.timepoint_item(patient_id, f"cycle{cycle} dose")
    folder = hierarchy.stage_folder(patient_id, "dose")
    report(0.9, "storing results")
    tia_node = sitk_to_volume(maps.tia, name=f"{patient_id} cycle{cycle} TIA")
    set_node_attributes(tia_node, {**common, "Stage": "dose"})
    set_voxel_value(tia_node, quantity="time_integrated_activity", units="Bq h")
    hierarchy.place(tia_node, study)
    dose_node = sitk_to_volume(dose_img, name=f"{patient_id} cycle{cycle} dose")
    set_node_attributes(dose_node, {**common, "Stage": "dose"})
    hierarchy.place(dose_node, study)
    mark_dose_volume(dose_node)
    hi = float(window_max_Gy) if window_max_Gy > 0 else float(np.percentile(dose, WINDOW_PERCENTILE))
    show_volume(dose_node, color_node_id=DOSE_COLOR_NODE_ID, window=(0.0, max(hi, 1e-6)))
    table = rows_to_table(rows, name=f"{patient_id} cycle{cycle} dose statistics", columns=columns)
    set_node_attributes(table, {**common, "Stage": "dose", "Warnings": "; ".join(warnings)})
    hierarchy.place(table, folder)
    keep_full_precision(table, rows, columns)
    dvh = dvh_chart_columns(stats)
    dvh_table = columns_table(dvh, name=f"{patient_id} cycle{cycle} DVH")
    set_node_attributes(dvh_table, {**common, "Stage": "dose"})
    hierarchy.place(dvh_table, folder)
    chart = plot_chart(dvh_table, [{"x": "dose_Gy", "y": c, "name": c.removesuffix("_volume_percent")}
                                   for c in dvh if c != "dose_Gy"],
                       name=f"{patient_id} cycle{cycle} DVH", title=f"{patient_id}: cumulative dose-volume histograms",
                       x_title="absorbed dose (Gy)", y_title="volume (%)")
    hierarchy.place(chart, folder)
    report(1.0, "done")
    return DoseOutputs(tia_node, dose_node, table, dvh_table, chart, (0.0, hi), warnings)
