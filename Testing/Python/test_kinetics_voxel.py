"""Voxel-wise TIA: agreement with region fits, analytic cases, fallback rules, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

from LuDosimetryLib.errors import ConsistencyError, InputError
from LuDosimetryLib.kinetics.fitting import fit_tac
from LuDosimetryLib.kinetics.models import mono_exponential
from LuDosimetryLib.kinetics.voxel import voxel_tia

LN2 = math.log(2.0)
LAM_P = LN2 / 159.528
T = np.array([5.0, 24.0, 96.0, 192.0])


def _uniform(values, shape=(3, 4, 5)):
    return [np.full(shape, v, dtype=np.float32) for v in values]


def test_gauss_newton_voxels_equal_the_region_fit_on_a_uniform_region():
    y = mono_exponential(2e4, LN2 / 40.0).activity(T) * np.array([1.06, 0.95, 1.04, 0.97])
    maps = _uniform(y)
    tia = voxel_tia(maps, T, method="gauss_newton")
    region = fit_tac(T, y * tia.size, models=("mono",), interval="none")
    assert tia.dtype == np.float32
    assert float(tia.astype(float).sum()) == pytest.approx(region.tia_Bq_h, rel=1e-5)


@pytest.mark.parametrize("method", ["mono", "gauss_newton"])
def test_voxel_mono_methods_are_exact_on_noiseless_mono_exponential(method):
    m = mono_exponential(1e4, LN2 / 30.0)
    tia = voxel_tia(_uniform(m.activity(T)), T, method=method)
    assert np.allclose(tia, m.integral(), rtol=1e-5)


def test_hybrid_is_trapezoid_uptake_plus_fitted_tail():
    m = mono_exponential(1e4, LN2 / 30.0)
    y = m.activity(T)
    tia = voxel_tia(_uniform(y), T, method="hybrid")
    expected = 0.5 * y[0] * T[0] + m.integral(T[0])
    assert np.allclose(tia, expected, rtol=1e-5)


def test_trapezoid_method_matches_region_trapezoid():
    y = np.array([3.0, 5.0, 2.0, 1.0])
    tia = voxel_tia(_uniform(y), T, method="trapezoid")
    assert np.allclose(tia, fit_tac(T, y, models=("trapezoid",)).tia_Bq_h, rtol=1e-6)


def test_unfittable_voxels_follow_the_documented_rules():
    cols = np.array([
        [1.0, 2.0, 3.0, 4.0],          # 0 increasing → λ = λp
        [np.nan, 2.0, 1.0, 0.5],       # 1 non-finite → 0
        [0.0, 0.0, 0.0, 0.0],          # 2 all zero → 0
        [-1.0, -2.0, 0.0, 0.0],        # 3 all ≤ 0 → 0
        [0.0, 0.0, 4.0, 0.0],          # 4 one positive point → trapezoid + physical tail
        [4.0, -1.0, 2.0, 1.0],         # 5 negative point: 0 in trapezoid, left out of the fit
    ]).T
    maps = [cols[j][:, None, None] * np.ones((1, 1, 1)) for j in range(4)]
    tia, rep = voxel_tia(maps, T, method="mono", return_report=True)
    tia = tia.ravel().astype(float)
    # 0: weighted log-linear at the bound: ln A0 = Σ w (ln y + λp t) / Σ w, w = y
    y0 = cols[:, 0]
    c = np.sum(y0 * (np.log(y0) + LAM_P * T)) / np.sum(y0)
    assert tia[0] == pytest.approx(math.exp(c) / LAM_P, rel=1e-5)
    assert tia[1] == 0 and tia[2] == 0 and tia[3] == 0
    trap = 0.5 * (0 + 4.0) * (96 - 24) + 0.5 * (4.0 + 0) * (192 - 96)  # last point 0 → no tail
    assert tia[4] == pytest.approx(trap, rel=1e-5)
    y5, t5 = np.array([4.0, 2.0, 1.0]), T[[0, 2, 3]]
    w = y5
    tm, lm = np.sum(w * t5) / w.sum(), np.sum(w * np.log(y5)) / w.sum()
    lam = -np.sum(w * (t5 - tm) * (np.log(y5) - lm)) / np.sum(w * (t5 - tm) ** 2)
    assert tia[5] == pytest.approx(math.exp(lm + lam * tm) / lam, rel=1e-5)
    assert (rep.nonfinite, rep.zero, rep.too_few_positive, rep.at_physical_limit) == (1, 2, 1, 1)
    assert rep.negative == 2


def test_mask_limits_the_computation_and_zeroes_the_rest():
    y = mono_exponential(1e4, LN2 / 30.0).activity(T)
    maps = _uniform(y)
    mask = np.zeros((3, 4, 5), bool)
    mask[1, 2, 3] = True
    tia = voxel_tia(maps, T, mask=mask, method="mono")
    assert tia[1, 2, 3] > 0 and np.count_nonzero(tia) == 1


def test_time_maps_equal_to_scalar_times_give_the_same_result_and_bed_times_matter():
    rng = np.random.default_rng(3)
    maps = [np.abs(rng.normal(1e3, 100, (4, 5, 6))) * math.exp(-LN2 / 40 * t) for t in T]
    a = voxel_tia(maps, T)
    b = voxel_tia(maps, time_maps_h=[np.full((4, 5, 6), t) for t in T])
    assert np.allclose(a, b, rtol=1e-6)
    c = voxel_tia(maps, time_maps_h=[np.full((4, 5, 6), t + 2.0) for t in T])
    assert not np.allclose(a, c, rtol=1e-3)


def test_chunking_does_not_change_the_result():
    rng = np.random.default_rng(5)
    maps = [rng.gamma(2.0, 500.0, (7, 11, 13)) * math.exp(-LN2 / 40 * t) for t in T]
    assert np.array_equal(voxel_tia(maps, T, chunk_size=97), voxel_tia(maps, T))


def test_voxel_bad_input_raises():
    maps = _uniform([4.0, 3.0, 2.0, 1.0])
    with pytest.raises(InputError, match="no activity maps"):
        voxel_tia([], T)
    with pytest.raises(InputError, match="differ in shape"):
        voxel_tia([maps[0], np.ones((2, 2, 2))], T[:2])
    with pytest.raises(ConsistencyError, match="3 times for 4 maps"):
        voxel_tia(maps, T[:3])
    with pytest.raises(ConsistencyError, match="strictly increasing"):
        voxel_tia(maps, [5.0, 96.0, 24.0, 192.0])
    with pytest.raises(InputError, match="mask shape"):
        voxel_tia(maps, T, mask=np.ones((2, 2), bool))
    with pytest.raises(InputError, match="unknown method"):
        voxel_tia(maps, T, method="magic")
    with pytest.raises(InputError, match="times_h"):
        voxel_tia(maps)
    bad_times = [np.full((3, 4, 5), t) for t in T]
    bad_times[2][0, 0, 0] = 1.0
    with pytest.raises(ConsistencyError, match="strictly increasing in every voxel"):
        voxel_tia(maps, time_maps_h=bad_times)


def test_hybrid_never_back_extrapolates_a_voxel_whose_activity_appears_late():
    """Regressions from the demo patient (voxels at the body edge after motion and resampling): zeros, or
    round-off values of 1e-26 Bq, at the first times and one real value gave TIAs of 1e16–1e27 Bq·h by
    extrapolating a fit back to the first time. Round-off is zero, and one real point is a trapezoid
    with a physical tail (here 0 after the last point)."""
    t = [5.4, 24.3, 96.1, 192.1]
    for values in ([0.0, 0.0, 2.49, 5.7e-29], [1.29e-26, 0.0, 44.14, 1.29e-14]):
        maps = [np.array([[[v]]], np.float32) for v in values]
        peak = values[2]
        expected = 0.5 * peak * (t[2] - t[1]) + 0.5 * peak * (t[3] - t[2])
        assert float(voxel_tia(maps, t)[0, 0, 0]) == pytest.approx(expected, rel=1e-6), values
    # activity appearing at the third time and then washing out: trapezoid to t3, fitted tail from t3
    maps = [np.array([[[v]]], np.float32) for v in (0.0, 0.0, 40.0, 20.0)]
    lam = np.log(2.0) / (t[3] - t[2])
    expected = 0.5 * 40.0 * (t[2] - t[1]) + 40.0 / lam
    assert float(voxel_tia(maps, t)[0, 0, 0]) == pytest.approx(expected, rel=1e-4)
