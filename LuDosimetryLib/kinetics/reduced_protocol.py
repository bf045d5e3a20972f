"""Reduced-protocol evaluator: which scans can a clinic drop?

For a cohort of full TACs, each region's reference TIA is the full fit (:func:`.fitting.fit_tac`,
``models=("auto",)``). Every reduced scheme re-estimates the TIA from a subset of the points and
the relative error (scheme / reference − 1) is summarised per scheme and region kind (and
optionally per region name): bias (mean), spread (SD), median, 2.5–97.5 % range and the share
within ±10 % and ±20 %.

Schemes (:class:`Scheme`)
    ``hanscheid``, ``madsen``, ``prior`` — single time point (:mod:`.stp`) at one nominal time;
    ``two_point`` — mono-exponential through two points (λ ≥ λp; exact fit, no degrees of freedom);
    ``hybrid`` — two points plus the population prior (MAP, :func:`.priors.fit_map`).

A scheme uses, for each nominal time, the measured point nearest to it within
max(3 h, 10 % of the nominal time); a TAC with no such point is counted as not evaluable for
that scheme (the cohort decides whether, e.g., a 48 h scan exists).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from .fitting import fit_tac
from .priors import HalfLifePrior, fit_map, load_priors, prior_for
from .stp import single_time_point

__all__ = ["CohortTac", "Scheme", "DEFAULT_SCHEMES", "evaluate_reduced_protocols", "summarise_errors"]


@dataclass(frozen=True)
class CohortTac:
    """One region's full TAC in a cohort (times h p.i., activities Bq)."""

    patient: str
    region: str
    kind: str
    times_h: tuple[float, ...]
    activities_Bq: tuple[float, ...]


@dataclass(frozen=True)
class Scheme:
    """A reduced scheme: ``method`` in {hanscheid, madsen, prior, two_point, hybrid} at nominal times (h)."""

    method: str
    times_h: tuple[float, ...]

    @property
    def name(self) -> str:
        return f"{self.method}@" + "+".join(f"{t:g}h" for t in self.times_h)

    def __post_init__(self) -> None:
        need = {"hanscheid": 1, "madsen": 1, "prior": 1, "two_point": 2, "hybrid": 2}
        if self.method not in need:
            raise InputError(f"unknown scheme method {self.method!r} (expected one of {', '.join(need)})",
                             source="scheme")
        if len(self.times_h) != need[self.method]:
            raise InputError(f"{self.method} needs {need[self.method]} time(s), got {self.times_h}", source="scheme")


DEFAULT_SCHEMES = tuple(
    [Scheme(m, (t,)) for m in ("hanscheid", "madsen", "prior") for t in (24.0, 48.0, 96.0)]
    + [Scheme("two_point", p) for p in ((24.0, 96.0), (24.0, 192.0), (5.0, 96.0))]
    + [Scheme("hybrid", p) for p in ((24.0, 96.0), (24.0, 192.0))])


def _pick(times: np.ndarray, nominal: tuple[float, ...]) -> list[int] | None:
    idx = []
    for tn in nominal:
        i = int(np.argmin(np.abs(times - tn)))
        if abs(times[i] - tn) > max(3.0, 0.1 * tn) or i in idx:
            return None
        idx.append(i)
    return idx


def _estimate(s: Scheme, t: np.ndarray, y: np.ndarray, prior: HalfLifePrior, nuclide: str) -> float:
    if s.method in ("hanscheid", "madsen", "prior"):
        return single_time_point(float(t[0]), float(y[0]), method=s.method, prior=prior, nuclide=nuclide,
                                 effective_half_life_h=prior.median_effective_half_life_h).tia_Bq_h
    if s.method == "two_point":
        return fit_tac(t, y, models=("mono",), nuclide=nuclide, interval="none").tia_Bq_h
    return fit_map(t, y, prior, nuclide=nuclide, n_samples=2000).tia_Bq_h


def evaluate_reduced_protocols(cohort: Sequence[CohortTac], schemes: Sequence[Scheme] = DEFAULT_SCHEMES, *,
                               nuclide: str = "Lu-177", priors: Mapping[str, HalfLifePrior] | None = None,
                               reference_models: Sequence[str] = ("auto",),
                               progress: Callable[[float, str], None] | None = None) -> list[dict]:
    """Relative error of every scheme for every TAC.

    Returns
    -------
    list of dict
        ``patient, region, kind, scheme, reference_tia_Bq_h, tia_Bq_h, rel_error`` (NaN when the
        scheme's times are not in the TAC).
    """
    if not cohort:
        raise InputError("empty cohort", source="cohort")
    table = load_priors() if priors is None else priors
    rows = []
    for n, c in enumerate(cohort):
        t, y = np.asarray(c.times_h, float), np.asarray(c.activities_Bq, float)
        ref = fit_tac(t, y, models=tuple(reference_models), nuclide=nuclide, region=c.region, kind=c.kind,
                      interval="none").tia_Bq_h
        pr = prior_for(c.region, kind=c.kind, table=table)
        for s in schemes:
            idx = _pick(t, s.times_h)
            est = math.nan if idx is None else _estimate(s, t[idx], y[idx], pr, nuclide)
            rows.append({"patient": c.patient, "region": c.region, "kind": c.kind, "scheme": s.name,
                         "reference_tia_Bq_h": ref, "tia_Bq_h": est, "rel_error": est / ref - 1.0})
        if progress is not None:
            progress((n + 1) / len(cohort), "reduced protocols")
    return rows


def summarise_errors(rows: Sequence[Mapping], *, by: str = "kind") -> list[dict]:
    """Bias and spread per scheme and ``by`` (``"kind"`` or ``"region"``), errors in %."""
    groups: dict[tuple[str, str], list[float]] = {}
    missing: dict[tuple[str, str], int] = {}
    for r in rows:
        key = (r["scheme"], r[by])
        e = r["rel_error"]
        if math.isfinite(e):
            groups.setdefault(key, []).append(100.0 * e)
        else:
            missing[key] = missing.get(key, 0) + 1
            groups.setdefault(key, [])
    out = []
    for (scheme, grp), errs in groups.items():
        e = np.asarray(errs)
        ok = e.size > 0
        out.append({"scheme": scheme, by: grp, "n": int(e.size), "not_evaluable": missing.get((scheme, grp), 0),
                    "bias_pct": float(e.mean()) if ok else math.nan,
                    "sd_pct": float(e.std(ddof=1)) if e.size > 1 else math.nan,
                    "median_pct": float(np.median(e)) if ok else math.nan,
                    "p2.5_pct": float(np.percentile(e, 2.5)) if ok else math.nan,
                    "p97.5_pct": float(np.percentile(e, 97.5)) if ok else math.nan,
                    "within_10pct": float(np.mean(np.abs(e) <= 10)) if ok else math.nan,
                    "within_20pct": float(np.mean(np.abs(e) <= 20)) if ok else math.nan})
    return out
