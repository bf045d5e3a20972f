"""LuDosimetryLib.prediction: decay handled once, the uptake–washout prediction, population table, LOPO."""

import math

import numpy as np
import pytest

from LuDosimetryLib.errors import InputError
from LuDosimetryLib.prediction.calibration import lopo_scale_factors
from LuDosimetryLib.prediction.decay import BiologicalTac, PetTac, to_biological
from LuDosimetryLib.prediction.parameters import PredictionParameters
from LuDosimetryLib.prediction.population import PopulationEntry, PopulationTable, load_population_table
from LuDosimetryLib.prediction.predict import predict_regions
from LuDosimetryLib.prediction.recovery import sphere_recovery

LN2 = math.log(2.0)
LAM_GA = LN2 / 1.1285  # 68Ga, ICRP-107 (physics.md): independent of the library's table
LAM_LU = LN2 / 159.528
E_E_J = 147.923 * 1.602176634e-16  # 177Lu electrons per decay (physics.md)
A0_GA = 180e6
# framing of the phantom: 6×10 s, 4×30 s, 7×60 s, 4×300 s, 3×600 s, static 65 min + 12 min
_DUR = [10] * 6 + [30] * 4 + [60] * 7 + [300] * 4 + [600] * 3
_START = np.concatenate([[0], np.cumsum(_DUR)[:-1]]) / 3600.0
DYN_START, DYN_DUR = _START, np.array(_DUR) / 3600.0
ST_START, ST_DUR = 65 / 60, 12 / 60


def _g(t, u, tw, tu):
    return u * (np.exp(-LN2 / tw * t) - np.exp(-LN2 / tu * t))


def _population(t_eff_h, t_up_h):
    return PopulationTable((PopulationEntry("default_organ", t_eff_h, t_up_h, "default", "test"),
                            PopulationEntry("default_lesion", t_eff_h, t_up_h, "default", "test")), "test")


def _tac(u, *, volume=100.0, tw_bio=60.0, tu_bio=1.0, state="NONE", kind="organ", static=True, dynamic=True,
         region="kidney"):
    """Mean concentration per frame (Bq/mL) in the given decay state; START reference = series start 0 h."""
    starts, durs, src = [], [], []
    if dynamic:
        starts += list(DYN_START)
        durs += list(DYN_DUR)
        src += ["dynamic"] * len(DYN_START)
    if static:
        starts.append(ST_START)
        durs.append(ST_DUR)
        src.append("static")
    starts, durs = np.array(starts), np.array(durs)
    t = starts + durs / 2
    conc_acq = A0_GA * _g(t, u, tw_bio, tu_bio) * np.exp(-LAM_GA * t) / volume
    series_start = np.where(np.array(src) == "static", ST_START, 0.0)
    if state == "NONE":
        conc = conc_acq
    elif state == "START":
        conc = conc_acq * np.exp(LAM_GA * (t - series_start))
    elif state == "ADMIN":
        conc = conc_acq * np.exp(LAM_GA * t)
    tacs = []
    for s in sorted(set(src)):
        m = np.array(src) == s
        tacs.append(PetTac(region, kind, starts[m], durs[m], conc[m], state, series_start_h=float(series_start[m][0]),
                           frame_source=tuple(np.array(src)[m]), volume_mL=volume))
    return tacs


def _merge(bios):
    t = np.concatenate([b.time_h for b in bios])
    f = np.concatenate([b.fraction_per_mL for b in bios])
    src = sum((b.frame_source for b in bios), ())
    return BiologicalTac(bios[0].region, bios[0].kind, t, f, src, bios[0].volume_mL)


def _predict(tacs, **kw):
    bio = _merge([to_biological(t, A0_GA) for t in tacs])
    pop = kw.pop("population", _population(1 / (1 / 60.0 + 1 / 159.528), 1.0))
    return predict_regions([bio], population=pop, masses_g={"kidney": 105.0}, **kw)[0]


def _true_tia_per_GBq(u, tw_bio, tu_bio):
    return 1e9 * u * (1 / (LN2 / tw_bio + LAM_LU) - 1 / (LN2 / tu_bio + LAM_LU))


def test_prediction_equals_the_analytic_177lu_tia_when_pet_and_therapy_share_the_biology():
    pred = _predict(_tac(0.02), params=PredictionParameters(fit_uptake_rate=True))
    truth = _true_tia_per_GBq(0.02, 60.0, 1.0)
    assert pred.tia_Bq_h_per_GBq == pytest.approx(truth, rel=1e-4)
    assert pred.uptake_rate_source == "pet_fit"
    assert pred.uptake_rate_per_h == pytest.approx(LN2 / 1.0, rel=1e-3)
    assert pred.dose_Gy_per_GBq == pytest.approx(truth * 3600 * E_E_J / 0.105, rel=1e-4)


