"""DICOM series of the synthetic patient, through :mod:`LuDosimetryLib.dicomio.write`.

Each timepoint is its own study with its own frame of reference; one CT series (one file per
slice) and one NM multi-frame reconstructed tomo per bed (counts, ``CNTS``), as a camera writes
them. The PET study holds its CT, the dynamic series and the static series (``BQML``, decay
correction ``START``). UIDs are deterministic (``new_uid(seed_text)``), so a seed gives the same
UIDs every time.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from .generate import CT_LEAD, SyntheticPatient

__all__ = ["write_dicom"]


def write_dicom(patient: SyntheticPatient, root: Path, *,
                progress: Callable[[float, str], None] | None = None) -> list[str]:
    """Write every DICOM series of ``patient`` under ``root`` (``dicom/``); return paths relative to root's parent."""
    from ..dicomio import write as dw

    report = progress or (lambda f, m: None)
    n_steps = sum(len(c.timepoints) for c in patient.cycles) + (1 if patient.pet is not None else 0)
    step = 0

    base = root.parent
    pid = patient.patient_id
    dpat = dw.DicomPatient(patient_id=pid, patient_name="Synthetic^Patient", sex="M", weight_kg=80.0, height_m=1.78)
    written: list[str] = []

    def rel(p) -> str:
        return str(Path(p).relative_to(base))

    for cyc in patient.cycles:
        admin = cyc.administration
        rp = dw.Radiopharmaceutical(nuclide=admin.nuclide, radiopharmaceutical=f"177Lu-{admin.ligand}",
                                    injection_datetime=admin.injection_datetime,
                                    total_dose_Bq=admin.injected_activity_Bq)
        for tp in cyc.timepoints:
            report(step / n_steps, f"DICOM cycle {cyc.index} {tp.label}")
            step += 1
            key = f"{pid}/cycle{cyc.index}/{tp.label}"
            ct_time = tp.beds[0].acquisition_start - CT_LEAD
            study = dw.DicomStudy(study_uid=dw.new_uid(f"{key}/study"), study_datetime=ct_time,
                                  frame_of_reference_uid=dw.new_uid(f"{key}/for"), study_id=f"{cyc.index}{tp.index}",
                                  description=f"177Lu SPECT/CT cycle {cyc.index} {tp.label}")
            folder = root / f"cycle{cyc.index}" / tp.label
            dw.write_ct_series(tp.ct, folder / "CT", patient=dpat, study=study, series_datetime=ct_time,
                               series_number=1, description="CT low dose", series_uid=dw.new_uid(f"{key}/ct"))
            written.append(rel(folder / "CT"))
            for bed in tp.beds:
                path = dw.write_nm_tomo(bed.counts, folder / f"NM_bed{bed.index}", patient=dpat, study=study,
                                        acquisition_start=bed.acquisition_start,
                                        frame_duration_s=bed.frame_duration_s,
                                        projections_per_detector=bed.projections_per_detector,
                                        camera=patient.camera, radiopharmaceutical=rp, units="CNTS",
                                        corrected_image=("ATTN", "SCAT"), series_number=1 + bed.index,
                                        description=f"SPECT 177Lu bed {bed.index}",
                                        series_uid=dw.new_uid(f"{key}/nm{bed.index}"))
                written.append(rel(path))
    if patient.pet is not None:
        report(step / n_steps, "DICOM PET")
        pt = patient.pet
        admin = pt.administration
        rp = dw.Radiopharmaceutical(nuclide=admin.nuclide, radiopharmaceutical=f"68Ga-{admin.ligand}",
                                    injection_datetime=admin.injection_datetime,
                                    total_dose_Bq=admin.injected_activity_Bq)
        key = f"{pid}/pet"
        ct_time = pt.dynamic_start - CT_LEAD
        study = dw.DicomStudy(study_uid=dw.new_uid(f"{key}/study"), study_datetime=ct_time,
                              frame_of_reference_uid=dw.new_uid(f"{key}/for"), study_id="0",
                              description="68Ga-PSMA-11 PET/CT")
        folder = root / "pet"
        dw.write_ct_series(pt.ct, folder / "CT", patient=dpat, study=study, series_datetime=ct_time,
                           series_number=1, description="CT low dose", series_uid=dw.new_uid(f"{key}/ct"))
        timings = [dw.PetFrameTiming(start=pt.dynamic_start + timedelta(seconds=f.start_s), duration_s=f.duration_s)
                   for f in pt.frame_specs]
        dw.write_pet_series(list(pt.dynamic_frames), folder / "PT_dynamic", patient=dpat, study=study,
                            radiopharmaceutical=rp, timings=timings, decay_correction="START", series_number=2,
                            description="PET dynamic", series_uid=dw.new_uid(f"{key}/dyn"))
        dw.write_pet_series([pt.static], folder / "PT_static", patient=dpat, study=study, radiopharmaceutical=rp,
                            timings=[dw.PetFrameTiming(start=pt.static_start, duration_s=pt.static_duration_s)],
                            decay_correction="START", series_number=3, description="PET whole body",
                            series_uid=dw.new_uid(f"{key}/static"))
        written += [rel(folder / "CT"), rel(folder / "PT_dynamic"), rel(folder / "PT_static")]
    return written
