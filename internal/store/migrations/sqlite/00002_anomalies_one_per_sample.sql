-- +goose Up
-- One anomaly row per sample (host, detected_at), whatever model scored it:
-- the count-then-insert this replaces let re-sends after a model change store
-- the same finding twice. The earliest row of each sample is kept: it is the
-- one operators may already have acknowledged or linked to.
DELETE FROM anomalies
WHERE id IN (
    SELECT id FROM (
        SELECT id, row_number() OVER (PARTITION BY host, detected_at ORDER BY id) AS n
        FROM anomalies
    ) ranked
    WHERE n > 1
);
-- The unique index serves the same reads as the plain one it replaces.
DROP INDEX anomalies_host_detected;
CREATE UNIQUE INDEX anomalies_host_detected ON anomalies (host, detected_at);

-- +goose Down
DROP INDEX anomalies_host_detected;
CREATE INDEX anomalies_host_detected ON anomalies (host, detected_at);
