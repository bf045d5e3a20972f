"""What a patient report reads: one results folder (doses.csv, fits.csv, tac.csv, dvh.csv, run.json,
the dose map, the reference CT and label map), the ledger when one is given or lies beside it, and
the phantom's ground truth when the patient is synthetic.

The report never recomputes a dose: every number it prints comes from these files, so the report
and ``doses.csv`` cannot disagree.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..results import read_csv, read_doses_csv

__all__ = ["PatientResults", "load_patient_results", "report_facts", "write_report_anatomy", "REFERENCE_CT_NAME",
           "LABELS_NAME", "LABEL_TABLE_NAME"]

#: Reference CT (HU) and label map written beside the dose by the pipeline, so a report can be
#: rendered again from the results folder alone.
REFERENCE_CT_NAME = "ct_HU.nii.gz"
LABELS_NAME = "labels.nii.gz"
LABEL_TABLE_NAME = "labels.csv"



@dataclass
class PatientResults:
    """A results folder, read once.

    Attributes
    ----------
    folder : Path
    doses, fits, tac : list of dict
        Rows of doses.csv, fits.csv, tac.csv (strings as written).
    dvh : dict
        region → (dose_Gy list, volume_percent list) from dvh.csv.
    run : dict
        run.json.
    ct, labels : SimpleITK.Image or None
        Reference CT (HU) and label map on the CT grid.
    label_table : LabelTable or None
    dose : SimpleITK.Image or None
        Dose map (Gy).
    truth : dict or None
        The phantom's truth.json (synthetic patients only).
    ledger : object or None
        :class:`LuDosimetryLib.planning.ledger.Ledger`.
    """

    folder: Path
    doses: list[dict[str, str]]
    fits: list[dict[str, str]]
    tac: list[dict[str, str]]
    dvh: dict[str, tuple[list[float], list[float]]]
    run: dict[str, Any]
    ct: Any = None
    labels: Any = None
    label_table: Any = None
    dose: Any = None
    truth: dict | None = None
    ledger: Any = None
    ledger_source: str = ""
    prediction: list[dict[str, str]] = field(default_factory=list)

    # --- facts from run.json -----------------------------------------------------------------
    @property
    def ingest(self) -> dict[str, Any]:
        """run.json's ``stages.ingest``."""
        return dict(self.run.get("stages", {}).get("ingest", {}))

    @property
    def patient_id(self) -> str:
        return str(self.ingest.get("patient_id", "unknown"))

    @property
    def cycle(self) -> int:
        return int(self.ingest.get("cycle", 1) or 1)

    @property
    def administered_activity_Bq(self) -> float:
        return float(self.ingest.get("injected_activity_Bq", math.nan) or math.nan)

    @property
    def pipeline(self) -> dict[str, Any]:
        return dict(self.run.get("parameters", {}).get("pipeline", {}))

    @property
    def warnings(self) -> list[dict[str, str]]:
        return list(self.run.get("warnings", []))

    @property
    def synthetic(self) -> bool:
        return self.truth is not None

    def dose_row(self, region: str) -> dict[str, str] | None:
        return next((r for r in self.doses if r.get("region") == region), None)

    def fit_row(self, region: str) -> dict[str, str] | None:
        return next((r for r in self.fits if r.get("region") == region), None)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", source=str(path)) from None
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON ({exc.msg}, line {exc.lineno})", source=str(path)) from None


def _read_dvh(path: Path) -> dict[str, tuple[list[float], list[float]]]:
    out: dict[str, tuple[list[float], list[float]]] = {}
    if not path.is_file():
        return out
    for r in read_csv(path):
        d, v = out.setdefault(r["region"], ([], []))
        d.append(float(r["dose_Gy"]))
        v.append(float(r["volume_percent"]))
    return out


