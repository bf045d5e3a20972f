"""Kinetics: time-activity models, fits and time-integrated activity (TIA).

:mod:`.models` holds the kinetic-model interface every stage uses (dose rate, BED, planning).

- :mod:`.fitting` — :func:`~.fitting.fit_tac` (region TAC → :class:`~.fitting.FitResult`), :func:`~.fitting.fit_rows`
- :mod:`.curves` — parametric models (TIA-first parametrisation) and the trapezoid curve
- :mod:`.lsq` — bounded weighted least squares
- :mod:`.uncertainty` — profile likelihood, bootstrap, EANM correlated scale factors
- :mod:`.priors` — population log-normal priors on T_eff, MAP fits, single-scan later cycles
- :mod:`.stp` — Hänscheid, Madsen and population-prior single-time-point TIA
- :mod:`.reduced_protocol` — which scans can be dropped (cohort evaluation)
- :mod:`.voxel` — voxel-wise TIA maps, vectorised
- :mod:`.plots` — PNG of points and fitted curve per region

Methods, rules and a bias table: docs/kinetics.md.
"""
