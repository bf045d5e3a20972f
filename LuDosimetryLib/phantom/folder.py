def write_patient_folder(*a, **k): raise NotImplementedError
