"""A trial cohort: patients' ledgers (doses per cycle, patient block, follow-up, outcomes) read into one list.

A cohort is a folder (every ``*.json`` under it whose ``format`` is the ledger format; other JSON
files are skipped) or a manifest: a text file with one ledger path per line (relative to the
manifest; blank lines and ``#`` comments ignored), or a CSV whose ``ledger`` column holds the paths.

Each ledger is read and validated by the ledger reader (:mod:`LuDosimetryLib.planning.ledger`,
versions 1 and 2). Per patient it gives: ``patient_id``; the ``patient`` block (``risk_stratum``
standard/high, ``phase`` 1/2, ``escalation_group``; a version-1 ledger's top-level
``escalation_group``); the cycles (administration date, activity, organ ``dose_Gy``); and the
``follow_up`` / ``outcomes`` blocks (:mod:`.followup`). Treatment start is the first cycle's
administration date.
"""

from __future__ import annotations

import csv
import datetime as _dt
import json
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
    """One administered cycle: date, activity (GBq), organ absorbed doses (Gy) and lesions (dose Gy, volume mL)."""

    cycle: int
    kind: str
    administration_date: _dt.date
    administered_activity_GBq: float
    dose_Gy: Mapping[str, float] = field(default_factory=dict)
    lesions: Mapping[str, tuple[float, float | None]] = field(default_factory=dict)


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

    @property
    def wholebody_tumour_dose_Gy(self) -> float | None:
        """Volume-weighted mean lesion dose of cycle 1, Σ VᵢDᵢ / Σ Vᵢ (Gy; the biomarker trial's
        whole-body tumour dose at uniform density); None without lesions or with a volume missing."""
        les = self.cycles[0].lesions
        if not les or any(v is None or v <= 0 for _, v in les.values()):
            return None
        return sum(d * v for d, v in les.values()) / sum(v for _, v in les.values())

    def cumulative_dose_Gy(self, organ: str) -> float:
        """Sum over cycles of an organ's dose (Gy; cycles without the organ count 0)."""
        return float(sum(c.dose_Gy.get(organ, 0.0) for c in self.cycles))


def trial_patient_from_ledger(doc: Mapping[str, Any], *, source: str = "ledger") -> TrialPatient:
    """A :class:`TrialPatient` from a ledger document (dict).

    The ledger is read and validated by :func:`LuDosimetryLib.planning.ledger.ledger_from_dict`
    (cycles, doses, ``patient`` block); its ``follow_up`` and ``outcomes`` by :mod:`.followup`.
    """
    from ..planning.ledger import ledger_from_dict
    from ..units import BQ_PER_GBQ

    if not isinstance(doc, Mapping) or doc.get("format") != LEDGER_FORMAT:
        raise InputError(f"not a LuDosimetry ledger (format must be {LEDGER_FORMAT!r})", source=source)
    led = ledger_from_dict(doc, source=source)
    if not led.cycles:
        raise InputError("a trial patient needs at least one administered cycle", source=f"{source}: cycles")
    cycles = tuple(CycleDose(c.cycle, c.kind, c.administration_date, c.administered_activity_Bq / BQ_PER_GBQ,
                             {o: float(v.dose_Gy) for o, v in c.organs.items()},
                             {n: (float(v.dose_Gy), v.volume_mL) for n, v in c.lesions.items()}) for c in led.cycles)
    fu = follow_up_from_ledger({"follow_up": list(led.follow_up), "outcomes": led.outcomes}, source=source,
                               start_date=min(c.administration_date for c in led.cycles))
    return TrialPatient(led.patient_id, source, "" if led.phase is None else str(led.phase), led.risk_stratum or "",
                        led.escalation_group or "", cycles, fu)


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
