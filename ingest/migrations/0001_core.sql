-- Registry, bookkeeping and dead letters: identical on plain PostgreSQL and TimescaleDB.

CREATE TABLE IF NOT EXISTS tenants (
    id text PRIMARY KEY,
    name text NOT NULL,
    kind text NOT NULL CHECK (kind IN ('commune', 'intercommunalite', 'syndicat', 'autre')),
    parent_id text NULL REFERENCES tenants (id),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS sites (
    id text PRIMARY KEY,
    tenant_id text NOT NULL REFERENCES tenants (id),
    name text NOT NULL,
    kind text NOT NULL CHECK (kind IN ('lighting_cabinet', 'waste_point', 'parking_zone', 'other')),
    location jsonb NULL,  -- GeoJSON geometry, WGS84
    attrs jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS sites_tenant_idx ON sites (tenant_id);

CREATE TABLE IF NOT EXISTS gateways (
    id text PRIMARY KEY,
    tenant_id text NOT NULL REFERENCES tenants (id),
    site_id text NULL REFERENCES sites (id),
    name text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    state text NOT NULL DEFAULT 'unknown' CHECK (state IN ('online', 'offline', 'unknown')),
    boot_id text NULL,
    version text NULL,
    last_seen timestamptz NULL,
    buffer_readings bigint NULL,
    oldest_unsent_age_s double precision NULL,
    dropped_readings bigint NULL,
    clock_synced boolean NULL
);
CREATE INDEX IF NOT EXISTS gateways_tenant_idx ON gateways (tenant_id);

CREATE TABLE IF NOT EXISTS devices (
    id text PRIMARY KEY,
    tenant_id text NOT NULL REFERENCES tenants (id),
    site_id text NULL REFERENCES sites (id),
    gateway_id text NULL REFERENCES gateways (id),
    model text NOT NULL DEFAULT '',
    profile text NULL,
    installed_on date NULL,
    expected_interval_s integer NULL,
    attrs jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS devices_tenant_idx ON devices (tenant_id);

CREATE TABLE IF NOT EXISTS metrics (
    name text PRIMARY KEY,
    unit text NOT NULL DEFAULT '',
    description text NOT NULL DEFAULT '',
    personal_data boolean NOT NULL DEFAULT false
);

CREATE TABLE IF NOT EXISTS received_batches (
    gateway_id text NOT NULL,
    boot_id text NOT NULL,
    seq bigint NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    readings integer NOT NULL,
    events integer NOT NULL,
    PRIMARY KEY (gateway_id, boot_id, seq)
);

CREATE TABLE IF NOT EXISTS lns_uplinks (
    dedup_key text PRIMARY KEY,
    received_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS dead_letters (
    id bigserial PRIMARY KEY,
    received_at timestamptz NOT NULL DEFAULT now(),
    topic text NOT NULL,
    payload bytea NOT NULL,
    reason text NOT NULL,
    tenant_id text NULL,
    gateway_id text NULL,
    replayed_at timestamptz NULL,
    replay_error text NULL
);
CREATE INDEX IF NOT EXISTS dead_letters_received_idx ON dead_letters (received_at);

CREATE TABLE IF NOT EXISTS sequence_gaps (
    gateway_id text NOT NULL,
    boot_id text NOT NULL,
    first_missing bigint NOT NULL,
    last_missing bigint NOT NULL,
    detected_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (gateway_id, boot_id, first_missing)
);

CREATE TABLE IF NOT EXISTS gateway_status_log (
    time timestamptz NOT NULL,
    gateway_id text NOT NULL,
    state text NOT NULL,
    boot_id text NOT NULL,
    buffer_readings bigint NOT NULL DEFAULT 0,
    dropped_readings bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (gateway_id, time)
);

CREATE TABLE IF NOT EXISTS command_results (
    command_id text PRIMARY KEY,
    gateway_id text NOT NULL,
    status text NOT NULL CHECK (status IN ('done', 'failed', 'rejected', 'expired')),
    time timestamptz NOT NULL,
    detail text NOT NULL DEFAULT '',
    received_at timestamptz NOT NULL DEFAULT now()
);

-- Settings chosen at migration time (storage mode, retention); ingest reads them.
CREATE TABLE IF NOT EXISTS ingest_settings (
    key text PRIMARY KEY,
    value text NULL
);

CREATE OR REPLACE FUNCTION ingest_purge_dead_letters(keep interval) RETURNS bigint
LANGUAGE sql AS $$
    WITH gone AS (DELETE FROM dead_letters WHERE received_at < now() - keep RETURNING 1)
    SELECT count(*) FROM gone
$$;
