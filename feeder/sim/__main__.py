"""`python -m feeder.sim`: see feeder/sim/cli.py."""

import sys

from feeder.sim.cli import main

sys.exit(main())
