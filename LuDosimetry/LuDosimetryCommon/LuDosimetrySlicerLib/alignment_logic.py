"""Alignment stage in the scene: every timepoint of a patient's cycle registered to a reference
timepoint (LuDosimetryLib.alignment does the registration and the resampling).

For each timepoint (the reference included, with the identity) the stage leaves:

- a ``vtkMRMLLinearTransformNode`` ``<patient> <timepoint> to reference``: its to-parent matrix
  maps the timepoint's frame onto the reference frame (RAS), i.e. the inverse of the library's
  reference → moving registration transform (:mod:`.geometry`); the timepoint's original SPECT and
  CT are placed under it, so they are shown aligned. The organ-local (kidney) refinements act
  inside their regions only and are in the aligned volume, not in this global transform;
- an aligned SPECT volume on the reference SPECT grid (Bq/mL at acquisition time), with the
  original's attributes plus ``Aligned = 1``, ``ReferenceTimepoint`` and the registration quality
  (``Quality.<metric>``), and its aligned per-voxel time map when the timepoint has one.

All are placed under the timepoint's study item in the subject hierarchy.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import slicer

from . import hierarchy
from .geometry import affine_from_sitk_transform
from .nodes import (
    get_node_attributes,
    registration_to_transform_node,
    set_node_attributes,
    set_voxel_value,
    sitk_to_volume,
)
from .patient_nodes import TIME_MAP_ROLE, segmentation_from_node, time_h_of, timepoint_from_nodes

__all__ = ["AlignmentOutputs", "timepoint_volumes", "run_alignment", "aligned_spect_nodes", "KIDNEYS"]

KIDNEYS = ("kidney_left", "kidney_right")


@dataclass
class AlignmentOutputs:
    """Nodes made by :func:`run_alignment`, keyed by timepoint label."""

    reference: str
    transforms: dict = field(default_factory=dict)
    aligned: dict = field(default_factory=dict)
    quality: dict = field(default_factory=dict)


def _volumes():
    return [n for n in slicer.util.getNodesByClass("vtkMRMLScalarVolumeNode")
            if not n.IsA("vtkMRMLLabelMapVolumeNode")]


def timepoint_volumes(reference_spect) -> list[tuple]:
    """(SPECT, CT or None) of every timepoint of the reference's patient and cycle, in time order."""
    from LuDosimetryLib.errors import InputError

    ref = get_node_attributes(reference_spect)
    if ref.get("Modality") != "SPECT" or not ref.get("PatientID"):
        raise InputError("is not a SPECT volume loaded by LuDosimetry (attributes LuDosimetry.Modality = SPECT and "
                         "LuDosimetry.PatientID expected)", source=reference_spect.GetName())
    same = [n for n in _volumes() if (a := get_node_attributes(n)).get("PatientID") == ref["PatientID"]
            and a.get("Cycle") == ref.get("Cycle") and a.get("Aligned") != "1"]
    spects = sorted((n for n in same if get_node_attributes(n).get("Modality") == "SPECT"), key=time_h_of)
    cts = {get_node_attributes(n).get("Timepoint"): n for n in same if get_node_attributes(n).get("Modality") == "CT"}
    return [(s, cts.get(get_node_attributes(s).get("Timepoint"))) for s in spects]


def aligned_spect_nodes(any_aligned_spect) -> list:
    """The aligned SPECT volumes of a patient's cycle (same ``PatientID``/``Cycle``), in time order."""
    from LuDosimetryLib.errors import InputError

    ref = get_node_attributes(any_aligned_spect)
    if ref.get("Aligned") != "1" or ref.get("Modality") != "SPECT":
        raise InputError("is not an aligned SPECT volume (run LuDosimetry Alignment first)",
                         source=any_aligned_spect.GetName())
    return sorted((n for n in _volumes() if (a := get_node_attributes(n)).get("Aligned") == "1"
                   and a.get("Modality") == "SPECT" and a.get("PatientID") == ref.get("PatientID")
                   and a.get("Cycle") == ref.get("Cycle")), key=time_h_of)


