-- TimescaleDB: hypertables with 1-day chunks, compression by device and metric,
-- hourly and daily continuous aggregates. Policies whose ages are configurable
-- (compression, retention) are set by ingest.migrate after this file.

CREATE EXTENSION IF NOT EXISTS timescaledb;

CREATE TABLE IF NOT EXISTS readings (
    time timestamptz NOT NULL,
    device_id text NOT NULL,
    metric text NOT NULL,
    value double precision NOT NULL,
    quality smallint NOT NULL DEFAULT 0,
    tenant_id text NOT NULL,
    UNIQUE (device_id, metric, time)
);
SELECT create_hypertable('readings', by_range('time', INTERVAL '1 day'), if_not_exists => true);

CREATE TABLE IF NOT EXISTS events (
    time timestamptz NOT NULL,
    device_id text NOT NULL,
    kind text NOT NULL,
    attrs jsonb NOT NULL DEFAULT '{}',
    quality smallint NOT NULL DEFAULT 0,
    tenant_id text NOT NULL,
    UNIQUE (device_id, kind, time)
);
SELECT create_hypertable('events', by_range('time', INTERVAL '1 day'), if_not_exists => true);

CREATE INDEX IF NOT EXISTS readings_tenant_time_idx ON readings (tenant_id, time);
CREATE INDEX IF NOT EXISTS events_tenant_time_idx ON events (tenant_id, time);

ALTER TABLE readings SET (
    timescaledb.compress,
    timescaledb.compress_segmentby = 'device_id, metric',
    timescaledb.compress_orderby = 'time'
);
ALTER TABLE events SET (
    timescaledb.compress,
    timescaledb.compress_segmentby = 'device_id, kind',
    timescaledb.compress_orderby = 'time'
);

CREATE MATERIALIZED VIEW IF NOT EXISTS readings_hourly
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(INTERVAL '1 hour', time) AS bucket,
       tenant_id, device_id, metric,
       avg(value) AS avg, min(value) AS min, max(value) AS max, sum(value) AS sum,
       count(*) AS count, last(value, time) AS last
FROM readings
GROUP BY bucket, tenant_id, device_id, metric
WITH NO DATA;

-- Hierarchical: the daily aggregate is built from the hourly one.
CREATE MATERIALIZED VIEW IF NOT EXISTS readings_daily
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(INTERVAL '1 day', bucket) AS bucket,
       tenant_id, device_id, metric,
       sum(sum) / sum(count) AS avg, min(min) AS min, max(max) AS max, sum(sum) AS sum,
       sum(count)::bigint AS count, last(last, bucket) AS last
FROM readings_hourly
GROUP BY time_bucket(INTERVAL '1 day', bucket), tenant_id, device_id, metric
WITH NO DATA;

SELECT add_continuous_aggregate_policy('readings_hourly',
    start_offset => INTERVAL '3 days', end_offset => INTERVAL '1 hour',
    schedule_interval => INTERVAL '15 minutes', if_not_exists => true);
SELECT add_continuous_aggregate_policy('readings_daily',
    start_offset => INTERVAL '7 days', end_offset => INTERVAL '1 day',
    schedule_interval => INTERVAL '1 hour', if_not_exists => true);

-- Dead letters are few; a scheduled job purges them after the configured age.
CREATE OR REPLACE PROCEDURE ingest_purge_dead_letters_job(job_id integer, config jsonb)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM ingest_purge_dead_letters((config ->> 'keep')::interval);
END $$;
