"""The patient report: one HTML page a physicist reads and signs, built from a results folder.

Order: header (patient, cycle, radiopharmaceutical, administered activity, dates, timepoints,
calibration, software, method in one paragraph); warnings that need action; organs at risk
(reported dose ± standard uncertainty, 95 % interval, Gy/GBq, BED/EQD2, cumulative over cycles
from the ledger, limit and % of limit) beside a key dose image; lesions (volume, dose, D98/D50/D2);
dose images over the CT at the kidneys' and the hottest lesion's levels; TACs with their fits and
DVHs; then the appendix (every region, every fit, every flag in words, limits and parameters, the
ground truth for synthetic patients).

Every number comes from the results folder (:mod:`.data`); each dose cell carries the exact value
it shows in ``data-value`` so a test can compare the page with ``doses.csv``.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from .. import __version__
from ..results import atomic_write_text
from .data import PatientResults, load_patient_results
from .flags import ACTION_FLAGS, flag_sentence, split_flags
from .html import (
    Cell,
    esc,
    figure_html,
    flags_html,
    fmt_interval,
    fmt_percent,
    fmt_pm,
    fmt_sig,
    fmt_value,
    num,
    page_html,
    png_data_uri,
    table_html,
)
from .regions import OrganLimit, display_name, ledger_organ, limit_for, oar_regions

__all__ = ["build_patient_report", "write_patient_report", "MODEL_WORDS", "METHOD_WORDS"]

#: Fitted models in words.
MODEL_WORDS = {"mono": "mono-exponential", "uptake_washout": "uptake–washout (bi-exponential)",
               "uptake_washout_fixed": "uptake–washout, uptake rate fixed", "bi": "bi-exponential",
               "tri": "tri-exponential", "trapezoid": "trapezoid with exponential tail",
               "population_prior": "mono-exponential with population prior"}
#: dose_method values in words.
METHOD_WORDS = {"kernel+gtm-pvc": "kernel-convolution dose map, partial-volume corrected (GTM)",
                "kernel+recovery-pvc": "kernel-convolution dose map, partial-volume corrected (recovery)",
                "kernel": "kernel-convolution dose-map mean", "convolution": "kernel-convolution dose-map mean",
                "led": "local energy deposition", "led+gtm-pvc": "local energy deposition, GTM corrected",
                "sphere": "sphere S-value", "red_marrow_l2l4": "red marrow from the L2–L4 vertebrae",
                "red_marrow_blood": "red marrow from the blood", "pet_prediction": "PET prediction"}


def _f(row: Mapping[str, str] | None, key: str) -> float:
    return num(row.get(key)) if row else math.nan


def _dose_cells(row: Mapping[str, str]) -> list[Cell]:
    d, u = _f(row, "dose_Gy"), _f(row, "dose_rel_uncertainty")
    lo, hi = _f(row, "dose_ci95_low_Gy"), _f(row, "dose_ci95_high_Gy")
    unbounded = "ci_unbounded" in split_flags(row.get("flags"))
    if unbounded:
        hi = math.inf
    interval = fmt_interval(lo, hi, "Gy") if (math.isfinite(lo) or unbounded) else "—"
    return [Cell(f'<span data-value="{esc(row.get("dose_Gy", ""))}">{esc(fmt_pm(d, u, "Gy"))}</span>', True,
                 "dose"),
            Cell(esc(interval), True, "ci"),
            Cell(f'<span data-value="{esc(row.get("dose_per_activity_Gy_per_GBq", ""))}">'
                 f'{esc(fmt_sig(_f(row, "dose_per_activity_Gy_per_GBq")))}</span>', True, "gygbq")]


# --- header ---------------------------------------------------------------------------------
def _tp_label(label: object) -> str:
    text = str(label)
    return f"tp{text}" if text.isdigit() else text


def _timepoints(res: PatientResults) -> str:
    tps = res.ingest.get("timepoints")
    if tps:
        return "; ".join(f"{esc(_tp_label(t.get('label', '')))} {fmt_sig(float(t['time_h']), 3)} h"
                         + (f" ({esc(str(t.get('acquisition_start', ''))[:16].replace('T', ' '))})"
                            if t.get("acquisition_start") else "") for t in tps)
    hours = res.ingest.get("timepoints_h") or []
    return ", ".join(fmt_sig(float(h), 3) for h in hours) + " h p.i." if hours else "—"


def _method_paragraph(res: PatientResults) -> str:
    p = res.pipeline
    n_tp = len(res.ingest.get("timepoints_h") or res.ingest.get("timepoints") or [])
    pv = {"gtm": "the geometric transfer matrix of all labelled regions", "recovery": "recovery coefficients of the "
          "camera's recovery curve", "none": "no partial-volume correction"}.get(p.get("partial_volume", ""), "—")
    dose = ("convolution of the voxel TIA with a 177Lu dose-voxel kernel (" + ("electrons and photons"
            if p.get("photons", True) else "electrons only") + "), scaled by the CT mass density"
            if p.get("dose_method", "convolution") == "convolution" else "local energy deposition")
    align = ("CTs registered rigidly to the reference CT, refined locally for "
             + ", ".join(p.get("refine_regions") or []) if p.get("align", True) else "timepoints not registered")
    return (f"Quantitative 177Lu SPECT/CT at {n_tp} timepoints; {align}. Region activities corrected by {pv} "
            f"(SPECT resolution {fmt_sig(num(p.get('spect_fwhm_mm')))} mm FWHM). Each region's time-activity curve was "
            "fitted with sums of exponentials chosen by AICc; its time-integrated activity (TIA) has a 95 % "
            f"interval from the fit. Voxel TIA ({p.get('voxel_method', '—')}) gave the dose map by {dose}. The "
            "reported dose of a region (dose_Gy) is the dose-map mean scaled by the region's corrected over its "
            "map TIA (method per region in the appendix); uncertainties are standard (k = 1) unless marked 95 %. "
            "BED and EQD2 follow the linear-quadratic model with the Lea–Catcheside factor of the fitted curve.")


def _header(res: PatientResults, generated: str) -> str:
    ing = res.ingest
    nuclide = ing.get("nuclide", "Lu-177")
    ligand = ing.get("ligand", "")
    calib = ing.get("calibration") or res.pipeline.get("calibration") or "—"
    if res.pipeline.get("sensitivity_cps_per_MBq"):
        calib = f"sensitivity {res.pipeline['sensitivity_cps_per_MBq']} cps/MBq (given)"
    facts = [("Patient", res.patient_id), ("Cycle", str(res.cycle)),
             ("Radiopharmaceutical", f"{nuclide} {ligand}".strip()),
             ("Administered", fmt_value(res.administered_activity_Bq / 1e9, "GBq", 4)),
             ("Administration", str(ing.get("injection_datetime", "—")).replace("T", " ")[:16]),
             ("Report", generated), ("Calibration", str(calib)),
             ("Software", f"LuDosimetry {res.run.get('versions', {}).get('LuDosimetryLib', __version__)}")]
    dl = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in facts)
    synthetic = ('<p class="warnbanner"><strong>Synthetic patient (phantom): not a clinical result.</strong> '
                 "The comparison with the ground truth is in the appendix.</p>" if res.synthetic else "")
    return (f'<header class="report"><div><h1>177Lu dosimetry report — cycle {res.cycle}</h1>'
            f'<dl class="facts">{dl}</dl><p class="small"><span class="muted">Timepoints (h p.i.):</span> '
            f"{_timepoints(res)}</p>{synthetic}</div>"
            f'<div><h3>Method</h3><p class="method">{esc(_method_paragraph(res))}</p></div></header>')


# --- warnings -------------------------------------------------------------------------------
def _warnings(res: PatientResults, oar: Sequence[str], lesions: Sequence[str], limits) -> str:
    items: list[str] = []
    for region in [*oar, *lesions]:
        row = res.dose_row(region) or {}
        fit = res.fit_row(region) or {}
        act = [f for f in dict.fromkeys(split_flags(row.get("flags")) + split_flags(fit.get("flags")))
               if f in ACTION_FLAGS]
        for f in act:
            items.append(f"<li><strong>{esc(display_name(region))}</strong>: <span class=\"flag\">{esc(f)}</span> — "
                         f"{esc(flag_sentence(f))}</li>")
        lim = limit_for(region, limits)
        if lim is not None:
            value = _cumulative(res, region)[0 if lim.quantity == "dose_Gy" else 1]
            if not math.isfinite(value):
                value = _f(row, lim.quantity)
            if math.isfinite(value) and value >= 0.8 * lim.limit_Gy:
                items.append(f"<li><strong>{esc(display_name(region))}</strong>: {esc(fmt_value(value, 'Gy'))} is "
                             f"{esc(fmt_percent(value / lim.limit_Gy))} of the {esc(fmt_value(lim.limit_Gy, 'Gy'))} "
                             "limit.</li>")
    seen = set()
    for w in res.warnings:
        key = (w.get("stage"), w.get("message"))
        if key in seen:
            continue
        seen.add(key)
        items.append(f"<li><span class=\"muted\">{esc(w.get('stage', ''))}</span> {esc(w.get('message', ''))}</li>")
    if not items:
        return '<section class="warnings"><h2>Warnings</h2><p>None.</p></section>'
    return ('<section class="warnings" id="warnings"><h2>Warnings that need action</h2>'
            f'<ul>{"".join(items)}</ul></section>')


# --- organs at risk and lesions -------------------------------------------------------------
def _ledger_previous(res: PatientResults, organ: str) -> tuple[float, float]:
    """Cumulative dose and BED of ``organ`` over the ledger's cycles before this one (Gy)."""
    if res.ledger is None:
        return math.nan, math.nan
    before = [c for c in res.ledger.cycles if c.cycle < res.cycle and organ in c.cumulative]
    if not before:
        return 0.0, 0.0
    cum = before[-1].cumulative[organ]
    return cum.dose_Gy, cum.bed_Gy if cum.bed_Gy is not None else math.nan


