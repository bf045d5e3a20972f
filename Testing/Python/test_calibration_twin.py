"""The projection-space SPECT twin: its physics, and the quantification chain end to end on it."""

import math
from dataclasses import replace
from datetime import datetime

import numpy as np
import pytest
import SimpleITK as sitk

from LuDosimetryLib.calibration.geometry import phantom_mask_from_ct, sphere_weights
from LuDosimetryLib.calibration.recovery import Sphere, apply_recovery, fit_recovery_curve, measure_sphere_recovery
from LuDosimetryLib.calibration.sensitivity import sensitivity_from_cylinder
from LuDosimetryLib.calibration.twin import SpectSystem, TwinSettings, imaging_energy_keV, mu_from_hu_per_mm
from LuDosimetryLib.phantom.calibration_scans import CalibrationScanSettings, cylinder_scan, sphere_phantom_scan

VOX = 4.8


def test_imaging_energy_is_the_208_keV_line_and_water_mu_matches_the_table():
    assert imaging_energy_keV() == pytest.approx(208.366, abs=0.01)
    # water at 208 keV: μ/ρ ≈ 0.1347 cm²/g (XCOM-class data) → 0.01347 /mm
    assert float(mu_from_hu_per_mm(np.array([0.0]), energy_keV=208.366)[0]) == pytest.approx(0.01347, rel=0.01)
    assert float(mu_from_hu_per_mm(np.array([-1000.0]), energy_keV=208.366)[0]) == 0.0


