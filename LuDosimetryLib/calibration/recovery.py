"""Recovery coefficients versus volume from a sphere phantom, a smooth fitted curve, and its use.

Definition. The recovery coefficient of a sphere is the mean reconstructed concentration in the
sphere's volume of interest (each voxel weighted by the fraction of it inside the nominal
sphere; optionally the binary VOI of voxel centres inside) divided by the true concentration,
for the sphere alone (hot sphere, no background) — the classical definition
of Hoffman, Huang & Phelps (J Comput Assist Tomogr 1979;3:299–308) and Kessler, Ellis & Eden
(J Comput Assist Tomogr 1984;8:514–522). With a warm background of true concentration C_b the
background adds (to first order) C_b inside the sphere's VOI, so a phantom at sphere-to-background
ratio SBR gives

    RC_i = (m_i − m_b) / (C_s − C_b),

m_i the mean in sphere i's VOI, m_b the mean in a background VOI (the phantom eroded by 2 × FWHM,
away from every sphere by its radius + 2 × FWHM); C_s = SBR · C_b. Without absolute
concentrations, C_b is taken as m_b (the background is large and fully recovered), so the
calibration needs neither the sensitivity nor the activity: RC_i = (m_i/m_b − 1)/(SBR − 1).

Curves (``RecoveryCurve``), V in mL, R = (3V/4π)^(1/3):

- ``"gaussian_sphere"`` (default): RC(V) = a · g(R, σ), with g the mean over a sphere of radius R
  of the sphere convolved with an isotropic 3-D Gaussian of FWHM = 2√(2 ln 2)·σ:

      g(R, σ) = (1/V) ∫₀^{2R} 4πr² G_σ(r) Ω_R(r) dr,   Ω_R(r) = π(4R + r)(2R − r)²/12,

  G_σ the normalised 3-D Gaussian and Ω_R(r) the overlap volume of two spheres of radius R whose
  centres are r apart. Parameters: effective FWHM (mm) and plateau a (a > 1 allows the overshoot
  of resolution-recovered OSEM). Exact for a shift-invariant Gaussian system.
- ``"hill"``: RC(V) = a / (1 + (V₅₀/V)^n), a sigmoid in ln V (empirical; parameters a, V₅₀, n).

The uncertainty returned by :meth:`RecoveryCurve.coefficient` is the fit's (parameter covariance
propagated by the delta method, scaled by the residuals when they exceed the expected noise),
with the spheres' scatter about the curve added in quadrature, relative to the coefficient.
Spheres whose diameter is below the FWHM (1.5 × FWHM with the binary VOI) are *unresolved*: their
VOI mean depends on sub-voxel position and noise more than on volume; they are reported and
flagged but not fitted.
Coefficients below :data:`RC_FLAG_THRESHOLD` are flagged wherever they are used.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk
from scipy import ndimage
from scipy.optimize import least_squares

from ..errors import InputError
from .geometry import ball_structure, sphere_mask, sphere_weights

__all__ = ["Sphere", "SphereRecovery", "RecoveryCurve", "measure_sphere_recovery", "fit_recovery_curve",
           "gaussian_sphere_recovery", "hill_recovery", "apply_recovery", "recovery_curve_from_store",
           "RecoveryCorrection", "MODELS",
           "RC_FLAG_THRESHOLD", "RESOLVED_DIAMETER_PER_FWHM", "IEC_SPHERE_DIAMETERS_MM",
           "sphere_volume_mL", "sphere_radius_mm"]

#: Recovery coefficients below this are flagged (the correction then more than doubles a value).
RC_FLAG_THRESHOLD = 0.5
#: A sphere is resolved (fitted) when its diameter is at least this many FWHM, per VOI kind. With the
#: binary VOI the mean of a smaller sphere depends on its sub-voxel position by more than 5 %
#: (13-mm sphere, 11-mm FWHM, 4.8-mm voxels: 11 %, docs/calibration.md); the weighted VOI holds
#: down to one FWHM.
RESOLVED_DIAMETER_PER_FWHM = {"weighted": 1.0, "binary": 1.5}
#: Inner diameters (mm) of the six spheres of the IEC 61675-1 / NEMA NU 2 body phantom.
IEC_SPHERE_DIAMETERS_MM = (10.0, 13.0, 17.0, 22.0, 28.0, 37.0)
MODELS = ("gaussian_sphere", "hill")
_FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))
_GL_X, _GL_W = np.polynomial.legendre.leggauss(96)


def sphere_volume_mL(diameter_mm: float) -> float:
    """Volume (mL) of a sphere of ``diameter_mm``."""
    return math.pi / 6.0 * diameter_mm ** 3 / 1000.0


def sphere_radius_mm(volume_mL: float | np.ndarray) -> float | np.ndarray:
    """Radius (mm) of a sphere of ``volume_mL``."""
    return np.cbrt(3.0 * np.asarray(volume_mL, dtype=float) * 1000.0 / (4.0 * math.pi))


def gaussian_sphere_recovery(volume_mL: float | np.ndarray, fwhm_mm: float) -> np.ndarray:
    """Mean over a sphere of the sphere blurred by an isotropic Gaussian of ``fwhm_mm`` (0–1).

    See the module docstring for the integral; evaluated by 96-point Gauss–Legendre quadrature
    on [0, min(2R, 10σ)].
    """
    R = np.atleast_1d(sphere_radius_mm(volume_mL))
    s = fwhm_mm / _FWHM_PER_SIGMA
    upper = np.minimum(2.0 * R, 10.0 * s)
    r = 0.5 * upper[:, None] * (_GL_X[None, :] + 1.0)
    w = 0.5 * upper[:, None] * _GL_W[None, :]
    g = (2.0 * math.pi * s * s) ** -1.5 * np.exp(-r * r / (2.0 * s * s))
    omega = math.pi * (4.0 * R[:, None] + r) * (2.0 * R[:, None] - r) ** 2 / 12.0
    vol = 4.0 / 3.0 * math.pi * R ** 3
    return np.sum(w * 4.0 * math.pi * r * r * g * omega, axis=1) / vol


def hill_recovery(volume_mL: float | np.ndarray, a: float, v50_mL: float, n: float) -> np.ndarray:
    """``a / (1 + (V₅₀/V)^n)`` (dimensionless)."""
    v = np.atleast_1d(np.asarray(volume_mL, dtype=float))
    return a / (1.0 + (v50_mL / v) ** n)


def _model_fn(model: str) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    if model == "gaussian_sphere":
        return lambda v, p: p[1] * gaussian_sphere_recovery(v, p[0])
    if model == "hill":
        return lambda v, p: hill_recovery(v, p[0], p[1], p[2])
    raise InputError(f"unknown recovery model {model!r} (expected one of {', '.join(MODELS)})", source="model")


_PARAM_NAMES = {"gaussian_sphere": ("fwhm_mm", "plateau"), "hill": ("plateau", "v50_mL", "n")}


@dataclass(frozen=True)
class Sphere:
    """One sphere of a phantom: centre (LPS mm) and inner volume (mL)."""

    centre_mm: tuple[float, float, float]
    volume_mL: float
    name: str = ""

    @property
    def diameter_mm(self) -> float:
        """Inner diameter (mm)."""
        return 2.0 * float(sphere_radius_mm(self.volume_mL))


@dataclass(frozen=True)
class SphereRecovery:
    """The measured recovery of one sphere.

    Attributes
    ----------
    name : str
    volume_mL, diameter_mm : float
    voi_volume_mL : float
        Volume of the voxelised VOI (mL).
    mean_value : float
        Mean image value in the VOI (image units).
    recovery : float
        RC (dimensionless).
    uncertainty : float
        Standard uncertainty of RC from image noise (absolute).
    resolved : bool
        Diameter ≥ FWHM; unresolved spheres are not fitted.
    flags : tuple of str
    """

    name: str
    volume_mL: float
    diameter_mm: float
    voi_volume_mL: float
    mean_value: float
    recovery: float
    uncertainty: float
    resolved: bool
    flags: tuple[str, ...] = ()


def measure_sphere_recovery(image: sitk.Image, spheres: Sequence[Sphere], *, phantom_mask: np.ndarray,
                            fwhm_mm: float, sphere_to_background: float | None = None,
                            sphere_conc: float | None = None, background_conc: float | None = None,
                            voi: str = "weighted") -> tuple[tuple[SphereRecovery, ...], float]:
    """Recovery of each sphere of a sphere phantom scan.

    Parameters
    ----------
    image : SimpleITK.Image
        Reconstructed image (counts or Bq/mL: any unit proportional to activity).
    spheres : sequence of Sphere
        Known centres (LPS mm) and inner volumes (mL).
    phantom_mask : numpy.ndarray
        Boolean [k, j, i] mask of the phantom on the image grid (e.g. from the CT).
    fwhm_mm : float
        System resolution (mm): margins (2 × FWHM) and the resolved/unresolved threshold.
    sphere_to_background : float, optional
        True sphere-to-background concentration ratio SBR (> 1); with ``sphere_conc`` and
        ``background_conc`` absent, RC = (m_i/m_b − 1)/(SBR − 1).
    sphere_conc, background_conc : float, optional
        True concentrations in image units (e.g. Bq/mL after calibration); a cold background is
        ``background_conc=0``.
    voi : {"weighted", "binary"}
        ``"weighted"`` (default): each voxel weighted by the fraction of it inside the sphere, so the
        VOI is the sphere itself whatever its sub-voxel position; ``"binary"``: voxels whose centre
        is inside (the mean then depends on how the sphere falls on the grid: ±5 % for 8–20 mL
        spheres on 4.8-mm voxels).

    Returns
    -------
    (tuple of SphereRecovery, float)
        Per sphere, and the measured background mean m_b (image units).

    Raises
    ------
    InputError
        Missing ratio/concentrations, SBR ≤ 1, a sphere outside the image, or no background left.
    """
    if not spheres:
        raise InputError("no spheres given", source="spheres")
    if voi not in ("weighted", "binary"):
        raise InputError(f"must be 'weighted' or 'binary', got {voi!r}", source="voi")
    if not (fwhm_mm > 0):
        raise InputError(f"must be > 0 mm, got {fwhm_mm}", source="fwhm_mm")
    arr = sitk.GetArrayViewFromImage(image).astype(np.float64)
    if phantom_mask.shape != arr.shape:
        raise InputError(f"mask shape {phantom_mask.shape} differs from the image's {arr.shape}", source="phantom_mask")
    spacing = image.GetSpacing()
    vvox = float(np.prod(spacing)) / 1000.0
    margin = 2.0 * fwhm_mm
    keep_out = np.zeros_like(phantom_mask)
    masks = []
    for s in spheres:
        r = float(sphere_radius_mm(s.volume_mL))
        m = sphere_mask(image, s.centre_mm, r)
        if not m.any():
            raise InputError(f"sphere {s.name or s.centre_mm} ({s.volume_mL:.3g} mL) has no voxel centre inside it on "
                             f"this {spacing[0]:.2f} mm grid, or lies outside the image", source="spheres")
        masks.append(m if voi == "binary" else sphere_weights(image, s.centre_mm, r))
        keep_out |= sphere_mask(image, s.centre_mm, r + margin)
    bkg = ndimage.binary_erosion(phantom_mask, structure=ball_structure(margin, spacing)) & ~keep_out
    if bkg.any():
        m_b, var_b = float(arr[bkg].mean()), float(arr[bkg].var())
    elif background_conc is None:
        raise InputError(f"no background VOI left after eroding the phantom by {margin:.1f} mm and excluding the "
                         "spheres; give background_conc", source="phantom_mask")
    else:
        m_b, var_b = float(background_conc), 0.0
    if sphere_conc is None or background_conc is None:
        if sphere_to_background is None or not sphere_to_background > 1:
            raise InputError(f"need a sphere-to-background ratio > 1 (got {sphere_to_background}) or both true "
                             "concentrations", source="sphere_to_background")
        c_b = m_b if background_conc is None else float(background_conc)
        c_s = sphere_to_background * c_b if sphere_conc is None else float(sphere_conc)
    else:
        c_s, c_b = float(sphere_conc), float(background_conc)
    if not c_s > c_b:
        raise InputError(f"sphere concentration {c_s:.4g} must exceed the background {c_b:.4g}", source="spheres")
    out = []
    # Noise per voxel: Poisson-like (variance ∝ mean) from the background where there is one.
    var_per_mean = var_b / m_b if m_b > 0 and var_b > 0 else 1.0
    for s, w in zip(spheres, masks):
        w = w.astype(np.float64)
        mean = float((arr * w).sum() / w.sum())
        n_eff = float(w.sum() ** 2 / (w * w).sum())
        rc = (mean - c_b) / (c_s - c_b)
        u = math.sqrt(max(var_per_mean * max(mean, 0.0), 0.0) / n_eff) / (c_s - c_b)
        k = RESOLVED_DIAMETER_PER_FWHM[voi]
        resolved = s.diameter_mm >= k * fwhm_mm
        flags = []
        if not resolved:
            flags.append(f"unresolved: diameter {s.diameter_mm:.1f} mm < {k:g} × FWHM ({k * fwhm_mm:.1f} mm) "
                         f"with the {voi} VOI; not fitted")
        if rc < RC_FLAG_THRESHOLD:
            flags.append(f"RC {rc:.2f} < {RC_FLAG_THRESHOLD}")
        out.append(SphereRecovery(s.name, float(s.volume_mL), s.diameter_mm, float(w.sum()) * vvox, mean, float(rc),
                                  float(u), bool(resolved), tuple(flags)))
    return tuple(out), m_b


@dataclass(frozen=True)
class RecoveryCurve:
    """A fitted recovery curve RC(V); ``coefficient`` is the TAC stage's recovery hook.

    Attributes
    ----------
    model : str
        ``"gaussian_sphere"`` or ``"hill"``.
    parameters : dict
        Name → value (``fwhm_mm``, ``plateau``; or ``plateau``, ``v50_mL``, ``n``).
    covariance : tuple of tuple of float
        Parameter covariance (order as ``parameters``).
    volumes_mL, coefficients : tuple of float
        The fitted spheres' volumes (mL) and measured coefficients.
    min_volume_mL : float
        Smallest fitted sphere; below it the curve is extrapolated (flagged).
    residual_rel_rms : float
        RMS of (measured − fitted)/fitted over the fitted spheres.
    """

    model: str
    parameters: dict
    covariance: tuple = field(default=(), compare=False)
    volumes_mL: tuple[float, ...] = ()
    coefficients: tuple[float, ...] = ()
    min_volume_mL: float = 0.0
    residual_rel_rms: float = 0.0

    def _values(self, volume_mL, p=None) -> np.ndarray:
        p = np.asarray(list(self.parameters.values()) if p is None else p, dtype=float)
        return _model_fn(self.model)(np.atleast_1d(np.asarray(volume_mL, dtype=float)), p)

    def coefficient(self, volume_mL: float) -> tuple[float, float]:
        """(RC, relative standard uncertainty) at ``volume_mL`` (mL) — the TAC recovery hook.

        The uncertainty is that of predicting one object's coefficient: the curve's own (parameter
        covariance, delta method) and the scatter of the calibration spheres about it
        (``residual_rel_rms``), in quadrature.

        Raises
        ------
        InputError
            If the volume is not finite and positive.
        """
        v = float(volume_mL)
        if not (v > 0 and math.isfinite(v)):
            raise InputError(f"must be a finite positive volume (mL), got {volume_mL}", source="volume_mL")
        p = np.asarray(list(self.parameters.values()), dtype=float)
        rc = float(self._values(v, p)[0])
        cov = np.asarray(self.covariance, dtype=float)
        if cov.size == p.size ** 2 and rc > 0:
            eps = np.maximum(np.abs(p) * 1e-6, 1e-9)
            grad = np.array([(self._values(v, p + e)[0] - self._values(v, p - e)[0]) / (2 * e[i])
                             for i, e in enumerate(np.diag(eps))])
            u_fit = float(grad @ cov.reshape(p.size, p.size) @ grad) / rc ** 2
            u = math.sqrt(max(u_fit, 0.0) + self.residual_rel_rms ** 2)
        else:
            u = math.inf if rc <= 0 else 0.0
        return rc, u

    def flags(self, volume_mL: float) -> tuple[str, ...]:
        """What a user must be told about the coefficient at ``volume_mL``."""
        rc, _ = self.coefficient(volume_mL)
        out = []
        if rc < RC_FLAG_THRESHOLD:
            out.append(f"recovery coefficient {rc:.2f} < {RC_FLAG_THRESHOLD} at {volume_mL:.3g} mL: the corrected "
                       "value is more than doubled and uncertain")
        if volume_mL < self.min_volume_mL:
            out.append(f"{volume_mL:.3g} mL is below the smallest resolved calibration sphere "
                       f"({self.min_volume_mL:.3g} mL): the recovery coefficient is extrapolated")
        return tuple(out)

    def __call__(self, volume_mL: float) -> tuple[float, float]:
        return self.coefficient(volume_mL)

    def to_dict(self) -> dict:
        """The calibration store's ``recovery`` entry."""
        return {"model": self.model, "parameters": dict(self.parameters),
                "covariance": [list(r) for r in self.covariance], "volumes_mL": list(self.volumes_mL),
                "coefficients": list(self.coefficients), "min_volume_mL": self.min_volume_mL,
                "residual_rel_rms": self.residual_rel_rms}

    @classmethod
    def from_dict(cls, d: dict) -> RecoveryCurve:
        """Inverse of :meth:`to_dict` (a calibration store's ``recovery`` entry)."""
        try:
            model = d["model"]
            _model_fn(model)
            params = {k: float(v) for k, v in d["parameters"].items()}
            if tuple(params) != _PARAM_NAMES[model]:
                raise KeyError(f"parameters {tuple(params)} (expected {_PARAM_NAMES[model]})")
            floats = lambda key: tuple(float(x) for x in d.get(key, ()))  # noqa: E731
            return cls(model, params, tuple(tuple(float(x) for x in r) for r in d.get("covariance", ())),
                       floats("volumes_mL"), floats("coefficients"),
                       float(d.get("min_volume_mL", 0.0)), float(d.get("residual_rel_rms", 0.0)))
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"not a recovery curve: {exc}", source="recovery") from None


