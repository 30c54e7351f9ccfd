"""One database transaction per flush: batch keys, sequence gaps, COPY, rollups.

A flush covers several MQTT messages. Either all their rows, dead letters and
bookkeeping commit together, or none do and the messages stay unacknowledged.
Rows travel as columns (``ReadingCols``) from the wire decoder to the COPY.
Flushes on two connections overlap; ``FlushOrder`` keeps their rollup and gap
steps in order with locks PostgreSQL can see (so it can break any deadlock).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.copy import QueuedLibpqWriter

from territoire_kernel.records import from_time_us, to_time_us

from . import gaps, rollups
from . import statements as sql
from .copy_binary import events_copy, readings_copy_columns
from .pipeline import (
    BatchWork,
    Classifier,
    DeadLetter,
    Delivery,
    EventRow,
    LnsHandler,
    Predecoded,
    ReadingCols,
    ReadingRow,
    Work,
)
from .registry import Registry

log = logging.getLogger(__name__)

# Errors that mean "the database or the link is gone": retry the same flush later.
TRANSIENT_ERRORS: tuple[type[Exception], ...] = (psycopg.OperationalError, psycopg.InterfaceError)


@dataclass
class FlushResult:
    messages: int = 0
    batches: int = 0
    duplicate_batches: int = 0
    readings: int = 0
    duplicate_readings: int = 0
    events: int = 0
    duplicate_events: int = 0
    dead_letters: list[DeadLetter] = field(default_factory=list)
    gaps: list[tuple[str, str, int, int]] = field(default_factory=list)
    lag_seconds: list[float] = field(default_factory=list)
    batch_sizes: list[int] = field(default_factory=list)
    commit_seconds: float = 0.0
    stored: ReadingCols = field(default_factory=ReadingCols)  # rows inserted, for mirrors

    @property
    def stored_readings(self) -> list[ReadingRow]:
        return self.stored.rows()  # tuples built only when a mirror asks

    def merge(self, other: FlushResult) -> None:
        for name in ("messages", "batches", "duplicate_batches", "readings", "duplicate_readings", "events"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.duplicate_events += other.duplicate_events
        self.commit_seconds += other.commit_seconds
        for name in ("dead_letters", "gaps", "lag_seconds", "batch_sizes"):
            getattr(self, name).extend(getattr(other, name))
        self.stored.extend(other.stored)


@dataclass(frozen=True)
class FlushOrder:
    """A flush's place among the flushes in flight on other connections.

    Each flush holds its ``ticket`` (a transaction advisory lock) from its
    first statement to its COMMIT, and waits for the ``previous`` flush's
    ticket only after its COPY: both COPYs run at once, but the rollup and gap
    steps stay in flush order, so a gap step always sees the previous flush's
    batch keys. Once a flush holds its ticket, every wait it can meet is a
    PostgreSQL lock, which the deadlock detector sees (a rare cycle through
    duplicate rows becomes a retried error); the service starts a flush only
    after the previous one called ``on_ticket``, before it holds any lock.
    """

    ticket: tuple[int, int]
    previous: tuple[int, int] | None
    on_ticket: Callable[[], object]  # the ticket is held: the next flush may start


# From this many rows, COPY straight into readings is worth a savepoint's two round trips.
DIRECT_COPY_FROM = 2000
COPY_CHUNK = 5000  # rows per COPY message


class Writer:
    """Owns one connection and the device registry; not thread-safe."""

    def __init__(
        self,
        dsn: str,
        *,
        auto_register: bool = False,
        lns_handler: LnsHandler | None = None,
        connect_timeout: float = 5,
    ) -> None:
        self.dsn = dsn
        self.auto_register = auto_register
        self.lns_handler = lns_handler
        self.connect_timeout = connect_timeout
        self.registry = Registry()
        self.conn: psycopg.Connection[Any] | None = None
        self.storage = "plain"
        self._months: set[tuple[int, int]] = set()

    # ------------------------------------------------------------------ connection

    def connect(self) -> psycopg.Connection[Any]:
        if self.conn is not None and not self.conn.closed:
            return self.conn
        conn = psycopg.connect(self.dsn, connect_timeout=max(1, int(self.connect_timeout)))
        try:
            conn.execute("SET TIME ZONE 'UTC'")
            row = conn.execute("SELECT value FROM ingest_settings WHERE key = 'storage'").fetchone()
            self.storage = "timescale" if row and row[0] == "timescale" else "plain"
            for name, like in (("stage_readings", "readings"), ("stage_events", "events")):
                conn.execute(
                    f"CREATE TEMP TABLE IF NOT EXISTS {name} (LIKE {like} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
                )
            conn.execute(rollups.CREATE_STAGE)
            self.registry.load(conn)
            conn.commit()
        except BaseException:
            conn.close()
            raise
        self.conn = conn
        return conn

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def ping(self) -> bool:
        try:
            conn = self.connect()
            conn.execute("SELECT 1")
            conn.rollback()
            return True
        except TRANSIENT_ERRORS:
            self.close()
            return False

    # ------------------------------------------------------------------ flush

    def write(
        self,
        deliveries: Sequence[Delivery],
        *,
        replay: bool = False,
        dead: Sequence[DeadLetter] = (),
        decoded: Sequence[Predecoded] | None = None,
        order: FlushOrder | None = None,
    ) -> FlushResult:
        """Commit every delivery's effect in one transaction (raises on failure, nothing kept).

        ``decoded`` is ``pipeline.predecode(deliveries)`` when another thread already did it.
        """
        conn = self.connect()
        try:
            work = Classifier(
                conn, self.registry, auto_register=self.auto_register, lns_handler=self.lns_handler
            ).classify(deliveries, decoded)
            work.dead += dead
            conn.commit()  # end the registry look-ups' read transaction
            self._ensure_partitions(conn, work)
            started = time.perf_counter()
            with conn.transaction():
                if order is not None:
                    conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", order.ticket)
                    order.on_ticket()
                result = self._apply(conn, work, replay, order.previous if order else None)
            result.commit_seconds = time.perf_counter() - started
        except TRANSIENT_ERRORS:
            self.close()
            raise
        except BaseException:
            if not conn.closed:
                conn.rollback()
            raise
        self.registry.tenants |= work.new_tenants
        self.registry.gateways.update(work.new_gateways)
        self.registry.devices.update(work.new_devices)
        return result

    def _ensure_partitions(self, conn: psycopg.Connection[Any], work: Work) -> None:
        if self.storage != "plain":
            return
        times = [
            t
            for b in work.batches
            if b.readings.times
            for t in (min(b.readings.times), max(b.readings.times))
        ]
        times += [e[0] for b in work.batches for e in b.events]
        times += [t for _, cols, events in work.lns for t in cols.times + [e[0] for e in events]]
        if not times:
            return
        first, last = from_time_us(min(times)), from_time_us(max(times))
        months = {(y, m) for y in range(first.year, last.year + 1) for m in range(1, 13)}
        months = {(y, m) for y, m in months if (first.year, first.month) <= (y, m) <= (last.year, last.month)}
        if months <= self._months:
            return
        conn.execute("SELECT ingest_ensure_partitions(%s, %s)", (first, last))
        conn.commit()
        self._months |= months

    def _apply(
        self, conn: psycopg.Connection[Any], work: Work, replay: bool, previous: tuple[int, int] | None
    ) -> FlushResult:
        result = FlushResult(messages=work.messages)
        self._register(conn, work)
        batches, runs = self._new_batches(conn, work.batches, replay, result)
        readings = ReadingCols()
        for b in batches:
            readings.extend(b.readings)
        events: list[EventRow] = [e for b in batches for e in b.events]
        self._new_lns_rows(conn, work, result, readings, events)
        dead = work.dead + [d for b in batches for d in b.dead]
        result.dead_letters = dead
        now = time.time()
        result.lag_seconds = [now - b.newest_us / 1e6 for b in batches if b.newest_us is not None]
        result.batch_sizes = [len(b.readings) + len(b.events) for b in batches]
        with conn.cursor() as cur:
            locked = False  # the advisory lock shared by rollups and gaps (held until commit)
            if readings:
                inserted, increments = self._insert_readings(conn, cur, readings)
            if previous is not None:  # the previous flush has committed or given up: see FlushOrder
                cur.execute("SELECT pg_advisory_xact_lock_shared(%s, %s)", previous)
            if readings:
                result.stored = inserted
                result.readings = len(inserted)
                result.duplicate_readings = len(readings) - len(inserted)
                if increments is not None:
                    rollups.merge(cur, increments)
                    locked = True
            if runs:
                # Late in the transaction and under the lock: a concurrent flush of the same
                # gateway (another worker) has committed its batch keys and gap rows first.
                if not locked:
                    cur.execute("SELECT pg_advisory_xact_lock(%s)", (rollups.ROLLUP_LOCK,))
                result.gaps = gaps.record(conn, runs)
            if events:
                with cur.copy("COPY stage_events FROM STDIN (FORMAT BINARY)") as copy:
                    copy.write(events_copy(events))
                cur.execute(sql.INSERT_EVENTS)
                result.events = cur.rowcount
                result.duplicate_events = len(events) - cur.rowcount
            self._statuses(cur, work)
            if work.results:
                cur.executemany(
                    "INSERT INTO command_results (command_id, gateway_id, status, time, detail) "
                    "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (command_id) DO NOTHING",
                    [
                        (r.command_id, r.gateway_id, r.status.value, from_time_us(r.time_us), r.detail)
                        for r in work.results
                    ],
                )
            if dead and not replay:  # a replay reports them to its caller instead
                cur.executemany(
                    "INSERT INTO dead_letters (topic, payload, reason, tenant_id, gateway_id) VALUES (%s, %s, %s, %s, %s)",
                    [(d.topic, d.payload, d.reason, d.tenant_id, d.gateway_id) for d in dead],
                )
        return result

    def _insert_readings(
        self, conn: psycopg.Connection[Any], cur: psycopg.Cursor[Any], readings: ReadingCols
    ) -> tuple[ReadingCols, rollups.Increments | None]:
        """Insert the rows not stored yet; returns those inserted and, on plain PostgreSQL, their rollup increments.

        Redelivered batches are already skipped by their batch key, so a new
        batch's rows are almost never stored already: COPY them straight into
        ``readings`` (the ceiling's speed) under a savepoint. Only if that hits
        a stored row does the flush take the staging path, which skips those.
        Small flushes take the staging path directly: one round trip fewer.
        """
        plain = self.storage == "plain"
        if len(readings) >= DIRECT_COPY_FROM:
            try:
                # A queued writer sends from its own thread: the server works on the first
                # chunks while this thread encodes the next ones, then the rollup increments.
                with conn.transaction(), cur.copy(sql.COPY_READINGS, writer=QueuedLibpqWriter(cur)) as copy:
                    for start in range(0, len(readings), COPY_CHUNK):
                        copy.write(readings_copy_columns(readings, start, start + COPY_CHUNK))
                    increments = rollups.increments(readings) if plain else None
                return readings, increments
            except psycopg.errors.UniqueViolation:
                pass  # rolled back to the savepoint; rows are de-duplicated below
        with cur.copy("COPY stage_readings FROM STDIN (FORMAT BINARY)") as copy:
            copy.write(readings_copy_columns(readings, 0, len(readings)))
        rows = cur.execute(sql.INSERT_READINGS).fetchall()
        if len(rows) == len(readings):  # the usual case: nothing was stored already
            return readings, rollups.increments(readings) if plain else None
        inserted = ReadingCols.from_rows((to_time_us(t), d, m, v, q, tn) for t, d, m, v, q, tn in rows)
        return inserted, rollups.increments(inserted) if plain and len(inserted) else None

    def _register(self, conn: psycopg.Connection[Any], work: Work) -> None:
        with conn.cursor() as cur:
            if work.new_tenants:
                cur.executemany(
                    "INSERT INTO tenants (id, name, kind) VALUES (%s, %s, 'autre') ON CONFLICT DO NOTHING",
                    [(t, t) for t in sorted(work.new_tenants)],
                )
            if work.new_gateways:
                cur.executemany(
                    "INSERT INTO gateways (id, tenant_id) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                    sorted(work.new_gateways.items()),
                )
            if work.new_devices:
                cur.executemany(
                    "INSERT INTO devices (id, tenant_id, gateway_id) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                    [(d, i.tenant_id, i.gateway_id) for d, i in sorted(work.new_devices.items())],
                )

    def _new_batches(
        self, conn: psycopg.Connection[Any], batches: list[BatchWork], replay: bool, result: FlushResult
    ) -> tuple[list[BatchWork], list[gaps.Run]]:
        """Record batch keys; batches already received are skipped whole (redelivery).

        Returns the new batches and the runs of their keys, for the gap step.
        """
        if not batches:
            return [], []
        rows = conn.execute(
            "INSERT INTO received_batches (gateway_id, boot_id, seq, readings, events) "
            "SELECT * FROM unnest(%s::text[], %s::text[], %s::bigint[], %s::int[], %s::int[]) "
            "ON CONFLICT DO NOTHING RETURNING gateway_id, boot_id, seq",
            (
                [b.gateway_id for b in batches],
                [b.boot_id for b in batches],
                [b.seq for b in batches],
                [len(b.readings) for b in batches],
                [len(b.events) for b in batches],
            ),
        ).fetchall()
        new_keys: set[tuple[str, str, int]] = {(row[0], row[1], row[2]) for row in rows}
        kept: list[BatchWork] = []
        seen: set[tuple[str, str, int]] = set()
        for batch in batches:
            key = (batch.gateway_id, batch.boot_id, batch.seq)
            if key in seen or (key not in new_keys and not replay):
                result.duplicate_batches += 1
                continue
            seen.add(key)
            kept.append(batch)
        result.batches = len(kept)
        return kept, gaps.runs(new_keys)

    def _new_lns_rows(
        self,
        conn: psycopg.Connection[Any],
        work: Work,
        result: FlushResult,
        readings: ReadingCols,
        events: list[EventRow],
    ) -> None:
        """Add the rows of uplinks not received before to ``readings`` and ``events``."""
        if not work.lns:
            return
        keys = [key for key, _, _ in work.lns]
        fresh = {
            row[0]
            for row in conn.execute(
                "INSERT INTO lns_uplinks (dedup_key) SELECT unnest(%s::text[]) ON CONFLICT DO NOTHING RETURNING dedup_key",
                (keys,),
            )
        }
        for key, uplink_readings, uplink_events in work.lns:
            if key in fresh:
                fresh.discard(key)
                readings.extend(uplink_readings)
                events += uplink_events
            else:
                result.duplicate_batches += 1

    def _statuses(self, cur: psycopg.Cursor[Any], work: Work) -> None:
        if not work.statuses:
            return
        rows = [
            (
                s.state.value,
                s.boot_id,
                s.version,
                from_time_us(s.time_us),
                s.buffer_readings,
                s.oldest_unsent_age_s,
                s.dropped_readings,
                s.clock_synced,
                s.gateway_id,
                from_time_us(s.time_us),
            )
            for s in sorted(work.statuses, key=lambda s: s.time_us)
        ]
        # An old retained status delivered late never overwrites a newer one.
        cur.executemany(
            "UPDATE gateways SET state = %s, boot_id = %s, version = %s, last_seen = %s, buffer_readings = %s, "
            "oldest_unsent_age_s = %s, dropped_readings = %s, clock_synced = %s "
            "WHERE id = %s AND (last_seen IS NULL OR last_seen <= %s)",
            rows,
        )
        cur.executemany(
            "INSERT INTO gateway_status_log (time, gateway_id, state, boot_id, buffer_readings, dropped_readings) "
            "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            [
                (
                    from_time_us(s.time_us),
                    s.gateway_id,
                    s.state.value,
                    s.boot_id,
                    s.buffer_readings,
                    s.dropped_readings,
                )
                for s in work.statuses
            ],
        )

    def write_isolating(
        self,
        deliveries: Sequence[Delivery],
        decoded: Sequence[Predecoded] | None = None,
        order: FlushOrder | None = None,
    ) -> FlushResult:
        """Like write, but a message the database rejects becomes a dead letter instead of blocking the rest."""
        try:
            return self.write(deliveries, decoded=decoded, order=order)
        except TRANSIENT_ERRORS:
            raise
        except psycopg.Error as exc:
            if len(deliveries) == 1:
                reason = f"database rejected the message: {type(exc).__name__}: {exc}"[:2000]
                dead = [DeadLetter(deliveries[0].topic, deliveries[0].payload, reason)]
                return self.write([], dead=dead, order=order)
        total = FlushResult()
        for delivery in deliveries:
            part = self.write_isolating([delivery], order=order)
            total.merge(part)
        return total

    # ------------------------------------------------------------------ maintenance

    def maintenance(self) -> dict[str, int]:
        """Partitions ahead, dead-letter purge, plain-PostgreSQL retention; run hourly."""
        conn = self.connect()
        done: dict[str, int] = {}
        try:
            settings = dict(conn.execute("SELECT key, value FROM ingest_settings").fetchall())
            if self.storage == "plain":
                now = datetime.now(UTC)
                row = conn.execute(
                    "SELECT ingest_ensure_partitions(%s, %s + interval '3 months')", (now, now)
                ).fetchone()
                done["partitions_created"] = int(row[0]) if row else 0
                if settings.get("readings_retention"):
                    row = conn.execute(
                        "SELECT ingest_drop_partitions_before(%s::interval)",
                        (settings["readings_retention"],),
                    ).fetchone()
                    done["partitions_dropped"] = int(row[0]) if row else 0
                    self._months.clear()
                if settings.get("dead_letters_retention"):
                    row = conn.execute(
                        "SELECT ingest_purge_dead_letters(%s::interval)",
                        (settings["dead_letters_retention"],),
                    ).fetchone()
                    done["dead_letters_purged"] = int(row[0]) if row else 0
            conn.commit()
        except TRANSIENT_ERRORS:
            self.close()
            raise
        except BaseException:
            conn.rollback()
            raise
        return done
