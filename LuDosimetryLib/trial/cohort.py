"""A trial cohort: patients' ledgers (doses per cycle, patient block, follow-up, outcomes) read into one list.

A cohort is a folder (every ``*.json`` under it whose ``format`` is the ledger format; other JSON
files are skipped) or a manifest: a text file with one ledger path per line (relative to the
manifest; blank lines and ``#`` comments ignored), or a CSV whose ``ledger`` column holds the paths.

Per patient the ledger gives: ``patient_id``; the ``patient`` block (ledger version 2:
``risk_stratum``, ``phase``, ``escalation_group``; a version-1 ledger's top-level
``escalation_group`` is read too); the cycles (administration date, activity in GBq, organ
``dose_Gy``); and the ``follow_up`` / ``outcomes`` blocks (:mod:`.followup`). Treatment start is
the first cycle's administration date.
"""

from __future__ import annotations

import csv
import datetime as _dt
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError
from .followup import PatientFollowUp, follow_up_from_ledger

__all__ = ["CycleDose", "TrialPatient", "read_trial_cohort", "trial_patient_from_ledger", "LEDGER_FORMAT"]

LEDGER_FORMAT = "ludosimetry-ledger"


@dataclass(frozen=True)
class CycleDose:
    """One administered cycle: date, activity (GBq) and organ absorbed doses (Gy)."""

    cycle: int
    kind: str
    administration_date: _dt.date
    administered_activity_GBq: float
    dose_Gy: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class TrialPatient:
    """A patient of the trial cohort."""

    patient_id: str
    source: str
    phase: str
    risk_stratum: str
    escalation_group: str
    cycles: tuple[CycleDose, ...]
    follow_up: PatientFollowUp

    @property
    def start_date(self) -> _dt.date:
        """Treatment start: the first cycle's administration date."""
        return self.cycles[0].administration_date

    def day(self, date: _dt.date) -> float:
        """Days from treatment start."""
        return float((date - self.start_date).days)

    def cumulative_dose_Gy(self, organ: str) -> float:
        """Sum over cycles of an organ's dose (Gy; cycles without the organ count 0)."""
        return float(sum(c.dose_Gy.get(organ, 0.0) for c in self.cycles))


def _text(d: Mapping, key: str, where: str, default: str = "") -> str:
    v = d.get(key, default)
    if v is None:
        return default
    if not isinstance(v, str):
        raise InputError(f"must be text, got {v!r}", source=f"{where}.{key}")
    return v.strip()


def trial_patient_from_ledger(doc: Mapping[str, Any], *, source: str = "ledger") -> TrialPatient:
    """A :class:`TrialPatient` from a ledger document (dict)."""
    if not isinstance(doc, Mapping) or doc.get("format") != LEDGER_FORMAT:
        raise InputError(f"not a LuDosimetry ledger (format must be {LEDGER_FORMAT!r})", source=source)
    pid = doc.get("patient_id")
    if not isinstance(pid, str) or not pid.strip():
        raise InputError("must be non-empty text", source=f"{source}: patient_id")
    block = doc.get("patient") or {}
    if not isinstance(block, Mapping):
        raise InputError("must be an object", source=f"{source}: patient")
    group = _text(block, "escalation_group", f"{source}: patient") or _text(doc, "escalation_group", source)
    cycles = []
    raw = doc.get("cycles")
    if not isinstance(raw, list) or not raw:
        raise InputError("a trial patient needs at least one administered cycle", source=f"{source}: cycles")
    for i, c in enumerate(raw):
        where = f"{source}: cycles[{i}]"
        if not isinstance(c, Mapping):
            raise InputError("must be an object", source=where)
        try:
            date = _dt.date.fromisoformat(c.get("administration_date"))
        except (TypeError, ValueError):
            raise InputError(f"must be an ISO date, got {c.get('administration_date')!r}",
                             source=f"{where}.administration_date") from None
        act = c.get("administered_activity_GBq")
        if isinstance(act, bool) or not isinstance(act, (int, float)) or not (math.isfinite(act) and act > 0):
            raise InputError(f"must be > 0 GBq, got {act!r}", source=f"{where}.administered_activity_GBq")
        doses = {}
        for organ, o in (c.get("organs") or {}).items():
            d = o.get("dose_Gy") if isinstance(o, Mapping) else None
            if isinstance(d, bool) or not isinstance(d, (int, float)) or not (math.isfinite(d) and d >= 0):
                raise InputError(f"must be a dose ≥ 0 Gy, got {d!r}", source=f"{where}.organs.{organ}.dose_Gy")
            doses[str(organ)] = float(d)
        cycles.append(CycleDose(int(c.get("cycle", i + 1)), str(c.get("kind", "standard")), date, float(act), doses))
    cycles.sort(key=lambda c: c.administration_date)
    fu = follow_up_from_ledger(doc, source=source)
    return TrialPatient(pid.strip(), source, _text(block, "phase", f"{source}: patient"),
                        _text(block, "risk_stratum", f"{source}: patient"), group, tuple(cycles), fu)


def _load(path: Path) -> dict | None:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", source=str(path)) from None
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON (line {exc.lineno}: {exc.msg})", source=str(path)) from None
    return doc if isinstance(doc, dict) and doc.get("format") == LEDGER_FORMAT else None


def _manifest_paths(path: Path) -> list[Path]:
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".csv":
        rows = list(csv.DictReader(text.splitlines()))
        if not rows or "ledger" not in rows[0]:
            raise InputError("a CSV manifest needs a 'ledger' column of ledger paths", source=str(path))
        names = [r["ledger"].strip() for r in rows if (r.get("ledger") or "").strip()]
    else:
        names = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    return [(path.parent / n) for n in names]


def read_trial_cohort(path: str | Path) -> list[TrialPatient]:
    """Read every ledger of a cohort folder or manifest (module docstring); each validated.

    Raises
    ------
    InputError
        Missing path, no ledger found, an invalid ledger (named), a patient twice.
    """
    p = Path(path)
    if not p.exists():
        raise InputError("does not exist (give a folder of ledgers or a manifest)", source=str(p))
    patients: list[TrialPatient] = []
    if p.is_dir():
        for f in sorted(p.rglob("*.json")):
            doc = _load(f)
            if doc is not None:
                patients.append(trial_patient_from_ledger(doc, source=str(f)))
    else:
        for f in _manifest_paths(p):
            doc = _load(f)
            if doc is None:
                raise InputError(f"listed in the manifest but not a ledger (format {LEDGER_FORMAT!r})", source=str(f))
            patients.append(trial_patient_from_ledger(doc, source=str(f)))
    if not patients:
        raise InputError("no ledger found (JSON files with format 'ludosimetry-ledger')", source=str(p))
    seen: dict[str, str] = {}
    for pt in patients:
        if pt.patient_id in seen:
            raise InputError(f"patient {pt.patient_id!r} also in {seen[pt.patient_id]}", source=pt.source)
        seen[pt.patient_id] = pt.source
    return sorted(patients, key=lambda q: q.patient_id)
