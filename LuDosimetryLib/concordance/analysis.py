"""Concordance of predicted and measured doses over a cohort: one analysis per region group.

For each group (an organ pooled over sides, or all lesions): Pearson and Spearman correlation,
Lin's CCC, ICC(2,1) = ICC(A,1) and ICC(3,1) = ICC(C,1), Bland–Altman on differences, percentage
differences and log ratios, Deming and Passing–Bablok regression. When a group has more than one
observation per patient (lesions, bilateral organs), the Bland–Altman analysis is nested
(:mod:`.nested`) and the naive one is reported beside it. Lesions within one patient (≥ 3) are
also analysed per patient.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from ..errors import InputError
from .agreement import BA_SCALES, bland_altman, deming, icc, lin_ccc, passing_bablok, pearson, spearman
from .nested import nested_bland_altman
from .table import DosePair

__all__ = ["GroupConcordance", "concordance_by_group", "concordance_rows", "CONCORDANCE_COLUMNS"]

CONCORDANCE_COLUMNS = (
    "group", "scope", "n", "n_patients", "pearson_r", "spearman_rho", "ccc", "ccc_ci95_low", "ccc_ci95_high",
    "icc_A1", "icc_A1_ci95_low", "icc_A1_ci95_high", "icc_C1", "ba_bias_Gy", "ba_loa_low_Gy", "ba_loa_high_Gy",
    "ba_bias_percent", "ba_loa_low_percent", "ba_loa_high_percent", "ratio_geometric_mean", "ratio_loa_low",
    "ratio_loa_high", "nested", "nested_bias_Gy", "nested_bias_ci95_low_Gy", "nested_bias_ci95_high_Gy",
    "nested_loa_low_Gy", "nested_loa_high_Gy", "deming_slope", "deming_intercept_Gy", "passing_bablok_slope",
    "passing_bablok_intercept_Gy", "proportional_bias_p",
)


@dataclass(frozen=True)
class GroupConcordance:
    """All agreement statistics of one group (``scope``: ``cohort`` or ``patient <id>``)."""

    group: str
    scope: str
    n: int
    n_patients: int
    results: dict = field(compare=False)


def _analyse(pairs: Sequence[DosePair], group: str, scope: str, *, n_bootstrap: int, seed: int) -> GroupConcordance:
    x = np.array([p.predicted_Gy for p in pairs])
    y = np.array([p.measured_Gy for p in pairs])
    pts = np.array([p.patient for p in pairs])
    n_pat = int(np.unique(pts).size)
    for column, v in (("predicted_Gy", x), ("measured_Gy", y)):
        if np.ptp(v) == 0:
            raise InputError(f"group {group!r} ({scope}, {v.size} pairs): every {column} is {v[0]:g} Gy; agreement "
                             "statistics (CCC, ICC, regression) need doses that vary: check the table or leave the "
                             "group out", source="concordance table")
    res: dict = {"pearson": asdict(pearson(x, y)), "spearman": asdict(spearman(x, y)), "ccc": asdict(lin_ccc(x, y)),
                 "icc": {k: asdict(v) for k, v in icc(np.column_stack([x, y]), forms=("ICC(2,1)", "ICC(3,1)")).items()}}
    scales = [s for s in BA_SCALES if s != "log_ratio" or (np.all(x > 0) and np.all(y > 0))]
    res["bland_altman"] = {s: asdict(bland_altman(x, y, scale=s)) for s in scales}
    sdx = [p.predicted_sd_Gy for p in pairs]
    sdy = [p.measured_sd_Gy for p in pairs]
    have_sd = all(v is not None and v > 0 for v in sdx + sdy)
    res["deming"] = asdict(deming(x, y, sd_x=sdx if have_sd else None, sd_y=sdy if have_sd else None))
    try:
        res["passing_bablok"] = asdict(passing_bablok(x, y))
    except InputError as exc:  # negatively related doses in a small group: reported, not fatal
        res["passing_bablok"] = {"slope": None, "intercept": None, "error": exc.reason}
    nested = scope == "cohort" and n_pat < x.size and n_pat >= 3
    if nested:
        res["nested_bland_altman"] = asdict(nested_bland_altman(x, y, pts, n_bootstrap=n_bootstrap, seed=seed))
    return GroupConcordance(group, scope, int(x.size), n_pat, res)


def concordance_by_group(pairs: Sequence[DosePair], *, n_bootstrap: int = 2000, seed: int = 0,
                         min_pairs: int = 3) -> list[GroupConcordance]:
    """Agreement statistics per region group over the cohort, and per patient over its lesions.

    Groups with fewer than ``min_pairs`` pairs are skipped (they are listed in no result).
    """
    if not pairs:
        raise InputError("no dose pairs", source="concordance table")
    out: list[GroupConcordance] = []
    groups = sorted({p.group for p in pairs})
    for g in groups:
        members = [p for p in pairs if p.group == g]
        if len(members) >= min_pairs:
            out.append(_analyse(members, g, "cohort", n_bootstrap=n_bootstrap, seed=seed))
    lesions = [p for p in pairs if p.kind == "lesion"]
    for patient in sorted({p.patient for p in lesions}):
        members = [p for p in lesions if p.patient == patient]
        if len(members) >= min_pairs:
            out.append(_analyse(members, "lesion", f"patient {patient}", n_bootstrap=n_bootstrap, seed=seed))
    return out


def concordance_rows(results: Sequence[GroupConcordance]) -> list[dict]:
    """One flat row per group, columns :data:`CONCORDANCE_COLUMNS`."""
    rows = []
    for g in results:
        r = g.results
        ba = r["bland_altman"]
        row = {"group": g.group, "scope": g.scope, "n": g.n, "n_patients": g.n_patients,
               "pearson_r": r["pearson"]["r"], "spearman_rho": r["spearman"]["r"], "ccc": r["ccc"]["rho_c"],
               "ccc_ci95_low": r["ccc"]["ci95"][0], "ccc_ci95_high": r["ccc"]["ci95"][1],
               "icc_A1": r["icc"]["ICC(2,1)"]["value"], "icc_A1_ci95_low": r["icc"]["ICC(2,1)"]["ci95"][0],
               "icc_A1_ci95_high": r["icc"]["ICC(2,1)"]["ci95"][1], "icc_C1": r["icc"]["ICC(3,1)"]["value"],
               "ba_bias_Gy": ba["difference"]["bias"], "ba_loa_low_Gy": ba["difference"]["loa"][0],
               "ba_loa_high_Gy": ba["difference"]["loa"][1], "ba_bias_percent": ba["percent"]["bias"],
               "ba_loa_low_percent": ba["percent"]["loa"][0], "ba_loa_high_percent": ba["percent"]["loa"][1],
               "proportional_bias_p": ba["difference"]["proportional_bias_p"],
               "deming_slope": r["deming"]["slope"], "deming_intercept_Gy": r["deming"]["intercept"],
               "passing_bablok_slope": r["passing_bablok"]["slope"],
               "passing_bablok_intercept_Gy": r["passing_bablok"]["intercept"],
               "nested": "nested_bland_altman" in r}
        if "log_ratio" in ba:
            row.update(ratio_geometric_mean=ba["log_ratio"]["ratio"], ratio_loa_low=ba["log_ratio"]["ratio_loa"][0],
                       ratio_loa_high=ba["log_ratio"]["ratio_loa"][1])
        if "nested_bland_altman" in r:
            nb = r["nested_bland_altman"]
            row.update(nested_bias_Gy=nb["bias"], nested_bias_ci95_low_Gy=nb["bias_ci95"][0],
                       nested_bias_ci95_high_Gy=nb["bias_ci95"][1], nested_loa_low_Gy=nb["loa"][0],
                       nested_loa_high_Gy=nb["loa"][1])
        rows.append(row)
    return rows
