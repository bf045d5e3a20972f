"""A collector of ingest problems, so that ``ludosimetry inspect`` reports all of them in one run.

Ingest normally raises at the first problem (the dose chain must stop). Given a
:class:`Diagnosis`, the same code records each problem instead, skips only what the problem
makes unusable (one file, one series, one timepoint) and goes on, so a user fixing a folder sees
every problem at once. A problem is *blocking* when ``ludosimetry run`` would stop on it (every
error); warnings are recorded as non-blocking problems.

Usage inside ingest::

    with diagnosis.attempt():      # without a Diagnosis: errors propagate unchanged
        le = load_spect_bed(...)
        loaded.append(le)          # skipped when the line above failed
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field

from ..errors import LuDosimetryError

__all__ = ["Problem", "Diagnosis", "attempt"]


@dataclass(frozen=True)
class Problem:
    """One problem found in a patient folder.

    Attributes
    ----------
    message : str
        What is wrong and what to fix, naming the file, tag or parameter.
    blocking : bool
        ``ludosimetry run`` stops on it.
    kind : str
        The error class (``DicomError``, ``ConsistencyError``, ...) or ``warning``.
    """

    message: str
    blocking: bool = True
    kind: str = "error"

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return asdict(self)


@dataclass
class Diagnosis:
    """Problems collected while reading a patient folder (see the module docstring)."""

    problems: list[Problem] = field(default_factory=list)

    def add(self, problem: Exception | str, *, blocking: bool = True, kind: str | None = None) -> None:
        """Record an error (or a message); the same message is recorded once."""
        message = str(problem)
        if any(p.message == message for p in self.problems):
            return
        k = kind or (type(problem).__name__ if isinstance(problem, Exception) else "error")
        self.problems.append(Problem(message, blocking, k))

    @contextlib.contextmanager
    def attempt(self) -> Iterator[None]:
        """Run a block; a :class:`LuDosimetryError` in it is recorded and the block is skipped."""
        try:
            yield
        except LuDosimetryError as exc:
            self.add(exc)

    @property
    def blocking(self) -> list[Problem]:
        """The problems on which ``run`` would stop."""
        return [p for p in self.problems if p.blocking]


def attempt(diagnosis: Diagnosis | None) -> contextlib.AbstractContextManager:
    """``diagnosis.attempt()``, or a context that lets errors propagate when there is no diagnosis."""
    return diagnosis.attempt() if diagnosis is not None else contextlib.nullcontext()
