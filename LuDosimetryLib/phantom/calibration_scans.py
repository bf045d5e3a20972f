"""Calibration scans with their truth: a uniform cylinder, an IEC-style sphere phantom, a decay series.

Each scan is a SPECT (counts) and its CT on a common grid, written as NIfTI + JSON sidecar
(docs/conventions.md) and as DICOM (CT Image Storage, NM reconstructed tomo, via
:mod:`LuDosimetryLib.dicomio`), with ``truth.json`` holding every number the simulation used.

Two SPECT models:

``"image"`` (default, fast)
    The image-space model of the synthetic patient: activity (Bq) per voxel (exact partial
    volume by supersampling) blurred by an isotropic Gaussian of ``fwhm_mm`` (reflecting edges,
    total conserved), expected counts = blurred activity (MBq) × S (cps/MBq) × duration × live
    fraction e^(−nτ), n = S × activity in the field of view, then a Poisson draw.
``"twin"``
    The projection-space SPECT twin (:mod:`LuDosimetryLib.calibration.twin`): attenuation from
    the CT, depth-dependent collimator blur, Poisson projections, OSEM with the same model.

Phantoms (inner dimensions): cylinder Ø 216 × 186 mm (a Jaszczak-size flood phantom, 6.8 L);
sphere phantom: a water cylinder Ø 220 × 180 mm (the IEC 61675-1 body phantom is D-shaped; a
cylinder keeps the geometry simple) holding the six IEC spheres (inner Ø 10, 13, 17, 22, 28,
37 mm) with centres on a circle of radius 57.2 mm in the central transverse plane, no walls
(cold sphere walls are not modelled), no lung insert.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..calibration.recovery import IEC_SPHERE_DIAMETERS_MM, sphere_volume_mL
from ..errors import InputError
from ..model import Camera
from ..nuclides import get_nuclide
from ..results import atomic_output_path, to_jsonable, write_json
from ..timing import frame_average_decay_factor, hours_between
from ..units import S_PER_H
from .spect import simulate_bed_counts

__all__ = ["CalibrationScanSettings", "PhantomScan", "DEFAULT_CAMERA", "cylinder_scan", "sphere_phantom_scan",
           "decay_series_scans", "write_scan", "write_calibration_scans", "IEC_SPHERE_RING_RADIUS_MM",
           "image_space_counts", "SPECT_MODELS"]

#: Distance (mm) of the IEC sphere centres from the phantom axis (IEC 61675-1).
IEC_SPHERE_RING_RADIUS_MM = 57.2
SPECT_MODELS = ("image", "twin")
DEFAULT_CAMERA = Camera("LuDosimetry", "Synthetic SPECT", "MEGP", ((187.5, 229.2),), "image-space Gaussian 11 mm")
_T0 = datetime(2026, 1, 5, 9, 0, 0)


@dataclass(frozen=True)
class CalibrationScanSettings:
    """What the simulated camera and its scans are.

    Attributes
    ----------
    sensitivity_cps_per_MBq : float
        True sensitivity S used by the simulation (cps/MBq).
    dead_time_s : float
        True paralysable dead time τ (s) (effective, in reconstructed photopeak counts).
    fwhm_mm : float
        Image-space resolution (mm) of the ``"image"`` model.
    voxel_mm : float
        Cubic voxel edge (mm).
    matrix : int
        In-plane matrix (voxels).
    slices : int
        Axial slices.
    duration_s : float
        Acquisition duration (s) = frame_duration × projections per detector.
    projections_per_detector : int
    nuclide : str
    camera : Camera
    spect_model : {"image", "twin"}
    seed : int
    """

    sensitivity_cps_per_MBq: float = 9.0
    dead_time_s: float = 2.5e-6
    fwhm_mm: float = 11.0
    voxel_mm: float = 4.8
    matrix: int = 64
    slices: int = 56
    duration_s: float = 1800.0
    projections_per_detector: int = 60
    nuclide: str = "Lu-177"
    camera: Camera = DEFAULT_CAMERA
    spect_model: str = "image"
    seed: int = 0
    twin: dict = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if self.spect_model not in SPECT_MODELS:
            raise InputError(f"must be one of {', '.join(SPECT_MODELS)}, got {self.spect_model!r}",
                             source="spect_model")


@dataclass(frozen=True, eq=False)
class PhantomScan:
    """One simulated SPECT/CT scan and its truth."""

    name: str
    spect: sitk.Image
    ct: sitk.Image
    sidecar: dict
    truth: dict


def _reference(settings: CalibrationScanSettings) -> sitk.Image:
    n, nz, d = settings.matrix, settings.slices, settings.voxel_mm
    img = sitk.Image([n, n, nz], sitk.sitkFloat32)
    img.SetSpacing((d, d, d))
    # Isocentre at LPS (0, 0, 0) in the centre of the grid.
    img.SetOrigin((-(n - 1) / 2 * d, -(n - 1) / 2 * d, -(nz - 1) / 2 * d))
    return img


def _centres(settings: CalibrationScanSettings) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Voxel-centre coordinates (z, y, x) in mm, broadcastable to [k, j, i]."""
    n, nz, d = settings.matrix, settings.slices, settings.voxel_mm
    z = (np.arange(nz) - (nz - 1) / 2) * d
    y = (np.arange(n) - (n - 1) / 2) * d
    return z[:, None, None], y[None, :, None], y[None, None, :]


