"""Ground truth of the synthetic patient: the JSON document written as ``truth.json``.

Schema (version 1; every number in library units, names carry them)::

    format, version, patient_id, size, seed, units
    nuclides            {name: {half_life_h, electron_energy_per_decay_J}}
    regions             [{label, name, side, kind, group, volume_mL, mass_g, density_g_per_mL, hu,
                          nominal_volume_mL}]  (volumes from the label map, cycle 1 tp1 CT grid)
    camera              {manufacturer, model, collimator, energy_windows_keV, reconstruction, key}
    calibration         {sensitivity_cps_per_MBq, dead_time_s, dead_time_model, count_rate_definition}
    resolution          {spect_fwhm_mm, pet_fwhm_mm}
    cycles              [{cycle, injection {datetime, activity_Bq, nuclide, ligand},
                          kinetics {region: {uptake_fraction, uptake_half_life_bio_h,
                                     washout_half_life_bio_h, coefficients_Bq, rates_per_h, source}},
                          excretion {fractions, half_lives_bio_h, coefficients_Bq, rates_per_h},
                          whole_body {coefficients_Bq, rates_per_h},
                          tia_Bq_h {region | group | remainder | whole_body | excreted_decays: ...},
                          dose_Gy, dose_per_activity_Gy_per_GBq {region | group | red_marrow_total}
                          (electron local deposition, approximate),
                          dose_kernel_Gy, dose_kernel_per_activity_Gy_per_GBq {region | group |
                          red_marrow_total} (like-for-like: the true TIA through the pipeline's kernel,
                          photons and density scaling; .dose_truth), dose_kernel_method,
                          timepoints [{timepoint, label, nominal_time_h, time_h, pose, kidney_shift_mm,
                                       region_activity_Bq {region: A(time_h)},
                                       beds [{bed, acquisition_start, duration_s, frame_duration_s,
                                              projections_per_detector, time_h, z_range_mm,
                                              activity_in_fov_Bq, true_count_rate_cps,
                                              observed_count_rate_cps, live_fraction, expected_counts,
                                              total_counts, region_activity_Bq, region_activity_in_fov_Bq,
                                              whole_body_Bq, excreted_Bq}]}]}]
    pet                 {injection, mismatch {region: m}, relation, pose, kidney_shift_mm, kinetics,
                         dynamic {z_range_mm, acquisition_start, frames [{start_s, duration_s, time_h,
                                  region_activity_Bq (mid-frame), region_mean_activity_Bq (frame mean)}]},
                         static {acquisition_start, duration_s, time_h, region_activity_Bq,
                                 region_mean_activity_Bq}}
"""

from __future__ import annotations

from ..kinetics.models import SumOfExponentials
from .kinetics import ExcretionModel, RegionKinetics

__all__ = ["TRUTH_FORMAT", "TRUTH_VERSION", "curve_dict", "kinetics_dict", "curve_from_dict"]

TRUTH_FORMAT = "LuDosimetry phantom truth"
TRUTH_VERSION = 1


def curve_dict(curve: SumOfExponentials) -> dict:
    """``{"coefficients_Bq": [...], "rates_per_h": [...]}`` of a curve."""
    return {"coefficients_Bq": list(curve.coefficients_Bq), "rates_per_h": list(curve.rates_per_h)}


def curve_from_dict(d: dict) -> SumOfExponentials:
    """The curve stored by :func:`curve_dict` (e.g. read back from truth.json)."""
    return SumOfExponentials(tuple(d["coefficients_Bq"]), tuple(d["rates_per_h"]))


def kinetics_dict(kinetics: tuple[RegionKinetics, ...], excretion: ExcretionModel,
                  curves: dict[str, SumOfExponentials]) -> dict:
    """Per-region kinetic parameters and analytic curves (truth ``kinetics`` block)."""
    out = {}
    for k in kinetics:
        out[k.name] = {"uptake_fraction": k.uptake_fraction, "uptake_half_life_bio_h": k.uptake_half_life_h,
                       "washout_half_life_bio_h": k.washout_half_life_h, **curve_dict(curves[k.name]),
                       "source": k.source}
    out["remainder"] = {**curve_dict(curves["remainder"]),
                        "source": "closure: whole body − excreted − every region with uptake"}
    return out
