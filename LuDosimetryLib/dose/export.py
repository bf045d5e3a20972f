"""Export of the dose stage: dose map as NIfTI and DICOM RT Dose, doses.csv, DVH, report section.

Every file is written atomically (:mod:`LuDosimetryLib.results`). The RT Dose is written by the
project's DICOM writer (:func:`LuDosimetryLib.dicomio.write.write_rt_dose`) on the frame of
reference of the study given, which must be the frame of reference of the CT the dose map lies on
(the reference CT of the segmentation: dose, labels and CT share its LPS space).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from ..errors import InputError
from ..report import Report
from ..results import DOSES_COLUMNS, atomic_output_path, write_csv
from .regional import RegionDose, dose_rows, dvh_rows, plot_dvh_png

__all__ = ["write_dose_nifti", "write_dose_rt", "write_doses_csv", "write_dvh_csv", "add_dose_report_section",
           "write_dose_results", "merge_extra_rows", "dose_table_rows", "DOSE_NIFTI_NAME", "DVH_PNG_NAME",
           "DVH_CSV_NAME"]

DOSE_NIFTI_NAME = "dose_Gy.nii.gz"
DVH_PNG_NAME = "dvh.png"
DVH_CSV_NAME = "dvh.csv"
#: Columns an extra row (red marrow) replaces in the label region's row of the same name; the
#: map statistics (volume, mass, map mean, D_x) stay those of the label region.
_REPORTED_COLUMNS = ("dose_Gy", "dose_method", "dose_per_activity_Gy_per_GBq", "dose_rel_uncertainty",
                     "dose_ci95_low_Gy", "dose_ci95_high_Gy", "bed_Gy", "eqd2_Gy", "flags")
#: Negative voxels above −tol·max are FFT round-off, written as 0; below, an error.
_NEGATIVE_RTOL = 1e-5


def _checked_dose_image(dose_Gy: sitk.Image) -> sitk.Image:
    if not isinstance(dose_Gy, sitk.Image):
        raise InputError(f"expected a SimpleITK.Image with its geometry (LPS), got {type(dose_Gy).__name__}; "
                         "a bare array has no position in the patient", source="dose_Gy")
    if dose_Gy.GetDimension() != 3 or dose_Gy.GetNumberOfComponentsPerPixel() != 1:
        raise InputError("expected a 3-D scalar dose image", source="dose_Gy")
    arr = sitk.GetArrayFromImage(dose_Gy).astype(np.float32)
    if not np.all(np.isfinite(arr)):
        raise InputError(f"{int((~np.isfinite(arr)).sum())} voxel(s) are NaN or infinite; expected finite Gy",
                         source="dose_Gy")
    tol = _NEGATIVE_RTOL * float(np.abs(arr).max()) if arr.size else 0.0
    if np.any(arr < -tol):
        raise InputError(f"{int((arr < -tol).sum())} voxel(s) have negative dose (min {arr.min():g} Gy); "
                         "expected ≥ 0 Gy", source="dose_Gy")
    np.maximum(arr, 0.0, out=arr)
    out = sitk.GetImageFromArray(arr)
    out.CopyInformation(dose_Gy)
    return out


def write_dose_nifti(dose_Gy: sitk.Image, path: str | Path) -> Path:
    """Write a dose map (Gy) as float32 NIfTI (geometry kept, LPS in ITK's convention), atomically.

    Raises
    ------
    InputError
        For a bare array, NaN or negative dose.
    """
    img = _checked_dose_image(dose_Gy)
    p = Path(path)
    with atomic_output_path(p) as tmp:
        sitk.WriteImage(img, str(tmp), useCompression=True)
    return p


def write_dose_rt(dose_Gy: sitk.Image, folder: str | Path, *, patient, study, reference_ct: sitk.Image | None = None,
                  **kwargs: Any) -> Path:
    """Write a dose map (Gy) as DICOM RT Dose on the CT's frame of reference.

    Parameters
    ----------
    dose_Gy : SimpleITK.Image
        Dose (Gy) in the LPS space of the reference CT.
    folder : str or Path
        Output folder (created).
    patient : LuDosimetryLib.dicomio.write.DicomPatient
    study : LuDosimetryLib.dicomio.write.DicomStudy
        The CT's study; ``study.frame_of_reference_uid`` is the CT's FrameOfReferenceUID.
    reference_ct : SimpleITK.Image, optional
        The CT the dose belongs to: the dose grid must lie inside the CT's extent and share its
        direction (checked), or the frame of reference would be claimed for another space.
    **kwargs
        Passed to :func:`LuDosimetryLib.dicomio.write.write_rt_dose` (series_number, description, ...).

    Returns
    -------
    Path
        The RT Dose file.
    """
    from ..dicomio.write import write_rt_dose

    img = _checked_dose_image(dose_Gy)
    if reference_ct is not None:
        _check_inside_ct(img, reference_ct)
    return write_rt_dose(img, Path(folder), patient=patient, study=study, **kwargs)


def _inside_ct_range(dose: sitk.Image, ct: sitk.Image) -> tuple[np.ndarray, np.ndarray]:
    """Per axis (i, j, k), the dose indices [lo, hi) whose voxel centres lie within the CT's voxel extent.

    The dose must be on the CT's axes (:class:`InputError` otherwise); then each axis maps linearly.
    """
    if not np.allclose(dose.GetDirection(), ct.GetDirection(), atol=1e-4):
        raise InputError(f"dose direction {dose.GetDirection()} differs from the CT's {ct.GetDirection()}; "
                         "expected the dose on the CT's axes", source="dose_Gy")
    c0 = np.asarray(ct.TransformPhysicalPointToContinuousIndex(dose.TransformIndexToPhysicalPoint((0, 0, 0))))
    step = np.asarray(dose.GetSpacing()) / np.asarray(ct.GetSpacing())  # CT index per dose index, same axes
    n_dose, n_ct = np.asarray(dose.GetSize()), np.asarray(ct.GetSize())
    lo = np.clip(np.ceil((-0.5 - 1e-3 - c0) / step), 0, n_dose).astype(int)
    hi = np.clip(np.floor((n_ct - 0.5 + 1e-3 - c0) / step) + 1, 0, n_dose).astype(int)
    return lo, np.maximum(hi, lo)


def crop_to_ct(dose: sitk.Image, ct: sitk.Image) -> tuple[sitk.Image, float]:
    """The part of a dose map whose voxel centres lie inside the CT's extent, and the share left out.

    A clinical SPECT's field of view (128 × 4.4 mm = 566 mm) is wider than its CT's (about
    500 mm): RT Dose claims the CT's frame of reference, so it can only hold the dose inside the
    CT (:func:`write_dose_rt` refuses the rest). The dose outside lies beyond the CT's field of
    view (air around the body, or truncated arms).

    Parameters
    ----------
    dose : SimpleITK.Image
        Dose (Gy) in the CT's LPS space, on the CT's axes.
    ct : SimpleITK.Image
        The reference CT.

    Returns
    -------
    (SimpleITK.Image, float)
        The cropped dose map (the input itself when nothing is outside) and the fraction of the
        summed dose (Gy × voxels) left out (0–1).

    Raises
    ------
    InputError
        When the axes differ or no dose voxel lies inside the CT.
    """
    lo, hi = _inside_ct_range(dose, ct)
    if np.any(hi <= lo):
        raise InputError("no dose voxel lies inside the reference CT; expected the dose in the CT's space "
                         "(same frame of reference)", source="dose_Gy")
    if np.all(lo == 0) and np.all(hi == np.asarray(dose.GetSize())):
        return dose, 0.0
    cropped = sitk.RegionOfInterest(dose, [int(v) for v in hi - lo], [int(v) for v in lo])
    total = float(np.sum(sitk.GetArrayViewFromImage(dose), dtype=np.float64))
    kept = float(np.sum(sitk.GetArrayViewFromImage(cropped), dtype=np.float64))
    return cropped, (1.0 - kept / total) if total > 0 else 0.0


def _check_inside_ct(dose: sitk.Image, ct: sitk.Image) -> None:
    """Dose voxel centres must lie within the CT's voxel extent, on the CT's axes."""
    lo, hi = _inside_ct_range(dose, ct)
    n = np.asarray(dose.GetSize())
    if np.all(lo == 0) and np.all(hi == n):
        return
    idx = tuple(int(0 if lo[a] > 0 else n[a] - 1) for a in range(3))  # a corner voxel outside
    pt = dose.TransformIndexToPhysicalPoint(idx)
    raise InputError(f"dose voxel {idx} at ({', '.join(f'{x:.1f}' for x in pt)}) mm lies outside the "
                     "reference CT; expected the dose in the CT's space (same frame of reference)", source="dose_Gy")


def merge_extra_rows(rows: Sequence[Mapping[str, Any]], extra_rows: Sequence[Mapping[str, Any]]) -> list[dict]:
    """``rows`` with ``extra_rows`` (e.g. the red marrow) appended; an extra row named like a region
    replaces that row's reported-dose columns and adds its own (the map statistics stay)."""
    out = [dict(r) for r in rows]
    index = {r["region"]: r for r in out}
    for extra in extra_rows:
        if extra.get("region") in index:  # e.g. the method's red_marrow over the label region red_marrow
            index[extra["region"]].update({k: v for k, v in extra.items()
                                           if k not in DOSES_COLUMNS or k in _REPORTED_COLUMNS})
        else:
            out.append(dict(extra))
    return out


def write_doses_csv(rows: Iterable[Mapping[str, Any]], path: str | Path) -> Path:
    """Write ``doses.csv`` (columns :data:`DOSES_COLUMNS` first, extra columns appended), atomically."""
    return write_csv(path, rows, DOSES_COLUMNS)


def write_dvh_csv(stats: Sequence[RegionDose], path: str | Path) -> Path:
    """Write the DVHs in long form (``region, dose_Gy, volume_percent``), atomically."""
    return write_csv(path, dvh_rows(stats), ("region", "dose_Gy", "volume_percent"), extra_columns=False)


def add_dose_report_section(report: Report, rows: Sequence[Mapping[str, Any]], *, dvh_png: str | None = None,
                            notes: Sequence[str] = ()) -> None:
    """Add the ``dose`` section to a report: notes, the doses table and the DVH figure.

    Parameters
    ----------
    report : Report
    rows : sequence of mapping
        ``doses.csv`` rows (e.g. from :func:`dose_rows` and ``red_marrow_row``).
    dvh_png : str, optional
        DVH figure path relative to report.html.
    notes : sequence of str
        Method statements (kernel, density scaling, mean weighting, red-marrow method).
    """
    sec = report.section("dose", "Absorbed dose")
    for n in notes:
        sec.paragraph(n)
    present = {k for r in rows for k, v in r.items() if v is not None}
    cols = [c for c in ("region", "kind", "dose_Gy", "dose_method", "dose_per_activity_Gy_per_GBq",
                        "dose_rel_uncertainty", "dose_ci95_low_Gy", "dose_ci95_high_Gy", "volume_mL", "mass_g",
                        "map_mean_dose_Gy", "median_dose_Gy", "d2_Gy", "d98_Gy", "bed_Gy", "eqd2_Gy", "flags")
            if c in present]
    sec.table(rows, cols, caption="Absorbed dose per region: dose_Gy is the reported dose (method in dose_method); "
              "map_mean_dose_Gy and the D_x (minimum dose to the hottest x % of the volume) are of the voxel dose "
              "map, which keeps the partial-volume loss of the SPECT")
    if dvh_png:
        sec.figure(dvh_png, "Cumulative dose-volume histograms")


def dose_table_rows(stats: Sequence[RegionDose], *, cycle: int | None = None,
                    injected_activity_Bq: float | None = None, extra_rows: Sequence[Mapping[str, Any]] = (),
                    reported: Mapping[str, tuple[float, str]] | None = None,
                    rel_uncertainty: Mapping[str, float] | None = None,
                    ci95_Gy: Mapping[str, tuple[float | None, float | None]] | None = None,
                    flags: Mapping[str, str] | None = None,
                    region_values: Mapping[str, Mapping[str, float]] | None = None) -> list[dict]:
    """The rows of ``doses.csv`` (:func:`dose_rows`, then ``region_values`` columns, then ``extra_rows``
    by :func:`merge_extra_rows`): what :func:`write_dose_results` writes and the Slicer dose table holds."""
    rows = dose_rows(stats, cycle=cycle, injected_activity_Bq=injected_activity_Bq, reported=reported,
                     rel_uncertainty=rel_uncertainty, ci95_Gy=ci95_Gy, flags=flags)
    for column, by_region in (region_values or {}).items():
        for row in rows:
            if row["region"] in by_region:
                row[column] = by_region[row["region"]]
    return merge_extra_rows(rows, extra_rows)


def write_dose_results(folder: str | Path, *, dose_Gy: sitk.Image, stats: Sequence[RegionDose],
                       report: Report | None = None, cycle: int | None = None,
                       injected_activity_Bq: float | None = None, extra_rows: Sequence[Mapping[str, Any]] = (),
                       reported: Mapping[str, tuple[float, str]] | None = None,
                       rel_uncertainty: Mapping[str, float] | None = None,
                       ci95_Gy: Mapping[str, tuple[float | None, float | None]] | None = None,
                       flags: Mapping[str, str] | None = None,
                       region_values: Mapping[str, Mapping[str, float]] | None = None,
                       notes: Sequence[str] = ()) -> dict[str, Path]:
    """Write the dose outputs of one run into a results folder.

    Writes ``dose_Gy.nii.gz``, ``doses.csv`` (regions, then ``extra_rows`` such as the red marrow;
    an extra row named like a region replaces that row's reported-dose columns and adds its own),
    ``dvh.png``, ``dvh.csv`` and, with ``report``, its ``dose`` section (the caller writes the page).
    ``reported``, ``rel_uncertainty``, ``ci95_Gy`` and ``flags`` are passed to :func:`dose_rows`;
    ``region_values`` maps a further column (``bed_Gy``, ``eqd2_Gy``) to region → value.

    Returns
    -------
    dict
        File name → path written.
    """
    out = Path(folder)
    rows = dose_table_rows(stats, cycle=cycle, injected_activity_Bq=injected_activity_Bq, extra_rows=extra_rows,
                           reported=reported, rel_uncertainty=rel_uncertainty, ci95_Gy=ci95_Gy, flags=flags,
                           region_values=region_values)
    written = {
        DOSE_NIFTI_NAME: write_dose_nifti(dose_Gy, out / DOSE_NIFTI_NAME),
        "doses.csv": write_doses_csv(rows, out / "doses.csv"),
        DVH_PNG_NAME: plot_dvh_png(stats, out / DVH_PNG_NAME),
        DVH_CSV_NAME: write_dvh_csv(stats, out / DVH_CSV_NAME),
    }
    if report is not None:
        add_dose_report_section(report, rows, dvh_png=DVH_PNG_NAME, notes=notes)
    return written
