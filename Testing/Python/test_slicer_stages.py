"""Alignment, TAC and Dose logic of the Slicer modules on Slicer's real MRML (slicer-core), on a small synthetic
patient built here with known geometry and kinetics: the nodes they create carry the attributes,
units and columns specified, and the numbers agree with the construction (a known CT shift, a
mono-exponential TAC's analytic TIA)."""

from __future__ import annotations

import datetime as dt
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[2]
EDGE = REPO / "LuDosimetry" / "LuDosimetryCommon"
SCRIPT = REPO / "LuDosimetry" / "Scripts" / "batch.py"
SHIFT_MM = (8.0, 0.0, 0.0)  # the later timepoints' patient is displaced by this (LPS, mm): 2 voxels along x
SPACING = 4.0
TIMES_H = (4.0, 24.0, 96.0)
HALF_LIFE_EFF_H = 40.0
C0_BQ_PER_ML = 2.0e5
INJECTED_BQ = 7.4e9

def _column(table, name: str):
    """A table column through the helper the logic uses (text and numbers; Slicer's own
    ``slicer.util.arrayFromTableColumn`` raises on text columns)."""
    from LuDosimetrySlicerLib.nodes import table_column

    return table_column(table, name)



def _image(arr: np.ndarray, origin=(-80.0, -80.0, -60.0)) -> sitk.Image:
    img = sitk.GetImageFromArray(arr.astype(np.float32))
    img.SetSpacing((SPACING, SPACING, SPACING))
    img.SetOrigin(origin)
    return img


def _phantom(shift_vox: int):
    """CT (HU), kidney mask and label array on a 40×40×30 grid; the body shifted by ``shift_vox`` along x."""
    k, j, i = np.mgrid[0:30, 0:40, 0:40]
    i = i - shift_vox
    body = ((i - 20) ** 2 / 15**2 + (j - 20) ** 2 / 11**2) <= 1.0
    ct = np.where(body, 30.0, -1000.0)
    ct[body & ((i - 20) ** 2 + (j - 27) ** 2 <= 4)] = 900.0            # spine
    ct[body & (np.abs(i - 11) <= 1) & (np.abs(j - 14) <= 4)] = 700.0   # a rib, breaks symmetry
    kidney = (np.abs(i - 27) <= 2) & (np.abs(j - 22) <= 2) & (np.abs(k - 15) <= 3)
    lesion = (np.abs(i - 14) <= 1) & (np.abs(j - 20) <= 1) & (np.abs(k - 10) <= 1)
    ct[kidney] = 40.0
    labels = np.zeros(ct.shape, np.uint8)
    labels[kidney] = 1
    labels[lesion] = 2
    return ct, kidney, lesion, labels


def _load_patient():
    """Push three timepoints (SPECT Bq/mL + CT) and the label map into the real scene."""
    from LuDosimetryLib.labels import LabelTable
    from LuDosimetryLib.model import Administration, Segmentation, Timepoint
    from LuDosimetryLib.nuclides import get_nuclide
    from LuDosimetrySlicerLib.patient_nodes import push_segmentation, push_timepoint

    admin = Administration("Lu-177", "PSMA-617", dt.datetime(2026, 1, 5, 10, 0), INJECTED_BQ)
    lam_eff = math.log(2) / HALF_LIFE_EFF_H
    assert lam_eff > get_nuclide("Lu-177").decay_constant_per_h
    spects, cts = [], []
    for n, t in enumerate(TIMES_H):
        shift = 0 if n == 0 else int(SHIFT_MM[0] / SPACING)
        ct, kidney, lesion, _ = _phantom(shift)
        spect = np.zeros(ct.shape)
        spect[kidney] = C0_BQ_PER_ML * math.exp(-lam_eff * t)
        spect[lesion] = 3 * C0_BQ_PER_ML * math.exp(-lam_eff * t)
        tp = Timepoint(label=f"tp{n + 1}", time_h=t, spect=_image(spect), ct=_image(ct))
        s, c = push_timepoint(tp, patient_id="SYN1", cycle=1, administration=admin)
        spects.append(s)
        cts.append(c)
    _, kidney0, _, labels0 = _phantom(0)
    table = LabelTable.from_csv_text("label,name,side,kind,group\n1,kidney_left,left,organ,\n2,lesion_1,none,lesion,\n")
    seg_img = sitk.Cast(_image(labels0), sitk.sitkUInt8)
    label_node = push_segmentation(Segmentation(seg_img, table), patient_id="SYN1")
    return spects, cts, label_node, kidney0


