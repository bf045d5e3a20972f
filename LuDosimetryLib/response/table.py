"""The dose–response table users bring: one row per lesion, patient values repeated.

Columns (CSV, header required; patient-level columns must agree on every row of a patient):

================================  ========  ========================================================
column                            level     meaning
================================  ========  ========================================================
``patient``                       patient   identifier (required)
``lesion``                        lesion    identifier within the patient (required)
``dose_Gy``                       lesion    absorbed dose after cycle 1 (Gy, required)
``mass_g``                        lesion    lesion mass (g) used for the mass-weighted whole-body
                                            tumour dose (required; ``volume_mL`` × 1.04 g/mL is NOT
                                            assumed silently)
``psa_baseline_ng_per_mL``        patient   PSA before cycle 1 (required)
``psa_best_ng_per_mL``            patient   lowest PSA after two cycles (required)
``suv_baseline``, ``suv_followup``  lesion  PSMA-PET SUVmax (or SUVmean) at baseline and after two
                                            cycles (optional, together)
``volume_baseline_mL``,           lesion    PSMA-PET lesion volume at baseline and after two cycles
``volume_followup_mL``                      (optional, together)
``pfs_months``, ``pfs_event``     patient   PSA progression-free survival time and event flag
                                            (1 progression, 0 censored) (optional, together)
================================  ========  ========================================================
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError

__all__ = ["LesionRecord", "PatientRecord", "read_response_table", "REQUIRED_COLUMNS"]

REQUIRED_COLUMNS = ("patient", "lesion", "dose_Gy", "mass_g", "psa_baseline_ng_per_mL", "psa_best_ng_per_mL")
_PATIENT_COLUMNS = ("psa_baseline_ng_per_mL", "psa_best_ng_per_mL", "pfs_months", "pfs_event")
_PAIRS = (("suv_baseline", "suv_followup"), ("volume_baseline_mL", "volume_followup_mL"), ("pfs_months", "pfs_event"))


@dataclass(frozen=True)
class LesionRecord:
    """One lesion: dose (Gy), mass (g) and PSMA-PET values if given."""

    patient: str
    lesion: str
    dose_Gy: float
    mass_g: float
    suv_baseline: float | None = None
    suv_followup: float | None = None
    volume_baseline_mL: float | None = None
    volume_followup_mL: float | None = None

    @property
    def suv_change_percent(self) -> float | None:
        """100 (SUV_follow-up − SUV_baseline)/SUV_baseline (%)."""
        if self.suv_baseline is None or self.suv_followup is None:
            return None
        return 100.0 * (self.suv_followup - self.suv_baseline) / self.suv_baseline

    @property
    def volume_change_percent(self) -> float | None:
        """100 (V_follow-up − V_baseline)/V_baseline (%)."""
        if self.volume_baseline_mL is None or self.volume_followup_mL is None:
            return None
        return 100.0 * (self.volume_followup_mL - self.volume_baseline_mL) / self.volume_baseline_mL


@dataclass(frozen=True)
class PatientRecord:
    """One patient: PSA values, survival, and its lesions."""

    patient: str
    psa_baseline_ng_per_mL: float
    psa_best_ng_per_mL: float
    lesions: tuple[LesionRecord, ...]
    pfs_months: float | None = None
    pfs_event: int | None = None

    @property
    def psa_best_change_percent(self) -> float:
        """Best percent change of PSA from baseline (%; −100 … +∞)."""
        return 100.0 * (self.psa_best_ng_per_mL - self.psa_baseline_ng_per_mL) / self.psa_baseline_ng_per_mL

    @property
    def psa50(self) -> bool:
        """PSA decline of at least 50 % from baseline (PCWG3 PSA response)."""
        return self.psa_best_change_percent <= -50.0

    @property
    def wholebody_tumour_dose_Gy(self) -> float:
        """Mass-weighted mean lesion dose Σ mᵢDᵢ / Σ mᵢ (Gy)."""
        m = sum(les.mass_g for les in self.lesions)
        return sum(les.mass_g * les.dose_Gy for les in self.lesions) / m

    @property
    def tumour_mass_g(self) -> float:
        """Total lesion mass (g)."""
        return sum(les.mass_g for les in self.lesions)

    def wholebody_change_percent(self, which: str) -> float | None:
        """Whole-body change of PSMA-PET tumour ``volume`` (sum) or ``suv`` (volume-weighted mean) (%)."""
        if which == "volume":
            pairs = [(le.volume_baseline_mL, le.volume_followup_mL) for le in self.lesions]
            if any(a is None for a, _ in pairs):
                return None
            before, after = sum(a for a, _ in pairs), sum(b for _, b in pairs)
        else:
            rows = [(le.suv_baseline, le.suv_followup, le.mass_g) for le in self.lesions]
            if any(a is None for a, _, _ in rows):
                return None
            before = sum(a * m for a, _, m in rows) / sum(m for *_, m in rows)
            after = sum(b * m for _, b, m in rows) / sum(m for *_, m in rows)
        return 100.0 * (after - before) / before


def _num(row: dict, col: str, i: int, src: str, *, required: bool, positive: bool = False) -> float | None:
    text = (row.get(col) or "").strip()
    if not text:
        if required:
            raise InputError(f"row {i}, column '{col}': value is missing", source=src)
        return None
    try:
        v = float(text)
    except ValueError:
        raise InputError(f"row {i}, column '{col}': {text!r} is not a number", source=src) from None
    if not math.isfinite(v) or v < 0 or (positive and v == 0):
        raise InputError(f"row {i}, column '{col}': {text!r} must be finite and {'> 0' if positive else '≥ 0'}",
                         source=src)
    return v


def read_response_table(path: str | Path) -> list[PatientRecord]:
    """Read and validate a dose–response table (module docstring); ≥ 3 patients required."""
    p = Path(path)
    src = str(p)
    try:
        with p.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = reader.fieldnames or []
            rows = list(reader)
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", source=src) from None
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise InputError(f"missing column(s) {missing}; required: {list(REQUIRED_COLUMNS)}", source=src)
    for a, b in _PAIRS:
        if (a in header) != (b in header):
            raise InputError(f"column '{a}' needs column '{b}' and vice versa", source=src)
    by_patient: dict[str, dict] = {}
    for i, row in enumerate(rows, start=2):
        pid = (row.get("patient") or "").strip()
        lid = (row.get("lesion") or "").strip()
        if not pid or not lid:
            raise InputError(f"row {i}, column '{'patient' if not pid else 'lesion'}': value is missing", source=src)
        rec = by_patient.setdefault(pid, {"first_row": i, "lesions": [], "values": {}})
        for col in _PATIENT_COLUMNS:
            if col not in header:
                continue
            v = _num(row, col, i, src, required=col in REQUIRED_COLUMNS,
                     positive=col == "psa_baseline_ng_per_mL")
            if col == "pfs_event" and v is not None and v not in (0.0, 1.0):
                raise InputError(f"row {i}, column 'pfs_event': must be 1 (progression) or 0 (censored)", source=src)
            if col in rec["values"] and rec["values"][col] != v:
                raise InputError(f"row {i}, column '{col}': {v} differs from {rec['values'][col]} given for patient "
                                 f"{pid!r} in row {rec['first_row']}", source=src)
            rec["values"][col] = v
        if any(le.lesion == lid for le in rec["lesions"]):
            raise InputError(f"row {i}: lesion {lid!r} of patient {pid!r} appears twice", source=src)
        vals = {c: _num(row, c, i, src, required=False, positive=c in ("suv_baseline", "volume_baseline_mL"))
                for c in ("suv_baseline", "suv_followup", "volume_baseline_mL", "volume_followup_mL") if c in header}
        rec["lesions"].append(LesionRecord(pid, lid, _num(row, "dose_Gy", i, src, required=True),
                                           _num(row, "mass_g", i, src, required=True, positive=True), **vals))
    if len(by_patient) < 3:
        raise InputError(f"need at least 3 patients, got {len(by_patient)}", source=src)
    out = []
    for pid, rec in by_patient.items():
        v = rec["values"]
        ev = v.get("pfs_event")
        out.append(PatientRecord(pid, v["psa_baseline_ng_per_mL"], v["psa_best_ng_per_mL"], tuple(rec["lesions"]),
                                 v.get("pfs_months"), None if ev is None else int(ev)))
    return out
