"""Plausibility checks of ingested data: results that would be silently wrong are stopped by name.

Each check returns a list of problems (one sentence each, naming the file or region and the
numbers); the caller raises a :class:`~LuDosimetryLib.errors.ConsistencyError`, or, where the user
has accepted that check by name (:data:`CHECKS`), records a warning instead.

- ``label_registration``: the label map must lie on the reference CT: organs on soft tissue,
  lungs on lung, bones on bone, by Hounsfield units (a label map whose origin is shifted by 60 mm
  put the kidneys partly in air and bone and reported a kidney dose of 0.95 Gy instead of 3.5 Gy).
- ``bed_consistency``: the beds of one timepoint share their voxel spacing and transaxial
  position (checked in :mod:`LuDosimetryLib.ingest.patient`).
- ``fov_activity``: the activity in an image's field of view cannot exceed the administered
  activity decayed to the image's time (plus :data:`FOV_ACTIVITY_TOLERANCE`); far below it
  (:data:`FOV_ACTIVITY_LOW_FRACTION`) is a warning (a PET with RescaleSlope missing on 100 of 172
  slices gave 520 MBq in the field of view for 180 MBq injected).
"""

from __future__ import annotations

import math
import re

import numpy as np

from ..nuclides import get_nuclide

__all__ = ["CHECKS", "FOV_ACTIVITY_TOLERANCE", "FOV_ACTIVITY_LOW_FRACTION", "HU_RANGES",
           "expected_tissue", "label_registration_problems", "fov_activity_problems"]

#: Checks a user may accept by name (``--accept CHECK``), turning their error into a warning.
CHECKS = ("label_registration", "fov_activity", "bed_consistency")
#: The field of view may hold at most this multiple of the decayed administered activity
#: (quantification uncertainty of SPECT/PET of about 10 %, assay uncertainty of about 5 %).
FOV_ACTIVITY_TOLERANCE = 1.25
#: Below this fraction of the decayed administered activity the field of view is flagged (warning).
FOV_ACTIVITY_LOW_FRACTION = 0.01
#: Hounsfield-unit range of each expected tissue class (inclusive): soft tissue includes fat and
#: contrast-enhanced parenchyma; bone includes osteoporotic trabecular bone (about 80–150 HU in
#: elderly men); lung is aerated parenchyma.
HU_RANGES = {"soft": (-250.0, 300.0), "bone": (80.0, 3000.0), "lung": (-1000.0, -300.0)}
#: A region of at least MIN_REGION_ML with more than this fraction of voxels outside its tissue
#: class, or all checked regions together above REGISTRATION_MISMATCH_TOTAL, stop the run.
REGISTRATION_MISMATCH_REGION = 0.5
REGISTRATION_MISMATCH_TOTAL = 0.2
MIN_REGION_ML = 2.0

_BONE = re.compile(r"(vertebra|bone|femur|humerus|rib|pelvi(s|c)_bone|sacrum|skull|sternum|scapula|clavicle|"
                   r"red_marrow|marrow|spine)")
_SOFT = re.compile(r"(kidney|renal|liver|spleen|bladder|parotid|submandibular|lacrimal|salivary|prostate|"
                   r"heart|muscle|pancreas|bowel|intestine|colon|stomach|adrenal|node|lymph|brain)")


def expected_tissue(name: str, kind: str) -> str | None:
    """The tissue class a region should lie on (``soft``, ``bone``, ``lung``) or None (not checked).

    Lesions are not checked (lytic, sclerotic, mixed and nodal lesions differ), nor regions of
    kind ``other`` unless named as bone (``cortical_bone``).
    """
    n = name.lower()
    if kind == "lesion":
        return None
    if "lung" in n:
        return "lung"
    if "renal_pelvis" in n:
        return "soft"
    if _BONE.search(n):
        return "bone"
    if kind == "other":
        return None
    if _SOFT.search(n):
        return "soft"
    return None