def _cumulative(res: PatientResults, region: str) -> tuple[float, float]:
    """(cumulative dose, cumulative BED) of ``region`` including this cycle, from the ledger (Gy)."""
    organ = ledger_organ(region)
    if res.ledger is None or organ is None:
        return math.nan, math.nan
    prev_d, prev_b = _ledger_previous(res, organ)
    row = res.dose_row(region) or {}
    return prev_d + _f(row, "dose_Gy"), prev_b + _f(row, "bed_Gy")


def _oar_table(res: PatientResults, groups, limits) -> str:
    ledger = res.ledger is not None
    header = ["Organ", "Dose ± u (k=1)", "95 % interval", "Gy/GBq", "BED (Gy)", "EQD2 (Gy)",
              *(["Cumulative, ledger (Gy)"] if ledger else []), "Limit", "% of limit", "Flags"]
    rows = []
    for title, regions in groups:
        for region in regions:
            row = res.dose_row(region) or {}
            cum_d, cum_b = _cumulative(res, region)
            lim: OrganLimit | None = limit_for(region, limits)
            ref = (cum_d if lim and lim.quantity == "dose_Gy" else cum_b) if ledger else math.nan
            if lim is not None and not math.isfinite(ref):
                ref = _f(row, lim.quantity)
            pct = ref / lim.limit_Gy if lim is not None and math.isfinite(ref) else math.nan
            pct_css = "over" if pct >= 1.0 else ("near" if pct >= 0.8 else "")
            cum = [Cell(esc(fmt_sig(cum_d) + (f" (BED {fmt_sig(cum_b)})" if math.isfinite(cum_b) else "")), True)]
            lim_text = (fmt_value(lim.limit_Gy, "Gy") + (" BED" if lim.quantity == "bed_Gy" else "")) if lim else "—"
            name = display_name(region) if len(regions) > 1 else title
            rows.append((region, [Cell(esc(name)), *_dose_cells(row), Cell(esc(fmt_sig(_f(row, "bed_Gy"))), True),
                                  Cell(esc(fmt_sig(_f(row, "eqd2_Gy"))), True), *(cum if ledger else []),
                                  Cell(esc(lim_text), bool(lim)), Cell(esc(fmt_percent(pct)), True, pct_css),
                                  Cell(flags_html(row.get("flags")))]))
    note = ("Cumulative: previous cycles from the ledger plus this cycle." if ledger else
            "No dose ledger: doses and % of limit are of this cycle only.")
    return _table_with_regions(header, rows, table_id="oar-table",
                               caption=f"Reported absorbed dose (dose_Gy) of cycle {res.cycle}. {note} "
                                       "Limits and their sources in the appendix.")