def load_patient_results(folder: str | Path, *, ct=None, segmentation=None, ledger: str | Path | None = None,
                         truth: str | Path | None = None) -> PatientResults:
    """Read a results folder of ``ludosimetry run`` for the report.

    Parameters
    ----------
    folder : path
        Results folder (doses.csv, fits.csv, tac.csv, run.json, dose_Gy.nii.gz …).
    ct : SimpleITK.Image, optional
        Reference CT (HU); default ``ct_HU.nii.gz`` in the folder when present.
    segmentation : LuDosimetryLib.model.Segmentation, optional
        Label map on the CT grid with its table; default ``labels.nii.gz`` + ``labels.csv``.
    ledger : path, optional
        The patient's dose ledger (JSON); default ``ledger.json`` in the folder or in the patient
        folder named by run.json, when present.
    truth : path, optional
        Ground truth (``truth.json`` of a synthetic patient); default the patient folder's.

    Raises
    ------
    InputError
        When doses.csv or run.json is missing or unreadable, or doses.csv has the old columns.
    """
    import SimpleITK as sitk

    from ..labels import LabelTable

    f = Path(folder)
    if not f.is_dir():
        raise InputError("is not a results folder", source=str(f))
    for name in ("doses.csv", "run.json"):
        if not (f / name).is_file():
            raise InputError(f"no {name}: expected the results folder of `ludosimetry run`", source=str(f))
    run = _read_json(f / "run.json")
    res = PatientResults(folder=f, doses=read_doses_csv(f / "doses.csv"),
                         fits=read_csv(f / "fits.csv") if (f / "fits.csv").is_file() else [],
                         tac=read_csv(f / "tac.csv") if (f / "tac.csv").is_file() else [],
                         dvh=_read_dvh(f / "dvh.csv"), run=run)
    if (f / "dose_Gy.nii.gz").is_file():
        res.dose = sitk.ReadImage(str(f / "dose_Gy.nii.gz"), sitk.sitkFloat32)
    if ct is None and (f / REFERENCE_CT_NAME).is_file():
        ct = sitk.ReadImage(str(f / REFERENCE_CT_NAME))
    res.ct = ct
    if segmentation is not None:
        res.labels, res.label_table = segmentation.image, segmentation.table
    elif (f / LABELS_NAME).is_file() and (f / LABEL_TABLE_NAME).is_file():
        res.labels = sitk.ReadImage(str(f / LABELS_NAME))
        res.label_table = LabelTable.read(f / LABEL_TABLE_NAME)
    patient_dir = Path(run.get("inputs", {}).get("patient_dir", "")) if run.get("inputs", {}).get("patient_dir") \
        else None
    truth_path = Path(truth) if truth else (patient_dir / "truth.json" if patient_dir else None)
    if truth_path is not None and truth_path.is_file():
        res.truth = _read_json(truth_path)
    ledger_path = Path(ledger) if ledger else next(
        (p for p in (f / "ledger.json", patient_dir / "ledger.json" if patient_dir else None) if p and p.is_file()),
        None)
    if ledger_path is not None:
        from ..planning.ledger import read_ledger

        res.ledger, res.ledger_source = read_ledger(ledger_path), str(ledger_path)
    pred = f / "prediction" / "doses.csv"
    if pred.is_file():
        res.prediction = read_doses_csv(pred)
    return res


def report_facts(cycle, calibration: str | None) -> dict[str, Any]:
    """What the report's header needs beyond the doses, for run.json's ``stages.ingest``.

    Parameters
    ----------
    cycle : LuDosimetryLib.model.Cycle
    calibration : str or None
        The calibration store used (path), if any.

    Returns
    -------
    dict
        ``nuclide``, ``ligand``, ``injection_datetime`` (ISO), ``timepoints`` (label, time_h,
        acquisition_start of the first bed), ``calibration`` (store and the sensitivity's source).
    """
    admin = cycle.administration
    tps = []
    for tp in cycle.timepoints:
        start = min((b.acquisition_start for b in tp.beds), default=None)
        tps.append({"label": tp.label, "time_h": tp.time_h,
                    "acquisition_start": start.isoformat() if start is not None else None})
    sens = next((tp.provenance.get("sensitivity_cps_per_MBq") for tp in cycle.timepoints
                 if tp.provenance.get("sensitivity_cps_per_MBq")), None)
    if sens is None:
        sens = next((b.provenance.get("sensitivity_cps_per_MBq") for tp in cycle.timepoints for b in tp.beds
                     if b.provenance.get("sensitivity_cps_per_MBq")), None)
    import re

    m = re.search(r"\((\d{4}-\d{2}-\d{2}), ([^()]*)", str(sens or ""))
    entry = f"entry of {m.group(1)} ({m.group(2).strip()})" if m else (str(sens) if sens else "")
    calib = ", ".join(x for x in (Path(calibration).name if calibration else "", entry) if x) or "none recorded"
    return {"nuclide": admin.nuclide, "ligand": admin.ligand,
            "injection_datetime": admin.injection_datetime.isoformat(), "timepoints": tps, "calibration": calib}


def write_report_anatomy(folder: str | Path, ct, segmentation) -> dict[str, Path]:
    """Write the reference CT (HU, int16) and the label map with its table into a results folder.

    They let :func:`LuDosimetryLib.report.patient.write_patient_report` draw the dose over the
    anatomy again from the folder alone. Files are written atomically.
    """
    import SimpleITK as sitk

    from ..results import atomic_output_path, atomic_write_text

    out = Path(folder)
    written = {}
    ct16 = sitk.Cast(sitk.Clamp(ct, ct.GetPixelID(), -1024, 3071), sitk.sitkInt16)
    with atomic_output_path(out / REFERENCE_CT_NAME) as tmp:
        sitk.WriteImage(ct16, str(tmp), useCompression=True)
    written[REFERENCE_CT_NAME] = out / REFERENCE_CT_NAME
    with atomic_output_path(out / LABELS_NAME) as tmp:
        sitk.WriteImage(segmentation.image, str(tmp), useCompression=True)
    written[LABELS_NAME] = out / LABELS_NAME
    written[LABEL_TABLE_NAME] = atomic_write_text(out / LABEL_TABLE_NAME, segmentation.table.to_csv_text())
    return written
