"""The data model: patient → cycle (administration) → timepoint → bed, and PET studies.

Small frozen dataclasses. Images are :class:`SimpleITK.Image` in LPS geometry, float32, in
Bq/mL **at acquisition time** (see :mod:`LuDosimetryLib.timing`); CT in HU. Dataclasses that
hold images compare by identity (``eq=False``). Every value that ingest reads carries where it
came from in a ``provenance`` mapping (value name → "DICOM tag …", "sidecar …", "command line").
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from .errors import ConsistencyError, InputError
from .labels import LabelTable
from .nuclides import get_nuclide
from .timing import decay_correction_factor, hours_between

if TYPE_CHECKING:  # SimpleITK is imported lazily by the stages that touch images
    import SimpleITK as sitk

__all__ = ["Administration", "net_injected_activity_Bq", "Camera", "Bed", "Timepoint", "Cycle",
           "PetFrame", "PetStudy", "Segmentation", "Patient"]


def net_injected_activity_Bq(nuclide: str, *, assay_activity_Bq: float, assay_datetime: datetime,
                             injection_datetime: datetime, residual_activity_Bq: float = 0.0,
                             residual_datetime: datetime | None = None) -> float:
    """Net injected activity at injection time (Bq): assay minus residual, each decayed to injection.

    ``A = A_assay · e^(−λ(t_inj − t_assay)) − A_res · e^(−λ(t_inj − t_res))``; the residual is
    measured after injection, so its factor is > 1.

    Raises
    ------
    InputError
        If the activities are negative or the residual is not smaller than the assay.
    """
    nuc = get_nuclide(nuclide)
    if not (assay_activity_Bq > 0 and math.isfinite(assay_activity_Bq)):
        raise InputError(f"must be a finite positive activity in Bq, got {assay_activity_Bq}",
                         source="assay_activity_Bq")
    if residual_activity_Bq < 0 or not math.isfinite(residual_activity_Bq):
        raise InputError(f"must be finite and ≥ 0 Bq, got {residual_activity_Bq}", source="residual_activity_Bq")
    a = assay_activity_Bq * decay_correction_factor(nuc, 0.0, hours_between(assay_datetime, injection_datetime))
    if residual_activity_Bq:
        if residual_datetime is None:
            raise InputError("residual activity given without its measurement time", source="residual_datetime")
        dt_h = hours_between(residual_datetime, injection_datetime)
        a -= residual_activity_Bq * decay_correction_factor(nuc, 0.0, dt_h)
    if a <= 0:
        raise InputError("residual activity is not smaller than the assay activity", source="residual_activity_Bq")
    return a


@dataclass(frozen=True)
class Administration:
    """One administration of a radiopharmaceutical.

    Attributes
    ----------
    nuclide : str
        Normalised nuclide name (``"Lu-177"``, ``"Ga-68"``).
    ligand : str
        E.g. ``"PSMA-617"``, ``"PSMA-I&T"``, ``"PSMA-11"``.
    injection_datetime : datetime
        Start of injection; time zero of ``time_h``.
    injected_activity_Bq : float
        Net activity at injection (assay minus residual, each decayed to injection) (Bq).
    provenance : dict
        Source of each value (e.g. ``{"injection_datetime": "DICOM (0018,1078) in tp1/..."}``).
    """

    nuclide: str
    ligand: str
    injection_datetime: datetime
    injected_activity_Bq: float
    provenance: dict = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "nuclide", get_nuclide(self.nuclide).name)
        if not (self.injected_activity_Bq > 0 and math.isfinite(self.injected_activity_Bq)):
            raise InputError(f"must be a finite positive activity in Bq, got {self.injected_activity_Bq}",
                             source="injected_activity_Bq")


@dataclass(frozen=True)
class Camera:
    """What identifies a SPECT calibration: camera, collimator, energy windows and reconstruction.

    Attributes
    ----------
    manufacturer, model : str
    collimator : str
        E.g. ``"MEGP"``.
    energy_windows_keV : tuple of (float, float)
        (lower, upper) of each photopeak window used in the reconstruction (keV).
    reconstruction : str
        Algorithm and its settings, e.g. ``"OSEM 4i10s AC SC RR"``.
    dead_time_s : float or None
        Paralysable dead time τ (s), if known.
    """

    manufacturer: str = ""
    model: str = ""
    collimator: str = ""
    energy_windows_keV: tuple[tuple[float, float], ...] = ()
    reconstruction: str = ""
    dead_time_s: float | None = None

    def key(self) -> str:
        """The calibration-store key: ``manufacturer|model|collimator|windows|reconstruction``."""
        windows = ";".join(f"{lo:g}-{hi:g}" for lo, hi in self.energy_windows_keV)
        return "|".join((self.manufacturer, self.model, self.collimator, windows, self.reconstruction))


@dataclass(frozen=True, eq=False)
class Bed:
    """One bed position (field of view) of a SPECT or PET acquisition.

    Attributes
    ----------
    acquisition_start : datetime
    duration_s : float
        Acquisition duration of the bed (s): frame duration × projections per detector for NM.
    time_h : float
        Mid-acquisition time (h p.i.).
    image : SimpleITK.Image or None
        The bed's own image, Bq/mL at ``time_h`` (None when only the stitched volume is kept).
    axial_extent_mm : tuple of (float, float)
        (lowest, highest) LPS z of the bed's field of view (mm).
    series_uid : str
    provenance : dict
    """

    acquisition_start: datetime
    duration_s: float
    time_h: float
    image: sitk.Image | None = None
    axial_extent_mm: tuple[float, float] | None = None
    series_uid: str = ""
    provenance: dict = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class Timepoint:
    """One imaging session of a cycle: SPECT (all beds) and its CT.

    Attributes
    ----------
    label : str
        E.g. ``"tp1"``.
    time_h : float
        Nominal time: mean of the beds' mid-acquisition times (h p.i.).
    spect : SimpleITK.Image
        Activity concentration (Bq/mL) at acquisition time, beds stitched (float32, LPS).
    ct : SimpleITK.Image or None
        CT in HU (LPS).
    beds : tuple of Bed
    time_map_h : SimpleITK.Image or None
        Per-voxel mid-acquisition time (h p.i.) on the ``spect`` grid, where beds differ in
        time (overlap zones hold the overlap-weighted time); None means ``time_h`` everywhere.
    camera : Camera or None
    provenance : dict
    """

    label: str
    time_h: float
    spect: sitk.Image
    ct: sitk.Image | None = None
    beds: tuple[Bed, ...] = ()
    time_map_h: sitk.Image | None = None
    camera: Camera | None = None
    provenance: dict = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class Cycle:
    """One therapy cycle: its administration and its post-therapy timepoints in time order."""

    index: int
    administration: Administration
    timepoints: tuple[Timepoint, ...] = ()

    def __post_init__(self) -> None:
        times = [tp.time_h for tp in self.timepoints]
        for tp in self.timepoints:
            if not math.isfinite(tp.time_h) or tp.time_h < 0:
                raise ConsistencyError(f"timepoint {tp.label} is at {tp.time_h:.3f} h, before the injection "
                                       f"of cycle {self.index}", source=f"cycle {self.index}")
        if any(b <= a for a, b in itertools.pairwise(times)):
            raise ConsistencyError(f"timepoints must be in increasing time without duplicates, got "
                                   f"{[f'{tp.label}={tp.time_h:.2f} h' for tp in self.timepoints]}",
                                   source=f"cycle {self.index}")


@dataclass(frozen=True, eq=False)
class PetFrame:
    """One PET frame: Bq/mL at acquisition time (not decay-corrected), on the PET grid.

    Attributes
    ----------
    start_h, duration_h : float
        Frame start (h p.i.) and duration (h).
    time_h : float
        Mid-frame time (h p.i.).
    image : SimpleITK.Image
    """

    start_h: float
    duration_h: float
    time_h: float
    image: sitk.Image


@dataclass(frozen=True, eq=False)
class PetStudy:
    """A pre-therapy PET/CT: dynamic frames (single bed) and/or a whole-body static.

    Attributes
    ----------
    administration : Administration
        The PET tracer's own administration (e.g. 68Ga-PSMA-11).
    dynamic_frames : tuple of PetFrame
        In time order; empty if there is no dynamic acquisition.
    static : PetFrame or None
        Whole-body static frame.
    ct : SimpleITK.Image or None
    provenance : dict
    """

    administration: Administration
    dynamic_frames: tuple[PetFrame, ...] = ()
    static: PetFrame | None = None
    ct: sitk.Image | None = None
    provenance: dict = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class Segmentation:
    """A label map (integer image, LPS) and its :class:`~LuDosimetryLib.labels.LabelTable`."""

    image: sitk.Image
    table: LabelTable


@dataclass(frozen=True, eq=False)
class Patient:
    """A patient: therapy cycles, pre-therapy PET studies and the segmentation.

    Attributes
    ----------
    patient_id : str
    cycles : tuple of Cycle
    pet_studies : tuple of PetStudy
    segmentation : Segmentation or None
        On the grid of the reference timepoint's CT (cycle 1, first timepoint, by default).
    warnings : tuple of str
        What ingest found worth a physicist's look (also written to run.json).
    """

    patient_id: str
    cycles: tuple[Cycle, ...] = ()
    pet_studies: tuple[PetStudy, ...] = ()
    segmentation: Segmentation | None = None
    warnings: tuple[str, ...] = ()
