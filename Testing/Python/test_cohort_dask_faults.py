"""A cohort on a real Dask cluster survives a worker killed mid-patient.

Scheduler and workers are separate processes on loopback (``dask scheduler``/``dask worker``,
without nanny, so SIGKILL really ends the worker that holds a patient). The test kills the worker
while it is inside a patient; the scheduler gives that patient to the surviving worker; the run
completes with every patient whole and finished exactly once, and a rerun skips them all.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from LuDosimetryLib.cohort.local_cluster import LocalProcessCluster
from LuDosimetryLib.cohort.runner import discover_patients, run_cohort

HERE = Path(__file__).resolve().parent
TOY = "cohort_toy_pipeline:run_patient"
N_PATIENTS = 20


def _cohort(root: Path, n: int) -> Path:
    for i in range(n):
        p = root / f"P{i:02d}"
        p.mkdir(parents=True)
        (p / "patient.json").write_text(json.dumps({"id": p.name}))
        (p / "activity.txt").write_text(str(1.0 + i))
    return root


@pytest.fixture()
def cluster():
    """Scheduler and two nanny-less workers as separate processes; yields (address, {pid: Popen})."""
    with LocalProcessCluster(2, memory_limit="1GiB", pythonpath=[HERE, HERE.parents[1]]) as c:
        yield c.address, c.workers


def _log(path: Path) -> list[tuple[str, str, int]]:
    if not path.exists():
        return []
    return [(a, b, int(c)) for a, b, c in (line.split() for line in path.read_text().splitlines() if line)]


@pytest.mark.slow
def test_worker_killed_mid_patient_run_completes_once_each(tmp_path, cluster):
    address, workers = cluster
    root = _cohort(tmp_path / "cohort", N_PATIENTS)
    out = tmp_path / "out"
    log = tmp_path / "log.txt"
    params = {"delay_s": 1.0, "log": str(log)}
    result: dict = {}

    def run() -> None:
        result["summary"] = run_cohort(discover_patients(root), out, scheduler=address, pipeline=TOY,
                                       parameters=params)

    t = threading.Thread(target=run)
    t.start()
    victim = None
    seen: dict[str, float] = {}  # when each start line was first seen
    deadline = time.monotonic() + 60
    while victim is None and time.monotonic() < deadline:  # a worker inside a patient, after some are done
        entries = _log(log)
        now = time.monotonic()
        for kind, p, _ in entries:
            if kind == "start":
                seen.setdefault(p, now)
        finished = {p for kind, p, _ in entries if kind == "finish"}
        if len(finished) >= 4:  # a patient started within the last 0.2 s has ≥ 0.8 s of its 1 s left
            fresh = [(p, pid) for kind, p, pid in entries
                     if kind == "start" and p not in finished and now - seen[p] < 0.2]
            if fresh:
                victim = fresh[-1]
                os.kill(victim[1], signal.SIGKILL)
                break
        time.sleep(0.01)
    assert victim is not None, "no worker was caught inside a patient"
    t.join(timeout=120)
    assert not t.is_alive(), "the cohort run did not complete after a worker was killed"
    summary = result["summary"]
    assert workers[victim[1]].wait(timeout=10) == -signal.SIGKILL

    ids = [f"P{i:02d}" for i in range(N_PATIENTS)]
    assert summary.by_status("done") == ids, [(o.patient_id, o.status, o.error) for o in summary.outcomes
                                                if o.status != "done"]
    entries = _log(log)
    finishes = Counter(p for kind, p, _ in entries if kind == "finish")
    assert finishes == Counter(ids), "every patient finished exactly once"
    starts = Counter(p for kind, p, _ in entries if kind == "start")
    assert starts[victim[0]] == 2  # started on the killed worker, then again on the survivor
    (survivor,) = set(workers) - {victim[1]}
    assert [pid for kind, p, pid in entries if kind == "finish" and p == victim[0]] == [survivor]
    patients = out / "patients"
    assert sorted(p.name for p in patients.iterdir() if not p.name.startswith(".")) == ids
    for pid in ids:  # whatever is visible is whole
        doc = json.loads((patients / pid / "run.json").read_text())
        assert doc["cohort"]["complete"] is True and doc["cohort"]["patient"] == pid
        assert (patients / pid / "doses.csv").exists()

    again = run_cohort(discover_patients(root), out, scheduler=address, pipeline=TOY, parameters=params)
    assert again.by_status("skipped") == ids
    assert not list(patients.glob(".*")), "the killed worker's hidden partial folder is cleaned by the rerun"
    assert Counter(p for kind, p, _ in _log(log) if kind == "finish") == finishes  # nothing redone


def test_local_cluster_refuses_a_worker_count_below_one():
    from LuDosimetryLib.errors import InputError

    with pytest.raises(InputError, match="n_workers"):
        LocalProcessCluster(0)
