"""The post-therapy chain for one patient: ingest → align → TACs → fits → TIA map → dose → report.

One function, :func:`run_patient`, drives the stage functions in data-flow order and writes the
results folder (docs/conventions.md). The command line (``ludosimetry run``), the demo, the
cohort runner and the Slicer batch script all call it, so a result does not depend on the door
it came in by. No science lives here: each step is one library call.

Grids
    The SPECT of every timepoint is aligned onto the reference timepoint's SPECT grid (cycle 1,
    first timepoint), where the voxel TIA map and the dose map are computed. Regional dose
    statistics are taken on the segmentation's grid (the reference CT): the soft-tissue dose map
    is resampled linearly onto it and scaled there by the CT density, so small organs keep their
    shape. The dose map written to ``dose_Gy.nii.gz`` is on the SPECT grid, scaled by the CT
    density averaged (mass-conserving) onto that grid.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError
from .report import Report
from .report.data import report_facts, write_report_anatomy
from .report.patient import write_patient_report
from .results import RunRecord, atomic_output_path, write_csv

__all__ = ["PipelineSettings", "run_patient", "settings_from_parameters", "reported_region_doses",
           "red_marrow_row_for_run", "bed_rows", "uncertainty_budgets"]

Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class PipelineSettings:
    """Settings of the post-therapy chain (all have defaults; written to run.json).

    Attributes
    ----------
    cycle : int
        Therapy cycle to compute (1-based).
    align : bool
        Register every timepoint's CT to the reference CT (rigid + organ-local kidneys).
    refine_regions : tuple of str
        Regions refined by organ-local rigid registration.
    bspline : bool
        Add a B-spline registration stage.
    spect_interpolation : {"bspline", "linear"}
        Interpolation of the SPECT of the moved timepoints onto the reference SPECT grid. ``bspline``
        (default; cubic, negative ringing set to 0) keeps the resolution; ``linear`` adds a
        position-dependent blur of up to ≈ 7 mm FWHM at 6 mm voxels (half-voxel shifts average
        neighbours), which the GTM correction at ``spect_fwhm_mm`` does not model: on the small
        synthetic cohort it cost the 0.65 mL lacrimal glands 17–26 % and a 1.3 mL lesion 9–26 % of
        their corrected activity at the moved timepoints (B-spline: within 10 % at 24 and 96 h).
    registration_voxel_mm : float or None
        Register CTs block-averaged to about this voxel size (mm); None: at full resolution
        (:func:`LuDosimetryLib.alignment.registration_image`).
    kinetic_models : tuple of str
        Models offered to the region fits (``auto``: chosen by AICc among those identifiable).
    voxel_method : str
        Voxel TIA method of :func:`LuDosimetryLib.kinetics.voxel.voxel_tia`.
    dose_method : {"convolution", "led"}
        Kernel convolution (FFT) or local energy deposition.
    photons : bool
        Include the photon part of the kernel.
    kernel_energy : {"icrp107", "table"}
        Electron energy per decay of the dose kernel: ICRP-107 (default) or the published S-value
        tables' own, for comparisons with software that uses those tables (docs/kernels.md).
    spect_fwhm_mm : float
        Reconstructed SPECT resolution, for the below-resolution flags (mm).
    sensitivity_cps_per_MBq : float or None
        Overrides the calibration store.
    calibration : str or None
        Calibration store path (default: ``calibration.json`` in the patient folder if present).
    partial_volume : {"gtm", "recovery", "none"}
        Partial-volume correction of the region activities (default ``gtm``). On the small sample
        patient the fitted TIA / truth is liver 1.01, spleen 1.02, kidneys 1.01/1.00, parotid
        0.98, lesions 0.93–0.99 with ``gtm``; 1.08, 1.14, 1.02/1.01, 1.04, 0.94–0.98 with
        ``recovery``; 0.99, 0.95, 0.85/0.84, 0.73, 0.56–0.74 with ``none``. ``recovery``: divide by the recovery
        coefficient of the region's volume from the camera's recovery curve in the calibration
        store (when it has one; a warning otherwise), right for regions in cold surroundings;
        ``gtm``: geometric transfer matrix of all labelled regions at ``spect_fwhm_mm``
        (:mod:`LuDosimetryLib.partial_volume`), which also removes spill-in from neighbours;
        ``none``.
    predict : bool
        When the patient has a pre-therapy PET, also predict the 177Lu doses from it into
        ``prediction/`` (:mod:`LuDosimetryLib.prediction`), for concordance.
    red_marrow : {"auto", "l2l4", "blood", "none"}
        Reported ``red_marrow`` dose (:mod:`LuDosimetryLib.dose.marrow_chain`): ``auto`` (default)
        blood-based when the patient folder has ``blood_samples.csv``, else image-based (L2–L4).
    red_marrow_mass_g, l2_l4_fraction, rmblr : float or None
        Red-marrow mass (g), fraction of it in L2–L4, red-marrow-to-blood ratio; None: the
        documented defaults of :mod:`LuDosimetryLib.dose.marrow_chain`.
    alpha_beta_Gy, repair_half_time_h : dict
        Per region (or group) radiobiology parameters; kidneys default to the reference values
        (status unverified), salivary and lacrimal glands have none unless given.
    accept_checks : tuple of str
        Ingest plausibility checks the user accepts by name (``label_registration``,
        ``fov_activity``; :mod:`LuDosimetryLib.ingest.plausibility`): a warning in run.json
        instead of an error. Empty by default.
    uncertainty_defaults : dict or None
        Overrides of the uncertainty budget's named defaults
        (:class:`LuDosimetryLib.kinetics.budget.BudgetDefaults`: ``calibration_rel``, ``fwhm_rel``,
        ``registration_mm``, ``boundary_mm``).
    """

    cycle: int = 1
    align: bool = True
    refine_regions: tuple[str, ...] = ("kidney_left", "kidney_right")
    bspline: bool = False
    spect_interpolation: str = "bspline"
    registration_voxel_mm: float | None = 4.8  # alignment.REGISTRATION_VOXEL_MM
    kinetic_models: tuple[str, ...] = ("auto",)
    voxel_method: str = "hybrid"
    dose_method: str = "convolution"
    photons: bool = True
    kernel_energy: str = "icrp107"
    spect_fwhm_mm: float = 11.0
    sensitivity_cps_per_MBq: float | None = None
    calibration: str | None = None
    partial_volume: str = "gtm"
    predict: bool = True
    red_marrow: str = "auto"
    red_marrow_mass_g: float | None = None
    l2_l4_fraction: float | None = None
    rmblr: float | None = None
    alpha_beta_Gy: Mapping[str, float] | None = None
    repair_half_time_h: Mapping[str, float] | None = None
    accept_checks: tuple[str, ...] = ()
    uncertainty_defaults: Mapping[str, float] | None = None

    def __post_init__(self) -> None:
        if self.dose_method not in ("convolution", "led"):
            raise InputError(f"must be 'convolution' or 'led', got {self.dose_method!r}", source="dose_method")
        if int(self.cycle) != self.cycle or self.cycle < 1:
            raise InputError(f"must be an integer ≥ 1, got {self.cycle!r}", source="cycle")
        if self.partial_volume not in ("recovery", "gtm", "none"):
            raise InputError(f"must be 'recovery', 'gtm' or 'none', got {self.partial_volume!r}",
                             source="partial_volume")
        if self.red_marrow not in ("auto", "l2l4", "blood", "none"):
            raise InputError(f"must be 'auto', 'l2l4', 'blood' or 'none', got {self.red_marrow!r}", source="red_marrow")
        if self.spect_interpolation not in ("bspline", "linear"):
            raise InputError(f"must be 'bspline' or 'linear', got {self.spect_interpolation!r}",
                             source="spect_interpolation")
        if self.kernel_energy not in ("icrp107", "table"):
            raise InputError(f"must be 'icrp107' or 'table', got {self.kernel_energy!r}", source="kernel_energy")
        if self.uncertainty_defaults is not None:
            from .kinetics.budget import BudgetDefaults

            BudgetDefaults.from_mapping(self.uncertainty_defaults)
        if not (self.spect_fwhm_mm > 0):
            raise InputError(f"must be > 0 mm, got {self.spect_fwhm_mm}", source="spect_fwhm_mm")
        sens = self.sensitivity_cps_per_MBq
        if sens is not None and not (isinstance(sens, int | float) and math.isfinite(sens) and sens > 0):
            raise InputError(f"must be a positive number of cps/MBq, got {sens!r}", source="sensitivity_cps_per_MBq")
        from .ingest.plausibility import CHECKS

        unknown = sorted(set(self.accept_checks) - set(CHECKS))
        if unknown:
            raise InputError(f"unknown plausibility check(s) {unknown}; known: {', '.join(CHECKS)}",
                             source="accept_checks")


def settings_from_parameters(parameters: Mapping[str, Any] | None) -> PipelineSettings:
    """Settings from a parameters mapping (JSON); unknown keys are refused by name."""
    params = dict(parameters or {})
    known = {f.name for f in fields(PipelineSettings)}
    unknown = sorted(set(params) - known)
    if unknown:
        raise InputError(f"unknown parameter(s) {unknown}; known: {sorted(known)}", source="parameters")
    for key in ("refine_regions", "kinetic_models", "accept_checks"):
        if key in params:
            params[key] = tuple(params[key])
    return PipelineSettings(**params)


def align_cycle(timepoints, reference, segmentation=None, *, settings: PipelineSettings = PipelineSettings(),
                progress: Progress | None = None, full_resolution_ct: bool = True):
    """Align timepoints to the reference timepoint's CT and bring their SPECT onto its SPECT grid.

    The CTs are registered block-averaged to ``settings.registration_voxel_mm``
    (:func:`LuDosimetryLib.alignment.registration_image`; the label map follows by nearest
    neighbour), then the full-resolution SPECT, time maps and CTs are resampled with the
    transforms found. Returns ``(aligned timepoints, AlignmentResult per timepoint)``; the
    reference itself gets the identity.

    ``full_resolution_ct=False`` resamples the CTs onto the block-averaged registration grid
    instead of the reference CT's grid: what the dose chain needs (it uses the SPECT, time maps
    and the reference CT only), and at clinical CT sizes (0.98 mm, 2 mm slices) it saves one to
    four full-resolution resamplings per timepoint (issue 20, docs/performance.md).
    """
    import SimpleITK as sitk

    from .alignment import register_timepoints, registration_image
    from .model import Segmentation

    coarse_of = {id(tp): registration_image(tp.ct, settings.registration_voxel_mm) for tp in timepoints
                 if tp.ct is not None}
    ref_ct = coarse_of.get(id(reference)) or registration_image(reference.ct, settings.registration_voxel_mm)
    reg_seg = segmentation
    if segmentation is not None and ref_ct is not reference.ct:
        reg_seg = Segmentation(sitk.Resample(segmentation.image, ref_ct, sitk.Transform(), sitk.sitkNearestNeighbor,
                                             0, segmentation.image.GetPixelID()), segmentation.table)
    coarse = tuple(replace(tp, ct=coarse_of[id(tp)]) if id(tp) in coarse_of else tp for tp in timepoints)
    alignments = register_timepoints(coarse, ref_ct, reference_labels=reg_seg,
                                     refine_regions=settings.refine_regions if segmentation is not None else (),
                                     bspline=settings.bspline, progress=progress)
    ct_grid = reference.ct if full_resolution_ct else ref_ct
    return resample_cycle(timepoints, alignments, reference.spect, ct_grid, settings=settings), alignments


def resample_cycle(timepoints, alignments, grid, ct_grid, *, settings: PipelineSettings = PipelineSettings()):
    """Timepoints brought onto the reference grids with their alignments (identity: ``align=False``).

    SPECT by ``settings.spect_interpolation`` onto ``grid`` (B-spline ringing below 0 set to 0),
    time maps by nearest neighbour, CTs linearly onto ``ct_grid``.
    """
    import SimpleITK as sitk

    from .alignment import align_timepoint_images

    interp = sitk.sitkBSpline if settings.spect_interpolation == "bspline" else sitk.sitkLinear
    aligned = tuple(align_timepoint_images(tp, a, grid, ct_grid=ct_grid, interpolator=interp)
                    for tp, a in zip(timepoints, alignments))
    if settings.spect_interpolation == "bspline":  # cubic ringing below 0 next to steep edges: no activity
        aligned = tuple(replace(tp, spect=sitk.Clamp(tp.spect, tp.spect.GetPixelID(), lowerBound=0.0))
                        for tp in aligned)
    return aligned


def recovery_for_camera(store, camera, *, warn: Callable[[str], None] | None = None):
    """The camera's recovery curve from a calibration store, or None (with a warning) when there is none."""
    from .calibration.recovery import recovery_curve_from_store

    curve = recovery_curve_from_store(store, camera.key()) if store is not None and camera is not None else None
    if curve is None and warn:
        warn("no recovery curve for this camera in the calibration store: region activities are not corrected "
             "for partial-volume loss")
    return curve


