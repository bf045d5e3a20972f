"""Write a concordance analysis into a results folder (JSON, CSV, plots, report section)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..report import Report
from ..results import write_csv, write_json
from .analysis import CONCORDANCE_COLUMNS, concordance_by_group, concordance_rows
from .plots import plot_bland_altman, plot_scatter
from .table import DosePair

__all__ = ["write_concordance_results"]


def write_concordance_results(pairs: Sequence[DosePair], folder: str | Path, *, report: Report | None = None,
                              n_bootstrap: int = 2000, seed: int = 0, prefix: str = "") -> list[dict]:
    """Analyse ``pairs`` and write ``{prefix}concordance.json``, ``.csv`` and per-group plots.

    Returns the flat rows (one per group); adds a ``concordance`` section to ``report`` if given.
    """
    out = Path(folder)
    results = concordance_by_group(pairs, n_bootstrap=n_bootstrap, seed=seed)
    rows = concordance_rows(results)
    write_json(out / f"{prefix}concordance.json", [{"group": g.group, "scope": g.scope, "n": g.n,
                                                    "n_patients": g.n_patients, **g.results} for g in results])
    write_csv(out / f"{prefix}concordance.csv", rows, CONCORDANCE_COLUMNS)
    sec = report.section("concordance", "Concordance of predicted and measured doses") if report else None
    if sec:
        sec.paragraph(f"{len(pairs)} dose pairs from {len({p.patient for p in pairs})} patients. Differences are "
                      "predicted − measured; lesions nested in patients are analysed with a mixed model and a "
                      "cluster bootstrap (columns nested_*).")
        sec.table(rows, ["group", "scope", "n", "n_patients", "ccc", "icc_A1", "ba_bias_Gy", "ba_loa_low_Gy",
                         "ba_loa_high_Gy", "nested_bias_Gy", "nested_loa_low_Gy", "nested_loa_high_Gy",
                         "deming_slope", "passing_bablok_slope"])
    for g in results:
        if g.scope != "cohort":
            continue
        members = [p for p in pairs if p.group == g.group]
        ba = g.results["bland_altman"]["difference"]
        scatter = f"{prefix}scatter_{g.group}.png"
        bland = f"{prefix}bland_altman_{g.group}.png"
        plot_scatter(members, out / scatter, title=f"{g.group}: predicted vs measured")
        plot_bland_altman(members, out / bland, bias=ba["bias"], loa=tuple(ba["loa"]), title=f"{g.group}: Bland–Altman")
        if sec:
            sec.figure(scatter, f"{g.group}: predicted vs measured")
            sec.figure(bland, f"{g.group}: Bland–Altman")
    return rows
