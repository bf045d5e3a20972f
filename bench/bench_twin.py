"""Benchmark: the SPECT twin's OSEM against a floor and (if installed) PyTomography on the CPU.

A water cylinder (Ø 216 × 160 mm) on 64 × 64 × 48 voxels of 4.8 mm, 60 views, OSEM 4 iterations ×
6 subsets with attenuation and depth-dependent collimator blur. Methods, in one run:

- ``twin``: :func:`LuDosimetryLib.calibration.twin.reconstruct_osem` (system built once);
- ``floor``: the same number of rotations alone (sparse rotation of the volume, forward and back),
  the part of each projection no blur model can avoid;
- ``pytomography`` (optional; ``pip install torch pytomography``, not a dependency of the project):
  ``SPECTSystemMatrix`` with ``SPECTAttenuationTransform`` and ``SPECTPSFTransform``, ``OSEM``.

Prints seconds (best of ``--repeat``) and ratios to the twin; reconstructed totals / true totals.
Usage: python bench/bench_twin.py [--repeat 2]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from LuDosimetryLib.calibration.twin import (
    SpectSystem,
    TwinSettings,
    imaging_energy_keV,
    mu_from_hu_per_mm,
    reconstruct_osem,
)

N, NZ, VOX = 64, 48, 4.8


def phantom() -> tuple[np.ndarray, np.ndarray]:
    """Activity (arbitrary units per voxel) and HU of the cylinder, [k, j, i]."""
    c = (np.arange(N) - (N - 1) / 2) * VOX
    z = (np.arange(NZ) - (NZ - 1) / 2) * VOX
    inside = ((c[None, :, None] ** 2 + c[None, None, :] ** 2) <= 108.0 ** 2) & (np.abs(z)[:, None, None] <= 80.0)
    return inside * 10.0, np.where(inside, 0.0, -1000.0)


def run_twin(act, hu, st):
    mu = mu_from_hu_per_mm(hu, energy_keV=imaging_energy_keV())
    system = SpectSystem(mu, voxel_mm=VOX, settings=st)
    proj = np.random.default_rng(0).poisson(np.stack([system.forward(act, v) for v in range(st.n_views)]))
    t0 = time.perf_counter()
    x = reconstruct_osem(proj.astype(np.float32), system)
    return time.perf_counter() - t0, float(x.sum() / act.sum()), system


def run_floor(system, st):
    vol = np.ones(system.shape, dtype=np.float32)
    t0 = time.perf_counter()
    for _ in range(st.iterations + 1):  # + the sensitivity images
        for v in range(st.n_views):
            system._rotate_back(system._rotate(vol, system.rot[v]), system.rot[v])
    return time.perf_counter() - t0


def run_pytomography(act, hu, st):
    try:
        import torch
        from pytomography.algorithms import OSEM
        from pytomography.likelihoods import PoissonLogLikelihood
        from pytomography.metadata.SPECT import SPECTObjectMeta, SPECTProjMeta, SPECTPSFMeta
        from pytomography.projectors.SPECT import SPECTSystemMatrix
        from pytomography.transforms.SPECT import SPECTAttenuationTransform, SPECTPSFTransform
    except ImportError as exc:
        return None, f"not installed ({exc.name})"
    d = VOX / 10.0  # cm
    obj = SPECTObjectMeta(dr=(d, d, d), shape=(N, N, NZ))
    angles = np.arange(st.n_views) * 360.0 / st.n_views
    proj_meta = SPECTProjMeta((N, NZ), (d, d), angles, radii=np.full(st.n_views, st.radius_mm / 10.0))
    fwhm_to_sigma = 1 / 2.3548
    a = st.hole_diameter_mm / st.hole_length_mm * fwhm_to_sigma
    b = st.hole_diameter_mm / 10.0 * fwhm_to_sigma
    mu = mu_from_hu_per_mm(hu, energy_keV=imaging_energy_keV()) * 10.0  # 1/cm
    mu_t = torch.tensor(np.ascontiguousarray(mu.transpose(2, 1, 0)))  # PyTomography: [x, y, z]
    act_t = torch.tensor(np.ascontiguousarray(act.transpose(2, 1, 0)).astype(np.float32))
    sm = SPECTSystemMatrix([SPECTAttenuationTransform(attenuation_map=mu_t), SPECTPSFTransform(SPECTPSFMeta((a, b)))],
                           [], obj, proj_meta)
    proj = torch.poisson(sm.forward(act_t))
    t0 = time.perf_counter()
    rec = OSEM(PoissonLogLikelihood(sm, proj))(n_iters=st.iterations, n_subsets=st.subsets)
    return time.perf_counter() - t0, float(rec.sum() / act_t.sum())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    st = TwinSettings(n_views=60, iterations=4, subsets=6, radius_mm=160.0)
    act, hu = phantom()
    best = {"twin": np.inf, "floor": np.inf, "pytomography": np.inf}
    totals = {}
    note = ""
    for _ in range(args.repeat):
        t, tot, system = run_twin(act, hu, st)
        best["twin"], totals["twin"] = min(best["twin"], t), tot
        best["floor"] = min(best["floor"], run_floor(system, st))
        res = run_pytomography(act, hu, st)
        if res[0] is None:
            note = res[1]
        else:
            best["pytomography"], totals["pytomography"] = min(best["pytomography"], res[0]), res[1]
    print(f"OSEM {st.iterations}i{st.subsets}s, {st.n_views} views, {N}x{N}x{NZ} voxels of {VOX} mm")
    for name, t in best.items():
        if np.isfinite(t):
            extra = f"  total/true {totals[name]:.4f}" if name in totals else ""
            print(f"{name:13s} {t:8.2f} s   ratio to twin {t / best['twin']:6.2f}{extra}")
        else:
            print(f"{name:13s} skipped: {note}")


if __name__ == "__main__":
    main()
