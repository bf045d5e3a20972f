"""Radiobiology: biologically effective dose (BED), EQD2 and EUBED for 177Lu dose rates.

Linear-quadratic model with incomplete repair during a continuously decaying dose rate
(Dale 1985; Lea–Catcheside dose-protraction factor G). For a dose rate Ḋ(t) (Gy/h, t ≥ 0, h
post injection) and mono-exponential repair with rate μ = ln 2 / T_rep (h⁻¹)::

    D   = ∫₀^∞ Ḋ(t) dt
    G   = (2 / D²) ∫₀^∞ Ḋ(t) ∫₀^t Ḋ(w) e^(−μ (t − w)) dw dt
    BED = D · (1 + G · D / (α/β))
    EQD2 = BED / (1 + 2 Gy / (α/β))

For a sum of exponentials Ḋ(t) = Σᵢ aᵢ e^(−bᵢ t) (aᵢ in Gy/h, may be negative for an uptake
phase; bᵢ > 0 effective rates including physical decay, h⁻¹) the integrals are analytic::

    D = Σᵢ aᵢ / bᵢ,     G = (2 / D²) Σᵢ Σⱼ aᵢ aⱼ / ((bᵢ + bⱼ)(bᵢ + μ))

(inner integral for term j: aⱼ (e^(−bⱼ t) − e^(−μ t)) / (μ − bⱼ); times aᵢ e^(−bᵢ t) and
integrated: aᵢ aⱼ / (μ − bⱼ) · (1/(bᵢ+bⱼ) − 1/(bᵢ+μ)) = aᵢ aⱼ / ((bᵢ+bⱼ)(bᵢ+μ))). A
mono-exponential gives G = λ / (λ + μ). G is dimensionless and does not change when the dose
rate is scaled: it depends on the shape of the curve, not on the activity.

Tissue parameters come from the one reference data set (``data/lu177.json``, block
``radiobiology``, read through :func:`LuDosimetryLib.nuclides.load_reference_data`); each keeps
its source status. Kidney α/β = 2.6 Gy and T_rep = 2.8 h are **unverified** there; results carry
that status and a warning. No sourced salivary-gland (or lacrimal) value exists: α/β and T_rep
are required user inputs for those tissues.

Cycles separated by much more than T_rep add: BED_total = Σ BED_cycle (:func:`total_bed`).

References
----------
Dale RG. The application of the linear-quadratic dose-effect equation to fractionated and
protracted radiotherapy. Br J Radiol 1985;58:515–528. doi:10.1259/0007-1285-58-690-515
O'Donoghue JA. Implications of nonuniform tumor doses for radioimmunotherapy. J Nucl Med
1999;40:1337–1341 (equivalent uniform dose, here applied to BED: EUBED).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.special import logsumexp

from .errors import InputError
from .kinetics.models import KineticModel
from .nuclides import get_nuclide, load_reference_data

__all__ = [
    "TissueParameters", "tissue_parameters", "SALIVARY_TISSUES", "BedResult",
    "dose_rate_terms", "g_factor_exponential", "g_factor_sampled", "g_factor_numerical",
    "g_factor_mono_exponential", "bed_Gy", "eqd2_Gy", "bed_from_model", "bed_from_terms",
    "eubed_Gy", "total_bed", "CumulativeBed", "parameters_table", "add_report_section",
]

#: Tissues with no sourced α/β or T_rep: both are required user inputs.
SALIVARY_TISSUES = ("salivary_glands", "parotid", "submandibular", "lacrimal")
#: Names accepted for each block of the reference data.
_ALIASES = {"kidney": "kidney", "kidneys": "kidney", "kidney_left": "kidney", "kidney_right": "kidney",
            "kidney_cortex": "kidney", "salivary_glands": "salivary_glands", "salivary": "salivary_glands",
            "parotid": "salivary_glands", "submandibular": "salivary_glands", "lacrimal": "lacrimal"}
_LN2 = math.log(2.0)


@dataclass(frozen=True)
class TissueParameters:
    """Linear-quadratic parameters of one tissue, with where each came from.

    Attributes
    ----------
    tissue : str
    alpha_beta_Gy : float
        α/β (Gy).
    repair_half_time_h : float
        Mono-exponential repair half-time T_rep (h).
    sources : dict
        ``{"alpha_beta_Gy": source, "repair_half_time_h": source}``.
    status : dict
        ``{"alpha_beta_Gy": "verified" | "unverified" | "user", ...}``.
    warnings : tuple of str
        One per parameter whose status is not verified or user-given.
    """

    tissue: str
    alpha_beta_Gy: float
    repair_half_time_h: float
    sources: dict = field(default_factory=dict, compare=False, hash=False)
    status: dict = field(default_factory=dict, compare=False, hash=False)
    warnings: tuple[str, ...] = ()

    @property
    def repair_rate_per_h(self) -> float:
        """μ = ln 2 / T_rep (h⁻¹)."""
        return _LN2 / self.repair_half_time_h


def _check_positive(value: float, name: str, unit: str) -> float:
    v = float(value)
    if not (math.isfinite(v) and v > 0):
        raise InputError(f"must be finite and > 0 {unit}, got {value}", source=name)
    return v


def tissue_parameters(tissue: str, *, alpha_beta_Gy: float | None = None,
                      repair_half_time_h: float | None = None) -> TissueParameters:
    """α/β and T_rep of a tissue: user values where given, else the reference data set.

    Parameters
    ----------
    tissue : str
        ``"kidney"`` (reference values, unverified), ``"parotid"``, ``"submandibular"``,
        ``"salivary_glands"``, ``"lacrimal"`` (no sourced values: both parameters required), or
        any other name (both parameters required).
    alpha_beta_Gy : float, optional
        α/β (Gy); overrides the reference value (status ``"user"``).
    repair_half_time_h : float, optional
        T_rep (h); overrides the reference value (status ``"user"``).

    Raises
    ------
    InputError
        A required parameter is missing (the message names it and the tissue), or not > 0.
    """
    key = _ALIASES.get(str(tissue).lower())
    block = load_reference_data().get("radiobiology", {}).get(key or "", {})
    given = {"alpha_beta_Gy": alpha_beta_Gy, "repair_half_time_h": repair_half_time_h}
    ref_keys = {"alpha_beta_Gy": "alpha_beta_Gy", "repair_half_time_h": "repair_half_time_h"}
    units = {"alpha_beta_Gy": "Gy", "repair_half_time_h": "h"}
    values, sources, status, warnings = {}, {}, {}, []
    for name, user in given.items():
        if user is not None:
            values[name] = _check_positive(user, name, units[name])
            sources[name] = "user input"
            status[name] = "user"
            continue
        ref = block.get(ref_keys[name], {})
        if ref.get("value") is None:
            why = ("no sourced value exists for salivary or lacrimal glands (reference data: 'not found')"
                   if key in ("salivary_glands", "lacrimal") else "the reference data set has no value for it")
            raise InputError(f"is required for a {tissue} BED: {why}; give it explicitly "
                             f"(e.g. {name}=...)", source=name)
        values[name] = float(ref["value"])
        sources[name] = f"lu177.json radiobiology.{key}.{ref_keys[name]} ({ref.get('source', '?')})"
        status[name] = ref.get("status", "unknown")
        if status[name] != "verified":
            warnings.append(f"{tissue} {name} = {values[name]:g} {units[name]} is '{status[name]}' "
                            f"({ref.get('source', '?')}): confirm it before clinical use")
    return TissueParameters(str(tissue), values["alpha_beta_Gy"], values["repair_half_time_h"], sources, status,
                            tuple(warnings))


# --- G factor ------------------------------------------------------------------------------------
def _terms_arrays(coefficients_Gy_per_h, rates_per_h) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(coefficients_Gy_per_h, dtype=float)
    b = np.asarray(rates_per_h, dtype=float)
    if a.shape != b.shape or a.ndim == 0 or a.shape[-1] == 0:
        raise InputError(f"coefficients and rates must have the same shape (..., n ≥ 1), got {a.shape} and "
                         f"{b.shape}", source="dose-rate terms")
    if not np.all(np.isfinite(a)):
        raise InputError("coefficients must be finite Gy/h", source="dose-rate terms")
    if not np.all(np.isfinite(b) & (b > 0)):
        raise InputError(f"rates must be finite and > 0 h⁻¹, got minimum {np.nanmin(b):g}", source="rates_per_h")
    return a, b


def dose_rate_terms(model: KineticModel, dose_per_tia_Gy_per_Bq_h: float) -> tuple[np.ndarray, np.ndarray]:
    """Dose-rate exponential terms of a region: Ḋ(t) = Σ (s·aᵢ) e^(−bᵢ t).

    Parameters
    ----------
    model : KineticModel
        Activity curve A(t) (Bq) with ``exponential_terms()`` not None.
    dose_per_tia_Gy_per_Bq_h : float
        Absorbed dose per time-integrated activity s = D / TIA (Gy/(Bq·h)), e.g. the region's
        mean dose divided by its TIA.

    Returns
    -------
    coefficients_Gy_per_h, rates_per_h : numpy.ndarray
    """
    terms = model.exponential_terms()
    if terms is None:
        raise InputError("the kinetic model is not a sum of exponentials; use g_factor_numerical", source="model")
    s = _check_positive(dose_per_tia_Gy_per_Bq_h, "dose_per_tia_Gy_per_Bq_h", "Gy/(Bq·h)")
    a = np.array([t[0] for t in terms], dtype=float) * s
    b = np.array([t[1] for t in terms], dtype=float)
    return _terms_arrays(a, b)


def g_factor_exponential(coefficients_Gy_per_h, rates_per_h, repair_half_time_h: float) -> np.ndarray | float:
    """Lea–Catcheside G of Ḋ(t) = Σ aᵢ e^(−bᵢ t), closed form (dimensionless).

    ``G = (2/D²) Σᵢ Σⱼ aᵢ aⱼ / ((bᵢ + bⱼ)(bᵢ + μ))``, ``D = Σ aᵢ/bᵢ``, μ = ln 2 / T_rep.

    Parameters
    ----------
    coefficients_Gy_per_h, rates_per_h : array_like, shape (..., n)
        aᵢ (Gy/h; negative for uptake terms) and bᵢ (h⁻¹, > 0). Leading axes are voxels or
        regions (vectorised; no Python loop over them).
    repair_half_time_h : float
        T_rep (h).

    Returns
    -------
    float or numpy.ndarray of shape (...)
        G (0 < G ≤ 1 for a non-negative dose rate).

    Raises
    ------
    InputError
        Rates ≤ 0, T_rep ≤ 0, or a total dose D ≤ 0.
    """
    a, b = _terms_arrays(coefficients_Gy_per_h, rates_per_h)
    mu = _LN2 / _check_positive(repair_half_time_h, "repair_half_time_h", "h")
    d = np.sum(a / b, axis=-1)
    if np.any(d <= 0):
        raise InputError("the dose-rate terms integrate to a total dose ≤ 0 Gy", source="dose-rate terms")
    ai, aj = a[..., :, None], a[..., None, :]
    bi, bj = b[..., :, None], b[..., None, :]
    s = np.sum(ai * aj / ((bi + bj) * (bi + mu)), axis=(-2, -1))
    g = 2.0 * s / d**2
    return float(g) if np.ndim(g) == 0 else g


def g_factor_mono_exponential(effective_half_life_h: float, repair_half_time_h: float) -> float:
    """G = λ / (λ + μ) of a mono-exponential dose rate (λ = ln 2 / T_eff, μ = ln 2 / T_rep)."""
    t_eff = _check_positive(effective_half_life_h, "effective_half_life_h", "h")
    t_rep = _check_positive(repair_half_time_h, "repair_half_time_h", "h")
    return t_rep / (t_rep + t_eff)


def g_factor_sampled(times_h, dose_rate_Gy_per_h, repair_half_time_h: float, *,
                     tail_rate_per_h: float | None = None) -> np.ndarray | float:
    """Lea–Catcheside G of a sampled dose rate, numerically (dimensionless).

    The dose rate is taken as piecewise linear between samples (from the first sample; give a
    sample at t = 0), the inner repair integral is advanced exactly over each interval
    (recursive exponential convolution), and the outer integral uses the trapezoid rule. After
    the last sample the dose rate continues as R_end·e^(−λ_tail (t − t_end)) with the analytic
    tail contributions R_end·I_end/(λ+μ) + R_end²/(2λ(λ+μ)) and R_end/λ to the double integral
    and to D.

    Parameters
    ----------
    times_h : array_like, shape (m,)
        Increasing sample times (h p.i.).
    dose_rate_Gy_per_h : array_like, shape (..., m)
        Dose rates (Gy/h); leading axes are voxels/regions (vectorised).
    repair_half_time_h : float
    tail_rate_per_h : float, optional
        λ_tail (h⁻¹) of the tail; default the 177Lu physical decay constant (no biological
        clearance after the last sample: the slowest physical tail).

    Returns
    -------
    float or numpy.ndarray of shape (...)
    """
    t = np.asarray(times_h, dtype=float)
    r = np.asarray(dose_rate_Gy_per_h, dtype=float)
    if t.ndim != 1 or t.size < 2 or r.shape[-1] != t.size or np.any(np.diff(t) <= 0):
        raise InputError(f"need ≥ 2 increasing times matching the last axis of the dose rates, got times "
                         f"{t.shape} and rates {r.shape}", source="times_h")
    if not np.all(np.isfinite(r)):
        raise InputError("dose rates must be finite", source="dose_rate_Gy_per_h")
    mu = _LN2 / _check_positive(repair_half_time_h, "repair_half_time_h", "h")
    lam = get_nuclide("Lu-177").decay_constant_per_h if tail_rate_per_h is None else \
        _check_positive(tail_rate_per_h, "tail_rate_per_h", "h⁻¹")
    h = np.diff(t)
    e = np.exp(-mu * h)
    # ∫₀^h (linear R from r0 to r1)(w) e^(−μ(h−w)) dw = r0·c0 + r1·c1
    x = mu * h
    em1 = -np.expm1(-x)  # 1 − e^(−x)
    c1 = (x - em1) / (mu * x)
    c0 = em1 / mu - c1
    inner = np.empty_like(r)
    inner[..., 0] = 0.0
    for k in range(h.size):  # loop over time samples only (vectorised over voxels)
        inner[..., k + 1] = inner[..., k] * e[k] + r[..., k] * c0[k] + r[..., k + 1] * c1[k]
    prod = r * inner
    double = np.sum(0.5 * (prod[..., 1:] + prod[..., :-1]) * h, axis=-1)
    dose = np.sum(0.5 * (r[..., 1:] + r[..., :-1]) * h, axis=-1)
    r_end, i_end = r[..., -1], inner[..., -1]
    double = double + r_end * i_end / (lam + mu) + r_end**2 / (2.0 * lam * (lam + mu))
    dose = dose + r_end / lam
    if np.any(dose <= 0):
        raise InputError("the dose rate integrates to a total dose ≤ 0 Gy", source="dose_rate_Gy_per_h")
    g = 2.0 * double / dose**2
    return float(g) if np.ndim(g) == 0 else g


def g_factor_numerical(dose_rate: Callable[[np.ndarray], np.ndarray], repair_half_time_h: float, *,
                       t_end_h: float, n_samples: int = 20001, tail_rate_per_h: float | None = None,
                       ) -> np.ndarray | float:
    """Lea–Catcheside G of any dose-rate function, numerically (dimensionless).

    Samples ``dose_rate(t)`` on ``n_samples`` points over [0, ``t_end_h``], quadratically spaced
    (t = t_end·u², dense early where uptake is fast), and calls :func:`g_factor_sampled`.
    Use for models that are not sums of exponentials.

    Parameters
    ----------
    dose_rate : callable
        ``t_h (m,) → Gy/h`` of shape (..., m).
    repair_half_time_h : float
    t_end_h : float
        Last sample time (h); beyond it a tail of rate ``tail_rate_per_h`` (default 177Lu decay).
    n_samples : int
    """
    t = _check_positive(t_end_h, "t_end_h", "h") * np.linspace(0.0, 1.0, int(n_samples)) ** 2
    return g_factor_sampled(t, dose_rate(t), repair_half_time_h, tail_rate_per_h=tail_rate_per_h)


# --- BED, EQD2, EUBED ----------------------------------------------------------------------------
def bed_Gy(dose_Gy, g_factor, alpha_beta_Gy: float) -> np.ndarray | float:
    """BED = D (1 + G D / (α/β)) (Gy); element-wise over arrays (voxel maps).

    Raises
    ------
    InputError
        Negative or non-finite dose, G outside [0, 1], α/β ≤ 0.
    """
    d = np.asarray(dose_Gy, dtype=float)
    g = np.asarray(g_factor, dtype=float)
    ab = _check_positive(alpha_beta_Gy, "alpha_beta_Gy", "Gy")
    if not np.all(np.isfinite(d)) or np.any(d < 0):
        raise InputError(f"absorbed dose must be finite and ≥ 0 Gy, got minimum {np.nanmin(d):g} Gy", source="dose_Gy")
    if not np.all(np.isfinite(g)) or np.any(g < 0) or np.any(g > 1 + 1e-12):
        raise InputError("G factor must be in [0, 1]", source="g_factor")
    out = d * (1.0 + g * d / ab)
    return float(out) if np.ndim(out) == 0 else out


def eqd2_Gy(bed, alpha_beta_Gy: float) -> np.ndarray | float:
    """EQD2 = BED / (1 + 2 Gy / (α/β)) (Gy): the dose in 2-Gy fractions with the same BED."""
    ab = _check_positive(alpha_beta_Gy, "alpha_beta_Gy", "Gy")
    out = np.asarray(bed, dtype=float) / (1.0 + 2.0 / ab)
    return float(out) if np.ndim(out) == 0 else out


def eubed_Gy(bed_map_Gy, alpha_per_Gy: float, *, weights=None, mask=None) -> float:
    """Equivalent uniform BED of a voxel BED distribution (Gy).

    ``EUBED = −(1/α) ln( Σᵢ wᵢ e^(−α BEDᵢ) / Σᵢ wᵢ )``: the uniform BED giving the same
    surviving fraction as the non-uniform one (O'Donoghue 1999's equivalent uniform dose,
    applied to BED). Weights are voxel volumes or masses (default equal).

    Parameters
    ----------
    bed_map_Gy : array_like
        Voxel BED (Gy).
    alpha_per_Gy : float
        Radiosensitivity α (Gy⁻¹), a required parameter (no sourced default).
    weights, mask : array_like, optional
        Same shape as ``bed_map_Gy``.

    References
    ----------
    O'Donoghue JA. Implications of nonuniform tumor doses for radioimmunotherapy. J Nucl Med
    1999;40:1337–1341.
    """
    alpha = _check_positive(alpha_per_Gy, "alpha_per_Gy", "Gy⁻¹")
    b = np.asarray(bed_map_Gy, dtype=float)
    w = np.ones_like(b) if weights is None else np.broadcast_to(np.asarray(weights, dtype=float), b.shape)
    sel = np.ones(b.shape, bool) if mask is None else np.asarray(mask, bool)
    b, w = b[sel], w[sel]
    if b.size == 0 or not np.all(np.isfinite(b)) or np.any(b < 0):
        raise InputError("need ≥ 1 finite, non-negative voxel BED in the mask", source="bed_map_Gy")
    if np.any(w < 0) or w.sum() <= 0:
        raise InputError("weights must be ≥ 0 with a positive sum", source="weights")
    return float(-(logsumexp(-alpha * b, b=w) - math.log(w.sum())) / alpha)


@dataclass(frozen=True)
class BedResult:
    """BED of one region (or one cycle of one region).

    Attributes
    ----------
    tissue : str
    dose_Gy, g_factor, bed_Gy, eqd2_Gy : float
    alpha_beta_Gy, repair_half_time_h : float
    parameter_status : dict
        Status of α/β and T_rep (``"unverified"``, ``"user"``, ...).
    warnings : tuple of str
    """

    tissue: str
    dose_Gy: float
    g_factor: float
    bed_Gy: float
    eqd2_Gy: float
    alpha_beta_Gy: float
    repair_half_time_h: float
    parameter_status: dict = field(default_factory=dict, compare=False, hash=False)
    warnings: tuple[str, ...] = ()


def bed_from_terms(coefficients_Gy_per_h, rates_per_h, params: TissueParameters) -> BedResult:
    """BED of a dose rate Σ aᵢ e^(−bᵢ t) (one region; Gy), with the parameters' status."""
    a, b = _terms_arrays(coefficients_Gy_per_h, rates_per_h)
    if a.ndim != 1:
        raise InputError(f"one region's terms expected (shape (n,)), got {a.shape}", source="dose-rate terms")
    d = float(np.sum(a / b))
    g = g_factor_exponential(a, b, params.repair_half_time_h)
    bed = bed_Gy(d, g, params.alpha_beta_Gy)
    return BedResult(params.tissue, d, g, bed, eqd2_Gy(bed, params.alpha_beta_Gy), params.alpha_beta_Gy,
                     params.repair_half_time_h, dict(params.status), params.warnings)


