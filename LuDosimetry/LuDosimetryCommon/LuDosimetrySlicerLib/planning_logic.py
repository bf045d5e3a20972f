"""Planning stage in the scene: a patient's ledger (JSON) → next-cycle activity and the cumulative
ledger as table nodes (LuDosimetryLib.planning does every computation).

Outputs (``PlanningOutputs``), under the patient (folder ``LuDosimetry planning``):

- ``ledger``: the ledger's CSV view (``LEDGER_CSV_COLUMNS``: one row per cycle and organ, with
  cumulative dose and BED) plus the proposed cycle's rows (``dosimetry_method = planned``);
  attributes ``NextCycleActivityGBq``, ``NextCycle``, ``Refused``, ``Reason``, ``PatientID``,
  ``RiskStratum``, ``LedgerOverLimit`` (1 when the ledger is already over a reference limit) and
  ``LimitFlags`` (the flags' messages, one per line);
- ``proposal``: every number of the proposal with its unit and source (quantity, value, unit,
  source), then the constraints evaluated.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from . import hierarchy
from .nodes import keep_full_precision, rows_to_table, set_node_attributes

__all__ = ["PlanningOutputs", "plan_settings", "run_planning", "SETTINGS_SOURCE"]

SETTINGS_SOURCE = "LuDosimetryPlanning module"


@dataclass
class PlanningOutputs:
    """Nodes and proposal of :func:`run_planning`."""

    ledger: object
    proposal_table: object
    proposal: object
    activity_GBq: float
    lines: tuple
    limit_flags: tuple = ()


def plan_settings(*, mode: str = "kidney_dose_per_cycle", prescribed_kidney_dose_Gy: float = 0.0,
                  kidney_dose_limit_Gy: float = 0.0, kidney_bed_limit_Gy: float = 0.0, epsilon: float = 0.0,
                  remaining_cycles: int = 0, min_activity_GBq: float = 0.0, max_activity_GBq: float = 0.0,
                  step_GBq: float = 0.1, salvage: bool = False, d_source: str = "last_measured",
                  risk_stratum: str = "", override_limits: tuple = ()):
    """:class:`PlanSettings` from the module's fields (GBq at the edge; 0 or "" means "not set").

    Unset limits, maximum activity and remaining cycles take the planning reference values
    (``data/planning_limits.json``) and the protocol; a looser limit needs its name in
    ``override_limits`` (``kidney_dose``, ``kidney_bed``, ``max_activity``).
    """
    from LuDosimetryLib.planning.prescription import PlanSettings
    from LuDosimetryLib.units import GBq_to_Bq

    def opt(v: float) -> float | None:
        return float(v) if v and v > 0 else None

    given = {"prescribed_kidney_dose_Gy": opt(prescribed_kidney_dose_Gy),
             "kidney_dose_limit_Gy": opt(kidney_dose_limit_Gy),
             "kidney_bed_limit_Gy": opt(kidney_bed_limit_Gy), "epsilon": opt(epsilon)}
    sources = {k: SETTINGS_SOURCE for k, v in given.items() if v is not None}
    sources.update(max_activity_Bq=SETTINGS_SOURCE, activity_step_Bq=SETTINGS_SOURCE, min_activity_Bq=SETTINGS_SOURCE,
                   remaining_cycles=SETTINGS_SOURCE, risk_stratum=SETTINGS_SOURCE)
    return PlanSettings(mode=mode, remaining_cycles=int(remaining_cycles) if remaining_cycles else None,
                        min_activity_Bq=GBq_to_Bq(min_activity_GBq),
                        max_activity_Bq=GBq_to_Bq(max_activity_GBq) if max_activity_GBq > 0 else None,
                        activity_step_Bq=GBq_to_Bq(step_GBq), salvage=bool(salvage),
                        d_source=int(d_source) if str(d_source).isdigit() else d_source, sources=sources,
                        risk_stratum=risk_stratum or None, override_limits=frozenset(override_limits), **given)


def run_planning(ledger_path, settings, *, alpha_beta_Gy: float = 0.0, repair_half_time_h: float = 0.0,
                 progress=None) -> PlanningOutputs:
    """Read and validate the ledger, propose the next cycle, store ledger and proposal tables.

    Parameters
    ----------
    ledger_path : path
        The patient's ledger (JSON, ``docs/planning.md``); not modified.
    settings : PlanSettings
        From :func:`plan_settings`.
    alpha_beta_Gy, repair_half_time_h : float
        Kidney α/β (Gy) and repair half-time (h) overriding the ledger's (0: keep the ledger's).
    """
    from LuDosimetryLib.cli.cmd_plan import planned_rows, proposal_lines
    from LuDosimetryLib.planning.ledger import LEDGER_CSV_COLUMNS, ledger_rows, read_ledger
    from LuDosimetryLib.planning.prescription import plan_next_cycle
    from LuDosimetryLib.units import Bq_to_GBq

    report = progress or (lambda f, m: None)
    report(0.0, "reading ledger")
    ledger = read_ledger(ledger_path)
    radio = {k: v for k, v in (("alpha_beta_Gy", alpha_beta_Gy), ("repair_half_time_h", repair_half_time_h)) if v > 0}
    if radio:
        merged = {k: dict(v) for k, v in ledger.radiobiology.items()}
        merged.setdefault("kidney", {}).update(radio)
        ledger = replace(ledger, radiobiology=merged)
    report(0.3, "planning next cycle")
    proposal = plan_next_cycle(ledger, settings)
    activity_GBq = Bq_to_GBq(proposal.activity_Bq)
    folder = hierarchy.stage_folder(ledger.patient_id, "planning")
    ledger_table_rows = ledger_rows(ledger) + planned_rows(ledger, proposal)
    table = rows_to_table(ledger_table_rows, name=f"{ledger.patient_id} ledger", columns=LEDGER_CSV_COLUMNS)
    set_node_attributes(table, {"Stage": "planning", "PatientID": ledger.patient_id, "Ledger": str(ledger_path),
                                "NextCycle": proposal.cycle, "NextCycleKind": proposal.kind,
                                "NextCycleActivityGBq": repr(activity_GBq), "Refused": int(proposal.refused),
                                "Reason": proposal.reason, "Mode": proposal.mode, "RiskStratum": proposal.risk_stratum,
                                "LedgerOverLimit": int(bool(proposal.limit_flags)),
                                "LimitFlags": "\n".join(f.message for f in proposal.limit_flags)})
    hierarchy.place(table, folder)
    keep_full_precision(table, ledger_table_rows, LEDGER_CSV_COLUMNS)
    rows = [{"quantity": v.name, "value": v.value if isinstance(v.value, int | float) else str(v.value),
             "unit": v.unit, "source": v.source} for v in proposal.values]
    rows += [{"quantity": f"constraint {c['name']} (max activity)", "value": Bq_to_GBq(c["max_activity_Bq"]),
              "unit": "GBq", "source": c["source"]} for c in proposal.constraints]
    rows.insert(0, {"quantity": f"next cycle {proposal.cycle} activity", "value": activity_GBq, "unit": "GBq",
                    "source": proposal.reason})
    prop = rows_to_table([{**r, "value": str(r["value"]) if not isinstance(r["value"], int | float) else
                           float(r["value"])} for r in rows], name=f"{ledger.patient_id} next-cycle proposal",
                         columns=("quantity", "value", "unit", "source"), units={})
    for i, w in enumerate(proposal.warnings):
        prop.SetAttribute(f"LuDosimetry.Warning{i + 1}", w)
    set_node_attributes(prop, {"Stage": "planning", "PatientID": ledger.patient_id,
                               "NextCycleActivityGBq": repr(activity_GBq),
                               "LedgerOverLimit": int(bool(proposal.limit_flags))})
    hierarchy.place(prop, folder)
    report(1.0, "done")
    return PlanningOutputs(table, prop, proposal, activity_GBq, tuple(proposal_lines(proposal)), proposal.limit_flags)
