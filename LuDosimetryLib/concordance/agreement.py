"""Agreement between two methods of measuring the same quantity (predicted vs measured dose).

All functions take paired 1-D arrays ``x`` (method 1, e.g. PET-predicted dose, Gy) and ``y``
(method 2, e.g. SPECT-measured dose, Gy) of independent pairs. For lesions nested in patients use
:mod:`LuDosimetryLib.concordance.nested`. Differences are ``x − y`` throughout.

References
----------
- Bland JM, Altman DG. Statistical methods for assessing agreement between two methods of clinical
  measurement. Lancet 1986;327:307–310. doi:10.1016/S0140-6736(86)90837-8
- Bland JM, Altman DG. Measuring agreement in method comparison studies. Stat Methods Med Res
  1999;8:135–160. doi:10.1177/096228029900800204
- Lin LI. A concordance correlation coefficient to evaluate reproducibility. Biometrics
  1989;45:255–268 (and correction 2000;56:324–325). doi:10.2307/2532051
- Shrout PE, Fleiss JL. Intraclass correlations: uses in assessing rater reliability. Psychol Bull
  1979;86:420–428. doi:10.1037/0033-2909.86.2.420
- McGraw KO, Wong SP. Forming inferences about some intraclass correlation coefficients. Psychol
  Methods 1996;1:30–46. doi:10.1037/1082-989X.1.1.30
- Linnet K. Estimation of the linear relationship between the measurements of two methods with
  proportional errors. Stat Med 1990;9:1463–1473. doi:10.1002/sim.4780091210
- Passing H, Bablok W. A new biometrical procedure for testing the equality of measurements from
  two different analytical methods. J Clin Chem Clin Biochem 1983;21:709–720.
  doi:10.1515/cclm.1983.21.11.709
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from ..errors import InputError

__all__ = [
    "Correlation", "pearson", "spearman", "CCC", "lin_ccc", "ICC", "icc", "ICC_FORMS",
    "BlandAltman", "bland_altman", "BA_SCALES", "Regression", "deming", "passing_bablok", "paired_arrays",
]


def paired_arrays(x, y, *, min_n: int = 3, positive: bool = False, names: tuple[str, str] = ("x", "y")):
    """Validate paired data: equal length ≥ ``min_n``, finite (and > 0 where ``positive``)."""
    a = np.asarray(x, dtype=float).ravel()
    b = np.asarray(y, dtype=float).ravel()
    if a.shape != b.shape:
        raise InputError(f"paired data must have equal lengths, got {a.size} and {b.size}",
                         source=f"{names[0]}, {names[1]}")
    for name, v in zip(names, (a, b)):
        bad = np.flatnonzero(~np.isfinite(v))
        if bad.size:
            raise InputError(f"non-finite value at position(s) {bad[:5].tolist()}", source=name)
        if positive and np.any(v <= 0):
            raise InputError(f"values must be > 0 for a ratio or log scale; position(s) "
                             f"{np.flatnonzero(v <= 0)[:5].tolist()}", source=name)
    if a.size < min_n:
        raise InputError(f"need at least {min_n} pairs, got {a.size}", source=f"{names[0]}, {names[1]}")
    return a, b


# --- correlation ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Correlation:
    """A correlation coefficient with its 95 % confidence interval and two-sided p-value."""

    method: str
    r: float
    ci95: tuple[float, float]
    p_value: float
    n: int


def _fisher_ci(r: float, n: int, se_z: float | None = None, level: float = 0.95) -> tuple[float, float]:
    if n <= 3 or abs(r) >= 1:
        return (float("nan"), float("nan")) if abs(r) < 1 else (r, r)
    se = se_z if se_z is not None else 1.0 / math.sqrt(n - 3)
    zc = stats.norm.ppf(0.5 + level / 2)
    z = math.atanh(r)
    return math.tanh(z - zc * se), math.tanh(z + zc * se)


def pearson(x, y) -> Correlation:
    """Pearson's r with Fisher-z 95 % CI."""
    a, b = paired_arrays(x, y)
    res = stats.pearsonr(a, b)
    r = float(res.statistic)
    return Correlation("pearson", r, _fisher_ci(r, a.size), float(res.pvalue), a.size)


