"""What a native decoder returns, and small helpers shared by the vendors' formats."""

from __future__ import annotations

from dataclasses import dataclass, field

from territoire_kernel.errors import CodecError
from territoire_kernel.records import AttrValue, Quality


@dataclass
class NativeResult:
    values: list[tuple[str, float, Quality]] = field(default_factory=list)
    events: list[tuple[str, dict[str, AttrValue]]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def add(self, metric: str, value: float, quality: Quality = Quality.GOOD) -> None:
        self.values.append((metric, float(value), quality))


def need(payload: bytes, length: int, what: str) -> None:
    if len(payload) < length:
        raise CodecError(f"{what}: {len(payload)} bytes, at least {length} expected")


def exact(payload: bytes, length: int, what: str) -> None:
    if len(payload) != length:
        raise CodecError(f"{what}: {len(payload)} bytes, {length} expected")


def port(f_port: int, allowed: tuple[int, ...], what: str) -> None:
    if f_port not in allowed:
        raise CodecError(f"{what}: unexpected fPort {f_port} (documented: {', '.join(map(str, allowed))})")
