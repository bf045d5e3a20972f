"""PSMA-PET total tumour volume (TTV) from lesion segmentations in a patient folder, for RECIP 1.0.

Layout (one folder per PSMA-PET scan, named by its ISO date)::

    PATIENT/psma_pet/2026-01-02/lesions.nii.gz   label map: every voxel > 0 is PSMA-positive tumour
    PATIENT/psma_pet/2026-01-02/labels.csv       optional label table (labels.csv schema); rows of
                                                 kind ``lesion`` are tumour, others are ignored
    PATIENT/psma_pet/2026-04-01/...

The earliest scan on or before treatment start (or simply the earliest scan) is the baseline.
TTV = number of tumour voxels × voxel volume (mL). New lesions at a follow-up scan are the lesion
names of its label table absent from the baseline table (both tables needed; without them the
new-lesion flag is unknown and RECIP is not assessed from the folder).
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..errors import InputError
from ..labels import LabelTable

__all__ = ["PsmaScan", "total_tumour_volume_mL", "read_psma_scans"]


@dataclass(frozen=True)
class PsmaScan:
    """One PSMA-PET scan's segmentation summary."""

    date: _dt.date
    total_tumour_volume_mL: float
    lesion_names: tuple[str, ...] | None
    source: str


def total_tumour_volume_mL(label_map: sitk.Image, lesion_labels: set[int] | None = None) -> float:
    """Volume (mL) of the voxels whose label is a lesion label (any label > 0 when ``lesion_labels`` is None)."""
    arr = sitk.GetArrayViewFromImage(label_map)
    mask = arr > 0 if lesion_labels is None else np.isin(arr, sorted(lesion_labels))
    voxel_mL = float(np.prod(label_map.GetSpacing())) / 1000.0
    return float(mask.sum()) * voxel_mL


def read_psma_scans(patient_dir: str | Path) -> list[PsmaScan]:
    """Every ``psma_pet/<date>/lesions.nii.gz`` of a patient folder, in date order (empty list when none)."""
    root = Path(patient_dir) / "psma_pet"
    if not root.is_dir():
        return []
    scans = []
    for d in sorted(root.iterdir()):
        seg = d / "lesions.nii.gz"
        if not seg.is_file():
            continue
        try:
            date = _dt.date.fromisoformat(d.name)
        except ValueError:
            raise InputError("PSMA-PET scan folders must be named by their ISO date (YYYY-MM-DD)",
                             source=str(d)) from None
        try:
            img = sitk.ReadImage(str(seg))
        except RuntimeError as exc:
            raise InputError(f"cannot read the lesion segmentation: {str(exc).splitlines()[0]}",
                             source=str(seg)) from None
        names, labels = None, None
        table_path = d / "labels.csv"
        if table_path.is_file():
            table = LabelTable.from_csv_text(table_path.read_text(encoding="utf-8"), source=str(table_path))
            lesions = table.of_kind("lesion")
            names = tuple(r.name for r in lesions)
            labels = {r.label for r in lesions}
        scans.append(PsmaScan(date, total_tumour_volume_mL(img, labels), names, str(seg)))
    return scans
