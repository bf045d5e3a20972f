"""Subject hierarchy: every output under its patient (subject) and timepoint (study) items.

Layout (item names): ``<patient id>`` (subject) → ``<timepoint label>`` (study) for per-timepoint
nodes, and ``<patient id>`` → ``LuDosimetry <stage>`` (folder) for results of a stage; a cohort's
results go under a subject item ``Cohort``. Items are found by name first, so running a stage
twice reuses its items.

A data node has a hierarchy item only once something creates one: in the application Slicer's Qt
subject-hierarchy plugin logic does it when the node is added, but a scene without the Qt layer
(``PythonSlicer``, slicer-core, tests) has none, and ``GetItemByDataNode`` returns the invalid
item 0. :func:`node_item` creates the item where it is missing, which is right in both.
"""

from __future__ import annotations

import slicer

__all__ = ["subject_item", "timepoint_item", "timepoint_study_name", "stage_folder", "node_item", "place"]


def _sh():
    return slicer.mrmlScene.GetSubjectHierarchyNode()


def subject_item(patient_id: str) -> int:
    """The subject item named ``patient_id`` (created under the scene if missing)."""
    sh = _sh()
    item = sh.GetItemChildWithName(sh.GetSceneItemID(), patient_id)
    return item or sh.CreateSubjectItem(sh.GetSceneItemID(), patient_id)


def timepoint_study_name(cycle, timepoint: str) -> str:
    """The study name of a timepoint: ``cycle1 tp2`` (a bare number gets the prefix ``tp``)."""
    tp = str(timepoint)
    return f"cycle{cycle} {'tp' + tp if tp[:1].isdigit() else tp}"


def timepoint_item(patient_id: str, label: str) -> int:
    """The study item of a timepoint (``tp1``, ``cycle1 tp2``) under the patient."""
    sh = _sh()
    subject = subject_item(patient_id)
    item = sh.GetItemChildWithName(subject, label)
    return item or sh.CreateStudyItem(subject, label)


def stage_folder(patient_id: str, stage: str) -> int:
    """The folder ``LuDosimetry <stage>`` under the patient."""
    sh = _sh()
    subject = subject_item(patient_id)
    name = f"LuDosimetry {stage}"
    item = sh.GetItemChildWithName(subject, name)
    return item or sh.CreateFolderItem(subject, name)


def node_item(node) -> int:
    """The hierarchy item of a data node, created under the scene item where it is missing."""
    sh = _sh()
    item = sh.GetItemByDataNode(node)
    return item if item != sh.GetInvalidItemID() else sh.CreateItem(sh.GetSceneItemID(), node)


def place(node, parent_item: int) -> int:
    """Put a data node under a hierarchy item; returns the node's item."""
    item = node_item(node)
    _sh().SetItemParent(item, parent_item)
    return item
