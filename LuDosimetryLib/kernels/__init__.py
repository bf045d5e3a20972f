"""177Lu dose voxel kernels for any voxel size, and the sphere model (docs/kernels.md).

- :func:`dose_kernel` → :class:`Kernel` (Gy per Bq·h of TIA in the source voxel), cubic or not,
  soft tissue or bone, photons on or off.
- :func:`sphere_s_value`: S-value of a uniform sphere (Gy per Bq·h), from the same point kernels.

References
----------
Lanconelli N. et al., "A free database of radionuclide voxel S values for the dosimetry of
nonuniform activity distributions", Phys. Med. Biol. 57 (2012) 517–533, doi:10.1088/0031-9155/57/2/517.
"""

from .electrons import ElectronModel, fit_electron_model
from .sphere import sphere_s_value
from .voxel import DEFAULT_RADIUS_MM, TISSUES, VOXEL_SIZE_RANGE_MM, Kernel, dose_kernel, kernel_from_model

__all__ = ["Kernel", "dose_kernel", "kernel_from_model", "sphere_s_value", "ElectronModel", "fit_electron_model",
           "VOXEL_SIZE_RANGE_MM", "DEFAULT_RADIUS_MM", "TISSUES"]
