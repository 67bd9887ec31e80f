-- A run held by its flow's deletion threshold waits for `idsync approve` or `idsync reject`:
-- the answer (approved, rejected, or superseded by a later hold) and when it was given.
ALTER TABLE runs ADD COLUMN resolution TEXT;
ALTER TABLE runs ADD COLUMN resolved_ms BIGINT;
CREATE INDEX runs_held ON runs (flow, status, resolution);
