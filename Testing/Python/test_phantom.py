"""The synthetic patient's truth, checked against independent quantities (size small)."""

import itertools
import math

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import integrate, optimize
from scipy.spatial.transform import Rotation

from LuDosimetryLib.errors import InputError
from LuDosimetryLib.nuclides import get_nuclide
from LuDosimetryLib.phantom import SIZES, generate_patient
from LuDosimetryLib.phantom.anatomy import Pose, rasterize
from LuDosimetryLib.phantom.generate import SyntheticPatient
from LuDosimetryLib.phantom.spect import blur
from LuDosimetryLib.units import BQ_PER_MBQ

#: Published ranges of 177Lu-PSMA-617 dose per activity (Gy/GBq) the phantom must land in
#: (docs/phantom.md: Hohberg 2016, Kabasakal 2017, Delker 2016, Kratochwil 2016, Violet 2019).
PUBLISHED_GY_PER_GBQ = {
    "kidney_left": (0.4, 0.9), "kidney_right": (0.4, 0.9),
    "parotid_left": (0.5, 1.5), "parotid_right": (0.5, 1.5),
    "submandibular_left": (0.4, 1.5), "submandibular_right": (0.4, 1.5),
    "lacrimal_left": (0.4, 3.0), "lacrimal_right": (0.4, 3.0),
    "liver": (0.1, 0.2), "red_marrow_total": (0.02, 0.05),
    "lesion_bone_1": (1.0, 15.0), "lesion_bone_2": (1.0, 15.0), "lesion_bone_3": (1.0, 15.0),
    "lesion_node_1": (1.0, 15.0), "lesion_node_2": (1.0, 15.0), "lesion_node_3": (1.0, 15.0),
}


@pytest.fixture(scope="module")
def patient() -> SyntheticPatient:
    return generate_patient("small", seed=3)


@pytest.fixture(scope="module")
def moving_kidneys() -> SyntheticPatient:
    return generate_patient("small", seed=5, kidney_motion=True, with_pet=False, timepoints_h=(5.0, 24.0, 96.0))


def _voxel_mL(img) -> float:
    return float(np.prod(img.GetSpacing())) * 1e-3


def _centroid_mm(label_img, label: int) -> np.ndarray:
    arr = sitk.GetArrayFromImage(label_img)
    k, j, i = np.nonzero(arr == label)
    idx = np.stack([i, j, k], axis=1).mean(axis=0)
    return np.asarray(label_img.GetOrigin()) + idx * np.asarray(label_img.GetSpacing())


def _expected(pose: dict, p: np.ndarray, shift=(0.0, 0.0, 0.0)) -> np.ndarray:
    # extrinsic x, then y, then z rotation = Rz Ry Rx
    rot = Rotation.from_euler("xyz", pose["rotation_deg"], degrees=True).as_matrix()
    c = np.asarray(pose["center_mm"])
    return rot @ (p + np.asarray(shift) - c) + c + np.asarray(pose["translation_mm"])


def test_generation_is_deterministic_given_the_seed(patient):
    again = generate_patient("small", seed=3)
    other = generate_patient("small", seed=4, with_pet=False, timepoints_h=(5.0,))
    for tp_a, tp_b in zip(patient.cycles[0].timepoints, again.cycles[0].timepoints):
        assert tp_a.pose == tp_b.pose
        for a, b in zip(tp_a.beds, tp_b.beds):
            assert a.acquisition_start == b.acquisition_start
            np.testing.assert_array_equal(sitk.GetArrayFromImage(a.counts), sitk.GetArrayFromImage(b.counts))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(patient.pet.static), sitk.GetArrayFromImage(again.pet.static))
    assert not np.array_equal(sitk.GetArrayFromImage(patient.cycles[0].timepoints[0].beds[1].counts),
                              sitk.GetArrayFromImage(other.cycles[0].timepoints[0].beds[1].counts))


