"""`python -m consumers.strategy` from a checkout: the same program as `feeder example-strategy` (feeder/consumers/strategy.py)."""

import sys

from feeder.consumers.strategy import main

if __name__ == "__main__":
    sys.exit(main())
