"""The per-patient dose ledger: one entry per administered cycle, kept from cycle to cycle.

A ledger is a JSON file (the record) with a CSV view (one row per cycle and organ). It holds,
for each cycle in order: index, kind (``standard`` 1–6, then up to 3 ``salvage``), administration
date, administered activity, the dosimetry method used, and for each organ (kidney, parotid,
submandibular, lacrimal, red marrow) the absorbed dose per activity d, the cycle's absorbed dose
D = A·d, the Lea–Catcheside factor G and BED = D(1 + G·D/(α/β)) where α/β is known, and the
cumulative dose and BED, each with its relative standard uncertainty (k = 1). A pre-therapy PET
prediction (d per organ) may be stored for cycle 1.

Uncertainty conventions (stated once, used everywhere in planning):

- every recorded value x with relative standard uncertainty u is the **median** of a
  log-normal distribution with σ_ln = √(ln(1 + u²));
- D = A·d: the activity is taken as exact, so u_D = u_d;
- BED of a cycle: linear propagation, u_BED = u_D · (1 + 2GD/(α/β)) / (1 + GD/(α/β));
- cumulative values: cycles independent, u_cum = √(Σ (uᵢ xᵢ)²) / Σ xᵢ.

Units inside: Bq, Gy, Gy/Bq. The JSON file is an edge: activities in GBq and d in Gy/GBq, with
the unit in each key. Files are written atomically; reading validates the whole ledger (order,
cycle counts, D = A·d, BED, cumulative sums) and names the entry and field at fault.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import ConsistencyError, InputError
from ..radiobiology import TissueParameters, bed_Gy, tissue_parameters
from ..results import write_csv, write_json
from ..units import BQ_PER_GBQ

__all__ = [
    "ORGANS", "DOSIMETRY_METHODS", "MEASURED_METHODS", "MAX_STANDARD_CYCLES", "MAX_SALVAGE_CYCLES",
    "LEDGER_CSV_COLUMNS", "OrganDosePerActivity", "OrganCycleDose", "CumulativeDose", "CycleEntry", "Ledger",
    "read_ledger", "write_ledger", "write_ledger_csv", "ledger_from_dict", "ledger_to_dict", "append_cycle",
    "new_ledger", "organ_tissue_parameters", "bed_rel_uncertainty", "ledger_rows",
]

ORGANS = ("kidney", "parotid", "submandibular", "lacrimal", "red_marrow")
#: ``none`` marks a cycle whose dosimetry is missing; its doses use a fallback d (stated in ``source``).
DOSIMETRY_METHODS = ("full_protocol", "reduced_protocol", "single_scan_population_prior", "pet_prediction", "none")
MEASURED_METHODS = ("full_protocol", "reduced_protocol", "single_scan_population_prior")
MAX_STANDARD_CYCLES = 6
MAX_SALVAGE_CYCLES = 3
FORMAT = "ludosimetry-ledger"
VERSION = 1
_REL_TOL = 1e-3  # tolerance of the consistency checks (values typed by hand with 4 digits)
_ABS_TOL_GY = 1e-4

LEDGER_CSV_COLUMNS = (
    "patient_id", "cycle", "kind", "administration_date", "administered_activity_GBq", "dosimetry_method", "organ",
    "dose_per_activity_Gy_per_GBq", "dose_per_activity_rel_uncertainty", "dose_Gy", "dose_rel_uncertainty",
    "g_factor", "bed_Gy", "bed_rel_uncertainty", "cumulative_dose_Gy", "cumulative_dose_rel_uncertainty",
    "cumulative_bed_Gy", "cumulative_bed_rel_uncertainty", "source")


@dataclass(frozen=True)
class OrganDosePerActivity:
    """Absorbed dose per administered activity of one organ, as measured or predicted.

    Attributes
    ----------
    dose_per_activity_Gy_per_Bq : float
        d (Gy/Bq).
    rel_uncertainty : float
        Relative standard uncertainty of d (k = 1).
    g_factor : float or None
        Lea–Catcheside G of the organ's dose-rate curve (dimensionless; independent of activity).
    source : str
        Where d came from.
    """

    dose_per_activity_Gy_per_Bq: float
    rel_uncertainty: float
    g_factor: float | None = None
    source: str = ""


@dataclass(frozen=True)
class OrganCycleDose:
    """One organ in one cycle: d, D = A·d, G, BED (Gy), each with its relative uncertainty."""

    dose_per_activity_Gy_per_Bq: float
    dose_per_activity_rel_uncertainty: float
    dose_Gy: float
    dose_rel_uncertainty: float
    g_factor: float | None = None
    bed_Gy: float | None = None
    bed_rel_uncertainty: float | None = None
    source: str = ""


@dataclass(frozen=True)
class CumulativeDose:
    """Cumulative absorbed dose and BED of one organ up to and including a cycle (Gy)."""

    dose_Gy: float
    dose_rel_uncertainty: float
    bed_Gy: float | None = None
    bed_rel_uncertainty: float | None = None


@dataclass(frozen=True)
class CycleEntry:
    """One administered cycle of the ledger.

    Attributes
    ----------
    cycle : int
        1-based position in the course (salvage cycles continue the count: 7, 8, 9 after 6).
    kind : {"standard", "salvage"}
    administration_date : datetime.date
    administered_activity_Bq : float
    dosimetry_method : str
        One of :data:`DOSIMETRY_METHODS`.
    organs : dict of str to OrganCycleDose
    cumulative : dict of str to CumulativeDose
    note : str
    """

    cycle: int
    kind: str
    administration_date: _dt.date
    administered_activity_Bq: float
    dosimetry_method: str
    organs: Mapping[str, OrganCycleDose] = field(default_factory=dict)
    cumulative: Mapping[str, CumulativeDose] = field(default_factory=dict)
    note: str = ""


@dataclass(frozen=True)
class Ledger:
    """A patient's ledger.

    Attributes
    ----------
    patient_id : str
    cycles : tuple of CycleEntry
    prediction : dict of str to OrganDosePerActivity
        Pre-therapy PET prediction of d per organ (for cycle 1); empty if none.
    escalation_group : str or None
        Phase-1 escalation group (see :mod:`.cohort_table`).
    radiobiology : dict
        Per organ ``{"alpha_beta_Gy": x, "repair_half_time_h": y}`` given by the user; kidney
        falls back to the reference data set (unverified), other organs have no BED without it.
    """

    patient_id: str
    cycles: tuple[CycleEntry, ...] = ()
    prediction: Mapping[str, OrganDosePerActivity] = field(default_factory=dict)
    escalation_group: str | None = None
    radiobiology: Mapping[str, Mapping[str, float]] = field(default_factory=dict)


def new_ledger(patient_id: str, *, prediction: Mapping[str, OrganDosePerActivity] | None = None,
               escalation_group: str | None = None,
               radiobiology: Mapping[str, Mapping[str, float]] | None = None) -> Ledger:
    """An empty ledger (no cycle yet), optionally with a PET prediction for cycle 1."""
    if not str(patient_id).strip():
        raise InputError("must not be empty", source="patient_id")
    led = Ledger(str(patient_id), (), dict(prediction or {}), escalation_group, dict(radiobiology or {}))
    _validate(led, "ledger")
    return led


def organ_tissue_parameters(ledger: Ledger, organ: str) -> TissueParameters | None:
    """α/β and T_rep of an organ for this ledger: user values, else kidney reference values, else None."""
    user = ledger.radiobiology.get(organ, {})
    if organ == "kidney" or ("alpha_beta_Gy" in user and "repair_half_time_h" in user):
        return tissue_parameters(organ, alpha_beta_Gy=user.get("alpha_beta_Gy"),
                                 repair_half_time_h=user.get("repair_half_time_h"))
    return None


def bed_rel_uncertainty(dose_Gy: float, g_factor: float, alpha_beta_Gy: float, dose_rel_uncertainty: float) -> float:
    """u_BED = u_D (1 + 2GD/(α/β)) / (1 + GD/(α/β)): linear propagation of D's uncertainty."""
    x = g_factor * dose_Gy / alpha_beta_Gy
    return dose_rel_uncertainty * (1.0 + 2.0 * x) / (1.0 + x)


