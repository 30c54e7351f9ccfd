"""Wire format of every territoire MQTT message, in two encodings.

* JSON (human-readable): a UTF-8 object, so the payload's first byte is ``{``.
* CBOR (compact): starts with the CBOR self-describe tag 55799, bytes
  ``D9 D9 F7``, which can never start valid UTF-8 JSON. The two are therefore
  told apart by their first byte, without guessing.

Batches in CBOR use string tables (each device id, metric and unit once per
batch) and times as offsets from a base time, which is what makes them compact.
Any malformed input raises :class:`WireFormatError` and nothing else.
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import cbor2

from .errors import TerritoireError, ValidationError, WireFormatError
from .ids import device_id, metric_name
from .messages import (
    MAX_ITEMS_PER_BATCH,
    Batch,
    Command,
    CommandResult,
    CommandStatus,
    GatewayState,
    Message,
    Status,
)
from .records import (
    ALL_QUALITY_BITS,
    MAX_TIME_US,
    MIN_TIME_US,
    AttrValue,
    Event,
    Quality,
    Reading,
    check_attrs,
    check_quality,
    check_time_us,
    from_time_us,
    to_time_us,
)

__all__ = [
    "CBOR_MAGIC",
    "MAX_ITEMS_PER_BATCH",
    "MAX_PAYLOAD_BYTES",
    "WIRE_VERSION",
    "Batch",
    "BatchColumns",
    "Command",
    "CommandResult",
    "CommandStatus",
    "Encoding",
    "GatewayState",
    "Message",
    "MessageType",
    "Status",
    "decode",
    "decode_batch",
    "decode_columns",
    "detect_encoding",
    "encode",
]

WIRE_VERSION: Final = 1
CBOR_MAGIC: Final = b"\xd9\xd9\xf7"
MAX_PAYLOAD_BYTES: Final = 4 * 1024 * 1024


class Encoding(enum.Enum):
    JSON = "json"
    CBOR = "cbor"


class MessageType(enum.Enum):
    BATCH = "batch"
    STATUS = "status"
    COMMAND = "command"
    COMMAND_RESULT = "command_result"


# --------------------------------------------------------------------------- encode


def encode(message: Message, encoding: Encoding = Encoding.CBOR) -> bytes:
    """Encode a message; JSON output is stable (sorted keys) and UTF-8."""
    if encoding is Encoding.JSON:
        doc = _to_json_doc(message)
        return json.dumps(doc, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()
    body = _batch_to_cbor(message) if isinstance(message, Batch) else _to_json_doc(message)
    return CBOR_MAGIC + cbor2.dumps(body, canonical=True)


def _iso(time_us: int) -> str:
    return from_time_us(time_us).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _to_json_doc(message: Message) -> dict[str, Any]:
    if isinstance(message, Batch):
        doc: dict[str, Any] = {
            "v": WIRE_VERSION,
            "type": MessageType.BATCH.value,
            "gateway": message.gateway_id,
            "boot": message.boot_id,
            "seq": message.seq,
            "readings": [_reading_doc(r) for r in message.readings],
            "events": [_event_doc(e) for e in message.events],
        }
        if message.sent_us is not None:
            doc["sent"] = _iso(message.sent_us)
        return doc
    if isinstance(message, Status):
        return {
            "v": WIRE_VERSION,
            "type": MessageType.STATUS.value,
            "gateway": message.gateway_id,
            "state": message.state.value,
            "boot": message.boot_id,
            "time": _iso(message.time_us),
            "version": message.version,
            "uptime_s": message.uptime_s,
            "buffer_batches": message.buffer_batches,
            "buffer_readings": message.buffer_readings,
            "oldest_unsent_age_s": message.oldest_unsent_age_s,
            "dropped_readings": message.dropped_readings,
            "clock_synced": message.clock_synced,
        }
    if isinstance(message, Command):
        return {
            "v": WIRE_VERSION,
            "type": MessageType.COMMAND.value,
            "id": message.command_id,
            "device": message.device_id,
            "action": message.action,
            "params": dict(message.params),
            "issued": _iso(message.issued_us),
            "expires": _iso(message.expires_us),
        }
    return {
        "v": WIRE_VERSION,
        "type": MessageType.COMMAND_RESULT.value,
        "id": message.command_id,
        "gateway": message.gateway_id,
        "status": message.status.value,
        "time": _iso(message.time_us),
        "detail": message.detail,
    }


def _reading_doc(r: Reading) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "device": r.device_id,
        "metric": r.metric,
        "value": r.value,
        "time": _iso(r.time_us),
    }
    if r.unit is not None:
        doc["unit"] = r.unit
    if r.quality:
        doc["q"] = int(r.quality)
    return doc


def _event_doc(e: Event) -> dict[str, Any]:
    doc: dict[str, Any] = {"device": e.device_id, "kind": e.kind, "time": _iso(e.time_us)}
    if e.attrs:
        doc["attrs"] = dict(e.attrs)
    if e.quality:
        doc["q"] = int(e.quality)
    return doc


def _compact_number(value: float) -> float | int:
    # CBOR integers are shorter than floats; exact below 2**53.
    if value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def _batch_to_cbor(batch: Batch) -> list[Any]:
    strings: dict[str, int] = {}

    def ref(text: str) -> int:
        return strings.setdefault(text, len(strings))

    times = [r.time_us for r in batch.readings] + [e.time_us for e in batch.events]
    base = min(times) if times else 0
    readings = [
        [
            ref(r.device_id),
            ref(r.metric),
            r.time_us - base,
            _compact_number(float(r.value)),
            -1 if r.unit is None else ref(r.unit),
            int(r.quality),
        ]
        for r in batch.readings
    ]
    events = [
        [ref(e.device_id), ref(e.kind), e.time_us - base, dict(e.attrs), int(e.quality)] for e in batch.events
    ]
    return [
        WIRE_VERSION,
        MessageType.BATCH.value,
        batch.gateway_id,
        batch.boot_id,
        batch.seq,
        batch.sent_us,
        base,
        list(strings),
        readings,
        events,
    ]


# --------------------------------------------------------------------------- decode


def detect_encoding(payload: bytes) -> Encoding:
    """Tell the encoding from the first bytes; no heuristics beyond that."""
    if payload.startswith(CBOR_MAGIC):
        return Encoding.CBOR
    if payload[:1] == b"{":
        return Encoding.JSON
    raise WireFormatError("payload is neither territoire JSON (starts with '{') nor CBOR (tag 55799)")


def decode(payload: bytes | bytearray | memoryview) -> Message:
    """Decode any territoire message. Raises WireFormatError on bad input."""
    message = _decode(payload, columns=False)
    assert not isinstance(message, BatchColumns)
    return message


def _decode(payload: bytes | bytearray | memoryview, *, columns: bool) -> Message | BatchColumns:
    data = bytes(payload)
    if len(data) > MAX_PAYLOAD_BYTES:
        raise WireFormatError(f"payload of {len(data)} bytes exceeds {MAX_PAYLOAD_BYTES}")
    encoding = detect_encoding(data)
    try:
        if encoding is Encoding.JSON:
            doc = json.loads(data.decode("utf-8"))
            return _from_json_doc(doc)
        body = cbor2.loads(data[len(CBOR_MAGIC) :])
        if isinstance(body, list):
            fast = _try_columns(body) if columns else None
            return fast if fast is not None else _batch_from_cbor(body)
        return _from_json_doc(body)
    except TerritoireError as exc:
        if isinstance(exc, WireFormatError):
            raise
        raise WireFormatError(str(exc)) from None
    except (
        cbor2.CBORError,
        ValueError,
        TypeError,
        KeyError,
        IndexError,
        OverflowError,
        RecursionError,
        AttributeError,
    ) as exc:
        # json/cbor2 parse failures and shape mismatches all end up here.
        raise WireFormatError(f"malformed {encoding.value} message: {exc}") from None


def decode_batch(payload: bytes | bytearray | memoryview) -> Batch:
    message = decode(payload)
    if not isinstance(message, Batch):
        raise WireFormatError(f"expected a batch, got a {type(message).__name__.lower()} message")
    return message


def _require(doc: Mapping[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    if key not in doc:
        raise WireFormatError(f"missing field {key!r}")
    value = doc[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind in (int, float, (int, float))):
        raise WireFormatError(f"field {key!r} has the wrong type ({type(value).__name__})")
    return value


def _check_version(version: object) -> None:
    if version != WIRE_VERSION or isinstance(version, bool):
        raise WireFormatError(f"unsupported wire version {version!r} (this build speaks {WIRE_VERSION})")


def _parse_iso(value: object, what: str) -> int:
    if not isinstance(value, str):
        raise WireFormatError(f"{what} must be an ISO 8601 string")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise WireFormatError(f"{what} is not ISO 8601: {value!r}") from None
    if moment.tzinfo is None:
        raise WireFormatError(f"{what} must carry a UTC offset: {value!r}")
    return check_time_us(to_time_us(moment), what)


def _from_json_doc(doc: object) -> Message:
    if not isinstance(doc, dict):
        raise WireFormatError("a message must be an object")
    _check_version(doc.get("v"))
    kind = doc.get("type")
    if kind == MessageType.BATCH.value:
        sent = doc.get("sent")
        return Batch(
            gateway_id=_require(doc, "gateway", str),
            boot_id=_require(doc, "boot", str),
            seq=_require(doc, "seq", int),
            readings=tuple(_reading_from_doc(r) for r in _require(doc, "readings", list)),
            events=tuple(_event_from_doc(e) for e in doc.get("events", [])),
            sent_us=None if sent is None else _parse_iso(sent, "sent"),
        )
    if kind == MessageType.STATUS.value:
        return Status(
            gateway_id=_require(doc, "gateway", str),
            state=GatewayState(_require(doc, "state", str)),
            boot_id=_require(doc, "boot", str),
            time_us=_parse_iso(doc.get("time"), "time"),
            version=_optional(doc, "version", str, ""),
            uptime_s=float(_optional(doc, "uptime_s", (int, float), 0.0)),
            buffer_batches=_optional(doc, "buffer_batches", int, 0),
            buffer_readings=_optional(doc, "buffer_readings", int, 0),
            oldest_unsent_age_s=float(_optional(doc, "oldest_unsent_age_s", (int, float), 0.0)),
            dropped_readings=_optional(doc, "dropped_readings", int, 0),
            clock_synced=_optional(doc, "clock_synced", bool, True),
        )
    if kind == MessageType.COMMAND.value:
        return Command(
            command_id=_require(doc, "id", str),
            device_id=_require(doc, "device", str),
            action=_require(doc, "action", str),
            issued_us=_parse_iso(doc.get("issued"), "issued"),
            expires_us=_parse_iso(doc.get("expires"), "expires"),
            params=_attrs(doc.get("params", {}), "params"),
        )
    if kind == MessageType.COMMAND_RESULT.value:
        return CommandResult(
            command_id=_require(doc, "id", str),
            gateway_id=_require(doc, "gateway", str),
            status=CommandStatus(_require(doc, "status", str)),
            time_us=_parse_iso(doc.get("time"), "time"),
            detail=_optional(doc, "detail", str, ""),
        )
    raise WireFormatError(f"unknown message type {kind!r}")


def _optional(doc: Mapping[str, Any], key: str, kind: type | tuple[type, ...], default: Any) -> Any:
    return _require(doc, key, kind) if key in doc else default


def _number(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise WireFormatError(f"{what} must be a number")
    result = float(value)
    if not math.isfinite(result):
        raise WireFormatError(f"{what} must be finite")
    return result


def _quality(value: object) -> Quality:
    try:
        return check_quality(value)
    except ValidationError as exc:
        raise WireFormatError(str(exc)) from None


def _reading_from_doc(doc: object) -> Reading:
    if not isinstance(doc, dict):
        raise WireFormatError("a reading must be an object")
    unit = doc.get("unit")
    if unit is not None and not isinstance(unit, str):
        raise WireFormatError("unit must be a string")
    return Reading(
        device_id=_require(doc, "device", str),
        metric=_require(doc, "metric", str),
        value=_number(doc.get("value"), "value"),
        time_us=_parse_iso(doc.get("time"), "time"),
        unit=unit,
        quality=_quality(doc.get("q", 0)),
    )


def _event_from_doc(doc: object) -> Event:
    if not isinstance(doc, dict):
        raise WireFormatError("an event must be an object")
    return Event(
        device_id=_require(doc, "device", str),
        kind=_require(doc, "kind", str),
        time_us=_parse_iso(doc.get("time"), "time"),
        attrs=_attrs(doc.get("attrs", {}), "attrs"),
        quality=_quality(doc.get("q", 0)),
    )


def _attrs(value: object, what: str) -> dict[str, AttrValue]:
    if not isinstance(value, dict):
        raise WireFormatError(f"{what} must be an object")
    check_attrs(value, what)
    return dict(value)


def _batch_from_cbor(body: Sequence[Any]) -> Batch:
    if len(body) != 10:
        raise WireFormatError("a CBOR batch is an array of 10 items")
    version, kind, gateway, boot, seq, sent, base, strings, readings, events = body
    _check_version(version)
    if kind != MessageType.BATCH.value:
        raise WireFormatError(f"unknown CBOR message type {kind!r}")
    if not isinstance(strings, list) or not all(isinstance(s, str) for s in strings):
        raise WireFormatError("the string table must be a list of strings")
    if not isinstance(base, int) or isinstance(base, bool):
        raise WireFormatError("base time must be an integer")
    if not isinstance(readings, list) or not isinstance(events, list):
        raise WireFormatError("readings and events must be arrays")
    if len(readings) + len(events) > MAX_ITEMS_PER_BATCH:
        raise WireFormatError(f"a batch holds at most {MAX_ITEMS_PER_BATCH} readings and events")

    def text(index: object) -> str:
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(strings):
            raise WireFormatError(f"bad string table index {index!r}")
        return strings[index]  # type: ignore[no-any-return]

    def offset(value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise WireFormatError("time offsets must be non-negative integers")
        return base + value

    decoded_readings = []
    for row in readings:
        if not isinstance(row, list) or len(row) != 6:
            raise WireFormatError("a CBOR reading is an array of 6 items")
        dev, metric, dt, value, unit, quality = row
        decoded_readings.append(
            Reading(
                device_id=text(dev),
                metric=text(metric),
                value=_number(value, "value"),
                time_us=offset(dt),
                unit=None if unit == -1 else text(unit),
                quality=_quality(quality),
            )
        )
    decoded_events = []
    for row in events:
        if not isinstance(row, list) or len(row) != 5:
            raise WireFormatError("a CBOR event is an array of 5 items")
        dev, kind_ref, dt, attrs, quality = row
        decoded_events.append(
            Event(
                device_id=text(dev),
                kind=text(kind_ref),
                time_us=offset(dt),
                attrs=_attrs(attrs, "attrs"),
                quality=_quality(quality),
            )
        )
    if not isinstance(gateway, str) or not isinstance(boot, str):
        raise WireFormatError("gateway and boot ids must be strings")
    if isinstance(seq, bool) or not isinstance(seq, int):
        raise WireFormatError("seq must be an integer")
    if sent is not None and (isinstance(sent, bool) or not isinstance(sent, int)):
        raise WireFormatError("sent must be an integer or null")
    return Batch(gateway, boot, seq, tuple(decoded_readings), tuple(decoded_events), sent)


# --------------------------------------------------------------------------- columnar fast path


@dataclass(frozen=True, slots=True)
class BatchColumns:
    """A CBOR batch decoded column by column, for ingest's hot path.

    Validated exactly like :class:`Batch` (same rules; a payload this path
    doubts goes through :func:`decode`, which raises the usual error), but
    without one ``Reading`` object per row. Units are validated, not kept.
    """

    gateway_id: str
    boot_id: str
    seq: int
    sent_us: int | None
    devices: list[str]
    metrics: list[str]
    times_us: list[int]
    values: list[float]
    qualities: list[int]
    events: tuple[Event, ...]


def decode_columns(payload: bytes | bytearray | memoryview) -> Message | BatchColumns:
    """Like :func:`decode`, but a CBOR batch of many readings comes back as :class:`BatchColumns`.

    Whole columns are checked with C-level passes (``map``, ``set``, ``min``)
    instead of a per-reading constructor. Anything unusual falls back to the
    object path, so errors and accepted inputs are those of :func:`decode`.
    """
    return _decode(payload, columns=True)


# Below this many readings the per-column passes cost more than Reading objects.
_COLUMNS_FROM = 8


def _try_columns(body: list[Any]) -> BatchColumns | None:
    if len(body) != 10 or type(body[8]) is not list or len(body[8]) < _COLUMNS_FROM:
        return None
    try:
        return _columns_from_cbor(body)
    except (TerritoireError, ValueError, TypeError, IndexError, OverflowError):
        return None  # the object path raises the precise error


# Names already validated: a batch repeats the same few hundred ids endlessly.
_GOOD_DEVICES: set[str] = set()
_GOOD_METRICS: set[str] = set()


def _check_names(names: set[str], good: set[str], check: Callable[[object], str]) -> None:
    new = names - good
    for name in new:
        check(name)  # raises ValidationError
    if len(good) + len(new) > 100_000:
        good.clear()
    good |= new


def _only(column: Sequence[object], *kinds: type) -> bool:
    # type(), not isinstance(): bool must not pass for int.
    return set(map(type, column)) <= set(kinds)


def _columns_from_cbor(body: list[Any]) -> BatchColumns | None:
    if len(body) != 10:
        return None
    version, kind, gateway, boot, seq, sent, base, strings, readings, events = body
    if type(version) is not int or version != WIRE_VERSION or kind != MessageType.BATCH.value:
        return None
    if type(strings) is not list or type(readings) is not list or type(events) is not list:
        return None
    if type(base) is not int or not _only(strings, str) or not _only((gateway, boot), str):
        return None
    if type(seq) is not int or not (sent is None or type(sent) is int):
        return None
    if len(readings) + len(events) > MAX_ITEMS_PER_BATCH:
        return None
    header = Batch(gateway, boot, seq, (), (), sent)  # validates ids, seq and sent
    n = len(readings)
    count = len(strings)
    if n:
        if set(map(type, readings)) != {list} or set(map(len, readings)) != {6}:
            return None
        devs, mets, dts, vals, units, quals = zip(*readings, strict=True)
        if not (_only(devs, int) and _only(mets, int) and _only(dts, int) and _only(quals, int)):
            return None
        if not (_only(units, int) and _only(vals, int, float)):
            return None
        used_devs, used_mets, used_units = set(devs), set(mets), set(units) - {-1}
        used = used_devs | used_mets | used_units
        if min(used) < 0 or max(used) >= count:
            return None
        lookup = strings.__getitem__
        _check_names(set(map(lookup, used_devs)), _GOOD_DEVICES, device_id)
        _check_names(set(map(lookup, used_mets)), _GOOD_METRICS, metric_name)
        if any(len(strings[index]) > 32 for index in used_units):
            return None
        if min(dts) < 0 or base + min(dts) < MIN_TIME_US or base + max(dts) >= MAX_TIME_US:
            return None
        if min(quals) < 0 or max(quals) > ALL_QUALITY_BITS:
            return None
        values = list(map(float, vals))
        if not all(map(math.isfinite, values)):
            return None
        devices, metrics = list(map(lookup, devs)), list(map(lookup, mets))
        times, qualities = list(map(base.__add__, dts)), list(quals)
    else:
        devices, metrics, times, values, qualities = [], [], [], [], []
    decoded_events = tuple(_event_from_cbor(row, strings, base) for row in events)
    return BatchColumns(
        header.gateway_id, header.boot_id, header.seq, header.sent_us,
        devices, metrics, times, values, qualities, decoded_events,
    )  # fmt: skip


def _event_from_cbor(row: object, strings: list[str], base: int) -> Event:
    if type(row) is not list or len(row) != 5:
        raise WireFormatError("a CBOR event is an array of 5 items")
    dev, kind_ref, dt, attrs, quality = row
    if not _only((dev, kind_ref, dt), int) or not (0 <= dev < len(strings) and 0 <= kind_ref < len(strings)):
        raise WireFormatError("bad CBOR event")
    if dt < 0:
        raise WireFormatError("time offsets must be non-negative integers")
    return Event(strings[dev], strings[kind_ref], base + dt, _attrs(attrs, "attrs"), _quality(quality))