def _fraction(settings: CalibrationScanSettings, inside, sub: int = 4) -> np.ndarray:
    """Fraction of each voxel inside a region (``inside(x, y, z) -> bool``), by sub×sub×sub sampling."""
    z, y, x = _centres(settings)
    d = settings.voxel_mm
    offs = (np.arange(sub) + 0.5) / sub - 0.5
    acc = np.zeros((z.size, y.size, x.size), dtype=np.float32)
    for oz in offs:
        for oy in offs:
            acc += sum(inside(x + ox * d, y + oy * d, z + oz * d) for ox in offs).astype(np.float32)
    return acc / sub ** 3


def _cylinder(radius_mm: float, length_mm: float, centre_mm=(0.0, 0.0, 0.0)):
    cx, cy, cz = centre_mm
    return lambda x, y, z: ((x - cx) ** 2 + (y - cy) ** 2 <= radius_mm ** 2) & (np.abs(z - cz) <= length_mm / 2)


def _ball(radius_mm: float, centre_mm):
    cx, cy, cz = centre_mm
    return lambda x, y, z: (x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2 <= radius_mm ** 2


def image_space_counts(activity_Bq: np.ndarray, *, settings: CalibrationScanSettings, duration_s: float,
                       rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """The synthetic patient's image-space SPECT model (:func:`LuDosimetryLib.phantom.spect.simulate_bed_counts`)."""
    d = settings.voxel_mm
    bed = simulate_bed_counts(activity_Bq, spacing_xyz_mm=(d, d, d), fwhm_mm=settings.fwhm_mm,
                              sensitivity_cps_per_MBq=settings.sensitivity_cps_per_MBq,
                              dead_time_s=settings.dead_time_s, duration_s=duration_s, rng=rng)
    return bed.counts_kji, {"activity_in_fov_Bq": bed.activity_in_fov_Bq, "true_rate_cps": bed.true_rate_cps,
                            "observed_rate_cps": bed.observed_rate_cps, "live_fraction": bed.live_fraction,
                            "expected_counts": bed.expected_counts}


def _acquire(activity_Bq: np.ndarray, hu: np.ndarray, settings: CalibrationScanSettings, duration_s: float,
             rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    if settings.spect_model == "image":
        return image_space_counts(activity_Bq, settings=settings, duration_s=duration_s, rng=rng)
    from ..calibration.twin import TwinSettings, simulate_scan

    tw = TwinSettings(**settings.twin) if settings.twin else TwinSettings()
    res = simulate_scan(activity_Bq, hu, voxel_mm=settings.voxel_mm, duration_s=duration_s,
                        sensitivity_cps_per_MBq=settings.sensitivity_cps_per_MBq,
                        dead_time_s=settings.dead_time_s, settings=tw, rng=rng)
    return res.counts, res.bookkeeping


def _image(array: np.ndarray, ref: sitk.Image) -> sitk.Image:
    img = sitk.GetImageFromArray(array.astype(np.float32))
    img.CopyInformation(ref)
    return img


def _sidecar(settings: CalibrationScanSettings, *, start: datetime, duration_s: float, assay_Bq: float | None,
             assay_time: datetime | None, phantom: str) -> dict:
    cam = settings.camera
    return {"modality": "NM", "units": "counts", "decay_correction": "NONE",
            "acquisition_start": start.isoformat(), "duration_s": duration_s,
            "injection": {"datetime": assay_time.isoformat() if assay_time else None, "activity_Bq": assay_Bq,
                          "nuclide": get_nuclide(settings.nuclide).name, "ligand": "none (calibration phantom)"},
            "camera": {"manufacturer": cam.manufacturer, "model": cam.model, "collimator": cam.collimator,
                       "energy_windows_keV": [list(w) for w in cam.energy_windows_keV],
                       "reconstruction": cam.reconstruction},
            "phantom": phantom, "projections_per_detector": settings.projections_per_detector,
            "frame_duration_s": duration_s / settings.projections_per_detector}


def _mean_activity(a_assay_Bq: float, assay: datetime, start: datetime, duration_s: float, nuclide: str) -> float:
    nuc = get_nuclide(nuclide)
    return (a_assay_Bq * math.exp(-nuc.decay_constant_per_h * hours_between(assay, start))
            * frame_average_decay_factor(nuc, duration_s / S_PER_H))


def cylinder_scan(settings: CalibrationScanSettings = CalibrationScanSettings(), *, assay_activity_Bq: float = 800e6,
                  assay_datetime: datetime = _T0, acquisition_start: datetime = _T0 + timedelta(hours=2),
                  radius_mm: float = 108.0, length_mm: float = 186.0,
                  centre_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> PhantomScan:
    """A uniform cylinder of known activity (the sensitivity scan).

    ``centre_mm`` moves the cylinder (LPS); moved far enough axially it leaves the field of view
    (to test the error for that).
    """
    ref = _reference(settings)
    frac = _fraction(settings, _cylinder(radius_mm, length_mm, centre_mm))
    a_mean = _mean_activity(assay_activity_Bq, assay_datetime, acquisition_start, settings.duration_s,
                            settings.nuclide)
    volume_mL = math.pi * radius_mm ** 2 * length_mm / 1000.0
    activity = frac * (a_mean / float(frac.sum()))  # exactly the assayed activity, decayed
    hu = -1000.0 + 1000.0 * frac
    rng = np.random.default_rng(settings.seed)
    counts, book = _acquire(activity, hu, settings, settings.duration_s, rng)
    truth = {"phantom": "cylinder", "radius_mm": radius_mm, "length_mm": length_mm, "centre_mm": list(centre_mm),
             "volume_mL": volume_mL, "assay_activity_Bq": assay_activity_Bq,
             "assay_datetime": assay_datetime.isoformat(), "acquisition_start": acquisition_start.isoformat(),
             "duration_s": settings.duration_s, "mean_activity_during_acquisition_Bq": a_mean,
             "activity_in_fov_Bq": float(activity.sum()), **book}
    return PhantomScan("cylinder", _image(counts, ref), _image(hu, ref),
                       _sidecar(settings, start=acquisition_start, duration_s=settings.duration_s,
                                assay_Bq=assay_activity_Bq, assay_time=assay_datetime, phantom="cylinder"), truth)


def sphere_phantom_scan(settings: CalibrationScanSettings = CalibrationScanSettings(), *,
                        sphere_conc_Bq_per_mL: float = 0.8e6, sphere_to_background: float = 8.0,
                        diameters_mm: tuple[float, ...] = IEC_SPHERE_DIAMETERS_MM,
                        ring_radius_mm: float = IEC_SPHERE_RING_RADIUS_MM, phase_deg: float = 0.0,
                        radius_mm: float = 110.0, length_mm: float = 180.0,
                        acquisition_start: datetime = _T0 + timedelta(hours=3)) -> PhantomScan:
    """An IEC-style sphere phantom: spheres at ``sphere_conc`` in a warm background (ratio SBR).

    ``sphere_to_background = inf`` gives a cold background. Concentrations are at acquisition
    (mid-acquisition activity; the assay is written as the scan's own start for simplicity).
    """
    ref = _reference(settings)
    body = _fraction(settings, _cylinder(radius_mm, length_mm))
    c_b = 0.0 if math.isinf(sphere_to_background) else sphere_conc_Bq_per_mL / sphere_to_background
    v_vox = settings.voxel_mm ** 3 / 1000.0
    conc = body * c_b
    spheres = []
    for n, dmm in enumerate(diameters_mm):
        ang = math.radians(phase_deg + 60.0 * n)
        c = (ring_radius_mm * math.cos(ang), ring_radius_mm * math.sin(ang), 0.0)
        f = _fraction(settings, _ball(dmm / 2, c))
        conc = conc + f * (sphere_conc_Bq_per_mL - c_b)
        spheres.append({"name": f"sphere_{dmm:g}mm", "diameter_mm": dmm, "volume_mL": sphere_volume_mL(dmm),
                        "centre_mm": list(c)})
    activity = conc * v_vox
    hu = -1000.0 + 1000.0 * body
    rng = np.random.default_rng(settings.seed + 1)
    counts, book = _acquire(activity, hu, settings, settings.duration_s, rng)
    total = float(activity.sum())
    truth = {"phantom": "spheres", "radius_mm": radius_mm, "length_mm": length_mm, "spheres": spheres,
             "sphere_conc_Bq_per_mL": sphere_conc_Bq_per_mL, "background_conc_Bq_per_mL": c_b,
             "sphere_to_background": sphere_to_background, "acquisition_start": acquisition_start.isoformat(),
             "duration_s": settings.duration_s, "fwhm_mm": settings.fwhm_mm, "activity_in_fov_Bq": total, **book}
    return PhantomScan("spheres", _image(counts, ref), _image(hu, ref),
                       _sidecar(settings, start=acquisition_start, duration_s=settings.duration_s, assay_Bq=total,
                                assay_time=acquisition_start, phantom="spheres"), truth)


def decay_series_scans(settings: CalibrationScanSettings = CalibrationScanSettings(), *,
                       assay_activity_Bq: float = 15e9, assay_datetime: datetime = _T0,
                       days: tuple[float, ...] = (0.1, 1.0, 2.0, 4.0, 7.0, 10.0, 14.0),
                       duration_s: float = 600.0) -> tuple[PhantomScan, ...]:
    """The same cylinder scanned as it decays (the dead-time series), one scan per day given."""
    ref = _reference(settings)
    frac = _fraction(settings, _cylinder(108.0, 186.0))
    volume_mL = math.pi * 108.0 ** 2 * 186.0 / 1000.0
    hu = -1000.0 + 1000.0 * frac
    shape = frac / frac.sum()
    out = []
    for n, day in enumerate(days):
        start = assay_datetime + timedelta(days=day)
        a_mean = _mean_activity(assay_activity_Bq, assay_datetime, start, duration_s, settings.nuclide)
        rng = np.random.default_rng(settings.seed + 100 + n)
        counts, book = _acquire(shape * a_mean, hu, replace(settings, spect_model="image"), duration_s, rng)
        truth = {"phantom": "decay series", "scan": n + 1, "volume_mL": volume_mL,
                 "assay_activity_Bq": assay_activity_Bq, "assay_datetime": assay_datetime.isoformat(),
                 "acquisition_start": start.isoformat(), "duration_s": duration_s,
                 "mean_activity_during_acquisition_Bq": a_mean, **book}
        out.append(PhantomScan(f"decay_{n + 1:02d}", _image(counts, ref), _image(hu, ref),
                               _sidecar(replace(settings, duration_s=duration_s), start=start, duration_s=duration_s,
                                        assay_Bq=assay_activity_Bq, assay_time=assay_datetime,
                                        phantom="decay series"), truth))
    return tuple(out)


def write_scan(scan: PhantomScan, folder: str | Path, *, dicom: bool = True, settings: CalibrationScanSettings
               = CalibrationScanSettings()) -> Path:
    """Write one scan: ``ct.nii.gz``, ``nm.nii.gz`` + ``nm.json`` (+ ``spheres.json``), ``dicom/CT``, ``dicom/NM``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, img in (("ct.nii.gz", scan.ct), ("nm.nii.gz", scan.spect)):
        with atomic_output_path(folder / name) as tmp:
            sitk.WriteImage(img, str(tmp), useCompression=True)
    write_json(folder / "nm.json", scan.sidecar)
    if "spheres" in scan.truth:  # the phantom's geometry, as a clinic keeps it for its phantom
        t = scan.truth
        write_json(folder / "spheres.json", {"spheres": t["spheres"], "sphere_to_background": t["sphere_to_background"],
                                             "sphere_conc_Bq_per_mL": t["sphere_conc_Bq_per_mL"],
                                             "background_conc_Bq_per_mL": t["background_conc_Bq_per_mL"]})
    if dicom:
        from ..dicomio import DicomPatient, DicomStudy, Radiopharmaceutical, new_uid, write_ct_series, write_nm_tomo

        start = datetime.fromisoformat(scan.sidecar["acquisition_start"])
        seed = f"calibration/{settings.seed}/{scan.name}"
        study = DicomStudy(new_uid(seed + "/study"), start, new_uid(seed + "/for"), description="calibration phantom")
        patient = DicomPatient("CALIBRATION", "Phantom^Calibration", sex="O")
        inj = scan.sidecar["injection"]
        rp = Radiopharmaceutical(inj["nuclide"], "177Lu phantom", datetime.fromisoformat(inj["datetime"]),
                                 float(inj["activity_Bq"]))
        hu = sitk.Cast(sitk.Round(scan.ct), sitk.sitkFloat32)
        write_ct_series(hu, folder / "dicom" / "CT", patient=patient, study=study, series_datetime=start,
                        uid_seed=seed + "/ct")
        write_nm_tomo(scan.spect, folder / "dicom" / "NM", patient=patient, study=study, acquisition_start=start,
                      frame_duration_s=scan.sidecar["frame_duration_s"],
                      projections_per_detector=scan.sidecar["projections_per_detector"], camera=settings.camera,
                      radiopharmaceutical=rp, units="CNTS", uid_seed=seed + "/nm", description=scan.name)
    return folder


def write_calibration_scans(out: str | Path, settings: CalibrationScanSettings = CalibrationScanSettings(), *,
                            dicom: bool = True, decay_series: bool = True) -> dict:
    """Write the cylinder, the sphere phantom and (optionally) the decay series with ``truth.json``.

    Layout: ``out/cylinder/``, ``out/spheres/``, ``out/decay/decay_01/`` …, each a :func:`write_scan`
    folder; ``out/truth.json`` holds the settings (true S, τ, FWHM, camera) and each scan's truth.

    Returns
    -------
    dict
        The truth document.
    """
    out = Path(out)
    scans = [cylinder_scan(settings), sphere_phantom_scan(settings)]
    truth = {"settings": to_jsonable(asdict(settings)), "camera_key": settings.camera.key(), "scans": {}}
    for s in scans:
        write_scan(s, out / s.name, dicom=dicom, settings=settings)
        truth["scans"][s.name] = s.truth
    if decay_series:
        for s in decay_series_scans(settings):
            write_scan(s, out / "decay" / s.name, dicom=dicom, settings=settings)
            truth["scans"][s.name] = s.truth
    write_json(out / "truth.json", truth)
    return truth
