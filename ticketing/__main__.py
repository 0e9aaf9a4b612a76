"""`python -m ticketing` is the `ticketing` command."""

import sys

from ticketing.cli import main

sys.exit(main())
