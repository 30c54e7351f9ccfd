"""Shared test helpers: a collecting sink and a clock stamper."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from territoire_kernel.records import Event, Quality, Reading


def stamper() -> tuple[int, Quality]:
    return time.time_ns() // 1000, Quality.GOOD


class Collector:
    """A thread-safe sink that remembers what arrived and when (monotonic)."""

    def __init__(self) -> None:
        self.readings: list[tuple[float, Reading]] = []
        self.events: list[Event] = []
        self._cond = threading.Condition()

    def __call__(self, readings: Sequence[Reading], events: Sequence[Event]) -> None:
        now = time.monotonic()
        with self._cond:
            self.readings.extend((now, r) for r in readings)
            self.events.extend(events)
            self._cond.notify_all()

    def wait_for(self, predicate: Callable[[Collector], bool], timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"condition not met in {timeout} s; got {self.summary()}")
                self._cond.wait(remaining)

    def values(self, device: str, metric: str) -> list[float]:
        with self._cond:
            return [r.value for _, r in self.readings if r.device_id == device and r.metric == metric]

    def times(self, device: str, metric: str) -> list[float]:
        with self._cond:
            return [t for t, r in self.readings if r.device_id == device and r.metric == metric]

    def summary(self) -> str:
        with self._cond:
            seen = sorted({(r.device_id, r.metric) for _, r in self.readings})
            return f"{len(self.readings)} readings {seen[:20]}, events {[e.kind for e in self.events][:20]}"
