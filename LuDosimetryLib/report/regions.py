"""Which regions a clinical report calls organs at risk, how it names them, and their dose limits.

Limits are those cited for 177Lu radioligand therapy; none is a verified constraint for
177Lu-PSMA, and each is printed with its source and status (see
../shared/reference/physics.md). A physicist may give others
(:func:`LuDosimetryLib.report.patient.write_patient_report` ``limits``).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["OAR_GROUPS", "OrganLimit", "DEFAULT_LIMITS", "oar_regions", "display_name", "ledger_organ", "limit_for"]

#: Organs at risk in report order: (group title, regions; bilateral organs left then right).
OAR_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Kidneys", ("kidney_left", "kidney_right")),
    ("Parotid glands", ("parotid_left", "parotid_right")),
    ("Submandibular glands", ("submandibular_left", "submandibular_right")),
    ("Lacrimal glands", ("lacrimal_left", "lacrimal_right")),
    ("Red marrow", ("red_marrow",)),
    ("Liver", ("liver",)),
    ("Spleen", ("spleen",)),
)


@dataclass(frozen=True)
class OrganLimit:
    """A dose limit of an organ at risk.

    Attributes
    ----------
    quantity : {"dose_Gy", "bed_Gy"}
        What the limit constrains: absorbed dose or BED (cumulative over cycles).
    limit_Gy : float
    source : str
        Citation and status.
    """

    quantity: str
    limit_Gy: float
    source: str


#: region prefix → limit.
DEFAULT_LIMITS: dict[str, OrganLimit] = {
    "kidney": OrganLimit("dose_Gy", 23.0, "23 Gy absorbed dose, EBRT-derived (Emami 1991), used in PRRT/RLT; "
                                          "unverified for 177Lu-PSMA"),
    "red_marrow": OrganLimit("dose_Gy", 2.0, "2 Gy absorbed dose, commonly cited; unverified"),
}


def oar_regions(present: set[str]) -> list[tuple[str, list[str]]]:
    """The organ-at-risk groups with the regions present in ``present`` (groups without any dropped)."""
    out = []
    for title, regions in OAR_GROUPS:
        have = [r for r in regions if r in present]
        if have:
            out.append((title, have))
    return out


def display_name(region: str) -> str:
    """``kidney_left`` → ``Kidney left``; ``lesion_bone_1`` → ``Lesion bone 1``."""
    return region.replace("_", " ").strip().capitalize()


def ledger_organ(region: str) -> str | None:
    """The ledger organ (:data:`LuDosimetryLib.planning.ledger.ORGANS`) a region belongs to, if any."""
    for organ in ("kidney", "parotid", "submandibular", "lacrimal", "red_marrow"):
        if region == organ or region.startswith(organ + "_"):
            return organ
    return None


def limit_for(region: str, limits: dict[str, OrganLimit] | None = None) -> OrganLimit | None:
    """The limit of ``region`` (by prefix), or None."""
    table = DEFAULT_LIMITS if limits is None else limits
    for prefix, lim in table.items():
        if region == prefix or region.startswith(prefix + "_"):
            return lim
    return None
