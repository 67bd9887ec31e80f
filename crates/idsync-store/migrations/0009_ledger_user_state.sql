-- When a target user was disabled (deletion after a grace period), and the real values of a
-- user the target holds anonymized.
ALTER TABLE ledger_users ADD COLUMN disabled_ms BIGINT;
ALTER TABLE ledger_users ADD COLUMN original TEXT;
