"""LuDosimetryCommon: a hidden module that ships the edge code shared by the LuDosimetry modules
(``LuDosimetrySlicerLib``) and makes the library ``LuDosimetryLib`` importable in Slicer."""

from slicer.i18n import tr as _
from slicer.ScriptedLoadableModule import ScriptedLoadableModule


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
