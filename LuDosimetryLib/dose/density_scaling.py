"""Density scaling of a kernel dose map and the one mass convention of the dose stage.

A dose-voxel kernel computed in a homogeneous medium (the voxel S-value tables: ICRU soft tissue
at ρ_soft = 1.04 g/mL, :func:`reference_density_g_per_mL`, the density the kernels use)
gives the dose D_soft that voxel i would receive were it soft tissue. The energy deposited in the
voxel is kept and divided by the voxel's own mass::

    D_i = D_soft,i · ρ_soft / ρ_i

(the first-order density correction of voxel-kernel dosimetry; it keeps the energy and neglects
the change of electron transport in the heterogeneity; see e.g. Dieudonné et al., J Nucl Med 54
(2013) 236-243, doi:10.2967/jnumed.112.105825). For sclerotic bone lesions a kernel computed in
cortical bone (ρ_bone) is closer to the transport in the lesion; where ``bone_dose_Gy`` and a
``bone_mask`` are given, voxels in the mask take D_i = D_bone,i · ρ_bone / ρ_i instead.

**Mass convention** (everywhere in the dose stage): the mass of a voxel is ρ_i · V_voxel, with
ρ_i the CT-derived density on the dose grid (g/mL) and V_voxel the dose-grid voxel volume (mL);
a region's mass is the sum over its voxels, and its mean absorbed dose is the mass-weighted mean
Σ D_i m_i / Σ m_i (energy / mass). Predicted (PET) and measured (SPECT) lesion doses computed on
their own grids with this convention compare, because both are energy per CT mass.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from ..errors import InputError
from ..nuclides import photon_attenuation
from .grid import as_voxels, check_same_grid, image_like

__all__ = ["reference_density_g_per_mL", "scale_dose_to_density", "DEFAULT_MIN_DENSITY_G_PER_ML"]

#: Densities below this (g/mL) are raised to it before dividing: air outside the body would
#: otherwise get an unbounded dose from the kernel's tail. A numerical guard, not physical data;
#: lung (≈ 0.26 g/mL) and all tissues lie above it.
DEFAULT_MIN_DENSITY_G_PER_ML = 0.05


def reference_density_g_per_mL(tissue: str = "soft") -> float:
    """Density (g/mL) of the medium of the dose kernels: ``"soft"`` 1.04 (ICRU soft tissue), ``"bone"`` 1.92.

    The densities of the voxel S-value tables (Lanconelli et al. 2012) as the kernels use them,
    from :func:`LuDosimetryLib.nuclides.photon_attenuation` (one source for kernels and scaling).
    """
    if tissue not in ("soft", "bone"):
        raise InputError(f"tissue must be 'soft' or 'bone', got {tissue!r}", source="tissue")
    return photon_attenuation(tissue).density_g_per_mL


def _checked_density(density_g_per_mL, name: str, grid_ref, ref_name: str) -> np.ndarray:
    """The densities as they are stored (checked finite and ≥ 0 without a float64 copy)."""
    rho, grid = as_voxels(density_g_per_mL, name)
    check_same_grid(grid_ref, grid, reference_name=ref_name, other_name=name)
    bad = ~np.isfinite(rho) | (rho < 0)
    if bad.any():
        raise InputError(f"{int(bad.sum())} voxel(s) are NaN, infinite or negative (min {np.nanmin(rho):g}); "
                         "expected densities ≥ 0 g/mL", source=name)
    return rho


def scale_dose_to_density(dose_soft_Gy: sitk.Image | np.ndarray, density_g_per_mL: sitk.Image | np.ndarray, *,
                          bone_dose_Gy: sitk.Image | np.ndarray | None = None,
                          bone_mask: sitk.Image | np.ndarray | None = None,
                          min_density_g_per_mL: float = DEFAULT_MIN_DENSITY_G_PER_ML) -> sitk.Image | np.ndarray:
    """Rescale a soft-tissue kernel dose map to the voxel densities: D_i = D_soft,i · ρ_soft / ρ_i.

    Parameters
    ----------
    dose_soft_Gy : SimpleITK.Image or numpy.ndarray
        Dose (Gy) from the soft-tissue kernel (dose to ICRU soft tissue at 1.04 g/mL).
    density_g_per_mL : SimpleITK.Image or numpy.ndarray
        Mass density (g/mL) on the same grid (e.g. from CT, mass-conservingly averaged).
    bone_dose_Gy : SimpleITK.Image or numpy.ndarray, optional
        Dose (Gy) from the cortical-bone kernel, same grid; used inside ``bone_mask``.
    bone_mask : SimpleITK.Image or numpy.ndarray, optional
        Non-zero where the bone kernel applies (e.g. sclerotic lesions); required with ``bone_dose_Gy``.
    min_density_g_per_mL : float
        Floor applied to ρ_i before dividing (g/mL); see :data:`DEFAULT_MIN_DENSITY_G_PER_ML`.

    Returns
    -------
    SimpleITK.Image or numpy.ndarray
        Dose (Gy), float32, of the type (and geometry) of ``dose_soft_Gy``.

    Raises
    ------
    ConsistencyError
        If a map lies on another grid.
    InputError
        On NaN or negative densities, or ``bone_dose_Gy`` without ``bone_mask``.
    """
    d_soft, grid = as_voxels(dose_soft_Gy, "dose_soft_Gy")
    rho = _checked_density(density_g_per_mL, "density_g_per_mL", grid, "dose_soft_Gy")
    if not min_density_g_per_mL > 0:
        raise InputError(f"must be > 0 g/mL, got {min_density_g_per_mL!r}", source="min_density_g_per_mL")
    if (bone_dose_Gy is None) != (bone_mask is None):
        raise InputError("bone_dose_Gy and bone_mask go together: give both (bone kernel inside the mask) "
                         "or neither", source="bone_dose_Gy" if bone_mask is None else "bone_mask")
    d_bone = mask = None
    if bone_dose_Gy is not None:
        d_bone, g_bone = as_voxels(bone_dose_Gy, "bone_dose_Gy")
        check_same_grid(grid, g_bone, reference_name="dose_soft_Gy", other_name="bone_dose_Gy")
        mask, g_mask = as_voxels(bone_mask, "bone_mask")
        check_same_grid(grid, g_mask, reference_name="dose_soft_Gy", other_name="bone_mask")
    rho_soft, rho_bone = reference_density_g_per_mL("soft"), reference_density_g_per_mL("bone")
    out = np.empty(d_soft.shape, np.float32)
    # float64 arithmetic on slabs of ~1 M voxels: the temporaries stay in cache instead of five
    # whole-map float64 copies (34 M voxels on a clinical analysis grid)
    step = max(1, (1 << 20) // max(1, d_soft[0].size))
    for k in range(0, d_soft.shape[0], step):
        r = np.maximum(rho[k:k + step].astype(np.float64), min_density_g_per_mL)
        d = d_soft[k:k + step].astype(np.float64) * (rho_soft / r)
        if d_bone is not None:
            m = mask[k:k + step] != 0
            d[m] = d_bone[k:k + step][m].astype(np.float64) * (rho_bone / r[m])
        out[k:k + step] = d
    return image_like(out, dose_soft_Gy)
