-- +goose Up
-- State that every replica on this database must agree on (on SQLite, one
-- process; the tables keep it across restarts). See the PostgreSQL file.
CREATE TABLE runtime_config (
    key        TEXT     PRIMARY KEY,
    value      TEXT     NOT NULL CHECK (json_valid(value)),
    revision   INTEGER  NOT NULL,
    changed_by TEXT     NOT NULL,
    replica    TEXT     NOT NULL,
    changed_at DATETIME NOT NULL
);

CREATE TABLE runtime_config_audit (
    id         INTEGER  PRIMARY KEY,
    key        TEXT     NOT NULL,
    old_value  TEXT     CHECK (old_value IS NULL OR json_valid(old_value)),
    new_value  TEXT     NOT NULL CHECK (json_valid(new_value)),
    changed_by TEXT     NOT NULL,
    replica    TEXT     NOT NULL,
    changed_at DATETIME NOT NULL
);
CREATE INDEX runtime_config_audit_changed ON runtime_config_audit (changed_at);

CREATE TABLE admin_jobs (
    id           TEXT     PRIMARY KEY,
    kind         TEXT     NOT NULL,
    state        TEXT     NOT NULL CHECK (state IN ('running', 'succeeded', 'failed')),
    replica      TEXT     NOT NULL,
    started_at   DATETIME NOT NULL,
    heartbeat_at DATETIME NOT NULL,
    finished_at  DATETIME,
    error        TEXT     NOT NULL DEFAULT '',
    result       TEXT     CHECK (result IS NULL OR json_valid(result))
);
CREATE INDEX admin_jobs_running ON admin_jobs (heartbeat_at) WHERE state = 'running';
CREATE INDEX admin_jobs_started ON admin_jobs (started_at);

-- +goose Down
DROP TABLE admin_jobs;
DROP TABLE runtime_config_audit;
DROP TABLE runtime_config;
