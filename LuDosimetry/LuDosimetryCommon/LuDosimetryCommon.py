"""LuDosimetryCommon: a hidden module that ships the edge code shared by the LuDosimetry modules
(``LuDosimetrySlicerLib``) and makes the library ``LuDosimetryLib`` importable in Slicer."""

import logging
import os
import sys

import slicer
from slicer.i18n import tr as _
from slicer.ScriptedLoadableModule import ScriptedLoadableModule


def _library_from_source_tree() -> None:
    """In a source checkout (module paths added in Application Settings), make ``LuDosimetryLib``
    importable from the repository root; an installed extension has it beside the modules."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if os.path.isfile(os.path.join(root, "LuDosimetryLib", "__init__.py")) and root not in sys.path:
        try:
            import LuDosimetryLib  # noqa: F401  (installed beside the modules)
        except ImportError:
            sys.path.append(root)


_library_from_source_tree()


class LuDosimetryCommon(ScriptedLoadableModule):
    """Module metadata only: this module has no GUI."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("LuDosimetry Common")
        self.parent.categories = [_("Nuclear Medicine")]
        self.parent.dependencies = []
        self.parent.contributors = ["LuDosimetry developers"]
        self.parent.helpText = _("Shared code of the LuDosimetry modules (no user interface).")
        self.parent.acknowledgementText = ""
        self.parent.hidden = True
        # The synthetic patient in Sample Data (generated locally on first use: no download, no install).
        slicer.app.connect("startupCompleted()", registerSampleData)


def registerSampleData():
    """Add the LuDosimetry synthetic patient to the Sample Data module."""
    try:
        from LuDosimetrySlicerLib.samples import register_sample_data

        register_sample_data()
    except Exception:  # a missing optional part must not break Slicer's start-up
        logging.exception("LuDosimetry: could not register the synthetic patient in Sample Data")
