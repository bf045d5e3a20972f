"""Generate the synthetic 177Lu-PSMA patient in memory: :func:`generate_patient`.

Deterministic given the seed: every random draw comes from ``numpy.random.default_rng`` seeded
with ``(seed, purpose, cycle, timepoint, bed)``, so one image's noise does not depend on which
other images were generated.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np

from ..calibration.store import CalibrationEntry, CalibrationStore
from ..errors import InputError
from ..kinetics.models import SumOfExponentials
from ..labels import LabelTable
from ..model import Administration, Camera
from ..nuclides import get_nuclide
from ..timing import hours_between, mid_acquisition_time_h
from ..units import S_PER_H
from . import anatomy, kinetics, pet, spect
from .truth import TRUTH_FORMAT, TRUTH_VERSION, curve_dict, kinetics_dict

__all__ = ["SizePreset", "SIZES", "SyntheticBed", "SyntheticTimepoint", "SyntheticCycle", "SyntheticPet",
           "SyntheticPatient", "generate_patient", "DEFAULT_TIMEPOINTS_H", "DEFAULT_CAMERA",
           "DEFAULT_SENSITIVITY_CPS_PER_MBQ", "DEFAULT_DEAD_TIME_S", "CT_LEAD"]

Progress = Callable[[float, str], None]

DEFAULT_TIMEPOINTS_H = (5.0, 24.0, 96.0, 192.0)
#: A generic dual-head SPECT/CT with medium-energy collimators, 208 keV ± 10 % photopeak window.
DEFAULT_CAMERA = Camera(manufacturer="LuDosimetry", model="Synthetic SPECT/CT", collimator="MEGP",
                        energy_windows_keV=((187.2, 228.8),), reconstruction="OSEM 4i10s AC SC RR (synthetic)",
                        dead_time_s=3.5e-6)
#: Reconstructed counts per second per MBq in the field of view (dead-time free).
DEFAULT_SENSITIVITY_CPS_PER_MBQ = 9.5
#: Effective paralysable dead time referred to the photopeak count rate (s).
DEFAULT_DEAD_TIME_S = 3.5e-6


@dataclass(frozen=True)
class SizePreset:
    """Grid sizes of one phantom size.

    SPECT: ``spect_voxel_mm`` cubic voxels, ``spect_matrix_xy`` in-plane, beds of ``bed_slices``
    slices overlapping by ``overlap_slices``. The fine simulation (truth) grid is the SPECT voxel
    divided by ``fine_factor`` (x, y, z); the CT is that grid unless ``ct_spacing_mm`` and
    ``ct_matrix_xy`` name a clinical CT grid, onto which the CT is resampled from the fine label
    map (nearest neighbour: a CT voxel takes the label, hence the HU, of the fine voxel holding its
    centre). PET likewise with ``pet_voxel_mm`` on a (2, 2, 1) fine grid (static covers the SPECT
    range; dynamic bed ``pet_dynamic_slices`` slices centred on the kidneys).
    """

    name: str
    spect_voxel_mm: float
    spect_matrix_xy: tuple[int, int]
    bed_slices: int
    overlap_slices: int
    pet_voxel_mm: float
    pet_matrix_xy: tuple[int, int]
    pet_dynamic_slices: int
    fine_factor: tuple[int, int, int] = (2, 2, 1)
    ct_spacing_mm: tuple[float, float, float] | None = None
    ct_matrix_xy: tuple[int, int] | None = None


SIZES: dict[str, SizePreset] = {
    "small": SizePreset("small", 6.0, (64, 48), 64, 10, 6.0, (64, 48), 44),
    # the small patient with a CT grid of half the spacing on every axis (8x the CT voxels): the
    # memory-growth test of the chain (Testing/Python/test_memory_scaling.py)
    "small2x": SizePreset("small2x", 6.0, (64, 48), 64, 10, 6.0, (64, 48), 44,
                          ct_spacing_mm=(1.5, 1.5, 3.0), ct_matrix_xy=(256, 192)),
    "demo": SizePreset("demo", 4.8, (128, 128), 80, 12, 4.0, (128, 128), 65),
    # a clinical study: SPECT 128x128 at 4.42 mm, 3 beds of 88 slices (389 mm) overlapping by 14;
    # truth grid 2.21 mm isotropic; CT 512x512 at 0.977 mm, 2 mm slices; PET 200x200 at 4 mm
    "clinical": SizePreset("clinical", 4.42, (128, 128), 88, 14, 4.0, (200, 200), 65, fine_factor=(2, 2, 2),
                           ct_spacing_mm=(0.977, 0.977, 2.0), ct_matrix_xy=(512, 512)),
}
_FINE = (2, 2, 1)
#: The CT of a timepoint is acquired this long before its first SPECT bed starts.
CT_LEAD = timedelta(minutes=2)
_Z_BOTTOM_MM = -10.0          # lower edge of the scanned range (body frame ≈ scanner frame)
_DYNAMIC_CENTER_Z_MM = 400.0  # dynamic PET bed centred on the kidneys


@dataclass(frozen=True, eq=False)
class SyntheticBed:
    """One SPECT bed: counts image (float32, integer values) and its acquisition."""

    index: int
    acquisition_start: datetime
    duration_s: float
    frame_duration_s: float
    projections_per_detector: int
    time_h: float
    z_range_mm: tuple[float, float]
    counts: object  # SimpleITK.Image
    activity_in_fov_Bq: float
    true_rate_cps: float
    observed_rate_cps: float
    live_fraction: float
    expected_counts: float


@dataclass(frozen=True, eq=False)
class SyntheticTimepoint:
    """One post-therapy SPECT/CT timepoint (pose and kidney shift applied to CT and SPECT)."""

    cycle: int
    index: int
    label: str
    nominal_time_h: float
    time_h: float
    pose: anatomy.Pose
    kidney_shift_mm: tuple[float, float, float]
    ct: object  # SimpleITK.Image, HU (int16)
    beds: tuple[SyntheticBed, ...]
    labels: object  # SimpleITK.Image uint8: the true label map of this timepoint on its fine (truth) grid


@dataclass(frozen=True, eq=False)
class SyntheticCycle:
    """One therapy cycle: administration, true curves (Bq vs h p.i.) and timepoints."""

    index: int
    administration: Administration
    curves: dict[str, SumOfExponentials]
    excreted: SumOfExponentials
    whole_body: SumOfExponentials
    timepoints: tuple[SyntheticTimepoint, ...]


@dataclass(frozen=True, eq=False)
class SyntheticPet:
    """Pre-therapy 68Ga-PSMA-11 PET/CT: dynamic frames (one bed) and a whole-body static."""

    administration: Administration
    pose: anatomy.Pose
    kidney_shift_mm: tuple[float, float, float]
    ct: object
    dynamic_start: datetime
    dynamic_frames: tuple[object, ...]
    frame_specs: tuple[pet.PetFrameSpec, ...]
    static_start: datetime
    static_duration_s: float
    static: object
    curves: dict[str, SumOfExponentials]
    mismatch: dict[str, float]


@dataclass(frozen=True, eq=False)
class SyntheticPatient:
    """A synthetic patient with its images and exact ground truth (``truth``, JSON-ready)."""

    patient_id: str
    size: str
    seed: int
    labels: object          # SimpleITK.Image uint8 on cycle 1 tp1's CT grid
    label_table: LabelTable
    density: object         # SimpleITK.Image float32, g/mL, same grid
    camera: Camera
    calibration: CalibrationEntry
    cycles: tuple[SyntheticCycle, ...]
    pet: SyntheticPet | None
    truth: dict = field(repr=False)

    def calibration_store(self) -> CalibrationStore:
        """A calibration store holding this camera's entry."""
        return CalibrationStore((self.calibration,))


