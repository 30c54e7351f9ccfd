"""What the sources need from firmware_profiles, as structural types.

The catalog is handed in by the agent core; typing it structurally keeps the
sources testable with small stand-ins and independent of the catalog's classes.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any, Protocol

from territoire_kernel.records import AttrValue, Event, Reading


class ReadBlockLike(Hashable, Protocol):
    @property
    def function(self) -> str: ...  # "coil" | "discrete_input" | "holding" | "input"

    @property
    def address(self) -> int: ...

    @property
    def count(self) -> int: ...


class WriteOpLike(Protocol):
    @property
    def function(self) -> str: ...  # "coil" | "holding"

    @property
    def address(self) -> int: ...

    @property
    def values(self) -> Sequence[Any]: ...


class RegisterMapLike(Protocol):
    def plan_reads(self, max_registers: int = ..., max_gap: int = ...) -> Sequence[Any]: ...

    def decode(self, values: Mapping[Any, Any], *, device_id: str, time_us: int) -> Sequence[Reading]: ...

    def encode_write(self, action: str, params: Mapping[str, AttrValue]) -> Sequence[Any]: ...


class DecodedLike(Protocol):
    @property
    def readings(self) -> Sequence[Reading]: ...

    @property
    def events(self) -> Sequence[Event]: ...

    @property
    def warnings(self) -> Sequence[str]: ...


class ProfileLike(Protocol):
    @property
    def register_map(self) -> RegisterMapLike | None: ...

    def decode_uplink(self, payload: bytes, f_port: int, *, device_id: str, time_us: int) -> DecodedLike: ...

    def encode_downlink(self, action: str, params: Mapping[str, AttrValue]) -> tuple[int, bytes]: ...


class CatalogLike(Protocol):
    def get(self, profile_id: str) -> Any: ...  # a ProfileLike
