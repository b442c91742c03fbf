"""Rings beyond one host, over NATS: a mirror publishes ring records, a replica writes them into local rings.

`feeder mirror` (mirror.py) is a ring reader on the feeder host that publishes every selected ring's raw
records on core NATS subjects, and optionally keeps them in a JetStream stream. `feeder replicate`
(replica.py) on another host writes what arrives into rings of the same names, record types and
capacities, at the source's own seqs, so remote strategies run unchanged `RingReader` code; every seq it
could not get becomes a GAP/MARKER record and a lost count. wire.py says what is on the wire; track.py
and gaps.py are the replica's decisions, pure; orders.py carries FeederHandle requests over NATS.
Needs the `nats` extra (`pip install 'feeder[nats]'`).
"""
