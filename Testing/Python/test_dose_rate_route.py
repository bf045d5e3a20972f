"""Route (b): regional dose from dose-rate maps per time point, fitted and integrated."""

from __future__ import annotations

import numpy as np
import pytest

from LuDosimetryLib.dose.regional import dose_rate_route_rows, region_dose_from_dose_rates
from LuDosimetryLib.errors import ConsistencyError, InputError
from LuDosimetryLib.kinetics.models import SumOfExponentials
from LuDosimetryLib.labels import LabelTable, Region
from LuDosimetryLib.results import DOSES_COLUMNS

A = (0.08, -0.05)  # Gy/h: uptake-washout shape, Ḋ(0) = 0.03 Gy/h
B = (0.012, 0.35)  # h^-1
TIMES = np.array([4.0, 24.0, 96.0, 192.0])
TABLE = LabelTable((Region(1, "kidney_cortex_left", "left", "organ", "kidney_left"),
                    Region(2, "renal_pelvis_left", "left", "organ", "kidney_left"), Region(3, "liver")))


def exact_biexp_fitter(times_h, values):
    """Least squares for the coefficients with the rates known: exact when the data are a bi-exponential."""
    design = np.exp(-np.outer(times_h, B))
    coef, *_ = np.linalg.lstsq(design, values, rcond=None)
    return SumOfExponentials(tuple(coef), B)


def rate(t):
    return sum(a * np.exp(-b * t) for a, b in zip(A, B))


def maps_and_labels():
    rng = np.random.default_rng(3)
    lab = np.zeros((4, 6, 6), np.int16)
    lab[:2, :3, :] = 1
    lab[:2, 3:, :] = 2
    lab[2:, :, :] = 3
    pattern = rng.uniform(0.5, 1.5, lab.shape)
    for k in (1, 2, 3):  # normalise the pattern to mean 1 in each region
        pattern[lab == k] /= pattern[lab == k].mean()
    liver_scale = 0.25
    maps = [(pattern * rate(t) * np.where(lab == 3, liver_scale, 1.0)).astype(np.float64) for t in TIMES]
    return maps, lab, liver_scale


def test_exact_biexponential_dose_rate_gives_analytic_integral():
    maps, lab, liver_scale = maps_and_labels()
    out = {r.region: r for r in region_dose_from_dose_rates(maps, TIMES, lab, TABLE, fit=exact_biexp_fitter,
                                                            voxel_volume_mL=0.11)}
    analytic = sum(a / b for a, b in zip(A, B))  # ∫0^∞ Σ a e^(-bt) dt
    for name in ("kidney_cortex_left", "renal_pelvis_left", "kidney_left"):
        assert out[name].dose_Gy == pytest.approx(analytic, rel=1e-6)
        np.testing.assert_allclose(out[name].mean_dose_rate_Gy_per_h, rate(TIMES), rtol=1e-9)
    assert out["liver"].dose_Gy == pytest.approx(liver_scale * analytic, rel=1e-6)
    assert out["liver"].times_h == tuple(TIMES)
    assert out["kidney_left"].volume_mL == pytest.approx(72 * 0.11)  # 2 x 6 x 6 voxels
    rows = dose_rate_route_rows(list(out.values()), cycle=2, injected_activity_Bq=7.4e9)
    liver = next(r for r in rows if r["region"] == "liver")
    assert liver["dose_method"] == "dose_rate_integral" and liver["cycle"] == 2
    assert liver["dose_per_activity_Gy_per_GBq"] == pytest.approx(liver_scale * analytic / 7.4, rel=1e-6)
    assert tuple(liver) == DOSES_COLUMNS


def test_mass_weighted_mean_dose_rate_uses_density():
    maps, lab, _ = maps_and_labels()
    maps = [np.where(lab == 3, 0.0, 1.0) * rate(t) for t in TIMES]
    maps = [m.copy() for m in maps]
    rho = np.ones(lab.shape)
    for m in maps:
        m[0, 0, 0] *= 3.0  # one hot voxel in the cortex
    rho[0, 0, 0] = 2.0  # ... twice as dense
    n = int((lab == 1).sum())
    (res,) = region_dose_from_dose_rates(maps, TIMES, lab, TABLE, fit=exact_biexp_fitter, voxel_volume_mL=1.0,
                                         density_g_per_mL=rho, mass_weighted=True, regions=["kidney_cortex_left"])
    factor = (3.0 * 2.0 + (n - 1)) / (2.0 + (n - 1))  # Σ D m / Σ m relative to the base rate
    assert res.dose_Gy == pytest.approx(factor * sum(a / b for a, b in zip(A, B)), rel=1e-6)
    assert res.mean_weighting == "mass"


def test_bad_inputs_of_dose_rate_route():
    maps, lab, _ = maps_and_labels()
    with pytest.raises(InputError, match="one time per dose-rate map"):
        region_dose_from_dose_rates(maps, TIMES[:3], lab, TABLE, fit=exact_biexp_fitter, voxel_volume_mL=1.0)
    with pytest.raises(InputError, match="strictly increasing"):
        region_dose_from_dose_rates(maps, TIMES[::-1], lab, TABLE, fit=exact_biexp_fitter, voxel_volume_mL=1.0)
    bad = [m.copy() for m in maps]
    bad[2][0, 0, 0] = np.nan
    with pytest.raises(InputError, match=r"dose_rate_maps_Gy_per_h\[2\].*NaN"):
        region_dose_from_dose_rates(bad, TIMES, lab, TABLE, fit=exact_biexp_fitter, voxel_volume_mL=1.0)
    shifted = [*maps[:3], maps[3][:, :, :5]]
    with pytest.raises(ConsistencyError, match=r"dose_rate_maps_Gy_per_h\[3\]: is on another grid"):
        region_dose_from_dose_rates(shifted, TIMES, lab, TABLE, fit=exact_biexp_fitter, voxel_volume_mL=1.0)
    with pytest.raises(InputError, match="not a KineticModel"):
        region_dose_from_dose_rates(maps, TIMES, lab, TABLE, fit=lambda t, v: 3.0, voxel_volume_mL=1.0)
