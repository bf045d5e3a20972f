"""Kinetics: time-activity models, fits and time-integrated activity (TIA).

:mod:`.models` holds the kinetic-model interface every stage uses (dose rate, BED, planning).
"""
