"""Phase-1 cohort table: escalation groups → prescribed kidney absorbed dose per cycle.

A CSV that users supply (an example is ``docs/examples/phase1_cohort_table.csv``), one row per
escalation group::

    group,prescribed_kidney_dose_per_cycle_Gy,kidney_dose_limit_Gy,kidney_bed_limit_Gy,description
    G1,4.0,,,starting dose level
    G2,5.0,,,

``group`` and ``prescribed_kidney_dose_per_cycle_Gy`` are required; the limits are optional
cumulative limits applied to every patient of the group. No dose level here is a recommendation:
the numbers come from the trial protocol.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..results import read_csv

__all__ = ["CohortGroup", "read_cohort_table", "COHORT_COLUMNS"]

COHORT_COLUMNS = ("group", "prescribed_kidney_dose_per_cycle_Gy", "kidney_dose_limit_Gy", "kidney_bed_limit_Gy",
                  "description")


@dataclass(frozen=True)
class CohortGroup:
    """One escalation group (doses in Gy)."""

    group: str
    prescribed_kidney_dose_per_cycle_Gy: float
    kidney_dose_limit_Gy: float | None = None
    kidney_bed_limit_Gy: float | None = None
    description: str = ""
    source: str = ""


def _num(text: str, where: str, *, required: bool) -> float | None:
    text = (text or "").strip()
    if not text:
        if required:
            raise InputError("is empty; a number in Gy is required", source=where)
        return None
    try:
        v = float(text)
    except ValueError:
        raise InputError(f"must be a number in Gy, got {text!r}", source=where) from None
    if not (math.isfinite(v) and v > 0):
        raise InputError(f"must be finite and > 0 Gy, got {text!r}", source=where)
    return v


def read_cohort_table(path: str | Path) -> dict[str, CohortGroup]:
    """Read a cohort table CSV into ``{group: CohortGroup}``.

    Raises
    ------
    InputError
        Missing columns, duplicate groups, non-numeric or non-positive doses (row and column named).
    """
    p = Path(path)
    rows = read_csv(p)
    if not rows:
        raise InputError("has no rows (expected a header and one row per escalation group)", source=str(p))
    missing = [c for c in COHORT_COLUMNS[:2] if c not in rows[0]]
    if missing:
        raise InputError(f"missing column(s) {', '.join(missing)} (have {', '.join(rows[0])})", source=str(p))
    out: dict[str, CohortGroup] = {}
    for i, r in enumerate(rows, start=2):
        g = (r.get("group") or "").strip()
        where = f"{p.name} line {i}"
        if not g:
            raise InputError("group is empty", source=where)
        if g in out:
            raise InputError(f"group {g!r} appears twice", source=where)
        out[g] = CohortGroup(
            g, _num(r["prescribed_kidney_dose_per_cycle_Gy"], f"{where} prescribed_kidney_dose_per_cycle_Gy",
                    required=True),
            _num(r.get("kidney_dose_limit_Gy", ""), f"{where} kidney_dose_limit_Gy", required=False),
            _num(r.get("kidney_bed_limit_Gy", ""), f"{where} kidney_bed_limit_Gy", required=False),
            (r.get("description") or "").strip(), f"cohort table {p.name} group {g}")
    return out
