"""SQL of the flush transaction (rollups: see rollups.py)."""

from __future__ import annotations

COPY_READINGS = (
    "COPY readings (time, device_id, metric, value, quality, tenant_id) FROM STDIN (FORMAT BINARY)"
)
# ON CONFLICT DO NOTHING also skips a repeat of a row inserted earlier by the same statement.
INSERT_READINGS = """
INSERT INTO readings (time, device_id, metric, value, quality, tenant_id)
SELECT time, device_id, metric, value, quality, tenant_id FROM stage_readings
ON CONFLICT DO NOTHING RETURNING time, device_id, metric, value, quality, tenant_id"""
INSERT_EVENTS = """
INSERT INTO events (time, device_id, kind, attrs, quality, tenant_id)
SELECT DISTINCT ON (device_id, kind, time) time, device_id, kind, attrs, quality, tenant_id
FROM stage_events ORDER BY device_id, kind, time
ON CONFLICT DO NOTHING"""
# One round trip for both sides of sequence gaps, given the runs of consecutive new
# batches (gateway, boot, lo, hi):
# - "taken" (false): recorded gaps a run falls into; deleted here, re-inserted by the
#   writer minus what arrived (shrunk, split or gone);
# - "new" (true): the missing range below each run, unless already recorded (a late
#   batch inside a recorded gap is no new gap). Within a run nothing is missing.
# The NOT EXISTS reads the snapshot before the DELETE, so both see the same gaps.
GAPS = """
WITH k AS (SELECT * FROM unnest(%s::text[], %s::text[], %s::bigint[], %s::bigint[]) AS k(gw, boot, lo, hi)),
taken AS (
    DELETE FROM sequence_gaps g USING k
    WHERE g.gateway_id = k.gw AND g.boot_id = k.boot AND g.first_missing <= k.hi AND g.last_missing >= k.lo
    RETURNING g.gateway_id, g.boot_id, g.first_missing, g.last_missing, g.detected_at)
SELECT false, gateway_id, boot_id, first_missing, last_missing, detected_at FROM taken
UNION ALL
SELECT true, k.gw, k.boot, p.prev + 1, k.lo - 1, NULL FROM k
CROSS JOIN LATERAL (SELECT max(r.seq) AS prev FROM received_batches r
                    WHERE r.gateway_id = k.gw AND r.boot_id = k.boot AND r.seq < k.lo) p
WHERE p.prev < k.lo - 1 AND NOT EXISTS (
    SELECT 1 FROM sequence_gaps g WHERE g.gateway_id = k.gw AND g.boot_id = k.boot
    AND g.first_missing <= k.lo - 1 AND g.last_missing >= p.prev + 1)"""
