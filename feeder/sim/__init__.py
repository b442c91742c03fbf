"""The local exchange: a Deribit API v2 simulator with ground truth and fault injection.

`SimServer` runs it in a child process for tests, demos and the embedded `python -m feeder --sim`;
`python -m feeder.sim` runs it standalone. `book_hash` is the ground-truth hash of a top-10 book
(comparable with a ring book record). `DEMO_CLIENT_ID` / `DEMO_CLIENT_SECRET` are the credentials a
simulator accepts when none are configured.
"""

from feeder.sim.config import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, SimConfig
from feeder.sim.testing import Sent, SimServer
from feeder.sim.truth import book_hash, read_truth_log

__all__ = [
    "DEMO_CLIENT_ID",
    "DEMO_CLIENT_SECRET",
    "Sent",
    "SimConfig",
    "SimServer",
    "book_hash",
    "read_truth_log",
]
