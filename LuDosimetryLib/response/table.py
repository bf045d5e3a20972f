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
``rpfs_months``, ``rpfs_event``   patient   radiographic PFS (optional, together)
``os_months``, ``os_event``       patient   overall survival (1 death, 0 censored) (optional, together)
``ttv_baseline_mL``,              patient   PSMA-PET total tumour volume at baseline and after two
``ttv_followup_mL``                         cycles (optional, together; default: the sums of the
                                            lesion ``volume_*_mL`` columns when given)
``new_lesions``                   patient   1 when new PSMA-positive lesions appeared, else 0
                                            (optional; needed for RECIP 1.0)
``psa_pcwg3``                     patient   PCWG3 PSA category after two cycles (``response``,
                                            ``stable``, ``progression``; optional — or computed from
                                            a PSA series, :func:`apply_psa_series`)
================================  ========  ========================================================
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError

__all__ = ["LesionRecord", "PatientRecord", "read_response_table", "REQUIRED_COLUMNS", "apply_psa_series",
           "read_psa_series", "apply_psma_segmentations"]

REQUIRED_COLUMNS = ("patient", "lesion", "dose_Gy", "mass_g", "psa_baseline_ng_per_mL", "psa_best_ng_per_mL")
_SURVIVAL = ("pfs", "rpfs", "os")
_PATIENT_COLUMNS = ("psa_baseline_ng_per_mL", "psa_best_ng_per_mL", *(f"{s}_{k}" for s in _SURVIVAL
                                                                      for k in ("months", "event")),
                    "ttv_baseline_mL", "ttv_followup_mL", "new_lesions")
_FLAGS = ("pfs_event", "rpfs_event", "os_event", "new_lesions")
_PAIRS = (("suv_baseline", "suv_followup"), ("volume_baseline_mL", "volume_followup_mL"), ("pfs_months", "pfs_event"),
          ("rpfs_months", "rpfs_event"), ("os_months", "os_event"), ("ttv_baseline_mL", "ttv_followup_mL"))


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
    rpfs_months: float | None = None
    rpfs_event: int | None = None
    os_months: float | None = None
    os_event: int | None = None
    ttv_baseline_mL: float | None = None
    ttv_followup_mL: float | None = None
    new_lesions: int | None = None
    psa_pcwg3: str | None = None

    @property
    def total_tumour_volume_mL(self) -> tuple[float, float] | None:
        """PSMA-PET total tumour volume (baseline, follow-up) in mL: the columns, else the lesion sums."""
        if self.ttv_baseline_mL is not None:
            return self.ttv_baseline_mL, self.ttv_followup_mL
        pairs = [(le.volume_baseline_mL, le.volume_followup_mL) for le in self.lesions]
        if not pairs or any(a is None for a, _ in pairs):
            return None
        return sum(a for a, _ in pairs), sum(b for _, b in pairs)

    @property
    def recip(self) -> str | None:
        """RECIP 1.0 category (None without volumes or the new-lesion flag)."""
        from .categories import recip_category

        ttv = self.total_tumour_volume_mL
        if ttv is None or self.new_lesions is None or ttv[0] <= 0:
            return None
        return recip_category(ttv[0], ttv[1], bool(self.new_lesions))

    def outcome(self, name: str) -> int | None:
        """Binary outcome by definition name (:data:`~.categories.OUTCOME_DEFINITIONS`; None: not evaluable)."""
        from .categories import combined_outcome, outcome_definition

        outcome_definition(name)
        psa, recip = self.psa_pcwg3, self.recip
        if name == "psa50":
            return int(self.psa50)
        if name == "pcwg3_response":
            return None if psa in (None, "not_evaluable") else int(psa == "response")
        if name == "pcwg3_no_progression":
            return None if psa in (None, "not_evaluable") else int(psa != "progression")
        if name == "recip_response":
            return None if recip is None else int(recip in ("complete_response", "partial_response"))
        if name == "recip_no_progression":
            return None if recip is None else int(recip != "progression")
        c = combined_outcome(psa, recip)
        return None if c == "not_evaluable" else int(c == "response_or_stable")

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
            if col in _FLAGS and v is not None and v not in (0.0, 1.0):
                raise InputError(f"row {i}, column '{col}': must be 1 (event) or 0 (censored / none)", source=src)
            if col in rec["values"] and rec["values"][col] != v:
                raise InputError(f"row {i}, column '{col}': {v} differs from {rec['values'][col]} given for patient "
                                 f"{pid!r} in row {rec['first_row']}", source=src)
            rec["values"][col] = v
        if "psa_pcwg3" in header:
            cat = (row.get("psa_pcwg3") or "").strip() or None
            if cat is not None and cat not in ("response", "stable", "progression", "not_evaluable"):
                raise InputError(f"row {i}, column 'psa_pcwg3': {cat!r} is not response, stable, progression or "
                                 "not_evaluable", source=src)
            if "psa_pcwg3" in rec["values"] and rec["values"]["psa_pcwg3"] != cat:
                raise InputError(f"row {i}, column 'psa_pcwg3': {cat!r} differs from row {rec['first_row']}",
                                 source=src)
            rec["values"]["psa_pcwg3"] = cat
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
        flags = {k: (None if v.get(k) is None else int(v[k])) for k in _FLAGS}
        out.append(PatientRecord(pid, v["psa_baseline_ng_per_mL"], v["psa_best_ng_per_mL"], tuple(rec["lesions"]),
                                 v.get("pfs_months"), flags["pfs_event"], v.get("rpfs_months"), flags["rpfs_event"],
                                 v.get("os_months"), flags["os_event"], v.get("ttv_baseline_mL"),
                                 v.get("ttv_followup_mL"), flags["new_lesions"], v.get("psa_pcwg3")))
    return out


