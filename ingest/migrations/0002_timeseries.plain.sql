-- Plain PostgreSQL: monthly range partitions and rollup tables kept by ingest.

CREATE TABLE IF NOT EXISTS readings (
    time timestamptz NOT NULL,
    device_id text NOT NULL,
    metric text NOT NULL,
    value double precision NOT NULL,
    quality smallint NOT NULL DEFAULT 0,
    tenant_id text NOT NULL,
    UNIQUE (device_id, metric, time)
) PARTITION BY RANGE (time);

CREATE TABLE IF NOT EXISTS events (
    time timestamptz NOT NULL,
    device_id text NOT NULL,
    kind text NOT NULL,
    attrs jsonb NOT NULL DEFAULT '{}',
    quality smallint NOT NULL DEFAULT 0,
    tenant_id text NOT NULL,
    UNIQUE (device_id, kind, time)
) PARTITION BY RANGE (time);

CREATE INDEX IF NOT EXISTS readings_tenant_time_idx ON readings (tenant_id, time);
CREATE INDEX IF NOT EXISTS events_tenant_time_idx ON events (tenant_id, time);

-- Monthly partitions (UTC months) of readings and events covering [first, last].
-- The advisory lock serialises workers creating the same month at once.
CREATE OR REPLACE FUNCTION ingest_ensure_partitions(first timestamptz, last timestamptz) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    month timestamp := date_trunc('month', first AT TIME ZONE 'UTC');
    stop timestamp := date_trunc('month', last AT TIME ZONE 'UTC');
    parent text;
    name text;
    created integer := 0;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('territoire.ingest.partitions'));
    WHILE month <= stop LOOP
        FOREACH parent IN ARRAY ARRAY['readings', 'events'] LOOP
            name := parent || '_' || to_char(month, 'YYYYMM');
            IF to_regclass(name) IS NULL THEN
                EXECUTE format(
                    'CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
                    name, parent, (month AT TIME ZONE 'UTC'), ((month + interval '1 month') AT TIME ZONE 'UTC'));
                created := created + 1;
            END IF;
        END LOOP;
        month := month + interval '1 month';
    END LOOP;
    RETURN created;
END $$;

-- Drop monthly partitions entirely older than now() - keep (retention on plain PostgreSQL).
CREATE OR REPLACE FUNCTION ingest_drop_partitions_before(keep interval) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    part record;
    dropped integer := 0;
BEGIN
    FOR part IN
        SELECT c.relname
        FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid
        JOIN pg_class p ON p.oid = i.inhparent
        WHERE p.relname IN ('readings', 'events')
          AND c.relname ~ '_[0-9]{6}$'
          AND to_date(right(c.relname, 6) || '01', 'YYYYMMDD')::timestamp + interval '1 month'
              <= (now() - keep) AT TIME ZONE 'UTC'
    LOOP
        EXECUTE format('DROP TABLE %I', part.relname);
        dropped := dropped + 1;
    END LOOP;
    RETURN dropped;
END $$;

SELECT ingest_ensure_partitions(now() - interval '1 month', now() + interval '3 months');

CREATE TABLE IF NOT EXISTS readings_hourly (
    bucket timestamptz NOT NULL,
    tenant_id text NOT NULL,
    device_id text NOT NULL,
    metric text NOT NULL,
    avg double precision NOT NULL,
    min double precision NOT NULL,
    max double precision NOT NULL,
    sum double precision NOT NULL,
    count bigint NOT NULL,
    last double precision NOT NULL,
    PRIMARY KEY (device_id, metric, bucket)
);
CREATE INDEX IF NOT EXISTS readings_hourly_tenant_idx ON readings_hourly (tenant_id, bucket);

CREATE TABLE IF NOT EXISTS readings_daily (LIKE readings_hourly INCLUDING ALL);
