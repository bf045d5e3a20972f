"""The results folder: its schema, atomic writers and the run record (``run.json``).

A results folder is the contract between stages and what users keep::

    tac.csv       one row per region and timepoint        (TAC_COLUMNS)
    fits.csv      one row per region: model, TIA, uncertainty (FITS_COLUMNS)
    doses.csv     one row per region: dose statistics     (DOSES_COLUMNS)
    *.nii.gz      TIA and dose maps (tia_Bq_h.nii.gz, dose_Gy.nii.gz)
    *.png         plots
    report.html   one section per stage (see :mod:`LuDosimetryLib.report`)
    run.json      inputs, parameters, versions, warnings  (:class:`RunRecord`)

Column names carry their units. Stages may add columns, never rename these. Every file is
written to a temporary name in the same folder and renamed into place (whole or not at all).
"""

from __future__ import annotations

import contextlib
import csv
import datetime as _dt
import io
import json
import logging
import math
import os
import platform
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .errors import InputError
from .output_folder import _as_created, atomic_directory, check_output_folder, check_output_path, current_umask

__all__ = [
    "TAC_COLUMNS", "FITS_COLUMNS", "DOSES_COLUMNS", "DOSE_METHODS", "OLD_DOSES_COLUMNS", "RESULT_FILES",
    "atomic_write_bytes", "atomic_write_text", "write_json", "write_csv", "read_csv", "read_doses_csv",
    "reported_dose", "OnceFilter",
    "atomic_directory", "check_output_folder", "check_output_path", "current_umask", "RunRecord", "to_jsonable",
    "package_versions",
]

log = logging.getLogger(__name__)

#: tac.csv: one row per region and timepoint. ``time_h`` is the activity-weighted
#: mid-acquisition time of the region's voxels (beds differ in time).
TAC_COLUMNS = ("region", "kind", "cycle", "timepoint", "time_h", "volume_mL", "mass_g",
               "mean_conc_Bq_per_mL", "max_conc_Bq_per_mL", "activity_Bq", "percent_injected_activity",
               "recovery_coefficient", "activity_corrected_Bq", "flags")
#: fits.csv: one row per region.
FITS_COLUMNS = ("region", "kind", "cycle", "model", "n_points", "n_params", "tia_Bq_h", "tia_MBq_h",
                "tia_rel_uncertainty", "tia_ci95_low_Bq_h", "tia_ci95_high_Bq_h", "tail_fraction",
                "effective_half_life_h", "aicc", "parameters", "flags")
#: doses.csv: one row per region. ``dose_Gy`` is THE reported absorbed dose of the region,
#: ``dose_method`` says how it was obtained (:data:`DOSE_METHODS`); ``dose_per_activity_Gy_per_GBq``,
#: ``dose_rel_uncertainty`` (k = 1), the 95 % interval, BED and EQD2 all derive from it.
#: ``map_mean_dose_Gy`` and the median/min/max/D_x columns are of the voxel dose map (they keep
#: the partial-volume loss of the SPECT). See docs/conventions.md.
DOSES_COLUMNS = ("region", "kind", "cycle", "dose_Gy", "dose_method", "dose_per_activity_Gy_per_GBq",
                 "dose_rel_uncertainty", "dose_ci95_low_Gy", "dose_ci95_high_Gy", "volume_mL", "mass_g",
                 "map_mean_dose_Gy", "median_dose_Gy", "min_dose_Gy", "max_dose_Gy", "d2_Gy", "d50_Gy", "d98_Gy",
                 "bed_Gy", "eqd2_Gy", "flags")
#: Values of ``dose_method`` (doses.csv and prediction/doses.csv).
DOSE_METHODS = ("kernel+gtm-pvc", "kernel+recovery-pvc", "kernel", "led", "led+gtm-pvc", "led+recovery-pvc",
                "sphere", "red_marrow_l2l4", "red_marrow_blood", "dose_rate_integral", "pet_prediction",
                "calibrated_regression")
