"""The supervisor: owns the rings, runs the workers, keeps them alive, routes requests to them.

It moves bytes and events; every decision is pure and lives in `feeder/core/` (tested as data):
`placement` (instruments to workers, workers to CPUs), `workers` (a slot's lifecycle table and the
facts decisions read), `watchdog` (who is hung), `restart` (when to restart, when to give up),
`routing` and `health` (which worker serves a request, what losing it means, the answer margin).
The shells here, one job each:

- `lifecycle`: `Supervisor`, start and stop in order, signals, `duration`, exit codes.
- `rings`: the ring registry (created before any worker, marked GAP when a writer dies, removed at
  the end).
- `slots`: the process table, one `Slot` per worker position, and what heartbeats say.
- `pool`: spawning (warm spare, CPU pinning), the workers' pipes, exits and restarts.
- `watchdog`: the loop that kills hung workers.
- `requests`: FeederHandle requests through the workers (at most once, failover, OutcomeUnknown).
- `status`: the `status()` entries for `feeder status`, the display, metrics and FeederHandle.
"""

from feeder.runtime.supervisor.lifecycle import Supervisor

__all__ = ["Supervisor"]
