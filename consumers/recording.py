"""`python -m consumers.recording` from a checkout: the same program as `feeder recording` (feeder/consumers/recording.py)."""

import sys

from feeder.consumers.recording import main

if __name__ == "__main__":
    sys.exit(main())
