"""Peak memory of ``run`` grows at most linearly with the data (issue 20).

The small patient and the same patient with a CT of half the spacing on every axis (size
``small2x``: 8× the CT voxels, same SPECT) run through :func:`LuDosimetryLib.pipeline.run_patient`,
each in its own child process; its peak resident memory (VmHWM) is measured as follows. The
child first imports what the run imports, notes its resident memory and resets its peak (Linux
``/proc/self/clear_refs``): the interpreter and libraries are subtracted in the same process
(they do not grow with the data; a separate baseline process, or the peak during the imports,
varied by hundreds of MiB between runs, more than the small run's own data). The data-driven memory
must grow no faster than the number of image voxels read:
log(ΔM_2x / ΔM_small) / log(N_2x / N_small) ≤ 1. A stage that holds a
quadratic structure, or a copy per timepoint at CT resolution in float64 where int16 was read,
fails here in CI and not only in bench/bench_run.py.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from LuDosimetryLib.phantom import generate_patient, write_patient_folder

ROOT = Path(__file__).resolve().parents[2]

_CHILD = """
import json, resource, sys
from LuDosimetryLib import pipeline
import SimpleITK, scipy.fft, scipy.ndimage, scipy.optimize, matplotlib
from LuDosimetryLib.ingest import load_patient
from LuDosimetryLib.kinetics import fitting, voxel
from LuDosimetryLib.dose import convolution, export
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1])
print("BASE", status("VmRSS"))  # after the imports
with open("/proc/self/clear_refs", "w") as fh:  # reset the peak (VmHWM): import transients do not count
    fh.write("5")
pipeline.run_patient(sys.argv[1], sys.argv[2])
print("MAXRSS", status("VmHWM"))
"""


def _peak_kib(*args: str) -> tuple[int, int]:
    """(peak after the imports, peak of the whole run) of a child process (KiB)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "2"}
    proc = subprocess.run([sys.executable, "-c", _CHILD, *args], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]

    def value(key: str) -> int:
        return int([ln for ln in proc.stdout.splitlines() if ln.startswith(key)][-1].split()[1])

    return value("BASE"), value("MAXRSS")


def _voxels(patient) -> int:
    n = 0
    for cyc in patient.cycles:
        for tp in cyc.timepoints:
            n += int(np.prod(tp.ct.GetSize())) + sum(int(np.prod(b.counts.GetSize())) for b in tp.beds)
    return n


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("memscale")
    out = {}
    for size in ("small", "small2x"):
        p = generate_patient(size, seed=0, kidney_motion=True, with_pet=False)
        out[size] = (write_patient_folder(p, root / size, dicom=False), _voxels(p))
    return root, out


def test_run_peak_memory_grows_at_most_linearly(folders):
    root, data = folders
    runs = {size: _peak_kib(str(folder), str(root / f"out_{size}")) for size, (folder, _) in data.items()}
    n_small, n_2x = data["small"][1], data["small2x"][1]
    assert n_2x / n_small > 5  # the CT dominates: 8x its voxels, same SPECT
    d_small, d_2x = (runs[s][1] - runs[s][0] for s in ("small", "small2x"))
    assert d_small > 0 and d_2x > 0
    exponent = math.log(d_2x / d_small) / math.log(n_2x / n_small)
    report = {"imports_MiB": runs["small"][0] / 1024, "small_MiB": runs["small"][1] / 1024,
              "small2x_MiB": runs["small2x"][1] / 1024, "voxels_small": n_small, "voxels_small2x": n_2x,
              "exponent": exponent}
    print(json.dumps(report))
    assert exponent <= 1.0, json.dumps(report)