#: Column names of doses.csv before the reported-dose convention → what replaced them.
OLD_DOSES_COLUMNS = {"mean_dose_Gy": "dose_Gy (reported) or map_mean_dose_Gy (dose-map mean)",
                     "mean_dose_pv_corrected_Gy": "dose_Gy with dose_method kernel+gtm-pvc",
                     "mean_dose_rel_uncertainty": "dose_rel_uncertainty", "method": "dose_method"}
RESULT_FILES = ("tac.csv", "fits.csv", "doses.csv", "report.html", "run.json")


# --- atomic writes ----------------------------------------------------------------------------
def _mkstemp(p: Path, suffix: str) -> tuple[int, str]:
    """A temporary file beside ``p``; an unwritable folder is an InputError naming ``p``."""
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        return tempfile.mkstemp(prefix=f".{p.name}.", suffix=suffix, dir=p.parent)
    except OSError as exc:
        raise InputError(f"cannot write here: {exc.strerror or exc}", source=str(p)) from None


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temporary file in the same folder, then rename).

    The file gets the mode ``0666 & ~umask``, as if created by ``open``.
    """
    p = Path(path)
    fd, tmp = _mkstemp(p, ".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        _as_created(tmp)
        os.replace(tmp, p)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return p


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def atomic_output_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``.

    For writers that want a file name (SimpleITK, matplotlib). The temporary name keeps the
    suffixes of ``path`` (``.nii.gz``) so writers pick the right format.
    """
    p = Path(path)
    suffix = "".join(p.suffixes)
    fd, tmp = _mkstemp(p, ".tmp" + suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        _as_created(tmp)
        os.replace(tmp, p)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def to_jsonable(obj: Any) -> Any:
    """Convert numpy scalars/arrays, paths, datetimes, dataclasses and sets to JSON types.

    Non-finite floats become ``None`` (JSON has no NaN).
    """
    from dataclasses import asdict, is_dataclass

    if isinstance(obj, float | np.floating):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, bool | np.bool_):
        return bool(obj)
    if isinstance(obj, int | np.integer):
        return int(obj)
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, _dt.datetime | _dt.date | _dt.time):
        return obj.isoformat()
    if is_dataclass(obj) and not isinstance(obj, type):
        return to_jsonable(asdict(obj))
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in obj]
    if hasattr(obj, "value") and hasattr(obj, "name"):  # enums
        return to_jsonable(obj.value)
    return obj


