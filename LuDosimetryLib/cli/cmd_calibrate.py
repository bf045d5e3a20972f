"""``ludosimetry calibrate {sensitivity,recovery,dead-time} ... --store calibration.json``.

Measures a SPECT system's sensitivity (cylinder scan, optionally with its decay series for the
dead time), recovery curve (sphere phantom) or dead time (decay series) and appends an entry to
the calibration store keyed on the scan's camera, collimator, energy windows and reconstruction
(:class:`LuDosimetryLib.model.Camera`), dated, with a drift warning against the previous entry of
that key. A scan from another system than the store's entries is refused, the message naming the
field that differs. Scan folders are ``nm.nii.gz`` + ``nm.json`` + ``ct.nii.gz``
(:mod:`LuDosimetryLib.calibration.scans`). With ``--out`` the details go to a results folder
(JSON/CSV, a PNG plot, report.html with a calibration section, run.json).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, replace
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..calibration.dead_time import fit_dead_time
from ..calibration.geometry import phantom_mask_from_ct, voxel_volume_mL
from ..calibration.recovery import MODELS, Sphere, fit_recovery_curve, measure_sphere_recovery
from ..calibration.scans import read_calibration_scan
from ..calibration.sensitivity import METHODS, sensitivity_from_cylinder
from ..calibration.store import CalibrationEntry, CalibrationStore
from ..errors import InputError
from ..ingest.quant import dead_time_factor
from ..report import Report
from ..results import RunRecord, atomic_directory, check_output_path, to_jsonable, write_csv, write_json
from ..units import BQ_PER_MBQ
from .options import number

HELP = "camera sensitivity, recovery coefficients and dead time from phantom scans, into the calibration store"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register ``calibrate sensitivity|recovery|dead-time``."""
    sub = parser.add_subparsers(dest="kind", metavar="KIND", required=True)

    def common(p):
        p.add_argument("--store", type=Path, required=True, help="calibration store (JSON; created if missing)")
        p.add_argument("--out", type=Path, help="results folder for the details (JSON/CSV, plot, run.json)")
        p.add_argument("--force", action="store_true", help="replace an existing --out folder")
        p.add_argument("--date", help="calibration date (YYYY-MM-DD; default: the scan's acquisition date)")
        p.add_argument("--accept-drift", action="store_true",
                       help="store a sensitivity outside the plausible range or far from the previous calibration "
                            "(recorded as a warning); without it such a result is refused")

    s = sub.add_parser("sensitivity", help="sensitivity (cps/MBq) from a uniform cylinder scan")
    s.add_argument("scan", type=Path, help="cylinder scan folder (nm.nii.gz, nm.json, ct.nii.gz)")
    common(s)
    s.add_argument("--assay-activity-MBq", type=number("MBq", minimum=0),
                   help="assayed activity (MBq); default: sidecar injection")
    s.add_argument("--assay-time", help="assay time (ISO datetime); default: sidecar injection.datetime")
    s.add_argument("--assay-rel-uncertainty", type=number(minimum=0, maximum=1, strict_minimum=False), default=0.02,
                   help="relative standard uncertainty of the assay (default 0.02)")
    s.add_argument("--fwhm-mm", type=number("mm", minimum=0), required=True,
                   help="system resolution (mm); margin = 2 × FWHM")
    s.add_argument("--method", choices=METHODS, default="total",
                   help="total: counts in the phantom dilated by the margin (default); voi: eroded mean")
    s.add_argument("--margin-mm", type=number("mm", minimum=0, strict_minimum=False),
                   help="margin (mm), default 2 × FWHM")
    s.add_argument("--fill-volume-mL", type=number("mL", minimum=0),
                   help="fill volume (mL) for --method voi (default: CT volume)")
    s.add_argument("--dead-time-s", type=number("s", minimum=0, strict_minimum=False),
                   help="paralysable τ (s); default: from --decay-series, else the store's latest τ, else 0")
    s.add_argument("--decay-series", type=Path, nargs="+", metavar="SCAN", help="decay-series scan folders: fit τ")

    r = sub.add_parser("recovery", help="recovery coefficients vs volume from a sphere phantom scan")
    r.add_argument("scan", type=Path, help="sphere phantom scan folder")
    common(r)
    r.add_argument("--spheres", type=Path, required=True,
                   help="JSON: [{name, centre_mm [x, y, z] LPS, volume_mL}, ...] or {\"spheres\": [...]}")
    r.add_argument("--sphere-to-background", type=number(minimum=0),
                   help="true sphere-to-background concentration ratio")
    r.add_argument("--sphere-conc-kBq-per-mL", type=number("kBq/mL", minimum=0),
                   help="true sphere concentration at acquisition (kBq/mL); uses the store's sensitivity")
    r.add_argument("--background-conc-kBq-per-mL", type=number("kBq/mL", minimum=0, strict_minimum=False),
                   help="true background concentration (kBq/mL)")
    r.add_argument("--fwhm-mm", type=number("mm", minimum=0), required=True, help="system resolution (mm)")
    r.add_argument("--model", choices=MODELS, default="gaussian_sphere", help="fitted curve")
    r.add_argument("--voi", choices=("weighted", "binary"), default="weighted", help="sphere VOI")

    d = sub.add_parser("dead-time", help="paralysable dead time τ from a decay series of one source")
    d.add_argument("scans", type=Path, nargs="+", help="scan folders of the series (any order)")
    common(d)


