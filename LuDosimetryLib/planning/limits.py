"""Planning safety limits: maximum activity per cycle, cumulative kidney limits by risk stratum, cycle counts.

The values live in one data file, ``data/planning_limits.json``, each with its source and
verification status (most are **unverified**: commonly cited, the primary text not checked).
:func:`plan_next_cycle <LuDosimetryLib.planning.prescription.plan_next_cycle>` applies them by
default; a user may tighten a limit freely, and loosen or drop one only by naming it in
``PlanSettings.override_limits`` (``ludosimetry plan --override-limit NAME``).

:func:`ledger_limit_flags` says whether a ledger is already over a limit (cumulative kidney dose
or BED of the patient's stratum, an administered activity above the maximum); ``plan``, its
report, ``ludosimetry ledger check`` and the Planning module show these flags.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any

from ..errors import InputError
from ..units import BQ_PER_GBQ

if TYPE_CHECKING:  # pragma: no cover
    from .ledger import Ledger

__all__ = ["RISK_STRATA", "STRATUM_ALIASES", "canonical_stratum", "LIMIT_NAMES", "SourcedLimit", "PlanningLimits",
           "LimitFlag", "load_planning_limits", "ledger_risk_stratum", "ledger_limit_flags"]

_DATASET = "planning_limits.json"
RISK_STRATA = ("standard", "high")
#: Other names a ledger may use for a stratum (the trial's synthetic cohorts write "low").
STRATUM_ALIASES = {"low": "standard"}
#: Names of the default limits a user may override (``--override-limit NAME``).
LIMIT_NAMES = ("kidney_dose", "kidney_bed", "max_activity")


@dataclass(frozen=True)
class SourcedLimit:
    """One limit value (in the unit named), with its source and verification status."""

    value: float
    unit: str
    source: str
    status: str

    def cite(self) -> str:
        """``"source [status]"`` for messages and reports."""
        return f"{self.source} [{self.status}]"


@dataclass(frozen=True)
class PlanningLimits:
    """The planning limits of the reference data set.

    Attributes
    ----------
    kidney_dose_limit_Gy, kidney_bed_limit_Gy : dict of str to SourcedLimit
        Cumulative kidney absorbed dose and BED limits (Gy) by risk stratum.
    max_activity_per_cycle : SourcedLimit
        Maximum administered activity per cycle (value in Bq).
    standard_cycles, salvage_cycles : SourcedLimit
        Cycles in the protocol (6 standard + 3 salvage).
    default_risk_stratum : SourcedLimit
        Stratum used when the ledger names none (value is the stratum name).
    """

    kidney_dose_limit_Gy: dict[str, SourcedLimit]
    kidney_bed_limit_Gy: dict[str, SourcedLimit]
    max_activity_per_cycle: SourcedLimit
    standard_cycles: SourcedLimit
    salvage_cycles: SourcedLimit
    default_risk_stratum: SourcedLimit


def _entry(doc: Any, key: str, unit: str, scale: float = 1.0) -> SourcedLimit:
    e = doc.get(key) if isinstance(doc, dict) else None
    if not isinstance(e, dict) or "value" not in e:
        raise InputError(f"entry {key!r} is missing or has no value", source=_DATASET)
    v = e["value"]
    if unit != "stratum":
        if isinstance(v, bool) or not isinstance(v, int | float) or not v > 0:
            raise InputError(f"{key}: must be a number > 0, got {v!r}", source=_DATASET)
        v = float(v) * scale
    return SourcedLimit(v, unit, str(e.get("source", "")), str(e.get("status", "unverified")))


@functools.cache
def load_planning_limits() -> PlanningLimits:
    """The planning limits of ``data/planning_limits.json`` (loaded once, validated)."""
    doc = json.loads(resources.files("LuDosimetryLib").joinpath("data").joinpath(_DATASET).read_text("utf-8"))
    by = {}
    for key in ("kidney_absorbed_dose_limit_Gy", "kidney_bed_limit_Gy"):
        block = doc.get(key)
        by[key] = {s: _entry(block, s, "Gy") for s in RISK_STRATA}
    stratum = _entry(doc, "default_risk_stratum", "stratum")
    if stratum.value not in RISK_STRATA:
        raise InputError(f"default_risk_stratum must be one of {', '.join(RISK_STRATA)}", source=_DATASET)
    return PlanningLimits(by["kidney_absorbed_dose_limit_Gy"], by["kidney_bed_limit_Gy"],
                          _entry(doc, "max_activity_per_cycle_GBq", "Bq", BQ_PER_GBQ),
                          _entry(doc, "standard_cycles", "cycles"), _entry(doc, "salvage_cycles", "cycles"), stratum)


def canonical_stratum(name: str) -> str:
    """``standard`` or ``high`` for a stratum name or alias (``low`` → ``standard``).

    Raises
    ------
    InputError
        An unknown name.
    """
    s = STRATUM_ALIASES.get(name, name)
    if s not in RISK_STRATA:
        raise InputError(f"must be one of {', '.join([*RISK_STRATA, *STRATUM_ALIASES])}, got {name!r}",
                         source="risk_stratum")
    return s


def ledger_risk_stratum(ledger: Ledger, limits: PlanningLimits | None = None) -> tuple[str, str]:
    """The patient's risk stratum (``standard`` or ``high``) and its source (the ledger's, else the default)."""
    limits = limits or load_planning_limits()
    if ledger.risk_stratum:
        s = canonical_stratum(ledger.risk_stratum)
        alias = "" if s == ledger.risk_stratum else f" ({ledger.risk_stratum!r} = {s} risk)"
        return s, f"ledger patient.risk_stratum{alias}"
    d = limits.default_risk_stratum
    return str(d.value), f"no risk stratum in the ledger: {d.source}"


@dataclass(frozen=True)
class LimitFlag:
    """A limit the ledger already exceeds.

    Attributes
    ----------
    name : str
        ``kidney_dose``, ``kidney_bed`` or ``max_activity``.
    cycle : int
        The cycle at which it was found (cumulative limits: the latest cycle).
    value, limit : float
        The ledger's value and the limit, in ``unit`` (Gy or GBq).
    unit : str
    message : str
        One line naming the value, the limit, its stratum and source.
    """

    name: str
    cycle: int
    value: float
    limit: float
    unit: str
    message: str


def ledger_limit_flags(ledger: Ledger, *, limits: PlanningLimits | None = None,
                       risk_stratum: str | None = None) -> tuple[LimitFlag, ...]:
    """Limits of the reference data the ledger is already over (empty when within all).

    Parameters
    ----------
    ledger : Ledger
    limits : PlanningLimits, optional
        Default: :func:`load_planning_limits`.
    risk_stratum : {"standard", "high"}, optional
        Default: the ledger's, else the default stratum of the limits.
    """
    limits = limits or load_planning_limits()
    stratum = canonical_stratum(risk_stratum) if risk_stratum else ledger_risk_stratum(ledger, limits)[0]
    flags: list[LimitFlag] = []
    amax = limits.max_activity_per_cycle
    for c in ledger.cycles:
        if c.administered_activity_Bq > amax.value * (1 + 1e-9):
            flags.append(LimitFlag("max_activity", c.cycle, c.administered_activity_Bq / BQ_PER_GBQ,
                                   amax.value / BQ_PER_GBQ, "GBq",
                                   f"cycle {c.cycle}: administered {c.administered_activity_Bq / BQ_PER_GBQ:.4g} GBq "
                                   f"is above the maximum activity per cycle {amax.value / BQ_PER_GBQ:g} GBq "
                                   f"({amax.cite()})"))
    if ledger.cycles:
        last = ledger.cycles[-1]
        cum = last.cumulative.get("kidney")
        if cum is not None:
            lim = limits.kidney_dose_limit_Gy[stratum]
            if cum.dose_Gy > lim.value * (1 + 1e-9):
                flags.append(LimitFlag("kidney_dose", last.cycle, cum.dose_Gy, lim.value, "Gy",
                                       f"cumulative kidney absorbed dose {cum.dose_Gy:.4g} Gy after cycle {last.cycle} "
                                       f"is above the limit {lim.value:g} Gy ({stratum}-risk stratum; {lim.cite()})"))
            blim = limits.kidney_bed_limit_Gy[stratum]
            if cum.bed_Gy is not None and cum.bed_Gy > blim.value * (1 + 1e-9):
                flags.append(LimitFlag("kidney_bed", last.cycle, cum.bed_Gy, blim.value, "Gy",
                                       f"cumulative kidney BED {cum.bed_Gy:.4g} Gy after cycle {last.cycle} is above "
                                       f"the limit {blim.value:g} Gy ({stratum}-risk stratum; {blim.cite()})"))
    return tuple(flags)
