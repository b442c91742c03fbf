"""Fixtures for the consumer programs' tests: a running feeder (with the simulator), consumer processes
whose output is collected line by line, and book records built from data.

Everything started here is stopped and reaped afterwards, whatever the test did; a feeder that had to
be killed leaves stale segments, which are removed (its clean shutdown removes them itself).
The programs run as a user runs them: `python -m feeder <subcommand>` (`feeder monitor`, `feeder record`...).
(Helpers live here as fixtures: a module under tests/consumers/ could not be imported by name, since
`consumers` is also a package of the checkout.)
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from helpers import wait_until
from runtime.feederkit import FeederProcess, cleanup_run_dir

from feeder import RingNotFound, RingReader, clean_stale, record_schema
from feeder.sim import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, SimServer

ROOT = Path(__file__).resolve().parents[2]
BOOK = record_schema("book").dtype
CREDENTIALS = {"DERIBIT_CLIENT_ID": DEMO_CLIENT_ID, "DERIBIT_CLIENT_SECRET": DEMO_CLIENT_SECRET}
STARTUP = 90.0  # the machine is shared and loaded: a feeder may take a while to connect


class Consumer:
    """A consumer program (`python -m feeder <subcommand> ...`) whose stdout is collected as lines."""

    def __init__(self, program: str, *args: str, env: dict | None = None):
        self.argv = [sys.executable, "-m", "feeder", program, *args]
        self.proc = subprocess.Popen(
            self.argv, cwd=ROOT, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, start_new_session=True,
        )  # fmt: skip
        self.lines: list[str] = []
        self.stderr = ""
        self._threads = [
            threading.Thread(target=self._collect, daemon=True),
            threading.Thread(target=self._collect_err, daemon=True),
        ]
        for t in self._threads:
            t.start()

    def _collect(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def _collect_err(self) -> None:
        assert self.proc.stderr is not None
        self.stderr = self.proc.stderr.read()

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def matching(self, pattern: str) -> list[str]:
        return [line for line in list(self.lines) if re.search(pattern, line)]

    def wait_for(self, pattern: str, timeout: float = STARTUP, count: int = 1) -> list[str]:
        """The lines matching `pattern` once there are `count` of them; fails if the program exits first."""

        def found() -> list[str] | None:
            lines = self.matching(pattern)
            if len(lines) >= count:
                return lines
            if self.proc.poll() is not None:
                self.finish()
                raise AssertionError(
                    f"{self.argv[3]} exited ({self.proc.returncode}) before {pattern!r}:\n{self.report()}"
                )
            return None

        return wait_until(found, timeout, f"{count} lines matching {pattern!r} from {self.argv[3]}")

    def finish(self, timeout: float = STARTUP) -> int:
        """Wait for the program to exit and for its output to be collected; returns the exit code."""
        code = self.proc.wait(timeout)
        for t in self._threads:
            t.join(10)
        return code

    def stop(self, sig: int = signal.SIGTERM, timeout: float = STARTUP) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.finish(timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.finish(30)

    def report(self) -> str:
        return f"stdout:\n{self.text[-4000:]}\nstderr:\n{self.stderr[-4000:]}"


@pytest.fixture
def consumer():
    """Start consumer programs: `consumer("monitor", "book.BTC", ...)`; all killed at teardown."""
    started: list[Consumer] = []

    def start(program: str, *args: str, env: dict | None = None) -> Consumer:
        c = Consumer(program, *args, env=env)
        started.append(c)
        return c

    yield start
    for c in started:
        c.kill()


def run_consumer(
    program: str, *args: str, timeout: float = STARTUP, env: dict | None = None
) -> subprocess.CompletedProcess:
    """Run a consumer program (`feeder <program>`) to completion."""
    return subprocess.run(
        [sys.executable, "-m", "feeder", program, *args], cwd=ROOT, env={**os.environ, **(env or {})},
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


@pytest.fixture
def run():
    return run_consumer


def wait_for_records(ring: str, n: int = 1, timeout: float = STARTUP) -> None:
    """Wait until `ring` exists and has at least `n` records."""

    def enough() -> bool:
        try:
            with RingReader(ring) as r:
                return r.write_seq >= n
        except RingNotFound:
            return False

    wait_until(enough, timeout, f"{n} records in ring {ring}")


@pytest.fixture
def records_in():
    """`records_in(ring, n)`: wait until the ring exists and holds at least n records."""
    return wait_for_records


class Feeders:
    """Feeder processes started by a test, stopped cleanly (or killed) at teardown."""

    def __init__(self, instance: str, tmp_path: Path):
        self.instance, self.tmp_path = instance, tmp_path
        self.started: list[FeederProcess] = []

    def start(self, *args: str, workers: int, env: dict | None = None) -> FeederProcess:
        proc = FeederProcess(*args, env=env, log=self.tmp_path / f"feeder{len(self.started)}.log")
        self.started.append(proc)
        return proc.start(workers=workers, timeout=STARTUP)

    def embedded(self, instruments: str = "BTC-PERPETUAL", rate: float = 300) -> FeederProcess:
        """`python -m feeder --sim`: one worker, book rings only."""
        proc = self.start(
            "--sim", "--instruments", instruments, "--streams", "book", "--workers", "1", "--sim-rate", str(rate),
            workers=1,
        )  # fmt: skip
        wait_for_records(f"book.{instruments.split(',')[0].split('-')[0]}", 2)
        return proc

    def close(self) -> None:
        for proc in self.started:
            if proc.proc is not None and proc.proc.poll() is None:
                try:
                    proc.stop(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
            elif proc.proc is not None:
                proc.kill()  # reaps what is left of its process group
        clean_stale(self.instance)
        cleanup_run_dir(self.instance)


@pytest.fixture
def feeders(instance, tmp_path):
    f = Feeders(instance, tmp_path)
    yield f
    f.close()


@pytest.fixture
def sim():
    """The simulator in its own process (faults, control), two perpetuals at a modest rate."""
    with SimServer(instruments=["BTC-PERPETUAL", "ETH-PERPETUAL"], rate=200, seed=11) as server:
        yield server


@pytest.fixture
def sim_feeder(sim, feeders):
    """A feeder connected to `sim` with the demo credentials (raw channels, orders): two workers, book rings."""
    feeders.start(
        "--url", sim.ws_url, "--instruments", "BTC-PERPETUAL,ETH-PERPETUAL", "--streams", "book",
        "--workers", "2", workers=2, env=CREDENTIALS,
    )  # fmt: skip
    wait_for_records("book.BTC", 2)
    wait_for_records("book.ETH", 2)
    return sim


@pytest.fixture
def book_records() -> Callable[..., np.ndarray]:
    """Book records from data: `book_records((bid, ask, flags), ...)`, seq and change_id counting up."""

    def make(*rows: tuple, first_seq: int = 0, ts_recv: int | None = None) -> np.ndarray:
        out = np.zeros(len(rows), BOOK)
        for i, row in enumerate(rows):
            bid, ask, flags = row
            rec = out[i]
            rec["seq"] = first_seq + i
            rec["flags"] = flags
            rec["change_id"] = 1000 + first_seq + i
            rec["ts_exchange"] = 1_700_000_000_000_000_000
            rec["ts_recv"] = rec["ts_exchange"] + 1_000_000 if ts_recv is None else ts_recv
            rec["ts_publish"] = rec["ts_recv"] + 10_000
            rec["bid_px"][:] = np.nan
            rec["ask_px"][:] = np.nan
            if bid is not None:
                rec["bid_count"], rec["bid_px"][0], rec["bid_sz"][0] = 1, bid, 10.0
            if ask is not None:
                rec["ask_count"], rec["ask_px"][0], rec["ask_sz"][0] = 1, ask, 20.0
        return out

    return make