def _date(args, scan) -> str:
    if args.date:
        try:
            return datetime.fromisoformat(args.date).date().isoformat()
        except ValueError:
            raise InputError(f"not an ISO date: {args.date!r}", source="--date") from None
    return scan.acquisition_start.date().isoformat()


def _fit_series(folders: list[Path]):
    scans = sorted((read_calibration_scan(f, need_ct=False) for f in folders), key=lambda s: s.acquisition_start)
    keys = {s.camera.key() for s in scans}
    if len(keys) > 1:
        raise InputError(f"the decay series mixes systems: {sorted(keys)}", source="decay series")
    counts = np.array([float(np.asarray(sitk.GetArrayViewFromImage(s.spect), dtype=np.float64).sum())
                       for s in scans])
    dur = np.array([s.duration_s for s in scans])
    mids = [s.acquisition_start + timedelta(seconds=s.duration_s / 2) for s in scans]
    return scans, fit_dead_time(mids, counts / dur, counts=counts, nuclide=scans[0].nuclide)


def _latest(store: CalibrationStore, key: str, date: str) -> CalibrationEntry:
    """The entry this measurement adds to; refuses another system naming the field."""
    return store.lookup(key, on_date=date)


def _save(store: CalibrationStore, entry: CalibrationEntry, path: Path, record: RunRecord, *,
          accept_drift: bool = False) -> list[str]:
    store, warnings = store.add(entry, force=accept_drift)
    for w in warnings:
        record.warn(w, stage="calibrate", source=str(path))
        print(f"warning: {w}", file=sys.stderr)
    store.save(path)
    return warnings


