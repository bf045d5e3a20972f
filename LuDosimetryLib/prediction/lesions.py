"""Lesions: detection on the PET, transfer to the SPECT/CT, matching across modalities and timepoints.

Detection (:func:`detect_lesions`): voxels above a threshold — an SUV value (``method="suv"``,
SUV = C / (A0 / body mass), 1 g/mL tissue), or the liver's mean uptake times a factor
(``method="liver"``; PROMISE: PSMA-expression score ≥ 2 is uptake above the liver, Eiber et al.,
J Nucl Med 2018;59:469–478, doi:10.2967/jnumed.117.198119) — inside an optional search mask (e.g.
the body minus organs with physiological uptake), split into 26-connected components
(``scipy.ndimage.label``); components smaller than ``min_volume_mL`` are dropped. A user
segmentation (label map) takes the place of detection via :func:`lesions_from_labels`.

Transfer (:func:`transfer_labels`): nearest-neighbour resampling of a lesion label map through the
PET/CT → SPECT/CT transform (a SimpleITK transform mapping points of the target grid to the
source grid, as :func:`SimpleITK.Resample` takes it; from the alignment module once landed).

Matching (:func:`match_lesions`): optimal one-to-one assignment (Hungarian,
``scipy.optimize.linear_sum_assignment``) on the centroid distance, pairs farther apart than
``max_distance_mm`` (default 15 mm: ≈ 1.5 SPECT FWHM) are not matched; when both label maps are on
one grid, pairs without any voxel overlap are refused as well (``require_overlap``). Every lesion
not matched is reported with the modality it was seen in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import ConsistencyError, InputError
from ..units import ML_PER_MM3

__all__ = ["Lesion", "LesionMatch", "detect_lesions", "lesions_from_labels", "match_lesions", "transfer_labels",
           "suv_threshold_Bq_per_mL", "liver_threshold_Bq_per_mL", "track_lesions", "tumour_burden"]


@dataclass(frozen=True)
class Lesion:
    """A lesion in one image.

    Attributes
    ----------
    lesion_id : int
        Its label value in the lesion label map of that image.
    centroid_mm : tuple of float
        Physical centroid (x, y, z) in LPS mm.
    volume_mL : float
    max_value, mean_value : float
        Of the image it was found in (Bq/mL for PET).
    modality : str
    """

    lesion_id: int
    centroid_mm: tuple[float, float, float]
    volume_mL: float
    max_value: float = float("nan")
    mean_value: float = float("nan")
    modality: str = ""


@dataclass(frozen=True)
class LesionMatch:
    """Result of :func:`match_lesions`.

    Attributes
    ----------
    pairs : tuple of (int, int, float)
        (id in A, id in B, centroid distance mm).
    only_a, only_b : tuple of int
        Lesions seen in one modality only.
    max_distance_mm : float
    """

    pairs: tuple[tuple[int, int, float], ...]
    only_a: tuple[int, ...]
    only_b: tuple[int, ...]
    max_distance_mm: float

    def rows(self, name_a: str = "pet", name_b: str = "spect") -> list[dict]:
        """One row per lesion: matched pairs, then the unmatched ones of each side."""
        out = [{f"{name_a}_id": a, f"{name_b}_id": b, "distance_mm": d, "status": "matched"} for a, b, d in self.pairs]
        out += [{f"{name_a}_id": a, f"{name_b}_id": None, "distance_mm": None, "status": f"{name_a}_only"}
                for a in self.only_a]
        out += [{f"{name_a}_id": None, f"{name_b}_id": b, "distance_mm": None, "status": f"{name_b}_only"}
                for b in self.only_b]
        return out


def suv_threshold_Bq_per_mL(suv: float, *, injected_activity_Bq: float, body_mass_kg: float,
                            decay_factor: float = 1.0) -> float:
    """Concentration (Bq/mL) of a given SUV: SUV · A0 · decay / (body mass in g), 1 g/mL assumed.

    ``decay_factor`` brings the injected activity to the image's time (e^(−λt)) for images at
    acquisition time.
    """
    if not (body_mass_kg > 0 and injected_activity_Bq > 0):
        raise InputError(f"body mass ({body_mass_kg} kg) and injected activity ({injected_activity_Bq} Bq) must be > 0",
                         source="suv_threshold")
    return suv * injected_activity_Bq * decay_factor / (body_mass_kg * 1000.0)


def liver_threshold_Bq_per_mL(image, liver_mask, *, factor: float = 1.0) -> float:
    """``factor`` × mean concentration in the liver mask (PROMISE: uptake above liver)."""
    img = np.asarray(image, dtype=float)
    m = np.asarray(liver_mask, dtype=bool)
    if m.shape != img.shape or not m.any():
        raise InputError(f"liver mask must be non-empty and on the image grid (mask {m.shape}, image {img.shape})",
                         source="liver_mask")
    return factor * float(img[m].mean())


def _grid(spacing_mm, origin_mm, direction):
    sp = np.asarray(spacing_mm, dtype=float)
    org = np.zeros(3) if origin_mm is None else np.asarray(origin_mm, dtype=float)
    d = np.eye(3) if direction is None else np.asarray(direction, dtype=float).reshape(3, 3)
    return sp, org, d


def _components(labels: np.ndarray, image: np.ndarray | None, spacing_mm, origin_mm, direction, modality, ids=None):
    from scipy import ndimage

    sp, org, d = _grid(spacing_mm, origin_mm, direction)
    vox_mL = float(np.prod(sp)) * ML_PER_MM3
    ids = np.unique(labels[labels > 0]) if ids is None else np.asarray(ids)
    if ids.size == 0:
        return ()
    counts = ndimage.sum_labels(np.ones(labels.shape), labels, ids)
    com = np.array(ndimage.center_of_mass(np.ones(labels.shape), labels, ids)).reshape(-1, 3)  # (k, j, i)
    ijk = com[:, ::-1]
    xyz = org + (ijk * sp) @ d.T
    if image is not None:
        mx = ndimage.maximum(image, labels, ids)
        mn = ndimage.mean(image, labels, ids)
    else:
        mx = mn = [float("nan")] * ids.size
    return tuple(Lesion(int(i), tuple(float(v) for v in c), float(n) * vox_mL, float(a), float(b), modality)
                 for i, c, n, a, b in zip(ids, xyz, counts, mx, mn))


def detect_lesions(image, spacing_mm, *, threshold_Bq_per_mL: float, search_mask=None, min_volume_mL: float = 0.0,
                   origin_mm=None, direction=None, modality: str = "PET") -> tuple[np.ndarray, tuple[Lesion, ...]]:
    """Threshold, 26-connected components, size filter.

    Parameters
    ----------
    image : array [k, j, i]
        PET concentration (Bq/mL).
    spacing_mm : (x, y, z) mm
    threshold_Bq_per_mL : float
        From :func:`suv_threshold_Bq_per_mL` or :func:`liver_threshold_Bq_per_mL`.
    search_mask : array of bool, optional
        Where lesions may be (e.g. body minus kidneys, bladder, salivary glands, liver).
    min_volume_mL : float
    origin_mm, direction : optional
        Image geometry for physical centroids (SimpleITK origin and direction).

    Returns
    -------
    labels : int32 array
        Lesion label map, ids 1..n in decreasing volume.
    lesions : tuple of Lesion
    """
    from scipy import ndimage

    img = np.asarray(image, dtype=np.float32)
    if img.ndim != 3:
        raise InputError(f"expected a 3-D image, got shape {img.shape}", source="image")
    above = img > threshold_Bq_per_mL
    if search_mask is not None:
        sm = np.asarray(search_mask, dtype=bool)
        if sm.shape != img.shape:
            raise ConsistencyError(f"search mask {sm.shape} differs from the image {img.shape}", source="search_mask")
        above &= sm
    lab, n = ndimage.label(above, structure=np.ones((3, 3, 3), bool))
    if n == 0:
        return np.zeros(img.shape, np.int32), ()
    sp = np.asarray(spacing_mm, dtype=float)
    sizes = np.bincount(lab.ravel())[1:] * float(np.prod(sp)) * ML_PER_MM3
    keep = np.flatnonzero(sizes >= min_volume_mL)
    order = keep[np.argsort(-sizes[keep], kind="stable")]
    remap = np.zeros(n + 1, np.int32)
    remap[order + 1] = np.arange(1, order.size + 1, dtype=np.int32)
    out = remap[lab]
    return out, _components(out, img, sp, origin_mm, direction, modality)


def lesions_from_labels(labels, spacing_mm, *, image=None, ids: Sequence[int] | None = None, origin_mm=None,
                        direction=None, modality: str = "") -> tuple[Lesion, ...]:
    """Lesions of a user segmentation (label values ``ids``; default all > 0)."""
    lab = np.asarray(labels)
    img = None if image is None else np.asarray(image, dtype=float)
    return _components(lab, img, spacing_mm, origin_mm, direction, modality, ids)


def transfer_labels(labels, reference, transform=None):
    """Resample a lesion label map (SimpleITK image) onto ``reference``'s grid, nearest neighbour.

    ``transform`` maps points of ``reference`` into ``labels``' space (SimpleITK resampling
    convention); identity when None.
    """
    import SimpleITK as sitk

    tx = transform if transform is not None else sitk.Transform(3, sitk.sitkIdentity)
    return sitk.Resample(labels, reference, tx, sitk.sitkNearestNeighbor, 0, labels.GetPixelID())


def match_lesions(a: Sequence[Lesion], b: Sequence[Lesion], *, max_distance_mm: float = 15.0,
                  labels_a=None, labels_b=None) -> LesionMatch:
    """Optimal one-to-one matching by centroid distance (Hungarian), with a distance tolerance.

    Parameters
    ----------
    a, b : sequences of Lesion
        Centroids in one physical space (transfer one side first).
    max_distance_mm : float
        Pairs farther apart are not matched.
    labels_a, labels_b : arrays on one grid, optional
        When given, pairs whose label maps do not overlap in any voxel are refused.
    """
    from scipy.optimize import linear_sum_assignment

    if not (max_distance_mm > 0):
        raise InputError(f"must be > 0 mm, got {max_distance_mm}", source="max_distance_mm")
    if not a or not b:
        return LesionMatch((), tuple(x.lesion_id for x in a), tuple(x.lesion_id for x in b), max_distance_mm)
    ca = np.array([x.centroid_mm for x in a])
    cb = np.array([x.centroid_mm for x in b])
    dist = np.linalg.norm(ca[:, None, :] - cb[None, :, :], axis=2)
    allowed = dist <= max_distance_mm
    if labels_a is not None and labels_b is not None:
        la, lb = np.asarray(labels_a), np.asarray(labels_b)
        if la.shape != lb.shape:
            raise ConsistencyError(f"label maps differ in shape {la.shape} vs {lb.shape}; transfer one first",
                                   source="labels")
        both = (la > 0) & (lb > 0)
        pairs = set(zip(la[both].tolist(), lb[both].tolist()))
        ia = {x.lesion_id: i for i, x in enumerate(a)}
        ib = {x.lesion_id: i for i, x in enumerate(b)}
        overlap = np.zeros_like(allowed)
        for p, q in pairs:
            if p in ia and q in ib:
                overlap[ia[p], ib[q]] = True
        allowed &= overlap
    big = 1e6 + dist.max()
    cost = np.where(allowed, dist, big)
    rows, cols = linear_sum_assignment(cost)
    matched = [(a[i].lesion_id, b[j].lesion_id, float(dist[i, j])) for i, j in zip(rows, cols) if allowed[i, j]]
    ma = {p for p, _, _ in matched}
    mb = {q for _, q, _ in matched}
    return LesionMatch(tuple(matched), tuple(x.lesion_id for x in a if x.lesion_id not in ma),
                       tuple(x.lesion_id for x in b if x.lesion_id not in mb), float(max_distance_mm))


def track_lesions(reference: Sequence[Lesion], others: Mapping[str, Sequence[Lesion]], *,
                  max_distance_mm: float = 15.0) -> list[dict]:
    """Keep the reference's lesion IDs across timepoints/modalities.

    Returns rows ``{lesion_id, <name>_id …}``: one per reference lesion (its partner in each other
    set, or None), then one per lesion of another set without a reference partner
    (``lesion_id`` None, ``seen_in`` names the set).
    """
    rows = {x.lesion_id: {"lesion_id": x.lesion_id} for x in reference}
    extra = []
    for name, lesions in others.items():
        m = match_lesions(reference, lesions, max_distance_mm=max_distance_mm)
        for rid in rows:
            rows[rid].setdefault(f"{name}_id", None)
        for ra, ob, _ in m.pairs:
            rows[ra][f"{name}_id"] = ob
        extra += [{"lesion_id": None, f"{name}_id": ob, "seen_in": name} for ob in m.only_b]
    return list(rows.values()) + extra


def tumour_burden(volumes_mL, masses_g, doses_Gy) -> dict:
    """Whole-body tumour volume (mL), mass (g) and mass-weighted mean dose Σ mᵢDᵢ / Σ mᵢ (Gy)."""
    v = np.asarray(volumes_mL, dtype=float)
    m = np.asarray(masses_g, dtype=float)
    d = np.asarray(doses_Gy, dtype=float)
    if not (v.shape == m.shape == d.shape) or v.size == 0:
        raise InputError(f"need equal, non-empty arrays, got {v.shape}, {m.shape}, {d.shape}", source="tumour_burden")
    if np.any(m <= 0):
        raise InputError("lesion masses must be > 0 g", source="tumour_burden")
    return {"n_lesions": int(v.size), "total_volume_mL": float(v.sum()), "total_mass_g": float(m.sum()),
            "mass_weighted_dose_Gy": float(np.sum(m * d) / np.sum(m))}

