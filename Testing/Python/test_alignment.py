"""Alignment of timepoint CTs and PET/CT to the reference CT (LuDosimetryLib.alignment).

Synthetic torso CTs (64³ at 4 mm, :mod:`synthetic_volumes`) moved by known transforms; the
truth is the analytic geometry, never the registration's own output.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pytest
import SimpleITK as sitk
import synthetic_volumes as sv

from LuDosimetryLib.alignment import (
    AlignmentResult,
    OrganTransform,
    RegistrationSettings,
    activity_per_voxel,
    align_timepoint,
    align_timepoint_images,
    align_timepoints,
    region_centroid_mm,
    region_mask,
    register_ct_to_ct,
    resample_to_reference,
    slicer_to_parent_matrix_ras,
    transfer_labels,
)
from LuDosimetryLib.errors import ConsistencyError, InputError
from LuDosimetryLib.model import Administration, Segmentation, Timepoint
from LuDosimetryLib.tac import extract_tacs

FAST = RegistrationSettings(shrink_factors=(4, 2, 1), smoothing_sigmas_mm=(4.0, 2.0, 0.0), iterations=100,
                            sampling_fraction=0.1)
CHEAP_BSPLINE = RegistrationSettings(shrink_factors=(2,), smoothing_sigmas_mm=(2.0,), iterations=15,
                                     sampling_fraction=0.05, coarse_search=False)
#: about 10 mm and 3° (reference → moving)
TRUE_T = sv.rigid((6.0, -5.0, 6.0), (1.0, -1.5, 2.5))
#: kidneys moved relative to the spine (reference mm): 8.5 mm and 6.3 mm
KIDNEY_MOTION = {"left": (0.0, -3.0, 8.0), "right": (2.0, 0.0, -6.0)}
ADMIN = Administration("Lu-177", "PSMA-617", datetime(2026, 3, 2, 9, 0), 7.4e9)


@pytest.fixture(scope="module")
def reference():
    g = sv.grid()
    return sv.ct(g, seed=1), sv.labels(g)


@pytest.fixture(scope="module")
def kidney_motion_case(reference):
    ref_ct, seg = reference
    moving = sv.ct(sv.grid(), transform=TRUE_T, kidney_offsets=KIDNEY_MOTION, seed=2)
    return moving, align_timepoint(ref_ct, moving, reference_labels=seg, settings=FAST)


def _centroid(seg, name):
    return np.asarray(region_centroid_mm(region_mask(seg, name)))


def _true_moving_point(c, side=None):
    d = np.asarray(KIDNEY_MOTION[side]) if side else 0.0
    return np.asarray(TRUE_T.TransformPoint(tuple(np.asarray(c) + d)))


def test_rigid_registration_recovers_known_transform_at_organ_centroids(reference):
    ref_ct, seg = reference
    moving = sv.ct(sv.grid(), transform=TRUE_T, seed=3)
    calls = []
    res = align_timepoint(ref_ct, moving, settings=FAST, progress=lambda f, m: calls.append((f, m)))
    assert calls[0][0] == 0.0 and calls[-1][0] == 1.0
    for name in ("liver", "kidney_left", "kidney_right", "lung_left"):
        c = _centroid(seg, name)
        tre = np.linalg.norm(np.asarray(res.transform.TransformPoint(tuple(c))) - _true_moving_point(c))
        assert tre <= 2.0, (name, tre)
    assert res.quality["mi_final"] < res.quality["mi_initial"]
    assert res.quality["bone_dice"] > 0.85 and res.organ_transforms == {}


def test_organ_local_refinement_recovers_kidney_motion_relative_to_spine(reference, kidney_motion_case):
    _, seg = reference
    _, res = kidney_motion_case
    c_spine = _centroid(seg, "liver")
    assert np.linalg.norm(np.asarray(res.transform.TransformPoint(tuple(c_spine))) - _true_moving_point(c_spine)) <= 2
    for side in ("left", "right"):
        name = f"kidney_{side}"
        c = _centroid(seg, name)
        truth = _true_moving_point(c, side)
        global_tre = np.linalg.norm(np.asarray(res.transform.TransformPoint(tuple(c))) - truth)
        organ_tre = np.linalg.norm(np.asarray(res.organ_transforms[name].transform.TransformPoint(tuple(c))) - truth)
        assert global_tre > 5.0  # the kidney really moved relative to the body
        assert organ_tre <= 2.0, (name, organ_tre)
        assert res.quality[f"shift_mm_{name}"] == pytest.approx(np.linalg.norm(KIDNEY_MOTION[side]), abs=1.5)
        assert res.quality[f"fallback_{name}"] == 0.0


def test_kidney_activity_error_is_at_least_3x_larger_without_alignment(reference, kidney_motion_case):
    ref_ct, seg = reference
    moving_ct, res = kidney_motion_case
    spect_grid = sv.grid(52, 4.8)
    truth_tp = Timepoint("truth", 24.0, sv.spect(spect_grid))  # the same activity, no motion
    moved = Timepoint("tp2", 24.0, sv.spect(spect_grid, transform=TRUE_T, kidney_offsets=KIDNEY_MOTION),
                      ct=moving_ct)
    aligned = align_timepoint_images(moved, res, spect_grid, ct_grid=ref_ct)
    not_aligned = align_timepoint_images(moved, AlignmentResult.identity(), spect_grid, ct_grid=ref_ct)

    def kidneys(tp):
        return {r.region: r.activity_Bq for r in extract_tacs([tp], seg, ADMIN) if r.region.startswith("kidney_")}

    truth, with_al, without = kidneys(truth_tp), kidneys(aligned), kidneys(not_aligned)
    for name in ("kidney_left", "kidney_right"):
        err_al = abs(with_al[name] / truth[name] - 1)
        err_off = abs(without[name] / truth[name] - 1)
        assert err_off >= 3 * err_al, (name, err_al, err_off)
        assert err_al < 0.05


def test_label_transfer_to_pet_ct_puts_organ_centroids_within_2_mm(reference):
    ref_ct, seg = reference
    pet_grid = sv.grid(56, 4.5, origin_shift=(3.0, -2.0, 5.0))  # another grid, another position
    t_pet = sv.rigid((-7.0, 4.0, -8.0), (-2.0, 1.0, -3.0))
    motion = {"left": (0.0, 0.0, 6.0), "right": (0.0, 0.0, -6.0)}
    pet_ct = sv.ct(pet_grid, transform=t_pet, kidney_offsets=motion, seed=4)
    truth = sv.labels(pet_grid, transform=t_pet, kidney_offsets=motion)
    res = register_ct_to_ct(ref_ct, pet_ct, deformable=True, reference_labels=seg,
                            refine_regions=("kidney_left", "kidney_right"), settings=FAST,
                            bspline_settings=CHEAP_BSPLINE)
    assert res.transform.GetName() == "CompositeTransform" and not res.transform.IsLinear()
    moved = Segmentation(transfer_labels(seg.image, res, pet_grid), seg.table)
    assert moved.image.GetSize() == pet_grid.GetSize() and moved.image.GetPixelID() == seg.image.GetPixelID()
    for name in ("liver", "kidney_left", "kidney_right", "lung_right"):
        err = np.linalg.norm(_centroid(moved, name) - _centroid(truth, name))
        assert err <= 2.0, (name, err)


def test_resampling_uses_the_reference_to_moving_transform_directly():
    g = sv.grid(32, 4.0)
    blob_at = np.array([10.0, -6.0, 4.0])

    def blob(centre):
        z, y, x = np.meshgrid(*[np.arange(32) * 4.0 - 62.0] * 3, indexing="ij")
        img = sitk.GetImageFromArray(np.exp(-((x - centre[0]) ** 2 + (y - centre[1]) ** 2 + (z - centre[2]) ** 2)
                                            / 50.0).astype(np.float32))
        img.CopyInformation(g)
        return img

    t = sv.rigid((8.0, 4.0, -12.0))  # reference → moving: the blob sits 8, 4, −12 mm away in the moving image
    moving = blob(blob_at + np.array([8.0, 4.0, -12.0]))
    out = resample_to_reference(moving, g, AlignmentResult(t))
    arr = sitk.GetArrayFromImage(out)
    centre = np.array(g.TransformContinuousIndexToPhysicalPoint(
        [float((np.indices(arr.shape)[d] * arr).sum() / arr.sum()) for d in (2, 1, 0)]))
    np.testing.assert_allclose(centre, blob_at, atol=0.3)


@pytest.mark.parametrize("interp", [sitk.sitkLinear, sitk.sitkBSpline, sitk.sitkNearestNeighbor])
def test_organ_transform_applies_inside_its_mask_and_the_global_one_elsewhere(reference, interp):
    """Each voxel takes the value of the whole-grid resampling with its own transform (organ box cropping is exact)."""
    ref_ct, seg = reference
    moving = sv.ct(sv.grid(), transform=TRUE_T, seed=4)
    global_t = sv.rigid((6.0, -5.0, 6.0), (1.0, -1.5, 2.5))
    organ_t = sv.rigid((6.0, -2.0, 14.0), (1.0, -1.5, 2.5))
    mask = region_mask(seg, "kidney_left")
    res = AlignmentResult(global_t, {"kidney_left": OrganTransform(organ_t, mask, region_centroid_mm(mask))})
    out = sitk.GetArrayFromImage(resample_to_reference(moving, ref_ct, res, interpolator=interp, default=-1000.0))
    pid = moving.GetPixelID() if interp == sitk.sitkNearestNeighbor else sitk.sitkFloat32
    src = moving if interp == sitk.sitkNearestNeighbor else sitk.Cast(moving, sitk.sitkFloat32)
    whole_g = sitk.GetArrayFromImage(sitk.Resample(src, ref_ct, global_t, interp, -1000.0, pid))
    whole_o = sitk.GetArrayFromImage(sitk.Resample(src, ref_ct, organ_t, interp, -1000.0, pid))
    inside = sitk.GetArrayFromImage(mask) > 0
    assert inside.sum() > 100 and not np.allclose(whole_g[inside], whole_o[inside], atol=1.0)
    np.testing.assert_allclose(out[inside], whole_o[inside], rtol=1e-5, atol=1e-3)
    np.testing.assert_array_equal(out[~inside], whole_g[~inside])


def test_slicer_to_parent_matrix_maps_moving_ras_points_to_reference_ras():
    t = sv.rigid((6.0, -5.0, 6.0), (1.0, -1.5, 2.5), center=(10.0, 20.0, -30.0))
    m = slicer_to_parent_matrix_ras(t)
    for x_lps in ([0.0, 0.0, 0.0], [55.0, -20.0, 100.0], [-70.0, 33.0, -12.0]):
        y_lps = np.asarray(t.TransformPoint(x_lps))  # the same anatomical point in the moving image
        y_ras = np.array([-y_lps[0], -y_lps[1], y_lps[2], 1.0])
        x_ras = np.array([-x_lps[0], -x_lps[1], x_lps[2]])
        np.testing.assert_allclose((m @ y_ras)[:3], x_ras, atol=1e-9)
    with pytest.raises(InputError, match="not linear"):
        slicer_to_parent_matrix_ras(sitk.CompositeTransform([t, sitk.BSplineTransform(3)]))


def test_activity_per_voxel_after_resampling_concentration_keeps_total_activity():
    rng = np.random.default_rng(7)
    conc = sitk.GetImageFromArray(rng.uniform(0, 1e4, (16, 16, 16)).astype(np.float32))
    conc.SetSpacing((4.8, 4.8, 4.8))
    total = float(sitk.GetArrayFromImage(conc).astype(np.float64).sum()) * 4.8 ** 3 / 1000  # Bq
    assert float(sitk.GetArrayFromImage(activity_per_voxel(conc)).sum()) == pytest.approx(total, rel=1e-6)
    fine = sitk.Image((48, 48, 48), sitk.sitkFloat32)
    fine.SetSpacing((1.6, 1.6, 1.6))
    fine.SetOrigin((-1.6, -1.6, -1.6))  # voxel edges of both grids coincide
    resampled = resample_to_reference(conc, fine, AlignmentResult.identity())
    assert float(sitk.GetArrayFromImage(activity_per_voxel(resampled)).sum()) == pytest.approx(total, rel=0.02)


# --- bad input --------------------------------------------------------------------------------
def test_alignment_bad_input_is_refused(reference):
    ref_ct, seg = reference
    flat = sitk.Image((8, 8), sitk.sitkFloat32)
    with pytest.raises(InputError, match="moving_ct: expected a 3D SimpleITK image"):
        align_timepoint(ref_ct, flat)
    with pytest.raises(InputError, match="no region named 'kidney_middle'"):
        align_timepoint(ref_ct, ref_ct, reference_labels=seg, refine_regions=("kidney_middle",), settings=FAST)
    other = Segmentation(sitk.Image((10, 10, 10), sitk.sitkUInt8), seg.table)
    with pytest.raises(ConsistencyError, match="reference_labels must lie on the grid of reference_ct"):
        align_timepoint(ref_ct, ref_ct, reference_labels=other, settings=FAST)
    empty = Segmentation(sitk.Image(seg.image) * 0, seg.table)
    with pytest.raises(InputError, match="region 'kidney_left' has no voxels"):
        align_timepoint(ref_ct, ref_ct, reference_labels=empty, settings=FAST)
    with pytest.raises(InputError, match="shrink_factors"):
        RegistrationSettings(shrink_factors=(4, 2), smoothing_sigmas_mm=(1.0,))
    spect = sitk.Image((8, 8, 8), sitk.sitkFloat32)
    with pytest.raises(InputError, match="timepoint tp2: has no CT"):
        align_timepoints([Timepoint("tp1", 5.0, spect, ct=ref_ct), Timepoint("tp2", 24.0, spect)])
    with pytest.raises(InputError, match="grid: give the reference-frame grid"):
        align_timepoints([Timepoint("tp2", 24.0, spect, ct=ref_ct)], reference_ct=ref_ct)
    with pytest.raises(InputError, match="no timepoints"):
        align_timepoints([])
