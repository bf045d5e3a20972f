"""Shared pytest fixtures of the LuDosimetryLib suite."""

from __future__ import annotations

import os

os.environ.setdefault("MPLBACKEND", "Agg")
