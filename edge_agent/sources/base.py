"""The contract between the agent core and its data sources.

A source owns its transport (a serial bus, a Modbus TCP link, an LNS
subscription) and its thread(s). It hands what it decodes to a sink and runs
commands for the devices it owns on its own thread, so writes and polls of one
bus never interleave.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future

from territoire_kernel.errors import TerritoireError
from territoire_kernel.records import AttrValue, Event, Quality, Reading

# Receives decoded records; must be thread-safe and must not block for long.
Sink = Callable[[Sequence[Reading], Sequence[Event]], None]

# Returns (time_us, quality): the gateway clock's best idea of "now", flagged
# CLOCK_UNSYNCED while the system clock cannot be trusted (no RTC).
Stamper = Callable[[], tuple[int, Quality]]


class CommandError(TerritoireError):
    """A command could not be carried out; the message says why."""


class Source(abc.ABC):
    """A running producer of readings; recovers from every transport error."""

    name: str

    @abc.abstractmethod
    def start(self, sink: Sink) -> None:
        """Start polling/subscribing in background thread(s); return at once."""

    @abc.abstractmethod
    def stop(self, timeout: float = 5.0) -> None:
        """Stop and join the thread(s)."""

    @abc.abstractmethod
    def owns(self, device_id: str) -> bool:
        """Whether commands for this device go through this source."""

    @abc.abstractmethod
    def execute(self, device_id: str, action: str, params: Mapping[str, AttrValue]) -> Future[str]:
        """Run a command on the source's own thread.

        The future resolves to a short detail text, or fails with CommandError.
        """

    def supports_duration(self, device_id: str, action: str) -> bool:
        """Whether the device times a switch itself; otherwise the agent schedules the switch-off."""
        return False

    @abc.abstractmethod
    def health(self) -> dict[str, object]:
        """State for doctor and metrics (connected, devices answering, errors)."""
