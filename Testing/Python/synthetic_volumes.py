"""Small synthetic CT/SPECT volumes with known geometry for the alignment and TAC tests.

An analytic torso (body, subcutaneous fat, lungs, liver, vertebrae, kidneys with perirenal fat
and renal pelvis) evaluated in LPS mm. A moving image is the reference anatomy moved by a known
rigid transform ``T`` (reference → moving, the library's direction) with the kidneys moved by
extra offsets ``d`` (reference mm) before it: a kidney point ``x`` lies at ``T(x + d)``.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from LuDosimetryLib.labels import LabelTable, Region
from LuDosimetryLib.model import Segmentation

TABLE = LabelTable((
    Region(1, "liver", "none", "organ"),
    Region(2, "spine", "none", "other"),
    Region(3, "kidney_cortex_left", "left", "organ", "kidney_left"),
    Region(4, "renal_pelvis_left", "left", "organ", "kidney_left"),
    Region(5, "kidney_cortex_right", "right", "organ", "kidney_right"),
    Region(6, "renal_pelvis_right", "right", "organ", "kidney_right"),
    Region(7, "lung_left", "left", "organ"),
    Region(8, "lung_right", "right", "organ"),
))

# kidney centres (LPS mm): patient left is +x, posterior is +y
KIDNEY_CENTRES = {"left": np.array([62.0, 32.0, -20.0]), "right": np.array([-62.0, 32.0, -28.0])}
KIDNEY_SEMI = np.array([24.0, 20.0, 46.0])
PELVIS_SEMI = np.array([9.0, 8.0, 14.0])
#: truth concentrations (Bq/mL) for SPECT
CONC = {"body": 2.0e3, "liver": 2.0e4, "cortex": 1.2e5, "pelvis": 4.0e4, "spine": 6.0e3, "lung": 5.0e2}


def grid(n: int = 64, spacing: float = 4.0, *, origin_shift=(0.0, 0.0, 0.0)) -> sitk.Image:
    """An empty float32 n³ grid centred on 0 (LPS, identity direction)."""
    img = sitk.Image([n] * 3, sitk.sitkFloat32)
    img.SetSpacing([spacing] * 3)
    img.SetOrigin([-(n - 1) / 2 * spacing + s for s in origin_shift])
    return img


def rigid(translation_mm=(0.0, 0.0, 0.0), angles_deg=(0.0, 0.0, 0.0), center=(0.0, 0.0, 0.0)) -> sitk.Euler3DTransform:
    t = sitk.Euler3DTransform()
    t.SetCenter(center)
    t.SetRotation(*np.deg2rad(angles_deg))
    t.SetTranslation(translation_mm)
    return t


def _points(img: sitk.Image, sub: int) -> np.ndarray:
    """Physical points (…, 3) of sub×sub×sub subsamples of each voxel, array order [k, j, i, s, 3]."""
    n = np.array(img.GetSize())
    sp = np.array(img.GetSpacing())
    o = np.array(img.GetOrigin())
    off = (np.arange(sub) + 0.5) / sub - 0.5
    axes = [(np.arange(n[d])[:, None] + off[None, :]).ravel() * sp[d] + o[d] for d in range(3)]
    z, y, x = np.meshgrid(axes[2], axes[1], axes[0], indexing="ij")
    return np.stack([x, y, z], axis=-1)  # [k*sub, j*sub, i*sub, 3]


def _inverse_map(pts: np.ndarray, transform: sitk.Transform) -> np.ndarray:
    """Reference points x = T⁻¹(y) for moving points y (vectorised for Euler3D)."""
    t = sitk.Euler3DTransform(transform)
    m = np.asarray(t.GetMatrix()).reshape(3, 3)
    c = np.asarray(t.GetCenter())
    tr = np.asarray(t.GetTranslation())
    # y = m (x - c) + c + tr  ->  x = mᵀ (y - c - tr) + c
    return (pts - c - tr) @ m + c


def _ellipsoid(p: np.ndarray, centre, semi) -> np.ndarray:
    return (((p - np.asarray(centre)) / np.asarray(semi)) ** 2).sum(-1) <= 1.0


def _tissues(x: np.ndarray, kidney_x: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Boolean maps of each tissue at reference points ``x`` (kidneys at their own points)."""
    out = {}
    out["body"] = ((x[..., 0] / 115.0) ** 2 + (x[..., 1] / 85.0) ** 2 <= 1) & (np.abs(x[..., 2]) <= 118)
    out["muscle"] = ((x[..., 0] / 100.0) ** 2 + (x[..., 1] / 70.0) ** 2 <= 1) & (np.abs(x[..., 2]) <= 118)
    out["lung_left"] = _ellipsoid(x, (50, 0, 85), (35, 42, 45))
    out["lung_right"] = _ellipsoid(x, (-50, 0, 85), (35, 42, 45))
    out["liver"] = _ellipsoid(x, (-40, -5, 25), (50, 45, 35))
    vz = np.mod(x[..., 2] + 118.0, 30.0)
    out["spine"] = ((x[..., 0] / 15.0) ** 2 + ((x[..., 1] - 45.0) / 13.0) ** 2 <= 1) & (vz < 24) & out["muscle"]
    for side, xk in kidney_x.items():
        c = KIDNEY_CENTRES[side]
        out[f"fat_{side}"] = _ellipsoid(xk, c, KIDNEY_SEMI + 8)
        out[f"cortex_{side}"] = _ellipsoid(xk, c, KIDNEY_SEMI)
        sign = -1.0 if side == "left" else 1.0  # pelvis toward the midline
        out[f"pelvis_{side}"] = _ellipsoid(xk, c + np.array([sign * 10.0, -4.0, 0.0]), PELVIS_SEMI)
    return out


