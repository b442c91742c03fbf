"""Getting a ring's missing seqs back from the JetStream stream the mirror fills.

The stream numbers messages of every ring together, and a ring's seqs are inside the messages' headers,
so the message that holds a given seq is found by a binary search over stream sequence numbers (each
probe a direct get of the next message of that ring's subject: clock-free, about 20 round trips for a
million messages), then the messages after it are read in order, through a pull consumer, until the span is covered. Messages of
older incarnations of the ring sort before, newer ones after.
"""

from __future__ import annotations

import contextlib
from typing import Any

from feeder.bridge.track import Span
from feeder.bridge.wire import BadBatch, BatchHeader, RingIdentity, decode_header

FETCH = 128  # messages per pull: well within a client's pending limits
FETCH_TIMEOUT_S = 1.0  # a pull that brings nothing for this long: the stream has no more
CONSUMER_IDLE_S = 10.0  # the server removes a consumer left behind by a replica that died meanwhile


class StreamRing:
    """One ring's messages in the stream."""

    def __init__(self, nc: Any, stream: str, subject: str):
        import nats.errors

        self.jsm, self.js, self.stream, self.subject = nc.jsm(), nc.jetstream(), stream, subject
        self._timeout = (nats.errors.TimeoutError, TimeoutError)

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
        """The stored batches of this incarnation that hold seqs of `span`, in order (at most `limit`),
        read through a short-lived pull consumer that starts where the search found the first one."""
        start = await self.find(identity, span[0])
        if start is None:
            return []
        out: list[tuple[BatchHeader, bytes]] = []
        sub = await self.js.pull_subscribe(self.subject, stream=self.stream, config=_consumer_config(start))
        try:
            while len(out) < limit:
                try:
                    messages = await sub.fetch(FETCH, timeout=FETCH_TIMEOUT_S)
                except self._timeout:
                    return out  # nothing more stored
                for msg in messages:
                    try:
                        header = decode_header(msg.headers)
                    except BadBatch:
                        continue
                    if header.identity.created_ns > identity.created_ns or header.first >= span[1]:
                        return out
                    if header.identity == identity:
                        out.append((header, msg.data or b""))
            return out
        finally:
            await sub.unsubscribe()
            with contextlib.suppress(Exception):
                await self.jsm.delete_consumer(self.stream, sub._consumer)


def _consumer_config(start: int) -> Any:
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

    return ConsumerConfig(
        deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
        opt_start_seq=start,
        ack_policy=AckPolicy.NONE,
        inactive_threshold=CONSUMER_IDLE_S,
        mem_storage=True,
    )
