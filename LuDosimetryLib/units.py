"""Unit conversions used at the edges of the library.

Inside the library one unit per quantity (see docs/conventions.md): activity Bq, concentration
Bq/mL, time h post injection, TIA Bq·h, absorbed dose Gy, dose rate Gy/h, length mm, mass g,
density g/mL. Convert with these constants only when reading or writing a user-facing value
(MBq, GBq, Gy/GBq, mGy/(MBq·s)).
"""

from __future__ import annotations

__all__ = [
    "BQ_PER_MBQ", "BQ_PER_GBQ", "S_PER_H", "S_PER_MIN", "MIN_PER_H", "J_PER_KEV", "J_PER_MEV",
    "ML_PER_MM3", "KG_PER_G", "GY_PER_MGY", "MGY_PER_MBQ_S_TO_GY_PER_BQ_H",
    "mm3_to_mL", "MBq_to_Bq", "Bq_to_MBq", "Bq_to_GBq", "GBq_to_Bq",
]

BQ_PER_MBQ = 1.0e6
BQ_PER_GBQ = 1.0e9
S_PER_MIN = 60.0
MIN_PER_H = 60.0
S_PER_H = 3600.0
J_PER_KEV = 1.602176634e-16  # exact, SI 2019 (elementary charge)
J_PER_MEV = 1.602176634e-13
ML_PER_MM3 = 1.0e-3
KG_PER_G = 1.0e-3
GY_PER_MGY = 1.0e-3
#: 1 mGy/(MBq·s) expressed in Gy/(Bq·h): 1e-3 Gy / (1e6 Bq · (1/3600) h) = 3.6e-6.
MGY_PER_MBQ_S_TO_GY_PER_BQ_H = GY_PER_MGY / (BQ_PER_MBQ / S_PER_H)


def mm3_to_mL(volume_mm3: float) -> float:
    """Convert a volume from mm³ to mL (1 mL = 1000 mm³)."""
    return volume_mm3 * ML_PER_MM3


def MBq_to_Bq(activity_MBq: float) -> float:
    """Convert activity from MBq to Bq."""
    return activity_MBq * BQ_PER_MBQ


def Bq_to_MBq(activity_Bq: float) -> float:
    """Convert activity from Bq to MBq."""
    return activity_Bq / BQ_PER_MBQ


def GBq_to_Bq(activity_GBq: float) -> float:
    """Convert activity from GBq to Bq."""
    return activity_GBq * BQ_PER_GBQ


def Bq_to_GBq(activity_Bq: float) -> float:
    """Convert activity from Bq to GBq."""
    return activity_Bq / BQ_PER_GBQ
