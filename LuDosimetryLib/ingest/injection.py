"""Injection (administration) data from the Radiopharmaceutical Information Sequence.

Datetime: Radiopharmaceutical Start DateTime (0018,1078); else Radiopharmaceutical Start Time
(0018,1072) with the acquisition (or series, or study) date, moved to the previous day when that
would put the injection after the acquisition (an injection before midnight, a scan after it).
A time without a date is marked ``time_only``: for a scan days after injection its date is
unknown, and the patient loader takes the date from the cycle's other series.

Activity: Radionuclide Total Dose (0018,1074). The standard gives it in MBq for NM and in Bq for
PET; exports that use the other unit are recognised when the value is implausible in the
standard unit (below 0.1 MBq or above 1 TBq), with a warning. Net activity is assay minus
residual, each decayed to injection, when the user supplies them (sidecar or command line).

Radionuclide: Radionuclide Code Sequence (0054,0300) Code Meaning (``^177^Lutetium``), else the
Radiopharmaceutical (0018,0031) text; checked against the expected nuclide.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..errors import DicomError, InputError
from ..model import Administration, net_injected_activity_Bq
from ..nuclides import normalise_nuclide_name
from ..units import BQ_PER_MBQ
from .dicomtags import Sourced, first_item, get_datetime, get_float, get_str, parse_tm, tag_label
from .overrides import pick

__all__ = ["InjectionHeader", "read_injection_header", "resolve_administration", "parse_nuclide_text"]

_ELEMENTS = {"lutetium": "Lu", "gallium": "Ga", "fluorine": "F", "technetium": "Tc", "indium": "In",
             "iodine": "I", "yttrium": "Y", "copper": "Cu", "zirconium": "Zr", "actinium": "Ac",
             "terbium": "Tb", "thallium": "Tl", "xenon": "Xe", "samarium": "Sm", "radium": "Ra",
             "holmium": "Ho", "rubidium": "Rb", "carbon": "C", "nitrogen": "N", "oxygen": "O"}
_PLAUSIBLE_BQ = (1e5, 1e12)
_SEQ = "RadiopharmaceuticalInformationSequence"


@dataclass(frozen=True)
class InjectionHeader:
    """What one series' header says about its administration (each value with its source)."""

    nuclide: Sourced | None = None
    ligand: Sourced | None = None
    datetime: Sourced | None = None
    time_only: bool = False
    activity_Bq: Sourced | None = None


def parse_nuclide_text(text: str) -> str | None:
    """A normalised nuclide name from ``^177^Lutetium``, ``Lutetium-177``, ``177Lu``, ``Lu177-PSMA``; else None."""
    t = str(text).strip()
    m = re.search(r"\^?(\d{1,3})(m?)\^?\s*([A-Za-z]{3,})", t)
    if m:
        mass, meta, name = m.groups()
    else:
        m = re.search(r"([A-Za-z]{3,})[\s\-^]*(\d{1,3})(m?)", t)
        if m:
            name, mass, meta = m.groups()
    if m:
        sym = _ELEMENTS.get(name.lower())
        if sym:
            return f"{sym}-{mass}{meta}"
    m = re.search(r"(?<![A-Za-z])(\d{1,3})\s*-?\s*([A-Z][a-z]?)(?![a-z])"
                  r"|(?<![A-Za-z])([A-Z][a-z]?)\s*-?\s*(\d{1,3}m?)(?!\d)", t)
    if m:
        try:
            return normalise_nuclide_name("".join(g for g in m.groups() if g))
        except InputError:
            return None
    return None


def read_injection_header(ds, *, source: str, modality: str, acquisition_start: datetime | None,
                          warn=None) -> InjectionHeader:
    """Read nuclide, ligand, injection datetime and activity from one series' header.

    Parameters
    ----------
    ds : pydicom.Dataset
    source : str
        File name for messages.
    modality : {"NM", "PT"}
        Decides the standard unit of Radionuclide Total Dose (MBq for NM, Bq for PT).
    acquisition_start : datetime, optional
        Used to resolve a start time across midnight.
    warn : callable, optional
    """
    item = first_item(ds, _SEQ)
    if item is None:
        return InjectionHeader()
    where = f"{_SEQ}/"
    nuc = lig = None
    code = first_item(item, "RadionuclideCodeSequence")
    meaning = get_str(code, "CodeMeaning", source=source, where=f"{where}RadionuclideCodeSequence/") \
        if code is not None else None
    if meaning is not None:
        name = parse_nuclide_text(meaning.value)
        if name is None:
            raise DicomError(f"CodeMeaning is {meaning.value!r}; expected a radionuclide such as ^177^Lutetium",
                             source=source, tag=tag_label("RadionuclideCodeSequence"))
        nuc = Sourced(name, meaning.source)
    rp = get_str(item, "Radiopharmaceutical", source=source, where=where)
    if rp is not None:
        lig_text = re.sub(r"^\s*(\^?\d{1,3}\^?\s*-?\s*[A-Za-z]{1,2}|[A-Za-z]{1,2}\s*-?\s*\d{1,3})\s*[-\s]\s*", "",
                          rp.value)
        lig = Sourced(lig_text or rp.value, rp.source)
        if nuc is None:
            name = parse_nuclide_text(rp.value)
            if name:
                nuc = Sourced(name, rp.source)
    dt = get_datetime(item, source=source, dt_keyword="RadiopharmaceuticalStartDateTime", date_keywords=(),
                      time_keyword="RadiopharmaceuticalStartTime", where=where)
    time_only = False
    if dt is None:
        t = get_str(item, "RadiopharmaceuticalStartTime", source=source, where=where)
        if t is not None:
            tm = parse_tm(t.value, source=source, keyword="RadiopharmaceuticalStartTime")
            if acquisition_start is not None:
                cand = datetime.combine(acquisition_start.date(), tm)
                note = "with the acquisition date"
                if cand > acquisition_start:
                    cand -= timedelta(days=1)
                    note += ", previous day (injection before midnight, scan after)"
                dt = Sourced(cand, f"{t.source} {note}")
                time_only = True
    act = get_float(item, "RadionuclideTotalDose", source=source, where=where)
    act_bq = None
    if act is not None:
        std_mbq = modality == "NM"
        val = act.value * (BQ_PER_MBQ if std_mbq else 1.0)
        unit = "MBq" if std_mbq else "Bq"
        if not (_PLAUSIBLE_BQ[0] <= val <= _PLAUSIBLE_BQ[1]):
            alt = act.value * (1.0 if std_mbq else BQ_PER_MBQ)
            alt_unit = "Bq" if std_mbq else "MBq"
            if _PLAUSIBLE_BQ[0] <= alt <= _PLAUSIBLE_BQ[1]:
                if warn:
                    warn(f"{source}: RadionuclideTotalDose (0018,1074) = {act.value:g} is implausible in {unit} "
                         f"(the standard unit for {modality}); read as {alt_unit}")
                val, unit = alt, alt_unit
            else:
                raise DicomError(f"is {act.value:g}: implausible as an injected activity in MBq or Bq", source=source,
                                 tag=tag_label("RadionuclideTotalDose"))
        act_bq = Sourced(val, f"{act.source} (read in {unit})")
    return InjectionHeader(nuc, lig, dt, time_only, act_bq)


