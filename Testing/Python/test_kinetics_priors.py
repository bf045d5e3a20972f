"""Population priors: the documented table, matching, MAP fits and their posterior intervals."""

from __future__ import annotations

import math

import numpy as np
import pytest

from LuDosimetryLib.errors import InputError
from LuDosimetryLib.kinetics.fitting import fit_tac
from LuDosimetryLib.kinetics.models import mono_exponential
from LuDosimetryLib.kinetics.priors import HalfLifePrior, fit_map, load_priors, patient_prior, prior_for
from LuDosimetryLib.nuclides import get_nuclide

LN2 = math.log(2.0)


def test_packaged_prior_table_has_a_source_and_status_per_row_and_physical_values():
    tab = load_priors()
    assert {"kidney", "parotid", "liver", "spleen", "red_marrow", "lesion"} <= set(tab)
    t_phys = get_nuclide("Lu-177").half_life_h
    for p in tab.values():
        assert p.source and p.status
        assert 0 < p.median_effective_half_life_h < t_phys and p.log_sd > 0


def test_whole_body_prior_is_lognormal_with_published_mean_and_sd():
    p = load_priors()["whole_body"]  # Kurth et al. 2018: 40.5 ± 9.6 h
    mean = p.median_effective_half_life_h * math.exp(p.log_sd**2 / 2)
    sd = mean * math.sqrt(math.exp(p.log_sd**2) - 1)
    assert mean == pytest.approx(40.5, rel=0.01) and sd == pytest.approx(9.6, rel=0.02)


def test_prior_matching_by_organ_prefix_and_lesion_kind():
    tab = load_priors()
    assert prior_for("kidney_cortex_left", table=tab).organ == "kidney"
    assert prior_for("parotid_right", table=tab).organ == "parotid"
    assert prior_for("bone_met_3", kind="lesion", table=tab).organ == "lesion"
    with pytest.raises(InputError, match="no prior for region 'bladder'"):
        prior_for("bladder", kind="organ", table=tab)


def test_user_prior_table_replaces_packaged_one(tmp_path):
    p = tmp_path / "priors.csv"
    p.write_text("organ,median_effective_half_life_h,log_sd,uptake_half_life_h,n,status,source\n"
                 "kidney,50,0.2,2,12,local,our clinic 2025\n", encoding="utf-8")
    tab = load_priors(p)
    assert tab["kidney"].median_effective_half_life_h == 50 and tab["kidney"].uptake_half_life_h == 2


def test_bad_prior_table_errors_name_the_line(tmp_path):
    p = tmp_path / "priors.csv"
    p.write_text("organ,median_effective_half_life_h,log_sd\nkidney,fifty,0.2\n", encoding="utf-8")
    with pytest.raises(InputError, match="line 2"):
        load_priors(p)
    q = tmp_path / "q.csv"
    q.write_text("organ,half_life\nkidney,40\n", encoding="utf-8")
    with pytest.raises(InputError, match="missing columns"):
        load_priors(q)
    with pytest.raises(InputError, match="log_sd must be > 0"):
        HalfLifePrior("kidney", 40.0, 0.0)


def test_map_fit_follows_precise_data_far_from_the_prior():
    prior = HalfLifePrior("kidney", 35.0, 0.3)
    m = mono_exponential(1e8, LN2 / 90.0)
    t = np.array([5.0, 24.0, 48.0, 96.0, 144.0, 192.0])
    res = fit_map(t, m.activity(t), prior, sigma_Bq=0.002 * m.activity(t))
    assert res.effective_half_life_h == pytest.approx(90.0, rel=0.01)
    assert res.tia_Bq_h == pytest.approx(m.integral(), rel=0.01)


def test_map_fit_with_one_point_returns_the_prior_median_curve():
    prior = HalfLifePrior("liver", 22.9, 0.43)
    res = fit_map([24.0], [5e6], prior)
    lam = LN2 / 22.9
    assert res.tia_Bq_h == pytest.approx(5e6 * math.exp(lam * 24) / lam, rel=1e-6)
    assert "prior_dominated" in res.flags


def test_map_posterior_intervals_cover_truth_when_patients_follow_the_prior():
    """Single scan at 48 h with 10 % noise; T_eff drawn from the prior: Bayesian 95 % ≈ frequentist."""
    prior = HalfLifePrior("kidney", 35.0, 0.35)
    rng = np.random.default_rng(11)
    n_rep, hits = 400, 0
    for _ in range(n_rep):
        teff = min(math.exp(math.log(35.0) + 0.35 * rng.standard_normal()), 150.0)
        m = mono_exponential(1e7, LN2 / teff)
        y = m.activity(48.0) * (1 + 0.1 * rng.standard_normal())
        lo, hi = fit_map([48.0], [max(y, 1.0)], prior, n_samples=3000, n_grid=400).tia_ci95_Bq_h
        hits += lo <= m.integral() <= hi
    assert 0.91 <= hits / n_rep <= 0.98  # ± ~2.7 binomial SD around 0.95 for 400 replicates


def test_patient_prior_centres_on_previous_cycle_fit():
    m = mono_exponential(1e8, LN2 / 44.0)
    t = np.array([5.0, 24.0, 96.0, 192.0])
    cyc1 = fit_tac(t, m.activity(t), models=("mono",), region="kidney_left", cycle=1, interval="none")
    pr = patient_prior(cyc1, log_sd=0.1)
    assert pr.median_effective_half_life_h == pytest.approx(44.0, rel=1e-6)
    later = fit_map([96.0], [0.8 * m.activity(96.0)], pr, region="kidney_left")
    assert later.tia_Bq_h == pytest.approx(0.8 * m.integral(), rel=1e-6)


