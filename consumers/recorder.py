"""`python -m consumers.recorder` from a checkout: the same program as `feeder record` (feeder/consumers/recorder.py)."""

import sys

from feeder.consumers.recorder import main

if __name__ == "__main__":
    sys.exit(main())
