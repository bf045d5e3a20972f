"""Benchmark: the vectorised gamma index against the cost of its own elementary step.

A smooth dose map (sum of Gaussians: a few "organs" and hot "lesions", 4.8 mm voxels, 96×96×96
and 128×128×160) and a predicted map shifted by 6 mm and scaled by 12 % (some voxels fail), in one run:
``gamma_index`` at 10 %/5 mm and 20 %/10 mm (global, 10 % threshold; SPECT_CRITERIA), and
``gamma_by_region`` (region-normalised) over the regions, against the baseline of one whole-volume
linear ``scipy.ndimage.shift`` (the step repeated per search offset). Prints seconds (best of
``--repeat``), the number of offsets searched and the ratio time / (one shift).

Usage: python bench/bench_prediction_gamma.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from scipy.ndimage import shift as nd_shift

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from LuDosimetryLib.prediction.comparison import SPECT_CRITERIA, SPECT_REGION_CRITERIA, gamma_by_region, gamma_index


def maps(shape, spacing=4.8, seed=0):
    rng = np.random.default_rng(seed)
    grids = np.meshgrid(*(np.arange(n) * spacing for n in shape), indexing="ij")
    ref = np.zeros(shape, np.float32)
    labels = np.zeros(shape, np.int32)
    ext = np.array(shape) * spacing
    for lab in range(1, 9):
        c = rng.uniform(0.2, 0.8, 3) * ext
        s = rng.uniform(8, 30)
        peak = rng.uniform(2, 40)
        r2 = sum((g - ci) ** 2 for g, ci in zip(grids, c))
        ref += (peak * np.exp(-r2 / (2 * s**2))).astype(np.float32)
        labels[(r2 < (1.5 * s) ** 2) & (labels == 0)] = lab
    ev = (nd_shift(ref, (0, 0, 6.0 / spacing), order=1, mode="nearest") * 1.12).astype(np.float32)
    return ref, ev, labels


def best(fn, repeat):
    t = float("inf")
    out = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        t = min(t, time.perf_counter() - t0)
    return t, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    sp = (4.8, 4.8, 4.8)
    for shape in ((96, 96, 96), (160, 128, 128)):
        ref, ev, labels = maps(shape)
        base, _ = best(lambda ev=ev: nd_shift(ev, (0.5, 0.5, 0.5), order=1, mode="nearest"), args.repeat)
        print(f"grid {shape} ({ref.size / 1e6:.2f} M voxels): one linear shift {base * 1e3:.1f} ms")
        for c in SPECT_CRITERIA:
            t, res = best(lambda c=c, ref=ref, ev=ev: gamma_index(ref, ev, sp, c), args.repeat)
            print(f"  gamma {c.label:38s} {t:7.3f} s  offsets {res.n_offsets:4d}  pass {res.pass_rate:.3f}  "
                  f"= {t / base:6.1f} shifts")
        names = {i: f"r{i}" for i in range(1, 9)}
        for c in SPECT_REGION_CRITERIA:
            def run(c=c, ref=ref, ev=ev, labels=labels, names=names):
                return gamma_by_region(ref, ev, sp, labels, names, c)

            t, rows = best(run, args.repeat)
            rates = [r["pass_rate"] for r in rows if r["pass_rate"] is not None]
            print(f"  gamma {c.label + ' (8 regions)':38s} {t:7.3f} s  mean pass {np.mean(rates):.3f}  "
                  f"= {t / base:6.1f} shifts")


if __name__ == "__main__":
    main()
