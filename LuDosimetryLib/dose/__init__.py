"""Absorbed dose: local deposition, kernel convolution, regional statistics, red marrow, export."""