def _cum_u(pairs: list[tuple[float, float]]) -> float:
    total = sum(x for x, _ in pairs)
    return math.sqrt(sum((x * u) ** 2 for x, u in pairs)) / total if total > 0 else 0.0


def append_cycle(ledger: Ledger, *, administration_date: _dt.date, administered_activity_Bq: float,
                 dosimetry_method: str, dose_per_activity: Mapping[str, OrganDosePerActivity] | None = None,
                 kind: str = "standard", note: str = "") -> Ledger:
    """A new ledger with one more cycle; doses, BED and cumulative values computed.

    Parameters
    ----------
    ledger : Ledger
    administration_date : datetime.date
    administered_activity_Bq : float
        Net administered activity (Bq).
    dosimetry_method : str
        One of :data:`DOSIMETRY_METHODS`. With ``"none"`` (dosimetry missing) each organ's d is
        the documented fallback: the last measured cycle's d, else the PET prediction; its source
        says so.
    dose_per_activity : dict of str to OrganDosePerActivity
        d per organ (Gy/Bq) for this cycle; ``kidney`` required unless the method is ``"none"``.
    kind : {"standard", "salvage"}

    Raises
    ------
    InputError, ConsistencyError
        Bad values, a seventh standard cycle, a fourth salvage cycle, a date before the last.
    """
    if dosimetry_method not in DOSIMETRY_METHODS:
        raise InputError(f"must be one of {', '.join(DOSIMETRY_METHODS)}, got {dosimetry_method!r}",
                         source="dosimetry_method")
    a = float(administered_activity_Bq)
    if not (math.isfinite(a) and a > 0):
        raise InputError(f"must be finite and > 0 Bq, got {administered_activity_Bq}",
                         source="administered_activity_Bq")
    if dosimetry_method == "none":
        from .prescription import select_dose_per_activity  # the one fallback rule

        per = {}
        for organ in ORGANS:
            try:
                sel = select_dose_per_activity(ledger, organ)
            except InputError:
                continue
            per[organ] = OrganDosePerActivity(sel.dose_per_activity_Gy_per_Bq, sel.rel_uncertainty, sel.g_factor,
                                              f"no dosimetry for this cycle; fallback: {sel.source}")
        if "kidney" not in per:
            raise InputError("cycle has no dosimetry and the ledger has no earlier kidney d to fall back on",
                             source="dosimetry_method")
    else:
        per = dict(dose_per_activity or {})
        if "kidney" not in per:
            raise InputError("kidney d (Gy/Bq) is required for a cycle with dosimetry", source="dose_per_activity")
    prev = ledger.cycles[-1].cumulative if ledger.cycles else {}
    organs, cumulative = {}, {}
    for organ, o in per.items():
        if organ not in ORGANS:
            raise InputError(f"unknown organ {organ!r} (expected one of {', '.join(ORGANS)})",
                             source="dose_per_activity")
        d = float(o.dose_per_activity_Gy_per_Bq)
        dose = a * d
        params = organ_tissue_parameters(ledger, organ)
        bed = bu = None
        if params is not None and o.g_factor is not None:
            bed = bed_Gy(dose, o.g_factor, params.alpha_beta_Gy)
            bu = bed_rel_uncertainty(dose, o.g_factor, params.alpha_beta_Gy, o.rel_uncertainty)
        organs[organ] = OrganCycleDose(d, o.rel_uncertainty, dose, o.rel_uncertainty, o.g_factor, bed, bu, o.source)
    for organ in dict.fromkeys([*prev, *organs]):
        with_organ = [c.organs[organ] for c in ledger.cycles if organ in c.organs]
        if organ in organs:
            with_organ.append(organs[organ])
        has_bed = all(o.bed_Gy is not None for o in with_organ)
        doses = [(o.dose_Gy, o.dose_rel_uncertainty) for o in with_organ]
        beds = [(o.bed_Gy, o.bed_rel_uncertainty or 0.0) for o in with_organ] if has_bed else []
        cumulative[organ] = CumulativeDose(sum(x for x, _ in doses), _cum_u(doses),
                                           sum(x for x, _ in beds) if has_bed else None,
                                           _cum_u(beds) if has_bed else None)
    entry = CycleEntry(len(ledger.cycles) + 1, kind, administration_date, a, dosimetry_method, organs, cumulative, note)
    new = replace(ledger, cycles=(*ledger.cycles, entry))
    _validate(new, "ledger")
    return new