def _table_with_regions(header, rows, *, table_id, caption, css="") -> str:
    html_rows = table_html(header, [r for _, r in rows], caption=caption, table_id=table_id, css=css)
    # tag each body row with its region (the tests read the page by region)
    parts = html_rows.split("<tr>")
    out = [parts[0], "<tr>" + parts[1]]
    for (region, _), part in zip(rows, parts[2:]):
        out.append(f'<tr data-region="{esc(region)}">' + part)
    return "".join(out)


def _lesion_table(res: PatientResults, lesions: Sequence[str]) -> str:
    if not lesions:
        return "<p>No lesions are segmented.</p>"
    header = ["Lesion", "Volume (mL)", "Dose ± u (k=1)", "95 % interval", "Gy/GBq", "D98 / D50 / D2 (Gy)", "Flags"]
    rows = []
    for region in lesions:
        row = res.dose_row(region) or {}
        dcells = _dose_cells(row)
        dx = " / ".join(fmt_sig(_f(row, k)) for k in ("d98_Gy", "d50_Gy", "d2_Gy"))
        rows.append((region, [Cell(esc(display_name(region))), Cell(esc(fmt_sig(_f(row, "volume_mL"))), True),
                              *dcells, Cell(esc(dx), True), Cell(flags_html(row.get("flags")))]))
    return _table_with_regions(header, rows, table_id="lesion-table",
                               caption="Lesions by reported dose; D_x: minimum dose to the hottest x % of the volume "
                                       "(dose map).")


