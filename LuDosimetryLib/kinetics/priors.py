"""Population-prior kinetics: log-normal priors on effective half-lives, MAP fits, single scans.

The prior table (``LuDosimetryLib/data/kinetic_priors.csv``; any CSV with the same columns can be
given by path) holds per organ the median effective half-life (h), the standard deviation of
its natural log (``log_sd``), an uptake half-life (h, for ``uptake_washout_fixed``), the
number of patients, a status and a source per row. Log-normal, not normal: Hou et al., JNM
2021;62:1006-1011 (PMC8882881) found effective half-lives across patients log-normally
distributed. Rows marked "placeholder" have no verified source and must be replaced with local
data before clinical use.

MAP fit (:func:`fit_map`)
    Model A(t) = A0 e^(−λ t), λ = ln 2 / T_eff, with prior ln T_eff ~ N(ln median, log_sd²)
    truncated at T_eff ≤ T½,phys (λ ≥ λp), and a scale-invariant prior p(A0) ∝ 1/A0 on A0 > 0. The likelihood uses
    ``sigma_Bq`` when given, else an assumed relative uncertainty ``rel_sigma`` (default 10 %) of
    each point. Because A is linear in A0, the posterior is computed *exactly* on a fine grid of
    ln T_eff with A0 integrated analytically (Gaussian, truncated at 0, with the 1/A0 prior
    applied as 1/Â0 — exact in the limit of precise points); the estimate is the
    joint posterior mode (MAP) and the 95 % interval the 2.5–97.5 % quantiles of TIA = A0/λ over
    ``n_samples`` draws from that grid posterior (sampling, not a Laplace approximation, which
    is poor when one or two points leave the posterior skewed).

    Works for 1 to many points: 4-point fits robust to an outlying point or to a model the data
    cannot identify, and single-scan dosimetry (1 point) for later cycles, where the prior is the
    population's or the patient's own cycle-1 fit (:func:`patient_prior`).

Ligands (:func:`select_ligand`)
    Kinetics differ between ligands, so each has its own prior table and population table
    (:data:`LIGAND_TABLES`): 177Lu-PSMA-617 (``kinetic_priors.csv``,
    ``population_halflives_lu177_psma.csv``) and 177Lu-PSMA-I&T (``kinetic_priors_psma_it.csv``,
    ``population_halflives_lu177_psma_it.csv``; most rows are PSMA-617 values marked ``default``,
    the rest ``unverified``: read each row's status and source). The injection's ligand
    (:attr:`LuDosimetryLib.model.Administration.ligand`, e.g. ``177Lu-PSMA-617``,
    ``vipivotide tetraxetan``, ``PSMA I&T``) is normalised; an unknown or missing ligand is an
    :class:`InputError` naming the ligands known, or, with ``on_unknown="fallback"``, the
    PSMA-617 tables (:data:`FALLBACK_LIGAND`) and a warning saying so.
"""

from __future__ import annotations

import csv
import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
from scipy import special

from ..errors import InputError
from ..nuclides import get_nuclide
from .curves import RATE_MAX_PER_H
from .fitting import TAIL_FLAG_FRACTION, FitResult, _with_scale, apply_physical_bounds, validate_tac
from .models import mono_exponential
from .uncertainty import ScaleUncertainty, physical_tia_limit_Bq_h, relative_uncertainty_from_interval

__all__ = ["HalfLifePrior", "load_priors", "prior_for", "patient_prior", "fit_map", "PRIOR_COLUMNS",
           "LigandSelection", "select_ligand", "LIGAND_TABLES", "FALLBACK_LIGAND"]

PRIOR_COLUMNS = ("organ", "median_effective_half_life_h", "log_sd", "uptake_half_life_h", "n", "status", "source")
_LN2 = math.log(2.0)

