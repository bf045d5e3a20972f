"""The synthetic 177Lu-PSMA patient: anatomy, true kinetics, SPECT/CT, 68Ga PET and ground truth.

The yardstick of every later stage (docs/phantom.md)::

    from LuDosimetryLib.phantom import generate_patient, write_patient_folder
    patient = generate_patient("small", seed=0)
    write_patient_folder(patient, "out/patient")
"""

from .folder import write_patient_folder
from .generate import SIZES, SyntheticPatient, generate_patient

__all__ = ["generate_patient", "write_patient_folder", "SyntheticPatient", "SIZES"]