def region_kinetics(timepoints, segmentation, administration, *, density=None, recovery=None,
                    settings: PipelineSettings = PipelineSettings(), warn: Callable[[str, str], None] | None = None,
                    progress: Progress | None = None):
    """TACs of every region at the aligned timepoints, and a fit per region with usable activity throughout.

    Returns ``(tac rows, fit results)``; regions that cannot be fitted are reported through
    ``warn(message, region)`` and left out.
    """
    from .kinetics.fitting import fit_tac
    from .tac import extract_tacs

    note = warn or (lambda m, s: None)
    tacs = extract_tacs(timepoints, segmentation, administration, density=density,
                        spect_fwhm_mm=settings.spect_fwhm_mm, cycle=settings.cycle, on_empty="flag",
                        recovery=recovery, progress=progress)
    if settings.partial_volume == "gtm":
        tacs = _gtm_corrected(tacs, timepoints, segmentation, settings.spect_fwhm_mm)
    from .kinetics.uncertainty import physical_tia_limit_Bq_h
    from .nuclides import get_nuclide

    limit = physical_tia_limit_Bq_h(administration.injected_activity_Bq,
                                    get_nuclide(administration.nuclide).decay_constant_per_h)
    by_region: dict[str, list] = {}
    for row in tacs:
        by_region.setdefault(row.region, []).append(row)
    fits = []
    for region, rows in by_region.items():
        rows = sorted(rows, key=lambda r: r.time_h)
        times = [r.time_h for r in rows]
        acts = [r.activity_corrected_Bq for r in rows]
        if any("empty" in r.flags for r in rows) or not all(math.isfinite(a) for a in acts):
            note("no usable activity at every timepoint; not fitted", region)
            continue
        try:
            fit = fit_tac(times, acts, nuclide=administration.nuclide, models=settings.kinetic_models,
                          region=region, kind=rows[0].kind, cycle=settings.cycle,
                          administered_activity_Bq=administration.injected_activity_Bq)
        except InputError as exc:
            note(f"not fitted: {exc}", region)
            continue
        if not fit.tia_Bq_h <= limit:  # e.g. a region emptied before the late scans (renal pelvis)
            note(f"fitted TIA exceeds the physical limit (administered activity / λ_phys) by a factor "
                 f"{fit.tia_Bq_h / limit:.2g}; not fitted, its map dose is reported", region)
            continue
        fits.append(fit)
    return tacs, fits