#: Canonical ligand → (prior table, population table), files in ``LuDosimetryLib/data``.
LIGAND_TABLES = {
    "PSMA-617": ("kinetic_priors.csv", "population_halflives_lu177_psma.csv"),
    "PSMA-I&T": ("kinetic_priors_psma_it.csv", "population_halflives_lu177_psma_it.csv"),
}
#: Ligand whose tables are used, with a warning, for an unknown ligand when a fallback is asked for.
FALLBACK_LIGAND = "PSMA-617"
_LIGAND_ALIASES = {
    "psma617": "PSMA-617", "vipivotidetetraxetan": "PSMA-617", "pluvicto": "PSMA-617",
    "psmai&t": "PSMA-I&T", "psmait": "PSMA-I&T", "psmaiandt": "PSMA-I&T", "psmaimagingandtherapy": "PSMA-I&T",
    "psmaimaging&therapy": "PSMA-I&T", "zadavotideguraxetan": "PSMA-I&T", "pnt2002": "PSMA-I&T",
}


@dataclass(frozen=True)
class LigandSelection:
    """The ligand whose kinetic tables are used.

    Attributes
    ----------
    requested : str
        The ligand as given.
    ligand : str
        Canonical name (a key of :data:`LIGAND_TABLES`).
    fallback : bool
        True when ``requested`` was not recognised and :data:`FALLBACK_LIGAND` is used.
    warning : str
        What to tell the user (empty unless ``fallback``).
    """

    requested: str
    ligand: str
    fallback: bool = False
    warning: str = ""

    @property
    def prior_table(self) -> str:
        """File name of the kinetic prior table in ``LuDosimetryLib/data``."""
        return LIGAND_TABLES[self.ligand][0]

    @property
    def population_table(self) -> str:
        """File name of the population half-life table in ``LuDosimetryLib/data``."""
        return LIGAND_TABLES[self.ligand][1]


def _ligand_key(name: str) -> str:
    k = name.strip().lower()
    for prefix in ("[177lu]lu-", "[177lu]", "177lu-", "177lu", "lu-177", "lu177", "lutetium-177", "lutetium"):
        if k.startswith(prefix):
            k = k[len(prefix):]
    return "".join(ch for ch in k if ch.isalnum() or ch == "&")


def select_ligand(ligand: str | None, *, on_unknown: str = "error") -> LigandSelection:
    """The kinetic tables of an injection's ligand.

    Parameters
    ----------
    ligand : str or None
        As recorded (``PSMA-617``, ``177Lu-PSMA-I&T``, ``vipivotide tetraxetan``, …).
    on_unknown : {"error", "fallback"}
        An unknown or missing ligand raises, or selects :data:`FALLBACK_LIGAND` with a warning.

    Raises
    ------
    InputError
        Unknown or missing ligand with ``on_unknown="error"`` (the message lists the known ones).
    """
    if on_unknown not in ("error", "fallback"):
        raise InputError(f"must be 'error' or 'fallback', got {on_unknown!r}", source="on_unknown")
    requested = "" if ligand is None else str(ligand)
    name = _LIGAND_ALIASES.get(_ligand_key(requested))
    if name is not None:
        return LigandSelection(requested, name)
    what = f"ligand {requested!r} is not known" if requested.strip() else "no ligand given"
    if on_unknown == "error":
        raise InputError(f"{what}; population kinetics exist for {', '.join(LIGAND_TABLES)} "
                         "(give one of them, or a prior/population table of your own by path)", source="ligand")
    return LigandSelection(requested, FALLBACK_LIGAND, True,
                           f"{what}: using the {FALLBACK_LIGAND} population kinetics (fallback); give the ligand "
                           "or a table of your own")


@dataclass(frozen=True)
class HalfLifePrior:
    """Log-normal prior on an effective half-life.

    Attributes
    ----------
    organ : str
    median_effective_half_life_h : float
        exp(μ) (h).
    log_sd : float
        SD of ln T_eff (dimensionless).
    uptake_half_life_h : float or None
        Uptake half-life (h) for fixed-uptake fits.
    status, source : str
    """

    organ: str
    median_effective_half_life_h: float
    log_sd: float
    uptake_half_life_h: float | None = None
    status: str = ""
    source: str = ""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.median_effective_half_life_h) and self.median_effective_half_life_h > 0):
            raise InputError(f"median effective half-life must be > 0 h, got {self.median_effective_half_life_h}",
                             source=f"prior {self.organ}")
        if not (math.isfinite(self.log_sd) and self.log_sd > 0):
            raise InputError(f"log_sd must be > 0, got {self.log_sd}", source=f"prior {self.organ}")


