"""Benchmark: ``ludosimetry run`` stage by stage, with the floor of each stage measured in the same run.

For each size (``small``, ``demo``, ``clinical``; docs/performance.md) the synthetic patient is
generated with DICOM (kidney motion) into ``--workdir`` (kept, so a rerun reuses it) and
:func:`LuDosimetryLib.pipeline.run_patient` runs on it in a **child process**, one per size, so
each size's peak memory is its own. Inside the child:

* stage boundaries come from the pipeline's progress messages (ingest, alignment, TAC, voxel
  TIA, dose, prediction, reports);
* memory: a sampling thread reads the process's resident set size (``/proc/self/statm``)
  every 50 ms; a stage's peak is the largest sample while it ran; the run's peak is
  ``ru_maxrss`` of the child (exact, includes the interpreter and libraries);
* before the run, every file of the patient folder is read once, so ingest and its floor both
  read from the page cache (:func:`warm_page_cache`; a cold cache measures the disk);
* after the run, the floors of each stage on the same data (what no implementation of the stage
  can avoid, with none of its checks, corrections or bookkeeping):

  - ingest: SimpleITK/GDCM reading every series of the patient's ``dicom/`` (CT slices through
    ``ImageSeriesReader``, one-file series through ``ReadImage``);
  - alignment: block-averaging every timepoint's CT to the registration voxel (``BinShrink``) and
    one linear resampling of every SPECT onto the reference SPECT grid;
  - TAC: one weighted ``np.bincount`` per timepoint of the SPECT over the label map (on the
    SPECT grid);
  - voxel TIA: a trapezoid + physical-decay-tail integral over the timepoints, vectorised;
  - dose: one bare ``scipy.fft`` ``rfftn``/``irfftn`` round trip (float32) on the dose grid
    padded as the convolution pads it;
  - prediction: nearest-neighbour resampling of the label map onto the static PET and one
    ``np.bincount`` of it;
  - reports: writing the dose and TIA maps as compressed NIfTI.

The parent prints, per size, a table of seconds and peak GiB per stage beside the floors (ratio
stage / floor), then how time and peak memory grow between sizes: the log-log slope
``d log(seconds) / d log(voxels)`` of each stage against its own voxel count (1 = linear).
Machine load inflates every time alike: compare ratios, not seconds.

Usage: python bench/bench_run.py [--sizes small demo clinical] [--workdir DIR] [--json FILE]
       (all three sizes: about 10 min of CPU and 1.6 GB of temporary disk)
       python bench/bench_run.py --size clinical          # one size
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

STAGES = ("ingest", "alignment", "TAC", "voxel TIA", "dose", "prediction", "reports")
GOAL_S = 90.0    # clinical run on 2 cores (issue 20)
GOAL_GIB = 8.0
_PAGE = os.sysconf("SC_PAGE_SIZE")


def stage_of(message: str, current: str) -> str:
    """The benchmark stage of a pipeline progress message (``current`` when it names none)."""
    m = message.lower()
    if m.startswith("ingest"):
        return "ingest"
    if m.startswith("alignment"):
        return "alignment"
    if m.startswith("time-activity"):
        return "TAC"
    if m.startswith("voxel tia"):
        return "voxel TIA"
    if m.startswith("prediction"):
        return "prediction"
    if m.startswith(("reports", "done")):
        return "reports"
    if current == "voxel TIA":  # the messages after the voxel TIA, up to "reports", are the dose's
        return "dose"
    return current


class RssSampler:
    """Resident set size (bytes) of this process sampled every ``interval_s`` in a thread, per stage."""

    def __init__(self, interval_s: float = 0.05):
        self.interval_s = interval_s
        self.stage = "start"
        self.peak: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def rss() -> int:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * _PAGE

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            time.sleep(self.interval_s)

    def sample(self) -> None:
        r = self.rss()
        if r > self.peak.get(self.stage, 0):
            self.peak[self.stage] = r

    def switch(self, stage: str) -> None:
        self.sample()
        self.stage = stage
        self.sample()

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def ensure_patient(size: str, workdir: Path) -> tuple[Path, float | None]:
    """The synthetic patient folder of ``size`` under ``workdir`` (generated with DICOM unless present)."""
    from LuDosimetryLib.phantom import generate_patient, write_patient_folder

    folder = workdir / f"patient_{size}"
    if (folder / "patient.json").is_file():
        return folder, None
    t0 = time.perf_counter()
    patient = generate_patient(size, seed=0, kidney_motion=True)
    write_patient_folder(patient, folder, force=True, dicom=True)
    return folder, time.perf_counter() - t0


def _series_dirs(root: Path) -> list[Path]:
    return sorted({p.parent for p in root.rglob("*.dcm")})


def floor_ingest(folder: Path) -> tuple[float, int]:
    """Seconds for SimpleITK to read every DICOM series of the patient; voxels read."""
    import SimpleITK as sitk

    voxels = 0
    t0 = time.perf_counter()
    for d in _series_dirs(folder / "dicom"):
        files = sorted(d.glob("*.dcm"))
        if len(files) == 1:
            img = sitk.ReadImage(str(files[0]))
        else:
            r = sitk.ImageSeriesReader()
            r.SetFileNames(r.GetGDCMSeriesFileNames(str(d)) or [str(f) for f in files])
            img = r.Execute()
        voxels += int(np.prod(img.GetSize()))
        del img
    return time.perf_counter() - t0, voxels


def warm_page_cache(folder: Path) -> float:
    """Read every file of the patient folder once (seconds): ingest and its floor then both read from memory.

    Without it the run, which comes first, would read a patient generated earlier from disk (a cold
    page cache) and the floor, measured after, from memory: on the clinical patient (1.3 GB of
    DICOM) that made ingest 4.6x its floor on this machine, a measurement of the disk.
    """
    t0 = time.perf_counter()
    for f in sorted(folder.rglob("*")):
        if f.is_file():
            with open(f, "rb") as fh:
                while fh.read(1 << 23):
                    pass
    return time.perf_counter() - t0


def measure_one(size: str, workdir: Path) -> dict:
    """Run the chain on one size in this process; stage seconds, peak bytes and floors."""
    import scipy.fft
    import SimpleITK as sitk

    from LuDosimetryLib.alignment import registration_image
    from LuDosimetryLib.dose.convolution import padded_shape
    from LuDosimetryLib.ingest import load_patient
    from LuDosimetryLib.kernels import dose_kernel
    from LuDosimetryLib.nuclides import get_nuclide
    from LuDosimetryLib.pipeline import PipelineSettings, run_patient

    folder, gen_s = ensure_patient(size, workdir)
    warm_s = warm_page_cache(folder)
    seconds: dict[str, float] = {}
    state = {"stage": "start", "t": time.perf_counter()}
    with RssSampler() as sampler:
        def progress(fraction: float, message: str) -> None:
            stage = stage_of(message, state["stage"])
            if stage != state["stage"]:
                now = time.perf_counter()
                seconds[state["stage"]] = seconds.get(state["stage"], 0.0) + now - state["t"]
                state["stage"], state["t"] = stage, now
                sampler.switch(stage)

        with tempfile.TemporaryDirectory(dir=workdir) as tmp:
            t0 = time.perf_counter()
            run_patient(folder, Path(tmp) / "results", progress=progress)
            total = time.perf_counter() - t0
            seconds[state["stage"]] = seconds.get(state["stage"], 0.0) + time.perf_counter() - state["t"]
            tia = sitk.ReadImage(str(Path(tmp) / "results" / "tia_Bq_h.nii.gz"))
            dose = sitk.ReadImage(str(Path(tmp) / "results" / "dose_Gy.nii.gz")) \
                if (Path(tmp) / "results" / "dose_Gy.nii.gz").is_file() else tia
    run_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    seconds.pop("start", None)
    peaks = {k: v for k, v in sampler.peak.items() if k != "start"}

    # --- floors, on the same data ---
    floors: dict[str, float] = {}
    floors["ingest"], voxels_read = floor_ingest(folder)
    patient = load_patient(folder)
    settings = PipelineSettings()
    cycle = patient.cycles[0]
    ref = cycle.timepoints[0]
    t0 = time.perf_counter()
    for tp in cycle.timepoints:
        registration_image(tp.ct, settings.registration_voxel_mm)
        sitk.Resample(tp.spect, ref.spect, sitk.Euler3DTransform(), sitk.sitkLinear, 0.0)
    floors["alignment"] = time.perf_counter() - t0
    seg = patient.segmentation
    lab = sitk.GetArrayFromImage(sitk.Resample(seg.image, ref.spect, sitk.Transform(), sitk.sitkNearestNeighbor, 0,
                                               sitk.sitkUInt8)).ravel()
    maps = [sitk.GetArrayFromImage(tp.spect).astype(np.float32) for tp in cycle.timepoints]
    floors["TAC"], _ = _timed(lambda: [np.bincount(lab, weights=m.ravel()) for m in maps])
    times = np.array([tp.time_h for tp in cycle.timepoints])
    lam = math.log(2) / get_nuclide("Lu-177").half_life_h

    def trapezoid():
        acc = maps[0] * np.float32(times[0] / 2)
        for i in range(1, len(maps)):
            acc += (maps[i - 1] + maps[i]) * np.float32((times[i] - times[i - 1]) / 2)
        return acc + maps[-1] * np.float32(1 / lam)

    floors["voxel TIA"], _ = _timed(trapezoid)
    arr = sitk.GetArrayFromImage(tia).astype(np.float32)
    kshape = dose_kernel(tuple(float(v) for v in tia.GetSpacing()), nuclide="Lu-177").values_Gy_per_Bq_h.shape
    shape = padded_shape(arr.shape, kshape)
    floors["dose"], _ = _timed(lambda: scipy.fft.irfftn(scipy.fft.rfftn(arr, shape, workers=os.cpu_count()), shape,
                                                          workers=os.cpu_count()))
    if patient.pet_studies:
        study = patient.pet_studies[0]
        pet_img = study.static.image if study.static is not None else study.dynamic_frames[-1].image
        t0 = time.perf_counter()
        pl = sitk.GetArrayFromImage(sitk.Resample(seg.image, pet_img, sitk.Transform(), sitk.sitkNearestNeighbor, 0,
                                                  sitk.sitkUInt8)).ravel()
        np.bincount(pl, weights=sitk.GetArrayViewFromImage(pet_img).ravel())
        floors["prediction"] = time.perf_counter() - t0
        pet_voxels = int(np.prod(pet_img.GetSize()))
    else:
        pet_voxels = 0
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        t0 = time.perf_counter()
        sitk.WriteImage(dose, str(Path(tmp) / "d.nii.gz"), True)
        sitk.WriteImage(tia, str(Path(tmp) / "t.nii.gz"), True)
        floors["reports"] = time.perf_counter() - t0
    ct_vox = sum(int(np.prod(tp.ct.GetSize())) for tp in cycle.timepoints if tp.ct is not None)
    dose_vox = int(np.prod(tia.GetSize()))
    voxels = {"ingest": voxels_read, "alignment": ct_vox, "TAC": dose_vox, "voxel TIA": dose_vox, "dose": dose_vox,
              "prediction": pet_voxels, "reports": dose_vox, "total": voxels_read}
    return {"size": size, "generate_s": gen_s, "cache_warm_s": warm_s, "total_s": total, "run_peak_bytes": run_peak,
            "seconds": seconds,
            "peak_bytes": peaks, "floors_s": floors, "voxels": voxels,
            "ct_size": list(ref.ct.GetSize()) if ref.ct is not None else None,
            "dose_grid": list(tia.GetSize()), "cpus": os.cpu_count(), "loadavg": os.getloadavg()[0]}


def print_size(r: dict) -> None:
    gib = 1024.0**3
    print(f"\n== {r['size']}: CT {r['ct_size']}, dose grid {r['dose_grid']}, {r['voxels']['ingest'] / 1e6:.1f} M "
          f"voxels read; load average {r['loadavg']:.1f} on {r['cpus']} CPUs")
    print(f"{'stage':12s} {'seconds':>8s} {'floor s':>8s} {'x floor':>8s} {'peak GiB':>9s}")
    for st in STAGES:
        s, f, p = r["seconds"].get(st), r["floors_s"].get(st), r["peak_bytes"].get(st)
        if s is None:
            continue
        ratio = f"{s / f:8.2f}" if f else f"{'-':>8s}"
        print(f"{st:12s} {s:8.2f} {f if f is not None else float('nan'):8.3f} {ratio} "
              f"{(p or 0) / gib:9.2f}")
    print(f"{'run':12s} {r['total_s']:8.2f} {sum(r['floors_s'].values()):8.3f} "
          f"{r['total_s'] / sum(r['floors_s'].values()):8.2f} {r['run_peak_bytes'] / gib:9.2f}")
    if r["size"] == "clinical":
        print(f"clinical goals: {r['total_s']:.1f} s = {r['total_s'] / GOAL_S:.2f} x {GOAL_S:.0f} s; peak "
              f"{r['run_peak_bytes'] / gib:.2f} GiB = {r['run_peak_bytes'] / gib / GOAL_GIB:.2f} x {GOAL_GIB:.0f} GiB; "
              f"ingest {r['seconds']['ingest'] / r['floors_s']['ingest']:.2f} x the series-reader floor (goal 1.5)")


def slope(ya: float | None, yb: float | None, xa: float, xb: float) -> float:
    """log-log slope d log(y) / d log(x) between two sizes (nan when undefined)."""
    if not (ya and yb and xa and xb) or xa == xb:
        return float("nan")
    return math.log(yb / ya) / math.log(xb / xa)


def print_growth(results: list[dict]) -> None:
    print("\n== growth: log-log slope against the stage's voxel count (1 = linear), time | stage peak memory")
    pairs = list(itertools.pairwise(results))
    if len(results) > 2:
        pairs.append((results[0], results[-1]))
    head = "".join(f" {a['size'][:5]}->{b['size'][:5]:>5s} t   mem" for a, b in pairs)
    print(f"{'stage':12s}{head}")
    for st in (*STAGES, "total"):
        cells = []
        for a, b in pairs:
            t = [r["total_s"] if st == "total" else r["seconds"].get(st) for r in (a, b)]
            m = [r["run_peak_bytes"] if st == "total" else r["peak_bytes"].get(st) for r in (a, b)]
            v = [r["voxels"][st] for r in (a, b)]
            cells.append(f" {slope(*t, *v):13.2f} {slope(*m, *v):5.2f}")
        print(f"{st:12s}{''.join(cells)}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=("small", "small2x", "demo", "clinical"), default=None,
                    help="one size, in this process (prints its table)")
    ap.add_argument("--sizes", nargs="+", default=["small", "demo", "clinical"],
                    choices=("small", "small2x", "demo", "clinical"), help="sizes, each in a child process")
    ap.add_argument("--workdir", type=Path, default=None,
                    help="where the patient folders are generated and kept for reruns (default: a temporary "
                         "folder removed at the end; the clinical patient takes 1.4 GB)")
    ap.add_argument("--json", type=Path, default=None, help="write the measurements here")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.workdir is None:
        with tempfile.TemporaryDirectory() as tmp:
            return main([*(argv if argv is not None else sys.argv[1:]), "--workdir", tmp])
    args.workdir.mkdir(parents=True, exist_ok=True)
    if args.size is not None:
        r = measure_one(args.size, args.workdir)
        if args.child:
            print("RESULT " + json.dumps(r))
        else:
            print_size(r)
        if args.json:
            args.json.write_text(json.dumps([r], indent=1))
        return 0
    results = []
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    for size in args.sizes:
        proc = subprocess.run([sys.executable, __file__, "--size", size, "--workdir", str(args.workdir), "--child"],
                              capture_output=True, text=True, env=env)
        line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
        if proc.returncode != 0 or not line:
            print(f"{size}: failed (exit {proc.returncode})\n{proc.stderr[-3000:]}")
            return 1
        r = json.loads(line[-1][7:])
        results.append(r)
        print_size(r)
        sys.stdout.flush()
    print_growth(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
