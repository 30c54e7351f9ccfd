"""The messages of the wire protocol, as validated, immutable records.

Each constructor enforces the contract of docs/protocol.md, so a message that
exists is a valid one; encodings live in wire.py.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field

from .errors import ValidationError
from .ids import device_id, gateway_id, metric_name
from .records import AttrValue, Event, Reading, check_attrs, check_time_us

MAX_ITEMS_PER_BATCH = 50_000


class GatewayState(enum.Enum):
    ONLINE = "online"
    OFFLINE = "offline"


class CommandStatus(enum.Enum):
    DONE = "done"
    FAILED = "failed"
    REJECTED = "rejected"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class Batch:
    """What a gateway publishes: numbered so ingest can write idempotently.

    (gateway_id, boot_id, seq) identifies a batch for ever; seq increases
    monotonically within one boot.
    """

    gateway_id: str
    boot_id: str
    seq: int
    readings: tuple[Reading, ...] = ()
    events: tuple[Event, ...] = ()
    sent_us: int | None = None

    def __post_init__(self) -> None:
        gateway_id(self.gateway_id)
        _check_boot_id(self.boot_id)
        _check_non_negative(self.seq, "seq")
        if self.sent_us is not None:
            check_time_us(self.sent_us, "sent")
        if len(self.readings) + len(self.events) > MAX_ITEMS_PER_BATCH:
            raise ValidationError(f"a batch holds at most {MAX_ITEMS_PER_BATCH} readings and events")


@dataclass(frozen=True, slots=True)
class Status:
    """Retained gateway status; the offline form is registered as last will."""

    gateway_id: str
    state: GatewayState
    boot_id: str
    time_us: int
    version: str = ""
    uptime_s: float = 0.0
    buffer_batches: int = 0
    buffer_readings: int = 0
    oldest_unsent_age_s: float = 0.0
    dropped_readings: int = 0
    clock_synced: bool = True

    def __post_init__(self) -> None:
        gateway_id(self.gateway_id)
        _check_boot_id(self.boot_id)
        check_time_us(self.time_us)
        for name in ("buffer_batches", "buffer_readings", "dropped_readings"):
            _check_non_negative(getattr(self, name), name)
        for name in ("uptime_s", "oldest_unsent_age_s"):
            _check_non_negative_float(getattr(self, name), name)


@dataclass(frozen=True, slots=True)
class Command:
    """An order for one device behind a gateway, void after expires_us."""

    command_id: str
    device_id: str
    action: str
    issued_us: int
    expires_us: int
    params: dict[str, AttrValue] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_command_id(self.command_id)
        device_id(self.device_id)
        metric_name(self.action)
        check_time_us(self.issued_us, "issued")
        check_time_us(self.expires_us, "expires")
        if self.expires_us <= self.issued_us:
            raise ValidationError("a command must expire after it was issued")
        check_attrs(self.params, "command params")

    def expired(self, now_us: int) -> bool:
        return now_us >= self.expires_us


@dataclass(frozen=True, slots=True)
class CommandResult:
    command_id: str
    gateway_id: str
    status: CommandStatus
    time_us: int
    detail: str = ""

    def __post_init__(self) -> None:
        _check_command_id(self.command_id)
        gateway_id(self.gateway_id)
        check_time_us(self.time_us)
        if not isinstance(self.detail, str) or len(self.detail) > 1000:
            raise ValidationError("detail must be a string of at most 1000 characters")


Message = Batch | Status | Command | CommandResult


# --------------------------------------------------------------------------- checks


def _check_boot_id(value: object) -> None:
    if not isinstance(value, str) or not 1 <= len(value) <= 64 or not value.isascii() or not value.isalnum():
        raise ValidationError(f"boot id must be 1-64 ASCII letters or digits: {value!r}")


def _check_command_id(value: object) -> None:
    if not isinstance(value, str) or not 1 <= len(value) <= 64:
        raise ValidationError(f"command id must be a string of 1-64 characters: {value!r}")
    if not all(ch.isascii() and (ch.isalnum() or ch in "-_") for ch in value):
        raise ValidationError(f"command id may hold only letters, digits, '-' and '_': {value!r}")


def _check_non_negative(value: object, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0 or value >= 2**63:
        raise ValidationError(f"{what} must be an integer in 0..2**63-1: {value!r}")


def _check_non_negative_float(value: object, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(f"{what} must be a number")
    if not math.isfinite(value) or value < 0:
        raise ValidationError(f"{what} must be finite and non-negative: {value!r}")