def _run_sensitivity(args, record: RunRecord) -> tuple[dict, dict]:
    scan = read_calibration_scan(args.scan)
    key = scan.camera.key()
    store = CalibrationStore.load(args.store)
    date = _date(args, scan)
    tau, u_tau, tau_src = 0.0, 0.0, "none"
    series = None
    if args.dead_time_s is not None:
        tau, tau_src = args.dead_time_s, "--dead-time-s"
    elif args.decay_series:
        scans, series = _fit_series(args.decay_series)
        if scans[0].camera.key() != key:
            raise InputError(f"the decay series was acquired on {scans[0].camera.key()}, the cylinder on {key}",
                             source="--decay-series")
        tau, u_tau, tau_src = series.dead_time_s, series.dead_time_rel_uncertainty, "decay series"
    else:
        known = [e for e in store.entries if e.camera_key == key and e.dead_time_s is not None]
        if known:
            last = max(enumerate(known), key=lambda ie: (ie[1].date, ie[0]))[1]
            tau, tau_src = float(last.dead_time_s), f"store entry of {last.date}"
        else:
            record.warn("no dead time known for this system: counts not corrected for dead time (τ = 0)",
                        stage="calibrate", source=key)
    activity = args.assay_activity_MBq * BQ_PER_MBQ if args.assay_activity_MBq is not None else scan.assay_activity_Bq
    if activity is None:
        raise InputError("missing: give --assay-activity-MBq (the sidecar has no injection.activity_Bq)",
                         source="assay_activity")
    assay_time = scan.assay_datetime
    if args.assay_time:
        try:
            assay_time = datetime.fromisoformat(args.assay_time)
        except ValueError:
            raise InputError(f"not an ISO datetime: {args.assay_time!r}", source="--assay-time") from None
    res = sensitivity_from_cylinder(scan.spect, scan.ct, assay_activity_Bq=activity, assay_datetime=assay_time,
                                    acquisition_start=scan.acquisition_start, duration_s=scan.duration_s,
                                    fwhm_mm=args.fwhm_mm, nuclide=scan.nuclide, dead_time_s=tau,
                                    dead_time_rel_uncertainty=u_tau, assay_rel_uncertainty=args.assay_rel_uncertainty,
                                    method=args.method, margin_mm=args.margin_mm, fill_volume_mL=args.fill_volume_mL)
    prev = [e for e in store.entries if e.camera_key == key]
    recovery = max(enumerate(prev), key=lambda ie: (ie[1].date, ie[0]))[1].recovery if prev else None
    entry = CalibrationEntry(key, res.sensitivity_cps_per_MBq, res.rel_uncertainty, tau if tau else None, recovery,
                             date, f"cylinder scan {args.scan} ({res.method}, margin {res.margin_mm:g} mm; "
                             f"τ from {tau_src})")
    _save(store, entry, args.store, record, accept_drift=args.accept_drift)
    print(f"sensitivity {res.sensitivity_cps_per_MBq:.4g} cps/MBq ± {res.rel_uncertainty:.2%} "
          f"({res.method}, τ = {tau:.3g} s from {tau_src}, live fraction {res.live_fraction:.4f}) → {key}")
    details = {"camera_key": key, "date": date, "dead_time_source": tau_src, **to_jsonable(asdict(res))}
    if series is not None:
        details["dead_time_fit"] = to_jsonable(asdict(series))
    return details, {"entry": asdict(entry)}


def _spheres(path: Path) -> list[Sphere]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read: {exc}", source=str(path)) from None
    items = doc.get("spheres") if isinstance(doc, dict) else doc
    if not isinstance(items, list) or not items:
        raise InputError("expected a list of spheres ({name, centre_mm, volume_mL})", source=str(path))
    out = []
    for i, s in enumerate(items):
        try:
            c = tuple(float(x) for x in s["centre_mm"])
            if len(c) != 3:
                raise ValueError("centre_mm needs 3 coordinates")
            out.append(Sphere(c, float(s["volume_mL"]), str(s.get("name", f"sphere_{i + 1}"))))
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"sphere {i}: {exc}", source=str(path)) from None
    return out


