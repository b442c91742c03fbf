"""The run directory of a feeder instance: lock, control socket, auth key, shared limits.

`$FEEDER_RUN_DIR/<instance>` if set, else `$XDG_RUNTIME_DIR/feeder/<instance>`, else
`/tmp/feeder-<uid>/<instance>`; mode 0700. The supervisor holds an flock on `supervisor.lock` for its
whole life: the kernel releases it however the supervisor dies, so "is an instance running?" never
depends on a pid file that a SIGKILL left behind. The lock file itself stays after a clean stop:
removing it would let a supervisor starting at that moment lock the old file while the next one
creates and locks a new one, two supervisors for one instance.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
from pathlib import Path

from feeder.errors import UsageError
from feeder.ring.names import instance_name

ENV_RUN_DIR = "FEEDER_RUN_DIR"
LOCK_FILE = "supervisor.lock"
SOCKET_FILE = "control.sock"
KEY_FILE = "auth.key"
PID_FILE = "supervisor.pid"


class InstanceRunning(UsageError):
    """Another supervisor already runs this instance."""


def base_dir() -> Path:
    if os.environ.get(ENV_RUN_DIR):
        return Path(os.environ[ENV_RUN_DIR])
    if os.environ.get("XDG_RUNTIME_DIR"):
        return Path(os.environ["XDG_RUNTIME_DIR"]) / "feeder"
    return Path(f"/tmp/feeder-{os.getuid()}")


def run_dir(instance: str | None = None) -> Path:
    return base_dir() / instance_name(instance)


def _private_dir(path: Path) -> Path:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


class RunDir:
    """Owned by the supervisor while it runs; `acquire` cleans what a killed predecessor left."""

    def __init__(self, instance: str | None = None):
        self.instance = instance_name(instance)
        self.path = run_dir(self.instance)
        self._lock_fd: int | None = None

    @property
    def socket_path(self) -> Path:
        return self.path / SOCKET_FILE

    @property
    def key_path(self) -> Path:
        return self.path / KEY_FILE

    def acquire(self) -> None:
        """Take the instance lock or raise InstanceRunning; then clear stale files and write a new key."""
        _private_dir(self.path)
        fd = os.open(self.path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            pid = read_pid(self.instance)
            raise InstanceRunning(
                f"feeder instance {self.instance!r} is already running (supervisor pid {pid}); "
                f"stop it, or choose another instance with --instance"
            ) from None
        self._lock_fd = fd
        for name in (SOCKET_FILE, KEY_FILE, PID_FILE):
            (self.path / name).unlink(missing_ok=True)
        write_private(self.key_path, secrets.token_hex(32))
        write_private(self.path / PID_FILE, str(os.getpid()))

    def release(self) -> None:
        for name in (SOCKET_FILE, KEY_FILE, PID_FILE):
            (self.path / name).unlink(missing_ok=True)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


def write_private(path: Path, text: str) -> None:
    """Write a file only this user can read (created 0600, never widened)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def read_pid(instance: str | None = None) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int((run_dir(instance) / PID_FILE).read_text())
    return None


def is_running(instance: str | None = None) -> bool:
    """True while a supervisor holds the instance lock."""
    path = run_dir(instance) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)
