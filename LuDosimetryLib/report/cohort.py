"""The cohort report: summary, per-organ concordance, forest plot of per-patient ratios, response, appendix.

Built from a cohort results folder (``ludosimetry cohort``): ``cohort.csv`` (one row per
patient and its status), ``patients/<id>/doses.csv`` (and ``prediction/doses.csv``), and the
cohort statistics in ``statistics/`` (``concordance.csv``, ``concordance_table.csv``,
``response.json`` and its plots). Statistics are read, not recomputed: the page shows the numbers
of those files. One HTML file, images embedded, no script.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from .. import __version__
from ..concordance.table import region_group
from ..errors import InputError
from ..results import atomic_write_text, read_csv, read_doses_csv
from .flags import ACTION_FLAGS, flag_sentence, split_flags
from .html import Cell, esc, figure_html, flags_html, fmt_pm, fmt_sig, num, page_html, table_html
from .regions import oar_regions

__all__ = ["build_cohort_report", "write_cohort_report", "patient_ratio_rows"]


def _read_patients(folder: Path) -> tuple[list[dict], dict[str, list[dict]], dict[str, list[dict]]]:
    status = read_csv(folder / "cohort.csv") if (folder / "cohort.csv").is_file() else []
    doses, predicted = {}, {}
    for row in status:
        pdir = folder / "patients" / row["patient"]
        if row.get("status") in ("done", "skipped") and (pdir / "doses.csv").is_file():
            doses[row["patient"]] = read_doses_csv(pdir / "doses.csv")
            if (pdir / "prediction" / "doses.csv").is_file():
                predicted[row["patient"]] = read_doses_csv(pdir / "prediction" / "doses.csv")
    return status, doses, predicted


def patient_ratio_rows(pairs: Sequence[Mapping[str, str]], *, kinds: Sequence[str] = ("organ",)
                       ) -> list[tuple[str, float, float, float]]:
    """Per patient: geometric mean of predicted/measured over its regions of ``kinds``, with a 95 % interval
    (the ratio of :mod:`LuDosimetryLib.concordance`, whose differences are predicted − measured).

    The interval is the t-interval of the mean log ratio (n ≥ 2 regions), back-transformed; NaN for
    one region. Rows ``(patient, ratio, low, high)`` in the order of ``pairs``.
    """
    from scipy import stats

    by: dict[str, list[float]] = {}
    for r in pairs:
        p, m = num(r.get("predicted_Gy")), num(r.get("measured_Gy"))
        if r.get("kind", "organ") in kinds and p > 0 and m > 0:
            by.setdefault(r["patient"], []).append(math.log(p / m))
    out = []
    for patient, logs in by.items():
        mean = sum(logs) / len(logs)
        if len(logs) >= 2:
            sd = math.sqrt(sum((x - mean) ** 2 for x in logs) / (len(logs) - 1))
            h = float(stats.t.ppf(0.975, len(logs) - 1)) * sd / math.sqrt(len(logs))
            out.append((patient, math.exp(mean), math.exp(mean - h), math.exp(mean + h)))
        else:
            out.append((patient, math.exp(mean), math.nan, math.nan))
    return out


def _summary(status, doses, predicted) -> str:
    done = [r for r in status if r.get("status") in ("done", "skipped")]
    failed = [r for r in status if r.get("status") == "failed"]
    present = {r["region"] for rows in doses.values() for r in rows}
    groups = oar_regions(present)
    cols = [rs for _, rs in groups]
    header = ["Patient", "Status", *[t for t, _ in groups], "Hottest lesion (Gy)", "Flags needing action"]
    rows = []
    for s in status:
        pid = s["patient"]
        drows = {r["region"]: r for r in doses.get(pid, [])}
        cells = [Cell(esc(pid)), Cell(esc(s.get("status", "")))]
        for regions in cols:
            vals = [fmt_sig(num(drows.get(r, {}).get("dose_Gy"))) for r in regions]
            exact = ";".join(drows.get(r, {}).get("dose_Gy", "") for r in regions)
            cells.append(Cell(f'<span data-value="{esc(exact)}">{esc(" / ".join(vals))}</span>', True))
        les = [num(r.get("dose_Gy")) for r in drows.values() if r.get("kind") == "lesion"]
        les = [x for x in les if math.isfinite(x)]
        cells.append(Cell(esc(fmt_sig(max(les)) if les else "—"), True))
        act = sorted({f for r in drows.values() for f in split_flags(r.get("flags")) if f in ACTION_FLAGS})
        cells.append(Cell(flags_html(";".join(act))))
        rows.append(cells)
    per_organ = []
    for title, regions in groups:
        vals = [num(r.get("dose_Gy")) for rows_ in doses.values() for r in rows_ if r["region"] in regions]
        gbq = [num(r.get("dose_per_activity_Gy_per_GBq")) for rows_ in doses.values() for r in rows_
               if r["region"] in regions]
        vals, gbq = [v for v in vals if math.isfinite(v)], [v for v in gbq if math.isfinite(v)]
        if vals:
            per_organ.append([Cell(esc(title)), Cell(str(len(vals)), True),
                              Cell(esc(f"{fmt_sig(_median(vals))} ({fmt_sig(min(vals))} – {fmt_sig(max(vals))})"),
                                   True),
                              Cell(esc(f"{fmt_sig(_median(gbq))} ({fmt_sig(min(gbq))} – {fmt_sig(max(gbq))})")
                                   if gbq else "—", True)])
    fail = "".join(f"<li><strong>{esc(r['patient'])}</strong> failed: {esc(r.get('error', ''))}</li>" for r in failed)
    warn = (f'<section class="warnings"><h2>Warnings that need action</h2><ul>{fail}</ul></section>' if fail else "")
    return (warn + '<section id="summary"><h2>Summary</h2>'
            f"<p>{len(status)} patients: {len(done)} with results, {len(failed)} failed; "
            f"{len(predicted)} with a PET prediction.</p>"
            + table_html(header, rows, table_id="cohort-patients", css="wide",
                         caption="Reported dose (dose_Gy, Gy) per patient; bilateral organs left / right.")
            + table_html(["Organ", "Regions", "Dose, median (range) (Gy)", "Gy/GBq, median (range)"], per_organ,
                         table_id="cohort-organs", caption="Across the cohort's patients.")
            + "</section>")


def _median(v: Sequence[float]) -> float:
    s = sorted(v)
    n = len(s)
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2]) if n else math.nan


#: Concordance groups shown in the body (organs at risk and lesions), in this order.
MAIN_GROUPS = ("kidney", "parotid", "submandibular", "lacrimal", "red_marrow", "liver", "spleen", "lesion")


def _ci(est: float, lo: float, hi: float) -> str:
    inner = f" ({fmt_sig(lo)} – {fmt_sig(hi)})" if math.isfinite(lo) and math.isfinite(hi) else ""
    return fmt_sig(est) + inner


def _concordance_table(srows, table_id: str, caption: str) -> str:
    rows = [[Cell(esc(r["group"])), Cell(esc(r.get("n", "")), True), Cell(esc(r.get("n_patients", "")), True),
             Cell(esc(_ci(num(r.get("ccc")), num(r.get("ccc_ci95_low")), num(r.get("ccc_ci95_high")))), True),
             Cell(esc(_ci(num(r.get("ba_bias_Gy")), num(r.get("ba_loa_low_Gy")), num(r.get("ba_loa_high_Gy")))), True),
             Cell(esc(_ci(num(r.get("ratio_geometric_mean")), num(r.get("ratio_loa_low")),
                          num(r.get("ratio_loa_high")))), True)] for r in srows]
    return table_html(["Group", "Pairs", "Patients", "CCC (95 % CI)", "Bias, predicted − measured (LoA) (Gy)",
                       "Ratio predicted/measured, geometric mean (LoA)"], rows, table_id=table_id, caption=caption)


def _concordance(stats_dir: Path) -> tuple[str, str]:
    from .figures import concordance_png, forest_png

    table = stats_dir / "concordance_table.csv"
    summary = stats_dir / "concordance.csv"
    if not table.is_file() or not summary.is_file():
        return ('<section class="page" id="concordance"><h2>Concordance of predicted and measured doses</h2>'
                "<p>No concordance analysis: fewer than 3 patients have both a PET prediction and measured doses."
                "</p></section>"), ""
    pairs = read_csv(table)
    srows = [r for r in read_csv(summary) if r.get("scope", "cohort") == "cohort"]
    groups: dict[str, list[tuple[float, float]]] = {}
    for r in pairs:
        groups.setdefault(region_group(r["region"], r.get("kind", "organ")), []).append(
            (num(r["predicted_Gy"]), num(r["measured_Gy"])))
    limits = {r["group"]: (num(r.get("ratio_geometric_mean")), num(r.get("ratio_loa_low")),
                           num(r.get("ratio_loa_high"))) for r in srows}
    shown = {g: groups[g] for g in MAIN_GROUPS if len(groups.get(g, ())) >= 2}
    main_rows = [r for g in MAIN_GROUPS for r in srows if r["group"] == g]
    other_rows = [r for r in srows if r["group"] not in MAIN_GROUPS]
    parts = ['<section class="page" id="concordance"><h2>Concordance of predicted and measured doses</h2>',
             _concordance_table(main_rows, "concordance-table",
                                "Organs at risk and lesions, from statistics/concordance.csv. LoA: 95 % limits of "
                                "agreement; other regions in the appendix.")]
    if shown:
        parts.append(figure_html(concordance_png(shown, limits=limits),
                                 "Per organ: measured against predicted dose with the identity line, and the "
                                 "Bland–Altman plot of the ratio predicted/measured with its geometric-mean bias and "
                                 "95 % limits of agreement.", fig_id="concordance-figure"))
    ratios = patient_ratio_rows(pairs)
    other = _concordance_table(other_rows, "concordance-other", "Other regions.") if other_rows else ""
    if ratios:
        parts.append(figure_html(forest_png(ratios, title="Per-patient ratio predicted / measured (organs)",
                                            xlabel="ratio (log scale); bar: 95 % CI over the patient's organs"),
                                 "Forest plot: for each patient the geometric mean over its organs of the ratio of "
                                 "predicted to measured dose.", fig_id="forest-figure"))
    parts.append("</section>")
    return "".join(parts), other


def _response(stats_dir: Path) -> str:
    path = stats_dir / "response.json"
    head = '<section class="page" id="response"><h2>Response analysis</h2>'
    if not path.is_file():
        return (head + "<p>No response analysis: no clinical.csv beside the patients, or fewer than 3 patients.</p>"
                "</section>")
    res = json.loads(path.read_text(encoding="utf-8"))
    facts = [("Patients", res.get("n_patients")), ("PSA50 responders", res.get("n_responders_psa50"))]
    y = res.get("youden_psa50") or {}
    if y:
        facts.append(("Youden threshold of whole-body tumour dose (Gy)", fmt_sig(num(y.get("threshold")))))
        if "auc" in y:
            facts.append(("AUC", fmt_sig(num(y.get("auc")))))
    roc = res.get("roc_psa50") or {}
    if "auc" in roc:
        facts.append(("ROC AUC (PSA50)", fmt_sig(num(roc.get("auc")))))
    parts = [head, table_html(["Quantity", "Value"], [[Cell(esc(k)), Cell(esc(v), True)] for k, v in facts],
                              table_id="response-table", caption="From statistics/response.json.")]
    for w in res.get("warnings", []):
        parts.append(f'<p class="small">{esc(w)}</p>')
    for name, caption in (("dose_response.png", "Whole-body tumour dose against best PSA change."),
                          ("roc.png", "ROC of whole-body tumour dose for PSA50 response."),
                          ("kaplan_meier.png", "PSA progression-free survival by dose group.")):
        if (stats_dir / name).is_file():
            parts.append(f'<div class="keep">{figure_html(stats_dir / name, caption)}</div>')
    parts.append("</section>")
    return "".join(parts)


def _appendix(doses, status, other_concordance: str = "") -> str:
    header = ["Patient", "Region", "Kind", "Dose ± u (k=1)", "Gy/GBq", "Method", "Flags"]
    rows = []
    flags: dict[str, None] = {}
    for pid, drows in doses.items():
        for r in drows:
            if r.get("kind") not in ("organ", "lesion"):
                continue
            for f in split_flags(r.get("flags")):
                flags[f] = None
            rows.append([Cell(esc(pid)), Cell(esc(r["region"])), Cell(esc(r.get("kind", ""))),
                         Cell(f'<span data-value="{esc(r.get("dose_Gy", ""))}">'
                              f'{esc(fmt_pm(num(r.get("dose_Gy")), num(r.get("dose_rel_uncertainty")), "Gy"))}</span>',
                              True),
                         Cell(esc(fmt_sig(num(r.get("dose_per_activity_Gy_per_GBq")))), True),
                         Cell(esc(r.get("dose_method", "")), css="small"), Cell(flags_html(r.get("flags")))])
    items = "".join(f"<div><dt>{esc(f)}</dt><dd>{esc(flag_sentence(f))}</dd></div>" for f in sorted(flags))
    runs = [[Cell(esc(s["patient"])), Cell(esc(s.get("status", ""))), Cell(esc(s.get("seconds", "")), True),
             Cell(esc(s.get("error", "")))] for s in status]
    return ('<section class="page appendix" id="appendix"><h2>Appendix</h2><h3>A.1 Every region of every patient</h3>'
            + table_html(header, rows, table_id="cohort-regions", css="wide")
            + "<h3>A.2 Every flag, in words</h3>"
            + (f'<dl class="dict" id="flag-dictionary">{items}</dl>' if items else "<p>No flags.</p>")
            + "<h3>A.3 Runs</h3>" + table_html(["Patient", "Status", "Seconds", "Error"], runs, table_id="runs")
            + ("<h3>A.4 Concordance of the other regions</h3>" + other_concordance if other_concordance else "")
            + "</section>")


def build_cohort_report(folder: str | Path, *, generated: str | None = None) -> str:
    """The cohort report of a cohort results folder as one HTML page."""
    f = Path(folder)
    if not (f / "cohort.csv").is_file():
        raise InputError("no cohort.csv: expected the results folder of `ludosimetry cohort`", source=str(f))
    generated = generated or _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    status, doses, predicted = _read_patients(f)
    stats_dir = f / "statistics"
    header = (f'<header class="report"><div><h1>177Lu dosimetry — cohort report</h1><dl class="facts">'
              f"<dt>Cohort</dt><dd>{esc(f.name)}</dd><dt>Patients</dt><dd>{len(status)}</dd>"
              f"<dt>Report</dt><dd>{esc(generated)}</dd><dt>Software</dt><dd>LuDosimetry {esc(__version__)}</dd></dl>"
              '</div><div><h3>Method</h3><p class="method">Each patient was processed by the same post-therapy chain '
              "(`ludosimetry run`; its report in patients/&lt;id&gt;/report.html). Doses are the reported doses "
              "(dose_Gy) of each patient's doses.csv. Concordance compares the PET-predicted with the measured dose "
              "per organ (Lin's CCC, Bland–Altman on differences and on ratios); the forest plot shows each "
              "patient's geometric-mean ratio over its organs. Response relates whole-body tumour dose to PSA "
              "response (statistics/).</p></div></header>")
    concordance, other = _concordance(stats_dir)
    body = [header, _summary(status, doses, predicted), concordance, _response(stats_dir),
            _appendix(doses, status, other),
            f"<footer>LuDosimetry {esc(__version__)} — cohort {esc(f.name)}; generated {esc(generated)}.</footer>"]
    return page_html(f"Cohort dosimetry report — {f.name}", "\n".join(body))


def write_cohort_report(folder: str | Path, *, out: str | Path | None = None, generated: str | None = None) -> Path:
    """Write the cohort report (``folder/report.html`` by default), atomically; return its path."""
    page = build_cohort_report(folder, generated=generated)
    return atomic_write_text(Path(out) if out else Path(folder) / "report.html", page)

