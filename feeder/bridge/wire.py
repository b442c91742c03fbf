"""What a mirror puts on NATS, and checking what a replica takes off it. Pure: no I/O.

Subjects: ring R of source S is `feeder.S.rings.R` (R keeps its dots: `feeder.prod.rings.book.BTC`), order
requests go to `feeder.S.orders`, and the JetStream stream `FEEDER_S` keeps `feeder.S.rings.>` (never the
orders subject: a stream would answer requests with its own acks).

A message is one batch of one ring: the payload is the raw records, back to back, exactly as they lie in
the source ring (little-endian, schemas/); three headers say where they come from:

  Feeder-Ring:  <record type> <capacity> <fingerprint, 16 hex digits> <created_ns>   the ring incarnation
  Feeder-Epoch: <epoch>                                                            the source writer epoch
  Feeder-Seq:   <first> <end>                                                      the seqs it accounts for

Every seq in [first, end) not among the records was lost by the mirror (lapped, torn, or a publish that
failed): none of them will ever come. The next message of the ring starts where this one ended, so a
replica that sees `first` beyond the seq it expects has lost messages on the way. A message without
records is a heartbeat: the mirror's position on an idle ring.
"""

from __future__ import annotations

import fnmatch
import functools
import re
from dataclasses import dataclass

import numpy as np

from feeder.errors import RemoteProtocolError, UsageError
from feeder.ring.header import check_capacity
from feeder.ring.names import check_ring_name
from feeder.ring.schema import RECORD_TYPES, record_schema

RING_HEADER = "Feeder-Ring"
EPOCH_HEADER = "Feeder-Epoch"
SEQ_HEADER = "Feeder-Seq"
_SOURCE_RE = re.compile(r"^[A-Za-z0-9_-]{1,31}$")
_GLOB = re.compile(r"[*?\[]")


class BadBatch(RemoteProtocolError):
    """A message on a ring subject that is not a valid batch; names what was wrong."""


class ForeignLayout(BadBatch):
    """The source's records have another layout (fingerprint) than this host's schemas."""


def check_source(name: str) -> str:
    """A source name (a feeder instance name by default) as it appears in subjects and the stream name."""
    if not isinstance(name, str) or not _SOURCE_RE.match(name):
        raise UsageError(f"source name {name!r} is not allowed: use 1-31 letters, digits, '_' or '-'")
    return name


@dataclass(frozen=True)
class Subjects:
    """The NATS names of one source."""

    source: str

    def __post_init__(self) -> None:
        check_source(self.source)

    @property
    def prefix(self) -> str:
        return f"feeder.{self.source}.rings."

    @property
    def all_rings(self) -> str:
        return f"{self.prefix}>"

    @property
    def orders(self) -> str:
        return f"feeder.{self.source}.orders"

    @property
    def stream(self) -> str:
        return f"FEEDER_{self.source}"

    def ring(self, name: str) -> str:
        return self.prefix + name

    def ring_of(self, subject: str) -> str:
        """The ring name of a ring subject; BadBatch for anything else."""
        return _ring_of(self.prefix, subject)


@functools.lru_cache(maxsize=65536)
def _ring_of(prefix: str, subject: str) -> str:
    if not subject.startswith(prefix):
        raise BadBatch(f"subject {subject!r} is not under {prefix}>")
    try:
        return check_ring_name(subject[len(prefix) :])
    except UsageError as exc:
        raise BadBatch(f"subject {subject!r}: {exc}") from None


class RingPatterns:
    """Which rings to carry: comma-separated globs over ring names (`book.*,trades.BTC`)."""

    def __init__(self, text: str = "*"):
        self.globs = tuple(p.strip() for p in text.split(",") if p.strip())
        if not self.globs:
            raise UsageError(f"--rings {text!r} names no ring: give globs such as 'book.*,trades.*'")
        for glob in self.globs:
            if any(c in glob for c in " >"):
                raise UsageError(
                    f"--rings: {glob!r} is not a ring-name glob (letters, digits, '._-', '*?[]')"
                )

    def __call__(self, ring: str) -> bool:
        return any(fnmatch.fnmatchcase(ring, glob) for glob in self.globs)

    def filters(self, subjects: Subjects) -> list[str]:
        """NATS subject filters that receive at least every matching ring, none covering another."""
        wanted = set()
        for glob in self.globs:
            literal = []
            for token in glob.split("."):
                if _GLOB.search(token):
                    literal.append(">")
                    break
                literal.append(token)
            wanted.add(subjects.prefix + ".".join(literal))
        wide = [s[:-1] for s in wanted if s.endswith(">")]
        return sorted(s for s in wanted if not any(s != w + ">" and s.startswith(w) for w in wide))


