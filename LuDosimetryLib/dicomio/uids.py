"""DICOM UIDs: random ones for real use, deterministic ones for reproducible phantoms."""

from __future__ import annotations

from pydicom.uid import PYDICOM_ROOT_UID, generate_uid

__all__ = ["UID_ROOT", "new_uid"]

#: Root under which LuDosimetry makes UIDs: pydicom's root (1.2.826.0.1.3680043.8.498.), which
#: pydicom offers for generated UIDs; the suffix is random or a SHA-512 hash of the seed text.
UID_ROOT = PYDICOM_ROOT_UID

#: Namespace mixed into every seeded UID so our seeds cannot collide with other pydicom users'.
_SEED_NAMESPACE = "LuDosimetry/dicomio/"


def new_uid(seed_text: str | None = None) -> str:
    """Return a new DICOM UID (at most 64 characters) under :data:`UID_ROOT`.

    Parameters
    ----------
    seed_text : str, optional
        Without it the UID is random (``secrets``). With it the UID is a deterministic hash of
        the text, so a phantom written twice with the same seed gets the same UIDs; use distinct
        texts for distinct objects (e.g. ``"seed=3/cycle1/tp2/CT/series"``).
    """
    if seed_text is None:
        return str(generate_uid(prefix=UID_ROOT))
    return str(generate_uid(prefix=UID_ROOT, entropy_srcs=[_SEED_NAMESPACE + str(seed_text)]))
