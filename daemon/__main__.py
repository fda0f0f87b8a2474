"""`python -m daemon` runs the `dropsight` command line."""

import sys

from daemon.cli import main

sys.exit(main())
