"""A patient in the scene: LuDosimetryLib's data model (``Patient``, ``Timepoint``, ``Segmentation``,
``Administration``) ↔ volume nodes with attributes, under the patient in the subject hierarchy.

Every per-timepoint volume carries the attributes (prefix ``LuDosimetry.``) ``PatientID``,
``Cycle``, ``Timepoint``, ``TimeHoursPostInjection`` (h p.i., mid-acquisition), ``Units``,
``Quantity``, ``Nuclide``, ``Ligand``, ``InjectedActivityBq`` (Bq), ``InjectionDateTime`` (ISO),
``CameraKey`` and ``Calibration`` (the sensitivity ingest applied, with its source); a SPECT
volume references its per-voxel time map (``LuDosimetry.TimeMap``). The label map carries the
label table as CSV text (``LuDosimetry.LabelTable``). Only conversion here.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field

from . import hierarchy
from .nodes import get_node_attributes, set_node_attributes, set_voxel_value, sitk_to_volume, volume_to_sitk

__all__ = ["PatientNodes", "push_patient", "push_timepoint", "push_segmentation", "administration_attributes",
           "administration_from_node", "timepoint_from_nodes", "segmentation_from_node", "time_h_of",
           "patient_id_of", "TIME_MAP_ROLE", "sorted_by_time"]

#: Node reference role from a SPECT volume to its per-voxel time map (h p.i.).
TIME_MAP_ROLE = "LuDosimetry.TimeMap"


@dataclass
class PatientNodes:
    """The nodes one patient was loaded into (one cycle)."""

    patient_id: str
    cycle: int
    spect: list = field(default_factory=list)
    ct: list = field(default_factory=list)
    labels: object = None


def administration_attributes(admin) -> dict:
    """Node attributes of an :class:`LuDosimetryLib.model.Administration`."""
    return {"Nuclide": admin.nuclide, "Ligand": admin.ligand,
            "InjectedActivityBq": repr(float(admin.injected_activity_Bq)),
            "InjectionDateTime": admin.injection_datetime.isoformat()}


def administration_from_node(node):
    """The :class:`Administration` recorded on a volume node's attributes."""
    from LuDosimetryLib.errors import InputError
    from LuDosimetryLib.model import Administration

    a = get_node_attributes(node)
    missing = [k for k in ("Nuclide", "InjectedActivityBq", "InjectionDateTime") if not a.get(k)]
    if missing:
        raise InputError(f"node has no attribute(s) {', '.join('LuDosimetry.' + k for k in missing)} "
                         "(load the patient with LuDosimetry, or set them)", source=node.GetName())
    return Administration(nuclide=a["Nuclide"], ligand=a.get("Ligand", ""),
                          injection_datetime=_dt.datetime.fromisoformat(a["InjectionDateTime"]),
                          injected_activity_Bq=float(a["InjectedActivityBq"]),
                          provenance={"injected_activity_Bq": f"node attribute of {node.GetName()}"})


def time_h_of(node) -> float:
    """The node's time post injection (h), from ``LuDosimetry.TimeHoursPostInjection``."""
    from LuDosimetryLib.errors import InputError

    value = get_node_attributes(node).get("TimeHoursPostInjection")
    if not value:
        raise InputError("has no attribute LuDosimetry.TimeHoursPostInjection (h p.i.)", source=node.GetName())
    return float(value)


def patient_id_of(node) -> str:
    """The node's patient (``LuDosimetry.PatientID``; ``"patient"`` when absent)."""
    return get_node_attributes(node).get("PatientID") or "patient"


def sorted_by_time(nodes_) -> list:
    """Volume nodes in increasing time post injection."""
    return sorted(nodes_, key=time_h_of)


def _camera_from_key(key: str):
    from LuDosimetryLib.model import Camera

    parts = key.split("|")
    if len(parts) != 5:
        return None
    windows = tuple(tuple(float(v) for v in w.split("-", 1)) for w in parts[3].split(";") if "-" in w)
    return Camera(manufacturer=parts[0], model=parts[1], collimator=parts[2], energy_windows_keV=windows,
                  reconstruction=parts[4])