def recovery_curve_from_store(store, camera_key: str, *, on_date: str | None = None) -> RecoveryCurve | None:
    """The recovery curve of ``camera_key`` in a :class:`~LuDosimetryLib.calibration.store.CalibrationStore`.

    The entry is the store's lookup (refused for another system, naming the field); None when that
    entry has no recovery curve. Pass the result as the TAC stage's ``recovery`` hook.
    """
    entry = store.lookup(camera_key, on_date=on_date)
    return None if entry.recovery is None else RecoveryCurve.from_dict(entry.recovery)


def fit_recovery_curve(measured: Sequence[SphereRecovery], *, model: str = "gaussian_sphere",
                       fwhm_guess_mm: float = 10.0) -> RecoveryCurve:
    """Fit a smooth curve to the resolved spheres' coefficients (weighted least squares).

    Raises
    ------
    InputError
        If fewer resolved spheres than the model has parameters + 1 (the message lists the
        unresolved ones and why).
    """
    fn = _model_fn(model)
    names = _PARAM_NAMES[model]
    use = [m for m in measured if m.resolved]
    if len(use) < len(names) + 1:
        skipped = ", ".join(f"{m.name or f'{m.volume_mL:.3g} mL'} ({m.diameter_mm:.1f} mm)"
                            for m in measured if not m.resolved)
        raise InputError(f"only {len(use)} sphere(s) resolved at this resolution, need ≥ {len(names) + 1} to fit "
                         f"the {model} curve (unresolved, diameter < FWHM: {skipped or 'none'})", source="spheres")
    v = np.array([m.volume_mL for m in use])
    rc = np.array([m.recovery for m in use])
    u = np.array([max(m.uncertainty, 0.005 * abs(m.recovery), 1e-6) for m in use])
    if model == "gaussian_sphere":
        x0, lo, hi = [fwhm_guess_mm, 1.0], [0.1, 0.3], [200.0, 2.0]
    else:
        x0, lo, hi = [float(rc.max()), float(np.median(v)), 1.0], [0.1, 1e-4, 0.1], [3.0, 1e5, 10.0]
    res = least_squares(lambda p: (fn(v, p) - rc) / u, x0=x0, bounds=(lo, hi), x_scale="jac")
    dof = max(v.size - len(names), 1)
    chi2 = 2.0 * res.cost / dof
    try:
        cov = np.linalg.inv(res.jac.T @ res.jac) * max(chi2, 1.0)
    except np.linalg.LinAlgError:
        cov = np.full((len(names), len(names)), np.inf)
    fitted = fn(v, res.x)
    rel_rms = float(np.sqrt(np.mean(((rc - fitted) / fitted) ** 2)))
    return RecoveryCurve(model, dict(zip(names, (float(x) for x in res.x))), tuple(tuple(map(float, r)) for r in cov),
                         tuple(v.tolist()), tuple(rc.tolist()), float(v.min()), rel_rms)


