"""Reduced-protocol evaluator and fit plots."""

from __future__ import annotations

import math

import numpy as np
import pytest

from LuDosimetryLib.errors import InputError
from LuDosimetryLib.kinetics.fitting import fit_tac
from LuDosimetryLib.kinetics.models import mono_exponential
from LuDosimetryLib.kinetics.plots import plot_fits
from LuDosimetryLib.kinetics.priors import HalfLifePrior
from LuDosimetryLib.kinetics.reduced_protocol import (
    CohortTac,
    Scheme,
    evaluate_reduced_protocols,
    summarise_errors,
)

LN2 = math.log(2.0)
T = (5.0, 24.0, 48.0, 96.0, 192.0)


def _cohort():
    out = []
    for p, teff in enumerate((30.0, 40.0, 55.0)):
        m = mono_exponential(1e8, LN2 / teff)
        out.append(CohortTac(f"p{p}", "kidney_left", "organ", T, tuple(m.activity(np.array(T)))))
    return out


def test_noiseless_mono_cohort_gives_zero_error_for_two_point_and_known_hanscheid_error():
    schemes = (Scheme("two_point", (24.0, 96.0)), Scheme("hanscheid", (48.0,)), Scheme("madsen", (48.0,)))
    priors = {"kidney": HalfLifePrior("kidney", 40.0, 0.3)}
    rows = evaluate_reduced_protocols(_cohort(), schemes, priors=priors, reference_models=("mono",))
    by = {(r["patient"], r["scheme"]): r["rel_error"] for r in rows}
    for p, teff in enumerate((30.0, 40.0, 55.0)):
        assert by[(f"p{p}", "two_point@24h+96h")] == pytest.approx(0.0, abs=1e-6)
        x = LN2 * 48.0 / teff
        assert by[(f"p{p}", "hanscheid@48h")] == pytest.approx((2 / LN2) * x * math.exp(-x) - 1, abs=1e-6)
    assert by[("p1", "madsen@48h")] == pytest.approx(0.0, abs=1e-6)  # T_eff = prior median
    summary = {s["scheme"]: s for s in summarise_errors(rows)}
    assert summary["two_point@24h+96h"]["n"] == 3
    assert abs(summary["two_point@24h+96h"]["bias_pct"]) < 1e-4


def test_scheme_without_its_scan_in_the_tac_is_not_evaluable():
    coh = [CohortTac("p0", "kidney_left", "organ", (5.0, 24.0, 96.0, 192.0),
                     tuple(mono_exponential(1e8, LN2 / 40).activity(np.array([5.0, 24.0, 96.0, 192.0]))))]
    rows = evaluate_reduced_protocols(coh, (Scheme("hanscheid", (48.0,)),), priors={"kidney": HalfLifePrior(
        "kidney", 40.0, 0.3)}, reference_models=("mono",))
    assert math.isnan(rows[0]["rel_error"])
    assert summarise_errors(rows)[0]["not_evaluable"] == 1


def test_reduced_protocol_bad_input():
    with pytest.raises(InputError, match="empty cohort"):
        evaluate_reduced_protocols([])
    with pytest.raises(InputError, match="needs 2 time"):
        Scheme("two_point", (24.0,))


def test_fit_plots_are_written_as_png(tmp_path):
    t = np.array([5.0, 24.0, 96.0, 192.0])
    y = mono_exponential(1e8, LN2 / 40).activity(t) * np.array([1.02, 0.98, 1.01, 0.99])
    res = fit_tac(t, y, sigma_Bq=0.03 * y, region="kidney left/cortex")
    (path,) = plot_fits([res], tmp_path)
    assert path.name == "fit_kidney_left_cortex.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_fit_plots_drawn_on_one_figure_equal_separate_figures(tmp_path):
    """plot_fits redraws one figure: nothing of the previous region (error bars, y range, flags) remains."""
    from PIL import Image

    from LuDosimetryLib.kinetics.plots import plot_fit

    t = np.array([5.0, 24.0, 96.0, 192.0])
    big = mono_exponential(5e9, LN2 / 40).activity(t) * np.array([1.02, 0.98, 1.01, 0.99])
    small = mono_exponential(2e5, LN2 / 90).activity(t) * np.array([0.97, 1.03, 1.0, 0.99])
    first = fit_tac(t, big, sigma_Bq=0.03 * big, region="liver")
    second = fit_tac(t, small, region="lesion_1")  # no σ: no error bars
    paths = plot_fits([first, second], tmp_path / "together")
    alone = plot_fit(second, tmp_path / "alone.png")
    together = np.asarray(Image.open(paths[1]).convert("RGB"))
    assert together.shape == (400, 600, 3)
    np.testing.assert_array_equal(together, np.asarray(Image.open(alone).convert("RGB")))
    assert not np.array_equal(together, np.asarray(Image.open(paths[0]).convert("RGB")))