def bed_from_model(model: KineticModel, dose_per_tia_Gy_per_Bq_h: float, params: TissueParameters, *,
                   t_end_h: float | None = None) -> BedResult:
    """BED of a region from its kinetic model and its dose per TIA (Gy).

    Sums of exponentials use the closed form; other models the numerical Lea–Catcheside
    integral on [0, ``t_end_h``] (default 10 physical half-lives of 177Lu) with a
    physical-decay tail.
    """
    if model.exponential_terms() is not None:
        a, b = dose_rate_terms(model, dose_per_tia_Gy_per_Bq_h)
        return bed_from_terms(a, b, params)
    s = _check_positive(dose_per_tia_Gy_per_Bq_h, "dose_per_tia_Gy_per_Bq_h", "Gy/(Bq·h)")
    t_end = t_end_h if t_end_h is not None else 10.0 * get_nuclide("Lu-177").half_life_h
    g = g_factor_numerical(lambda t: s * np.asarray(model.activity(t), dtype=float), params.repair_half_time_h,
                           t_end_h=t_end)
    d = s * float(model.integral())
    bed = bed_Gy(d, g, params.alpha_beta_Gy)
    return BedResult(params.tissue, d, g, bed, eqd2_Gy(bed, params.alpha_beta_Gy), params.alpha_beta_Gy,
                     params.repair_half_time_h, dict(params.status), params.warnings)