def label_registration_problems(labels_kji: np.ndarray, ct_hu_kji: np.ndarray, regions, *,
                                voxel_volume_mL: float, source: str) -> list[str]:
    """Regions of a label map that do not lie on their tissue class on the CT of the same grid.

    Parameters
    ----------
    labels_kji : ndarray of int
        The label map on the reference CT grid.
    ct_hu_kji : ndarray
        The reference CT (HU), same shape.
    regions : iterable of Region
        The label table's regions (``label``, ``name``, ``kind``).
    voxel_volume_mL : float
        Volume of one voxel (mL).
    source : str
        The label-map file, named in the problems.

    Returns
    -------
    list of str
        Empty when the label map fits the CT.
    """
    if labels_kji.shape != ct_hu_kji.shape:
        return [f"{source}: label map shape {labels_kji.shape} differs from the reference CT {ct_hu_kji.shape}"]
    tissue_of = {}
    for r in regions:
        tissue = expected_tissue(r.name, r.kind)
        if tissue is not None and r.label > 0:
            tissue_of[int(r.label)] = (r, tissue)
    size, off = _off_tissue_counts(labels_kji, ct_hu_kji, {lab: HU_RANGES[t] for lab, (_, t) in tissue_of.items()})
    bad_regions, mismatched, checked = [], 0, 0
    for lab, (r, tissue) in tissue_of.items():
        n = int(size[lab])
        if n == 0:
            continue
        n_off = int(off[lab])
        mismatched += n_off
        checked += n
        frac = n_off / n
        if n * voxel_volume_mL >= MIN_REGION_ML and frac > REGISTRATION_MISMATCH_REGION:
            median = float(np.median(ct_hu_kji[labels_kji == lab]))
            bad_regions.append((tissue != "soft", -frac, f"{r.name} {frac:.0%} of {n * voxel_volume_mL:.0f} mL "
                                f"off {tissue} (median {median:.0f} HU)"))
    total = mismatched / checked if checked else 0.0
    if not bad_regions and total <= REGISTRATION_MISMATCH_TOTAL:
        return []
    bad_regions = [text for *_, text in sorted(bad_regions)]  # soft-tissue organs (kidneys) first
    listed = "; ".join(bad_regions[:6]) + (f"; and {len(bad_regions) - 6} more" if len(bad_regions) > 6 else "")
    return [f"{source}: the label map does not lie on the reference CT ({total:.0%} of the voxels of organs, lungs "
            f"and bones are off their tissue by HU{'; ' + listed if listed else ''}): check its origin, direction "
            "and that it was drawn on this CT (cycle 1, first timepoint)"]


def _off_tissue_counts(labels_kji: np.ndarray, ct_hu_kji: np.ndarray, ranges: dict[int, tuple[float, float]],
                       *, slab_voxels: int = 1 << 22) -> tuple[np.ndarray, np.ndarray]:
    """Voxels of each checked label and those of them outside the label's HU range (inclusive).

    One pass over the volume in slabs of about ``slab_voxels`` voxels (memory stays small); only
    the voxels of checked labels are gathered. Indexed by label value (0 for labels not checked).
    """
    top = max(ranges, default=0)
    size = np.zeros(top + 1, np.int64)
    off = np.zeros(top + 1, np.int64)
    if not ranges:
        return size, off
    small = labels_kji.dtype.kind == "u" and labels_kji.dtype.itemsize <= 2  # every value indexes the table
    checked = np.zeros((1 << 8 * labels_kji.dtype.itemsize) if small else top + 1, bool)
    lo = np.zeros(top + 1, np.float64)
    hi = np.zeros(top + 1, np.float64)
    for lab, (a, b) in ranges.items():
        checked[lab], lo[lab], hi[lab] = True, a, b
    k_step = max(1, slab_voxels // max(1, int(np.prod(labels_kji.shape[1:]))))
    for k0 in range(0, labels_kji.shape[0], k_step):
        lab = np.ravel(labels_kji[k0:k0 + k_step])
        if small:
            idx = np.flatnonzero(checked[lab])
        else:
            idx = np.flatnonzero((lab >= 0) & (lab <= top))
            idx = idx[checked[lab[idx].astype(np.intp)]]
        lab = lab[idx].astype(np.intp)
        hu = np.ravel(ct_hu_kji[k0:k0 + k_step])[idx]
        out = (hu < lo[lab].astype(hu.dtype)) | (hu > hi[lab].astype(hu.dtype))
        size += np.bincount(lab, minlength=top + 1)
        off += np.bincount(lab[out], minlength=top + 1)
    return size, off


def fov_activity_problems(total_Bq: float, administered_Bq: float, nuclide: str, time_h: float, *,
                          what: str) -> tuple[list[str], list[str]]:
    """Compare the activity in a field of view with the administered activity decayed to its time.

    Parameters
    ----------
    total_Bq : float
        Activity in the image's field of view at its acquisition time (Bq).
    administered_Bq : float
        Net administered activity at injection (Bq).
    nuclide : str
        Radionuclide of the administration.
    time_h : float
        Time of the image (h p.i.).
    what : str
        The image, named in the messages (series file, ``cycle 1 tp2``).

    Returns
    -------
    (errors, warnings) : tuple of list of str
    """
    if not (administered_Bq > 0 and math.isfinite(total_Bq)):
        return [], []
    decayed = administered_Bq * math.exp(-get_nuclide(nuclide).decay_constant_per_h * max(time_h, 0.0))
    ratio = total_Bq / decayed
    text = (f"{what}: {total_Bq / 1e6:.4g} MBq in the field of view at {time_h:.1f} h p.i., "
            f"{ratio:.0%} of the administered {administered_Bq / 1e6:.4g} MBq {nuclide} decayed to that time "
            f"({decayed / 1e6:.4g} MBq)")
    if ratio > FOV_ACTIVITY_TOLERANCE:
        return [f"{text}: more than {FOV_ACTIVITY_TOLERANCE:.0%} is impossible; check the quantitation tags "
                "(RescaleSlope, Units), the calibration and the injected activity"], []
    if ratio < FOV_ACTIVITY_LOW_FRACTION:
        return [], [f"{text}: far below what a field of view holds; check the calibration, the units and the "
                    "injected activity"]
    return [], []