def write_json(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as indented JSON, atomically (see :func:`to_jsonable`)."""
    return atomic_write_text(path, json.dumps(to_jsonable(obj), indent=2, ensure_ascii=False) + "\n")


def _format_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float | np.floating):
        f = float(value)
        return "" if not math.isfinite(f) else repr(f)
    if isinstance(value, list | tuple):
        return ";".join(_format_cell(v) for v in value)
    if isinstance(value, Mapping):
        return json.dumps(to_jsonable(value), sort_keys=True)
    return str(value)


def write_csv(path: str | Path, rows: Iterable[Mapping[str, Any]], columns: Sequence[str], *,
              extra_columns: bool = True) -> Path:
    """Write rows (mappings) as CSV with ``columns`` first, atomically.

    Missing values are written empty; floats with full precision (``repr``). With
    ``extra_columns`` keys not in ``columns`` are appended in first-seen order; else they raise.
    """
    rows = list(rows)
    cols = list(columns)
    for row in rows:
        for k in row:
            if k not in cols:
                if not extra_columns:
                    raise InputError(f"unexpected column {k!r}", source=str(path))
                cols.append(k)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for row in rows:
        w.writerow([_format_cell(row.get(c)) for c in cols])
    return atomic_write_text(path, buf.getvalue())


def read_csv(path: str | Path) -> list[dict[str, str]]:
    """Read a CSV file into a list of dicts of strings (header required)."""
    p = Path(path)
    try:
        with p.open(newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh))
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", source=str(p)) from None


def read_doses_csv(path: str | Path) -> list[dict[str, str]]:
    """Read a ``doses.csv`` (measured or predicted), refusing files with the old column names.

    Raises
    ------
    InputError
        When the header holds a column of :data:`OLD_DOSES_COLUMNS` (the message names the new
        ones) or lacks ``region`` or ``dose_Gy``.
    """
    p = Path(path)
    try:
        with p.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            header = list(reader.fieldnames or ())
            old = [c for c in header if c in OLD_DOSES_COLUMNS]
            if old:
                named = ", ".join(f"{c!r} (now {OLD_DOSES_COLUMNS[c]})" for c in old)
                raise InputError(f"old doses.csv columns {named}"
                                 "; rerun the dose stage to write the reported-dose columns "
                                 "(dose_Gy, dose_method, map_mean_dose_Gy, docs/conventions.md)", source=str(p))
            missing = [c for c in ("region", "dose_Gy") if c not in header]
            if missing:
                raise InputError(f"no column(s) {missing}; expected the doses.csv columns {', '.join(DOSES_COLUMNS)}",
                                 source=str(p))
            return list(reader)
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", source=str(p)) from None


def reported_dose(row: Mapping[str, str], *, source: str = "doses.csv") -> float | None:
    """The reported dose (Gy) of a :func:`read_doses_csv` row; None when empty (not computed).

    Raises
    ------
    InputError
        When the value is not a finite number ≥ 0.
    """
    text = (row.get("dose_Gy") or "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise InputError(f"region {row.get('region')!r}: dose_Gy {text!r} is not a finite dose ≥ 0 Gy", source=source)
    return value


def package_versions() -> dict[str, str]:
    """Versions of Python, LuDosimetryLib and the scientific packages in use."""
    from importlib import metadata

    out = {"python": platform.python_version(), "LuDosimetryLib": __version__, "platform": sys.platform}
    for name in ("numpy", "scipy", "SimpleITK", "pydicom", "matplotlib", "vtk", "dask", "distributed"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[name] = metadata.version(name)
    return out


class OnceFilter(logging.Filter):
    """A logging filter passing each distinct warning text once (the console of one command).

    Run records already keep each warning once per run; a command that runs several (the demo,
    a cohort) would still print the same parameter-status warning once per patient.
    """

    def __init__(self) -> None:
        super().__init__()
        self._seen: set[tuple[str, int, str]] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        key = (record.name, record.levelno, record.getMessage())
        if key in self._seen:
            return False
        self._seen.add(key)
        return True


@dataclass
class RunRecord:
    """What ``run.json`` holds: inputs, parameters, versions, warnings and per-stage notes.

    A mutable accumulator passed through a run. ``warn`` logs a warning and records it with its
    source. Stages add their parameters under their own key (``record.parameters["dose"]``).

    Attributes
    ----------
    command : str
        The command or entry point (``"ludosimetry run"``).
    inputs : dict
        Input paths and their content hashes.
    parameters : dict
        Stage name → parameters used (with their sources).
    warnings : list of dict
        ``{"stage", "source", "message"}``.
    outputs : dict
        File name → description.
    """

    command: str
    inputs: dict = field(default_factory=dict)
    parameters: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)
    outputs: dict = field(default_factory=dict)
    stages: dict = field(default_factory=dict)
    started: str = field(default_factory=lambda: _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"))

    def warn(self, message: str, *, stage: str = "", source: str = "") -> None:
        """Record a warning (also sent to the ``logging`` module), once per run.

        A warning with the same stage, source and message as one already recorded is neither
        recorded nor logged again (run.json and the report list each distinct warning once).
        """
        entry = {"stage": stage, "source": source, "message": message}
        if entry in self.warnings:
            return
        self.warnings.append(entry)
        log.warning("%s%s%s", f"[{stage}] " if stage else "", f"{source}: " if source else "", message)

    def to_dict(self) -> dict:
        """The JSON document written as run.json."""
        return {"command": self.command, "started": self.started,
                "finished": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
                "versions": package_versions(), "inputs": self.inputs, "parameters": self.parameters,
                "stages": self.stages, "outputs": self.outputs, "warnings": self.warnings}

    def write(self, folder: str | Path) -> Path:
        """Write ``run.json`` into ``folder`` atomically."""
        return write_json(Path(folder) / "run.json", self.to_dict())
