"""The soak test's parts: consumers that log what they read, the simulator's truth, faults, analysis.

`scripts/soak.py` is the program. Here: `observations` (what a consumer logs, and the book hash),
`consumer` (the consumer process), `truth` (the simulator's truth log, as arrays), `faults` (the
fault menu and its injection), `monitor` (RSS/CPU and status sampling), `analysis` (pure: observations
and truth in, findings out), `run` (starting and stopping everything), `report` (JSON, summary, PNG).
"""
