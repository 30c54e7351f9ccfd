"""Time on a board without a real-time clock.

A Raspberry Pi boots with a wrong wall clock (1970, or the last time
fake-hwclock saved) until NTP synchronises it. The agent therefore:

* decides whether the wall clock is trusted from the kernel's NTP state
  (adjtimex() returns TIME_ERROR while STA_UNSYNC is set; systemd-timesyncd and
  chrony clear it: this is what `timedatectl` shows as "System clock
  synchronized"), or from a marker file, and in both cases only if the year is
  at least `min_year`;
* while untrusted, stamps readings on a timeline anchored once per OS boot:
  ``anchor_wall + (boottime_now - anchor_boottime)``, flagged CLOCK_UNSYNCED.
  The anchor is persisted, so an agent restart within the same OS boot keeps
  the same timeline;
* once trusted, knows the offset between that timeline and real time, so
  readings stamped before can be moved to their true time and flagged
  CLOCK_CORRECTED (and no longer CLOCK_UNSYNCED);
* detects wall-clock jumps (an NTP step, a manual `date`) as a change of the
  wall-minus-boottime difference, and logs them. Batch numbering never depends
  on time, so a jump cannot reorder or drop data;
* reports every step of its own time scale (`now_us()` minus boottime: the
  move from the unsynced timeline to real time, or a jump while synced) via
  `take_scale_shift()`, so the buffer moves the creation times of stored
  batches by the same amount: their age, which the age cap uses, stays the
  real elapsed time. The scale is persisted per OS boot, so a step while the
  agent was stopped is seen at the next start.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from territoire_kernel.errors import ValidationError
from territoire_kernel.records import Event, Quality, Reading

from .config import ClockConfig

log = logging.getLogger(__name__)

TIME_ERROR = 5  # adjtimex(): the clock is not synchronised
_UNSYNCED = int(Quality.CLOCK_UNSYNCED)
_CORRECTED = int(Quality.CLOCK_CORRECTED)


class AnchorStore(Protocol):
    def get_meta(self, key: str) -> str | None: ...

    def set_meta(self, key: str, value: str) -> None: ...


def kernel_clock_synced() -> bool:
    """The kernel's view (adjtimex with modes=0 only reads the state)."""
    import ctypes  # here: only the kernel policy needs it
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        # struct timex is 208 bytes on 64-bit Linux; `modes` (first field) = 0 means read-only.
        state = int(libc.adjtimex(ctypes.create_string_buffer(1024)))
    except (OSError, AttributeError):
        return False
    return state not in (-1, TIME_ERROR)


