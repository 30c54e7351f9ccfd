"""LoRaWAN network-server message formats: ChirpStack v4 and The Things Stack v3.

Pure functions, no I/O: the edge agent's LNS source and ingest both parse
uplink events with them. Anything malformed raises CodecError, never another
exception, so a bad message from the network server is counted, not fatal.

ChirpStack v4 MQTT integration (JSON marshaler):
    application/{application_id}/device/{dev_eui}/event/up
    application/{application_id}/device/{dev_eui}/command/down
The Things Stack v3 MQTT server:
    v3/{application_id}[@{tenant_id}]/devices/{device_id}/up
    v3/{application_id}[@{tenant_id}]/devices/{device_id}/down/push
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Literal

from territoire_kernel.errors import CodecError, ValidationError
from territoire_kernel.ids import device_id as check_device_id
from territoire_kernel.records import Reading, check_time_us, to_time_us

MAX_EVENT_BYTES = 256 * 1024
_EUI = re.compile(r"^[0-9a-fA-F]{16}$")
_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,12}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$"
)


@dataclass(frozen=True, slots=True)
class Uplink:
    """One application uplink as the network server delivered it."""

    source: Literal["chirpstack", "tts"]
    dev_eui: str  # lower-case hex, 16 digits
    device_id: str  # ChirpStack: the DevEUI; TTS: the end-device id
    application_id: str
    f_port: int  # 0 when the frame carried only MAC commands
    f_cnt: int
    payload: bytes
    time_us: int  # the network's reception time, the closest to measurement
    dedup_id: str
    rssi_dbm: float | None
    snr_db: float | None
    gateway_count: int
    device_name: str = ""
    tenant_id: str = ""


# --------------------------------------------------------------------------- helpers


def parse_rfc3339(value: object, what: str = "time") -> int:
    """RFC 3339 text to microseconds; nanosecond fractions are truncated."""
    if not isinstance(value, str):
        raise CodecError(f"{what} must be an RFC 3339 string")
    match = _RFC3339.match(value)
    if match is None:
        raise CodecError(f"{what} is not RFC 3339: {value[:64]!r}")
    year, month, day, hour, minute, second, fraction, zulu, sign, off_h, off_m = match.groups()
    try:
        offset = timedelta(0)
        if not zulu:
            offset = timedelta(hours=int(off_h), minutes=int(off_m))
            if sign == "-":
                offset = -offset
        moment = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), tzinfo=timezone(offset)
        )
        micros = int((fraction or "0")[:6].ljust(6, "0"))
        return check_time_us(to_time_us(moment.astimezone(UTC)) + micros, what)
    except (ValueError, OverflowError, ValidationError) as exc:
        raise CodecError(f"{what} {value[:64]!r}: {exc}") from None


def _load(payload: bytes | bytearray | memoryview) -> dict[str, Any]:
    data = bytes(payload)
    if len(data) > MAX_EVENT_BYTES:
        raise CodecError(f"event of {len(data)} bytes exceeds {MAX_EVENT_BYTES}")
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise CodecError(f"event is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise CodecError("event must be a JSON object")
    return doc


def _obj(doc: dict[str, Any], key: str, required: bool = True) -> dict[str, Any]:
    value = doc.get(key)
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise CodecError(f"field {key!r} must be an object")
    return value


def _text(doc: dict[str, Any], key: str, default: str | None = None) -> str:
    value = doc.get(key, default)
    if not isinstance(value, str):
        raise CodecError(f"field {key!r} must be a string")
    return value


def _uint(doc: dict[str, Any], key: str, limit: int, default: int = 0) -> int:
    # Protobuf JSON drops zero values, and encodes 64-bit integers as strings.
    value = doc.get(key, default)
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= limit:
        raise CodecError(f"field {key!r} must be an integer in 0..{limit}")
    return value


def _b64(doc: dict[str, Any], key: str) -> bytes:
    value = doc.get(key)
    if value is None:
        return b""
    if not isinstance(value, str):
        raise CodecError(f"field {key!r} must be base64 text")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CodecError(f"field {key!r} is not base64: {exc}") from None


def _eui(value: object, what: str) -> str:
    if not isinstance(value, str) or not _EUI.match(value):
        raise CodecError(f"{what} must be 16 hex digits")
    return value.lower()


def _number(value: object, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise CodecError(f"{what} must be a finite number")
    return float(value)


def _best_link(rx: object, rssi_key: str, snr_key: str) -> tuple[float | None, float | None, int]:
    """Best RSSI and SNR over the receiving gateways, and how many there were."""
    if rx is None:
        return None, None, 0
    if not isinstance(rx, list):
        raise CodecError("rx metadata must be an array")
    rssis: list[float] = []
    snrs: list[float] = []
    for item in rx:
        if not isinstance(item, dict):
            raise CodecError("rx metadata items must be objects")
        rssi = _number(item.get(rssi_key, item.get("channel_rssi")), "rssi")
        snr = _number(item.get(snr_key), "snr")
        if rssi is not None:
            rssis.append(rssi)
        if snr is not None:
            snrs.append(snr)
    return (max(rssis) if rssis else None), (max(snrs) if snrs else None), len(rx)


def _device_id(value: str) -> str:
    try:
        return check_device_id(value)
    except ValidationError as exc:
        raise CodecError(str(exc)) from None


# --------------------------------------------------------------------------- ChirpStack v4


def parse_chirpstack_uplink(topic: str, payload: bytes | bytearray | memoryview) -> Uplink:
    """Parse a ChirpStack v4 `event/up` message (JSON marshaler)."""
    parts = topic.split("/")
    if len(parts) < 2 or parts[-2:] != ["event", "up"]:
        raise CodecError(f"not a ChirpStack uplink topic: {topic[:200]!r}")
    doc = _load(payload)
    info = _obj(doc, "deviceInfo")
    dev_eui = _eui(info.get("devEui"), "deviceInfo.devEui")
    if len(parts) == 6 and parts[0] == "application" and parts[2] == "device":
        if parts[3].lower() != dev_eui:
            raise CodecError(f"topic names device {parts[3]!r} but the event is for {dev_eui}")
        if info.get("applicationId", parts[1]) != parts[1]:
            raise CodecError("topic and event name different applications")
    dedup = _text(doc, "deduplicationId")
    if not dedup:
        raise CodecError("deduplicationId is empty")
    rssi, snr, gateways = _best_link(doc.get("rxInfo"), "rssi", "snr")
    return Uplink(
        source="chirpstack",
        dev_eui=dev_eui,
        device_id=dev_eui,
        application_id=_text(info, "applicationId", parts[1] if len(parts) > 1 else ""),
        f_port=_uint(doc, "fPort", 255),
        f_cnt=_uint(doc, "fCnt", 2**32 - 1),
        payload=_b64(doc, "data"),
        time_us=parse_rfc3339(doc.get("time"), "time"),
        dedup_id=dedup[:128],
        rssi_dbm=rssi,
        snr_db=snr,
        gateway_count=gateways,
        device_name=_text(info, "deviceName", ""),
        tenant_id=_text(info, "tenantId", ""),
    )


def chirpstack_downlink(
    application_id: str, dev_eui: str, f_port: int, payload: bytes, *, confirmed: bool = False
) -> tuple[str, bytes]:
    """Topic and JSON body that enqueue a downlink through ChirpStack's MQTT integration."""
    eui = _eui(dev_eui, "dev_eui")
    _check_port(f_port)
    body = {
        "devEui": eui,
        "confirmed": confirmed,
        "fPort": f_port,
        "data": base64.b64encode(payload).decode(),
    }
    return f"application/{application_id}/device/{eui}/command/down", json.dumps(body).encode()


