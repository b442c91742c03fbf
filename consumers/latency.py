"""`python -m consumers.latency` from a checkout: the same program as `feeder latency` (feeder/consumers/latency.py)."""

import sys

from feeder.consumers.latency import main

if __name__ == "__main__":
    sys.exit(main())
