"""Small GUI helpers shared by the LuDosimetry module widgets (Slicer only; not used by logic)."""

from __future__ import annotations

import contextlib
import logging

import slicer

__all__ = ["progress_dialog", "ask_to_install", "show_in_layout", "layout_description"]


@contextlib.contextmanager
def progress_dialog(title: str):
    """A modal progress dialog; yields a ``progress(fraction, message)`` callback for the library."""
    dialog = slicer.util.createProgressDialog(windowTitle=title, labelText=title, value=0, maximum=100)

    def progress(fraction: float, message: str) -> None:
        dialog.setValue(round(100 * max(0.0, min(1.0, fraction))))
        dialog.setLabelText(message)
        logging.info("%s: %3.0f %% %s", title, 100 * fraction, message)
        slicer.app.processEvents()

    try:
        yield progress
    finally:
        dialog.close()


def ask_to_install(package: str, requirement: str, why: str) -> bool:
    """Import-or-install an optional package after asking the user (never at start-up).

    Returns True when the package is importable afterwards. Uses the one-argument form of
    ``slicer.util.pip_install`` (Slicer 5.10 has no keyword arguments).
    """
    import importlib

    try:
        importlib.import_module(package)
        return True
    except ImportError:
        pass
    if not slicer.util.confirmOkCancelDisplay(f"{why} needs the Python package '{requirement}', which is not "
                                              "installed. Install it now (from PyPI)?", "Install Python package"):
        return False
    slicer.util.pip_install(requirement)
    importlib.invalidate_caches()
    importlib.import_module(package)
    return True


#: Layout IDs of :func:`show_in_layout` (one per number of table and plot views).
_LAYOUT_ID_BASE = 71170


def layout_description(n_tables: int, n_charts: int) -> str:
    """Slicer layout XML: ``n_tables`` table views side by side above ``n_charts`` plot views side by side
    (singleton tags ``LuDosimetryTable<k>``, ``LuDosimetryPlot<k>``)."""
    def row(cls: str, tag: str, n: int) -> str:
        views = "".join(f'<item><view class="{cls}" singletontag="LuDosimetry{tag}{k}">'
                        f'<property name="viewlabel" action="default">{tag[0]}{k}</property></view></item>'
                        for k in range(1, n + 1))
        return f'<item><layout type="horizontal">{views}</layout></item>' if n else ""

    return ('<layout type="vertical">' + row("vtkMRMLTableViewNode", "Table", n_tables)
            + row("vtkMRMLPlotViewNode", "Plot", n_charts) + "</layout>")


def show_in_layout(tables=(), charts=(), layout_node=None) -> int:
    """Show tables side by side above charts side by side (a layout of that many table and plot views).

    ``layout_node``: the scene's layout node (default: the application's). Returns the layout ID.
    """
    tables, charts = list(tables), list(charts)
    if layout_node is None:
        layout_node = slicer.app.layoutManager().layoutLogic().GetLayoutNode()
    layout_id = _LAYOUT_ID_BASE + 10 * len(tables) + len(charts)
    if not layout_node.IsLayoutDescription(layout_id):
        layout_node.AddLayoutDescription(layout_id, layout_description(len(tables), len(charts)))
    layout_node.SetViewArrangement(layout_id)
    for k, node in enumerate(tables, start=1):
        slicer.mrmlScene.GetSingletonNode(f"LuDosimetryTable{k}", "vtkMRMLTableViewNode").SetTableNodeID(node.GetID())
    for k, node in enumerate(charts, start=1):
        slicer.mrmlScene.GetSingletonNode(f"LuDosimetryPlot{k}", "vtkMRMLPlotViewNode").SetPlotChartNodeID(
            node.GetID())
    return layout_id
