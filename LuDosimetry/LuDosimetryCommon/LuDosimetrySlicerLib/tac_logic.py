"""TAC stage in the scene: aligned SPECT volumes + label map → time-activity curves, curve fits and
time-integrated activities (LuDosimetryLib.tac and LuDosimetryLib.kinetics.fitting compute).

Outputs (``TacOutputs``), under the patient (folder ``LuDosimetry TAC``):

- ``tac_table``: one row per region and timepoint (``TAC_COLUMNS`` + ``TAC_EXTRA_COLUMNS`` of the
  library: time_h, volume_mL, activity_Bq, mean/max concentration, %IA, recovery …), units set;
- ``fit_table``: one row per region (``fit_rows``: model, TIA in Bq·h and MBq·h with its 95 %
  interval, tail fraction, effective half-life), units set;
- ``chart``: measured activity (points, per region) and the fitted curves (lines) vs time p.i.,
  one table per region (``TAC <region>``: time_h, activity_Bq) and per curve (``Fit <region>``);
- the calibration used: the sensitivity ingest applied to the counts (attribute
  ``LuDosimetry.Calibration`` of the SPECT) and, when a store is given, its entry for the SPECT's
  camera on the injection date (``TacOutputs.calibration``), with a warning when they differ; as
  the tables' attribute ``LuDosimetry.Calibration``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import slicer

from . import hierarchy
from .alignment_logic import aligned_spect_nodes
from .nodes import (
    columns_table,
    get_node_attributes,
    keep_full_precision,
    plot_chart,
    result_columns,
    rows_to_table,
    set_node_attributes,
    volume_to_sitk,
)
from .patient_nodes import administration_from_node, segmentation_from_node, timepoint_from_nodes

__all__ = ["TacOutputs", "run_tac", "calibration_for", "reference_ct_node", "FIT_MODELS"]

FIT_MODELS = ("auto", "mono", "uptake_washout", "uptake_washout_fixed", "tri", "trapezoid")
#: Points of each fitted curve drawn in the chart (display sampling only).
CURVE_POINTS = 100


@dataclass
class TacOutputs:
    """Nodes and results of :func:`run_tac`."""

    tac_table: object
    fit_table: object
    chart: object
    fits: list = field(default_factory=list)
    calibration: object = None
    calibration_text: str = ""
    warnings: list = field(default_factory=list)
    #: EANM uncertainty budget per region (``LuDosimetryLib.kinetics.budget.RegionBudget``), for the Dose stage.
    budgets: dict = field(default_factory=dict)


def reference_ct_node(aligned_spect):
    """The reference timepoint's CT volume (its grid is the label grid), or None."""
    a = get_node_attributes(aligned_spect)
    for n in slicer.util.getNodesByClass("vtkMRMLScalarVolumeNode"):
        b = get_node_attributes(n)
        if (b.get("Modality") == "CT" and b.get("PatientID") == a.get("PatientID") and b.get("Cycle") == a.get("Cycle")
                and b.get("Timepoint") == a.get("ReferenceTimepoint") and b.get("Aligned") != "1"):
            return n
    return None


def calibration_for(spect_node, store_path):
    """(entry, text) of the calibration-store entry for the SPECT's camera, dated on or before the scan."""
    from LuDosimetryLib.calibration.store import CalibrationStore
    from LuDosimetryLib.errors import InputError

    key = get_node_attributes(spect_node).get("CameraKey")
    if not key:
        raise InputError("has no attribute LuDosimetry.CameraKey: the camera is unknown, so no calibration can be "
                         "chosen", source=spect_node.GetName())
    injection = get_node_attributes(spect_node).get("InjectionDateTime", "")
    entry = CalibrationStore.load(store_path).lookup(key, on_date=injection[:10] or None)
    text = (f"{entry.camera_key}; {entry.sensitivity_cps_per_MBq:.4g} cps/MBq "
            f"(u = {entry.sensitivity_rel_uncertainty:.2g}); "
            f"dated {entry.date or 'undated'}; {entry.source or 'no source given'}; from {store_path}")
    return entry, text