def test_bed_counts_equal_fov_activity_times_sensitivity_and_live_time(patient):
    cal = patient.truth["calibration"]
    sens, tau = cal["sensitivity_cps_per_MBq"], cal["dead_time_s"]
    cyc = patient.cycles[0]
    for tp in cyc.timepoints:
        labels = sitk.GetArrayFromImage(tp.labels)
        z = tp.labels.GetOrigin()[2] + np.arange(labels.shape[0]) * tp.labels.GetSpacing()[2]
        n_all = np.bincount(labels.ravel(), minlength=64)
        for bed in tp.beds:
            lo, hi = bed.z_range_mm
            inside = (z > lo) & (z < hi)
            n_in = np.bincount(labels[inside].ravel(), minlength=64)
            a_fov = 0.0
            for region in patient.label_table:
                if region.name in cyc.curves:
                    a_fov += cyc.curves[region.name].activity(bed.time_h) * n_in[region.label] / n_all[region.label]
            rate = sens * a_fov / BQ_PER_MBQ
            expected = rate * bed.duration_s * math.exp(-rate * tau)
            counts = float(sitk.GetArrayFromImage(bed.counts).sum(dtype=np.float64))
            assert abs(counts - expected) < 3.0 * math.sqrt(expected), (tp.label, bed.index)
            assert bed.activity_in_fov_Bq == pytest.approx(a_fov, rel=1e-9)


def test_bed_field_of_view_is_the_bed_image_extent(patient):
    for bed in patient.cycles[0].timepoints[0].beds:
        img = bed.counts
        n = img.GetSize()[2]
        assert bed.z_range_mm[0] == pytest.approx(img.GetOrigin()[2] - img.GetSpacing()[2] / 2)
        assert bed.z_range_mm[1] - bed.z_range_mm[0] == pytest.approx(n * img.GetSpacing()[2])
        assert n * img.GetSpacing()[2] == pytest.approx(384.0)  # axial FoV ~ 39 cm


def test_beds_overlap_and_are_acquired_15_to_25_min_apart(patient):
    for tp in patient.cycles[0].timepoints:
        starts = [b.acquisition_start for b in tp.beds]
        gaps = [(b - a).total_seconds() / 60 for a, b in itertools.pairwise(starts)]
        assert all(15 <= g <= 25 for g in gaps), gaps
        b1, b2, b3 = tp.beds
        assert b1.z_range_mm[0] < b2.z_range_mm[1] and b2.z_range_mm[0] < b3.z_range_mm[1]


def test_gaussian_blur_conserves_total_activity():
    rng = np.random.default_rng(0)
    a = rng.random((20, 16, 12))
    a[0] += 50.0  # activity against the field-of-view edge
    assert blur(a, 11.0, (6.0, 6.0, 6.0)).sum() == pytest.approx(a.sum(), rel=1e-12)


def test_whole_body_retention_plus_excreted_equals_decayed_injection(patient):
    t = np.array([0.0, 0.1, 1.0, 5.0, 24.0, 96.0, 192.0, 1000.0])
    for cyc in patient.cycles:
        lam = get_nuclide("Lu-177").decay_constant_per_h
        a0 = cyc.administration.injected_activity_Bq
        in_body = sum(np.asarray(c.activity(t)) for c in cyc.curves.values())
        np.testing.assert_allclose(in_body + cyc.excreted.activity(t), a0 * np.exp(-lam * t), rtol=1e-9)
        np.testing.assert_allclose(in_body, cyc.whole_body.activity(t), rtol=1e-9)
        assert all(np.asarray(c.activity(t)).min() >= -1e-6 * a0 for c in cyc.curves.values())
    ga = patient.pet
    lam = get_nuclide("Ga-68").decay_constant_per_h
    in_body = sum(np.asarray(c.activity(t)) for c in ga.curves.values())
    # the excreted 68Ga activity = A0 e^(-λt) X(t), X as for 177Lu
    x = 0.5 * -np.expm1(-math.log(2) / 8.0 * t) + 0.25 * -np.expm1(-math.log(2) / 60.0 * t)
    np.testing.assert_allclose(in_body, ga.administration.injected_activity_Bq * np.exp(-lam * t) * (1 - x),
                               rtol=1e-9)