# --- figures --------------------------------------------------------------------------------
def _images(res: PatientResults, oar_flat: Sequence[str], lesions: Sequence[str]) -> tuple[str, str]:
    """(key image HTML for the overview, the images section HTML)."""
    from .figures import display_volumes, dose_slices_png

    if res.ct is None or res.labels is None or res.dose is None or res.label_table is None:
        missing = [n for n, v in (("reference CT (ct_HU.nii.gz)", res.ct), ("label map (labels.nii.gz)", res.labels),
                                  ("dose map (dose_Gy.nii.gz)", res.dose)) if v is None]
        msg = f"<p>No dose images: the results folder lacks the {', '.join(missing) or 'label table'}.</p>"
        return "", msg
    vol = display_volumes(res.ct, res.dose, res.labels, res.label_table, [*oar_flat, *lesions])
    kidneys = [r for r in ("kidney_left", "kidney_right") if r in vol.masks]
    key_html, blocks = "", []
    if kidneys:
        from dataclasses import replace

        import numpy as np

        both = replace(vol, masks={**vol.masks, "_kidneys": np.logical_or.reduce([vol.masks[k] for k in kidneys])})
        key = dose_slices_png(both, centre_region="_kidneys", views=("axial",), width_in=5.6,
                              label_regions=lesions)
        key_html = figure_html(key, "Dose over CT at the kidneys' level (axial; patient's right on the left). "
                                    "Outlines: organs cyan, lesions green.", fig_id="key-image")
        png = dose_slices_png(both, centre_region="_kidneys", views=("axial", "coronal", "mip"), width_in=10.5,
                              label_regions=lesions)
        blocks.append(figure_html(png, "At the kidneys' level: axial and coronal slices through the kidneys' centre, "
                                       "and the maximum-intensity projection of the dose (anterior view).",
                                  fig_id="dose-kidneys"))
    hot = max(lesions, key=lambda r: _f(res.dose_row(r), "dose_Gy") if math.isfinite(
        _f(res.dose_row(r), "dose_Gy")) else -1.0, default=None)
    if hot is not None and hot in vol.masks:
        png = dose_slices_png(vol, centre_region=hot, views=("axial", "coronal"), width_in=8.0,
                              label_regions=lesions)
        blocks.append(figure_html(png, f"At the hottest lesion's level ({display_name(hot)}, "
                                       f"{fmt_value(_f(res.dose_row(hot), 'dose_Gy'), 'Gy')}): axial and coronal "
                                       "slices through its centre.", fig_id="dose-lesion"))
    return key_html, "".join(blocks)


