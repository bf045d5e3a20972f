"""Single-time-point (STP) TIA: Hänscheid, Madsen (population T_eff) and population-prior STP.

For a mono-exponential A(t) = A0 e^(−λt) the exact TIA from one measurement A(t) is
A(t) e^(λt)/λ (see /work/shared/reference/physics.md, section F).

* **Hänscheid** (Hänscheid H et al., JNM 2018;59:75-81, doi:10.2967/jnumed.117.193706):
  TIA ≈ A(t)·2t/ln 2. No T_eff needed; exact at t = T_eff and t = 2·T_eff, at most +6.2 %
  between them (max at t/T_eff = 1/ln 2 ≈ 1.44); ratio to the exact value (2/ln 2)·x·e^(−x),
  x = ln 2·t/T_eff.
* **Madsen / population T_eff** (Madsen MT et al., Med Phys 2018;45:2318-2324,
  doi:10.1002/mp.12886): TIA = A(t) e^(λt)/λ with λ = ln 2/T_eff of the population (or of the
  patient's previous cycle); exact when T_eff is right.
* **Population-prior STP**: the MAP fit of :func:`.priors.fit_map` on one point: same point
  estimate as Madsen with T_eff = prior median, plus a 95 % interval from the log-normal prior
  (and the point's uncertainty).

Select per region with ``method``; :func:`stp_regions` applies a per-region choice.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from ..errors import InputError
from ..nuclides import get_nuclide
from .fitting import TAIL_FLAG_FRACTION, FitResult, validate_tac
from .models import mono_exponential
from .priors import HalfLifePrior, fit_map, load_priors, prior_for

__all__ = ["hanscheid_tia", "madsen_tia", "single_time_point", "stp_regions", "STP_METHODS"]

STP_METHODS = ("hanscheid", "madsen", "prior")
_LN2 = math.log(2.0)


def hanscheid_tia(activity_Bq: float, time_h: float) -> float:
    """Hänscheid TIA ≈ A(t)·2t/ln 2 (Bq·h) from activity ``activity_Bq`` (Bq) at ``time_h`` (h p.i.)."""
    return float(activity_Bq) * 2.0 * float(time_h) / _LN2


def madsen_tia(activity_Bq: float, time_h: float, effective_half_life_h: float) -> float:
    """Population-T_eff TIA = A(t) e^(λt)/λ (Bq·h), λ = ln 2 / ``effective_half_life_h`` (h⁻¹)."""
    if not (math.isfinite(effective_half_life_h) and effective_half_life_h > 0):
        raise InputError(f"must be > 0 h, got {effective_half_life_h}", source="effective_half_life_h")
    lam = _LN2 / effective_half_life_h
    return float(activity_Bq) * math.exp(lam * float(time_h)) / lam


def single_time_point(time_h: float, activity_Bq: float, *, method: str = "prior", nuclide: str = "Lu-177",
                      effective_half_life_h: float | None = None, prior: HalfLifePrior | None = None,
                      sigma_Bq: float | None = None, rel_sigma: float = 0.10, region: str = "", kind: str = "",
                      cycle: int | None = None, ligand: str | None = None) -> FitResult:
    """TIA from one scan, as a :class:`FitResult`.

    Parameters
    ----------
    time_h : float
        Scan time (h p.i.), > 0.
    activity_Bq : float
        Region activity at that time (Bq), > 0.
    method : {"hanscheid", "madsen", "prior"}
    effective_half_life_h : float, optional
        T_eff for ``madsen`` (default: the prior's median).
    prior : HalfLifePrior, optional
        For ``prior`` (and ``madsen`` without T_eff); default from the packaged table by region name.
    sigma_Bq, rel_sigma
        Uncertainty of the point for ``prior`` (see :func:`.priors.fit_map`).
    ligand : str, optional
        The injection's ligand: selects the packaged prior table (:func:`.priors.select_ligand`;
        None: PSMA-617).

    Returns
    -------
    FitResult
        ``model_name`` ``stp_hanscheid``, ``stp_madsen`` or ``map_mono``; Hänscheid and Madsen carry
        no interval (NaN, ``ci_method="none"``).
    """
    if method not in STP_METHODS:
        raise InputError(f"unknown STP method {method!r} (expected one of {', '.join(STP_METHODS)})",
                         source="method")
    t, y, _ = validate_tac([time_h], [activity_Bq], None if sigma_Bq is None else [sigma_Bq], region=region)
    if t[0] <= 0:
        raise InputError(f"single scan must be after injection (time_h > 0), got {t[0]}", source="time_h")
    if method != "hanscheid" and prior is None and (method == "prior" or effective_half_life_h is None):
        prior = prior_for(region, kind=kind, table=load_priors(ligand=ligand))
    if method == "prior":
        return fit_map(t, y, prior, nuclide=nuclide, sigma_Bq=None if sigma_Bq is None else [sigma_Bq],
                       rel_sigma=rel_sigma, region=region, kind=kind, cycle=cycle)
    lam_p = get_nuclide(nuclide).decay_constant_per_h
    if method == "hanscheid":
        # Hänscheid is exact for T_eff = t and T_eff = t/2: the implied curve (t/2 beyond T½,phys).
        teff = float(t[0]) if _LN2 / float(t[0]) >= lam_p else float(t[0]) / 2.0
        tia = hanscheid_tia(y[0], t[0])
    else:
        teff = effective_half_life_h if effective_half_life_h is not None else prior.median_effective_half_life_h
        tia = madsen_tia(y[0], t[0], teff)
    flags = []
    lam = _LN2 / teff
    if lam < lam_p:
        raise InputError(f"effective half-life {teff} h exceeds the physical half-life "
                         f"{_LN2 / lam_p:.1f} h", source="effective_half_life_h")
    model = mono_exponential(tia * lam, lam)
    tail = model.integral(float(t[0])) / model.integral()
    if tail > TAIL_FLAG_FRACTION:
        flags.append("tail_fraction_above_20pct")
    flags.append("single_time_point")
    return FitResult(region=region, model_name=f"stp_{method}", model=model, tia_Bq_h=tia,
                     tia_ci95_Bq_h=(math.nan, math.nan), tia_rel_uncertainty=math.nan, tail_fraction=tail,
                     effective_half_life_h=teff, aicc=math.nan, n_points=1, n_params=0,
                     parameters={"a1_Bq": tia * lam, "b1_per_h": lam, "method": method}, flags=tuple(flags),
                     kind=kind, cycle=cycle, ci_method="none", times_h=(float(t[0]),),
                     activities_Bq=(float(y[0]),))


def stp_regions(measurements: Mapping[str, tuple[float, float]], methods: Mapping[str, str] | str = "prior", *,
                kinds: Mapping[str, str] | None = None, priors: Mapping[str, HalfLifePrior] | None = None,
                nuclide: str = "Lu-177", ligand: str | None = None) -> list[FitResult]:
    """STP for many regions, with the method chosen per region.

    Parameters
    ----------
    measurements : mapping
        region → (time_h, activity_Bq).
    methods : str or mapping
        One method for all, or region → method (missing regions get ``"prior"``).
    kinds : mapping, optional
        region → kind (``organ``/``lesion``), used to find priors.
    priors : mapping, optional
        Prior table (default: the packaged one of ``ligand``).
    ligand : str, optional
        The injection's ligand (:func:`.priors.select_ligand`; None: PSMA-617).
    """
    table = load_priors(ligand=ligand) if priors is None else priors
    out = []
    for region, (th, a) in measurements.items():
        m = methods if isinstance(methods, str) else methods.get(region, "prior")
        kind = (kinds or {}).get(region, "")
        pr = None if m == "hanscheid" else prior_for(region, kind=kind, table=table)
        out.append(single_time_point(th, a, method=m, nuclide=nuclide, prior=pr, region=region, kind=kind))
    return out