def run_alignment(reference_spect, *, labels=None, refine_kidneys: bool = True, progress=None) -> AlignmentOutputs:
    """Align every timepoint of the reference SPECT's patient and cycle to the reference timepoint.

    Parameters
    ----------
    reference_spect : vtkMRMLScalarVolumeNode
        The reference timepoint's SPECT (its CT is the fixed image of every registration).
    labels : vtkMRMLLabelMapVolumeNode, optional
        Label map on the reference CT grid (with ``LuDosimetry.LabelTable``), for the organ-local
        refinement of the kidneys.
    refine_kidneys : bool
        Refine ``kidney_left`` and ``kidney_right`` locally (needs ``labels``).
    progress : callable(fraction, message), optional
    """
    from LuDosimetryLib.errors import InputError
    from LuDosimetryLib.pipeline import PipelineSettings, align_cycle

    report = progress or (lambda f, m: None)
    pairs = timepoint_volumes(reference_spect)
    ref_attrs = get_node_attributes(reference_spect)
    for spect, ct in pairs:
        if ct is None:
            raise InputError(f"timepoint {get_node_attributes(spect).get('Timepoint')} has no CT volume "
                             "(LuDosimetry.Modality = CT, same Timepoint): alignment needs every timepoint's CT",
                             source=spect.GetName())
    timepoints = [timepoint_from_nodes(spect, ct) for spect, ct in pairs]
    reference = timepoints[[s.GetID() for s, _ in pairs].index(reference_spect.GetID())]
    seg = segmentation_from_node(labels) if labels is not None else None
    regions = KIDNEYS if (refine_kidneys and seg is not None) else ()
    # the library's own stage function, as LuDosimetryLib.pipeline.run_patient calls it (reference: identity)
    aligned_tps, results = align_cycle(timepoints, reference, seg, settings=PipelineSettings(refine_regions=regions),
                                       progress=lambda f, m: report(0.95 * f, m))
    patient_id = ref_attrs["PatientID"]
    out = AlignmentOutputs(reference=ref_attrs.get("Timepoint", ""))
    for (spect, ct), aligned, result in zip(pairs, aligned_tps, results):
        label = get_node_attributes(spect).get("Timepoint", spect.GetName())
        study = hierarchy.timepoint_item(patient_id, hierarchy.timepoint_study_name(ref_attrs.get("Cycle"), label))
        transform = registration_to_transform_node(affine_from_sitk_transform(result.transform),
                                                   name=f"{patient_id} {label} to reference")
        attrs = get_node_attributes(spect)
        common = {k: attrs[k] for k in ("PatientID", "Cycle", "Timepoint", "TimeHoursPostInjection", "Nuclide",
                                        "Ligand", "InjectedActivityBq", "InjectionDateTime", "CameraKey", "Calibration",
                                        "PatientFolder")
                  if k in attrs}
        set_node_attributes(transform, {**common, "ReferenceTimepoint": out.reference,
                                        "Direction": "to parent: timepoint frame -> reference frame (RAS)"})
        hierarchy.place(transform, study)
        for node in (spect, ct):
            node.SetAndObserveTransformNodeID(transform.GetID())
        quality = {f"Quality.{k}": repr(float(v)) for k, v in result.quality.items()}
        vol = sitk_to_volume(aligned.spect, name=f"{patient_id} {label} SPECT aligned")
        set_node_attributes(vol, {**common, "Modality": "SPECT", "Aligned": 1, "ReferenceTimepoint": out.reference,
                                  **quality})
        set_voxel_value(vol, quantity="activity_concentration", units="Bq/mL")
        vol.SetNodeReferenceID("LuDosimetry.Transform", transform.GetID())
        hierarchy.place(vol, study)
        if aligned.time_map_h is not None:
            tmap = sitk_to_volume(aligned.time_map_h, name=f"{patient_id} {label} time map aligned")
            set_node_attributes(tmap, {**common, "Modality": "TimeMap", "Aligned": 1, "Units": "h"})
            hierarchy.place(tmap, study)
            vol.SetNodeReferenceID(TIME_MAP_ROLE, tmap.GetID())
        out.transforms[label], out.aligned[label], out.quality[label] = transform, vol, dict(result.quality)
    report(1.0, "alignment done")
    return out
