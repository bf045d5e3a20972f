"""Sensitivity, recovery and dead time measured on simulated calibration scans, against the simulation's truth."""

import math
from datetime import datetime, timedelta

import numpy as np
import pytest
from scipy import ndimage

from LuDosimetryLib.calibration.dead_time import fit_dead_time, paralysable_observed_rate
from LuDosimetryLib.calibration.geometry import phantom_mask_from_ct, sphere_mask, sphere_weights
from LuDosimetryLib.calibration.recovery import (
    RecoveryCurve,
    Sphere,
    apply_recovery,
    fit_recovery_curve,
    gaussian_sphere_recovery,
    measure_sphere_recovery,
)
from LuDosimetryLib.calibration.sensitivity import sensitivity_from_cylinder
from LuDosimetryLib.errors import InputError
from LuDosimetryLib.phantom.calibration_scans import (
    CalibrationScanSettings,
    cylinder_scan,
    decay_series_scans,
    sphere_phantom_scan,
)

SETTINGS = CalibrationScanSettings(seed=3)


def _cyl_kwargs(scan, **over):
    t = scan.truth
    kw = dict(assay_activity_Bq=t["assay_activity_Bq"], assay_datetime=datetime.fromisoformat(t["assay_datetime"]),
              acquisition_start=datetime.fromisoformat(t["acquisition_start"]), duration_s=t["duration_s"],
              fwhm_mm=SETTINGS.fwhm_mm, dead_time_s=SETTINGS.dead_time_s)
    kw.update(over)
    return kw


@pytest.fixture(scope="module")
def cylinder():
    return cylinder_scan(SETTINGS)


@pytest.fixture(scope="module")
def spheres():
    return sphere_phantom_scan(SETTINGS)


def test_sensitivity_from_cylinder_is_within_2_percent_of_the_simulated_value(cylinder):
    r = sensitivity_from_cylinder(cylinder.spect, cylinder.ct, **_cyl_kwargs(cylinder))
    assert r.sensitivity_cps_per_MBq == pytest.approx(SETTINGS.sensitivity_cps_per_MBq, rel=0.02)
    # the dead-time loss of this scan (~1.8 %) is corrected: live fraction from the truth
    assert r.live_fraction == pytest.approx(cylinder.truth["live_fraction"], rel=1e-3)
    voi = sensitivity_from_cylinder(cylinder.spect, cylinder.ct, method="voi",
                                    fill_volume_mL=cylinder.truth["volume_mL"], **_cyl_kwargs(cylinder))
    assert voi.sensitivity_cps_per_MBq == pytest.approx(SETTINGS.sensitivity_cps_per_MBq, rel=0.02)


def test_ignoring_dead_time_would_bias_the_sensitivity_low(cylinder):
    r = sensitivity_from_cylinder(cylinder.spect, cylinder.ct, **_cyl_kwargs(cylinder, dead_time_s=0.0))
    loss = 1 - cylinder.truth["live_fraction"]
    assert r.sensitivity_cps_per_MBq == pytest.approx(SETTINGS.sensitivity_cps_per_MBq * (1 - loss), rel=0.002)


def test_cylinder_not_fully_in_the_field_of_view_is_an_error():
    scan = cylinder_scan(SETTINGS, centre_mm=(0.0, 0.0, 60.0))
    with pytest.raises(InputError, match=r"not fully in the (CT|SPECT field of view).*superior"):
        sensitivity_from_cylinder(scan.spect, scan.ct, **_cyl_kwargs(scan))


def test_missing_assay_time_is_an_error(cylinder):
    with pytest.raises(InputError, match=r"assay_datetime: missing.*time of the activity assay"):
        sensitivity_from_cylinder(cylinder.spect, cylinder.ct, **_cyl_kwargs(cylinder, assay_datetime=None))


def _true_recovery(scan, sphere):
    """Blur the sphere alone with the simulation's Gaussian and take the mean in its VOI (independent truth)."""
    ref = scan.spect
    n = ref.GetSize()
    d = SETTINGS.voxel_mm
    z, y, x = np.meshgrid(*[(np.arange(m) - (m - 1) / 2) * d for m in (n[2], n[1], n[0])], indexing="ij")
    c = sphere["centre_mm"]
    r = sphere["diameter_mm"] / 2
    sub = 6
    frac = np.zeros(x.shape)
    for o in (np.arange(sub) + 0.5) / sub - 0.5:
        for p in (np.arange(sub) + 0.5) / sub - 0.5:
            for q in (np.arange(sub) + 0.5) / sub - 0.5:
                frac += ((x + o * d - c[0]) ** 2 + (y + p * d - c[1]) ** 2 + (z + q * d - c[2]) ** 2) <= r * r
    frac /= sub ** 3
    sigma = SETTINGS.fwhm_mm / (2 * math.sqrt(2 * math.log(2))) / d
    blurred = ndimage.gaussian_filter(frac, sigma, mode="reflect", truncate=4.0)
    # the VOI weights each voxel by the fraction of it inside the sphere (recovery.py's default)
    return (blurred * frac).sum() / frac.sum()


