-- Commands sent to devices through their gateway; results arrive in ingest's command_results.
CREATE TABLE IF NOT EXISTS commands (
    id text PRIMARY KEY,
    tenant_id text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    device_id text NOT NULL,
    gateway_id text NOT NULL,
    action text NOT NULL,
    params jsonb NOT NULL DEFAULT '{}',
    subject text NOT NULL,
    issued_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    -- Set once the broker acknowledged the publish (PUBACK); publish_error when it could not.
    published_at timestamptz NULL,
    publish_error text NULL,
    CHECK (expires_at > issued_at)
);
-- The per-tenant rate limit counts the last minute; listings go newest first.
CREATE INDEX IF NOT EXISTS commands_tenant_issued ON commands (tenant_id, issued_at DESC);
CREATE INDEX IF NOT EXISTS commands_device_issued ON commands (device_id, issued_at DESC);
