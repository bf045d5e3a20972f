"""A Dask cluster of separate processes on this host: one scheduler and N workers on loopback.

What a cluster of hosts runs (``dask scheduler`` on one, ``dask worker`` on the others; README,
"Scaling out"), started here as child processes of the caller, for the cohort benchmark
(``bench/bench_cohort.py --dask``), the fault test and trying ``ludosimetry cohort --scheduler``
on one workstation. Workers run without a nanny, so a killed worker really ends (a nanny would
restart it): that is what a lost host looks like to the scheduler.

Needs the optional packages ``dask`` and ``distributed`` (extra ``dask``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from ..errors import DependencyError, InputError

__all__ = ["LocalProcessCluster"]


def _dask_command() -> str:
    exe = Path(sys.executable).parent / "dask"
    if not exe.exists():
        raise DependencyError("the 'dask' command is not installed next to this Python: a local cluster needs the "
                              "optional packages dask and distributed (pip install 'LuDosimetryLib[dask]')")
    return str(exe)


class LocalProcessCluster:
    """Scheduler and workers as child processes on 127.0.0.1 (a context manager).

    Parameters
    ----------
    n_workers : int
        Worker processes to start (≥ 1).
    threads_per_worker : int
        Threads per worker (1: one patient at a time per worker, as the README recommends).
    memory_limit : str
        Each worker's memory limit (Dask syntax, e.g. ``"4GiB"``).
    pythonpath : sequence of path
        Prepended to the workers' ``PYTHONPATH`` (e.g. the folder of a pipeline module).
    start_timeout_s : float
        How long to wait for the scheduler and every worker (s).

    Attributes
    ----------
    address : str
        The scheduler's address (``tcp://127.0.0.1:PORT``), once entered.
    workers : dict of int to subprocess.Popen
        Worker processes by PID (each is the worker itself: no nanny).
    """

    def __init__(self, n_workers: int = 2, *, threads_per_worker: int = 1, memory_limit: str = "4GiB",
                 pythonpath: Sequence[str | Path] = (), start_timeout_s: float = 120.0) -> None:
        if int(n_workers) != n_workers or n_workers < 1:
            raise InputError(f"must be an integer ≥ 1, got {n_workers!r}", source="n_workers")
        self.n_workers = int(n_workers)
        self.threads_per_worker = int(threads_per_worker)
        self.memory_limit = memory_limit
        self.pythonpath = [str(p) for p in pythonpath]
        self.start_timeout_s = float(start_timeout_s)
        self.address = ""
        self.workers: dict[int, subprocess.Popen] = {}
        self._procs: list[subprocess.Popen] = []
        self._tmp: tempfile.TemporaryDirectory | None = None

    def __enter__(self) -> LocalProcessCluster:
        dask = _dask_command()
        self._tmp = tempfile.TemporaryDirectory(prefix="ludosimetry-cluster-")
        sched_file = Path(self._tmp.name) / "scheduler.json"
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([*self.pythonpath, *filter(None, [env.get("PYTHONPATH")])])
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "env": env}
        try:
            self._procs.append(subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", "0",
                                                 "--no-dashboard", "--scheduler-file", str(sched_file)], **quiet))
            deadline = time.monotonic() + self.start_timeout_s
            while not self.address:
                try:
                    self.address = json.loads(sched_file.read_text())["address"]
                except (OSError, ValueError, KeyError):
                    if time.monotonic() > deadline or self._procs[0].poll() is not None:
                        raise InputError("the Dask scheduler did not start", source="dask scheduler") from None
                    time.sleep(0.1)
            started = []
            for _ in range(self.n_workers):
                p = subprocess.Popen([dask, "worker", self.address, "--no-nanny", "--nthreads",
                                      str(self.threads_per_worker), "--no-dashboard", "--host", "127.0.0.1",
                                      "--memory-limit", self.memory_limit], **quiet)
                self._procs.append(p)
                started.append(p)
            from distributed import Client

            with Client(self.address, timeout=self.start_timeout_s) as client:
                client.wait_for_workers(self.n_workers, timeout=self.start_timeout_s)
                pids = set(client.run(os.getpid).values())
            self.workers = {p.pid: p for p in started}
            if pids != set(self.workers):
                raise InputError(f"the scheduler's workers (PIDs {sorted(pids)}) are not the processes started "
                                 f"({sorted(self.workers)})", source="dask worker")
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Stop every process (terminate, then kill after 20 s) and remove the scheduler file."""
        for p in self._procs:
            if p.poll() is None:
                p.terminate()
        for p in self._procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self._procs.clear()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __exit__(self, *exc: object) -> None:
        self.close()
