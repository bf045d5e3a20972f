"""Values supplied by the user: JSON sidecars and command-line overrides, with their provenance.

A sidecar is a JSON object with the keys of the NIfTI sidecar (docs/conventions.md): ``modality``,
``units``, ``decay_correction``, ``acquisition_start``, ``duration_s``, ``frames``, ``injection``
(``datetime``, ``activity_Bq``, ``nuclide``, ``ligand``, and optionally ``assay_activity_Bq``,
``assay_datetime``, ``residual_activity_Bq``, ``residual_datetime``), ``camera``, ``cycle``,
``timepoint``, ``bed``; and, for DICOM series, ``sensitivity_cps_per_MBq``, ``dead_time_s``,
``count_rate_cps``. Beside a DICOM series it is called ``ludosimetry.json`` and may sit in the
series folder or any parent folder inside the patient folder (the nearest wins, key by key);
beside a NIfTI file it is ``<name>.json``.

Precedence for every value: command line > sidecar > DICOM header. The source of the value used
is recorded (``"sidecar /p/tp1/ludosimetry.json: injection.datetime"``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from ..errors import InputError
from .dicomtags import Sourced

__all__ = ["SIDECAR_NAME", "OVERRIDE_KEYS", "load_sidecar", "sidecar_for_series", "flatten_sidecar",
           "normalise_overrides", "pick", "parse_datetime_value", "parse_positive"]

SIDECAR_NAME = "ludosimetry.json"
#: Flat names of the values a user may supply, and their type.
OVERRIDE_KEYS = {
    "injection_datetime": "datetime", "injected_activity_Bq": "positive", "nuclide": "str", "ligand": "str",
    "assay_activity_Bq": "positive", "assay_datetime": "datetime", "residual_activity_Bq": "nonnegative",
    "residual_datetime": "datetime", "sensitivity_cps_per_MBq": "positive", "dead_time_s": "nonnegative",
    "count_rate_cps": "nonnegative", "acquisition_start": "datetime", "duration_s": "positive",
    "units": "str", "decay_correction": "str", "modality": "str", "camera": "dict", "cycle": "int",
    "timepoint": "str", "bed": "int", "frames": "list",
}
_INJECTION_RENAME = {"datetime": "injection_datetime", "activity_Bq": "injected_activity_Bq"}


def parse_datetime_value(value: Any, *, source: str) -> datetime:
    """An ISO datetime (str or datetime); a UTC offset is dropped (local wall time kept)."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=None)
    try:
        return datetime.fromisoformat(str(value)).replace(tzinfo=None)
    except ValueError:
        raise InputError(f"{value!r} is not an ISO datetime (expected e.g. 2026-03-02T09:15:00)",
                         source=source) from None


def parse_positive(value: Any, *, source: str, allow_zero: bool = False) -> float:
    """A finite number > 0 (≥ 0 with ``allow_zero``)."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{value!r} is not a number", source=source) from None
    if not math.isfinite(f) or f < 0 or (f == 0 and not allow_zero):
        raise InputError(f"must be finite and {'≥' if allow_zero else '>'} 0, got {value!r}", source=source)
    return f


def _check(key: str, value: Any, source: str) -> Any:
    kind = OVERRIDE_KEYS[key]
    if kind == "datetime":
        return parse_datetime_value(value, source=source)
    if kind == "positive":
        return parse_positive(value, source=source)
    if kind == "nonnegative":
        return parse_positive(value, source=source, allow_zero=True)
    if kind == "int":
        try:
            return int(value)
        except (TypeError, ValueError):
            raise InputError(f"{value!r} is not an integer", source=source) from None
    if kind == "dict" and not isinstance(value, Mapping):
        raise InputError(f"expected a JSON object, got {value!r}", source=source)
    if kind == "list" and not isinstance(value, list):
        raise InputError(f"expected a JSON list, got {value!r}", source=source)
    if kind == "str":
        return str(value)
    return value


def flatten_sidecar(doc: Mapping, *, path: str) -> dict[str, Sourced]:
    """Flat, type-checked values of a sidecar document, each with its source."""
    if not isinstance(doc, Mapping):
        raise InputError("sidecar must be a JSON object", source=path)
    out: dict[str, Sourced] = {}
    for k, v in doc.items():
        if k == "injection":
            if not isinstance(v, Mapping):
                raise InputError(f"'injection' must be a JSON object, got {v!r}", source=path)
            for ik, iv in v.items():
                key = _INJECTION_RENAME.get(ik, ik)
                if key in OVERRIDE_KEYS and iv is not None:
                    src = f"sidecar {path}: injection.{ik}"
                    out[key] = Sourced(_check(key, iv, src), src)
        elif k in OVERRIDE_KEYS and v is not None:
            src = f"sidecar {path}: {k}"
            out[k] = Sourced(_check(k, v, src), src)
    return out


def load_sidecar(path: str | Path) -> dict[str, Sourced]:
    """Read and flatten one sidecar file."""
    p = Path(path)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read sidecar: {exc}", source=str(p)) from None
    return flatten_sidecar(doc, path=str(p))


def sidecar_for_series(folder: str | Path, root: str | Path) -> dict[str, Sourced]:
    """Merged ``ludosimetry.json`` values from ``folder`` up to ``root`` (nearest wins)."""
    folder, root = Path(folder).resolve(), Path(root).resolve()
    chain = [folder, *folder.parents]
    out: dict[str, Sourced] = {}
    for d in chain:
        f = d / SIDECAR_NAME
        if f.is_file():
            for k, v in load_sidecar(f).items():
                out.setdefault(k, v)
        if d == root:
            break
    return out


def normalise_overrides(overrides: Mapping[str, Any] | None, *, origin: str = "override") -> dict[str, Sourced]:
    """Type-checked user overrides; plain values get the source ``"<origin> <key>"``."""
    out: dict[str, Sourced] = {}
    for k, v in (overrides or {}).items():
        if v is None:
            continue
        if k not in OVERRIDE_KEYS:
            raise InputError(f"unknown override {k!r}; expected one of {', '.join(OVERRIDE_KEYS)}", source="overrides")
        src = v.source if isinstance(v, Sourced) else f"{origin} {k}"
        raw = v.value if isinstance(v, Sourced) else v
        out[k] = Sourced(_check(k, raw, src), src)
    return out


def pick(key: str, *candidates: Sourced | Mapping[str, Sourced] | None) -> Sourced | None:
    """The first value found for ``key`` among override/sidecar mappings and plain candidates."""
    for c in candidates:
        if c is None:
            continue
        if isinstance(c, Mapping):
            if key in c:
                return c[key]
        else:
            return c
    return None
