"""Getting a ring's missing seqs back from the JetStream stream the mirror fills.

The stream numbers messages of every ring together, and a ring's seqs are inside the messages' headers,
so the message that holds a given seq is found by a binary search over stream sequence numbers (each
probe a direct get of the next message of that ring's subject: clock-free, about 20 round trips for a
million messages), then the messages after it are read in order until the span is covered. Messages of
older incarnations of the ring sort before, newer ones after.
"""

from __future__ import annotations

import logging
from typing import Any

from feeder.bridge.track import Span
from feeder.bridge.wire import BadBatch, BatchHeader, RingIdentity, decode_header

log = logging.getLogger("feeder.bridge.repair")


class StreamRing:
    """One ring's messages in the stream."""

    def __init__(self, nc: Any, stream: str, subject: str):
        self.jsm, self.stream, self.subject = nc.jsm(), stream, subject

    async def _next(self, seq: int) -> tuple[int, BatchHeader | None, bytes] | None:
        """The first message of the subject at stream seq >= `seq`: (its seq, header or None if bad, data)."""
        from nats.js.errors import NotFoundError

        try:
            msg = await self.jsm.get_msg(self.stream, seq=seq, subject=self.subject, next=True, direct=True)
        except NotFoundError:
            return None
        try:
            header = decode_header(msg.headers)
        except BadBatch:
            header = None
        return int(msg.seq), header, msg.data or b""

    async def bounds(self) -> tuple[int, int]:
        info = await self.jsm.stream_info(self.stream)
        return int(info.state.first_seq), int(info.state.last_seq)

    async def find(self, identity: RingIdentity, seq: int) -> int | None:
        """The stream seq from which the ring's messages reach `seq` of this incarnation; None: none do."""
        lo, last = await self.bounds()
        hi = last + 1
        target = (identity.created_ns, seq)
        while lo < hi:
            mid = (lo + hi) // 2
            found = await self._next(mid)
            if found is None:
                hi = mid
                continue
            at, header, _ = found
            if header is not None and (header.identity.created_ns, header.end) > target:
                hi = mid
            else:
                lo = at + 1
        return lo if lo <= last else None

    async def batches(
        self, identity: RingIdentity, span: Span, limit: int
    ) -> list[tuple[BatchHeader, bytes]]:
        """The stored batches of this incarnation that hold seqs of `span`, in order (at most `limit`)."""
        at = await self.find(identity, span[0])
        out: list[tuple[BatchHeader, bytes]] = []
        while at is not None and len(out) < limit:
            found = await self._next(at)
            if found is None:
                break
            at, header, data = found
            at += 1
            if header is None:
                continue
            if header.identity.created_ns > identity.created_ns or header.first >= span[1]:
                break
            if header.identity == identity:
                out.append((header, data))
        return out
