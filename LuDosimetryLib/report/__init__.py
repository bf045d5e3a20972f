"""Reports: the clinical patient and cohort reports, and the stage sections of other commands.

- :mod:`.patient`: the patient report of a results folder (what a physicist signs);
- :mod:`.cohort`: the cohort report;
- :mod:`.stages`: :class:`Report`, a page of stage sections (calibration, planning, prediction …);
- :mod:`.html`, :mod:`.figures`, :mod:`.flags`, :mod:`.regions`: building blocks;
- :mod:`.browser`: headless Chromium for PDF and screenshots.

Every page is one HTML file: images embedded, no script, no external resource, text escaped.
"""

from .stages import STAGE_ORDER, Report, Section

__all__ = ["Report", "Section", "STAGE_ORDER"]
