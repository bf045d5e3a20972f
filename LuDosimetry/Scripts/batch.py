"""LuDosimetry batch run inside Slicer (no window): see LuDosimetrySlicerLib.batch.

    Slicer --no-main-window --python-script LuDosimetry/Scripts/batch.py -- \\
        --patients /data/P001 /data/P002 --out /results

The LuDosimetry extension must be installed (or its module folders added with
--additional-module-paths); the exit status is 0 when every patient succeeded.
"""

import sys

import slicer

status = 1
try:
    from LuDosimetrySlicerLib.batch import main

    status = main(sys.argv[1:])
finally:
    slicer.util.exit(status)
