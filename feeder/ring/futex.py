"""Linux futex(2) and membarrier(2), called through ctypes: the kernel half of readers that sleep.

Owns the system calls and nothing else; the protocol that uses them is wait.py's. Rules kept here:
- Futexes are shared (no FUTEX_PRIVATE_FLAG): the word lives in a MAP_SHARED file mapping and the
  kernel keys it by file and offset, so waiters and wakers in different processes meet.
- ctypes releases the GIL around every foreign call, so a thread asleep in FUTEX_WAIT costs the
  interpreter nothing.
- Every call is bounded by the caller's deadline and returns on EINTR, so that the interpreter runs
  signal handlers (Ctrl-C) between calls.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
from collections.abc import Callable

from feeder.errors import RingError

# syscall numbers: (futex, membarrier)
_SYSCALLS = {"x86_64": (202, 324), "aarch64": (98, 283)}

FUTEX_WAKE = 1
FUTEX_WAKE_OP = 5
FUTEX_WAIT_BITSET = 9
FUTEX_WAKE_BITSET = 10
MATCH_ANY = 0xFFFFFFFF
_WAKE_ALL = 0x7FFFFFFF
# FUTEX_OP(FUTEX_OP_ADD, 1, FUTEX_OP_CMP_EQ, 0): *uaddr2 += 1 atomically.
_OP_ADD_ONE = (1 << 28) | (1 << 12)

_MEMBARRIER_CMD_QUERY = 0
MEMBARRIER_CMD_GLOBAL_EXPEDITED = 1 << 1
MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED = 1 << 2


class Timespec(ctypes.Structure):
    _fields_ = (("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long))


def _unsupported(*args: int) -> int:
    raise RingError(UNAVAILABLE_REASON)


def _bind() -> tuple[Callable[..., int], tuple[int, int]]:
    numbers = _SYSCALLS.get(platform.machine())
    if numbers is None:
        return _unsupported, (0, 0)
    call = ctypes.CDLL(None, use_errno=True).syscall
    call.restype = ctypes.c_long
    call.argtypes = (ctypes.c_long,) * 7
    return call, numbers


_syscall, (_SYS_FUTEX, _SYS_MEMBARRIER) = _bind()


AVAILABLE = _syscall is not _unsupported
UNAVAILABLE_REASON = f"futex calls are implemented here for x86_64 and aarch64, not {platform.machine()}"


def _fail(what: str) -> RingError:
    code = ctypes.get_errno()
    return RingError(f"{what} failed: {os.strerror(code)} (errno {code})")


def wait(addr: int, expected: int, deadline: float | None, bitset: int, when: Timespec) -> None:
    """Sleep while the 32-bit word at `addr` holds `expected`, until woken or `deadline`.

    `deadline` is absolute, on time.monotonic's clock (CLOCK_MONOTONIC, FUTEX_WAIT_BITSET's default).

    Returns on a wake, at once if the word differs, on a signal and at the deadline: the caller
    re-checks what it waits for. `when` is the caller's own timespec (reused, never shared).
    """
    timeout = 0
    if deadline is not None:
        seconds, fraction = divmod(deadline, 1.0)
        when.tv_sec, when.tv_nsec = int(seconds), int(fraction * 1e9)
        timeout = ctypes.addressof(when)
    if _syscall(_SYS_FUTEX, addr, FUTEX_WAIT_BITSET, expected, timeout, 0, bitset) == -1:
        code = ctypes.get_errno()
        if code not in (errno.EAGAIN, errno.EINTR, errno.ETIMEDOUT):
            raise _fail("FUTEX_WAIT_BITSET")


def wake(addr: int, bitset: int = MATCH_ANY) -> int:
    """Wake every waiter on the word at `addr` whose bitset meets `bitset`; returns how many woke."""
    woken = _syscall(_SYS_FUTEX, addr, FUTEX_WAKE_BITSET, _WAKE_ALL, 0, 0, bitset)
    if woken == -1:
        raise _fail("FUTEX_WAKE_BITSET")
    return woken


def add_one_and_wake(addr: int) -> int:
    """Atomically add 1 to the word at `addr` and wake every waiter on it (FUTEX_WAKE_OP)."""
    woken = _syscall(_SYS_FUTEX, addr, FUTEX_WAKE_OP, _WAKE_ALL, _WAKE_ALL, addr, _OP_ADD_ONE)
    if woken == -1:
        raise _fail("FUTEX_WAKE_OP")
    return woken


def _membarrier(cmd: int) -> int:
    return _syscall(_SYS_MEMBARRIER, cmd, 0, 0, 0, 0, 0) if AVAILABLE else -1


def _membarrier_commands() -> int:
    answer = _membarrier(_MEMBARRIER_CMD_QUERY)
    return answer if answer > 0 else 0


_COMMANDS = _membarrier_commands()
_HAS_GLOBAL_EXPEDITED = bool(_COMMANDS & MEMBARRIER_CMD_GLOBAL_EXPEDITED)
_registered_pid = 0


def register_writer() -> bool:
    """Let readers' membarrier(GLOBAL_EXPEDITED) put a full fence into this process; False if unsupported."""
    global _registered_pid
    if _registered_pid == os.getpid():
        return True
    if not _COMMANDS & MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED:
        return False
    if _membarrier(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED) != 0:
        return False
    _registered_pid = os.getpid()
    return True


_fence_word = ctypes.c_uint32(0)


def fence_everywhere() -> None:
    """A full memory barrier here and in every running thread of registered writers.

    membarrier's entry and exit are full barriers for the caller. Where the kernel lacks it, a
    FUTEX_WAKE on a private word gives the caller's own barrier (futex_wake's waiters check is one),
    and the writers' side is left to readers' bounded sleeps (writer_fence 0).
    """
    if _HAS_GLOBAL_EXPEDITED and _membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED) == 0:
        return
    _syscall(_SYS_FUTEX, ctypes.addressof(_fence_word), FUTEX_WAKE | 128, 1, 0, 0, 0)