@pytest.mark.parametrize("model", ["gaussian_sphere", "hill"])
def test_recovery_curve_is_within_5_percent_of_each_resolved_spheres_true_recovery(spheres, model):
    t = spheres.truth
    sph = [Sphere(tuple(s["centre_mm"]), s["volume_mL"], s["name"]) for s in t["spheres"]]
    mask = phantom_mask_from_ct(spheres.ct, spheres.spect)
    meas, _ = measure_sphere_recovery(spheres.spect, sph, phantom_mask=mask, fwhm_mm=SETTINGS.fwhm_mm,
                                      sphere_to_background=t["sphere_to_background"])
    curve = fit_recovery_curve(meas, model=model)
    resolved = [m for m in meas if m.resolved]
    assert len(resolved) == 5  # 13, 17, 22, 28, 37 mm at 11 mm FWHM (weighted VOI)
    for s, m in zip(t["spheres"], meas):
        if m.resolved:
            rc, u = curve.coefficient(s["volume_mL"])
            assert rc == pytest.approx(_true_recovery(spheres, s), rel=0.05), s["name"]
            assert 0 < u < 0.1
        else:
            assert any("unresolved" in f for f in m.flags)
        if m.recovery < 0.5:
            assert any("< 0.5" in f for f in m.flags)
    # the store's dict form gives back the same curve
    again = RecoveryCurve.from_dict(curve.to_dict())
    assert again.coefficient(10.0) == pytest.approx(curve.coefficient(10.0))


def test_gaussian_sphere_recovery_matches_its_limits():
    # blur ≪ radius: the loss is the surface's half-Gaussian spill, RC ≈ 1 − 3σ/(√(2π)·R)
    s_small = 2.0 / (2 * math.sqrt(2 * math.log(2)))
    r = (3 * 100.0e3 / (4 * math.pi)) ** (1 / 3)
    assert gaussian_sphere_recovery(100.0, 2.0)[0] == pytest.approx(1 - 3 * s_small / (math.sqrt(2 * math.pi) * r),
                                                                     abs=(s_small / r) ** 2)
    # sphere ≪ blur: RC → V · G(0)
    fwhm = 20.0
    s = fwhm / (2 * math.sqrt(2 * math.log(2)))
    v_mm3 = 1.0
    expected = v_mm3 * (2 * math.pi * s * s) ** -1.5  # mean of G over a point-like sphere = G(0)·V
    assert gaussian_sphere_recovery(v_mm3 / 1000.0, fwhm)[0] == pytest.approx(expected, rel=0.01)  # O((R/σ)²)


def test_unresolved_spheres_only_are_a_clear_error(spheres):
    t = spheres.truth
    sph = [Sphere(tuple(s["centre_mm"]), s["volume_mL"], s["name"]) for s in t["spheres"]]
    mask = phantom_mask_from_ct(spheres.ct, spheres.spect)
    # counts per voxel per Bq/mL of this simulation
    k = SETTINGS.sensitivity_cps_per_MBq * 1e-6 * t["duration_s"] * SETTINGS.voxel_mm ** 3 / 1000 * t["live_fraction"]
    meas, _ = measure_sphere_recovery(spheres.spect, sph, phantom_mask=mask, fwhm_mm=30.0,
                                      sphere_conc=t["sphere_conc_Bq_per_mL"] * k,
                                      background_conc=t["background_conc_Bq_per_mL"] * k)
    assert [m.resolved for m in meas] == [False] * 5 + [True]
    with pytest.raises(InputError, match=r"only 1 sphere\(s\) resolved at this resolution.*sphere_10mm"):
        fit_recovery_curve(meas)


def test_recovery_correction_divides_and_flags_below_one_half():
    curve = RecoveryCurve("gaussian_sphere", {"fwhm_mm": 11.0, "plateau": 1.0}, ((0.01, 0.0), (0.0, 1e-6)),
                          min_volume_mL=2.5)
    rc_true = gaussian_sphere_recovery(20.0, 11.0)[0]
    c = apply_recovery(rc_true * 1000.0, 20.0, curve)
    assert c.value == pytest.approx(1000.0, rel=1e-9) and c.flags == ()
    small = apply_recovery(100.0, 1.0, curve)
    assert any("< 0.5" in f for f in small.flags) and any("extrapolated" in f for f in small.flags)
    assert small.rel_uncertainty > c.rel_uncertainty > 0


