"""territoire's shared kernel: records, ids, topics, wire format and errors.

It imports nothing else of the project, so every service can depend on it.
"""

from .errors import (
    CodecError,
    ConfigError,
    TerritoireError,
    TopicError,
    ValidationError,
    WireFormatError,
)
from .records import Event, Quality, Reading, from_time_us, to_time_us

__all__ = [
    "CodecError",
    "ConfigError",
    "Event",
    "Quality",
    "Reading",
    "TerritoireError",
    "TopicError",
    "ValidationError",
    "WireFormatError",
    "from_time_us",
    "to_time_us",
]