def read_psa_series(path: str | Path) -> dict[str, list[tuple[float, float]]]:
    """PSA series CSV (``patient, day, psa_ng_per_mL``; day = days after the baseline value, > 0)."""
    p = Path(path)
    try:
        with p.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header, rows = reader.fieldnames or [], list(reader)
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", source=str(p)) from None
    missing = [c for c in ("patient", "day", "psa_ng_per_mL") if c not in header]
    if missing:
        raise InputError(f"missing column(s) {missing}; required: patient, day, psa_ng_per_mL", source=str(p))
    out: dict[str, list[tuple[float, float]]] = {}
    for i, row in enumerate(rows, start=2):
        pid = (row.get("patient") or "").strip()
        if not pid:
            raise InputError(f"row {i}, column 'patient': value is missing", source=str(p))
        day = _num(row, "day", i, str(p), required=True, positive=True)
        out.setdefault(pid, []).append((day, _num(row, "psa_ng_per_mL", i, str(p), required=True)))
    return out


def apply_psa_series(patients: list[PatientRecord], series: dict[str, list[tuple[float, float]]], *,
                     landmark_day: float, window_days: float) -> tuple[list[PatientRecord], list[str]]:
    """Set each patient's ``psa_pcwg3`` from its PSA series at a landmark (PCWG3, :func:`pcwg3_response_at`).

    Returns the patients and warnings (patients without a series, series of unknown patients).
    """
    from dataclasses import replace

    from .categories import pcwg3_response_at

    known = {p.patient for p in patients}
    warnings = []
    unknown = sorted(set(series) - known)
    if unknown:
        warnings.append(f"PSA series of patients not in the response table ignored: {', '.join(unknown)}")
    out = []
    for p in patients:
        s = series.get(p.patient)
        if not s:
            warnings.append(f"patient {p.patient}: no PSA series, PCWG3 category not evaluable")
            out.append(replace(p, psa_pcwg3="not_evaluable"))
            continue
        days, vals = zip(*s)
        cat = pcwg3_response_at(days, vals, p.psa_baseline_ng_per_mL, day=landmark_day, window_days=window_days)
        out.append(replace(p, psa_pcwg3=cat.category))
    return out, warnings


def apply_psma_segmentations(patients: list[PatientRecord], patients_dir: str | Path, *, landmark_day: float,
                             window_days: float) -> tuple[list[PatientRecord], list[str]]:
    """Fill total tumour volumes and the new-lesion flag from ``<patients_dir>/<patient>/psma_pet/`` scans.

    Baseline = the earliest scan; follow-up = the scan closest to ``landmark_day`` days after the
    baseline within ± ``window_days``. Values given in the table are kept (a warning names
    patients where table and folder both exist). Patients without scans are left as they are.
    """
    from dataclasses import replace

    from .psma_volume import read_psma_scans

    root = Path(patients_dir)
    if not root.is_dir():
        raise InputError("is not a folder of patient folders", source=str(root))
    out, warnings = [], []
    for p in patients:
        scans = read_psma_scans(root / p.patient)
        if len(scans) < 2:
            out.append(p)
            continue
        base = scans[0]
        near = [s for s in scans[1:] if abs((s.date - base.date).days - landmark_day) <= window_days]
        if not near:
            warnings.append(f"patient {p.patient}: no PSMA-PET scan within {window_days:g} days of day "
                            f"{landmark_day:g}; RECIP from the table only")
            out.append(p)
            continue
        fu = min(near, key=lambda s: abs((s.date - base.date).days - landmark_day))
        if p.ttv_baseline_mL is not None:
            warnings.append(f"patient {p.patient}: total tumour volume from the table kept, segmentations in "
                            f"{root / p.patient / 'psma_pet'} not used")
            out.append(p)
            continue
        new = None
        if base.lesion_names is not None and fu.lesion_names is not None:
            new = int(bool(set(fu.lesion_names) - set(base.lesion_names)))
        elif p.new_lesions is None:
            warnings.append(f"patient {p.patient}: no label tables beside the PSMA-PET segmentations, new lesions "
                            "unknown (give the new_lesions column)")
        out.append(replace(p, ttv_baseline_mL=base.total_tumour_volume_mL, ttv_followup_mL=fu.total_tumour_volume_mL,
                           new_lesions=p.new_lesions if new is None else new))
    return out, warnings