def os_boot_id() -> str:
    """Changes at every OS boot; the boottime clock is only comparable within one."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip().replace("-", "")
    except OSError:
        return "unknown"


def boottime_ns() -> int:
    # CLOCK_BOOTTIME keeps counting during suspend, unlike CLOCK_MONOTONIC.
    return time.clock_gettime_ns(getattr(time, "CLOCK_BOOTTIME", time.CLOCK_MONOTONIC))


@dataclasses.dataclass(frozen=True)
class ClockSynced:
    """Returned by Clock.refresh() when the clock becomes trusted."""

    os_boot: str
    offset_us: int  # add to a CLOCK_UNSYNCED time of this OS boot to get the true time


class Clock:
    def __init__(
        self,
        config: ClockConfig,
        store: AnchorStore | None = None,
        *,
        synced_probe: Callable[[], bool] | None = None,
        wall_ns: Callable[[], int] = time.time_ns,
        mono_ns: Callable[[], int] = boottime_ns,
        os_boot: str | None = None,
    ):
        self.config = config
        self.os_boot = os_boot or os_boot_id()
        self._wall_ns = wall_ns
        self._mono_ns = mono_ns
        self._probe = synced_probe or self._default_probe()
        self._floor_us = int(datetime(config.min_year, 1, 1, tzinfo=UTC).timestamp()) * 1_000_000
        self._store = store
        self._lock = threading.Lock()
        self._anchor = self._load_anchor()
        self._synced = False
        self._offset_us: int | None = None
        self._last_delta_us: int | None = None
        self.jumps = 0
        self._pending_shift_us = 0
        self._scale_us: int | None = None  # set after the first refresh has settled `synced`
        self.refresh()
        self._scale_us = self._current_scale_us()
        self._load_scale()

    def _default_probe(self) -> Callable[[], bool]:
        if self.config.policy == "trusted":
            return lambda: True
        if self.config.policy == "marker":
            marker = self.config.marker_file
            return marker.exists
        return kernel_clock_synced

    # ------------------------------------------------------------------ timeline

    def _load_anchor(self) -> tuple[int, int]:
        """(wall_us, mono_us) of this OS boot's unsynced timeline."""
        key = "clock_anchor"
        if self._store is not None:
            saved = self._store.get_meta(key)
            if saved is not None:
                boot, wall, mono = saved.split(":")
                if boot == self.os_boot:
                    return int(wall), int(mono)
        anchor = (max(self._wall_ns() // 1000, self._floor_us), self._mono_ns() // 1000)
        if self._store is not None:
            self._store.set_meta(key, f"{self.os_boot}:{anchor[0]}:{anchor[1]}")
        return anchor

    def _timeline_us(self) -> int:
        wall, mono = self._anchor
        return wall + self._mono_ns() // 1000 - mono

    # ------------------------------------------------------------------ time scale

    def _current_scale_us(self) -> int:
        """now_us() minus boottime: constant while time runs smoothly."""
        mono = self._mono_ns() // 1000
        now = self._wall_ns() // 1000 if self._synced else self._timeline_us()
        return now - mono

    def _load_scale(self) -> None:
        if self._store is None or self._scale_us is None:
            return
        saved = self._store.get_meta("clock_scale")
        if saved is not None:
            boot, scale = saved.split(":")
            if boot == self.os_boot and abs(self._scale_us - int(scale)) > self.config.jump_threshold_s * 1e6:
                self._pending_shift_us += self._scale_us - int(scale)  # stepped while we were stopped
        self._save_scale()

    def _save_scale(self) -> None:
        if self._store is not None:
            self._store.set_meta("clock_scale", f"{self.os_boot}:{self._scale_us}")

    def _track_scale(self) -> None:
        if self._scale_us is None:
            return
        scale = self._current_scale_us()
        step = scale - self._scale_us
        self._scale_us = scale  # slow NTP slewing is followed silently, steps are reported
        if abs(step) > self.config.jump_threshold_s * 1e6:
            self._pending_shift_us += step
            self._save_scale()

    def take_scale_shift(self) -> int:
        """Microseconds now_us() stepped since the last call (0 if none); add them to stored times."""
        with self._lock:
            shift, self._pending_shift_us = self._pending_shift_us, 0
        return shift

    # ------------------------------------------------------------------ state

    @property
    def synced(self) -> bool:
        return self._synced

    @property
    def offset_us(self) -> int | None:
        """Correction for unsynced stamps of this OS boot, once synced."""
        return self._offset_us

    def refresh(self) -> ClockSynced | None:
        """Re-read the sync state; called about once a second by the agent."""
        wall_us = self._wall_ns() // 1000
        delta = wall_us - self._mono_ns() // 1000
        if (
            self._last_delta_us is not None
            and abs(delta - self._last_delta_us) > self.config.jump_threshold_s * 1e6
        ):
            self.jumps += 1
            log.warning("wall clock jumped by %+.3f s", (delta - self._last_delta_us) / 1e6)
        self._last_delta_us = delta
        try:
            trusted = bool(self._probe())
        except OSError:
            trusted = False
        trusted = trusted and wall_us >= self._floor_us
        with self._lock:
            was = self._synced
            self._synced = trusted
            if trusted and not was:
                self._offset_us = wall_us - self._timeline_us()
                log.info("clock synchronised; unsynced stamps move by %+.3f s", self._offset_us / 1e6)
                self._track_scale()
                return ClockSynced(self.os_boot, self._offset_us)
            if was and not trusted:
                log.warning("clock no longer synchronised; stamping on the monotonic timeline")
                # A fresh anchor keeps the timeline continuous with the last trusted time.
                self._anchor = (
                    wall_us if wall_us >= self._floor_us else self._timeline_us(),
                    self._mono_ns() // 1000,
                )
                self._offset_us = None
                if self._store is not None:
                    self._store.set_meta(
                        "clock_anchor", f"{self.os_boot}:{self._anchor[0]}:{self._anchor[1]}"
                    )
            self._track_scale()
        return None

    def stamp(self) -> tuple[int, Quality]:
        """The Stamper handed to the sources: (time_us, quality)."""
        if self._synced:
            return self._wall_ns() // 1000, Quality.GOOD
        return self._timeline_us(), Quality.CLOCK_UNSYNCED

    def now_us(self) -> int:
        return self.stamp()[0]

    def status(self) -> dict[str, object]:
        return {"synced": self._synced, "policy": self.config.policy, "jumps": self.jumps}


def correct_reading(reading: Reading, offset_us: int) -> Reading:
    """Move an unsynced reading to its true time; unchanged if that is implausible."""
    if not reading.quality & _UNSYNCED:
        return reading
    try:
        return dataclasses.replace(
            reading,
            time_us=reading.time_us + offset_us,
            quality=Quality((int(reading.quality) & ~_UNSYNCED) | _CORRECTED),
        )
    except ValidationError:
        return reading


def correct_event(event: Event, offset_us: int) -> Event:
    if not event.quality & _UNSYNCED:
        return event
    try:
        return dataclasses.replace(
            event,
            time_us=event.time_us + offset_us,
            quality=Quality((int(event.quality) & ~_UNSYNCED) | _CORRECTED),
        )
    except ValidationError:
        return event