def test_warm_background_correction_recovers_sphere_concentrations(spheres):
    """A second phantom (8, 12, 20 mL, SBR 4) corrected with the SBR-8 curve and its measured background."""
    t = spheres.truth
    sph = [Sphere(tuple(s["centre_mm"]), s["volume_mL"], s["name"]) for s in t["spheres"]]
    meas, _ = measure_sphere_recovery(spheres.spect, sph, phantom_mask=phantom_mask_from_ct(spheres.ct, spheres.spect),
                                      fwhm_mm=SETTINGS.fwhm_mm, sphere_to_background=t["sphere_to_background"])
    curve = fit_recovery_curve(meas)
    diam = tuple(2 * (3 * v * 1000 / (4 * math.pi)) ** (1 / 3) for v in (8.0, 12.0, 20.0))
    obj = sphere_phantom_scan(SETTINGS, diameters_mm=diam, sphere_to_background=4.0, phase_deg=30.0,
                              sphere_conc_Bq_per_mL=0.6e6)
    o = obj.truth
    k = SETTINGS.sensitivity_cps_per_MBq * 1e-6 * o["duration_s"] * SETTINGS.voxel_mm ** 3 / 1000 * o["live_fraction"]
    conc = np.asarray(__import__("SimpleITK").GetArrayFromImage(obj.spect), dtype=float) / k
    mask = phantom_mask_from_ct(obj.ct, obj.spect)
    far = ndimage.binary_erosion(mask, iterations=5)
    for s in o["spheres"]:
        far &= ~sphere_mask(obj.spect, s["centre_mm"], s["diameter_mm"] / 2 + 2 * SETTINGS.fwhm_mm)
    b = conc[far].mean()
    for s in o["spheres"]:
        w = sphere_weights(obj.spect, s["centre_mm"], s["diameter_mm"] / 2)
        mean = (conc * w).sum() / w.sum()
        plain = apply_recovery(mean, s["volume_mL"], curve)
        warm = apply_recovery(mean, s["volume_mL"], curve, background=b)
        assert warm.value == pytest.approx(o["sphere_conc_Bq_per_mL"], rel=0.05), s["name"]
        assert plain.value > 1.05 * o["sphere_conc_Bq_per_mL"]  # dividing the whole mean over-corrects
        assert 0 < warm.rel_uncertainty < plain.rel_uncertainty


def test_recovery_hook_comes_from_the_store_for_this_system_only():
    from LuDosimetryLib.calibration.recovery import recovery_curve_from_store
    from LuDosimetryLib.calibration.store import CalibrationEntry, CalibrationStore
    from LuDosimetryLib.model import Camera

    cam = SETTINGS.camera
    curve = RecoveryCurve("gaussian_sphere", {"fwhm_mm": 11.0, "plateau": 1.0}, ((0.01, 0.0), (0.0, 1e-6)))
    store, _ = CalibrationStore().add(CalibrationEntry(cam.key(), 9.0, recovery=curve.to_dict()))
    hook = recovery_curve_from_store(store, cam.key())
    rc, u = hook(20.0)  # the TAC stage's hook: volume_mL -> (coefficient, relative uncertainty)
    assert rc == pytest.approx(gaussian_sphere_recovery(20.0, 11.0)[0]) and 0 < u < 0.05
    other = Camera(cam.manufacturer, cam.model, "LEHR", cam.energy_windows_keV, cam.reconstruction)
    with pytest.raises(InputError, match="collimator 'LEHR' ≠ 'MEGP'"):
        recovery_curve_from_store(store, other.key())


def test_lambert_w_inverts_the_paralysable_model():
    from LuDosimetryLib.ingest.quant import paralysable_true_rate_cps as true_rate_from_observed

    n = np.array([1e3, 5e4, 2e5])
    tau = 2e-6
    assert true_rate_from_observed(paralysable_observed_rate(n, tau), tau) == pytest.approx(n, rel=1e-10)
    with pytest.raises(InputError, match="exceeds 1/e"):
        true_rate_from_observed(1.0 / (math.e * tau) * 1.01, tau)


def test_dead_time_from_a_decay_series_is_within_10_percent():
    scans = decay_series_scans(SETTINGS)
    mids = [datetime.fromisoformat(s.sidecar["acquisition_start"]) + timedelta(seconds=s.sidecar["duration_s"] / 2)
            for s in scans]
    counts = np.array([float(np.asarray(__import__("SimpleITK").GetArrayViewFromImage(s.spect)).sum()) for s in scans])
    rates = counts / np.array([s.sidecar["duration_s"] for s in scans])
    fit = fit_dead_time(mids, rates, counts=counts)
    assert fit.dead_time_s == pytest.approx(SETTINGS.dead_time_s, rel=0.10)
    assert 0 < fit.dead_time_rel_uncertainty < 0.1
    assert fit.max_loss_fraction == pytest.approx(1 - scans[0].truth["live_fraction"], rel=0.1)


def test_a_decay_series_without_count_loss_cannot_give_tau():
    t = np.array([0.0, 24.0, 48.0, 96.0])
    rates = 1000.0 * np.exp(-math.log(2) / 159.528 * t)
    with pytest.raises(InputError, match="not measurable"):
        fit_dead_time(t, rates)
