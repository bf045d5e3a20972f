"""A synthetic trial cohort: the phantom generator with inter-patient variability and a response model.

Each patient is :func:`~LuDosimetryLib.phantom.generate.generate_patient` with its own seed and

- **kinetics**: every region's uptake fraction and biological washout half-life multiplied by
  log-normal factors (organs share one factor per group, so both kidneys vary together; lesions
  vary independently and more, which also varies the lesion burden);
- **uptake rate and washout tie** (:mod:`.cohort_kinetics`): patient-specific uptake half-lives,
  and washout half-lives tied to them (``washout_tie``; switch off with ``WashoutTie(enabled=False)``);
- **PET-to-177Lu mismatch**: the documented default mismatch per region plus a patient-level
  normal deviation (so the prediction is judged against a truth it does not share);
- **injected activity**: 7.4 GBq ± a few percent, as dispensed.

Anatomy (organ and lesion sizes) is that of the reference phantom for every patient; the
variability of uptake and lesion uptake stands in for different burdens.

Response model (documented, known to the truth, not to the analysis): with D the true
mass-weighted whole-body tumour dose (Gy, electron local deposition from the true TIA),

- best PSA change: ln(PSA_best/PSA_0) = −k_psa·D + N(0, σ_psa) (PSA_0 log-normal, median 40 ng/mL);
- PSA progression-free survival: exponential with rate r₀·exp(−b·D), censored at a uniform
  follow-up time of 12–30 months;
- PSMA-PET per lesion: SUV_after = SUV_before·exp(−D_lesion/D_suv + N(0, 0.15)), volume alike with
  D_vol.

Written as a cohort folder: one patient folder per patient (``P001`` …), ``clinical.csv`` (the
response table columns of :mod:`LuDosimetryLib.response.table` except the dose, which the cohort
run fills in from each patient's measured doses), ``ledgers/P001.json`` … (ledger version 2 with
clinical follow-up drawn from the true doses by :mod:`.followup`, for ``ludosimetry trial``) and
``cohort_truth.json`` (each patient's ``follow_up`` truth: drawn times and model parameters).
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..results import atomic_directory, write_json
from . import kinetics
from .anatomy import REGIONS
from .cohort_kinetics import WashoutTie, tie_washout
from .folder import write_patient_folder
from .followup import cohort_patient_ledger
from .generate import generate_patient

__all__ = ["CohortSettings", "vary_kinetics", "write_synthetic_cohort", "CLINICAL_COLUMNS"]

CLINICAL_COLUMNS = ("patient", "lesion", "mass_g", "psa_baseline_ng_per_mL", "psa_best_ng_per_mL", "suv_baseline",
                    "suv_followup", "volume_baseline_mL", "volume_followup_mL", "pfs_months", "pfs_event")


@dataclass(frozen=True)
class CohortSettings:
    """Variability and response-model parameters of a synthetic cohort (all documented above)."""

    n_patients: int = 4
    size: str = "small"
    seed: int = 0
    organ_uptake_log_sd: float = 0.20
    organ_washout_log_sd: float = 0.20
    lesion_uptake_log_sd: float = 0.50
    lesion_washout_log_sd: float = 0.25
    mismatch_sd: float = 0.10
    activity_rel_sd: float = 0.03
    psa_k_per_Gy: float = 0.035
    psa_log_sd: float = 0.5
    pfs_base_rate_per_month: float = 0.15
    pfs_dose_coefficient_per_Gy: float = 0.04
    suv_dose_scale_Gy: float = 40.0
    volume_dose_scale_Gy: float = 60.0
    kidney_motion: bool = True
    dicom: bool = True
    #: patient-specific uptake rates and washout tied to them (or not): phantom.cohort_kinetics
    washout_tie: WashoutTie = field(default_factory=WashoutTie)

    def __post_init__(self) -> None:
        if int(self.n_patients) != self.n_patients or self.n_patients < 1:
            raise InputError(f"must be an integer ≥ 1, got {self.n_patients!r}", source="n_patients")


def vary_kinetics(rng: np.random.Generator, settings: CohortSettings, *, attempts: int = 50
                  ) -> tuple[kinetics.RegionKinetics, ...]:
    """One patient's cycle-1 177Lu kinetics: the reference kinetics with log-normal factors.

    Draws again (up to ``attempts``) when a draw would leave the remainder of the body with a
    negative activity (uptake fractions too large in sum).
    """
    kinds = {s.region.name: s.region.kind for s in REGIONS}
    # organs vary per organ, both sides together (kidney_left and kidney_right share a factor)
    groups = {s.region.name: re.sub(r"_(left|right)$", "", s.region.group or s.region.name) for s in REGIONS}
    for _ in range(attempts):
        factors: dict[str, tuple[float, float]] = {}
        out = []
        for k in kinetics.LU_KINETICS:
            lesion = kinds[k.name] == "lesion"
            key = k.name if lesion else groups[k.name]
            if key not in factors:
                su = settings.lesion_uptake_log_sd if lesion else settings.organ_uptake_log_sd
                sw = settings.lesion_washout_log_sd if lesion else settings.organ_washout_log_sd
                factors[key] = (math.exp(rng.normal(0, su)), math.exp(rng.normal(0, sw)))
            fu, fw = factors[key]
            out.append(replace(k, uptake_fraction=k.uptake_fraction * fu,
                               washout_half_life_h=k.washout_half_life_h * fw))
        try:
            kinetics.region_curves(tuple(out), kinetics.LU_EXCRETION, "Lu-177", 7.4e9)
        except InputError:
            continue
        return tuple(out)
    raise InputError("could not draw kinetics with a non-negative remainder; lower the uptake spread",
                     source="organ_uptake_log_sd")


def _lesion_doses(truth: dict) -> dict[str, tuple[float, float]]:
    """(true dose Gy, mass g) of each lesion in cycle 1 (truth.json)."""
    mass = {r["name"]: r["mass_g"] for r in truth["regions"]}
    doses = truth["cycles"][0]["dose_Gy"]
    return {r["name"]: (float(doses[r["name"]]), float(mass[r["name"]])) for r in truth["regions"]
            if r["kind"] == "lesion"}


def write_synthetic_cohort(out_dir: str | Path, settings: CohortSettings = CohortSettings(), *, force: bool = False,
                           progress: Callable[[float, str], None] | None = None) -> Path:
    """Write a synthetic cohort folder (patients, clinical.csv, cohort_truth.json) whole or not at all."""
    report = progress or (lambda f, m: None)
    rng = np.random.default_rng([settings.seed, 0xC0])
    truth_doc: dict = {"format": "LuDosimetry synthetic cohort truth", "version": 1, "settings": asdict(settings),
                       "patients": {}}
    rows: list[dict] = []
    with atomic_directory(out_dir, overwrite=force) as tmp:
        for i in range(settings.n_patients):
            pid = f"P{i + 1:03d}"
            report(i / settings.n_patients, f"patient {pid}")
            kin = tie_washout(vary_kinetics(rng, settings), rng, settings.washout_tie)
            default = kinetics.expand_mismatch(None)
            shift = float(rng.normal(0, settings.mismatch_sd))
            mismatch = {k: max(v + shift, -0.9) for k, v in default.items()}
            activity = 7.4e9 * float(np.clip(1 + rng.normal(0, settings.activity_rel_sd), 0.9, 1.1))
            patient = generate_patient(settings.size, seed=settings.seed * 1000 + i + 1, kinetics_base=kin,
                                       pet_mismatch=mismatch, injected_activity_Bq=activity,
                                       kidney_motion=settings.kidney_motion)
            write_patient_folder(patient, tmp / pid, dicom=settings.dicom)
            lesions = _lesion_doses(patient.truth)
            total_mass = sum(m for _, m in lesions.values())
            d_wb = sum(d * m for d, m in lesions.values()) / total_mass
            psa0 = float(math.exp(rng.normal(math.log(40.0), 0.6)))
            psa_best = psa0 * math.exp(-settings.psa_k_per_Gy * d_wb + rng.normal(0, settings.psa_log_sd))
            rate = settings.pfs_base_rate_per_month * math.exp(-settings.pfs_dose_coefficient_per_Gy * d_wb)
            t_event = float(rng.exponential(1 / rate))
            follow_up = float(rng.uniform(12, 30))
            pfs, event = (t_event, 1) if t_event <= follow_up else (follow_up, 0)
            for name, (dose, mass) in lesions.items():
                suv0 = float(math.exp(rng.normal(math.log(15), 0.4)))
                vol0 = mass / 1.0  # mL, lesion mass at unit density stands in for the PET volume
                rows.append({"patient": pid, "lesion": name, "mass_g": mass, "psa_baseline_ng_per_mL": psa0,
                             "psa_best_ng_per_mL": psa_best,
                             "suv_baseline": suv0,
                             "suv_followup": suv0 * math.exp(-dose / settings.suv_dose_scale_Gy + rng.normal(0, 0.15)),
                             "volume_baseline_mL": vol0,
                             "volume_followup_mL": vol0 * math.exp(-dose / settings.volume_dose_scale_Gy
                                                                   + rng.normal(0, 0.15)),
                             "pfs_months": pfs, "pfs_event": event})
            ledger, follow_up_truth = cohort_patient_ledger(pid, patient.truth, d_wb, activity, seed=(settings.seed, i))
            write_json(tmp / "ledgers" / f"{pid}.json", ledger)
            truth_doc["patients"][pid] = {"follow_up": follow_up_truth,
                "seed": settings.seed * 1000 + i + 1, "injected_activity_Bq": activity, "pet_mismatch": mismatch,
                "wholebody_tumour_dose_Gy": d_wb, "lesion_dose_Gy": {k: v[0] for k, v in lesions.items()},
                "organ_dose_Gy": {k: v for k, v in patient.truth["cycles"][0]["dose_Gy"].items()},
                "psa_baseline_ng_per_mL": psa0, "psa_best_ng_per_mL": psa_best, "pfs_months": pfs, "pfs_event": event}
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=CLINICAL_COLUMNS, lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: (repr(v) if isinstance(v, float) else v) for k, v in r.items()})
        (tmp / "clinical.csv").write_text(buf.getvalue(), encoding="utf-8")
        write_json(tmp / "cohort_truth.json", truth_doc)
    report(1.0, "cohort written")
    return Path(out_dir)
