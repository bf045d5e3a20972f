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

from dataclasses import dataclass

import numpy as np

from . import hierarchy
from .alignment_logic import aligned_spect_nodes
from .nodes import (
    columns_table,
    get_node_attributes,
    keep_full_precision,
    mark_dose_volume,
    plot_chart,
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


def run_dose(aligned_spect, labels, *, method: str = "convolution", photons: bool = True,
             window_max_Gy: float = 0.0, fits=(), partial_volume: str = "gtm", patient_dir=None,
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
    partial_volume : {"gtm", "recovery", "none"}
        The correction the fits were made with (TAC stage).
    patient_dir : path, optional
        Patient folder, for ``blood_samples.csv``; with fits the table's ``red_marrow`` row is the
        reported red-marrow dose of ``ludosimetry run`` (:mod:`LuDosimetryLib.dose.marrow_chain`).
    """
    import SimpleITK as sitk

    from LuDosimetryLib.density import ct_to_density
    from LuDosimetryLib.dose.export import merge_extra_rows
    from LuDosimetryLib.dose.regional import dose_rows, dvh_chart_columns
    from LuDosimetryLib.errors import InputError
    from LuDosimetryLib.pipeline import (
        PipelineSettings,
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
    reported, rel, ci95, marrow = {}, {}, {}, None
    if fits:
        map_tia = region_tia_from_map(maps.tia, seg)
        reported, rel, ci95 = reported_region_doses(stats, list(fits), map_tia, settings)
        marrow, _ = red_marrow_row_for_run(stats, list(fits), map_tia, patient_dir, admin, settings, RunRecord("Dose"))
    rows = merge_extra_rows(dose_rows(stats, cycle=cycle, injected_activity_Bq=admin.injected_activity_Bq,
                                      reported=reported, rel_uncertainty=rel, ci95_Gy=ci95),
                            [marrow] if marrow is not None else [])
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
    table = rows_to_table(rows, name=f"{patient_id} cycle{cycle} dose statistics", columns=DOSES_COLUMNS)
    set_node_attributes(table, {**common, "Stage": "dose"})
    hierarchy.place(table, folder)
    keep_full_precision(table, rows, DOSES_COLUMNS)
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
    return DoseOutputs(tia_node, dose_node, table, dvh_table, chart, (0.0, hi))