@functools.cache
def _default_text(name: str = "kinetic_priors.csv") -> str:
    return resources.files("LuDosimetryLib").joinpath("data").joinpath(name).read_text("utf-8")


def load_priors(path: str | Path | None = None, *, ligand: str | None = None) -> dict[str, HalfLifePrior]:
    """Read a prior table into ``{organ: HalfLifePrior}``.

    Parameters
    ----------
    path : str or Path, optional
        A table of your own; it overrides ``ligand``.
    ligand : str, optional
        The injection's ligand: its packaged table (:func:`select_ligand`; unknown ligands raise).
        None: the PSMA-617 table.

    Raises
    ------
    InputError
        Missing file or columns, a non-numeric or non-positive value (row named), unknown ligand.
    """
    name = select_ligand(ligand).prior_table if ligand is not None and path is None else "kinetic_priors.csv"
    src = str(path) if path is not None else f"data/{name}"
    if path is None:
        text = _default_text(name)
    else:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise InputError(f"cannot read prior table: {exc.strerror}", source=src) from None
    rows = list(csv.DictReader(text.splitlines()))
    if not rows:
        raise InputError("prior table is empty", source=src)
    missing = [c for c in PRIOR_COLUMNS[:3] if c not in rows[0]]
    if missing:
        raise InputError(f"missing columns {missing}; expected {list(PRIOR_COLUMNS)}", source=src)
    out = {}
    for i, r in enumerate(rows, start=2):
        try:
            up = r.get("uptake_half_life_h") or ""
            out[r["organ"].strip()] = HalfLifePrior(
                organ=r["organ"].strip(), median_effective_half_life_h=float(r["median_effective_half_life_h"]),
                log_sd=float(r["log_sd"]), uptake_half_life_h=float(up) if up.strip() else None,
                status=r.get("status", ""), source=r.get("source", ""))
        except ValueError as exc:
            raise InputError(f"line {i}: {exc}", source=src) from None
    return out


def prior_for(region: str, *, kind: str = "", table: Mapping[str, HalfLifePrior] | None = None,
              ligand: str | None = None) -> HalfLifePrior:
    """The prior of a region: exact organ name, else the longest organ name the region starts with
    (``kidney_cortex_left`` → ``kidney``), else ``lesion`` for kind ``lesion``. Without ``table``
    the packaged table of ``ligand`` (:func:`load_priors`).

    Raises
    ------
    InputError
        When no row matches (the message lists the organs available).
    """
    tab = load_priors(ligand=ligand) if table is None else table
    if region in tab:
        return tab[region]
    hits = [o for o in tab if region.startswith(o)]
    if hits:
        return tab[max(hits, key=len)]
    if kind == "lesion" and "lesion" in tab:
        return tab["lesion"]
    raise InputError(f"no prior for region {region!r} (kind {kind!r}); organs in the table: {', '.join(tab)}",
                     source="kinetic priors")


def patient_prior(previous: FitResult, *, log_sd: float = 0.15) -> HalfLifePrior:
    """A prior centred on a previous cycle's fitted effective half-life (for single-scan later cycles).

    ``log_sd`` (dimensionless) is the expected cycle-to-cycle variation of ln T_eff; 0.15 is an
    assumption (state and replace it with local data).
    """
    return HalfLifePrior(organ=previous.region, median_effective_half_life_h=previous.effective_half_life_h,
                         log_sd=log_sd, status="patient cycle-1 fit",
                         source=f"fit {previous.model_name} of cycle {previous.cycle}")


