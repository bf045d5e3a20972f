"""Cohort runs: local and Dask give identical results, a killed run resumes without redoing or
half-writing anything, and a failing patient does not stop the others."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from LuDosimetryLib.cli import main
from LuDosimetryLib.cohort.runner import discover_patients, run_cohort
from LuDosimetryLib.results import read_csv

HERE = Path(__file__).resolve().parent
TOY = "cohort_toy_pipeline:run_patient"


def _cohort(tmp_path: Path, n: int = 4, bad: tuple[str, ...] = ()) -> Path:
    root = tmp_path / "cohort"
    for i in range(n):
        p = root / f"P{i:02d}"
        p.mkdir(parents=True)
        (p / "patient.json").write_text(json.dumps({"id": p.name}))
        (p / "activity.txt").write_text("corrupt" if p.name in bad else str(1.5 * (i + 1)))
    return root


def _doses(out: Path) -> dict[str, float]:
    return {p.name: float(read_csv(p / "doses.csv")[0]["dose_Gy"]) for p in sorted((out / "patients").iterdir())
            if not p.name.startswith(".")}


def test_local_run_then_rerun_skips_unchanged_patients(tmp_path):
    root = _cohort(tmp_path)
    out = tmp_path / "out"
    s1 = run_cohort(discover_patients(root), out, workers=2, pipeline=TOY, parameters={"gy_per_unit": 2.0})
    assert s1.by_status("done") == ["P00", "P01", "P02", "P03"]
    assert _doses(out) == {"P00": 3.0, "P01": 6.0, "P02": 9.0, "P03": 12.0}
    pids = {o.summary["pid"] for o in s1.outcomes}
    assert os.getpid() not in pids  # ran in worker processes
    (root / "P02" / "activity.txt").write_text("10")  # changed input: only this patient is redone
    s2 = run_cohort(discover_patients(root), out, workers=2, pipeline=TOY, parameters={"gy_per_unit": 2.0})
    assert s2.by_status("done") == ["P02"] and s2.by_status("skipped") == ["P00", "P01", "P03"]
    assert _doses(out)["P02"] == 20.0
    s3 = run_cohort(discover_patients(root), out, workers=1, pipeline=TOY, parameters={"gy_per_unit": 3.0})
    assert len(s3.by_status("done")) == 4  # changed parameters: all redone


def test_failing_patient_is_reported_and_the_others_complete(tmp_path, capsys):
    root = _cohort(tmp_path, bad=("P01",))
    out = tmp_path / "out"
    status = main(["cohort", str(root), "--out", str(out), "--workers", "2", "--pipeline", TOY])
    assert status == 3
    summary = json.loads((out / "cohort.json").read_text())
    assert summary["done"] == ["P00", "P02", "P03"] and list(summary["failed"]) == ["P01"]
    assert "InputError" in summary["failed"]["P01"] and "activity.txt" in summary["failed"]["P01"]
    assert not (out / "patients" / "P01").exists()
    assert "P01: InputError" in capsys.readouterr().out
    assert (out / "report.html").read_text().count("failed") >= 1


def test_killed_run_resumes_without_redoing_or_half_writing(tmp_path):
    root = _cohort(tmp_path, n=6)
    out = tmp_path / "out"
    params = tmp_path / "params.json"
    params.write_text(json.dumps({"delay_s": 1.0}))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), str(HERE.parents[1])]))
    cmd = [sys.executable, "-m", "LuDosimetryLib", "cohort", str(root), "--out", str(out), "--workers", "1",
           "--parameters", str(params), "--pipeline", TOY]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 60
    patients = out / "patients"
    while time.monotonic() < deadline:
        done = [p for p in patients.glob("P*")] if patients.exists() else []
        if len(done) >= 2:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the process and its workers, mid-run
    proc.wait(timeout=10)
    finished = sorted(p.name for p in patients.glob("P*"))
    assert 2 <= len(finished) < 6
    for name in finished:  # whatever is in place is whole
        assert json.loads((patients / name / "run.json").read_text())["cohort"]["complete"] is True
    params.write_text(json.dumps({"delay_s": 1.0}))
    summary = run_cohort(discover_patients(root), out, workers=1, pipeline=TOY, parameters={"delay_s": 1.0})
    assert summary.by_status("skipped") == finished
    assert sorted(summary.by_status("done")) == sorted(set(f"P{i:02d}" for i in range(6)) - set(finished))
    assert not list(patients.glob(".*"))  # no temporary left
    assert _doses(out) == {f"P{i:02d}": 1.5 * (i + 1) for i in range(6)}


@pytest.fixture()
def dask_cluster(tmp_path):
    """A real Dask scheduler and two workers on loopback, as separate processes."""
    sched_file = tmp_path / "scheduler.json"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), str(HERE.parents[1])]))
    bindir = Path(sys.executable).parent
    sched = subprocess.Popen([str(bindir / "dask"), "scheduler", "--host", "127.0.0.1", "--port", "0",
                              "--no-dashboard", "--scheduler-file", str(sched_file)], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers = []
    try:
        deadline = time.monotonic() + 120
        address = None
        while address is None and time.monotonic() < deadline:
            try:  # the scheduler writes the file when it listens; wait until it parses
                address = json.loads(sched_file.read_text())["address"]
            except (OSError, ValueError, KeyError):
                time.sleep(0.1)
        assert address, "the Dask scheduler did not start within 120 s"
        assert address.startswith("tcp://127.0.0.1:")
        for _ in range(2):
            workers.append(subprocess.Popen([str(bindir / "dask"), "worker", address, "--nthreads", "1",
                                             "--nworkers", "1", "--no-dashboard", "--host", "127.0.0.1",
                                             "--memory-limit", "2GiB"], env=env,
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        from distributed import Client

        with Client(address, timeout=120) as c:
            c.wait_for_workers(2, timeout=120)
        yield address
    finally:
        for p in [*workers, sched]:
            p.terminate()
        for p in [*workers, sched]:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


def test_dask_and_local_runs_give_identical_results(tmp_path, dask_cluster):
    root = _cohort(tmp_path, n=5)
    local = run_cohort(discover_patients(root), tmp_path / "local", workers=2, pipeline=TOY)
    dask = run_cohort(discover_patients(root), tmp_path / "dask", scheduler=dask_cluster, pipeline=TOY)
    assert dask.scheduler.startswith("dask tcp://127.0.0.1") and dask.workers == 2
    assert local.by_status("done") == dask.by_status("done") == [f"P{i:02d}" for i in range(5)]
    for pid in local.by_status("done"):
        a = (tmp_path / "local" / "patients" / pid / "doses.csv").read_bytes()
        b = (tmp_path / "dask" / "patients" / pid / "doses.csv").read_bytes()
        assert a.split(b"\n")[1].rsplit(b",", 1)[0] == b.split(b"\n")[1].rsplit(b",", 1)[0]  # pid column differs
