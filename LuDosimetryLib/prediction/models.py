"""Prediction models chosen by name: ``population``, ``kinetic``, ``calibrated`` (docs/prediction.md).

- ``population``: the late 68Ga uptake (partial-volume corrected) anchors the uptake–washout curve;
  uptake and washout rates from the population table.
- ``kinetic``: the uptake rate fitted on the patient's own dynamic frames (regions the dynamic
  acquisition covers, fully or partly), and the washout scaled with it,
  β_w = β_w,pop · (β_u,fit / β_u,pop)^γ ("uptake-rate–scaled retention", γ =
  ``retention_exponent``); regions outside the dynamic field of view keep the population rates
  (flag ``kinetic_population_rates``). Assumptions: docs/prediction.md.
- ``calibrated``: per calibration key (organ without side, lesion type), an ordinary least-squares
  regression of ln(measured SPECT dose per GBq) on PET features — ln(population-model dose per
  GBq) (late uptake, volume, mass) and ln(β_u,fit / β_u,pop) (kinetics) where every training row
  has it — fitted on a cohort with both PET and SPECT, saved as a versioned JSON file with its
  training cohort summary (:class:`CalibratedModel`), applied with a 95 % prediction interval.

Region-level functions take *feature rows* (dicts with the columns of :data:`FEATURE_COLUMNS`), so
the same code serves one imaged patient (``pet_features.csv``), a cohort table and the cheap
synthetic path (:func:`LuDosimetryLib.phantom.cohort_kinetics.synthetic_feature_table`).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError
from .population import PopulationEntry, PopulationTable
from .uptake import anchor_uptake_fraction, lu177_curve

__all__ = ["MODELS", "DEFAULT_RETENTION_EXPONENT", "kinetic_rates", "tia_per_GBq_from_features",
           "model_dose_per_GBq", "calibration_key", "lesion_type", "CalibratedOrgan", "CalibratedModel",
           "fit_calibrated_model", "read_calibrated_model", "cohort_lesion_table", "FEATURE_COLUMNS",
           "CALIBRATION_FEATURES", "MODEL_FORMAT", "MODEL_VERSION"]

MODELS = ("population", "kinetic", "calibrated")
#: γ of the kinetic model (assumed; the synthetic cohort's generator value, not a published one).
DEFAULT_RETENTION_EXPONENT = 0.6
MODEL_FORMAT = "LuDosimetry calibrated prediction model"
MODEL_VERSION = 1
#: Features of the calibrated regression, in order (the second only where every training row has it).
CALIBRATION_FEATURES = ("log_population_dose", "log_uptake_rate_ratio")
#: Suffix of a key's regression that uses the kinetic feature (regions the dynamic PET covers).
DYNAMIC_SUFFIX = "|dynamic"
#: Columns of a feature row (pet_features.csv adds the Patlak and 2TC features and their uncertainties).
FEATURE_COLUMNS = ("patient", "region", "kind", "group", "dynamic_fov", "late_fraction_ga", "t_ref_h",
                   "uptake_rate_fit_per_h", "volume_mL", "mass_g", "dose_per_tia_Gy_per_Bq_h")


def lesion_type(region: str) -> str:
    """``bone``, ``node``, ``visceral`` from a lesion name (``lesion_bone_1``), else ``""``."""
    m = re.search(r"(bone|node|visceral)", region)
    return m.group(1) if m else ""


def calibration_key(region: str, kind: str) -> str:
    """Organ name without side and ``_cortex`` (``kidney_left``, ``kidney_cortex_left`` → ``kidney``), or
    ``lesion_<type>`` / ``lesion``."""
    if kind == "lesion":
        t = lesion_type(region)
        return f"lesion_{t}" if t else "lesion"
    return re.sub(r"_cortex$", "", re.sub(r"_(left|right)$", "", region))


def _number(v) -> float | None:
    if v is None or v == "":
        return None
    x = float(v)
    return x if math.isfinite(x) else None


def kinetic_rates(entry: PopulationEntry, uptake_rate_fit_per_h: float | None, *,
                  exponent: float = DEFAULT_RETENTION_EXPONENT) -> tuple[float, float, str]:
    """(β_w, β_u, source) of the kinetic model, biological rates (h⁻¹).

    β_u = the fitted rate, β_w = β_w,pop (β_u,fit / β_u,pop)^γ; without a fit, the population rates
    (source ``population``).
    """
    bw, bu = entry.biological_washout_rate_per_h, entry.biological_uptake_rate_per_h
    if uptake_rate_fit_per_h is None or not (uptake_rate_fit_per_h > 0):
        return bw, bu, "population"
    return bw * (uptake_rate_fit_per_h / bu) ** exponent, float(uptake_rate_fit_per_h), "pet_fit"


def tia_per_GBq_from_features(row: Mapping, population: PopulationTable, *, model: str = "population",
                              exponent: float = DEFAULT_RETENTION_EXPONENT, scale: float = 1.0) -> float:
    """Predicted 177Lu TIA (Bq·h per GBq) of a feature row under ``population`` or ``kinetic``.

    U is anchored at the late 68Ga uptake (``late_fraction_ga`` at ``t_ref_h``), TIA = ∫ of
    :func:`~.uptake.lu177_curve` (the same functions as :func:`~.predict.predict_regions`).
    """
    entry = population.lookup(str(row["region"]), kind=str(row.get("kind") or "organ"),
                              group=str(row.get("group") or ""))
    bw, bu = entry.biological_washout_rate_per_h, entry.biological_uptake_rate_per_h
    if model == "kinetic":
        bw, bu, _ = kinetic_rates(entry, _number(row.get("uptake_rate_fit_per_h")), exponent=exponent)
    elif model != "population":
        raise InputError(f"must be 'population' or 'kinetic' here, got {model!r}", source="model")
    if bu <= bw:
        bu = bw + entry.biological_uptake_rate_per_h
    u = anchor_uptake_fraction(float(row["late_fraction_ga"]), float(row["t_ref_h"]), washout_rate_per_h=bw,
                               uptake_rate_per_h=bu)
    return lu177_curve(u * scale, washout_rate_per_h=bw, uptake_rate_per_h=bu, injected_activity_Bq=1e9).integral()


def model_dose_per_GBq(row: Mapping, population: PopulationTable, *, model: str,
                       exponent: float = DEFAULT_RETENTION_EXPONENT) -> float:
    """Dose per GBq (Gy/GBq) = predicted TIA per GBq × the row's ``dose_per_tia_Gy_per_Bq_h``.

    ``dose_per_tia_Gy_per_Bq_h`` is the patient's own dose engine factor (kernel dose of its
    predicted TIA map per Bq·h, :mod:`.dose_engine`), or the electron local-deposition S of the
    region mass in the cheap synthetic path.
    """
    return tia_per_GBq_from_features(row, population, model=model, exponent=exponent) * \
        float(row["dose_per_tia_Gy_per_Bq_h"])


def cohort_lesion_table(base: PopulationTable, rows: Sequence[Mapping], *, source: str = "cohort") -> PopulationTable:
    """``base`` plus one row per lesion type: median measured effective half-life of ``rows``' lesions.

    ``rows`` are training rows (never the predicted patient's) with ``measured_effective_half_life_h``;
    the uptake half-life is that of ``base``'s ``default_lesion``. Status ``cohort``.
    """
    by: dict[str, list[tuple[str, float]]] = {}
    for r in rows:
        t = _number(r.get("measured_effective_half_life_h"))
        if r.get("kind") == "lesion" and t is not None and t > 0:
            by.setdefault(calibration_key(str(r["region"]), "lesion"), []).append((str(r["patient"]), t))
    default = base.lookup("lesion", kind="lesion")
    new = []
    for key, vals in sorted(by.items()):
        t = float(np.median([v for _, v in vals]))
        npat = len({p for p, _ in vals})
        new.append(PopulationEntry(key, t, default.uptake_half_life_h, "cohort",
                                   f"median of {len(vals)} measured lesion effective half-lives, {npat} patients "
                                   f"({source}; the predicted patient excluded)"))
    keep = tuple(e for e in base.entries if e.key not in {n.key for n in new})
    return PopulationTable(keep + tuple(new), f"{base.origin} + {source} lesion half-lives")


@dataclass(frozen=True)
class CalibratedOrgan:
    """OLS fit of one calibration key: y = ln(measured dose per GBq) = X β + ε."""

    key: str
    features: tuple[str, ...]
    coefficients: tuple[float, ...]
    xtx_inverse: tuple[tuple[float, ...], ...]
    residual_sd: float
    n: int
    n_patients: int
    summary: dict = field(default_factory=dict, compare=False)

    @property
    def dof(self) -> int:
        return self.n - len(self.coefficients)

    def predict(self, x: Sequence[float], *, level: float = 0.95) -> tuple[float, float, float, float]:
        """(dose per GBq, 95 % prediction interval low, high, relative standard uncertainty) for features ``x``."""
        from scipy import stats

        x0 = np.array([1.0, *x])
        y = float(x0 @ np.array(self.coefficients))
        var = self.residual_sd ** 2 * (1.0 + float(x0 @ np.array(self.xtx_inverse) @ x0))
        t = float(stats.t.ppf(0.5 + level / 2, self.dof))
        sd = math.sqrt(max(var, 0.0))
        return math.exp(y), math.exp(y - t * sd), math.exp(y + t * sd), sd


def _design(row: Mapping, population: PopulationTable, features: Sequence[str], exponent: float) -> list[float] | None:
    out = []
    for f in features:
        if f == "log_population_dose":
            out.append(math.log(model_dose_per_GBq(row, population, model="population", exponent=exponent)))
        elif f == "log_uptake_rate_ratio":
            fit = _number(row.get("uptake_rate_fit_per_h"))
            if fit is None or fit <= 0:
                return None
            entry = population.lookup(str(row["region"]), kind=str(row.get("kind") or "organ"),
                                      group=str(row.get("group") or ""))
            out.append(math.log(fit / entry.biological_uptake_rate_per_h))
        else:
            raise InputError(f"unknown calibration feature {f!r} (known: {', '.join(CALIBRATION_FEATURES)})",
                             source="calibrated model")
    return out


@dataclass(frozen=True)
class CalibratedModel:
    """Per-key regressions, the population table they used, and the training cohort summary."""

    organs: dict
    population_origin: str
    retention_exponent: float
    training: dict
    version: int = MODEL_VERSION

    def organ(self, region: str, kind: str, *, dynamic: bool = False) -> CalibratedOrgan | None:
        key = calibration_key(region, kind)
        return (self.organs.get(key + DYNAMIC_SUFFIX) if dynamic else None) or self.organs.get(key)

    def predict(self, row: Mapping, population: PopulationTable) -> dict | None:
        """Dose per GBq with its 95 % prediction interval for a feature row; None without a fit for its key.

        A row with a fitted uptake rate uses the key's kinetic regression (``<key>|dynamic``) when
        there is one, else the key's regression on the population dose alone.
        """
        has_fit = _design(row, population, CALIBRATION_FEATURES[1:], self.retention_exponent) is not None
        org = self.organ(str(row["region"]), str(row.get("kind") or "organ"), dynamic=has_fit)
        if org is None:
            return None
        x = _design(row, population, org.features, self.retention_exponent)
        if x is None:
            return None
        d, lo, hi, sd = org.predict(x)
        return {"dose_Gy_per_GBq": d, "pi95_low_Gy_per_GBq": lo, "pi95_high_Gy_per_GBq": hi,
                "log_sd": sd, "calibration_key": org.key, "features": list(org.features)}

    def to_dict(self) -> dict:
        return {"format": MODEL_FORMAT, "version": self.version, "population_table": self.population_origin,
                "retention_exponent": self.retention_exponent, "training": self.training,
                "organs": {k: {"features": list(o.features), "coefficients": list(o.coefficients),
                               "xtx_inverse": [list(r) for r in o.xtx_inverse], "residual_sd": o.residual_sd,
                               "n": o.n, "n_patients": o.n_patients, "summary": o.summary}
                           for k, o in self.organs.items()}}

    def write(self, path: str | Path) -> Path:
        """Write the model as JSON (atomically)."""
        from ..results import write_json

        return write_json(path, self.to_dict())


def fit_calibrated_model(rows: Sequence[Mapping], population: PopulationTable, *,
                         exponent: float = DEFAULT_RETENTION_EXPONENT, min_rows: int = 4,
                         source: str = "") -> CalibratedModel:
    """Fit the per-key regressions on training ``rows`` (feature rows with ``measured_dose_Gy_per_GBq``).

    Each key gets a regression on ln(population dose) over all its rows and, over the rows with a
    fitted uptake rate (regions in the dynamic field of view), one on ln(population dose) and
    ln(uptake rate ratio), stored as ``<key>|dynamic``. A regression needs ≥ ``min_rows`` rows and
    ≥ 2 residual degrees of freedom; regions of a key without one are not calibrated. Rows of
    composite groups (non-empty ``leaves``) are left out: a group's calibrated dose is the sum of its
    leaves' implied TIAs through the dose engine.
    """
    by: dict[str, list[Mapping]] = {}
    for r in rows:
        if r.get("leaves"):  # composite groups are sums of leaves, not fitted themselves
            continue
        y = _number(r.get("measured_dose_Gy_per_GBq"))
        if y is None or y <= 0:
            continue
        by.setdefault(calibration_key(str(r["region"]), str(r.get("kind") or "organ")), []).append(r)
    organs = {}
    for key, all_rs in sorted(by.items()):
        with_fit = [r for r in all_rs if _design(r, population, CALIBRATION_FEATURES[1:], exponent) is not None]
        for name, feats, rs in ((key, CALIBRATION_FEATURES[:1], all_rs),
                                (f"{key}{DYNAMIC_SUFFIX}", CALIBRATION_FEATURES, with_fit)):
            if len(rs) < max(min_rows, len(feats) + 3):
                continue
            organs[name] = _fit_key(name, feats, rs, population, exponent)
    patients = sorted({str(r["patient"]) for r in rows})
    training = {"patients": patients, "n_patients": len(patients), "n_rows": len(rows), "source": source}
    return CalibratedModel(organs, population.origin, float(exponent), training)


def _fit_key(name: str, feats: tuple[str, ...], rs: Sequence[Mapping], population: PopulationTable,
             exponent: float) -> CalibratedOrgan:
    xs = [_design(r, population, feats, exponent) for r in rs]
    X = np.column_stack([np.ones(len(rs)), np.array(xs, dtype=float)])
    y = np.log([float(r["measured_dose_Gy_per_GBq"]) for r in rs])
    beta, *_ = np.linalg.lstsq(X, y, rcond=None)
    resid = y - X @ beta
    dof = len(rs) - X.shape[1]
    s = float(np.sqrt(resid @ resid / dof))
    inv = np.linalg.pinv(X.T @ X)
    meas = np.exp(y)
    return CalibratedOrgan(
        name, feats, tuple(float(b) for b in beta), tuple(tuple(float(v) for v in r) for r in inv), s, len(rs),
        len({str(r["patient"]) for r in rs}),
        {"measured_dose_Gy_per_GBq": {"median": float(np.median(meas)), "min": float(meas.min()),
                                      "max": float(meas.max())},
         "regions": sorted({str(r["region"]) for r in rs})})


def read_calibrated_model(path: str | Path) -> CalibratedModel:
    """Read a model file written by :meth:`CalibratedModel.write`; the format and version are checked."""
    p = Path(path)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read the calibrated model: {exc}", source=str(p)) from None
    if doc.get("format") != MODEL_FORMAT:
        raise InputError(f"not a calibrated prediction model (format {doc.get('format')!r}, expected "
                         f"{MODEL_FORMAT!r})", source=str(p))
    if doc.get("version") != MODEL_VERSION:
        raise InputError(f"model version {doc.get('version')!r} is not supported (this library reads version "
                         f"{MODEL_VERSION})", source=str(p))
    organs = {}
    for key, o in doc["organs"].items():
        feats = tuple(o["features"])
        if len(o["coefficients"]) != len(feats) + 1:
            raise InputError(f"organ {key}: {len(o['coefficients'])} coefficients for {len(feats)} features",
                             source=str(p))
        organs[key] = CalibratedOrgan(key, feats, tuple(o["coefficients"]), tuple(tuple(r) for r in o["xtx_inverse"]),
                                      float(o["residual_sd"]), int(o["n"]), int(o["n_patients"]), o.get("summary", {}))
    return CalibratedModel(organs, doc.get("population_table", ""), float(doc.get("retention_exponent",
                                                                                  DEFAULT_RETENTION_EXPONENT)),
                           doc.get("training", {}), int(doc["version"]))
