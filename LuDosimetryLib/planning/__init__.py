"""Planning: personalised activity for the next cycle and the per-patient multi-cycle ledger.

- :mod:`.ledger`: the ledger (JSON record + CSV view), validated on read, written atomically;
- :mod:`.prescription`: d selection, BED algebra, risk-constrained activity, the plan;
- :mod:`.cohort_table`: phase-1 escalation groups → prescribed kidney dose per cycle.

Formulas, sources and their status: ``docs/planning.md``.
"""

from .cohort_table import CohortGroup, read_cohort_table
from .ledger import (
    DOSIMETRY_METHODS,
    ORGANS,
    CumulativeDose,
    CycleEntry,
    Ledger,
    OrganCycleDose,
    OrganDosePerActivity,
    append_cycle,
    new_ledger,
    read_ledger,
    write_ledger,
    write_ledger_csv,
)
from .prescription import (
    MODES,
    PlanProposal,
    PlanSettings,
    activity_for_bed_Bq,
    exceedance_probability,
    plan_next_cycle,
    risk_constrained_activity_Bq,
    select_dose_per_activity,
)

__all__ = [
    "CohortGroup", "read_cohort_table", "DOSIMETRY_METHODS", "ORGANS", "CumulativeDose", "CycleEntry", "Ledger",
    "OrganCycleDose", "OrganDosePerActivity", "append_cycle", "new_ledger", "read_ledger", "write_ledger",
    "write_ledger_csv", "MODES", "PlanProposal", "PlanSettings", "activity_for_bed_Bq", "exceedance_probability",
    "plan_next_cycle", "risk_constrained_activity_Bq", "select_dose_per_activity",
]
