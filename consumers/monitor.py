"""`python -m consumers.monitor` from a checkout: the same program as `feeder monitor` (feeder/consumers/monitor.py)."""

import sys

from feeder.consumers.monitor import main

if __name__ == "__main__":
    sys.exit(main())
