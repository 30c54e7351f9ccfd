"""Sequence gaps: batches a gateway numbered but ingest never received.

Called last in the flush transaction, under the advisory lock shared with the
rollups, so a concurrent flush of the same gateway (another worker) has
committed its batch keys and gap rows first.
"""

from __future__ import annotations

from typing import Any

import psycopg

from . import statements as sql

Run = tuple[str, str, int, int]  # gateway, boot, first and last seq of consecutive new batches


def runs(keys: set[tuple[str, str, int]]) -> list[Run]:
    """Consecutive new batch keys as runs: nothing can be missing inside a run."""
    found: list[Run] = []
    for gateway, boot, seq in sorted(keys):
        if found and found[-1][:2] == (gateway, boot) and found[-1][3] == seq - 1:
            found[-1] = (gateway, boot, found[-1][2], seq)
        else:
            found.append((gateway, boot, seq, seq))
    return found


def record(conn: psycopg.Connection[Any], runs: list[Run]) -> list[tuple[str, str, int, int]]:
    """Record new sequence gaps; shrink, split or remove those late batches fill."""
    found = conn.execute(sql.GAPS, tuple([r[i] for r in runs] for i in range(4))).fetchall()
    reported = [(gw, boot, first, last) for is_new, gw, boot, first, last, _ in found if is_new]
    rows: list[tuple[str, str, int, int, object]] = [(*gap, None) for gap in reported]
    for is_new, gateway, boot, first, last, detected in found:
        if is_new:
            continue  # a taken gap is re-inserted minus the batches received since
        received = conn.execute(
            "SELECT seq FROM received_batches WHERE gateway_id = %s AND boot_id = %s "
            "AND seq BETWEEN %s AND %s ORDER BY seq",
            (gateway, boot, first, last),
        ).fetchall()
        start = first
        for (seq,) in [*received, (last + 1,)]:
            if seq > start:
                rows.append((gateway, boot, start, seq - 1, detected))
            start = seq + 1
    if rows:
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO sequence_gaps (gateway_id, boot_id, first_missing, last_missing, detected_at) "
                "VALUES (%s, %s, %s, %s, coalesce(%s, now())) ON CONFLICT DO NOTHING",
                rows,
            )
    return reported
