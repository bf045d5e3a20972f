"""A cycle's dosimetry from a results folder into the patient's ledger, so no number is copied by hand.

A results folder of ``ludosimetry run`` holds ``doses.csv`` (one row per region, the reported
dose ``dose_Gy`` with ``dose_method``, ``dose_per_activity_Gy_per_GBq`` and
``dose_rel_uncertainty``; docs/conventions.md) and ``run.json`` (``stages.ingest``: patient id,
cycle, injected activity, injection date and time). :func:`cycle_from_results` turns them into
one ledger cycle:

- organs at risk (:data:`~.ledger.ORGANS`) from the regions named in :data:`ORGAN_REGIONS`: a
  single region (``kidneys``) or the sides combined (``kidney_left`` + ``kidney_right``),
  mass-weighted: D = Σ mᵢDᵢ / Σ mᵢ (the mean dose of the paired organ), likewise d; the relative
  uncertainty's shared part adds linearly and its independent part in quadrature over the sides
  (weights mᵢDᵢ, :func:`~.ledger.cumulative_rel_uncertainty`); G such that the paired organ's
  BED is the mass-weighted mean of the sides' BED (from each row's ``bed_Gy``);
- lesions: every row of kind ``lesion`` (dose, d, uncertainty, volume, method);
- provenance: the results folder and the SHA-256 of both files.

The uncertainty split: ``doses.csv`` columns ``dose_rel_uncertainty_shared`` (calibration and
method) and ``dose_rel_uncertainty_independent`` where present; otherwise all of
``dose_rel_uncertainty`` is taken as shared (the conservative reading, as for version-1 ledgers)
and the organ's source says so.

Refused (:class:`~LuDosimetryLib.errors.InputError` / ``ConsistencyError``): a results folder of
another patient, a cycle already in the ledger, a cycle that is not the next one, ``doses.csv``
with the old column names (the message names the new ones), a missing kidney dose, a missing
uncertainty (unless an assumed value is given, which the source records).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConsistencyError, InputError
from ..radiobiology import tissue_parameters
from ..results import read_doses_csv
from ..units import BQ_PER_GBQ
from .ledger import (
    DOSIMETRY_METHODS,
    MAX_STANDARD_CYCLES,
    Ledger,
    LesionDose,
    OrganDosePerActivity,
    append_cycle,
    cumulative_rel_uncertainty,
)

__all__ = ["ORGAN_REGIONS", "ResultsCycle", "cycle_from_results", "add_results_cycle"]

#: Ledger organ → candidate region sets in doses.csv, first match wins (a set of sides is combined).
ORGAN_REGIONS: dict[str, tuple[tuple[str, ...], ...]] = {
    "kidney": (("kidneys",), ("kidney_left", "kidney_right"), ("kidney",)),
    "parotid": (("parotids",), ("parotid_left", "parotid_right"), ("parotid",)),
    "submandibular": (("submandibular_glands",), ("submandibular_left", "submandibular_right"), ("submandibular",)),
    "lacrimal": (("lacrimal_glands",), ("lacrimal_left", "lacrimal_right"), ("lacrimal",)),
    "red_marrow": (("red_marrow",),),
    "liver": (("liver",),),
    "spleen": (("spleen",),),
}
_NEEDED = ("region", "kind", "dose_Gy", "dose_method", "dose_per_activity_Gy_per_GBq", "dose_rel_uncertainty",
           "mass_g")


@dataclass(frozen=True)
class ResultsCycle:
    """One cycle read from a results folder, ready for :func:`~.ledger.append_cycle`.

    Attributes
    ----------
    patient_id : str
    cycle : int
        The cycle number the run was made for.
    administration_date : datetime.date
    administered_activity_Bq : float
    dose_per_activity : dict of str to OrganDosePerActivity
    lesions : dict of str to LesionDose
    provenance : dict of str to str
    warnings : tuple of str
    """

    patient_id: str
    cycle: int
    administration_date: _dt.date
    administered_activity_Bq: float
    dose_per_activity: Mapping[str, OrganDosePerActivity]
    lesions: Mapping[str, LesionDose] = field(default_factory=dict)
    provenance: Mapping[str, str] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()


def _sha256(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _read_doses(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        raise InputError("doses.csv is missing (not a results folder of `ludosimetry run`?)", source=str(path))
    rows = read_doses_csv(path)  # refuses the old column names, naming the new ones
    if not rows:
        raise InputError("has no region rows", source=str(path))
    header = list(rows[0])
    missing = [c for c in _NEEDED if c not in header]
    if missing:
        raise InputError(f"no column(s) {', '.join(missing)} (expected the doses.csv columns of "
                         "docs/conventions.md)", source=str(path))
    return rows


def _num(row: Mapping[str, str], key: str, where: str, *, optional: bool = False) -> float | None:
    text = (row.get(key) or "").strip()
    if not text:
        if optional:
            return None
        raise InputError(f"{key} is empty", source=where)
    try:
        v = float(text)
    except ValueError:
        raise InputError(f"{key} must be a number, got {text!r}", source=where) from None
    if not math.isfinite(v) or v < 0:
        raise InputError(f"{key} must be a finite number ≥ 0, got {text}", source=where)
    return v


def _run_info(path: Path) -> tuple[dict[str, Any], float | None]:
    """run.json's ingest block and the pipeline's kidney α/β (Gy; None: the reference value)."""
    if not path.is_file():
        raise InputError("run.json is missing (not a results folder of `ludosimetry run`?)", source=str(path))
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"unreadable run.json: {exc}", source=str(path)) from None
    ingest = (doc.get("stages") or {}).get("ingest") if isinstance(doc, Mapping) else None
    if not isinstance(ingest, Mapping):
        raise InputError("no stages.ingest block (patient id, cycle, activity) in run.json", source=str(path))
    ab = ((doc.get("parameters") or {}).get("pipeline") or {}).get("alpha_beta_Gy")
    return dict(ingest), (float(ab) if isinstance(ab, int | float) and not isinstance(ab, bool) and ab > 0 else None)


def cycle_from_results(results_dir: str | Path, *, assumed_rel_uncertainty: float | None = None,
                       administration_date: _dt.date | None = None) -> ResultsCycle:
    """Read one cycle's dosimetry (organs at risk, lesions) and administration from a results folder.

    Parameters
    ----------
    results_dir : path
        A results folder of ``ludosimetry run`` (``doses.csv``, ``run.json``).
    assumed_rel_uncertainty : float, optional
        Relative uncertainty (k = 1) used where ``dose_rel_uncertainty`` is empty; without it an
        empty value is an error. The organ's source records the assumption.
    administration_date : datetime.date, optional
        Used when run.json has no injection date (older runs); must agree with it otherwise.

    Raises
    ------
    InputError
        Missing files or fields, old column names, no kidney dose, an empty uncertainty.
    """
    folder = Path(results_dir)
    if not folder.is_dir():
        raise InputError("is not a results folder", source=str(folder))
    doses_path, run_path = folder / "doses.csv", folder / "run.json"
    rows = _read_doses(doses_path)
    info, alpha_beta = _run_info(run_path)
    where = f"{run_path}: stages.ingest"
    pid = info.get("patient_id")
    if not isinstance(pid, str) or not pid.strip():
        raise InputError("patient_id is missing", source=where)
    cycle = info.get("cycle")
    if isinstance(cycle, bool) or not isinstance(cycle, int) or cycle < 1:
        raise InputError(f"cycle must be an integer ≥ 1, got {cycle!r}", source=where)
    act = info.get("injected_activity_Bq")
    if isinstance(act, bool) or not isinstance(act, int | float) or not (math.isfinite(act) and act > 0):
        raise InputError(f"injected_activity_Bq must be > 0 Bq, got {act!r}", source=where)
    run_date = None
    if info.get("injection_datetime"):
        try:
            run_date = _dt.datetime.fromisoformat(str(info["injection_datetime"])).date()
        except ValueError:
            raise InputError(f"injection_datetime is not an ISO date-time: {info['injection_datetime']!r}",
                             source=where) from None
    if run_date is None and administration_date is None:
        raise InputError("run.json has no injection_datetime; give the administration date (--administration-date)",
                         source=where)
    if run_date is not None and administration_date is not None and run_date != administration_date:
        raise ConsistencyError(f"administration date {administration_date} given but run.json says the injection was "
                               f"on {run_date}", source="--administration-date")
    date = run_date or administration_date
    warnings: list[str] = []
    by_region = {r["region"]: r for r in rows}
    dp: dict[str, OrganDosePerActivity] = {}
    for organ, candidates in ORGAN_REGIONS.items():
        regions = next((c for c in candidates if all(r in by_region for r in c)), None)
        if regions is None:
            continue
        dp[organ] = _organ(organ, [by_region[r] for r in regions], doses_path, alpha_beta, assumed_rel_uncertainty,
                           warnings)
        implied = act * dp[organ].dose_per_activity_Gy_per_Bq
        reported = sum(_num(by_region[r], "mass_g", "") * _num(by_region[r], "dose_Gy", "") for r in regions) / sum(
            _num(by_region[r], "mass_g", "") for r in regions)
        if abs(implied - reported) > max(1e-4, 1e-3 * reported):
            raise ConsistencyError(f"{organ}: dose_Gy {reported:.4g} Gy but the injected activity "
                                   f"{act / BQ_PER_GBQ:.4g} GBq (run.json) × dose_per_activity_Gy_per_GBq "
                                   f"{dp[organ].dose_per_activity_Gy_per_Bq * BQ_PER_GBQ:.4g} = {implied:.4g} Gy",
                                   source=str(doses_path))
    if "kidney" not in dp:
        names = " or ".join("+".join(c) for c in ORGAN_REGIONS["kidney"])
        raise InputError(f"no kidney dose (regions {names}); the ledger needs it for every cycle",
                         source=str(doses_path))
    lesions = {}
    for r in rows:
        if r.get("kind") != "lesion":
            continue
        w = f"{doses_path} region {r['region']}"
        u = _num(r, "dose_rel_uncertainty", w, optional=True)
        lesions[r["region"]] = LesionDose(_num(r, "dose_per_activity_Gy_per_GBq", w) / BQ_PER_GBQ,
                                          _num(r, "dose_Gy", w), u, _num(r, "volume_mL", w, optional=True),
                                          r.get("dose_method", ""), f"{folder.name}/doses.csv")
    prov = {"results_folder": str(folder.resolve()), "doses_csv_sha256": _sha256(doses_path),
            "run_json_sha256": _sha256(run_path), "imported": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")}
    return ResultsCycle(pid.strip(), cycle, date, float(act), dp, lesions, prov, tuple(warnings))


def _organ(organ: str, rows: list[Mapping[str, str]], path: Path, alpha_beta_Gy: float | None,
           assumed: float | None, warnings: list[str]) -> OrganDosePerActivity:
    """One ledger organ from its region rows (sides combined mass-weighted)."""
    names = "+".join(r["region"] for r in rows)
    ms, ds, dpa, us, ss, is_, beds = [], [], [], [], [], [], []
    split = True
    assumed_used = False
    for r in rows:
        w = f"{path} region {r['region']}"
        ms.append(_num(r, "mass_g", w))
        ds.append(_num(r, "dose_Gy", w))
        dpa.append(_num(r, "dose_per_activity_Gy_per_GBq", w))
        u = _num(r, "dose_rel_uncertainty", w, optional=True)
        if u is None:
            if assumed is None:
                raise InputError("dose_rel_uncertainty is empty; the ledger needs every cycle's uncertainty (or "
                                 "state an assumed value: --assume-rel-uncertainty)", source=w)
            u, assumed_used = assumed, True
        s = _num(r, "dose_rel_uncertainty_shared", w, optional=True)
        i = _num(r, "dose_rel_uncertainty_independent", w, optional=True)
        if s is None and i is None:
            split, s, i = False, u, 0.0
        elif s is None:
            s = math.sqrt(max(u * u - i * i, 0.0))
        elif i is None:
            i = math.sqrt(max(u * u - s * s, 0.0))
        us.append(u)
        ss.append(s)
        is_.append(i)
        beds.append(_num(r, "bed_Gy", w, optional=True))
    mass = sum(ms)
    if mass <= 0:
        raise InputError(f"{organ}: mass_g of {names} sums to 0", source=str(path))
    dose = sum(m * x for m, x in zip(ms, ds)) / mass
    d_gbq = sum(m * x for m, x in zip(ms, dpa)) / mass
    u, s, _ = cumulative_rel_uncertainty([m * x for m, x in zip(ms, ds)], ss, is_)
    g = None
    if organ == "kidney" and all(b is not None for b in beds) and dose > 0:
        ab = alpha_beta_Gy or tissue_parameters("kidney").alpha_beta_Gy
        # G_i from each side's BED = D(1 + G D/(α/β)); G of the pair keeps the mass-weighted mean BED
        num = sum(m * (b - x) * ab for m, b, x in zip(ms, beds, ds) if x > 0)
        g = num / (mass * dose * dose) if num > 0 else None
        if g is not None and not (0 < g <= 1):
            warnings.append(f"kidney G derived from bed_Gy is {g:.3g}, outside (0, 1]: not recorded")
            g = None
    src = f"{path.parent.name}/doses.csv {names} ({rows[0].get('dose_method', '')}"
    src += ", mass-weighted)" if len(rows) > 1 else ")"
    if not split:
        src += "; uncertainty not split in doses.csv: all taken as shared"
    if assumed_used:
        src += f"; relative uncertainty {assumed:g} assumed (--assume-rel-uncertainty)"
        warnings.append(f"{organ}: doses.csv has no dose_rel_uncertainty; {assumed:g} assumed")
    return OrganDosePerActivity(d_gbq / BQ_PER_GBQ, u, g, src, s)


def add_results_cycle(ledger: Ledger, results: ResultsCycle, *, kind: str | None = None,
                      dosimetry_method: str = "full_protocol", note: str = "") -> Ledger:
    """The ledger with the results folder's cycle appended, after checking it belongs there.

    Parameters
    ----------
    ledger : Ledger
    results : ResultsCycle
        From :func:`cycle_from_results`.
    kind : {"standard", "salvage"}, optional
        Default: standard up to cycle 6, then salvage.
    dosimetry_method : str
        One of the measured methods of :data:`~.ledger.DOSIMETRY_METHODS`.

    Raises
    ------
    ConsistencyError
        Another patient's results, a cycle already present, a cycle that is not the next one.
    """
    if results.patient_id != ledger.patient_id:
        raise ConsistencyError(f"results folder is of patient {results.patient_id!r} but the ledger is of "
                               f"{ledger.patient_id!r}", source=results.provenance.get("results_folder", "results"))
    n = len(ledger.cycles)
    if results.cycle <= n:
        raise ConsistencyError(f"cycle {results.cycle} is already in the ledger (cycles 1–{n} given, cycle "
                               f"{results.cycle} administered {ledger.cycles[results.cycle - 1].administration_date})",
                               source=results.provenance.get("results_folder", "results"))
    if results.cycle != n + 1:
        raise ConsistencyError(f"results folder is for cycle {results.cycle} but the ledger's next cycle is {n + 1} "
                               "(add the cycles in order)", source=results.provenance.get("results_folder", "results"))
    if dosimetry_method not in DOSIMETRY_METHODS or dosimetry_method in ("none", "pet_prediction"):
        raise InputError(f"a results folder holds measured dosimetry: full_protocol, reduced_protocol or "
                         f"single_scan_population_prior, got {dosimetry_method!r}", source="dosimetry_method")
    if kind is None:
        n_salv = sum(c.kind == "salvage" for c in ledger.cycles)
        kind = "salvage" if n_salv or sum(c.kind == "standard" for c in ledger.cycles) >= MAX_STANDARD_CYCLES \
            else "standard"
    return append_cycle(ledger, administration_date=results.administration_date,
                        administered_activity_Bq=results.administered_activity_Bq, dosimetry_method=dosimetry_method,
                        dose_per_activity=results.dose_per_activity, kind=kind, note=note, lesions=results.lesions,
                        provenance=results.provenance)