def spearman(x, y) -> Correlation:
    """Spearman's ρ with Fisher-z 95 % CI using the Bonett–Wright standard error √((1 + ρ²/2)/(n − 3))."""
    a, b = paired_arrays(x, y)
    res = stats.spearmanr(a, b)
    rho = float(res.statistic)
    se = math.sqrt((1 + rho**2 / 2) / (a.size - 3)) if a.size > 3 else None
    return Correlation("spearman", rho, _fisher_ci(rho, a.size, se), float(res.pvalue), a.size)


# --- Lin's concordance correlation coefficient -------------------------------------------------
@dataclass(frozen=True)
class CCC:
    """Lin's concordance correlation coefficient.

    Attributes
    ----------
    rho_c : float
        ρc = 2 s_xy / (s_x² + s_y² + (x̄ − ȳ)²), population (1/n) moments (Lin 1989).
    ci95 : tuple
        z-transform interval (Lin 1989, with the 2000 correction), as epiR's default.
    pearson_r : float
        Precision component r.
    bias_correction : float
        Accuracy component C_b = ρc / r.
    scale_shift, location_shift : float
        v = s_x / s_y and u = (x̄ − ȳ)/√(s_x s_y).
    n : int
    """

    rho_c: float
    ci95: tuple[float, float]
    pearson_r: float
    bias_correction: float
    scale_shift: float
    location_shift: float
    n: int


def lin_ccc(x, y) -> CCC:
    """Lin's concordance correlation coefficient with its z-transform 95 % CI."""
    a, b = paired_arrays(x, y)
    n = a.size
    mx, my = a.mean(), b.mean()
    sxx = np.mean((a - mx) ** 2)
    syy = np.mean((b - my) ** 2)
    sxy = np.mean((a - mx) * (b - my))
    if sxx == 0 or syy == 0:
        raise InputError("a method has zero variance; the CCC is undefined", source="x, y")
    rc = 2 * sxy / (sxx + syy + (mx - my) ** 2)
    r = sxy / math.sqrt(sxx * syy)
    u = (mx - my) / math.sqrt(math.sqrt(sxx * syy))
    if abs(rc) < 1 and r != 0 and n > 2:
        var_z = ((1 - r**2) * rc**2 / ((1 - rc**2) * r**2)
                 + 2 * rc**3 * (1 - rc) * u**2 / (r * (1 - rc**2) ** 2)
                 - rc**4 * u**4 / (2 * r**2 * (1 - rc**2) ** 2)) / (n - 2)
        ci = _fisher_ci(rc, n, math.sqrt(max(var_z, 0.0)))
    else:
        ci = (float(rc), float(rc))
    return CCC(float(rc), ci, float(r), float(rc / r) if r else float("nan"), float(math.sqrt(sxx / syy)), float(u), n)


# --- intraclass correlation -------------------------------------------------------------------
#: Shrout–Fleiss form → McGraw–Wong name.
ICC_FORMS = {"ICC(1,1)": "ICC(1)", "ICC(2,1)": "ICC(A,1)", "ICC(3,1)": "ICC(C,1)",
             "ICC(1,k)": "ICC(k)", "ICC(2,k)": "ICC(A,k)", "ICC(3,k)": "ICC(C,k)"}


@dataclass(frozen=True)
class ICC:
    """One intraclass correlation coefficient with its F-based 95 % CI (McGraw & Wong 1996)."""

    form: str
    mcgraw_wong: str
    value: float
    ci95: tuple[float, float]
    f_value: float
    df1: float
    df2: float
    p_value: float


