"""The sink the sources write to, and the thread that turns it into stored batches.

Sources call `sink()` from their own threads; it only appends to a list. The
flush thread wakes every `tick_s`, refreshes the clock (so a synchronisation is
seen, and held batches corrected, before any newer batch is stored), and once
per flush interval (or as soon as a full batch is waiting) stores everything
pending in one SQLite transaction. If the database cannot be written (a dying
SD card), readings wait in memory up to `max_pending`; beyond that the oldest
are dropped and counted, rather than the agent running out of memory.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Sequence

from territoire_kernel.messages import Batch
from territoire_kernel.records import Event, Quality, Reading

from .buffer import Buffer, NewBatch
from .clock import Clock, correct_event, correct_reading
from .repeat_log import RepeatLog

log = logging.getLogger(__name__)
_UNSYNCED = Quality.CLOCK_UNSYNCED


class Batcher:
    def __init__(
        self,
        buffer: Buffer,
        clock: Clock,
        *,
        batch_max_readings: int = 500,
        flush_interval_s: float = 5.0,
        hold_unsynced_s: float = 6 * 3600.0,
        checkpoint_interval_s: float = 60.0,
        tick_s: float = 0.25,
        max_pending: int | None = None,
    ):
        self.buffer = buffer
        self.clock = clock
        self.batch_max = batch_max_readings
        self.flush_interval_s = flush_interval_s
        self.hold_unsynced_s = hold_unsynced_s
        self.checkpoint_interval_s = checkpoint_interval_s
        self.tick_s = min(tick_s, flush_interval_s)
        self.max_pending = max_pending or max(10_000, 100 * batch_max_readings)
        self._overflowing = False
        self._readings: list[Reading] = []
        self._events: list[Event] = []
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_flush_mono = time.monotonic()
        self.flushes = 0
        self.errors = 0
        self._unapplied_shift_us = 0
        self._failures = RepeatLog(log, "storing readings in the buffer")

    # Called by the sources' threads: must be quick and thread-safe.
    def sink(self, readings: Sequence[Reading], events: Sequence[Event]) -> None:
        with self._cond:
            self._readings.extend(readings)
            self._events.extend(events)
            pending = len(self._readings) + len(self._events)
            if pending > self.max_pending:
                self._drop_oldest_pending(pending - self.max_pending)
            if pending >= self.batch_max:
                self._cond.notify()

    def _drop_oldest_pending(self, excess: int) -> None:
        from_readings = min(excess, len(self._readings))
        del self._readings[:from_readings]
        del self._events[: excess - from_readings]
        self.buffer.count_dropped(excess, "pending in memory while the buffer cannot be written")
        if not self._overflowing:  # log the state change, not every drop
            self._overflowing = True
            log.error("buffer not writable and %d readings pending: dropping the oldest", self.max_pending)

    def pending(self) -> int:
        with self._cond:
            return len(self._readings) + len(self._events)

    def start(self) -> None:
        # Another OS boot's held batches can never be corrected: publish them flagged.
        for boot in self.buffer.held_boots() - {self.clock.os_boot}:
            released = self.buffer.release(boot)
            log.warning("%d batches stamped before a reboot without clock sync go out uncorrected", released)
        self._follow_clock_steps()
        self._after_clock_refresh(self.clock.synced)
        self._thread = threading.Thread(target=self._run, name="agent-flush", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and store what is pending (a clean shutdown loses nothing)."""
        self._stop.set()
        with self._cond:
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(10)
        self.flush()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        last_checkpoint = time.monotonic()
        while not self._stop.is_set():
            with self._cond:
                if len(self._readings) + len(self._events) < self.batch_max:
                    self._cond.wait(self.tick_s)
            try:
                just_synced = self.clock.refresh() is not None
                self._follow_clock_steps()
                self._after_clock_refresh(just_synced)
                due = time.monotonic() - self.last_flush_mono >= self.flush_interval_s
                if due or self.pending() >= self.batch_max:
                    self.flush()
                if time.monotonic() - last_checkpoint >= self.checkpoint_interval_s:
                    self.buffer.checkpoint()
                    last_checkpoint = time.monotonic()
            except Exception as exc:  # the flush thread must survive anything; the data stays pending
                self.errors += 1
                self._failures.failed(exc)
                self._stop.wait(1.0)
            else:
                self._failures.ok()

    def _follow_clock_steps(self) -> None:
        # Before anything is stored with the new scale: the age cap compares against it.
        self._unapplied_shift_us += self.clock.take_scale_shift()
        if self._unapplied_shift_us:
            self.buffer.shift_created(self._unapplied_shift_us)  # if it fails: retried next tick
            log.info("clock stepped by %+.3f s; stored batch ages kept", self._unapplied_shift_us / 1e6)
            self._unapplied_shift_us = 0

    def _after_clock_refresh(self, just_synced: bool) -> None:
        offset = self.clock.offset_us
        if just_synced and offset is not None:
            fixed = self.buffer.correct_held(self.clock.os_boot, lambda b: _correct_batch(b, offset))
            if fixed:
                log.info("%d batches stamped before clock sync corrected by %+.3f s", fixed, offset / 1e6)
        elif not self.clock.synced and self.hold_unsynced_s >= 0:
            limit = self.clock.now_us() - int(self.hold_unsynced_s * 1e6)
            released = self.buffer.release(older_than_us=limit)
            if released:
                log.warning(
                    "%d batches waited %.0f s for clock sync; sent uncorrected",
                    released,
                    self.hold_unsynced_s,
                )

    def flush(self) -> int:
        """Store everything pending; returns the number of batches stored."""
        with self._cond:
            readings, self._readings = self._readings, []
            events, self._events = self._events, []
        self.last_flush_mono = time.monotonic()
        if not readings and not events:
            return 0
        offset = self.clock.offset_us
        if self.clock.synced and offset is not None:
            # Stamped just before the sync was seen: correct them now.
            readings = [correct_reading(r, offset) if r.quality & _UNSYNCED else r for r in readings]
            events = [correct_event(e, offset) if e.quality & _UNSYNCED else e for e in events]
        batches = []
        now_us = self.clock.now_us()
        step = self.batch_max
        for start in range(0, len(readings), step):
            chunk = readings[start : start + step]
            batches.append(NewBatch(chunk, (), self._hold(chunk, ()), now_us))
        for start in range(0, len(events), step):
            echunk = events[start : start + step]
            batches.append(NewBatch((), echunk, self._hold((), echunk), now_us))
        try:
            self.buffer.append(batches, now_us)
        except Exception:
            with self._cond:  # put them back in front: nothing is lost while the process lives
                self._readings[:0] = readings
                self._events[:0] = events
            raise
        self.flushes += 1
        if self._overflowing:
            self._overflowing = False
            log.warning("buffer writable again; in-memory drops stopped")
        return len(batches)

    def _hold(self, readings: Sequence[Reading], events: Sequence[Event]) -> str | None:
        if self.clock.synced:
            return None
        unsynced = any(r.quality & _UNSYNCED for r in readings) or any(e.quality & _UNSYNCED for e in events)
        return self.clock.os_boot if unsynced else None


def _correct_batch(batch: Batch, offset_us: int) -> Batch:
    return dataclasses.replace(
        batch,
        readings=tuple(correct_reading(r, offset_us) for r in batch.readings),
        events=tuple(correct_event(e, offset_us) for e in batch.events),
    )
