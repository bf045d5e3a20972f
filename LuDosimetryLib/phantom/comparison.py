"""The pipeline's results against the phantom's truth: ``truth_comparison.csv`` (demo, tests, docs/dose.md).

Per region the reported ``dose_Gy`` (doses.csv) is compared with the like-for-like truth
(``dose_kernel_Gy`` of truth.json: the true TIA through the same kernel physics,
:mod:`.dose_truth`), as ratio and difference; the electron-local-deposition truth stays beside it.
The reported ``red_marrow`` (an L2–L4 or blood-based estimate of the whole marrow) is compared
with ``red_marrow_total``. A row whose dose ratio lies outside ±20 % carries a ``cause``, found
from the numbers of that row (:func:`outlier_cause`); docs/dose.md discusses each.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from .dose_truth import RED_MARROW_TRUTH
from .kinetics import MARROW_REGIONS

__all__ = ["truth_comparison_rows", "outlier_cause", "COMPARISON_COLUMNS", "DOSE_TOLERANCE"]

#: |dose_Gy / true − 1| above this needs a cause.
DOSE_TOLERANCE = 0.20
COMPARISON_COLUMNS = ("region", "kind", "volume_mL", "tia_MBq_h", "true_tia_MBq_h", "tia_ratio", "dose_Gy",
                      "dose_method", "true_dose_Gy", "dose_ratio", "dose_difference_Gy", "true_led_dose_Gy",
                      "led_ratio", "cause")


def _num(text) -> float:
    try:
        return float(text) if text not in (None, "") else math.nan
    except (TypeError, ValueError):
        return math.nan


def outlier_cause(region: str, *, dose_ratio: float, tia_ratio: float, volume_mL: float, dose_method: str,
                  spect_fwhm_mm: float, cross_fraction: float = 0.0, true_tia_Bq_h: float = math.nan) -> str:
    """Why a region's dose is outside ±20 % of its like-for-like truth ('' inside), from its numbers.

    The like-for-like truth shares the pipeline's physics, so what remains is imaging (resolution,
    noise, registration, fit) or a named limitation of a method. ``cross_fraction`` is the part of
    the true dose that is not local electron deposition of the region's own TIA (1 − LED/true).
    """
    if not math.isfinite(dose_ratio) or abs(dose_ratio - 1.0) <= DOSE_TOLERANCE:
        return ""
    # sphere of diameter 2 FWHM: below it the GTM correction rests on a few voxels and the map's S-value
    v_res = math.pi / 6.0 * (2.0 * spect_fwhm_mm / 10.0) ** 3
    if dose_method.startswith("red_marrow"):
        return (f"method: {dose_method} estimates the whole red marrow from L2-L4 (or blood) activity and the L2-L4 "
                "cross-dose; the truth averages all marrow, whose cross-dose differs by site")
    if true_tia_Bq_h == 0 and "pvc" in dose_method and dose_ratio < 1:
        return (f"method: {dose_method} scales the map dose by the region's corrected/map TIA, ≈ 0 for a region "
                "without activity of its own: its cross-dose from neighbours is scaled away with the spill-in")
    if true_tia_Bq_h == 0:
        return ("imaging: resolution - the region holds no activity of its own; the SPECT blur spills activity of "
                "hot neighbours (bone lesions, marrow) into it, which the kernel then deposits locally")
    if not math.isfinite(tia_ratio):
        return "imaging: fit - the region was not fitted (no usable activity at every timepoint); map dose reported"
    if abs(tia_ratio - 1.0) > 0.15:
        if volume_mL < v_res and abs(tia_ratio - 1.0) < 0.5:
            return (f"imaging: resolution - {volume_mL:.2g} mL is below a {2 * spect_fwhm_mm:.0f} mm sphere at "
                    f"{spect_fwhm_mm:g} mm FWHM; GTM-corrected TIA ratio {tia_ratio:.2f}")
        return (f"imaging: fit - fitted TIA ratio {tia_ratio:.2f} against the true TIA (kinetics the scan times "
                "do not sample, e.g. urine transit before the first scan, or noise/registration)")
    if "pvc" in dose_method and cross_fraction > 0.2:
        return (f"method: {dose_method} scales the whole map dose, cross-dose included, by the region's own "
                f"corrected/map TIA; {cross_fraction:.0%} of the true dose is cross-dose from neighbours "
                f"(TIA ratio {tia_ratio:.2f} is right), which the scaling wrongly treats as partial-volume loss")
    return (f"method: map S-value - TIA ratio {tia_ratio:.2f} is right but the dose per TIA of the "
            f"{spect_fwhm_mm:g} mm map (activity blurred across the edge of {volume_mL:.2g} mL) differs from the "
            "true distribution's")


def truth_comparison_rows(truth: Mapping, fits: Sequence[Mapping[str, str]], doses: Sequence[Mapping[str, str]], *,
                          cycle: int = 1, spect_fwhm_mm: float | None = None) -> list[dict]:
    """Rows of ``truth_comparison.csv`` (:data:`COMPARISON_COLUMNS`) for the regions in doses.csv.

    Parameters
    ----------
    truth : mapping
        truth.json of the phantom (with ``dose_kernel_Gy``).
    fits, doses : sequence of mapping
        Rows of fits.csv and doses.csv (:func:`LuDosimetryLib.results.read_doses_csv`).
    cycle : int
    spect_fwhm_mm : float, optional
        Default: the phantom's SPECT resolution.
    """
    cyc = truth["cycles"][cycle - 1]
    fwhm = float(spect_fwhm_mm or truth.get("resolution", {}).get("spect_fwhm_mm", 11.0))
    kernel_truth, led_truth, tia_truth = cyc.get("dose_kernel_Gy", {}), cyc["dose_Gy"], cyc["tia_Bq_h"]
    fit_by = {r["region"]: r for r in fits}
    rows = []
    for d in doses:
        region, method = d["region"], d.get("dose_method", "")
        key = RED_MARROW_TRUTH if method.startswith("red_marrow") else region
        if key not in kernel_truth and key not in led_truth:
            continue
        dose = _num(d.get("dose_Gy"))
        true = kernel_truth.get(key, math.nan)
        led = led_truth.get(key, math.nan)
        tia = _num(fit_by.get(region, {}).get("tia_Bq_h"))
        if key == RED_MARROW_TRUTH:  # the whole marrow: the fitted TIA of every marrow region
            tia = sum(_num(fit_by.get(r, {}).get("tia_Bq_h")) for r in MARROW_REGIONS)
        true_tia = float(tia_truth.get(key, math.nan))
        tia_ratio = tia / true_tia if true_tia > 0 else math.nan
        ratio = dose / true if true > 0 else math.nan
        vol = _num(d.get("volume_mL"))
        rows.append({"region": region, "kind": d.get("kind", ""), "volume_mL": vol, "tia_MBq_h": tia / 1e6,
                     "true_tia_MBq_h": true_tia / 1e6, "tia_ratio": tia_ratio, "dose_Gy": dose, "dose_method": method,
                     "true_dose_Gy": true, "dose_ratio": ratio, "dose_difference_Gy": dose - true,
                     "true_led_dose_Gy": led, "led_ratio": dose / led if led > 0 else math.nan,
                     "cause": outlier_cause(region, dose_ratio=ratio, tia_ratio=tia_ratio, volume_mL=vol,
                                            dose_method=method, spect_fwhm_mm=fwhm,
                                            cross_fraction=1.0 - led / true if true > 0 and led >= 0 else 0.0,
                                            true_tia_Bq_h=true_tia)})
    return rows