def _point_projection(settings, mu_value, y_index):
    n, nz = 32, 9
    mu = np.full((nz, n, n), mu_value, dtype=np.float32)
    sys_ = SpectSystem(mu, voxel_mm=VOX, settings=settings)
    vol = np.zeros((nz, n, n))
    vol[nz // 2, y_index, n // 2] = 1.0
    return sys_, sys_.forward(vol, 0)


def test_projection_attenuates_by_the_line_integral_to_the_detector():
    st = TwinSettings(n_views=2, subsets=1, radius_mm=100.0)
    mu = 0.015
    _, p_air = _point_projection(st, 0.0, 10)
    _, p_water = _point_projection(st, mu, 10)
    n = 32
    # voxels between the point (j=10) and the detector (+j) that lie inside the orbit, plus half its own
    y = (np.arange(n) - (n - 1) / 2) * VOX
    x0 = ((n // 2) - (n - 1) / 2) * VOX
    path = (np.sum(np.hypot(y[11:], x0) < 100.0) + 0.5) * VOX
    assert p_water.sum() / p_air.sum() == pytest.approx(math.exp(-mu * path), rel=1e-4)


def test_collimator_blur_grows_with_distance_as_documented():
    st = TwinSettings(n_views=2, subsets=1, radius_mm=100.0)
    n = 32
    y = (np.arange(n) - (n - 1) / 2) * VOX
    for j in (4, 16, 28):
        _, p = _point_projection(st, 0.0, j)
        prof = p.sum(axis=0)
        x = np.arange(prof.size) * VOX
        mean = (prof * x).sum() / prof.sum()
        var = (prof * (x - mean) ** 2).sum() / prof.sum()
        dist = 100.0 - y[j]
        geo = 2.94 * (40.64 + dist) / 40.64
        sigma = math.sqrt(3.9 ** 2 + geo ** 2) / (2 * math.sqrt(2 * math.log(2)))
        # bin integration adds VOX²/12 to the variance
        assert math.sqrt(var) == pytest.approx(math.sqrt(sigma ** 2 + VOX ** 2 / 12), rel=0.03)


def test_back_projection_is_the_adjoint_of_projection():
    rng = np.random.default_rng(0)
    mu = rng.uniform(0, 0.02, (6, 16, 16)).astype(np.float32)
    sys_ = SpectSystem(mu, voxel_mm=VOX, settings=TwinSettings(n_views=6, subsets=1, radius_mm=60.0))
    x = rng.random((6, 16, 16)) * sys_.inside
    yv = rng.random((6, 16))
    for v in (0, 1, 4):
        assert np.vdot(sys_.forward(x, v), yv) == pytest.approx(np.vdot(x, sys_.back(yv, v)), rel=1e-5)


TWIN = CalibrationScanSettings(spect_model="twin", dead_time_s=0.0, slices=48, seed=11,
                               twin={"n_views": 60, "iterations": 4, "subsets": 6})
TWIN_FWHM_MM = 14.0  # reconstructed resolution of this twin near the axis (fitted: ≈ 14 mm)


def _to_Bq_per_mL(scan, sens_cps_per_MBq):
    """Counts → Bq/mL with the measured sensitivity (the calibration step of ingest)."""
    img = sitk.Cast(scan.spect, sitk.sitkFloat64) * (1e6 / scan.truth["duration_s"] / sens_cps_per_MBq
                                                       / (VOX ** 3 / 1000.0))
    return img


def test_twin_end_to_end_sphere_activity_after_calibration_and_recovery_is_within_5_percent():
    # 1. sensitivity from a cylinder scanned through the twin
    cyl = cylinder_scan(TWIN, length_mm=160.0)
    t = cyl.truth
    sens = sensitivity_from_cylinder(cyl.spect, cyl.ct, assay_activity_Bq=t["assay_activity_Bq"],
                                     assay_datetime=datetime.fromisoformat(t["assay_datetime"]),
                                     acquisition_start=datetime.fromisoformat(t["acquisition_start"]),
                                     duration_s=t["duration_s"], fwhm_mm=TWIN_FWHM_MM)
    s_meas = sens.sensitivity_cps_per_MBq
    assert s_meas == pytest.approx(TWIN.sensitivity_cps_per_MBq, rel=0.02)
    # 2. recovery curve from the IEC spheres (hot spheres, cold water), on the calibrated image
    # (a calibration scan is acquired with more counts than a patient: 1.6 MBq/mL for 30 min)
    iec = sphere_phantom_scan(TWIN, sphere_to_background=math.inf, sphere_conc_Bq_per_mL=1.6e6)
    sph = [Sphere(tuple(s["centre_mm"]), s["volume_mL"], s["name"]) for s in iec.truth["spheres"]]
    meas, _ = measure_sphere_recovery(_to_Bq_per_mL(iec, s_meas), sph,
                                      phantom_mask=phantom_mask_from_ct(iec.ct, iec.spect), fwhm_mm=TWIN_FWHM_MM,
                                      sphere_conc=iec.truth["sphere_conc_Bq_per_mL"], background_conc=0.0)
    # OSEM's RC(V) is not a blurred-sphere curve (residual 2-3 % with gaussian_sphere, ~1 % with hill)
    curve = fit_recovery_curve(meas, model="hill")
    # 3. another object: 8, 12 and 20 mL spheres at other positions and another concentration
    diam = tuple(2 * (3 * v * 1000 / (4 * math.pi)) ** (1 / 3) for v in (8.0, 12.0, 20.0))
    obj = sphere_phantom_scan(replace(TWIN, seed=TWIN.seed + 50), diameters_mm=diam, sphere_to_background=math.inf,
                              phase_deg=30.0, sphere_conc_Bq_per_mL=1.0e6)
    conc = sitk.GetArrayFromImage(_to_Bq_per_mL(obj, s_meas))
    for s in obj.truth["spheres"]:
        w = sphere_weights(obj.spect, s["centre_mm"], s["diameter_mm"] / 2)
        measured_Bq = (conc * w).sum() / w.sum() * s["volume_mL"]
        corr = apply_recovery(measured_Bq, s["volume_mL"], curve)
        true_Bq = obj.truth["sphere_conc_Bq_per_mL"] * s["volume_mL"]
        assert corr.value == pytest.approx(true_Bq, rel=0.05), (s["name"], corr)
        assert measured_Bq < 0.9 * true_Bq  # partial-volume loss was there to correct