def fit_map(times_h: Sequence[float], activities_Bq: Sequence[float], prior: HalfLifePrior, *,
            nuclide: str = "Lu-177", sigma_Bq: Sequence[float] | None = None, rel_sigma: float = 0.10,
            region: str = "", kind: str = "", cycle: int | None = None, scale: ScaleUncertainty | None = None,
            n_grid: int = 1201, n_samples: int = 20000, seed: int = 0,
            administered_activity_Bq: float | None = None) -> FitResult:
    """MAP mono-exponential fit under a log-normal prior on T_eff, with posterior 95 % interval.

    Parameters
    ----------
    times_h, activities_Bq
        TAC (h p.i., Bq at acquisition time); 1 point or more.
    prior : HalfLifePrior
    nuclide : str
    sigma_Bq : sequence of float, optional
        Standard uncertainties (Bq); else ``rel_sigma`` × activity.
    rel_sigma : float
        Assumed relative standard uncertainty of each point when ``sigma_Bq`` is None.
    scale : ScaleUncertainty, optional
        Correlated scale uncertainties added to the interval.
    n_grid, n_samples, seed
        Grid size in ln T_eff, posterior draws, random seed.
    administered_activity_Bq : float, optional
        Sets the physical limit of the interval (:func:`.fitting.apply_physical_bounds`).

    Returns
    -------
    FitResult
        ``model_name="map_mono"``, ``ci_method="posterior"``; ``parameters`` holds the posterior
        median and 95 % interval of T_eff and the prior used.
    """
    t, y, sig = validate_tac(times_h, activities_Bq, sigma_Bq, region=region)
    if not (math.isfinite(rel_sigma) and rel_sigma > 0):
        raise InputError(f"must be > 0, got {rel_sigma}", source="rel_sigma")
    nuc = get_nuclide(nuclide)
    if sig is None:
        sig = rel_sigma * np.maximum(y, 1e-3 * float(np.max(y)))
    mu, tau = math.log(prior.median_effective_half_life_h), prior.log_sd
    u_max = math.log(nuc.half_life_h)
    lo, hi = max(mu - 6 * tau, math.log(_LN2 / RATE_MAX_PER_H)), min(mu + 6 * tau, u_max)
    if hi <= lo:
        raise InputError(f"prior median {prior.median_effective_half_life_h} h lies far above the physical "
                         f"half-life {nuc.half_life_h:.1f} h", source=f"prior {prior.organ}")
    u = np.linspace(lo, hi, n_grid)
    lam = _LN2 / np.exp(u)
    w = 1.0 / sig**2
    # Amplitudes refer to A(t_ref), t_ref = first point (no underflow for fast rates); exact
    # under the scale-invariant prior. TIA = A(t_ref) e^(λ t_ref) / λ.
    t_ref = float(t[0])
    g = np.exp(-np.multiply.outer(lam, t - t_ref))  # (grid, n)
    sgg = (w * g * g).sum(1)
    syg = (w * y * g).sum(1)
    a_hat = syg / sgg
    v = 1.0 / sgg
    s_min = float((w * y * y).sum()) - syg**2 / sgg
    log_prior = -0.5 * ((u - mu) / tau) ** 2
    # joint mode: A0 = â(u) (â > 0 always since y ≥ 0, not all 0), maximise over u
    log_joint = -0.5 * s_min + log_prior
    i_map = int(np.argmax(log_joint))
    z = a_hat / np.sqrt(v)
    # A0 integrated out under a scale-invariant prior p(A0) ∝ 1/A0: ∫ N(â, v)/A0 ≈ √(2πv)/â
    # (a flat prior on A0 would favour short T_eff, whose A0 posterior is wider).
    log_marg = log_joint + 0.5 * np.log(v) - np.log(a_hat) + special.log_ndtr(z)
    p = np.exp(log_marg - log_marg.max())
    p /= p.sum()
    rng = np.random.default_rng(seed)
    k = rng.choice(n_grid, size=n_samples, p=p)
    du = (hi - lo) / (n_grid - 1)
    uk = np.clip(u[k] + (rng.random(n_samples) - 0.5) * du, lo, hi)
    lamk = _LN2 / np.exp(uk)
    gk = np.exp(-np.multiply.outer(lamk, t - t_ref))
    sggk = (w * gk * gk).sum(1)
    ak, sk = (w * y * gk).sum(1) / sggk, 1.0 / np.sqrt(sggk)
    # A0 | u ~ N(â, v) truncated at 0: inverse-CDF draw
    c0 = special.ndtr(-ak / sk)
    a0 = ak + sk * special.ndtri(c0 + rng.random(n_samples) * (1 - c0))
    tia_s = a0 * np.exp(lamk * t_ref) / lamk
    low, high = (float(x) for x in np.quantile(tia_s, [0.025, 0.975]))
    u_map = _refine_mode(t - t_ref, y, w, mu, tau, u[max(i_map - 1, 0)], u[min(i_map + 1, n_grid - 1)])
    lam_map = _LN2 / math.exp(u_map)
    g_map = np.exp(-lam_map * (t - t_ref))
    a_ref = float((w * y * g_map).sum() / (w * g_map * g_map).sum())
    model = mono_exponential(a_ref * math.exp(lam_map * t_ref), lam_map)
    tia = model.integral()
    flags = ["population_prior"]
    post_sd_u = float(np.sqrt(np.sum(p * (u - np.sum(p * u)) ** 2)))
    if post_sd_u > 0.8 * tau:
        flags.append("prior_dominated")
    if i_map == n_grid - 1 and hi == u_max:
        flags.append("rate_at_physical_limit")
    tail_frac = model.integral(float(t[-1])) / tia
    if tail_frac > TAIL_FLAG_FRACTION:
        flags.append("tail_fraction_above_20pct")
    teff_q = np.exp(np.quantile(uk, [0.025, 0.5, 0.975]))
    params = {"a1_Bq": model.coefficients_Bq[0], "b1_per_h": lam_map, "prior_organ": prior.organ,
              "prior_median_effective_half_life_h": prior.median_effective_half_life_h, "prior_log_sd": tau,
              "prior_status": prior.status, "posterior_teff_median_h": float(teff_q[1]),
              "posterior_teff_ci95_h": [float(teff_q[0]), float(teff_q[2])],
              "weights": "sigma_Bq given" if sigma_Bq is not None else f"assumed {rel_sigma:.0%} relative"}
    res = FitResult(region=region, model_name="map_mono", model=model, tia_Bq_h=tia, tia_ci95_Bq_h=(low, high),
                    tia_rel_uncertainty=relative_uncertainty_from_interval(tia, low, high),
                    tail_fraction=float(tail_frac), effective_half_life_h=_LN2 / lam_map, aicc=math.nan,
                    n_points=t.size, n_params=2, parameters=params, flags=tuple(flags), kind=kind, cycle=cycle,
                    ci_method="posterior", times_h=tuple(t.tolist()), activities_Bq=tuple(y.tolist()),
                    sigma_Bq=tuple(sig.tolist()))
    return apply_physical_bounds(_with_scale(res, scale),
                                 physical_tia_limit_Bq_h(administered_activity_Bq, nuc.decay_constant_per_h))


def _refine_mode(t, y, w, mu, tau, a, b) -> float:
    """Joint posterior mode in u = ln T_eff on [a, b] (bounded Brent), A0 profiled out."""
    from scipy.optimize import minimize_scalar

    def neg(uu: float) -> float:
        g = np.exp(-(_LN2 / math.exp(uu)) * t)
        sgg, syg = float((w * g * g).sum()), float((w * y * g).sum())
        return 0.5 * (float((w * y * y).sum()) - syg * syg / sgg) + 0.5 * ((uu - mu) / tau) ** 2

    r = minimize_scalar(neg, bounds=(a, b), method="bounded", options={"xatol": 1e-10})
    return float(r.x)
