"""LuDosimetryLib.dose.convolution and .led: FFT convolution against direct summation, LED physics, bad input."""

import json

import numpy as np
import pytest

from LuDosimetryLib.cli import main
from LuDosimetryLib.dose.convolution import convolve_dose, get_backend, padded_shape, tia_per_voxel
from LuDosimetryLib.dose.led import led_dose
from LuDosimetryLib.errors import InputError
from LuDosimetryLib.kernels import dose_kernel


def _direct_sum(tia, kernel_values):
    """Reference: D[p] = Σ_o K[o]·TIA[p − o] in float64, one shifted add per kernel offset."""
    tia = tia.astype(np.float64)
    k = kernel_values.astype(np.float64)
    c = [s // 2 for s in k.shape]
    n = tia.shape
    out = np.zeros(n)
    padded = np.zeros(tuple(a + 2 * b for a, b in zip(n, c)))
    padded[c[0]:c[0] + n[0], c[1]:c[1] + n[1], c[2]:c[2] + n[2]] = tia
    for o in np.argwhere(k != 0):
        dz, dy, dx = o - c  # D[p] += K[d]·TIA[p − d]
        out += k[tuple(o)] * padded[c[0] - dz:c[0] - dz + n[0], c[1] - dy:c[1] - dy + n[1],
                                    c[2] - dx:c[2] - dx + n[2]]
    return out


@pytest.mark.parametrize("spacing", [(4.8, 4.8, 4.8), (3.0, 4.0, 5.0)])
def test_fft_convolution_equals_direct_summation(spacing):
    rng = np.random.default_rng(7)
    tia = (rng.random((11, 13, 9)) ** 4 * 1e6).astype(np.float32)
    kernel = dose_kernel(spacing, radius_mm=20.0)
    dose = convolve_dose(tia, kernel)
    ref = _direct_sum(tia, kernel.values_Gy_per_Bq_h)
    assert dose.dtype == np.float32 and dose.shape == tia.shape
    assert np.max(np.abs(dose - ref)) / np.max(np.abs(ref)) < 1e-5


def test_single_source_voxel_reproduces_the_kernel_and_input_is_untouched():
    kernel = dose_kernel((4.8, 4.8, 4.8), radius_mm=20.0)
    tia = np.zeros((15, 15, 15), np.float32)
    tia[7, 7, 7] = 2.0e6
    before = tia.copy()
    dose = convolve_dose(tia, kernel)
    c = kernel.shape[0] // 2
    np.testing.assert_allclose(dose[7 - c:8 + c, 7 - c:8 + c, 7 - c:8 + c], 2.0e6 * kernel.values_Gy_per_Bq_h,
                               rtol=1e-4, atol=1e-6 * float(dose.max()))
    np.testing.assert_array_equal(tia, before)


def test_activity_at_the_edge_does_not_wrap_around():
    kernel = dose_kernel((4.8, 4.8, 4.8), radius_mm=30.0)
    tia = np.zeros((20, 20, 20), np.float32)
    tia[0, 0, 0] = 1.0e6
    dose = convolve_dose(tia, kernel)
    assert dose[-1, -1, -1] == 0.0 or abs(dose[-1, -1, -1]) < 1e-6 * dose[0, 0, 0]
    assert all(p >= 20 + kernel.shape[0] // 2 for p in padded_shape(tia.shape, kernel.shape))


def test_led_gives_electron_energy_per_mass():
    """physics.md: 1 MBq·h in 1 g deposits 8.53196e-5 J of electrons → 0.0853196 Gy."""
    dose = led_dose(np.full((2, 2, 2), 1.0e6, np.float32), (10.0, 10.0, 10.0), density_g_per_mL=1.0)
    np.testing.assert_allclose(dose, 8.53196e-5 / 1e-3, rtol=1e-5)
    with_photons = led_dose(np.full((1, 1, 1), 1.0e6, np.float32), (10.0, 10.0, 10.0), density_g_per_mL=1.0,
                            photons=True)
    assert with_photons[0, 0, 0] == pytest.approx(1.055635e-4 / 1e-3, rel=1e-5)  # all radiations, physics.md


def test_large_uniform_region_kernel_dose_equals_led_without_photons():
    kernel = dose_kernel((4.0, 4.0, 4.0), photons=False)
    tia = np.full((12, 12, 12), 3.0e5, np.float32)
    dose = convolve_dose(tia, kernel)
    led = led_dose(tia, (4.0, 4.0, 4.0))
    assert dose[6, 6, 6] == pytest.approx(led[6, 6, 6], rel=1e-3)
    assert dose[0, 0, 0] < led[0, 0, 0]  # electrons leave through the grid's edge


def test_concentration_is_multiplied_by_voxel_volume():
    per_voxel = tia_per_voxel(np.full((2, 2, 2), 10.0), (2.0, 5.0, 10.0))
    np.testing.assert_allclose(per_voxel, 10.0 * 0.1)


@pytest.mark.parametrize("bad, message", [(np.nan, "contains NaN"), (-1.0, "contains negative values"),
                                          (np.inf, "contains infinite values")])
def test_bad_tia_is_refused(bad, message):
    kernel = dose_kernel((4.8, 4.8, 4.8), photons=False)
    tia = np.ones((5, 5, 5), np.float32)
    tia[2, 3, 1] = bad
    with pytest.raises(InputError, match=f"tia_Bq_h_per_voxel: {message}"):
        convolve_dose(tia, kernel)
    with pytest.raises(InputError, match=f"tia_Bq_h_per_voxel: {message}"):
        led_dose(tia, (4.8, 4.8, 4.8))


def test_tia_must_be_three_dimensional_and_backend_known():
    kernel = dose_kernel((4.8, 4.8, 4.8), photons=False)
    with pytest.raises(InputError, match=r"expected a 3-D array \[k, j, i\], got shape \(4, 4\)"):
        convolve_dose(np.ones((4, 4), np.float32), kernel)
    with pytest.raises(InputError, match="unknown array backend 'jax'"):
        get_backend("jax")


# --- ludosimetry kernel ---------------------------------------------------------------------------

def test_cli_kernel_writes_nifti_with_units_sidecar_and_refuses_overwrite(tmp_path, capsys):
    import SimpleITK as sitk

    out = tmp_path / "k.nii.gz"
    args = ["kernel", "--nuclide", "Lu-177", "--voxel-size", "4.8", "4.8", "3.0", "--radius-mm", "30",
            "--out", str(out)]
    assert main(args) == 0
    img = sitk.ReadImage(str(out))
    assert img.GetSpacing() == pytest.approx((4.8, 4.8, 3.0))
    side = json.loads((tmp_path / "k.json").read_text())
    assert side["units"] == "Gy/(Bq*h)" and side["includes_photons"] is True
    arr = sitk.GetArrayFromImage(img)
    assert arr.shape == dose_kernel((4.8, 4.8, 3.0), radius_mm=30).shape
    assert main(args) == 2
    assert "exists; use --force" in capsys.readouterr().err
    assert main([*args, "--force"]) == 0


def test_cli_kernel_text_table_states_both_units(tmp_path):
    out = tmp_path / "k.txt"
    assert main(["kernel", "--voxel-size", "4.8", "4.8", "4.8", "--no-photons", "--out", str(out)]) == 0
    lines = out.read_text().splitlines()
    assert any("Gy/(Bq*h)" in ln for ln in lines if ln.startswith("#"))
    header = next(ln for ln in lines if not ln.startswith("#"))
    assert header.split("\t") == ["i", "j", "k", "S_Gy_per_Bq_h", "S_mGy_per_MBq_s"]
    first = lines[lines.index(header) + 1].split("\t")
    assert float(first[3]) / float(first[4]) == pytest.approx(3.6e-6, rel=1e-5)


def test_cli_kernel_refuses_voxel_size_outside_validity(tmp_path, capsys):
    assert main(["kernel", "--voxel-size", "1", "4.8", "4.8", "--out", str(tmp_path / "k.txt")]) == 2
    assert "outside the kernel method's validity" in capsys.readouterr().err


def test_backend_seam_routes_every_transform_through_the_backend():
    """Another array library plugs in as a Backend (xp + fft); here a counting wrapper of scipy.fft."""
    import types

    import scipy.fft

    from LuDosimetryLib.dose.convolution import Backend

    calls = []

    def rec(name):
        def f(*a, **k):
            calls.append(name)
            return getattr(scipy.fft, name)(*a, **k)
        return f

    fft = types.SimpleNamespace(rfftn=rec("rfftn"), irfftn=rec("irfftn"))
    be = Backend("counting", np, fft, threaded_fft=False)
    kernel = dose_kernel((4.8, 4.8, 4.8), radius_mm=20.0)
    tia = np.random.default_rng(1).random((9, 8, 7)).astype(np.float32)
    dose = convolve_dose(tia, kernel, backend=be)
    np.testing.assert_allclose(dose, convolve_dose(tia, kernel), rtol=1e-5, atol=1e-6 * float(dose.max()))
    assert calls == ["rfftn", "rfftn", "irfftn"]  # kernel spectrum, image, inverse