def push_timepoint(tp, *, patient_id: str, cycle: int, administration, label: str | None = None) -> tuple:
    """SPECT (Bq/mL), its time map and CT (HU) volume nodes of a timepoint, under its study item."""
    label = label or hierarchy.timepoint_study_name(cycle, tp.label)
    study = hierarchy.timepoint_item(patient_id, label)
    common = {"PatientID": patient_id, "Cycle": cycle, "Timepoint": tp.label,
              "TimeHoursPostInjection": repr(float(tp.time_h)),
              **administration_attributes(administration)}
    if tp.camera is not None:
        common["CameraKey"] = tp.camera.key()
    applied = sorted({str(b.provenance.get("sensitivity_cps_per_MBq")) for b in tp.beds
                      if b.provenance.get("sensitivity_cps_per_MBq")})
    if applied:  # the calibration ingest applied to the counts (source text of the sensitivity)
        common["Calibration"] = " | ".join(applied)
    spect = sitk_to_volume(tp.spect, name=f"{patient_id} {label} SPECT")
    set_node_attributes(spect, {**common, "Modality": "SPECT"})
    set_voxel_value(spect, quantity="activity_concentration", units="Bq/mL")
    hierarchy.place(spect, study)
    if tp.time_map_h is not None:
        tmap = sitk_to_volume(tp.time_map_h, name=f"{patient_id} {label} time map")
        set_node_attributes(tmap, {**common, "Modality": "TimeMap", "Units": "h"})
        hierarchy.place(tmap, study)
        spect.SetNodeReferenceID(TIME_MAP_ROLE, tmap.GetID())
    ct = None
    if tp.ct is not None:
        ct = sitk_to_volume(tp.ct, name=f"{patient_id} {label} CT")
        set_node_attributes(ct, {**common, "Modality": "CT"})
        set_voxel_value(ct, quantity="ct_number", units="HU")
        hierarchy.place(ct, study)
    return spect, ct


def push_segmentation(segmentation, *, patient_id: str) -> object:
    """A label map volume node of a :class:`Segmentation`, its label table as an attribute."""
    node = sitk_to_volume(segmentation.image, name=f"{patient_id} labels", label_map=True)
    set_node_attributes(node, {"PatientID": patient_id, "LabelTable": segmentation.table.to_csv_text()})
    hierarchy.place(node, hierarchy.subject_item(patient_id))
    return node


def push_patient(patient, *, cycle: int = 1, progress=None) -> PatientNodes:
    """Put one cycle of a loaded :class:`Patient` into the scene (SPECT, CT, labels)."""
    from LuDosimetryLib.errors import InputError

    cycles = {c.index: c for c in patient.cycles}
    if cycle not in cycles:
        raise InputError(f"patient {patient.patient_id} has no cycle {cycle} (has {sorted(cycles)})", source="cycle")
    c = cycles[cycle]
    out = PatientNodes(patient.patient_id, cycle)
    for n, tp in enumerate(c.timepoints):
        if progress:
            progress(n / max(1, len(c.timepoints)), f"loading {tp.label}")
        spect, ct = push_timepoint(tp, patient_id=patient.patient_id, cycle=cycle, administration=c.administration)
        out.spect.append(spect)
        out.ct.append(ct)
    if patient.segmentation is not None:
        out.labels = push_segmentation(patient.segmentation, patient_id=patient.patient_id)
    return out


def timepoint_from_nodes(spect_node, ct_node=None):
    """A :class:`Timepoint` from a SPECT volume node (Bq/mL, attributes) and optionally its CT."""
    from LuDosimetryLib.model import Timepoint

    a = get_node_attributes(spect_node)
    tmap_node = spect_node.GetNodeReference(TIME_MAP_ROLE)
    camera = _camera_from_key(a["CameraKey"]) if a.get("CameraKey") else None
    return Timepoint(label=a.get("Timepoint") or spect_node.GetName(), time_h=time_h_of(spect_node),
                     spect=volume_to_sitk(spect_node), ct=volume_to_sitk(ct_node) if ct_node is not None else None,
                     time_map_h=volume_to_sitk(tmap_node) if tmap_node is not None else None, camera=camera,
                     provenance={"slicer_node": spect_node.GetName()})


def segmentation_from_node(node):
    """A :class:`Segmentation` from a label map volume node carrying ``LuDosimetry.LabelTable``."""
    import SimpleITK as sitk

    from LuDosimetryLib.errors import InputError
    from LuDosimetryLib.labels import LabelTable
    from LuDosimetryLib.model import Segmentation

    text = get_node_attributes(node).get("LabelTable")
    if not text:
        raise InputError("label map has no attribute LuDosimetry.LabelTable (the label table as CSV: "
                         "label,name,side,kind,group)", source=node.GetName())
    image = sitk.Cast(volume_to_sitk(node), sitk.sitkUInt16) if not node.IsA("vtkMRMLLabelMapVolumeNode") \
        else volume_to_sitk(node)
    return Segmentation(image=image, table=LabelTable.from_csv_text(text, source=node.GetName()))