def _tac_groups(res: PatientResults, groups, lesions: Sequence[str]) -> list[tuple[str, list[str]]]:
    have = {r["region"] for r in res.tac}
    out = [(title, [r for r in regions if r in have]) for title, regions in groups]
    others = [r for t, rs in out if len(rs) == 1 for r in rs]
    out = [(t, rs) for t, rs in out if len(rs) > 1]
    if others:
        out.append((", ".join(display_name(r) for r in others), others))
    if lesions:
        out.append(("Lesions", [r for r in lesions if r in have]))
    return [(t, rs) for t, rs in out if rs]


def _kinetics_section(res: PatientResults, groups, lesions, *, log_scale: bool) -> str:
    from .figures import dvh_panel_png, tac_panel_png

    fits = {r["region"]: r for r in res.fits}
    tac_groups = _tac_groups(res, groups, lesions)
    parts = ['<section class="page" id="kinetics"><h2>Time-activity curves and dose-volume histograms</h2>']
    if tac_groups:
        lin = tac_panel_png(res.tac, fits, tac_groups, log_scale=False)
        log = tac_panel_png(res.tac, fits, tac_groups, log_scale=True)
        first, second = ("tac-log", "tac-lin") if log_scale else ("tac-lin", "tac-log")
        parts.append(
            '<div class="scale">'
            f'<input type="radio" name="tacscale" id="{first}" checked><label for="{first}">'
            f'{"log" if log_scale else "linear"}</label>'
            f'<input type="radio" name="tacscale" id="{second}"><label for="{second}">'
            f'{"linear" if log_scale else "log"}</label>'
            '<div class="panels">'
            f'<figure class="lin" id="tac-figure"><img src="{png_data_uri(lin)}" alt="TACs, linear scale">'
            "<figcaption>Activity (MBq, partial-volume corrected) at each timepoint and the fitted curve: solid to "
            "the last timepoint, dotted beyond (extrapolated tail). Right-side organs dashed.</figcaption></figure>"
            f'<figure class="log"><img src="{png_data_uri(log)}" alt="TACs, log scale">'
            "<figcaption>The same on a logarithmic activity axis.</figcaption></figure></div></div>")
        if log_scale:  # the checked radio decides what shows; swap the classes' meaning
            parts[-1] = parts[-1].replace('class="lin"', 'class="tmp"').replace('class="log"', 'class="lin"') \
                .replace('class="tmp"', 'class="log"')
    dvh_groups = [("Organs at risk", [r for _, rs in groups for r in rs if r in res.dvh]),
                  ("Lesions", [r for r in lesions if r in res.dvh])]
    dvh_groups = [(t, rs) for t, rs in dvh_groups if rs]
    if dvh_groups:
        parts.append(figure_html(dvh_panel_png(res.dvh, dvh_groups),
                                 "Cumulative dose-volume histograms of the dose map (volume receiving at least the "
                                 "dose).", fig_id="dvh-figure"))
    parts.append("</section>")
    return "".join(parts)


def _prediction_section(res: PatientResults, oar_flat: Sequence[str], lesions: Sequence[str]) -> str:
    """Predicted (pre-therapy PET) beside measured doses of the organs at risk and lesions."""
    if not res.prediction:
        return ""
    pred = {r["region"]: r for r in res.prediction}
    rows = []
    for region in [*oar_flat, *lesions]:
        p, m = pred.get(region), res.dose_row(region)
        if p is None or m is None:
            continue
        dp, dm = _f(p, "dose_Gy"), _f(m, "dose_Gy")
        rows.append((region, [Cell(esc(display_name(region))), Cell(esc(fmt_value(dp, "Gy")), True),
                              Cell(esc(fmt_value(dm, "Gy")), True),
                              Cell(esc(fmt_sig(dp / dm) if dm > 0 and math.isfinite(dp) else "—"), True),
                              Cell(flags_html(p.get("flags")))]))
    if not rows:
        return ""
    return ('<section id="prediction"><h2>Pre-therapy PET prediction</h2>'
            + _table_with_regions(["Region", "Predicted (PET)", "Measured (this cycle)", "Predicted / measured",
                                   "Prediction flags"], rows, table_id="prediction-table",
                                  caption="Predicted 177Lu dose from the 68Ga-PSMA PET (prediction/doses.csv) and the "
                                          "reported dose of this cycle.")
            + "</section>")


