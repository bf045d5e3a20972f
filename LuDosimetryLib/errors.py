"""Exceptions of LuDosimetryLib.

Every error raised for bad input derives from :class:`LuDosimetryError`, so the command line
(``ludosimetry``) and the Slicer modules can catch one class and show one readable line.
Messages name the file, the DICOM tag or the parameter, what was found and what was expected,
e.g. ``"SPECT day4.dcm: RadiopharmaceuticalStartTime (0018,1072) is missing; need the injection
time to compute time_h"``.
"""

from __future__ import annotations

__all__ = ["LuDosimetryError", "InputError", "DicomError", "ConsistencyError", "DependencyError"]


class LuDosimetryError(Exception):
    """Base class of all errors raised by LuDosimetryLib for input it cannot use."""


class InputError(LuDosimetryError, ValueError):
    """Bad input: a missing or malformed value in a file, table or parameter.

    Parameters
    ----------
    message : str
        What was found and what was expected.
    source : str, optional
        The file, table row/column or parameter name at fault; prefixed to the message.
    """

    def __init__(self, message: str, *, source: str | None = None) -> None:
        self.source = source
        self.reason = message
        super().__init__(f"{source}: {message}" if source else message)


class DicomError(InputError):
    """A DICOM file or attribute that cannot be trusted (missing tag, unknown units, corrupt file).

    Parameters
    ----------
    message : str
        What was found and what was expected.
    source : str, optional
        The file (or series) at fault.
    tag : str, optional
        Keyword and tag, e.g. ``"RadiopharmaceuticalStartTime (0018,1072)"``.
    """

    def __init__(self, message: str, *, source: str | None = None, tag: str | None = None) -> None:
        self.tag = tag
        text = f"{tag} {message}" if tag else message
        super().__init__(text, source=source)


class ConsistencyError(InputError):
    """Inputs that are each valid but do not fit together (grids, times, patients, ledgers)."""


class DependencyError(LuDosimetryError, ImportError):
    """An optional dependency is missing; the message says what to install."""