# --- validation --------------------------------------------------------------------------------
def _close(a: float, b: float) -> bool:
    return abs(a - b) <= max(_ABS_TOL_GY, _REL_TOL * max(abs(a), abs(b)))


def _validate(led: Ledger, src: str) -> None:
    n_std = n_salv = 0
    last_date = None
    for pos, c in enumerate(led.cycles):
        where = f"{src}: cycles[{pos}] (cycle {c.cycle})"
        if c.cycle != pos + 1:
            raise ConsistencyError(f"cycle is {c.cycle} but entry {pos + 1} in order was expected (cycles must be "
                                   f"listed 1, 2, 3, … without gaps or repeats)", source=f"{where}.cycle")
        if c.kind not in ("standard", "salvage"):
            raise ConsistencyError(f"kind must be 'standard' or 'salvage', got {c.kind!r}", source=f"{where}.kind")
        if c.kind == "standard":
            if n_salv:
                raise ConsistencyError("a standard cycle cannot follow a salvage cycle", source=f"{where}.kind")
            n_std += 1
            if n_std > MAX_STANDARD_CYCLES:
                raise ConsistencyError(f"more than {MAX_STANDARD_CYCLES} standard cycles", source=f"{where}.kind")
        else:
            n_salv += 1
            if n_salv > MAX_SALVAGE_CYCLES:
                raise ConsistencyError(f"more than {MAX_SALVAGE_CYCLES} salvage cycles", source=f"{where}.kind")
        if last_date is not None and c.administration_date <= last_date:
            raise ConsistencyError(f"administration date {c.administration_date} is not after the previous cycle's "
                                   f"{last_date} (cycles out of order?)", source=f"{where}.administration_date")
        last_date = c.administration_date
        if not (math.isfinite(c.administered_activity_Bq) and c.administered_activity_Bq > 0):
            raise ConsistencyError(f"must be > 0, got {c.administered_activity_Bq / BQ_PER_GBQ} GBq",
                                   source=f"{where}.administered_activity_GBq")
        if c.dosimetry_method not in DOSIMETRY_METHODS:
            raise ConsistencyError(f"must be one of {', '.join(DOSIMETRY_METHODS)}, got {c.dosimetry_method!r}",
                                   source=f"{where}.dosimetry_method")
        if "kidney" not in c.organs:
            raise ConsistencyError("kidney doses are missing (every cycle needs them; for missing dosimetry use "
                                   "method 'none' with the fallback d)", source=f"{where}.organs")
        for organ, o in c.organs.items():
            f = f"{where}.organs.{organ}"
            if organ not in ORGANS:
                raise ConsistencyError(f"unknown organ (expected one of {', '.join(ORGANS)})", source=f)
            _check_value(o.dose_per_activity_Gy_per_Bq, f"{f}.dose_per_activity_Gy_per_GBq")
            _check_u(o.dose_per_activity_rel_uncertainty, f"{f}.dose_per_activity_rel_uncertainty")
            _check_u(o.dose_rel_uncertainty, f"{f}.dose_rel_uncertainty")
            expect = c.administered_activity_Bq * o.dose_per_activity_Gy_per_Bq
            if not _close(o.dose_Gy, expect):
                raise ConsistencyError(
                    f"dose_Gy is {o.dose_Gy:.4g} Gy but activity × d = "
                    f"{c.administered_activity_Bq / BQ_PER_GBQ:.4g} GBq × "
                    f"{o.dose_per_activity_Gy_per_Bq * BQ_PER_GBQ:.4g} Gy/GBq = {expect:.4g} Gy "
                    "(activity and dose do not match)", source=f"{f}.dose_Gy")
            if o.g_factor is not None and not (0 < o.g_factor <= 1):
                raise ConsistencyError(f"must be in (0, 1], got {o.g_factor}", source=f"{f}.g_factor")
            if o.bed_Gy is not None:
                params = organ_tissue_parameters(led, organ)
                if params is None or o.g_factor is None:
                    raise ConsistencyError("bed_Gy given without g_factor and α/β, T_rep for this organ "
                                           "(ledger 'radiobiology' block)", source=f"{f}.bed_Gy")
                exp_bed = bed_Gy(o.dose_Gy, o.g_factor, params.alpha_beta_Gy)
                if not _close(o.bed_Gy, exp_bed):
                    raise ConsistencyError(f"bed_Gy is {o.bed_Gy:.4g} Gy but D(1 + G·D/(α/β)) = {exp_bed:.4g} Gy "
                                           f"(α/β = {params.alpha_beta_Gy:g} Gy)", source=f"{f}.bed_Gy")
        for organ in dict.fromkeys([*c.organs, *(led.cycles[pos - 1].cumulative if pos else {})]):
            f = f"{where}.cumulative.{organ}"
            cum = c.cumulative.get(organ)
            if cum is None:
                raise ConsistencyError("cumulative entry is missing", source=f)
            doses = [x.organs[organ].dose_Gy for x in led.cycles[:pos + 1] if organ in x.organs]
            if not _close(cum.dose_Gy, sum(doses)):
                raise ConsistencyError(f"dose_Gy is {cum.dose_Gy:.4g} Gy but the sum over cycles 1–{c.cycle} is "
                                       f"{sum(doses):.4g} Gy", source=f"{f}.dose_Gy")
            if cum.bed_Gy is not None:
                beds = [x.organs[organ].bed_Gy for x in led.cycles[:pos + 1] if organ in x.organs]
                if any(b is None for b in beds):
                    raise ConsistencyError("bed_Gy given but a cycle of this organ has no BED", source=f"{f}.bed_Gy")
                if not _close(cum.bed_Gy, sum(beds)):
                    raise ConsistencyError(f"bed_Gy is {cum.bed_Gy:.4g} Gy but the sum over cycles 1–{c.cycle} is "
                                           f"{sum(beds):.4g} Gy", source=f"{f}.bed_Gy")
    for organ, o in led.prediction.items():
        f = f"{src}: prediction.{organ}"
        if organ not in ORGANS:
            raise ConsistencyError(f"unknown organ (expected one of {', '.join(ORGANS)})", source=f)
        _check_value(o.dose_per_activity_Gy_per_Bq, f"{f}.dose_per_activity_Gy_per_GBq")
        _check_u(o.rel_uncertainty, f"{f}.rel_uncertainty")


