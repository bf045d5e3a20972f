"""LuDosimetryLib.kernels against the published voxel S-values (Lanconelli 2012) and photon physics."""

import itertools
import math

import numpy as np
import pytest
from scipy.integrate import quad

from LuDosimetryLib.errors import InputError
from LuDosimetryLib.kernels import dose_kernel, fit_electron_model, kernel_from_model, sphere_s_value
from LuDosimetryLib.nuclides import (
    available_voxel_s_value_tables,
    get_nuclide,
    photon_attenuation,
    voxel_s_value_table,
)
from LuDosimetryLib.units import J_PER_KEV, KG_PER_G, MGY_PER_MBQ_S_TO_GY_PER_BQ_H, S_PER_H

SIZES = available_voxel_s_value_tables("Lu-177", "soft")


def _octant_mGy_per_MBq_s(kernel):
    """Offsets 0..5 of a cubic kernel, [i, j, k] like the tables, in mGy/(MBq·s)."""
    v = np.asarray(kernel.values_Gy_per_Bq_h, dtype=float)
    c = [s // 2 for s in v.shape]
    octant = v[c[0]:c[0] + 6, c[1]:c[1] + 6, c[2]:c[2] + 6].transpose(2, 1, 0)
    return octant / MGY_PER_MBQ_S_TO_GY_PER_BQ_H


@pytest.fixture(scope="module")
def leave_one_out():
    """For each published size: the kernel of the method fitted without that size's table."""
    out = {}
    for s in SIZES:
        model = fit_electron_model("soft", exclude_mm=(s,))
        # the tables' own electron energy: this checks the interpolation in voxel size and shape
        out[s] = kernel_from_model((s, s, s), model, photons=True, radius_mm=5.0 * s * math.sqrt(3) + 1.0,
                                   electron_energy_J=model.energy_J)
    return out


def test_nine_published_soft_tissue_tables_are_used():
    assert len(SIZES) == 9


@pytest.mark.parametrize("size", SIZES)
def test_leave_one_size_out_reproduces_the_left_out_table(leave_one_out, size):
    table = voxel_s_value_table(size, tissue="soft").s_values_mGy_per_MBq_s
    rel = _octant_mGy_per_MBq_s(leave_one_out[size]) / table - 1.0
    assert abs(rel[0, 0, 0]) < 0.02, f"S(0,0,0) off by {rel[0, 0, 0]:+.3%}"
    for face in ((1, 0, 0), (0, 1, 0), (0, 0, 1)):
        assert abs(rel[face]) < 0.05, f"S{face} off by {rel[face]:+.3%}"
    rest = np.ones(rel.shape, bool)
    rest[0, 0, 0] = rest[1, 0, 0] = rest[0, 1, 0] = rest[0, 0, 1] = False
    worst = np.unravel_index(np.argmax(np.abs(np.where(rest, rel, 0))), rel.shape)
    assert np.all(np.abs(rel[rest]) < 0.10), f"S{worst} off by {rel[worst]:+.3%}"


@pytest.mark.parametrize("size", [4.8, 9.28])
def test_photon_tail_from_attenuation_data_matches_table_tails(size):
    """The photon part is never fitted to the tables; far entries are photon dose only."""
    k = dose_kernel((size, size, size), radius_mm=5.0 * size * math.sqrt(3) + 1.0)
    table = voxel_s_value_table(size, tissue="soft").s_values_mGy_per_MBq_s
    rel = _octant_mGy_per_MBq_s(k)[3:, 3:, 3:] / table[3:, 3:, 3:] - 1.0
    assert np.all(np.abs(rel) < 0.08)


@pytest.mark.parametrize("a", [4.8, 6.0, 8.0, 9.28])
def test_non_cubic_kernel_sums_to_cubic_kernel(a):
    """K_(a,a,a)(i,j,k) = ¼ Σ_{s,t∈{0,1}} K_(a,a,a/2)(i,j,2k+t−s): two half-voxels make one voxel."""
    cube = dose_kernel((a, a, a), radius_mm=40.0).values_Gy_per_Bq_h.astype(float)
    half = dose_kernel((a, a, a / 2), radius_mm=40.0).values_Gy_per_Bq_h.astype(float)  # z = axis 0
    cc, ch = [s // 2 for s in cube.shape], [s // 2 for s in half.shape]

    def combined(i, j, k):
        return 0.25 * sum(half[ch[0] + 2 * k + t - s, ch[1] + j, ch[2] + i] for s in (0, 1) for t in (0, 1))

    def direct(i, j, k):
        return cube[cc[0] + k, cc[1] + j, cc[2] + i]

    assert combined(0, 0, 0) == pytest.approx(direct(0, 0, 0), rel=0.02)
    for ijk in ((1, 0, 0), (0, 1, 0), (0, 0, 1)):
        assert combined(*ijk) == pytest.approx(direct(*ijk), rel=0.05)


def test_unit_conversion_mGy_per_MBq_s_to_Gy_per_Bq_h():
    assert MGY_PER_MBQ_S_TO_GY_PER_BQ_H == pytest.approx(3.6e-6, rel=1e-12)
    # 1 mGy/(MBq·s): 1e-3 Gy per 1e6 decays; 1 Bq·h = 3600 decays
    assert 1e-3 / 1e6 * 3600 == pytest.approx(MGY_PER_MBQ_S_TO_GY_PER_BQ_H, rel=1e-12)


def test_kernel_is_float32_odd_centred_and_symmetric():
    k = dose_kernel((4.0, 3.0, 5.0), radius_mm=30.0)
    v = k.values_Gy_per_Bq_h
    assert v.dtype == np.float32 and all(s % 2 == 1 for s in v.shape)
    assert np.unravel_index(np.argmax(v), v.shape) == tuple(s // 2 for s in v.shape)
    for ax in range(3):
        np.testing.assert_array_equal(v, np.flip(v, axis=ax))
    assert v.shape[2] > v.shape[0]  # x (3 mm) reaches more voxels than z (5 mm) for one radius
    assert not v.flags.writeable


def test_electron_only_kernel_holds_the_icrp107_electron_energy():
    h = (3.0, 4.0, 5.0)
    k = dose_kernel(h, photons=False)
    mass_kg = h[0] * h[1] * h[2] * 1e-3 * k.density_g_per_mL * KG_PER_G
    energy = float(k.values_Gy_per_Bq_h.astype(float).sum()) * mass_kg / S_PER_H
    assert energy == pytest.approx(get_nuclide("Lu-177").electron_energy_per_decay_J, rel=1e-3)
    assert energy / J_PER_KEV == pytest.approx(147.923, rel=1e-3)


def test_tables_hold_less_electron_energy_than_icrp107():
    """Documented bookkeeping: the fitted tables carry ~138 keV of electrons, ICRP-107 147.9 keV."""
    e_fit = fit_electron_model("soft").energy_J / J_PER_KEV
    assert 130.0 < e_fit < 147.923


def test_bone_kernel_has_lower_self_dose_than_soft_tissue():
    soft = dose_kernel((4.8, 4.8, 4.8), photons=False).values_Gy_per_Bq_h
    bone = dose_kernel((4.8, 4.8, 4.8), tissue="bone", photons=False).values_Gy_per_Bq_h
    c = tuple(s // 2 for s in soft.shape)
    # bone is denser (1.92 vs 1.04 g/mL): the self-voxel mass is larger
    assert bone[c] / soft[c] == pytest.approx(1.04 / 1.92, rel=0.05)
    table_ratio = (voxel_s_value_table(4.8, tissue="bone").s_values_mGy_per_MBq_s[0, 0, 0]
                   / voxel_s_value_table(4.8, tissue="soft").s_values_mGy_per_MBq_s[0, 0, 0])
    assert bone[c] / soft[c] == pytest.approx(table_ratio, rel=0.08)


# --- sphere model ---------------------------------------------------------------------------------

def _led_Gy_per_Bq_h(volume_mL):
    # physics.md §C: electron local-deposition limit Δ_e / m, Δ_e = 2.36999e-14 J per decay
    return 2.36999e-14 * 3600.0 / (volume_mL * 1.04 * 1e-3)


@pytest.mark.parametrize("mass_g", [100.0, 1000.0])
def test_sphere_s_value_approaches_local_deposition_for_large_masses(mass_g):
    v = mass_g / 1.04
    ratio = sphere_s_value(v) / _led_Gy_per_Bq_h(v)
    assert 1.0 <= ratio < 1.05  # photons add a little self-absorption
    assert sphere_s_value(v, photons=False) / _led_Gy_per_Bq_h(v) == pytest.approx(1.0, abs=0.01)


def test_sphere_s_value_falls_below_local_deposition_for_small_masses():
    ratios = [sphere_s_value(m / 1.04) / _led_Gy_per_Bq_h(m / 1.04) for m in (0.01, 0.1, 1.0, 10.0)]
    assert ratios[0] < 0.95
    assert all(a < b for a, b in itertools.pairwise(ratios))


def test_sphere_s_value_agrees_with_convolution_of_a_voxelised_sphere():
    from LuDosimetryLib.dose.convolution import convolve_dose

    h = 2.0
    k = dose_kernel((h, h, h), photons=False)
    n = 31
    z, y, x = np.mgrid[:n, :n, :n] - n // 2
    inside = (x**2 + y**2 + z**2) * h * h <= 12.0**2
    dose = convolve_dose(inside.astype(np.float32), k)
    volume_mL = inside.sum() * h**3 * 1e-3
    expected = sphere_s_value(volume_mL, photons=False) * inside.sum()
    assert float(dose[inside].mean()) == pytest.approx(expected, rel=0.02)


# --- energy in a large uniform region -------------------------------------------------------------

def _gp(x, b, c, a, X, d):
    """ANSI/ANS-6.4.3 geometric-progression buildup factor (written out again, independently)."""
    K = c * x**a + d * (math.tanh(x / X - 2.0) - math.tanh(-2.0)) / (1.0 - math.tanh(-2.0))
    return 1.0 + (b - 1.0) * (K**x - 1.0) / (K - 1.0) if abs(K - 1.0) > 1e-9 else 1.0 + (b - 1.0) * x


def test_interior_of_large_uniform_sphere_receives_electron_plus_absorbed_photon_energy():
    h, R = 5.0, 100.0
    kernel = dose_kernel((h, h, h), radius_mm=150.0)
    n = 2 * int(R // h) + 3
    z, y, x = np.mgrid[:n, :n, :n] - n // 2
    inside = (x**2 + y**2 + z**2) * h * h <= R**2
    from LuDosimetryLib.dose.convolution import convolve_dose

    centre = float(convolve_dose(inside.astype(np.float32), kernel)[n // 2, n // 2, n // 2])

    # expected: electrons all absorbed; each photon line absorbs E·∫0^{μR} B e^{-x} dx / ∫0^∞ B e^{-x} dx
    lu = get_nuclide("Lu-177")
    att = photon_attenuation("soft")
    le = np.log(att.energies_keV)
    lines = list(lu.gamma_lines)
    xray = lu.photon_energy_per_decay_J / J_PER_KEV - sum(e * y for e, y in lines)
    lines.append((55.924, xray / 55.924))  # Hf Kα1 (mucoeff), as the photon data set states
    absorbed = 0.0
    for e, yld in lines:
        mu = math.exp(np.interp(math.log(e), le, np.log(att.mu_over_rho_cm2_per_g))) * att.density_g_per_mL / 10
        gp = att.gp_coefficients(e)
        f = quad(lambda t, gp=gp: _gp(t, *gp) * math.exp(-t), 0, mu * R, limit=200)[0]
        f /= quad(lambda t, gp=gp: _gp(t, *gp) * math.exp(-t), 0, 80, limit=400)[0]
        absorbed += e * yld * J_PER_KEV * f
    mass_kg = h**3 * 1e-3 * att.density_g_per_mL * KG_PER_G
    expected = (lu.electron_energy_per_decay_J + absorbed) * S_PER_H / mass_kg
    assert 0.05 < absorbed / lu.photon_energy_per_decay_J < 0.9
    assert centre == pytest.approx(expected, rel=0.01)


# --- bad input ------------------------------------------------------------------------------------

@pytest.mark.parametrize("size", [(1.0, 4.8, 4.8), (4.8, 4.8, 12.0), (float("nan"), 4.8, 4.8), (4.8, 4.8)])
def test_voxel_size_outside_validity_is_refused(size):
    with pytest.raises(InputError, match=r"voxel_size_mm: .*(validity|between 2 and 10 mm)"):
        dose_kernel(size)


def test_unknown_tissue_and_nuclide_without_tables_are_refused():
    with pytest.raises(InputError, match="tissue must be one of soft, bone"):
        dose_kernel((4.8, 4.8, 4.8), tissue="lung")
    with pytest.raises(InputError, match="no published voxel S-value tables for Ga-68"):
        dose_kernel((4.8, 4.8, 4.8), nuclide="Ga-68")


def test_sphere_volume_must_be_positive():
    with pytest.raises(InputError, match="volume_mL: sphere volume must be a positive"):
        sphere_s_value(-1.0)


@pytest.mark.parametrize("size", [3.0, 4.8, 6.0])
def test_table_energy_kernel_reproduces_the_published_tables_and_icrp107_sits_above_them(size):
    """``electron_energy="table"`` (``--kernel-energy table``) keeps the tables' own electron energy:
    its S(0,0,0) and face neighbours match the published Lanconelli 2012 values; the default
    ICRP-107 kernel is higher in the source voxel by about the energy ratio 147.9/138.2."""
    table = voxel_s_value_table(size, tissue="soft").s_values_mGy_per_MBq_s
    own = dose_kernel((size, size, size), electron_energy="table")
    icrp = dose_kernel((size, size, size))
    rel = _octant_mGy_per_MBq_s(own) / table - 1.0
    assert abs(rel[0, 0, 0]) < 0.01, f"S(0,0,0) off by {rel[0, 0, 0]:+.3%}"
    for face in ((1, 0, 0), (0, 1, 0), (0, 0, 1)):
        assert abs(rel[face]) < 0.05, f"S{face} off by {rel[face]:+.3%}"
    ratio = _octant_mGy_per_MBq_s(icrp)[0, 0, 0] / table[0, 0, 0]
    assert 1.04 < ratio < 1.08  # ≈ 147.92/138.2 on the electron-dominated source voxel
    assert own.electron_energy == "table" and icrp.electron_energy == "icrp107"
    assert "tables' own electron energy" in own.method and "ICRP-107 electron energy" in icrp.method
    with pytest.raises(InputError, match="electron_energy"):
        dose_kernel((size, size, size), electron_energy="mcnp")


def test_kernel_command_writes_the_chosen_electron_energy_in_the_sidecar(tmp_path):
    import json

    from LuDosimetryLib.cli import main

    assert main(["kernel", "--voxel-size", "4.8", "4.8", "4.8", "--no-photons", "--kernel-energy", "table",
                 "--out", str(tmp_path / "k.nii.gz")]) == 0
    meta = json.loads((tmp_path / "k.json").read_text())
    assert meta["electron_energy"] == "table" and "tables' own electron energy" in meta["method"]