# --- appendix -------------------------------------------------------------------------------
def _appendix_regions(res: PatientResults) -> str:
    header = ["Region", "Kind", "Method", "Volume (mL)", "Mass (g)", "Dose ± u (k=1)", "95 % interval", "Gy/GBq",
              "BED / EQD2 (Gy)", "Flags"]
    rows, stats = [], []
    for row in res.doses:
        region = row.get("region", "")
        rows.append((region, [
            Cell(esc(region)), Cell(esc(row.get("kind", ""))), Cell(esc(row.get("dose_method", "")), css="small"),
            Cell(esc(fmt_sig(_f(row, "volume_mL"))), True), Cell(esc(fmt_sig(_f(row, "mass_g"))), True),
            *_dose_cells(row),
            Cell(esc(f"{fmt_sig(_f(row, 'bed_Gy'))} / {fmt_sig(_f(row, 'eqd2_Gy'))}"), True),
            Cell(flags_html(row.get("flags")))]))
        stats.append((region, [Cell(esc(region))] + [Cell(esc(fmt_sig(_f(row, k))), True) for k in (
            "map_mean_dose_Gy", "median_dose_Gy", "min_dose_Gy", "max_dose_Gy", "d98_Gy", "d50_Gy", "d2_Gy")]))
    return ("<h3>A.1 Every region (doses.csv)</h3>"
            + _table_with_regions(header, rows, table_id="all-regions", css="wide",
                                  caption="All regions of the label map, in doses.csv's order: the reported dose "
                                          "and what derives from it.")
            + _table_with_regions(["Region", "Map mean (Gy)", "Median (Gy)", "Min (Gy)", "Max (Gy)", "D98 (Gy)",
                                   "D50 (Gy)", "D2 (Gy)"], stats, table_id="map-statistics", css="wide",
                                  caption="Statistics of the voxel dose map in each region (they keep the SPECT's "
                                          "partial-volume loss; the reported dose corrects it where dose_method says "
                                          "pvc)."))


def _appendix_fits(res: PatientResults, groups_all) -> str:
    from .figures import tac_panel_png

    header = ["Region", "Model", "Points", "TIA ± u (k=1)", "TIA 95 % interval", "T_eff (h)", "Tail", "Interval",
              "Flags"]
    rows = []
    for f in res.fits:
        tia, u = _f(f, "tia_Bq_h") / 1e9, _f(f, "tia_rel_uncertainty")  # GBq·h, beside the GBq administered
        lo, hi = _f(f, "tia_ci95_low_Bq_h") / 1e9, _f(f, "tia_ci95_high_Bq_h") / 1e9
        if "ci_unbounded" in split_flags(f.get("flags")):
            hi = math.inf
        rows.append((f.get("region", ""), [
            Cell(esc(f.get("region", ""))), Cell(esc(MODEL_WORDS.get(f.get("model", ""), f.get("model", "")))),
            Cell(esc(f.get("n_points", "")), True), Cell(esc(fmt_pm(tia, u, "GBq·h")), True),
            Cell(esc(fmt_interval(lo, hi, "GBq·h") if math.isfinite(lo) or math.isinf(hi) else "—"), True),
            Cell(esc(fmt_sig(_f(f, "effective_half_life_h"))), True),
            Cell(esc(fmt_percent(_f(f, "tail_fraction"))), True), Cell(esc(f.get("ci_method", "")), css="small"),
            Cell(flags_html(f.get("flags")))]))
    parts = ["<h3>A.2 Every fit (fits.csv)</h3>",
             _table_with_regions(header, rows, table_id="all-fits", css="wide",
                                 caption="Time-integrated activity of each region from its fitted curve (GBq·h); "
                                         "Tail: share of the TIA after the last timepoint.")]
    singles = [(r["region"], [r["region"]]) for r in res.fits if any(t["region"] == r["region"] for t in res.tac)]
    if singles:
        png = tac_panel_png(res.tac, {r["region"]: r for r in res.fits}, singles, width_in=10.0)
        parts.append(figure_html(png, "Every fit: measured activity (points) and fitted curve, one panel per region.",
                                 fig_id="all-fits-figure"))
    return "".join(parts)


def _appendix_flags(res: PatientResults) -> str:
    present: dict[str, None] = {}
    for rows in (res.doses, res.fits, res.tac, res.prediction):
        for r in rows:
            for f in split_flags(r.get("flags")):
                present[f] = None
    if not present:
        return "<h3>A.3 Flags</h3><p>No region carries a flag.</p>"
    items = "".join(f"<div><dt>{esc(f)}</dt><dd>{esc(flag_sentence(f))}</dd></div>" for f in sorted(present))
    return f'<h3>A.3 Every flag in this report, in words</h3><dl class="dict" id="flag-dictionary">{items}</dl>'


