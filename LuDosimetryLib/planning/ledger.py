"""The per-patient dose ledger: one entry per administered cycle, kept from cycle to cycle.

A ledger is a JSON file (the record) with a CSV view (one row per cycle and organ). It holds,
for each cycle in order: index, kind (``standard`` 1–6, then up to 3 ``salvage``), administration
date, administered activity, the dosimetry method used, and for each organ (kidney, parotid,
submandibular, lacrimal, red marrow, liver, spleen) the absorbed dose per activity d, the cycle's absorbed dose
D = A·d, the Lea–Catcheside factor G and BED = D(1 + G·D/(α/β)) where α/β is known, and the
cumulative dose and BED, each with its relative standard uncertainty (k = 1). A pre-therapy PET
prediction (d per organ) may be stored for cycle 1.

Uncertainty conventions (stated once, used everywhere in planning):

- every recorded value x with relative standard uncertainty u is the **median** of a
  log-normal distribution with σ_ln = √(ln(1 + u²));
- D = A·d: the activity is taken as exact, so u_D = u_d;
- BED of a cycle: linear propagation, u_BED = u_D · (1 + 2GD/(α/β)) / (1 + GD/(α/β));
- each cycle's relative uncertainty has a **shared** part s (calibration, method: the same
  error in every cycle) and an **independent** part i (counting, fit, segmentation of that
  cycle), u² = s² + i²; BED components scale with the same factor as u_BED;
- cumulative values: shared parts fully correlated across cycles, independent parts in
  quadrature: s_cum = Σ sᵢxᵢ / Σ xᵢ, i_cum = √(Σ (iᵢ xᵢ)²) / Σ xᵢ, u_cum = √(s_cum² + i_cum²)
  (:func:`cumulative_rel_uncertainty`);
- a version-1 ledger (no split) is read **conservatively**: each cycle's uncertainty taken as
  wholly shared, its cumulative uncertainties recomputed so (a warning says so).

Version 2 adds a ``patient`` block (risk stratum, phase, escalation group), per-cycle lesions and
provenance, and carries ``follow_up`` and ``outcomes`` (validated by ``LuDosimetryLib.trial``)
through unmodified.

Units inside: Bq, Gy, Gy/Bq. The JSON file is an edge: activities in GBq and d in Gy/GBq, with
the unit in each key. Files are written atomically; reading validates the whole ledger (order,
cycle counts, D = A·d, BED, cumulative sums) and names the entry and field at fault.
"""

from __future__ import annotations

import copy
import datetime as _dt
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import ConsistencyError, InputError
from ..radiobiology import TissueParameters, bed_Gy, tissue_parameters
from ..results import write_csv, write_json
from ..units import BQ_PER_GBQ
from .limits import RISK_STRATA, STRATUM_ALIASES, load_planning_limits

__all__ = [
    "ORGANS", "DOSIMETRY_METHODS", "MEASURED_METHODS", "MAX_STANDARD_CYCLES", "MAX_SALVAGE_CYCLES", "PHASES",
    "LEDGER_CSV_COLUMNS", "OrganDosePerActivity", "OrganCycleDose", "CumulativeDose", "LesionDose", "CycleEntry",
    "Ledger", "read_ledger", "write_ledger", "write_ledger_csv", "ledger_from_dict", "ledger_to_dict",
    "append_cycle", "new_ledger", "organ_tissue_parameters", "bed_rel_uncertainty", "bed_sensitivity",
    "cumulative_rel_uncertainty", "ledger_rows", "VERSION",
]

#: Organs at risk the ledger keeps (kidney required in every cycle).
ORGANS = ("kidney", "parotid", "submandibular", "lacrimal", "red_marrow", "liver", "spleen")
#: ``none`` marks a cycle whose dosimetry is missing; its doses use a fallback d (stated in ``source``).
DOSIMETRY_METHODS = ("full_protocol", "reduced_protocol", "single_scan_population_prior", "pet_prediction", "none")
MEASURED_METHODS = ("full_protocol", "reduced_protocol", "single_scan_population_prior")
#: Protocol cycle counts, from the planning reference data (``data/planning_limits.json``).
MAX_STANDARD_CYCLES = int(load_planning_limits().standard_cycles.value)
MAX_SALVAGE_CYCLES = int(load_planning_limits().salvage_cycles.value)
PHASES = (1, 2)
FORMAT = "ludosimetry-ledger"
VERSION = 2
_READ_VERSIONS = (1, 2)
_REL_TOL = 1e-3  # tolerance of the consistency checks (values typed by hand with 4 digits)
_ABS_TOL_GY = 1e-4

