"""A patient folder → :class:`LuDosimetryLib.model.Patient`: cycles, timepoints, PET studies, segmentation.

Route (``route="auto"``): ``PATIENT/dicom`` if present, else ``PATIENT/nifti``, else DICOM
anywhere under ``PATIENT``. The calibration store defaults to ``PATIENT/calibration.json``; the
label map to ``PATIENT/labels/labels.nii.gz`` (+ ``labels.csv``), else a DICOM SEG or RTSTRUCT
found among the series, rasterised onto the reference CT (cycle 1, first timepoint).

Cycles: SPECT series are attached to an administration by their injection datetime. A header
with a start time but no date (Radiopharmaceutical Start Time alone, e.g. GE exports) takes the
date of the cycle whose injection (from another series, a sidecar or the command line) has the
same time of day (the scan date or the day before, across midnight) and precedes the scan by less
than :data:`CYCLE_MAX_DAYS`. Where no such cycle is known the series is refused: the scan date
cannot be trusted as the injection date of a scan taken days after injection.

Timepoints: the beds of a cycle acquired within :data:`TIMEPOINT_GAP_H` of each other form one
timepoint; each keeps its own time.

Nothing is written: the function returns a Patient or raises a
:class:`~LuDosimetryLib.errors.LuDosimetryError` naming the file and tag or parameter.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from ..calibration.store import CalibrationStore
from ..errors import ConsistencyError, DicomError, InputError
from ..model import Administration, Bed, Cycle, Patient, PetFrame, PetStudy, Segmentation, Timepoint
from ..nuclides import get_nuclide
from ..results import RunRecord
from ..units import S_PER_H
from .diagnosis import Diagnosis, Problem, attempt
from .dicomtags import Sourced, tag_label
from .discovery import SeriesInfo, ct_candidates, scan_folder
from .injection import InjectionHeader, read_injection_header, resolve_administration
from .nifti import (
    NiftiSeries,
    load_nifti_pet_frames,
    nifti_camera,
    nifti_decay_info,
    read_image,
    scan_nifti,
    sidecar_units,
)
from .overrides import normalise_overrides, sidecar_for_series
from .plausibility import CHECKS, fov_activity_problems, label_registration_problems
from .prefetch import Prefetch
from .quant import voxel_volume_mL
from .segmentation import load_segmentation, read_label_map
from .series import LoadedEmission, load_ct, load_pet_frames, load_spect_bed, quantify_bed
from .stitch import stitch_beds

__all__ = ["load_patient", "inspect_patient", "InspectResult", "TIMEPOINT_GAP_H", "CYCLE_MAX_DAYS",
           "LATE_TIMEPOINT_RATIO", "MIN_CYCLE_INTERVAL_DAYS"]

#: Beds starting within this many hours of the previous bed belong to the same timepoint.
TIMEPOINT_GAP_H = 3.0
#: A time-only injection header is matched to a cycle injected at most this many days earlier.
CYCLE_MAX_DAYS = 30
#: Two therapy administrations closer than this are refused (cycles are 6–8 weeks apart).
MIN_CYCLE_INTERVAL_DAYS = 7
#: A timepoint later than this multiple of the previous one (itself ≥ 48 h), or later than three
#: physical half-lives, is flagged as much later than the others.
LATE_TIMEPOINT_RATIO = 4.0
_STAGE = "ingest"


@dataclass(frozen=True, eq=False)
class InspectResult:
    """What :func:`inspect_patient` returns: the patient (what could be read), one row per series and,
    with ``diagnose``, every problem found (:class:`~LuDosimetryLib.ingest.diagnosis.Problem`)."""

    patient: Patient
    rows: tuple[dict, ...]
    warnings: tuple[str, ...] = ()
    route: str = ""
    problems: tuple[Problem, ...] = ()

    @property
    def blocking(self) -> tuple[Problem, ...]:
        """The problems on which ``ludosimetry run`` would stop."""
        return tuple(p for p in self.problems if p.blocking)


@dataclass
class _Ctx:
    folder: Path
    store: CalibrationStore | None
    overrides: dict
    expected: str | None
    record: RunRecord
    progress: Callable[[float, str], None] | None
    warnings: list = field(default_factory=list)
    rows: list = field(default_factory=list)
    reference_for_uid: str | None = None
    accept: frozenset = frozenset()
    diagnosis: Diagnosis | None = None

    def warn(self, message: str, source: str = "") -> None:
        if message not in self.warnings:
            self.warnings.append(message)
            self.record.warn(message, stage=_STAGE, source=source)
            if self.diagnosis is not None:
                self.diagnosis.add(message, blocking=False, kind="warning")

    def attempt(self):
        """A block whose LuDosimetryError is recorded (diagnosis) or raised (loading)."""
        return attempt(self.diagnosis)

    def plausibility(self, check: str, errors: list[str], warnings: list[str] = (), source: str = "") -> None:
        """Raise the first of ``errors`` (ConsistencyError), or warn where the user accepted ``check``."""
        for w in warnings:
            self.warn(w, source=source)
        if not errors:
            return
        if check in self.accept:
            for e in errors:
                self.warn(f"accepted ({check}): {e}", source=source)
            return
        with self.attempt():
            raise ConsistencyError(f"{errors[0]} (if you are sure, accept this check by name: --accept {check})",
                                   source=f"plausibility check {check}")

    def step(self, f: float, msg: str) -> None:
        if self.progress:
            self.progress(min(max(f, 0.0), 1.0), msg)


def _total_activity_Bq(image) -> float:
    import SimpleITK as sitk

    return float(np.sum(sitk.GetArrayViewFromImage(image), dtype=np.float64)) * voxel_volume_mL(image.GetSpacing())


def _axial_extent(image) -> tuple[float, float]:
    D = np.asarray(image.GetDirection()).reshape(3, 3)
    z0 = float(np.asarray(image.GetOrigin()) @ D[:, 2])
    dz = image.GetSpacing()[2]
    return z0 - dz / 2, z0 + (image.GetSize()[2] - 0.5) * dz


def _row(kind: str, name: str, *, le: LoadedEmission | None = None, admin: Administration | None = None,
         cycle: int | None = None, timepoint: str = "", time_h: float | None = None, image=None,
         extra: Mapping | None = None) -> dict:
    row: dict[str, Any] = {"series": name, "kind": kind, "cycle": cycle, "timepoint": timepoint,
                           "time_h": time_h if le is None else le.time_h,
                           "units": "" if le is None else le.units,
                           "decay_state": "" if le is None else le.decay_state,
                           "corrections": "" if le is None else "/".join(le.corrections),
                           "calibration": "" if le is None else le.calibration,
                           "nuclide": None if admin is None else admin.nuclide,
                           "injected_activity_MBq": None if admin is None else admin.injected_activity_Bq / 1e6,
                           "injection_datetime": None if admin is None else admin.injection_datetime.isoformat(),
                           "total_activity_MBq": None if image is None else _total_activity_Bq(image) / 1e6,
                           "sources": {**({} if admin is None else {f"administration.{k}": v for k, v in
                                                                  admin.provenance.items()}),
                                       **({} if le is None else le.provenance)}}
    row.update(extra or {})
    return row


def _later_check(ctx: _Ctx, cycle: int, tps: list[Timepoint], nuclide: str) -> None:
    counts = {tp.label: len(tp.beds) for tp in tps}
    if len(set(counts.values())) > 1:
        ctx.warn(f"cycle {cycle}: the timepoints have different numbers of beds "
                 f"({', '.join(f'{k}: {v}' for k, v in counts.items())}); if the protocol has the same fields of view "
                 "at every timepoint, a bed's AcquisitionTime (0008,0032) or date may be wrong",
                 source=f"cycle {cycle}")
    hl = get_nuclide(nuclide).half_life_h
    for prev, tp in itertools.pairwise(tps):
        if (prev.time_h >= 48 and tp.time_h > LATE_TIMEPOINT_RATIO * prev.time_h) or tp.time_h > 3 * hl:
            ctx.warn(f"cycle {cycle} timepoint {tp.label} at {tp.time_h:.1f} h p.i. is much later than the others "
                     f"(previous {prev.label} at {prev.time_h:.1f} h); check its date and whether it belongs to "
                     "this cycle", source=f"cycle {cycle}")


def _check_fov_activity(ctx: _Ctx, image, admin: Administration, time_h: float, what: str) -> None:
    errors, warnings = fov_activity_problems(_total_activity_Bq(image), admin.injected_activity_Bq, admin.nuclide,
                                             time_h, what=what)
    ctx.plausibility("fov_activity", errors, warnings, source=what)


def _label_registration_errors(seg: Segmentation, ct, source: str) -> list[str]:
    import SimpleITK as sitk

    if ct is None or seg.image.GetSize() != ct.GetSize():
        return []
    return label_registration_problems(sitk.GetArrayViewFromImage(seg.image), sitk.GetArrayViewFromImage(ct),
                                       seg.table, voxel_volume_mL=voxel_volume_mL(ct.GetSpacing()), source=source)


def _same_units(beds: list[tuple[str, LoadedEmission]], *, cycle: int, label: str) -> None:
    """Beds of one timepoint come from one acquisition and one reconstruction: one stored unit."""
    units = {}
    for n, le in beds:
        units.setdefault(le.units, []).append(n)
    if len(units) > 1:
        parts = "; ".join(f"{u}: {', '.join(ns)}" for u, ns in units.items())
        raise ConsistencyError(f"the beds of timepoint {label} are stored in different units ({parts}); one "
                               "bed relabelled or reconstructed differently would be quantified differently from "
                               "its neighbours. Re-export the beds, or state the true units of a bed in its "
                               "ludosimetry.json ('units')", source=f"cycle {cycle}")


def _bed_consistency(ctx: _Ctx, beds: list[tuple[str, LoadedEmission, Any]], *, cycle: int, label: str) -> None:
    """Beds of one timepoint are one acquisition: the same grid spacing, transaxial position,
    quantitation tags and (warning) frame duration. A damaged header in one bed would otherwise
    quantify or place that bed differently from its neighbours without a word."""
    if len(beds) < 2:
        return
    where = f"cycle {cycle} {label}"

    def groups(key) -> dict:
        out: dict = {}
        for n, le, ds in beds:
            out.setdefault(key(n, le, ds), []).append(Path(n.split(" (+")[0]).parent.name or n)
        return out

    def describe(g: dict, fmt) -> str:
        return "; ".join(f"{fmt(k)} in {', '.join(v)}" for k, v in g.items())

    headers = [ds for _, _, ds in beds]
    if all(ds is not None for ds in headers):
        for keyword in ("RescaleSlope", "RescaleIntercept", "RealWorldValueMappingSequence"):
            g = groups(lambda n, le, ds, k=keyword: k in ds)
            if len(g) > 1:
                with ctx.attempt():
                    raise ConsistencyError(f"{tag_label(keyword)} is present in some beds of timepoint {label} and not "
                                           f"in others ({describe(g, lambda k: 'present' if k else 'absent')}): the "
                                           "beds of one acquisition cannot be quantified alike; re-export the beds",
                                           source=where)
    g = groups(lambda n, le, ds: tuple(round(x, 3) for x in le.image.GetSpacing()))
    if len(g) > 1:
        ctx.plausibility("bed_consistency", [f"{where}: the beds have different voxel spacings "
                                             f"({describe(g, lambda k: ' × '.join(f'{x:g}' for x in k) + ' mm')}); "
                                             "one acquisition is reconstructed on one grid: check PixelSpacing "
                                             "(0028,0030) and SpacingBetweenSlices (0018,0088)"], source=where)
    spacing = min(beds[0][1].image.GetSpacing()[:2])
    xy0 = np.asarray(beds[0][1].image.GetOrigin()[:2])
    off = [n for n, le, _ in beds if np.max(np.abs(np.asarray(le.image.GetOrigin()[:2]) - xy0)) > spacing / 2]
    if off:
        ctx.plausibility("bed_consistency", [f"{where}: the transaxial position of {', '.join(off)} differs from "
                                             f"{beds[0][0]} by more than half a voxel; the beds of one acquisition "
                                             "share x and y: check ImagePositionPatient (0020,0032)"], source=where)
    g = groups(lambda n, le, ds: round(le.duration_s, 1))
    if len(g) > 1:
        ctx.warn(f"{where}: the beds have different acquisition durations ({describe(g, lambda k: f'{k:g} s')}); "
                 "check ActualFrameDuration (0018,1242) if the protocol has one duration per bed", source=where)


def _duplicate_beds(beds: list[tuple[str, LoadedEmission]], *, cycle: int, label: str) -> None:
    for i in range(len(beds)):
        for j in range(i + 1, len(beds)):
            (n1, b1), (n2, b2) = beds[i], beds[j]
            lo1, hi1 = _axial_extent(b1.image)
            lo2, hi2 = _axial_extent(b2.image)
            ov = min(hi1, hi2) - max(lo1, lo2)
            if ov > 0.5 * min(hi1 - lo1, hi2 - lo2):
                raise ConsistencyError(f"{n1} (start {b1.acquisition_start.isoformat()}) and {n2} (start "
                                       f"{b2.acquisition_start.isoformat()}) cover the same field of view "
                                       f"({ov:.0f} mm overlap) in timepoint {label}: duplicated timepoint or bed",
                                       source=f"cycle {cycle}")


def _make_timepoint(ctx: _Ctx, label: str, beds: list[tuple[str, str, LoadedEmission]], ct, cycle: int,
                    ct_source: str = "", ct_file: str = "", headers: list | None = None) -> Timepoint:
    _duplicate_beds([(n, le) for n, _, le in beds], cycle=cycle, label=label)
    _same_units([(n, le) for n, _, le in beds], cycle=cycle, label=label)
    _bed_consistency(ctx, [(n, le, None if headers is None else h) for (n, _, le), h in
                           zip(beds, headers or [None] * len(beds))], cycle=cycle, label=label)
    beds = sorted(beds, key=lambda b: b[2].acquisition_start)
    bed_objs = tuple(Bed(le.acquisition_start, le.duration_s, le.time_h, le.image, _axial_extent(le.image), uid,
                         {"series": n, **le.provenance}) for n, uid, le in beds)
    if len(beds) > 1:
        st = stitch_beds([le.image for _, _, le in beds], [le.time_h for _, _, le in beds])
        spect, tmap = st.image, st.time_map_h
    else:
        spect, tmap = beds[0][2].image, None
    time_h = float(np.mean([le.time_h for _, _, le in beds]))
    cam = next((le.camera for _, _, le in beds if le.camera is not None), None)
    return Timepoint(label, time_h, spect, ct, bed_objs, tmap, cam,
                     {"beds": [n for n, _, _ in beds], "time_h": "mean of the beds' mid-acquisition times",
                      "ct": ct_source or ("none found" if ct is None else ""), "ct_file": ct_file})


def _group_timepoints(items: list) -> list[list]:
    """Split items (with .acquisition_start via key) into clusters separated by > TIMEPOINT_GAP_H."""
    items = sorted(items, key=lambda x: x[0])
    groups: list[list] = []
    for it in items:
        if groups and (it[0] - groups[-1][-1][0]) <= timedelta(hours=TIMEPOINT_GAP_H):
            groups[-1].append(it)
        else:
            groups.append([it])
    return groups


# --- DICOM route ------------------------------------------------------------------------------
def _assign_cycles(ctx: _Ctx, spects: list[SeriesInfo], heads: dict, users: dict) -> list[tuple[Sourced, list]]:
    cycles: list[tuple[Sourced, list]] = []

    def find(dt: datetime) -> int | None:
        for i, (inj, _) in enumerate(cycles):
            if abs((inj.value - dt).total_seconds()) < 60:
                return i
        return None

    exact, time_only, none = [], [], []
    for s in spects:
        u, h = users[s.series_uid], heads[s.series_uid]
        if "injection_datetime" in u:
            exact.append((s, u["injection_datetime"]))
        elif h.datetime is not None and not h.time_only:
            exact.append((s, h.datetime))
        elif h.datetime is not None:
            time_only.append((s, h.datetime))
        else:
            none.append(s)
    for s, dt in exact:
        i = find(dt.value)
        if i is None:
            cycles.append((dt, [s]))
        else:
            cycles[i][1].append(s)
    for s, cand in sorted(time_only, key=lambda x: x[0].acquisition_start or datetime.max):
        acq = s.acquisition_start or cand.value
        match = [i for i, (inj, _) in enumerate(cycles)
                 if abs((inj.value.time().hour * 3600 + inj.value.time().minute * 60 + inj.value.time().second)
                        - (cand.value.hour * 3600 + cand.value.minute * 60 + cand.value.second)) < 60
                 and inj.value <= acq and acq - inj.value < timedelta(days=CYCLE_MAX_DAYS)]
        if match:
            i = max(match, key=lambda i: cycles[i][0].value)
            cycles[i][1].append(s)
        else:
            with ctx.attempt():
                raise DicomError(f"is missing and {tag_label('RadiopharmaceuticalStartTime')} gives the time of day "
                                 f"only ({cand.value.strftime('%H:%M:%S')}); no "
                                 "other series of this patient gives the injection date, and the scan date cannot be "
                                 "trusted for it (a scan may be days after injection). Give injection.datetime in "
                                 "ludosimetry.json or --injection-datetime", source=str(s.files[0]),
                                 tag=tag_label("RadiopharmaceuticalStartDateTime"))
    for s in none:
        h = heads[s.series_uid]
        # raises: no injection time; a diagnosis looks past a wrong nuclide for the next problem
        for expected in ((ctx.expected, None) if ctx.diagnosis is not None and ctx.expected else (ctx.expected,)):
            with ctx.attempt():
                resolve_administration(h, source=str(s.files[0]), overrides=ctx.overrides,
                                       sidecar=users[s.series_uid], expected_nuclide=expected)
    cycles.sort(key=lambda c: c[0].value)
    for (a, ma), (b, mb) in itertools.pairwise(cycles):
        gap_h = (b.value - a.value).total_seconds() / 3600
        if gap_h < 24 * MIN_CYCLE_INTERVAL_DAYS:
            with ctx.attempt():
                raise ConsistencyError(f"two administrations {gap_h:.1f} h apart: {a.value.isoformat()} ({ma[0].name}, "
                                       f"{a.source}) and {b.value.isoformat()} ({mb[0].name}, {b.source}); therapy "
                                       f"cycles are at least {MIN_CYCLE_INTERVAL_DAYS} days apart, so one series' "
                                       "injection time is wrong: correct it or give injection.datetime in "
                                       "ludosimetry.json", source="cycles")
    return cycles


def _cycle_administration(ctx: _Ctx, inj: Sourced, members: list[SeriesInfo], heads: dict, users: dict
                          ) -> Administration:
    admins = []
    first_error = None
    for s in members:
        h = heads[s.series_uid]
        try:
            admins.append(resolve_administration(h, source=str(s.files[0]), overrides=ctx.overrides,
                                                 sidecar=users[s.series_uid], expected_nuclide=ctx.expected,
                                                 injection_datetime=inj))
        except InputError as exc:
            if "RadionuclideCodeSequence" in str(exc) or "RadionuclideTotalDose" not in str(exc):
                raise
            first_error = first_error or exc
    if not admins:
        raise first_error
    a0 = admins[0]
    for a in admins[1:]:
        if abs(a.injected_activity_Bq / a0.injected_activity_Bq - 1) > 0.01:
            ctx.warn(f"injected activity differs between series of one cycle: {a0.injected_activity_Bq / 1e6:.1f} MBq "
                     f"({a0.provenance['injected_activity_Bq']}) vs {a.injected_activity_Bq / 1e6:.1f} MBq "
                     f"({a.provenance['injected_activity_Bq']}); the first is used")
            break
    return a0


def _load_dicom(ctx: _Ctx, root: Path) -> tuple[list[Cycle], list[PetStudy], Segmentation | None, str]:
    # the CTs and the PET series are read in background threads while the beds load and the timepoints
    # are assembled (each result, or error, is taken where it was computed before)
    with Prefetch(load_ct) as cts_ahead, Prefetch(_read_pet_series) as pets_ahead, \
            Prefetch(_read_segmentation) as labels_ahead:
        return _load_dicom_series(ctx, root, cts_ahead, pets_ahead, labels_ahead)


def _load_dicom_series(ctx: _Ctx, root: Path, cts_ahead: Prefetch, pets_ahead: Prefetch, labels_ahead: Prefetch
                       ) -> tuple[list[Cycle], list[PetStudy], Segmentation | None, str]:
    ctx.step(0.0, "scanning DICOM headers")
    series = scan_folder(root, progress=lambda f, m: ctx.step(0.2 * f, m), diagnosis=ctx.diagnosis)
    if not series:
        raise InputError("no DICOM series found", source=str(root))
    pids = {s.patient_id for s in series}
    pid = next(iter(pids))
    sidecars = {s.series_uid: sidecar_for_series(s.folder, ctx.folder) for s in series}
    # command-line values are about the therapy SPECT; PET series take their sidecars only
    users = {uid: {**sc, **ctx.overrides} for uid, sc in sidecars.items()}
    cts = [s for s in series if s.kind == "CT"]
    spects = [s for s in series if s.kind == "SPECT"]
    pets = [s for s in series if s.kind == "PET"]
    for s in series:
        if s.kind == "OTHER":
            ctx.rows.append(_row("OTHER", s.name, extra={"modality": s.modality, "note": "not used"}))
            it = s.header.get("ImageType", "") if s.header is not None else ""
            ctx.warn(f"{s.name}: not used (Modality (0008,0060) {s.modality!r}, ImageType (0008,0008) "
                     f"{'/'.join(str(x) for x in it) if it else 'absent'}): not CT, reconstructed SPECT, PET or a "
                     "segmentation", source=s.name)
    if not spects and not pets:
        kinds = ", ".join(f"{s.kind} {s.name}" for s in series)
        raise InputError(f"no SPECT or PET series found; series found: {kinds}", source=str(root))
    heads: dict[str, InjectionHeader] = {}
    for s in [*spects, *pets]:
        u = users[s.series_uid] if s.kind == "SPECT" else sidecars[s.series_uid]
        start = u.get("acquisition_start")
        with ctx.attempt():
            heads[s.series_uid] = read_injection_header(s.header, source=str(s.files[0]), modality=s.modality,
                                                        acquisition_start=start.value if start else
                                                        s.acquisition_start,
                                                        warn=lambda m, _s=s: ctx.warn(m, source=_s.name))
    spects = [s for s in spects if s.series_uid in heads]
    pets = [s for s in pets if s.series_uid in heads]
    ct_cache: dict[str, Any] = {}
    for s in [*spects, *pets]:  # the CT each series will ask for below, in about the order asked
        _, cands = ct_candidates(s, cts)
        if cands:
            cts_ahead.submit(cands[0].series_uid, cands[0])
    for s in pets:
        pets_ahead.submit(s.series_uid, s, heads[s.series_uid], sidecars[s.series_uid])

    def ct_of(s: SeriesInfo):
        level, cands = ct_candidates(s, cts)
        if not cands:
            return None, None
        c = cands[0]
        if len(cands) > 1:
            ctx.warn(f"{s.name}: {len(cands)} CT series match by {level} (SeriesInstanceUID (0020,000E) "
                     + ", ".join(f"{x.series_uid} with {len(x.files)} slices" for x in cands)
                     + f"); using the one with most slices, {c.name}", source=s.name)
        if c.series_uid not in ct_cache:
            ct_cache[c.series_uid] = None
            with ctx.attempt():
                ct_cache[c.series_uid] = cts_ahead.take(c.series_uid, c)
        if ct_cache[c.series_uid] is None:
            return None, None
        return c, ct_cache[c.series_uid]

    seg_series = [s for s in series if s.kind in ("SEG", "RTSTRUCT")]
    cycles = []
    assigned = _assign_cycles(ctx, spects, heads, users)
    n_total = max(len(spects) + len(pets), 1)
    done = 0
    for ci, (inj, members) in enumerate(assigned, start=1):
        admin = None
        with ctx.attempt():
            admin = _cycle_administration(ctx, inj, members, heads, users)
        if admin is None:
            continue
        loaded = []
        for s in members:
            with ctx.attempt():
                le = load_spect_bed(s, admin, user=users[s.series_uid], calibration_store=ctx.store,
                                    warn=lambda m, _s=s: ctx.warn(m, source=_s.name))
                loaded.append((le.acquisition_start, s, le))
            done += 1
            ctx.step(0.2 + 0.7 * done / n_total, f"loaded {s.name}")
        tps = []
        for ti, group in enumerate(_group_timepoints(loaded), start=1):
            label = f"tp{ti}"
            ct_info, ct = ct_of(group[0][1])
            same_for = ct_info is not None and ct_info.frame_of_reference_uid == group[0][1].frame_of_reference_uid
            ct_src = "" if ct_info is None else (
                f"{ct_info.name}: HU = stored × RescaleSlope (0028,1053) + RescaleIntercept (0028,1052); paired by "
                f"{'FrameOfReferenceUID' if same_for else 'study/time'}")
            with ctx.attempt():
                tp = _make_timepoint(ctx, label, [(s.name, s.series_uid, le) for _, s, le in group], ct, ci,
                                     ct_src, "" if ct_info is None else str(ct_info.files[0]),
                                     headers=[s.header for _, s, _ in group])
                tps.append(tp)
                _check_fov_activity(ctx, tp.spect, admin, tp.time_h, f"cycle {ci} {label} ({group[0][1].name})")
            if ci == 1 and ti == 1 and ct_info is not None:
                ctx.reference_for_uid = ct_info.frame_of_reference_uid or None
            if not cycles and len(tps) == 1:  # the reference timepoint: its label map is read from now on
                labels_ahead.submit("segmentation", ctx.folder, _reference_image(tps[0]), tps[0].ct, seg_series,
                                    ctx.reference_for_uid)
            for _, s, le in group:
                ctx.rows.append(_row("SPECT", s.name, le=le, admin=admin, cycle=ci, timepoint=label, image=le.image,
                                     extra={"modality": s.modality, "camera": "" if le.camera is None else
                                            le.camera.key()}))
            if ct_info is not None:
                ctx.rows.append(_row("CT", ct_info.name, cycle=ci, timepoint=label,
                                     extra={"modality": "CT", "units": "HU", "paired_with": group[0][1].name}))
            else:
                ctx.warn(f"no CT found for cycle {ci} {label} ({group[0][1].name})", source=group[0][1].name)
        if not tps:
            continue
        _later_check(ctx, ci, tps, admin.nuclide)
        cycles.append(Cycle(ci, admin, tuple(tps)))
    studies = _pet_studies_dicom(ctx, pets, heads, sidecars, ct_of, done, n_total, pets_ahead)
    seg = None
    with ctx.attempt():
        seg = _segmentation(ctx, cycles, seg_series, labels_ahead)
    if ctx.diagnosis is not None:  # list every series, also those that could not be used
        listed = {r["series"] for r in ctx.rows}
        for s in series:
            if s.name not in listed:
                failed = any(str(s.files[0]) in p.message for p in ctx.diagnosis.problems)
                ctx.rows.append(_row(s.kind, s.name, extra={"modality": s.modality, "note": (
                    "not loaded: see the problems" if failed else "read")}))
    return cycles, studies, seg, pid


def _read_pet_series(s: SeriesInfo, head: InjectionHeader, user: dict):
    """A PET series' administration, its frames and the warnings met on the way.

    Touches nothing of the ingest context, so it may run in a background thread (:class:`Prefetch`);
    the caller records the warnings.
    """
    warnings: list[str] = []
    admin = resolve_administration(head, source=str(s.files[0]), overrides={}, sidecar=user, expected_nuclide=None)
    return admin, load_pet_frames(s, admin, user=user, warn=warnings.append), warnings


def _pet_studies_dicom(ctx, pets, heads, users, ct_of, done, n_total, ahead: Prefetch | None = None
                       ) -> list[PetStudy]:
    by_inj: dict[datetime, dict] = {}
    for s in pets:
        u = users[s.series_uid]
        frames = None
        with ctx.attempt():
            args = (s, heads[s.series_uid], u)
            admin, frames, warnings = _read_pet_series(*args) if ahead is None else ahead.take(s.series_uid, *args)
            for w in warnings:
                ctx.warn(w, source=s.name)
        if frames is None:
            continue
        for f in frames:
            _check_fov_activity(ctx, f.image, admin, f.time_h, f"{s.name} frame at {f.time_h:.2f} h")
        done += 1
        ctx.step(0.2 + 0.7 * done / n_total, f"loaded {s.name}")
        entry = by_inj.setdefault(admin.injection_datetime, {"admin": admin, "dynamic": [], "static": None,
                                                             "ct": None, "series": []})
        pf = [PetFrame(f.time_h - f.duration_s / 2 / S_PER_H, f.duration_s / S_PER_H, f.time_h, f.image)
              for f in frames]
        if s.dynamic or len(pf) > 1:
            entry["dynamic"].extend(pf)
        else:
            entry["static"] = pf[0]
        _ct_info, ct = ct_of(s)
        if entry["ct"] is None:
            entry["ct"] = ct
        entry["series"].append(s.name)
        for f in frames:
            ctx.rows.append(_row("PET dynamic" if s.dynamic else "PET static", s.name, le=f, admin=admin,
                                 image=f.image, extra={"modality": "PT"}))
    out = []
    for e in sorted(by_inj.values(), key=lambda e: e["admin"].injection_datetime):
        dyn = tuple(sorted(e["dynamic"], key=lambda f: f.start_h))
        out.append(PetStudy(e["admin"], dyn, e["static"], e["ct"], {"series": e["series"]}))
    return out


def _reference_image(tp: Timepoint):
    return tp.ct if tp.ct is not None else tp.spect


def _reference(cycles: list[Cycle]):
    if cycles and cycles[0].timepoints:
        return _reference_image(cycles[0].timepoints[0])
    return None


def _reference_ct(cycles: list[Cycle]):
    return cycles[0].timepoints[0].ct if cycles and cycles[0].timepoints else None


def _read_segmentation(folder: Path, ref, ref_ct, seg_series, reference_for_uid: str | None):
    """The label map onto the reference, its kind and name, and the label_registration problems; None if none.

    Touches nothing of the ingest context, so it may run in a background thread (:class:`Prefetch`).
    """
    labels = folder / "labels"
    for cand in ("labels.nii.gz", "labels.nii", "labels.nrrd", "labels.seg.nrrd"):
        p = labels / cand
        if p.is_file():
            seg = read_label_map(p, reference=ref)
            return seg, "labels", str(p), _label_registration_errors(seg, ref_ct, str(p))
    if seg_series and ref is not None:
        s = seg_series[0]
        seg = load_segmentation(s.files[0], ref, reference_for_uid=reference_for_uid)
        return seg, s.kind, s.name, _label_registration_errors(seg, ref_ct, s.name)
    return None


def _segmentation(ctx: _Ctx, cycles, seg_series, ahead: Prefetch | None = None) -> Segmentation | None:
    """The patient's segmentation (:func:`_read_segmentation`, prefetched by ``ahead`` when given), checked."""
    args = (ctx.folder, _reference(cycles), _reference_ct(cycles), seg_series, ctx.reference_for_uid)
    found = _read_segmentation(*args) if ahead is None else ahead.take("segmentation", *args)
    if found is None:
        return None
    seg, kind, name, errors = found
    ctx.plausibility("label_registration", errors, source=name)
    ctx.rows.append(_row(kind, name, extra={"regions": len(seg.table)}))
    return seg