_HU = (("body", -90.0), ("muscle", 45.0), ("lung_left", -800.0), ("lung_right", -800.0), ("liver", 65.0),
       ("spine", 650.0), ("fat_left", -100.0), ("fat_right", -100.0), ("cortex_left", 30.0),
       ("cortex_right", 30.0), ("pelvis_left", 5.0), ("pelvis_right", 5.0))
_CONC = (("body", CONC["body"]), ("lung_left", CONC["lung"]), ("lung_right", CONC["lung"]),
         ("liver", CONC["liver"]), ("spine", CONC["spine"]), ("fat_left", CONC["body"]), ("fat_right", CONC["body"]),
         ("cortex_left", CONC["cortex"]), ("cortex_right", CONC["cortex"]), ("pelvis_left", CONC["pelvis"]),
         ("pelvis_right", CONC["pelvis"]))
_LABEL = (("liver", 1), ("spine", 2), ("cortex_left", 3), ("pelvis_left", 4), ("cortex_right", 5),
          ("pelvis_right", 6), ("lung_left", 7), ("lung_right", 8))


def _maps(img: sitk.Image, sub: int, transform, kidney_offsets):
    y = _points(img, sub)
    x = _inverse_map(y, transform) if transform is not None else y
    kx = {side: x - np.asarray(kidney_offsets.get(side, (0, 0, 0)), dtype=float) for side in KIDNEY_CENTRES}
    return _tissues(x, kx)


def _paint(img: sitk.Image, sub: int, tissues, table, outside: float, dtype) -> sitk.Image:
    arr = np.full(tissues["body"].shape, outside, dtype=np.float64)
    for name, value in table:
        arr[tissues[name]] = value
    n = img.GetSize()
    arr = arr.reshape(n[2], sub, n[1], sub, n[0], sub).mean(axis=(1, 3, 5))
    out = sitk.GetImageFromArray(arr.astype(dtype))
    out.CopyInformation(img)
    return out


def ct(img: sitk.Image, *, transform=None, kidney_offsets=None, noise_hu: float = 10.0, seed: int = 1,
       sub: int = 2) -> sitk.Image:
    """CT (HU) of the anatomy moved by ``transform`` (reference → moving) and kidney offsets."""
    t = _maps(img, sub, transform, kidney_offsets or {})
    out = _paint(img, sub, t, _HU, -1000.0, np.float32)
    if noise_hu:
        arr = sitk.GetArrayFromImage(out) + np.random.default_rng(seed).normal(0, noise_hu, out.GetSize()[::-1])
        o2 = sitk.GetImageFromArray(arr.astype(np.float32))
        o2.CopyInformation(out)
        out = o2
    return out


def labels(img: sitk.Image, *, transform=None, kidney_offsets=None) -> Segmentation:
    """Label map (voxel centres) with :data:`TABLE`."""
    t = _maps(img, 1, transform, kidney_offsets or {})
    arr = np.zeros(t["body"].shape, dtype=np.uint8)
    for name, value in _LABEL:
        arr[t[name]] = value
    out = sitk.GetImageFromArray(arr)
    out.CopyInformation(img)
    return Segmentation(out, TABLE)


def spect(img: sitk.Image, *, transform=None, kidney_offsets=None, fwhm_mm: float = 10.0, scale: float = 1.0,
          sub: int = 2) -> sitk.Image:
    """Concentration (Bq/mL) on grid ``img``: truth painted at sub-voxel resolution, Gaussian-blurred."""
    t = _maps(img, sub, transform, kidney_offsets or {})
    fine = np.zeros(t["body"].shape, dtype=np.float64)
    for name, value in _CONC:
        fine[t[name]] = value * scale
    fimg = sitk.GetImageFromArray(fine)
    fimg.SetSpacing([s / sub for s in img.GetSpacing()])
    if fwhm_mm:
        fimg = sitk.SmoothingRecursiveGaussian(fimg, fwhm_mm / (2 * np.sqrt(2 * np.log(2))))
    n = img.GetSize()
    arr = sitk.GetArrayFromImage(fimg).reshape(n[2], sub, n[1], sub, n[0], sub).mean(axis=(1, 3, 5))
    out = sitk.GetImageFromArray(arr.astype(np.float32))
    out.CopyInformation(img)
    return out
