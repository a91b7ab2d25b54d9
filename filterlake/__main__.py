"""`python -m filterlake` runs the command line."""

import sys

from filterlake.cli import main

sys.exit(main())
