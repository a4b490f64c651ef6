-- +goose Up
-- One row per (host, sample time). Well-known metrics get typed columns so the
-- planner can index and aggregate them; anything else a host reports goes to extra.
CREATE TABLE system_metrics (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    host             TEXT        NOT NULL,
    ts               TIMESTAMPTZ NOT NULL,
    cpu_usage        DOUBLE PRECISION,
    memory_usage     DOUBLE PRECISION,
    disk_usage       DOUBLE PRECISION,
    network_in       DOUBLE PRECISION,
    network_out      DOUBLE PRECISION,
    load_average     DOUBLE PRECISION,
    response_time_ms DOUBLE PRECISION,
    error_rate       DOUBLE PRECISION,
    request_rate     DOUBLE PRECISION,
    extra            JSONB       NOT NULL DEFAULT '{}',
    received_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- Serves "a host's series in time order" (charts, feature context, training
-- windows) and makes a re-sent sample a conflict instead of a duplicate row.
CREATE UNIQUE INDEX system_metrics_host_ts ON system_metrics (host, ts);
-- Serves fleet-wide time ranges and retention deletes; BRIN would also do on
-- append-mostly data, but a B-tree keeps the SQLite and PostgreSQL plans alike.
CREATE INDEX system_metrics_ts ON system_metrics (ts);

CREATE TABLE anomalies (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    host          TEXT             NOT NULL,
    metric        TEXT,
    detected_at   TIMESTAMPTZ      NOT NULL,
    score         DOUBLE PRECISION NOT NULL CHECK (score >= 0 AND score <= 1),
    confidence    DOUBLE PRECISION NOT NULL CHECK (confidence >= 0 AND confidence <= 1),
    severity      TEXT             NOT NULL CHECK (severity IN ('low', 'medium', 'high', 'critical')),
    status        TEXT             NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'acknowledged', 'resolved')),
    model_version TEXT             NOT NULL,
    features      JSONB            NOT NULL DEFAULT '{}',
    explanation   TEXT             NOT NULL DEFAULT '',
    created_at    TIMESTAMPTZ      NOT NULL DEFAULT now()
);
CREATE INDEX anomalies_host_detected ON anomalies (host, detected_at DESC);
CREATE INDEX anomalies_detected ON anomalies (detected_at);
CREATE INDEX anomalies_open_severity ON anomalies (severity, detected_at) WHERE status = 'open';

CREATE TABLE models (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    version        TEXT        NOT NULL UNIQUE,
    kind           TEXT        NOT NULL,
    parameters     JSONB       NOT NULL DEFAULT '{}',
    trained_at     TIMESTAMPTZ NOT NULL,
    training_from  TIMESTAMPTZ,
    training_to    TIMESTAMPTZ,
    training_rows  BIGINT      NOT NULL DEFAULT 0 CHECK (training_rows >= 0),
    validation     JSONB       NOT NULL DEFAULT '{}',
    artifact       BYTEA,
    active         BOOLEAN     NOT NULL DEFAULT false
);
CREATE UNIQUE INDEX models_one_active_per_kind ON models (kind) WHERE active;
CREATE INDEX models_kind_trained ON models (kind, trained_at);

-- +goose Down
DROP TABLE models;
DROP TABLE anomalies;
DROP TABLE system_metrics;