def test_alignment_logic_recovers_the_shift_and_stores_transforms_and_aligned_volumes(slicer):
    from LuDosimetrySlicerLib import alignment_logic

    spects, cts, labels, kidney = _load_patient()
    out = alignment_logic.run_alignment(spects[0], labels=labels, refine_kidneys=False)
    assert set(out.aligned) == {"tp1", "tp2", "tp3"} and out.reference == "tp1"
    for n, label in enumerate(("tp1", "tp2", "tp3")):
        node = out.transforms[label]
        to_parent = slicer.util.arrayFromTransformMatrix(node)
        # a point of the moving (shifted) patient maps onto the same anatomy in the reference: x_ras += 8 mm
        expected_ras_shift = 0.0 if n == 0 else SHIFT_MM[0]  # LPS +x is RAS −x, and moving = fixed + shift
        moving_point_ras = np.array([-(10.0 + (0 if n == 0 else SHIFT_MM[0])), -5.0, 3.0, 1.0])
        mapped = to_parent @ moving_point_ras
        np.testing.assert_allclose(mapped[:3], [-10.0, -5.0, 3.0], atol=1.0)
        assert abs(to_parent[0, 3] - expected_ras_shift) < 1.0
        assert spects[n].GetTransformNodeID() == node.GetID() and cts[n].GetTransformNodeID() == node.GetID()
        vol = out.aligned[label]
        attrs = {k: vol.GetAttribute(k) for k in vol.GetAttributeNames()}
        assert attrs["LuDosimetry.Aligned"] == "1" and attrs["LuDosimetry.Units"] == "Bq/mL"
        assert float(attrs["LuDosimetry.TimeHoursPostInjection"]) == TIMES_H[n]
        assert float(attrs["LuDosimetry.InjectedActivityBq"]) == INJECTED_BQ
        assert attrs["LuDosimetry.Nuclide"] == "Lu-177" and attrs["LuDosimetry.ReferenceTimepoint"] == "tp1"
        assert vol.GetVoxelValueUnits().GetCodeValue() == "Bq/ml"
        # the aligned SPECT puts the activity back inside the reference kidney
        arr = slicer.util.arrayFromVolume(vol)
        assert arr[kidney].sum() / arr.sum() > 0.6
    sh = slicer.mrmlScene.GetSubjectHierarchyNode()
    study = sh.GetItemParent(sh.GetItemByDataNode(out.aligned["tp2"]))
    assert sh.GetItemName(study) == "cycle1 tp2" and sh.GetItemName(sh.GetItemParent(study)) == "SYN1"


def test_tac_logic_tabulates_fits_and_charts_with_the_analytic_tia(slicer):
    from LuDosimetryLib.nuclides import get_nuclide
    from LuDosimetrySlicerLib import alignment_logic, tac_logic

    spects, _, labels, kidney = _load_patient()
    aligned = alignment_logic.run_alignment(spects[0], labels=labels, refine_kidneys=False)
    # the synthetic volumes here are not blurred: no partial-volume correction applies
    out = tac_logic.run_tac(aligned.aligned["tp2"], labels, model="mono", partial_volume="none")
    tac = out.tac_table
    assert tac.GetColumnUnitLabel("time_h") == "h" and tac.GetColumnUnitLabel("activity_Bq") == "Bq"
    regions = _column(tac, "region")
    assert {"kidney_left", "lesion_1"} <= set(regions)
    fits = {r: i for i, r in enumerate(_column(out.fit_table, "region"))}
    tia = _column(out.fit_table, "tia_Bq_h")[fits["kidney_left"]]
    volume_mL = kidney.sum() * SPACING**3 / 1000.0
    analytic = C0_BQ_PER_ML * volume_mL / (math.log(2) / HALF_LIFE_EFF_H)  # ∫ C0 V e^(−λt) dt, 0..∞
    assert tia == pytest.approx(analytic, rel=0.03)
    assert out.fit_table.GetColumnUnitLabel("tia_MBq_h") == "MBq·h"
    assert float(out.fit_table.GetAttribute("LuDosimetry.InjectedActivityBq")) == INJECTED_BQ
    assert out.fit_table.GetAttribute("LuDosimetry.Calibration") == "none given"
    assert out.chart.GetNumberOfPlotSeriesNodes() == 2 * len(fits)
    assert get_nuclide("Lu-177").name == out.tac_table.GetAttribute("LuDosimetry.Nuclide")