@dataclass(frozen=True)
class CumulativeBed:
    """BED summed over cycles (cycles ≫ T_rep apart: BED_total = Σ BED_i).

    Attributes
    ----------
    tissue : str
    per_cycle_bed_Gy : tuple of float
    bed_Gy, eqd2_Gy, dose_Gy : float
    warnings : tuple of str
    """

    tissue: str
    per_cycle_bed_Gy: tuple[float, ...]
    dose_Gy: float
    bed_Gy: float
    eqd2_Gy: float
    warnings: tuple[str, ...] = ()


def total_bed(cycles: Sequence[BedResult]) -> CumulativeBed:
    """Sum per-cycle BEDs of one tissue (cycles separated by ≫ T_rep, so no inter-cycle repair term).

    Raises
    ------
    InputError
        No cycles, mixed tissues or mixed α/β.
    """
    if not cycles:
        raise InputError("no cycles to sum", source="cycles")
    tissues = {c.tissue for c in cycles}
    abs_ = {c.alpha_beta_Gy for c in cycles}
    if len(tissues) != 1 or len(abs_) != 1:
        raise InputError(f"all cycles must be of one tissue with one α/β, got {sorted(tissues)} and {sorted(abs_)}",
                         source="cycles")
    bed = float(sum(c.bed_Gy for c in cycles))
    ab = cycles[0].alpha_beta_Gy
    warnings = tuple(dict.fromkeys(w for c in cycles for w in c.warnings))
    return CumulativeBed(cycles[0].tissue, tuple(c.bed_Gy for c in cycles), float(sum(c.dose_Gy for c in cycles)),
                         bed, eqd2_Gy(bed, ab), warnings)


