"""Concordance stage in the scene: a dose-pair table node → agreement statistics, scatter and
Bland–Altman charts (LuDosimetryLib.concordance does every computation).

Outputs (``ConcordanceOutputs``), under the subject ``Cohort`` (folder ``LuDosimetry concordance``)
or, for one patient, under that patient:

- ``statistics``: one row per region group and scope (columns of
  ``LuDosimetryLib.concordance.analysis.CONCORDANCE_COLUMNS``, units from the names);
- per region group a pairs table (patient, region, group, predicted_Gy, measured_Gy, mean_Gy,
  difference_Gy), a scatter chart (measured vs predicted) and a Bland–Altman chart (difference
  vs mean, with the cohort bias and limits of agreement of that group as lines);
- for a chosen patient the same for all its pairs (points only; its lesion statistics, when it
  has ≥ 3 lesions, are the statistics rows with scope ``patient <id>``).
"""

from __future__ import annotations

import csv
import os
import tempfile
from dataclasses import dataclass, field

from . import hierarchy
from .nodes import columns_table, keep_full_precision, plot_chart, rows_to_table, set_node_attributes, table_to_rows

__all__ = ["ConcordanceOutputs", "pairs_from_table_node", "run_concordance", "PAIR_COLUMNS", "ModelValidationOutputs",
           "run_model_validation", "MODEL_CHOICES"]

#: Prediction models offered by the module (LuDosimetryLib.prediction.models.MODELS).
MODEL_CHOICES = ("population", "kinetic", "calibrated")

PAIR_COLUMNS = ("patient", "region", "group", "predicted_Gy", "measured_Gy", "mean_Gy", "difference_Gy")


@dataclass
class ConcordanceOutputs:
    """Nodes created by :func:`run_concordance` (charts keyed by group name)."""

    statistics: object
    pairs: dict = field(default_factory=dict)
    scatter: dict = field(default_factory=dict)
    bland_altman: dict = field(default_factory=dict)
    n_pairs: int = 0
    n_patients: int = 0


def pairs_from_table_node(node) -> list:
    """Validated :class:`DosePair` list from a table node with the concordance table's columns.

    The rows are written to a temporary CSV and read by
    :func:`LuDosimetryLib.concordance.table.read_concordance_table`, so validation (and its
    messages) is the library's; the messages name the table node.
    """
    from LuDosimetryLib.concordance.table import read_concordance_table
    from LuDosimetryLib.errors import InputError

    rows = table_to_rows(node)
    table = node.GetTable()
    names = [table.GetColumn(c).GetName() for c in range(table.GetNumberOfColumns())]
    fd, path = tempfile.mkstemp(suffix=".csv", prefix="ludosimetry_concordance_")
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=names)
            w.writeheader()
            for r in rows:
                w.writerow({k: ("" if isinstance(v, float) and v != v else v) for k, v in r.items()})
        try:
            return read_concordance_table(path)
        except InputError as exc:
            raise InputError(exc.reason, source=f"table node {node.GetName()!r}") from None
    finally:
        os.unlink(path)


def _pair_rows(pairs) -> list[dict]:
    from LuDosimetryLib.concordance.plots import bland_altman_rows, scatter_rows

    return [{**s, "group": p.group, "mean_Gy": b["mean_Gy"], "difference_Gy": b["difference_Gy"]}
            for p, s, b in zip(pairs, scatter_rows(pairs), bland_altman_rows(pairs))]


