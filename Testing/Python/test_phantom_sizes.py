"""Phantom size presets with a CT grid finer than the truth grid (small2x, clinical)."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from LuDosimetryLib.phantom import SIZES, generate_patient
from LuDosimetryLib.phantom.anatomy import hu_lookup
from LuDosimetryLib.phantom.generate import _ct_grid, _grids


def test_clinical_grids_are_clinical():
    p = SIZES["clinical"]
    n_slices = 3 * p.bed_slices - 2 * p.overlap_slices
    em, fine = _grids(p, p.spect_voxel_mm, p.spect_matrix_xy, n_slices, -10.0, p.fine_factor)
    ct = _ct_grid(p, em)
    assert ct.size[:2] == (512, 512) and max(ct.spacing[:2]) <= 1.0 and ct.spacing[2] <= 2.0
    assert em.size[:2] == (128, 128) and em.spacing == pytest.approx((4.42,) * 3)
    # the CT covers the SPECT's axial range (to within one CT slice) and sits inside the truth grid in-plane
    assert ct.size[2] * ct.spacing[2] == pytest.approx(em.size[2] * em.spacing[2], abs=ct.spacing[2])
    assert ct.size[0] * ct.spacing[0] <= fine.size[0] * fine.spacing[0]
    assert fine.spacing == pytest.approx((2.21,) * 3)
    assert p.pet_voxel_mm == 4.0 and p.pet_matrix_xy == (200, 200)


@pytest.fixture(scope="module")
def pair():
    return (generate_patient("small", seed=3, with_pet=False, timepoints_h=(5.0, 24.0)),
            generate_patient("small2x", seed=3, with_pet=False, timepoints_h=(5.0, 24.0)))


def test_small2x_same_patient_finer_ct(pair):
    small, fine = pair
    assert small.truth["regions"] == fine.truth["regions"]  # truth (masses, volumes) on the same grid
    assert small.truth["cycles"][0]["tia_Bq_h"] == fine.truth["cycles"][0]["tia_Bq_h"]
    for a, b in zip(small.cycles[0].timepoints, fine.cycles[0].timepoints):
        for ba, bb in zip(a.beds, b.beds):  # the same SPECT, count for count
            assert np.array_equal(sitk.GetArrayViewFromImage(ba.counts), sitk.GetArrayViewFromImage(bb.counts))
        ct_a, ct_b = a.ct, b.ct
        assert ct_b.GetSpacing() == pytest.approx((1.5, 1.5, 3.0))
        assert np.prod(ct_b.GetSize()) == 8 * np.prod(ct_a.GetSize())
        assert sitk.GetArrayViewFromImage(ct_b).dtype == np.int16
    g = fine.truth["grids"]
    assert g["ct_spacing_mm"] == [1.5, 1.5, 3.0] and g["label_spacing_mm"] == [3.0, 3.0, 6.0]
    assert "label_spacing_mm" not in small.truth["grids"]


def test_small2x_ct_is_nearest_neighbour_of_truth(pair):
    _, fine = pair
    tp = fine.cycles[0].timepoints[1]
    lab = sitk.GetArrayViewFromImage(tp.labels)
    ct = sitk.GetArrayViewFromImage(tp.ct)
    # each 3x3x6 mm truth voxel holds exactly 2x2x2 CT voxels of 1.5x1.5x3 mm: all carry its HU
    hu = hu_lookup()[lab]
    assert np.array_equal(ct, np.repeat(np.repeat(np.repeat(hu, 2, 0), 2, 1), 2, 2))
