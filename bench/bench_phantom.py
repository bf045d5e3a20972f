"""Benchmark: synthetic patient generation and folder writing, small and demo sizes.

Prints seconds (best of ``--repeat``) for generation, NIfTI-only writing and DICOM writing, and
each as a ratio to the same run's baseline: rasterising the anatomy once on the size's CT grid
(the floor of any per-timepoint work).

Usage: python bench/bench_phantom.py [--sizes small demo] [--repeat 1]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from LuDosimetryLib.phantom import generate_patient, write_patient_folder
from LuDosimetryLib.phantom.anatomy import Grid, rasterize


def _best(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", nargs="+", default=["small", "demo"])
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    for size in args.sizes:
        patient = generate_patient(size, seed=0)
        ct = patient.labels
        grid = Grid(ct.GetOrigin(), ct.GetSpacing(), ct.GetSize())
        base = _best(lambda grid=grid: rasterize(grid), args.repeat)
        gen = _best(lambda size=size: generate_patient(size, seed=0), args.repeat)
        with tempfile.TemporaryDirectory() as tmp:
            nifti = _best(lambda p=patient, t=tmp: write_patient_folder(p, Path(t) / "n", force=True, dicom=False),
                          args.repeat)
            dicom = _best(lambda p=patient, t=tmp: write_patient_folder(p, Path(t) / "d", force=True, dicom=True),
                          args.repeat)
        print(f"{size}: rasterise {base:.2f} s | generate {gen:.2f} s ({gen / base:.1f}x) | "
              f"write NIfTI {nifti:.2f} s ({nifti / base:.1f}x) | +DICOM {dicom:.2f} s ({dicom / base:.1f}x)")


if __name__ == "__main__":
    main()
