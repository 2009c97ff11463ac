"""`python -m flux_azdo` runs the CLI."""

import sys

from flux_azdo.cli import main

sys.exit(main())