def _check_value(v: float, src: str) -> None:
    if not (isinstance(v, int | float) and math.isfinite(v) and v > 0):
        raise ConsistencyError(f"must be a finite number > 0, got {v!r}", source=src)


def _check_u(v: float, src: str) -> None:
    if not (isinstance(v, int | float) and math.isfinite(v) and v >= 0):
        raise ConsistencyError(f"must be a finite relative uncertainty ≥ 0, got {v!r}", source=src)


# --- JSON --------------------------------------------------------------------------------------
def _per_gbq(x: float | None) -> float | None:
    return None if x is None else x * BQ_PER_GBQ


def ledger_to_dict(led: Ledger) -> dict[str, Any]:
    """The JSON document of a ledger (activities in GBq, d in Gy/GBq)."""
    def organ(o: OrganCycleDose) -> dict:
        return {"dose_per_activity_Gy_per_GBq": _per_gbq(o.dose_per_activity_Gy_per_Bq),
                "dose_per_activity_rel_uncertainty": o.dose_per_activity_rel_uncertainty, "dose_Gy": o.dose_Gy,
                "dose_rel_uncertainty": o.dose_rel_uncertainty, "g_factor": o.g_factor, "bed_Gy": o.bed_Gy,
                "bed_rel_uncertainty": o.bed_rel_uncertainty, "source": o.source}

    return {
        "format": FORMAT, "version": VERSION, "patient_id": led.patient_id,
        "escalation_group": led.escalation_group, "radiobiology": dict(led.radiobiology),
        "prediction": {k: {"dose_per_activity_Gy_per_GBq": _per_gbq(o.dose_per_activity_Gy_per_Bq),
                           "rel_uncertainty": o.rel_uncertainty, "g_factor": o.g_factor, "source": o.source}
                       for k, o in led.prediction.items()},
        "cycles": [{"cycle": c.cycle, "kind": c.kind, "administration_date": c.administration_date.isoformat(),
                    "administered_activity_GBq": c.administered_activity_Bq / BQ_PER_GBQ,
                    "dosimetry_method": c.dosimetry_method, "note": c.note,
                    "organs": {k: organ(o) for k, o in c.organs.items()},
                    "cumulative": {k: {"dose_Gy": u.dose_Gy, "dose_rel_uncertainty": u.dose_rel_uncertainty,
                                       "bed_Gy": u.bed_Gy, "bed_rel_uncertainty": u.bed_rel_uncertainty}
                                   for k, u in c.cumulative.items()}}
                   for c in led.cycles],
    }


