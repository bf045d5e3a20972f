"""DICOM input/output: writers for CT, NM reconstructed tomo, PET and RT Dose (``write``)."""

from .write import (
    NM_VENDORS,
    DicomPatient,
    DicomStudy,
    PetFrameTiming,
    Radiopharmaceutical,
    new_uid,
    write_ct_series,
    write_nm_tomo,
    write_pet_series,
    write_rt_dose,
)

__all__ = ["NM_VENDORS", "DicomPatient", "DicomStudy", "PetFrameTiming", "Radiopharmaceutical", "new_uid",
           "write_ct_series", "write_nm_tomo", "write_pet_series", "write_rt_dose"]
