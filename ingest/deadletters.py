"""List and replay dead letters after a technician fixed a device, gateway or profile.

A replay runs the stored payload through the same pipeline as live traffic.
Rows are idempotent on their unique keys, so replaying twice stores nothing
twice; the batch-level "already received" check is bypassed because a batch
whose unknown-device part was dead-lettered has already been recorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg

from .pipeline import Delivery, LnsHandler
from .writer import TRANSIENT_ERRORS, Writer


@dataclass(frozen=True)
class DeadLetterRow:
    id: int
    received_at: datetime
    topic: str
    reason: str
    size: int
    tenant_id: str | None
    gateway_id: str | None
    replayed_at: datetime | None
    replay_error: str | None


@dataclass(frozen=True)
class ReplayOutcome:
    id: int
    ok: bool
    detail: str


def list_dead_letters(
    dsn: str, *, limit: int = 100, include_replayed: bool = False, tenant: str | None = None
) -> list[DeadLetterRow]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT id, received_at, topic, reason, length(payload), tenant_id, gateway_id, replayed_at, replay_error "
            "FROM dead_letters WHERE (%s OR replayed_at IS NULL) AND (%s::text IS NULL OR tenant_id = %s) "
            "ORDER BY id LIMIT %s",
            (include_replayed, tenant, tenant, limit),
        ).fetchall()
    return [DeadLetterRow(*row) for row in rows]


def replay(
    dsn: str,
    ids: list[int] | None = None,
    *,
    auto_register: bool = False,
    lns_handler: LnsHandler | None = None,
) -> list[ReplayOutcome]:
    """Replay the given dead letters (default: every one not yet replayed)."""
    writer = Writer(dsn, auto_register=auto_register, lns_handler=lns_handler)
    outcomes = []
    try:
        conn = writer.connect()
        if ids is None:
            found = conn.execute(
                "SELECT id, topic, payload FROM dead_letters WHERE replayed_at IS NULL ORDER BY id"
            )
        else:
            found = conn.execute(
                "SELECT id, topic, payload FROM dead_letters WHERE id = ANY(%s) ORDER BY id", (ids,)
            )
        letters = [(int(i), str(t), bytes(p)) for i, t, p in found.fetchall()]
        conn.commit()
        for letter_id, topic, payload in letters:
            outcomes.append(_replay_one(writer, letter_id, topic, payload))
    finally:
        writer.close()
    return outcomes


def _replay_one(writer: Writer, letter_id: int, topic: str, payload: bytes) -> ReplayOutcome:
    writer.registry.forget_misses()  # the fix may be seconds old
    try:
        result = writer.write([Delivery(topic, payload)], replay=True)
        error = "; ".join(d.reason for d in result.dead_letters) or None
    except TRANSIENT_ERRORS:
        raise
    except psycopg.Error as exc:
        error = f"database rejected the message: {type(exc).__name__}: {exc}"[:2000]
        result = None
    conn = writer.connect()
    with conn.transaction():
        if error is None:
            conn.execute(
                "UPDATE dead_letters SET replayed_at = now(), replay_error = NULL WHERE id = %s", (letter_id,)
            )
        else:
            conn.execute("UPDATE dead_letters SET replay_error = %s WHERE id = %s", (error, letter_id))
    if error is not None:
        return ReplayOutcome(letter_id, False, error)
    assert result is not None
    return ReplayOutcome(letter_id, True, f"{result.readings} readings, {result.events} events stored")
