"""Time the DICOM writers at demo sizes against writing the same volumes as NIfTI (same run).

Usage: python bench/bench_dicomio_write.py [--small]
Prints seconds per writer and the ratio to ``SimpleITK.WriteImage`` of the same image as .nii.
"""

from __future__ import annotations

import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from LuDosimetryLib.dicomio import (
    DicomPatient,
    DicomStudy,
    PetFrameTiming,
    Radiopharmaceutical,
    new_uid,
    write_ct_series,
    write_nm_tomo,
    write_pet_series,
    write_rt_dose,
)
from LuDosimetryLib.model import Camera


def _image(shape_kji, spacing, seed, low, high):
    img = sitk.GetImageFromArray(np.random.default_rng(seed).uniform(low, high, shape_kji).astype(np.float32))
    img.SetSpacing(spacing)
    return img


def _timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main(small: bool = False) -> None:
    f = 4 if small else 1
    ct = _image((300 // f, 256 // f, 256 // f), (1.95, 1.95, 2.5), 1, -1000, 1500)
    nm = _image((128 // f, 128 // f, 128 // f), (4.8, 4.8, 4.8), 2, 0, 3e4)
    pet = [_image((60 // f, 128 // f, 128 // f), (4.0, 4.0, 3.0), 3 + n, 0, 2e4) for n in range(6)]
    pat = DicomPatient("BENCH")
    study = DicomStudy(new_uid("bench/study"), datetime(2026, 3, 3, 10), new_uid("bench/for"))
    lu = Radiopharmaceutical("Lu-177", "177Lu-PSMA-617", datetime(2026, 3, 2, 10), 7.4e9)
    ga = Radiopharmaceutical("Ga-68", "68Ga-PSMA-11", datetime(2026, 3, 3, 9), 150e6)
    cam = Camera("SIEMENS NM", "Symbia Intevo", "MEGP", ((187.2, 228.8),), "OSEM")
    t0 = datetime(2026, 3, 3, 9, 0, 30)
    timings = [PetFrameTiming(t0 + timedelta(seconds=300 * n), 300.0) for n in range(6)]
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        cases = {
            "CT series": (lambda: write_ct_series(ct, d / "ct", patient=pat, study=study,
                                                  series_datetime=study.study_datetime), [ct]),
            "NM recon tomo": (lambda: write_nm_tomo(nm, d / "nm", patient=pat, study=study,
                                                    acquisition_start=study.study_datetime, frame_duration_s=15,
                                                    projections_per_detector=60, camera=cam,
                                                    radiopharmaceutical=lu, units="BQML"), [nm]),
            "PET 6 frames": (lambda: write_pet_series(pet, d / "pt", patient=pat, study=study,
                                                      radiopharmaceutical=ga, timings=timings), pet),
            "RT Dose": (lambda: write_rt_dose(nm, d / "rd", patient=pat, study=study), [nm]),
        }
        for name, (fn, images) in cases.items():
            base = _timed(lambda images=images, name=name: [sitk.WriteImage(im, str(d / f"{name[:2]}{n}.nii"))
                                                            for n, im in enumerate(images)])
            sec = _timed(fn)
            print(f"{name:14s} {sec:7.3f} s   NIfTI baseline {base:7.3f} s   ratio {sec / base:6.1f}")


if __name__ == "__main__":
    main(small="--small" in sys.argv)
