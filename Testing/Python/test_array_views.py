"""No numpy view of a temporary SimpleITK image anywhere in the code.

``sitk.GetArrayViewFromImage(expr)`` returns a view of the image's buffer that does not keep the
image alive: when ``expr`` builds a new image (``sitk.Resample(...)``) nobody else references, the
image is freed at once and the view reads freed memory (garbage values, no error). A SPECT
resampling did this once (the organ-box resampling of the alignment): the voxel TIA then stopped on
"time maps must be ... strictly increasing" in one run of twenty. The image must be bound to a
name (or be an attribute or item of a live object) for as long as the view is used.
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import SimpleITK as sitk

ROOT = Path(__file__).resolve().parents[2]


def _views_of_temporaries(tree: ast.AST) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == \
                "GetArrayViewFromImage" and node.args and \
                not isinstance(node.args[0], ast.Name | ast.Attribute | ast.Subscript):
            out.append((node.lineno, ast.unparse(node)))
    return out


def test_the_scan_finds_a_view_of_a_temporary_and_the_hazard_is_real():
    assert _views_of_temporaries(ast.parse("v = sitk.GetArrayViewFromImage(sitk.Resample(a, b))"))
    assert not _views_of_temporaries(ast.parse("img = sitk.Resample(a, b)\nv = sitk.GetArrayViewFromImage(img)"))
    img = sitk.Image(64, 64, 64, sitk.sitkFloat32) + 5.0
    view = sitk.GetArrayViewFromImage(img)
    assert view.base is None or not isinstance(view.base, sitk.Image)  # the view does not own the image
    np.testing.assert_array_equal(view, 5.0)  # valid while ``img`` is referenced


def test_no_view_of_a_temporary_image_in_the_code():
    found = []
    for folder in ("LuDosimetryLib", "LuDosimetry", "bench", "tools"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for line, text in _views_of_temporaries(ast.parse(path.read_text(encoding="utf-8"))):
                found.append(f"{path.relative_to(ROOT)}:{line}: {text[:100]}")
    assert not found, "bind the image to a name while its view is used:\n" + "\n".join(found)
