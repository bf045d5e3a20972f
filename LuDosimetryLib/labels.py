"""Label table schema: how regions of a segmentation are named.

A label table has one row per label value of a label map: ``label`` (int > 0), ``name`` (unique,
lower-case snake case, side as suffix: ``kidney_cortex_left``), ``side`` (``left``, ``right`` or
``none``), ``kind`` (``organ``, ``lesion`` or ``other``) and ``group`` (optional: leaves that
together form a reported composite region, e.g. ``kidney_cortex_left`` and ``renal_pelvis_left``
form ``kidney_left``). It is stored as ``labels.csv`` beside the label map. Results files name
regions exactly as here.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from .errors import InputError

__all__ = ["Region", "LabelTable", "REGION_KINDS", "SIDES", "LABEL_TABLE_COLUMNS"]

REGION_KINDS = ("organ", "lesion", "other")
SIDES = ("left", "right", "none")
LABEL_TABLE_COLUMNS = ("label", "name", "side", "kind", "group")


@dataclass(frozen=True)
class Region:
    """One labelled region.

    Attributes
    ----------
    label : int
        Value in the label map (> 0; 0 is background).
    name : str
        Unique region name used in every results file.
    side : {"left", "right", "none"}
    kind : {"organ", "lesion", "other"}
    group : str
        Composite region this leaf belongs to ("" if none).
    """

    label: int
    name: str
    side: str = "none"
    kind: str = "organ"
    group: str = ""

    def __post_init__(self) -> None:
        if int(self.label) != self.label or self.label <= 0:
            raise InputError(f"label must be an integer > 0, got {self.label!r}", source=f"region {self.name}")
        if not self.name or any(c.isspace() for c in self.name) or "," in self.name:
            raise InputError(f"region name must be non-empty without spaces or commas, got {self.name!r}",
                             source=f"label {self.label}")
        if self.side not in SIDES:
            raise InputError(f"side must be one of {SIDES}, got {self.side!r}", source=f"region {self.name}")
        if self.kind not in REGION_KINDS:
            raise InputError(f"kind must be one of {REGION_KINDS}, got {self.kind!r}", source=f"region {self.name}")


@dataclass(frozen=True)
class LabelTable:
    """An ordered, validated set of :class:`Region`.

    Raises
    ------
    InputError
        On duplicate labels or names, or a group named like a leaf region.
    """

    regions: tuple[Region, ...]

    def __post_init__(self) -> None:
        labels = [r.label for r in self.regions]
        names = [r.name for r in self.regions]
        for what, seq in (("label", labels), ("name", names)):
            dup = sorted({x for x in seq if seq.count(x) > 1}, key=str)
            if dup:
                raise InputError(f"duplicate {what}(s) {dup}", source="label table")
        clash = sorted({r.group for r in self.regions if r.group} & set(names))
        if clash:
            raise InputError(f"group name(s) {clash} also used as region names", source="label table")

    def __iter__(self):
        return iter(self.regions)

    def __len__(self) -> int:
        return len(self.regions)

    def by_name(self, name: str) -> Region:
        """The region called ``name``; :class:`InputError` naming the known regions otherwise."""
        for r in self.regions:
            if r.name == name:
                return r
        raise InputError(f"no region named {name!r} (have: {', '.join(r.name for r in self.regions)})",
                         source="label table")

    def by_label(self, label: int) -> Region:
        """The region with label value ``label``."""
        for r in self.regions:
            if r.label == label:
                return r
        raise InputError(f"no region with label {label}", source="label table")

    def groups(self) -> dict[str, tuple[Region, ...]]:
        """Composite regions: group name → its leaf regions, in table order."""
        out: dict[str, list[Region]] = {}
        for r in self.regions:
            if r.group:
                out.setdefault(r.group, []).append(r)
        return {k: tuple(v) for k, v in out.items()}

    def of_kind(self, kind: str) -> tuple[Region, ...]:
        """Regions of one kind (``organ``, ``lesion`` or ``other``)."""
        return tuple(r for r in self.regions if r.kind == kind)

    # --- files --------------------------------------------------------------------------------
    def to_csv_text(self) -> str:
        """The table as CSV text with the columns of :data:`LABEL_TABLE_COLUMNS`."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(LABEL_TABLE_COLUMNS)
        for r in self.regions:
            w.writerow([r.label, r.name, r.side, r.kind, r.group])
        return buf.getvalue()

    @classmethod
    def from_csv_text(cls, text: str, *, source: str = "labels.csv") -> LabelTable:
        """Parse CSV text (header ``label,name,side,kind[,group]``)."""
        rows = list(csv.DictReader(io.StringIO(text)))
        if not rows:
            raise InputError("label table is empty", source=source)
        missing = {"label", "name"} - set(rows[0])
        if missing:
            raise InputError(f"missing column(s) {sorted(missing)}; expected {LABEL_TABLE_COLUMNS}", source=source)
        regions = []
        for i, row in enumerate(rows, start=2):
            try:
                label = int(row["label"])
            except (TypeError, ValueError):
                raise InputError(f"row {i}, column 'label': {row['label']!r} is not an integer",
                                 source=source) from None
            try:
                regions.append(Region(label, (row.get("name") or "").strip(), (row.get("side") or "none").strip(),
                                      (row.get("kind") or "organ").strip(), (row.get("group") or "").strip()))
            except InputError as exc:
                raise InputError(f"row {i}: {exc}", source=source) from None
        return cls(tuple(regions))

    @classmethod
    def read(cls, path: str | Path) -> LabelTable:
        """Read a ``labels.csv`` file."""
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise InputError(f"cannot read label table: {exc.strerror}", source=str(p)) from None
        return cls.from_csv_text(text, source=str(p))
