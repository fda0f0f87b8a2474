"""`python -m tray`: the tray icon (the frozen windowed launcher runs this too)."""

import sys

from dropsight.tray.app import main

sys.exit(main())
