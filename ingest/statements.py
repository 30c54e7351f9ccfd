"""SQL of the flush transaction (plain PostgreSQL rollups included)."""

from __future__ import annotations

ROLLUP_LOCK = 0x726F6C6C7570  # serialises rollup recomputation across workers
_ORIGIN = "timestamptz '2000-01-01 00:00:00+00'"

INSERT_READINGS = """
INSERT INTO readings (time, device_id, metric, value, quality, tenant_id)
SELECT DISTINCT ON (device_id, metric, time) time, device_id, metric, value, quality, tenant_id
FROM stage_readings ORDER BY device_id, metric, time
ON CONFLICT DO NOTHING"""
INSERT_EVENTS = """
INSERT INTO events (time, device_id, kind, attrs, quality, tenant_id)
SELECT DISTINCT ON (device_id, kind, time) time, device_id, kind, attrs, quality, tenant_id
FROM stage_events ORDER BY device_id, kind, time
ON CONFLICT DO NOTHING"""
UPSERT_TAIL = """
ON CONFLICT (device_id, metric, bucket) DO UPDATE SET tenant_id = EXCLUDED.tenant_id, avg = EXCLUDED.avg,
    min = EXCLUDED.min, max = EXCLUDED.max, sum = EXCLUDED.sum, count = EXCLUDED.count, last = EXCLUDED.last"""
# Recomputed from the stored rows, so late and duplicate data leave them right.
ROLLUP_HOURLY = f"""
INSERT INTO readings_hourly (bucket, tenant_id, device_id, metric, avg, min, max, sum, count, last)
SELECT t.bucket, min(r.tenant_id), t.device_id, t.metric, avg(r.value), min(r.value), max(r.value),
       sum(r.value), count(*), (array_agg(r.value ORDER BY r.time DESC))[1]
FROM (SELECT DISTINCT device_id, metric, date_bin('1 hour', time, {_ORIGIN}) AS bucket FROM stage_readings) t
JOIN readings r ON r.device_id = t.device_id AND r.metric = t.metric
     AND r.time >= t.bucket AND r.time < t.bucket + interval '1 hour'
GROUP BY t.bucket, t.device_id, t.metric {UPSERT_TAIL}"""
ROLLUP_DAILY = f"""
INSERT INTO readings_daily (bucket, tenant_id, device_id, metric, avg, min, max, sum, count, last)
SELECT t.bucket, min(h.tenant_id), t.device_id, t.metric, sum(h.sum) / sum(h.count), min(h.min), max(h.max),
       sum(h.sum), sum(h.count), (array_agg(h.last ORDER BY h.bucket DESC))[1]
FROM (SELECT DISTINCT device_id, metric, date_bin('1 day', time, {_ORIGIN}) AS bucket FROM stage_readings) t
JOIN readings_hourly h ON h.device_id = t.device_id AND h.metric = t.metric
     AND h.bucket >= t.bucket AND h.bucket < t.bucket + interval '1 day'
GROUP BY t.bucket, t.device_id, t.metric {UPSERT_TAIL}"""
GAPS = """
SELECT k.gw, k.boot, k.seq,
       (SELECT max(r.seq) FROM received_batches r WHERE r.gateway_id = k.gw AND r.boot_id = k.boot AND r.seq < k.seq)
FROM unnest(%s::text[], %s::text[], %s::bigint[]) AS k(gw, boot, seq)"""
