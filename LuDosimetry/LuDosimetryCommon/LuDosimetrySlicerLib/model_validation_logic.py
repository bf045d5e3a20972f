"""A cohort's leave-one-patient-out model validation in the scene: the tables ``ludosimetry cohort``
writes (``statistics/model_validation.csv``, ``statistics/model_validation_predictions.csv``), or the
tables of :func:`LuDosimetrySlicerLib.concordance_logic.run_model_validation`, as a comparison of
the prediction models (LuDosimetryLib.cohort.model_validation computed every number).

Outputs (``ModelComparisonOutputs``), under the subject ``Cohort`` (folder ``LuDosimetry concordance``):

- ``comparison``: one row per organ group, per model its CCC with 95 % CI and Bland–Altman bias (Gy):
  ``group, group_number, n_patients, ccc_<model>, ccc_ci95_low_<model>, ccc_ci95_high_<model>,
  ba_bias_<model>_Gy`` (attributes ``Models``, ``Scheme``, ``Source``);
- ``ccc_chart``: CCC per organ group (x: ``group_number``, labelled by ``group``), one series per model;
- with the predictions table: ``pairs`` (the chosen model's LOPO predictions: patient, region, kind,
  ``predicted_Gy``, ``measured_Gy``) and ``scatter_chart`` (predicted vs measured with the identity line).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import slicer

from . import hierarchy
from .nodes import columns_table, plot_chart, rows_to_table, set_node_attributes, table_to_rows

__all__ = ["ModelComparisonOutputs", "load_model_validation", "VALIDATION_REQUIRED", "PREDICTION_REQUIRED"]

#: Columns of a model-validation table this module needs (of ``model_validation.VALIDATION_COLUMNS``).
VALIDATION_REQUIRED = ("model", "group", "n_patients", "ccc", "ccc_ci95_low", "ccc_ci95_high", "ba_bias_Gy")
#: Columns of a LOPO predictions table: per GBq with the activity (the cohort's CSV), or in Gy (the module's).
PREDICTION_REQUIRED = ("patient", "region", "model")


@dataclass
class ModelComparisonOutputs:
    """Nodes created by :func:`load_model_validation` (``pairs``/``scatter_chart`` None without predictions)."""

    comparison: object
    ccc_chart: object
    models: tuple
    pairs: object = None
    scatter_chart: object = None


def _rows(node, required) -> list[dict]:
    from LuDosimetryLib.errors import InputError

    rows = table_to_rows(node)
    table = node.GetTable()
    names = {table.GetColumnName(c) for c in range(table.GetNumberOfColumns())}
    missing = [c for c in required if c not in names]
    if missing or not rows:
        raise InputError(f"missing column(s) {missing or list(required)} (or no rows): expected the cohort's "
                         "model-validation table", source=f"table node {node.GetName()!r}")
    return rows


def _number(value) -> float:
    """A table cell as a float (text cells of a CSV loaded as strings; empty or NaN: NaN)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _pair_rows(rows: list[dict], model: str, source: str) -> list[dict]:
    """The chosen model's LOPO pairs in Gy: ``predicted_Gy``/``measured_Gy``, else per GBq × ``activity_GBq``."""
    from LuDosimetryLib.errors import InputError

    mine = [r for r in rows if str(r["model"]) == model]
    if not mine:
        raise InputError(f"has no predictions of the {model!r} model (models: "
                         f"{', '.join(sorted({str(r['model']) for r in rows}))})", source=source)
    if "predicted_Gy" in mine[0] and "measured_Gy" in mine[0]:
        gy = [(_number(r["predicted_Gy"]), _number(r["measured_Gy"])) for r in mine]
    elif {"predicted_Gy_per_GBq", "measured_Gy_per_GBq", "activity_GBq"} <= set(mine[0]):
        gy = [(_number(r["predicted_Gy_per_GBq"]) * _number(r["activity_GBq"]),
               _number(r["measured_Gy_per_GBq"]) * _number(r["activity_GBq"])) for r in mine]
    else:
        raise InputError("needs predicted_Gy and measured_Gy, or predicted_Gy_per_GBq, measured_Gy_per_GBq and "
                         "activity_GBq", source=source)
    return [{"patient": str(r["patient"]), "region": str(r["region"]), "kind": str(r.get("kind", "")),
             "model": model, "predicted_Gy": p, "measured_Gy": m} for r, (p, m) in zip(mine, gy)]


