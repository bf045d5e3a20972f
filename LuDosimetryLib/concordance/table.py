"""The concordance table users bring: one row per patient and region.

Columns (CSV, header required):

========================  ========  ==============================================================
column                    required  meaning
========================  ========  ==============================================================
``patient``               yes       patient identifier
``region``                yes       region name as in the label table (``kidney_left``, ``lesion_3``)
``predicted_Gy``          yes       predicted absorbed dose (Gy), e.g. from the 68Ga PET
``measured_Gy``           yes       measured absorbed dose (Gy), e.g. from 177Lu SPECT/CT
``kind``                  no        ``organ`` or ``lesion``; default: ``lesion`` if the region name
                                    starts with "lesion", else ``organ``
``predicted_sd_Gy``       no        standard uncertainty of the prediction (Gy), for Deming's ratio
``measured_sd_Gy``        no        standard uncertainty of the measurement (Gy)
========================  ========  ==============================================================

A region's *group* (what statistics are pooled over) is ``lesion`` for lesions and the organ name
without its side suffix for organs (``kidney_left`` and ``kidney_right`` form ``kidney``).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError

__all__ = ["DosePair", "read_concordance_table", "region_group", "REQUIRED_COLUMNS"]

REQUIRED_COLUMNS = ("patient", "region", "predicted_Gy", "measured_Gy")


@dataclass(frozen=True)
class DosePair:
    """One predicted/measured pair (Gy)."""

    patient: str
    region: str
    kind: str
    predicted_Gy: float
    measured_Gy: float
    predicted_sd_Gy: float | None = None
    measured_sd_Gy: float | None = None

    @property
    def group(self) -> str:
        """The pooled group: ``lesion`` or the organ without side."""
        return region_group(self.region, self.kind)


def region_group(region: str, kind: str) -> str:
    """``lesion`` for lesions, else the region name without ``_left``/``_right``."""
    if kind == "lesion":
        return "lesion"
    for suffix in ("_left", "_right"):
        if region.endswith(suffix):
            return region[: -len(suffix)]
    return region


def _number(text: str | None, *, row: int, column: str, source: str, required: bool) -> float | None:
    if text is None or text.strip() == "":
        if required:
            raise InputError(f"row {row}, column '{column}': value is missing", source=source)
        return None
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"row {row}, column '{column}': {text!r} is not a number", source=source) from None
    if not math.isfinite(value) or value < 0:
        raise InputError(f"row {row}, column '{column}': {text!r} must be a finite dose ≥ 0 Gy", source=source)
    return value


def read_concordance_table(path: str | Path) -> list[DosePair]:
    """Read and validate a concordance table (see the module docstring).

    Raises
    ------
    InputError
        Naming the row (1 = header) and column: missing columns or values, non-numeric cells, a
        region with only one modality, duplicated patient/region rows, fewer than 3 patients.
    """
    p = Path(path)
    try:
        with p.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = reader.fieldnames or []
            missing = [c for c in REQUIRED_COLUMNS if c not in header]
            if missing:
                raise InputError(f"missing column(s) {missing}; required: {list(REQUIRED_COLUMNS)}", source=str(p))
            rows = list(reader)
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", source=str(p)) from None
    pairs: list[DosePair] = []
    seen: dict[tuple[str, str], int] = {}
    for i, row in enumerate(rows, start=2):
        patient = (row.get("patient") or "").strip()
        region = (row.get("region") or "").strip()
        for col, val in (("patient", patient), ("region", region)):
            if not val:
                raise InputError(f"row {i}, column '{col}': value is missing", source=str(p))
        pred = _number(row.get("predicted_Gy"), row=i, column="predicted_Gy", source=str(p), required=False)
        meas = _number(row.get("measured_Gy"), row=i, column="measured_Gy", source=str(p), required=False)
        if pred is None or meas is None:
            have, lack = ("measured", "predicted_Gy") if pred is None else ("predicted", "measured_Gy")
            raise InputError(f"row {i}, column '{lack}': region {region!r} of patient {patient!r} has a {have} "
                             "dose only (a region in one modality only cannot be compared)", source=str(p))
        kind = (row.get("kind") or "").strip() or ("lesion" if region.lower().startswith("lesion") else "organ")
        if kind not in ("organ", "lesion"):
            raise InputError(f"row {i}, column 'kind': {kind!r} is not 'organ' or 'lesion'", source=str(p))
        key = (patient, region)
        if key in seen:
            raise InputError(f"row {i}: patient {patient!r}, region {region!r} already given in row {seen[key]}",
                             source=str(p))
        seen[key] = i
        pairs.append(DosePair(patient, region, kind, pred, meas,
                              _number(row.get("predicted_sd_Gy"), row=i, column="predicted_sd_Gy", source=str(p),
                                      required=False),
                              _number(row.get("measured_sd_Gy"), row=i, column="measured_sd_Gy", source=str(p),
                                      required=False)))
    patients = {pp.patient for pp in pairs}
    if len(patients) < 3:
        raise InputError(f"need at least 3 patients for concordance statistics, got {len(patients)}", source=str(p))
    return pairs
