-- Accounts, tenant grants, tokens and the audit log of the API.
CREATE TABLE IF NOT EXISTS api_users (
    subject text PRIMARY KEY CHECK (length(subject) BETWEEN 1 AND 200),
    role text NOT NULL CHECK (role IN ('admin', 'technician', 'viewer', 'analyst')),
    password_hash text NULL,
    disabled boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Technicians and viewers see their commune; analysts are granted several tenants.
CREATE TABLE IF NOT EXISTS api_user_tenants (
    subject text NOT NULL REFERENCES api_users (subject) ON DELETE CASCADE,
    tenant_id text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    PRIMARY KEY (subject, tenant_id)
);

CREATE TABLE IF NOT EXISTS api_tokens (
    id text PRIMARY KEY,
    subject text NOT NULL REFERENCES api_users (subject) ON DELETE CASCADE,
    secret_hash text NOT NULL,
    label text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NULL,
    revoked_at timestamptz NULL
);

CREATE TABLE IF NOT EXISTS audit_log (
    id bigserial PRIMARY KEY,
    time timestamptz NOT NULL DEFAULT now(),
    subject text NOT NULL,
    action text NOT NULL,
    target text NOT NULL,
    tenant_id text NULL,
    detail jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS audit_log_tenant_time ON audit_log (tenant_id, time DESC);
