"""Save report: the patient report of the scene's results (LuDosimetryLib.report.patient writes it).

The Dose module's results (dose volume, statistics table, DVH table), the TAC module's tables
(TACs and fits, when given), the reference CT and the label map are written as a results folder —
the same files ``ludosimetry run`` writes (doses.csv, fits.csv, tac.csv, dvh.csv, dose_Gy.nii.gz,
ct_HU.nii.gz, labels.nii.gz + labels.csv, run.json) — and the library writes report.html from that
folder, so the report of the scene and of the command line are one and the same.
"""

from __future__ import annotations

from pathlib import Path

from .nodes import get_node_attributes, table_to_rows, volume_to_sitk
from .patient_nodes import segmentation_from_node

__all__ = ["save_report", "dvh_rows_from_columns"]


def dvh_rows_from_columns(rows) -> list[dict]:
    """Long-form DVH rows (region, dose_Gy, volume_percent) from the DVH table's rows
    (``dose_Gy`` and ``<region>_volume_percent`` columns)."""
    out = []
    regions = [c.removesuffix("_volume_percent") for c in (rows[0] if rows else {}) if c.endswith("_volume_percent")]
    for region in regions:
        for r in rows:
            out.append({"region": region, "dose_Gy": r["dose_Gy"], "volume_percent": r[f"{region}_volume_percent"]})
    return out


def save_report(dose_volume, statistics_table, labels, ct_volume, folder, *, tac_table=None, fit_table=None,
                dvh_table=None, pdf: bool = False) -> Path:
    """Write the scene's results into ``folder`` and the patient report ``folder/report.html``.

    Parameters
    ----------
    dose_volume : vtkMRMLScalarVolumeNode
        Dose (Gy) of the Dose module (its attributes give patient, cycle, activity, timepoints).
    statistics_table : vtkMRMLTableNode
        The Dose module's statistics (doses.csv columns).
    labels : vtkMRMLLabelMapVolumeNode
        Label map with its ``LuDosimetry.LabelTable``.
    ct_volume : vtkMRMLScalarVolumeNode
        The reference CT (HU).
    folder : path
        Results folder to write (created; existing files of the same names are replaced).
    tac_table, fit_table, dvh_table : vtkMRMLTableNode, optional
        The TAC module's tables and the Dose module's DVH table.
    pdf : bool
        Also print report.pdf through a headless Chromium (raises when none is installed).

    Returns
    -------
    Path
        report.html (or report.pdf with ``pdf``).
    """
    import SimpleITK as sitk

    from LuDosimetryLib import __version__
    from LuDosimetryLib.errors import InputError
    from LuDosimetryLib.report.data import write_report_anatomy
    from LuDosimetryLib.report.patient import write_patient_report
    from LuDosimetryLib.results import (
        DOSES_COLUMNS,
        FITS_COLUMNS,
        TAC_COLUMNS,
        RunRecord,
        atomic_output_path,
        write_csv,
    )

    if dose_volume is None or statistics_table is None or labels is None or ct_volume is None:
        raise InputError("needs the dose volume, its statistics table, the label map and the reference CT (run "
                         "LuDosimetry Dose first)", source="Save report")
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    attrs = get_node_attributes(dose_volume)
    timepoints = []
    for item in (attrs.get("Timepoints") or "").split(","):
        label, _, t = item.partition("@")
        if t.endswith("h"):
            timepoints.append({"label": label, "time_h": float(t[:-1])})
    doses = table_to_rows(statistics_table)
    write_csv(out / "doses.csv", doses, DOSES_COLUMNS)
    if fit_table is not None:
        write_csv(out / "fits.csv", table_to_rows(fit_table), FITS_COLUMNS)
    if tac_table is not None:
        write_csv(out / "tac.csv", table_to_rows(tac_table), TAC_COLUMNS)
    if dvh_table is not None:
        write_csv(out / "dvh.csv", dvh_rows_from_columns(table_to_rows(dvh_table)), ("region", "dose_Gy",
                                                                                      "volume_percent"))
    with atomic_output_path(out / "dose_Gy.nii.gz") as tmp:
        sitk.WriteImage(volume_to_sitk(dose_volume), str(tmp), useCompression=True)
    ct = volume_to_sitk(ct_volume)
    segmentation = segmentation_from_node(labels)
    write_report_anatomy(out, ct, segmentation)
    record = RunRecord("Slicer: LuDosimetry Dose, Save report", inputs={"scene": dose_volume.GetName()},
                       parameters={"pipeline": {"dose_method": attrs.get("Method", "convolution")}})
    record.stages["ingest"] = {"patient_id": attrs.get("PatientID", "patient"), "cycle": int(attrs.get("Cycle") or 1),
                               "injected_activity_Bq": float(attrs.get("InjectedActivityBq") or "nan"),
                               "nuclide": attrs.get("Nuclide", "Lu-177"),
                               "injection_datetime": attrs.get("InjectionDateTime", ""),
                               "timepoints": timepoints, "timepoints_h": [t["time_h"] for t in timepoints]}
    record.outputs = {"report.html": "patient report (LuDosimetryLib.report.patient)"}
    record.parameters["software"] = f"LuDosimetryLib {__version__}"
    record.write(out)
    html = write_patient_report(out, ct=ct, segmentation=segmentation)
    if pdf:
        from LuDosimetryLib.report.browser import html_to_pdf

        return html_to_pdf(html, footer=f"{attrs.get('PatientID', '')} · cycle {attrs.get('Cycle', '1')}")
    return html