LEDGER_CSV_COLUMNS = (
    "patient_id", "cycle", "kind", "administration_date", "administered_activity_GBq", "dosimetry_method",
    "region_kind", "organ", "dose_per_activity_Gy_per_GBq", "dose_per_activity_rel_uncertainty", "dose_Gy",
    "dose_rel_uncertainty", "dose_rel_uncertainty_shared", "dose_rel_uncertainty_independent", "g_factor", "bed_Gy",
    "bed_rel_uncertainty", "cumulative_dose_Gy", "cumulative_dose_rel_uncertainty",
    "cumulative_dose_rel_uncertainty_shared", "cumulative_bed_Gy", "cumulative_bed_rel_uncertainty", "source")


def _independent(total: float, shared: float) -> float:
    return math.sqrt(max(total * total - shared * shared, 0.0))


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
    shared_rel_uncertainty : float or None
        The part of ``rel_uncertainty`` shared by all cycles (calibration, method), ≤ rel_uncertainty;
        the rest, √(u² − s²), is independent between cycles. None: all of it is taken as shared
        (the conservative reading).
    """

    dose_per_activity_Gy_per_Bq: float
    rel_uncertainty: float
    g_factor: float | None = None
    source: str = ""
    shared_rel_uncertainty: float | None = None


@dataclass(frozen=True)
class OrganCycleDose:
    """One organ in one cycle: d, D = A·d, G, BED (Gy), each with its relative uncertainty.

    ``dose_rel_uncertainty_shared`` is the shared part s of ``dose_rel_uncertainty`` (None: all
    shared); the independent part is :attr:`dose_rel_uncertainty_independent`. BED components are
    the dose components times :func:`bed_sensitivity`.
    """

    dose_per_activity_Gy_per_Bq: float
    dose_per_activity_rel_uncertainty: float
    dose_Gy: float
    dose_rel_uncertainty: float
    g_factor: float | None = None
    bed_Gy: float | None = None
    bed_rel_uncertainty: float | None = None
    source: str = ""
    dose_rel_uncertainty_shared: float | None = None

    @property
    def shared(self) -> float:
        """Shared relative uncertainty of the dose (all of it when not split)."""
        return self.dose_rel_uncertainty if self.dose_rel_uncertainty_shared is None \
            else self.dose_rel_uncertainty_shared

    @property
    def dose_rel_uncertainty_independent(self) -> float:
        """Independent relative uncertainty of the dose: √(u² − s²)."""
        return _independent(self.dose_rel_uncertainty, self.shared)

    @property
    def bed_factor(self) -> float:
        """u_BED / u_D of this cycle (1 when there is no BED or no dose uncertainty)."""
        if self.bed_rel_uncertainty is None or self.dose_rel_uncertainty <= 0:
            return 1.0
        return self.bed_rel_uncertainty / self.dose_rel_uncertainty


@dataclass(frozen=True)
class CumulativeDose:
    """Cumulative absorbed dose and BED of one organ up to and including a cycle (Gy).

    ``*_shared`` are the shared (fully correlated) parts of the relative uncertainties.
    """

    dose_Gy: float
    dose_rel_uncertainty: float
    bed_Gy: float | None = None
    bed_rel_uncertainty: float | None = None
    dose_rel_uncertainty_shared: float | None = None
    bed_rel_uncertainty_shared: float | None = None


@dataclass(frozen=True)
class LesionDose:
    """One lesion in one cycle (from the results folder's ``doses.csv``; no cumulative sum is kept)."""

    dose_per_activity_Gy_per_Bq: float
    dose_Gy: float
    dose_rel_uncertainty: float | None = None
    volume_mL: float | None = None
    dose_method: str = ""
    source: str = ""


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
    lesions : dict of str to LesionDose
    provenance : dict of str to str
        Where the cycle's numbers came from (results folder, file hashes), as recorded by
        ``ludosimetry ledger add``.
    """

    cycle: int
    kind: str
    administration_date: _dt.date
    administered_activity_Bq: float
    dosimetry_method: str
    organs: Mapping[str, OrganCycleDose] = field(default_factory=dict)
    cumulative: Mapping[str, CumulativeDose] = field(default_factory=dict)
    note: str = ""
    lesions: Mapping[str, LesionDose] = field(default_factory=dict)
    provenance: Mapping[str, str] = field(default_factory=dict)


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
    risk_stratum : {"standard", "high", "low"} or None
        Toxicity-risk stratum (selects the kidney limits; ``low`` is read as standard risk);
        None: the planning default (high).
    phase : {1, 2} or None
        Trial phase of the patient (JSON: ``"1"`` or ``"2"``; numbers accepted).
    follow_up : tuple of dict
        Follow-up records (labs, adverse events, DLT flag, PROMs, response), kept as read and
        written back unmodified; ``LuDosimetryLib.trial`` validates them.
    outcomes : dict or None
        Progression dates, salvage eligibility, death / last follow-up; passed through likewise.
    read_warnings : tuple of str
        What reading the file assumed (a version-1 ledger's uncertainty reading).
    """

    patient_id: str
    cycles: tuple[CycleEntry, ...] = ()
    prediction: Mapping[str, OrganDosePerActivity] = field(default_factory=dict)
    escalation_group: str | None = None
    radiobiology: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    risk_stratum: str | None = None
    phase: int | None = None
    follow_up: tuple[Any, ...] = ()
    outcomes: Mapping[str, Any] | None = None
    read_warnings: tuple[str, ...] = ()


def new_ledger(patient_id: str, *, prediction: Mapping[str, OrganDosePerActivity] | None = None,
               escalation_group: str | None = None,
               radiobiology: Mapping[str, Mapping[str, float]] | None = None,
               risk_stratum: str | None = None, phase: int | None = None) -> Ledger:
    """An empty ledger (no cycle yet), optionally with a PET prediction for cycle 1."""
    if not str(patient_id).strip():
        raise InputError("must not be empty", source="patient_id")
    led = Ledger(str(patient_id), (), dict(prediction or {}), escalation_group, dict(radiobiology or {}),
                 risk_stratum, phase)
    _validate(led, "ledger")
    return led


def organ_tissue_parameters(ledger: Ledger, organ: str) -> TissueParameters | None:
    """α/β and T_rep of an organ for this ledger: user values, else kidney reference values, else None."""
    user = ledger.radiobiology.get(organ, {})
    if organ == "kidney" or ("alpha_beta_Gy" in user and "repair_half_time_h" in user):
        return tissue_parameters(organ, alpha_beta_Gy=user.get("alpha_beta_Gy"),
                                 repair_half_time_h=user.get("repair_half_time_h"))
    return None


def bed_sensitivity(dose_Gy: float, g_factor: float, alpha_beta_Gy: float) -> float:
    """(dBED/BED)/(dD/D) = (1 + 2GD/(α/β)) / (1 + GD/(α/β)) (dimensionless, between 1 and 2)."""
    x = g_factor * dose_Gy / alpha_beta_Gy
    return (1.0 + 2.0 * x) / (1.0 + x)


def bed_rel_uncertainty(dose_Gy: float, g_factor: float, alpha_beta_Gy: float, dose_rel_uncertainty: float) -> float:
    """u_BED = u_D (1 + 2GD/(α/β)) / (1 + GD/(α/β)): linear propagation of D's uncertainty."""
    return dose_rel_uncertainty * bed_sensitivity(dose_Gy, g_factor, alpha_beta_Gy)


def cumulative_rel_uncertainty(values: Sequence[float], shared: Sequence[float],
                               independent: Sequence[float]) -> tuple[float, float, float]:
    """Relative standard uncertainty of a sum of cycle values with shared and independent parts.

    Shared parts are fully correlated across cycles (the same calibration and method error in
    each), independent parts uncorrelated::

        s = Σ sᵢxᵢ / Σxᵢ,   i = √(Σ (iᵢxᵢ)²) / Σxᵢ,   u = √(s² + i²)

    Parameters
    ----------
    values : sequence of float
        The cycles' values xᵢ (Gy), ≥ 0.
    shared, independent : sequence of float
        Their shared and independent relative standard uncertainties (k = 1).

    Returns
    -------
    (u, s, i) : tuple of float
        Total, shared and independent relative uncertainty of Σxᵢ (0, 0, 0 when Σxᵢ = 0).

    Examples
    --------
    Six equal cycles with 10 % shared uncertainty only: u = 10 %. With 15 % independent only:
    u = 15 %/√6 = 6.12 %.
    """
    total = float(sum(values))
    if total <= 0:
        return 0.0, 0.0, 0.0
    s = sum(x * u for x, u in zip(values, shared)) / total
    i = math.sqrt(sum((x * u) ** 2 for x, u in zip(values, independent))) / total
    return math.hypot(s, i), s, i


def _cumulative(with_organ: Sequence[OrganCycleDose]) -> CumulativeDose:
    doses = [o.dose_Gy for o in with_organ]
    u, s, _ = cumulative_rel_uncertainty(doses, [o.shared for o in with_organ],
                                         [o.dose_rel_uncertainty_independent for o in with_organ])
    if not all(o.bed_Gy is not None for o in with_organ):
        return CumulativeDose(sum(doses), u, None, None, s, None)
    beds = [o.bed_Gy for o in with_organ]
    bu, bs, _ = cumulative_rel_uncertainty(beds, [o.shared * o.bed_factor for o in with_organ],
                                           [o.dose_rel_uncertainty_independent * o.bed_factor for o in with_organ])
    return CumulativeDose(sum(doses), u, sum(beds), bu, s, bs)


def _cumulative_all(cycles: Sequence[CycleEntry]) -> tuple[CycleEntry, ...]:
    """The cycles with every cumulative entry recomputed (sums and correlated uncertainties)."""
    out: list[CycleEntry] = []
    for pos, c in enumerate(cycles):
        organs = dict.fromkeys([*(out[-1].cumulative if out else {}), *c.organs])
        cum = {o: _cumulative([x.organs[o] for x in cycles[:pos + 1] if o in x.organs]) for o in organs}
        out.append(replace(c, cumulative=cum))
    return tuple(out)


def append_cycle(ledger: Ledger, *, administration_date: _dt.date, administered_activity_Bq: float,
                 dosimetry_method: str, dose_per_activity: Mapping[str, OrganDosePerActivity] | None = None,
                 kind: str = "standard", note: str = "", lesions: Mapping[str, LesionDose] | None = None,
                 provenance: Mapping[str, str] | None = None) -> Ledger:
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
    lesions : dict of str to LesionDose, optional
    provenance : dict, optional
        Where the numbers came from (results folder, file hashes).

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
                                              f"no dosimetry for this cycle; fallback: {sel.source}",
                                              sel.shared_rel_uncertainty)
        if "kidney" not in per:
            raise InputError("cycle has no dosimetry and the ledger has no earlier kidney d to fall back on",
                             source="dosimetry_method")
    else:
        per = dict(dose_per_activity or {})
        if "kidney" not in per:
            raise InputError("kidney d (Gy/Bq) is required for a cycle with dosimetry", source="dose_per_activity")
    organs = {}
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
        organs[organ] = OrganCycleDose(d, o.rel_uncertainty, dose, o.rel_uncertainty, o.g_factor, bed, bu, o.source,
                                       o.shared_rel_uncertainty)
    entry = CycleEntry(len(ledger.cycles) + 1, kind, administration_date, a, dosimetry_method, organs, {}, note,
                       dict(lesions or {}), dict(provenance or {}))
    new = replace(ledger, cycles=_cumulative_all((*ledger.cycles, entry)))
    _validate(new, "ledger")
    return new


