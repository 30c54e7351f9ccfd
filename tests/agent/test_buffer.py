"""The SQLite buffer: numbering, acks, caps, a full disk and SIGKILL."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from edge_agent.batcher import Batcher
from edge_agent.buffer import Buffer, NewBatch
from edge_agent.clock import Clock
from edge_agent.config import ClockConfig
from territoire_kernel.records import Quality, Reading
from territoire_kernel.wire import decode_batch

T0 = 1_732_330_800_000_000  # 2024-11-23T03:00:00Z


def _integrity(path: Path) -> str:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return str(db.execute("PRAGMA integrity_check").fetchone()[0])


def _readings(n: int, start: int = 0) -> list[Reading]:
    return [Reading("armoire-1", "power_w", float(start + i), T0 + (start + i) * 1000, "W") for i in range(n)]


def test_batches_are_numbered_stored_and_acked(tmp_path: Path) -> None:
    buf = Buffer(tmp_path / "b.db", "gw-1", "boot1")
    assert buf.append([NewBatch(_readings(3)), NewBatch(_readings(2, 3))], T0) == [0, 1]
    stored = buf.next_batches(0, 10)
    assert [(b.seq, b.items) for b in stored] == [(0, 3), (1, 2)]
    batch = decode_batch(stored[1].payload)
    assert (batch.gateway_id, batch.boot_id, batch.seq) == ("gw-1", "boot1", 1)
    assert [r.value for r in batch.readings] == [3.0, 4.0]
    buf.ack([stored[0].id])
    assert buf.depth() == (1, 2)
    assert [b.seq for b in buf.next_batches(0, 10)] == [1]
    buf.close()


def test_seq_is_persisted_per_boot(tmp_path: Path) -> None:
    buf = Buffer(tmp_path / "b.db", "gw-1", "boot1")
    buf.append([NewBatch(_readings(1))] * 3, T0)
    buf.ack([b.id for b in buf.next_batches(0, 10)])  # even with nothing left, seq continues
    buf.close()
    again = Buffer(tmp_path / "b.db", "gw-1", "boot1")
    assert again.append([NewBatch(_readings(1))], T0) == [3]
    again.close()
    other = Buffer(tmp_path / "b.db", "gw-1", "boot2")
    assert other.append([NewBatch(_readings(1))], T0) == [0]
    assert [(b.boot, b.seq) for b in other.next_batches(0, 10)] == [("boot1", 3), ("boot2", 0)]
    other.close()


def test_byte_cap_drops_oldest_and_counts(tmp_path: Path) -> None:
    buf = Buffer(tmp_path / "b.db", "gw-1", "boot1", max_bytes=64 * 1024)
    for k in range(40):
        buf.append([NewBatch(_readings(400, k * 400))], T0)
    assert buf.stored_bytes <= 64 * 1024
    kept = buf.next_batches(0, 1000)
    assert kept[-1].seq == 39 and kept[0].seq > 0
    # What is gone is exactly the oldest, and every dropped reading is counted.
    assert [b.seq for b in kept] == list(range(kept[0].seq, 40))
    assert buf.dropped_readings == kept[0].seq * 400
    assert buf.dropped_readings + buf.depth()[1] == 16_000
    buf.close()


def test_age_cap_drops_old_batches(tmp_path: Path) -> None:
    buf = Buffer(tmp_path / "b.db", "gw-1", "boot1", max_age_s=3600)
    buf.append([NewBatch(_readings(5), created_us=T0)], T0)
    buf.append([NewBatch(_readings(7), created_us=T0 + 7200 * 10**6)], T0 + 7200 * 10**6)
    assert buf.dropped_readings == 5
    assert [b.items for b in buf.next_batches(0, 10)] == [7]
    buf.close()


def test_full_disk_drops_oldest_without_crashing(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    buf = Buffer(path, "gw-1", "boot1")
    pages = buf.db.execute("PRAGMA page_count").fetchone()[0]
    buf.db.execute(f"PRAGMA max_page_count={pages + 40}")  # ~160 KiB: a tiny disk
    stored = 0
    for k in range(60):
        stored += len(buf.append([NewBatch(_readings(200, k * 200))], T0))
    assert stored == 60  # every append succeeded by making room
    assert buf.dropped_readings > 0
    assert buf.dropped_readings + buf.depth()[1] == 60 * 200
    remaining = buf.next_batches(0, 1000)
    assert [b.seq for b in remaining] == list(range(remaining[0].seq, 60))
    # Not even one batch fits: it is dropped and counted, nothing raises.
    buf.db.execute(f"PRAGMA max_page_count={buf.db.execute('PRAGMA page_count').fetchone()[0]}")
    buf.ack([b.id for b in remaining])
    before = buf.dropped_readings
    assert buf.append([NewBatch(_readings(20_000))], T0) == []  # ~500 KB on a ~160 KiB disk
    assert buf.dropped_readings == before + 20_000 and buf.depth() == (0, 0)
    assert len(buf.append([NewBatch(_readings(100))], T0)) == 1  # small batches still fit
    assert _integrity(path) == "ok"
    buf.close()


WRITER = textwrap.dedent(
    """
    import sys, time
    from edge_agent.buffer import Buffer, NewBatch
    from territoire_kernel.records import Reading
    buf = Buffer(sys.argv[1], "gw-1", "boot1")
    k = 0
    while True:
        rs = [Reading("armoire-1", "power_w", float(k * 100 + i), 1732330800000000 + k, "W") for i in range(100)]
        seqs = buf.append([NewBatch(rs)], 1732330800000000)
        print(seqs[0], flush=True)
        k += 1
    """
)


def test_sigkill_keeps_committed_batches_and_seq_continues(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parents[2],
    )
    assert proc.stdout is not None
    committed = -1
    deadline = time.monotonic() + 20
    while committed < 300 and time.monotonic() < deadline:
        committed = int(proc.stdout.readline())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(5)
    proc.stdout.close()
    assert committed >= 300
    buf = Buffer(path, "gw-1", "boot1")
    assert _integrity(path) == "ok"
    seqs = [b.seq for b in buf.next_batches(0, 100_000)]
    # Everything reported committed is there, in order, with no hole.
    assert seqs == list(range(len(seqs)))
    assert len(seqs) > committed
    assert all(decode_batch(b.payload).readings[99].value == b.seq * 100 + 99 for b in buf.next_batches(0, 5))
    assert buf.append([NewBatch(_readings(1))], T0) == [len(seqs)]
    buf.close()


def test_a_damaged_file_is_set_aside_and_a_new_buffer_started(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    buf = Buffer(path, "gw-1", "boot1")
    for k in range(20):
        buf.append([NewBatch(_readings(200, k * 200))], T0)
    buf.checkpoint()
    buf.close()
    with path.open("r+b") as damaged:  # an SD card returning garbage in the middle of the table
        damaged.seek(4096 * 2)
        damaged.write(os.urandom(4096 * 4))
    buf = Buffer(path, "gw-1", "boot2")
    assert buf.depth() == (0, 0)
    assert buf.append([NewBatch(_readings(10))], T0) == [0]
    assert _integrity(path) == "ok"
    (aside,) = tmp_path.glob("b.db.damaged-*[0-9]")
    assert aside.stat().st_size > 4096 * 6
    buf.close()
    path.write_bytes(b"not a database at all" * 500)
    assert Buffer(path, "gw-1", "boot3").depth() == (0, 0)


def test_pending_readings_are_capped_in_memory_while_the_buffer_fails(tmp_path: Path) -> None:
    buf = Buffer(tmp_path / "b.db", "gw-1", "boot1")
    clock = Clock(ClockConfig(policy="trusted"), buf)
    batcher = Batcher(buf, clock, batch_max_readings=100, max_pending=1000)
    real_append = buf.append

    def failing_append(*_args: object, **_kwargs: object) -> list[int]:
        raise sqlite3.OperationalError("disk I/O error")

    buf.append = failing_append  # type: ignore[method-assign]
    for k in range(15):
        batcher.sink(_readings(100, k * 100), [])
        with contextlib.suppress(sqlite3.OperationalError):
            batcher.flush()  # fails: the readings go back to the pending list
    assert batcher.pending() == 1000 and buf.dropped_readings == 500
    buf.append = real_append  # type: ignore[method-assign]
    assert batcher.flush() == 10
    values = [r.value for b in buf.next_batches(0, 100) for r in decode_batch(b.payload).readings]
    assert values == [float(v) for v in range(500, 1500)]  # the oldest were dropped, in order
    buf.close()


def test_an_agent_starts_on_a_full_disk(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    buf = Buffer(path, "gw-1", "boot1")
    buf.db.execute(f"PRAGMA max_page_count={buf.db.execute('PRAGMA page_count').fetchone()[0]}")
    for size in (1000, 100, 10, 1):  # fill the last free bytes too
        with contextlib.suppress(sqlite3.OperationalError):
            for n in range(10_000):
                buf.db.execute("INSERT INTO meta VALUES (?, ?)", (f"fill-{size}-{n}", "x" * size))
    clock = Clock(ClockConfig(policy="kernel"), buf, synced_probe=lambda: False, os_boot="osboot1")
    assert clock.stamp()[1] is Quality.CLOCK_UNSYNCED  # the anchor could not be saved; still works
    assert buf.append([NewBatch(_readings(20_000))], T0) == []
    assert buf.dropped_readings == 20_000
    buf.close()
