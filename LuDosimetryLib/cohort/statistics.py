"""Cohort statistics from the patients' results folders.

- **Concordance**: PET-predicted (``prediction/doses.csv``) vs SPECT-measured (``doses.csv``)
  mean doses per region, where both exist (:mod:`LuDosimetryLib.concordance`).
- **Dose–response**: a clinical table beside the patient folders (``clinical.csv``: the columns
  of :mod:`LuDosimetryLib.response.table` except ``dose_Gy``, one row per lesion) joined with each
  patient's measured lesion doses (the reported ``dose_Gy`` and the CT ``mass_g`` of ``doses.csv``, so the
  whole-body tumour dose uses the same mass convention as the dose stage).
"""

from __future__ import annotations

import csv
from pathlib import Path

from ..concordance.outputs import write_concordance_results
from ..concordance.table import DosePair
from ..errors import InputError
from ..report import Report
from ..response.outputs import write_response_results
from ..response.table import read_response_table
from ..results import read_doses_csv, reported_dose, write_csv
from .summary import collect_dose_pairs

__all__ = ["response_table_rows", "write_cohort_statistics"]


def response_table_rows(clinical_csv: Path, results_dir: Path, patient_ids: list[str]) -> list[dict]:
    """Rows of a response table: clinical rows of finished patients with their measured lesion dose and mass."""
    done = set(patient_ids)
    out = []
    with Path(clinical_csv).open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    doses: dict[str, dict[str, dict]] = {}
    for i, row in enumerate(rows, start=2):
        pid = row.get("patient", "")
        if pid not in done:
            continue
        if pid not in doses:
            doses[pid] = {r["region"]: r for r in read_doses_csv(results_dir / "patients" / pid / "doses.csv")}
        les = doses[pid].get(row.get("lesion", ""))
        dose = None if les is None else reported_dose(les, source=f"{pid}/doses.csv")
        if dose is None:
            raise InputError(f"row {i}: lesion {row.get('lesion')!r} of patient {pid!r} has no measured dose in "
                             "its doses.csv", source=str(clinical_csv))
        out.append({**row, "dose_Gy": dose, "dose_method": les.get("dose_method", ""),
                    "mass_g": les.get("mass_g") or row.get("mass_g")})
    return out


def write_cohort_statistics(cohort_dir: str | Path, results_dir: str | Path, patient_ids: list[str], *,
                            report: Report, n_bootstrap: int = 1000) -> dict[str, str]:
    """Concordance and dose–response over the finished patients into ``results_dir/statistics``.

    Returns what was done (or why not) per analysis; never fails the cohort for want of data.
    """
    res_dir = Path(results_dir)
    stats_dir = res_dir / "statistics"
    stats_dir.mkdir(parents=True, exist_ok=True)
    done: dict[str, str] = {}
    pairs_rows = collect_dose_pairs(res_dir, patient_ids)
    if len({r["patient"] for r in pairs_rows}) >= 3:
        write_csv(stats_dir / "concordance_table.csv", pairs_rows,
                  ["patient", "region", "kind", "predicted_Gy", "measured_Gy", "measured_method"])
        pairs = [DosePair(r["patient"], r["region"], r["kind"], r["predicted_Gy"], r["measured_Gy"])
                 for r in pairs_rows]
        write_concordance_results(pairs, stats_dir, report=report, n_bootstrap=n_bootstrap)
        done["concordance"] = f"{len(pairs)} pairs"
    else:
        done["concordance"] = "fewer than 3 patients with predicted and measured doses"
    clinical = Path(cohort_dir) / "clinical.csv" if Path(cohort_dir).is_dir() else None
    if clinical and clinical.is_file():
        rows = response_table_rows(clinical, res_dir, patient_ids)
        if len({r["patient"] for r in rows}) >= 3:
            table = stats_dir / "response_table.csv"
            write_csv(table, rows, ["patient", "lesion", "dose_Gy", "dose_method", "mass_g", *[
                c for c in rows[0] if c not in ("patient", "lesion", "dose_Gy", "dose_method", "mass_g")]])
            write_response_results(read_response_table(table), stats_dir, report=report, n_bootstrap=n_bootstrap)
            done["response"] = f"{len(rows)} lesions"
        else:
            done["response"] = "fewer than 3 finished patients with clinical data"
    else:
        done["response"] = "no clinical.csv beside the patients"
    return done