# --- validation --------------------------------------------------------------------------------
def _close(a: float, b: float) -> bool:
    return abs(a - b) <= max(_ABS_TOL_GY, _REL_TOL * max(abs(a), abs(b)))


def _validate(led: Ledger, src: str) -> None:
    if led.risk_stratum is not None and led.risk_stratum not in (*RISK_STRATA, *STRATUM_ALIASES):
        raise ConsistencyError(f"must be one of {', '.join((*RISK_STRATA, *STRATUM_ALIASES))}, got "
                               f"{led.risk_stratum!r}", source=f"{src}: patient.risk_stratum")
    if led.phase is not None and led.phase not in PHASES:
        raise ConsistencyError(f"must be 1 or 2, got {led.phase!r}", source=f"{src}: patient.phase")
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
            if o.dose_rel_uncertainty_shared is not None:
                _check_u(o.dose_rel_uncertainty_shared, f"{f}.dose_rel_uncertainty_shared")
                if o.dose_rel_uncertainty_shared > o.dose_rel_uncertainty * (1 + _REL_TOL):
                    raise ConsistencyError(f"shared part {o.dose_rel_uncertainty_shared:.4g} is larger than the total "
                                           f"relative uncertainty {o.dose_rel_uncertainty:.4g}",
                                           source=f"{f}.dose_rel_uncertainty_shared")
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
        for name, les in c.lesions.items():
            f = f"{where}.lesions.{name}"
            _check_value(les.dose_per_activity_Gy_per_Bq, f"{f}.dose_per_activity_Gy_per_GBq")
            if les.dose_rel_uncertainty is not None:
                _check_u(les.dose_rel_uncertainty, f"{f}.dose_rel_uncertainty")
            if not _close(les.dose_Gy, c.administered_activity_Bq * les.dose_per_activity_Gy_per_Bq):
                raise ConsistencyError(f"dose_Gy is {les.dose_Gy:.4g} Gy but activity × d = "
                                       f"{c.administered_activity_Bq * les.dose_per_activity_Gy_per_Bq:.4g} Gy",
                                       source=f"{f}.dose_Gy")
        for organ in dict.fromkeys([*c.organs, *(led.cycles[pos - 1].cumulative if pos else {})]):
            f = f"{where}.cumulative.{organ}"
            cum = c.cumulative.get(organ)
            if cum is None:
                raise ConsistencyError("cumulative entry is missing", source=f)
            exp = _cumulative([x.organs[organ] for x in led.cycles[:pos + 1] if organ in x.organs])
            if not _close(cum.dose_Gy, exp.dose_Gy):
                raise ConsistencyError(f"dose_Gy is {cum.dose_Gy:.4g} Gy but the sum over cycles 1–{c.cycle} is "
                                       f"{exp.dose_Gy:.4g} Gy", source=f"{f}.dose_Gy")
            if cum.bed_Gy is not None:
                if exp.bed_Gy is None:
                    raise ConsistencyError("bed_Gy given but a cycle of this organ has no BED", source=f"{f}.bed_Gy")
                if not _close(cum.bed_Gy, exp.bed_Gy):
                    raise ConsistencyError(f"bed_Gy is {cum.bed_Gy:.4g} Gy but the sum over cycles 1–{c.cycle} is "
                                           f"{exp.bed_Gy:.4g} Gy", source=f"{f}.bed_Gy")
            for key, got, want in (("dose_rel_uncertainty", cum.dose_rel_uncertainty, exp.dose_rel_uncertainty),
                                   ("bed_rel_uncertainty", cum.bed_rel_uncertainty, exp.bed_rel_uncertainty)):
                if got is not None and want is not None and not _close(got, want):
                    raise ConsistencyError(f"{key} is {got:.4g} but the cycles' shared (correlated) and independent "
                                           f"parts give {want:.4g}", source=f"{f}.{key}")
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
    """The JSON document of a ledger, version 2 (activities in GBq, d in Gy/GBq).

    ``follow_up`` and ``outcomes`` are written back exactly as read.
    """
    def organ(o: OrganCycleDose) -> dict:
        return {"dose_per_activity_Gy_per_GBq": _per_gbq(o.dose_per_activity_Gy_per_Bq),
                "dose_per_activity_rel_uncertainty": o.dose_per_activity_rel_uncertainty, "dose_Gy": o.dose_Gy,
                "dose_rel_uncertainty": o.dose_rel_uncertainty, "dose_rel_uncertainty_shared": o.shared,
                "dose_rel_uncertainty_independent": o.dose_rel_uncertainty_independent,
                "g_factor": o.g_factor, "bed_Gy": o.bed_Gy, "bed_rel_uncertainty": o.bed_rel_uncertainty,
                "source": o.source}

    def lesion(les: LesionDose) -> dict:
        return {"dose_per_activity_Gy_per_GBq": _per_gbq(les.dose_per_activity_Gy_per_Bq), "dose_Gy": les.dose_Gy,
                "dose_rel_uncertainty": les.dose_rel_uncertainty, "volume_mL": les.volume_mL,
                "dose_method": les.dose_method, "source": les.source}

    def cumulative(u: CumulativeDose) -> dict:
        return {"dose_Gy": u.dose_Gy, "dose_rel_uncertainty": u.dose_rel_uncertainty,
                "dose_rel_uncertainty_shared": u.dose_rel_uncertainty_shared, "bed_Gy": u.bed_Gy,
                "bed_rel_uncertainty": u.bed_rel_uncertainty,
                "bed_rel_uncertainty_shared": u.bed_rel_uncertainty_shared}

    doc: dict[str, Any] = {
        "format": FORMAT, "version": VERSION, "patient_id": led.patient_id,
        "patient": {"risk_stratum": led.risk_stratum, "phase": None if led.phase is None else str(led.phase),
                    "escalation_group": led.escalation_group},
        "radiobiology": {k: dict(v) for k, v in led.radiobiology.items()},
        "prediction": {k: {"dose_per_activity_Gy_per_GBq": _per_gbq(o.dose_per_activity_Gy_per_Bq),
                           "rel_uncertainty": o.rel_uncertainty, "shared_rel_uncertainty": o.shared_rel_uncertainty,
                           "g_factor": o.g_factor, "source": o.source}
                       for k, o in led.prediction.items()},
        "cycles": [{"cycle": c.cycle, "kind": c.kind, "administration_date": c.administration_date.isoformat(),
                    "administered_activity_GBq": c.administered_activity_Bq / BQ_PER_GBQ,
                    "dosimetry_method": c.dosimetry_method, "note": c.note,
                    "organs": {k: organ(o) for k, o in c.organs.items()},
                    "lesions": {k: lesion(v) for k, v in c.lesions.items()},
                    "cumulative": {k: cumulative(u) for k, u in c.cumulative.items()},
                    "provenance": dict(c.provenance)}
                   for c in led.cycles],
        "follow_up": copy.deepcopy(list(led.follow_up)),
    }
    if led.outcomes is not None:
        doc["outcomes"] = copy.deepcopy(dict(led.outcomes))
    return doc