@pytest.mark.parametrize("state", ["START", "ADMIN"])
def test_decay_corrected_pet_gives_the_same_prediction_as_uncorrected(state):
    ref = _predict(_tac(0.02, state="NONE"))
    other = _predict(_tac(0.02, state=state))
    assert other.tia_Bq_h_per_GBq == pytest.approx(ref.tia_Bq_h_per_GBq, rel=1e-9)


def test_double_decay_correction_is_caught():
    # ADMIN-corrected values declared as NONE get the 68Ga correction a second time: the late
    # value is then too high by exactly e^(λ t_ref) — the prediction must not silently agree
    good = _predict(_tac(0.02, state="ADMIN"))
    twice = _predict([PetTac(t.region, t.kind, t.start_h, t.duration_h, t.conc_Bq_per_mL, "NONE",
                             frame_source=t.frame_source, volume_mL=t.volume_mL) for t in _tac(0.02, state="ADMIN")],
                     params=PredictionParameters(fit_uptake_rate=False))
    t_ref = ST_START + ST_DUR / 2
    assert twice.late_fraction_ga / good.late_fraction_ga == pytest.approx(math.exp(LAM_GA * t_ref), rel=1e-9)
    bio = to_biological(_tac(0.02)[0], A0_GA)
    with pytest.raises(InputError, match="twice"):
        to_biological(bio, A0_GA)


@pytest.mark.parametrize("state", [None, "", "DECY?", "UNKNOWN"])
def test_pet_whose_decay_correction_cannot_be_determined_is_an_error(state):
    with pytest.raises(InputError, match="decay correction cannot be determined"):
        PetTac("kidney", "organ", [0.0], [0.1], [1.0], state)


def test_static_only_pet_uses_population_uptake_rate_and_is_flagged():
    pred = _predict(_tac(0.02, dynamic=False))
    assert "static_only" in pred.flags and pred.uptake_rate_source == "population"
    # population uptake T½ 1 h equals the truth here, so the prediction is still exact
    assert pred.tia_Bq_h_per_GBq == pytest.approx(_true_tia_per_GBq(0.02, 60.0, 1.0), rel=1e-6)


def test_mismatch_scales_the_prediction_and_the_ligand_ratio_undoes_it():
    m = 0.3
    pred = _predict(_tac(0.02 * (1 + m)))
    assert pred.tia_Bq_h_per_GBq / _true_tia_per_GBq(0.02, 60.0, 1.0) == pytest.approx(1 + m, rel=1e-4)
    fixed = _predict(_tac(0.02 * (1 + m)), params=PredictionParameters(ligand_uptake_ratio=1 / (1 + m)))
    assert fixed.tia_Bq_h_per_GBq == pytest.approx(_true_tia_per_GBq(0.02, 60.0, 1.0), rel=1e-4)


def test_sink_factor_applies_to_organs_not_lesions():
    p = PredictionParameters(tumour_sink_factor=0.8)
    org = _predict(_tac(0.02), params=p)
    les = _predict(_tac(0.02, kind="lesion"), params=p)
    base = _predict(_tac(0.02))
    assert org.tia_Bq_h_per_GBq == pytest.approx(0.8 * base.tia_Bq_h_per_GBq, rel=1e-9)
    assert les.tia_Bq_h_per_GBq == pytest.approx(base.tia_Bq_h_per_GBq, rel=1e-4)


def test_population_table_ships_with_sources_and_looks_up_leaves_groups_and_kinds():
    pop = load_population_table()
    assert all(e.source for e in pop.entries)
    assert pop.lookup("kidney_cortex_left", group="kidney_left").key == "kidney"
    assert pop.lookup("parotid_right").key == "parotid"
    assert pop.lookup("vertebra_l3", group="lumbar_spine").key == "lumbar_spine"
    assert pop.lookup("lesion_bone_7", kind="lesion").key == "default_lesion"
    assert pop.lookup("pancreas").key == "default_organ"


def test_population_table_rejects_unphysical_half_lives(tmp_path):
    f = tmp_path / "pop.csv"
    f.write_text("key,effective_half_life_h,uptake_half_life_h,status,source\nkidney,200,1,x,y\n")
    with pytest.raises(InputError, match="effective half-life 200"):
        load_population_table(f)


