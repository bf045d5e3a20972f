"""SPECT calibration: the calibration store (camera sensitivity, dead time, recovery curves)
and the methods that fill it from phantom scans (docs/calibration.md).

Modules: ``store`` (CalibrationStore keyed on Camera.key()), ``sensitivity`` (cylinder scan),
``dead_time`` (paralysable model, Lambert-W inversion, decay-series fit), ``recovery`` (sphere
phantom, fitted RC(V) curves, the TAC recovery hook), ``geometry`` (VOIs), ``scans`` (reading a
scan folder) and ``twin`` (the projection-space SPECT twin).
"""
