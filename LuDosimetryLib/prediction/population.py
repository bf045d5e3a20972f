"""Population 177Lu kinetics (effective washout and uptake half-lives) for the PET-based prediction.

The 68Ga PET sees the first hour; the 177Lu washout over days is taken from a population table,
``data/population_halflives_lu177_psma.csv`` (sources and status per row), or a user CSV with the
same columns (``key,effective_half_life_h,uptake_half_life_h,status,source``; ``#`` lines are
comments). A region is looked up by, in order: its leaf name, its group, its name without
``_left``/``_right``, its group without side, its name without a trailing ``_<number>`` (e.g.
``vertebra_l1`` → ``vertebra``), then ``default_<kind>`` (``default_organ``, ``default_lesion``).

Never build this table from the same patient's measured cycle when the prediction is compared
with that cycle (docs/prediction.md).
"""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ..errors import InputError
from ..nuclides import get_nuclide

__all__ = ["PopulationEntry", "PopulationTable", "load_population_table", "DEFAULT_POPULATION_TABLE",
           "write_population_table"]

#: File name of the shipped table in ``LuDosimetryLib/data``.
DEFAULT_POPULATION_TABLE = "population_halflives_lu177_psma.csv"
_COLUMNS = ("key", "effective_half_life_h", "uptake_half_life_h", "status", "source")


@dataclass(frozen=True)
class PopulationEntry:
    """One row of the population table.

    Attributes
    ----------
    key : str
        Region key the row was found under.
    effective_half_life_h : float
        177Lu effective washout half-life (h), physical decay included; ≤ T½(177Lu).
    uptake_half_life_h : float
        Biological uptake half-life (h), used where the PET cannot estimate the uptake rate.
    status : str
        ``verified``, ``unverified`` or ``default``.
    source : str
    """

    key: str
    effective_half_life_h: float
    uptake_half_life_h: float
    status: str
    source: str

    @property
    def biological_washout_rate_per_h(self) -> float:
        """β_w = ln2/T_eff − λ(177Lu) (h⁻¹), ≥ 0."""
        return max(math.log(2.0) / self.effective_half_life_h - get_nuclide("Lu-177").decay_constant_per_h, 0.0)

    @property
    def biological_uptake_rate_per_h(self) -> float:
        """β_u = ln2/T_uptake (h⁻¹)."""
        return math.log(2.0) / self.uptake_half_life_h


@dataclass(frozen=True)
class PopulationTable:
    """Population kinetics by region key; ``origin`` is the file it came from."""

    entries: tuple[PopulationEntry, ...]
    origin: str

    def keys(self) -> tuple[str, ...]:
        return tuple(e.key for e in self.entries)

    def lookup(self, region: str, *, kind: str = "organ", group: str = "") -> PopulationEntry:
        """The entry for ``region`` (see the module docstring for the search order).

        Raises
        ------
        InputError
            If neither the region nor ``default_<kind>`` is in the table.
        """
        table = {e.key: e for e in self.entries}
        for key in _candidate_keys(region, kind, group):
            if key in table:
                return table[key]
        raise InputError(f"no population half-life for region {region!r} (kind {kind}) and no "
                         f"'default_{kind}' row; keys: {', '.join(table)}", source=self.origin)

    def to_dict(self) -> dict:
        """For run.json: origin and every row."""
        return {"origin": self.origin, "rows": [e.__dict__ for e in self.entries]}


def _strip_side(name: str) -> str:
    for suffix in ("_left", "_right"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _candidate_keys(region: str, kind: str, group: str) -> list[str]:
    keys = [region]
    if group:
        keys.append(group)
    keys.append(_strip_side(region))
    if group:
        keys.append(_strip_side(group))
    base = _strip_side(region)
    for suffix in ("_cortex", "_l1", "_l2", "_l3", "_l4", "_l5"):
        if base.endswith(suffix):
            keys.append(base[: -len(suffix)])
    stripped = re.sub(r"_(?:[a-z]?\d+)$", "", base)
    keys.append(stripped)
    keys.append(f"default_{kind}")
    out: list[str] = []
    for k in keys:
        if k and k not in out:
            out.append(k)
    return out


def _parse(text: str, origin: str) -> PopulationTable:
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    rows = list(csv.DictReader(io.StringIO("\n".join(lines))))
    if not rows:
        raise InputError("population table has no rows", source=origin)
    missing = set(_COLUMNS[:3]) - set(rows[0])
    if missing:
        raise InputError(f"missing column(s) {sorted(missing)}; expected {','.join(_COLUMNS)}", source=origin)
    lu = get_nuclide("Lu-177")
    entries = []
    for i, row in enumerate(rows, start=2):
        key = (row.get("key") or "").strip()
        try:
            t_eff = float(row["effective_half_life_h"])
            t_up = float(row["uptake_half_life_h"])
        except (TypeError, ValueError):
            raise InputError(f"row {i} ({key}): half-lives must be numbers in h, got "
                             f"{row.get('effective_half_life_h')!r}, {row.get('uptake_half_life_h')!r}",
                             source=origin) from None
        if not key:
            raise InputError(f"row {i}: empty key", source=origin)
        if not (0 < t_eff <= lu.half_life_h * (1 + 1e-9)):
            raise InputError(f"row {i} ({key}): effective half-life {t_eff} h must be in (0, {lu.half_life_h:.1f}] h "
                             "(it includes the physical decay of 177Lu)", source=origin)
        if not (math.isfinite(t_up) and t_up > 0):
            raise InputError(f"row {i} ({key}): uptake half-life must be > 0 h, got {t_up}", source=origin)
        entries.append(PopulationEntry(key, t_eff, t_up, (row.get("status") or "").strip(),
                                       (row.get("source") or "").strip()))
    keys = [e.key for e in entries]
    dup = sorted({k for k in keys if keys.count(k) > 1})
    if dup:
        raise InputError(f"duplicate key(s) {dup}", source=origin)
    return PopulationTable(tuple(entries), origin)


def load_population_table(path: str | Path | None = None) -> PopulationTable:
    """Read a population table (default: the shipped one).

    Parameters
    ----------
    path : str or Path, optional
        A CSV with columns ``key,effective_half_life_h,uptake_half_life_h[,status,source]``.

    Raises
    ------
    InputError
        Unreadable file, missing columns, non-numeric or unphysical half-lives, duplicate keys.
    """
    if path is None:
        text = resources.files("LuDosimetryLib").joinpath("data").joinpath(DEFAULT_POPULATION_TABLE) \
            .read_text(encoding="utf-8")
        return _parse(text, f"LuDosimetryLib/data/{DEFAULT_POPULATION_TABLE}")
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read population table: {exc.strerror}", source=str(p)) from None
    return _parse(text, str(p))


def write_population_table(table: PopulationTable, path: str | Path) -> Path:
    """Write ``table`` as a population CSV (the columns :func:`load_population_table` reads), atomically."""
    from ..results import write_csv

    return write_csv(path, [{c: getattr(e, c) for c in _COLUMNS} for e in table.entries], _COLUMNS,
                     extra_columns=False)
