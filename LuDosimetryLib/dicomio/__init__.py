"""DICOM input/output.

Writers (``dicomio.write``, API frozen): CT Image Storage, NM Image Storage (reconstructed tomo,
vendor layouts), PET Image Storage and RT Dose Storage, written as clinical systems write them;
``docs/dicom_layouts.md`` says how to read each back.
"""

from .write import (
    NM_LAYOUTS,
    NM_VENDORS,
    DicomPatient,
    DicomStudy,
    PetFrameTiming,
    Radiopharmaceutical,
    frame_reference_offset_s,
    new_uid,
    pet_decay_factor,
    write_ct_series,
    write_nm_tomo,
    write_pet_series,
    write_rt_dose,
)

__all__ = ["NM_LAYOUTS", "NM_VENDORS", "DicomPatient", "DicomStudy", "PetFrameTiming", "Radiopharmaceutical",
           "frame_reference_offset_s", "new_uid", "pet_decay_factor", "write_ct_series", "write_nm_tomo",
           "write_pet_series", "write_rt_dose"]
