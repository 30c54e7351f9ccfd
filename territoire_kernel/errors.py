"""Error hierarchy shared by every part of territoire.

Callers catch these, never arbitrary exceptions: a decoder or parser that meets
bad input raises one of them with a message that says what to fix.
"""

from __future__ import annotations


class TerritoireError(Exception):
    """Base class of every error territoire raises on purpose."""


class ValidationError(TerritoireError, ValueError):
    """A value does not satisfy the contract (bad id, out-of-range field...)."""


class WireFormatError(TerritoireError, ValueError):
    """A message on the wire cannot be decoded into the kernel's records."""


class TopicError(TerritoireError, ValueError):
    """An MQTT topic does not follow the territoire topic scheme."""


class CodecError(TerritoireError, ValueError):
    """A device payload (LoRaWAN frame, Modbus registers) cannot be decoded."""


class ConfigError(TerritoireError):
    """A configuration file is invalid; the message names the file and field."""

    def __init__(self, message: str, *, field: str | None = None, source: str | None = None):
        self.field = field
        self.source = source
        where = ":".join(part for part in (source, field) if part)
        super().__init__(f"{where}: {message}" if where else message)
