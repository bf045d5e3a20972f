"""Camera sensitivity (cps/MBq) from a SPECT/CT of a uniform cylinder of known activity.

Method (default ``"total"``): all reconstructed counts within the phantom drawn from the CT
(threshold + largest component) **dilated** by a margin of 2 × FWHM, divided by the acquisition
duration, corrected for dead time and divided by the activity at acquisition:

    S = n / Ā,   n = −W₀(−mτ)/τ,   m = C / T,
    Ā = A_assay · e^(−λ(t_start − t_assay)) · (1 − e^(−λT)) / (λT)

(C counts in the VOI, T acquisition duration (s), Ā the mean activity during the acquisition (MBq),
λ from :mod:`LuDosimetryLib.nuclides`). Counting everything the phantom spills out (the dilation)
makes S independent of partial-volume loss at the wall, of the fill volume and of the
reconstruction's uniformity; what it needs is the whole phantom, plus its margin, inside the
reconstructed field of view, which is checked (an :class:`InputError` otherwise). Far-away
reconstruction noise is excluded by not summing the whole field of view.

The alternative ``"voi"`` takes the mean count rate per mL in the phantom **eroded** by the
margin and divides by the concentration A/V (V: the fill volume if given, else the CT volume):
the clinical "uniform region" method (both are discussed in Dickson et al., EANM practice
guideline for quantitative SPECT-CT, Eur J Nucl Med Mol Imaging 2023;50:980–995,
doi:10.1007/s00259-022-06028-9); it depends on the volume and on the reconstruction's
uniformity, so it is offered but not the default.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from ..errors import InputError
from ..ingest.quant import paralysable_true_rate_cps
from ..nuclides import get_nuclide
from ..timing import frame_average_decay_factor, hours_between
from ..units import BQ_PER_MBQ, S_PER_H
from .geometry import ball_structure, distance_to_fov_edge_mm, phantom_mask_from_ct, voxel_volume_mL

__all__ = ["SensitivityResult", "sensitivity_from_cylinder", "activity_during_acquisition_Bq", "METHODS"]

METHODS = ("total", "voi")


@dataclass(frozen=True)
class SensitivityResult:
    """A sensitivity measured on a cylinder scan.

    Attributes
    ----------
    sensitivity_cps_per_MBq : float
        Dead-time-corrected reconstructed count rate per MBq (cps/MBq).
    rel_uncertainty : float
        Relative standard uncertainty: Poisson counts, assay and dead time, in quadrature.
    method : str
        ``"total"`` or ``"voi"``.
    margin_mm : float
        Dilation (total) or erosion (voi) of the CT phantom mask (mm).
    counts : float
        Counts in the VOI.
    voi_volume_mL : float
        Volume of the VOI (mL).
    phantom_volume_mL : float
        Volume of the phantom drawn from the CT (mL).
    activity_MBq : float
        Mean activity during the acquisition (MBq).
    observed_cps, true_cps : float
        Observed rate in the whole field of view and its dead-time-corrected value (cps).
    live_fraction : float
    fov_clearance_mm : dict
        Distance of the VOI to each face of the field of view (mm).
    """

    sensitivity_cps_per_MBq: float
    rel_uncertainty: float
    method: str
    margin_mm: float
    counts: float
    voi_volume_mL: float
    phantom_volume_mL: float
    activity_MBq: float
    observed_cps: float
    true_cps: float
    live_fraction: float
    fov_clearance_mm: dict


def activity_during_acquisition_Bq(*, assay_activity_Bq: float, assay_datetime: datetime | None,
                                   acquisition_start: datetime, duration_s: float, nuclide: str = "Lu-177") -> float:
    """Mean activity (Bq) over an acquisition, from an assay at another time.

    ``A_assay · e^(−λ(t_start − t_assay)) · (1 − e^(−λT))/(λT)``.

    Raises
    ------
    InputError
        If the assay time is missing, or the activity or duration are not positive.
    """
    if assay_datetime is None:
        raise InputError("missing: the time of the activity assay is needed to decay the assayed activity to the "
                         "acquisition (give --assay-time or the sidecar's injection.datetime)", source="assay_datetime")
    if not (assay_activity_Bq > 0 and math.isfinite(assay_activity_Bq)):
        raise InputError(f"must be a finite positive activity, got {assay_activity_Bq}", source="assay_activity_Bq")
    if not (duration_s > 0 and math.isfinite(duration_s)):
        raise InputError(f"must be a finite positive duration (s), got {duration_s}", source="duration_s")
    nuc = get_nuclide(nuclide)
    dt_h = hours_between(assay_datetime, acquisition_start)
    return (assay_activity_Bq * math.exp(-nuc.decay_constant_per_h * dt_h)
            * frame_average_decay_factor(nuc, duration_s / S_PER_H))


def sensitivity_from_cylinder(spect: sitk.Image, ct: sitk.Image, *, assay_activity_Bq: float,
                              assay_datetime: datetime | None, acquisition_start: datetime, duration_s: float,
                              fwhm_mm: float, nuclide: str = "Lu-177", dead_time_s: float = 0.0,
                              dead_time_rel_uncertainty: float = 0.0, assay_rel_uncertainty: float = 0.0,
                              method: str = "total", margin_mm: float | None = None,
                              fill_volume_mL: float | None = None,
                              progress: Callable[[float, str], None] | None = None) -> SensitivityResult:
    """Sensitivity (cps/MBq) from a reconstructed SPECT (counts) and CT of a uniform cylinder.

    Parameters
    ----------
    spect : SimpleITK.Image
        Reconstructed counts (not scaled to Bq/mL), LPS.
    ct : SimpleITK.Image
        The CT of the same scan (HU), any grid in the same frame of reference.
    assay_activity_Bq : float
        Activity put in the phantom, as assayed (Bq).
    assay_datetime : datetime or None
        Time of the assay; None raises (needed for decay).
    acquisition_start : datetime
    duration_s : float
        Acquisition duration (s).
    fwhm_mm : float
        System spatial resolution (mm); the margin defaults to 2 × FWHM.
    nuclide : str
    dead_time_s : float
        Paralysable dead time τ (s) for the count-loss correction (0: none).
    dead_time_rel_uncertainty, assay_rel_uncertainty : float
        Relative standard uncertainties of τ and of the assay.
    method : {"total", "voi"}
        See the module docstring.
    margin_mm : float, optional
        Dilation (``total``) or erosion (``voi``) of the CT mask (mm); default 2 × ``fwhm_mm``.
    fill_volume_mL : float, optional
        Fill volume for ``voi`` (mL); default the CT volume.
    progress : callable, optional

    Returns
    -------
    SensitivityResult

    Raises
    ------
    InputError
        Missing assay time; the phantom (plus margin) not fully inside the SPECT field of view;
        nothing left after erosion; bad parameters.
    """
    if method not in METHODS:
        raise InputError(f"must be one of {', '.join(METHODS)}, got {method!r}", source="method")
    if not (fwhm_mm > 0 and math.isfinite(fwhm_mm)):
        raise InputError(f"must be a positive resolution in mm, got {fwhm_mm}", source="fwhm_mm")
    activity = activity_during_acquisition_Bq(assay_activity_Bq=assay_activity_Bq, assay_datetime=assay_datetime,
                                              acquisition_start=acquisition_start, duration_s=duration_s,
                                              nuclide=nuclide)
    margin = 2.0 * fwhm_mm if margin_mm is None else float(margin_mm)
    if progress:
        progress(0.1, "phantom from the CT")
    counts_img = sitk.GetArrayFromImage(spect).astype(np.float64)
    phantom = phantom_mask_from_ct(ct, spect)
    spacing = spect.GetSpacing()
    vvox = voxel_volume_mL(spect)
    # The phantom itself must lie inside the CT and the SPECT field of view, with its margin.
    ct_phantom_on_ct = phantom_mask_from_ct(ct, ct)
    ct_clear = distance_to_fov_edge_mm(ct_phantom_on_ct, ct.GetSpacing())
    touching = [face for face, d in ct_clear.items() if d <= 0.0]
    if touching:
        raise InputError(f"the cylinder is not fully in the CT: it reaches the {', '.join(touching)} edge(s) of the "
                         "CT field of view; the activity outside cannot be counted", source="cylinder scan")
    clearance = distance_to_fov_edge_mm(phantom, spacing)
    short = {face: d for face, d in clearance.items() if d < margin}
    if short:
        faces = ", ".join(f"{face} {d:.1f} mm" for face, d in short.items())
        raise InputError(f"the cylinder is not fully in the SPECT field of view with its {margin:.1f} mm margin "
                         f"(2 × FWHM): clearance to the edge {faces}; centre the phantom or widen the "
                         "reconstructed field of view", source="cylinder scan")
    if progress:
        progress(0.5, "counting")
    ball = ball_structure(margin, spacing)
    if method == "total":
        voi = ndimage.binary_dilation(phantom, structure=ball)
    else:
        voi = ndimage.binary_erosion(phantom, structure=ball)
        if not voi.any():
            raise InputError(f"nothing left of the phantom after eroding by {margin:.1f} mm", source="margin_mm")
    counts = float(counts_img[voi].sum())
    total_fov = float(counts_img.sum())
    observed = total_fov / duration_s
    true = paralysable_true_rate_cps(observed, dead_time_s)
    live = observed / true if true > 0 else 1.0
    a_MBq = activity / BQ_PER_MBQ
    phantom_mL = float(phantom.sum()) * vvox
    if method == "total":
        s = counts / duration_s / live / a_MBq
        n_eff = counts
    else:
        volume = phantom_mL if fill_volume_mL is None else float(fill_volume_mL)
        conc = a_MBq / volume
        mean_cps_per_mL = counts / duration_s / live / (float(voi.sum()) * vvox)
        s = mean_cps_per_mL / conc
        n_eff = counts
    if not (s > 0 and math.isfinite(s)):
        raise InputError(f"no counts in the phantom VOI (sensitivity {s})", source="cylinder scan")
    u_dt = dead_time_rel_uncertainty * abs(math.log(live)) if live < 1 else 0.0
    u = math.sqrt(1.0 / max(n_eff, 1.0) + assay_rel_uncertainty ** 2 + u_dt ** 2)
    if progress:
        progress(1.0, f"sensitivity {s:.4g} cps/MBq")
    return SensitivityResult(float(s), float(u), method, margin, counts, float(voi.sum()) * vvox, phantom_mL,
                             a_MBq, observed, float(true), float(live), clearance)