# --- NIfTI route ------------------------------------------------------------------------------
def _load_nifti_bed(ctx: _Ctx, s: NiftiSeries, admin: Administration) -> LoadedEmission:
    import SimpleITK as sitk

    from .geometry import grid_of

    user = {**s.sidecar, **ctx.overrides}
    img = read_image(s.path)
    values = sitk.GetArrayFromImage(img).astype(np.float64)
    start = user.get("acquisition_start")
    dur = user.get("duration_s")
    if start is None or dur is None:
        raise InputError(f"no '{'acquisition_start' if start is None else 'duration_s'}' in the sidecar; "
                         "need the acquisition timing", source=s.name)
    cam, cam_src = nifti_camera(user, source=s.name)
    return quantify_bed(values, grid_of(img), units=sidecar_units(user, source=s.name), start=start,
                        duration=dur, decay=nifti_decay_info(user, source=s.name), camera=cam,
                        camera_source=cam_src, administration=admin, user=user, calibration_store=ctx.store,
                        source=s.name, warn=lambda m, _s=s: ctx.warn(m, source=_s.name),
                        check_corrections=False)


def _load_nifti(ctx: _Ctx, root: Path) -> tuple[list[Cycle], list[PetStudy], Segmentation | None, str]:
    items = scan_nifti(root)
    if not items:
        raise InputError("no NIfTI/NRRD images found", source=str(root))
    nm = [s for s in items if s.modality == "NM"]
    pt = [s for s in items if s.modality == "PT"]
    ct_by_folder = {s.path.parent: s for s in items if s.modality == "CT"}
    by_cycle: dict[int, list[NiftiSeries]] = {}
    for s in nm:
        by_cycle.setdefault(s.cycle or 1, []).append(s)
    cycles = []
    for ci in sorted(by_cycle):
        members = by_cycle[ci]
        admin = None
        usable = []
        for s in members:
            with ctx.attempt():
                a = resolve_administration(InjectionHeader(), source=s.name, overrides=ctx.overrides,
                                           sidecar=s.sidecar, expected_nuclide=ctx.expected)
                if admin is None:
                    admin = a
                elif abs((a.injection_datetime - admin.injection_datetime).total_seconds()) >= 60:
                    raise ConsistencyError(f"injection {a.injection_datetime.isoformat()} "
                                           f"({a.provenance['injection_datetime']}) differs from "
                                           f"{admin.injection_datetime.isoformat()} in another file of cycle {ci}",
                                           source=s.name)
                usable.append(s)
        if admin is None:
            continue
        loaded = []
        for s in usable:
            with ctx.attempt():
                le = _load_nifti_bed(ctx, s, admin)
                loaded.append((le.acquisition_start, s, le))
        tps = []
        groups: dict[str, list] = {}
        if all(s.timepoint for _, s, _ in loaded):
            for it in sorted(loaded, key=lambda x: x[0]):
                groups.setdefault(it[1].timepoint, []).append(it)
            glist = list(groups.values())
        else:
            glist = _group_timepoints(loaded)
        glist.sort(key=lambda g: g[0][0])
        for ti, group in enumerate(glist, start=1):
            label = group[0][1].timepoint or f"tp{ti}"
            ct_s = ct_by_folder.get(group[0][1].path.parent)
            ct = read_image(ct_s.path) if ct_s else None
            if ct is not None:
                import SimpleITK as sitk

                ct = sitk.Cast(ct, sitk.sitkFloat32)
            with ctx.attempt():
                tp = _make_timepoint(ctx, label, [(s.name, "", le) for _, s, le in group], ct, ci,
                                     "" if ct_s is None else f"{ct_s.name} (HU as stored)")
                tps.append(tp)
                _check_fov_activity(ctx, tp.spect, admin, tp.time_h, f"cycle {ci} {label} ({group[0][1].name})")
            for _, s, le in group:
                ctx.rows.append(_row("SPECT", s.name, le=le, admin=admin, cycle=ci, timepoint=label, image=le.image,
                                     extra={"modality": "NM", "camera": "" if le.camera is None else le.camera.key()}))
        if not tps:
            continue
        _later_check(ctx, ci, tps, admin.nuclide)
        cycles.append(Cycle(ci, admin, tuple(tps)))
    studies = []
    by_inj: dict[datetime, dict] = {}
    for s in pt:
        frames = None
        with ctx.attempt():
            admin = resolve_administration(InjectionHeader(), source=s.name, overrides={}, sidecar=s.sidecar,
                                           expected_nuclide=None)
            frames = load_nifti_pet_frames(s, admin, user={})
        if frames is None:
            continue
        for im, _st, _d, t, _prov in frames:
            _check_fov_activity(ctx, im, admin, t, f"{s.name} frame at {t:.2f} h")
        e = by_inj.setdefault(admin.injection_datetime, {"admin": admin, "dynamic": [], "static": None,
                                                         "folder": s.path.parent, "series": []})
        pf = [PetFrame(t - d / 2 / S_PER_H, d / S_PER_H, t, im) for im, _, d, t, _ in frames]
        if len(pf) > 1 or "dynamic" in s.path.name.lower():
            e["dynamic"].extend(pf)
        else:
            e["static"] = pf[0]
        e["series"].append(s.name)
        for im, _st, _d, t, prov in frames:
            ctx.rows.append({**_row("PET", s.name, admin=admin, time_h=t, image=im),
                             "units": "Bq/mL", "sources": prov})
    for e in sorted(by_inj.values(), key=lambda e: e["admin"].injection_datetime):
        ct_s = ct_by_folder.get(e["folder"])
        ct = read_image(ct_s.path) if ct_s else None
        studies.append(PetStudy(e["admin"], tuple(sorted(e["dynamic"], key=lambda f: f.start_h)), e["static"], ct,
                                {"series": e["series"]}))
    seg = None
    with ctx.attempt():
        seg = _segmentation(ctx, cycles, [])
    pid = ""
    pj = ctx.folder / "patient.json"
    if pj.is_file():
        import json

        try:
            pid = str(json.loads(pj.read_text(encoding="utf-8")).get("id", ""))
        except (OSError, ValueError, AttributeError):
            pid = ""
    return cycles, studies, seg, pid or ctx.folder.name