def test_tac_logic_shows_the_calibration_entry_it_used(slicer, tmp_path):
    from LuDosimetryLib.calibration.store import CalibrationEntry, CalibrationStore
    from LuDosimetryLib.errors import InputError
    from LuDosimetrySlicerLib import tac_logic

    spects, _, _, _ = _load_patient()
    key = "Acme|Spect1|MEGP|187.2-228.8|OSEM 4i16s"
    store = CalibrationStore((CalibrationEntry(key, 9.1, 0.02, date="2025-12-01", source="cylinder scan"),
                              CalibrationEntry(key, 9.4, 0.02, date="2026-03-01", source="later scan")))
    path = store.save(tmp_path / "calibration.json")
    with pytest.raises(InputError, match=r"LuDosimetry\.CameraKey"):
        tac_logic.calibration_for(spects[0], path)
    spects[0].SetAttribute("LuDosimetry.CameraKey", key)
    entry, text = tac_logic.calibration_for(spects[0], path)
    # the patient was injected on 2026-01-05: the calibration valid then is the December one
    assert entry.sensitivity_cps_per_MBq == 9.1 and "cylinder scan" in text and "9.1 cps/MBq" in text


def test_dose_logic_stores_a_slicerrt_dose_volume_statistics_and_dvh(slicer):
    from LuDosimetrySlicerLib import alignment_logic, dose_logic

    spects, _, labels, kidney = _load_patient()
    aligned = alignment_logic.run_alignment(spects[0], labels=labels, refine_kidneys=False)
    out = dose_logic.run_dose(aligned.aligned["tp1"], labels, method="led")
    dose = out.dose_volume
    assert dose.GetAttribute("DicomRtImport.DoseVolume") == "1"
    assert dose.GetVoxelValueUnits().GetCodeValue() == "Gy" and dose.GetAttribute("LuDosimetry.Units") == "Gy"
    assert float(dose.GetAttribute("LuDosimetry.InjectedActivityBq")) == INJECTED_BQ
    display = dose.GetScalarVolumeDisplayNode()
    assert display.GetColorNodeID() == dose_logic.DOSE_COLOR_NODE_ID and display.GetAutoWindowLevel() == 0
    assert display.GetWindowLevelMin() == 0.0 and display.GetWindowLevelMax() > 0
    sh = slicer.mrmlScene.GetSubjectHierarchyNode()
    study = sh.GetItemParent(sh.GetItemByDataNode(dose))
    assert sh.IsItemLevel(study, "Study") and sh.GetItemAttribute(study, "DicomRtImport.DoseUnitName") == "Gy"
    assert sh.GetItemName(sh.GetItemParent(study)) == "SYN1"
    stats = out.statistics
    assert stats.GetColumnUnitLabel("dose_Gy") == "Gy" and stats.GetColumnUnitLabel("volume_mL") == "mL"
    regions = list(_column(stats, "region"))
    mean_table = _column(stats, "map_mean_dose_Gy")[regions.index("kidney_left")]
    dose_arr = slicer.util.arrayFromVolume(dose)  # LED: dose stays in the kidney voxels; the table matches the map
    assert mean_table == pytest.approx(float(dose_arr[kidney].mean()), rel=1e-4)
    tia_arr = slicer.util.arrayFromVolume(out.tia_volume)
    assert out.tia_volume.GetVoxelValueUnits().GetCodeValue() == "Bq.h"
    assert float(tia_arr[kidney].sum()) > 0 and np.all(dose_arr[tia_arr == 0] == 0)
    dvh = out.dvh_table
    assert dvh.GetColumnUnitLabel("dose_Gy") == "Gy" and dvh.GetColumnUnitLabel("kidney_left_volume_percent") == "%"
    vp = _column(dvh, "kidney_left_volume_percent")
    assert vp[0] == pytest.approx(100.0) and np.all(np.diff(vp) <= 1e-9)
    assert out.dvh_chart.GetNumberOfPlotSeriesNodes() >= 2


