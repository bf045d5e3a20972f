"""Absorbed dose from time-integrated activity (TIA).

Modules: ``convolution`` (kernel convolution by FFT), ``led`` (local energy deposition); regional
statistics, DVH, density scaling, red marrow and export live in the other modules of this package.
The kernels come from :mod:`LuDosimetryLib.kernels`; both routes take TIA per voxel (Bq·h per
voxel): a concentration map (Bq·h/mL) is first resampled to the dose grid, then multiplied by the
voxel volume (mL).
"""
