-- +goose Up
-- State that every replica on this database must agree on. The active model
-- is already models.active; these tables hold the rest.

-- The runtime settings' values in force (PUT /performance/config), one row a
-- key; revision is the audit row that set it, so a replica applies a row only
-- when it is newer than the value it holds.
CREATE TABLE runtime_config (
    key        TEXT        PRIMARY KEY,
    value      JSONB       NOT NULL,
    revision   BIGINT      NOT NULL,
    changed_by TEXT        NOT NULL,
    replica    TEXT        NOT NULL,
    changed_at TIMESTAMPTZ NOT NULL
);

-- Who changed what, old and new, on which replica: every accepted change.
CREATE TABLE runtime_config_audit (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key        TEXT        NOT NULL,
    old_value  JSONB,
    new_value  JSONB       NOT NULL,
    changed_by TEXT        NOT NULL,
    replica    TEXT        NOT NULL,
    changed_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX runtime_config_audit_changed ON runtime_config_audit (changed_at);

-- Database jobs (maintenance, index builds) that outlive their request, so
-- any replica answers their status URL. heartbeat_at moves while the owner
-- runs the job; a running row whose heartbeat is stale lost its owner.
CREATE TABLE admin_jobs (
    id           TEXT        PRIMARY KEY,
    kind         TEXT        NOT NULL,
    state        TEXT        NOT NULL CHECK (state IN ('running', 'succeeded', 'failed')),
    replica      TEXT        NOT NULL,
    started_at   TIMESTAMPTZ NOT NULL,
    heartbeat_at TIMESTAMPTZ NOT NULL,
    finished_at  TIMESTAMPTZ,
    error        TEXT        NOT NULL DEFAULT '',
    result       JSONB
);
CREATE INDEX admin_jobs_running ON admin_jobs (heartbeat_at) WHERE state = 'running';
CREATE INDEX admin_jobs_started ON admin_jobs (started_at);

-- A change of the active model or of a runtime setting, whatever wrote it,
-- tells every replica listening on this database at commit. The payload
-- names the topic and the schema, so replicas of another schema on the same
-- database ignore it; it carries no value: a replica re-reads the tables.
-- +goose StatementBegin
CREATE FUNCTION smartcloudops_shared_notify() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('smartcloudops_shared',
        json_build_object('topic', TG_ARGV[0], 'schema', TG_TABLE_SCHEMA)::text);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
-- +goose StatementEnd
CREATE TRIGGER models_activated AFTER INSERT OR UPDATE OF active ON models
    FOR EACH ROW WHEN (NEW.active) EXECUTE FUNCTION smartcloudops_shared_notify('model');
CREATE TRIGGER runtime_config_changed AFTER INSERT OR UPDATE ON runtime_config
    FOR EACH STATEMENT EXECUTE FUNCTION smartcloudops_shared_notify('config');

-- +goose Down
DROP TRIGGER runtime_config_changed ON runtime_config;
DROP TRIGGER models_activated ON models;
DROP FUNCTION smartcloudops_shared_notify();
DROP TABLE admin_jobs;
DROP TABLE runtime_config_audit;
DROP TABLE runtime_config;
