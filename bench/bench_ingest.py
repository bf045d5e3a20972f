"""Time ingest of one SPECT/CT timepoint (3 beds + CT) against the baselines of the same run.

Usage: python bench/bench_ingest.py [--small]
Prints seconds for ``load_patient`` and its parts, and ratios to reading the same files with
SimpleITK/GDCM (NM beds via ReadImage, CT via ImageSeriesReader), which apply no calibration,
decay or checks.
"""

from __future__ import annotations

import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from LuDosimetryLib.calibration.store import CalibrationEntry, CalibrationStore
from LuDosimetryLib.dicomio import (
    DicomPatient,
    DicomStudy,
    Radiopharmaceutical,
    new_uid,
    write_ct_series,
    write_nm_tomo,
)
from LuDosimetryLib.ingest import load_patient
from LuDosimetryLib.ingest.discovery import scan_folder
from LuDosimetryLib.model import Camera


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main(small: bool = False) -> None:
    f = 4 if small else 1
    inj = datetime(2026, 3, 3, 9)
    cam = Camera("BENCH", "Cam", "MEGP", ((187.2, 228.8),), "OSEM")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "patient"
        pat, study = DicomPatient("BENCH"), DicomStudy(new_uid(), inj + timedelta(hours=24), new_uid())
        n_nm, n_xy = 80 // f, 128 // f
        rng = np.random.default_rng(1)
        for b in range(3):
            img = sitk.GetImageFromArray(rng.uniform(0, 30, (n_nm, n_xy, n_xy)).astype(np.float32))
            img.SetSpacing((4.8, 4.8, 4.8))
            img.SetOrigin((0.0, 0.0, b * (n_nm - n_nm // 5) * 4.8))
            write_nm_tomo(img, root / "dicom" / f"NM{b}", patient=pat, study=study,
                          acquisition_start=inj + timedelta(hours=24, minutes=25 * b), frame_duration_s=15,
                          projections_per_detector=60, camera=cam,
                          radiopharmaceutical=Radiopharmaceutical("Lu-177", "177Lu-PSMA-617", inj, 7.4e9))
        ct = sitk.GetImageFromArray(np.zeros((3 * n_nm * 2 // f or 1, 256 // f, 256 // f), np.float32))
        ct.SetSpacing((1.95 * 2, 1.95 * 2, 2.4))
        write_ct_series(ct, root / "dicom" / "CT", patient=pat, study=study, series_datetime=inj + timedelta(hours=24))
        CalibrationStore((CalibrationEntry(cam.key(), 10.0, 0.02, 2e-6),)).save(root / "calibration.json")
        t_scan, _ = _timed(lambda: scan_folder(root / "dicom"))
        t_load, _ = _timed(lambda: load_patient(root))
        nm_files = sorted((root / "dicom").glob("NM*/*.dcm"))
        t_nm, _ = _timed(lambda: [sitk.ReadImage(str(p)) for p in nm_files])

        def read_ct():
            r = sitk.ImageSeriesReader()
            r.SetFileNames(r.GetGDCMSeriesFileNames(str(root / "dicom" / "CT")))
            return r.Execute()

        t_ct, _ = _timed(read_ct)
    base = t_nm + t_ct
    print(f"NM 3 × {n_xy}×{n_xy}×{n_nm}, CT {256 // f}×{256 // f}×{ct.GetSize()[2]} slices")
    print(f"scan headers        {t_scan:8.3f} s")
    print(f"load_patient        {t_load:8.3f} s  ({t_load / base:.2f} × SimpleITK read of the same files)")
    print(f"baseline SimpleITK  {base:8.3f} s  (NM {t_nm:.3f} s + CT {t_ct:.3f} s)")


if __name__ == "__main__":
    main(small="--small" in sys.argv[1:])