def load_model_validation(validation_node, predictions_node=None, *,
                          model: str = "calibrated") -> ModelComparisonOutputs:
    """The models' leave-one-patient-out comparison as a table and charts.

    Parameters
    ----------
    validation_node : vtkMRMLTableNode
        ``model_validation.csv`` of ``ludosimetry cohort`` (or ``run_model_validation``'s table): one row
        per model and organ group with ``ccc``, its 95 % CI and ``ba_bias_Gy``.
    predictions_node : vtkMRMLTableNode, optional
        ``model_validation_predictions.csv`` (or ``run_model_validation``'s predictions): charted for ``model``.
    model : str
        The model whose LOPO predictions are charted against the measured doses.

    Raises
    ------
    InputError
        A table without the columns named above, or no predictions of ``model``.
    """
    rows = _rows(validation_node, VALIDATION_REQUIRED)
    models = tuple(dict.fromkeys(str(r["model"]) for r in rows))
    groups = list(dict.fromkeys(str(r["group"]) for r in rows))
    by_key = {(str(r["model"]), str(r["group"])): r for r in rows}
    comparison = []
    for k, g in enumerate(groups, start=1):
        row = {"group": g, "group_number": k,
               "n_patients": max(_number(by_key[m, g]["n_patients"]) for m in models if (m, g) in by_key)}
        for m in models:
            r = by_key.get((m, g), {})
            for col in ("ccc", "ccc_ci95_low", "ccc_ci95_high"):
                row[f"{col}_{m}"] = _number(r.get(col))
            row[f"ba_bias_{m}_Gy"] = _number(r.get("ba_bias_Gy"))
        comparison.append(row)
    folder = hierarchy.stage_folder("Cohort", "concordance")
    table = rows_to_table(comparison, name="Prediction model comparison (LOPO)")
    set_node_attributes(table, {"Stage": "model_validation", "Models": ",".join(models),
                                "Scheme": "leave-one-patient-out", "Source": validation_node.GetName()})
    hierarchy.place(table, folder)
    chart = plot_chart(table, [{"x": "group_number", "y": f"ccc_{m}", "name": f"CCC {m}", "style": "points"}
                               for m in models],
                       name="Prediction model CCC chart", title="Leave-one-patient-out CCC per organ group",
                       x_title="organ group (" + ", ".join(f"{k} {g}" for k, g in enumerate(groups, start=1)) + ")",
                       y_title="Lin's CCC")
    for n in range(chart.GetNumberOfPlotSeriesNodes()):
        slicer.mrmlScene.GetNodeByID(chart.GetNthPlotSeriesNodeID(n)).SetLabelColumnName("group")
    hierarchy.place(chart, folder)
    out = ModelComparisonOutputs(table, chart, models)
    if predictions_node is not None:
        src = f"table node {predictions_node.GetName()!r}"
        pairs = _pair_rows(_rows(predictions_node, PREDICTION_REQUIRED), model, src)
        out.pairs = rows_to_table(pairs, name=f"LOPO pairs ({model})")
        set_node_attributes(out.pairs, {"Stage": "model_validation", "Model": model,
                                        "Source": predictions_node.GetName()})
        hierarchy.place(out.pairs, folder)
        finite = [v for r in pairs for v in (r["predicted_Gy"], r["measured_Gy"]) if math.isfinite(v)]
        top = max(finite, default=1.0)
        identity = columns_table({"dose_Gy": [0.0, top], "identity_Gy": [0.0, top]}, name="LOPO identity line")
        hierarchy.place(identity, folder)
        out.scatter_chart = plot_chart(out.pairs, [
            {"x": "measured_Gy", "y": "predicted_Gy", "name": f"{model} (LOPO)", "style": "points"},
            {"x": "dose_Gy", "y": "identity_Gy", "name": "identity", "table": identity}],
            name=f"LOPO {model} vs measured", title=f"{model} model, leave-one-patient-out predictions",
            x_title="measured dose (Gy)", y_title="predicted dose (Gy)")
        hierarchy.place(out.scatter_chart, folder)
    return out