def _charts(out: ConcordanceOutputs, key: str, pairs, stats_row: dict | None, parent: int, title: str) -> None:
    rows = _pair_rows(pairs)
    table = rows_to_table(rows, name=f"{title} pairs", columns=PAIR_COLUMNS)
    hierarchy.place(table, parent)
    points = {"x": "measured_Gy", "y": "predicted_Gy", "name": f"{title} pairs", "style": "points"}
    scatter = plot_chart(table, [points],
                         name=f"{title} scatter", title=f"{title}: predicted vs measured",
                         x_title="measured dose (Gy)", y_title="predicted dose (Gy)")
    series = [{"x": "mean_Gy", "y": "difference_Gy", "name": f"{title} differences", "style": "points"}]
    if stats_row is not None and rows:
        means = [r["mean_Gy"] for r in rows]
        lines = columns_table({"mean_Gy": [min(means), max(means)],
                               "bias_Gy": [stats_row["ba_bias_Gy"]] * 2,
                               "loa_low_Gy": [stats_row["ba_loa_low_Gy"]] * 2,
                               "loa_high_Gy": [stats_row["ba_loa_high_Gy"]] * 2}, name=f"{title} Bland-Altman lines")
        hierarchy.place(lines, parent)
        series += [{"x": "mean_Gy", "y": c, "name": f"{title} {c}", "table": lines}
                   for c in ("bias_Gy", "loa_low_Gy", "loa_high_Gy")]
    ba = plot_chart(table, series, name=f"{title} Bland-Altman", title=f"{title}: Bland–Altman",
                    x_title="mean of predicted and measured (Gy)", y_title="predicted − measured (Gy)")
    for node in (scatter, ba):
        hierarchy.place(node, parent)
    out.pairs[key], out.scatter[key], out.bland_altman[key] = table, scatter, ba


def run_concordance(table_node, *, patient: str = "", n_bootstrap: int = 2000, seed: int = 0,
                    progress=None) -> ConcordanceOutputs:
    """Agreement of predicted and measured doses for the cohort in ``table_node``.

    Parameters
    ----------
    table_node : vtkMRMLTableNode
        Columns ``patient, region, predicted_Gy, measured_Gy`` [, ``kind, predicted_sd_Gy,
        measured_sd_Gy``], at least 3 patients (the library's rule).
    patient : str
        Also chart this patient's pairs (all groups) under the patient; empty: cohort only.
    n_bootstrap, seed : int
        Cluster-bootstrap resamples and seed (nested Bland–Altman).
    progress : callable(fraction, message), optional
    """
    from LuDosimetryLib.concordance.analysis import CONCORDANCE_COLUMNS, concordance_by_group, concordance_rows
    from LuDosimetryLib.errors import InputError

    report = progress or (lambda f, m: None)
    report(0.0, "reading dose pairs")
    pairs = pairs_from_table_node(table_node)
    patients = sorted({p.patient for p in pairs})
    if patient and patient not in patients:
        raise InputError(f"patient {patient!r} is not in the table (have {', '.join(patients)})", source="patient")
    report(0.1, "agreement statistics")
    results = concordance_by_group(pairs, n_bootstrap=n_bootstrap, seed=seed)
    rows = concordance_rows(results)
    cohort = hierarchy.stage_folder("Cohort", "concordance")
    stats = rows_to_table(rows, name="Concordance statistics", columns=CONCORDANCE_COLUMNS)
    set_node_attributes(stats, {"Stage": "concordance", "Source": table_node.GetName(), "Bootstrap": n_bootstrap,
                                "Seed": seed, "Difference": "predicted - measured"})
    hierarchy.place(stats, cohort)
    keep_full_precision(stats, rows, CONCORDANCE_COLUMNS)
    out = ConcordanceOutputs(stats, n_pairs=len(pairs), n_patients=len(patients))
    cohort_rows = {r["group"]: r for r in rows if r["scope"] == "cohort"}
    groups = sorted({p.group for p in pairs})
    for n, g in enumerate(groups):
        report(0.5 + 0.4 * n / max(1, len(groups)), f"charts: {g}")
        _charts(out, g, [p for p in pairs if p.group == g], cohort_rows.get(g), cohort, f"Cohort {g}")
    if patient:
        # all of the patient's pairs, without lines: the per-patient statistics (scope "patient <id>")
        # cover its lesions only, so they would misdescribe a chart that also holds organs
        mine = [p for p in pairs if p.patient == patient]
        _charts(out, f"patient {patient}", mine, None, hierarchy.stage_folder(patient, "concordance"), f"{patient}")
    report(1.0, "done")
    return out


