"""Synthetic phantoms (placeholder created by the calibration branch; the phantom branch owns this package)."""
