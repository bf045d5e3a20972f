"""Voxel comparison: gamma index, dose difference and DVH on analytic dose maps with known answers."""

import numpy as np
import pytest

from LuDosimetryLib.errors import ConsistencyError, InputError
from LuDosimetryLib.prediction.comparison import GammaCriteria, dose_difference, dvh, gamma_index, gamma_pass_rates

H = 1.0  # mm voxel along x
SIGMA = 10.0


def _profile_maps(shift_mm, n=121):
    x = (np.arange(n) - n // 2) * H
    ref1 = 10.0 * np.exp(-(x**2) / (2 * SIGMA**2))
    ev1 = 10.0 * np.exp(-((x - shift_mm) ** 2) / (2 * SIGMA**2))
    ref = np.broadcast_to(ref1, (3, 3, n)).astype(np.float32)
    ev = np.broadcast_to(ev1, (3, 3, n)).astype(np.float32)
    return x, ref, ev


def _gamma_1d_dense(x, shift, dta, dd):
    """Independent reference: continuous 1-D search, E(y) = R(y − s) evaluated analytically."""
    u = np.linspace(-3 * dta, 3 * dta, 6001)
    out = []
    for xi in x:
        r = 10.0 * np.exp(-(xi**2) / (2 * SIGMA**2))
        e = 10.0 * np.exp(-((xi + u - shift) ** 2) / (2 * SIGMA**2))
        out.append(np.sqrt(np.min(u**2 / dta**2 + (e - r) ** 2 / dd**2)))
    return np.array(out)


def test_gaussian_shifted_by_less_than_the_dta_passes_everywhere():
    _, ref, ev = _profile_maps(3.0)
    res = gamma_index(ref, ev, (H, 50.0, 50.0), GammaCriteria(0.03, 5.0, low_dose_threshold=0.1, subvoxel=4))
    assert res.pass_rate == 1.0
    # Γ ≤ s / DTA: the exact partner lies 3 mm away with the same dose
    assert np.nanmax(res.gamma) <= 3.0 / 5.0 + 1e-3


def test_gaussian_shifted_beyond_the_dta_fails_the_computable_fraction():
    shift, dta, frac = 8.0, 5.0, 0.05
    x, ref, ev = _profile_maps(shift)
    crit = GammaCriteria(frac, dta, low_dose_threshold=0.1, subvoxel=4, max_gamma=3.0)
    res = gamma_index(ref, ev, (H, 50.0, 50.0), crit)
    expected = _gamma_1d_dense(x, shift, dta, frac * 10.0)
    evaluated = ref[1, 1] >= 0.1 * ref.max()
    g = res.gamma[1, 1][evaluated]
    np.testing.assert_allclose(np.minimum(g, 3.0), np.minimum(expected[evaluated], 3.0), atol=0.03)
    rate_expected = np.mean(expected[evaluated] <= 1.0)
    assert 0.0 < rate_expected < 1.0
    assert res.pass_rate == pytest.approx(rate_expected, abs=0.02)


@pytest.mark.parametrize("normalisation", ["global", "local"])
@pytest.mark.parametrize(("x", "passes"), [(0.09, True), (0.11, False), (-0.09, True), (-0.12, False)])
def test_uniform_scaling_passes_iff_below_the_dose_criterion(normalisation, x, passes):
    ref = np.full((8, 9, 10), 10.0, np.float32)
    ev = ref * np.float32(1 + x)
    res = gamma_index(ref, ev, (4.0, 4.0, 4.0), GammaCriteria(0.10, 5.0, normalisation))
    assert res.pass_rate == (1.0 if passes else 0.0)
    assert np.nanmax(res.gamma) == pytest.approx(min(abs(x) / 0.10, 2.0), rel=1e-5)


def test_low_dose_threshold_excludes_voxels_and_region_pass_rates():
    ref = np.zeros((6, 6, 6), np.float32)
    ref[:, :, 3:] = 10.0
    ev = ref.copy()
    ev[:, :3, 3:] *= 1.5  # a failing half of the dose region
    res = gamma_index(ref, ev, (4.0, 4.0, 4.0), GammaCriteria(0.10, 3.0, subvoxel=1))
    assert res.evaluated.sum() == ref[ref > 0].size
    labels = np.zeros(ref.shape, int)
    labels[:, :3, 3:] = 1
    labels[:, 3:, 3:] = 2
    rows = {r["region"]: r for r in gamma_pass_rates(res, labels, {1: "bad", 2: "good"})}
    assert rows["good"]["pass_rate"] == pytest.approx(1.0)
    assert rows["bad"]["pass_rate"] < 0.5


def test_dose_difference_and_dvh_of_uniform_maps():
    m = np.full((4, 4, 4), 2.0, np.float32)
    p = m * 1.1
    diff, rel = dose_difference(p, m)
    np.testing.assert_allclose(diff, 0.2, rtol=1e-5)
    np.testing.assert_allclose(rel, 0.1, rtol=1e-5)
    _, frac = dvh(m, np.ones(m.shape, bool), bins_Gy=np.array([0.0, 1.99, 2.0, 2.01]))
    np.testing.assert_array_equal(frac, [1.0, 1.0, 1.0, 0.0])


def test_maps_on_different_grids_are_refused():
    with pytest.raises(ConsistencyError, match="one grid"):
        gamma_index(np.ones((3, 3, 3)), np.ones((3, 3, 4)), (1, 1, 1))
    with pytest.raises(InputError, match="dose_fraction"):
        GammaCriteria(10.0, 5.0)
