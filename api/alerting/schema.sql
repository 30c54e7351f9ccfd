-- Alert rules, alerts and their notification outbox (docs/alerts.md).
-- Applied idempotently by api.alerting.store.ensure_schema after the ingest migrations.

CREATE TABLE IF NOT EXISTS alert_rules (
    id bigserial PRIMARY KEY,
    tenant_id text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    kind text NOT NULL CHECK (kind IN ('gateway_offline', 'device_silent', 'container_full', 'lighting_fault', 'low_battery')),
    name text NOT NULL DEFAULT '',
    params jsonb NOT NULL DEFAULT '{}',
    channels jsonb NOT NULL DEFAULT '[]',  -- [{"type": "webhook", "url": ...} | {"type": "email", "to": [...]}]
    enabled boolean NOT NULL DEFAULT true,
    created_by text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS alert_rules_tenant_idx ON alert_rules (tenant_id);

CREATE TABLE IF NOT EXISTS alerts (
    id bigserial PRIMARY KEY,
    rule_id bigint NOT NULL REFERENCES alert_rules (id) ON DELETE CASCADE,
    tenant_id text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    kind text NOT NULL,
    subject text NOT NULL,  -- "gateway:{id}", "device:{id}" or "site:{id}"
    state text NOT NULL CHECK (state IN ('open', 'resolved')),
    message text NOT NULL,
    details jsonb NOT NULL DEFAULT '{}',
    opened_at timestamptz NOT NULL,
    resolved_at timestamptz NULL,
    acknowledged_at timestamptz NULL,
    acknowledged_by text NULL
);
-- Deduplication: at most one open alert per rule and subject, even with two evaluators.
CREATE UNIQUE INDEX IF NOT EXISTS alerts_one_open_idx ON alerts (rule_id, subject) WHERE state = 'open';
CREATE INDEX IF NOT EXISTS alerts_tenant_idx ON alerts (tenant_id, opened_at DESC);

-- Outbox written in the same transaction as the alert change, delivered afterwards with retries.
CREATE TABLE IF NOT EXISTS alert_notifications (
    id bigserial PRIMARY KEY,
    alert_id bigint NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    event text NOT NULL CHECK (event IN ('opened', 'resolved')),
    channel text NOT NULL CHECK (channel IN ('webhook', 'email')),
    target text NOT NULL,
    status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    last_error text NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    sent_at timestamptz NULL
);
CREATE INDEX IF NOT EXISTS alert_notifications_pending_idx
    ON alert_notifications (next_attempt_at) WHERE status = 'pending';
