"""The analysis grid (issue 20): label maps finer than half a SPECT voxel block-reduced by majority."""

from __future__ import annotations

import math

import numpy as np
import pytest
import SimpleITK as sitk

from LuDosimetryLib.analysis_grid import analysis_factors, analysis_grid, block_majority
from LuDosimetryLib.labels import LabelTable, Region
from LuDosimetryLib.model import Segmentation


def test_factors_keep_half_a_spect_voxel():
    assert analysis_factors((0.977, 0.977, 2.0), (4.42, 4.42, 4.42)) == (2, 2, 1)   # clinical CT
    assert analysis_factors((2.4, 2.4, 4.8), (4.8, 4.8, 4.8)) == (1, 1, 1)          # demo: unchanged
    assert analysis_factors((3.0, 3.0, 6.0), (6.0, 6.0, 6.0)) == (1, 1, 1)          # small: unchanged
    assert analysis_factors((0.5, 0.5, 0.5), (4.0, 4.0, 4.0)) == (4, 4, 4)


def test_block_majority_counts_and_breaks_ties_in_block_order():
    a = np.zeros((1, 2, 6), np.uint8)
    a[0, :, 0:2] = [[3, 3], [3, 5]]      # majority 3
    a[0, :, 2:4] = [[7, 5], [5, 7]]      # tie 7/5: first in block order (i, j, k) is 7
    a[0, :, 4:6] = [[0, 9], [9, 9]]      # majority 9
    out = block_majority(a, (2, 2, 1))
    assert out.tolist() == [[[3, 7, 9]]]
    b = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)  # all distinct: the first voxel of each block
    assert block_majority(b, (2, 1, 2)).tolist() == [[[0, 2], [4, 6], [8, 10]]]


def _sphere_case(spacing=(0.5, 0.5, 1.0), radius_mm=12.0, shape=(60, 120, 120)):
    k, j, i = np.indices(shape)
    z, y, x = ((k + 0.5) * spacing[2] - 30.0, (j + 0.5) * spacing[1] - 30.0, (i + 0.5) * spacing[0] - 30.0)
    lab = (x * x + y * y + z * z <= radius_mm**2).astype(np.uint8)
    img = sitk.GetImageFromArray(lab)
    img.SetSpacing(spacing)
    dens = sitk.GetImageFromArray(np.where(lab == 1, 1.05, 0.3).astype(np.float32))
    dens.SetSpacing(spacing)
    spect = sitk.Image([8, 8, 8], sitk.sitkFloat32)
    spect.SetSpacing((4.0, 4.0, 4.0))
    return Segmentation(img, LabelTable((Region(1, "sphere"),))), dens, spect


def test_analysis_grid_keeps_mass_and_the_sphere_volume():
    seg, dens, spect = _sphere_case()
    seg2, dens2, f = analysis_grid(seg, dens, spect)
    assert f == (4, 4, 2)
    assert seg2.image.GetSpacing() == pytest.approx((2.0, 2.0, 2.0))
    assert dens2.GetSpacing() == seg2.image.GetSpacing() and dens2.GetOrigin() == seg2.image.GetOrigin()
    # the block mean keeps the mass in the image exactly (up to float32 rounding)
    m1 = sitk.GetArrayViewFromImage(dens).astype(np.float64).sum() * np.prod(dens.GetSpacing())
    m2 = sitk.GetArrayViewFromImage(dens2).astype(np.float64).sum() * np.prod(dens2.GetSpacing())
    assert m2 == pytest.approx(m1, rel=1e-6)
    # the sphere's volume (7238 mm3 analytic) is kept to within 3 % on 2 mm voxels
    v2 = float((sitk.GetArrayViewFromImage(seg2.image) == 1).sum() * 8.0)
    assert v2 == pytest.approx(4 / 3 * math.pi * 12.0**3, rel=0.03)
    # the centroid does not move (majority, not a corner pick)
    def centroid_kji(img):
        idx = np.argwhere(sitk.GetArrayViewFromImage(img) == 1).mean(axis=0)
        return np.asarray(img.GetOrigin())[::-1] + idx * np.asarray(img.GetSpacing())[::-1]

    assert centroid_kji(seg2.image) == pytest.approx(centroid_kji(seg.image), abs=0.1)


def test_analysis_grid_leaves_coarse_label_maps_alone():
    seg, dens, spect = _sphere_case(spacing=(2.5, 2.5, 2.5), shape=(24, 24, 24))
    seg2, dens2, f = analysis_grid(seg, dens, spect)
    assert f == (1, 1, 1) and seg2 is seg and dens2 is dens