# --- entry points -----------------------------------------------------------------------------
def _run(folder, *, calibration_store, overrides, expected_nuclide, record, progress, route, accept=(),
         diagnosis: Diagnosis | None = None):
    folder = Path(folder)
    unknown = sorted(set(accept) - set(CHECKS))
    if unknown:
        raise InputError(f"unknown plausibility check(s) {unknown}; known: {', '.join(CHECKS)}", source="accept")
    if not folder.is_dir():
        raise InputError("patient folder does not exist or is not a folder", source=str(folder))
    rec = record if record is not None else RunRecord(command="ingest")
    if calibration_store is None and (folder / "calibration.json").is_file():
        with attempt(diagnosis):
            calibration_store = CalibrationStore.load(folder / "calibration.json")
            data = (folder / "calibration.json").read_bytes()
            rec.inputs["calibration_store"] = {"path": str(folder / "calibration.json"),
                                               "sha256": hashlib.sha256(data).hexdigest()}
    ctx = _Ctx(folder, calibration_store, normalise_overrides(overrides), expected_nuclide, rec, progress,
               accept=frozenset(accept), diagnosis=diagnosis)
    if route not in ("auto", "dicom", "nifti"):
        raise InputError(f"route {route!r}; expected auto, dicom or nifti", source="route")
    cycles, studies, seg, pid = [], [], None, folder.name
    with ctx.attempt():  # a diagnosis keeps what was read before a problem that stops the whole route
        if route == "nifti" or (route == "auto" and not (folder / "dicom").is_dir() and (folder / "nifti").is_dir()):
            used = "nifti"
            cycles, studies, seg, pid = _load_nifti(ctx, folder / "nifti" if (folder / "nifti").is_dir() else folder)
        else:
            used = "dicom"
            cycles, studies, seg, pid = _load_dicom(ctx, folder / "dicom" if (folder / "dicom").is_dir() else folder)
    if diagnosis is not None:
        if not cycles:
            diagnosis.add(InputError("no therapy SPECT timepoint could be read: 'ludosimetry run' has nothing to "
                                     "compute", source=str(folder)))
        if seg is None and not any(p.blocking and "label" in p.message for p in diagnosis.problems):
            diagnosis.add(InputError("no segmentation found (labels/labels.nii.gz + labels/labels.csv, a DICOM SEG "
                                     "or an RTSTRUCT): 'ludosimetry run' needs the regions", source=str(folder)))
    patient = Patient(pid, tuple(cycles), tuple(studies), seg, tuple(ctx.warnings))
    rec.parameters.setdefault(_STAGE, {}).update({"folder": str(folder), "route": used,
                                                  "expected_nuclide": expected_nuclide,
                                                  "overrides": {k: {"value": v.value, "source": v.source}
                                                                for k, v in ctx.overrides.items()}})
    rec.stages.setdefault(_STAGE, {})["series"] = ctx.rows
    if diagnosis is not None:
        rec.stages[_STAGE]["problems"] = [p.to_dict() for p in diagnosis.problems]
    ctx.step(1.0, "ingest done")
    return InspectResult(patient, tuple(ctx.rows), tuple(ctx.warnings), used,
                         tuple(diagnosis.problems) if diagnosis is not None else ())