def uncertainty_budgets(fits, tacs, segmentation, administration, *, store=None, camera=None,
                        settings: PipelineSettings = PipelineSettings()):
    """The EANM uncertainty budget of every fitted region (:mod:`LuDosimetryLib.kinetics.budget`).

    Calibration uncertainty from the store's entry for ``camera`` (unless the sensitivity was
    overridden), recovery from its curve where it states an uncertainty, defaults otherwise.
    Returns ``(fits with the budget's TIA intervals, {region: RegionBudget})``.
    """
    from .calibration.recovery import recovery_curve_from_store
    from .kinetics.budget import BudgetDefaults, apply_budget, region_budget
    from .kinetics.uncertainty import physical_tia_limit_Bq_h
    from .nuclides import get_nuclide

    cal_rel = curve = None
    if store is not None and camera is not None:
        if settings.sensitivity_cps_per_MBq is None:
            try:  # no entry: the budget's named default calibration uncertainty (listed in its 'defaults')
                cal_rel = store.lookup(camera.key()).sensitivity_rel_uncertainty
            except InputError:
                pass
        try:
            curve = recovery_curve_from_store(store, camera.key())
        except InputError:
            pass
    # the correction actually applied: 'recovery' without the camera's curve corrected nothing (region_kinetics)
    applied = "none" if settings.partial_volume == "recovery" and curve is None else settings.partial_volume
    defaults = BudgetDefaults.from_mapping(settings.uncertainty_defaults)
    lam = get_nuclide(administration.nuclide).decay_constant_per_h
    limit = physical_tia_limit_Bq_h(administration.injected_activity_Bq, lam)
    volume = {r.region: r.volume_mL for r in tacs}
    out, budgets = [], {}
    for f in fits:
        if not volume.get(f.region, 0) > 0:
            out.append(f)
            continue
        b = region_budget(f, volume_mL=volume[f.region], calibration_rel=cal_rel,
                          partial_volume=applied, fwhm_mm=settings.spect_fwhm_mm,
                          decay_constant_per_h=lam, recovery_curve=curve,
                          segmentation_spacing_mm=segmentation.image.GetSpacing(), limit_Bq_h=limit,
                          registered=[settings.cycle > 1 or i > 0 for i in range(f.n_points)], defaults=defaults)
        budgets[f.region] = b
        out.append(apply_budget(f, b))
    return out, budgets