def _get(d: Mapping, key: str, where: str, kind: type | tuple = (int, float), *, optional: bool = False):
    if key not in d or d[key] is None:
        if optional:
            return None
        raise InputError(f"field {key!r} is missing", source=f"{where}.{key}")
    v = d[key]
    if kind in ((int, float), float) and (isinstance(v, bool) or not isinstance(v, int | float)):
        raise InputError(f"must be a number, got {v!r}", source=f"{where}.{key}")
    if kind is str and not isinstance(v, str):
        raise InputError(f"must be text, got {v!r}", source=f"{where}.{key}")
    return v


def ledger_from_dict(doc: Mapping[str, Any], *, source: str = "ledger") -> Ledger:
    """Parse and validate a ledger document; errors name the entry and field at fault."""
    if not isinstance(doc, Mapping) or doc.get("format") != FORMAT:
        raise InputError(f"not a ledger: expected \"format\": \"{FORMAT}\"", source=source)
    if doc.get("version") != VERSION:
        raise InputError(f"unsupported ledger version {doc.get('version')!r} (expected {VERSION})",
                         source=f"{source}: version")
    pid = _get(doc, "patient_id", source, str)
    radio = doc.get("radiobiology") or {}
    if not isinstance(radio, Mapping):
        raise InputError("must be an object organ → {alpha_beta_Gy, repair_half_time_h}",
                         source=f"{source}: radiobiology")
    pred = {}
    for organ, o in (doc.get("prediction") or {}).items():
        w = f"{source}: prediction.{organ}"
        pred[organ] = OrganDosePerActivity(_get(o, "dose_per_activity_Gy_per_GBq", w) / BQ_PER_GBQ,
                                           _get(o, "rel_uncertainty", w), _get(o, "g_factor", w, optional=True),
                                           o.get("source", "") or "PET prediction")
    cycles = []
    if not isinstance(doc.get("cycles") or [], list):
        raise InputError("must be a list of cycle entries", source=f"{source}: cycles")
    for pos, c in enumerate(doc.get("cycles") or []):
        w = f"{source}: cycles[{pos}]"
        for key in ("organs", "cumulative"):
            if not isinstance(c, Mapping) or not isinstance(c.get(key) or {}, Mapping):
                found = type(c.get(key) if isinstance(c, Mapping) else c).__name__
                raise InputError(f"must be an object organ → values, got {found}", source=f"{w}.{key}")
        if isinstance(c.get("cycle"), bool) or not isinstance(c.get("cycle"), int):
            raise InputError(f"must be an integer, got {c.get('cycle')!r}", source=f"{w}.cycle")
        try:
            date = _dt.date.fromisoformat(_get(c, "administration_date", w, str))
        except ValueError:
            raise InputError(f"must be an ISO date YYYY-MM-DD, got {c['administration_date']!r}",
                             source=f"{w}.administration_date") from None
        organs = {}
        for organ, o in (c.get("organs") or {}).items():
            wo = f"{w}.organs.{organ}"
            d_gbq = _get(o, "dose_per_activity_Gy_per_GBq", wo)
            organs[organ] = OrganCycleDose(
                d_gbq / BQ_PER_GBQ, _get(o, "dose_per_activity_rel_uncertainty", wo), _get(o, "dose_Gy", wo),
                _get(o, "dose_rel_uncertainty", wo), _get(o, "g_factor", wo, optional=True),
                _get(o, "bed_Gy", wo, optional=True), _get(o, "bed_rel_uncertainty", wo, optional=True),
                o.get("source", "") or "")
        cum = {}
        for organ, o in (c.get("cumulative") or {}).items():
            wo = f"{w}.cumulative.{organ}"
            cum[organ] = CumulativeDose(_get(o, "dose_Gy", wo), _get(o, "dose_rel_uncertainty", wo),
                                        _get(o, "bed_Gy", wo, optional=True),
                                        _get(o, "bed_rel_uncertainty", wo, optional=True))
        cycles.append(CycleEntry(int(_get(c, "cycle", w)), str(c.get("kind", "standard")), date,
                                 _get(c, "administered_activity_GBq", w) * BQ_PER_GBQ,
                                 str(_get(c, "dosimetry_method", w, str)), organs, cum, str(c.get("note", "") or "")))
    led = Ledger(pid, tuple(cycles), pred, doc.get("escalation_group"),
                 {k: dict(v) for k, v in radio.items()})
    _validate(led, source)
    return led


