"""The typed records that travel from driver to sink unchanged.

Times are integers in microseconds since the Unix epoch (UTC), the resolution of
PostgreSQL's timestamptz, and always the time the value was *measured*.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from .errors import ValidationError
from .ids import device_id, metric_name

# Plausible measurement window: 2000-01-01 .. 2100-01-01. Anything outside is a
# clock or decoding fault, not a measurement.
MIN_TIME_US = 946_684_800_000_000
MAX_TIME_US = 4_102_444_800_000_000


class Quality(enum.IntFlag):
    """Quality flags carried with every reading; 0 means good."""

    GOOD = 0
    # Stamped before the gateway clock was synchronised (no RTC on the Pi).
    CLOCK_UNSYNCED = 1
    # Time reconstructed from the monotonic clock after synchronisation.
    CLOCK_CORRECTED = 2
    # Value estimated or interpolated rather than measured.
    ESTIMATED = 4
    # Value outside the sensor's specified range.
    OUT_OF_RANGE = 8
    # The device reported an error state alongside the value.
    DEVICE_ERROR = 16


ALL_QUALITY_BITS = int(
    Quality.CLOCK_UNSYNCED
    | Quality.CLOCK_CORRECTED
    | Quality.ESTIMATED
    | Quality.OUT_OF_RANGE
    | Quality.DEVICE_ERROR
)

AttrValue = str | int | float | bool
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def check_attrs(attrs: object, what: str) -> None:
    """Attributes are a small flat mapping of scalars (they land in JSONB)."""
    if not isinstance(attrs, dict):
        raise ValidationError(f"{what} must be a mapping")
    if len(attrs) > 64:
        raise ValidationError(f"{what} holds at most 64 entries")
    for key, value in attrs.items():
        if not isinstance(key, str) or not key:
            raise ValidationError(f"{what} keys must be non-empty strings")
        if not isinstance(value, str | int | float | bool):
            raise ValidationError(f"{what}[{key!r}] must be a string, number or boolean")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValidationError(f"{what}[{key!r}] must be finite")


def check_time_us(value: object, what: str = "time") -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"{what} must be an integer number of microseconds")
    if not MIN_TIME_US <= value < MAX_TIME_US:
        raise ValidationError(f"{what} {value} is outside 2000-01-01..2100-01-01")
    return value


# Enum construction is slow on the hot path; every valid combination is prebuilt.
_QUALITIES = tuple(Quality(bits) for bits in range(ALL_QUALITY_BITS + 1))


def check_quality(value: object) -> Quality:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= ALL_QUALITY_BITS:
        raise ValidationError(f"unknown quality flags {value!r}")
    return _QUALITIES[value]


@dataclass(frozen=True, slots=True)
class Reading:
    """One measured value of one metric of one device."""

    device_id: str
    metric: str
    value: float
    time_us: int
    unit: str | None = None
    quality: Quality = Quality.GOOD

    def __post_init__(self) -> None:
        device_id(self.device_id)
        metric_name(self.metric)
        if isinstance(self.value, bool) or not isinstance(self.value, int | float):
            raise ValidationError(f"reading value must be a number, got {self.value!r}")
        if not math.isfinite(self.value):
            raise ValidationError(f"reading value must be finite, got {self.value!r}")
        check_time_us(self.time_us)
        if self.unit is not None and (not isinstance(self.unit, str) or len(self.unit) > 32):
            raise ValidationError(f"unit must be a string of at most 32 characters: {self.unit!r}")
        check_quality(self.quality)

    @property
    def time(self) -> datetime:
        return from_time_us(self.time_us)


@dataclass(frozen=True, slots=True)
class Event:
    """A discrete happening: bin emptied, car arrived, circuit switched..."""

    device_id: str
    kind: str
    time_us: int
    attrs: dict[str, AttrValue] = field(default_factory=dict)
    quality: Quality = Quality.GOOD

    def __post_init__(self) -> None:
        device_id(self.device_id)
        metric_name(self.kind)
        check_time_us(self.time_us)
        check_quality(self.quality)
        check_attrs(self.attrs, "event attrs")


def to_time_us(moment: datetime) -> int:
    """Convert an aware datetime to microseconds since the epoch."""
    if moment.tzinfo is None:
        raise ValidationError("datetimes must be timezone-aware")
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_time_us(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)