def test_sample_patient_loads_into_the_scene_with_its_times_activity_and_labels(slicer, monkeypatch):
    """The Sample Data loader (the downloader registered with Sample Data): the synthetic patient,
    generated locally into Slicer's cache folder, through ingest into volume nodes."""
    import types

    from LuDosimetrySlicerLib import samples
    from LuDosimetrySlicerLib.patient_nodes import PatientNodes, segmentation_from_node

    monkeypatch.delenv("LUDOSIMETRY_CACHE", raising=False)
    registered = {}
    sample_data = types.SimpleNamespace(SampleDataLogic=types.SimpleNamespace(
        registerCustomSampleDataSource=lambda **kw: registered.update(kw)))  # SampleData is Qt: not in slicer-core
    monkeypatch.setitem(sys.modules, "SampleData", sample_data)
    samples.register_sample_data()
    # the patient generated once into slicer.app.cachePath; the loader finds it there and loads it
    folder, patient = samples.generate_sample_patient_folder("small", seed=0)
    assert Path(slicer.app.cachePath) in folder.parents
    loaded = registered["customDownloader"](None)
    assert all(n.GetScene() is slicer.mrmlScene for n in loaded)
    spects = sorted((n for n in loaded if n.GetAttribute("LuDosimetry.Modality") == "SPECT"),
                    key=lambda n: float(n.GetAttribute("LuDosimetry.TimeHoursPostInjection")))
    nodes = PatientNodes(spects[0].GetAttribute("LuDosimetry.PatientID"), 1, spects,
                         [n for n in loaded if n.GetAttribute("LuDosimetry.Modality") == "CT"],
                         next(n for n in loaded if n.IsA("vtkMRMLLabelMapVolumeNode")))
    truth = patient.cycles[0]
    assert len(nodes.spect) == len(truth.timepoints) == len(nodes.ct)
    for node, tp in zip(nodes.spect, truth.timepoints):
        attrs = {k.removeprefix("LuDosimetry."): node.GetAttribute(k) for k in node.GetAttributeNames()}
        assert float(attrs["TimeHoursPostInjection"]) == pytest.approx(tp.time_h, abs=0.05)
        assert float(attrs["InjectedActivityBq"]) == pytest.approx(truth.administration.injected_activity_Bq, rel=1e-6)
        assert attrs["Nuclide"] == "Lu-177" and attrs["Units"] == "Bq/mL" and attrs["Modality"] == "SPECT"
        assert node.GetVoxelValueUnits().GetCodeValue() == "Bq/ml"
    seg = segmentation_from_node(nodes.labels)
    assert [r.name for r in seg.table] == [r.name for r in patient.label_table]
    np.testing.assert_array_equal(sitk.GetArrayFromImage(seg.image), sitk.GetArrayFromImage(patient.labels))
    sh = slicer.mrmlScene.GetSubjectHierarchyNode()
    study = sh.GetItemParent(sh.GetItemByDataNode(nodes.spect[1]))
    assert sh.IsItemLevel(study, "Study") and sh.GetItemName(sh.GetItemParent(study)) == nodes.patient_id