def _obj(v: Any, where: str) -> Mapping:
    if not isinstance(v, Mapping):
        raise InputError(f"must be an object, got {type(v).__name__}", source=where)
    return v


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


def _shared(o: Mapping, where: str, version: int, total: float) -> float | None:
    """The shared part of a cycle organ's uncertainty: stated (v2, checked against independent), else all."""
    if version < 2:
        return None
    s = _get(o, "dose_rel_uncertainty_shared", where, optional=True)
    i = _get(o, "dose_rel_uncertainty_independent", where, optional=True)
    if s is None and i is None:
        return None
    if s is None:
        s = _independent(total, i)
    elif i is not None and not _close(math.hypot(s, i), total):
        raise ConsistencyError(f"√(shared² + independent²) = {math.hypot(s, i):.4g} but dose_rel_uncertainty is "
                               f"{total:.4g}", source=f"{where}.dose_rel_uncertainty")
    return float(s)


def ledger_from_dict(doc: Mapping[str, Any], *, source: str = "ledger") -> Ledger:
    """Parse and validate a ledger document (version 1 or 2); errors name the entry and field at fault.

    A version-1 document is read with each cycle's uncertainty wholly shared between cycles (the
    conservative reading) and its cumulative uncertainties recomputed; ``read_warnings`` says so.
    A missing ``cycles`` list is an error (a ledger with no cycle given has ``"cycles": []``).
    """
    if not isinstance(doc, Mapping) or doc.get("format") != FORMAT:
        raise InputError(f"not a ledger: expected \"format\": \"{FORMAT}\"", source=source)
    version = doc.get("version")
    if isinstance(version, bool) or version not in _READ_VERSIONS:
        raise InputError(f"unsupported ledger version {version!r} (expected one of "
                         f"{', '.join(map(str, _READ_VERSIONS))})", source=f"{source}: version")
    pid = _get(doc, "patient_id", source, str)
    if not pid.strip():
        raise InputError("must not be empty", source=f"{source}: patient_id")
    if "cycles" not in doc or not isinstance(doc["cycles"], list):
        found = "missing" if "cycles" not in doc else f"{type(doc['cycles']).__name__}, not a list"
        raise InputError(f"field 'cycles' is {found}: a ledger lists its cycles (\"cycles\": [] before the first "
                         "cycle); refusing to read it as a new patient", source=f"{source}: cycles")
    radio = doc.get("radiobiology") or {}
    if not isinstance(radio, Mapping) or not all(isinstance(v, Mapping) for v in radio.values()):
        raise InputError("must be an object organ → {alpha_beta_Gy, repair_half_time_h}",
                         source=f"{source}: radiobiology")
    for organ, params in radio.items():
        for key, v in params.items():
            if key not in ("alpha_beta_Gy", "repair_half_time_h"):
                raise InputError("unknown key (expected alpha_beta_Gy, repair_half_time_h)",
                                 source=f"{source}: radiobiology.{organ}.{key}")
            if isinstance(v, bool) or not isinstance(v, int | float) or not (math.isfinite(v) and v > 0):
                raise InputError(f"must be a number > 0, got {v!r}", source=f"{source}: radiobiology.{organ}.{key}")
    patient = _obj(doc.get("patient") or {}, f"{source}: patient") if version >= 2 else {}
    group = patient.get("escalation_group") if version >= 2 else doc.get("escalation_group")
    if group is not None and not isinstance(group, str | int):
        raise InputError(f"must be text, got {group!r}", source=f"{source}: patient.escalation_group")
    stratum, phase = patient.get("risk_stratum") or None, patient.get("phase")  # "" = not set
    if stratum is not None and stratum not in (*RISK_STRATA, *STRATUM_ALIASES):
        raise InputError(f"must be one of {', '.join((*RISK_STRATA, *STRATUM_ALIASES))}, got {stratum!r}",
                         source=f"{source}: patient.risk_stratum")
    if phase in ("", None):
        phase = None
    elif isinstance(phase, str) and phase.strip() in ("1", "2"):
        phase = int(phase)
    elif isinstance(phase, bool) or phase not in PHASES:
        raise InputError(f"must be \"1\" or \"2\", got {phase!r}", source=f"{source}: patient.phase")
    follow_up = doc.get("follow_up", [])
    if follow_up is None:
        follow_up = []
    if not isinstance(follow_up, list):
        raise InputError(f"must be a list of follow-up records, got {type(follow_up).__name__}",
                         source=f"{source}: follow_up")
    outcomes = doc.get("outcomes")
    if outcomes is not None and not isinstance(outcomes, Mapping):
        raise InputError(f"must be an object, got {type(outcomes).__name__}", source=f"{source}: outcomes")
    pred = {}
    for organ, o in _obj(doc.get("prediction") or {}, f"{source}: prediction").items():
        w = f"{source}: prediction.{organ}"
        o = _obj(o, w)
        pred[organ] = OrganDosePerActivity(_get(o, "dose_per_activity_Gy_per_GBq", w) / BQ_PER_GBQ,
                                           _get(o, "rel_uncertainty", w), _get(o, "g_factor", w, optional=True),
                                           o.get("source", "") or "PET prediction",
                                           _get(o, "shared_rel_uncertainty", w, optional=True))
    cycles = []
    unsplit: set[str] = set()  # organs with a cycle whose uncertainty has no shared/independent split
    for pos, c in enumerate(doc["cycles"]):
        w = f"{source}: cycles[{pos}]"
        c = _obj(c, w)
        for key in ("organs", "cumulative", "lesions", "provenance"):
            if not isinstance(c.get(key) or {}, Mapping):
                raise InputError(f"must be an object, got {type(c.get(key)).__name__}", source=f"{w}.{key}")
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
            o = _obj(o, wo)
            u = _get(o, "dose_rel_uncertainty", wo)
            organs[organ] = OrganCycleDose(
                _get(o, "dose_per_activity_Gy_per_GBq", wo) / BQ_PER_GBQ,
                _get(o, "dose_per_activity_rel_uncertainty", wo),
                _get(o, "dose_Gy", wo), u, _get(o, "g_factor", wo, optional=True),
                _get(o, "bed_Gy", wo, optional=True), _get(o, "bed_rel_uncertainty", wo, optional=True),
                o.get("source", "") or "", _shared(o, wo, version, u))
            if organs[organ].dose_rel_uncertainty_shared is None:
                unsplit.add(organ)
        lesions = {}
        for name, o in (c.get("lesions") or {}).items():
            wo = f"{w}.lesions.{name}"
            o = _obj(o, wo)
            lesions[name] = LesionDose(_get(o, "dose_per_activity_Gy_per_GBq", wo) / BQ_PER_GBQ, _get(o, "dose_Gy", wo),
                                       _get(o, "dose_rel_uncertainty", wo, optional=True),
                                       _get(o, "volume_mL", wo, optional=True), str(o.get("dose_method") or ""),
                                       str(o.get("source") or ""))
        cum = {}
        for organ, o in (c.get("cumulative") or {}).items():
            wo = f"{w}.cumulative.{organ}"
            o = _obj(o, wo)
            # without a split the stored cumulative uncertainty follows an unknown convention (version 1:
            # independent cycles): it is recomputed below, not checked
            keep = version >= 2 and organ not in unsplit
            cum[organ] = CumulativeDose(_get(o, "dose_Gy", wo), _get(o, "dose_rel_uncertainty", wo) if keep else None,
                                        _get(o, "bed_Gy", wo, optional=True),
                                        _get(o, "bed_rel_uncertainty", wo, optional=True) if keep else None)
        cycles.append(CycleEntry(int(_get(c, "cycle", w)), str(c.get("kind", "standard")), date,
                                 _get(c, "administered_activity_GBq", w) * BQ_PER_GBQ,
                                 str(_get(c, "dosimetry_method", w, str)), organs, cum, str(c.get("note", "") or ""),
                                 lesions, {str(k): str(v) for k, v in (c.get("provenance") or {}).items()}))
    warnings: tuple[str, ...] = ()
    led = Ledger(pid, tuple(cycles), pred, None if group is None else str(group),
                 {k: dict(v) for k, v in radio.items()}, stratum, phase, tuple(copy.deepcopy(follow_up)),
                 copy.deepcopy(dict(outcomes)) if outcomes is not None else None)
    _validate(led, source)  # as stored (unsplit cumulative uncertainties are not checked: recomputed next)
    if version < 2:
        warnings = ("version-1 ledger: each cycle's dose uncertainty is read as wholly shared between cycles "
                    "(fully correlated, the conservative reading); cumulative uncertainties recomputed",)
    elif unsplit:
        warnings = (f"{', '.join(sorted(unsplit))}: cycle uncertainties without a shared/independent split are read "
                    "as wholly shared between cycles (the conservative reading); cumulative uncertainties "
                    "recomputed",)
    # the stored cumulative values agree (validated); recomputing fills in their shared parts
    return replace(led, cycles=_cumulative_all(led.cycles), read_warnings=warnings)