def test_excretion_is_about_half_the_activity_at_24_h(patient):
    cyc = patient.cycles[0]
    lam = get_nuclide("Lu-177").decay_constant_per_h
    frac = cyc.excreted.activity(24.0) / (cyc.administration.injected_activity_Bq * math.exp(-24 * lam))
    assert 0.415 <= frac <= 0.654  # Kabasakal 2017: 56.5 ± 8.8 %, range 41.5-65.4 % at 24 h


def test_analytic_tia_matches_numerical_integration(patient):
    truth_tia = patient.truth["cycles"][0]["tia_Bq_h"]
    for name, curve in patient.cycles[0].curves.items():
        pieces = [0.0, 0.5, 5.0, 50.0, 500.0, 5000.0]
        num = sum(integrate.quad(curve.activity, a, b, epsabs=0, epsrel=1e-12, limit=200)[0]
                  for a, b in itertools.pairwise(pieces))
        num += integrate.quad(curve.activity, pieces[-1], np.inf, epsabs=0, epsrel=1e-12, limit=200)[0]
        assert truth_tia[name] == pytest.approx(num, rel=1e-6), name


def test_live_fraction_matches_paralysable_model_solved_independently(patient):
    tau = patient.truth["calibration"]["dead_time_s"]
    sens = patient.truth["calibration"]["sensitivity_cps_per_MBq"]
    fractions = []
    for tp in patient.truth["cycles"][0]["timepoints"]:
        for bed in tp["beds"]:
            m = bed["observed_count_rate_cps"]
            n = optimize.brentq(lambda x, m=m: x * math.exp(-x * tau) - m, 0.0, 1.0 / tau, xtol=1e-9, rtol=1e-14)
            assert n == pytest.approx(bed["true_count_rate_cps"], rel=1e-9)
            assert n == pytest.approx(sens * bed["activity_in_fov_Bq"] / BQ_PER_MBQ, rel=1e-12)
            assert bed["live_fraction"] == pytest.approx(m / n, rel=1e-12)
            fractions.append(bed["live_fraction"])
    assert min(fractions) < 0.95  # dead time matters at 5 h
    assert max(fractions) > 0.98  # and hardly at 192 h


def test_pose_moves_kidney_centroid_by_the_stated_pose(patient):
    ref = patient.labels
    kid = patient.label_table.by_name("kidney_cortex_left").label
    c0 = _centroid_mm(ref, kid)
    for tp_truth, tp in zip(patient.truth["cycles"][0]["timepoints"][1:], patient.cycles[0].timepoints[1:]):
        moved = _centroid_mm(tp.labels, kid)
        assert np.linalg.norm(moved - c0) > 1.0  # it did move
        np.testing.assert_allclose(moved, _expected(tp_truth["pose"], c0), atol=1.0)
        rot = tp_truth["pose"]["rotation_deg"]
        assert max(abs(r) for r in rot) <= 3.0
        assert np.linalg.norm(tp_truth["pose"]["translation_mm"]) <= 15.0


def test_kidney_motion_moves_kidneys_relative_to_the_spine(moving_kidneys):
    p = moving_kidneys
    kid = p.label_table.by_name("kidney_cortex_right").label
    l3 = p.label_table.by_name("vertebra_l3").label
    k0, s0 = _centroid_mm(p.labels, kid), _centroid_mm(p.labels, l3)
    for tp_truth, tp in zip(p.truth["cycles"][0]["timepoints"][1:], p.cycles[0].timepoints[1:]):
        shift = tp_truth["kidney_shift_mm"]
        assert 5.0 <= np.linalg.norm(shift) <= 10.0
        np.testing.assert_allclose(_centroid_mm(tp.labels, kid), _expected(tp_truth["pose"], k0, shift), atol=1.0)
        np.testing.assert_allclose(_centroid_mm(tp.labels, l3), _expected(tp_truth["pose"], s0), atol=1.0)


