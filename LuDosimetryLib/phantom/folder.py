"""Write a synthetic patient folder (layout in docs/conventions.md, "The synthetic patient folder").

The folder is built under a temporary name and moved into place when complete
(:func:`LuDosimetryLib.results.atomic_directory`): written whole or not at all. DICOM series are
written when :mod:`LuDosimetryLib.dicomio.write` is available (``dicom=None``), else only NIfTI.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from .. import __version__
from ..results import atomic_directory, atomic_write_text, write_json
from .generate import CT_LEAD, SyntheticPatient

__all__ = ["write_patient_folder", "sidecar", "dicom_available"]


def dicom_available() -> bool:
    """Whether the DICOM writers (:mod:`LuDosimetryLib.dicomio.write`) are installed."""
    try:
        return importlib.util.find_spec("LuDosimetryLib.dicomio.write") is not None
    except ModuleNotFoundError:
        return False


def _camera_dict(camera) -> dict:
    return {"manufacturer": camera.manufacturer, "model": camera.model, "collimator": camera.collimator,
            "energy_windows_keV": [list(w) for w in camera.energy_windows_keV],
            "reconstruction": camera.reconstruction}


def _injection_dict(admin) -> dict:
    return {"datetime": admin.injection_datetime.isoformat(), "activity_Bq": admin.injected_activity_Bq,
            "nuclide": admin.nuclide, "ligand": admin.ligand}


def sidecar(modality: str, units: str, *, acquisition_start: datetime, duration_s: float, admin,
            decay_correction: str = "NONE", **extra) -> dict:
    """A NIfTI JSON sidecar with the keys of docs/conventions.md."""
    return {"modality": modality, "units": units, "decay_correction": decay_correction,
            "acquisition_start": acquisition_start.isoformat(), "duration_s": float(duration_s),
            "injection": _injection_dict(admin), **extra}


def _write_image(image, path: Path) -> None:
    import SimpleITK as sitk

    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path), True)


def write_patient_folder(patient: SyntheticPatient, out_dir: str | Path, *, force: bool = False,
                         dicom: bool | None = None, progress: Callable[[float, str], None] | None = None) -> Path:
    """Write ``patient`` as a patient folder at ``out_dir``.

    Parameters
    ----------
    patient : SyntheticPatient
    out_dir : path
        The folder to create; an existing non-empty folder is replaced only with ``force``.
    force : bool
    dicom : bool, optional
        Write DICOM series too; None: when the DICOM writers are available.
    progress : callable, optional
        ``progress(fraction, message)``.

    Returns
    -------
    Path
        ``out_dir``.

    Raises
    ------
    InputError
        If ``out_dir`` exists, is not empty and ``force`` is false (the message names the path).
    """
    import SimpleITK as sitk

    report = progress or (lambda f, m: None)
    want_dicom = dicom_available() if dicom is None else bool(dicom)
    written: list[str] = []
    out = Path(out_dir)
    with atomic_directory(out, overwrite=force) as tmp:
        report(0.0, "labels")
        _write_image(patient.labels, tmp / "labels" / "labels.nii.gz")
        _write_image(patient.density, tmp / "labels" / "density.nii.gz")
        atomic_write_text(tmp / "labels" / "labels.csv", patient.label_table.to_csv_text())
        written += ["labels/labels.nii.gz", "labels/labels.csv", "labels/density.nii.gz"]
        cam = _camera_dict(patient.camera)
        n_tp = sum(len(c.timepoints) for c in patient.cycles)
        done = 0
        for cyc in patient.cycles:
            for tp in cyc.timepoints:
                report(0.05 + 0.8 * done / max(n_tp, 1), f"cycle {cyc.index} {tp.label}")
                done += 1
                folder = tmp / "nifti" / f"cycle{cyc.index}" / tp.label
                ct_start = tp.beds[0].acquisition_start - CT_LEAD
                _write_image(tp.ct, folder / "ct.nii.gz")
                write_json(folder / "ct.json", sidecar("CT", "HU", acquisition_start=ct_start, duration_s=30.0,
                                                       admin=cyc.administration, cycle=cyc.index,
                                                       timepoint=tp.index, bed=None))
                _write_image(tp.labels, tmp / "truth" / f"cycle{cyc.index}_{tp.label}_labels.nii.gz")
                written += [str((folder / "ct.nii.gz").relative_to(tmp)),
                            f"truth/cycle{cyc.index}_{tp.label}_labels.nii.gz"]
                for bed in tp.beds:
                    _write_image(bed.counts, folder / f"nm_bed{bed.index}.nii.gz")
                    write_json(folder / f"nm_bed{bed.index}.json",
                               sidecar("NM", "counts", acquisition_start=bed.acquisition_start,
                                       duration_s=bed.duration_s, admin=cyc.administration, camera=cam,
                                       cycle=cyc.index, timepoint=tp.index, bed=bed.index,
                                       frame_duration_s=bed.frame_duration_s,
                                       projections_per_detector=bed.projections_per_detector,
                                       corrected_image=["ATTN", "SCAT"]))
                    written.append(str((folder / f"nm_bed{bed.index}.nii.gz").relative_to(tmp)))
        if patient.pet is not None:
            report(0.8, "PET")
            pt = patient.pet
            folder = tmp / "nifti" / "pet"
            _write_image(pt.ct, folder / "ct.nii.gz")
            write_json(folder / "ct.json", sidecar("CT", "HU", acquisition_start=pt.dynamic_start - CT_LEAD,
                                                   duration_s=30.0, admin=pt.administration))
            _write_image(sitk.JoinSeries(list(pt.dynamic_frames)), folder / "pt_dynamic.nii.gz")
            write_json(folder / "pt_dynamic.json",
                       sidecar("PT", "Bq/mL", acquisition_start=pt.dynamic_start,
                               duration_s=sum(f.duration_s for f in pt.frame_specs), admin=pt.administration,
                               frames=[{"start_s": f.start_s, "duration_s": f.duration_s} for f in pt.frame_specs]))
            _write_image(pt.static, folder / "pt_static.nii.gz")
            write_json(folder / "pt_static.json",
                       sidecar("PT", "Bq/mL", acquisition_start=pt.static_start, duration_s=pt.static_duration_s,
                               admin=pt.administration))
            written += ["nifti/pet/ct.nii.gz", "nifti/pet/pt_dynamic.nii.gz", "nifti/pet/pt_static.nii.gz"]
        if want_dicom:
            report(0.87, "DICOM")
            from .dicom import write_dicom

            written += write_dicom(patient, tmp / "dicom", progress=lambda f, m: report(0.87 + 0.1 * f, m))
        report(0.97, "truth")
        write_json(tmp / "truth.json", patient.truth)
        patient.calibration_store().save(tmp / "calibration.json")
        write_json(tmp / "patient.json", {
            "patient_id": patient.patient_id, "size": patient.size, "seed": patient.seed,
            "generator": f"LuDosimetryLib {__version__} phantom", "settings": patient.truth.get("settings", {}),
            "cycles": len(patient.cycles), "pet": patient.pet is not None, "dicom": want_dicom,
            "written": [*written, "truth.json", "calibration.json", "patient.json"],
        })
    report(1.0, f"written {out}")
    return out

