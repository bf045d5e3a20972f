"""The kinetic-model interface and its analytic form, a sum of exponentials.

Every fitted or true time-activity curve implements :class:`KineticModel`:

- ``activity(t_h)`` → activity (Bq) at times ``t_h`` (h p.i.), physical decay included
  (images are held at acquisition time, so fitted rates are *effective* rates);
- ``integral(t0_h=0, t1_h=inf)`` → time-integrated activity (Bq·h);
- ``exponential_terms()`` → ``((a_1, b_1), …)`` with ``A(t) = Σ a_i e^(−b_i t)``, a_i in Bq and
  b_i in h⁻¹ (effective rates, > 0), or ``None`` for a model that is not a sum of exponentials
  (e.g. a trapezoid); dose rate and BED then integrate ``activity`` numerically.

Uptake–washout is ``A0 (e^(−b_w t) − e^(−b_u t))``: two terms with coefficients of opposite sign.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from ..errors import InputError

__all__ = ["KineticModel", "SumOfExponentials", "uptake_washout", "mono_exponential"]


@runtime_checkable
class KineticModel(Protocol):
    """A time-activity curve A(t) (Bq, t in h p.i.)."""

    def activity(self, t_h: np.ndarray | float) -> np.ndarray | float:
        """Activity (Bq) at ``t_h`` (h p.i.)."""

    def integral(self, t0_h: float = 0.0, t1_h: float = math.inf) -> float:
        """Time-integrated activity from ``t0_h`` to ``t1_h`` (Bq·h)."""

    def exponential_terms(self) -> tuple[tuple[float, float], ...] | None:
        """``((a_Bq, b_per_h), …)`` with A(t) = Σ a e^(−b t), or None."""


@dataclass(frozen=True)
class SumOfExponentials:
    """A(t) = Σᵢ aᵢ e^(−bᵢ t) for t ≥ 0 (Bq; t in h p.i.); 0 for t < 0.

    Parameters
    ----------
    coefficients_Bq : tuple of float
        aᵢ (Bq); may be negative (uptake terms).
    rates_per_h : tuple of float
        bᵢ (h⁻¹), finite and > 0 so that the integral to infinity exists.
    """

    coefficients_Bq: tuple[float, ...]
    rates_per_h: tuple[float, ...]

    def __post_init__(self) -> None:
        a = tuple(float(x) for x in self.coefficients_Bq)
        b = tuple(float(x) for x in self.rates_per_h)
        if len(a) != len(b) or not a:
            raise InputError(f"need as many coefficients as rates (≥ 1), got {len(a)} and {len(b)}",
                             source="SumOfExponentials")
        if not all(math.isfinite(x) for x in a) or not all(math.isfinite(x) and x > 0 for x in b):
            raise InputError(f"coefficients must be finite and rates finite and > 0 h⁻¹, got {a}, {b}",
                             source="SumOfExponentials")
        object.__setattr__(self, "coefficients_Bq", a)
        object.__setattr__(self, "rates_per_h", b)

    def activity(self, t_h: np.ndarray | float) -> np.ndarray | float:
        """Activity (Bq) at ``t_h`` (h p.i.); 0 before injection."""
        t = np.asarray(t_h, dtype=float)
        a = np.asarray(self.coefficients_Bq)
        b = np.asarray(self.rates_per_h)
        val = np.where(t >= 0, np.tensordot(np.exp(-np.multiply.outer(t, b)), a, axes=([-1], [0])), 0.0)
        return float(val) if np.ndim(t_h) == 0 else val

    def integral(self, t0_h: float = 0.0, t1_h: float = math.inf) -> float:
        """∫ A dt from ``t0_h`` to ``t1_h`` (Bq·h), analytic: Σ aᵢ (e^(−bᵢt0) − e^(−bᵢt1)) / bᵢ."""
        t0 = max(float(t0_h), 0.0)
        t1 = float(t1_h)
        if t1 <= t0:
            return 0.0
        total = 0.0
        for a, b in zip(self.coefficients_Bq, self.rates_per_h):
            upper = 0.0 if math.isinf(t1) else math.exp(-b * t1)
            total += a * (math.exp(-b * t0) - upper) / b
        return total

    def exponential_terms(self) -> tuple[tuple[float, float], ...]:
        """``((aᵢ, bᵢ), …)``: Bq and h⁻¹."""
        return tuple(zip(self.coefficients_Bq, self.rates_per_h))

    def scaled(self, factor: float) -> SumOfExponentials:
        """A new curve with every coefficient multiplied by ``factor``."""
        return SumOfExponentials(tuple(a * factor for a in self.coefficients_Bq), self.rates_per_h)


def mono_exponential(a0_Bq: float, rate_per_h: float) -> SumOfExponentials:
    """A(t) = A0 e^(−λ t) (Bq; λ effective, h⁻¹)."""
    return SumOfExponentials((a0_Bq,), (rate_per_h,))


def uptake_washout(a0_Bq: float, washout_per_h: float, uptake_per_h: float) -> SumOfExponentials:
    """A(t) = A0 (e^(−λw t) − e^(−λu t)), with effective rates λu > λw > 0 (h⁻¹).

    A(0) = 0; the peak is at ln(λu/λw)/(λu − λw).
    """
    if not uptake_per_h > washout_per_h:
        raise InputError(f"uptake rate ({uptake_per_h} h⁻¹) must exceed washout rate ({washout_per_h} h⁻¹)",
                         source="uptake_washout")
    return SumOfExponentials((a0_Bq, -a0_Bq), (washout_per_h, uptake_per_h))
