"""No RTC: unsynced stamps are flagged, held, corrected after sync; jumps never reorder seq."""

from __future__ import annotations

import time
from pathlib import Path

from edge_agent.batcher import Batcher
from edge_agent.buffer import Buffer
from edge_agent.clock import Clock, correct_reading
from edge_agent.config import ClockConfig
from territoire_kernel.records import Quality, Reading
from territoire_kernel.wire import decode_batch

TRUE_NOW_US = 1_732_330_800_000_000  # 2024-11-23T03:00:00Z
FLOOR_US = 1_704_067_200_000_000  # 2024-01-01, min_year


class FakeTime:
    """A board clock: wall starts at 1970 (no RTC), boottime counts from boot."""

    def __init__(self) -> None:
        self.wall_us = 5_000_000
        self.mono_us = 5_000_000
        self.synced = False

    def wall_ns(self) -> int:
        return self.wall_us * 1000

    def mono_ns(self) -> int:
        return self.mono_us * 1000

    def advance(self, seconds: float) -> None:
        self.wall_us += int(seconds * 1e6)
        self.mono_us += int(seconds * 1e6)

    def ntp_sync(self) -> None:
        self.wall_us = TRUE_NOW_US
        self.synced = True


def _clock(t: FakeTime, store: Buffer | None = None, os_boot: str = "osboot1") -> Clock:
    return Clock(
        ClockConfig(policy="kernel"),
        store,
        synced_probe=lambda: t.synced,
        wall_ns=t.wall_ns,
        mono_ns=t.mono_ns,
        os_boot=os_boot,
    )


def test_unsynced_stamps_are_flagged_plausible_and_monotonic() -> None:
    t = FakeTime()
    clock = _clock(t)
    first, quality = clock.stamp()
    assert quality is Quality.CLOCK_UNSYNCED and not clock.synced
    assert first >= FLOOR_US  # a valid kernel time, never 1970
    t.advance(2.5)
    assert clock.stamp()[0] - first == 2_500_000


def test_sync_gives_the_offset_that_corrects_earlier_stamps() -> None:
    t = FakeTime()
    clock = _clock(t)
    stamped, quality = clock.stamp()
    reading = Reading("armoire-1", "power_w", 1.0, stamped, "W", quality)
    t.advance(30)  # measured 30 s before NTP answers
    t.ntp_sync()
    change = clock.refresh()
    assert change is not None and clock.synced
    fixed = correct_reading(reading, change.offset_us)
    assert fixed.time_us == TRUE_NOW_US - 30_000_000
    assert fixed.quality is Quality.CLOCK_CORRECTED
    assert clock.stamp() == (TRUE_NOW_US, Quality.GOOD)


def test_anchor_survives_an_agent_restart_in_the_same_os_boot(tmp_path: Path) -> None:
    t = FakeTime()
    store = Buffer(tmp_path / "b.db", "gw-1", "boot1")
    before = _clock(t, store).stamp()[0]
    t.advance(10)
    assert _clock(t, store).stamp()[0] == before + 10_000_000
    assert _clock(t, store, os_boot="osboot2").stamp()[0] != before + 10_000_000
    store.close()


def test_jumps_are_detected() -> None:
    t = FakeTime()
    t.ntp_sync()
    clock = _clock(t)
    t.wall_us -= 3600 * 10**6  # someone sets the clock back an hour
    clock.refresh()
    assert clock.jumps == 1
    t.advance(1)
    clock.refresh()
    assert clock.jumps == 1


