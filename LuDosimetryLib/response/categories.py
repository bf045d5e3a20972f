"""Response categories as the trials define them: PSA per PCWG3, PSMA PET per RECIP 1.0, combined.

PSA (PCWG3; Scher HI et al. J Clin Oncol 2016;34:1402–1418, doi:10.1200/JCO.2015.64.2702, Table 3):

- **response**: a decline ≥ 50 % from baseline, confirmed by a second value ≥ 3 weeks later that
  is still ≥ 50 % below baseline;
- **progression**: an increase ≥ 25 % *and* ≥ 2 ng/mL above the nadir, confirmed by a second value
  ≥ 3 weeks later that still meets both; when PSA never fell below baseline, the reference is the
  baseline and only rises from week 12 on count (PCWG3: early rises are ignored);
- **stable** otherwise; **not_evaluable** without a post-baseline value.

The date of a category is the date of the first value meeting it (not of its confirmation).
Times are days after the baseline value (day 0 = treatment start); PSA in ng/mL.

PSMA PET (RECIP 1.0; Gafita A et al. J Nucl Med 2022;63:1651–1658,
doi:10.2967/jnumed.121.263072), from the total PSMA-positive tumour volume (TTV, mL) at baseline
and follow-up and the appearance of new lesions:

- **complete_response**: TTV = 0 at follow-up (no PSMA-positive disease);
- **partial_response**: TTV decreased ≥ 30 % and no new lesion;
- **progression**: TTV increased ≥ 20 % *and* new lesions;
- **stable** otherwise (including ≥ 30 % decrease with new lesions, or new lesions with < 20 % increase).

Combined outcome of the tumour-dose biomarker trial: **non-response** = progression by PSA
(PCWG3) or by PSMA PET (RECIP 1.0); **response_or_stable** otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import InputError

__all__ = ["PSA_CATEGORIES", "RECIP_CATEGORIES", "PsaEvent", "PsaAssessment", "pcwg3_psa_response",
           "pcwg3_psa_progression", "pcwg3_best_response", "pcwg3_response_at", "recip_category",
           "combined_outcome", "OUTCOME_DEFINITIONS", "outcome_definition", "CONFIRMATION_DAYS"]

PSA_CATEGORIES = ("response", "stable", "progression", "not_evaluable")
RECIP_CATEGORIES = ("complete_response", "partial_response", "stable", "progression")
#: PCWG3 confirmation interval: a second value ≥ 3 weeks later (days)
CONFIRMATION_DAYS = 21.0
_EARLY_RISE_DAYS = 84.0  # PCWG3: with no decline, rises before week 12 are not progression


@dataclass(frozen=True)
class PsaEvent:
    """A PCWG3 PSA event (response or progression).

    Attributes
    ----------
    day : float
        Day of the first value meeting the criterion (days after baseline).
    value_ng_per_mL : float
    reference_ng_per_mL : float
        Baseline (response; progression without decline) or nadir (progression after a decline).
    confirmed : bool
        A second value ≥ 3 weeks later also meets the criterion.
    confirmation_day : float or None
        Day of the confirming value (None when unconfirmed).
    """

    day: float
    value_ng_per_mL: float
    reference_ng_per_mL: float
    confirmed: bool
    confirmation_day: float | None


@dataclass(frozen=True)
class PsaAssessment:
    """PCWG3 category of a PSA series up to a day.

    Attributes
    ----------
    category : str
        One of :data:`PSA_CATEGORIES`.
    day : float or None
        Day of the value that set the category (the first value meeting it; the assessment value
        for ``stable``); None when not evaluable.
    change_percent : float or None
        Change from baseline of that value (%).
    nadir_ng_per_mL : float or None
        Lowest value up to that day (baseline included).
    """

    category: str
    day: float | None
    change_percent: float | None
    nadir_ng_per_mL: float | None


def _series(days: Sequence[float], psa: Sequence[float], baseline: float) -> tuple[np.ndarray, np.ndarray]:
    d = np.asarray(days, float).ravel()
    v = np.asarray(psa, float).ravel()
    if d.size != v.size:
        raise InputError(f"{d.size} days for {v.size} PSA values", source="psa series")
    if not (math.isfinite(baseline) and baseline > 0):
        raise InputError(f"baseline PSA must be finite and > 0 ng/mL, got {baseline!r}", source="psa baseline")
    if not (np.all(np.isfinite(d)) and np.all(np.isfinite(v))) or np.any(v < 0):
        raise InputError("PSA values must be finite and ≥ 0 ng/mL, days finite", source="psa series")
    if np.any(d <= 0):
        raise InputError(f"post-baseline PSA days must be > 0, got {d[d <= 0].tolist()}", source="psa series")
    order = np.argsort(d, kind="stable")
    return d[order], v[order]


def _confirm(d: np.ndarray, v: np.ndarray, i: int, meets) -> tuple[bool, float | None]:
    """Is value i confirmed by the first value ≥ 21 days later (which must also meet the criterion)?"""
    later = np.flatnonzero(d >= d[i] + CONFIRMATION_DAYS)
    if later.size == 0:
        return False, None
    j = int(later[0])
    return (True, float(d[j])) if meets(v[j]) else (False, None)


def pcwg3_psa_response(days: Sequence[float], psa: Sequence[float], baseline_ng_per_mL: float, *,
                       until_day: float = math.inf) -> PsaEvent | None:
    """First PSA decline ≥ 50 % from baseline (PCWG3), with its confirmation.

    Parameters
    ----------
    days, psa : sequence of float
        Post-baseline values: days after baseline (> 0) and PSA (ng/mL).
    baseline_ng_per_mL : float
    until_day : float
        Only values up to this day are considered (the confirming value included).

    Returns
    -------
    PsaEvent or None
        The first confirmed decline; else the first unconfirmed one; None without a decline.
    """
    d, v = _series(days, psa, baseline_ng_per_mL)
    keep = d <= until_day
    d, v = d[keep], v[keep]
    limit = 0.5 * baseline_ng_per_mL
    first: PsaEvent | None = None
    for i in np.flatnonzero(v <= limit):
        ok, cday = _confirm(d, v, int(i), lambda x: x <= limit)
        ev = PsaEvent(float(d[i]), float(v[i]), baseline_ng_per_mL, ok, cday)
        if ok:
            return ev
        first = first or ev
    return first


def pcwg3_psa_progression(days: Sequence[float], psa: Sequence[float], baseline_ng_per_mL: float, *,
                          until_day: float = math.inf) -> PsaEvent | None:
    """First PSA progression (PCWG3): ≥ 25 % and ≥ 2 ng/mL above the nadir, with its confirmation.

    The nadir is the lowest value before the rise, baseline included; when no value has fallen
    below baseline, the reference is the baseline and only values from day 84 (week 12) count.

    Returns
    -------
    PsaEvent or None
        The first confirmed progression; else the first unconfirmed rise; None without a rise.
    """
    d, v = _series(days, psa, baseline_ng_per_mL)
    keep = d <= until_day
    d, v = d[keep], v[keep]
    first: PsaEvent | None = None
    nadir = baseline_ng_per_mL
    for i in range(d.size):
        declined = nadir < baseline_ng_per_mL
        thr = max(1.25 * nadir, nadir + 2.0)
        if v[i] >= thr and (declined or d[i] >= _EARLY_RISE_DAYS):
            ok, cday = _confirm(d, v, i, lambda x, t=thr: x >= t)
            ev = PsaEvent(float(d[i]), float(v[i]), float(nadir), ok, cday)
            if ok:
                return ev
            first = first or ev
        nadir = min(nadir, float(v[i]))
    return first


def pcwg3_best_response(days: Sequence[float], psa: Sequence[float], baseline_ng_per_mL: float, *,
                        until_day: float = 365.25) -> PsaAssessment:
    """Best PSA response (PCWG3) up to ``until_day`` (default 12 months).

    ``response`` when a confirmed ≥ 50 % decline occurred (first value and confirmation within
    the period) before any confirmed progression; else ``progression`` when a confirmed
    progression occurred; else ``stable``; ``not_evaluable`` without a value in the period.
    """
    d, v = _series(days, psa, baseline_ng_per_mL)
    inside = d <= until_day
    if not np.any(inside):
        return PsaAssessment("not_evaluable", None, None, None)
    resp = pcwg3_psa_response(d, v, baseline_ng_per_mL, until_day=until_day)
    prog = pcwg3_psa_progression(d, v, baseline_ng_per_mL, until_day=until_day)
    prog = prog if prog is not None and prog.confirmed else None
    nadir = float(min(baseline_ng_per_mL, v[inside].min()))
    if resp is not None and resp.confirmed and (prog is None or resp.day < prog.day):
        return PsaAssessment("response", resp.day, _change(resp.value_ng_per_mL, baseline_ng_per_mL), nadir)
    if prog is not None:
        return PsaAssessment("progression", prog.day, _change(prog.value_ng_per_mL, baseline_ng_per_mL), nadir)
    i = int(np.argmin(v[inside]))
    return PsaAssessment("stable", float(d[inside][i]), _change(float(v[inside][i]), baseline_ng_per_mL), nadir)


def _change(value: float, baseline: float) -> float:
    return 100.0 * (value - baseline) / baseline


def pcwg3_response_at(days: Sequence[float], psa: Sequence[float], baseline_ng_per_mL: float, *, day: float,
                      window_days: float = 21.0) -> PsaAssessment:
    """PSA status (PCWG3) at a landmark, e.g. after cycle 2 (``day`` = 84 for week 12).

    The assessment value is the one closest to ``day`` within ``day ± window_days``
    (``not_evaluable`` if none). The category is ``progression`` when a progression had begun by
    the assessment value and is confirmed (by any later value); else ``response`` when the
    assessment value is ≥ 50 % below baseline and confirmed by another such value ≥ 3 weeks before
    or after it; else ``stable``.
    """
    d, v = _series(days, psa, baseline_ng_per_mL)
    near = np.flatnonzero(np.abs(d - day) <= window_days)
    if near.size == 0:
        return PsaAssessment("not_evaluable", None, None, None)
    k = int(near[np.argmin(np.abs(d[near] - day))])
    nadir = float(min(baseline_ng_per_mL, v[: k + 1].min()))
    prog = pcwg3_psa_progression(d, v, baseline_ng_per_mL)
    if prog is not None and prog.confirmed and prog.day <= d[k]:
        return PsaAssessment("progression", prog.day, _change(prog.value_ng_per_mL, baseline_ng_per_mL), nadir)
    limit = 0.5 * baseline_ng_per_mL
    if v[k] <= limit:
        others = np.flatnonzero((np.abs(d - d[k]) >= CONFIRMATION_DAYS) & (v <= limit))
        if others.size:
            return PsaAssessment("response", float(d[k]), _change(float(v[k]), baseline_ng_per_mL), nadir)
    return PsaAssessment("stable", float(d[k]), _change(float(v[k]), baseline_ng_per_mL), nadir)


def recip_category(volume_baseline_mL: float, volume_followup_mL: float, new_lesions: bool) -> str:
    """RECIP 1.0 category from total PSMA-positive tumour volume (mL) and new lesions.

    Returns one of :data:`RECIP_CATEGORIES` (module docstring for the rules).
    """
    for name, x in (("volume_baseline_mL", volume_baseline_mL), ("volume_followup_mL", volume_followup_mL)):
        if not (isinstance(x, (int, float)) and math.isfinite(x) and x >= 0):
            raise InputError(f"must be a finite volume ≥ 0 mL, got {x!r}", source=name)
    if volume_baseline_mL == 0:
        raise InputError("baseline total tumour volume is 0 mL: RECIP needs PSMA-positive disease at baseline",
                         source="volume_baseline_mL")
    if volume_followup_mL == 0 and not new_lesions:
        return "complete_response"
    change = (volume_followup_mL - volume_baseline_mL) / volume_baseline_mL
    if change <= -0.30 and not new_lesions:
        return "partial_response"
    if change >= 0.20 and new_lesions:
        return "progression"
    return "stable"


def combined_outcome(psa_category: str | None, recip: str | None) -> str:
    """Biomarker-trial outcome: ``non_response`` (progression by PSA or PSMA PET) or ``response_or_stable``.

    A missing category (None or ``not_evaluable``) counts as no progression by that modality;
    with both missing the outcome is ``not_evaluable``.
    """
    psa = None if psa_category in (None, "not_evaluable") else psa_category
    if psa is not None and psa not in PSA_CATEGORIES:
        raise InputError(f"unknown PCWG3 category {psa_category!r}; expected {PSA_CATEGORIES}", source="psa category")
    if recip is not None and recip not in RECIP_CATEGORIES:
        raise InputError(f"unknown RECIP category {recip!r}; expected {RECIP_CATEGORIES}", source="recip category")
    if psa is None and recip is None:
        return "not_evaluable"
    return "non_response" if "progression" in (psa, recip) else "response_or_stable"


#: Binary outcome definitions for dose–response (name → what counts as the positive class, 1).
OUTCOME_DEFINITIONS: dict[str, str] = {
    "psa50": "best PSA decline ≥ 50 % from baseline (unconfirmed, psa_best_ng_per_mL)",
    "pcwg3_response": "confirmed PCWG3 PSA response at the landmark",
    "pcwg3_no_progression": "no confirmed PCWG3 PSA progression at the landmark",
    "recip_response": "RECIP 1.0 complete or partial response",
    "recip_no_progression": "no RECIP 1.0 progression",
    "combined": "biomarker trial: no progression by PSA (PCWG3) nor PSMA PET (RECIP 1.0) — "
                "responder or stable (1) against non-response (0)",
}


def outcome_definition(name: str) -> str:
    """Description of an outcome definition; InputError naming the choices for an unknown name."""
    if name not in OUTCOME_DEFINITIONS:
        raise InputError(f"unknown outcome {name!r}; choose one of {sorted(OUTCOME_DEFINITIONS)}", source="outcome")
    return OUTCOME_DEFINITIONS[name]
