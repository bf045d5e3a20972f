"""The calibration store: SPECT calibrations keyed on camera, collimator, windows and reconstruction.

A calibration turns reconstructed counts into activity and is only valid for the system it was
measured on. An entry is keyed on :meth:`LuDosimetryLib.model.Camera.key` (manufacturer, model,
collimator, energy windows, reconstruction); a lookup for another key is refused with a message
naming the field that differs. The store is a JSON file (``calibration.json``)::

    {"format": "LuDosimetry calibration store", "version": 1,
     "entries": [{"camera_key": "...", "sensitivity_cps_per_MBq": 9.1, ...}, ...]}

Entries are never edited: a new calibration is added beside the old ones, and a lookup takes the
latest entry on or before the date asked for (of several on one date, the one added last).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from ..errors import InputError
from ..results import write_json

__all__ = ["CalibrationEntry", "CalibrationStore", "KEY_FIELDS", "DRIFT_WARNING_FRACTION", "DRIFT_REFUSE_FRACTION",
           "SENSITIVITY_PLAUSIBLE_CPS_PER_MBQ"]

KEY_FIELDS = ("manufacturer", "model", "collimator", "energy windows", "reconstruction")
#: A new sensitivity further than this fraction from the previous one for the same key is flagged.
DRIFT_WARNING_FRACTION = 0.05
#: A new sensitivity further than this fraction from the previous one is refused unless forced: a
#: camera does not lose or gain half its sensitivity between calibrations; a wrong assay time,
#: activity or unit does.
DRIFT_REFUSE_FRACTION = 0.5
#: Sensitivities outside this range (cps/MBq) are refused unless forced. Clinical SPECT/CT systems
#: measure about 5–30 cps/MBq for 177Lu (photopeak 208 keV, one or two heads, MEGP/MELP/LEHR);
#: the bounds leave an order of magnitude either side for unusual windows and systems.
SENSITIVITY_PLAUSIBLE_CPS_PER_MBQ = (0.5, 500.0)
_FORMAT = "LuDosimetry calibration store"


@dataclass(frozen=True)
class CalibrationEntry:
    """One calibration of one SPECT system.

    Attributes
    ----------
    camera_key : str
        ``Camera.key()``: ``manufacturer|model|collimator|windows|reconstruction``.
    sensitivity_cps_per_MBq : float
        Reconstructed counts per second per MBq in the field of view (cps/MBq), dead-time
        corrected.
    sensitivity_rel_uncertainty : float
        Relative standard uncertainty of the sensitivity (dimensionless).
    dead_time_s : float or None
        Paralysable dead time τ (s), if measured.
    recovery : dict or None
        Recovery-coefficient curve: ``{"model": name, "parameters": {...}, "volumes_mL": [...],
        "coefficients": [...]}`` (see :mod:`LuDosimetryLib.calibration.recovery`).
    date : str
        ISO date of the calibration scan.
    source : str
        How it was obtained (``"cylinder scan <path>"``, ``"manual"``, ``"synthetic phantom"``).
    """

    camera_key: str
    sensitivity_cps_per_MBq: float
    sensitivity_rel_uncertainty: float = 0.0
    dead_time_s: float | None = None
    recovery: dict | None = field(default=None, compare=False, hash=False)
    date: str = ""
    source: str = ""

    def __post_init__(self) -> None:
        s = self.sensitivity_cps_per_MBq
        if not (isinstance(s, int | float) and math.isfinite(s) and s > 0):
            raise InputError(f"must be a finite positive number (cps/MBq), got {s!r}",
                             source="sensitivity_cps_per_MBq")
        if self.dead_time_s is not None and not (math.isfinite(self.dead_time_s) and self.dead_time_s >= 0):
            raise InputError(f"must be finite and ≥ 0 s, got {self.dead_time_s!r}", source="dead_time_s")
        if self.camera_key.count("|") != len(KEY_FIELDS) - 1:
            raise InputError(f"camera_key must have {len(KEY_FIELDS)} '|'-separated fields "
                             f"({', '.join(KEY_FIELDS)}), got {self.camera_key!r}", source="camera_key")
        if self.date:
            try:
                _dt.date.fromisoformat(self.date[:10])
            except ValueError:
                raise InputError(f"not an ISO date: {self.date!r}", source="date") from None


def _latest(entries: list[CalibrationEntry]) -> CalibrationEntry:
    """The entry with the latest date; of entries on the same date, the one added last."""
    return max(enumerate(entries), key=lambda ie: (ie[1].date, ie[0]))[1]


def _key_difference(asked: str, have: str) -> list[str]:
    a, h = asked.split("|"), have.split("|")
    return [f"{name} {x!r} ≠ {y!r}" for name, x, y in zip(KEY_FIELDS, a, h) if x != y]


@dataclass(frozen=True)
class CalibrationStore:
    """An immutable collection of :class:`CalibrationEntry`."""

    entries: tuple[CalibrationEntry, ...] = ()

    # --- files --------------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path, *, required: bool = False) -> CalibrationStore:
        """Read a store; a missing file gives an empty store, or raises with ``required``.

        A store the user named must exist (``required=True``): a typo must not silently fall back
        to another store or to none.
        """
        p = Path(path)
        if not p.exists():
            if required:
                raise InputError("calibration store not found", source=str(p))
            return cls()
        try:
            doc = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(f"cannot read calibration store: {exc}", source=str(p)) from None
        if not isinstance(doc, dict) or doc.get("format") != _FORMAT:
            raise InputError(f"not a calibration store (expected \"format\": \"{_FORMAT}\")", source=str(p))
        entries = []
        for i, e in enumerate(doc.get("entries", [])):
            try:
                entries.append(CalibrationEntry(**e))
            except (TypeError, InputError) as exc:
                raise InputError(f"entry {i}: {exc}", source=str(p)) from None
        return cls(tuple(entries))

    def save(self, path: str | Path) -> Path:
        """Write the store atomically."""
        return write_json(path, {"format": _FORMAT, "version": 1, "entries": [asdict(e) for e in self.entries]})

    # --- use ----------------------------------------------------------------------------------
    def add(self, entry: CalibrationEntry, *, force: bool = False) -> tuple[CalibrationStore, list[str]]:
        """A new store with ``entry`` added, and drift warnings against the previous entry of its key.

        Parameters
        ----------
        entry : CalibrationEntry
            The new calibration.
        force : bool
            Store a sensitivity outside :data:`SENSITIVITY_PLAUSIBLE_CPS_PER_MBQ` or more than
            :data:`DRIFT_REFUSE_FRACTION` from the previous one (with a warning) instead of refusing.

        Raises
        ------
        InputError
            An implausible sensitivity or a drift beyond the bound, without ``force``; the
            message names the value, the bound and the option that overrides it.
        """
        warnings = []
        s = entry.sensitivity_cps_per_MBq
        low, high = SENSITIVITY_PLAUSIBLE_CPS_PER_MBQ
        problems = []
        if not low <= s <= high:
            problems.append(f"sensitivity {s:.4g} cps/MBq is outside the plausible range {low:g}–{high:g} cps/MBq "
                            f"(check the assay activity, its unit and the assay time)")
        prev = [e for e in self.entries if e.camera_key == entry.camera_key]
        if prev:
            last = _latest(prev)
            drift = s / last.sensitivity_cps_per_MBq - 1.0
            text = (f"sensitivity {s:.4g} cps/MBq differs by {drift:+.1%} from the previous calibration "
                    f"({last.sensitivity_cps_per_MBq:.4g} cps/MBq, {last.date or 'undated'}) of {entry.camera_key}")
            if abs(drift) > DRIFT_REFUSE_FRACTION:
                problems.append(f"{text}, beyond the bound of ±{DRIFT_REFUSE_FRACTION:.0%}")
            elif abs(drift) > DRIFT_WARNING_FRACTION:
                warnings.append(text)
        if problems and not force:
            raise InputError("; ".join(problems) + "; not stored (give --accept-drift to store it anyway)",
                             source="calibration store")
        warnings.extend(f"stored although implausible (forced): {p}" for p in problems)
        return replace(self, entries=(*self.entries, entry)), warnings

    def lookup(self, camera_key: str, *, on_date: str | None = None) -> CalibrationEntry:
        """The latest entry for ``camera_key`` dated on or before ``on_date`` (ISO; None: latest).

        Raises
        ------
        InputError
            If no entry has this key; the message names the fields that differ from the closest
            entry, so a calibration of another collimator or reconstruction is never used.
        """
        same = [e for e in self.entries if e.camera_key == camera_key]
        if on_date:
            dated = [e for e in same if not e.date or e.date[:10] <= on_date[:10]]
            if same and not dated:
                raise InputError(f"no calibration of {camera_key} on or before {on_date[:10]} "
                                 f"(earliest {min(e.date for e in same)})", source="calibration store")
            same = dated
        if same:
            return _latest(same)
        if not self.entries:
            raise InputError(f"no calibration for {camera_key}: the store is empty (run 'ludosimetry calibrate' "
                             "or give --sensitivity)", source="calibration store")
        closest = min(self.entries, key=lambda e: len(_key_difference(camera_key, e.camera_key)))
        diff = "; ".join(_key_difference(camera_key, closest.camera_key))
        raise InputError(f"no calibration for {camera_key}; the closest entry differs in {diff}",
                         source="calibration store")
