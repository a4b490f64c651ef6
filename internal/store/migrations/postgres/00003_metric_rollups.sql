-- +goose Up
-- One row per (host, metric, minute): the 1-minute aggregates of
-- system_metrics that outlive the raw rows (METRICS_RAW_RETENTION). The mean
-- is value_sum / sample_count, kept as its parts so rollups of rollups and a
-- re-rolled minute stay exact. The key's order serves a host's series in time
-- order; retention and fleet-wide training windows read by bucket.
CREATE TABLE metric_rollups (
    host         TEXT             NOT NULL,
    metric       TEXT             NOT NULL,
    bucket       TIMESTAMPTZ      NOT NULL,
    sample_count BIGINT           NOT NULL CHECK (sample_count > 0),
    value_sum    DOUBLE PRECISION NOT NULL,
    value_min    DOUBLE PRECISION NOT NULL,
    value_max    DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (host, bucket, metric)
);
CREATE INDEX metric_rollups_bucket ON metric_rollups (bucket);

-- The rollup job's progress, one row: every minute before watermark is rolled
-- up; raw rows before raw_from may be deleted, so reads take that part from
-- metric_rollups; rows with id above scan_from are checked for late samples
-- (twice: next_scan_from becomes scan_from on the following run).
CREATE TABLE metric_rollup_state (
    id             INTEGER     PRIMARY KEY CHECK (id = 1),
    watermark      TIMESTAMPTZ NOT NULL,
    raw_from       TIMESTAMPTZ,
    scan_from      BIGINT      NOT NULL DEFAULT 0,
    next_scan_from BIGINT      NOT NULL DEFAULT 0
);

-- +goose Down
DROP TABLE metric_rollup_state;
DROP TABLE metric_rollups;
