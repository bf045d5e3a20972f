"""Model-misspecification bias of each TIA model at the protocol's four times (docs/kinetics.md).

Noise-free samples at 5, 24, 96 and 192 h p.i. of realistic 177Lu-PSMA curves (sums of
exponentials with effective rates, physical decay included; see CURVES) are fitted with each
model; the table gives (TIA_model / TIA_true − 1) in %. Noise-free, so the numbers are pure
model (mis)specification and extrapolation bias, not noise.

Run: ``python bench/kinetics_bias_table.py`` (prints a Markdown table; ~10 s).
"""

from __future__ import annotations

import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from LuDosimetryLib.kinetics.fitting import fit_tac
from LuDosimetryLib.kinetics.models import SumOfExponentials
from LuDosimetryLib.kinetics.priors import fit_map, load_priors, prior_for
from LuDosimetryLib.kinetics.stp import single_time_point

LN2 = math.log(2.0)
TIMES_H = np.array([5.0, 24.0, 96.0, 192.0])


def uw(teff_w: float, t_up: float) -> SumOfExponentials:
    return SumOfExponentials((1.0, -1.0), (LN2 / teff_w, LN2 / t_up))


def tri(f_fast: float, t_fast: float, t_slow: float, t_up: float) -> SumOfExponentials:
    """A(0) = 0; a fraction f_fast of the washout amplitude leaves with T_fast, the rest with T_slow."""
    a1, a2 = 1.0 - f_fast, f_fast
    return SumOfExponentials((a1, a2, -(a1 + a2)), (LN2 / t_slow, LN2 / t_fast, LN2 / t_up))


#: name, kind (for the prior), curve, description
CURVES = (
    ("kidney_left", "organ", uw(35.5, 1.0), "uptake 1 h, T_eff 35.5 h"),
    ("kidney_right", "organ", tri(0.5, 6.0, 40.0, 0.5), "uptake 0.5 h, 50 % at 6 h, 50 % at 40 h"),
    ("parotid", "organ", uw(42.2, 2.0), "uptake 2 h, T_eff 42.2 h"),
    ("liver", "organ", tri(0.6, 3.0, 23.0, 0.3), "uptake 0.3 h, 60 % at 3 h, 40 % at 23 h"),
    ("red_marrow", "organ", tri(0.8, 2.0, 32.0, 0.2), "blood-like: 80 % at 2 h, 20 % at 32 h"),
    ("lesion_fast", "lesion", uw(60.0, 4.0), "uptake 4 h, T_eff 60 h"),
    ("lesion_slow", "lesion", uw(110.0, 15.0), "uptake 15 h, T_eff 110 h"),
)

MODELS = (
    ("mono", dict(models=("mono",))),
    ("uw fixed 1 h", dict(models=("uptake_washout_fixed",), uptake_half_life_h=1.0)),
    ("uw (k=3, dof 1)", dict(models=("uptake_washout",))),
    ("auto (AICc)", dict(models=("auto",))),
    ("trapezoid, physical tail", dict(models=("trapezoid",))),
    ("trapezoid, clearance tail", dict(models=("trapezoid",), tail="clearance")),
)


def main() -> int:
    priors = load_priors()
    cols = [m for m, _ in MODELS] + ["prior MAP (24–192 h)", "Hänscheid 96 h", "prior STP 96 h"]
    print("| curve | truth | " + " | ".join(cols) + " |")
    print("|---|---|" + "---:|" * len(cols))
    for name, kind, curve, desc in CURVES:
        truth = curve.integral()
        y = np.asarray(curve.activity(TIMES_H)) * 1e8
        truth *= 1e8
        cells = []
        for _, kw in MODELS:
            r = fit_tac(TIMES_H, y, interval="none", **kw)
            cells.append(f"{100 * (r.tia_Bq_h / truth - 1):+.1f}")
        pr = prior_for(name, kind=kind, table=priors)
        r = fit_map(TIMES_H[1:], y[1:], pr, n_samples=2000)
        cells.append(f"{100 * (r.tia_Bq_h / truth - 1):+.1f}")
        i96 = 2
        for m in ("hanscheid", "prior"):
            r = single_time_point(TIMES_H[i96], y[i96], method=m, prior=pr)
            cells.append(f"{100 * (r.tia_Bq_h / truth - 1):+.1f}")
        print(f"| {name} | {desc} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
