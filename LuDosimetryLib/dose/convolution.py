"""Kernel convolution of a TIA map by FFT: D = TIA ⊛ K (Gy, soft-tissue equivalent).

The kernel (:func:`LuDosimetryLib.kernels.dose_kernel`) gives the mean dose in each voxel per Bq·h
of TIA in one source voxel, so the input is **TIA per voxel** (Bq·h per voxel). A TIA
concentration map (Bq·h/mL), e.g. from a SPECT in Bq/mL, is first resampled to the dose grid and
then multiplied by the voxel volume in mL (:func:`tia_per_voxel`); resampling after the
multiplication would not conserve activity.

Two routes use the same function: (1) the voxel TIA map (Bq·h per voxel) gives the absorbed dose
(Gy); (2) an activity map per timepoint (Bq per voxel, at acquisition time) gives a dose-rate map
(Gy/h), whose regional values are then integrated over time with the kinetics fits (the kernel
is linear, so both routes agree when the kinetics are exact).

Implementation: real FFTs (``rfftn``/``irfftn``) on a grid padded to ``next_fast_len`` of
``n + r`` per axis (n image voxels, r kernel half-width): enough to keep the circular
convolution free of wrap-around inside the image (the kernel is stored with its centre at index
0). float32 throughout (complex64 spectra: relative error ~1e-6 of the peak dose), ``workers`` =
cores, the forward transform multiplied in place by the cached kernel spectrum, the inverse
transform allowed to overwrite its input, one cropped copy returned. The array library is a seam
(``backend``): every array operation goes through a :class:`Backend` (``xp`` for array
functions, ``fft`` for the transforms, ``fft_kwargs`` for threading), so CuPy (``cupy`` +
``cupyx.scipy.fft``) can run the same function (``backend="cupy"``; not a dependency, untested
here: no GPU in CI). The input may be a numpy or a backend array; the result is a backend array
(``Backend.to_host`` brings it back), and the kernel spectrum is cached per backend.
"""

from __future__ import annotations

import functools
import os
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConsistencyError, DependencyError, InputError
from ..kernels import Kernel
from ..units import ML_PER_MM3

__all__ = ["Backend", "get_backend", "convolve_dose", "padded_shape", "kernel_spectrum", "tia_per_voxel",
           "check_tia"]


@dataclass(frozen=True)
class Backend:
    """An array library: ``xp`` (numpy-compatible module) and ``fft`` (scipy.fft-compatible module).

    ``to_host`` turns a backend array into a numpy array.
    """

    name: str
    xp: Any
    fft: Any
    threaded_fft: bool = True

    def fft_kwargs(self, workers: int | None) -> dict:
        """Keyword arguments of the transforms: ``workers`` where the library takes it (scipy.fft)."""
        return {"workers": workers or os.cpu_count()} if self.threaded_fft else {}

    def to_host(self, a) -> np.ndarray:
        return a.get() if hasattr(a, "get") and self.name == "cupy" else np.asarray(a)


def get_backend(backend: str | Backend | None = None) -> Backend:
    """The :class:`Backend` named ``backend`` (``"numpy"`` default, or ``"cupy"`` if installed).

    A :class:`Backend` instance is returned as it is (any numpy-compatible ``xp`` with a
    scipy.fft-compatible ``fft`` exposing ``rfftn`` and ``irfftn``).
    """
    if isinstance(backend, Backend):
        return backend
    return _named_backend(backend)


@functools.cache
def _named_backend(backend: str | None) -> Backend:
    if backend in (None, "numpy"):
        import scipy.fft

        return Backend("numpy", np, scipy.fft)
    if backend == "cupy":
        try:
            import cupy
            import cupyx.scipy.fft
        except ImportError as exc:  # pragma: no cover - no CuPy in CI
            raise DependencyError("backend 'cupy' needs CuPy (pip install cupy-cuda12x) and a CUDA GPU") from exc
        return Backend("cupy", cupy, cupyx.scipy.fft, threaded_fft=False)
    raise InputError(f"unknown array backend {backend!r} (expected 'numpy' or 'cupy')", source="backend")


