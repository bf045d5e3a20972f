"""Dose-escalation decisions from DLT counts per escalation group, under a named rule.

``3+3`` (Storer BE. Design and analysis of phase I clinical trials. Biometrics 1989;45:925–937;
Le Tourneau C et al. J Natl Cancer Inst 2009;101:708–720, doi:10.1093/jnci/djp079), with n
DLT-evaluable patients and d DLTs in the group:

- d ≥ 2 (of up to 6)            → ``stop``: the level exceeds the maximum tolerated dose;
- n < 3, d ≤ 1                  → ``enrol``: complete the first 3;
- n ≥ 3, d = 0, n < 6           → ``escalate``;
- n ≥ 3, d = 1, n < 6           → ``expand to 6``;
- n = 6, d ≤ 1                  → ``escalate`` (the level is tolerated);
- n > 6                         → ``outside 3+3 (n > 6)`` (e.g. a phase-2 expansion).

``boin`` (Liu S, Yuan Y. J R Stat Soc C 2015;64:507–523, doi:10.1111/rssc.12089): with target DLT
rate φ (default 0.30) the boundaries λe = ln((1−φ1)/(1−φ))/ln(φ(1−φ1)/(φ1(1−φ))) and
λd = ln((1−φ)/(1−φ2))/ln(φ2(1−φ)/(φ(1−φ2))) with φ1 = 0.6φ, φ2 = 1.4φ (0.236 and 0.358 for
φ = 0.30): p̂ = d/n ≤ λe → ``escalate``, p̂ ≥ λd → ``de-escalate``, else ``stay``; a level with
P(p > φ | d, n; Beta(1, 1) prior) > 0.95 and n ≥ 3 is ``eliminate``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from scipy import stats

from ..errors import InputError

__all__ = ["ESCALATION_RULES", "escalation_decision", "three_plus_three", "boin", "boin_boundaries"]


def three_plus_three(n_evaluable: int, n_dlt: int) -> str:
    """3+3 decision for one group (module docstring); more than 6 evaluable patients is outside the design."""
    if n_evaluable > 6:
        return "outside 3+3 (n > 6)"
    if n_dlt >= 2:
        return "stop"
    if n_evaluable < 3:
        return "enrol"
    if n_dlt == 0 and n_evaluable < 6:
        return "escalate"
    if n_evaluable < 6:
        return "expand to 6"
    return "escalate"


def boin_boundaries(target: float = 0.30) -> tuple[float, float]:
    """BOIN escalation and de-escalation boundaries (λe, λd) for a target DLT rate."""
    p1, p2 = 0.6 * target, 1.4 * target
    le = math.log((1 - p1) / (1 - target)) / math.log(target * (1 - p1) / (p1 * (1 - target)))
    ld = math.log((1 - target) / (1 - p2)) / math.log(p2 * (1 - target) / (target * (1 - p2)))
    return le, ld


def boin(n_evaluable: int, n_dlt: int, *, target: float = 0.30) -> str:
    """BOIN decision for one group (module docstring)."""
    if n_evaluable == 0:
        return "enrol"
    if n_evaluable >= 3 and stats.beta.sf(target, 1 + n_dlt, 1 + n_evaluable - n_dlt) > 0.95:
        return "eliminate"
    le, ld = boin_boundaries(target)
    rate = n_dlt / n_evaluable
    return "escalate" if rate <= le else "de-escalate" if rate >= ld else "stay"


#: rule name → decision function (n_evaluable, n_dlt) → decision
ESCALATION_RULES: dict[str, Callable[[int, int], str]] = {"3+3": three_plus_three, "boin": boin}


def escalation_decision(rule: str, n_evaluable: int, n_dlt: int) -> str:
    """Decision of the named rule; InputError naming the rules for an unknown one."""
    if rule not in ESCALATION_RULES:
        raise InputError(f"unknown escalation rule {rule!r}; choose one of {sorted(ESCALATION_RULES)}",
                         source="escalation rule")
    if n_dlt < 0 or n_evaluable < 0 or n_dlt > n_evaluable:
        raise InputError(f"{n_dlt} DLTs among {n_evaluable} evaluable patients", source="escalation")
    return ESCALATION_RULES[rule](n_evaluable, n_dlt)
