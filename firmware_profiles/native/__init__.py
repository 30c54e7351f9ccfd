"""Native payload codecs: pure functions from bytes to values (no I/O, no clock).

Each decoder returns a NativeResult; each encoder returns (f_port, payload).
Any malformed input raises territoire_kernel.errors.CodecError, never anything else.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from territoire_kernel.records import AttrValue

from .base import NativeResult
from .dragino import dragino_ldds75, dragino_lt22222, dragino_lt22222_downlink
from .milesight import milesight_em300_di, milesight_em310_udl
from .parking import bosch_tps110, nwave_nps

Decoder = Callable[[bytes, int], NativeResult]
Encoder = Callable[[str, Mapping[str, AttrValue]], tuple[int, bytes]]

DECODERS: dict[str, Decoder] = {
    "dragino_ldds75": dragino_ldds75,
    "dragino_lt22222": dragino_lt22222,
    "milesight_em310_udl": milesight_em310_udl,
    "milesight_em300_di": milesight_em300_di,
    "bosch_tps110": bosch_tps110,
    "nwave_nps": nwave_nps,
}
ENCODERS: dict[str, Encoder] = {"dragino_lt22222": dragino_lt22222_downlink}

__all__ = ["DECODERS", "ENCODERS", "Decoder", "Encoder", "NativeResult"]