def test_batch_on_the_sample_patient_gives_the_numbers_of_ludosimetry_run(slicer, tmp_path, capsys):
    """The Slicer batch script (the modules' Alignment, TAC and Dose logic) on the sample patient (two
    timepoints, to keep CI short) writes its results folder with the TIA and doses of
    ``LuDosimetryLib.pipeline.run_patient``: one result whatever the door."""
    import csv
    import json
    import zipfile

    from LuDosimetryLib.phantom import generate_patient, write_patient_folder
    from LuDosimetryLib.pipeline import run_patient
    from LuDosimetryLib.results import DOSES_COLUMNS, FITS_COLUMNS, TAC_COLUMNS
    from LuDosimetrySlicerLib import batch

    patient = generate_patient("small", seed=0, timepoints_h=(5.0, 24.0), with_pet=False)
    folder = write_patient_folder(patient, tmp_path / "sample", dicom=False)
    store = patient.calibration_store().save(tmp_path / "calibration.json")
    run_patient(folder, tmp_path / "run", parameters={"refine_regions": [], "calibration": str(store)})
    status = batch.main(["--", "--patients", str(folder), "--out", str(tmp_path / "batch"),
                         "--calibration-store", str(store), "--no-refine-kidneys"])
    assert status == 0, capsys.readouterr().out
    (dest,) = (tmp_path / "batch").iterdir()
    assert {p.name for p in dest.iterdir()} == {f"{dest.name}.mrb", "tac.csv", "fits.csv", "doses.csv",
                                                "report.html", "run.json"}

    def read(path):
        with path.open() as fh:
            return list(csv.DictReader(fh))

    assert list(read(dest / "tac.csv")[0])[:len(TAC_COLUMNS)] == list(TAC_COLUMNS)
    assert list(read(dest / "fits.csv")[0])[:len(FITS_COLUMNS)] == list(FITS_COLUMNS)
    assert list(read(dest / "doses.csv")[0])[:len(DOSES_COLUMNS)] == list(DOSES_COLUMNS)
    # one result whatever the door: every column of fits.csv and doses.csv (budget, BED, red marrow included);
    # statistics of the float32 dose map (min, D98 ...) agree to ~1e-6 only (FFT summation order): 1e-5 here,
    # dose_Gy and the TIAs to 1e-6 below
    for name in ("fits.csv", "doses.csv"):
        batch_rows, run_rows = read(dest / name), read(tmp_path / "run" / name)
        assert list(batch_rows[0]) == list(run_rows[0]), name
        assert [r["region"] for r in batch_rows] == [r["region"] for r in run_rows], name
        for b, r in zip(batch_rows, run_rows):
            for column in r:
                assert _same_cell(b[column], r[column]), (name, r["region"], column, b[column], r[column])
    batch_dose = {r["region"]: float(r["dose_Gy"]) for r in read(dest / "doses.csv")}
    run_dose = {r["region"]: float(r["dose_Gy"]) for r in read(tmp_path / "run" / "doses.csv")}
    assert {r["dose_method"] for r in read(dest / "doses.csv") if r["region"] == "kidney_left"} == {"kernel+gtm-pvc"}
    batch_tia = {r["region"]: float(r["tia_Bq_h"]) for r in read(dest / "fits.csv")}
    run_tia = {r["region"]: float(r["tia_Bq_h"]) for r in read(tmp_path / "run" / "fits.csv")}
    assert set(batch_dose) == set(run_dose) and set(batch_tia) == set(run_tia)
    for region in run_dose:
        assert batch_dose[region] == pytest.approx(run_dose[region], rel=1e-6), region
    for region in run_tia:
        assert batch_tia[region] == pytest.approx(run_tia[region], rel=1e-6), region
    assert batch_dose["kidney_left"] > 0
    record = json.loads((dest / "run.json").read_text())
    assert record["stages"]["tac"]["calibration"].startswith("applied at ingest")
    # the hierarchy the stages built: patient → a study per timepoint (and the dose study) → stage folders
    _assert_patient_hierarchy(slicer.mrmlScene, dest.name, n_timepoints=2)
    # a real Medical Reality Bundle: a zip of the .mrml scene file and its data files in Data/
    mrb = dest / f"{dest.name}.mrb"
    with zipfile.ZipFile(mrb) as z:
        names = z.namelist()
    assert any(n.endswith(".mrml") for n in names) and any("/Data/" in n for n in names), names
    assert not any(n.endswith("scene.json") for n in names)
    saved = _scene_snapshot(slicer.mrmlScene)
    # reopened in a fresh real scene, by Slicer's own reader
    import slicer_app

    scene, _app_logic = slicer_app.new_scene(tmp_path / "reopen-cache")  # the logic keeps the data IO alive
    assert scene.ReadFromMRB(str(mrb)), f"Slicer could not read {mrb}"
    reopened = _scene_snapshot(scene)
    assert set(reopened) == set(saved) and len(saved) > 20
    for key, node in saved.items():
        assert reopened[key]["attributes"] == node["attributes"], key
        assert reopened[key]["references"] == node["references"], key
        assert reopened[key]["parameters"] == node["parameters"], key
        assert reopened[key]["content"] == node["content"], key
        if node["matrix"] is not None:
            np.testing.assert_allclose(reopened[key]["matrix"], node["matrix"], rtol=0, atol=1e-12)
    params = next(n for n in reopened.values() if n["attributes"].get("ModuleName") == batch.BATCH_MODULE_NAME)
    assert params["parameters"]["method"] == "convolution" and params["parameters"]["refineKidneys"] == "False"
    assert params["references"]["doseVolume"] == [f"{dest.name} cycle1 dose"]
    assert sum(k[0] == "vtkMRMLLinearTransformNode" for k in reopened) == 2
    _assert_patient_hierarchy(scene, dest.name, n_timepoints=2)
    # Slicer's table storage keeps 6 significant digits; the full-precision node keeps the doses and TIAs
    from LuDosimetrySlicerLib.nodes import FULL_PRECISION_ROLE, full_precision_rows, table_column

    stats = scene.GetFirstNodeByName(f"{dest.name} cycle1 dose statistics")
    fits = scene.GetFirstNodeByName(f"{dest.name} fits")
    assert stats.GetNodeReference(FULL_PRECISION_ROLE) is not None
    reloaded_dose = dict(zip(table_column(stats, "region"), table_column(stats, "dose_Gy")))
    kept_dose = {r["region"]: r["dose_Gy"] for r in full_precision_rows(stats)}
    kept_tia = {r["region"]: r["tia_Bq_h"] for r in full_precision_rows(fits)}
    for region in run_dose:
        assert kept_dose[region] == pytest.approx(run_dose[region], rel=1e-6), region
        assert reloaded_dose[region] == pytest.approx(run_dose[region], rel=5e-6), region  # rounded, not exact
    for region in run_tia:
        assert kept_tia[region] == pytest.approx(run_tia[region], rel=1e-6), region
    assert any(reloaded_dose[r] != kept_dose[r] for r in run_dose)  # the table alone would have rounded


