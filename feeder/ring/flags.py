"""Record flag bits, as declared in schemas/ring.json."""

from feeder.ring.schema import header_layout

_FLAGS = header_layout().flags
SNAPSHOT: int = _FLAGS["SNAPSHOT"]
GAP: int = _FLAGS["GAP"]
CROSSED: int = _FLAGS["CROSSED"]
MARKER: int = _FLAGS["MARKER"]
FINAL: int = _FLAGS["FINAL"]
LOCKED: int = _FLAGS["LOCKED"]