def parameters_table(params: Mapping[str, TissueParameters]) -> list[dict]:
    """Rows (tissue, α/β, T_rep, sources, status) for a report section."""
    return [{"tissue": k, "alpha_beta_Gy": p.alpha_beta_Gy, "repair_half_time_h": p.repair_half_time_h,
             "alpha_beta_status": p.status.get("alpha_beta_Gy"), "repair_half_time_status":
             p.status.get("repair_half_time_h"), "sources": "; ".join(f"{n}: {s}" for n, s in p.sources.items())}
            for k, p in params.items()]


def add_report_section(report, results: Mapping[str, BedResult], *, record=None) -> None:
    """Add a ``radiobiology`` section (BED, EQD2 per region, parameter status) to a Report.

    Parameters
    ----------
    report : LuDosimetryLib.report.Report
    results : dict of region name to BedResult
    record : LuDosimetryLib.results.RunRecord, optional
        Warnings (unverified parameters) are also recorded there, once each.
    """
    sec = report.section("radiobiology", "Radiobiology: BED and EQD2")
    sec.paragraph("Linear-quadratic BED with the Lea–Catcheside factor G of each region's dose-rate curve "
                  "(Dale 1985): BED = D(1 + G·D/(α/β)), EQD2 = BED/(1 + 2 Gy/(α/β)).")
    sec.table([{"region": k, "dose_Gy": r.dose_Gy, "g_factor": r.g_factor, "bed_Gy": r.bed_Gy, "eqd2_Gy": r.eqd2_Gy,
                "alpha_beta_Gy": r.alpha_beta_Gy, "repair_half_time_h": r.repair_half_time_h,
                "parameter_status": ", ".join(f"{n}: {v}" for n, v in r.parameter_status.items())}
               for k, r in results.items()])
    for w in dict.fromkeys(w for r in results.values() for w in r.warnings):
        sec.paragraph(f"Warning: {w}", css_class="warn")
        if record is not None:
            record.warn(w, stage="radiobiology", source="tissue parameters")