def icc(ratings, *, forms: tuple[str, ...] = tuple(ICC_FORMS)) -> dict[str, ICC]:
    """Intraclass correlations of an n-subjects × k-raters table (no missing cells).

    For predicted vs measured dose use k = 2 columns; absolute agreement ICC(2,1) = ICC(A,1) is
    the usual choice; ICC(3,1) = ICC(C,1) measures consistency only.

    Parameters
    ----------
    ratings : array_like, shape (n, k)
    forms : tuple of str
        Keys of :data:`ICC_FORMS`.
    """
    r = np.asarray(ratings, dtype=float)
    if r.ndim != 2 or r.shape[0] < 3 or r.shape[1] < 2:
        raise InputError(f"need an (n ≥ 3) × (k ≥ 2) table, got shape {r.shape}", source="ratings")
    if not np.all(np.isfinite(r)):
        raise InputError("table has missing or non-finite cells", source="ratings")
    n, k = r.shape
    grand = r.mean()
    ss_rows = k * np.sum((r.mean(axis=1) - grand) ** 2)
    ss_cols = n * np.sum((r.mean(axis=0) - grand) ** 2)
    ss_total = np.sum((r - grand) ** 2)
    ss_err = ss_total - ss_rows - ss_cols
    msr = ss_rows / (n - 1)
    msc = ss_cols / (k - 1)
    mse = ss_err / ((n - 1) * (k - 1))
    msw = (ss_cols + ss_err) / (n * (k - 1))
    out: dict[str, ICC] = {}
    alpha = 0.05
    for form in forms:
        if form not in ICC_FORMS:
            raise InputError(f"unknown ICC form {form!r} (known: {', '.join(ICC_FORMS)})", source="forms")
        single = form.endswith(",1)")
        kind = form[4]
        if kind == "1":
            f = msr / msw
            df1, df2 = n - 1, n * (k - 1)
            fl, fu = f / stats.f.ppf(1 - alpha / 2, df1, df2), f * stats.f.ppf(1 - alpha / 2, df2, df1)
            if single:
                val = (msr - msw) / (msr + (k - 1) * msw)
                lo, hi = (fl - 1) / (fl + k - 1), (fu - 1) / (fu + k - 1)
            else:
                val = (msr - msw) / msr
                lo, hi = 1 - 1 / fl, 1 - 1 / fu
        elif kind == "3":
            f = msr / mse
            df1, df2 = n - 1, (n - 1) * (k - 1)
            fl, fu = f / stats.f.ppf(1 - alpha / 2, df1, df2), f * stats.f.ppf(1 - alpha / 2, df2, df1)
            if single:
                val = (msr - mse) / (msr + (k - 1) * mse)
                lo, hi = (fl - 1) / (fl + k - 1), (fu - 1) / (fu + k - 1)
            else:
                val = (msr - mse) / msr
                lo, hi = 1 - 1 / fl, 1 - 1 / fu
        else:  # two-way random, absolute agreement
            f = msr / mse
            df1 = n - 1
            if single:
                val = (msr - mse) / (msr + (k - 1) * mse + k * (msc - mse) / n)
                a_ = k * val / (n * (1 - val))
                b_ = 1 + k * val * (n - 1) / (n * (1 - val))
            else:
                val = (msr - mse) / (msr + (msc - mse) / n)
                a_ = val / (n * (1 - val))
                b_ = 1 + val * (n - 1) / (n * (1 - val))
            # Satterthwaite degrees of freedom (McGraw & Wong 1996, Table 7, case 2A)
            v = (a_ * msc + b_ * mse) ** 2 / ((a_ * msc) ** 2 / (k - 1) + (b_ * mse) ** 2 / ((n - 1) * (k - 1)))
            df2 = v
            fs_u = stats.f.ppf(1 - alpha / 2, n - 1, v)
            fs_l = stats.f.ppf(1 - alpha / 2, v, n - 1)
            if single:
                lo = n * (msr - fs_u * mse) / (fs_u * (k * msc + (k * n - k - n) * mse) + n * msr)
                hi = n * (fs_l * msr - mse) / (k * msc + (k * n - k - n) * mse + n * fs_l * msr)
            else:
                lo = n * (msr - fs_u * mse) / (fs_u * (msc - mse) + n * msr)
                hi = n * (fs_l * msr - mse) / (msc - mse + n * fs_l * msr)
        p = float(stats.f.sf(f, df1, df2 if kind != "2" else (n - 1) * (k - 1)))
        out[form] = ICC(form, ICC_FORMS[form], float(val), (float(lo), float(hi)), float(f), float(df1), float(df2), p)
    return out


# --- Bland–Altman -----------------------------------------------------------------------------
BA_SCALES = ("difference", "percent", "log_ratio")


