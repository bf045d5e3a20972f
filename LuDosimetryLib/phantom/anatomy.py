"""Analytic anatomy of the synthetic patient: shapes, labels, CT numbers and mass densities.

The patient is built in a *body frame* (LPS, mm): x to the patient's left, y posterior, z
superior, the body axis on x = y = 0, z = 0 just below the pelvis. Every region is a union of
analytic shapes (ellipsoids, elliptic cylinders along z, boxes) painted in order (a later shape
wins where shapes overlap). A rigid :class:`Pose` maps the body frame to the scanner frame of a
timepoint; kidneys can move in addition (``kidney_shift_mm``, body frame) relative to the spine.

Labels are point-sampled at voxel centres (no partial-volume fractions): the label map *is* the
truth of where each region is on that grid; volumes and masses in the truth come from it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..labels import LabelTable, Region

__all__ = ["Ellipsoid", "CylinderZ", "Box", "Pose", "Grid", "RegionSpec", "REGIONS", "PAINT_ORDER",
           "label_table", "rasterize", "hu_lookup", "density_lookup", "AIR_HU", "AIR_DENSITY_G_PER_ML",
           "KIDNEY_REGIONS", "nominal_volume_mL"]

AIR_HU = -1000
AIR_DENSITY_G_PER_ML = 0.0012


# --- shapes (body frame, mm) ---------------------------------------------------------------------
@dataclass(frozen=True)
class Ellipsoid:
    """Ellipsoid with centre (mm), semi-axes (mm) and a rotation about z (degrees)."""

    center: tuple[float, float, float]
    semi_axes: tuple[float, float, float]
    angle_z_deg: float = 0.0

    def contains(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        dx, dy, dz = x - self.center[0], y - self.center[1], z - self.center[2]
        if self.angle_z_deg:
            c, s = math.cos(math.radians(self.angle_z_deg)), math.sin(math.radians(self.angle_z_deg))
            dx, dy = c * dx + s * dy, -s * dx + c * dy
        a, b, cc = self.semi_axes
        return (dx / a) ** 2 + (dy / b) ** 2 + (dz / cc) ** 2 <= 1.0

    def bbox(self) -> tuple[np.ndarray, np.ndarray]:
        r = max(self.semi_axes[:2]) if self.angle_z_deg else None
        half = np.array([r, r, self.semi_axes[2]] if r else self.semi_axes, dtype=float)
        c = np.asarray(self.center, dtype=float)
        return c - half, c + half

    def volume_mL(self) -> float:
        a, b, c = self.semi_axes
        return 4.0 / 3.0 * math.pi * a * b * c * 1e-3


@dataclass(frozen=True)
class CylinderZ:
    """Elliptic cylinder along z: centre (x, y), semi-axes (a, b), z from ``z0`` to ``z1`` (mm)."""

    center_xy: tuple[float, float]
    semi_axes: tuple[float, float]
    z0: float
    z1: float

    def contains(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        return ((((x - self.center_xy[0]) / self.semi_axes[0]) ** 2
                 + ((y - self.center_xy[1]) / self.semi_axes[1]) ** 2) <= 1.0) & (z >= self.z0) & (z <= self.z1)

    def bbox(self) -> tuple[np.ndarray, np.ndarray]:
        (cx, cy), (a, b) = self.center_xy, self.semi_axes
        return np.array([cx - a, cy - b, self.z0]), np.array([cx + a, cy + b, self.z1])

    def volume_mL(self) -> float:
        return math.pi * self.semi_axes[0] * self.semi_axes[1] * (self.z1 - self.z0) * 1e-3


@dataclass(frozen=True)
class Box:
    """Axis-aligned box between corners ``lo`` and ``hi`` (mm)."""

    lo: tuple[float, float, float]
    hi: tuple[float, float, float]

    def contains(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        return ((x >= self.lo[0]) & (x <= self.hi[0]) & (y >= self.lo[1]) & (y <= self.hi[1])
                & (z >= self.lo[2]) & (z <= self.hi[2]))

    def bbox(self) -> tuple[np.ndarray, np.ndarray]:
        return np.asarray(self.lo, dtype=float), np.asarray(self.hi, dtype=float)

    def volume_mL(self) -> float:
        return float(np.prod(np.subtract(self.hi, self.lo))) * 1e-3


def _sphere(center, volume_mL: float) -> Ellipsoid:
    r = (3.0 * volume_mL * 1e3 / (4.0 * math.pi)) ** (1.0 / 3.0)
    return Ellipsoid(center, (r, r, r))


# --- regions ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RegionSpec:
    """A labelled region: its table row, CT number (HU) and true mass density (g/mL)."""

    region: Region
    hu: float
    density_g_per_mL: float
    description: str = ""


def _r(label, name, side, kind, group, hu, rho, desc=""):
    return RegionSpec(Region(label, name, side, kind, group), hu, rho, desc)


def _calibrated_hu(rho_g_per_mL: float) -> int:
    """The CT number a scanner calibrated with the library's default HU → density curve
    (:data:`LuDosimetryLib.density.DEFAULT_DENSITY_CALIBRATION`, Schneider 2000) shows for this density
    (the skeletal segment above 100 HU, the soft-tissue/lung segment below), rounded to 1 HU.

    Used for the lungs, cortical bone and sclerotic lesions, whose typical HU would otherwise map to a
    density 9–24 % off their own (HU 900 → 1.55 g/mL against 1.70): a truth the pipeline's CT mass
    could not meet whatever the imaging (issue 15, like-for-like truth).
    """
    from ..density import DEFAULT_DENSITY_CALIBRATION

    curve = DEFAULT_DENSITY_CALIBRATION.for_kvp(None)
    hu, rho = np.asarray(curve.hu, float), np.asarray(curve.density_g_per_mL, float)
    seg = slice(0, 3) if rho_g_per_mL < 0.93 else slice(6, len(hu))  # lung segment / skeletal segment
    return round(float(np.interp(rho_g_per_mL, rho[seg], hu[seg])))


#: Every region of the phantom. HU and densities are typical adult values (ICRU 44 / ICRP 110
#: tissue densities, rounded); sclerotic lesions are dense bone-forming metastases.
REGIONS: tuple[RegionSpec, ...] = (
    _r(1, "remainder", "none", "other", "", 40, 1.03, "body soft tissue not in any other region (blood pool)"),
    _r(2, "lung_left", "left", "organ", "lungs", _calibrated_hu(0.26), 0.26),
    _r(3, "lung_right", "right", "organ", "lungs", _calibrated_hu(0.26), 0.26),
    _r(4, "cortical_bone", "none", "other", "", _calibrated_hu(1.92), 1.92,
       "spine and pelvis cortical shell, end plates"),
    _r(5, "red_marrow", "none", "organ", "", 250, 1.18,
       "spongiosa (red marrow) of thoracic/cervical spine, sacrum and iliac bones"),
    _r(6, "vertebra_l1", "none", "organ", "lumbar_spine", 250, 1.18, "L1 vertebral body spongiosa"),
    _r(7, "vertebra_l2", "none", "organ", "lumbar_spine", 250, 1.18, "L2 vertebral body spongiosa"),
    _r(8, "vertebra_l3", "none", "organ", "lumbar_spine", 250, 1.18, "L3 vertebral body spongiosa"),
    _r(9, "vertebra_l4", "none", "organ", "lumbar_spine", 250, 1.18, "L4 vertebral body spongiosa"),
    _r(10, "vertebra_l5", "none", "organ", "lumbar_spine", 250, 1.18, "L5 vertebral body spongiosa"),
    _r(11, "liver", "none", "organ", "", 60, 1.06),
    _r(12, "spleen", "none", "organ", "", 50, 1.06),
    _r(13, "kidney_cortex_left", "left", "organ", "kidney_left", 35, 1.05, "cortex and medulla"),
    _r(14, "renal_pelvis_left", "left", "organ", "kidney_left", 5, 1.01, "collecting system (urine)"),
    _r(15, "kidney_cortex_right", "right", "organ", "kidney_right", 35, 1.05, "cortex and medulla"),
    _r(16, "renal_pelvis_right", "right", "organ", "kidney_right", 5, 1.01, "collecting system (urine)"),
    _r(17, "urinary_bladder", "none", "organ", "", 5, 1.01, "bladder content (urine)"),
    _r(18, "parotid_left", "left", "organ", "salivary_glands", -10, 1.03),
    _r(19, "parotid_right", "right", "organ", "salivary_glands", -10, 1.03),
    _r(20, "submandibular_left", "left", "organ", "salivary_glands", 40, 1.04),
    _r(21, "submandibular_right", "right", "organ", "salivary_glands", 40, 1.04),
    _r(22, "lacrimal_left", "left", "organ", "lacrimal_glands", 40, 1.04),
    _r(23, "lacrimal_right", "right", "organ", "lacrimal_glands", 40, 1.04),
    _r(24, "lesion_bone_1", "none", "lesion", "", _calibrated_hu(1.70), 1.70, "sclerotic, right iliac bone, 20 mL"),
    _r(25, "lesion_bone_2", "none", "lesion", "", _calibrated_hu(1.70), 1.70, "sclerotic, T10 vertebral body, 4 mL"),
    _r(26, "lesion_bone_3", "none", "lesion", "", _calibrated_hu(1.70), 1.70, "sclerotic, left iliac bone, 1.5 mL"),
    _r(27, "lesion_node_1", "none", "lesion", "", 40, 1.04, "left para-aortic lymph node, 50 mL"),
    _r(28, "lesion_node_2", "none", "lesion", "", 40, 1.04, "mediastinal lymph node, 8 mL"),
    _r(29, "lesion_node_3", "none", "lesion", "", 40, 1.04, "left supraclavicular lymph node, 0.5 mL"),
)

KIDNEY_REGIONS = ("kidney_cortex_left", "renal_pelvis_left", "kidney_cortex_right", "renal_pelvis_right")

# Spine: vertebral bodies centred at y = 55 mm (posterior), lumbar bodies 28 mm high, 36 mm pitch.
_SPINE_Y = 55.0
_LUMBAR_Z = {"vertebra_l5": 250.0, "vertebra_l4": 286.0, "vertebra_l3": 322.0, "vertebra_l2": 358.0,
             "vertebra_l1": 394.0}  # lower end plate (mm); body spans z .. z + 28


def _paint_order() -> tuple[tuple[str, object], ...]:
    """(region name, shape) in painting order; later entries overwrite earlier ones."""
    order: list[tuple[str, object]] = [
        ("remainder", CylinderZ((0.0, 0.0), (165.0, 110.0), 20.0, 730.0)),       # trunk
        ("remainder", CylinderZ((0.0, 5.0), (60.0, 60.0), 700.0, 800.0)),         # neck
        ("remainder", Ellipsoid((0.0, 0.0, 880.0), (75.0, 95.0, 105.0))),         # head
        ("lung_left", Ellipsoid((85.0, 10.0, 620.0), (55.0, 75.0, 100.0))),
        ("lung_right", Ellipsoid((-85.0, 10.0, 620.0), (55.0, 75.0, 100.0))),
        # bone: spine column (cortical) with marrow cores, pelvis
        ("cortical_bone", CylinderZ((0.0, _SPINE_Y), (20.0, 20.0), 246.0, 790.0)),
        ("red_marrow", CylinderZ((0.0, _SPINE_Y), (16.0, 16.0), 428.0, 786.0)),
        ("cortical_bone", Ellipsoid((-75.0, 35.0, 200.0), (50.0, 18.0, 60.0), angle_z_deg=-35.0)),
        ("cortical_bone", Ellipsoid((75.0, 35.0, 200.0), (50.0, 18.0, 60.0), angle_z_deg=35.0)),
        ("cortical_bone", Ellipsoid((0.0, 65.0, 200.0), (35.0, 20.0, 45.0))),      # sacrum
        ("red_marrow", Ellipsoid((-75.0, 35.0, 200.0), (44.0, 13.0, 54.0), angle_z_deg=-35.0)),
        ("red_marrow", Ellipsoid((75.0, 35.0, 200.0), (44.0, 13.0, 54.0), angle_z_deg=35.0)),
        ("red_marrow", Ellipsoid((0.0, 65.0, 200.0), (30.0, 15.0, 40.0))),
    ]
    for name, z0 in _LUMBAR_Z.items():
        order.append((name, CylinderZ((0.0, _SPINE_Y), (17.0, 17.0), z0 + 2.0, z0 + 26.0)))
    order += [
        ("liver", Ellipsoid((-70.0, -5.0, 495.0), (90.0, 70.0, 57.0))),
        ("spleen", Ellipsoid((95.0, 50.0, 490.0), (30.0, 45.0, 27.0))),
        ("urinary_bladder", _sphere((0.0, -40.0, 110.0), 150.0)),
        ("kidney_cortex_left", Ellipsoid((75.0, 45.0, 385.0), (30.0, 25.0, 55.0))),
        ("renal_pelvis_left", Ellipsoid((62.0, 42.0, 385.0), (10.0, 8.0, 20.0))),
        ("kidney_cortex_right", Ellipsoid((-75.0, 45.0, 360.0), (30.0, 25.0, 55.0))),
        ("renal_pelvis_right", Ellipsoid((-62.0, 42.0, 360.0), (10.0, 8.0, 20.0))),
        ("parotid_left", Ellipsoid((55.0, 10.0, 860.0), (12.0, 20.0, 25.0))),
        ("parotid_right", Ellipsoid((-55.0, 10.0, 860.0), (12.0, 20.0, 25.0))),
        ("submandibular_left", Ellipsoid((35.0, -35.0, 820.0), (10.0, 12.0, 16.0))),
        ("submandibular_right", Ellipsoid((-35.0, -35.0, 820.0), (10.0, 12.0, 16.0))),
        ("lacrimal_left", Ellipsoid((30.0, -70.0, 910.0), (4.0, 5.5, 7.5))),
        ("lacrimal_right", Ellipsoid((-30.0, -70.0, 910.0), (4.0, 5.5, 7.5))),
        ("lesion_bone_1", _sphere((-80.0, 35.0, 210.0), 20.0)),
        ("lesion_bone_2", _sphere((0.0, _SPINE_Y, 470.0), 4.0)),
        ("lesion_bone_3", _sphere((72.0, 36.0, 185.0), 1.5)),
        ("lesion_node_1", _sphere((32.0, -5.0, 280.0), 50.0)),
        ("lesion_node_2", _sphere((8.0, -10.0, 640.0), 8.0)),
        ("lesion_node_3", _sphere((40.0, 0.0, 745.0), 0.5)),
    ]
    return tuple(order)


PAINT_ORDER = _paint_order()


def nominal_volume_mL(name: str) -> float:
    """Analytic volume (mL) of the *last* shape painted for a region (before overlaps).

    Exact for regions made of one shape painted over background (glands, lesions, liver, ...);
    only indicative for composite regions (bone, marrow, remainder).
    """
    shapes = [s for n, s in PAINT_ORDER if n == name]
    return float(sum(s.volume_mL() for s in shapes))


def label_table() -> LabelTable:
    """The :class:`~LuDosimetryLib.labels.LabelTable` of the phantom."""
    return LabelTable(tuple(spec.region for spec in REGIONS))


def _lookup(values: dict[int, float], background: float, dtype) -> np.ndarray:
    top = max(values)
    lut = np.full(top + 1, background, dtype=dtype)
    for k, v in values.items():
        lut[k] = v
    return lut


def hu_lookup() -> np.ndarray:
    """Array indexed by label value giving the CT number (HU); index 0 is air."""
    return _lookup({s.region.label: s.hu for s in REGIONS}, AIR_HU, np.int16)


def density_lookup() -> np.ndarray:
    """Array indexed by label value giving the mass density (g/mL); index 0 is air."""
    return _lookup({s.region.label: s.density_g_per_mL for s in REGIONS}, AIR_DENSITY_G_PER_ML, np.float64)


# --- grids and poses ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Grid:
    """A voxel grid with identity direction (LPS): origin (centre of voxel 0, mm), spacing (mm), size (i, j, k)."""

    origin: tuple[float, float, float]
    spacing: tuple[float, float, float]
    size: tuple[int, int, int]

    def axis(self, d: int) -> np.ndarray:
        """Coordinates (mm) of the voxel centres along axis ``d`` (0 = x, 1 = y, 2 = z)."""
        return self.origin[d] + self.spacing[d] * np.arange(self.size[d])

    @property
    def voxel_volume_mL(self) -> float:
        return float(np.prod(self.spacing)) * 1e-3

    @property
    def shape_kji(self) -> tuple[int, int, int]:
        return (self.size[2], self.size[1], self.size[0])

    def image(self, array_kji: np.ndarray):
        """A SimpleITK image of ``array_kji`` on this grid."""
        import SimpleITK as sitk

        img = sitk.GetImageFromArray(np.ascontiguousarray(array_kji))
        img.SetOrigin(tuple(float(v) for v in self.origin))
        img.SetSpacing(tuple(float(v) for v in self.spacing))
        return img


@dataclass(frozen=True)
class Pose:
    """Rigid body-to-scanner transform: p_scanner = R (p_body − c) + c + t (LPS, mm).

    Attributes
    ----------
    rotation_deg : tuple of float
        Rotations about x, y, z (degrees), applied in that order (R = Rz Ry Rx).
    translation_mm : tuple of float
    center_mm : tuple of float
        Rotation centre c in the body frame (mm).
    """

    rotation_deg: tuple[float, float, float] = (0.0, 0.0, 0.0)
    translation_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    center_mm: tuple[float, float, float] = (0.0, 0.0, 450.0)

    def matrix(self) -> np.ndarray:
        """The 3×3 rotation matrix R."""
        ax, ay, az = (math.radians(a) for a in self.rotation_deg)
        rx = np.array([[1, 0, 0], [0, math.cos(ax), -math.sin(ax)], [0, math.sin(ax), math.cos(ax)]])
        ry = np.array([[math.cos(ay), 0, math.sin(ay)], [0, 1, 0], [-math.sin(ay), 0, math.cos(ay)]])
        rz = np.array([[math.cos(az), -math.sin(az), 0], [math.sin(az), math.cos(az), 0], [0, 0, 1]])
        return rz @ ry @ rx

    def apply(self, points_body: np.ndarray) -> np.ndarray:
        """Body-frame points (..., 3) → scanner frame (mm)."""
        c = np.asarray(self.center_mm)
        return (np.asarray(points_body) - c) @ self.matrix().T + c + np.asarray(self.translation_mm)

    def to_dict(self) -> dict:
        return {"rotation_deg": list(self.rotation_deg), "translation_mm": list(self.translation_mm),
                "center_mm": list(self.center_mm), "matrix": self.matrix().tolist(),
                "convention": "p_scanner = R (p_body - center) + center + translation; R = Rz Ry Rx; LPS mm"}


def rasterize(grid: Grid, *, pose: Pose | None = None,
              kidney_shift_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> np.ndarray:
    """Label map (uint8, [k, j, i]) of the phantom on ``grid`` for a pose and kidney shift.

    Each voxel centre is mapped back to the body frame (inverse pose; kidneys additionally by
    −``kidney_shift_mm``) and tested against every shape's analytic inside test, within the
    shape's bounding box only (no per-voxel loops).
    """
    pose = pose or Pose()
    rot = pose.matrix()
    c = np.asarray(pose.center_mm)
    t = np.asarray(pose.translation_mm)
    labels = np.zeros(grid.shape_kji, dtype=np.uint8)
    ax = [grid.axis(d) for d in range(3)]
    label_of = {s.region.name: s.region.label for s in REGIONS}
    for name, shape in PAINT_ORDER:
        shift = np.asarray(kidney_shift_mm, dtype=float) if name in KIDNEY_REGIONS else np.zeros(3)
        lo, hi = shape.bbox()
        lo, hi = lo + shift, hi + shift
        corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
        sc = (corners - c) @ rot.T + c + t
        slices = []
        for d in range(3):
            i0 = int(np.floor((sc[:, d].min() - grid.origin[d]) / grid.spacing[d])) - 1
            i1 = int(np.ceil((sc[:, d].max() - grid.origin[d]) / grid.spacing[d])) + 2
            slices.append(slice(max(i0, 0), min(i1, grid.size[d])))
        if any(s.start >= s.stop for s in slices):
            continue
        zz, yy, xx = np.meshgrid(ax[2][slices[2]], ax[1][slices[1]], ax[0][slices[0]], indexing="ij")
        p = np.stack([xx, yy, zz], axis=-1) - c - t
        q = p @ rot + c - shift  # R^T (p − c − t) + c, row-vector form
        inside = shape.contains(q[..., 0], q[..., 1], q[..., 2])
        sub = labels[slices[2], slices[1], slices[0]]
        sub[inside] = label_of[name]
    return labels
