"""Coded entries the writers need (DICOM PS3.16 context groups)."""

from __future__ import annotations

from ..errors import InputError
from ..nuclides import normalise_nuclide_name

__all__ = ["RADIONUCLIDE_CODES", "radionuclide_code"]

#: Radionuclide codes (Code Value, Coding Scheme Designator, Code Meaning).
#: Ga-68, F-18: PS3.16 CID 4020 "PET Radionuclide" (SCT 35337001, 77004003; SNOMED-RT C-131A3,
#: C-111A1 before 2019). Lu-177 is not a PET nuclide and is not in CID 4020; its code is in
#: CID 18 "Isotopes in Radiopharmaceuticals" (SCT 447553000 "^177^Lutetium"). Tc-99m, In-111,
#: Y-90: CID 18 as well. Source: DICOM PS3.16 (2020b onwards, SCT codes), via the FHIR rendering
#: of the DICOM context groups (bvdh/dicom-terminology-in-fhir, ValueSet-dicom-cid-18 and -4020).
RADIONUCLIDE_CODES: dict[str, tuple[str, str, str]] = {
    "Lu-177": ("447553000", "SCT", "^177^Lutetium"),
    "Ga-68": ("35337001", "SCT", "^68^Gallium"),
    "F-18": ("77004003", "SCT", "^18^Fluorine"),
    "Tc-99m": ("72454006", "SCT", "^99m^Technetium"),
    "In-111": ("56609000", "SCT", "^111^Indium"),
    "Y-90": ("14691008", "SCT", "^90^Yttrium"),
}


def radionuclide_code(nuclide: str) -> tuple[str, str, str]:
    """(CodeValue, CodingSchemeDesignator, CodeMeaning) of a nuclide (any common spelling)."""
    key = normalise_nuclide_name(nuclide)
    if key not in RADIONUCLIDE_CODES:
        raise InputError(f"no DICOM radionuclide code for {key} (known: {', '.join(RADIONUCLIDE_CODES)})",
                         source="nuclide")
    return RADIONUCLIDE_CODES[key]