def _appendix_limits(res: PatientResults, limits) -> str:
    from .regions import DEFAULT_LIMITS

    table = DEFAULT_LIMITS if limits is None else limits
    rows = [[Cell(esc(k.replace("_", " "))), Cell(esc(("absorbed dose " if v.quantity == "dose_Gy" else "BED ")
                                                  + fmt_value(v.limit_Gy, "Gy"))), Cell(esc(v.source))]
            for k, v in table.items()]
    ledger = (f"<p>Cumulative doses: previous cycles from the ledger {esc(res.ledger_source)} plus this cycle's "
              "reported dose.</p>" if res.ledger is not None else
              "<p>No dose ledger was found (ledger.json beside the results or the patient folder): the cumulative "
              "column is this cycle only and % of limit refers to this cycle.</p>")
    return ("<h3>A.4 Limits and cumulative doses</h3>"
            + table_html(["Organ", "Limit", "Source and status"], rows, table_id="limits") + ledger)


def _appendix_truth(res: PatientResults) -> str:
    if not res.synthetic:
        return ""
    table = res.folder / "truth_comparison.csv"
    if table.is_file():  # the demo's like-for-like comparison (true TIA through the pipeline's own physics)
        from ..results import read_csv

        cols = ("region", "dose_Gy", "true_dose_Gy", "dose_ratio", "tia_ratio", "true_led_dose_Gy", "cause")
        rows = []
        for r in read_csv(table):
            rows.append((r.get("region", ""), [Cell(esc(r.get("region", "")))]
                         + [Cell(esc(fmt_sig(num(r.get(c)))), True) for c in cols[1:-1]]
                         + [Cell(esc(r.get("cause", "")), css="small")]))
        return ("<h3>A.5 Ground truth (synthetic patient)</h3>"
                + _table_with_regions(["Region", "Dose (Gy)", "True dose (Gy)", "Dose ratio", "TIA ratio",
                                       "True LED dose (Gy)", "Cause outside tolerance"], rows, table_id="truth",
                                      css="wide", caption="truth_comparison.csv: true dose = the true TIA through the "
                                      "pipeline's kernel physics on the phantom's fine grid (ratio measures imaging "
                                      "only); LED: electron local deposition of the true TIA."))
    cyc = next((c for c in res.truth.get("cycles", []) if int(c.get("cycle", 1)) == res.cycle), None)
    if cyc is None:
        return ""
    true_dose, true_tia = cyc.get("dose_Gy", {}), cyc.get("tia_Bq_h", {})
    rows = []
    for row in res.doses:
        region = row["region"]
        if region not in true_dose and region not in true_tia:
            continue
        fit = res.fit_row(region) or {}
        d, td = _f(row, "dose_Gy"), float(true_dose.get(region, math.nan))
        t, tt = _f(fit, "tia_Bq_h"), float(true_tia.get(region, math.nan))
        rows.append((region, [Cell(esc(region)), Cell(esc(fmt_sig(d)), True), Cell(esc(fmt_sig(td)), True),
                              Cell(esc(fmt_sig(d / td) if td > 0 else "—"), True),
                              Cell(esc(fmt_sig(t / 1e9)), True), Cell(esc(fmt_sig(tt / 1e9)), True),
                              Cell(esc(fmt_sig(t / tt) if tt > 0 else "—"), True)]))
    return ("<h3>A.5 Ground truth (synthetic patient)</h3>"
            + _table_with_regions(["Region", "Dose (Gy)", "True dose (Gy)", "Ratio", "TIA (GBq·h)",
                                   "True TIA (GBq·h)", "Ratio"], rows, table_id="truth",
                                  caption="True doses: " + str(cyc.get("dose_method", "phantom truth"))
                                          + ". True TIA: the phantom's analytic integral."))