@dataclass(frozen=True)
class RecoveryCorrection:
    """A value corrected for partial-volume loss.

    Attributes
    ----------
    value : float
        Corrected value (same unit as the input).
    coefficient : float
    rel_uncertainty : float
        Relative uncertainty of the corrected value from the coefficient's (all of it without a
        background; the contrast's share with one).
    flags : tuple of str
    """

    value: float
    coefficient: float
    rel_uncertainty: float
    flags: tuple[str, ...]


def apply_recovery(value: float, volume_mL: float, curve: RecoveryCurve, *,
                   background: float | None = None) -> RecoveryCorrection:
    """Correct a region's mean concentration for partial-volume loss with RC(volume).

    Without ``background``: ``value / RC`` (exact for an object in cold surroundings; ``value``
    may also be an activity). With the local background concentration ``b`` around the region
    (same unit as ``value``, a mean concentration): ``(value − b)/RC + b``, the contrast corrected
    and the background kept (the first-order model of a hot sphere in a warm background, as the
    recovery is measured). Flags RC < 0.5 and extrapolation below the smallest calibration sphere.
    """
    rc, u = curve.coefficient(volume_mL)
    if rc <= 0:
        raise InputError(f"recovery coefficient {rc:.3g} ≤ 0 at {volume_mL:.3g} mL", source="recovery")
    if background is None:
        return RecoveryCorrection(float(value) / rc, rc, u, curve.flags(volume_mL))
    b = float(background)
    corrected = (float(value) - b) / rc + b
    # only the contrast carries the coefficient's uncertainty
    u_val = u * abs(corrected - b) / abs(corrected) if corrected else u
    return RecoveryCorrection(corrected, rc, u_val, curve.flags(volume_mL))