def _plot_recovery(measured, curve, path: Path) -> None:
    from ..plotting import new_figure, save_png

    fig, ax = new_figure()
    v = np.geomspace(min(m.volume_mL for m in measured) * 0.8, max(m.volume_mL for m in measured) * 1.5, 100)
    ax.plot(v, [curve.coefficient(x)[0] for x in v], "-", label=f"{curve.model} fit")
    ax.errorbar([m.volume_mL for m in measured if m.resolved], [m.recovery for m in measured if m.resolved],
                yerr=[m.uncertainty for m in measured if m.resolved], fmt="o", label="resolved spheres")
    ax.plot([m.volume_mL for m in measured if not m.resolved], [m.recovery for m in measured if not m.resolved],
            "x", label="unresolved (not fitted)")
    ax.axhline(0.5, color="grey", ls=":", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel("sphere volume (mL)")
    ax.set_ylabel("recovery coefficient")
    ax.legend()
    save_png(fig, path)


def _run_recovery(args, record: RunRecord) -> tuple[dict, dict]:
    scan = read_calibration_scan(args.scan)
    key = scan.camera.key()
    store = CalibrationStore.load(args.store)
    date = _date(args, scan)
    base = _latest(store, key, date)
    image = scan.spect
    sphere_conc = background_conc = None
    if args.sphere_conc_kBq_per_mL is not None:
        if args.background_conc_kBq_per_mL is None:
            raise InputError("give --background-conc-kBq-per-mL with --sphere-conc-kBq-per-mL (0 for cold)",
                             source="--background-conc-kBq-per-mL")
        # counts → Bq/mL with the stored sensitivity (and τ) of this very system, as ingest does
        observed = float(np.asarray(sitk.GetArrayViewFromImage(image), dtype=np.float64).sum()) / scan.duration_s
        f_dt = dead_time_factor(observed, base.dead_time_s or 0.0)
        scale = f_dt * BQ_PER_MBQ / scan.duration_s / base.sensitivity_cps_per_MBq / voxel_volume_mL(image)
        image = sitk.Cast(image, sitk.sitkFloat64) * scale
        sphere_conc, background_conc = args.sphere_conc_kBq_per_mL * 1e3, args.background_conc_kBq_per_mL * 1e3
    measured, m_b = measure_sphere_recovery(image, _spheres(args.spheres),
                                            phantom_mask=phantom_mask_from_ct(scan.ct, scan.spect),
                                            fwhm_mm=args.fwhm_mm, sphere_to_background=args.sphere_to_background,
                                            sphere_conc=sphere_conc, background_conc=background_conc, voi=args.voi)
    for m in measured:
        for f in m.flags:
            record.warn(f, stage="calibrate", source=m.name)
    curve = fit_recovery_curve(measured, model=args.model)
    entry = replace(base, recovery=curve.to_dict(), date=date,
                    source=f"sphere phantom {args.scan} ({args.model}, {args.voi} VOI); sensitivity of {base.date}")
    _save(store, entry, args.store, record, accept_drift=args.accept_drift)
    print(f"recovery curve {curve.model} {curve.parameters} from {sum(m.resolved for m in measured)} resolved "
          f"spheres (residual {curve.residual_rel_rms:.1%}) → {key}")
    for m in measured:
        print(f"  {m.name or m.volume_mL}: {m.volume_mL:.3g} mL RC {m.recovery:.3f} "
              f"{'; '.join(m.flags)}")
    details = {"camera_key": key, "date": date, "background_mean": m_b, "curve": curve.to_dict(),
               "spheres": [to_jsonable(asdict(m)) for m in measured]}
    return details, {"measured": measured, "curve": curve}


def _run_dead_time(args, record: RunRecord) -> tuple[dict, dict]:
    scans, fit = _fit_series(args.scans)
    key = scans[0].camera.key()
    store = CalibrationStore.load(args.store)
    date = _date(args, scans[0])
    base = _latest(store, key, date)
    entry = replace(base, dead_time_s=fit.dead_time_s, date=date,
                    source=f"decay series of {len(scans)} scans; sensitivity of {base.date}")
    _save(store, entry, args.store, record, accept_drift=args.accept_drift)
    print(f"dead time τ = {fit.dead_time_s:.4g} s ± {fit.dead_time_rel_uncertainty:.1%} (max loss "
          f"{fit.max_loss_fraction:.1%}) → {key}")
    return {"camera_key": key, "date": date, **to_jsonable(asdict(fit))}, {}


def _report(kind: str, details: dict, extra: dict, record: RunRecord) -> Report:
    """report.html: the calibration section (numbers, per-sphere table, plot) and the warnings."""
    rep = Report(f"Calibration: {kind}")
    sec = rep.section("calibration", "Calibration")
    sec.paragraph(f"System: {details['camera_key']} — date {details['date']}.")
    if kind == "sensitivity":
        sec.table([{"sensitivity_cps_per_MBq": details["sensitivity_cps_per_MBq"],
                    "rel_uncertainty": details["rel_uncertainty"], "method": details["method"],
                    "margin_mm": details["margin_mm"], "activity_MBq": details["activity_MBq"],
                    "live_fraction": details["live_fraction"], "dead_time_source": details["dead_time_source"]}])
    elif kind == "recovery":
        curve = extra["curve"]
        sec.paragraph(f"Curve {curve.model}: " + ", ".join(f"{k} = {v:.4g}" for k, v in curve.parameters.items())
                      + f"; residual RMS {curve.residual_rel_rms:.1%}.")
        sec.table([{"name": m.name, "volume_mL": m.volume_mL, "recovery": m.recovery, "fitted":
                    curve.coefficient(m.volume_mL)[0], "resolved": m.resolved, "flags": "; ".join(m.flags)}
                   for m in extra["measured"]])
        sec.figure("recovery.png", "Recovery coefficient vs sphere volume")
    else:
        sec.table([{"dead_time_s": details["dead_time_s"], "rel_uncertainty": details["dead_time_rel_uncertainty"],
                    "max_loss_fraction": details["max_loss_fraction"]}])
    if record.warnings:
        rep.section("warnings", "Warnings").table(record.warnings, ["stage", "source", "message"])
    return rep


def _inputs(args: argparse.Namespace) -> list:
    """Every path the calibration reads (the output folder must not overlap any)."""
    return [args.store, getattr(args, "scan", None), getattr(args, "spheres", None),
            *(getattr(args, "scans", None) or []), *(getattr(args, "decay_series", None) or [])]


def run(args: argparse.Namespace) -> int:
    """Run one calibration and append it to the store."""
    record = RunRecord(f"ludosimetry calibrate {args.kind}")
    record.parameters["calibrate"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                                      if not k.startswith("_") and not callable(v)}
    if args.out is not None and args.out.exists() and any(args.out.iterdir()) and not args.force:
        raise InputError("output folder exists and is not empty (use --force to replace it)", source=str(args.out))
    if args.out is not None:
        check_output_path(args.out, _inputs(args))
    kind = {"sensitivity": _run_sensitivity, "recovery": _run_recovery, "dead-time": _run_dead_time}[args.kind]
    details, extra = kind(args, record)
    if args.out is not None:
        with atomic_directory(args.out, overwrite=args.force, inputs=_inputs(args)) as tmp:
            name = args.kind.replace("-", "_")
            write_json(tmp / f"{name}.json", details)
            if args.kind == "recovery":
                rows = [{"name": m.name, "volume_mL": m.volume_mL, "diameter_mm": m.diameter_mm,
                         "recovery": m.recovery, "recovery_uncertainty": m.uncertainty,
                         "fitted": extra["curve"].coefficient(m.volume_mL)[0], "resolved": m.resolved,
                         "flags": "; ".join(m.flags)} for m in extra["measured"]]
                write_csv(tmp / "recovery.csv", rows, list(rows[0]))
                _plot_recovery(extra["measured"], extra["curve"], tmp / "recovery.png")
            record.outputs[f"{name}.json"] = f"{args.kind} calibration details"
            _report(args.kind, details, extra, record).write(tmp / "report.html")
            record.outputs["report.html"] = "calibration section"
            record.write(tmp)
    return 0
