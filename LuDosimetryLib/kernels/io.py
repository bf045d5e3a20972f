"""Write a dose voxel kernel to a file with its units (for users who check kernels against their own).

* ``.nii`` / ``.nii.gz``: the full kernel (float32, Gy per Bq·h) with the voxel spacing, origin
  such that the source voxel's centre is at (0, 0, 0) mm, and a JSON sidecar (same name, ``.json``)
  holding units, method, source, nuclide, tissue, density and the kernel's total energy check.
* ``.txt`` / ``.csv``: one octant (i, j, k ≥ 0; the kernel is symmetric in the sign of each
  offset), columns ``i j k S_Gy_per_Bq_h S_mGy_per_MBq_s`` after ``#`` header lines with units
  and method, like the published tables.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..results import atomic_output_path, atomic_write_text
from ..units import MGY_PER_MBQ_S_TO_GY_PER_BQ_H
from .voxel import Kernel

__all__ = ["write_kernel", "kernel_metadata"]


def kernel_metadata(kernel: Kernel) -> dict:
    """Units, method and provenance of a kernel, as written to the sidecar."""
    return {
        "quantity": "mean absorbed dose in the target voxel per time-integrated activity in the source voxel",
        "units": "Gy/(Bq*h)",
        "conversion": f"1 mGy/(MBq*s) = {MGY_PER_MBQ_S_TO_GY_PER_BQ_H:g} Gy/(Bq*h)",
        "array_order": "[k, j, i] = (z, y, x); centre voxel = source",
        "shape": list(kernel.shape),
        "voxel_size_mm": list(kernel.voxel_size_mm),
        "nuclide": kernel.nuclide,
        "tissue": kernel.tissue,
        "density_g_per_mL": kernel.density_g_per_mL,
        "includes_photons": kernel.includes_photons,
        "radius_mm": kernel.radius_mm,
        "method": kernel.method,
        "electron_energy": kernel.electron_energy,
        "source": kernel.source,
    }


def write_kernel(kernel: Kernel, path: str | Path) -> list[Path]:
    """Write ``kernel`` to ``path`` (format from the suffix); return the files written."""
    p = Path(path)
    name = p.name.lower()
    meta = kernel_metadata(kernel)
    if name.endswith((".nii", ".nii.gz")):
        import SimpleITK as sitk

        img = sitk.GetImageFromArray(np.asarray(kernel.values_Gy_per_Bq_h, dtype=np.float32))
        img.SetSpacing(kernel.voxel_size_mm)
        c = [s // 2 for s in kernel.shape[::-1]]
        img.SetOrigin(tuple(-ci * h for ci, h in zip(c, kernel.voxel_size_mm)))
        with atomic_output_path(p) as tmp:
            sitk.WriteImage(img, str(tmp))
        side = p.with_name(p.name[: -len(".nii.gz")] if name.endswith(".nii.gz") else p.stem).with_suffix(".json")
        atomic_write_text(side, json.dumps(meta, indent=1) + "\n")
        return [p, side]
    if name.endswith((".txt", ".csv")):
        sep = "," if name.endswith(".csv") else "\t"
        v = np.asarray(kernel.values_Gy_per_Bq_h, dtype=np.float64)
        c = [s // 2 for s in v.shape]
        octant = v[c[0]:, c[1]:, c[2]:]  # [k, j, i] offsets ≥ 0
        kk, jj, ii = np.meshgrid(*(np.arange(s) for s in octant.shape), indexing="ij")
        lines = [f"# {k}: {json.dumps(val)}" for k, val in meta.items()]
        lines.append("# one octant: offsets i (x), j (y), k (z) >= 0; symmetric in the sign of each offset")
        lines.append(sep.join(["i", "j", "k", "S_Gy_per_Bq_h", "S_mGy_per_MBq_s"]))
        s_gy = octant.ravel()
        rows = np.column_stack([ii.ravel(), jj.ravel(), kk.ravel()])
        order = np.lexsort((rows[:, 2], rows[:, 1], rows[:, 0]))
        for (i, j, k), s in zip(rows[order], s_gy[order]):
            lines.append(sep.join([str(i), str(j), str(k), f"{s:.6e}", f"{s / MGY_PER_MBQ_S_TO_GY_PER_BQ_H:.6e}"]))
        atomic_write_text(p, "\n".join(lines) + "\n")
        return [p]
    raise InputError(f"unknown kernel file type {p.name!r}; expected .nii, .nii.gz, .txt or .csv", source=str(p))