def _gtm_corrected(tacs, timepoints, segmentation, fwhm_mm: float):
    """TAC rows with ``activity_corrected_Bq`` = GTM-corrected mean concentration × region volume.

    ``recovery_coefficient`` becomes measured / corrected activity (groups: sums of their leaves).
    """
    import SimpleITK as sitk

    from .partial_volume import GTM_SUBDIVISION, gtm_correct, labels_on_grid, subdivided_grid

    grid = timepoints[0].spect
    lab = labels_on_grid(segmentation.image, grid)
    fine = labels_on_grid(segmentation.image, subdivided_grid(grid, GTM_SUBDIVISION), dtype=np.uint32)
    ids, conc = gtm_correct(lab, [sitk.GetArrayViewFromImage(tp.spect) for tp in timepoints], grid.GetSpacing(),
                            fwhm_mm, fine_labels=fine, factor=GTM_SUBDIVISION)
    index = {int(v): i for i, v in enumerate(ids)}
    leaves = {r.name: (r.label,) for r in segmentation.table}
    leaves.update({g: tuple(r.label for r in rs) for g, rs in segmentation.table.groups().items()})
    order = {tp.label: k for k, tp in enumerate(timepoints)}
    volume = {r.region: r.volume_mL for r in tacs if r.region in leaves and len(leaves[r.region]) == 1}
    out = []
    for row in tacs:
        k = order[row.timepoint]
        labels = [lb for lb in leaves.get(row.region, ()) if lb in index]
        if not labels or "empty" in row.flags:
            out.append(row)
            continue
        names = [r.name for r in segmentation.table if r.label in labels]
        corrected = float(sum(max(conc[k, index[r.label]], 0.0) * volume.get(r.name, 0.0)
                              for r in segmentation.table if r.name in names))
        rc = row.activity_Bq / corrected if corrected > 0 else float("nan")
        out.append(replace(row, activity_corrected_Bq=corrected, recovery_coefficient=rc,
                           recovery_rel_uncertainty=0.0, flags=(*row.flags, "gtm")))
    return out


@dataclass(frozen=True, eq=False)
class DoseMaps:
    """Voxel TIA (Bq·h per voxel) and dose (Gy) on the reference SPECT grid, and the regional statistics."""

    tia: Any
    dose: Any
    stats: tuple