def test_sphere_recovery_limits_and_a_numerical_blur():
    # large sphere: RC ≈ 1 − 3 E[r] / (4 R), E[r] = 2σ√(2/π) the mean blur displacement
    radius_l = (3 * 1e6 / (4 * np.pi)) ** (1 / 3)
    sigma = 5.5 / math.sqrt(8 * LN2)
    assert sphere_recovery(1000.0, 5.5) == pytest.approx(1 - 3 * 2 * sigma * math.sqrt(2 / np.pi) / (4 * radius_l),
                                                         abs=2e-3)
    assert sphere_recovery(0.1, 10.0) < 0.1
    # numerical check: blur a voxelised sphere with a Gaussian and average over it
    from scipy.ndimage import gaussian_filter

    h = 0.5  # mm
    n = 81
    x = (np.arange(n) - n // 2) * h
    zz, yy, xx = np.meshgrid(x, x, x, indexing="ij")
    radius = 6.0
    sphere = (xx**2 + yy**2 + zz**2 <= radius**2).astype(float)
    fwhm = 8.0
    blurred = gaussian_filter(sphere, fwhm / 2.3548 / h, mode="constant")
    rc_num = blurred[sphere > 0].mean()
    vol_mL = sphere.sum() * h**3 / 1000
    assert sphere_recovery(vol_mL, fwhm) == pytest.approx(rc_num, abs=0.01)


def test_lopo_factor_never_sees_the_held_out_patient():
    rng = np.random.default_rng(3)
    patients = np.repeat(["p1", "p2", "p3", "p4"], 3)
    measured = rng.uniform(1, 5, patients.size)
    predicted = measured * 1.25 * rng.lognormal(0, 0.05, patients.size)
    f = lopo_scale_factors(predicted, measured, patients)
    # the held-out patient's own data change → its factor does not; the others' do
    predicted2 = predicted.copy()
    predicted2[patients == "p2"] *= 3.0
    g = lopo_scale_factors(predicted2, measured, patients)
    assert g["p2"] == f["p2"]
    assert all(g[p] != f[p] for p in ("p1", "p3", "p4"))
    # the factor is the geometric mean ratio measured/predicted of the others
    others = patients != "p1"
    assert f["p1"] == pytest.approx(math.exp(np.mean(np.log(measured[others] / predicted[others]))), rel=1e-12)
    assert np.all(np.abs(np.array(list(f.values())) - 1 / 1.25) < 0.05)


def test_lopo_needs_two_patients():
    with pytest.raises(InputError, match="at least 2 patients"):
        lopo_scale_factors([1.0, 2.0], [1.0, 2.0], ["a", "a"])


@pytest.mark.parametrize("mismatch", [0.0, 0.25])
def test_concordance_bias_recovers_the_injected_mismatch_on_a_synthetic_cohort(mismatch):
    from LuDosimetryLib.concordance.agreement import bland_altman

    rng = np.random.default_rng(11)
    t_eff_pop = 40.0
    pop = _population(t_eff_pop, 1.0)
    pred, meas = [], []
    for _ in range(30):  # regions of several patients: individual washout log-normal around the population
        u = rng.uniform(0.002, 0.03)
        t_eff = t_eff_pop * rng.lognormal(0.0, 0.15)
        tw_bio = 1 / (1 / t_eff - 1 / 159.528)
        r = _predict(_tac(u * (1 + mismatch), tw_bio=tw_bio), population=pop)
        pred.append(r.tia_Bq_h_per_GBq)
        meas.append(_true_tia_per_GBq(u, tw_bio, 1.0))
    ba = bland_altman(pred, meas, scale="log_ratio")
    lo, hi = ba.bias_ci95
    assert lo <= math.log(1 + mismatch) <= hi
    assert hi - lo < 0.15


def test_frame_average_values_use_the_frame_reference_time():
    # constant biology: the frame average of A0 g e^(−λt) over [s, s+T] decay-corrects exactly with t_FRT
    g, s, T = 0.01, 0.5, 10 / 60
    avg = A0_GA * g * (np.exp(-LAM_GA * s) - np.exp(-LAM_GA * (s + T))) / (LAM_GA * T)
    exact = to_biological(PetTac("r", "organ", [s], [T], [avg], "NONE", frame_values="frame_average", volume_mL=1.0),
                          A0_GA)
    mid = to_biological(PetTac("r", "organ", [s], [T], [avg], "NONE", volume_mL=1.0), A0_GA)
    assert exact.fraction_per_mL[0] == pytest.approx(g, rel=1e-12)
    # mid-frame reading of a frame average: high by (λT)²/24 (≈ 4.4e-4 for 10 min of 68Ga)
    assert mid.fraction_per_mL[0] / g - 1 == pytest.approx((LAM_GA * T) ** 2 / 24, rel=0.02)
