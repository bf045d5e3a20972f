"""Recovery correction in the TAC stage: the calibration's curve as tac's ``recovery`` hook."""

import math
from datetime import datetime

import numpy as np
import pytest
import SimpleITK as sitk

from LuDosimetryLib.calibration.geometry import phantom_mask_from_ct
from LuDosimetryLib.calibration.recovery import Sphere, fit_recovery_curve, measure_sphere_recovery
from LuDosimetryLib.labels import LabelTable, Region
from LuDosimetryLib.model import Administration, Segmentation, Timepoint
from LuDosimetryLib.phantom.calibration_scans import CalibrationScanSettings, sphere_phantom_scan
from LuDosimetryLib.tac import extract_tacs

SETTINGS = CalibrationScanSettings(seed=21)
VOLUMES_ML = (8.0, 12.0, 20.0)


def _bq_per_mL(scan):
    t = scan.truth
    k = SETTINGS.sensitivity_cps_per_MBq * 1e-6 * t["duration_s"] * SETTINGS.voxel_mm ** 3 / 1000 * t["live_fraction"]
    img = sitk.Cast(scan.spect, sitk.sitkFloat32) / k
    return img


def _labels_on_fine_grid(scan, spacing_mm=2.4):
    ref = scan.spect
    size = [round(n * ref.GetSpacing()[0] / spacing_mm) for n in ref.GetSize()]
    lab = sitk.Image(size, sitk.sitkUInt16)
    lab.SetSpacing((spacing_mm,) * 3)
    lab.SetOrigin(tuple(o - ref.GetSpacing()[0] / 2 + spacing_mm / 2 for o in ref.GetOrigin()))
    arr = np.zeros(size[::-1], dtype=np.uint16)
    z, y, x = np.meshgrid(*[lab.GetOrigin()[a] + np.arange(size[a]) * spacing_mm for a in (2, 1, 0)], indexing="ij")
    regions = []
    for n, s in enumerate(scan.truth["spheres"], start=1):
        c, r = s["centre_mm"], s["diameter_mm"] / 2
        arr[(x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2 <= r * r] = n
        regions.append(Region(n, f"lesion_{n}", kind="lesion"))
    out = sitk.GetImageFromArray(arr)
    out.CopyInformation(lab)
    return Segmentation(out, LabelTable(tuple(regions)))


def test_tac_recovery_hook_corrects_sphere_activities_within_5_percent():
    iec = sphere_phantom_scan(SETTINGS, sphere_to_background=math.inf)
    sph = [Sphere(tuple(s["centre_mm"]), s["volume_mL"], s["name"]) for s in iec.truth["spheres"]]
    meas, _ = measure_sphere_recovery(_bq_per_mL(iec), sph, phantom_mask=phantom_mask_from_ct(iec.ct, iec.spect),
                                      fwhm_mm=SETTINGS.fwhm_mm, sphere_conc=iec.truth["sphere_conc_Bq_per_mL"],
                                      background_conc=0.0)
    curve = fit_recovery_curve(meas)
    diam = tuple(2 * (3 * v * 1000 / (4 * math.pi)) ** (1 / 3) for v in VOLUMES_ML)
    obj = sphere_phantom_scan(SETTINGS, diameters_mm=diam, sphere_to_background=math.inf, phase_deg=30.0,
                              sphere_conc_Bq_per_mL=0.5e6)
    start = datetime.fromisoformat(obj.truth["acquisition_start"])
    adm = Administration("Lu-177", "phantom", start, 7.4e9)
    tp = Timepoint("tp1", 0.25, _bq_per_mL(obj), ct=obj.ct)
    rows = extract_tacs([tp], _labels_on_fine_grid(obj), adm, recovery=curve, spect_fwhm_mm=SETTINGS.fwhm_mm)
    rows = [r for r in rows if r.region.startswith("lesion_")]
    assert len(rows) == len(VOLUMES_ML)
    for row, v in zip(rows, VOLUMES_ML):
        true_Bq = 0.5e6 * v
        assert row.volume_mL == pytest.approx(v, rel=0.03)
        assert row.activity_Bq < 0.9 * true_Bq  # partial-volume loss
        rc, u = curve.coefficient(row.volume_mL)
        assert row.recovery_coefficient == pytest.approx(rc) and row.recovery_rel_uncertainty == pytest.approx(u)
        assert row.activity_corrected_Bq == pytest.approx(row.activity_Bq / row.recovery_coefficient)
        assert row.activity_corrected_Bq == pytest.approx(true_Bq, rel=0.05), row.region
