"""`python -m daemon` runs the `dropsight` command line."""

import sys

from dropsight.daemon.cli.main import main

sys.exit(main())