@dataclass(frozen=True)
class BlandAltman:
    """Bland–Altman analysis on one scale.

    Attributes
    ----------
    scale : {"difference", "percent", "log_ratio"}
        ``difference``: x − y (Gy). ``percent``: 100 (x − y)/mean(x, y) (%). ``log_ratio``:
        ln(x/y); ``ratio_*`` fields then give the back-transformed geometric-mean ratio x/y.
    bias, sd : float
        Mean and SD of the differences on this scale.
    loa : tuple
        bias ± z·sd (z = 1.96 unless ``k_sd`` given).
    bias_ci95 : tuple
        t-based: bias ± t_(n−1) sd/√n.
    loa_ci95 : tuple of tuple
        Approximate CI of each limit: ± t_(n−1) · sd · √(1/n + z²/(2(n−1))) (Bland & Altman 1999).
    proportional_bias_slope, proportional_bias_p : float
        OLS slope of the difference on the pair mean and its two-sided p-value.
    ratio, ratio_loa : float and tuple
        For ``log_ratio`` only: exp(bias), exp(loa).
    """

    scale: str
    n: int
    bias: float
    sd: float
    loa: tuple[float, float]
    bias_ci95: tuple[float, float]
    loa_ci95: tuple[tuple[float, float], tuple[float, float]]
    proportional_bias_slope: float
    proportional_bias_p: float
    k_sd: float
    ratio: float | None = None
    ratio_loa: tuple[float, float] | None = None


def _differences(a: np.ndarray, b: np.ndarray, scale: str) -> tuple[np.ndarray, np.ndarray]:
    mean = (a + b) / 2
    if scale == "difference":
        return a - b, mean
    if scale == "percent":
        if np.any(mean == 0):
            raise InputError("percentage differences need non-zero pair means", source="x, y")
        return 100 * (a - b) / mean, mean
    if scale == "log_ratio":
        return np.log(a / b), mean
    raise InputError(f"unknown scale {scale!r} (choose from {BA_SCALES})", source="scale")


def bland_altman(x, y, *, scale: str = "difference", k_sd: float = 1.959963984540054) -> BlandAltman:
    """Bland–Altman bias and limits of agreement with confidence intervals.

    Parameters
    ----------
    x, y : array_like
        Paired measurements (Gy).
    scale : {"difference", "percent", "log_ratio"}
        Use ``log_ratio`` (or ``percent``) when doses span orders of magnitude (tumour doses).
    k_sd : float
        Multiplier of the SD for the limits (1.96; the 1986 Lancet paper used 2).
    """
    a, b = paired_arrays(x, y, positive=(scale == "log_ratio"))
    d, m = _differences(a, b, scale)
    n = d.size
    bias = float(d.mean())
    sd = float(d.std(ddof=1))
    t = stats.t.ppf(0.975, n - 1)
    se_bias = sd / math.sqrt(n)
    se_loa = sd * math.sqrt(1 / n + k_sd**2 / (2 * (n - 1)))
    loa = (bias - k_sd * sd, bias + k_sd * sd)
    loa_ci = ((loa[0] - t * se_loa, loa[0] + t * se_loa), (loa[1] - t * se_loa, loa[1] + t * se_loa))
    if np.ptp(m) > 0:
        reg = stats.linregress(m, d)
        slope, p = float(reg.slope), float(reg.pvalue)
    else:
        slope, p = float("nan"), float("nan")
    extra = {}
    if scale == "log_ratio":
        extra = {"ratio": math.exp(bias), "ratio_loa": (math.exp(loa[0]), math.exp(loa[1]))}
    return BlandAltman(scale, n, bias, sd, loa, (bias - t * se_bias, bias + t * se_bias), loa_ci, slope, p, k_sd,
                       **extra)


# --- method-comparison regression -------------------------------------------------------------
@dataclass(frozen=True)
class Regression:
    """y = intercept + slope · x with 95 % confidence intervals."""

    method: str
    slope: float
    intercept: float
    slope_ci95: tuple[float, float]
    intercept_ci95: tuple[float, float]
    n: int
    error_ratio: float | None = None


