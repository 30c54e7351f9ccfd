-- Every command result is audited. Ingest writes command_results and the API owns audit_log,
-- and neither imports the other: the database copies each result in ingest's own transaction,
-- so there is no result without its audit row. `counted` is false for a result from another
-- gateway than the command's (the API ignores those).
CREATE OR REPLACE FUNCTION audit_command_result() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    c commands%ROWTYPE;
BEGIN
    SELECT * INTO c FROM commands WHERE id = NEW.command_id;
    INSERT INTO audit_log (subject, action, target, tenant_id, detail)
    VALUES (
        'gateway:' || NEW.gateway_id, 'command.result', 'command:' || NEW.command_id, c.tenant_id,
        jsonb_build_object(
            'tenant', c.tenant_id, 'device', c.device_id, 'gateway', NEW.gateway_id, 'status', NEW.status,
            'detail', NEW.detail, 'time', NEW.time, 'counted', c.gateway_id IS NOT DISTINCT FROM NEW.gateway_id
        )
    );
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS command_results_audit ON command_results;
CREATE TRIGGER command_results_audit AFTER INSERT ON command_results
    FOR EACH ROW EXECUTE FUNCTION audit_command_result();

-- A command that gets no result in time is expired: the API's background loop audits it once
-- (command.expired) and marks it here.
ALTER TABLE commands ADD COLUMN IF NOT EXISTS expiry_audited boolean NOT NULL DEFAULT false;
CREATE INDEX IF NOT EXISTS commands_expiry_to_audit ON commands (expires_at) WHERE NOT expiry_audited;
