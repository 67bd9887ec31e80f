-- Every write to a flow's ledger bumps its version, so a ledger held in memory between runs
-- (the service keeps one per flow) knows whether anything else wrote to it meanwhile.
ALTER TABLE flows ADD COLUMN ledger_version BIGINT NOT NULL DEFAULT 0;