def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), *[int(k) for k in keys]])


def _grids(preset: SizePreset, voxel: float, matrix_xy: tuple[int, int], n_slices: int, z0: float,
           factor: tuple[int, int, int] = _FINE):
    nx, ny = matrix_xy
    em = anatomy.Grid((-nx * voxel / 2 + voxel / 2, -ny * voxel / 2 + voxel / 2, z0 + voxel / 2),
                      (voxel, voxel, voxel), (nx, ny, n_slices))
    fs = (voxel / factor[0], voxel / factor[1], voxel / factor[2])
    fine = anatomy.Grid((-nx * voxel / 2 + fs[0] / 2, -ny * voxel / 2 + fs[1] / 2, z0 + fs[2] / 2), fs,
                        (nx * factor[0], ny * factor[1], n_slices * factor[2]))
    return em, fine


def _ct_grid(preset: SizePreset, em: anatomy.Grid) -> anatomy.Grid | None:
    """The clinical CT grid of ``preset`` (centred in-plane like the SPECT, same axial range), or None."""
    if preset.ct_spacing_mm is None or preset.ct_matrix_xy is None:
        return None
    (sx, sy, sz), (nx, ny) = preset.ct_spacing_mm, preset.ct_matrix_xy
    z_lo = em.origin[2] - em.spacing[2] / 2
    nz = int(em.size[2] * em.spacing[2] // sz)
    return anatomy.Grid((-nx * sx / 2 + sx / 2, -ny * sy / 2 + sy / 2, z_lo + sz / 2), (sx, sy, sz), (nx, ny, nz))


def _ct_image(labels_kji: np.ndarray, fine: anatomy.Grid, ct_grid: anatomy.Grid | None, hu_lut: np.ndarray):
    """The CT (HU, int16) of a label map: on the fine grid, or resampled (nearest) onto ``ct_grid``."""
    import SimpleITK as sitk

    if ct_grid is None:
        return fine.image(hu_lut[labels_kji])
    ref = sitk.Image(list(ct_grid.size), sitk.sitkUInt8)
    ref.SetOrigin(tuple(float(v) for v in ct_grid.origin))
    ref.SetSpacing(tuple(float(v) for v in ct_grid.spacing))
    lab = sitk.Resample(fine.image(labels_kji), ref, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    del ref
    return ct_grid.image(hu_lut[sitk.GetArrayViewFromImage(lab)])


def _random_pose(rng: np.random.Generator) -> anatomy.Pose:
    rot = (rng.uniform(-1.5, 1.5), rng.uniform(-1.5, 1.5), rng.uniform(-3.0, 3.0))
    trans = tuple(float(v) for v in rng.uniform(-8.0, 8.0, 3))
    return anatomy.Pose(tuple(round(float(r), 3) for r in rot), tuple(round(v, 2) for v in trans))


def _kidney_shift(rng: np.random.Generator, enabled: bool) -> tuple[float, float, float]:
    if not enabled:
        return (0.0, 0.0, 0.0)
    return (0.0, 0.0, round(float(rng.uniform(5.0, 10.0) * rng.choice([-1.0, 1.0])), 2))


def _whole_seconds(dt: datetime) -> datetime:
    return dt.replace(microsecond=0)


class _Activity:
    """Per-voxel activity lookup of one rasterised anatomy at a given time."""

    def __init__(self, labels: np.ndarray, table: LabelTable, curves: dict[str, SumOfExponentials]):
        self.labels = labels
        self.nlab = max(r.label for r in table) + 1
        self.voxels = np.bincount(labels.ravel(), minlength=self.nlab)
        self.table = table
        self.curves = curves

    def region_activity(self, t_h: float) -> dict[str, float]:
        return {r.name: (float(self.curves[r.name].activity(t_h)) if r.name in self.curves else 0.0)
                for r in self.table}

    def lut(self, t_h: float) -> np.ndarray:
        lut = np.zeros(self.nlab)
        for r in self.table:
            if r.name in self.curves:
                n = self.voxels[r.label]
                if n == 0:
                    raise InputError(f"region {r.name} has no voxel on this grid", source="phantom")
                lut[r.label] = self.curves[r.name].activity(t_h) / n
        return lut

    def fraction_in(self, k0: int, k1: int) -> np.ndarray:
        inside = np.bincount(self.labels[k0:k1].ravel(), minlength=self.nlab)
        return np.divide(inside, self.voxels, out=np.zeros(self.nlab), where=self.voxels > 0)


def generate_patient(size: str = "small", *, seed: int = 0, cycles: int = 1, kidney_motion: bool = False,
                     pet_mismatch: Mapping[str, float] | float | None = None,
                     timepoints_h: Sequence[float] = DEFAULT_TIMEPOINTS_H,
                     injected_activity_Bq: float = 7.4e9, pet_activity_Bq: float = 1.8e8,
                     with_pet: bool = True, pet_noise: bool = False,
                     spect_fwhm_mm: float = 11.0, pet_fwhm_mm: float = 5.5,
                     sensitivity_cps_per_MBq: float = DEFAULT_SENSITIVITY_CPS_PER_MBQ,
                     dead_time_s: float = DEFAULT_DEAD_TIME_S, bed_overlap_slices: int | None = None,
                     kinetics_base: tuple[kinetics.RegionKinetics, ...] | None = None,
                     progress: Progress | None = None) -> SyntheticPatient:
    """Generate a deterministic synthetic 177Lu-PSMA-617 patient.

    Parameters
    ----------
    size : {"small", "small2x", "demo", "clinical"}
        ``small``: SPECT 6 mm voxels (64×48 in-plane, 3 beds of 64 slices), CT 3×3×6 mm, for tests;
        ``small2x``: the same with the CT at 1.5×1.5×3 mm (memory-growth test);
        ``demo``: SPECT 4.8 mm (128×128, 3 beds of 80 slices), CT 2.4×2.4×4.8 mm, PET 4 mm;
        ``clinical``: SPECT 4.42 mm (128×128, 3 beds of 88 slices), truth grid 2.21 mm isotropic,
        CT 512×512 at 0.977 mm with 2 mm slices, PET 200×200 at 4 mm (docs/phantom.md).
        Where the CT grid differs from the truth grid (small2x, clinical) the label map, density and
        truth masses stay on the truth grid (``truth["grids"]["label_spacing_mm"]``).
    seed : int
        Seed of every random draw (pose, schedule, noise).
    cycles : int
        Number of therapy cycles (1 or more; each another 177Lu administration, 6 weeks apart).
    kidney_motion : bool
        Move the kidneys 5–10 mm cranio-caudally relative to the spine at every timepoint but the
        reference (cycle 1 tp1).
    pet_mismatch : mapping, float or None
        68Ga vs 177Lu uptake mismatch m per region or group (U_Ga = U_Lu (1 + m)); None: the
        documented default (:data:`kinetics.DEFAULT_PET_MISMATCH`); 0: no mismatch.
    timepoints_h : sequence of float
        Nominal SPECT times (h p.i.); bed 1 starts within ±15 min of each.
    injected_activity_Bq, pet_activity_Bq : float
        Net injected 177Lu activity per cycle and 68Ga activity (Bq).
    with_pet, pet_noise : bool
        Simulate the PET study; add Poisson noise to it.
    spect_fwhm_mm, pet_fwhm_mm : float
        Image-space resolution (mm).
    sensitivity_cps_per_MBq, dead_time_s : float
        Camera calibration and paralysable dead time.
    bed_overlap_slices : int, optional
        Overlap of neighbouring SPECT beds (slices); default of the size preset.
    kinetics_base : tuple of RegionKinetics, optional
        The patient's cycle-1 177Lu kinetics (one entry per region of :data:`kinetics.LU_KINETICS`,
        same order); default: the reference kinetics. The PET is linked to it as usual.
        :mod:`.cohort` varies it between patients.
    progress : callable, optional
        ``progress(fraction, message)``.

    Returns
    -------
    SyntheticPatient
    """
    if size not in SIZES:
        raise InputError(f"unknown size {size!r} (expected one of {', '.join(SIZES)})", source="size")
    if int(cycles) != cycles or cycles < 1:
        raise InputError(f"must be an integer ≥ 1, got {cycles!r}", source="cycles")
    tps = tuple(float(t) for t in timepoints_h)
    if not tps or any(not math.isfinite(t) or t <= 0.5 for t in tps) or any(b <= a for a, b in itertools.pairwise(tps)):
        raise InputError(f"must be increasing times > 0.5 h, got {list(timepoints_h)}", source="timepoints_h")
    if not (injected_activity_Bq > 0 and pet_activity_Bq > 0):
        raise InputError("activities must be > 0 Bq", source="injected_activity_Bq")
    preset = SIZES[size]
    overlap = preset.overlap_slices if bed_overlap_slices is None else int(bed_overlap_slices)
    if not 0 <= overlap < preset.bed_slices // 2:
        raise InputError(f"must be in [0, {preset.bed_slices // 2}) slices, got {bed_overlap_slices}",
                         source="bed_overlap_slices")
    report = progress or (lambda f, m: None)
    base = kinetics.LU_KINETICS if kinetics_base is None else tuple(kinetics_base)
    if [k.name for k in base] != [k.name for k in kinetics.LU_KINETICS]:
        raise InputError("must list the regions of kinetics.LU_KINETICS in the same order", source="kinetics_base")
    lu = get_nuclide("Lu-177")
    table = anatomy.label_table()
    hu_lut = anatomy.hu_lookup()
    rho_lut = anatomy.density_lookup()
    camera = Camera(DEFAULT_CAMERA.manufacturer, DEFAULT_CAMERA.model, DEFAULT_CAMERA.collimator,
                    DEFAULT_CAMERA.energy_windows_keV, DEFAULT_CAMERA.reconstruction, dead_time_s)

    n_slices = 3 * preset.bed_slices - 2 * overlap
    fz = preset.fine_factor[2]
    em_grid, fine_grid = _grids(preset, preset.spect_voxel_mm, preset.spect_matrix_xy, n_slices, _Z_BOTTOM_MM,
                                preset.fine_factor)
    ct_grid = _ct_grid(preset, em_grid)
    bed_k0 = [n_slices - preset.bed_slices - b * (preset.bed_slices - overlap) for b in range(3)]  # bed 1 cranial

    report(0.0, "anatomy")
    ref_labels = anatomy.rasterize(fine_grid)
    voxels = np.bincount(ref_labels.ravel(), minlength=len(hu_lut))
    rho_by = {s.region.name: s.density_g_per_mL for s in anatomy.REGIONS}
    hu_by = {s.region.name: s.hu for s in anatomy.REGIONS}
    vol_mL = {r.name: float(voxels[r.label]) * fine_grid.voxel_volume_mL for r in table}
    mass_g = {n: v * rho_by[n] for n, v in vol_mL.items()}

    sched = _rng(seed, 1)
    inj1 = datetime(2026, 3, 2, 9, 0) + timedelta(minutes=int(sched.integers(0, 60)))
    total_steps = cycles * len(tps) + (2 if with_pet else 0)
    step = 0
    cycle_objs, cycle_truths = [], []
    for c in range(1, cycles + 1):
        inj = inj1 + timedelta(weeks=6 * (c - 1), minutes=int(sched.integers(-30, 30)) if c > 1 else 0)
        admin = Administration("Lu-177", "PSMA-617", inj, float(injected_activity_Bq),
                               provenance={"injection_datetime": "synthetic phantom",
                                           "injected_activity_Bq": "synthetic phantom"})
        kin = kinetics.cycle_kinetics(c, base=base)
        curves = kinetics.region_curves(kin, kinetics.LU_EXCRETION, lu, injected_activity_Bq)
        excreted = kinetics.excreted_curve(kinetics.LU_EXCRETION, lu, injected_activity_Bq)
        whole = kinetics.whole_body_curve(kinetics.LU_EXCRETION, lu, injected_activity_Bq)
        tp_objs, tp_truths = [], []
        for ti, nominal in enumerate(tps, start=1):
            report(step / total_steps, f"cycle {c} timepoint {ti} ({nominal:g} h)")
            step += 1
            r = _rng(seed, 2, c, ti)
            ref = c == 1 and ti == 1
            pose = anatomy.Pose() if ref else _random_pose(r)
            shift = (0.0, 0.0, 0.0) if ref else _kidney_shift(r, kidney_motion)
            labels = ref_labels if ref else anatomy.rasterize(fine_grid, pose=pose, kidney_shift_mm=shift)
            act = _Activity(labels, table, curves)
            ct = _ct_image(labels, fine_grid, ct_grid, hu_lut)
            frame_s = 15.0 if nominal < 48 else 20.0
            n_proj = 60
            duration = frame_s * n_proj
            start = _whole_seconds(inj + timedelta(hours=nominal, minutes=float(r.uniform(-15, 15))))
            beds, bed_truths = [], []
            for b in range(3):
                t_mid = mid_acquisition_time_h(start, duration, inj)
                k0, k1 = bed_k0[b], bed_k0[b] + preset.bed_slices
                lut = act.lut(t_mid)
                act_em = spect.block_sum(lut[labels[k0 * fz:k1 * fz]], preset.fine_factor)
                bc = spect.simulate_bed_counts(act_em, spacing_xyz_mm=em_grid.spacing, fwhm_mm=spect_fwhm_mm,
                                               sensitivity_cps_per_MBq=sensitivity_cps_per_MBq,
                                               dead_time_s=dead_time_s, duration_s=duration,
                                               rng=_rng(seed, 3, c, ti, b + 1))
                bed_grid = anatomy.Grid((em_grid.origin[0], em_grid.origin[1],
                                         em_grid.origin[2] + k0 * em_grid.spacing[2]), em_grid.spacing,
                                        (em_grid.size[0], em_grid.size[1], preset.bed_slices))
                z_range = (bed_grid.origin[2] - bed_grid.spacing[2] / 2,
                           bed_grid.origin[2] + (preset.bed_slices - 0.5) * bed_grid.spacing[2])
                beds.append(SyntheticBed(b + 1, start, duration, frame_s, n_proj, t_mid, z_range,
                                         bed_grid.image(bc.counts_kji), bc.activity_in_fov_Bq, bc.true_rate_cps,
                                         bc.observed_rate_cps, bc.live_fraction, bc.expected_counts))
                region_a = act.region_activity(t_mid)
                frac = act.fraction_in(k0 * fz, k1 * fz)
                bed_truths.append({
                    "bed": b + 1, "acquisition_start": start.isoformat(), "duration_s": duration,
                    "frame_duration_s": frame_s, "projections_per_detector": n_proj, "time_h": t_mid,
                    "z_range_mm": list(z_range), "activity_in_fov_Bq": bc.activity_in_fov_Bq,
                    "true_count_rate_cps": bc.true_rate_cps, "observed_count_rate_cps": bc.observed_rate_cps,
                    "live_fraction": bc.live_fraction, "expected_counts": bc.expected_counts,
                    "total_counts": float(bc.counts_kji.sum(dtype=np.float64)),
                    "region_activity_Bq": region_a,
                    "region_activity_in_fov_Bq": {r.name: region_a[r.name] * float(frac[r.label]) for r in table},
                    "whole_body_Bq": float(whole.activity(t_mid)), "excreted_Bq": float(excreted.activity(t_mid)),
                })
                gap_min = float(r.uniform(2.0, 5.0))
                start = _whole_seconds(start + timedelta(seconds=duration, minutes=gap_min))
            t_tp = float(np.mean([bd.time_h for bd in beds]))
            tp_objs.append(SyntheticTimepoint(c, ti, f"tp{ti}", nominal, t_tp, pose, shift, ct, tuple(beds),
                                              fine_grid.image(labels)))
            tp_truths.append({"timepoint": ti, "label": f"tp{ti}", "nominal_time_h": nominal, "time_h": t_tp,
                              "ct_acquisition_start": (beds[0].acquisition_start - CT_LEAD).isoformat(),
                              "pose": pose.to_dict(), "kidney_shift_mm": list(shift),
                              "region_activity_Bq": act.region_activity(t_tp), "beds": bed_truths})
        cycle_objs.append(SyntheticCycle(c, admin, curves, excreted, whole, tuple(tp_objs)))
        cycle_truths.append(_cycle_truth(c, admin, kin, curves, excreted, whole, mass_g, table, tp_truths))

    pet_obj, pet_truth = None, None
    if with_pet:
        report(step / total_steps, "68Ga-PSMA-11 PET")
        pet_obj, pet_truth = _simulate_pet(preset, seed, inj1, pet_activity_Bq, pet_mismatch, kidney_motion,
                                           pet_fwhm_mm, pet_noise, table, hu_lut, base)

    report(0.96, "truth")
    label_img = fine_grid.image(ref_labels)
    density_img = fine_grid.image(rho_lut[ref_labels].astype(np.float32))
    for ct in cycle_truths:  # like-for-like truth: the true TIA through the pipeline's kernel physics
        _add_kernel_truth(ct, label_img, density_img, table)
    # The synthetic camera's recovery curve is exactly the Gaussian-sphere model at the simulated FWHM:
    # what a sphere-phantom calibration of this camera gives (calibration.recovery, tested there).
    from ..calibration.recovery import RecoveryCurve

    recovery = RecoveryCurve("gaussian_sphere", {"fwhm_mm": float(spect_fwhm_mm), "plateau": 1.0},
                             min_volume_mL=0.5).to_dict()
    calib = CalibrationEntry(camera.key(), float(sensitivity_cps_per_MBq), 0.0, float(dead_time_s), recovery,
                             (inj1 - timedelta(days=30)).date().isoformat(), "synthetic phantom (exact)")
    patient_id = f"LUPHANTOM-{size.upper()}-{seed:04d}"
    truth = {
        "format": TRUTH_FORMAT, "version": TRUTH_VERSION, "patient_id": patient_id, "size": size, "seed": seed,
        "units": {"activity": "Bq", "time": "h post injection (mid-acquisition)", "tia": "Bq h", "dose": "Gy",
                  "length": "mm", "volume": "mL", "mass": "g", "datetimes": "ISO 8601, naive local time"},
        "nuclides": {n: {"half_life_h": get_nuclide(n).half_life_h,
                         "electron_energy_per_decay_J": get_nuclide(n).electron_energy_per_decay_J}
                     for n in ("Lu-177", "Ga-68")},
        "regions": [{"label": r.label, "name": r.name, "side": r.side, "kind": r.kind, "group": r.group,
                     "volume_mL": vol_mL[r.name], "mass_g": mass_g[r.name], "density_g_per_mL": rho_by[r.name],
                     "hu": hu_by[r.name], "nominal_volume_mL": anatomy.nominal_volume_mL(r.name)} for r in table],
        "grids": {"ct_spacing_mm": list((ct_grid or fine_grid).spacing), "ct_size": list((ct_grid or fine_grid).size),
                  **({"label_spacing_mm": list(fine_grid.spacing), "label_size": list(fine_grid.size)}
                     if ct_grid is not None else {}),
                  "spect_spacing_mm": list(em_grid.spacing), "spect_bed_size": [*em_grid.size[:2], preset.bed_slices],
                  "bed_overlap_slices": overlap},
        "camera": {"manufacturer": camera.manufacturer, "model": camera.model, "collimator": camera.collimator,
                   "energy_windows_keV": [list(w) for w in camera.energy_windows_keV],
                   "reconstruction": camera.reconstruction, "key": camera.key()},
        "calibration": {"sensitivity_cps_per_MBq": sensitivity_cps_per_MBq, "dead_time_s": dead_time_s,
                        "dead_time_model": "paralysable: m = n exp(-n tau); live fraction = m/n",
                        "count_rate_definition": "n = sensitivity x activity inside the bed's field of view "
                                                 "at mid-bed time (activity outside the FoV ignored)",
                        "counts": "expected counts = blurred activity (MBq) x sensitivity x duration_s x "
                                  "live_fraction; Poisson"},
        "resolution": {"spect_fwhm_mm": spect_fwhm_mm, "pet_fwhm_mm": pet_fwhm_mm},
        "reference": "label map, masses and volumes on cycle 1 tp1's CT grid (identity pose, no kidney shift)",
        "settings": {"cycles": cycles, "kidney_motion": bool(kidney_motion), "timepoints_h": list(tps),
                     "injected_activity_Bq": injected_activity_Bq, "with_pet": bool(with_pet),
                     "pet_noise": bool(pet_noise), "pet_activity_Bq": pet_activity_Bq},
        "cycles": cycle_truths, "pet": pet_truth,
    }
    report(1.0, "done")
    return SyntheticPatient(patient_id, size, int(seed), label_img, table, density_img, camera, calib,
                            tuple(cycle_objs), pet_obj, truth)


def _add_kernel_truth(cycle_truth: dict, label_img, density_img, table: LabelTable) -> None:
    """Add ``dose_kernel_Gy`` and its per-GBq values to a cycle's truth (:mod:`.dose_truth`)."""
    from .dose_truth import KERNEL_TRUTH_METHOD, kernel_truth_doses

    dose = kernel_truth_doses(label_img, density_img, table, {r.name: cycle_truth["tia_Bq_h"][r.name] for r in table})
    gbq = cycle_truth["injection"]["activity_Bq"] / 1e9
    cycle_truth["dose_kernel_Gy"] = dose
    cycle_truth["dose_kernel_per_activity_Gy_per_GBq"] = {k: v / gbq for k, v in dose.items()}
    cycle_truth["dose_kernel_method"] = KERNEL_TRUTH_METHOD


def _group_members(table: LabelTable) -> dict[str, tuple[str, ...]]:
    return {g: tuple(r.name for r in regs) for g, regs in table.groups().items()}


def _cycle_truth(c, admin, kin, curves, excreted, whole, mass_g, table, tp_truths) -> dict:
    tia = {r.name: 0.0 for r in table}  # regions without uptake (cortical bone) hold no activity
    tia.update({name: curve.integral() for name, curve in curves.items()})
    dose, dpa = {}, {}
    gbq = admin.injected_activity_Bq / 1e9
    for name, t in tia.items():
        dose[name] = kinetics.led_dose_Gy(t, mass_g[name])
        dpa[name] = dose[name] / gbq
    for g, members in _group_members(table).items():
        t = sum(tia.get(m, 0.0) for m in members)
        tia[g] = t
        dose[g] = kinetics.led_dose_Gy(t, sum(mass_g[m] for m in members))
        dpa[g] = dose[g] / gbq
    marrow = kinetics.MARROW_REGIONS
    tia["red_marrow_total"] = sum(tia[m] for m in marrow)
    dose["red_marrow_total"] = kinetics.led_dose_Gy(tia["red_marrow_total"], sum(mass_g[m] for m in marrow))
    dpa["red_marrow_total"] = dose["red_marrow_total"] / gbq
    tia["whole_body"] = whole.integral()
    tia["excreted_decays_Bq_h"] = excreted.integral()
    return {
        "cycle": c,
        "injection": {"datetime": admin.injection_datetime.isoformat(), "activity_Bq": admin.injected_activity_Bq,
                      "nuclide": admin.nuclide, "ligand": admin.ligand},
        "kinetics": kinetics_dict(kin, kinetics.LU_EXCRETION, curves),
        "excretion": {"fractions": list(kinetics.LU_EXCRETION.fractions),
                      "half_lives_bio_h": list(kinetics.LU_EXCRETION.half_lives_h),
                      "source": kinetics.LU_EXCRETION.source, **curve_dict(excreted)},
        "whole_body": curve_dict(whole),
        "tia_Bq_h": tia, "dose_Gy": dose, "dose_per_activity_Gy_per_GBq": dpa,
        "dose_method": "electron local deposition (approximate): TIA x E_e / mass, E_e from nuclides",
        "timepoints": tp_truths,
    }


def _simulate_pet(preset, seed, inj1, activity_Bq, mismatch, kidney_motion, fwhm_mm, noise, table, hu_lut, base):
    ga = get_nuclide("Ga-68")
    r = _rng(seed, 4)
    pet_inj = _whole_seconds(inj1 - timedelta(days=int(r.integers(8, 15)), hours=float(r.uniform(-1.5, 1.5))))
    admin = Administration("Ga-68", "PSMA-11", pet_inj, float(activity_Bq),
                           provenance={"injection_datetime": "synthetic phantom"})
    m = kinetics.expand_mismatch(mismatch)
    kin = kinetics.pet_kinetics(m, base=base)
    curves = kinetics.region_curves(kin, kinetics.LU_EXCRETION, ga, activity_Bq)
    pose = _random_pose(r)
    shift = _kidney_shift(r, kidney_motion)
    v = preset.pet_voxel_mm
    n_slices = round((3 * preset.bed_slices - 2 * preset.overlap_slices) * preset.spect_voxel_mm / v)
    em_grid, fine_grid = _grids(preset, v, preset.pet_matrix_xy, n_slices, _Z_BOTTOM_MM)
    labels = anatomy.rasterize(fine_grid, pose=pose, kidney_shift_mm=shift)
    act = _Activity(labels, table, curves)
    ct = fine_grid.image(hu_lut[labels])
    kc = round((_DYNAMIC_CENTER_Z_MM - em_grid.origin[2]) / v)
    k0 = kc - preset.pet_dynamic_slices // 2
    k1 = k0 + preset.pet_dynamic_slices
    dyn_grid = anatomy.Grid((em_grid.origin[0], em_grid.origin[1], em_grid.origin[2] + k0 * v), em_grid.spacing,
                            (em_grid.size[0], em_grid.size[1], preset.pet_dynamic_slices))
    specs = pet.frame_table()
    frac = act.fraction_in(k0, k1)
    frames, frame_truth = [], []
    for fi, fs in enumerate(specs):
        t_mid = (fs.start_s + fs.duration_s / 2) / S_PER_H
        lut = act.lut(t_mid)
        a = spect.block_sum(lut[labels[k0:k1]], _FINE)
        img = pet.concentration_image(a, voxel_mL=em_grid.voxel_volume_mL, spacing_xyz_mm=em_grid.spacing,
                                      fwhm_mm=fwhm_mm, duration_s=fs.duration_s, noise=noise, counts_per_Bq_s=0.01,
                                      rng=_rng(seed, 5, fi))
        frames.append(dyn_grid.image(img))
        t0, t1 = fs.start_s / S_PER_H, (fs.start_s + fs.duration_s) / S_PER_H
        frame_truth.append({"start_s": fs.start_s, "duration_s": fs.duration_s, "time_h": t_mid,
                            "region_activity_Bq": act.region_activity(t_mid),
                            "region_mean_activity_Bq": {n: c.integral(t0, t1) / (t1 - t0)
                                                        for n, c in curves.items()}})
    static_start = _whole_seconds(pet_inj + timedelta(minutes=65))
    static_dur = 720.0
    t_mid = mid_acquisition_time_h(static_start, static_dur, pet_inj)
    lut = act.lut(t_mid)
    a = spect.block_sum(lut[labels], _FINE)
    static = em_grid.image(pet.concentration_image(a, voxel_mL=em_grid.voxel_volume_mL, spacing_xyz_mm=em_grid.spacing,
                                                   fwhm_mm=fwhm_mm, duration_s=static_dur, noise=noise,
                                                   counts_per_Bq_s=0.01, rng=_rng(seed, 6)))
    t0 = hours_between(pet_inj, static_start)
    t1 = t0 + static_dur / S_PER_H
    obj = SyntheticPet(admin, pose, shift, ct, pet_inj, tuple(frames), specs, static_start, static_dur, static,
                       curves, m)
    truth = {
        "injection": {"datetime": pet_inj.isoformat(), "activity_Bq": float(activity_Bq), "nuclide": "Ga-68",
                      "ligand": "PSMA-11"},
        "mismatch": m,
        "relation": "U_Ga,r = U_Lu,r x (1 + m_r); same biological uptake/washout half-lives and urinary "
                    "excretion as 177Lu (cycle 1); physical decay of Ga-68",
        "pose": pose.to_dict(), "kidney_shift_mm": list(shift),
        "kinetics": kinetics_dict(kin, kinetics.LU_EXCRETION, curves),
        "tia_Bq_h": {n: c.integral() for n, c in curves.items()},
        "dynamic": {"acquisition_start": pet_inj.isoformat(),
                    "z_range_mm": [dyn_grid.origin[2] - v / 2, dyn_grid.origin[2] + (dyn_grid.size[2] - 0.5) * v],
                    "framing": [list(x) for x in pet.DEFAULT_DYNAMIC_FRAMING],
                    "region_fraction_in_fov": {r.name: float(frac[r.label]) for r in table},
                    "frames": frame_truth},
        "static": {"acquisition_start": static_start.isoformat(), "duration_s": static_dur, "time_h": t_mid,
                   "region_activity_Bq": act.region_activity(t_mid),
                   "region_mean_activity_Bq": {n: c.integral(t0, t1) / (t1 - t0) for n, c in curves.items()}},
        "image_values": "Bq/mL at mid-frame time (not decay-corrected); Gaussian FWHM pet_fwhm_mm",
        "noise": bool(noise),
    }
    return obj, truth