def test_doses_per_gbq_fall_in_published_ranges(patient):
    lu = get_nuclide("Lu-177")
    labels = sitk.GetArrayFromImage(patient.labels)
    counts = np.bincount(labels.ravel(), minlength=64)
    rho = {r["name"]: r["density_g_per_mL"] for r in patient.truth["regions"]}
    cyc = patient.cycles[0]
    gbq = cyc.administration.injected_activity_Bq / 1e9
    groups = {g: [r.name for r in regs] for g, regs in patient.label_table.groups().items()}
    groups["red_marrow_total"] = ["red_marrow", *groups["lumbar_spine"]]
    for name, (lo, hi) in PUBLISHED_GY_PER_GBQ.items():
        members = groups.get(name, [name])
        tia = sum(sum(a / b for a, b in cyc.curves[m].exponential_terms()) for m in members)  # Bq h
        mass_kg = sum(counts[patient.label_table.by_name(m).label] * _voxel_mL(patient.labels) * rho[m]
                      for m in members) * 1e-3
        dose = tia * 3600.0 * lu.electron_energy_per_decay_J / mass_kg / gbq
        assert lo <= dose <= hi, (name, dose)
        assert patient.truth["cycles"][0]["dose_per_activity_Gy_per_GBq"][name] == pytest.approx(dose, rel=1e-9)


def test_anatomy_has_the_regions_of_the_issue(patient):
    table = patient.label_table
    groups = table.groups()
    assert [r.name for r in groups["lumbar_spine"]] == [f"vertebra_l{i}" for i in range(1, 6)]
    assert {r.name for r in groups["kidney_left"]} == {"kidney_cortex_left", "renal_pelvis_left"}
    vols = {r["name"]: r["volume_mL"] for r in patient.truth["regions"]}
    lesions = [r.name for r in table.of_kind("lesion")]
    assert len(lesions) >= 5
    assert min(vols[n] for n in lesions) < 1.0 and max(vols[n] for n in lesions) > 40.0
    hu = {r["name"]: r["hu"] for r in patient.truth["regions"]}
    assert hu["lesion_bone_1"] > 700  # sclerotic
    ct = sitk.GetArrayFromImage(patient.cycles[0].timepoints[0].ct)
    labels = sitk.GetArrayFromImage(patient.labels)
    assert ct[labels == table.by_name("lung_left").label].max() < -500
    for side in ("left", "right"):
        for organ in ("parotid", "submandibular", "lacrimal"):
            assert vols[f"{organ}_{side}"] > 0


def test_renal_pelvis_holds_urine_early_and_washes_out(patient):
    c = patient.cycles[0].curves
    pel, cor = c["renal_pelvis_left"], c["kidney_cortex_left"]
    vol = {r["name"]: r["volume_mL"] for r in patient.truth["regions"]}
    conc = lambda curve, name, t: curve.activity(t) / vol[name]  # noqa: E731
    assert conc(pel, "renal_pelvis_left", 1.0) > conc(cor, "kidney_cortex_left", 1.0)
    assert conc(pel, "renal_pelvis_left", 96.0) < 0.01 * conc(cor, "kidney_cortex_left", 96.0)


def test_effective_rates_are_at_least_physical(patient):
    lam = get_nuclide("Lu-177").decay_constant_per_h
    for curve in patient.cycles[0].curves.values():
        assert min(curve.rates_per_h) >= lam * (1 - 1e-12)


def test_pet_static_holds_the_whole_body_activity_and_dynamic_covers_first_hour(patient):
    pt = patient.pet
    static = sitk.GetArrayFromImage(pt.static).astype(np.float64)
    t_mid = patient.truth["pet"]["static"]["time_h"]
    total = static.sum() * _voxel_mL(pt.static)
    wb = sum(c.activity(t_mid) for c in pt.curves.values())
    assert total == pytest.approx(wb, rel=1e-5)
    starts = [f.start_s for f in pt.frame_specs]
    assert starts[0] == 0 and pt.frame_specs[-1].start_s + pt.frame_specs[-1].duration_s == 3600
    assert len(pt.dynamic_frames) == len(pt.frame_specs) == 24
    assert 7 <= (patient.cycles[0].administration.injection_datetime - pt.administration.injection_datetime).days <= 15
    assert 1.5e8 <= pt.administration.injected_activity_Bq <= 2.0e8
    dyn = patient.truth["pet"]["dynamic"]
    frame = dyn["frames"][-1]
    in_fov = sum(frame["region_activity_Bq"][n] * f for n, f in dyn["region_fraction_in_fov"].items())
    last = sitk.GetArrayFromImage(pt.dynamic_frames[-1]).astype(np.float64).sum() * _voxel_mL(pt.dynamic_frames[-1])
    assert last == pytest.approx(in_fov, rel=1e-5)


