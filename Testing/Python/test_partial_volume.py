"""Partial-volume correction by the geometric transfer matrix (LuDosimetryLib.partial_volume)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from LuDosimetryLib.partial_volume import _label_index, gtm_correct, gtm_matrix

SPACING_MM = (4.0, 4.0, 5.0)  # x, y, z
FWHM_MM = 11.0


def _phantom() -> tuple[np.ndarray, dict[int, float]]:
    """Labels [z, y, x]: a large box, a sphere next to it, a small sphere, background 0; true Bq/mL per label."""
    z, y, x = np.mgrid[0:24, 0:40, 0:40]
    lab = np.zeros((24, 40, 40), np.int64)
    lab[4:20, 5:20, 5:30] = 3
    lab[(z - 12) ** 2 * (5 / 4) ** 2 + (y - 28) ** 2 + (x - 14) ** 2 <= 36] = 7
    lab[(z - 12) ** 2 * (5 / 4) ** 2 + (y - 30) ** 2 + (x - 31) ** 2 <= 6] = 12
    return lab, {0: 50.0, 3: 400.0, 7: 2500.0, 12: 9000.0}


def _blurred(lab: np.ndarray, conc: dict[int, float]) -> np.ndarray:
    """The image an isotropic Gaussian PSF of FWHM_MM makes of the piecewise-constant truth (reflecting edges)."""
    truth = np.zeros(lab.shape)
    for v, c in conc.items():
        truth[lab == v] = c
    sigma = [FWHM_MM / np.sqrt(8 * np.log(2)) / s for s in SPACING_MM[::-1]]
    return gaussian_filter(truth, sigma, mode="reflect")


def test_gtm_recovers_the_true_concentrations_of_a_blurred_image():
    lab, conc = _phantom()
    image = _blurred(lab, conc)
    observed = {v: image[lab == v].mean() for v in conc}
    assert observed[12] < 0.5 * conc[12]  # the small sphere loses most of its mean to the blur
    ids, true = gtm_correct(lab, [image, 0.5 * image], SPACING_MM, FWHM_MM)
    assert ids.tolist() == [0, 3, 7, 12]
    for i, v in enumerate(ids):
        assert true[0, i] == pytest.approx(conc[int(v)], rel=2e-3)
        assert true[1, i] == pytest.approx(0.5 * conc[int(v)], rel=2e-3)


def test_fine_labels_of_whole_voxels_give_the_same_matrix():
    lab, _ = _phantom()
    fine = lab.repeat(2, axis=0).repeat(2, axis=1).repeat(2, axis=2)
    ids, g = gtm_matrix(lab, SPACING_MM, FWHM_MM)
    ids_f, g_f = gtm_matrix(lab, SPACING_MM, FWHM_MM, fine_labels=fine, factor=2)
    assert ids.tolist() == ids_f.tolist()
    np.testing.assert_allclose(g_f, g, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(g.sum(axis=1), 1.0, atol=2e-3)  # each region sees all of a uniform image


@pytest.mark.parametrize("dtype", [np.uint8, np.uint32, np.int32, np.int64])
def test_label_index_is_that_of_unique(dtype):
    rng = np.random.default_rng(3)
    lab = rng.choice(np.array([0, 2, 5, 9, 200], dtype=dtype), size=(7, 6, 5))
    ids, inv, counts = _label_index(lab)
    u_ids, u_inv, u_counts = np.unique(lab, return_inverse=True, return_counts=True)
    assert ids.dtype == u_ids.dtype and ids.tolist() == u_ids.tolist()
    assert inv.shape == lab.shape and inv.ravel().tolist() == u_inv.ravel().tolist()
    assert counts.tolist() == u_counts.tolist()


@pytest.mark.parametrize("values", [(-4, 0, 3), (0, 7, 2 ** 40)], ids=["negative", "sparse-large"])
def test_other_label_values_give_the_same_correction(values):
    lab, conc = _phantom()
    image = _blurred(lab, conc)
    mapped = np.array([*values, 99], np.int64)[np.searchsorted([0, 3, 7, 12], lab)]
    ids, true = gtm_correct(lab, [image], SPACING_MM, FWHM_MM)
    ids_m, true_m = gtm_correct(mapped, [image], SPACING_MM, FWHM_MM)
    assert ids_m.tolist() == sorted([*values, 99])
    order = {int(v): i for i, v in enumerate(ids_m)}
    for i, v in enumerate(ids):
        m = [*values, 99][[0, 3, 7, 12].index(int(v))]
        assert true_m[0, order[m]] == pytest.approx(true[0, i], rel=1e-12)
