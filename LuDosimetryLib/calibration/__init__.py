"""SPECT calibration: the calibration store (camera sensitivity, dead time, recovery curves)
and the methods that fill it from phantom scans."""
