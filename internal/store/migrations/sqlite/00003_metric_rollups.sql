-- +goose Up
-- One row per (host, metric, minute): the 1-minute aggregates of
-- system_metrics that outlive the raw rows (METRICS_RAW_RETENTION). The mean
-- is value_sum / sample_count, kept as its parts so rollups of rollups and a
-- re-rolled minute stay exact. A rowid table, so retention deletes in small
-- rowid batches; the unique key serves a host's series in time order, and
-- retention and fleet-wide training windows read by bucket.
CREATE TABLE metric_rollups (
    host         TEXT     NOT NULL,
    metric       TEXT     NOT NULL,
    bucket       DATETIME NOT NULL,
    sample_count INTEGER  NOT NULL CHECK (sample_count > 0),
    value_sum    REAL     NOT NULL,
    value_min    REAL     NOT NULL,
    value_max    REAL     NOT NULL
);
CREATE UNIQUE INDEX metric_rollups_key ON metric_rollups (host, bucket, metric);
CREATE INDEX metric_rollups_bucket ON metric_rollups (bucket);

-- The rollup job's progress, one row: every minute before watermark is rolled
-- up; raw rows before raw_from may be deleted, so reads take that part from
-- metric_rollups; rows with id above scan_from are checked for late samples
-- (twice: next_scan_from becomes scan_from on the following run).
CREATE TABLE metric_rollup_state (
    id             INTEGER  PRIMARY KEY CHECK (id = 1),
    watermark      DATETIME NOT NULL,
    raw_from       DATETIME,
    scan_from      INTEGER  NOT NULL DEFAULT 0,
    next_scan_from INTEGER  NOT NULL DEFAULT 0
);

-- +goose Down
DROP TABLE metric_rollup_state;
DROP TABLE metric_rollups;