def test_pet_uptake_is_lutetium_uptake_times_one_plus_mismatch(patient):
    lu = patient.truth["cycles"][0]["kinetics"]
    ga = patient.truth["pet"]["kinetics"]
    m = patient.truth["pet"]["mismatch"]
    assert any(v != 0 for v in m.values())  # the default is not zero
    for name, k in ga.items():
        if name == "remainder":
            continue
        assert k["uptake_fraction"] == pytest.approx(lu[name]["uptake_fraction"] * (1 + m[name]), rel=1e-12)
        assert k["washout_half_life_bio_h"] == lu[name]["washout_half_life_bio_h"]
    zero = generate_patient("small", seed=3, pet_mismatch=0.0, timepoints_h=(24.0,))
    assert all(v == 0 for v in zero.truth["pet"]["mismatch"].values())
    kid = generate_patient("small", seed=3, pet_mismatch={"kidney_left": 0.5}, timepoints_h=(24.0,))
    assert kid.truth["pet"]["mismatch"]["renal_pelvis_left"] == 0.5
    assert kid.truth["pet"]["mismatch"]["liver"] == 0.0


def test_second_cycle_has_same_anatomy_and_its_own_administration():
    p = generate_patient("small", seed=1, cycles=2, with_pet=False, timepoints_h=(24.0, 96.0))
    c1, c2 = p.cycles
    assert (c2.administration.injection_datetime - c1.administration.injection_datetime).days >= 41
    assert [tp.label for tp in c2.timepoints] == ["tp1", "tp2"]
    assert c2.timepoints[0].time_h == pytest.approx(24.0, abs=0.75)
    assert p.truth["cycles"][1]["tia_Bq_h"]["kidney_left"] == pytest.approx(
        p.truth["cycles"][0]["tia_Bq_h"]["kidney_left"], rel=1e-12)


@pytest.mark.parametrize(("kwargs", "source", "match"), [
    ({"size": "huge"}, "size", "unknown size 'huge'"),
    ({"cycles": 0}, "cycles", "integer ≥ 1"),
    ({"pet_mismatch": {"kidnee": 0.1}}, "pet_mismatch", "unknown region or group 'kidnee'"),
    ({"pet_mismatch": -1.0}, "pet_mismatch", "> -1"),
    ({"timepoints_h": (24.0, 5.0)}, "timepoints_h", "increasing"),
    ({"bed_overlap_slices": 40}, "bed_overlap_slices", r"\[0, 32\)"),
])
def test_bad_generation_settings_are_refused(kwargs, source, match):
    with pytest.raises(InputError, match=match) as err:
        generate_patient(**kwargs)
    assert err.value.source == source


def test_demo_size_is_clinical_head_to_pelvis():
    demo = SIZES["demo"]
    assert demo.spect_voxel_mm == 4.8 and demo.spect_matrix_xy == (128, 128)
    covered = (3 * demo.bed_slices - 2 * demo.overlap_slices) * demo.spect_voxel_mm
    assert covered >= 1000.0  # pelvis (z ≈ 20 mm) to vertex (z ≈ 985 mm)
    assert 370 <= demo.bed_slices * demo.spect_voxel_mm <= 400  # axial FoV ~ 39 cm


def test_reference_labels_are_rasterised_anatomy_without_pose(patient):
    img = patient.labels
    from LuDosimetryLib.phantom.anatomy import Grid

    grid = Grid(img.GetOrigin(), img.GetSpacing(), img.GetSize())
    np.testing.assert_array_equal(rasterize(grid, pose=Pose()), sitk.GetArrayFromImage(img))
