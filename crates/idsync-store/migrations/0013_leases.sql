-- Processes that run flows, with the time until which they are known to be alive (renewed by a
-- heartbeat while the process lives), the leases they hold (a flow runs in one process at a
-- time), and the process that owns each run (a run whose owner is gone was interrupted).
CREATE TABLE processes (
    id TEXT PRIMARY KEY,
    pid BIGINT NOT NULL,
    host TEXT NOT NULL,
    command TEXT NOT NULL,
    started_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL
);
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    since_ms BIGINT NOT NULL
);
ALTER TABLE runs ADD COLUMN owner TEXT;
CREATE INDEX runs_by_status ON runs (status);
