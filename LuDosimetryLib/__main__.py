"""``python -m LuDosimetryLib`` runs the ``ludosimetry`` command line."""

import sys

from .cli import main

sys.exit(main())
