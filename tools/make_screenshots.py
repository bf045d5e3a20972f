"""Make the committed screenshots: the extension's (dose over CT with the DVH) and both reports' first screens.

Usage (from the repository root, after ``ludosimetry demo --out demo_output``)::

    PYTHONPATH=. .venv/bin/python tools/make_screenshots.py demo_output

reads ``demo_output/results`` (a ``ludosimetry run`` results folder) and ``demo_output/cohort``
(a ``ludosimetry cohort`` folder) and writes, in ``Resources/Screenshots/``:

- ``LuDosimetryDose.png``: the dose map over the CT at the kidneys' level (axial, coronal, dose
  MIP) above the organs' and lesions' DVHs: the picture of the Extension Manager
  (CMakeLists.txt ``EXTENSION_SCREENSHOTURLS``);
- ``LuDosimetryReport.png`` and ``LuDosimetryCohortReport.png``: the first screen (1400 × 900 px)
  of the patient and cohort reports, rendered again from those folders and shown by a headless
  Chromium (docs/report.md).

Needs matplotlib and Chromium (Debian ``chromium``).
"""

from __future__ import annotations

import argparse
import io
import sys
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHOTS = REPO / "Resources" / "Screenshots"


def dose_screenshot(results: Path, out: Path) -> Path:
    """The extension's screenshot: dose over CT at the kidneys' level and the DVH panel, one PNG."""
    import numpy as np
    from PIL import Image

    from LuDosimetryLib.report.data import load_patient_results
    from LuDosimetryLib.report.figures import display_volumes, dose_slices_png, dvh_panel_png
    from LuDosimetryLib.report.regions import oar_regions

    res = load_patient_results(results)
    kinds = {r["region"]: r.get("kind", "") for r in res.doses}
    groups = oar_regions(set(kinds))
    oar = [r for _, rs in groups for r in rs]
    lesions = [r for r, k in kinds.items() if k == "lesion"]
    vol = display_volumes(res.ct, res.dose, res.labels, res.label_table, [*oar, *lesions])
    kidneys = [r for r in ("kidney_left", "kidney_right") if r in vol.masks]
    masks = {**vol.masks, "_kidneys": np.logical_or.reduce([vol.masks[k] for k in kidneys])}
    both = replace(vol, masks=masks)
    top = Image.open(io.BytesIO(dose_slices_png(both, centre_region="_kidneys", width_in=12.0, label_regions=lesions,
                                                title=f"{res.patient_id}, cycle {res.cycle}: absorbed dose over CT")))
    bottom = Image.open(io.BytesIO(dvh_panel_png(res.dvh, [("Organs at risk", [r for r in oar if r in res.dvh]),
                                                          ("Lesions", [r for r in lesions if r in res.dvh])],
                                                 width_in=12.0 * 120 / 110)))
    w = max(top.width, bottom.width)
    canvas = Image.new("RGB", (w, top.height + bottom.height), "white")
    canvas.paste(top, (0, 0))
    canvas.paste(bottom, (0, top.height))
    canvas.save(out, optimize=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("demo", type=Path, help="folder written by `ludosimetry demo` (results/ and cohort/)")
    parser.add_argument("--out", type=Path, default=SHOTS,
                        help="where to write the PNGs (default Resources/Screenshots)")
    args = parser.parse_args(argv)
    from LuDosimetryLib.report.browser import html_screenshot
    from LuDosimetryLib.report.cohort import write_cohort_report
    from LuDosimetryLib.report.patient import write_patient_report

    args.out.mkdir(parents=True, exist_ok=True)
    results, cohort = args.demo / "results", args.demo / "cohort"
    print(dose_screenshot(results, args.out / "LuDosimetryDose.png"))
    html = write_patient_report(results)
    print(html_screenshot(html, args.out / "LuDosimetryReport.png"))
    if (cohort / "cohort.csv").is_file():
        print(html_screenshot(write_cohort_report(cohort), args.out / "LuDosimetryCohortReport.png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