def load_patient(folder: str | Path, *, calibration_store: CalibrationStore | None = None,
                 overrides: Mapping[str, Any] | None = None, expected_nuclide: str | None = "Lu-177",
                 record: RunRecord | None = None, progress: Callable[[float, str], None] | None = None,
                 route: str = "auto", accept: Collection[str] = ()) -> Patient:
    """Load a patient folder into the data model.

    Parameters
    ----------
    folder : path
        The patient folder (layout in docs/conventions.md), or any folder of DICOM files.
    calibration_store : CalibrationStore, optional
        Default: ``folder/calibration.json`` if present.
    overrides : mapping, optional
        User values that win over sidecars and headers (keys in
        :data:`LuDosimetryLib.ingest.overrides.OVERRIDE_KEYS`, e.g. ``injection_datetime``,
        ``injected_activity_Bq``, ``sensitivity_cps_per_MBq``); a value may be a
        :class:`~LuDosimetryLib.ingest.dicomtags.Sourced` to carry its own source.
    expected_nuclide : str or None
        The therapy radionuclide every SPECT must carry (None: not checked).
    record : RunRecord, optional
        Receives warnings and the per-series summary (``stages["ingest"]["series"]``).
    progress : callable, optional
        ``progress(fraction, message)``.
    route : {"auto", "dicom", "nifti"}
    accept : collection of str
        Plausibility checks (:data:`LuDosimetryLib.ingest.plausibility.CHECKS`) whose failure the
        user accepts: recorded as a warning instead of an error.

    Returns
    -------
    Patient
        SPECT in Bq/mL at each bed's acquisition time, times in h p.i., provenance on every
        administration, bed and timepoint.

    Raises
    ------
    LuDosimetryError
        (DicomError, InputError, ConsistencyError) naming the file and tag or parameter.
    """
    return _run(folder, calibration_store=calibration_store, overrides=overrides, expected_nuclide=expected_nuclide,
                record=record, progress=progress, route=route, accept=accept).patient


def inspect_patient(folder: str | Path, *, calibration_store: CalibrationStore | None = None,
                    overrides: Mapping[str, Any] | None = None, expected_nuclide: str | None = "Lu-177",
                    record: RunRecord | None = None, progress: Callable[[float, str], None] | None = None,
                    route: str = "auto", accept: Collection[str] = (), diagnose: bool = False) -> InspectResult:
    """Load a patient and summarise it: one row per series (see :func:`load_patient` for parameters).

    With ``diagnose`` nothing is raised for the folder's content: every problem found is collected
    in ``InspectResult.problems`` (blocking ones marked) and the patient holds what could be read.

    Each row holds ``series``, ``kind``, ``modality``, ``cycle``, ``timepoint``, ``time_h``,
    ``units`` (as stored), ``decay_state`` (as stored), ``corrections``, ``calibration``,
    ``injected_activity_MBq``, ``injection_datetime``, ``total_activity_MBq`` (in the series'
    field of view, at its acquisition time) and ``sources`` (value → where it came from).
    """
    return _run(folder, calibration_store=calibration_store, overrides=overrides, expected_nuclide=expected_nuclide,
                record=record, progress=progress, route=route, accept=accept,
                diagnosis=Diagnosis() if diagnose else None)