def _same_cell(a: str, b: str) -> bool:
    """Two CSV cells agree: numbers to 1e-5 relative, JSON (fit parameters) value by value, text exactly."""
    import json

    def same(x, y) -> bool:
        if isinstance(x, dict) and isinstance(y, dict):
            return x.keys() == y.keys() and all(same(x[k], y[k]) for k in x)
        if isinstance(x, list) and isinstance(y, list):
            return len(x) == len(y) and all(same(u, v) for u, v in zip(x, y))
        if isinstance(x, int | float) and isinstance(y, int | float):
            return x == pytest.approx(y, rel=1e-5, abs=1e-300)
        return x == y

    for parse in (float, json.loads):
        try:
            return same(parse(a), parse(b))
        except ValueError:
            continue
    return a == b


def _scene_snapshot(scene) -> dict:
    """Every LuDosimetry node (attribute ``LuDosimetry.*``, the dose volume, the batch parameter node) by
    (class, name): attributes, node references (by referenced node name), parameters, transform matrix."""
    import vtk

    out = {}
    for i in range(scene.GetNumberOfNodes()):
        node = scene.GetNthNode(i)
        attributes = {a: node.GetAttribute(a) for a in node.GetAttributeNames() or ()}
        if not any(a.startswith(("LuDosimetry.", "DicomRtImport.")) for a in attributes) and \
                attributes.get("ModuleName") != "LuDosimetryBatch" and not node.IsA("vtkMRMLPlotChartNode") and \
                not node.IsA("vtkMRMLPlotSeriesNode"):
            continue
        references = {}
        for r in range(node.GetNumberOfNodeReferenceRoles()):
            role = node.GetNthNodeReferenceRole(r)
            if role.startswith(("storage", "display")):  # storage/display nodes: Slicer's own bookkeeping
                continue
            references[role] = [node.GetNthNodeReference(role, j).GetName()
                                for j in range(node.GetNumberOfNodeReferences(role))]
        parameters = {k: node.GetParameter(k) for k in node.GetParameterNames()} if node.IsA(
            "vtkMRMLScriptedModuleNode") else {}
        matrix = None
        if node.IsA("vtkMRMLLinearTransformNode"):
            m = vtk.vtkMatrix4x4()
            node.GetMatrixTransformToParent(m)
            matrix = np.array([[m.GetElement(r, c) for c in range(4)] for r in range(4)])
        content = None
        if node.IsA("vtkMRMLTableNode"):  # columns, their units and the row count (values: see the doses below)
            content = [(node.GetColumnName(c), node.GetColumnUnitLabel(node.GetColumnName(c)),
                        node.GetTable().GetColumn(c).GetDataTypeAsString()) for c in range(node.GetNumberOfColumns())]
            content.append(node.GetNumberOfRows())
        elif node.IsA("vtkMRMLTextNode"):
            content = node.GetText()
        elif node.IsA("vtkMRMLPlotSeriesNode"):
            content = (node.GetXColumnName(), node.GetYColumnName(), node.GetPlotType(), node.GetMarkerStyle())
        elif node.IsA("vtkMRMLPlotChartNode"):
            content = (node.GetTitle(), node.GetXAxisTitle(), node.GetYAxisTitle())
        key = (node.GetClassName(), node.GetName())
        assert key not in out, f"two nodes {key}"
        out[key] = {"attributes": attributes, "references": references, "parameters": parameters, "matrix": matrix,
                    "content": content}
    return out


