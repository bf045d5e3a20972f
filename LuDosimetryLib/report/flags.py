"""Every flag the library writes, explained in one sentence: the one place a report looks them up.

Flags are short snake-case words written by the stages into ``tac.csv``, ``fits.csv``,
``doses.csv`` and the prediction tables (joined by ``;``). A report shows the words and explains
each one in its appendix with the sentence below. A test checks that every flag the library's
source appends has a sentence here.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Iterable

__all__ = ["FLAG_SENTENCES", "ACTION_FLAGS", "split_flags", "flag_sentence"]

#: flag → one sentence a physicist can act on.
FLAG_SENTENCES: dict[str, str] = {
    # time-activity curves (tac.csv)
    "outside_spect_fov": "Part of the region lies outside the SPECT field of view at one or more timepoints; its "
                         "activity there was not measured and the TAC underestimates it.",
    "no_density": "No CT density was available, so the region's mass was not computed from the CT.",
    "below_resolution": "The region is smaller than about twice the SPECT resolution (FWHM): its activity depends "
                        "strongly on the partial-volume correction.",
    "rc_below_0.5": "The recovery coefficient of the region's volume is below 0.5: more than half of the activity "
                    "had to be restored by the partial-volume correction.",
    "gtm": "The activity was corrected for partial-volume spill-out and spill-in by the geometric transfer matrix "
           "of all labelled regions.",
    "empty": "The region has no voxel on this grid; it has no activity value.",
    # curve fits (fits.csv)
    "few_points": "Too few timepoints for the model selection; a mono-exponential was fitted.",
    "uptake_rate_fixed": "The uptake rate could not be estimated from the data and was fixed at the population "
                         "value; only the washout was fitted.",
    "chi2_exceeds_sigma": "The points scatter more around the fit than their stated noise allows; the interval, "
                          "which trusts that noise, is too narrow.",
    "rate_at_physical_limit": "The fitted clearance reached its bound, physical decay only (no biological "
                              "washout): the TIA is an upper estimate.",
    "no_degrees_of_freedom": "As many fitted parameters as points: the fit passes through them and its "
                             "uncertainty cannot be estimated from the residuals.",
    "ci_unbounded": "The data do not bound the TIA (and the dose) from above at 95 % confidence; the upper limit "
                    "is written 'unbounded'. A later timepoint would close it.",
    "tail_fraction_above_20pct": "More than 20 % of the TIA lies after the last timepoint, in the extrapolated "
                                 "tail: the result depends on the assumed late clearance.",
    "no_noise_estimate": "No noise estimate for the points: the trapezoid TIA has no uncertainty.",
    "population_prior": "Fitted with a population prior on the effective half-life (reduced protocol).",
    "prior_dominated": "The population prior, not the patient's data, determines the half-life.",
    "single_time_point": "TIA from a single timepoint with a population half-life (single-time-point method).",
    "ci_clipped_at_physical_limit": "The upper 95 % limit exceeded the physical limit (all the region's activity "
                                    "decaying without washout) and was set to it.",
    "ci_lower_bound_zero": "The lower 95 % limit is the physical bound 0: the data allow no uptake at all.",
    "rel_uncertainty_above_10": "The relative uncertainty exceeds 1000 %; it is not written as a number.",
    "tia_above_physical_limit": "The fitted TIA exceeds the physical limit (all the region's activity decaying "
                                "without washout): the fit is implausible and needs review.",
    # dose (doses.csv)
    "cross_dose_negative_set_to_zero": "The red-marrow cross-dose estimate was negative (electron escape in the "
                                       "kernel) and was set to 0.",
    "self_dose_only": "Red-marrow dose from the self-dose only; the cross-dose from the rest of the body is not "
                      "included.",
    # prediction from the pre-therapy PET
    "dynamic_fov_partial": "The region lies partly outside the dynamic PET's field of view; the uptake rate comes "
                           "from the part inside.",
    "kinetic_population_rates": "The kinetic prediction used population uptake and washout rates, not the "
                                "patient's.",
    "lesion_washout_default": "No kinetic data for this lesion type: the default lesion washout was used.",
    "not_calibrated": "No calibrated regression for this region; the uncalibrated prediction is shown.",
    "not_in_dose_map": "The region is not in the predicted dose map; its dose is from S-values.",
    "no_dynamic_frames": "The PET study has no dynamic frames; the uptake rate could not be measured.",
    "outside_dynamic_fov": "The region lies outside the dynamic PET's field of view.",
    "uptake_rate_fit_failed_population_used": "The PET uptake-rate fit failed; the population value was used.",
    "static_only": "Prediction from the static PET alone, with population kinetics.",
    "uptake_rate_raised_above_washout": "The fitted uptake rate was below the washout rate and was raised above it.",
    "no_static_late_dynamic_used": "No static PET: the late dynamic frames were used instead.",
    "mass_from_volume": "Mass from the volume at soft-tissue density (no CT density for the region).",
    "negative_uptake": "The PET showed no net uptake in the region; its predicted dose is not meaningful.",
}

#: Flags that call for a physicist's action before the dose is used (shown among the warnings).
ACTION_FLAGS = frozenset({"ci_unbounded", "outside_spect_fov", "chi2_exceeds_sigma", "rate_at_physical_limit",
                          "no_degrees_of_freedom", "prior_dominated", "negative_uptake", "empty",
                          "tia_above_physical_limit", "rel_uncertainty_above_10"})


def split_flags(value: object) -> list[str]:
    """The flags of a cell: ``a;b`` (the convention), a list, or the legacy Python list text ``['a', 'b']``.

    Empty cells, ``None`` and NaN give ``[]``; duplicates are dropped, order kept.
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    items: Iterable[str]
    if isinstance(value, list | tuple | set | frozenset):
        items = [str(v) for v in value]
    else:
        text = str(value).strip()
        if text.startswith("[") and text.endswith("]"):
            try:
                parsed = ast.literal_eval(text)
                items = [str(v) for v in parsed] if isinstance(parsed, list | tuple) else [text]
            except (ValueError, SyntaxError):
                items = [text.strip("[]")]
        else:
            items = text.replace(",", ";").split(";")
    return list(dict.fromkeys(s.strip() for s in items if s and s.strip()))


def flag_sentence(flag: str) -> str:
    """The sentence of ``flag``; composite ``group_of_a+b`` flags and unknown flags are explained too."""
    if flag in FLAG_SENTENCES:
        return FLAG_SENTENCES[flag]
    if flag.startswith("group_of_"):
        return f"A composite region: its value combines {flag.removeprefix('group_of_').replace('+', ', ')}."
    return "No description is registered for this flag (LuDosimetryLib.report.flags); see the stage that wrote it."