def padded_shape(image_shape, kernel_shape) -> tuple[int, ...]:
    """FFT grid: ``next_fast_len(n + r)`` per axis, r = kernel half-width."""
    import scipy.fft

    return tuple(scipy.fft.next_fast_len(int(n) + int(k) // 2, real=True) for n, k in zip(image_shape, kernel_shape))


_SPECTRA: OrderedDict = OrderedDict()
_SPECTRA_MAX = 4


def kernel_spectrum(kernel: Kernel, shape: tuple[int, ...], *, backend: str | Backend | None = None,
                    workers: int | None = None):
    """rfftn of the kernel, centre moved to index 0, on the FFT grid ``shape`` (complex64; cached)."""
    be = get_backend(backend)
    key = (kernel.key, tuple(shape), be.name)
    if key in _SPECTRA:
        _SPECTRA.move_to_end(key)
        return _SPECTRA[key]
    k = np.asarray(kernel.values_Gy_per_Bq_h, dtype=np.float32)
    c = [s // 2 for s in k.shape]
    padded = np.zeros(shape, dtype=np.float32)
    # place kernel offset o at index o mod shape (centre at 0)
    idx = [np.arange(-ci, s - ci) % n for ci, s, n in zip(c, k.shape, shape)]
    padded[np.ix_(*idx)] = k
    spec = be.fft.rfftn(be.xp.asarray(padded), s=shape, **be.fft_kwargs(workers))
    _SPECTRA[key] = spec
    while len(_SPECTRA) > _SPECTRA_MAX:
        _SPECTRA.popitem(last=False)
    return spec


def check_tia(tia, *, name: str = "tia_Bq_h_per_voxel", xp=np) -> None:
    """Raise :class:`InputError` if the TIA map holds NaN, ±inf or negative values (two reductions)."""
    lo = float(xp.min(tia))
    hi = float(xp.max(tia))
    if np.isnan(lo) or np.isnan(hi):
        raise InputError("contains NaN; expected finite TIA ≥ 0 Bq·h in every voxel (mask or fill NaN first)",
                         source=name)
    if not np.isfinite(hi) or not np.isfinite(lo):
        raise InputError("contains infinite values; expected finite TIA ≥ 0 Bq·h", source=name)
    if lo < 0:
        raise InputError(f"contains negative values (min {lo:g} Bq·h); expected TIA ≥ 0 Bq·h "
                         "(clip negative reconstruction noise before computing dose)", source=name)


def convolve_dose(tia_Bq_h_per_voxel: np.ndarray, kernel: Kernel, *, workers: int | None = None,
                  backend: str | Backend | None = None, check: bool = True) -> np.ndarray:
    """Absorbed dose (Gy) by convolving TIA per voxel with a dose voxel kernel.

    Parameters
    ----------
    tia_Bq_h_per_voxel : array, shape (nz, ny, nx)
        TIA in each voxel (Bq·h per voxel), on a grid whose spacing is ``kernel.voxel_size_mm``
        (x, y, z); indexed [k, j, i].
    kernel : Kernel
        From :func:`LuDosimetryLib.kernels.dose_kernel`.
    workers : int, optional
        FFT threads (default: all cores).
    backend : {"numpy", "cupy"} or Backend, optional
        Array library (default numpy); the result comes back in that library's array type.
    check : bool
        Check the TIA for NaN/negative values (default True).

    Returns
    -------
    array, float32, same shape
        Mean absorbed dose in each voxel (Gy), for the kernel's tissue (soft tissue unless a bone
        kernel is given), ≥ 0 (float32 round-off clipped). Activity outside the grid is not seen.

    Raises
    ------
    InputError
        NaN, infinite or negative TIA; not a 3-D array.
    """
    be = get_backend(backend)
    xp = be.xp
    tia = xp.asarray(tia_Bq_h_per_voxel)
    if tia.ndim != 3:
        raise InputError(f"expected a 3-D array [k, j, i], got shape {tuple(tia.shape)}", source="tia_Bq_h_per_voxel")
    if check:
        check_tia(tia, xp=xp)
    if tia.dtype != xp.float32:
        tia = tia.astype(xp.float32)
    kw = be.fft_kwargs(workers)
    shape = padded_shape(tia.shape, kernel.shape)
    spec = kernel_spectrum(kernel, shape, backend=be, workers=workers)
    f = be.fft.rfftn(tia, s=shape, **kw)
    f *= spec
    out = be.fft.irfftn(f, s=shape, overwrite_x=True, **kw)
    del f
    n = tia.shape
    dose = xp.ascontiguousarray(out[: n[0], : n[1], : n[2]])
    del out
    # float32 round-off (~1e-6 of the peak) can leave tiny negative values where no dose reaches
    xp.maximum(dose, 0, out=dose)
    return dose


def tia_per_voxel(tia_Bq_h_per_mL: np.ndarray, spacing_mm) -> np.ndarray:
    """TIA per voxel (Bq·h) from a TIA concentration map (Bq·h/mL) already on the dose grid.

    Multiplies by the voxel volume (mL) = product of ``spacing_mm`` (mm³) × 1e-3. Resample the
    concentration map to the dose grid **before** calling this.
    """
    sp = tuple(float(v) for v in spacing_mm)
    if len(sp) != 3 or not all(v > 0 for v in sp):
        raise ConsistencyError(f"spacing must be three positive edges in mm, got {spacing_mm!r}", source="spacing_mm")
    vol_mL = sp[0] * sp[1] * sp[2] * ML_PER_MM3
    return np.asarray(tia_Bq_h_per_mL, dtype=np.float32) * np.float32(vol_mL)
