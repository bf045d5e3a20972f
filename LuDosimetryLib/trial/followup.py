"""The clinical follow-up of a patient in the ledger: the ``follow_up`` list and the ``outcomes`` block.

The ledger (:mod:`LuDosimetryLib.planning.ledger`, version 2) carries two blocks that this module
defines, parses and validates (the ledger reader keeps them unmodified):

``follow_up``: a list of visits, each::

    {"date": "2026-02-16",                       # ISO date of the visit (required)
     "visit": "cycle 2",                         # free label (optional)
     "labs": {"psa_ng_per_mL": 12.0, "creatinine_umol_per_L": 81, "egfr_mL_per_min_per_1_73m2": 84,
              "haemoglobin_g_per_dL": 12.9, "leukocytes_10e9_per_L": 5.2, "neutrophils_10e9_per_L": 3.1,
              "lymphocytes_10e9_per_L": 0.9, "platelets_10e9_per_L": 201},
     "adverse_events": [{"term": "Dry mouth", "grade": 1, "attribution": "probable",
                         "onset_date": "2026-02-01", "dlt": false, "resolved_date": null}],
     "prom": {"FACT-P": 108, "BPI-SF worst pain": 3},
     "response": {"psma_pet": {"total_tumour_volume_mL": 84.0, "new_lesions": false}}}

Laboratory keys are those of :data:`LAB_UNITS` (a misspelt key is an error, not a silent drop);
adverse events use the CTCAE v5.0 term (as written in CTCAE), grade 1–5, attribution one of
:data:`ATTRIBUTIONS`; ``dlt`` marks a dose-limiting toxicity as the protocol defines it (the
investigator's call, recorded, not inferred); PROM scores are instrument → score.

``outcomes``: one block per patient::

    {"version": 1,
     "psa_progression_date": "2026-11-02", "radiographic_progression_date": null,
     "death_date": null, "last_follow_up_date": "2027-06-01",
     "salvage_eligible": true, "salvage_start_date": "2027-01-11"}

``salvage_eligible``: responder, then re-progression (the personalised-activity trial's criterion
for up to 3 salvage cycles). A date that is not a valid ISO date, a grade outside 1–5, a death
before a progression, a visit after the last follow-up: each is an :class:`InputError` naming the
entry (``follow_up[3].adverse_events[0].grade``) and what was expected.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import InputError
from ..response.categories import PSA_CATEGORIES, RECIP_CATEGORIES

__all__ = ["FOLLOWUP_VERSION", "LAB_UNITS", "ATTRIBUTIONS", "RELATED_ATTRIBUTIONS", "AdverseEvent", "PsmaPet",
           "FollowUpVisit", "Outcomes", "PatientFollowUp", "parse_follow_up", "parse_outcomes", "follow_up_from_ledger",
           "follow_up_to_dict", "outcomes_to_dict"]

FOLLOWUP_VERSION = 1
#: laboratory value keys (the unit is in the key)
LAB_UNITS = ("psa_ng_per_mL", "creatinine_umol_per_L", "egfr_mL_per_min_per_1_73m2", "haemoglobin_g_per_dL",
             "leukocytes_10e9_per_L", "neutrophils_10e9_per_L", "lymphocytes_10e9_per_L", "platelets_10e9_per_L")
#: attribution to the study treatment (CTCAE / NCI terms)
ATTRIBUTIONS = ("unrelated", "unlikely", "possible", "probable", "definite")
RELATED_ATTRIBUTIONS = ("possible", "probable", "definite")


@dataclass(frozen=True)
class AdverseEvent:
    """One adverse event (CTCAE v5.0).

    Attributes
    ----------
    term : str
        CTCAE v5.0 term, e.g. ``"Dry mouth"``, ``"Platelet count decreased"``, ``"Chronic kidney disease"``.
    grade : int
        1–5.
    attribution : str
        One of :data:`ATTRIBUTIONS`.
    onset_date : datetime.date
    dlt : bool
        Dose-limiting toxicity (protocol definition, as recorded by the investigator).
    resolved_date : datetime.date or None
    """

    term: str
    grade: int
    attribution: str
    onset_date: _dt.date
    dlt: bool = False
    resolved_date: _dt.date | None = None

    @property
    def related(self) -> bool:
        """Treatment-related (possible, probable or definite)."""
        return self.attribution in RELATED_ATTRIBUTIONS


@dataclass(frozen=True)
class PsmaPet:
    """A PSMA-PET response assessment: total tumour volume (mL) and new lesions."""

    total_tumour_volume_mL: float
    new_lesions: bool
    recip: str | None = None


@dataclass(frozen=True)
class FollowUpVisit:
    """One follow-up visit (see the module docstring for the JSON)."""

    date: _dt.date
    visit: str = ""
    labs: Mapping[str, float] = field(default_factory=dict)
    adverse_events: tuple[AdverseEvent, ...] = ()
    prom: Mapping[str, float] = field(default_factory=dict)
    psma_pet: PsmaPet | None = None
    psa_pcwg3: str | None = None


@dataclass(frozen=True)
class Outcomes:
    """Per-patient outcomes (dates; None when not (yet) observed)."""

    last_follow_up_date: _dt.date
    psa_progression_date: _dt.date | None = None
    radiographic_progression_date: _dt.date | None = None
    death_date: _dt.date | None = None
    salvage_eligible: bool = False
    salvage_start_date: _dt.date | None = None
    version: int = FOLLOWUP_VERSION


@dataclass(frozen=True)
class PatientFollowUp:
    """Visits (in date order) and outcomes of one patient."""

    visits: tuple[FollowUpVisit, ...]
    outcomes: Outcomes | None

    def lab_series(self, key: str) -> list[tuple[_dt.date, float]]:
        """(date, value) of a laboratory value over the visits that have it."""
        return [(v.date, float(v.labs[key])) for v in self.visits if key in v.labs]

    def adverse_events(self) -> list[AdverseEvent]:
        """Distinct adverse events: one per (term, onset date), the highest grade reported kept."""
        best: dict[tuple[str, _dt.date], AdverseEvent] = {}
        for v in self.visits:
            for ae in v.adverse_events:
                key = (ae.term.strip().lower(), ae.onset_date)
                old = best.get(key)
                if old is None or ae.grade > old.grade or (ae.dlt and not old.dlt):
                    best[key] = AdverseEvent(ae.term, max(ae.grade, old.grade if old else 0), ae.attribution,
                                             ae.onset_date, ae.dlt or bool(old and old.dlt), ae.resolved_date)
        return sorted(best.values(), key=lambda a: (a.onset_date, a.term))

    def psma_pet_series(self) -> list[tuple[_dt.date, PsmaPet]]:
        """(date, PSMA-PET assessment) in date order."""
        return [(v.date, v.psma_pet) for v in self.visits if v.psma_pet is not None]


# -- parsing ------------------------------------------------------------------------------------

def _date(value: Any, where: str, *, optional: bool = False) -> _dt.date | None:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise InputError(f"must be an ISO date (YYYY-MM-DD), got {value!r}", source=where)
    try:
        return _dt.date.fromisoformat(value)
    except ValueError:
        raise InputError(f"must be an ISO date (YYYY-MM-DD), got {value!r}", source=where) from None


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise InputError(f"must be a finite number ≥ 0, got {value!r}", source=where)
    return float(value)


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise InputError(f"must be true or false, got {value!r}", source=where)
    return value


def _mapping(value: Any, where: str) -> Mapping:
    if not isinstance(value, Mapping):
        raise InputError(f"must be an object, got {type(value).__name__}", source=where)
    return value


def _keys(d: Mapping, allowed: Sequence[str], where: str) -> None:
    extra = sorted(set(d) - set(allowed))
    if extra:
        raise InputError(f"unknown key(s) {extra}; allowed: {list(allowed)}", source=where)


def _adverse_event(d: Any, where: str, visit_date: _dt.date) -> AdverseEvent:
    d = _mapping(d, where)
    _keys(d, ("term", "grade", "attribution", "onset_date", "dlt", "resolved_date", "note"), where)
    term = d.get("term")
    if not isinstance(term, str) or not term.strip():
        raise InputError("must be a CTCAE v5.0 term (non-empty text)", source=f"{where}.term")
    grade = d.get("grade")
    if isinstance(grade, bool) or not isinstance(grade, int) or not 1 <= grade <= 5:
        raise InputError(f"must be a CTCAE grade 1–5, got {grade!r}", source=f"{where}.grade")
    attribution = d.get("attribution")
    if attribution not in ATTRIBUTIONS:
        raise InputError(f"must be one of {ATTRIBUTIONS}, got {attribution!r}", source=f"{where}.attribution")
    onset = _date(d.get("onset_date"), f"{where}.onset_date")
    if onset > visit_date:
        raise InputError(f"onset {onset} is after the visit ({visit_date})", source=f"{where}.onset_date")
    dlt = _bool(d.get("dlt", False), f"{where}.dlt")
    if dlt and attribution not in RELATED_ATTRIBUTIONS:
        raise InputError(f"a dose-limiting toxicity must be treatment-related (possible, probable or definite), "
                         f"got attribution {attribution!r}", source=f"{where}.dlt")
    resolved = _date(d.get("resolved_date"), f"{where}.resolved_date", optional=True)
    if resolved is not None and resolved < onset:
        raise InputError(f"resolved {resolved} before onset {onset}", source=f"{where}.resolved_date")
    return AdverseEvent(term.strip(), grade, attribution, onset, dlt, resolved)


def _visit(d: Any, where: str) -> FollowUpVisit:
    d = _mapping(d, where)
    _keys(d, ("date", "visit", "labs", "adverse_events", "prom", "response", "note"), where)
    date = _date(d.get("date"), f"{where}.date")
    labs = _mapping(d.get("labs", {}), f"{where}.labs")
    _keys(labs, LAB_UNITS, f"{where}.labs")
    labs = {k: _number(v, f"{where}.labs.{k}") for k, v in labs.items() if v is not None}
    aes = d.get("adverse_events", [])
    if not isinstance(aes, list):
        raise InputError("must be a list", source=f"{where}.adverse_events")
    events = tuple(_adverse_event(a, f"{where}.adverse_events[{i}]", date) for i, a in enumerate(aes))
    prom = _mapping(d.get("prom", {}), f"{where}.prom")
    prom_v = {str(k): _number(v, f"{where}.prom.{k}") for k, v in prom.items() if v is not None}
    resp = _mapping(d.get("response", {}), f"{where}.response")
    _keys(resp, ("psma_pet", "psa_pcwg3"), f"{where}.response")
    pet = None
    if resp.get("psma_pet") is not None:
        w = f"{where}.response.psma_pet"
        p = _mapping(resp["psma_pet"], w)
        _keys(p, ("total_tumour_volume_mL", "new_lesions", "recip"), w)
        recip = p.get("recip")
        if recip is not None and recip not in RECIP_CATEGORIES:
            raise InputError(f"must be one of {RECIP_CATEGORIES}, got {recip!r}", source=f"{w}.recip")
        pet = PsmaPet(_number(p.get("total_tumour_volume_mL"), f"{w}.total_tumour_volume_mL"),
                      _bool(p.get("new_lesions", False), f"{w}.new_lesions"), recip)
    psa_cat = resp.get("psa_pcwg3")
    if psa_cat is not None and psa_cat not in PSA_CATEGORIES:
        raise InputError(f"must be one of {PSA_CATEGORIES}, got {psa_cat!r}", source=f"{where}.response.psa_pcwg3")
    visit = d.get("visit", "")
    if not isinstance(visit, str):
        raise InputError(f"must be text, got {visit!r}", source=f"{where}.visit")
    return FollowUpVisit(date, visit, labs, events, prom_v, pet, psa_cat)


def parse_follow_up(items: Any, *, source: str = "ledger") -> tuple[FollowUpVisit, ...]:
    """Validate the ``follow_up`` list; visits returned in date order (a repeated date is an error)."""
    if items is None:
        return ()
    if not isinstance(items, list):
        raise InputError(f"must be a list of visits, got {type(items).__name__}", source=f"{source}: follow_up")
    visits = [_visit(v, f"{source}: follow_up[{i}]") for i, v in enumerate(items)]
    seen: dict[_dt.date, int] = {}
    for i, v in enumerate(visits):
        if v.date in seen:
            raise InputError(f"date {v.date} repeats follow_up[{seen[v.date]}]; merge the two visits",
                             source=f"{source}: follow_up[{i}].date")
        seen[v.date] = i
    return tuple(sorted(visits, key=lambda v: v.date))


def parse_outcomes(d: Any, *, source: str = "ledger") -> Outcomes | None:
    """Validate the ``outcomes`` block (None when absent)."""
    if d is None:
        return None
    where = f"{source}: outcomes"
    d = _mapping(d, where)
    _keys(d, ("version", "psa_progression_date", "radiographic_progression_date", "death_date",
              "last_follow_up_date", "salvage_eligible", "salvage_start_date", "note"), where)
    version = d.get("version", FOLLOWUP_VERSION)
    if version != FOLLOWUP_VERSION:
        raise InputError(f"unsupported follow-up schema version {version!r} (expected {FOLLOWUP_VERSION})",
                         source=f"{where}.version")
    dates = {k: _date(d.get(k), f"{where}.{k}", optional=k != "last_follow_up_date")
             for k in ("psa_progression_date", "radiographic_progression_date", "death_date", "last_follow_up_date",
                       "salvage_start_date")}
    death, last = dates["death_date"], dates["last_follow_up_date"]
    for k in ("psa_progression_date", "radiographic_progression_date", "salvage_start_date"):
        if dates[k] is not None and death is not None and dates[k] > death:
            raise InputError(f"{dates[k]} is after the death date {death}", source=f"{where}.{k}")
        if dates[k] is not None and dates[k] > last:
            raise InputError(f"{dates[k]} is after the last follow-up {last}", source=f"{where}.{k}")
    if death is not None and death != last:
        raise InputError(f"with a death date ({death}) the last follow-up must be that date, got {last}",
                         source=f"{where}.last_follow_up_date")
    salvage = _bool(d.get("salvage_eligible", False), f"{where}.salvage_eligible")
    if dates["salvage_start_date"] is not None and not salvage:
        raise InputError("a salvage start date needs salvage_eligible true", source=f"{where}.salvage_start_date")
    return Outcomes(last, dates["psa_progression_date"], dates["radiographic_progression_date"], death, salvage,
                    dates["salvage_start_date"], version)


def follow_up_from_ledger(doc: Mapping[str, Any], *, source: str = "ledger",
                          start_date: _dt.date | None = None) -> PatientFollowUp:
    """Parse and cross-check the ``follow_up`` and ``outcomes`` blocks of a ledger document (dict).

    ``start_date`` (the first administration), when given: no outcome date may precede it (it
    would give a negative time to event). Baseline visits before it are allowed.
    """
    visits = parse_follow_up(doc.get("follow_up"), source=source)
    outcomes = parse_outcomes(doc.get("outcomes"), source=source)
    if outcomes is not None and visits and visits[-1].date > outcomes.last_follow_up_date:
        raise InputError(f"visit on {visits[-1].date} is after the last follow-up {outcomes.last_follow_up_date}",
                         source=f"{source}: outcomes.last_follow_up_date")
    if outcomes is not None and start_date is not None:
        for key in ("psa_progression_date", "radiographic_progression_date", "death_date", "last_follow_up_date"):
            when = getattr(outcomes, key)
            if when is not None and when < start_date:
                raise InputError(f"{when} is before the first administration ({start_date})",
                                 source=f"{source}: outcomes.{key}")
    return PatientFollowUp(visits, outcomes)


# -- writing (the inverse of parsing, for generators and tests) ---------------------------------

def _iso(d: _dt.date | None) -> str | None:
    return None if d is None else d.isoformat()


def follow_up_to_dict(visits: Sequence[FollowUpVisit]) -> list[dict]:
    """The JSON ``follow_up`` list of visits."""
    out = []
    for v in visits:
        item: dict[str, Any] = {"date": v.date.isoformat()}
        if v.visit:
            item["visit"] = v.visit
        if v.labs:
            item["labs"] = dict(v.labs)
        if v.adverse_events:
            item["adverse_events"] = [{"term": a.term, "grade": a.grade, "attribution": a.attribution,
                                       "onset_date": a.onset_date.isoformat(), "dlt": a.dlt,
                                       "resolved_date": _iso(a.resolved_date)} for a in v.adverse_events]
        if v.prom:
            item["prom"] = dict(v.prom)
        resp: dict[str, Any] = {}
        if v.psma_pet is not None:
            resp["psma_pet"] = {"total_tumour_volume_mL": v.psma_pet.total_tumour_volume_mL,
                                "new_lesions": v.psma_pet.new_lesions}
            if v.psma_pet.recip:
                resp["psma_pet"]["recip"] = v.psma_pet.recip
        if v.psa_pcwg3:
            resp["psa_pcwg3"] = v.psa_pcwg3
        if resp:
            item["response"] = resp
        out.append(item)
    return out


def outcomes_to_dict(o: Outcomes) -> dict:
    """The JSON ``outcomes`` block."""
    return {"version": o.version, "psa_progression_date": _iso(o.psa_progression_date),
            "radiographic_progression_date": _iso(o.radiographic_progression_date), "death_date": _iso(o.death_date),
            "last_follow_up_date": o.last_follow_up_date.isoformat(), "salvage_eligible": o.salvage_eligible,
            "salvage_start_date": _iso(o.salvage_start_date)}
