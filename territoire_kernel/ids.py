"""Identifiers used in topics, database keys and ACLs.

Tenant and gateway ids appear in MQTT topics, so they are restricted to a safe
lower-case alphabet that cannot contain MQTT wildcards or separators.
"""

from __future__ import annotations

import re
import uuid

from .errors import ValidationError

_SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62})$")
# Device ids come from many worlds (DevEUI, TTS device ids, "modbus:3"...).
_DEVICE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
_METRIC = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


# Ids repeat endlessly on the ingest path; remember the ones already accepted.
_KNOWN_GOOD: dict[tuple[str, str], bool] = {}
_KNOWN_GOOD_LIMIT = 100_000


def _check(pattern: re.Pattern[str], value: object, kind: str, rule: str) -> str:
    if not isinstance(value, str):
        raise ValidationError(f"invalid {kind} {value!r}: {rule}")
    key = (kind, value)
    if key in _KNOWN_GOOD:
        return value
    if not pattern.fullmatch(value):
        raise ValidationError(f"invalid {kind} {value!r}: {rule}")
    if len(_KNOWN_GOOD) >= _KNOWN_GOOD_LIMIT:
        _KNOWN_GOOD.clear()
    _KNOWN_GOOD[key] = True
    return value


def tenant_id(value: object) -> str:
    """Validate a tenant id (a commune or intercommunality slug)."""
    return _check(_SLUG, value, "tenant id", "use 1-63 of a-z, 0-9 and '-', not starting with '-'")


def gateway_id(value: object) -> str:
    """Validate a gateway id."""
    return _check(_SLUG, value, "gateway id", "use 1-63 of a-z, 0-9 and '-', not starting with '-'")


def device_id(value: object) -> str:
    """Validate a device id (DevEUI, LNS device id or a local name)."""
    return _check(_DEVICE, value, "device id", "use 1-128 of A-Z, a-z, 0-9, '.', '_', ':', '-'")


def metric_name(value: object) -> str:
    """Validate a metric name (snake_case, as in the metric catalogue)."""
    return _check(_METRIC, value, "metric name", "use snake_case: a-z, 0-9, '_', max 64")


def new_boot_id() -> str:
    """A fresh boot id: random, so batch sequences of two boots never collide."""
    return uuid.uuid4().hex


def new_command_id() -> str:
    return uuid.uuid4().hex
