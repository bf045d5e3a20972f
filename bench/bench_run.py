"""Benchmark: ``ludosimetry run`` on the demo-size sample patient, stage by stage.

Generates the demo patient (NIfTI route, kidney motion) in a temporary folder unless ``--patient``
names one, runs :func:`LuDosimetryLib.pipeline.run_patient`, and prints the seconds spent in
each stage, the total against the 60 s goal (ratio), and the peak resident memory against the
4 GiB goal. Baseline for the stages: the time to read the patient's images (ingest), measured
in the same run.

Usage: python bench/bench_run.py [--patient DIR] [--size demo|small]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from LuDosimetryLib.phantom import generate_patient, write_patient_folder
from LuDosimetryLib.pipeline import run_patient

GOAL_S = 60.0
GOAL_GIB = 4.0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patient", type=Path, default=None)
    ap.add_argument("--size", default="demo", choices=("demo", "small"))
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.patient
        if folder is None:
            t0 = time.perf_counter()
            patient = generate_patient(args.size, seed=0, kidney_motion=True)
            folder = write_patient_folder(patient, Path(tmp) / "patient", dicom=False)
            print(f"phantom ({args.size}) generated and written in {time.perf_counter() - t0:.1f} s")
        stages: list[tuple[str, float]] = []
        last = [time.perf_counter(), "start"]

        def progress(fraction: float, message: str) -> None:
            stage = message.split(":")[0]
            now = time.perf_counter()
            if stage != last[1]:
                stages.append((last[1], now - last[0]))
                last[0], last[1] = now, stage

        t0 = time.perf_counter()
        run_patient(folder, Path(tmp) / "results", progress=progress)
        total = time.perf_counter() - t0
        stages.append((last[1], time.perf_counter() - last[0]))
    merged: dict[str, float] = {}
    for name, sec in stages:
        if name != "start":
            merged[name] = merged.get(name, 0.0) + sec
    print(f"\n{'stage':40s} {'seconds':>8s} {'share':>6s}")
    for name, sec in merged.items():
        print(f"{name:40s} {sec:8.2f} {sec / total:6.1%}")
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(f"\ntotal {total:.1f} s = {total / GOAL_S:.2f} × the {GOAL_S:.0f} s goal; "
          f"peak resident memory {peak_gib:.2f} GiB = {peak_gib / GOAL_GIB:.2f} × the {GOAL_GIB:.0f} GiB goal")
    return 0


if __name__ == "__main__":
    sys.exit(main())
