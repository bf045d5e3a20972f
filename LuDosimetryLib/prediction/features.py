"""Kinetic features of every region from the dynamic PET frames that cover it (``pet_features.csv``).

Per region: the dynamic field of view (``covered``, ``partly``, ``not`` with the fraction of its
volume), the late 68Ga uptake (fraction of the injected activity, partial-volume corrected) and SUV
at the static time, the biological uptake rate fitted on the dynamic frames, and — against the
image-derived input function (the decay-corrected mean of a blood-pool region in the dynamic field
of view) — Patlak K_i and intercept with the standard error of K_i and r², and the irreversible
two-tissue model K_1, k_2, k_3, v_B, K_i with asymptotic standard errors and the relative RMS
residual. Rows are feature rows of :mod:`.models` (the calibrated model and the cohort validation
read them).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from ..errors import InputError
from .decay import BiologicalTac
from .pet_kinetics import fit_two_tissue_irreversible, patlak
from .predict import RegionPrediction

__all__ = ["INPUT_REGION_CANDIDATES", "default_input_region", "region_feature_rows", "FEATURE_CSV_COLUMNS"]

#: Blood-pool regions looked for, in order, when no input-function region is named.
INPUT_REGION_CANDIDATES = ("aorta", "left_ventricle", "blood_pool", "remainder")

FEATURE_CSV_COLUMNS = (
    "region", "kind", "group", "dynamic_fov", "dynamic_fov_fraction", "static_fov_fraction", "n_dynamic_frames",
    "late_fraction_ga", "t_ref_h", "suv_mean", "uptake_rate_fit_per_h", "volume_mL", "mass_g",
    "input_region", "patlak_ki_per_min", "patlak_ki_se_per_min", "patlak_intercept", "patlak_r_squared",
    "patlak_n_points", "tc2_K1_per_min", "tc2_K1_se_per_min", "tc2_k2_per_min", "tc2_k2_se_per_min",
    "tc2_k3_per_min", "tc2_k3_se_per_min", "tc2_blood_fraction", "tc2_blood_fraction_se", "tc2_ki_per_min",
    "tc2_rel_rmse", "tc2_converged", "tia_Bq_h_per_GBq", "dose_Gy_per_GBq", "dose_per_tia_Gy_per_Bq_h",
    "prediction_model", "leaves", "flags")


def default_input_region(names: Sequence[str]) -> str | None:
    """First of :data:`INPUT_REGION_CANDIDATES` among ``names``."""
    return next((c for c in INPUT_REGION_CANDIDATES if c in names), None)


def region_feature_rows(bios: Sequence[BiologicalTac], predictions: Sequence[RegionPrediction], fov: Mapping,
                        *, idif: BiologicalTac | None = None, input_region: str | None = None,
                        t_star_h: float = 20.0 / 60.0, body_mass_kg: float | None = None,
                        warn: Callable[..., None] | None = None) -> list[dict]:
    """One feature row per predicted leaf region (module docstring).

    Parameters
    ----------
    bios : sequence of BiologicalTac
        Region TACs (dynamic and static frames), biological (fraction of injected per mL).
    predictions : sequence of RegionPrediction
    fov : mapping
        Region → :class:`~.regions.RegionFov`.
    idif : BiologicalTac, optional
        Input function (its dynamic frames); without it no Patlak or 2TC features.
    body_mass_kg : float, optional
        SUV = late fraction per mL × body mass (g), i.e. concentration at injection over activity per gram.
    """
    by_bio = {b.region: b for b in bios}
    rows = []
    for p in predictions:
        if p.population_key == "leaves":
            continue
        f = fov.get(p.region)
        b = by_bio.get(p.region)
        row: dict = {"region": p.region, "kind": p.kind, "group": p.group,
                     "dynamic_fov": getattr(f, "dynamic_coverage", "") or "not",
                     "dynamic_fov_fraction": getattr(f, "dynamic_fraction", None),
                     "static_fov_fraction": getattr(f, "static_fraction", None),
                     "late_fraction_ga": p.late_fraction_ga, "t_ref_h": p.t_ref_h,
                     "uptake_rate_fit_per_h": p.uptake_rate_fit_per_h if np.isfinite(p.uptake_rate_fit_per_h)
                     else None, "volume_mL": p.volume_mL, "mass_g": p.mass_g,
                     "suv_mean": p.late_fraction_ga / p.volume_mL * body_mass_kg * 1000.0 if body_mass_kg else None,
                     "input_region": input_region, "flags": ";".join(p.flags)}
        dyn = np.array([s == "dynamic" for s in b.frame_source]) if b is not None else np.zeros(0, bool)
        row["n_dynamic_frames"] = int(dyn.sum())
        if idif is not None and b is not None and dyn.sum() >= 3 and p.region != input_region:
            try:
                res = patlak(b.time_h[dyn], b.fraction_per_mL[dyn], idif.fraction_per_mL, t_star_h=t_star_h)
                row.update(patlak_ki_per_min=res.ki_per_h / 60.0, patlak_ki_se_per_min=res.ki_standard_error_per_h / 60,
                           patlak_intercept=res.intercept, patlak_r_squared=res.r_squared,
                           patlak_n_points=res.n_points)
            except InputError as exc:
                if warn is not None:
                    warn(f"Patlak not computed: {exc.reason}", source=p.region)
            if dyn.sum() >= 5 and b.start_h is not None:
                fit = fit_two_tissue_irreversible(b.start_h[dyn], b.duration_h[dyn], b.fraction_per_mL[dyn],
                                                  idif.fraction_per_mL)
                se = fit.standard_errors
                row.update(tc2_K1_per_min=fit.K1_per_h / 60.0, tc2_K1_se_per_min=se[0] / 60.0,
                           tc2_k2_per_min=fit.k2_per_h / 60.0, tc2_k2_se_per_min=se[1] / 60.0,
                           tc2_k3_per_min=fit.k3_per_h / 60.0, tc2_k3_se_per_min=se[2] / 60.0,
                           tc2_blood_fraction=fit.blood_fraction, tc2_blood_fraction_se=se[3],
                           tc2_ki_per_min=fit.ki_per_h / 60.0, tc2_rel_rmse=fit.rel_rmse,
                           tc2_converged=fit.converged)
        rows.append(row)
    return rows
