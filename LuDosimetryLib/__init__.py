"""LuDosimetryLib: patient-specific absorbed-dose calculation for 177Lu radioligand therapy.

The library under the LuDosimetry 3D Slicer extension. It never imports slicer, qt, ctk or
MRML: it takes and returns SimpleITK images (geometry in LPS), numpy arrays and small frozen
dataclasses. Conventions (units, time, decay state, data model, results schema) are in
``docs/conventions.md`` and in the modules that hold them: :mod:`~LuDosimetryLib.units`,
:mod:`~LuDosimetryLib.timing`, :mod:`~LuDosimetryLib.model`, :mod:`~LuDosimetryLib.labels`,
:mod:`~LuDosimetryLib.results`, :mod:`~LuDosimetryLib.kinetics.models`.
"""

__version__ = "0.1.0"