def dose_from_tia(tia, segmentation, density_ct, *, nuclide: str = "Lu-177",
                  settings: PipelineSettings = PipelineSettings(), progress: Progress | None = None):
    """Dose map (Gy, SPECT grid) and regional dose statistics of a voxel TIA map (Bq·h per voxel, SimpleITK).

    Returns ``(dose image, tuple of RegionDose)`` (grids: module docstring).
    """
    import SimpleITK as sitk

    from .density import average_onto_grid
    from .dose.convolution import convolve_dose
    from .dose.density_scaling import scale_dose_to_density
    from .dose.grid import crop_to_labels
    from .dose.led import led_dose
    from .dose.regional import region_dose_statistics
    from .kernels import dose_kernel

    report = progress or (lambda f, m: None)
    spacing = tuple(float(v) for v in tia.GetSpacing())
    arr = sitk.GetArrayFromImage(tia).astype(np.float32)
    if settings.dose_method == "convolution":
        dose_soft = convolve_dose(arr, dose_kernel(spacing, nuclide=nuclide, photons=settings.photons,
                                                   electron_energy=settings.kernel_energy))
    else:
        dose_soft = led_dose(arr, spacing, nuclide=nuclide, photons=settings.photons)
    soft_img = sitk.GetImageFromArray(dose_soft.astype(np.float32))
    soft_img.CopyInformation(tia)
    dose_img = scale_dose_to_density(soft_img, average_onto_grid(density_ct, tia))
    report(0.5, "regional statistics")
    labels, density_labels = crop_to_labels(segmentation.image, density_ct)  # the statistics read labelled voxels
    soft_on_labels = sitk.Resample(soft_img, labels, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    dose_on_labels = scale_dose_to_density(soft_on_labels, density_labels)
    stats = region_dose_statistics(dose_on_labels, labels, segmentation.table,
                                   density_g_per_mL=density_labels, on_empty="skip", method=settings.dose_method,
                                   progress=lambda f, m: report(0.5 + 0.5 * f, m))
    return dose_img, tuple(stats)


def dose_maps(timepoints, segmentation, administration, density_ct, *, settings: PipelineSettings = PipelineSettings(),
              progress: Progress | None = None) -> DoseMaps:
    """Voxel TIA (:func:`LuDosimetryLib.kinetics.voxel.voxel_tia`) of aligned timepoints, then :func:`dose_from_tia`."""
    import SimpleITK as sitk

    from .kinetics.voxel import voxel_tia
    from .units import ML_PER_MM3

    report = progress or (lambda f, m: None)
    grid = timepoints[0].spect
    v_mL = float(np.prod(grid.GetSpacing())) * ML_PER_MM3
    maps = [sitk.GetArrayFromImage(tp.spect).astype(np.float32) * np.float32(v_mL) for tp in timepoints]
    tmaps = [sitk.GetArrayFromImage(tp.time_map_h) if tp.time_map_h is not None else
             np.full(maps[0].shape, tp.time_h, np.float32) for tp in timepoints]
    tia = voxel_tia(maps, [tp.time_h for tp in timepoints], time_maps_h=tmaps, nuclide=administration.nuclide,
                    method=settings.voxel_method, progress=lambda f, m: report(0.4 * f, f"voxel TIA: {m}"))
    tia_img = sitk.GetImageFromArray(tia)
    tia_img.CopyInformation(grid)
    report(0.4, f"dose ({settings.dose_method})")
    dose_img, stats = dose_from_tia(tia_img, segmentation, density_ct, nuclide=administration.nuclide,
                                    settings=settings, progress=lambda f, m: report(0.4 + 0.6 * f, m))
    return DoseMaps(tia_img, dose_img, stats)


def region_tia_from_map(tia, segmentation) -> dict[str, float]:
    """TIA (Bq·h) of every region and group in a voxel TIA map (Bq·h per voxel, SPECT grid).

    The map is resampled as a concentration (linear) onto the segmentation grid, as the regional
    dose statistics are, and summed over each region's label voxels.
    """
    import SimpleITK as sitk

    from .dose.grid import crop_to_labels
    from .units import ML_PER_MM3

    v_map = float(np.prod(tia.GetSpacing())) * ML_PER_MM3
    v_lab = float(np.prod(segmentation.image.GetSpacing())) * ML_PER_MM3
    (labels,) = crop_to_labels(segmentation.image)  # the sums read labelled voxels only
    conc = sitk.Resample(tia, labels, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat64)
    lab = sitk.GetArrayViewFromImage(labels).astype(np.int64).ravel()
    sums = np.bincount(lab, weights=sitk.GetArrayViewFromImage(conc).ravel() * (v_lab / v_map))
    out = {r.name: float(sums[r.label]) if r.label < sums.size else 0.0 for r in segmentation.table}
    for g, leaves in segmentation.table.groups().items():
        out[g] = sum(out[r.name] for r in leaves)
    return out


def bed_rows(fits, dose_Gy: Mapping[str, float], settings: PipelineSettings, warn=None) -> dict[str, dict]:
    """BED and EQD2 per region with radiobiology parameters (kidneys by default), from the reported dose.

    ``warn(message, source)`` receives the radiobiology warnings (the Slicer dose logic calls this too).

    The reported dose over the fitted TIA (the region's dose per TIA) applied to the fitted curve,
    so BED at the dose rates of that curve belongs to ``dose_Gy``.
    """
    from .radiobiology import bed_from_model, tissue_parameters

    note = warn or (lambda m, r: None)
    out: dict[str, dict] = {}
    warned: set[str] = set()
    ab = dict(settings.alpha_beta_Gy or {})
    tr = dict(settings.repair_half_time_h or {})
    for fit in fits:
        region = fit.region
        tissue = "kidney" if region.startswith(("kidney", "renal")) else region
        if region not in ab and tissue != "kidney":
            continue
        try:
            params = tissue_parameters(tissue, alpha_beta_Gy=ab.get(region), repair_half_time_h=tr.get(region))
        except InputError as exc:
            note(str(exc), region)
            continue
        d = dose_Gy.get(region)
        if d is None or not fit.tia_Bq_h > 0:
            continue
        res = bed_from_model(fit.model, d / fit.tia_Bq_h, params)
        out[region] = {"bed_Gy": res.bed_Gy, "eqd2_Gy": res.eqd2_Gy}
        for w in getattr(res, "warnings", ()):
            if w not in warned:  # the same parameter status once per tissue, not once per region
                warned.add(w)
                note(w, tissue)
    return out


#: A relative uncertainty above this is no estimate (an unbounded fit): reported empty, flag ``ci_unbounded``.
MAX_REL_UNCERTAINTY = 10.0


def reported_region_doses(stats, fits, map_tia: Mapping[str, float], settings: PipelineSettings):
    """The reported dose of every region, its relative uncertainty and 95 % interval.

    ``dose_Gy`` is the partial-volume-corrected kernel dose (:func:`LuDosimetryLib.dose.regional.corrected_doses`)
    where a correction is on and the region was fitted, else the dose-map mean. Its relative
    uncertainty is, for now, the fitted TIA's (the dose per TIA from the map is taken as exact);
    the interval scales the TIA interval. Returns ``(reported, rel_uncertainty, ci95_Gy)``, the
    mappings of :func:`LuDosimetryLib.dose.regional.dose_rows`.
    """
    from .dose.regional import corrected_doses

    fit_by = {f.region: f for f in fits}
    reported = {} if settings.partial_volume == "none" else corrected_doses(
        stats, {r: f.tia_Bq_h for r, f in fit_by.items()}, map_tia, correction=settings.partial_volume)
    rel, ci = {}, {}
    for s in stats:
        fit = fit_by.get(s.region)
        if fit is None or not fit.tia_Bq_h > 0:
            continue
        dose = reported.get(s.region, (s.mean_dose_Gy, ""))[0]
        u = fit.tia_rel_uncertainty
        low, high = (float(v) if v is not None else math.nan for v in fit.tia_ci95_Bq_h)
        bounded = u is not None and math.isfinite(u) and u <= MAX_REL_UNCERTAINTY
        if bounded:
            rel[s.region] = float(u)
        ci[s.region] = (dose * low / fit.tia_Bq_h if math.isfinite(low) else None,
                        dose * high / fit.tia_Bq_h if bounded and math.isfinite(high) else None)
    return reported, rel, ci


def _dose_note(settings: PipelineSettings) -> str:
    """The dose method statement of the report (kernel and its electron energy, correction, reported dose)."""
    if settings.dose_method == "convolution":
        energy = {"icrp107": "ICRP-107 electron energy (default)",
                  "table": "the published S-value tables' own electron energy (kernel_energy=table)"}
        how = (f"Dose voxel kernel convolution ({'electrons and photons' if settings.photons else 'electrons only'}"
               f"; {energy[settings.kernel_energy]}), density-scaled")
    else:
        how = "Local energy deposition"
    pvc = ("" if settings.partial_volume == "none" else
           f"; dose_Gy = map mean × {settings.partial_volume.upper()}-corrected fitted TIA / map TIA")
    return f"{how}{pvc}. dose_method per region in the table."


def red_marrow_row_for_run(stats, fits, map_tia, input_dir, admin, settings: PipelineSettings, record: RunRecord):
    """The reported red-marrow row (:func:`LuDosimetryLib.dose.marrow_chain.chain_red_marrow`) and its record."""
    from .dose.marrow_chain import chain_red_marrow
    from .kinetics.fitting import fit_tac

    def fit_blood(t, c):
        return fit_tac(t, c, nuclide=admin.nuclide, models=settings.kinetic_models, region="blood", kind="other",
                       cycle=settings.cycle).model

    return chain_red_marrow(stats, fits, map_tia, patient_dir=input_dir, cycle=settings.cycle,
                            injected_activity_Bq=admin.injected_activity_Bq, method=settings.red_marrow,
                            l2_l4_fraction=settings.l2_l4_fraction, red_marrow_mass_g=settings.red_marrow_mass_g,
                            rmblr=settings.rmblr, nuclide=admin.nuclide, fit_blood=fit_blood,
                            warn=lambda m: record.warn(m, stage="red_marrow"))


#: Share of the summed dose outside the CT's field of view above which the cropped RT Dose is a warning.
RT_DOSE_OUTSIDE_WARN = 0.001


def _export_rt_dose(dose_map, reference, folder: Path, record: RunRecord) -> Path | None:
    """The dose map as DICOM RT Dose on the reference CT's frame of reference, when that CT is DICOM.

    Patient and study come from the CT's own header (the first file named in its provenance).
    A dose map wider than the CT (a clinical SPECT field of view) is cropped to the CT's extent
    (:func:`LuDosimetryLib.dose.export.crop_to_ct`), recorded in run.json, with a warning when more
    than ``RT_DOSE_OUTSIDE_WARN`` of the summed dose lies outside.
    No RT Plan exists in molecular radiotherapy, so none is referenced (dciodvfy reports its
    absence, which the standard's RT Dose module expects for plan-based doses).
    """
    import datetime as _dt

    import pydicom

    from .dicomio.write import DicomPatient, DicomStudy
    from .dose.export import crop_to_ct, write_dose_rt

    first = str(reference.provenance.get("ct_file", ""))  # a whole path: it may hold spaces
    if not first.lower().endswith(".dcm") or not Path(first).is_file():
        return None
    try:
        ds = pydicom.dcmread(first, stop_before_pixels=True)
        date, time = str(ds.get("StudyDate", "") or ""), str(ds.get("StudyTime", "") or "000000").split(".")[0]
        when = _dt.datetime.strptime(date + time.ljust(6, "0")[:6], "%Y%m%d%H%M%S") if date else _dt.datetime.now()
        patient = DicomPatient(str(ds.get("PatientID", "")), str(ds.get("PatientName", "") or "Anonymous"))
        study = DicomStudy(str(ds.StudyInstanceUID), when, str(ds.FrameOfReferenceUID))
        inside, outside = crop_to_ct(dose_map, reference.ct)
        if inside is not dose_map:  # a SPECT field of view wider than the CT's (clinical: 566 vs 500 mm)
            record.stages.setdefault("dose", {})["rt_dose"] = {
                "cropped_to_ct": True, "size": list(inside.GetSize()), "origin_mm": list(inside.GetOrigin()),
                "summed_dose_outside_fraction": outside}
            if outside > RT_DOSE_OUTSIDE_WARN:
                record.warn(f"RT Dose holds the dose inside the CT's field of view only: {outside:.1%} of the summed "
                            "dose lies outside it (dose_Gy.nii.gz has the whole map)", stage="dose", source=first)
        return write_dose_rt(inside, folder, patient=patient, study=study, reference_ct=reference.ct)
    except (AttributeError, ValueError, InputError) as exc:
        record.warn(f"no DICOM RT Dose written: {exc}", stage="dose", source=first)
        return None


def _predict(patient, folder: Path, admin, report: Report, record: RunRecord, density=None) -> None:
    """Predicted doses of this patient from its PET into ``folder`` (own run.json); failures are warnings.

    ``density`` (g/mL on the patient's segmentation grid), when given, is used for the masses and
    the dose engine instead of the reference CT's.
    """
    from .prediction.parameters import PredictionParameters, pet_fwhm_from_sidecars
    from .prediction.pipeline import predict_patient, write_prediction
    from .timing import hours_between
    from .units import BQ_PER_GBQ

    study = patient.pet_studies[0]
    pred_record = RunRecord("ludosimetry run (prediction)", inputs=dict(record.inputs))
    fwhm, fwhm_source = pet_fwhm_from_sidecars(record.inputs["patient_dir"])  # as `ludosimetry predict`
    try:
        params = PredictionParameters(
            pet_ligand=study.administration.ligand, therapy_ligand=admin.ligand,
            pet_to_therapy_interval_h=hours_between(study.administration.injection_datetime, admin.injection_datetime),
            therapy_activity_GBq=admin.injected_activity_Bq / BQ_PER_GBQ, pet_fwhm_mm=fwhm, pet_fwhm_source=fwhm_source)
        result = predict_patient(patient, params=params, record=pred_record, density=density)
        write_prediction(result, folder, record=pred_record, overwrite=True)
        record.stages["prediction"] = {"folder": "prediction/", "regions": len(result.predictions)}
        from .results import read_doses_csv

        sec = report.section("prediction", "Prediction from the pre-therapy PET")
        sec.paragraph("Doses predicted from the 68Ga PET (method and parameters in prediction/report.html and "
                      "prediction/run.json); cohort concordance compares them with the measured doses above.")
        sec.table(read_doses_csv(folder / "doses.csv"), ["region", "kind", "dose_Gy", "dose_per_activity_Gy_per_GBq",
                                                         "dose_method", "prediction_model", "flags"])
    except InputError as exc:
        record.warn(f"no prediction: {exc}", stage="prediction")


def run_patient(input_dir: str | Path, output_dir: str | Path, *, parameters: Mapping[str, Any] | None = None,
                progress: Progress | None = None,
                report_hook: Callable[[Report, Path], None] | None = None) -> dict:
    """Run the post-therapy chain on one patient folder and write its results into ``output_dir``.

    ``output_dir`` is filled, not created whole: callers that need all-or-nothing folders wrap
    this in :func:`LuDosimetryLib.results.atomic_directory` (the command line and the cohort
    runner do).

    Parameters
    ----------
    input_dir : path
        Patient folder (DICOM and/or NIfTI with sidecars, ``labels/``; see docs/ingest.md).
    output_dir : path
        Results folder to fill.
    parameters : mapping, optional
        :class:`PipelineSettings` fields.
    progress : callable(fraction, message), optional
    report_hook : callable(report, output_dir), optional
        Called with the report and the results folder after every stage, before the report is
        written (the demo adds its comparison with the ground truth this way).

    Returns
    -------
    dict
        A small summary: patient, cycle, regions, mean dose of the kidneys, files written.
    """
    import SimpleITK as sitk

    from .analysis_grid import analysis_grid
    from .calibration.store import CalibrationStore
    from .density import ct_to_density
    from .dose.export import write_dose_results
    from .ingest.patient import load_patient
    from .kinetics.budget import BUDGET_COLUMNS, budget_rows, dose_uncertainty_columns
    from .kinetics.fitting import fit_rows
    from .kinetics.plots import plot_fits
    from .results import FITS_COLUMNS, TAC_COLUMNS
    from .tac import tac_rows

    report_progress = progress or (lambda f, m: None)
    settings = settings_from_parameters(parameters)
    if settings.calibration and not Path(settings.calibration).is_file():
        raise InputError("calibration store not found (a store that is given must be readable; leave it out to use "
                         "the patient folder's calibration.json)", source=f"calibration {settings.calibration}")
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    record = RunRecord("ludosimetry run", inputs={"patient_dir": str(Path(input_dir).resolve())},
                       parameters={"pipeline": asdict(settings)})
    report_progress(0.0, "ingest")
    cal_path = Path(settings.calibration) if settings.calibration else Path(input_dir) / "calibration.json"
    store = CalibrationStore.load(cal_path) if cal_path.exists() else None
    overrides = {"sensitivity_cps_per_MBq": settings.sensitivity_cps_per_MBq} \
        if settings.sensitivity_cps_per_MBq is not None else None
    patient = load_patient(input_dir, calibration_store=store, overrides=overrides, record=record,
                           progress=lambda f, m: report_progress(0.15 * f, f"ingest: {m}"),
                           accept=settings.accept_checks)
    if settings.cycle > len(patient.cycles):
        raise InputError(f"cycle {settings.cycle} asked for, the patient has {len(patient.cycles)}", source="cycle")
    cycle = patient.cycles[settings.cycle - 1]
    seg = patient.segmentation
    if seg is None:
        raise InputError("no segmentation found (labels/labels.nii.gz + labels.csv, DICOM SEG or RTSTRUCT); "
                         "the chain needs regions", source=str(input_dir))
    if len(cycle.timepoints) < 2:
        raise InputError(f"cycle {cycle.index} has {len(cycle.timepoints)} timepoint(s); the chain needs ≥ 2 "
                         "(use the single-time-point methods of LuDosimetryLib.kinetics.stp)", source="timepoints")
    admin = cycle.administration
    reference = patient.cycles[0].timepoints[0]
    record.stages["ingest"] = {"patient_id": patient.patient_id, "cycle": cycle.index,
                               "timepoints_h": [tp.time_h for tp in cycle.timepoints],
                               "injected_activity_Bq": admin.injected_activity_Bq,
                               **report_facts(cycle, str(cal_path) if store is not None else None)}

    report_progress(0.15, "alignment")
    if settings.align:
        aligned, alignments = align_cycle(cycle.timepoints, reference, seg, settings=settings,
                                          progress=lambda f, m: report_progress(0.15 + 0.25 * f, f"alignment: {m}"),
                                          full_resolution_ct=False)
        record.stages["alignment"] = {tp.label: dict(a.quality) for tp, a in zip(cycle.timepoints, alignments)}
    else:  # the same resampling with identities (the CTs on the registration grid, as aligned: never used whole)
        from .alignment import AlignmentResult, registration_image

        aligned = resample_cycle(cycle.timepoints, [AlignmentResult.identity()] * len(cycle.timepoints),
                                 reference.spect, None if reference.ct is None else
                                 registration_image(reference.ct, settings.registration_voxel_mm), settings=settings)
        record.warn("timepoints not aligned (align=False)", stage="alignment")

    report_progress(0.4, "time-activity curves")
    # regions are measured on the label map block-reduced to half a SPECT voxel at most (clinical CT grids)
    seg, density_ct, factors = analysis_grid(seg, ct_to_density(reference.ct), reference.spect)
    recovery = None
    record.stages["tac"] = {"partial_volume": settings.partial_volume, "spect_fwhm_mm": settings.spect_fwhm_mm}
    if factors != (1, 1, 1):
        record.stages["tac"]["analysis_grid"] = {"block_factors_xyz": list(factors),
                                                 "spacing_mm": list(seg.image.GetSpacing())}
    if settings.partial_volume == "recovery":
        recovery = recovery_for_camera(store, reference.camera,
                                       warn=lambda m: record.warn(m, stage="tac", source=str(cal_path)))
        if recovery is not None:
            record.stages["tac"]["recovery_curve"] = recovery.to_dict()
    tacs, fits = region_kinetics(aligned, seg, admin, density=density_ct, recovery=recovery, settings=settings,
                                 warn=lambda m, r: record.warn(m, stage="kinetics", source=r))
    fits, budgets = uncertainty_budgets(fits, tacs, seg, admin, store=store, camera=reference.camera, settings=settings)
    record.stages["uncertainty"] = {"method": "EANM budget (Gear et al. 2018), LuDosimetryLib.kinetics.budget",
                                    "regions": {r: b.to_dict() for r, b in budgets.items()}}
    write_csv(out / "tac.csv", tac_rows(tacs), TAC_COLUMNS)
    write_csv(out / "fits.csv", fit_rows(fits), FITS_COLUMNS)
    plot_fits(fits, out / "plots")

    report_progress(0.6, "voxel TIA and dose")
    maps = dose_maps(aligned, seg, admin, density_ct, settings=settings,
                     progress=lambda f, m: report_progress(0.6 + 0.3 * f, m))
    report_progress(0.9, "reports")
    with atomic_output_path(out / "tia_Bq_h.nii.gz") as tmp:
        sitk.WriteImage(maps.tia, str(tmp), useCompression=True)
    dose_map, stats = maps.dose, list(maps.stats)
    # the reported dose: the region's map dose per map TIA applied to its corrected, fitted TIA;
    # per GBq, uncertainty, BED and EQD2 all follow from it
    map_tia = region_tia_from_map(maps.tia, seg)
    reported, rel_unc, ci95 = reported_region_doses(stats, fits, map_tia, settings)
    dose_of = {s.region: reported.get(s.region, (s.mean_dose_Gy, ""))[0] for s in stats}
    beds = bed_rows(fits, dose_of, settings, warn=lambda m, r: record.warn(m, stage="radiobiology", source=r))
    marrow_row, record.stages["red_marrow"] = red_marrow_row_for_run(stats, fits, map_tia, input_dir, admin, settings,
                                                                     record)
    record.stages["dose"] = {"dose_method": settings.dose_method, "kernel_energy": settings.kernel_energy,
                             "photons": settings.photons, "partial_volume": settings.partial_volume}
    # the dose's uncertainty and interval from the EANM budget (mass term included), not the TIA's alone
    rel_unc, ci95, dose_flags = dose_uncertainty_columns(budgets, dose_of)
    # stage sections beyond the patient report's own (uncertainty budget, dose notes, the demo's hook) go into
    # its appendix
    report = Report(f"LuDosimetry — patient {patient.patient_id}, cycle {cycle.index}")
    report.section("uncertainty", "Uncertainty budget (EANM, Gear et al. 2018)").table(
        budget_rows(budgets), list(BUDGET_COLUMNS),
        caption="Relative standard uncertainties (k = 1) of the TIA and the dose; per component its contribution to "
                "the dose; shared = calibration and recovery (correlated across regions and cycles); 'defaults' lists "
                "the components taken from named defaults (docs/kinetics.md); empty = unbounded or above 10")
    extra_notes = [_dose_note(settings)]
    extra_notes += [f"{r}: BED {v['bed_Gy']:.3g} Gy, EQD2 {v['eqd2_Gy']:.3g} Gy" for r, v in beds.items()]
    if marrow_row is not None:
        extra_notes.append(f"red_marrow: {marrow_row['dose_Gy']:.3g} Gy ({marrow_row['dose_method']}; self "
                           f"{marrow_row['self_dose_Gy']:.3g} Gy + cross {marrow_row['cross_dose_Gy']:.3g} Gy)")
    report.section("dose", "Dose method notes").blocks.extend(f"<p>{html.escape(n)}</p>" for n in extra_notes)
    written = write_dose_results(out, dose_Gy=dose_map, stats=stats, report=None, cycle=cycle.index,
                                 injected_activity_Bq=admin.injected_activity_Bq, notes=extra_notes,
                                 extra_rows=[marrow_row] if marrow_row is not None else (),
                                 reported=reported, rel_uncertainty=rel_unc, ci95_Gy=ci95, flags=dose_flags,
                                 region_values={"bed_Gy": {r: v["bed_Gy"] for r, v in beds.items()},
                                                "eqd2_Gy": {r: v["eqd2_Gy"] for r, v in beds.items()},
                                                "dose_rel_uncertainty_shared":
                                                    {r: b.dose_shared_rel for r, b in budgets.items()},
                                                "dose_rel_uncertainty_independent":
                                                    {r: b.dose_independent_rel for r, b in budgets.items()}})
    rt_dose = _export_rt_dose(dose_map, reference, out / "rtdose", record)
    if rt_dose is not None:
        written["rtdose/"] = rt_dose
    if settings.predict and patient.pet_studies:
        report_progress(0.95, "prediction from the pre-therapy PET")
        if factors == (1, 1, 1):
            _predict(patient, out / "prediction", admin, report, record)
        else:  # on the analysis grid too: the label map at CT resolution held ~5 GB of temporaries
            _predict(replace(patient, segmentation=seg), out / "prediction", admin, report, record, density=density_ct)
        report_progress(0.97, "reports")
    if report_hook is not None:
        report_hook(report, out)
    # the report's anatomy on the analysis grid (the label map's grid; the CT block-averaged alike)
    report_ct = reference.ct if factors == (1, 1, 1) else sitk.BinShrink(reference.ct, list(factors))
    write_report_anatomy(out, report_ct, seg)
    record.outputs = {"report.html": "patient report"}
    record.write(out)  # the report reads run.json; rewritten below with every output
    write_patient_report(out, ct=report_ct, segmentation=seg,
                         extra_sections=[(s.title, "\n".join(s.blocks)) for s in report.sections.values()
                                         if s.stage not in ("prediction", "summary")])
    record.outputs = {"tac.csv": "TAC per region and timepoint", "fits.csv": "fit per region",
                      "doses.csv": "dose statistics per region", "tia_Bq_h.nii.gz": "voxel TIA (Bq·h per voxel)",
                      **{name: "dose output" for name in written}, "report.html": "patient report",
                      "ct_HU.nii.gz": "reference CT (HU) for the report's images",
                      "labels.nii.gz": "label map on the reference CT", "labels.csv": "label table",
                      "plots/": "fit plots"}
    record.write(out)
    report_progress(1.0, "done")
    kid = {r: dose_of[r] for r in ("kidney_left", "kidney_right") if r in dose_of}
    return {"patient": patient.patient_id, "cycle": cycle.index, "regions": len(stats), "fits": len(fits),
            "kidney_dose_Gy": kid, "warnings": len(record.warnings)}

