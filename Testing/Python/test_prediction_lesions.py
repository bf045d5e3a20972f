"""Lesions: detection on a blurred PET, transfer through a known transform, Hungarian matching, burden."""

import numpy as np
import pytest
import SimpleITK as sitk
from scipy.ndimage import gaussian_filter

from LuDosimetryLib.errors import InputError
from LuDosimetryLib.prediction.lesions import (
    Lesion,
    detect_lesions,
    lesions_from_labels,
    liver_threshold_Bq_per_mL,
    match_lesions,
    suv_threshold_Bq_per_mL,
    track_lesions,
    transfer_labels,
    tumour_burden,
)

SP = 2.0  # mm, PET voxel
FWHM = 6.0  # mm, PET resolution
SHAPE = (60, 60, 60)
# (centre x, y, z mm in the PET frame, radius mm): four above the PET resolution, two far below it
SPHERES = [((30, 30, 30), 8.0), ((80, 40, 60), 6.0), ((40, 90, 80), 5.0), ((90, 90, 30), 4.0),
           ((60, 20, 100), 2.0), ((20, 70, 100), 2.5)]
SHIFT = np.array([7.0, -5.0, 3.0])  # SPECT frame = PET frame + SHIFT (mm)


def _paint(centres_radii, offset, shape=SHAPE, spacing=SP):
    z, y, x = np.meshgrid(*(np.arange(n) * spacing for n in shape), indexing="ij")
    lab = np.zeros(shape, np.int32)
    for i, (c, r) in enumerate(centres_radii, start=1):
        cx, cy, cz = np.asarray(c, float) + offset
        lab[(x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2 <= r**2] = i
    return lab


def _pet():
    lab = _paint(SPHERES, 0.0)
    img = np.ones(SHAPE, np.float32) * 1000.0  # background, Bq/mL
    liver = np.zeros(SHAPE, bool)
    liver[45:58, 5:20, 5:25] = True
    img[liver] = 4000.0
    img[lab > 0] = 20000.0
    blurred = gaussian_filter(img, FWHM / 2.3548 / SP, mode="nearest").astype(np.float32)
    return blurred, liver


def _image(arr, origin=(0.0, 0.0, 0.0)):
    im = sitk.GetImageFromArray(arr)
    im.SetSpacing((SP, SP, SP))
    im.SetOrigin(origin)
    return im


def test_lesions_above_pet_resolution_match_their_partner_and_small_ones_are_unmatched():
    pet, liver = _pet()
    search = ~gaussian_filter(liver.astype(float), 2) .astype(bool)
    thr = liver_threshold_Bq_per_mL(pet, liver, factor=1.5)
    pet_labels, pet_lesions = detect_lesions(pet, (SP, SP, SP), threshold_Bq_per_mL=thr, search_mask=search,
                                             min_volume_mL=0.05)
    assert len(pet_lesions) == 4  # only the lesions above the resolution survive the threshold
    # SPECT/CT space: the patient sits SHIFT mm further; the true lesion segmentation there
    spect_truth = _paint(SPHERES, SHIFT)
    spect_ref = _image(np.zeros(SHAPE, np.float32))
    spect_lesions = lesions_from_labels(spect_truth, (SP, SP, SP), modality="SPECT")
    # PET labels → SPECT grid: the resampling transform maps SPECT points to PET points (−SHIFT)
    tx = sitk.TranslationTransform(3, tuple(-SHIFT))
    moved = sitk.GetArrayFromImage(transfer_labels(_image(pet_labels), spect_ref, tx))
    moved_lesions = lesions_from_labels(moved, (SP, SP, SP), modality="PET")
    m = match_lesions(moved_lesions, spect_lesions, max_distance_mm=10.0, labels_a=moved, labels_b=spect_truth)
    # the right partner: the PET lesion's voxels overlap the SPECT lesion it is paired with and no other
    for pid, sid, dist in m.pairs:
        assert set(np.unique(spect_truth[moved == pid])) == {0, sid}
        assert dist < 2.0
    assert sorted(s for _, s, _ in m.pairs) == [1, 2, 3, 4]
    assert m.only_b == (5, 6) and m.only_a == ()
    rows = m.rows()
    assert [r["status"] for r in rows].count("spect_only") == 2


def test_lesion_in_one_modality_only_and_distance_tolerance():
    a = (Lesion(1, (0.0, 0.0, 0.0), 1.0), Lesion(2, (100.0, 0.0, 0.0), 1.0), Lesion(3, (0.0, 50.0, 0.0), 1.0))
    b = (Lesion(7, (101.0, 0.0, 0.0), 1.0), Lesion(8, (2.0, 0.0, 0.0), 1.0), Lesion(9, (0.0, 70.0, 0.0), 1.0))
    m = match_lesions(a, b, max_distance_mm=15.0)
    assert sorted(m.pairs) == [(1, 8, 2.0), (2, 7, 1.0)]
    assert m.only_a == (3,) and m.only_b == (9,)  # 20 mm apart: beyond the tolerance, reported on both sides
    rows = track_lesions(a, {"tp2": b, "tp3": ()})
    assert rows[0] == {"lesion_id": 1, "tp2_id": 8, "tp3_id": None}
    assert {"lesion_id": None, "tp2_id": 9, "seen_in": "tp2"} in rows


def test_hungarian_assignment_beats_greedy_nearest():
    # greedy would give A1→B1 (1 mm) and leave A2 with B2 at 14 mm; optimal: A1→B2, A2→B1, total smaller
    a = (Lesion(1, (0.0, 0.0, 0.0), 1.0), Lesion(2, (-10.0, 0.0, 0.0), 1.0))
    b = (Lesion(1, (-1.0, 0.0, 0.0), 1.0), Lesion(2, (4.0, 0.0, 0.0), 1.0))
    m = match_lesions(a, b, max_distance_mm=10.0)
    assert sorted((p, q) for p, q, _ in m.pairs) == [(1, 2), (2, 1)]


def test_suv_threshold_and_tumour_burden():
    assert suv_threshold_Bq_per_mL(3.0, injected_activity_Bq=180e6, body_mass_kg=90.0) == pytest.approx(6000.0)
    b = tumour_burden([10.0, 30.0], [10.4, 31.2], [20.0, 4.0])
    assert b["total_volume_mL"] == 40.0
    assert b["mass_weighted_dose_Gy"] == pytest.approx((10.4 * 20 + 31.2 * 4) / 41.6)
    with pytest.raises(InputError, match="liver mask"):
        liver_threshold_Bq_per_mL(np.ones((3, 3, 3)), np.zeros((3, 3, 3), bool))
