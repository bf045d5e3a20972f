"""Argument types of the command line: numbers checked where they are parsed.

Each factory returns an ``argparse`` ``type=`` callable that rejects a value out of range with
a message in the user's own words and units (``--bootstrap: must be an integer >= 1, got -5``),
so no command receives a zero bootstrap, a negative seed or a negative activity.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

__all__ = ["integer", "number"]


def integer(minimum: int | None = None, maximum: int | None = None) -> Callable[[str], int]:
    """An ``int`` option type accepting ``minimum <= value <= maximum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(f"must be an integer {_range(minimum, maximum, True, True)}, got {text}")
        return value

    parse.__name__ = "integer"
    return parse


def number(unit: str = "", *, minimum: float | None = None, maximum: float | None = None,
           strict_minimum: bool = True) -> Callable[[str], float]:
    """A finite ``float`` option type; ``minimum`` is exclusive unless ``strict_minimum`` is False.

    ``unit`` (``"MBq"``, ``"mm"``) is named in the message so the user reads back what they typed.
    """

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number{_unit(unit)}, got {text!r}") from None
        low_bad = minimum is not None and (value <= minimum if strict_minimum else value < minimum)
        if not math.isfinite(value) or low_bad or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(
                f"must be a finite number {_range(minimum, maximum, not strict_minimum, True)}{_unit(unit)}, "
                f"got {text}{_unit(unit)}")
        return value

    parse.__name__ = "number"
    return parse


def _unit(unit: str) -> str:
    return f" {unit}" if unit else ""


def _range(low, high, low_inclusive: bool, high_inclusive: bool) -> str:
    parts = []
    if low is not None:
        parts.append(f"{'>=' if low_inclusive else '>'} {low if isinstance(low, int) else f'{low:g}'}")
    if high is not None:
        parts.append(f"{'<=' if high_inclusive else '<'} {high if isinstance(high, int) else f'{high:g}'}")
    return " and ".join(parts)