def read_ledger(path: str | Path) -> Ledger:
    """Read and validate a ledger JSON file (version 1 or 2).

    Raises
    ------
    InputError
        Unreadable file, not JSON, missing fields (``cycles`` included).
    ConsistencyError
        A ledger edited into inconsistency (cumulative ≠ sum, cycles out of order, activity × d ≠
        dose, …); the message names the entry and the field.
    """
    p = Path(path)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"cannot read ledger: {exc.strerror}", source=str(p)) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"not valid JSON: {getattr(exc, 'msg', exc)}", source=str(p)) from None
    return ledger_from_dict(doc, source=p.name)


def write_ledger(path: str | Path, led: Ledger) -> Path:
    """Write a ledger as JSON version 2, atomically (validated first)."""
    _validate(led, str(path))
    return write_json(path, ledger_to_dict(led))


def ledger_rows(led: Ledger) -> list[dict[str, Any]]:
    """The CSV view: one row per cycle and organ, then the cycle's lesions (columns :data:`LEDGER_CSV_COLUMNS`)."""
    rows = []
    for c in led.cycles:
        base = {"patient_id": led.patient_id, "cycle": c.cycle, "kind": c.kind,
                "administration_date": c.administration_date.isoformat(),
                "administered_activity_GBq": c.administered_activity_Bq / BQ_PER_GBQ,
                "dosimetry_method": c.dosimetry_method}
        for organ, o in c.organs.items():
            cum = c.cumulative.get(organ)
            rows.append({
                **base, "region_kind": "organ", "organ": organ,
                "dose_per_activity_Gy_per_GBq": o.dose_per_activity_Gy_per_Bq * BQ_PER_GBQ,
                "dose_per_activity_rel_uncertainty": o.dose_per_activity_rel_uncertainty, "dose_Gy": o.dose_Gy,
                "dose_rel_uncertainty": o.dose_rel_uncertainty, "dose_rel_uncertainty_shared": o.shared,
                "dose_rel_uncertainty_independent": o.dose_rel_uncertainty_independent,
                "g_factor": o.g_factor, "bed_Gy": o.bed_Gy, "bed_rel_uncertainty": o.bed_rel_uncertainty,
                "cumulative_dose_Gy": cum.dose_Gy if cum else None,
                "cumulative_dose_rel_uncertainty": cum.dose_rel_uncertainty if cum else None,
                "cumulative_dose_rel_uncertainty_shared": cum.dose_rel_uncertainty_shared if cum else None,
                "cumulative_bed_Gy": cum.bed_Gy if cum else None,
                "cumulative_bed_rel_uncertainty": cum.bed_rel_uncertainty if cum else None,
                "source": o.source})
        for name, les in c.lesions.items():
            rows.append({**base, "region_kind": "lesion", "organ": name,
                         "dose_per_activity_Gy_per_GBq": les.dose_per_activity_Gy_per_Bq * BQ_PER_GBQ,
                         "dose_Gy": les.dose_Gy, "dose_rel_uncertainty": les.dose_rel_uncertainty,
                         "source": les.source})
    return rows


def write_ledger_csv(path: str | Path, led: Ledger) -> Path:
    """Write the CSV view of a ledger, atomically."""
    return write_csv(path, ledger_rows(led), LEDGER_CSV_COLUMNS, extra_columns=False)