def _assert_patient_hierarchy(scene, patient_id: str, *, n_timepoints: int) -> None:
    """patient (subject) → ``cycle1 tp<n>`` studies and the ``cycle1 dose`` study → the ``LuDosimetry <stage>``
    folders; the dose study carries SlicerRT's dose unit and holds the dose volume."""
    import vtk

    sh = scene.GetSubjectHierarchyNode()
    patient = sh.GetItemChildWithName(sh.GetSceneItemID(), patient_id)
    assert patient and sh.GetItemLevel(patient) == "Patient"
    ids = vtk.vtkIdList()
    sh.GetItemChildren(patient, ids)
    children = {sh.GetItemName(ids.GetId(i)): ids.GetId(i) for i in range(ids.GetNumberOfIds())}
    studies = sorted(n for n, i in children.items() if sh.GetItemLevel(i) == "Study")
    assert studies == sorted([*(f"cycle1 tp{n + 1}" for n in range(n_timepoints)), "cycle1 dose"]), studies
    assert {"LuDosimetry TAC", "LuDosimetry dose"} <= {n for n, i in children.items() if sh.GetItemLevel(i) == "Folder"}
    dose_study = children["cycle1 dose"]
    assert sh.GetItemAttribute(dose_study, "DicomRtImport.DoseUnitName") == "Gy"
    sh.GetItemChildren(dose_study, ids)
    doses = [sh.GetItemDataNode(ids.GetId(i)) for i in range(ids.GetNumberOfIds())]
    assert [n.GetName() for n in doses if n.GetAttribute("DicomRtImport.DoseVolume") == "1"] == \
        [f"{patient_id} cycle1 dose"]
    for n in range(n_timepoints):  # each timepoint study holds its SPECT, CT, transform and aligned SPECT
        sh.GetItemChildren(children[f"cycle1 tp{n + 1}"], ids)
        classes = sorted(sh.GetItemDataNode(ids.GetId(i)).GetClassName() for i in range(ids.GetNumberOfIds()))
        assert classes.count("vtkMRMLScalarVolumeNode") >= 3 and "vtkMRMLLinearTransformNode" in classes


def test_batch_reports_a_failing_patient_and_exits_with_status_1(slicer, tmp_path, capsys, monkeypatch):
    from LuDosimetrySlicerLib import batch

    args = batch.parse_args(["--", "--patients", str(tmp_path / "missing1"), str(tmp_path / "missing2"),
                             "--out", str(tmp_path / "out")])
    assert args.patients == [tmp_path / "missing1", tmp_path / "missing2"] and args.method == "convolution"
    status = batch.main(["--patients", str(tmp_path / "missing1"), str(tmp_path / "missing2"),
                         "--out", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert status == 1
    assert f"{tmp_path / 'missing1'}: FAILED" in out and f"{tmp_path / 'missing2'}: FAILED" in out  # both tried
    assert "0 of 2 patients processed" in out and not (tmp_path / "out").exists()
    # the entry script Slicer runs (--python-script): the same main, its status handed to slicer.util.exit
    import runpy

    monkeypatch.setattr(sys, "argv", [str(SCRIPT), "--", "--patients", str(tmp_path / "missing1"),
                                      "--out", str(tmp_path / "out")])
    runpy.run_path(str(SCRIPT), run_name="__main__")
    assert slicer.app.exitStatus == 1 and slicer.app.commandOptions().runPythonAndExit is False
    assert "0 of 1 patients processed" in capsys.readouterr().out