def resolve_administration(header: InjectionHeader, *, source: str, overrides: dict | None = None,
                           sidecar: dict | None = None, expected_nuclide: str | None = "Lu-177",
                           injection_datetime: Sourced | None = None) -> Administration:
    """The :class:`Administration` of a series: user values over header values, each with its source.

    Parameters
    ----------
    header : InjectionHeader
    source : str
        The series/file, for messages.
    overrides, sidecar : dict of str → Sourced
        Flat user values (see :mod:`.overrides`).
    expected_nuclide : str or None
        The radionuclide this series must carry (None: not checked).
    injection_datetime : Sourced, optional
        A datetime fixed by the cycle (used where the header gives a time only).

    Raises
    ------
    DicomError
        Missing injection datetime or activity, unexpected radionuclide.
    """
    ov, sc = overrides or {}, sidecar or {}
    prov: dict[str, str] = {}
    nuc = pick("nuclide", ov, sc, header.nuclide)
    if nuc is None:
        if expected_nuclide is None:
            raise DicomError("is missing and no nuclide was given; need the radionuclide for decay",
                             source=source, tag=tag_label("RadionuclideCodeSequence"))
        nuc = Sourced(expected_nuclide, f"assumed expected nuclide (no {tag_label('RadionuclideCodeSequence')} "
                                        f"in {source})")
    name = normalise_nuclide_name(nuc.value)
    if expected_nuclide is not None and name != normalise_nuclide_name(expected_nuclide):
        raise DicomError(f"is {name} ({nuc.source}); expected {normalise_nuclide_name(expected_nuclide)}",
                         source=source, tag=tag_label("RadionuclideCodeSequence"))
    prov["nuclide"] = nuc.source
    lig = pick("ligand", ov, sc, header.ligand) or Sourced("", "not given")
    prov["ligand"] = lig.source
    hdr_dt = header.datetime
    if header.time_only and injection_datetime is not None:
        hdr_dt = injection_datetime
    dt = pick("injection_datetime", ov, sc, hdr_dt)
    if dt is None:
        raise DicomError("and RadiopharmaceuticalStartTime (0018,1072) are missing; need the injection time to "
                         "compute time_h (give injection.datetime in ludosimetry.json or --injection-datetime)",
                         source=source, tag=tag_label("RadiopharmaceuticalStartDateTime"))
    prov["injection_datetime"] = dt.source
    assay = pick("assay_activity_Bq", ov, sc)
    if assay is not None:
        assay_dt = pick("assay_datetime", ov, sc) or Sourced(dt.value, f"injection time ({dt.source})")
        res = pick("residual_activity_Bq", ov, sc) or Sourced(0.0, "none given")
        res_dt = pick("residual_datetime", ov, sc)
        a = net_injected_activity_Bq(name, assay_activity_Bq=assay.value, assay_datetime=assay_dt.value,
                                     injection_datetime=dt.value, residual_activity_Bq=res.value,
                                     residual_datetime=None if res_dt is None else res_dt.value)
        act = Sourced(a, f"assay ({assay.source} at {assay_dt.source}) − residual ({res.source}"
                         f"{'' if res_dt is None else ' at ' + res_dt.source}), decayed to injection")
    else:
        act = pick("injected_activity_Bq", ov, sc, header.activity_Bq)
    if act is None:
        raise DicomError("is missing; need the injected activity (give injection.activity_Bq in ludosimetry.json or "
                         "--injected-activity-MBq)", source=source, tag=tag_label("RadionuclideTotalDose"))
    prov["injected_activity_Bq"] = act.source
    return Administration(name, lig.value, dt.value, float(act.value), prov)
