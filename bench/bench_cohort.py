"""Benchmark: cohort throughput (patients per hour) with 1 and 2 local workers.

Writes a synthetic cohort (NIfTI route) of ``--patients`` patients of ``--size`` (default demo),
runs it with one worker, then with two (fresh results folders, so nothing is skipped), and
prints patients per hour and the 1 → 2 worker speed-up (ideal 2.0 on 2 cores).

Usage: python bench/bench_cohort.py [--patients 2] [--size demo|small]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from LuDosimetryLib.cohort.runner import discover_patients, run_cohort
from LuDosimetryLib.phantom.cohort import CohortSettings, write_synthetic_cohort


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=2)
    ap.add_argument("--size", default="demo", choices=("demo", "small"))
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        cohort = write_synthetic_cohort(Path(tmp) / "cohort", CohortSettings(n_patients=args.patients, size=args.size,
                                                                             dicom=False))
        print(f"{args.patients} {args.size} patients written in {time.perf_counter() - t0:.1f} s")
        rates = {}
        for workers in (1, 2):
            s = run_cohort(discover_patients(cohort), Path(tmp) / f"out{workers}", workers=workers)
            failed = s.by_status("failed")
            rates[workers] = len(s.by_status("done")) / s.seconds * 3600
            print(f"{workers} worker(s): {s.seconds:.1f} s, {rates[workers]:.1f} patients/hour"
                  + (f", failed: {failed}" if failed else ""))
    print(f"speed-up 1 → 2 workers: {rates[2] / rates[1]:.2f} (ideal 2.00)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