@dataclass(frozen=True)
class RingIdentity:
    """One incarnation of a source ring: what a replica needs to make its local ring of the same kind."""

    record_type: str
    capacity: int
    fingerprint: int
    created_ns: int

    def header(self) -> str:
        return f"{self.record_type} {self.capacity} {self.fingerprint:016x} {self.created_ns}"

    def same_layout(self, other: RingIdentity) -> bool:
        return (self.record_type, self.capacity, self.fingerprint) == (
            other.record_type,
            other.capacity,
            other.fingerprint,
        )


@dataclass(frozen=True, slots=True)
class BatchHeader:
    identity: RingIdentity
    epoch: int
    first: int
    end: int


def encode_headers(ring: str, epoch: int, first: int, end: int) -> dict[str, str]:
    """The headers of a batch; `ring` is the ring's `RingIdentity.header()` (a mirror keeps it)."""
    return {RING_HEADER: ring, EPOCH_HEADER: str(epoch), SEQ_HEADER: f"{first} {end}"}


def _field(headers: dict[str, str] | None, name: str) -> list[str]:
    value = (headers or {}).get(name)
    if not isinstance(value, str) or not value.strip():
        raise BadBatch(f"missing header {name}")
    return value.split()


def _ints(name: str, parts: list[str], count: int, base: int = 10) -> list[int]:
    try:
        values = [int(p, base) for p in parts if p.isalnum()]
    except ValueError:
        values = []
    if len(values) != count or len(parts) != count or any(v < 0 for v in values):
        raise BadBatch(f"header {name}: got {' '.join(parts)!r}; expected {count} non-negative integers")
    return values


@functools.lru_cache(maxsize=4096)
def _identity(text: str) -> RingIdentity:
    """The ring identity of a Feeder-Ring header value (the same few values come again and again)."""
    ring = text.split()
    if len(ring) != 4 or ring[0] not in RECORD_TYPES:
        raise BadBatch(
            f"header {RING_HEADER}: got {text!r}; expected '<{'|'.join(RECORD_TYPES)}> "
            f"<capacity> <fingerprint hex> <created_ns>'"
        )
    (capacity,) = _ints(RING_HEADER, ring[1:2], 1)
    (fingerprint,) = _ints(RING_HEADER, ring[2:3], 1, 16)
    (created,) = _ints(RING_HEADER, ring[3:4], 1)
    try:
        check_capacity(capacity)
    except UsageError as exc:
        raise BadBatch(f"header {RING_HEADER}: {exc}") from None
    return RingIdentity(ring[0], capacity, fingerprint, created)


def decode_header(headers: dict[str, str] | None) -> BatchHeader:
    """The batch header of a message; BadBatch naming the header that is wrong."""
    if headers is not None:
        try:  # the common case, quickly; anything odd takes the careful path below for its message
            low, high = headers[SEQ_HEADER].split(" ")
            first, end, epoch = int(low), int(high), int(headers[EPOCH_HEADER])
            if 0 <= first <= end and epoch >= 0:
                return BatchHeader(_identity(headers[RING_HEADER]), epoch, first, end)
        except (KeyError, TypeError, ValueError, AttributeError):
            pass
    identity = _identity(" ".join(_field(headers, RING_HEADER)))
    (epoch,) = _ints(EPOCH_HEADER, _field(headers, EPOCH_HEADER), 1)
    first, end = _ints(SEQ_HEADER, _field(headers, SEQ_HEADER), 2)
    if end < first:
        raise BadBatch(f"header {SEQ_HEADER}: end {end} is before first {first}")
    return BatchHeader(identity, epoch, first, end)


def decode_records(header: BatchHeader, payload: bytes) -> np.ndarray:
    """The records of a batch, checked against its header: our layout, whole records, seqs in range."""
    schema = record_schema(header.identity.record_type)
    if len(payload) == schema.size and header.identity.fingerprint == schema.fingerprint:
        seq = int.from_bytes(payload[:8], "little")  # one record, the common case: no array checks
        if header.first <= seq < header.end:
            return np.frombuffer(payload, schema.dtype)
    if header.identity.fingerprint != schema.fingerprint:
        raise ForeignLayout(
            f"the source's {schema.record_type} layout has fingerprint {header.identity.fingerprint:#018x}, "
            f"this replica's schemas/{schema.record_type}.json has {schema.fingerprint:#018x}: "
            f"run the same feeder version on both hosts"
        )
    if len(payload) % schema.size:
        raise BadBatch(f"payload of {len(payload)} bytes is not whole {schema.size}-byte records")
    records = np.frombuffer(payload, schema.dtype)
    n = len(records)
    if n > header.end - header.first:
        raise BadBatch(f"{n} records for seqs {header.first}..{header.end - 1}")
    if n:
        seqs = records["seq"]
        if int(seqs[0]) < header.first or int(seqs[-1]) >= header.end or np.any(seqs[1:] <= seqs[:-1]):
            raise BadBatch(
                f"record seqs {int(seqs[0])}..{int(seqs[-1])} are not increasing within "
                f"{header.first}..{header.end - 1}"
            )
    return records