@dataclass
class ModelValidationOutputs:
    """Nodes created by :func:`run_model_validation`."""

    validation: object
    predictions: object
    chart: object
    n_patients: int = 0


def run_model_validation(feature_table_node, *, models=MODEL_CHOICES, model: str = "calibrated",
                         progress=None) -> ModelValidationOutputs:
    """Leave-one-patient-out comparison of the prediction models on a cohort's feature table.

    Parameters
    ----------
    feature_table_node : vtkMRMLTableNode
        ``statistics/prediction_features.csv`` of ``ludosimetry cohort`` (PET features and measured
        dose per GBq per patient and region).
    models : sequence of str
        Models to validate (:data:`MODEL_CHOICES`).
    model : str
        The model whose LOPO predictions are charted (predicted vs measured).

    Creates, under ``Cohort`` / ``LuDosimetry concordance``: the validation table (one row per model and
    organ group: CCC, bias, limits of agreement; LuDosimetryLib.cohort.model_validation), the LOPO
    predictions table and a scatter chart of ``model``'s predictions.
    """
    from LuDosimetryLib.cohort.model_validation import VALIDATION_COLUMNS, lopo_concordance, lopo_predictions
    from LuDosimetryLib.errors import InputError

    if model not in models:
        raise InputError(f"must be one of {', '.join(models)}, got {model!r}", source="model")
    report = progress or (lambda f, m: None)
    report(0.0, "reading the feature table")
    rows = [{k: (None if isinstance(v, float) and v != v else v) for k, v in r.items()}
            for r in table_to_rows(feature_table_node)]
    missing = [c for c in ("patient", "region", "late_fraction_ga", "t_ref_h", "dose_per_tia_Gy_per_Bq_h",
                           "measured_dose_Gy_per_GBq") if rows and c not in rows[0]]
    if missing or not rows:
        raise InputError(f"missing column(s) {missing or ['patient']}: expected the cohort's prediction_features.csv",
                         source=f"table node {feature_table_node.GetName()!r}")
    report(0.1, "leave-one-patient-out predictions")
    preds = lopo_predictions(rows, models=tuple(models))
    report(0.7, "agreement statistics")
    table = lopo_concordance(preds)
    cohort = hierarchy.stage_folder("Cohort", "concordance")
    validation = rows_to_table(table, name="Prediction model validation (LOPO)", columns=VALIDATION_COLUMNS)
    set_node_attributes(validation, {"Stage": "model_validation", "Source": feature_table_node.GetName(),
                                     "Models": ",".join(models), "Scheme": "leave-one-patient-out"})
    hierarchy.place(validation, cohort)
    mine = [{**r, "predicted_Gy": r["predicted_Gy_per_GBq"] * r["activity_GBq"],
             "measured_Gy": r["measured_Gy_per_GBq"] * r["activity_GBq"]} for r in preds if r["model"] == model]
    pred_table = rows_to_table(mine, name=f"LOPO predictions ({model})",
                               columns=("patient", "region", "kind", "model", "predicted_Gy", "measured_Gy"))
    hierarchy.place(pred_table, cohort)
    chart = plot_chart(pred_table, [{"x": "measured_Gy", "y": "predicted_Gy", "name": f"{model} (LOPO)",
                                     "style": "points"}],
                       name=f"LOPO {model} scatter", title=f"{model} model, leave-one-patient-out",
                       x_title="measured dose (Gy)", y_title="predicted dose (Gy)")
    hierarchy.place(chart, cohort)
    report(1.0, "done")
    return ModelValidationOutputs(validation, pred_table, chart, len({r["patient"] for r in rows}))
