"""Benchmark: FFT dose convolution against scipy.signal.fftconvolve and the bare-FFT floor.

On 128×128×128 and 128×128×384 float32 TIA maps (4.8 mm voxels, default 177Lu kernel with photons),
in one run: the project's ``convolve_dose`` (kernel spectrum cached, as in a pipeline), SciPy's
``fftconvolve(mode="same")`` and the floor, a bare ``scipy.fft`` rfftn + multiply + irfftn round
trip of the same padded grid with the kernel spectrum precomputed. Prints seconds (best of
``--repeat``), ratios, and peak traced memory (tracemalloc: numpy buffers; pocketfft scratch is
not traced) per method.

Usage: python bench/bench_convolution.py [--repeat 7] [--workers N]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import scipy.fft
from scipy.signal import fftconvolve

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from LuDosimetryLib.dose.convolution import convolve_dose, kernel_spectrum, padded_shape
from LuDosimetryLib.kernels import dose_kernel


def best_times(fns: dict, repeat: int) -> dict:
    """Best wall time (s) of each function, the methods interleaved so load changes hit all alike."""
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeat):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


def peak_MiB(fn):
    tracemalloc.start()
    tracemalloc.reset_peak()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    kernel = dose_kernel((4.8, 4.8, 4.8))
    print(f"kernel 4.8 mm, shape {kernel.shape}, built in {time.perf_counter() - t0:.2f} s; "
          f"workers={args.workers}, cores={os.cpu_count()}")
    kv = np.asarray(kernel.values_Gy_per_Bq_h)
    rng = np.random.default_rng(0)
    print(f"{'volume':>14} {'method':>14} {'seconds':>9} {'ratio/floor':>11} {'peak MiB':>9} {'input MiB':>9}")
    for shape in ((128, 128, 128), (384, 128, 128)):
        tia = rng.random(shape, dtype=np.float32)
        pad = padded_shape(shape, kernel.shape)
        spec = kernel_spectrum(kernel, pad, workers=args.workers)  # cached: the pipeline's steady state

        def project(tia=tia):
            return convolve_dose(tia, kernel, workers=args.workers)

        def floor(tia=tia, pad=pad, spec=spec):
            f = scipy.fft.rfftn(tia, s=pad, workers=args.workers)
            f *= spec
            return scipy.fft.irfftn(f, s=pad, workers=args.workers, overwrite_x=True)

        def scipy_fftconvolve(tia=tia):
            return fftconvolve(tia, kv, mode="same")

        project()  # warm caches
        ref = scipy_fftconvolve()
        err = float(np.max(np.abs(project() - ref)) / np.max(np.abs(ref)))
        fns = {"floor": floor, "convolve_dose": project, "fftconvolve": scipy_fftconvolve}
        secs = best_times(fns, args.repeat)
        results = {name: (secs[name], peak_MiB(fn)) for name, fn in fns.items()}
        label = "x".join(str(s) for s in shape[::-1])
        for name, (sec, mem) in results.items():
            print(f"{label:>14} {name:>14} {sec:9.3f} {sec / results['floor'][0]:11.2f} {mem:9.0f} "
                  f"{tia.nbytes / 2**20:9.0f}")
        print(f"{'':>14} padded grid {pad}; convolve_dose/fftconvolve = "
              f"{results['convolve_dose'][0] / results['fftconvolve'][0]:.2f}; max rel. difference {err:.1e}")


if __name__ == "__main__":
    main()
