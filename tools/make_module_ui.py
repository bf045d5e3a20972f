"""Write the LuDosimetry modules' Qt Designer .ui files from one compact description each.

The .ui files are plain Qt Designer XML (open and edit them in Designer); this script only keeps
the five files consistent (labels with units, tooltips, ``SlicerParameterName`` bindings).
Run: ``python tools/make_module_ui.py`` from the repository root.
"""

from __future__ import annotations

import json
from pathlib import Path
from xml.sax.saxutils import escape

ROOT = Path(__file__).resolve().parents[1]
SPECS = json.loads((Path(__file__).with_name("module_ui_specs.json")).read_text(encoding="utf-8"))

CUSTOM = {
    "ctkCollapsibleButton": ("QWidget", "ctkCollapsibleButton.h", 1),
    "qMRMLNodeComboBox": ("QWidget", "qMRMLNodeComboBox.h", 0),
    "qMRMLWidget": ("QWidget", "qMRMLWidget.h", 1),
    "ctkPathLineEdit": ("QWidget", "ctkPathLineEdit.h", 0),
    "ctkDoubleSpinBox": ("QWidget", "ctkDoubleSpinBox.h", 0),
}


def prop(name: str, value, *, stdset: bool = True) -> str:
    attr = "" if stdset else ' stdset="0"'
    if isinstance(value, bool):
        body = f"<bool>{'true' if value else 'false'}</bool>"
    elif isinstance(value, int):
        body = f"<number>{value}</number>"
    elif isinstance(value, float):
        body = f"<double>{value!r}</double>"
    elif isinstance(value, list):
        body = "<stringlist>" + "".join(f"<string>{escape(v)}</string>" for v in value) + "</stringlist>"
    elif isinstance(value, dict) and "enum" in value:
        body = f"<enum>{value['enum']}</enum>"
    elif isinstance(value, dict) and "set" in value:
        body = f"<set>{value['set']}</set>"
    else:
        body = f"<string>{escape(str(value))}</string>"
    return f'<property name="{name}"{attr}>{body}</property>'


def widget(w: dict, used: set) -> str:
    cls = w["class"]
    used.add(cls)
    props = [prop("toolTip", w["tooltip"])] if w.get("tooltip") else []
    if cls == "qMRMLNodeComboBox":
        props += [prop("nodeTypes", w["nodeTypes"]), prop("showChildNodeTypes", False),
                  prop("addEnabled", bool(w.get("add", False))), prop("removeEnabled", bool(w.get("add", False))),
                  prop("renameEnabled", bool(w.get("add", False))), prop("noneEnabled", bool(w.get("none", True))),
                  prop("noneDisplay", w.get("noneDisplay", "(none)"))]
    for k, v in w.get("props", {}).items():
        props.append(prop(k, v))
    if w.get("param"):
        props.append(prop("SlicerParameterName", w["param"], stdset=False))
    items = "".join(f'<item><property name="text"><string>{escape(t)}</string></property></item>'
                    for t in w.get("items", []))
    return f'<widget class="{cls}" name="{w["name"]}">' + "".join(props) + items + "</widget>"


def build(module: str, spec: dict) -> str:
    used = {"qMRMLWidget"}
    body, after = [], []
    connections = []
    for section in spec["sections"]:
        used.add("ctkCollapsibleButton")
        rows = []
        for r, row in enumerate(section["rows"]):
            label_name = row["widget"]["name"] + "Label"
            rows.append(f'<item row="{r}" column="0"><widget class="QLabel" name="{label_name}">'
                        f'{prop("text", row["label"])}</widget></item>')
            rows.append(f'<item row="{r}" column="1">{widget(row["widget"], used)}</item>')
            if row["widget"]["class"] == "qMRMLNodeComboBox":
                connections.append(row["widget"]["name"])
        collapsed = prop("collapsed", True) if section.get("collapsed") else ""
        (after if section.get("after_apply") else body).append(
            f'<item><widget class="ctkCollapsibleButton" name="{section["name"]}">'
            f'{prop("text", section["title"])}{collapsed}'
            f'<layout class="QFormLayout" name="{section["name"]}Layout">{"".join(rows)}</layout>'
            "</widget></item>")
    body.append(f'<item><widget class="QPushButton" name="applyButton">{prop("enabled", False)}'
                f'{prop("toolTip", spec["apply_tooltip"])}{prop("text", spec["apply_text"])}</widget></item>')
    body += after  # sections with their own action buttons ("after_apply"), before the shared result line
    body.append(f'<item><widget class="QLabel" name="resultLabel">{prop("text", "")}'
                f'{prop("wordWrap", True)}{prop("textInteractionFlags", {"enum": "Qt::TextSelectableByMouse"})}'
                "</widget></item>")
    body.append('<item><spacer name="verticalSpacer"><property name="orientation"><enum>Qt::Vertical</enum>'
                '</property><property name="sizeHint" stdset="0"><size><width>20</width><height>40</height></size>'
                "</property></spacer></item>")
    customs = "".join(f"<customwidget><class>{c}</class><extends>{CUSTOM[c][0]}</extends><header>{CUSTOM[c][1]}"
                      f"</header>{'<container>1</container>' if CUSTOM[c][2] else ''}</customwidget>"
                      for c in sorted(used) if c in CUSTOM)
    conns = "".join(f"<connection><sender>{module}</sender><signal>mrmlSceneChanged(vtkMRMLScene*)</signal>"
                    f"<receiver>{n}</receiver><slot>setMRMLScene(vtkMRMLScene*)</slot></connection>"
                    for n in connections)
    text = (f'<?xml version="1.0" encoding="UTF-8"?>\n<ui version="4.0"><class>{module}</class>'
           f'<widget class="qMRMLWidget" name="{module}"><property name="geometry"><rect><x>0</x><y>0</y>'
           f"<width>420</width><height>560</height></rect></property>"
           f'<layout class="QVBoxLayout" name="verticalLayout">{"".join(body)}</layout></widget>'
           f"<customwidgets>{customs}</customwidgets><resources/><connections>{conns}</connections></ui>\n")
    from xml.dom import minidom

    return minidom.parseString(text).toprettyxml(indent=" ", encoding="UTF-8").decode("utf-8")


def main() -> None:
    for module, spec in SPECS.items():
        path = ROOT / "LuDosimetry" / module / "Resources" / "UI" / f"{module}.ui"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(build(module, spec), encoding="utf-8")
        print(path.relative_to(ROOT))


if __name__ == "__main__":
    main()
