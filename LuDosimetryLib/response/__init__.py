"""Tumour dose as a response biomarker: PSA and PSMA-PET response, ROC, survival by dose group."""
