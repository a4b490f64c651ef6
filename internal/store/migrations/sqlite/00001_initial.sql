-- +goose Up
-- One row per (host, sample time). Well-known metrics get typed columns so the
-- planner can index and aggregate them; anything else a host reports goes to extra.
CREATE TABLE system_metrics (
    id               INTEGER PRIMARY KEY,
    host             TEXT     NOT NULL,
    ts               DATETIME NOT NULL,
    cpu_usage        REAL,
    memory_usage     REAL,
    disk_usage       REAL,
    network_in       REAL,
    network_out      REAL,
    load_average     REAL,
    response_time_ms REAL,
    error_rate       REAL,
    request_rate     REAL,
    extra            TEXT     NOT NULL DEFAULT '{}' CHECK (json_valid(extra)),
    received_at      DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f+00:00', 'now'))
);
-- Serves "a host's series in time order" (charts, feature context, training
-- windows) and makes a re-sent sample a conflict instead of a duplicate row.
CREATE UNIQUE INDEX system_metrics_host_ts ON system_metrics (host, ts);
-- Serves fleet-wide time ranges and retention deletes.
CREATE INDEX system_metrics_ts ON system_metrics (ts);

CREATE TABLE anomalies (
    id            INTEGER PRIMARY KEY,
    host          TEXT     NOT NULL,
    metric        TEXT,
    detected_at   DATETIME NOT NULL,
    score         REAL     NOT NULL CHECK (score >= 0 AND score <= 1),
    confidence    REAL     NOT NULL CHECK (confidence >= 0 AND confidence <= 1),
    severity      TEXT     NOT NULL CHECK (severity IN ('low', 'medium', 'high', 'critical')),
    status        TEXT     NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'acknowledged', 'resolved')),
    model_version TEXT     NOT NULL,
    features      TEXT     NOT NULL DEFAULT '{}' CHECK (json_valid(features)),
    explanation   TEXT     NOT NULL DEFAULT '',
    created_at    DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f+00:00', 'now'))
);
-- A host's anomalies, newest first (dashboard markers, per-host views).
CREATE INDEX anomalies_host_detected ON anomalies (host, detected_at);
-- Fleet-wide recent anomalies and retention.
CREATE INDEX anomalies_detected ON anomalies (detected_at);
-- The open queue by severity; partial, since resolved rows are the long tail.
CREATE INDEX anomalies_open_severity ON anomalies (severity, detected_at) WHERE status = 'open';

CREATE TABLE models (
    id             INTEGER PRIMARY KEY,
    version        TEXT     NOT NULL UNIQUE,
    kind           TEXT     NOT NULL,
    parameters     TEXT     NOT NULL DEFAULT '{}' CHECK (json_valid(parameters)),
    trained_at     DATETIME NOT NULL,
    training_from  DATETIME,
    training_to    DATETIME,
    training_rows  INTEGER  NOT NULL DEFAULT 0 CHECK (training_rows >= 0),
    validation     TEXT     NOT NULL DEFAULT '{}' CHECK (json_valid(validation)),
    artifact       BLOB,
    active         INTEGER  NOT NULL DEFAULT 0 CHECK (active IN (0, 1))
);
-- At most one active model per kind; activation is a swap inside one transaction.
CREATE UNIQUE INDEX models_one_active_per_kind ON models (kind) WHERE active = 1;
CREATE INDEX models_kind_trained ON models (kind, trained_at);

-- +goose Down
DROP TABLE models;
DROP TABLE anomalies;
DROP TABLE system_metrics;