def _wait(predicate: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_held_batches_are_corrected_before_publication_and_seq_order_kept(tmp_path: Path) -> None:
    t = FakeTime()
    buf = Buffer(tmp_path / "b.db", "gw-1", "boot1")
    clock = _clock(t, buf)
    batcher = Batcher(buf, clock, flush_interval_s=0.05, tick_s=0.02)
    batcher.start()
    try:
        stamped, quality = clock.stamp()
        batcher.sink([Reading("armoire-1", "power_w", 1.0, stamped, "W", quality)], [])
        _wait(lambda: buf.depth()[0] == 1)
        assert buf.next_batches(0, 10) == []  # held: not publishable with a wrong time
        t.advance(60)
        t.ntp_sync()
        _wait(lambda: len(buf.next_batches(0, 10)) == 1)
        batcher.sink([Reading("armoire-1", "power_w", 2.0, clock.stamp()[0], "W")], [])
        _wait(lambda: len(buf.next_batches(0, 10)) == 2)
    finally:
        batcher.stop()
    first, second = (decode_batch(b.payload) for b in buf.next_batches(0, 10))
    assert (first.seq, second.seq) == (0, 1)
    assert first.readings[0].time_us == TRUE_NOW_US - 60_000_000
    assert first.readings[0].quality is Quality.CLOCK_CORRECTED
    assert second.readings[0].quality is Quality.GOOD
    buf.close()


def test_held_batches_of_another_os_boot_go_out_flagged(tmp_path: Path) -> None:
    t = FakeTime()
    buf = Buffer(tmp_path / "b.db", "gw-1", "boot1")
    clock = _clock(t, buf, os_boot="osboot1")
    batcher = Batcher(buf, clock, flush_interval_s=0.05)
    stamped, quality = clock.stamp()
    batcher.sink([Reading("armoire-1", "power_w", 1.0, stamped, "W", quality)], [])
    batcher.flush()
    assert buf.next_batches(0, 10) == []
    buf.close()
    # The Pi rebooted before NTP answered: that boottime is gone, the time cannot be corrected.
    buf = Buffer(tmp_path / "b.db", "gw-1", "boot2")
    rebooted = Batcher(buf, _clock(t, buf, os_boot="osboot2"))
    rebooted.start()
    rebooted.stop()
    (batch,) = [decode_batch(b.payload) for b in buf.next_batches(0, 10)]
    assert batch.readings[0].quality is Quality.CLOCK_UNSYNCED
    buf.close()


def test_marker_policy_needs_the_file_and_a_plausible_year(tmp_path: Path) -> None:
    marker = tmp_path / "synchronized"
    config = ClockConfig(policy="marker", marker_file=marker)
    assert not Clock(config).synced
    marker.touch()
    assert Clock(config).synced
    assert not Clock(config, wall_ns=lambda: 5 * 10**9).synced  # 1970 is never trusted


def test_first_sync_and_clock_jumps_never_age_batches_out(tmp_path: Path) -> None:
    """The unsynced timeline starts at min_year, months before the true time: a naive
    age check after the first NTP sync would drop every batch stored before it."""
    t = FakeTime()
    buf = Buffer(tmp_path / "b.db", "gw-1", "boot1", max_age_s=30 * 86_400)
    clock = _clock(t, buf)
    batcher = Batcher(buf, clock, flush_interval_s=0.05)
    batcher.start()
    batcher.stop()  # the thread is not needed: ticks are driven below

    def tick() -> None:  # what the flush thread does at each tick
        just_synced = clock.refresh() is not None
        batcher._follow_clock_steps()
        batcher._after_clock_refresh(just_synced)

    def store(value: float) -> None:
        stamped, quality = clock.stamp()
        batcher.sink([Reading("armoire-1", "power_w", value, stamped, "W", quality)], [])
        batcher.flush()

    store(1.0)
    t.advance(60)
    t.ntp_sync()
    tick()
    store(2.0)
    t.wall_us += 40 * 86_400 * 10**6  # a wrong NTP step of 40 days while synced
    tick()
    store(3.0)
    assert buf.dropped_readings == 0 and buf.depth() == (3, 3)
    oldest = buf.oldest_created_us()
    assert oldest is not None and abs(clock.now_us() - oldest - 60_000_000) < 1_000_000
    t.advance(31 * 86_400)  # really 31 days later: now the age cap applies
    tick()
    store(4.0)
    assert buf.dropped_readings == 3 and buf.depth() == (1, 1)
    buf.close()


def test_a_step_while_the_agent_was_stopped_is_followed_at_start(tmp_path: Path) -> None:
    t = FakeTime()
    t.ntp_sync()
    buf = Buffer(tmp_path / "b.db", "gw-1", "boot1", max_age_s=86_400)
    clock = _clock(t, buf)
    Batcher(buf, clock).flush()
    assert clock.take_scale_shift() == 0
    t.wall_us += 3 * 86_400 * 10**6  # set forward while the agent was down
    restarted = _clock(t, buf)
    assert restarted.take_scale_shift() == 3 * 86_400 * 10**6
    assert _clock(t, buf).take_scale_shift() == 0  # followed once, not at every start
    buf.close()
