"""Run the per-patient pipeline over a cohort: locally in a process pool, or on a Dask cluster.

Design
------
- A task is a patient: ``(patient_id, input_dir, output_dir, parameters)``. Tasks carry paths,
  never arrays; a worker reads its patient, writes its results folder and returns a small summary.
- Each worker process handles one patient at a time (local pool: ``max_tasks_per_child=1``, so a
  patient's memory is returned to the system when it finishes; Dask: one thread per worker).
- Results are written under a temporary name and moved into place whole
  (:func:`LuDosimetryLib.results.atomic_directory`), so a killed run leaves no half-written
  patient folder, only hidden ``.partial`` folders that the next run removes.
- Resumable: a patient whose ``run.json`` says ``"complete": true`` with the same input hash
  (SHA-256 over the input files' relative paths and contents) and parameter hash is skipped.
- One patient's failure is recorded (error type and message) and does not stop the others.

The per-patient function is ``LuDosimetryLib.pipeline:run_patient`` unless another
``module:function`` is given; it is called as ``fn(input_dir: Path, output_dir: Path, *,
parameters: dict, progress=None) -> dict`` and must write its results into ``output_dir``
(``run.json`` included) without creating it first.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import time
import traceback
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from ..errors import InputError, LuDosimetryError
from ..output_folder import OutputBusyError, OutputLock, remove_stale_siblings
from ..results import atomic_directory, to_jsonable, write_json

__all__ = ["PatientTask", "PatientOutcome", "CohortSummary", "discover_patients", "input_hash", "parameter_hash",
           "is_complete", "run_cohort", "DEFAULT_PIPELINE", "load_pipeline"]

DEFAULT_PIPELINE = "LuDosimetryLib.pipeline:run_patient"
_HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class PatientTask:
    """One patient to process (paths only)."""

    patient_id: str
    input_dir: Path
    output_dir: Path
    parameters: Mapping[str, Any] = field(default_factory=dict)
    pipeline: str = DEFAULT_PIPELINE
    threads: int | None = None
    #: identifies one ``run_cohort`` call: a patient finished by this call whose outcome was lost
    #: (a Dask worker died holding it, and the scheduler runs the task again) is ``done``, not ``skipped``
    run_token: str = ""


@dataclass(frozen=True)
class PatientOutcome:
    """What happened to one patient: ``done``, ``skipped`` or ``failed``."""

    patient_id: str
    status: str
    seconds: float = 0.0
    error: str = ""
    summary: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CohortSummary:
    """Outcomes of a cohort run, in patient order."""

    outcomes: tuple[PatientOutcome, ...]
    scheduler: str
    workers: int
    seconds: float

    def by_status(self, status: str) -> list[str]:
        """Patient IDs with a given status."""
        return [o.patient_id for o in self.outcomes if o.status == status]


def discover_patients(source: str | Path) -> list[tuple[str, Path]]:
    """Patients of a cohort: the subfolders of a folder, or the rows of a manifest CSV/JSON.

    A folder counts as a patient when it holds ``patient.json``, a ``dicom/`` or a ``nifti/``
    folder. A manifest lists ``patient,path`` (CSV) or ``[{"patient": ..., "path": ...}]``
    (JSON), paths relative to the manifest.
    """
    src = Path(source)
    if src.is_dir():
        out = [(p.name, p) for p in sorted(src.iterdir()) if p.is_dir() and not p.name.startswith(".")
               and any((p / n).exists() for n in ("patient.json", "dicom", "nifti"))]
        if not out:
            raise InputError("no patient folders found (expected subfolders with patient.json, dicom/ or nifti/)",
                             source=str(src))
        return out
    if not src.is_file():
        raise InputError("is neither a cohort folder nor a manifest file", source=str(src))
    if src.suffix.lower() == ".json":
        rows = json.loads(src.read_text(encoding="utf-8"))
    else:
        import csv

        with src.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    out = []
    for i, row in enumerate(rows, start=2):
        pid, path = (row.get("patient") or "").strip(), (row.get("path") or "").strip()
        if not pid or not path:
            raise InputError(f"row {i}: need 'patient' and 'path'", source=str(src))
        p = (src.parent / path).resolve()
        if not p.is_dir():
            raise InputError(f"row {i}: patient folder {p} does not exist", source=str(src))
        out.append((pid, p))
    ids = [pid for pid, _ in out]
    dup = sorted({x for x in ids if ids.count(x) > 1})
    if dup:
        raise InputError(f"duplicate patient id(s) {dup}", source=str(src))
    return out


def input_hash(folder: Path) -> str:
    """SHA-256 over every file's relative path and content under ``folder`` (sorted)."""
    h = hashlib.sha256()
    for p in sorted(q for q in Path(folder).rglob("*") if q.is_file()):
        h.update(p.relative_to(folder).as_posix().encode())
        h.update(b"\0")
        with p.open("rb") as fh:
            while chunk := fh.read(_HASH_CHUNK):
                h.update(chunk)
    return h.hexdigest()


