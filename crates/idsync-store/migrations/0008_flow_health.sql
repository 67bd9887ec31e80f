-- A flow's health: bad runs in a row, the last one's time, and quarantine (since when, why).
ALTER TABLE flows ADD COLUMN failures BIGINT NOT NULL DEFAULT 0;
ALTER TABLE flows ADD COLUMN last_failure_ms BIGINT;
ALTER TABLE flows ADD COLUMN last_failure TEXT;
ALTER TABLE flows ADD COLUMN quarantined_ms BIGINT;
