"""Frames on the supervisor's control socket, the handshake that authenticates a client, and errors
carried across it. Pure: bytes in, messages out.

A frame is a 4-byte little-endian length followed by that many bytes of JSON. The supervisor opens with
`{"nonce": hex}`; the client answers `{"proof": hex(HMAC-SHA256(key, nonce))}` where key is the content of
the instance's 0600 `auth.key` file; only a process that can read that file can answer. Then requests
`{"id", "method", "params", "timeout"}` and responses `{"id", "result"}` or `{"id", "error": {...}}`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import struct
from typing import Any

import orjson

from feeder import errors

MAX_FRAME = 16 * 1024 * 1024
_LEN = struct.Struct("<I")


class WireError(errors.RemoteProtocolError):
    """The peer on the control socket sent something that is not a valid frame."""


def encode(message: dict[str, Any]) -> bytes:
    body = orjson.dumps(message)
    if len(body) > MAX_FRAME:
        raise errors.UsageError(f"message of {len(body)} bytes exceeds the control socket limit {MAX_FRAME}")
    return _LEN.pack(len(body)) + body


class FrameDecoder:
    """Accumulates bytes; yields whole decoded frames."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        self._buf += data
        out = []
        while len(self._buf) >= _LEN.size:
            (size,) = _LEN.unpack_from(self._buf)
            if size > MAX_FRAME:
                raise WireError(f"frame of {size} bytes exceeds the limit {MAX_FRAME}")
            if len(self._buf) < _LEN.size + size:
                break
            body = bytes(self._buf[_LEN.size : _LEN.size + size])
            del self._buf[: _LEN.size + size]
            out.append(decode_body(body))
        return out


def decode_body(body: bytes) -> dict[str, Any]:
    try:
        message = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise WireError(f"frame is not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise WireError(f"frame must be a JSON object, got {type(message).__name__}")
    return message


async def read_frame(reader: asyncio.StreamReader) -> dict[str, Any]:
    """Read one frame from an asyncio stream."""
    (size,) = _LEN.unpack(await reader.readexactly(_LEN.size))
    if size > MAX_FRAME:
        raise WireError(f"frame of {size} bytes exceeds the limit {MAX_FRAME}")
    return decode_body(await reader.readexactly(size))


def new_nonce() -> str:
    return secrets.token_hex(16)


def prove(key: str, nonce: str) -> str:
    return hmac.new(key.encode(), nonce.encode(), hashlib.sha256).hexdigest()


def verify(key: str, nonce: str, proof: Any) -> bool:
    return isinstance(proof, str) and hmac.compare_digest(prove(key, nonce), proof)


# --- errors across the socket --------------------------------------------------------------------


def error_to_wire(exc: BaseException) -> dict[str, Any]:
    """Describe an exception so the client can raise the same type with the same fields."""
    out: dict[str, Any] = {"type": type(exc).__name__, "message": str(exc)}
    for field in ("code", "data", "method", "label", "reason", "sent", "timeout"):
        if hasattr(exc, field):
            out[field] = getattr(exc, field)
    if isinstance(exc, errors.ExchangeError):
        out["message"] = exc.message
    return out


def error_from_wire(e: dict[str, Any]) -> errors.FeederError:
    kind, message = str(e.get("type")), e.get("message", "")
    if kind == "ExchangeError":
        return errors.ExchangeError(e.get("code", 0), message, e.get("data"), e.get("method"))
    if kind == "OutcomeUnknown":
        return errors.OutcomeUnknown(e.get("method", "?"), e.get("label"), e.get("reason", ""))
    if kind == "RequestTimeout":
        return errors.RequestTimeout(e.get("method", "?"), float(e.get("timeout", 0.0)))
    if kind == "ConnectionLost":
        return errors.ConnectionLost(e.get("method", "?"), bool(e.get("sent")), e.get("reason", ""))
    simple = {
        "NoHealthyWorker": errors.NoHealthyWorker,
        "NotAuthenticated": errors.NotAuthenticated,
        "FeederNotRunning": errors.FeederNotRunning,
        "RateLimited": errors.RateLimited,
    }
    cls = simple.get(kind)
    if cls is not None:
        return cls(message)
    if kind in ("UsageError", "ConfigError", "WireError"):
        return errors.UsageError(message)
    return errors.FeederError(f"{kind}: {message}")
