"""Red marrow in the post-therapy chain: the reported ``red_marrow`` dose of ``ludosimetry run``.

Methods of :mod:`.red_marrow` (EANM bone-marrow guideline, Hindorf et al. 2010), chosen by
:func:`chain_red_marrow`:

- ``red_marrow_l2l4`` (default): image-based. Self-dose from the TIA of the L2–L4 vertebrae
  (``vertebra_l2``, ``vertebra_l3``, ``vertebra_l4``): the TIA fitted to their partial-volume-
  corrected TACs (fits.csv), the map TIA where a vertebra was not fitted (warned). The red-marrow
  mass inside L2–L4 (f · m_RM) is, unless given, their CT mass (the segmented spongiosa taken as
  marrow), so D_self = Ã_L2–L4 · Δ_e / m_L2–L4 does not depend on the unverified reference values
  of ``data/red_marrow.json``; the reference male red-marrow mass (1170 g, ICRP 89, unverified)
  only scales Ã_RM. Given ``l2_l4_fraction`` and/or ``red_marrow_mass_g`` are used as such.
  Cross-dose: the mass-weighted mean of the kernel dose map over L2–L4 minus the local electron
  deposition of the TIA the map holds there (:func:`.red_marrow.cross_dose_from_region_means`).
- ``red_marrow_blood``: when the patient folder holds ``blood_samples.csv``
  (:data:`.red_marrow.BLOOD_SAMPLES_FILE`: ``time_h``, ``activity_concentration_Bq_per_mL``,
  optional ``cycle``; whole blood, not decay-corrected). The blood curve is fitted with the
  kinetics fitter; self-dose = RMBLR · Ã_bl · Δ_e (RMBLR 1 unless given: unverified, warned);
  cross-dose as above. When both are possible the blood-based value is reported and the image-based
  one is kept in run.json (``stages.red_marrow``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from ..errors import InputError
from .red_marrow import (
    BLOOD_SAMPLES_FILE,
    DEFAULT_VERTEBRA_REGIONS,
    blood_based_red_marrow_self_dose,
    cross_dose_from_region_means,
    image_based_self_dose_from_tia,
    read_blood_samples,
    red_marrow_dose,
    red_marrow_row,
    reference_red_marrow_mass_g,
)

__all__ = ["chain_red_marrow", "RED_MARROW_METHODS"]

#: Values of the pipeline's ``red_marrow`` setting.
RED_MARROW_METHODS = ("auto", "l2l4", "blood", "none")


def chain_red_marrow(stats: Sequence, fits: Sequence, map_tia_Bq_h: Mapping[str, float], *,
                     patient_dir: str | Path | None, cycle: int, injected_activity_Bq: float, method: str = "auto",
                     l2_l4_fraction: float | None = None, red_marrow_mass_g: float | None = None,
                     rmblr: float | None = None, nuclide: str = "Lu-177",
                     fit_blood: Callable | None = None,
                     warn: Callable[[str], None] | None = None) -> tuple[dict | None, dict]:
    """The reported red-marrow doses.csv row of one run and what went into it (module docstring).

    Parameters
    ----------
    stats : sequence of RegionDose
        Regional statistics of the kernel dose map (label grid, CT masses).
    fits : sequence of FitResult
        Region fits (partial-volume-corrected TACs).
    map_tia_Bq_h : mapping region → Bq·h
        TIA the voxel map holds in each region on the grid of ``stats``.
    patient_dir : path or None
        Patient folder (``blood_samples.csv`` is looked for there); None: image-based only.
    cycle : int
    injected_activity_Bq : float
    method : {"auto", "l2l4", "blood", "none"}
        ``auto``: blood-based when the folder has blood samples, else image-based.
    l2_l4_fraction, red_marrow_mass_g, rmblr : float, optional
        Override the defaults (module docstring).
    fit_blood : callable(times_h, values) -> KineticModel
        Fitter of the blood curve (required for the blood-based method).
    warn : callable(message)

    Returns
    -------
    (row or None, info)
        The doses.csv row (:func:`.red_marrow.red_marrow_row`, with ``self_dose_Gy`` and
        ``cross_dose_Gy``) and a JSON-able record for run.json.
    """
    note = warn or (lambda m: None)
    if method not in RED_MARROW_METHODS:
        raise InputError(f"must be one of {', '.join(RED_MARROW_METHODS)}, got {method!r}", source="red_marrow")
    info: dict = {"method_setting": method}
    if method == "none":
        return None, info
    by = {s.region: s for s in stats}
    fit_by = {f.region: f for f in fits}
    vert = [r for r in DEFAULT_VERTEBRA_REGIONS if r in by]
    cross = None
    image = None
    if len(vert) == len(DEFAULT_VERTEBRA_REGIONS):
        missing = [r for r in vert if r not in map_tia_Bq_h]
        if missing:  # a zero would shift TIA from the self-dose to nowhere and overstate the cross-dose
            raise InputError(f"no map TIA for {missing}; every vertebra with a dose needs its map TIA",
                             source="map_tia_Bq_h")
        m_vert = sum(by[r].mass_g for r in vert)
        map_tia = sum(map_tia_Bq_h[r] for r in vert)
        mean = sum(by[r].mean_dose_Gy * by[r].mass_g for r in vert) / m_vert
        cross = cross_dose_from_region_means(mean, map_tia, m_vert, vert, nuclide=nuclide)
        unfitted = [r for r in vert if r not in fit_by]
        if unfitted:
            note(f"vertebrae {unfitted} not fitted: their map TIA (partial-volume loss) enters the image-based "
                 "red-marrow self-dose")
        tia = sum(fit_by[r].tia_Bq_h if r in fit_by else map_tia_Bq_h[r] for r in vert)
        m_rm = red_marrow_mass_g if red_marrow_mass_g is not None else (
            m_vert / l2_l4_fraction if l2_l4_fraction is not None else reference_red_marrow_mass_g("male"))
        f = l2_l4_fraction if l2_l4_fraction is not None else m_vert / m_rm
        image = red_marrow_dose(image_based_self_dose_from_tia(tia, vert, l2_l4_fraction_of_red_marrow=f,
                                                               red_marrow_mass_g=m_rm, nuclide=nuclide), cross)
        info["red_marrow_l2l4"] = {
            "dose_Gy": image.total_dose_Gy, "self_dose_Gy": image.self_dose.self_dose_Gy,
            "cross_dose_Gy": image.cross_dose_Gy, "vertebrae_mass_g": m_vert, "tia_vertebrae_Bq_h": tia,
            "l2_l4_fraction": f, "red_marrow_mass_g": m_rm,
            "mass_source": ("given" if (l2_l4_fraction is not None or red_marrow_mass_g is not None)
                            else "red-marrow mass in L2-L4 = their CT mass; total = reference male 1170 g "
                                 "(ICRP 89, unverified; scales only the marrow TIA)")}
    elif method in ("auto", "l2l4"):
        note(f"no red-marrow dose by the image-based method: the label table lacks {list(DEFAULT_VERTEBRA_REGIONS)}")
    blood_file = Path(patient_dir) / BLOOD_SAMPLES_FILE if patient_dir is not None else Path(BLOOD_SAMPLES_FILE)
    has_blood = patient_dir is not None and blood_file.is_file()
    blood = None
    if method == "blood" and not has_blood:
        raise InputError(f"red_marrow='blood' needs {BLOOD_SAMPLES_FILE} in the patient folder "
                         "(time_h, activity_concentration_Bq_per_mL)", source=str(blood_file))
    if method in ("auto", "blood") and has_blood:
        t, c = read_blood_samples(blood_file, cycle=cycle)
        if rmblr is None:
            note("red-marrow-to-blood ratio RMBLR = 1 (commonly used for 177Lu PSMA, EANM 2022; unverified: "
                 "data/red_marrow.json)")
        m_rm = red_marrow_mass_g if red_marrow_mass_g is not None else reference_red_marrow_mass_g("male")
        self_dose = blood_based_red_marrow_self_dose(t, c, fit=fit_blood, rmblr=1.0 if rmblr is None else rmblr,
                                                     red_marrow_mass_g=m_rm, nuclide=nuclide)
        blood = red_marrow_dose(self_dose, cross)
        info["red_marrow_blood"] = {"dose_Gy": blood.total_dose_Gy, "self_dose_Gy": self_dose.self_dose_Gy,
                                    "cross_dose_Gy": blood.cross_dose_Gy, "file": str(blood_file),
                                    **self_dose.parameters}
    chosen = blood if blood is not None else image if method in ("auto", "l2l4") else None
    if chosen is None:
        return None, info
    row = red_marrow_row(chosen, cycle=cycle, injected_activity_Bq=injected_activity_Bq)
    info["reported"] = row["dose_method"]
    if not math.isfinite(row["dose_Gy"]):
        raise InputError("red-marrow dose is not finite", source="red_marrow")
    return row, info