def parameter_hash(parameters: Mapping[str, Any], pipeline: str) -> str:
    """SHA-256 of the canonical JSON of the parameters and the pipeline name."""
    text = json.dumps({"parameters": to_jsonable(parameters), "pipeline": pipeline}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def is_complete(output_dir: Path, in_hash: str, par_hash: str) -> bool:
    """True if ``output_dir/run.json`` records a complete run with these hashes."""
    try:
        doc = json.loads((Path(output_dir) / "run.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    cohort = doc.get("cohort", {})
    return bool(cohort.get("complete")) and cohort.get("input_hash") == in_hash and \
        cohort.get("parameter_hash") == par_hash


def load_pipeline(spec: str) -> Callable[..., dict]:
    """Import ``module:function``."""
    module, _, name = spec.partition(":")
    if not module or not name:
        raise InputError(f"expected 'module:function', got {spec!r}", source="pipeline")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise InputError(f"cannot load {spec!r}: {exc}", source="pipeline") from None


def _finished_by(output_dir: Path) -> str:
    """The run token recorded in ``output_dir/run.json`` (empty if none)."""
    try:
        doc = json.loads((Path(output_dir) / "run.json").read_text(encoding="utf-8"))
        return str(doc["cohort"].get("run_token", ""))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return ""


def _process(task: PatientTask) -> PatientOutcome:
    """Run one patient (in a worker). Never raises: failures become outcomes."""
    t0 = time.perf_counter()
    if task.threads:  # share the cores between concurrent patients (SimpleITK filters and registration)
        import SimpleITK as sitk

        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(task.threads)
    try:
        in_hash = input_hash(task.input_dir)
        par_hash = parameter_hash(task.parameters, task.pipeline)
        if is_complete(task.output_dir, in_hash, par_hash):
            status = "done" if task.run_token and _finished_by(task.output_dir) == task.run_token else "skipped"
            return PatientOutcome(task.patient_id, status, time.perf_counter() - t0)
        fn = load_pipeline(task.pipeline)
        with atomic_directory(task.output_dir, overwrite=True) as tmp:
            summary = fn(task.input_dir, tmp, parameters=dict(task.parameters)) or {}
            run_json = tmp / "run.json"
            doc = json.loads(run_json.read_text(encoding="utf-8")) if run_json.exists() else {}
            doc["cohort"] = {"complete": True, "input_hash": in_hash, "parameter_hash": par_hash,
                             "patient": task.patient_id, "input_dir": str(task.input_dir),
                             "pipeline": task.pipeline, "run_token": task.run_token}
            write_json(run_json, doc)
        return PatientOutcome(task.patient_id, "done", time.perf_counter() - t0, summary=to_jsonable(summary))
    except LuDosimetryError as exc:
        return PatientOutcome(task.patient_id, "failed", time.perf_counter() - t0, f"{type(exc).__name__}: {exc}")
    except Exception as exc:  # one patient's bug must not stop the cohort; the trace is kept
        tb = traceback.format_exc(limit=5)
        return PatientOutcome(task.patient_id, "failed", time.perf_counter() - t0, f"{type(exc).__name__}: {exc}\n{tb}")


def _dask_outcome(fut: Any, task: PatientTask) -> PatientOutcome:
    """The outcome of a finished Dask future; a task the cluster itself lost becomes ``failed``.

    A worker that dies mid-patient is handled by the scheduler: the patient is started again on
    another worker (its half-written folder was only a hidden ``.partial``). Only when a patient
    has killed ``distributed.scheduler.allowed-failures`` workers (default 3) does Dask give up
    with ``KilledWorker``; that, or a lost connection, is recorded for this patient alone, and a
    rerun of the cohort takes it up again (finished patients are skipped).
    """
    try:
        return fut.result()
    except Exception as exc:  # KilledWorker, CommError, CancelledError: the cluster, not the patient
        return PatientOutcome(task.patient_id, "failed", 0.0,
                              f"{type(exc).__name__}: the Dask cluster lost this patient's task ({exc}); "
                              "run the cohort again to resume")


def _clean_partials(tasks: Sequence[PatientTask]) -> None:
    """Remove what killed writers left beside each patient folder (hidden partial and old folders,
    the lock file), under that patient's lock; a patient a live process is writing is left alone."""
    for t in tasks:
        try:
            with OutputLock(t.output_dir):
                remove_stale_siblings(t.output_dir)
        except OutputBusyError:
            continue


def run_cohort(patients: Sequence[tuple[str, Path]], out_dir: str | Path, *,
               parameters: Mapping[str, Any] | None = None, workers: int | None = None,
               scheduler: str | None = None, pipeline: str = DEFAULT_PIPELINE,
               progress: Callable[[float, str], None] | None = None) -> CohortSummary:
    """Run every patient through ``pipeline``; results in ``out_dir/patients/<id>``.

    Parameters
    ----------
    patients : sequence of (id, input folder)
    out_dir : path
    parameters : dict
        Passed to the pipeline (and hashed for resumability).
    workers : int, optional
        Local worker processes (default: CPU count). Ignored with ``scheduler``.
    scheduler : str, optional
        Address of a running Dask distributed scheduler (``tcp://127.0.0.1:8786``); requires the
        optional ``dask``/``distributed`` packages.
    pipeline : str
        ``module:function`` of the per-patient pipeline.
    """
    out = Path(out_dir) / "patients"
    out.mkdir(parents=True, exist_ok=True)
    params = dict(parameters or {})
    n_local = max(1, min(workers or os.cpu_count() or 1, len(patients))) if not scheduler else 1
    threads = max(1, (os.cpu_count() or 1) // n_local) if n_local > 1 else None
    token = uuid.uuid4().hex
    tasks = [PatientTask(pid, Path(p).resolve(), (out / pid).resolve(), params, pipeline, threads, token)
             for pid, p in patients]
    _clean_partials(tasks)
    t0 = time.perf_counter()
    outcomes: dict[str, PatientOutcome] = {}

    def _note(o: PatientOutcome) -> None:
        outcomes[o.patient_id] = o
        if progress:
            progress(len(outcomes) / len(tasks), f"{o.patient_id}: {o.status}")

    if scheduler:
        try:
            from distributed import Client
            from distributed import as_completed as dask_completed
        except ImportError:
            from ..errors import DependencyError

            raise DependencyError("--scheduler needs the optional packages dask and distributed "
                                  "(pip install 'LuDosimetryLib[dask]')") from None
        with Client(scheduler, timeout=60) as client:
            n_workers = len(client.scheduler_info().get("workers", {}))
            futures = {client.submit(_process, t, key=f"patient-{t.patient_id}-{os.getpid()}", pure=False): t
                       for t in tasks}
            for fut in dask_completed(list(futures)):
                _note(_dask_outcome(fut, futures[fut]))
        used = f"dask {scheduler}"
    else:
        n_workers = max(1, min(workers or os.cpu_count() or 1, len(tasks)))
        used = "local"
        if n_workers == 1:
            for t in tasks:
                _note(_process(t))
        else:
            ctx = get_context("spawn")
            with ProcessPoolExecutor(max_workers=n_workers, mp_context=ctx, max_tasks_per_child=1) as pool:
                futs = [pool.submit(_process, t) for t in tasks]
                for fut in as_completed(futs):
                    _note(fut.result())
    ordered = tuple(outcomes[t.patient_id] for t in tasks)
    return CohortSummary(ordered, used, n_workers, time.perf_counter() - t0)