def _deming_fit(a: np.ndarray, b: np.ndarray, lam: float) -> tuple[float, float]:
    mx, my = a.mean(), b.mean()
    sxx = np.sum((a - mx) ** 2)
    syy = np.sum((b - my) ** 2)
    sxy = np.sum((a - mx) * (b - my))
    if sxy == 0:
        raise InputError("x and y are uncorrelated; the Deming slope is undefined", source="x, y")
    slope = (syy - lam * sxx + math.sqrt((syy - lam * sxx) ** 2 + 4 * lam * sxy**2)) / (2 * sxy)
    return float(slope), float(my - slope * mx)


def deming(x, y, *, error_ratio: float | None = None, sd_x=None, sd_y=None) -> Regression:
    """Deming regression of y on x with jackknife 95 % CIs (Linnet 1990).

    Parameters
    ----------
    error_ratio : float, optional
        λ = Var(error of y) / Var(error of x). Default: from the reported uncertainties
        ``sd_x``, ``sd_y`` (per-pair SDs, averaged as mean variance), else 1 (orthogonal
        regression). λ → ∞ gives OLS of y on x (x without error).
    """
    a, b = paired_arrays(x, y)
    if error_ratio is None:
        if sd_x is not None and sd_y is not None:
            vx = float(np.mean(np.square(np.asarray(sd_x, float))))
            vy = float(np.mean(np.square(np.asarray(sd_y, float))))
            if not (vx > 0 and vy > 0):
                raise InputError("reported uncertainties must be > 0 to form the error ratio", source="sd_x, sd_y")
            error_ratio = vy / vx
        else:
            error_ratio = 1.0
    if not (error_ratio > 0 and math.isfinite(error_ratio)):
        raise InputError(f"must be finite and > 0, got {error_ratio}", source="error_ratio")
    slope, intercept = _deming_fit(a, b, error_ratio)
    n = a.size
    idx = np.arange(n)
    jack = np.array([_deming_fit(a[idx != i], b[idx != i], error_ratio) for i in range(n)])
    pseudo = n * np.array([slope, intercept]) - (n - 1) * jack
    se = pseudo.std(axis=0, ddof=1) / math.sqrt(n)
    t = stats.t.ppf(0.975, n - 2)
    est = pseudo.mean(axis=0)
    return Regression("deming", slope, intercept, (float(est[0] - t * se[0]), float(est[0] + t * se[0])),
                      (float(est[1] - t * se[1]), float(est[1] + t * se[1])), n, float(error_ratio))


def passing_bablok(x, y) -> Regression:
    """Passing–Bablok regression (1983) with its rank-based 95 % CI of the slope.

    The slope is the shifted median of all pairwise slopes S_ij (i < j), slopes of −1 and 0/0
    excluded, shifted by K = #(S_ij < −1). Intercept = median(y − b·x), its CI from the slope CI.
    """
    a, b = paired_arrays(x, y)
    n = a.size
    i, j = np.triu_indices(n, k=1)
    dx = a[j] - a[i]
    dy = b[j] - b[i]
    keep = ~((dx == 0) & (dy == 0))
    dx, dy = dx[keep], dy[keep]
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.where(dx == 0, np.sign(dy) * np.inf, dy / dx)
    s = np.sort(s[s != -1])
    big_n = s.size
    if big_n < 2:
        raise InputError("too few distinct pairs for Passing–Bablok", source="x, y")
    k = int(np.sum(s < -1))
    if k >= big_n // 2:
        raise InputError(f"Passing–Bablok needs positively related methods; {k} of {big_n} pairwise slopes are "
                         "below −1", source="x, y")
    if big_n % 2:
        slope = float(s[(big_n + 1) // 2 + k - 1])
    else:
        slope = float(0.5 * (s[big_n // 2 + k - 1] + s[big_n // 2 + k]))
    c = stats.norm.ppf(0.975) * math.sqrt(n * (n - 1) * (2 * n + 5) / 18)
    m1 = round((big_n - c) / 2)
    m2 = big_n - m1 + 1
    lo_i, hi_i = max(m1 + k - 1, 0), min(m2 + k - 1, big_n - 1)
    slope_ci = (float(s[lo_i]), float(s[hi_i]))
    intercept = float(np.median(b - slope * a))
    icpt_ci = (float(np.median(b - slope_ci[1] * a)), float(np.median(b - slope_ci[0] * a)))
    return Regression("passing_bablok", slope, intercept, slope_ci, icpt_ci, n)
