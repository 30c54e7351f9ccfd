"""Durable store-and-forward buffer in SQLite (WAL).

Batches are stored already encoded (kernel CBOR), numbered (boot id, seq) in
the same transaction that stores them, and deleted only once the broker has
acknowledged them. SD-card friendly: the agent commits once per flush interval
(many batches per transaction) and deletes acknowledged batches in groups.

Durability (docs/agent.md): with WAL and synchronous=NORMAL a commit survives a
crash or SIGKILL of the agent; after a power cut SQLite rolls back to the last
synced WAL state, so commits since the last checkpoint (which the agent runs
every `checkpoint_interval_s`) may be lost, never corrupted. synchronous=FULL
syncs every commit instead, one fsync per flush interval.

Caps: when the stored bytes exceed `max_bytes`, or a batch is older than
`max_age_s`, the OLDEST batches are deleted and their readings counted in
`dropped_readings`. A full disk (SQLITE_FULL) is handled the same way. Ages
are measured on the agent's clock; when its time scale steps (first NTP sync,
a jump) the creation times are moved by the same step (`shift_created`), so a
clock change never ages batches out.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from territoire_kernel.messages import Batch
from territoire_kernel.records import Event, Reading
from territoire_kernel.wire import decode_batch, encode

log = logging.getLogger(__name__)

BatchFix = Callable[[Batch], Batch]

_DAMAGED = {sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB}

# Rough SQLite cost of one row beyond its payload (b-tree cell, index entry).
ROW_OVERHEAD_BYTES = 64

_SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    boot TEXT NOT NULL,
    seq INTEGER NOT NULL,
    items INTEGER NOT NULL,
    created_us INTEGER NOT NULL,
    hold TEXT,                 -- OS boot id while the batch waits for a clock correction
    payload BLOB NOT NULL,
    UNIQUE (boot, seq)
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass(frozen=True)
class NewBatch:
    readings: Sequence[Reading]
    events: Sequence[Event] = ()
    hold: str | None = None  # OS boot id if it holds CLOCK_UNSYNCED stamps
    created_us: int = 0


@dataclass(frozen=True)
class StoredBatch:
    id: int
    boot: str
    seq: int
    items: int
    created_us: int
    payload: bytes


def _is_full(exc: sqlite3.Error) -> bool:
    return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or "full" in str(exc)


class Buffer:
    """Thread-safe: one connection behind a lock (writes are few and large)."""

    def __init__(
        self,
        path: Path | str,
        gateway_id: str,
        boot_id: str,
        *,
        max_bytes: int = 256 * 1024 * 1024,
        max_age_s: float | None = None,
        synchronous: str = "normal",
    ):
        self.path = Path(path)
        self.gateway_id = gateway_id
        self.boot_id = boot_id
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self.dropped_readings = 0  # since this boot, as Status reports it
        self.dropped_batches = 0
        self._lock = threading.Lock()
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            row = self._open(synchronous)
        except sqlite3.DatabaseError as exc:
            if getattr(exc, "sqlite_errorcode", None) not in _DAMAGED or str(path) == ":memory:":
                raise
            # A damaged SD card must not stop the agent for good (systemd would restart it in a loop).
            self.db.close()
            aside = self.set_aside()
            log.error("buffer %s is damaged (%s): moved to %s, starting an empty one", path, exc, aside)
            row = self._open(synchronous)
        self._batches, self._items, payload_bytes, self._next_seq = row
        self._bytes = payload_bytes + ROW_OVERHEAD_BYTES * self._batches
        self.release_generation = 0

    def _open(self, synchronous: str) -> tuple[int, int, int, int]:
        """Open the file; (batches, readings, payload bytes, next seq)."""
        self.db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA busy_timeout=5000")  # the command store shares the file
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(f"PRAGMA synchronous={'FULL' if synchronous == 'full' else 'NORMAL'}")
        self.db.execute("PRAGMA journal_size_limit=8388608")  # WAL truncated back to 8 MiB after checkpoints
        self.db.executescript(_SCHEMA)
        row = self.db.execute(  # reads every row's header: a damaged table shows up here
            "SELECT count(*), coalesce(sum(items), 0), coalesce(sum(length(payload)), 0) FROM batches"
        ).fetchone()
        return int(row[0]), int(row[1]), int(row[2]), self._load_seq()

    def set_aside(self) -> Path:
        """Rename the damaged file (and its WAL) out of the way; kept for a post-mortem."""
        aside = self.path.with_name(f"{self.path.name}.damaged-{time.strftime('%Y%m%dT%H%M%S')}")
        for suffix in ("", "-wal", "-shm"):
            part = Path(f"{self.path}{suffix}")
            if part.exists():
                part.rename(Path(f"{aside}{suffix}"))
        return aside

    def _load_seq(self) -> int:
        stored = self.db.execute("SELECT max(seq) FROM batches WHERE boot = ?", (self.boot_id,)).fetchone()[0]
        saved = self.get_meta(f"seq:{self.boot_id}")
        candidates = [0, int(saved) if saved is not None else 0, (stored + 1) if stored is not None else 0]
        # Other boots never number new batches again: forget their counters.
        self.db.execute("DELETE FROM meta WHERE key LIKE 'seq:%' AND key != ?", (f"seq:{self.boot_id}",))
        return max(candidates)

    # ------------------------------------------------------------------ meta

    def get_meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        """Best effort (clock anchors): a full disk must not stop the agent for them."""
        with self._lock:
            try:
                self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))
            except sqlite3.OperationalError as exc:
                if not _is_full(exc):
                    raise
                log.warning("disk full: %s not saved", key)

    # ------------------------------------------------------------------ write

    @property
    def next_seq(self) -> int:
        return self._next_seq

    def append(self, batches: Sequence[NewBatch], now_us: int) -> list[int]:
        """Number, encode and store batches in ONE transaction; returns their seqs.

        On a full disk the oldest batches are dropped (and counted) until the
        new ones fit; if even an empty buffer cannot hold them, they are dropped
        and counted too. Never raises for a full disk.
        """
        if not batches:
            return []
        with self._lock:
            for _attempt in range(50):
                try:
                    return self._append_locked(batches, now_us)
                except sqlite3.OperationalError as exc:
                    if not _is_full(exc):
                        raise
                    self._rollback()
                    if self._batches == 0:
                        lost = sum(len(b.readings) + len(b.events) for b in batches)
                        self.dropped_readings += lost
                        self.dropped_batches += len(batches)
                        log.error("disk full with an empty buffer: %d readings dropped", lost)
                        return []
                    self._drop_oldest_locked(max(1, self._batches // 10), "disk full")
            raise sqlite3.OperationalError("database or disk is full (no room after 50 attempts)")

    def _append_locked(self, batches: Sequence[NewBatch], now_us: int) -> list[int]:
        seq = self._next_seq
        rows = []
        added_items = added_bytes = 0
        for new in batches:
            payload = encode(
                Batch(self.gateway_id, self.boot_id, seq, tuple(new.readings), tuple(new.events))
            )
            items = len(new.readings) + len(new.events)
            rows.append((self.boot_id, seq, items, new.created_us or now_us, new.hold, payload))
            added_items += items
            added_bytes += len(payload) + ROW_OVERHEAD_BYTES
            seq += 1
        self.db.execute("BEGIN IMMEDIATE")
        self.db.executemany(
            "INSERT INTO batches (boot, seq, items, created_us, hold, payload) VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )
        self.db.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (f"seq:{self.boot_id}", str(seq))
        )
        self._batches += len(rows)
        self._items += added_items
        self._bytes += added_bytes
        try:
            self._enforce_caps_locked(now_us)
            self.db.execute("COMMIT")
        except BaseException:
            self._batches -= len(rows)
            self._items -= added_items
            self._bytes -= added_bytes
            raise
        seqs = list(range(self._next_seq, seq))
        self._next_seq = seq
        return seqs

    def _enforce_caps_locked(self, now_us: int) -> None:
        if self.max_age_s is not None:
            limit = now_us - int(self.max_age_s * 1e6)
            old = self.db.execute("SELECT count(*) FROM batches WHERE created_us < ?", (limit,)).fetchone()[0]
            if old:
                self._drop_oldest_locked(int(old), "older than max_age_s", in_transaction=True)
        while self._bytes > self.max_bytes and self._batches > 0:
            # Drop about what exceeds the cap in one statement (estimated from the mean batch size).
            mean = max(1, self._bytes // self._batches)
            self._drop_oldest_locked(
                max(1, -(-(self._bytes - self.max_bytes) // mean)), "over max_bytes", True
            )

    def _drop_oldest_locked(self, count: int, why: str, in_transaction: bool = False) -> None:
        rows = self.db.execute(
            "SELECT id, items, length(payload) FROM batches ORDER BY id LIMIT ?", (count,)
        ).fetchall()
        if not rows:
            return
        if not in_transaction:
            self.db.execute("BEGIN IMMEDIATE")
        self.db.execute("DELETE FROM batches WHERE id <= ?", (rows[-1][0],))
        if not in_transaction:
            self.db.execute("COMMIT")
        items = sum(r[1] for r in rows)
        self._batches -= len(rows)
        self._items -= items
        self._bytes -= sum(r[2] for r in rows) + ROW_OVERHEAD_BYTES * len(rows)
        self.dropped_batches += len(rows)
        self.dropped_readings += items
        log.warning("buffer %s: dropped the %d oldest batches (%d readings)", why, len(rows), items)

    def count_dropped(self, readings: int, why: str) -> None:
        """Readings lost before reaching the buffer (e.g. the database cannot be written)."""
        with self._lock:
            self.dropped_readings += readings
        log.debug("%d readings dropped: %s", readings, why)

    def _rollback(self) -> None:
        if self.db.in_transaction:
            self.db.execute("ROLLBACK")

    # ------------------------------------------------------------------ read / ack

    def next_batches(self, after_id: int, limit: int, skip: Iterable[int] = ()) -> list[StoredBatch]:
        """Publishable batches (not held for a clock correction) in storage order."""
        skipped = set(skip)
        with self._lock:
            rows = self.db.execute(
                "SELECT id, boot, seq, items, created_us, payload FROM batches"
                " WHERE id > ? AND hold IS NULL ORDER BY id LIMIT ?",
                (after_id, limit + len(skipped)),
            ).fetchall()
        batches = [
            StoredBatch(r[0], r[1], r[2], r[3], r[4], bytes(r[5])) for r in rows if r[0] not in skipped
        ]
        return batches[:limit]

    def ack(self, ids: Sequence[int]) -> None:
        """Delete batches the broker acknowledged (one transaction)."""
        if not ids:
            return
        with self._lock:
            marks = ",".join("?" * len(ids))
            try:
                self.db.execute("BEGIN IMMEDIATE")
                gone = self.db.execute(
                    f"SELECT count(*), coalesce(sum(items), 0), coalesce(sum(length(payload)), 0)"
                    f" FROM batches WHERE id IN ({marks})",
                    list(ids),
                ).fetchone()
                self.db.execute(f"DELETE FROM batches WHERE id IN ({marks})", list(ids))
                self.db.execute("COMMIT")
            except sqlite3.OperationalError:
                self._rollback()
                raise
            self._batches -= int(gone[0])
            self._items -= int(gone[1])
            self._bytes -= int(gone[2]) + ROW_OVERHEAD_BYTES * int(gone[0])

    # ------------------------------------------------------------------ clock holds

    def held_boots(self) -> set[str]:
        with self._lock:
            return {r[0] for r in self.db.execute("SELECT DISTINCT hold FROM batches WHERE hold IS NOT NULL")}

    def release(self, os_boot: str | None = None, *, older_than_us: int | None = None) -> int:
        """Publish held batches uncorrected (flagged CLOCK_UNSYNCED): another OS boot's, or too old."""
        with self._lock:
            if os_boot is not None:
                cur = self.db.execute("UPDATE batches SET hold = NULL WHERE hold = ?", (os_boot,))
            elif older_than_us is not None:
                cur = self.db.execute(
                    "UPDATE batches SET hold = NULL WHERE hold IS NOT NULL AND created_us < ?",
                    (older_than_us,),
                )
            else:
                return 0
            if cur.rowcount:
                self.release_generation += 1
            return int(cur.rowcount)

    def correct_held(self, os_boot: str, fix: BatchFix) -> int:
        """Rewrite this OS boot's held batches with corrected times, then release them."""
        with self._lock:
            rows = self.db.execute("SELECT id, payload FROM batches WHERE hold = ?", (os_boot,)).fetchall()
            if not rows:
                return 0
            self.db.execute("BEGIN IMMEDIATE")
            try:
                for row_id, payload in rows:
                    fixed = encode(fix(decode_batch(bytes(payload))))
                    self.db.execute(
                        "UPDATE batches SET payload = ?, hold = NULL WHERE id = ?", (fixed, row_id)
                    )
                    self._bytes += len(fixed) - len(payload)
                self.db.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise
            self.release_generation += 1
            return len(rows)

    def shift_created(self, delta_us: int) -> None:
        """The agent's time scale stepped by delta_us: keep every stored batch's age true."""
        with self._lock:
            self.db.execute("UPDATE batches SET created_us = created_us + ?", (delta_us,))

    # ------------------------------------------------------------------ health

    def depth(self) -> tuple[int, int]:
        """(batches, readings) waiting."""
        return self._batches, self._items

    @property
    def stored_bytes(self) -> int:
        return self._bytes

    def oldest_created_us(self) -> int | None:
        with self._lock:
            row = self.db.execute("SELECT created_us FROM batches ORDER BY id LIMIT 1").fetchone()
        return None if row is None else int(row[0])

    def checkpoint(self) -> None:
        """Sync the WAL into the database file (bounds what a power cut can lose)."""
        with self._lock:
            try:
                self.db.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except sqlite3.OperationalError as exc:
                log.warning("checkpoint failed: %s", exc)

    def close(self) -> None:
        with self._lock:
            self._rollback()
            self.db.close()