# --------------------------------------------------------------------------- The Things Stack v3


def parse_tts_uplink(topic: str, payload: bytes | bytearray | memoryview) -> Uplink:
    """Parse a The Things Stack v3 `up` message (ApplicationUp with uplink_message)."""
    parts = topic.split("/")
    if len(parts) != 5 or parts[0] != "v3" or parts[2] != "devices" or parts[4] != "up":
        raise CodecError(f"not a The Things Stack uplink topic: {topic[:200]!r}")
    app, _, tenant = parts[1].partition("@")
    doc = _load(payload)
    ids = _obj(doc, "end_device_ids")
    device = _device_id(_text(ids, "device_id"))
    if device != parts[3]:
        raise CodecError(f"topic names device {parts[3]!r} but the event is for {device!r}")
    app_ids = _obj(ids, "application_ids")
    if _text(app_ids, "application_id") != app:
        raise CodecError("topic and event name different applications")
    up = _obj(doc, "uplink_message")
    f_cnt = _uint(up, "f_cnt", 2**32 - 1)
    received = up.get("received_at", doc.get("received_at"))
    time_us = parse_rfc3339(received, "uplink_message.received_at")
    correlation = doc.get("correlation_ids", up.get("correlation_ids", []))
    if not isinstance(correlation, list):
        raise CodecError("correlation_ids must be an array")
    as_up = [c for c in correlation if isinstance(c, str) and c.startswith("as:up:")]
    # The as:up correlation id is unique per uplink; without it, device + f_cnt + time is.
    dedup = as_up[0] if as_up else f"tts:{app}:{device}:{f_cnt}:{time_us}"
    rssi, snr, gateways = _best_link(up.get("rx_metadata"), "rssi", "snr")
    return Uplink(
        source="tts",
        dev_eui=_eui(ids.get("dev_eui"), "end_device_ids.dev_eui"),
        device_id=device,
        application_id=app,
        f_port=_uint(up, "f_port", 255),
        f_cnt=f_cnt,
        payload=_b64(up, "frm_payload"),
        time_us=time_us,
        dedup_id=dedup[:128],
        rssi_dbm=rssi,
        snr_db=snr,
        gateway_count=gateways,
        device_name=device,
        tenant_id=tenant,
    )


def tts_downlink(
    application_id: str,
    device_id: str,
    f_port: int,
    payload: bytes,
    *,
    tenant_id: str = "",
    priority: str = "NORMAL",
    confirmed: bool = False,
) -> tuple[str, bytes]:
    """Topic and JSON body that push a downlink through The Things Stack's MQTT server."""
    _check_port(f_port)
    app = f"{application_id}@{tenant_id}" if tenant_id else application_id
    item: dict[str, Any] = {
        "f_port": f_port,
        "frm_payload": base64.b64encode(payload).decode(),
        "priority": priority,
    }
    if confirmed:
        item["confirmed"] = True
    return f"v3/{app}/devices/{device_id}/down/push", json.dumps({"downlinks": [item]}).encode()


def _check_port(f_port: int) -> None:
    if isinstance(f_port, bool) or not isinstance(f_port, int) or not 1 <= f_port <= 223:
        raise CodecError(f"application downlinks use FPort 1..223, not {f_port!r}")


# --------------------------------------------------------------------------- link quality


def link_quality_readings(uplink: Uplink, device_id: str | None = None) -> list[Reading]:
    """RSSI and SNR of the best gateway, as readings at the uplink's time."""
    device = device_id or uplink.device_id
    readings = []
    if uplink.rssi_dbm is not None:
        readings.append(Reading(device, "rssi_dbm", uplink.rssi_dbm, uplink.time_us, "dBm"))
    if uplink.snr_db is not None:
        readings.append(Reading(device, "snr_db", uplink.snr_db, uplink.time_us, "dB"))
    return readings
