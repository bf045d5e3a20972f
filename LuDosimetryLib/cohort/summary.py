"""The cohort folder: summary of outcomes (cohort.json, cohort.csv) and cohort statistics.

After the patients, the cohort statistics are computed from the patients' results folders:
concordance of predicted (``prediction/doses.csv``) and measured (``doses.csv``) reported doses
(``dose_Gy``, docs/conventions.md) per region, where both exist. Every file is written
atomically; a rerun rewrites them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..report import Report
from ..results import read_doses_csv, reported_dose, write_csv, write_json
from .runner import CohortSummary

__all__ = ["write_cohort_summary", "collect_dose_pairs", "SUMMARY_COLUMNS"]

SUMMARY_COLUMNS = ("patient", "status", "seconds", "error")


def collect_dose_pairs(out_dir: Path, patient_ids: list[str]) -> list[dict]:
    """Rows of a concordance table (patient, region, kind, predicted_Gy, measured_Gy, measured_method)
    from the ``dose_Gy`` of the patients' ``prediction/doses.csv`` and ``doses.csv`` (regions in both)."""
    rows = []
    for pid in patient_ids:
        folder = out_dir / "patients" / pid
        meas, pred = folder / "doses.csv", folder / "prediction" / "doses.csv"
        if not (meas.is_file() and pred.is_file()):
            continue
        m = {r["region"]: (r, d) for r in read_doses_csv(meas) if (d := reported_dose(r, source=str(meas))) is not None}
        for r in read_doses_csv(pred):
            p = reported_dose(r, source=str(pred))
            if r["region"] in m and p is not None:
                row, d = m[r["region"]]
                rows.append({"patient": pid, "region": r["region"], "kind": row.get("kind") or "organ",
                             "predicted_Gy": p, "measured_Gy": d, "measured_method": row.get("dose_method", "")})
    return rows


def write_cohort_summary(summary: CohortSummary, out_dir: str | Path, *,
                         extra_sections: Callable[[Report, Path], None] | None = None) -> Path:
    """Write cohort.json, cohort.csv and report.html into ``out_dir``; return report.html's path.

    ``extra_sections(report, out_dir)`` runs the cohort statistics (their files go into
    ``statistics/``); report.html is the cohort report (:mod:`LuDosimetryLib.report.cohort`), read
    from those files.
    """
    out = Path(out_dir)
    rows = [{"patient": o.patient_id, "status": o.status, "seconds": round(o.seconds, 3),
             "error": o.error.splitlines()[0] if o.error else ""} for o in summary.outcomes]
    write_csv(out / "cohort.csv", rows, SUMMARY_COLUMNS)
    failed = {o.patient_id: o.error for o in summary.outcomes if o.status == "failed"}
    write_json(out / "cohort.json", {"scheduler": summary.scheduler, "workers": summary.workers,
                                     "seconds": summary.seconds,
                                     "done": summary.by_status("done"), "skipped": summary.by_status("skipped"),
                                     "failed": failed,
                                     "patients": [{"patient": o.patient_id, "status": o.status, "seconds": o.seconds,
                                                   "summary": dict(o.summary)} for o in summary.outcomes]})
    report = Report("Cohort")
    sec = report.section("cohort", "Cohort run")
    sec.paragraph(f"{len(summary.outcomes)} patients on {summary.scheduler} with {summary.workers} worker(s) in "
                  f"{summary.seconds:.1f} s: {len(summary.by_status('done'))} done, "
                  f"{len(summary.by_status('skipped'))} skipped (unchanged), {len(failed)} failed.")
    sec.table(rows, SUMMARY_COLUMNS)
    if extra_sections:
        extra_sections(report, out)
    from ..report.cohort import write_cohort_report

    return write_cohort_report(out)
