"""Benchmark: timepoint alignment and TAC extraction on the synthetic patient.

Alignment (``small`` patient with kidney motion, one timepoint): seconds of the global rigid
stage alone (baseline) and of the whole alignment (global + two kidneys), default schedule, and
their ratio. TACs (``demo`` patient, 4 timepoints, 14 M label voxels): seconds of
``extract_tacs`` per working grid against a baseline in the same run — the plain per-region
boolean-mask sum over the whole label map (activity only).

Usage: python bench/bench_alignment_tac.py [--repeat 1]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from LuDosimetryLib.alignment import RegistrationSettings, _initial_transform, _rigid, align_timepoint
from LuDosimetryLib.model import Segmentation, Timepoint
from LuDosimetryLib.phantom import generate_patient
from LuDosimetryLib.tac import extract_tacs
from LuDosimetryLib.units import BQ_PER_MBQ, ML_PER_MM3


def _best(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _stitched(tp, sens):
    sp = tp.beds[0].counts.GetSpacing()
    n = tp.beds[0].counts.GetSize()
    z0 = min(b.counts.GetOrigin()[2] for b in tp.beds)
    nz = round((max(b.counts.GetOrigin()[2] for b in tp.beds) - z0) / sp[2]) + n[2]
    acc, w = np.zeros((nz, n[1], n[0])), np.zeros((nz, n[1], n[0]))
    for b in tp.beds:
        k0 = round((b.counts.GetOrigin()[2] - z0) / sp[2])
        acc[k0:k0 + n[2]] += sitk.GetArrayFromImage(b.counts) / (sens / BQ_PER_MBQ * b.duration_s * b.live_fraction)
        w[k0:k0 + n[2]] += 1
    img = sitk.GetImageFromArray((acc / w / (np.prod(sp) * ML_PER_MM3)).astype(np.float32))
    img.SetSpacing(sp)
    img.SetOrigin((*tp.beds[0].counts.GetOrigin()[:2], z0))
    return Timepoint(tp.label, tp.time_h, img, ct=tp.ct)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args(argv)

    p = generate_patient("small", seed=0, kidney_motion=True, with_pet=False)
    seg = Segmentation(p.labels, p.label_table)
    ref = sitk.Cast(p.cycles[0].timepoints[0].ct, sitk.sitkFloat32)
    mov = sitk.Cast(p.cycles[0].timepoints[1].ct, sitk.sitkFloat32)
    s = RegistrationSettings()
    t_rigid = _best(lambda: _rigid(ref, mov, _initial_transform(ref, mov, s), s), args.repeat)
    t_all = _best(lambda: align_timepoint(ref, mov, reference_labels=seg), args.repeat)
    print(f"alignment small ({ref.GetSize()}): global rigid {t_rigid:.2f} s, "
          f"whole alignment {t_all:.2f} s, ratio {t_all / t_rigid:.2f}")

    p = generate_patient("demo", seed=0, with_pet=False)
    seg = Segmentation(p.labels, p.label_table)
    sens = p.truth["calibration"]["sensitivity_cps_per_MBq"]
    tps = [_stitched(tp, sens) for tp in p.cycles[0].timepoints]
    adm = p.cycles[0].administration
    lab = sitk.GetArrayFromImage(p.labels)

    def baseline():
        for tp in tps:
            lab_s = sitk.GetArrayFromImage(sitk.Resample(p.labels, tp.spect, sitk.Transform(),
                                                         sitk.sitkNearestNeighbor, 0))
            conc = sitk.GetArrayFromImage(tp.spect)
            for r in p.label_table:
                float(conc[lab_s == r.label].sum())
                float((lab == r.label).sum())  # volume on the label grid

    t_base = _best(baseline, args.repeat)
    print(f"TACs demo ({p.labels.GetSize()} labels, 4 timepoints): baseline per-region masks {t_base:.2f} s")
    for grid in ("spect", "fractional", "labels"):
        t = _best(lambda g=grid: extract_tacs(tps, seg, adm, density=p.density, grid=g), args.repeat)
        print(f"  extract_tacs grid={grid}: {t:.2f} s, ratio to baseline {t / t_base:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