def test_auto_with_two_points_uses_a_prior_when_given():
    prior = HalfLifePrior("kidney", 35.0, 0.3)
    res = fit_tac([24.0, 96.0], [2e6, 5e5], prior=prior)
    assert res.model_name == "map_mono" and res.ci_method == "posterior"
    assert fit_tac([24.0, 96.0], [2e6, 5e5]).model_name == "trapezoid"


def test_map_model_can_be_requested_by_name_and_needs_a_prior():
    prior = HalfLifePrior("kidney", 35.0, 0.3)
    t = np.array([5.0, 24.0, 96.0, 192.0])
    y = mono_exponential(1e8, LN2 / 35.0).activity(t)
    res = fit_tac(t, y, models=("map",), prior=prior)
    assert res.model_name == "map_mono"
    assert res.tia_Bq_h == pytest.approx(1e8 * 35.0 / LN2, rel=1e-4)
    with pytest.raises(InputError, match="needs a prior"):
        fit_tac(t, y, models=("map",))


# --- ligands (issue 15) -------------------------------------------------------------------------
@pytest.mark.parametrize("given, expected", [
    ("PSMA-617", "PSMA-617"), ("177Lu-PSMA-617", "PSMA-617"), ("[177Lu]Lu-PSMA-617", "PSMA-617"),
    ("vipivotide tetraxetan", "PSMA-617"), ("PSMA-I&T", "PSMA-I&T"), ("PSMA I&T", "PSMA-I&T"),
    ("177Lu-PSMA-I&T", "PSMA-I&T"), ("psma-it", "PSMA-I&T"), ("zadavotide guraxetan", "PSMA-I&T")])
def test_ligand_spellings_select_their_tables(given, expected):
    from LuDosimetryLib.kinetics.priors import select_ligand

    sel = select_ligand(given)
    assert sel.ligand == expected and not sel.fallback and sel.warning == ""


def test_psma_it_has_its_own_priors_each_with_status_and_source():
    it = load_priors(ligand="177Lu-PSMA-I&T")
    b617 = load_priors(ligand="PSMA-617")
    assert set(it) == set(b617)
    assert it["whole_body"].median_effective_half_life_h != b617["whole_body"].median_effective_half_life_h
    assert prior_for("lesion_node_1", kind="lesion", ligand="PSMA-I&T").median_effective_half_life_h == \
        it["lesion"].median_effective_half_life_h
    for organ, p in it.items():
        assert p.status and p.source, organ
        # nothing in the I&T table was read in its primary source: none may claim to be verified
        assert not p.status.startswith("verified") and "verified (abstract)" not in p.status, organ
    assert load_priors() == b617  # no ligand: the PSMA-617 table, as before


def test_psma_it_population_table_parses_with_a_status_and_source_per_row():
    from importlib import resources

    from LuDosimetryLib.prediction.population import load_population_table

    path = resources.files("LuDosimetryLib").joinpath("data").joinpath("population_halflives_lu177_psma_it.csv")
    tab = load_population_table(str(path))
    assert {e.status for e in tab.entries} <= {"verified", "unverified", "default"}
    assert "verified" not in {e.status for e in tab.entries}
    assert all(e.source for e in tab.entries)
    assert tab.lookup("kidney_cortex_left", group="kidney_left").key == "kidney"


def test_unknown_ligand_is_an_error_naming_the_known_ones_or_a_named_fallback_with_a_warning():
    import warnings

    from LuDosimetryLib.kinetics.priors import select_ligand
    from LuDosimetryLib.prediction.parameters import PredictionParameters

    with pytest.raises(InputError, match="PSMA-617, PSMA-I&T"):
        select_ligand("DOTATATE")
    with pytest.raises(InputError, match="no ligand given"):
        load_priors(ligand="")
    sel = select_ligand("DOTATATE", on_unknown="fallback")
    assert sel.fallback and sel.ligand == "PSMA-617" and "DOTATATE" in sel.warning and "fallback" in sel.warning
    # the prediction selects the population table by the therapy ligand
    assert PredictionParameters(therapy_ligand="PSMA-617").population_table is None
    p_it = PredictionParameters(therapy_ligand="177Lu-PSMA-I&T")
    assert p_it.population_table.endswith("population_halflives_lu177_psma_it.csv")
    with pytest.warns(UserWarning, match="fallback"):
        p_unknown = PredictionParameters(therapy_ligand="")
    assert p_unknown.population_table is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        PredictionParameters(therapy_ligand="PSMA-I&T", population_table="my.csv")  # own table: no selection


def test_single_time_point_uses_the_ligand_prior():
    from LuDosimetryLib.kinetics.stp import single_time_point, stp_regions

    it = load_priors(ligand="PSMA-I&T")["lesion"].median_effective_half_life_h
    b617 = load_priors(ligand="PSMA-617")["lesion"].median_effective_half_life_h
    r_it = single_time_point(96.0, 5e6, method="madsen", region="lesion_1", kind="lesion", ligand="PSMA-I&T")
    r_617 = single_time_point(96.0, 5e6, method="madsen", region="lesion_1", kind="lesion")
    assert r_it.effective_half_life_h == it and r_617.effective_half_life_h == b617 and it != b617
    (res,) = stp_regions({"lesion_1": (96.0, 5e6)}, "madsen", kinds={"lesion_1": "lesion"}, ligand="177Lu-PSMA-I&T")
    assert res.effective_half_life_h == it
    with pytest.raises(InputError, match="ligand"):
        stp_regions({"lesion_1": (96.0, 5e6)}, "madsen", kinds={"lesion_1": "lesion"}, ligand="DOTATATE")
