"""Benchmark: cohort throughput (patients per hour) on the local pool and on a Dask cluster.

Writes a synthetic cohort (NIfTI route) of ``--patients`` patients of ``--size``, then runs the
real chain (``ludosimetry run`` per patient, prediction included) on it, each run into a fresh
results folder so nothing is skipped:

* local process pool with 1 and 2 workers (the baseline);
* with ``--dask``: a Dask scheduler and 1, then 2, nanny-less workers started as separate
  processes on loopback (:class:`LuDosimetryLib.cohort.local_cluster.LocalProcessCluster`, what
  ``dask scheduler``/``dask worker`` run on a real cluster), and 2 workers with one of them
  killed (SIGKILL) while it is inside a patient, after the first patient has finished. The killed
  run must complete with every patient done exactly once and whole (``run.json`` complete), and
  a rerun must skip every patient; the benchmark checks both and says so.

Prints seconds and patients per hour of each, and the ratios against the local 1-worker run
measured in the same invocation (ideal 1 → 2 worker speed-up on 2 cores: 2.0).

Usage: python bench/bench_cohort.py [--patients 6] [--size small|demo] [--dask]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from LuDosimetryLib.cohort.runner import CohortSummary, discover_patients, run_cohort
from LuDosimetryLib.phantom.cohort import CohortSettings, write_synthetic_cohort

ROOT = Path(__file__).resolve().parents[1]


def _rate(s: CohortSummary) -> float:
    return len(s.by_status("done")) / s.seconds * 3600


def _line(label: str, s: CohortSummary, base: float | None, extra: str = "") -> None:
    failed = [o.patient_id for o in s.outcomes if o.status not in ("done", "skipped")]
    ratio = f"{_rate(s) / base:6.2f}x" if base else "  1.00x"
    print(f"{label:34s} {s.seconds:8.1f} s {_rate(s):8.1f} patients/hour {ratio}"
          + (f"  not done: {failed}" if failed else "") + extra, flush=True)


def _killed_run(cohort: Path, out: Path) -> tuple[CohortSummary, str]:
    """2 workers, one killed inside a patient once the first patient has finished."""
    from LuDosimetryLib.cohort.local_cluster import LocalProcessCluster

    with LocalProcessCluster(2, memory_limit="8GiB", pythonpath=[ROOT]) as cluster:
        result: dict = {}
        t = threading.Thread(target=lambda: result.update(
            summary=run_cohort(discover_patients(cohort), out, scheduler=cluster.address)))
        t.start()
        patients = out / "patients"
        victim, done = None, []
        while t.is_alive() and victim is None:
            done = [p for p in patients.iterdir() if not p.name.startswith(".")] if patients.exists() else []
            if done:  # both workers hold a patient now (more patients than workers)
                victim = next(iter(cluster.workers))
                os.kill(victim, signal.SIGKILL)
            time.sleep(0.05)
        t.join()
        summary = result["summary"]
        ids = sorted(pid for pid, _ in discover_patients(cohort))
        whole = all(json.loads((patients / pid / "run.json").read_text()).get("cohort", {}).get("complete")
                    for pid in ids if (patients / pid / "run.json").exists())
        check = (f"; killed worker {victim} after {len(done)} patient(s) finished"
                 f"; all done: {summary.by_status('done') == ids}; every run.json complete: {whole}")
        again = run_cohort(discover_patients(cohort), out, scheduler=cluster.address)
        check += f"; rerun skipped {len(again.by_status('skipped'))}/{len(ids)}"
        check += f"; hidden partial folders left: {len(list(patients.glob('.*')))}"
    return summary, check


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=6)
    ap.add_argument("--size", default="small", choices=("demo", "small"))
    ap.add_argument("--dask", action="store_true", help="also on a local Dask cluster (1, 2 workers, one killed)")
    args = ap.parse_args(argv)
    print(f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        cohort = write_synthetic_cohort(Path(tmp) / "cohort", CohortSettings(n_patients=args.patients, size=args.size,
                                                                             dicom=False))
        print(f"{args.patients} {args.size} patients written in {time.perf_counter() - t0:.1f} s", flush=True)
        base = None
        for workers in (1, 2):
            s = run_cohort(discover_patients(cohort), Path(tmp) / f"local{workers}", workers=workers)
            _line(f"local pool, {workers} worker(s)", s, base)
            base = base or _rate(s)
        if args.dask:
            from LuDosimetryLib.cohort.local_cluster import LocalProcessCluster

            for workers in (1, 2):
                with LocalProcessCluster(workers, memory_limit="8GiB", pythonpath=[ROOT]) as cluster:
                    s = run_cohort(discover_patients(cohort), Path(tmp) / f"dask{workers}", scheduler=cluster.address)
                _line(f"dask, {workers} worker(s)", s, base)
            s, check = _killed_run(cohort, Path(tmp) / "dask_killed")
            _line("dask, 2 workers, one killed", s, base, check)
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
