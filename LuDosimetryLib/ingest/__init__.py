"""Ingest: patient folders (DICOM or NIfTI + JSON sidecar) to calibrated, timed images.

Modules, in the order of the data flow: :mod:`.dicomtags` (tolerant header reading),
:mod:`.discovery` (series, classification, CT pairing), :mod:`.geometry` (LPS grids, NM
multi-frame), :mod:`.injection` (administration), :mod:`.decay` (decay state), :mod:`.quant`
(counts → Bq/mL, dead time), :mod:`.series` (one series to images), :mod:`.stitch` (beds),
:mod:`.nifti` (the NIfTI route), :mod:`.segmentation` (label maps, SEG, RTSTRUCT),
:mod:`.overrides` (sidecars and command-line values) and :mod:`.patient` (the entry points).
"""

from .patient import InspectResult, inspect_patient, load_patient

__all__ = ["load_patient", "inspect_patient", "InspectResult"]