def read_ledger(path: str | Path) -> Ledger:
    """Read and validate a ledger JSON file.

    Raises
    ------
    InputError
        Unreadable file, not JSON, missing fields.
    ConsistencyError
        A ledger edited into inconsistency (cumulative ≠ sum, cycles out of order, activity × d ≠
        dose, …); the message names the entry and the field.
    """
    p = Path(path)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"cannot read ledger: {exc.strerror}", source=str(p)) from None
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON: {exc.msg} at line {exc.lineno}", source=str(p)) from None
    return ledger_from_dict(doc, source=p.name)


def write_ledger(path: str | Path, led: Ledger) -> Path:
    """Write a ledger as JSON, atomically (validated first)."""
    _validate(led, str(path))
    return write_json(path, ledger_to_dict(led))


def ledger_rows(led: Ledger) -> list[dict[str, Any]]:
    """The CSV view: one row per cycle and organ (columns :data:`LEDGER_CSV_COLUMNS`)."""
    rows = []
    for c in led.cycles:
        for organ, o in c.organs.items():
            cum = c.cumulative.get(organ)
            rows.append({
                "patient_id": led.patient_id, "cycle": c.cycle, "kind": c.kind,
                "administration_date": c.administration_date.isoformat(),
                "administered_activity_GBq": c.administered_activity_Bq / BQ_PER_GBQ,
                "dosimetry_method": c.dosimetry_method, "organ": organ,
                "dose_per_activity_Gy_per_GBq": o.dose_per_activity_Gy_per_Bq * BQ_PER_GBQ,
                "dose_per_activity_rel_uncertainty": o.dose_per_activity_rel_uncertainty, "dose_Gy": o.dose_Gy,
                "dose_rel_uncertainty": o.dose_rel_uncertainty, "g_factor": o.g_factor, "bed_Gy": o.bed_Gy,
                "bed_rel_uncertainty": o.bed_rel_uncertainty,
                "cumulative_dose_Gy": cum.dose_Gy if cum else None,
                "cumulative_dose_rel_uncertainty": cum.dose_rel_uncertainty if cum else None,
                "cumulative_bed_Gy": cum.bed_Gy if cum else None,
                "cumulative_bed_rel_uncertainty": cum.bed_rel_uncertainty if cum else None,
                "source": o.source})
    return rows


def write_ledger_csv(path: str | Path, led: Ledger) -> Path:
    """Write the CSV view of a ledger, atomically."""
    return write_csv(path, ledger_rows(led), LEDGER_CSV_COLUMNS, extra_columns=False)