def run_tac(aligned_spect, labels, *, calibration_store=None, model: str = "auto", spect_fwhm_mm: float = 11.0,
            partial_volume: str = "gtm", progress=None) -> TacOutputs:
    """TACs, fits and TIA of every region for the aligned timepoints of ``aligned_spect``'s patient and cycle.

    Parameters
    ----------
    aligned_spect : vtkMRMLScalarVolumeNode
        Any aligned SPECT of the patient's cycle (from the Alignment stage).
    labels : vtkMRMLLabelMapVolumeNode
        Label map on the reference CT grid with ``LuDosimetry.LabelTable``.
    calibration_store : path, optional
        ``calibration.json``: the entry for the SPECT's camera is looked up and recorded.
    model : str
        One of :data:`FIT_MODELS` (``auto``: chosen by AICc per region).
    spect_fwhm_mm : float
        SPECT resolution (mm): PSF of the GTM correction and the below-resolution flag.
    partial_volume : {"gtm", "recovery", "none"}
        Partial-volume correction (:class:`LuDosimetryLib.pipeline.PipelineSettings`).
    """
    from LuDosimetryLib.calibration.store import CalibrationStore
    from LuDosimetryLib.density import ct_to_density
    from LuDosimetryLib.errors import InputError
    from LuDosimetryLib.kinetics.fitting import fit_rows
    from LuDosimetryLib.pipeline import PipelineSettings, recovery_for_camera, region_kinetics, uncertainty_budgets
    from LuDosimetryLib.results import FITS_COLUMNS, TAC_COLUMNS
    from LuDosimetryLib.tac import TAC_EXTRA_COLUMNS, tac_rows

    if model not in FIT_MODELS:
        raise InputError(f"must be one of {', '.join(FIT_MODELS)}, got {model!r}", source="model")
    report = progress or (lambda f, m: None)
    spects = aligned_spect_nodes(aligned_spect)
    attrs = get_node_attributes(aligned_spect)
    patient_id, cycle = attrs.get("PatientID", "patient"), int(attrs.get("Cycle") or 1)
    applied = get_node_attributes(spects[0]).get("Calibration", "")
    calibration, text = None, (f"applied at ingest: {applied}" if applied else "")
    warnings = []
    if calibration_store:
        calibration, store_text = calibration_for(spects[0], calibration_store)
        text = "; ".join(t for t in (text, f"store entry for this camera: {store_text}") if t)
        if applied and calibration.camera_key not in applied:
            warnings.append(f"the SPECT was quantified with another calibration ({applied}) than the store's entry "
                            f"for its camera ({calibration.camera_key})")
    report(0.05, "reading volumes")
    timepoints = [timepoint_from_nodes(n) for n in spects]
    seg = segmentation_from_node(labels)
    admin = administration_from_node(spects[0])
    ct = reference_ct_node(aligned_spect)
    density = ct_to_density(volume_to_sitk(ct)) if ct is not None else None

    def sub(f: float, m: str) -> None:
        report(0.1 + 0.5 * f, m)

    # the library's own stage function, as LuDosimetryLib.pipeline.run_patient calls it
    recovery = None
    if calibration_store and partial_volume == "recovery":
        recovery = recovery_for_camera(CalibrationStore.load(calibration_store), timepoints[0].camera,
                                       warn=warnings.append)
    settings = PipelineSettings(cycle=cycle, kinetic_models=(model,), spect_fwhm_mm=spect_fwhm_mm,
                                partial_volume=partial_volume)
    rows, fits = region_kinetics(timepoints, seg, admin, density=density, recovery=recovery, settings=settings,
                                 warn=lambda m, r: warnings.append(f"{r}: {m}"), progress=sub)
    # the EANM uncertainty budget, as run_patient applies it (the store given, else the patient folder's)
    folder_store = Path(get_node_attributes(spects[0]).get("PatientFolder") or ".") / "calibration.json"
    store_path = calibration_store or (folder_store if folder_store.is_file() else None)
    fits, budgets = uncertainty_budgets(fits, rows, seg, admin, camera=timepoints[0].camera, settings=settings,
                                        store=CalibrationStore.load(store_path) if store_path else None)
    folder = hierarchy.stage_folder(patient_id, "TAC")
    common = {"Stage": "TAC", "PatientID": patient_id, "Cycle": cycle, "Nuclide": admin.nuclide,
              "InjectedActivityBq": repr(admin.injected_activity_Bq), "Calibration": text or "none given"}
    tac_columns = (*TAC_COLUMNS, *TAC_EXTRA_COLUMNS)
    tac_table_rows = tac_rows(rows)
    tac_table = rows_to_table(tac_table_rows, name=f"{patient_id} TACs", columns=tac_columns)
    set_node_attributes(tac_table, common)
    hierarchy.place(tac_table, folder)
    keep_full_precision(tac_table, tac_table_rows, tac_columns)
    regions: dict[str, list] = {}
    for r in rows:
        regions.setdefault(r.region, []).append(r)
    chart_series = []
    for n, fit in enumerate(fits):
        report(0.6 + 0.35 * n / max(1, len(fits)), f"storing {fit.region}")
        rr = sorted(regions[fit.region], key=lambda r: r.time_h)
        times = [r.time_h for r in rr]
        activities = [r.activity_corrected_Bq for r in rr]
        points = columns_table({"time_h": times, "activity_Bq": activities}, name=f"{patient_id} TAC {fit.region}")
        t_end = 1.5 * max(times)
        grid = [t_end * i / (CURVE_POINTS - 1) for i in range(CURVE_POINTS)]
        curve = columns_table({"time_h": grid, "activity_Bq": [float(fit.model.activity(t)) for t in grid]},
                              name=f"{patient_id} Fit {fit.region}")
        for node in (points, curve):
            set_node_attributes(node, {**common, "Region": fit.region})
            hierarchy.place(node, folder)
        chart_series += [{"x": "time_h", "y": "activity_Bq", "name": f"{fit.region} measured", "style": "points",
                          "table": points},
                         {"x": "time_h", "y": "activity_Bq", "name": f"{fit.region} fit ({fit.model_name})",
                          "table": curve}]
    fit_table_rows = fit_rows(fits)
    fit_columns = result_columns(fit_table_rows, FITS_COLUMNS)
    fit_table = rows_to_table(fit_table_rows, name=f"{patient_id} fits", columns=fit_columns if fits else None)
    set_node_attributes(fit_table, {**common, "Model": model, "Warnings": "; ".join(warnings)})
    hierarchy.place(fit_table, folder)
    keep_full_precision(fit_table, fit_table_rows, fit_columns)
    chart = plot_chart(tac_table, chart_series, name=f"{patient_id} TACs", title=f"{patient_id}: time-activity curves",
                       x_title="time post injection (h)", y_title="activity (Bq)")
    hierarchy.place(chart, folder)
    report(1.0, "done")
    return TacOutputs(tac_table, fit_table, chart, fits, calibration, text or "", warnings, budgets)
