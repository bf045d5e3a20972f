"""Named, overridable parameters of the PET-based 177Lu prediction (all written to run.json)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import InputError

__all__ = ["PredictionParameters", "DEFAULT_PET_FWHM_MM", "FULL_COVERAGE_FRACTION", "pet_fwhm_from_sidecars"]

#: PET resolution (FWHM, mm) used for the partial-volume correction when neither the caller nor the
#: PET's sidecar (``resolution_fwhm_mm``) states it: a current time-of-flight PET/CT reconstructed for
#: quantification (clinical 68Ga systems measure about 4.5–6.5 mm with positron range); recorded in
#: run.json as ``pet_fwhm_source: "default"``.
DEFAULT_PET_FWHM_MM = 5.5
#: A region with at least this fraction of its volume in the dynamic field of view is "covered";
#: between ``min_dynamic_fov_fraction`` and this, "partly" (its covered voxels give its kinetics).
FULL_COVERAGE_FRACTION = 0.95


def _positive(name: str, value: float) -> None:
    if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
        raise InputError(f"must be a finite number > 0, got {value!r}", source=name)


@dataclass(frozen=True)
class PredictionParameters:
    """Every assumption of the prediction, as a parameter (docs/prediction.md).

    Attributes
    ----------
    pet_ligand, therapy_ligand : str
        Recorded; ``therapy_ligand`` also selects the packaged population table when
        ``population_table`` is None (:func:`LuDosimetryLib.kinetics.priors.select_ligand`; an
        unknown ligand falls back to PSMA-617 with a warning). The uptake difference between the
        PET and therapy ligands enters through ``ligand_uptake_ratio``.
    ligand_uptake_ratio : float or mapping
        177Lu-ligand uptake fraction / 68Ga-PSMA-11 uptake fraction at equal biology (default 1):
        a number, or region/group/kind → number (``"lesion"``, ``"organ"`` as kind keys).
    tumour_sink_factor : float
        Multiplies the predicted **organ** uptake (tumour sink and peptide-amount effects at therapy
        relative to the PET; default 1 = none).
    peptide_amount_ug : float or None
        Therapy peptide amount (µg), recorded.
    pet_to_therapy_interval_h : float or None
        Time from the PET to the therapy (h), recorded; a warning above ``max_interval_h``.
    max_interval_h : float
        Interval above which the PET is flagged as old (default 8 weeks).
    pet_recovery : float, mapping, "sphere" or "gtm"
        PET recovery coefficient(s) RC (measured / true mean concentration), by region/group/kind,
        the PET value divided by it; or a correction at ``pet_fwhm_mm``. Default ``"gtm"``.
    pet_fwhm_mm : float or None
        PET resolution (mm); None: :data:`DEFAULT_PET_FWHM_MM` (``pet_fwhm_source`` = ``default``).
        With ``pet_recovery="sphere"`` the RC of each region is that of a sphere of its volume
        blurred by a Gaussian of this FWHM (:func:`~LuDosimetryLib.prediction.recovery.sphere_recovery`);
        with ``"gtm"`` every frame's region means are corrected for spill-out and spill-in by the
        geometric transfer matrix of all labelled regions (:func:`~.regions.gtm_correct`).
    spect_recovery : float or mapping
        SPECT recovery coefficient(s): the predicted dose × RC is written as
        ``dose_as_seen_by_spect_Gy_per_GBq``, to compare with a SPECT dose that was not
        recovery-corrected. Default 1.
    population_table : str or None
        CSV of population 177Lu half-lives (None: the shipped table of ``therapy_ligand``).
    uptake_reference : {"static", "last_dynamic"}
        The late 68Ga value the uptake fraction is anchored at: the whole-body static (default),
        or the mean of the dynamic frames starting at ≥ ``late_dynamic_start_h``.
    late_dynamic_start_h : float
        Start of the "late" dynamic frames (h p.i.; default 0.5 h).
    fit_uptake_rate : bool
        Estimate the biological uptake rate from the dynamic frames; default False: the population
        table's uptake half-life (on the synthetic patient the fitted rate is biased high by
        spill-in of the early background activity: kidneys −20 % TIA; docs/prediction.md).
    min_fit_time_h : float
        Earliest frame (mid time, h p.i.) in the uptake fit (default 0.1 h: skips the blood-pool phase).
    frame_values : {"mid_frame", "frame_average"}
        What a frame's value represents (docs/prediction.md, Decay).
    lesion_dose_model : {"sphere", "led"}
        Lesion S-value: uniform sphere of the lesion's volume from the point kernels, or local
        electron deposition. Organs use local electron deposition.
    min_dynamic_fov_fraction : float
        Fraction of a region's volume that must lie in the dynamic field of view for its dynamic
        frames to be used (default 0.05): from :data:`FULL_COVERAGE_FRACTION` on the region is
        "covered", below it "partly" (the kinetics of its covered voxels, flag
        ``dynamic_fov_partial``), and under this fraction "not" (static only, flagged).
    min_static_fov_fraction : float
        Below this fraction in the static field of view a region outside the dynamic FoV is
        skipped (flag ``outside_pet_fov``; default 0.95).
    scale_factors : mapping
        Cohort calibration factors by region/group/kind (from :func:`~.calibration.lopo_scale_factors`,
        always leave-one-patient-out); default none.
    therapy_activity_GBq : float or None
        If given, absolute doses are written besides the per-GBq values.
    model : {"population", "kinetic", "calibrated"}
        Prediction model (:mod:`~.models`, docs/prediction.md).
    retention_exponent : float
        γ of the kinetic model, β_w = β_w,pop (β_u,fit / β_u,pop)^γ (default 0.6, assumed).
    calibrated_model : str or None
        JSON model file of the ``calibrated`` model (required for it).
    body_mass_kg : float or None
        For SUV in pet_features.csv (empty without it).
    pet_fwhm_source : str
        Where ``pet_fwhm_mm`` came from (``given``, ``sidecar``, ``default``); set when None.
    """

    pet_ligand: str = "PSMA-11"
    therapy_ligand: str = "PSMA-617"
    ligand_uptake_ratio: float | Mapping[str, float] = 1.0
    tumour_sink_factor: float = 1.0
    peptide_amount_ug: float | None = None
    pet_to_therapy_interval_h: float | None = None
    max_interval_h: float = 8 * 7 * 24.0
    pet_recovery: float | str | Mapping[str, float] = "gtm"
    pet_fwhm_mm: float | None = None
    spect_recovery: float | Mapping[str, float] = 1.0
    population_table: str | None = None
    uptake_reference: str = "static"
    late_dynamic_start_h: float = 0.5
    fit_uptake_rate: bool = False
    min_fit_time_h: float = 0.1
    frame_values: str = "mid_frame"
    lesion_dose_model: str = "sphere"
    min_dynamic_fov_fraction: float = 0.05
    min_static_fov_fraction: float = 0.95
    scale_factors: Mapping[str, float] = field(default_factory=dict)
    therapy_activity_GBq: float | None = None
    model: str = "population"
    retention_exponent: float = 0.6
    calibrated_model: str | None = None
    body_mass_kg: float | None = None
    pet_fwhm_source: str = ""

    def __post_init__(self) -> None:
        if self.population_table is None:
            _select_population_table(self)
        _positive("tumour_sink_factor", self.tumour_sink_factor)
        _positive("max_interval_h", self.max_interval_h)
        _positive("late_dynamic_start_h", self.late_dynamic_start_h)
        if self.uptake_reference not in ("static", "last_dynamic"):
            raise InputError(f"must be 'static' or 'last_dynamic', got {self.uptake_reference!r}",
                             source="uptake_reference")
        if self.lesion_dose_model not in ("sphere", "led"):
            raise InputError(f"must be 'sphere' or 'led', got {self.lesion_dose_model!r}", source="lesion_dose_model")
        if self.frame_values not in ("mid_frame", "frame_average"):
            raise InputError(f"must be 'mid_frame' or 'frame_average', got {self.frame_values!r}",
                             source="frame_values")
        if isinstance(self.pet_recovery, str) and self.pet_recovery not in ("sphere", "gtm"):
            raise InputError(f"must be a number, a mapping, 'sphere' or 'gtm', got {self.pet_recovery!r}",
                             source="pet_recovery")
        if self.pet_fwhm_mm is None:
            object.__setattr__(self, "pet_fwhm_mm", DEFAULT_PET_FWHM_MM)
            object.__setattr__(self, "pet_fwhm_source", "default")
        elif not self.pet_fwhm_source:
            object.__setattr__(self, "pet_fwhm_source", "given")
        from .models import MODELS

        if self.model not in MODELS:
            raise InputError(f"must be one of {', '.join(MODELS)}, got {self.model!r}", source="model")
        if self.model == "calibrated" and not self.calibrated_model:
            raise InputError("the calibrated model needs a model file (calibrated_model; `ludosimetry cohort` writes "
                             "statistics/calibrated_model.json)", source="calibrated_model")
        if not (math.isfinite(self.retention_exponent) and self.retention_exponent >= 0):
            raise InputError(f"must be a finite number ≥ 0, got {self.retention_exponent!r}",
                             source="retention_exponent")
        if self.body_mass_kg is not None:
            _positive("body_mass_kg", self.body_mass_kg)
        if self.pet_recovery in ("sphere", "gtm") and not (self.pet_fwhm_mm and self.pet_fwhm_mm > 0):
            raise InputError(f"pet_recovery={self.pet_recovery!r} needs pet_fwhm_mm > 0", source="pet_fwhm_mm")
        for name in ("min_dynamic_fov_fraction", "min_static_fov_fraction"):
            v = getattr(self, name)
            if not (0 < v <= 1):
                raise InputError(f"must be in (0, 1], got {v!r}", source=name)
        if self.pet_to_therapy_interval_h is not None and not (self.pet_to_therapy_interval_h >= 0):
            raise InputError(f"must be ≥ 0 h, got {self.pet_to_therapy_interval_h!r}",
                             source="pet_to_therapy_interval_h")
        if self.therapy_activity_GBq is not None:
            _positive("therapy_activity_GBq", self.therapy_activity_GBq)
        for name in ("ligand_uptake_ratio", "spect_recovery", "scale_factors", "pet_recovery"):
            v = getattr(self, name)
            values = v.values() if isinstance(v, Mapping) else ([] if isinstance(v, str) else [v])
            for x in values:
                _positive(name, x)
            if isinstance(v, Mapping):
                object.__setattr__(self, name, dict(v))

    def to_dict(self) -> dict:
        """Plain dict for run.json."""
        return asdict(self)


def _select_population_table(p: PredictionParameters) -> None:
    """Set ``population_table`` to the packaged table of the therapy ligand (PSMA-617's stays None)."""
    import warnings
    from importlib import resources

    from ..kinetics.priors import FALLBACK_LIGAND, select_ligand

    sel = select_ligand(p.therapy_ligand, on_unknown="fallback")
    if sel.fallback:
        warnings.warn(sel.warning, UserWarning, stacklevel=3)
    if sel.ligand != FALLBACK_LIGAND:
        path = resources.files("LuDosimetryLib").joinpath("data").joinpath(sel.population_table)
        object.__setattr__(p, "population_table", str(path))


def lookup_factor(value: float | Mapping[str, float], region: str, *, group: str = "", kind: str = "organ",
                  default: float = 1.0) -> float:
    """A per-region factor: number, or mapping searched by region, group, side-less name, kind."""
    if not isinstance(value, Mapping):
        return float(value)
    base = region
    for suffix in ("_left", "_right"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
    for key in (region, group, base, kind):
        if key and key in value:
            return float(value[key])
    return default


def pet_fwhm_from_sidecars(patient_dir: str | Path) -> tuple[float | None, str]:
    """PET resolution from a NIfTI PET sidecar's ``resolution_fwhm_mm`` (``nifti/pet/*.json``), else (None, "").

    ``ludosimetry predict`` and the prediction inside ``ludosimetry run`` both take it from here,
    so one patient is corrected at one resolution whichever command ran.
    """
    import json

    for side in sorted((Path(patient_dir) / "nifti" / "pet").glob("*.json")):
        try:
            value = json.loads(side.read_text(encoding="utf-8")).get("resolution_fwhm_mm")
        except (OSError, json.JSONDecodeError, AttributeError):
            continue
        if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
            return float(value), f"sidecar {side.name}"
    return None, ""