def _appendix_run(res: PatientResults) -> str:
    p = res.pipeline
    rows = [[Cell(esc(k)), Cell(esc(v if not isinstance(v, list | tuple) else ", ".join(map(str, v))))]
            for k, v in p.items()]
    versions = ", ".join(f"{k} {v}" for k, v in res.run.get("versions", {}).items())
    return ("<h3>A.6 Settings of the run</h3>" + table_html(["Setting", "Value"], rows, table_id="settings")
            + f"<p class=\"small muted\">Run {esc(res.run.get('started', ''))} – {esc(res.run.get('finished', ''))}; "
              f"{esc(versions)}.</p>")


# --- page -----------------------------------------------------------------------------------
def build_patient_report(res: PatientResults, *, limits: Mapping[str, OrganLimit] | None = None,
                         log_scale: bool = False, extra_sections: Iterable[tuple[str, str]] = (),
                         generated: str | None = None) -> str:
    """The patient report of ``res`` as one HTML page (images embedded).

    Parameters
    ----------
    res : PatientResults
        From :func:`LuDosimetryLib.report.data.load_patient_results`.
    limits : mapping, optional
        Region prefix → :class:`OrganLimit`; default :data:`~LuDosimetryLib.report.regions.DEFAULT_LIMITS`.
    log_scale : bool
        Show the TACs on a logarithmic axis first (the page offers both).
    extra_sections : iterable of (title, html)
        Further results of other stages (uncertainty budget, dose notes), HTML already escaped, placed
        at the end of the appendix.
    generated : str, optional
        Report date text (default now, UTC).
    """
    generated = generated or _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    kinds = {r["region"]: r.get("kind", "") for r in res.doses}
    groups = oar_regions(set(kinds))
    oar_flat = [r for _, rs in groups for r in rs]
    lesions = sorted((r for r, k in kinds.items() if k == "lesion"),
                     key=lambda r: -(_f(res.dose_row(r), "dose_Gy") if math.isfinite(_f(res.dose_row(r), "dose_Gy"))
                                     else -1.0))
    key_html, images_html = _images(res, oar_flat, lesions)
    body = [_header(res, generated), _warnings(res, oar_flat, lesions, limits),
            '<section id="organs-at-risk" class="overview"><div><h2>Organs at risk</h2>'
            + _oar_table(res, groups, limits) + "</div>" + (f"<div>{key_html}</div>" if key_html else "")
            + "</section>",
            '<section id="lesions"><h2>Lesions</h2>' + _lesion_table(res, lesions) + "</section>",
            _prediction_section(res, oar_flat, lesions),
            f'<section class="page" id="images"><h2>Dose images</h2>{images_html}</section>',
            _kinetics_section(res, groups, lesions, log_scale=log_scale)]
    further = "".join(f'<h3>A.{7 + i} {esc(title)}</h3><div class="stage">{block}</div>'
                      for i, (title, block) in enumerate(extra_sections))
    body.append('<section class="page appendix" id="appendix"><h2>Appendix</h2>'
                + _appendix_regions(res) + _appendix_fits(res, groups) + _appendix_flags(res)
                + _appendix_limits(res, limits) + _appendix_truth(res) + _appendix_run(res) + further + "</section>")
    body.append(f"<footer>LuDosimetry {esc(__version__)} — patient {esc(res.patient_id)}, cycle {res.cycle}; "
                f"generated {esc(generated)}. Reviewed and approved by: "
                "______________________ (name, date, signature)</footer>")
    return page_html(f"Dosimetry report — {res.patient_id}, cycle {res.cycle}", "\n".join(body))


def write_patient_report(folder: str | Path, *, ct=None, segmentation=None, ledger: str | Path | None = None,
                         out: str | Path | None = None, limits: Mapping[str, OrganLimit] | None = None,
                         log_scale: bool = False, extra_sections: Iterable[tuple[str, str]] = (),
                         generated: str | None = None) -> Path:
    """Write ``report.html`` of a results folder (atomically); return its path.

    ``ct`` and ``segmentation`` default to the folder's ``ct_HU.nii.gz`` and ``labels.nii.gz``;
    ``out`` defaults to ``folder/report.html``. See :func:`build_patient_report`.
    """
    res = load_patient_results(folder, ct=ct, segmentation=segmentation, ledger=ledger)
    page = build_patient_report(res, limits=limits, log_scale=log_scale, extra_sections=extra_sections,
                                generated=generated)
    return atomic_write_text(Path(out) if out else Path(folder) / "report.html", page)
